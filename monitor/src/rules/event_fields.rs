//! What every catalog field means, written once for every representation of an event.
//!
//! An event reaches the engine either as the JSON `monitor events` prints (rule fixtures,
//! `monitor replay`: [`super::json_event`]) or as the agent's own structures on the live
//! path ([`super::live_event`]). Both only answer "what is under this key of the JSON
//! schema" ([`Record`]); the field semantics here are the same for both, so a fixture
//! that passes predicts the live result.
//!
//! Each field class's values are read in a file of its own, as in Falco's libs; the
//! names numbers are rendered as are in `names`.
mod container;
mod evt;
mod fd;
mod k8s;
mod names;
mod proc;
mod stats;
mod workload;

use std::{borrow::Cow, net::IpAddr};

use names::*;

use super::{
    fields::{FieldClass, FieldId},
    source::{EventType, FieldArg, FieldValue, ResolvedField},
};
use crate::{context::runtime::Mount, event::EventKind};

const AT_FDCWD: i64 = -100;

/// Declares the keys of one JSON object the fields read; the JSON source resolves them
/// once per event into a fixed array (so a field read is an index, not a map lookup).
macro_rules! keys {
    ($name:ident, $doc:literal { $($k:ident),* $(,)? }) => {
        #[doc = $doc]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($k,)* }

        impl $name {
            pub const N: usize = [$(stringify!($k)),*].len();

            pub fn of(key: &str) -> Option<$name> {
                match key {
                    $(stringify!($k) => Some($name::$k),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$k => stringify!($k),)*
                }
            }
        }
    };
}

keys!(T, "Top-level keys." { address, address_names, ancestors, args, backlog, boot_ns, child_pid, cmd, comm, container, data, dirfd, domain, error, exe, exit_code, family, fd, filename, flags, gid, hostname, kind, length, linkpath, local_address, local_port, loginuid, mode, name, newfd, newpath, nstype, num, olddirfd, oldpath, path, pid, port, ppid, process, process_start_boot_ns, protocol, request, resolved_linkpath, resolved_name, resolved_newpath, resolved_oldpath, resolved_path, result, server_name, signal, size, sock_type, stats, syscall, workload, target, target_pid, target_uid, tid, time, uargs, uid, unix_path });
keys!(P, "Keys of `process`." { args, cap_effective, cap_inheritable, cap_permitted, cmdline, container_start, cwd, env, exe, exe_from_memfd, exe_sha256, exe_upper_layer, exe_writable, exepath, gid, group, loginname, loginuid, name, pid, ppid, sid, start_boot_ns, tty, uid, user, vpgid, vpid });
keys!(C, "Keys of `container`." { host_ipc, host_network, host_pid, id, image, image_digest, image_id, image_repository, image_tag, labels, mounts, name, pod, privileged, runtime, start_ts, started_at, user });
keys!(W, "Keys of `workload`." { id, kind, name, namespace, learning, new });
keys!(A, "Keys of an entry of `ancestors`." { pid, name, exe, exepath, cmdline });
keys!(Pod, "Keys of `container.pod`." { ip, name, namespace, uid });

/// One value under a key, as JSON would hold it.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw<'a> {
    /// The key is not there.
    Absent,
    Null,
    Str(Cow<'a, str>),
    /// Non-negative integers are always `U64`, negative ones `I64` (as in serde_json).
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// An array or an object.
    Other,
}

