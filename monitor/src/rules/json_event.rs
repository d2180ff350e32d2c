//! [`FieldSource`] for an event in the JSON form `monitor events` prints, with the
//! optional context objects `process`, `ancestors` and `container` (what rule fixtures
//! and `monitor replay` contain).
//!
//! Extensions beyond the sensor's schema, all optional: `hostname`, `num` (top level),
//! `server_name` on connect events (fills `fd.sip.name`), `process.cap_effective`
//! (a string or a list of capability names), `process.exe_from_memfd`,
//! `process.loginname`.
use std::{borrow::Cow, net::IpAddr};

use serde_json::{Map, Value};

use super::{
    fields::FieldId,
    source::{EventType, FieldArg, FieldSource, FieldValue, ResolvedField},
};

const AT_FDCWD: i64 = -100;

/// Declares the keys of one JSON object the fields read, resolved once per event into
/// a fixed array (so a field read is an index, not a map lookup by string).
macro_rules! keys {
    ($name:ident, $doc:literal { $($k:ident),* $(,)? }) => {
        #[doc = $doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        enum $name { $($k,)* }

        impl $name {
            const N: usize = [$(stringify!($k)),*].len();

            fn of(key: &str) -> Option<$name> {
                match key {
                    $(stringify!($k) => Some($name::$k),)*
                    _ => None,
                }
            }

            /// The values of the keys present in `map` (null ones included).
            fn resolve(map: Option<&Map<String, Value>>) -> [Option<&Value>; $name::N] {
                let mut out = [None; $name::N];
                if let Some(map) = map {
                    for (k, v) in map {
                        if let Some(i) = $name::of(k) {
                            out[i as usize] = Some(v);
                        }
                    }
                }
                out
            }
        }
    };
}

keys!(T, "Top-level keys." { address, ancestors, args, boot_ns, child_pid, comm, container, dirfd, error, exe, exit_code, family, fd, filename, flags, gid, hostname, kind, loginuid, mode, num, path, pid, port, ppid, process, process_start_boot_ns, resolved_path, result, server_name, signal, sock_type, syscall, tid, time, uid, unix_path });
keys!(P, "Keys of `process`." { args, cap_effective, cmdline, cwd, exe, exe_from_memfd, exe_sha256, exe_upper_layer, exepath, gid, group, loginname, loginuid, name, pid, ppid, sid, start_boot_ns, tty, uid, user, vpid });
keys!(C, "Keys of `container`." { id, image, image_digest, image_id, image_repository, image_tag, labels, name, pod, privileged, runtime, start_ts });

