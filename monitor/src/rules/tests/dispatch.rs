//! Rules filed by the value of a field (`rules::dispatch`) fire exactly as if every
//! rule ran: same rules, same order, `first` still the first in load order.
use serde_json::{Value, json};

use crate::rules::{Engine, JsonEvent, RuleMatching, Scratch};

const RULES: &str = r#"
- list: shells
  items: [bash, sh, zsh]
- macro: spawned
  condition: evt.type = execve and evt.res = SUCCESS
- rule: any exec
  desc: runs for every event
  condition: spawned and proc.pid > 0
  output: o
  priority: INFO
- rule: shell
  desc: filed under bash, sh and zsh
  condition: spawned and proc.name in (shells) and not proc.pname = init
  output: o
  priority: INFO
- rule: curl or wget
  desc: filed under curl and wget through an or of ands
  condition: spawned and ((proc.name = curl and proc.args contains http) or (proc.name = wget and proc.args contains http))
  output: o
  priority: INFO
- rule: bash again
  desc: filed under bash, after an unfiled rule
  condition: proc.name = bash and evt.type = execve
  output: o
  priority: WARNING
- rule: not bash
  desc: a negated test files nothing
  condition: evt.type = execve and proc.name != bash
  output: o
  priority: INFO
"#;

fn exec(name: &str, args: &[&str]) -> Value {
    json!({
        "kind": "exec", "syscall": "execve", "time": "2025-01-01T00:00:00Z", "boot_ns": 10,
        "pid": 42, "tid": 42, "comm": name, "cgroup_id": 1, "ppid": 41, "uid": 0, "gid": 0,
        "result": 0, "exe": format!("/usr/bin/{name}"), "args": args,
        "process": {"pid": 42, "ppid": 41, "name": name, "exe": name,
            "exepath": format!("/usr/bin/{name}"), "args": &args[1..], "cmdline": args.join(" ")},
        "ancestors": [{"pid": 41, "name": "sshd"}],
        "container": {"id": "host"}
    })
}

fn fired(engine: &Engine, event: &Value) -> Vec<String> {
    let event = JsonEvent::new(event).unwrap();
    let mut out = Vec::new();
    engine.evaluate(&event, &mut Scratch::default(), &mut out);
    out.iter().map(|r| r.name.clone()).collect()
}

#[test]
fn filed_rules_fire_in_load_order() {
    let mut engine = Engine::load_sources(&[("d.yaml".into(), RULES.into())]).unwrap();
    assert_eq!(
        fired(&engine, &exec("bash", &["bash", "-i"])),
        ["any exec", "shell", "bash again"]
    );
    assert_eq!(
        fired(&engine, &exec("zsh", &["zsh"])),
        ["any exec", "shell", "not bash"]
    );
    assert_eq!(
        fired(&engine, &exec("wget", &["wget", "http://x"])),
        ["any exec", "curl or wget", "not bash"]
    );
    assert_eq!(
        fired(&engine, &exec("curl", &["curl", "file:///x"])),
        ["any exec", "not bash"]
    );
    assert_eq!(
        fired(&engine, &exec("cat", &["cat"])),
        ["any exec", "not bash"]
    );
    engine.set_rule_matching(RuleMatching::First);
    assert_eq!(fired(&engine, &exec("bash", &["bash"])), ["any exec"]);
}

#[test]
fn first_match_is_the_first_in_load_order_among_filed_rules() {
    let rules = RULES.replace("spawned and proc.pid > 0", "proc.name = nothing");
    let mut engine = Engine::load_sources(&[("d.yaml".into(), rules)]).unwrap();
    engine.set_rule_matching(RuleMatching::First);
    assert_eq!(fired(&engine, &exec("bash", &["bash"])), ["shell"]);
    assert_eq!(fired(&engine, &exec("cat", &["cat"])), ["not bash"]);
}

#[test]
fn an_event_without_the_field_runs_only_unfiled_rules() {
    let engine = Engine::load_sources(&[("d.yaml".into(), RULES.into())]).unwrap();
    let mut event = exec("bash", &["bash"]);
    event["process"].as_object_mut().unwrap().remove("name");
    event["comm"] = json!(null);
    assert_eq!(fired(&engine, &event), ["any exec"]);
}
