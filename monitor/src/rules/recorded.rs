//! Recorded events (the JSON of `monitor events`, as in rule fixtures) turned back into
//! the agent's own structures, so tests and benchmarks can run the daemon's evaluation
//! path ([`super::LiveEvent`]) on them.
use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use serde_json::Value;

use crate::{
    capabilities,
    context::{
        ContainerContext, EnrichedEvent, WorkloadFacts,
        cgroup::Runtime,
        process::ProcessInfo,
        runtime::{ContainerMeta, Mount, PodInfo},
    },
    event::{
        Capabilities, Connect, ContainerStats, Credentials, Detail, Enhanced, Event, EventKind,
        EventType, ExeFacts, Exec, Exit, Fork, Open, Slot, SockAddr, SocketEnds, SocketFamily,
        SyscallDetail, syscall_args,
    },
    output::{escape::text_to_bytes, event_json::resolved_key},
};

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn bytes(v: &Value, k: &str) -> Option<Vec<u8>> {
    s(v, k).map(|s| s.as_bytes().to_vec())
}

fn n(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn list(v: &Value, k: &str) -> Vec<Vec<u8>> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| s.as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default()
}

/// A process as the table keeps it (`cmdline` = name and arguments).
fn process_info(p: &Value, fallback_pid: i64) -> ProcessInfo {
    let name = bytes(p, "name").unwrap_or_else(|| b"x".to_vec());
    let args = list(p, "args");
    let mut cmdline = name.clone();
    for a in &args {
        cmdline.push(b' ');
        cmdline.extend_from_slice(a);
    }
    ProcessInfo {
        pid: n(p, "pid").unwrap_or(fallback_pid) as u32,
        ppid: n(p, "ppid").unwrap_or(1) as u32,
        exe: bytes(p, "exe").unwrap_or_default(),
        exepath: bytes(p, "exepath").unwrap_or_default(),
        cmdline: s(p, "cmdline")
            .filter(|_| p.get("args").is_none())
            .map_or(cmdline, |c| c.as_bytes().to_vec()),
        name,
        args,
        cwd: bytes(p, "cwd"),
        tty: n(p, "tty").unwrap_or(0) as u32,
        sid: n(p, "sid").unwrap_or(1) as u32,
        vpid: n(p, "vpid").unwrap_or(fallback_pid) as u32,
        vpgid: n(p, "vpgid").unwrap_or(0) as u32,
        uid: n(p, "uid").unwrap_or(0) as u32,
        gid: n(p, "gid").unwrap_or(0) as u32,
        euid: n(p, "uid").unwrap_or(0) as u32,
        user: s(p, "user").map(Arc::from),
        group: s(p, "group").map(Arc::from),
        loginuid: n(p, "loginuid").map(|l| l as u32),
        start_boot_ns: n(p, "start_boot_ns").unwrap_or(1) as u64,
        cgroup_id: 0,
        container: None,
        exec_id: Arc::from("e"),
        parent_exec_id: None,
        exe_key: None,
        env: match p.get("env") {
            Some(Value::String(env)) => Some(Arc::new(
                env.split(' ').map(|v| v.as_bytes().to_vec()).collect(),
            )),
            Some(Value::Array(_)) => Some(Arc::new(list(p, "env"))),
            _ => None,
        },
        capabilities: capability_sets(p),
        fresh_fork: false,
        container_start: p.get("container_start").and_then(Value::as_bool) == Some(true),
        exe_facts: match (
            p.get("exe_upper_layer"),
            p.get("exe_from_memfd"),
            p.get("exe_writable"),
        ) {
            (None, None, None) => None,
            (upper, memfd, writable) => Some(ExeFacts {
                upper_layer: upper.and_then(Value::as_bool),
                from_memfd: memfd.and_then(Value::as_bool) == Some(true),
                writable: writable.and_then(Value::as_bool) == Some(true),
            }),
        },
    }
}

/// `cap_effective` and friends, each a string of names or a list of them.
fn capability_sets(p: &Value) -> Option<Capabilities> {
    let set = |k: &str| -> Option<u64> {
        match p.get(k)? {
            Value::String(s) => Some(capabilities::from_names(s.split_whitespace())),
            Value::Array(a) => Some(capabilities::from_names(a.iter().filter_map(Value::as_str))),
            _ => None,
        }
    };
    let effective = set("cap_effective");
    let permitted = set("cap_permitted");
    let inheritable = set("cap_inheritable");
    if effective.is_none() && permitted.is_none() && inheritable.is_none() {
        return None;
    }
    Some(Capabilities {
        inheritable: inheritable.unwrap_or(0),
        permitted: permitted.unwrap_or(0),
        effective: effective.unwrap_or(0),
    })
}

