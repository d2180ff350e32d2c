//! The live event source reads every catalog field with the value the JSON source reads
//! from the event's `monitor events` JSON. Events: every event of the default ruleset's
//! fixtures, built as the agent's structures, plus edge cases (no context, invalid
//! UTF-8, unix and IPv6 sockets, failed calls, containers without metadata).
use std::{path::Path, sync::Arc};

use serde_json::{Value, json};

use crate::{
    clock::BootClock,
    event::Detail,
    rules::{
        FieldArg, FieldSource, JsonEvent, LiveEvent, ResolvedField,
        fields::{ArgKind, CATALOG, FieldId},
        fixtures,
        recorded::enriched_from_json as native,
    },
};

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
            ArgKind::OptionalKey => vec![
                FieldArg::None,
                FieldArg::Key("PATH".into()),
                FieldArg::Key("missing".into()),
            ],
            ArgKind::EventArg => [
                "res", "exe", "args", "filename", "pathname", "flags", "fd", "name", "path",
                "dirfd", "mode", "tuple", "addr", "status", "sig", "request", "pid", "target",
                "linkpath", "oldpath", "newpath", "domain", "type", "proto", "oldfd", "newfd",
                "uargs", "length", "bogus",
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
    // The environment is for rules only: the event's JSON never carries it (it holds
    // secrets). `environment_is_for_rules_not_for_the_json` checks it apart.
    for f in every_field()
        .into_iter()
        .filter(|f| f.id != FieldId::ProcEnv)
    {
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
    assert_eq!(kinds.len(), 7, "every event kind is covered: {kinds:?}");
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
        "privileged": true, "pod": {"name": "p", "namespace": "default", "uid": "u-1"},
        "started_at": "2025-03-01T12:00:00.5Z"});
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
        json!({"kind": "connect", "family": "inet", "sock_type": "stream", "address": "10.0.0.1",
            "port": 443, "local_address": "172.17.0.2", "local_port": 40000, "result": 0,
            "process": {"pid": 40, "name": "curl", "env": ["PATH=/bin", "HTTP_PROXY=http://p:3128"],
                "cap_effective": "CAP_CHOWN CAP_SYS_ADMIN", "cap_permitted": ["CAP_CHOWN"],
                "exe_upper_layer": true, "exe_from_memfd": false}}),
        json!({"kind": "syscall", "syscall": "ptrace", "request": 16, "target_pid": 7,
            "result": -3, "process": base_process}),
        json!({"kind": "syscall", "syscall": "symlinkat", "target": "/etc/shadow",
            "linkpath": "/tmp/s", "dirfd": -100, "result": 0}),
        json!({"kind": "syscall", "syscall": "linkat", "oldpath": "/etc/shadow",
            "newpath": "/tmp/h", "olddirfd": -100, "dirfd": -100, "flags": 0, "result": 0}),
        json!({"kind": "syscall", "syscall": "socket", "domain": 17, "sock_type": 3,
            "protocol": 768, "result": 4}),
        json!({"kind": "syscall", "syscall": "dup2", "fd": 3, "newfd": 0, "result": 0,
            "family": "inet", "sock_type": "stream", "address": "10.0.0.9", "port": 4444,
            "local_address": "172.17.0.2", "local_port": 40000, "process": base_process}),
        json!({"kind": "syscall", "syscall": "dup3", "fd": 5, "newfd": 1, "flags": 524288,
            "result": 1}),
        json!({"kind": "syscall", "syscall": "finit_module", "fd": 3, "uargs": "debug=1",
            "flags": 0, "result": -38, "error": "ENOSYS",
            "hook": "raw_tp/sys_exit"}),
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

    let start = ResolvedField {
        id: crate::rules::fields::FieldId::ContainerStartTs,
        arg: FieldArg::None,
    };
    let enriched = native(&cases[0]);
    assert_eq!(
        LiveEvent::enriched(&enriched, &clock).field(&start),
        crate::rules::FieldValue::U64(1_740_830_400_500_000_000)
    );

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