impl<'a> Raw<'a> {
    /// An integer, normalised as serde_json stores it.
    pub fn int(n: i64) -> Raw<'a> {
        if n >= 0 {
            Raw::U64(n as u64)
        } else {
            Raw::I64(n)
        }
    }

    pub fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Raw<'a>) -> Raw<'a> {
        v.map_or(Raw::Null, f)
    }

    /// `Absent` and `Null` both mean "no value" for almost every field.
    fn value(self) -> Option<Raw<'a>> {
        match self {
            Raw::Absent | Raw::Null => None,
            v => Some(v),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Raw::U64(n) => i64::try_from(n).ok(),
            Raw::I64(n) => Some(n),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match *self {
            Raw::U64(n) => Some(n),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match *self {
            Raw::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// Which argument list: `process.args`, or the exec event's own `args` (argv,
/// argv[0] included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgList {
    Process,
    Exec,
}

/// An event as JSON-schema keys. Every method answers for one key of the schema of
/// `monitor events`; keys the event lacks are [`Raw::Absent`].
pub trait Record<'a> {
    fn top(&self, k: T) -> Raw<'a>;
    fn process(&self, k: P) -> Raw<'a>;
    fn container(&self, k: C) -> Raw<'a>;
    /// A measure of a container_stats event, by its key in the event JSON's `stats`.
    fn stats(&self, key: &str) -> Raw<'a>;
    /// A key of the event's workload (learned profiles).
    fn workload(&self, k: W) -> Raw<'a>;
    /// A key of `container.pod`.
    fn pod(&self, k: Pod) -> Raw<'a>;
    /// `container.labels[key]`.
    fn label(&self, key: &str) -> Raw<'a>;
    /// `container.pod.labels[key]`.
    fn pod_label(&self, key: &str) -> Raw<'a>;
    /// Every label of the container (`pod: false`) or of its pod, as (key, value);
    /// `None` when the event has no such object.
    fn all_labels(&self, pod: bool) -> Option<Vec<(&'a str, &'a str)>>;
    /// A key of `ancestors[depth - 1]` (depth 1 is the parent).
    fn ancestor(&self, depth: usize, k: A) -> Raw<'a>;
    /// The length of `ancestors`, `None` when the event has no such array.
    fn ancestor_count(&self) -> Option<usize>;
    /// The string items of an argument list (for `Exec` without argv[0]) joined by
    /// spaces, and how many there are; `None` when the list is not there.
    fn args(&self, list: ArgList) -> Option<(usize, Cow<'a, str>)>;
    /// argv[0] of the exec event's `args`.
    fn exec_argv0(&self) -> Raw<'a>;
    /// The value of one variable of `process.env`.
    fn env_var(&self, name: &str) -> Raw<'a>;
    /// The container's mounts.
    fn mounts(&self) -> Cow<'a, [Mount]>;
    /// The DNS name of an address of the event (see `context::dns`).
    fn ip_name(&self, ip: IpAddr) -> Raw<'a>;
    /// The bytes a `send*`/`recv*` moved (`data`, which the JSON holds as text).
    fn data(&self) -> Option<Cow<'a, [u8]>> {
        Some(Cow::Owned(crate::output::escape::text_to_bytes(
            self.top(T::data).as_str()?,
        )))
    }
    /// `top(T::address)` as an address.
    fn address(&self) -> Option<IpAddr> {
        self.top(T::address).as_str()?.parse().ok()
    }
    /// `top(T::local_address)` as an address.
    fn local_address(&self) -> Option<IpAddr> {
        self.top(T::local_address).as_str()?.parse().ok()
    }
}

/// An event ready for evaluation: a [`Record`] with its `evt.type` and the values
/// most fields derive from, worked out once.
#[derive(Debug, Clone, Copy)]
pub struct EventView<R> {
    pub(crate) record: R,
    etype: EventType,
    result: Option<i64>,
    flags: Option<u64>,
}

impl<'a, R: Record<'a>> EventView<R> {
    pub(crate) fn from_record(record: R, etype: EventType) -> Self {
        let mut ev = EventView {
            record,
            etype,
            result: None,
            flags: None,
        };
        ev.result = ev.compute_result();
        ev.flags = ev.compute_open_flags();
        ev
    }

    pub fn etype(&self) -> EventType {
        self.etype
    }

    fn get(&self, k: T) -> Option<Raw<'a>> {
        self.record.top(k).value()
    }

    fn process(&self, k: P) -> Option<Raw<'a>> {
        self.record.process(k).value()
    }

    fn container(&self, k: C) -> Option<Raw<'a>> {
        self.record.container(k).value()
    }

    fn ancestor(&self, depth: usize, k: A) -> Option<Raw<'a>> {
        if depth == 0 {
            return None;
        }
        self.record.ancestor(depth, k).value()
    }

    fn num(&self, k: T) -> Option<i64> {
        self.get(k)?.as_i64()
    }

    fn unum(&self, k: T) -> Option<u64> {
        self.get(k)?.as_u64()
    }

    fn text(&self, k: T) -> Option<Cow<'a, str>> {
        self.get(k)?.into_str()
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
        self.etype.kind() == EventKind::Open
    }

    fn is_exec(&self) -> bool {
        self.etype.kind() == EventKind::Exec
    }

    fn open_flags(&self) -> Option<u64> {
        self.flags
    }

    fn compute_open_flags(&self) -> Option<u64> {
        if !self.is_open() {
            return None;
        }
        let f = self.unum(T::flags).unwrap_or(0);
        if self.etype == EventType::Creat && f == 0 {
            return Some(O_CREAT | O_WRONLY | O_TRUNC);
        }
        Some(f)
    }

    fn proc_name(&self) -> Option<Cow<'a, str>> {
        match self.process(P::name) {
            Some(v) => v.into_str(),
            None => self.text(T::comm),
        }
    }

    /// argv after argv[0] joined, and how many: from the context or the exec event.
    fn args_list(&self) -> Option<(usize, Cow<'a, str>)> {
        if let Some(a) = self.record.args(ArgList::Process) {
            return Some(a);
        }
        if self.is_exec() {
            return self.record.args(ArgList::Exec);
        }
        None
    }

    fn family(&self) -> Option<Raw<'a>> {
        self.get(T::family)
    }

    /// The events whose fd is a socket the event describes: a connect, and a `dup*`,
    /// `listen`, `accept*`, `send*` or `recv*` of a socket.
    fn is_socket(&self) -> bool {
        match self.etype {
            EventType::Connect => true,
            EventType::Dup
            | EventType::Dup2
            | EventType::Dup3
            | EventType::Listen
            | EventType::Accept
            | EventType::Accept4 => self.family().is_some(),
            t => t.moves_data() && self.family().is_some(),
        }
    }

    /// Is the socket's remote end the client? An accepted connection's peer is; for
    /// traffic on a socket the event does not say how it was made, so the end whose
    /// port is in the kernel's ephemeral range (and the other's not) is taken for the
    /// client, as a server's clients' ports are.
    fn remote_is_client(&self) -> bool {
        match self.etype {
            EventType::Accept | EventType::Accept4 => true,
            t if t.moves_data() => {
                let ephemeral = |p: Option<i64>| p.is_some_and(|p| p >= EPHEMERAL_PORTS_START);
                ephemeral(self.num(T::port)) && !ephemeral(self.num(T::local_port))
            }
            _ => false,
        }
    }

    /// One end of the socket: the local one, or the remote one.
    fn end(&self, local: bool) -> (Option<IpAddr>, Option<i64>) {
        if local {
            (self.record.local_address(), self.num(T::local_port))
        } else {
            (self.record.address(), self.num(T::port))
        }
    }

    /// The client's end (`client`) or the server's: a listening socket has only a
    /// server end, its own.
    fn role_end(&self, client: bool) -> (Option<IpAddr>, Option<i64>) {
        if self.etype == EventType::Listen {
            return if client { (None, None) } else { self.end(true) };
        }
        self.end(client != self.remote_is_client())
    }

    fn is_ip(&self) -> bool {
        matches!(
            self.family().as_ref().and_then(Raw::as_str),
            Some("inet" | "inet6")
        )
    }

    fn fd_name(&self) -> Option<Cow<'a, str>> {
        if self.is_open() {
            // Falco's fd.name: an absolute path as the caller gave it, normalized (not
            // resolved through symlinks; the kernel filter judges these bytes).
            let given = self.text(T::path).filter(|p| !p.is_empty());
            if let Some(p) = given.as_ref().filter(|p| p.starts_with('/')) {
                return Some(normalized(p.clone()));
            }
            // A relative one as the kernel resolved it (and an open no syscall made).
            if let Some(p) = self.text(T::resolved_path) {
                return Some(p);
            }
            let path = given?;
            let dirfd = self.num(T::dirfd).unwrap_or(AT_FDCWD);
            if dirfd == AT_FDCWD
                && let Some(cwd) = self.process(P::cwd)
                && let Some(cwd) = cwd.as_str()
            {
                return Some(Cow::Owned(normalize(&format!("{cwd}/{path}"))));
            }
            return Some(path);
        }
        if self.etype == EventType::Connect && !self.is_ip() {
            return self.text(T::unix_path);
        }
        if self.etype == EventType::Connect && self.get(T::local_address).is_none() {
            // The socket had no address of its own to report (a refused connect).
            let addr = self.text(T::address)?;
            let port = self.num(T::port)?;
            return Some(Cow::Owned(format!("{addr}:{port}")));
        }
        if self.is_socket() && !self.is_ip() {
            return self.text(T::unix_path);
        }
        if self.is_socket() && self.is_ip() {
            if self.etype == EventType::Listen {
                // A listening socket is named by the address it is bound to.
                let (addr, port) = self.end(true);
                return Some(Cow::Owned(format!("{}:{}", addr?, port?)));
            }
            // Falco's tuple: the client's end first, then the server's.
            let (client, client_port) = self.role_end(true);
            let (server, server_port) = self.role_end(false);
            return Some(Cow::Owned(format!(
                "{}:{}->{}:{}",
                client?, client_port?, server?, server_port?
            )));
        }
        None
    }

    /// The address of an end of the socket (see [`Self::end`], [`Self::role_end`]).
    fn ip_of(&self, (addr, _): (Option<IpAddr>, Option<i64>)) -> FieldValue<'a> {
        if !self.is_socket() || !self.is_ip() {
            return FieldValue::None;
        }
        match addr {
            Some(ip) => FieldValue::Ip(ip),
            None => FieldValue::None,
        }
    }

    fn port_of(&self, (_, port): (Option<IpAddr>, Option<i64>)) -> FieldValue<'a> {
        if !self.is_socket() || !self.is_ip() {
            return FieldValue::None;
        }
        match port {
            Some(p) => FieldValue::U64(p as u64),
            None => FieldValue::None,
        }
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
            EventType::Ptrace => &["res", "addr", "data", "request", "pid"],
            EventType::Symlink => &["res", "target", "linkpath"],
            EventType::Symlinkat => &["res", "target", "newdirfd", "linkpath"],
            EventType::Link => &["res", "oldpath", "newpath"],
            EventType::Linkat => &["res", "olddir", "oldpath", "newdir", "newpath", "flags"],
            EventType::InitModule => &["res", "length", "uargs"],
            EventType::FinitModule => &["res", "fd", "uargs", "flags"],
            EventType::Socket => &["fd", "domain", "type", "proto"],
            EventType::Dup => &["res", "oldfd"],
            EventType::Dup2 => &["res", "oldfd", "newfd"],
            EventType::Dup3 => &["res", "oldfd", "newfd", "flags"],
            EventType::Setns => &["res", "fd", "nstype"],
            EventType::Unshare => &["res", "flags"],
            EventType::Setuid => &["res", "uid"],
            EventType::Chmod => &["res", "filename", "mode"],
            EventType::Fchmod => &["res", "fd", "mode"],
            EventType::Fchmodat => &["res", "dirfd", "filename", "mode"],
            EventType::Bpf => &["fd", "cmd"],
            EventType::Unlink | EventType::Rmdir => &["res", "path"],
            EventType::Unlinkat => &["res", "dirfd", "name", "flags"],
            EventType::Mkdir => &["res", "path", "mode"],
            EventType::Mkdirat => &["res", "dirfd", "path", "mode"],
            EventType::Rename => &["res", "oldpath", "newpath"],
            EventType::Renameat => &["res", "olddirfd", "oldpath", "newdirfd", "newpath"],
            EventType::Renameat2 => &["res", "olddirfd", "oldpath", "newdirfd", "newpath", "flags"],
            EventType::Userfaultfd => &["res", "flags"],
            EventType::MemfdCreate => &["fd", "name", "flags"],
            EventType::Listen => &["res", "fd", "backlog"],
            EventType::Accept => &["fd", "tuple", "queuepct", "queuelen", "queuemax"],
            EventType::Accept4 => &["fd", "tuple", "queuepct", "queuelen", "queuemax", "flags"],
            EventType::Sendto | EventType::Sendmsg => &["res", "data", "fd", "size", "tuple"],
            EventType::Recvfrom => &["res", "data", "tuple", "fd", "size"],
            EventType::Recvmsg => &["res", "size", "data", "tuple", "msgcontrol", "fd"],
            EventType::ContainerStats => &[],
        }
    }

    fn arg(&self, name: &str) -> FieldValue<'a> {
        let owned = |s: String| FieldValue::Str(Cow::Owned(s));
        let num = |n: Option<i64>| match n {
            Some(n) => owned(n.to_string()),
            None => FieldValue::None,
        };
        match (self.etype.kind(), name) {
            (_, "res") | (EventKind::Open, "fd") => num(self.result()),
            (EventKind::Open, "name" | "path" | "pathname") => str_v(self.get(T::path)),
            (EventKind::Open, "flags") => match self.open_flags() {
                // Tagged apart from the flag tables' keys, which are addresses.
                Some(f) => rendered_once((0, f), || render_open_flags(f)),
                None => FieldValue::None,
            },
            (EventKind::Open, "mode") => match self.unum(T::mode) {
                Some(m) => owned(format!("0{m:o}")),
                None => FieldValue::None,
            },
            (EventKind::Open | EventKind::Exec, "dirfd") => num(self.num(T::dirfd)),
            (EventKind::Exec, "exe") => self.field_id(FieldId::ProcExe),
            (EventKind::Exec, "args") => self.field_id(FieldId::ProcArgs),
            (EventKind::Exec, "filename" | "pathname") => {
                str_v(self.get(T::exe).or_else(|| self.get(T::filename)))
            }
            (EventKind::Exec, "flags") => {
                let upper = self.process(P::exe_upper_layer).and_then(|v| v.as_bool());
                let memfd = self.memfd();
                let writable = self.process(P::exe_writable).and_then(|v| v.as_bool());
                if upper.is_none() && memfd.is_none() && writable.is_none() {
                    return FieldValue::None;
                }
                let mut parts = Vec::new();
                if writable == Some(true) {
                    parts.push("EXE_WRITABLE");
                }
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
            (EventKind::Connect, "fd") => num(self.num(T::fd)),
            (EventKind::Connect, "tuple" | "addr") => match self.fd_name() {
                Some(n) => FieldValue::Str(n),
                None => FieldValue::None,
            },
            (EventKind::Exit, "status") => num(self.num(T::exit_code)),
            (EventKind::Exit, "sig") => num(self.num(T::signal)),
            (EventKind::Syscall, _) => self.syscall_arg(name),
            _ => FieldValue::None,
        }
    }

    /// An argument of one of the other syscalls, as Falco renders it.
    fn syscall_arg(&self, name: &str) -> FieldValue<'a> {
        let num = |k: T| match self.num(k) {
            Some(n) => FieldValue::Str(Cow::Owned(n.to_string())),
            None => FieldValue::None,
        };
        let named = |k: T, names: fn(u64) -> Option<&'static str>| match self.unum(k) {
            Some(n) => FieldValue::Str(match names(n) {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(n.to_string()),
            }),
            None => FieldValue::None,
        };
        // A path argument as Falco compares it: resolved when it was relative.
        let path = |k: T, resolved: T| str_v(self.get(resolved).or_else(|| self.get(k)));
        match (self.etype, name) {
            (EventType::Socket | EventType::MemfdCreate, "fd")
            | (EventType::Accept | EventType::Accept4, "fd") => match self.result() {
                Some(n) => FieldValue::Str(Cow::Owned(n.to_string())),
                None => FieldValue::None,
            },
            (EventType::Socket, "domain") => named(T::domain, socket_family_name),
            (EventType::Socket, "type") => num(T::sock_type),
            (EventType::Socket, "proto") => num(T::protocol),
            (EventType::Ptrace, "request") => named(T::request, ptrace_request_name),
            (EventType::Ptrace, "pid") => num(T::target_pid),
            (EventType::Ptrace, "addr" | "data") => FieldValue::None,
            (EventType::Setns, "nstype") => flags_v(self.unum(T::nstype), CLONE_NAMESPACES),
            (EventType::Unshare, "flags") => flags_v(self.unum(T::flags), CLONE_NAMESPACES),
            (EventType::Setuid, "uid") => num(T::target_uid),
            (EventType::Chmod | EventType::Fchmod | EventType::Fchmodat, "mode") => {
                flags_v(self.unum(T::mode), MODE_BITS)
            }
            (EventType::Chmod | EventType::Fchmodat, "filename") => path(T::path, T::resolved_path),
            (EventType::Mkdir | EventType::Mkdirat, "mode") => match self.unum(T::mode) {
                Some(m) => FieldValue::Str(Cow::Owned(format!("{m:X}"))),
                None => FieldValue::None,
            },
            (EventType::Unlinkat, "flags") => flags_v(self.unum(T::flags), UNLINKAT_FLAGS),
            (EventType::Renameat2, "flags") => flags_v(self.unum(T::flags), RENAMEAT2_FLAGS),
            (EventType::MemfdCreate, "flags") => flags_v(self.unum(T::flags), MEMFD_FLAGS),
            (EventType::Userfaultfd, "flags") => match self.unum(T::flags) {
                Some(f) => FieldValue::Str(Cow::Owned(render_open_flags(f))),
                None => FieldValue::None,
            },
            (EventType::Accept4, "flags") => match self.unum(T::flags) {
                Some(f) => FieldValue::Str(Cow::Owned(format!("{f:X}"))),
                None => FieldValue::None,
            },
            (EventType::MemfdCreate, "name") => str_v(self.get(T::name)),
            (_, "name") => path(T::name, T::resolved_name),
            (_, "path") => path(T::path, T::resolved_path),
            (_, "backlog") => num(T::backlog),
            (EventType::Recvmsg | EventType::Sendmsg, "size") => match self.result() {
                Some(n) if n >= 0 => FieldValue::Str(Cow::Owned(n.to_string())),
                _ => FieldValue::None,
            },
            (_, "size") => num(T::size),
            (_, "data") => str_v(self.get(T::data)),
            (_, "tuple") => match self.fd_name() {
                Some(n) => FieldValue::Str(n),
                None => FieldValue::None,
            },
            (_, "olddirfd") => num(T::olddirfd),
            (EventType::Fchmodat, "dirfd") => num(T::dirfd),
            (EventType::Bpf, "fd") => match self.result() {
                Some(n) => FieldValue::Str(Cow::Owned(n.to_string())),
                None => FieldValue::None,
            },
            (EventType::Bpf, "cmd") => named(T::cmd, bpf_cmd_name),
            (_, "target") => str_v(self.get(T::target)),
            (_, "linkpath") => path(T::linkpath, T::resolved_linkpath),
            (_, "oldpath") => path(T::oldpath, T::resolved_oldpath),
            (_, "newpath") => path(T::newpath, T::resolved_newpath),
            (_, "newdirfd" | "newdir") => num(T::dirfd),
            (_, "olddir") => num(T::olddirfd),
            (_, "length") => num(T::length),
            (_, "uargs") => str_v(self.get(T::uargs)),
            (_, "fd" | "oldfd") => num(T::fd),
            (_, "newfd") => num(T::newfd),
            (_, "flags") => num(T::flags),
            _ => FieldValue::None,
        }
    }

    fn memfd(&self) -> Option<bool> {
        if let Some(b) = self.process(P::exe_from_memfd).and_then(|v| v.as_bool()) {
            return Some(b);
        }
        let p = self.process(P::exepath).or_else(|| self.get(T::exe))?;
        let p = p.as_str()?;
        Some(p.starts_with("memfd:") || p.starts_with("/memfd:"))
    }

    fn field_id(&self, id: FieldId) -> FieldValue<'a> {
        self.value(&ResolvedField {
            id,
            arg: FieldArg::None,
        })
    }

    fn pid(&self) -> Option<Raw<'a>> {
        self.process(P::pid).or_else(|| self.get(T::pid))
    }

    /// The value of one field.
    pub fn value(&self, f: &ResolvedField) -> FieldValue<'a> {
        match f.id.class() {
            FieldClass::Evt => self.evt_value(f),
            FieldClass::Proc => self.proc_value(f),
            FieldClass::Fd => self.fd_value(f),
            FieldClass::Container => self.container_value(f),
            FieldClass::Stats => self.stats_value(f),
            FieldClass::K8s => self.k8s_value(f),
            FieldClass::Workload => self.workload_value(f),
        }
    }
}