fn container(c: Option<&Value>) -> ContainerContext {
    let host = ContainerContext {
        id: Arc::from("host"),
        runtime: None,
        meta: None,
    };
    let Some(c) = c else { return host };
    let id = s(c, "id").unwrap_or("host");
    if id == "host" {
        return host;
    }
    let opt = |k: &str| s(c, k).map(str::to_string);
    let labels = string_map(c.get("labels"));
    let meta = s(c, "image").map(|image| ContainerMeta {
        id: id.to_string(),
        name: opt("name").unwrap_or_default(),
        image: image.to_string(),
        image_repository: opt("image_repository"),
        image_tag: opt("image_tag"),
        image_digest: opt("image_digest"),
        image_id: opt("image_id"),
        labels,
        privileged: c.get("privileged").and_then(Value::as_bool) == Some(true),
        host_pid: c.get("host_pid").and_then(Value::as_bool) == Some(true),
        host_network: c.get("host_network").and_then(Value::as_bool) == Some(true),
        host_ipc: c.get("host_ipc").and_then(Value::as_bool) == Some(true),
        user: opt("user"),
        mounts: c.get("mounts").map(mounts_of).unwrap_or_default(),
        started_at: opt("started_at"),
        pod: c.get("pod").map(|p| PodInfo {
            name: s(p, "name").map(str::to_string),
            namespace: s(p, "namespace").map(str::to_string),
            uid: s(p, "uid").map(str::to_string),
            ip: s(p, "ip").map(str::to_string),
            labels: string_map(p.get("labels")),
            ..PodInfo::default()
        }),
        ..ContainerMeta::default()
    });
    ContainerContext {
        id: Arc::from(id),
        runtime: Some(Runtime::Docker),
        meta: meta.map(Arc::new),
    }
}

