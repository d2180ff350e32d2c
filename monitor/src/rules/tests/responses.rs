//! Responses in rule files: loading, errors at their place, which rules they cover,
//! and which one acts on an event.
use serde_json::json;

use super::load::load;
use crate::rules::{
    Engine, JsonEvent, Scratch,
    response::{Action, Mode},
};

const RULES: &str = "\
- rule: shadow read
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: read %fd.name
  priority: warning
  tags: [mitre_credential_access]
- rule: shell
  desc: d
  condition: evt.type = execve and proc.name = sh
  output: shell
  priority: notice
  tags: [shell]
- rule: off
  desc: d
  condition: evt.type = execve and proc.name = nope
  output: off
  priority: notice
  enabled: false
  tags: [shell]
";

fn open_by(name: &str, container: &str) -> serde_json::Value {
    json!({"kind": "open", "time": "t", "pid": 10, "tid": 10, "comm": name,
           "syscall": "openat", "path": "/etc/shadow", "resolved_path": "/etc/shadow",
           "flags": 0, "result": 3,
           "process": {"name": name, "pid": 10, "exec_id": "e1"},
           "container": {"id": container, "name": container}})
}

fn acting<'e>(engine: &'e Engine, event: &serde_json::Value) -> Vec<&'e str> {
    let event = JsonEvent::new(event).unwrap();
    let mut scratch = Scratch::default();
    let mut matched = Vec::new();
    engine.evaluate_all(&event, &mut scratch, &mut matched);
    matched
        .iter()
        .filter_map(|rule| engine.response_for(rule, &event, &mut scratch))
        .map(|r| r.name.as_str())
        .collect()
}

#[test]
fn responses_cover_rules_by_name_and_tag_and_default_to_dry_run() {
    let engine = load(&[
        ("rules.yaml", RULES),
        (
            "responses.yaml",
            "\
- response: stop theft
  rules: [shadow read]
  action: kill
- response: no shells
  tags: [shell]
  action: kill
  mode: enforce
",
        ),
    ])
    .unwrap();
    let [theft, shells] = engine.responses() else {
        panic!("two responses: {:?}", engine.responses());
    };
    assert_eq!(
        (theft.action, theft.mode, theft.rules.clone()),
        (Action::Kill, Mode::DryRun, vec!["shadow read".to_string()])
    );
    // The disabled rule carries the tag but is not active: not covered.
    assert_eq!(
        (shells.mode, shells.rules.clone()),
        (Mode::Enforce, vec!["shell".to_string()])
    );
    assert_eq!(acting(&engine, &open_by("cat", "c1")), vec!["stop theft"]);
}

#[test]
fn the_scope_decides_and_the_first_response_in_scope_acts() {
    let engine = load(&[
        ("rules.yaml", RULES),
        (
            "responses.yaml",
            "\
- response: only shop
  rules: [shadow read]
  action: kill
  scope: container.name = shop
- response: everywhere
  rules: [shadow read]
  action: alert
",
        ),
    ])
    .unwrap();
    assert_eq!(acting(&engine, &open_by("cat", "shop")), vec!["only shop"]);
    assert_eq!(acting(&engine, &open_by("cat", "web")), vec!["everywhere"]);
}

#[test]
fn response_errors_say_where_and_what_to_write() {
    let errors = load(&[
        ("rules.yaml", RULES),
        (
            "responses.yaml",
            "\
- response: typo
  rules: [Shadow Read]
  action: kill
- response: bad action
  rules: [shell]
  action: block
- response: bad mode
  rules: [shell]
  action: kill
  mode: on
- response: nothing
  action: kill
- response: no action
  rules: [shell]
- response: bad scope
  rules: [shell]
  action: kill
  scope: proc.nme = x
- response: bad tag
  tags: [nope]
  action: alert
",
        ),
    ])
    .unwrap_err();
    assert_eq!(
        errors,
        vec![
            "responses.yaml:6:11: response 'bad action': invalid action 'block': expected kill, deny or alert",
            "responses.yaml:10:9: response 'bad mode': invalid mode 'on': expected dry-run or enforce",
            "responses.yaml:11:3: response 'nothing': a response names the rules it covers: 'rules: [...]', 'tags: [...]' or both",
            "responses.yaml:13:3: response 'no action': missing required key 'action' (kill, deny or alert)",
            "responses.yaml:2:11: response 'typo': no rule is named 'Shadow Read' (names are exact, case included)",
            "responses.yaml:18:10: response 'bad scope': unknown field 'proc.nme'",
            "responses.yaml:20:10: response 'bad tag': no rule carries the tag 'nope'",
        ]
    );
}

#[test]
fn falco_rules_unchanged_are_covered_from_another_file() {
    let falco = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/falco-rules/falco_rules.yaml"
    ))
    .unwrap();
    let engine = load(&[
        ("falco_rules.yaml", &falco),
        (
            "responses.yaml",
            "\
- response: Stop Falco's sensitive reads
  rules: [Read sensitive file untrusted]
  action: kill
  mode: enforce
",
        ),
    ])
    .unwrap();
    assert_eq!(
        engine.responses()[0].rules,
        vec!["Read sensitive file untrusted".to_string()]
    );
    let event = super::falco::open("cat", "/etc/shadow", "/etc/shadow", 0);
    assert_eq!(
        acting(&engine, &event),
        vec!["Stop Falco's sensitive reads"]
    );
}

#[test]
fn the_responses_example_passes_its_fixtures() {
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let engine = Engine::load_paths(&[rules.clone(), rules.join("examples/responses.yaml")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(engine.responses().len(), 2);
    let count =
        super::load::run_fixture_files(&engine, &[rules.join("examples/responses.fixtures.yaml")]);
    assert_eq!(count, 3);
}

#[test]
fn fixtures_fail_on_the_wrong_response_or_action() {
    use crate::rules::fixtures;
    let engine = load(&[
        ("rules.yaml", RULES),
        (
            "responses.yaml",
            "- response: stop theft\n  rules: [shadow read]\n  action: kill\n",
        ),
    ])
    .unwrap();
    let event = serde_json::to_string(&open_by("cat", "c1")).unwrap();
    let text = format!(
        "- name: wrong\n  responds: [other, stop theft]\n  action: deny\n  event: {event}\n\
         - name: right\n  responds: [stop theft]\n  action: kill\n  event: {event}\n"
    );
    let results = fixtures::run(&engine, &fixtures::parse("f.yaml", &text).unwrap());
    assert_eq!(
        results[0].failures,
        vec![
            "response 'other' is not loaded".to_string(),
            "expected action 'deny', the event gets 'kill'".to_string(),
        ]
    );
    assert!(results[1].failures.is_empty(), "{:?}", results[1].failures);
}
