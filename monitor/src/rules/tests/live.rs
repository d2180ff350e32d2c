//! The live event source reads every catalog field with the value the JSON source reads
//! from the event's `monitor events` JSON. Events: every event of the default ruleset's
//! fixtures, built as the agent's structures, plus edge cases (no context, invalid
//! UTF-8, unix and IPv6 sockets, failed calls, containers without metadata).
use std::{collections::BTreeMap, net::IpAddr, path::Path, sync::Arc};

use serde_json::{Value, json};

use crate::{
    clock::BootClock,
    context::{
        ContainerContext, EnrichedEvent,
        cgroup::Runtime,
        docker::{ContainerMeta, PodInfo},
        process::ProcessInfo,
    },
    event::{Connect, Credentials, Detail, Event, Exec, Exit, Fork, Open, SocketFamily, Syscall},
    rules::{
        FieldArg, FieldSource, JsonEvent, LiveEvent, ResolvedField,
        fields::{ArgKind, CATALOG},
        fixtures,
    },
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
    }
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
    let labels: BTreeMap<String, String> = c
        .get("labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
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
        pod: c.get("pod").map(|p| PodInfo {
            name: s(p, "name").map(str::to_string),
            namespace: s(p, "namespace").map(str::to_string),
            uid: s(p, "uid").map(str::to_string),
            container_name: None,
        }),
        ..ContainerMeta::default()
    });
    ContainerContext {
        id: Arc::from(id),
        runtime: Some(Runtime::Docker),
        meta: meta.map(Arc::new),
    }
}

fn syscall(v: &Value, default: Syscall) -> Syscall {
    match s(v, "syscall") {
        Some("execveat") => Syscall::Execveat,
        Some("open") => Syscall::Open,
        Some("openat2") => Syscall::Openat2,
        Some("creat") => Syscall::Creat,
        Some("openat") => Syscall::Openat,
        _ => default,
    }
}

/// The agent's structures for a fixture event (what the sensor and the context would
/// have produced for it).
fn native(v: &Value) -> EnrichedEvent {
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
            },
            syscall: syscall(v, Syscall::Execve),
            result,
            exe: bytes(v, "exe"),
            exe_truncated: false,
            filename: bytes(v, "filename"),
            filename_truncated: false,
            args: list(v, "args"),
            args_truncated: false,
            dirfd: n(v, "dirfd").unwrap_or(-100) as i32,
            at_flags: 0,
            cgroup_name: Vec::new(),
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
            unix_path: bytes(v, "unix_path"),
            uid: n(v, "uid").unwrap_or(0) as u32,
        }),
        _ => Detail::Open(Open {
            syscall: syscall(v, Syscall::Openat),
            path: bytes(v, "path").unwrap_or_default(),
            path_truncated: false,
            resolved: bytes(v, "resolved_path"),
            resolved_truncated: false,
            dirfd: n(v, "dirfd").unwrap_or(-100) as i32,
            flags: n(v, "flags").unwrap_or(0) as u64,
            mode: n(v, "mode").unwrap_or(0) as u32,
            result: n(v, "result").unwrap_or(3),
            uid: n(v, "uid").unwrap_or(0) as u32,
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
    }
}

/// Every catalog field, with the arguments worth asking for.
fn every_field() -> Vec<ResolvedField> {
    let mut out = Vec::new();
    for info in CATALOG {
        let args: Vec<FieldArg> = match info.arg {
            ArgKind::None => vec![FieldArg::None],
            ArgKind::AncestorIndex => (0..6)
                .map(FieldArg::Index)
                .chain([FieldArg::None])
                .collect(),
            ArgKind::Key => ["app", "io.kubernetes.pod.name", "missing"]
                .into_iter()
                .map(|k| FieldArg::Key(k.into()))
                .collect(),
            ArgKind::EventArg => [
                "res", "exe", "args", "filename", "pathname", "flags", "fd", "name", "path",
                "dirfd", "mode", "tuple", "addr", "status", "sig", "bogus",
            ]
            .into_iter()
            .map(|k| FieldArg::Key(k.into()))
            .chain((0..6).map(FieldArg::Index))
            .collect(),
        };
        out.extend(
            args.into_iter()
                .map(|arg| ResolvedField { id: info.id, arg }),
        );
    }
    out
}

/// Compares both sources on every field; returns how many fields had a value.
fn assert_same(live: &LiveEvent<'_>, what: &str) -> usize {
    let json = live.to_json().unwrap();
    let from_json = JsonEvent::new(&json).unwrap();
    assert_eq!(
        live.event_type(),
        from_json.event_type(),
        "{what}: evt.type"
    );
    let mut with_value = 0;
    for f in every_field() {
        let (a, b) = (live.field(&f), from_json.field(&f));
        assert_eq!(
            a,
            b,
            "{what}: field {} {:?}; JSON {json}",
            f.id.info().name,
            f.arg
        );
        with_value += usize::from(!a.is_none());
    }
    with_value
}

fn fixture_events() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".fixtures.yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let fixtures = fixtures::parse_file(&file).unwrap_or_else(|e| panic!("{e:?}"));
        out.extend(
            fixtures
                .into_iter()
                .map(|f| (format!("{}: {}", f.file, f.name), f.event)),
        );
    }
    out
}

