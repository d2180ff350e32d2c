//! `monitor events` output: one JSON object per line. The field names are the
//! documented schema (README, "Event JSON").
use serde::{
    Serialize, Serializer,
    ser::{SerializeMap, SerializeSeq},
};

use std::{collections::BTreeMap, net::IpAddr};

use super::escape::bytes_to_text;
use crate::{
    capabilities,
    clock::BootClock,
    context::{ContainerContext, EnrichedEvent, dns, process::ProcessInfo},
    event::{
        ArgValue, Connect, Detail, Event, Exec, Exit, Fork, Open, Slot, SockAddr, SocketFamily,
        SyscallDetail, syscall_args,
    },
};

/// An event as JSON, with its wall-clock time.
pub struct EventJson<'a> {
    pub event: &'a Event,
    pub clock: &'a BootClock,
}

/// An event with its process, ancestry and container context as JSON.
pub struct EnrichedJson<'a> {
    pub enriched: &'a EnrichedEvent,
    pub clock: &'a BootClock,
}

/// Bytes from the watched system, as escaped text.
struct Text<'a>(&'a [u8]);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&bytes_to_text(self.0))
    }
}

struct TextList<'a>(&'a [Vec<u8>]);

impl Serialize for TextList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Text(item))?;
        }
        seq.end()
    }
}

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        event_fields(&mut map, self.event, self.clock)?;
        map.end()
    }
}

impl Serialize for EnrichedJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.enriched;
        let mut map = s.serialize_map(None)?;
        event_fields(&mut map, &e.event, self.clock)?;
        map.serialize_entry(
            "process",
            &e.process.as_deref().map(|p| ProcessJson {
                process: p,
                exe_sha256: e.exe_sha256.as_deref(),
            }),
        )?;
        let ancestors: Vec<AncestorJson> = e.ancestors.iter().map(|p| AncestorJson(p)).collect();
        map.serialize_entry("ancestors", &ancestors)?;
        map.serialize_entry("container", &ContainerJson(&e.container))?;
        if let Some(w) = &e.workload {
            map.serialize_entry(
                "workload",
                &serde_json::json!({
                    "id": w.id.to_string(),
                    "kind": w.id.kind.as_str(),
                    "name": w.id.name,
                    "namespace": w.id.namespace,
                    "learning": w.learning,
                    "new": w.new,
                }),
            )?;
        }
        map.end()
    }
}

struct ProcessJson<'a> {
    process: &'a ProcessInfo,
    exe_sha256: Option<&'a str>,
}

impl Serialize for ProcessJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.process;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("pid", &p.pid)?;
        map.serialize_entry("ppid", &p.ppid)?;
        map.serialize_entry("name", &Text(&p.name))?;
        map.serialize_entry("exe", &Text(&p.exe))?;
        map.serialize_entry("exepath", &Text(&p.exepath))?;
        map.serialize_entry("args", &TextList(&p.args))?;
        map.serialize_entry("cmdline", &Text(&p.cmdline))?;
        map.serialize_entry("cwd", &p.cwd.as_deref().map(Text))?;
        map.serialize_entry("tty", &p.tty)?;
        map.serialize_entry("sid", &p.sid)?;
        map.serialize_entry("vpid", &p.vpid)?;
        map.serialize_entry("vpgid", &(p.vpgid != 0).then_some(p.vpgid))?;
        map.serialize_entry("uid", &p.uid)?;
        map.serialize_entry("user", &p.user.as_deref())?;
        map.serialize_entry("gid", &p.gid)?;
        map.serialize_entry("group", &p.group.as_deref())?;
        map.serialize_entry("euid", &p.euid)?;
        map.serialize_entry("loginuid", &p.loginuid)?;
        map.serialize_entry("exec_id", &*p.exec_id)?;
        map.serialize_entry("parent_exec_id", &p.parent_exec_id.as_deref())?;
        map.serialize_entry("start_boot_ns", &p.start_boot_ns)?;
        map.serialize_entry("exe_sha256", &self.exe_sha256)?;
        if p.container_start {
            map.serialize_entry("container_start", &true)?;
        }
        if let Some(c) = &p.capabilities {
            map.serialize_entry("cap_effective", &capabilities::names(c.effective))?;
            map.serialize_entry("cap_permitted", &capabilities::names(c.permitted))?;
            map.serialize_entry("cap_inheritable", &capabilities::names(c.inheritable))?;
        }
        if let Some(f) = &p.exe_facts {
            map.serialize_entry("exe_upper_layer", &f.upper_layer)?;
            map.serialize_entry("exe_from_memfd", &f.from_memfd)?;
            map.serialize_entry("exe_writable", &f.writable)?;
        }
        map.end()
    }
}

