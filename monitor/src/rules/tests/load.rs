//! The loader: overrides, appends, exceptions, and errors with exact positions.
use serde_json::json;

use crate::rules::{Engine, JsonEvent, RuleStatus, Scratch};

pub(super) fn load(files: &[(&str, &str)]) -> Result<Engine, Vec<String>> {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Engine::load_sources(&sources).map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    load(files).expect_err("expected errors")
}

fn fires(engine: &Engine, name: &str, ev: serde_json::Value) -> bool {
    let ev = JsonEvent::new(&ev).unwrap();
    let mut out = Vec::new();
    engine.evaluate(&ev, &mut Scratch::default(), &mut out);
    out.iter().any(|r| r.name == name)
}

fn exec(name: &str, pname: &str) -> serde_json::Value {
    json!({"kind": "exec", "time": "t", "pid": 1, "tid": 1, "comm": name, "result": 0,
           "args": [name, "-x"], "exe": format!("/bin/{name}"),
           "process": {"name": name, "user": "root", "uid": 0},
           "ancestors": [{"pid": 2, "name": pname}]})
}

const BASE: &str = "\
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type = execve
- rule: shell
  desc: a shell ran
  condition: spawned and proc.name in (shells)
  output: shell %proc.name
  priority: warning
  tags: [a]
";

#[test]
fn override_append_and_replace() {
    let engine = load(&[
        ("base.yaml", BASE),
        (
            "local.yaml",
            "\
- list: shells
  items: [zsh]
  override:
    items: append
- macro: spawned
  condition: and proc.pname != cron
  override:
    condition: append
- rule: shell
  condition: and not user.name = nobody
  output: user=%user.name
  tags: [b]
  priority: ERROR
  override:
    condition: append
    output: append
    tags: append
    priority: replace
",
        ),
    ])
    .unwrap();
    let rule = engine.rule("shell").unwrap();
    assert_eq!(rule.tags, vec!["a", "b"]);
    assert_eq!(rule.priority.as_str(), "Error");
    assert!(fires(&engine, "shell", exec("zsh", "sshd")));
    assert!(fires(&engine, "shell", exec("bash", "sshd")));
    assert!(!fires(&engine, "shell", exec("zsh", "cron")));
    let ev = exec("zsh", "sshd");
    let alert = engine.alert(rule, &JsonEvent::new(&ev).unwrap());
    assert_eq!(alert.output, "shell zsh user=root");

    let engine = load(&[
        ("base.yaml", BASE),
        (
            "local.yaml",
            "\
- list: shells
  items: [fish]
  override:
    items: replace
- rule: shell
  enabled: false
  override:
    enabled: replace
",
        ),
    ])
    .unwrap();
    assert_eq!(engine.summaries()[0].status, RuleStatus::Disabled);
    assert!(engine.rules().is_empty());
}

#[test]
fn legacy_append_and_redefinition() {
    let engine = load(&[
        ("base.yaml", BASE),
        (
            "local.yaml",
            "\
- list: shells
  items: [ksh]
  append: true
- rule: shell
  condition: and proc.pname = sshd
  append: true
- rule: other
  desc: d
  condition: evt.type = connect
  output: o
  priority: DEBUG
- rule: other
  desc: redefined
  condition: evt.type = openat
  output: o
  priority: Informational
- rule: shell
  enabled: false
",
        ),
    ])
    .unwrap();
    let names: Vec<_> = engine
        .summaries()
        .iter()
        .map(|s| (s.name.as_str(), s.status.clone()))
        .collect();
    assert_eq!(names[0], ("shell", RuleStatus::Disabled));
    assert_eq!(engine.rule("other").unwrap().desc, "redefined");
    assert_eq!(
        engine.rule("other").unwrap().event_types,
        vec![crate::rules::EventType::Openat]
    );

    // Same, but kept enabled: the appended condition applies.
    let engine = load(&[
        ("base.yaml", BASE),
        ("local.yaml", "- list: shells\n  items: [ksh]\n  append: true\n- rule: shell\n  condition: and proc.pname = sshd\n  append: true\n"),
    ])
    .unwrap();
    assert!(fires(&engine, "shell", exec("ksh", "sshd")));
    assert!(!fires(&engine, "shell", exec("ksh", "init")));
}

