use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

const DOCUMENTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/monitor.yaml");

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn source(path: &Path) -> SettingsSource {
    SettingsSource {
        explicit: Some(path.to_path_buf()),
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error(text: &str, vars: &[(&str, &str)]) -> String {
    // Tests run in parallel: one file each.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = file(&format!("bad-{n}.yaml"), text);
    load(&source(&path), env(vars), &[])
        .unwrap_err()
        .to_string()
        .replace(&path.display().to_string(), "FILE")
}

#[test]
fn documented_file_holds_every_key_at_its_default() {
    let loaded = load(&source(Path::new(DOCUMENTED)), [], &[]).unwrap();
    assert_eq!(loaded.settings, Settings::default());
    let tree = serde_json::to_value(Settings::default()).unwrap();
    let missing: Vec<String> = leaves(&tree)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| !matches!(loaded.origin(key), Origin::File { .. }))
        .collect();
    assert!(
        missing.is_empty(),
        "not documented in deploy/monitor.yaml: {missing:?}"
    );
}

#[test]
fn unknown_key_is_reported_at_the_key() {
    let text = "rules:\n  matching: first\noutputs:\n  http:\n    urll: http://x/\n";
    assert_eq!(
        error(text, &[]),
        "FILE:5:5: outputs.http.urll: unknown field `urll`, expected one of `url`, \
         `headers`, `batch`, `ca_file`, `timeout_ms`, `format`, `min_priority`"
    );
}

#[test]
fn wrong_type_is_reported_at_the_value() {
    let text = "sensor:\n  ring_buffer_bytes: lots\n";
    assert_eq!(
        error(text, &[]),
        "FILE:2:22: sensor.ring_buffer_bytes: invalid type: string \"lots\", expected a whole number"
    );
    assert_eq!(
        error("rules:\n  matching: sometimes\n", &[]),
        "FILE:2:13: rules.matching: unknown variant `sometimes`, expected `all` or `first`"
    );
    assert_eq!(
        error("outputs:\n  stdout:\n    min_priority: loud\n", &[]),
        "FILE:3:19: outputs.stdout.min_priority: unknown priority `loud`"
    );
}

#[test]
fn values_that_type_check_but_are_wrong_name_their_place() {
    let text = "sensor:\n  ring_buffer_bytes: 1000\nserver:\n  listen: nowhere\n";
    assert_eq!(
        error(text, &[]),
        "FILE:2:22: sensor.ring_buffer_bytes: 1000 is not a power of two of at least 4096\n\
         FILE:4:11: server.listen: `nowhere`: expected IP:PORT such as 127.0.0.1:9376 (empty: \
         no server)"
    );
}

#[test]
fn yaml_syntax_and_shape_errors() {
    assert!(error("rules: [\n", &[]).starts_with("FILE:2:1: invalid YAML: "));
    assert_eq!(
        error("- a\n- b\n", &[]),
        "FILE:1:1: the config must be a mapping of settings (log:, rules:, sensor:, ...), \
         found a sequence"
    );
    assert_eq!(
        error("log: info\nlog: debug\n", &[]),
        "FILE:2:1: invalid YAML: duplicate key 'log' (first at line 1, column 1)"
    );
}

#[test]
fn environment_overrides_file_and_flags_override_environment() {
    let path = file(
        "layers.yaml",
        "server:\n  listen: 127.0.0.1:1\ncontext:\n  host_root: /file\n  process_cap: 5\n",
    );
    let vars = env(&[
        ("MONITOR_SERVER_LISTEN", "127.0.0.1:2"),
        ("MONITOR_CONTEXT_HOST_ROOT", "/env"),
        ("MONITOR_RULES_PATHS", "/a, /b"),
        ("MONITOR_OUTPUTS_HTTP_HEADERS", "X-Token: t1\nX-Other: 2"),
        ("MONITOR_CONTEXT_EXE_HASH", "false"),
        ("UNRELATED", "x"),
    ]);
    let flags = [Override {
        path: "context.host_root",
        value: json!("/flag"),
        flag: "--host-root",
    }];
    let loaded = load(&source(&path), vars, &flags).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.server.listen, "127.0.0.1:2");
    assert_eq!(s.context.host_root, PathBuf::from("/flag"));
    assert_eq!(s.context.process_cap, 5);
    assert!(!s.context.exe_hash);
    assert_eq!(s.rules.paths, [PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(s.outputs.http.headers["X-Token"], "t1");
    assert_eq!(
        loaded.origin("server.listen"),
        Origin::Env("MONITOR_SERVER_LISTEN".into())
    );
    assert_eq!(
        loaded.origin("context.host_root"),
        Origin::Flag("--host-root")
    );
    assert!(matches!(
        loaded.origin("context.process_cap"),
        Origin::File { mark, .. } if mark.line == 5 && mark.col == 16
    ));
    assert_eq!(loaded.origin("log"), Origin::Default);
}

#[test]
fn bad_environment_values_name_the_variable() {
    assert_eq!(
        error("", &[("MONITOR_CONTEXT_PROCESS_CAP", "many")]),
        "environment variable MONITOR_CONTEXT_PROCESS_CAP: `many`: expected a number"
    );
    assert_eq!(
        error("", &[("MONITOR_SENSOR_RING_BUFFER_BYTES", "12288")]),
        "environment variable MONITOR_SENSOR_RING_BUFFER_BYTES: sensor.ring_buffer_bytes: \
         12288 is not a power of two of at least 4096"
    );
}

#[test]
fn a_missing_file_is_fine_only_when_not_asked_for() {
    let missing = Path::new("/nonexistent/monitor.yaml");
    let err = load(&source(missing), [], &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("/nonexistent/monitor.yaml: cannot read the config file: "),
        "{err}"
    );
    // An empty file is all defaults.
    let empty = file("empty.yaml", "# nothing yet\n");
    assert_eq!(
        load(&source(&empty), [], &[]).unwrap().settings,
        Settings::default()
    );
}

#[test]
fn outputs_become_sinks_with_spools_and_rate_limit() {
    let text = "outputs:\n  stdout: {enabled: false}\n  syslog: {address: 'tcp://127.0.0.1:601', \
                min_priority: warning}\n  spool: {dir: /var/spool/m}\n  rate_limit: \
                {per_rule_per_second: 2.5}\n";
    let path = file("outputs.yaml", text);
    let c = load(&source(&path), [], &[])
        .unwrap()
        .settings
        .alerts_config();
    let kinds: Vec<&str> = c.sinks.iter().map(|s| s.type_name()).collect();
    assert_eq!(kinds, ["syslog"]);
    assert_eq!(c.sinks[0].min_priority, crate::rules::Priority::Warning);
    assert_eq!(
        c.sinks[0].spool.as_ref().unwrap().dir,
        PathBuf::from("/var/spool/m/syslog")
    );
    assert_eq!(c.rate_limit.unwrap().per_rule_per_second, 2.5);
    assert_eq!(
        error("outputs:\n  syslog:\n    address: pigeon://x\n", &[])
            .split(": ")
            .take(2)
            .collect::<Vec<_>>(),
        ["FILE:3:14", "outputs.syslog.address"]
    );
}

/// Hostile files give one clear error at their place, for the rules and the settings
/// alike, without expanding, reading or recursing without bound: an alias bomb stops
/// at the node cap, nesting at the depth cap, an oversized file before it is read.
#[test]
fn hostile_yaml_is_a_positioned_error_for_rules_and_settings() {
    let dir = std::env::temp_dir().join(format!("monitor-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bomb = {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (level, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{level}: &{level} [{refs}]\n"));
        }
        text.into_bytes()
    };
    let deep = format!("k: {}{}\n", "[".repeat(50_000), "]".repeat(50_000)).into_bytes();
    let mut huge = b"k: \"".to_vec();
    huge.resize((crate::rules::yaml::MAX_SOURCE_BYTES + 10) as usize, b'A');
    huge.extend_from_slice(b"\"\n");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "bomb",
            bomb,
            ":5:36: invalid YAML: aliases expand to more than 100000 nodes (an alias bomb?)",
        ),
        (
            "deep",
            deep,
            ":1:259: invalid YAML: recursion limit exceeded",
        ),
        (
            "huge",
            huge,
            ":1:1: the file is 16.0 MiB; files over 16 MiB are refused",
        ),
        (
            "not-utf8",
            b"k: v\nname: \"caf\xe9\"\n".to_vec(),
            ":2:11: invalid UTF-8 (byte 0xe9): save the file as UTF-8",
        ),
        (
            "duplicate",
            b"- rule: r\n  desc: d\n  condition: evt.type=open\n  condition: evt.type=connect\n"
                .to_vec(),
            ":4:3: invalid YAML: duplicate key 'condition' (first at line 3, column 3)",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, &bytes).unwrap();
        let rules = crate::rules::Engine::load_paths(std::slice::from_ref(&path))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            rules.contains(&format!("{}{expected}", path.display())),
            "rules, {name}: {rules}"
        );
        // The settings' error is at the same place, with the same message.
        let settings = load(&source(&path), [], &[])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        let (place, message) = expected.split_at(expected.find(": ").unwrap());
        assert!(
            settings.contains(&format!("{}{place}: ", path.display()))
                && settings.contains(message),
            "settings, {name}: {settings}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
