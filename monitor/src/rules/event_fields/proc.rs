//! Values of the `proc.*`, `thread.*`, `user.*`, `group.*`: the process, its ancestors and its identity.
use super::*;

impl<'a, R: Record<'a>> EventView<R> {
    #[inline(always)]
    pub(super) fn proc_value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        let index = match f.arg {
            FieldArg::Index(i) => Some(i),
            _ => None,
        };
        match f.id {
            ProcName => str_c(self.proc_name()),
            ProcExe => match self.process(P::exe) {
                Some(v) => str_v(Some(v)),
                None if self.is_exec() => str_v(self.record.exec_argv0().value()),
                None => FieldValue::None,
            },
            ProcExePath => str_v(
                self.process(P::exepath)
                    .or_else(|| self.is_exec().then(|| self.get(T::exe)).flatten()),
            ),
            ProcCmdline => match self.process(P::cmdline) {
                Some(v) => str_v(Some(v)),
                None => match (self.proc_name(), self.args_list()) {
                    (Some(n), Some((0, _))) => FieldValue::Str(n),
                    (Some(n), Some((_, a))) => FieldValue::Str(Cow::Owned(format!("{n} {a}"))),
                    _ => FieldValue::None,
                },
            },
            ProcArgs => str_c(self.args_list().map(|(_, a)| a)),
            ProcPname => str_v(self.ancestor(1, A::name)),
            ProcPexe => str_v(self.ancestor(1, A::exe)),
            ProcPexePath => str_v(self.ancestor(1, A::exepath)),
            ProcPcmdline => str_v(self.ancestor(1, A::cmdline)),
            ProcAname => match index {
                Some(0) => str_c(self.proc_name()),
                Some(n) => str_v(self.ancestor(n, A::name)),
                None => FieldValue::None,
            },
            ProcAexePath => match index {
                Some(0) => self.field_id(ProcExePath),
                Some(n) => str_v(self.ancestor(n, A::exepath)),
                None => FieldValue::None,
            },
            ProcAexe => match index {
                Some(0) => self.field_id(ProcExe),
                Some(n) => str_v(self.ancestor(n, A::exe)),
                None => FieldValue::None,
            },
            ProcApid => match index {
                Some(0) => self.field_id(ProcPid),
                Some(n) => i64v(self.ancestor(n, A::pid)),
                None => FieldValue::None,
            },
            ProcPid => i64v(self.pid()),
            ProcPpid => i64v(self.process(P::ppid).or_else(|| self.get(T::ppid))),
            ProcTty => i64v(self.process(P::tty)),
            // Falco's ends with `/` (`/dev/shm/` for a process in /dev/shm).
            ProcCwd => match self.process(P::cwd).and_then(Raw::into_str) {
                Some(cwd) if cwd.ends_with('/') => FieldValue::Str(cwd),
                Some(cwd) => FieldValue::Str(Cow::Owned(format!("{cwd}/"))),
                None => FieldValue::None,
            },
            ProcSid => i64v(self.process(P::sid)),
            ProcSname => {
                let Some(sid) = self.process(P::sid).and_then(|v| v.as_i64()) else {
                    return FieldValue::None;
                };
                if self.pid().and_then(|v| v.as_i64()) == Some(sid) {
                    return str_c(self.proc_name());
                }
                let Some(count) = self.record.ancestor_count() else {
                    return FieldValue::None;
                };
                match (1..=count).find(|&d| self.record.ancestor(d, A::pid).as_i64() == Some(sid)) {
                    Some(d) => str_v(self.ancestor(d, A::name)),
                    None => FieldValue::None,
                }
            }
            ProcVpid => i64v(self.process(P::vpid)),
            ProcVpgid => i64v(self.process(P::vpgid)),
            ProcIsVpgidLeader => {
                match (
                    self.process(P::vpid).and_then(|v| v.as_i64()),
                    self.process(P::vpgid).and_then(|v| v.as_i64()),
                ) {
                    (Some(pid), Some(pgid)) => FieldValue::Bool(pid == pgid),
                    _ => FieldValue::None,
                }
            }
            ProcIsExeUpperLayer => opt_bool(self.process(P::exe_upper_layer)),
            // Known for every event: a process the agent did not see start was no start.
            ProcIsContainerStart => FieldValue::Bool(
                self.process(P::container_start)
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
            ),
            ProcIsExeWritable => opt_bool(self.process(P::exe_writable)),
            ProcIsExeFromMemfd => match self.memfd() {
                Some(b) => FieldValue::Bool(b),
                None => FieldValue::None,
            },
            ProcEnv => match &f.arg {
                FieldArg::Key(k) => str_v(self.record.env_var(k).value()),
                _ => str_v(self.process(P::env)),
            },
            ProcExeSha256 => str_v(self.process(P::exe_sha256)),
            ProcDuration => {
                let start = self
                    .process(P::start_boot_ns)
                    .or_else(|| self.get(T::process_start_boot_ns))
                    .and_then(|v| v.as_u64());
                match (self.unum(T::boot_ns), start) {
                    (Some(now), Some(start)) => FieldValue::U64(now.saturating_sub(start)),
                    _ => FieldValue::None,
                }
            }
            ProcExeInoCtime | ProcExeInoMtime | ProcExeInoCtimeDurationProcStart => {
                FieldValue::None
            }

            ThreadTid => i64v(self.get(T::tid)),
            // A list of names arrives joined (see `Record::process`).
            ThreadCapEffective => str_c(self.process(P::cap_effective).and_then(Raw::into_str)),
            ThreadCapPermitted => str_c(self.process(P::cap_permitted).and_then(Raw::into_str)),
            ThreadCapInheritable => str_c(self.process(P::cap_inheritable).and_then(Raw::into_str)),

            UserName => str_v(self.process(P::user)),
            UserUid => u64v(self.process(P::uid).or_else(|| self.get(T::uid))),
            UserLoginUid => {
                let v = match self.record.process(P::loginuid) {
                    Raw::Absent => self.record.top(T::loginuid),
                    v => v,
                };
                match v {
                    Raw::Null => FieldValue::I64(-1),
                    Raw::Absent => FieldValue::None,
                    v => match v.as_i64() {
                        // 4294967295 is the kernel's "unset".
                        Some(4294967295) => FieldValue::I64(-1),
                        Some(n) => FieldValue::I64(n),
                        None => FieldValue::None,
                    },
                }
            }
            UserLoginName => {
                if let Some(n) = self.process(P::loginname) {
                    return str_v(Some(n));
                }
                let login = self.process(P::loginuid).and_then(|v| v.as_i64());
                let uid = self.process(P::uid).and_then(|v| v.as_i64());
                match (login, uid) {
                    (Some(l), Some(u)) if l == u => str_v(self.process(P::user)),
                    _ => FieldValue::None,
                }
            }
            GroupName => str_v(self.process(P::group)),
            GroupGid => u64v(self.process(P::gid).or_else(|| self.get(T::gid))),

            ProcIsNewForWorkload => match self.etype.kind() {
                EventKind::Exec => opt_bool(self.record.workload(W::new).value()),
                _ => FieldValue::None,
            },
            _ => FieldValue::None,
        }
    }
}