/// Implements [`FieldSource`] for `EventView<$record<'a>>` (per record type: only a
/// concrete type tells the compiler that its borrows outlive the view's).
macro_rules! field_source {
    ($record:ident) => {
        impl<'a> $crate::rules::FieldSource
            for $crate::rules::event_fields::EventView<$record<'a>>
        {
            fn event_type(&self) -> $crate::rules::EventType {
                self.etype()
            }

            fn field(&self, field: &$crate::rules::ResolvedField) -> $crate::rules::FieldValue<'_> {
                self.value(field)
            }
        }
    };
}
pub(crate) use field_source;

/// A string field: strings as they are, numbers and booleans as text.
fn str_v(v: Option<Raw<'_>>) -> FieldValue<'_> {
    match v {
        Some(Raw::Str(s)) => FieldValue::Str(s),
        Some(Raw::U64(n)) => FieldValue::Str(Cow::Owned(n.to_string())),
        Some(Raw::I64(n)) => FieldValue::Str(Cow::Owned(n.to_string())),
        Some(Raw::F64(n)) => match serde_json::Number::from_f64(n) {
            Some(n) => FieldValue::Str(Cow::Owned(n.to_string())),
            None => FieldValue::None,
        },
        Some(Raw::Bool(b)) => FieldValue::Str(Cow::Borrowed(if b { "true" } else { "false" })),
        _ => FieldValue::None,
    }
}

fn str_c(s: Option<Cow<'_, str>>) -> FieldValue<'_> {
    match s {
        Some(s) => FieldValue::Str(s),
        None => FieldValue::None,
    }
}

fn i64v(v: Option<Raw<'_>>) -> FieldValue<'static> {
    opt_i64(v.and_then(|v| v.as_i64()))
}

fn opt_i64(v: Option<i64>) -> FieldValue<'static> {
    match v {
        Some(n) => FieldValue::I64(n),
        None => FieldValue::None,
    }
}

fn u64v(v: Option<Raw<'_>>) -> FieldValue<'static> {
    match v.and_then(|v| v.as_u64()) {
        Some(n) => FieldValue::U64(n),
        None => FieldValue::None,
    }
}

fn opt_bool(v: Option<Raw<'_>>) -> FieldValue<'static> {
    match v.and_then(|v| v.as_bool()) {
        Some(b) => FieldValue::Bool(b),
        None => FieldValue::None,
    }
}

const O_WRONLY: u64 = 0o1;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_DIRECTORY: u64 = 0o200000;

/// The lowest port of Linux's default ephemeral range (`ip_local_port_range`).
const EPHEMERAL_PORTS_START: i64 = 32768;

/// The value of `name` among `NAME=value` entries.
pub fn env_value<'e, I: IntoIterator<Item = &'e [u8]>>(entries: I, name: &str) -> Option<&'e [u8]> {
    entries.into_iter().find_map(|e| {
        e.strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// The first 12 characters of a container id (`host` is shorter and stays whole).
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Flag bits rendered as Falco renders them: the names of the set bits joined by `|`
/// (0 when none is set).
fn flags_v(value: Option<u64>, names: &'static [(u64, &'static str)]) -> FieldValue<'static> {
    let Some(value) = value else {
        return FieldValue::None;
    };
    rendered_once((names.as_ptr() as usize, value), || {
        let set: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| value & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            "0".to_string()
        } else {
            set.join("|")
        }
    })
}

/// The text of a flags value, rendered once per (table, value): rules test flags on
/// every open (`evt.arg.flags contains O_TRUNC`), and programs use few combinations,
/// so the hot path allocates nothing. Past `KEPT` distinct renderings (a program
/// feeding endless combinations) a fresh string is made each time, never unbounded
/// memory.
fn rendered_once(key: (usize, u64), render: impl FnOnce() -> String) -> FieldValue<'static> {
    const KEPT: usize = 4096;
    thread_local! {
        static RENDERED: std::cell::RefCell<std::collections::HashMap<(usize, u64), &'static str>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    if let Some(text) = RENDERED.with(|r| r.borrow().get(&key).copied()) {
        return FieldValue::Str(Cow::Borrowed(text));
    }
    let text = render();
    RENDERED.with(|r| {
        let mut rendered = r.borrow_mut();
        if rendered.len() < KEPT {
            let kept: &'static str = Box::leak(text.into_boxed_str());
            rendered.insert(key, kept);
            FieldValue::Str(Cow::Borrowed(kept))
        } else {
            FieldValue::Str(Cow::Owned(text))
        }
    })
}

/// Does a mount's source (or destination) match a `container.mount.*[key]` key, as
/// Falco's container plugin matches it (an unanchored regular expression; an invalid
/// one is taken literally)? Compiled keys are kept: a rule's keys are few and fixed.
fn mount_key_matches(key: &str, value: &str) -> bool {
    use std::{cell::RefCell, collections::HashMap};
    thread_local! {
        static KEYS: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::default();
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() > 1024 {
            keys.clear();
        }
        let re = keys
            .entry(key.to_string())
            .or_insert_with(|| regex::Regex::new(key).ok());
        match re {
            Some(re) => re.is_match(value),
            None => value.contains(key),
        }
    })
}

/// Resolves `.` and `..` in an absolute path without touching the filesystem.
/// `path` normalized, without a copy when it already is.
fn normalized(path: Cow<'_, str>) -> Cow<'_, str> {
    if monitor_common::filter::path_needs_agent(path.as_bytes()) {
        Cow::Owned(normalize(&path))
    } else {
        path
    }
}

fn normalize(path: &str) -> String {
    String::from_utf8_lossy(&crate::event::normalize_path(path.as_bytes())).into_owned()
}

/// Falco's form of a label set: `key:value` pairs joined by `, `, a label without a
/// value as its key alone, Kubernetes' own `io.kubernetes.*` bookkeeping left out.
fn labels_value(labels: Option<Vec<(&str, &str)>>) -> FieldValue<'static> {
    let Some(mut labels) = labels else {
        return FieldValue::None;
    };
    labels.sort_unstable();
    let shown: Vec<String> = labels
        .into_iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes.") && !k.starts_with("annotation."))
        .map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k}:{v}")
            }
        })
        .collect();
    FieldValue::Str(Cow::Owned(shown.join(", ")))
}
