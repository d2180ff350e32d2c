//! The kernel kills only where the rule matches: for every rule the exactness
//! analysis gives a kill region, the user-space model of the exit program's check
//! (built from the same region the slot is written from) holds an event exactly when
//! the engine matches it, on recorded and random events. Rules the kernel cannot
//! decide are refused, with the check that kept them from it.
use serde_json::Value;

use super::kernel_filter::{fixture_events, random_events};
use crate::{
    clock::BootClock,
    rules::{
        Engine, LiveEvent, Scratch,
        kernel_filter::{Facts, kill_region},
        recorded::enriched_from_json,
    },
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

/// Per rule with a kill region: the events it holds, all of which the engine
/// matches, and the matched events (with a path the kernel reads whole) it holds.
fn check(engine: &Engine, events: &[Value], what: &str) -> usize {
    let clock = BootClock::new();
    let mut scratch = Scratch::default();
    let mut matched = Vec::new();
    let mut held = 0;
    for v in events {
        let enriched = enriched_from_json(v);
        let Some(facts) = Facts::of(&enriched) else {
            continue;
        };
        let live = LiveEvent::enriched(&enriched, &clock);
        engine.evaluate_all(&live, &mut scratch, &mut matched);
        for rule in engine.rules() {
            let Ok(region) = kill_region(rule, None) else {
                continue;
            };
            let holds = region.holds(&facts);
            let matches = matched.iter().any(|m| m.name == rule.name);
            held += usize::from(holds);
            assert!(
                !holds || matches,
                "{what}: a kill slot for \"{}\" holds an event the rule does not match\nfacts: {facts:?}\nevent: {v}",
                rule.name
            );
            let whole = facts.path.as_ref().is_none_or(|p| {
                !monitor_common::filter::path_needs_agent(p)
                    && p.len() + 1 < monitor_common::filter::MAX_FILTER_PATH
            });
            assert!(
                !(matches && whole) || holds,
                "{what}: \"{}\" matches an event its kill slot misses\nfacts: {facts:?}\nevent: {v}",
                rule.name
            );
        }
    }
    held
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
    let held = check(&engine, &fixture_events(), "fixtures");
    assert!(held > 0, "no fixture event held: the test proves nothing");
    let held = check(&engine, &random_events(20_000), "random");
    assert!(held > 200, "only {held} random events held");
}

#[test]
fn the_default_and_falco_rules_get_no_slot_they_do_not_deserve() {
    // Whatever these rulesets' rules get, the check above must hold for them too.
    for (name, engine) in super::kernel_filter::engines() {
        check(&engine, &fixture_events(), name);
        check(&engine, &random_events(5_000), name);
    }
}

#[test]
fn rules_the_kernel_cannot_decide_are_refused_with_the_check_that_stops_it() {
    for (condition, check) in INEXACT_RULES {
        let engine = load(&format!(
            "- rule: r\n  desc: t\n  condition: {condition}\n  output: t\n  priority: WARNING\n"
        ));
        let why = kill_region(&engine.rules()[0], None).expect_err(condition);
        assert!(why.contains(check), "{condition}: {why}");
    }
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