/// A JSON object of strings (labels), its other values left out.
fn string_map(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's `mounts` in the event JSON.
pub fn mounts_of(mounts: &Value) -> Vec<Mount> {
    let text = |m: &Value, k: &str| s(m, k).unwrap_or_default().to_string();
    mounts
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| Mount {
                    source: text(m, "source"),
                    destination: text(m, "destination"),
                    mode: text(m, "mode"),
                    rw: m.get("rw").and_then(Value::as_bool).unwrap_or(false),
                    propagation: text(m, "propagation"),
                    kind: text(m, "type"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The event's `syscall` where it names one of `kind`'s, else the kind's default.
fn syscall(v: &Value, kind: EventKind) -> EventType {
    s(v, "syscall")
        .and_then(EventType::from_name)
        .filter(|t| t.kind() == kind)
        .unwrap_or(kind.default_type())
}

/// A syscall event's raw arguments back from its named keys (see
/// `event::syscall_args`).
fn syscall_detail(v: &Value) -> SyscallDetail {
    let syscall = syscall(v, EventKind::Syscall);
    let mut args = [0u64; 5];
    let mut strings = [Vec::new(), Vec::new()];
    let mut resolved = [None, None];
    for &(key, slot) in syscall_args(syscall) {
        match slot {
            Slot::Int(i) | Slot::Uint(i) => args[i] = n(v, key).unwrap_or(0) as u64,
            Slot::Text(i) => strings[i] = bytes(v, key).unwrap_or_default(),
            Slot::Path(i) => {
                strings[i] = bytes(v, key).unwrap_or_default();
                resolved[i] = resolved_key(key).and_then(|k| bytes(v, k));
            }
        }
    }
    let ip = |addr: &str, port: &str| {
        Some((
            s(v, addr)?.parse::<IpAddr>().ok()?,
            n(v, port).unwrap_or(0) as u16,
        ))
    };
    let socket = s(v, "family").map(|family| SocketEnds {
        family: match family {
            "unix" => SocketFamily::Unix,
            "inet6" => SocketFamily::Inet6,
            "inet" => SocketFamily::Inet,
            _ => SocketFamily::Other(17),
        },
        sock_type: match s(v, "sock_type") {
            Some("dgram") => 2,
            Some("raw") => 3,
            _ => 1,
        },
        local: ip("local_address", "local_port"),
        remote: ip("address", "port"),
    });
    SyscallDetail {
        syscall,
        result: n(v, "result").unwrap_or(0),
        args,
        strings,
        resolved,
        socket,
        data: syscall
            .moves_data()
            .then(|| s(v, "data").map(text_to_bytes).unwrap_or_default()),
        address: bytes(v, "unix_path").map(SockAddr::Unix),
        uid: n(v, "uid").unwrap_or(0) as u32,
        raw: s(v, "hook") == Some("raw_tp/sys_exit"),
    }
}

/// The agent's structures for an event in `monitor events` JSON: what the sensor and
/// the context would have produced for it. Keys the JSON lacks get plausible defaults.
pub fn enriched_from_json(v: &Value) -> EnrichedEvent {
    let pid = n(v, "pid").unwrap_or(100);
    let result = n(v, "result").unwrap_or(0);
    let detail = match s(v, "kind").unwrap_or_default() {
        "exec" => Detail::Exec(Exec {
            credentials: Credentials {
                ppid: n(v, "ppid").unwrap_or(1) as u32,
                uid: n(v, "uid").unwrap_or(0) as u32,
                gid: n(v, "gid").unwrap_or(0) as u32,
                euid: 0,
                egid: 0,
                loginuid: n(v, "loginuid").map(|l| l as u32),
                process_start_boot_ns: n(v, "process_start_boot_ns").unwrap_or(5) as u64,
                vpid: None,
                vpgid: None,
                session: None,
            },
            syscall: syscall(v, EventKind::Exec),
            result,
            exe: bytes(v, "exe"),
            exe_truncated: false,
            filename: bytes(v, "filename"),
            filename_truncated: false,
            resolved_filename: bytes(v, "resolved_filename"),
            resolved_filename_truncated: false,
            enhanced: s(v, "hook").and_then(Enhanced::in_hook),
            args: list(v, "args"),
            args_truncated: false,
            dirfd: n(v, "dirfd").unwrap_or(-100) as i32,
            at_flags: 0,
            cgroup_name: Vec::new(),
            env: None,
            env_truncated: false,
            capabilities: None,
            exe_facts: None,
        }),
        "fork" => Detail::Fork(Fork {
            child_pid: n(v, "child_pid").unwrap_or(pid + 1) as u32,
            child_tid: n(v, "child_pid").unwrap_or(pid + 1) as u32,
            child_start_boot_ns: 7,
            parent_ppid: n(v, "ppid").unwrap_or(1) as u32,
            child_vpid: None,
        }),
        "exit" => Detail::Exit(Exit {
            exit_code: n(v, "exit_code").map(|c| c as u8),
            signal: n(v, "signal").map(|c| c as u8),
            core_dumped: false,
            ppid: n(v, "ppid").unwrap_or(1) as u32,
            process_start_boot_ns: n(v, "process_start_boot_ns").unwrap_or(5) as u64,
        }),
        "connect" => Detail::Connect(Connect {
            fd: n(v, "fd").unwrap_or(3) as i32,
            family: match s(v, "family") {
                Some("unix") => SocketFamily::Unix,
                Some("inet6") => SocketFamily::Inet6,
                Some("inet") | None => SocketFamily::Inet,
                Some(_) => SocketFamily::Other(17),
            },
            sock_type: match s(v, "sock_type") {
                Some("dgram") => 2,
                Some("raw") => 3,
                _ => 1,
            },
            result,
            address: s(v, "address").and_then(|a| a.parse::<IpAddr>().ok()),
            port: n(v, "port").unwrap_or(0) as u16,
            local: s(v, "local_address")
                .and_then(|a| a.parse::<IpAddr>().ok())
                .map(|a| (a, n(v, "local_port").unwrap_or(0) as u16)),
            unix_path: bytes(v, "unix_path"),
            uid: n(v, "uid").unwrap_or(0) as u32,
            enhanced: s(v, "hook").and_then(Enhanced::in_hook),
            kernel_verdict: 0,
        }),
        "syscall" => Detail::Syscall(syscall_detail(v)),
        "container_stats" => {
            let stats = v.get("stats");
            Detail::ContainerStats(Box::new(ContainerStats::from_entries(|name| {
                stats.and_then(|s| s.get(name)).and_then(Value::as_u64)
            })))
        }
        _ => Detail::Open(Open {
            syscall: syscall(v, EventKind::Open),
            enhanced: s(v, "hook").and_then(Enhanced::in_hook),
            path: bytes(v, "path").unwrap_or_default(),
            path_truncated: false,
            resolved: bytes(v, "resolved_path"),
            resolved_truncated: false,
            dirfd: n(v, "dirfd").unwrap_or(-100) as i32,
            flags: n(v, "flags").unwrap_or(0) as u64,
            mode: n(v, "mode").unwrap_or(0) as u32,
            result: n(v, "result").unwrap_or(3),
            uid: n(v, "uid").unwrap_or(0) as u32,
            kernel_verdict: 0,
        }),
    };
    let event = Event {
        boot_ns: n(v, "boot_ns").unwrap_or(9_000_000_000) as u64,
        pid: pid as u32,
        tid: n(v, "tid").unwrap_or(pid) as u32,
        cgroup_id: 0,
        comm: bytes(v, "comm").unwrap_or_else(|| b"x".to_vec()),
        detail,
    };
    let process = v
        .get("process")
        .filter(|p| p.is_object())
        .map(|p| Arc::new(process_info(p, pid)));
    let ancestors = v
        .get("ancestors")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| Arc::new(process_info(p, 1)))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let exe_sha256 = v
        .get("process")
        .and_then(|p| s(p, "exe_sha256"))
        .map(Arc::from);
    EnrichedEvent {
        event,
        process,
        ancestors,
        container: container(v.get("container")),
        exe_sha256,
        workload: workload(v.get("workload")),
    }
}

/// The `workload` object: `{id, learning, new}`.
fn workload(w: Option<&Value>) -> Option<WorkloadFacts> {
    let w = w?;
    Some(WorkloadFacts {
        id: Arc::new(s(w, "id")?.parse().ok()?),
        learning: w.get("learning").and_then(Value::as_bool) == Some(true),
        new: w.get("new").and_then(Value::as_bool) == Some(true),
    })
}