#[test]
fn exceptions_compile_into_the_condition() {
    let engine = load(&[(
        "r.yaml",
        "\
- rule: shell
  desc: d
  condition: evt.type = execve and proc.name in (bash, sh)
  output: o
  priority: NOTICE
  exceptions:
    - name: by_parent
      fields: [proc.name, proc.pname]
      comps: [=, in]
      values:
        - [bash, [cron, anacron]]
    - name: single
      fields: proc.pname
      values: [systemd]
    - name: empty
      fields: [proc.name]
",
    )])
    .unwrap();
    assert!(fires(&engine, "shell", exec("bash", "sshd")));
    assert!(!fires(&engine, "shell", exec("bash", "cron")));
    assert!(!fires(&engine, "shell", exec("bash", "anacron")));
    assert!(fires(&engine, "shell", exec("sh", "cron")));
    assert!(!fires(&engine, "shell", exec("sh", "systemd")));

    // Appending values to an existing exception.
    let engine = load(&[(
        "r.yaml",
        "\
- rule: shell
  desc: d
  condition: evt.type = execve and proc.name in (bash, sh)
  output: o
  priority: NOTICE
  exceptions:
    - name: single
      fields: proc.pname
      values: [systemd]
- rule: shell
  exceptions:
    - name: single
      values: [sshd]
  override:
    exceptions: append
",
    )])
    .unwrap();
    assert!(!fires(&engine, "shell", exec("bash", "sshd")));
    assert!(!fires(&engine, "shell", exec("bash", "systemd")));
    assert!(fires(&engine, "shell", exec("bash", "init")));
}

#[test]
fn rule_matching_first_and_sources() {
    let yaml = "\
- rule: one
  desc: d
  condition: proc.name = bash
  output: o
  priority: INFO
- rule: two
  desc: d
  condition: evt.type = execve
  output: o
  priority: INFO
- rule: audit
  desc: d
  condition: ka.verb = create
  output: o
  priority: INFO
  source: k8s_audit
- required_engine_version: 0.57.0
- required_plugin_versions:
    - name: container
      version: 0.4.0
";
    let mut engine = load(&[("r.yaml", yaml)]).unwrap();
    let ev = exec("bash", "x");
    let ev = JsonEvent::new(&ev).unwrap();
    let mut out = Vec::new();
    engine.evaluate(&ev, &mut Scratch::default(), &mut out);
    assert_eq!(out.len(), 2);
    drop(out);
    engine.set_rule_matching(crate::rules::RuleMatching::First);
    let mut out = Vec::new();
    engine.evaluate(&ev, &mut Scratch::default(), &mut out);
    assert_eq!(
        out.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["one"]
    );
    assert_eq!(
        engine.summaries()[2].status,
        RuleStatus::Skipped {
            reason: "source 'k8s_audit' is not supported (only syscall)".into()
        }
    );
    // A rule without evt.type runs on every type: every type is needed.
    assert_eq!(engine.kernel_interest(), crate::kinds::Interest::all());
}

#[test]
fn errors_have_file_line_col_and_rule() {
    let errs = errors(&[(
        "e.yaml",
        "\
- rule: r1
  desc: d
  condition: proc.name = bash and proc.nope = 1
  output: o
  priority: WARNING
- rule: r2
  desc: d
  condition: >
    proc.name = bash and
    proc.name < 3
  output: o
  priority: WARNING
- rule: r3
  desc: d
  condition: proc.name regex '(' or proc.name glob '[a' or fd.num = abc
  output: o %proc.bad
  priority: LOUD
  colour: red
- macro: m1
  condition: m2 and proc.pid = 1
- macro: m2
  condition: m1
- list: l1
  items: [l2]
- list: l2
  items: [l1]
- rule: r4
  desc: d
  condition: m1 or undefined_macro or proc.name foo x
  output: o
  priority: INFO
- rule: r5
  desc: d
  condition: evt.type = execve
  output: o
  priority: INFO
  exceptions:
    - name: e
      fields: [proc.name, proc.pname]
      comps: [=, like]
      values: [[a, b]]
    - name: f
      fields: [proc.name, proc.pname]
      values: [[a, b, c]]
",
    )]);
    assert_eq!(
        errs,
        vec![
            "e.yaml:18:3: rule 'r3': unknown key 'colour'",
            "e.yaml:17:13: rule 'r3': invalid priority 'LOUD': expected EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFORMATIONAL or DEBUG",
            "e.yaml:23:9: list 'l1': list cycle: l1 -> l2 -> l1",
            "e.yaml:25:9: list 'l2': list cycle: l2 -> l1 -> l2",
            "e.yaml:22:14: macro 'm2': macro cycle: m1 -> m2 -> m1",
            "e.yaml:20:14: macro 'm1': macro cycle: m2 -> m1 -> m2",
            "e.yaml:3:35: rule 'r1': unknown field 'proc.nope'",
            "e.yaml:10:15: rule 'r2': operator '<' cannot be used with string field 'proc.name'",
            "e.yaml:29:49: rule 'r4': unknown operator 'foo'",
            "e.yaml:40:18: rule 'r5': exception 'e': unknown operator 'like'",
            "e.yaml:44:16: rule 'r5': exception 'f': value has 3 items but fields has 2",
        ]
    );
}

