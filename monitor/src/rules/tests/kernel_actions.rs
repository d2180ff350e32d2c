//! The kernel kills and denies only where the rule matches: for every rule the
//! exactness analysis gives a kill (or deny) region, the user-space model of the
//! exit (or cgroup) program's check, built from the same region the slot is written
//! from, holds an event exactly when the engine matches it, on recorded and random
//! events. Rules the kernel cannot decide are refused, with the check that kept them
//! from it.
use serde_json::Value;

use super::kernel_filter::{evaluate_each, fixture_events, random_events};
use crate::rules::{
    CompiledRule, Engine,
    kernel_filter::{Facts, deny_region, kill_region},
};

/// Rules written on facts the kernel reads, in the shapes rule authors use.
const EXACT_RULES: &str = r#"
- macro: open_read
  condition: (evt.type in (open, openat, openat2) and evt.is_open_read = true and fd.typechar = f and fd.num >= 0)
- macro: container
  condition: (container.id exists and container.id != host)
- list: password_files
  items: [/etc/shadow, /etc/gshadow]
- rule: Password file read in container
  desc: t
  condition: open_read and container and fd.name in (password_files)
  output: t
  priority: WARNING
- rule: Sudoers written
  desc: t
  condition: evt.type in (open, openat, openat2, creat) and evt.is_open_write = true and fd.name = /etc/sudoers
  output: t
  priority: WARNING
- rule: Host preload or hostname opened
  desc: t
  condition: (fd.name = /etc/ld.so.preload or fd.name = /etc/hostname) and container.id = host and evt.type = openat
  output: t
  priority: WARNING
- rule: Failed open of a token in a container
  desc: t
  condition: evt.type = openat and evt.res != SUCCESS and container and fd.name = /run/secrets/kubernetes.io/serviceaccount/token
  output: t
  priority: WARNING
- rule: Directory opened in a container
  desc: t
  condition: evt.type = openat and fd.typechar = d and container and fd.num >= 0
  output: t
  priority: WARNING
"#;

/// Rules the kernel cannot decide, and the check each refusal names.
const INEXACT_RULES: &[(&str, &str)] = &[
    ("evt.type = openat and fd.name startswith /etc/", "fd.name"),
    (
        "evt.type = openat and fd.name = /etc/shadow and not proc.name in (passwd)",
        "proc.name",
    ),
    ("evt.type = openat and fd.directory = /etc", "fd.directory"),
    (
        "evt.type = openat and not fd.name in (/etc/shadow)",
        "fd.name",
    ),
    (
        "evt.type = openat and fd.name = /etc/shadow and proc.aname = sshd",
        "proc.aname",
    ),
    (
        "evt.type = openat and fd.name = /etc/shadow and container.name = web",
        "container.name",
    ),
];

fn load(text: &str) -> Engine {
    let dir = std::env::temp_dir().join(format!("monitor-kernel-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:x}.yaml", text.len()));
    std::fs::write(&path, text).unwrap();
    Engine::load_paths(&[path]).unwrap_or_else(|e| panic!("{e}"))
}

/// A slot's model: does it hold an event with these facts?
type Holds = Box<dyn Fn(&Facts) -> bool>;
/// The model of a rule's slot, when the rule gets one.
type SlotOf = fn(&CompiledRule) -> Option<Holds>;

fn kill_slot(rule: &CompiledRule) -> Option<Holds> {
    let region = kill_region(rule, None).ok()?;
    Some(Box::new(move |facts| region.holds(facts)))
}

fn deny_slot(rule: &CompiledRule) -> Option<Holds> {
    let region = deny_region(rule, None).ok()?;
    Some(Box::new(move |facts| region.holds(facts)))
}

/// Does the kernel judge this event at all? An open's path must be one it reads
/// whole; every IP connect reaches the cgroup programs.
fn judged(facts: &Facts) -> bool {
    facts.path.as_ref().is_none_or(|p| {
        !monitor_common::filter::path_needs_agent(p)
            && p.len() + 1 < monitor_common::filter::MAX_FILTER_PATH
    })
}

/// Per rule with a slot: the events it holds, all of which the engine matches, and
/// the matched events the kernel judges, all of which it holds.
fn check(engine: &Engine, events: &[Value], what: &str, slot_of: SlotOf) -> usize {
    let slots: Vec<_> = engine
        .rules()
        .iter()
        .filter_map(|rule| Some((&rule.name, slot_of(rule)?)))
        .collect();
    let mut held = 0;
    evaluate_each(engine, events, |v, facts, matched| {
        for (rule, holds) in &slots {
            let holds = holds(facts);
            let matches = matched.iter().any(|m| &m.name == *rule);
            held += usize::from(holds);
            assert!(
                !holds || matches,
                "{what}: a slot for \"{rule}\" holds an event the rule does not match\nfacts: {facts:?}\nevent: {v}",
            );
            assert!(
                !(matches && judged(facts)) || holds,
                "{what}: \"{rule}\" matches an event its slot misses\nfacts: {facts:?}\nevent: {v}",
            );
        }
    });
    held
}