/// A JSON event ready for evaluation.
#[derive(Debug, Clone, Copy)]
pub struct JsonEvent<'a> {
    etype: EventType,
    // Looked up once here rather than per field: the rules ask for them constantly.
    top: [Option<&'a Value>; T::N],
    process: [Option<&'a Value>; P::N],
    container: [Option<&'a Value>; C::N],
    ancestors: Option<&'a [Value]>,
    result: Option<i64>,
    flags: Option<u64>,
}

impl<'a> JsonEvent<'a> {
    /// Checks the event's `kind` (and `syscall`) and works out its `evt.type`.
    pub fn new(v: &'a Value) -> Result<JsonEvent<'a>, String> {
        let Some(obj) = v.as_object() else {
            return Err("an event must be a JSON object".into());
        };
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("event has no 'kind'")?;
        let syscall = obj.get("syscall").and_then(Value::as_str);
        let from = |allowed: &[EventType], default: EventType| -> Result<EventType, String> {
            match syscall {
                None => Ok(default),
                Some(s) => match EventType::from_name(s) {
                    Some(t) if allowed.contains(&t) => Ok(t),
                    _ => Err(format!("'{s}' is not a syscall of a {kind} event")),
                },
            }
        };
        use EventType::*;
        let etype = match kind {
            "exec" => from(&[Execve, Execveat], Execve)?,
            "fork" => from(&[Clone, Clone3, Fork, Vfork], Clone)?,
            "exit" => Procexit,
            "connect" => Connect,
            "open" => from(&[Open, Openat, Openat2, Creat], Openat)?,
            other => return Err(format!("unknown event kind '{other}'")),
        };
        let top = T::resolve(Some(obj));
        let mut ev = JsonEvent {
            etype,
            process: P::resolve(top[T::process as usize].and_then(Value::as_object)),
            container: C::resolve(top[T::container as usize].and_then(Value::as_object)),
            ancestors: top[T::ancestors as usize]
                .and_then(Value::as_array)
                .map(Vec::as_slice),
            top,
            result: None,
            flags: None,
        };
        ev.result = ev.compute_result();
        ev.flags = ev.compute_open_flags();
        Ok(ev)
    }

    #[inline]
    fn get(&self, k: T) -> Option<&'a Value> {
        self.top[k as usize].filter(|v| !v.is_null())
    }

    #[inline]
    fn process(&self, k: P) -> Option<&'a Value> {
        self.process[k as usize].filter(|v| !v.is_null())
    }

    #[inline]
    fn container(&self, k: C) -> Option<&'a Value> {
        self.container[k as usize].filter(|v| !v.is_null())
    }

    fn pod(&self, k: &str) -> Option<&'a Value> {
        self.container(C::pod)
            .and_then(Value::as_object)
            .and_then(|p| p.get(k))
            .filter(|v| !v.is_null())
    }

    fn ancestor(&self, depth: usize, k: &str) -> Option<&'a Value> {
        self.ancestors?
            .get(depth.checked_sub(1)?)?
            .as_object()?
            .get(k)
            .filter(|v| !v.is_null())
    }

    fn num(&self, k: T) -> Option<i64> {
        self.get(k).and_then(Value::as_i64)
    }

    fn result(&self) -> Option<i64> {
        self.result
    }

    fn compute_result(&self) -> Option<i64> {
        match self.etype {
            EventType::Clone | EventType::Clone3 | EventType::Fork | EventType::Vfork => {
                self.num(T::child_pid)
            }
            EventType::Procexit => None,
            _ => self.num(T::result),
        }
    }

    fn is_open(&self) -> bool {
        self.etype.kind() == crate::event::EventKind::Open
    }

    fn open_flags(&self) -> Option<u64> {
        self.flags
    }

    fn compute_open_flags(&self) -> Option<u64> {
        if !self.is_open() {
            return None;
        }
        let f = self.get(T::flags).and_then(Value::as_u64).unwrap_or(0);
        if self.etype == EventType::Creat && f == 0 {
            return Some(O_CREAT | O_WRONLY | O_TRUNC);
        }
        Some(f)
    }

    fn proc_name(&self) -> Option<&'a str> {
        self.process(P::name)
            .or_else(|| self.get(T::comm))
            .and_then(Value::as_str)
    }

    /// argv after argv[0], from the context or the exec event.
    fn args_list(&self) -> Option<Vec<&'a str>> {
        if let Some(a) = self.process(P::args).and_then(Value::as_array) {
            return Some(a.iter().filter_map(Value::as_str).collect());
        }
        if self.etype.kind() == crate::event::EventKind::Exec {
            let a = self.get(T::args)?.as_array()?;
            return Some(a.iter().skip(1).filter_map(Value::as_str).collect());
        }
        None
    }

    fn is_ip(&self) -> bool {
        matches!(
            self.get(T::family).and_then(Value::as_str),
            Some("inet" | "inet6")
        )
    }

    fn fd_name(&self) -> Option<Cow<'a, str>> {
        if self.is_open() {
            if let Some(p) = self.get(T::resolved_path).and_then(Value::as_str) {
                return Some(Cow::Borrowed(p));
            }
            let path = self.get(T::path).and_then(Value::as_str)?;
            if path.starts_with('/') {
                return Some(Cow::Owned(normalize(path)));
            }
            let dirfd = self.num(T::dirfd).unwrap_or(AT_FDCWD);
            if dirfd == AT_FDCWD
                && let Some(cwd) = self.process(P::cwd).and_then(Value::as_str)
            {
                return Some(Cow::Owned(normalize(&format!("{cwd}/{path}"))));
            }
            return Some(Cow::Borrowed(path));
        }
        if self.etype == EventType::Connect {
            if self.is_ip() {
                let addr = self.get(T::address).and_then(Value::as_str)?;
                let port = self.num(T::port)?;
                return Some(Cow::Owned(format!("{addr}:{port}")));
            }
            return self
                .get(T::unix_path)
                .and_then(Value::as_str)
                .map(Cow::Borrowed);
        }
        None
    }

    fn sip(&self) -> FieldValue<'a> {
        if self.etype != EventType::Connect || !self.is_ip() {
            return FieldValue::None;
        }
        match self
            .get(T::address)
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<IpAddr>().ok())
        {
            Some(ip) => FieldValue::Ip(ip),
            None => FieldValue::None,
        }
    }

    fn sport(&self) -> FieldValue<'a> {
        if self.etype != EventType::Connect || !self.is_ip() {
            return FieldValue::None;
        }
        u64v(self.get(T::port))
    }

    /// Event arguments by name, in positional order.
    fn arg_names(&self) -> &'static [&'static str] {
        match self.etype {
            EventType::Execve | EventType::Execveat => &["res", "exe", "args", "filename", "flags"],
            EventType::Clone | EventType::Clone3 | EventType::Fork | EventType::Vfork => &["res"],
            EventType::Procexit => &["status", "sig"],
            EventType::Connect => &["res", "tuple", "fd"],
            EventType::Open | EventType::Creat => &["fd", "name", "flags", "mode"],
            EventType::Openat | EventType::Openat2 => &["fd", "dirfd", "name", "flags", "mode"],
        }
    }

    fn arg(&self, name: &str) -> FieldValue<'a> {
        let owned = |s: String| FieldValue::Str(Cow::Owned(s));
        let res = || match self.result() {
            Some(r) => owned(r.to_string()),
            None => FieldValue::None,
        };
        match (self.etype.kind(), name) {
            (_, "res") => res(),
            (crate::event::EventKind::Open, "fd") => res(),
            (crate::event::EventKind::Open, "name" | "path" | "pathname") => {
                str_v(self.get(T::path))
            }
            (crate::event::EventKind::Open, "flags") => match self.open_flags() {
                Some(f) => owned(render_open_flags(f)),
                None => FieldValue::None,
            },
            (crate::event::EventKind::Open, "mode") => {
                match self.get(T::mode).and_then(Value::as_u64) {
                    Some(m) => owned(format!("0{m:o}")),
                    None => FieldValue::None,
                }
            }
            (crate::event::EventKind::Open | crate::event::EventKind::Exec, "dirfd") => {
                match self.num(T::dirfd) {
                    Some(d) => owned(d.to_string()),
                    None => FieldValue::None,
                }
            }
            (crate::event::EventKind::Exec, "exe") => self.field_id(FieldId::ProcExe),
            (crate::event::EventKind::Exec, "args") => self.field_id(FieldId::ProcArgs),
            (crate::event::EventKind::Exec, "filename" | "pathname") => {
                str_v(self.get(T::exe).or_else(|| self.get(T::filename)))
            }
            (crate::event::EventKind::Exec, "flags") => {
                let upper = self.process(P::exe_upper_layer).and_then(Value::as_bool);
                let memfd = self.memfd();
                if upper.is_none() && memfd.is_none() {
                    return FieldValue::None;
                }
                let mut parts = Vec::new();
                match upper {
                    Some(true) => parts.push("EXE_UPPER_LAYER"),
                    Some(false) => parts.push("EXE_LOWER_LAYER"),
                    None => {}
                }
                if memfd == Some(true) {
                    parts.push("EXE_FROM_MEMFD");
                }
                owned(parts.join("|"))
            }
            (crate::event::EventKind::Connect, "fd") => match self.num(T::fd) {
                Some(d) => owned(d.to_string()),
                None => FieldValue::None,
            },
            (crate::event::EventKind::Connect, "tuple" | "addr") => match self.fd_name() {
                Some(n) => FieldValue::Str(n),
                None => FieldValue::None,
            },
            (crate::event::EventKind::Exit, "status") => match self.num(T::exit_code) {
                Some(c) => owned(c.to_string()),
                None => FieldValue::None,
            },
            (crate::event::EventKind::Exit, "sig") => match self.num(T::signal) {
                Some(c) => owned(c.to_string()),
                None => FieldValue::None,
            },
            _ => FieldValue::None,
        }
    }

    fn memfd(&self) -> Option<bool> {
        if let Some(b) = self.process(P::exe_from_memfd).and_then(Value::as_bool) {
            return Some(b);
        }
        let p = self
            .process(P::exepath)
            .or_else(|| self.get(T::exe))
            .and_then(Value::as_str)?;
        Some(p.starts_with("memfd:") || p.starts_with("/memfd:"))
    }

    fn field_id(&self, id: FieldId) -> FieldValue<'a> {
        self.value(&ResolvedField {
            id,
            arg: FieldArg::None,
        })
    }

    fn value(&self, f: &ResolvedField) -> FieldValue<'a> {
        use FieldId::*;
        let index = match f.arg {
            FieldArg::Index(i) => Some(i),
            _ => None,
        };
        match f.id {
            EvtType => FieldValue::Str(Cow::Borrowed(self.etype.as_str())),
            EvtDir => FieldValue::Str(Cow::Borrowed("<")),
            EvtRes => match self.result() {
                Some(r) if r >= 0 => FieldValue::Str(Cow::Borrowed("SUCCESS")),
                Some(r) => match self.get(T::error).and_then(Value::as_str) {
                    Some(e) => FieldValue::Str(Cow::Borrowed(e)),
                    None => FieldValue::Str(Cow::Owned(r.to_string())),
                },
                None => FieldValue::None,
            },
            EvtRawRes => opt_i64(self.result()),
            EvtFailed => match self.result() {
                Some(r) => FieldValue::Bool(r < 0),
                None => FieldValue::Bool(false),
            },
            EvtTime => str_v(self.get(T::time)),
            EvtRawTime => match self
                .get(T::time)
                .and_then(Value::as_str)
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            {
                Some(d) => FieldValue::U64(d.as_nanos() as u64),
                None => FieldValue::None,
            },
            EvtNum => u64v(self.get(T::num)),
            EvtHostname => str_v(self.get(T::hostname)),
            EvtIsOpenRead => match self.open_flags() {
                Some(f) => FieldValue::Bool(matches!(f & 3, 0 | 2)),
                None => FieldValue::Bool(false),
            },
            EvtIsOpenWrite => match self.open_flags() {
                Some(f) => FieldValue::Bool(matches!(f & 3, 1 | 2)),
                None => FieldValue::Bool(false),
            },
            EvtIsOpenCreate => match self.open_flags() {
                Some(f) => FieldValue::Bool(f & O_CREAT != 0),
                None => FieldValue::Bool(false),
            },
            EvtIsOpenExec => match self.open_flags() {
                Some(f) => {
                    let mode = self.get(T::mode).and_then(Value::as_u64).unwrap_or(0);
                    FieldValue::Bool(f & O_CREAT != 0 && mode & 0o111 != 0)
                }
                None => FieldValue::Bool(false),
            },
            EvtArg => match &f.arg {
                FieldArg::Key(k) => self.arg(k),
                FieldArg::Index(i) => match self.arg_names().get(*i) {
                    Some(n) => self.arg(n),
                    None => FieldValue::None,
                },
                FieldArg::None => FieldValue::None,
            },
            EvtArgs => {
                let parts: Vec<String> = self
                    .arg_names()
                    .iter()
                    .filter_map(|n| match self.arg(n) {
                        FieldValue::None => None,
                        v => Some(format!("{n}={v}")),
                    })
                    .collect();
                FieldValue::Str(Cow::Owned(parts.join(" ")))
            }

            ProcName => str_o(self.proc_name()),
            ProcExe => match self.process(P::exe) {
                Some(v) => str_v(Some(v)),
                None if self.etype.kind() == crate::event::EventKind::Exec => str_v(
                    self.get(T::args)
                        .and_then(Value::as_array)
                        .and_then(|a| a.first()),
                ),
                None => FieldValue::None,
            },
            ProcExePath => str_v(self.process(P::exepath).or_else(|| {
                (self.etype.kind() == crate::event::EventKind::Exec)
                    .then(|| self.get(T::exe))
                    .flatten()
            })),
            ProcCmdline => match self.process(P::cmdline) {
                Some(v) => str_v(Some(v)),
                None => match (self.proc_name(), self.args_list()) {
                    (Some(n), Some(a)) if a.is_empty() => FieldValue::Str(Cow::Borrowed(n)),
                    (Some(n), Some(a)) => {
                        FieldValue::Str(Cow::Owned(format!("{n} {}", a.join(" "))))
                    }
                    _ => FieldValue::None,
                },
            },
            ProcArgs => match self.args_list() {
                Some(a) if a.len() == 1 => FieldValue::Str(Cow::Borrowed(a[0])),
                Some(a) => FieldValue::Str(Cow::Owned(a.join(" "))),
                None => FieldValue::None,
            },
            ProcPname => str_v(self.ancestor(1, "name")),
            ProcPexe => str_v(self.ancestor(1, "exe")),
            ProcPexePath => str_v(self.ancestor(1, "exepath")),
            ProcPcmdline => str_v(self.ancestor(1, "cmdline")),
            ProcAname => match index {
                Some(0) => str_o(self.proc_name()),
                Some(n) => str_v(self.ancestor(n, "name")),
                None => FieldValue::None,
            },
            ProcAexePath => match index {
                Some(0) => self.field_id(ProcExePath),
                Some(n) => str_v(self.ancestor(n, "exepath")),
                None => FieldValue::None,
            },
            ProcApid => match index {
                Some(0) => self.field_id(ProcPid),
                Some(n) => i64v(self.ancestor(n, "pid")),
                None => FieldValue::None,
            },
            ProcPid => i64v(self.process(P::pid).or_else(|| self.get(T::pid))),
            ProcPpid => i64v(self.process(P::ppid).or_else(|| self.get(T::ppid))),
            ProcTty => i64v(self.process(P::tty)),
            ProcCwd => str_v(self.process(P::cwd)),
            ProcSid => i64v(self.process(P::sid)),
            ProcSname => {
                let Some(sid) = self.process(P::sid).and_then(Value::as_i64) else {
                    return FieldValue::None;
                };
                let pid = self
                    .process(P::pid)
                    .or_else(|| self.get(T::pid))
                    .and_then(Value::as_i64);
                if pid == Some(sid) {
                    return str_o(self.proc_name());
                }
                let Some(list) = self.ancestors else {
                    return FieldValue::None;
                };
                str_v(
                    list.iter()
                        .find(|a| a.get("pid").and_then(Value::as_i64) == Some(sid))
                        .and_then(|a| a.get("name")),
                )
            }
            ProcVpid => i64v(self.process(P::vpid)),
            ProcIsExeUpperLayer => {
                match self.process(P::exe_upper_layer).and_then(Value::as_bool) {
                    Some(b) => FieldValue::Bool(b),
                    None => FieldValue::None,
                }
            }
            ProcIsExeFromMemfd => match self.memfd() {
                Some(b) => FieldValue::Bool(b),
                None => FieldValue::None,
            },
            ProcExeSha256 => str_v(self.process(P::exe_sha256)),
            ProcDuration => {
                let start = self
                    .process(P::start_boot_ns)
                    .or_else(|| self.get(T::process_start_boot_ns))
                    .and_then(Value::as_u64);
                match (self.get(T::boot_ns).and_then(Value::as_u64), start) {
                    (Some(now), Some(start)) => FieldValue::U64(now.saturating_sub(start)),
                    _ => FieldValue::None,
                }
            }
            ProcExeInoCtime | ProcExeInoMtime | ProcExeInoCtimeDurationProcStart => {
                FieldValue::None
            }

            ThreadTid => i64v(self.get(T::tid)),
            ThreadCapEffective => match self.process(P::cap_effective) {
                Some(Value::String(s)) => FieldValue::Str(Cow::Borrowed(s)),
                Some(Value::Array(a)) => FieldValue::Str(Cow::Owned(
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                )),
                _ => FieldValue::None,
            },

            UserName => str_v(self.process(P::user)),
            UserUid => u64v(self.process(P::uid).or_else(|| self.get(T::uid))),
            UserLoginUid => {
                let v = match self.process[P::loginuid as usize] {
                    Some(v) => Some(v),
                    None => self.top[T::loginuid as usize],
                };
                match v {
                    Some(Value::Null) => FieldValue::I64(-1),
                    Some(v) => match v.as_i64() {
                        // 4294967295 is the kernel's "unset".
                        Some(4294967295) => FieldValue::I64(-1),
                        Some(n) => FieldValue::I64(n),
                        None => FieldValue::None,
                    },
                    None => FieldValue::None,
                }
            }
            UserLoginName => {
                if let Some(n) = self.process(P::loginname) {
                    return str_v(Some(n));
                }
                let login = self.process(P::loginuid).and_then(Value::as_i64);
                let uid = self.process(P::uid).and_then(Value::as_i64);
                match (login, uid) {
                    (Some(l), Some(u)) if l == u => str_v(self.process(P::user)),
                    _ => FieldValue::None,
                }
            }
            GroupName => str_v(self.process(P::group)),
            GroupGid => u64v(self.process(P::gid).or_else(|| self.get(T::gid))),

            FdName => match self.fd_name() {
                Some(n) => FieldValue::Str(n),
                None => FieldValue::None,
            },
            FdNameRaw => {
                if self.is_open() {
                    str_v(self.get(T::path))
                } else {
                    FieldValue::None
                }
            }
            FdDirectory | FdFilename => {
                if !self.is_open() {
                    return FieldValue::None;
                }
                let Some(name) = self.fd_name() else {
                    return FieldValue::None;
                };
                let split = |s: &str| -> (usize, usize) {
                    match s.rfind('/') {
                        Some(0) => (1, 1),
                        Some(i) => (i, i + 1),
                        None => (0, 0),
                    }
                };
                let (dir_end, file_start) = split(&name);
                match name {
                    Cow::Borrowed(s) => FieldValue::Str(Cow::Borrowed(if f.id == FdDirectory {
                        &s[..dir_end]
                    } else {
                        &s[file_start..]
                    })),
                    Cow::Owned(s) => FieldValue::Str(Cow::Owned(if f.id == FdDirectory {
                        s[..dir_end].to_string()
                    } else {
                        s[file_start..].to_string()
                    })),
                }
            }
            FdTypeChar | FdType => {
                let (c, t) = if self.is_open() {
                    if self.open_flags().unwrap_or(0) & O_DIRECTORY != 0 {
                        ("d", "directory")
                    } else {
                        ("f", "file")
                    }
                } else if self.etype == EventType::Connect {
                    match self.get(T::family).and_then(Value::as_str) {
                        Some("inet") => ("4", "ipv4"),
                        Some("inet6") => ("6", "ipv6"),
                        Some("unix") => ("u", "unix"),
                        _ => return FieldValue::None,
                    }
                } else {
                    return FieldValue::None;
                };
                FieldValue::Str(Cow::Borrowed(if f.id == FdTypeChar { c } else { t }))
            }
            FdNum => {
                if self.is_open() {
                    match self.result() {
                        Some(r) if r >= 0 => FieldValue::I64(r),
                        Some(_) => FieldValue::I64(-1),
                        None => FieldValue::None,
                    }
                } else if self.etype == EventType::Connect {
                    i64v(self.get(T::fd))
                } else {
                    FieldValue::None
                }
            }
            FdSip | FdRip | FdIp | FdNet | FdSnet | FdRnet => self.sip(),
            FdSport | FdRport | FdPort => self.sport(),
            FdCip | FdCport | FdLip | FdLport | FdCnet | FdLnet | FdNameChanged | FdCipName
            | FdLipName => FieldValue::None,
            FdL4proto => {
                if self.etype != EventType::Connect || !self.is_ip() {
                    return FieldValue::None;
                }
                match self.get(T::sock_type).and_then(Value::as_str) {
                    Some("stream") => FieldValue::Str(Cow::Borrowed("tcp")),
                    Some("dgram") => FieldValue::Str(Cow::Borrowed("udp")),
                    Some("raw") => FieldValue::Str(Cow::Borrowed("raw")),
                    _ => FieldValue::None,
                }
            }
            FdSockfamily => match (self.etype, self.get(T::family).and_then(Value::as_str)) {
                (EventType::Connect, Some("inet" | "inet6")) => {
                    FieldValue::Str(Cow::Borrowed("ip"))
                }
                (EventType::Connect, Some("unix")) => FieldValue::Str(Cow::Borrowed("unix")),
                _ => FieldValue::None,
            },
            FdConnected => {
                if self.etype != EventType::Connect {
                    return FieldValue::None;
                }
                FieldValue::Bool(self.result() == Some(0))
            }
            FdSipName | FdRipName => {
                if self.etype != EventType::Connect {
                    return FieldValue::None;
                }
                str_v(self.get(T::server_name))
            }

            ContainerId => str_v(self.container(C::id)),
            ContainerName => str_v(self.container(C::name)),
            ContainerImage => str_v(self.container(C::image)),
            ContainerImageRepository => str_v(self.container(C::image_repository)),
            ContainerImageTag => str_v(self.container(C::image_tag)),
            ContainerImageDigest => str_v(self.container(C::image_digest)),
            ContainerImageId => str_v(self.container(C::image_id)),
            ContainerType => str_v(self.container(C::runtime)),
            ContainerPrivileged => match self.container(C::privileged).and_then(Value::as_bool) {
                Some(b) => FieldValue::Bool(b),
                None => FieldValue::None,
            },
            ContainerLabel => match &f.arg {
                FieldArg::Key(k) => str_v(
                    self.container(C::labels)
                        .and_then(Value::as_object)
                        .and_then(|l| l.get(&**k)),
                ),
                _ => FieldValue::None,
            },
            ContainerStartTs => u64v(self.container(C::start_ts)),

            K8sPodName => str_v(self.pod("name")),
            K8sPodUid | K8sPodId => str_v(self.pod("uid")),
            K8sNsName => str_v(self.pod("namespace")),
            K8sPodLabel => match &f.arg {
                FieldArg::Key(k) => str_v(
                    self.pod("labels")
                        .and_then(Value::as_object)
                        .and_then(|l| l.get(&**k)),
                ),
                _ => FieldValue::None,
            },
        }
    }
}