#[test]
fn compile_errors_are_all_reported() {
    let errs = errors(&[(
        "c.yaml",
        "\
- rule: r3
  desc: d
  condition: proc.name regex '(' or proc.name glob '[a' or fd.num = abc or undefined_macro
  output: o %proc.bad
  priority: INFO
",
    )]);
    assert_eq!(
        errs,
        vec![
            "c.yaml:4:14: rule 'r3': unknown field 'proc.bad'",
            "c.yaml:3:30: rule 'r3': invalid regex '(': unclosed group",
            "c.yaml:3:52: rule 'r3': invalid glob '[a': unclosed character class; missing ']'",
            "c.yaml:3:69: rule 'r3': 'abc' is not a number (field 'fd.num' is i64)",
            "c.yaml:3:76: rule 'r3': undefined macro 'undefined_macro'",
        ]
    );
}

#[test]
fn yaml_and_structure_errors() {
    assert_eq!(
        errors(&[("y.yaml", "- rule: x\n  desc: [a\n")]),
        vec!["y.yaml:3:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"]
    );
    assert_eq!(
        errors(&[("y.yaml", "rule: x\n")]),
        vec!["y.yaml:1:1: a rules file must be a list of items (- rule:, - macro:, - list:)"]
    );
    assert_eq!(
        errors(&[(
            "y.yaml",
            "- rule: x\n  desc: d\n  condition: proc.pid = 1\n"
        )]),
        vec![
            "y.yaml:1:3: rule 'x': missing required key 'output'",
            "y.yaml:1:3: rule 'x': missing required key 'priority'",
        ]
    );
    assert_eq!(
        errors(&[("y.yaml", "- widget: x\n")]),
        vec![
            "y.yaml:1:3: unknown item 'widget': expected rule, macro, list, response, required_engine_version or required_plugin_versions"
        ]
    );
    assert_eq!(
        errors(&[(
            "y.yaml",
            "- macro: m\n  condition: proc.pid = 1\n  append: true\n"
        )]),
        vec!["y.yaml:1:3: macro 'm': macro 'm' is not defined: cannot append to or override it"]
    );
    assert_eq!(
        errors(&[(
            "y.yaml",
            "- list: l\n  items: [a]\n- list: l\n  items: [b]\n  override:\n    items: merge\n"
        )]),
        vec![
            "y.yaml:6:12: list 'l': override of 'items' must be 'append' or 'replace'",
            "y.yaml:4:10: list 'l': key 'items' is not listed in 'override'",
        ]
    );
    // Errors of several files are all collected, in order.
    assert_eq!(
        errors(&[("a.yaml", "- list: [\n"), ("b.yaml", "- nope: 1\n")]).len(),
        2
    );
}

#[test]
fn hostile_inputs_do_not_panic() {
    for text in [
        "",
        "---",
        "- ",
        "- rule:",
        "- rule: [a]",
        "- list: l\n  items: a",
        "- &a [*a]",
        "- *x",
        "- rule: r\n  desc: d\n  condition: \"\\u0000\"\n  output: '%'\n  priority: info",
        "- rule: r\n  desc: d\n  condition: proc.name = \"\u{1F600}\" and proc.aname[999999999999999999999] = 1\n  output: '%(proc.name'\n  priority: info",
        "- macro: m\n  condition: m\n- rule: r\n  desc: d\n  condition: m\n  output: o\n  priority: info",
        "- rule: r\n  desc: d\n  condition: tolower(\n  output: o\n  priority: info",
        "- rule: r\n  desc: d\n  condition: fd.net = 10.0.0.0/99 or fd.sip in (::1, x)\n  output: o\n  priority: info",
        "- rule: r\n  desc: d\n  condition: proc.name bcontains zz\n  output: o\n  priority: info",
        "{a: [1, {b: c}]}",
        "- [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]",
    ] {
        let _ = load(&[("h.yaml", text)]);
    }
}

fn fixture_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".fixtures.yaml"))
        })
        .collect();
    files.sort();
    files
}