struct AncestorJson<'a>(&'a ProcessInfo);

impl Serialize for AncestorJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("pid", &p.pid)?;
        map.serialize_entry("name", &Text(&p.name))?;
        map.serialize_entry("exe", &Text(&p.exe))?;
        map.serialize_entry("exepath", &Text(&p.exepath))?;
        map.serialize_entry("cmdline", &Text(&p.cmdline))?;
        map.serialize_entry("exec_id", &*p.exec_id)?;
        map.end()
    }
}

struct ContainerJson<'a>(&'a ContainerContext);

impl Serialize for ContainerJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &*c.id)?;
        if c.is_host() {
            map.serialize_entry("name", "host")?;
            return map.end();
        }
        map.serialize_entry("short_id", &c.id.get(..12))?;
        map.serialize_entry("runtime", &c.runtime.map(|r| r.name()))?;
        let Some(m) = c.meta.as_deref() else {
            map.serialize_entry("name", &None::<&str>)?;
            return map.end();
        };
        map.serialize_entry("name", &m.name)?;
        map.serialize_entry("image", &m.image)?;
        map.serialize_entry("image_repository", &m.image_repository)?;
        map.serialize_entry("image_tag", &m.image_tag)?;
        map.serialize_entry("image_digest", &m.image_digest)?;
        map.serialize_entry("image_id", &m.image_id)?;
        map.serialize_entry("labels", &m.labels)?;
        map.serialize_entry("privileged", &m.privileged)?;
        map.serialize_entry("host_pid", &m.host_pid)?;
        map.serialize_entry("host_network", &m.host_network)?;
        map.serialize_entry("host_ipc", &m.host_ipc)?;
        map.serialize_entry("user", &m.user)?;
        map.serialize_entry("cap_add", &m.cap_add)?;
        map.serialize_entry("cap_drop", &m.cap_drop)?;
        map.serialize_entry("network_mode", &m.network_mode)?;
        map.serialize_entry("mounts", &m.mounts)?;
        map.serialize_entry("started_at", &m.started_at)?;
        map.serialize_entry("pod", &m.pod)?;
        map.end()
    }
}

fn event_fields<M: SerializeMap>(
    map: &mut M,
    e: &Event,
    clock: &BootClock,
) -> Result<(), M::Error> {
    map.serialize_entry("kind", e.kind().name())?;
    let time = humantime::format_rfc3339_nanos(clock.wall_time(e.boot_ns));
    map.serialize_entry("time", &time.to_string())?;
    map.serialize_entry("boot_ns", &e.boot_ns)?;
    map.serialize_entry("pid", &e.pid)?;
    map.serialize_entry("tid", &e.tid)?;
    map.serialize_entry("comm", &Text(&e.comm))?;
    map.serialize_entry("cgroup_id", &e.cgroup_id)?;
    map.serialize_entry("hook", e.hook())?;
    match &e.detail {
        Detail::Exec(x) => exec_fields(map, x),
        Detail::Fork(x) => fork_fields(map, x),
        Detail::Exit(x) => exit_fields(map, x),
        Detail::Connect(x) => connect_fields(map, x),
        Detail::Open(x) => open_fields(map, x),
        Detail::Syscall(x) => syscall_fields(map, x),
        Detail::ContainerStats(x) => {
            let stats: serde_json::Map<String, serde_json::Value> = x
                .entries()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.into()))
                .collect();
            map.serialize_entry("stats", &stats)
        }
    }
}

fn exec_fields<M: SerializeMap>(map: &mut M, x: &Exec) -> Result<(), M::Error> {
    let c = &x.credentials;
    map.serialize_entry("ppid", &c.ppid)?;
    map.serialize_entry("uid", &c.uid)?;
    map.serialize_entry("gid", &c.gid)?;
    map.serialize_entry("euid", &c.euid)?;
    map.serialize_entry("egid", &c.egid)?;
    map.serialize_entry("loginuid", &c.loginuid)?;
    map.serialize_entry("process_start_boot_ns", &c.process_start_boot_ns)?;
    map.serialize_entry("vpid", &c.vpid)?;
    map.serialize_entry("vpgid", &c.vpgid)?;
    map.serialize_entry("syscall", x.syscall.as_str())?;
    map.serialize_entry("result", &x.result)?;
    map.serialize_entry("error", &errno_name(x.result))?;
    map.serialize_entry("exe", &x.exe.as_deref().map(Text))?;
    map.serialize_entry("exe_truncated", &x.exe_truncated)?;
    map.serialize_entry("filename", &x.filename.as_deref().map(Text))?;
    map.serialize_entry("filename_truncated", &x.filename_truncated)?;
    map.serialize_entry(
        "resolved_filename",
        &x.resolved_filename.as_deref().map(Text),
    )?;
    map.serialize_entry(
        "resolved_filename_truncated",
        &x.resolved_filename_truncated,
    )?;
    map.serialize_entry("args", &TextList(&x.args))?;
    map.serialize_entry("args_truncated", &x.args_truncated)?;
    map.serialize_entry("dirfd", &x.dirfd)?;
    map.serialize_entry("at_flags", &x.at_flags)?;
    map.serialize_entry("cgroup_name", &Text(&x.cgroup_name))
}