impl FieldSource for JsonEvent<'_> {
    fn event_type(&self) -> EventType {
        self.etype
    }

    fn field(&self, field: &ResolvedField) -> FieldValue<'_> {
        self.value(field)
    }
}

fn str_v(v: Option<&Value>) -> FieldValue<'_> {
    match v {
        Some(Value::String(s)) => FieldValue::Str(Cow::Borrowed(s)),
        Some(Value::Number(n)) => FieldValue::Str(Cow::Owned(n.to_string())),
        Some(Value::Bool(b)) => FieldValue::Str(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => FieldValue::None,
    }
}

fn str_o(s: Option<&str>) -> FieldValue<'_> {
    match s {
        Some(s) => FieldValue::Str(Cow::Borrowed(s)),
        None => FieldValue::None,
    }
}

fn i64v(v: Option<&Value>) -> FieldValue<'static> {
    opt_i64(v.and_then(Value::as_i64))
}

fn opt_i64(v: Option<i64>) -> FieldValue<'static> {
    match v {
        Some(n) => FieldValue::I64(n),
        None => FieldValue::None,
    }
}

fn u64v(v: Option<&Value>) -> FieldValue<'static> {
    match v.and_then(Value::as_u64) {
        Some(n) => FieldValue::U64(n),
        None => FieldValue::None,
    }
}

const O_WRONLY: u64 = 0o1;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_DIRECTORY: u64 = 0o200000;

/// Renders open(2) flags as Falco does: names joined by `|`.
pub fn render_open_flags(flags: u64) -> String {
    const NAMES: &[(u64, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o20000, "O_ASYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o4000000, "O_SYNC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "O_TMPFILE"),
    ];
    let mut parts = vec![match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    }];
    for (bit, name) in NAMES {
        if flags & bit != 0 {
            parts.push(name);
        }
    }
    parts.join("|")
}

/// Resolves `.` and `..` in an absolute path without touching the filesystem.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}