pub(super) fn run_fixture_files(engine: &Engine, files: &[std::path::PathBuf]) -> usize {
    use crate::rules::fixtures;
    let mut count = 0;
    let mut failures = Vec::new();
    for f in files {
        let fx = fixtures::parse_file(f).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        count += fx.len();
        for r in fixtures::run(engine, &fx) {
            if !r.failures.is_empty() {
                failures.push(format!(
                    "{}:{}: {}: {:?} (fired: {:?})",
                    r.file, r.line, r.name, r.failures, r.fired
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    count
}

#[test]
fn default_ruleset_fixtures_pass() {
    use crate::rules::fixtures;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let engine = Engine::load_paths(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    // Every rule is active, and every rule has fixtures that make it fire.
    for s in engine.summaries() {
        assert!(
            matches!(s.status, RuleStatus::Active { .. }),
            "{}: {:?}",
            s.name,
            s.status
        );
    }
    let files = fixture_files(&dir);
    assert!(files.len() >= 5, "{files:?}");
    let count = run_fixture_files(&engine, &files);
    assert!(count >= 100, "only {count} fixtures");
    let mut fired = std::collections::HashSet::new();
    let mut negative = std::collections::HashSet::new();
    for f in &files {
        for fx in fixtures::parse_file(f).unwrap() {
            fired.extend(fx.fires.iter().cloned());
            negative.extend(fx.not_fires.iter().cloned());
            if fx.exclusive && fx.fires.is_empty() {
                negative.extend(engine.rules().iter().map(|r| r.name.clone()));
            }
        }
    }
    for r in engine.rules() {
        assert!(
            fired.contains(&r.name),
            "no fixture makes '{}' fire",
            r.name
        );
        assert!(
            negative.contains(&r.name),
            "no negative fixture for '{}'",
            r.name
        );
        assert!(r.tags.iter().any(|t| t.starts_with("mitre_")), "{}", r.name);
        assert!(r.tags.iter().any(|t| t.starts_with('T')), "{}", r.name);
        assert!(!r.desc.is_empty(), "{}", r.name);
    }
    // A fixture expecting the wrong outcome fails with a message.
    let bad = fixtures::parse(
        "f.yaml",
        "- name: wrong\n  event: {kind: exec, time: t, pid: 1, tid: 1, comm: sh, result: 0, args: [sh], process: {tty: 1}, container: {id: abc}}\n  fires: [Nope]\n  exclusive: true\n",
    )
    .unwrap();
    let r = &fixtures::run(&engine, &bad)[0];
    assert_eq!(
        r.failures,
        vec![
            "rule 'Nope' is not loaded (or not active)".to_string(),
            "expected no rule but those in 'fires' to fire, 'Interactive shell in container' did"
                .to_string(),
        ]
    );
}

#[test]
fn default_ruleset_outputs_name_the_context() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let engine = Engine::load_paths(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let ev = serde_json::json!({
        "kind": "exec", "time": "t", "pid": 5, "tid": 5, "comm": "sh", "result": 0,
        "args": ["sh"],
        "process": {"name": "sh", "cmdline": "sh", "tty": 34816, "user": "root"},
        "container": {"id": "abc", "name": "web", "image": "nginx:1.25"}
    });
    let je = JsonEvent::new(&ev).unwrap();
    let rule = engine.rule("Interactive shell in container").unwrap();
    let alert = engine.alert(rule, &je);
    for k in [
        "container.name",
        "container.image",
        "container.id",
        "proc.cmdline",
        "user.name",
    ] {
        assert!(
            alert.output_fields.contains_key(k),
            "{k}: {:?}",
            alert.output_fields
        );
    }
    for r in engine.rules() {
        let (_, fields) = r.format(&je);
        assert!(
            r.tags.iter().any(|t| t == "host" || t == "container"),
            "rule '{}' says neither host nor container in its tags",
            r.name
        );
        // A rule of the node alone names no container.
        let watches_containers = r.tags.iter().any(|t| t == "container");
        let container_fields = ["container.name", "container.image", "container.id"];
        for k in ["proc.cmdline", "user.name"]
            .into_iter()
            .chain(container_fields.into_iter().filter(|_| watches_containers))
        {
            assert!(fields.contains_key(k), "rule '{}' output lacks {k}", r.name);
        }
    }
}

#[test]
fn site_override_example_works() {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let example = rules.join("examples/site_overrides.yaml");
    let engine =
        Engine::load_paths(&[rules.clone(), example.clone()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        engine
            .rule("Interactive shell in container")
            .unwrap()
            .priority,
        crate::rules::Priority::Critical
    );
    let count = run_fixture_files(
        &engine,
        &[rules.join("examples/site_overrides.fixtures.yaml")],
    );
    assert!(count >= 5);
    // The default fixtures still pass with the site's tuning loaded.
    run_fixture_files(&engine, &fixture_files(&rules));
}