#[test]
fn live_fields_equal_json_fields_on_every_fixture_event() {
    let clock = BootClock::new();
    let events = fixture_events();
    assert!(events.len() > 50, "{} fixture events", events.len());
    let mut kinds = std::collections::BTreeSet::new();
    for (what, v) in &events {
        let enriched = native(v);
        kinds.insert(enriched.event.kind());
        let live = LiveEvent::enriched(&enriched, &clock);
        assert!(assert_same(&live, what) > 20, "{what}: too few fields");
        assert_same(
            &LiveEvent::raw(&enriched.event, &clock),
            &format!("{what} (raw)"),
        );
    }
    assert_eq!(kinds.len(), 5, "every event kind is covered: {kinds:?}");
}

#[test]
fn live_fields_equal_json_fields_on_edge_cases() {
    let clock = BootClock::new();
    let base_process = json!({"pid": 40, "ppid": 39, "name": "sh", "exe": "/bin/sh",
        "exepath": "/bin/dash", "args": ["-c", "echo hi", ""], "cwd": "/srv/app", "tty": 34816,
        "sid": 39, "vpid": 7, "uid": 1000, "user": "app", "gid": 1000, "group": "app",
        "loginuid": 1000, "start_boot_ns": 3, "exe_sha256": "ab12"});
    let ancestors = json!([
        {"pid": 39, "name": "bash", "exe": "bash", "exepath": "/bin/bash", "cmdline": "bash -l"},
        {"pid": 1, "name": "init", "exe": "/sbin/init", "exepath": "/sbin/init", "cmdline": "init"}
    ]);
    let pod_container = json!({"id": "4f2a6b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
        "name": "web", "image": "nginx:1.25", "image_repository": "nginx", "image_tag": "1.25",
        "image_digest": "sha256:00", "labels": {"app": "web", "io.kubernetes.pod.name": "p"},
        "privileged": true, "pod": {"name": "p", "namespace": "default", "uid": "u-1"}});
    let no_meta = json!({"id": "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"});
    let cases = [
        json!({"kind": "open", "syscall": "openat", "path": "../etc/./shadow", "dirfd": -100,
            "flags": 0o200000, "result": -13, "process": base_process, "ancestors": ancestors,
            "container": pod_container}),
        json!({"kind": "open", "syscall": "creat", "path": "x.sh", "dirfd": 5, "mode": 0o755,
            "result": 4, "process": base_process, "container": no_meta}),
        json!({"kind": "open", "syscall": "openat2", "path": "/a/b", "resolved_path": "/",
            "flags": 0o1102, "result": 3}),
        json!({"kind": "connect", "family": "inet6", "sock_type": "dgram", "address": "2001:db8::1",
            "port": 53, "result": -115, "process": base_process, "ancestors": ancestors}),
        json!({"kind": "connect", "family": "unix", "unix_path": "/run/docker.sock", "result": 0,
            "process": base_process}),
        json!({"kind": "connect", "family": "weird", "result": -97}),
        json!({"kind": "exec", "syscall": "execveat", "result": -2, "filename": "./nope",
            "args": ["./nope", "a"], "process": base_process}),
        json!({"kind": "exec", "result": 0, "exe": "memfd:x", "args": ["x"], "loginuid": 5}),
        json!({"kind": "exit", "signal": 9, "ppid": 39, "process": base_process,
            "ancestors": ancestors}),
        json!({"kind": "exit", "exit_code": 3}),
        json!({"kind": "fork", "child_pid": 41, "process": base_process}),
    ];
    for (i, v) in cases.iter().enumerate() {
        let enriched = native(v);
        assert_same(
            &LiveEvent::enriched(&enriched, &clock),
            &format!("case {i}"),
        );
        assert_same(
            &LiveEvent::raw(&enriched.event, &clock),
            &format!("case {i} raw"),
        );
    }

    // Bytes that are not UTF-8, and a process the agent knows nothing about.
    let mut enriched = native(&cases[0]);
    let mut p = (**enriched.process.as_ref().unwrap()).clone();
    p.args = vec![b"a\xffb".to_vec(), b"\xc3".to_vec(), b"ok".to_vec()];
    p.name = b"s\xfe".to_vec();
    p.cmdline = b"s\xfe a\xffb \xc3 ok".to_vec();
    enriched.process = Some(Arc::new(p));
    enriched.event.comm = b"c\x80".to_vec();
    if let Detail::Open(o) = &mut enriched.event.detail {
        o.path = b"/tmp/\xff".to_vec();
    }
    assert_same(&LiveEvent::enriched(&enriched, &clock), "invalid UTF-8");
    enriched.process = None;
    enriched.ancestors.clear();
    assert_same(&LiveEvent::enriched(&enriched, &clock), "no process");
}

#[test]
fn live_event_has_the_hostname_it_is_given() {
    let clock = BootClock::new();
    let enriched = native(&json!({"kind": "fork", "pid": 3}));
    let live = LiveEvent::enriched(&enriched, &clock).with_hostname("node-1");
    let f = ResolvedField {
        id: crate::rules::fields::FieldId::EvtHostname,
        arg: FieldArg::None,
    };
    assert_eq!(live.field(&f).to_string(), "node-1");
}