/// Asserts that each rule (a condition) is refused a slot by `region`, with a
/// reason that names what stops it.
fn assert_refused(rules: &[(&str, &str)], region: impl Fn(&CompiledRule) -> Result<(), String>) {
    for (condition, check) in rules {
        let engine = load(&format!(
            "- rule: r\n  desc: t\n  condition: {condition}\n  output: t\n  priority: WARNING\n"
        ));
        let why = region(&engine.rules()[0]).expect_err(condition);
        assert!(why.contains(check), "{condition}: {why}");
    }
}

#[test]
fn a_kill_slot_holds_exactly_the_opens_its_rule_matches() {
    let engine = load(EXACT_RULES);
    for rule in engine.rules() {
        assert!(
            kill_region(rule, None).is_ok(),
            "\"{}\": {:?}",
            rule.name,
            kill_region(rule, None)
        );
    }
    let held = check(&engine, &fixture_events(), "fixtures", kill_slot);
    assert!(held > 0, "no fixture event held: the test proves nothing");
    let held = check(&engine, &random_events(20_000), "random", kill_slot);
    assert!(held > 200, "only {held} random events held");
}

/// Connect rules written on facts the cgroup programs read.
const EXACT_DENY_RULES: &str = r#"
- macro: container
  condition: (container.id exists and container.id != host)
- list: mining_ports
  items: [4444, 6443]
- rule: DNS to a public resolver from a container
  desc: t
  condition: evt.type = connect and container and fd.sip = 8.8.8.8 and fd.sport = 53
  output: t
  priority: WARNING
- rule: Outside the private networks
  desc: t
  condition: evt.type = connect and fd.typechar in (4, 6) and not fd.snet in (10.0.0.0/8, 127.0.0.0/8, "::1/128")
  output: t
  priority: WARNING
- rule: Mining pool port over IPv4 from a container
  desc: t
  condition: evt.type = connect and container and fd.sport in (mining_ports) and fd.typechar = 4
  output: t
  priority: WARNING
- rule: Metadata service from the host
  desc: t
  condition: evt.type = connect and container.id = host and fd.net = 169.254.169.254/32
  output: t
  priority: WARNING
- rule: Unexpected port from a container
  desc: t
  condition: evt.type = connect and container and not fd.sport in (80, 443) and fd.sip != 127.0.0.1
  output: t
  priority: WARNING
"#;

/// Connect rules a deny cannot take, and what the refusal names.
const INEXACT_DENY_RULES: &[(&str, &str)] = &[
    (
        "evt.type = connect and fd.sport = 53 and proc.name = curl",
        "proc.name",
    ),
    (
        "evt.type = connect and container.id != host",
        "IP destination",
    ),
    (
        "evt.type = connect and fd.sport = 80 and evt.failed = false",
        "result",
    ),
    (
        "evt.type in (connect, openat) and fd.sport = 80",
        "openat events",
    ),
    (
        "evt.type = connect and fd.sport = 80 and container.image.repository = nginx",
        "container.image.repository",
    ),
];

#[test]
fn a_deny_slot_holds_exactly_the_connects_its_rule_matches() {
    let engine = load(EXACT_DENY_RULES);
    for rule in engine.rules() {
        assert!(
            deny_region(rule, None).is_ok(),
            "\"{}\": {:?}",
            rule.name,
            deny_region(rule, None)
        );
    }
    let held = check(&engine, &random_events(20_000), "random", deny_slot);
    assert!(held > 500, "only {held} random events held");
    assert_refused(INEXACT_DENY_RULES, |rule| deny_region(rule, None).map(drop));
}

#[test]
fn the_default_and_falco_rules_get_no_slot_they_do_not_deserve() {
    // Whatever these rulesets' rules get, the checks above must hold for them too.
    for (name, engine) in super::kernel_filter::engines() {
        for slot_of in [kill_slot as SlotOf, deny_slot] {
            check(&engine, &fixture_events(), name, slot_of);
            check(&engine, &random_events(5_000), name, slot_of);
        }
    }
}

#[test]
fn rules_the_kernel_cannot_decide_are_refused_with_the_check_that_stops_it() {
    assert_refused(INEXACT_RULES, |rule| kill_region(rule, None).map(drop));
    let engine = load(
        "- rule: r\n  desc: t\n  condition: evt.type in (openat, execve) and fd.name = /x\n  output: t\n  priority: WARNING\n",
    );
    let why = kill_region(&engine.rules()[0], None).unwrap_err();
    assert!(why.contains("execve"), "{why}");
    // The default rule on password files checks the process and its ancestors.
    let engine =
        Engine::load_paths(&[concat!(env!("CARGO_MANIFEST_DIR"), "/../rules").into()]).unwrap();
    let rule = engine
        .rules()
        .iter()
        .find(|r| r.name == "Password database read in container")
        .unwrap();
    let why = kill_region(rule, None).unwrap_err();
    assert!(why.contains("proc."), "{why}");
}
