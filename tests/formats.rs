//! The OCSF and ECS alert formats, end to end through `monitor replay`: every default
//! rule fixture's alerts, in each format, validate against the published schema's
//! field list (`tests/schemas/`) and equal the golden files in `tests/golden/`.
//!
//! After a deliberate change of a format, `MONITOR_BLESS=1 cargo test --test formats`
//! writes the golden files anew; review their diff like code.
mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use monitor::rules::fixtures;
use serde_json::Value;
use support::schemas::{Ecs, Ocsf};

const FORMATS: [&str; 3] = ["ocsf", "ocsf-activity", "ecs"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every default rule fixture's event, one JSON line each, in file order, in a file
/// of the test's own (`name`).
fn fixture_events(name: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".fixtures.yaml"))
        .collect();
    files.sort();
    let mut lines = String::new();
    for file in files {
        for fixture in fixtures::parse_file(&file).unwrap_or_else(|e| panic!("{e:?}")) {
            lines.push_str(&fixture.event.to_string());
            lines.push('\n');
        }
    }
    let path = std::env::temp_dir().join(format!(
        "monitor-formats-{}-{name}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, lines).unwrap();
    path
}

fn replay(events: &Path, format: &str) -> Vec<String> {
    let rules = repo().join("rules");
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("replay")
        .arg(events)
        .args(["--hostname", "node-1", "--format", format, "--rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn every_default_rule_alert_validates_and_matches_its_golden_file() {
    let events = fixture_events("golden");
    let falco = parse(&replay(&events, "json"));
    assert!(falco.len() > 150, "{} alerts", falco.len());
    let rules: BTreeSet<&str> = falco.iter().filter_map(|a| a["rule"].as_str()).collect();
    let (ocsf, ecs) = (Ocsf::load(), Ecs::load());
    for format in FORMATS {
        let lines = replay(&events, format);
        let docs = parse(&lines);
        assert_eq!(docs.len(), falco.len(), "{format}: one document per alert");
        for (doc, alert) in docs.iter().zip(&falco) {
            let errors = if format == "ecs" {
                ecs.errors(doc)
            } else {
                ocsf.errors(doc)
            };
            assert!(errors.is_empty(), "{format}: {errors:#?}\n{doc}");
            // The document is the alert's: its rule and its message.
            let (rule, message) = if format == "ecs" {
                (&doc["rule"]["name"], &doc["message"])
            } else {
                (&doc["unmapped"]["rule"], &doc["message"])
            };
            assert_eq!(rule, &alert["rule"], "{format}");
            assert_eq!(message, &alert["output"], "{format}");
        }
        let golden = repo().join(format!("tests/golden/replay.{format}.jsonl"));
        let text = lines.join("\n") + "\n";
        if std::env::var_os("MONITOR_BLESS").is_some() {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (MONITOR_BLESS=1 cargo test --test formats writes it)",
                golden.display()
            )
        });
        if let Some((n, (want, got))) = expected
            .lines()
            .zip(text.lines())
            .enumerate()
            .find(|(_, (want, got))| want != got)
        {
            panic!(
                "{format}: line {} differs from {}\nwant: {want}\n got: {got}",
                n + 1,
                golden.display()
            );
        }
        assert_eq!(expected.lines().count(), lines.len(), "{format}");
    }
    assert!(rules.len() > 40, "{} rules alerted", rules.len());
    std::fs::remove_file(events).unwrap();
}

/// The document of the first alert of `rule` about a connection to `address`.
fn first_of(docs: &[Value], falco: &[Value], rule: &str, address: &str) -> Value {
    let at = falco
        .iter()
        .position(|a| a["rule"] == rule && a["output_fields"]["fd.sip"] == address)
        .unwrap_or_else(|| panic!("no alert of {rule} to {address}"));
    docs[at].clone()
}

#[test]
fn documents_carry_the_event_the_rule_saw() {
    let events = fixture_events("documents");
    let falco = parse(&replay(&events, "json"));
    // rules/network.fixtures.yaml's "curl to port 8080 of an external address".
    const CONNECT: &str = "Unexpected outbound connection from container";
    const ADDRESS: &str = "203.0.113.10";

    let ocsf = parse(&replay(&events, "ocsf"));
    let doc = first_of(&ocsf, &falco, CONNECT, ADDRESS);
    assert_eq!(doc["class_uid"], 2004);
    assert_eq!(doc["type_uid"], 200401);
    assert_eq!(doc["severity_id"], 2, "NOTICE is Low");
    assert_eq!(doc["finding_info"]["title"], CONNECT);
    assert_eq!(doc["finding_info"]["analytic"]["type_id"], 1);
    assert_eq!(
        (doc["action_id"].clone(), doc["disposition_id"].clone()),
        (3.into(), 15.into())
    );
    let evidence = &doc["evidences"][0];
    assert_eq!(evidence["dst_endpoint"]["ip"], "203.0.113.10");
    assert_eq!(evidence["dst_endpoint"]["port"], 8080);
    assert_eq!(evidence["process"]["name"], "curl");
    assert_eq!(evidence["process"]["uid"], "1308-1");
    assert_eq!(evidence["container"]["name"], "api");
    let techniques: Vec<&Value> = doc["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["technique"]["uid"])
        .collect();
    assert_eq!(techniques, ["T1071", "T1041"]);
    assert_eq!(
        doc["time"], 1_740_830_400_000_i64,
        "2025-03-01T12:00:00Z in ms"
    );

    let activity = parse(&replay(&events, "ocsf-activity"));
    let doc = first_of(&activity, &falco, CONNECT, ADDRESS);
    assert_eq!(doc["class_uid"], 4001);
    assert_eq!(doc["type_uid"], 400101);
    assert_eq!(doc["dst_endpoint"]["port"], 8080);
    assert_eq!(doc["policy"]["name"], CONNECT);

    let ecs = parse(&replay(&events, "ecs"));
    let doc = first_of(&ecs, &falco, CONNECT, ADDRESS);
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(
        doc["event"]["category"],
        serde_json::json!(["intrusion_detection", "network"])
    );
    assert_eq!(
        doc["event"]["type"],
        serde_json::json!(["info", "connection"])
    );
    assert_eq!(doc["event"]["action"], "connect");
    assert_eq!(doc["destination"]["ip"], "203.0.113.10");
    assert_eq!(doc["destination"]["port"], 8080);
    assert_eq!(doc["container"]["image"]["name"], "python");
    assert_eq!(
        doc["container"]["image"]["tag"],
        serde_json::json!(["3.12-slim"])
    );
    assert_eq!(
        doc["threat"]["technique"]["id"],
        serde_json::json!(["T1071", "T1041"])
    );
    assert_eq!(
        doc["threat"]["tactic"]["name"],
        serde_json::json!(["Command and Control", "Exfiltration"])
    );
    // Falco's output fields stay whole in the custom field set.
    let alert = falco
        .iter()
        .find(|a| a["rule"] == CONNECT && a["output_fields"]["fd.sip"] == ADDRESS)
        .unwrap();
    assert_eq!(doc["monitor"]["output_fields"], alert["output_fields"]);
    // The same alert has the same id in every format and every run.
    let ocsf_doc = first_of(&ocsf, &falco, CONNECT, ADDRESS);
    assert_eq!(doc["event"]["id"], ocsf_doc["finding_info"]["uid"]);
    assert_eq!(doc["event"]["id"].as_str().unwrap().len(), 32);
    std::fs::remove_file(events).unwrap();
}

/// The checks themselves can fail: a valid document made wrong in each way they
/// look for.
#[test]
fn the_schema_checks_catch_what_they_check() {
    let events = fixture_events("checks");
    let (ocsf, ecs) = (Ocsf::load(), Ecs::load());
    let falco = parse(&replay(&events, "json"));
    let (rule, address) = (
        "Unexpected outbound connection from container",
        "203.0.113.10",
    );
    let finding = first_of(&parse(&replay(&events, "ocsf")), &falco, rule, address);
    assert_eq!(ocsf.errors(&finding), Vec::<String>::new());
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut doc = finding.clone();
        change(&mut doc);
        ocsf.errors(&doc)
    };
    assert_eq!(
        broken(&|d| d["finding_info"]["rule_name"] = "x".into()),
        ["finding_info.rule_name: no such attribute"]
    );
    assert_eq!(
        broken(&|d| d["severity_id"] = 7.into()),
        [
            "severity_id: 7 is not one of [Number(0), Number(1), Number(2), Number(3), Number(4), Number(5), Number(6), Number(99)]"
        ]
    );
    assert_eq!(
        broken(&|d| {
            d["finding_info"].as_object_mut().unwrap().remove("uid");
        }),
        ["finding_info: required `uid` missing"]
    );
    assert_eq!(
        broken(&|d| d["time"] = "yesterday".into()),
        ["time: \"yesterday\" is not a timestamp_t"]
    );
    assert_eq!(
        broken(&|d| d["type_uid"] = 200402.into()),
        ["type_uid 200402 is not 200401"]
    );
    assert_eq!(
        broken(&|d| d["attacks"] = serde_json::json!([{}])),
        ["attacks[0]: needs one of [String(\"sub_technique\"), String(\"tactic\"), String(\"technique\")]"]
            .map(|e| e.replace("attacks[0]", "attacks"))
    );

    let doc = first_of(&parse(&replay(&events, "ecs")), &falco, rule, address);
    assert_eq!(ecs.errors(&doc), Vec::<String>::new());
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut bad = doc.clone();
        change(&mut bad);
        ecs.errors(&bad)
    };
    assert_eq!(
        broken(&|d| d["process"]["cmdline"] = "sh".into()),
        ["process.cmdline: no such field"]
    );
    assert_eq!(
        broken(&|d| d["event"]["kind"] = "finding".into()),
        [
            "event.kind: \"finding\" is not one of [String(\"alert\"), String(\"asset\"), String(\"enrichment\"), String(\"event\"), String(\"metric\"), String(\"pipeline_error\"), String(\"signal\"), String(\"state\")]"
        ]
    );
    assert_eq!(
        broken(&|d| d["event"]["type"] = serde_json::json!(["info", "installation"])),
        [
            "event.type \"installation\" fits no category of [String(\"intrusion_detection\"), String(\"network\")]"
        ]
    );
    assert_eq!(
        broken(&|d| d["event"]["category"] = "process".into()),
        [
            "event.category: must be an array",
            "event.type \"info\" fits no category of []",
            "event.type \"connection\" fits no category of []"
        ]
    );
    assert_eq!(
        broken(&|d| {
            d.as_object_mut().unwrap().remove("@timestamp");
        }),
        ["required `@timestamp` missing"]
    );
    std::fs::remove_file(events).unwrap();
}