fn fork_fields<M: SerializeMap>(map: &mut M, x: &Fork) -> Result<(), M::Error> {
    map.serialize_entry("child_pid", &x.child_pid)?;
    map.serialize_entry("child_tid", &x.child_tid)?;
    map.serialize_entry("child_start_boot_ns", &x.child_start_boot_ns)?;
    map.serialize_entry("child_vpid", &x.child_vpid)?;
    map.serialize_entry("ppid", &x.parent_ppid)
}

fn exit_fields<M: SerializeMap>(map: &mut M, x: &Exit) -> Result<(), M::Error> {
    map.serialize_entry("exit_code", &x.exit_code)?;
    map.serialize_entry("signal", &x.signal)?;
    map.serialize_entry("core_dumped", &x.core_dumped)?;
    map.serialize_entry("ppid", &x.ppid)?;
    map.serialize_entry("process_start_boot_ns", &x.process_start_boot_ns)
}

fn connect_fields<M: SerializeMap>(map: &mut M, x: &Connect) -> Result<(), M::Error> {
    map.serialize_entry("fd", &x.fd)?;
    family_entry(map, x.family)?;
    map.serialize_entry("sock_type", &sock_type_name(x.sock_type))?;
    map.serialize_entry("address", &x.address.map(|a| a.to_string()))?;
    map.serialize_entry("port", &x.port)?;
    map.serialize_entry("local_address", &x.local.map(|(a, _)| a.to_string()))?;
    map.serialize_entry("local_port", &x.local.map(|(_, p)| p))?;
    map.serialize_entry("unix_path", &x.unix_path.as_deref().map(Text))?;
    map.serialize_entry("result", &x.result)?;
    map.serialize_entry("error", &errno_name(x.result))?;
    address_names(map, [x.address, x.local.map(|(a, _)| a)])?;
    map.serialize_entry("uid", &x.uid)
}

/// `address_names`: the DNS names the agent knows the addresses by (see
/// `context::dns`), when it knows any.
fn address_names<M: SerializeMap>(map: &mut M, ips: [Option<IpAddr>; 2]) -> Result<(), M::Error> {
    let names: BTreeMap<String, String> = ips
        .into_iter()
        .flatten()
        .filter_map(|ip| Some((ip.to_string(), dns::name_of(ip)?.to_string())))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    map.serialize_entry("address_names", &names)
}

fn open_fields<M: SerializeMap>(map: &mut M, x: &Open) -> Result<(), M::Error> {
    map.serialize_entry("syscall", x.syscall.as_str())?;
    map.serialize_entry("path", &x.enhanced.is_none().then_some(Text(&x.path)))?;
    map.serialize_entry("path_truncated", &x.path_truncated)?;
    map.serialize_entry("resolved_path", &x.resolved.as_deref().map(Text))?;
    map.serialize_entry("resolved_truncated", &x.resolved_truncated)?;
    map.serialize_entry("dirfd", &x.dirfd)?;
    map.serialize_entry("flags", &x.flags)?;
    map.serialize_entry("mode", &x.mode)?;
    map.serialize_entry("result", &x.result)?;
    map.serialize_entry(
        "fd",
        &(x.result >= 0 && x.enhanced.is_none()).then_some(x.result),
    )?;
    map.serialize_entry("error", &errno_name(x.result))?;
    map.serialize_entry("uid", &x.uid)
}

fn family_entry<M: SerializeMap>(map: &mut M, family: SocketFamily) -> Result<(), M::Error> {
    match family_name(family) {
        Some(name) => map.serialize_entry("family", name),
        None => map.serialize_entry("family", &family.raw()),
    }
}