/// The conditions the engine runs (specialised per event type, operands reordered)
/// decide like the rules' own conditions, on every fixture event, for the default
/// rules and Falco's stable rules.
#[test]
fn specialised_conditions_decide_like_the_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = crate::rules::Engine::load_paths(&[
        dir.join("../rules"),
        dir.join("../../shared/falco-rules/falco_rules.yaml"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let mut scratch = crate::rules::Scratch::default();
    let mut out = Vec::new();
    let mut fired = 0;
    for (what, v) in fixture_events() {
        let ev = JsonEvent::new(&v).unwrap();
        let own: Vec<&str> = engine
            .rules()
            .iter()
            .filter(|r| r.event_types.contains(&ev.event_type()) && r.matches(&ev, &mut scratch))
            .map(|r| r.name.as_str())
            .collect();
        engine.evaluate_all(&ev, &mut scratch, &mut out);
        let run: Vec<&str> = out.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(own, run, "{what}");
        fired += run.len();
    }
    assert!(fired > 50, "{fired}");
}

#[test]
fn environment_is_for_rules_not_for_the_json() {
    let v = json!({"kind": "exec", "result": 0, "exe": "/usr/bin/curl", "args": ["curl"],
        "process": {"pid": 40, "name": "curl",
            "env": ["PATH=/bin", "HTTP_PROXY=http://p:3128", "EMPTY="]}});
    let enriched = native(&v);
    let clock = BootClock::new();
    let live = LiveEvent::enriched(&enriched, &clock);
    let field = |arg: FieldArg| {
        live.field(&ResolvedField {
            id: FieldId::ProcEnv,
            arg,
        })
        .to_string()
    };
    assert_eq!(
        field(FieldArg::None),
        "PATH=/bin HTTP_PROXY=http://p:3128 EMPTY="
    );
    assert_eq!(field(FieldArg::Key("HTTP_PROXY".into())), "http://p:3128");
    assert_eq!(field(FieldArg::Key("EMPTY".into())), "");
    assert!(
        live.field(&ResolvedField {
            id: FieldId::ProcEnv,
            arg: FieldArg::Key("HTTP".into())
        })
        .is_none()
    );
    let json = live.to_json().unwrap();
    assert!(json["process"].get("env").is_none(), "{json}");
    assert!(!json.to_string().contains("p:3128"), "{json}");
}

/// What the daemon sends for a live event and what `monitor replay` prints for that
/// event's JSON, byte for byte.
fn same_alerts(engine: &crate::rules::Engine, live: &LiveEvent<'_>, what: &str) -> usize {
    use crate::alerts::Alert;
    let json = live.to_json().unwrap();
    let replayed = JsonEvent::new(&json).unwrap();
    let mut scratch = crate::rules::Scratch::default();
    let mut matched = Vec::new();
    engine.evaluate(live, &mut scratch, &mut matched);
    let mut sent = Vec::new();
    engine.evaluate_live(
        live,
        &mut scratch,
        |_, _, _| unreachable!("no responses loaded"),
        |_, _| true,
        |alert, _| sent.push(Alert::from_rule_alert(alert, "node-1", live).to_json()),
    );
    let printed: Vec<String> = matched
        .iter()
        .map(|rule| {
            Alert::from_rule_alert(engine.alert(rule, &replayed), "node-1", &json).to_json()
        })
        .collect();
    assert_eq!(sent, printed, "{what}");
    sent.len()
}

#[test]
fn replay_prints_the_alerts_the_daemon_sends_on_every_fixture_event() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let engine = crate::rules::Engine::load_paths(&[dir]).unwrap_or_else(|e| panic!("{e}"));
    let clock = BootClock::new();
    let mut alerts = 0;
    for (what, v) in &fixture_events() {
        let enriched = native(v);
        alerts += same_alerts(&engine, &LiveEvent::enriched(&enriched, &clock), what);
        same_alerts(
            &engine,
            &LiveEvent::raw(&enriched.event, &clock),
            &format!("{what} (raw)"),
        );
    }
    assert!(alerts > 150, "{alerts} alerts compared");
}