/// The `family` of the event JSON: a name for the families rules look at, else the
/// number.
pub fn family_name(family: SocketFamily) -> Option<&'static str> {
    match family {
        SocketFamily::Unix => Some("unix"),
        SocketFamily::Inet => Some("inet"),
        SocketFamily::Inet6 => Some("inet6"),
        SocketFamily::Other(_) => None,
    }
}

/// The key of a path argument's resolved form (see `SyscallDetail::resolved`).
pub fn resolved_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "path" => "resolved_path",
        "name" => "resolved_name",
        "oldpath" => "resolved_oldpath",
        "newpath" => "resolved_newpath",
        "linkpath" => "resolved_linkpath",
        _ => return None,
    })
}

fn syscall_fields<M: SerializeMap>(map: &mut M, x: &SyscallDetail) -> Result<(), M::Error> {
    map.serialize_entry("syscall", x.syscall.as_str())?;
    map.serialize_entry("result", &x.result)?;
    map.serialize_entry("error", &errno_name(x.result))?;
    map.serialize_entry("uid", &x.uid)?;
    for &(key, slot) in syscall_args(x.syscall) {
        match x.slot(slot) {
            ArgValue::Int(v) => map.serialize_entry(key, &v)?,
            ArgValue::Uint(v) => map.serialize_entry(key, &v)?,
            ArgValue::Text(v) => map.serialize_entry(key, &Text(v))?,
        }
        if let Slot::Path(n) = slot
            && let (Some(resolved), Some(rkey)) = (&x.resolved[n], resolved_key(key))
        {
            map.serialize_entry(rkey, &Text(resolved))?;
        }
    }
    if let Some(s) = &x.socket {
        family_entry(map, s.family)?;
        map.serialize_entry("sock_type", &sock_type_name(s.sock_type))?;
        if let Some((addr, port)) = x.remote() {
            map.serialize_entry("address", &addr.to_string())?;
            map.serialize_entry("port", &port)?;
        }
        if let Some((addr, port)) = s.local {
            map.serialize_entry("local_address", &addr.to_string())?;
            map.serialize_entry("local_port", &port)?;
        }
    }
    if let Some(SockAddr::Unix(path)) = &x.address {
        map.serialize_entry("unix_path", &Text(path))?;
    }
    if let Some(s) = &x.socket {
        address_names(map, [x.remote().map(|(a, _)| a), s.local.map(|(a, _)| a)])?;
    }
    if let Some(data) = &x.data {
        map.serialize_entry("data", &Text(data))?;
    }
    Ok(())
}

/// The symbolic name of a `-errno` result, for the errors security rules look at.
pub fn errno_name(result: i64) -> Option<&'static str> {
    if result >= 0 {
        return None;
    }
    Some(match -result as i32 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::EROFS => "EROFS",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EISCONN => "EISCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ENOSYS => "ENOSYS",
        _ => return None,
    })
}

pub fn sock_type_name(raw: u16) -> Option<&'static str> {
    match raw as i32 {
        libc::SOCK_STREAM => Some("stream"),
        libc::SOCK_DGRAM => Some("dgram"),
        libc::SOCK_RAW => Some("raw"),
        libc::SOCK_SEQPACKET => Some("seqpacket"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, EventType, Open};

    fn open_event(path: &[u8]) -> Event {
        Event {
            boot_ns: 1,
            pid: 2,
            tid: 3,
            cgroup_id: 4,
            comm: b"evil\n\x1b[31m".to_vec(),
            detail: Detail::Open(Open {
                syscall: EventType::Openat,
                enhanced: None,
                path: path.to_vec(),
                path_truncated: false,
                resolved: None,
                resolved_truncated: false,
                dirfd: -100,
                flags: 0,
                mode: 0,
                result: -2,
                uid: 0,
                kernel_verdict: 0,
            }),
        }
    }

    #[test]
    fn hostile_bytes_stay_one_valid_json_line() {
        let clock = BootClock::new();
        let event = open_event(b"/tmp/\xff\"quote\"\nnewline");
        let line = serde_json::to_string(&EventJson {
            event: &event,
            clock: &clock,
        })
        .unwrap();
        assert!(!line.contains('\n'), "raw newline in {line}");
        assert!(!line.contains('\x1b'), "raw escape in {line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["path"], "/tmp/\\xff\"quote\"\nnewline");
        assert_eq!(value["comm"], "evil\n\u{1b}[31m");
        assert_eq!(value["error"], "ENOENT");
        assert_eq!(value["fd"], serde_json::Value::Null);
        assert_eq!(value["resolved_path"], serde_json::Value::Null);
    }
}
