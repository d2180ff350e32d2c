//! OCSF 1.8.0 documents (<https://schema.ocsf.io/1.8.0/>).
//!
//! By default an alert is a Detection Finding (class 2004), the class OCSF names for
//! a security control's alerts (Security Finding, 2001, is deprecated since 1.1.0).
//! `ocsf-activity` writes the event's own activity class instead (Process Activity
//! 1007, File System Activity 1001, Network Activity 4001), with the Security Control
//! profile; an event of none of them stays a Detection Finding. Both carry the
//! `security_control`, `host`, `container` and `datetime` profiles' attributes.
use serde_json::{Map, Value, json};

use super::{Activity, Facts, PRODUCT, VERSION, put, put_text};
use crate::{
    alerts::model::Alert,
    responses::{Outcome, Point},
    rules::Priority,
};

/// The schema version written in `metadata.version`.
pub const SCHEMA_VERSION: &str = "1.8.0";

const PROFILES: [&str; 4] = ["security_control", "host", "container", "datetime"];

/// Which class the documents are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Detection Finding (2004) for every alert.
    Finding,
    /// The event's activity class where it has one.
    Activity,
}

/// One class and activity: uids and captions as the schema has them.
struct Kind {
    class_uid: u64,
    class_name: &'static str,
    category_uid: u64,
    category_name: &'static str,
    activity_id: u64,
    activity_name: &'static str,
}

const FINDING: Kind = Kind {
    class_uid: 2004,
    class_name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
    activity_id: 1,
    activity_name: "Create",
};

/// The document for `alert`.
pub fn document(alert: &Alert, class: Class) -> Value {
    let facts = Facts::of(alert);
    let process = process(&facts);
    let file = file(&facts);
    let destination = endpoint(facts.destination.as_ref());
    let source = endpoint(facts.source.as_ref());
    // An activity class only when the alert has what the class requires (a process,
    // and for a file activity its file; an endpoint for a network one); the finding
    // otherwise, rather than a document with invented objects.
    let kind = match class {
        Class::Activity => activity_kind(facts.activity)
            .filter(|kind| match kind.class_uid {
                1007 => process.is_some(),
                1001 => process.is_some() && file.is_some(),
                _ => destination.is_some() || source.is_some(),
            })
            .unwrap_or(FINDING),
        Class::Finding => FINDING,
    };
    let mut doc = Map::new();
    doc.insert("class_uid".into(), kind.class_uid.into());
    doc.insert("class_name".into(), kind.class_name.into());
    doc.insert("category_uid".into(), kind.category_uid.into());
    doc.insert("category_name".into(), kind.category_name.into());
    doc.insert("activity_id".into(), kind.activity_id.into());
    doc.insert("activity_name".into(), kind.activity_name.into());
    doc.insert(
        "type_uid".into(),
        (kind.class_uid * 100 + kind.activity_id).into(),
    );
    doc.insert(
        "type_name".into(),
        format!("{}: {}", kind.class_name, kind.activity_name).into(),
    );
    doc.insert("time".into(), facts.time_ms.into());
    doc.insert("time_dt".into(), alert.time.clone().into());
    let (severity_id, severity) = severity(alert.priority);
    doc.insert("severity_id".into(), severity_id.into());
    doc.insert("severity".into(), severity.into());
    doc.insert("message".into(), alert.output.clone().into());
    doc.insert("is_alert".into(), true.into());
    doc.insert("metadata".into(), metadata(&facts));
    let (action_id, action, disposition_id, disposition) = verdict(alert);
    doc.insert("action_id".into(), action_id.into());
    doc.insert("action".into(), action.into());
    doc.insert("disposition_id".into(), disposition_id.into());
    doc.insert("disposition".into(), disposition.into());
    let attacks = attacks(&facts);
    if !attacks.is_empty() {
        doc.insert("attacks".into(), attacks.clone().into());
    }
    doc.insert("device".into(), device(&facts));
    if let Some(process) = &process {
        doc.insert("actor".into(), json!({ "process": process }));
    }
    let objects = Objects {
        process,
        file,
        destination,
        source,
    };
    if kind.class_uid == FINDING.class_uid {
        finding(&facts, &mut doc, objects, attacks);
    } else {
        activity(&facts, &kind, &mut doc, objects);
    }
    doc.insert("unmapped".into(), unmapped(alert));
    Value::Object(doc)
}

/// The OCSF objects of what the event touched.
struct Objects {
    process: Option<Value>,
    file: Option<Value>,
    destination: Option<Value>,
    source: Option<Value>,
}

/// What only a Detection Finding has: the finding and its evidence.
fn finding(facts: &Facts, doc: &mut Map<String, Value>, objects: Objects, attacks: Vec<Value>) {
    let alert = facts.alert;
    let mut info = Map::new();
    info.insert("uid".into(), facts.uid.clone().into());
    info.insert("title".into(), alert.rule.clone().into());
    info.insert(
        "analytic".into(),
        json!({ "type_id": 1, "type": "Rule", "name": alert.rule }),
    );
    info.insert("types".into(), json!([alert.source]));
    if !attacks.is_empty() {
        // OCSF asks for the ATT&CK details in the finding too.
        info.insert("attacks".into(), attacks.into());
    }
    doc.insert("finding_info".into(), Value::Object(info));
    doc.insert("status_id".into(), 1.into());
    doc.insert("status".into(), "New".into());

    let mut evidence = Map::new();
    put(&mut evidence, "process", objects.process);
    put(&mut evidence, "file", objects.file);
    put(&mut evidence, "dst_endpoint", objects.destination);
    put(&mut evidence, "src_endpoint", objects.source);
    put(&mut evidence, "container", container(facts));
    if !evidence.is_empty() {
        doc.insert("evidences".into(), json!([evidence]));
    }
    if let Some((pod, namespace)) = facts.pod() {
        let mut resource = Map::new();
        resource.insert("type".into(), "Kubernetes Pod".into());
        resource.insert("name".into(), pod.into_owned().into());
        put_text(&mut resource, "namespace", namespace);
        doc.insert("resources".into(), json!([resource]));
    }
}

/// What an activity class has instead: the rule as the policy, and the class's
/// objects (the process, the file, the endpoints).
fn activity(facts: &Facts, kind: &Kind, doc: &mut Map<String, Value>, objects: Objects) {
    doc.insert("policy".into(), json!({ "name": facts.alert.rule }));
    match kind.class_uid {
        1007 => {
            let launch = match facts.activity {
                Activity::Fork => Some((2, "Fork")),
                Activity::Exec => Some((3, "Exec")),
                _ => None,
            };
            if let Some((id, name)) = launch {
                doc.insert("launch_type_id".into(), id.into());
                doc.insert("launch_type".into(), name.into());
            }
            put(doc, "process", objects.process);
        }
        1001 => put(doc, "file", objects.file),
        _ => {
            put(doc, "dst_endpoint", objects.destination);
            put(doc, "src_endpoint", objects.source);
        }
    }
}

/// The class and activity of an event, where OCSF has an activity class for it.
fn activity_kind(activity: Activity) -> Option<Kind> {
    let process = |activity_id, activity_name| Kind {
        class_uid: 1007,
        class_name: "Process Activity",
        category_uid: 1,
        category_name: "System Activity",
        activity_id,
        activity_name,
    };
    let file = |activity_id, activity_name| Kind {
        class_uid: 1001,
        class_name: "File System Activity",
        category_uid: 1,
        category_name: "System Activity",
        activity_id,
        activity_name,
    };
    let network = |activity_id, activity_name| Kind {
        class_uid: 4001,
        class_name: "Network Activity",
        category_uid: 4,
        category_name: "Network Activity",
        activity_id,
        activity_name,
    };
    Some(match activity {
        Activity::Exec | Activity::Fork => process(1, "Launch"),
        Activity::Exit => process(2, "Terminate"),
        Activity::Inject => process(4, "Inject"),
        Activity::SetUid => process(5, "Set User ID"),
        Activity::ProcessOther => process(99, "Other"),
        Activity::FileOpen => file(14, "Open"),
        Activity::FileCreate => file(1, "Create"),
        Activity::FileDelete => file(4, "Delete"),
        Activity::FileRename => file(5, "Rename"),
        Activity::FileAttributes => file(6, "Set Attributes"),
        Activity::Connect | Activity::Accept => network(1, "Open"),
        Activity::Listen => network(7, "Listen"),
        Activity::Traffic => network(6, "Traffic"),
        Activity::NetworkOther => network(99, "Other"),
        Activity::Unknown => return None,
    })
}

/// Falco's priorities on OCSF's severities.
fn severity(priority: Priority) -> (u64, &'static str) {
    match priority {
        Priority::Emergency | Priority::Alert | Priority::Critical => (5, "Critical"),
        Priority::Error => (4, "High"),
        Priority::Warning => (3, "Medium"),
        Priority::Notice => (2, "Low"),
        Priority::Informational | Priority::Debug => (1, "Informational"),
    }
}

/// `action_id` and `disposition_id` from what a response did. Only an action that
/// took place is reported as one: a dry run, a failure or an exemption is an
/// observation, as is an alert no response covers.
fn verdict(alert: &Alert) -> (u64, &'static str, u64, &'static str) {
    const OBSERVED: (u64, &str, u64, &str) = (3, "Observed", 15, "Detected");
    let Some(taken) = &alert.response else {
        return OBSERVED;
    };
    match (taken.outcome, taken.point) {
        // Refused in the kernel: the syscall did not happen.
        (Outcome::Denied, _) => (2, "Denied", 2, "Blocked"),
        // Killed before the syscall's result reached the process.
        (Outcome::Killed, Some(Point::Kernel)) => (2, "Denied", 2, "Blocked"),
        // Killed after the event: the activity happened, then the process ended.
        (Outcome::Killed, _) => (1, "Allowed", 7, "Custom Action"),
        _ => OBSERVED,
    }
}

fn metadata(facts: &Facts) -> Value {
    let mut metadata = json!({
        "version": SCHEMA_VERSION,
        "product": { "name": PRODUCT, "vendor_name": PRODUCT, "version": VERSION },
        "profiles": PROFILES,
        "uid": facts.uid,
        "log_name": "alerts",
    });
    if !facts.alert.tags.is_empty() {
        metadata["labels"] = facts.alert.tags.clone().into();
    }
    metadata
}

/// The node: OCSF asks for its type, which the agent does not know.
fn device(facts: &Facts) -> Value {
    json!({ "hostname": facts.alert.hostname, "type_id": 0, "type": "Unknown" })
}

fn process(facts: &Facts) -> Option<Value> {
    let p = &facts.process;
    if p.is_empty() {
        return None;
    }
    let mut process = Map::new();
    put(&mut process, "pid", p.pid);
    put_text(&mut process, "name", p.name.clone());
    put_text(&mut process, "cmd_line", p.command_line.clone());
    put_text(
        &mut process,
        "working_directory",
        p.working_directory.clone(),
    );
    put(&mut process, "uid", p.exec_id);
    if let Some(exe) = &p.executable {
        process.insert("file".into(), file_object(exe, 1, "Regular File"));
    }
    let mut user = Map::new();
    put_text(&mut user, "name", p.user_name.clone());
    put_text(&mut user, "uid", p.user_id.clone());
    if !user.is_empty() {
        process.insert("user".into(), user.into());
    }
    let mut parent = Map::new();
    put(&mut parent, "pid", p.parent_pid);
    put_text(&mut parent, "name", p.parent_name.clone());
    put(&mut parent, "uid", p.parent_exec_id);
    if parent.contains_key("pid") || parent.contains_key("uid") {
        process.insert("parent_process".into(), parent.into());
    }
    put(&mut process, "container", container(facts));
    if !process.contains_key("pid") && !process.contains_key("uid") {
        // The object needs a pid or a uid; a process known by name only is no object.
        return None;
    }
    Some(process.into())
}

fn file(facts: &Facts) -> Option<Value> {
    let path = facts.file.as_deref()?;
    Some(file_object(path, 0, "Unknown"))
}

/// A file by its path; the type is known only for executables.
fn file_object(path: &str, type_id: u64, type_name: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut file = json!({ "name": name, "path": path, "type_id": type_id, "type": type_name });
    if let Some((parent, _)) = path
        .rsplit_once('/')
        .filter(|(parent, _)| !parent.is_empty())
    {
        file["parent_folder"] = parent.into();
    }
    file
}

fn endpoint(end: Option<&super::Endpoint>) -> Option<Value> {
    let end = end?;
    let ip = end.ip.as_deref()?;
    let mut endpoint = json!({ "ip": ip });
    if let Some(port) = end.port.filter(|port| *port <= u64::from(u16::MAX)) {
        endpoint["port"] = port.into();
    }
    Some(endpoint)
}

fn container(facts: &Facts) -> Option<Value> {
    let id = facts.container_id()?;
    let mut container = Map::new();
    container.insert("uid".into(), id.into_owned().into());
    put_text(&mut container, "name", facts.container_name());
    let meta = facts.alert.container.as_ref();
    if let Some(image_id) = meta.and_then(|c| c.image_id.as_deref()) {
        let mut image = json!({ "uid": image_id });
        if let Some((repository, tag)) = facts.image() {
            image["name"] = match tag {
                Some(tag) => format!("{repository}:{tag}"),
                None => repository.into_owned(),
            }
            .into();
        }
        container.insert("image".into(), image);
    }
    if let Some(labels) = meta.map(|c| &c.labels).filter(|l| !l.is_empty()) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(key, value)| match value.as_str() {
                Some(text) => format!("{key}={text}"),
                None => format!("{key}={value}"),
            })
            .collect();
        container.insert("labels".into(), labels.into());
    }
    if facts.pod().is_some() {
        container.insert("orchestrator".into(), "Kubernetes".into());
    }
    Some(container.into())
}

/// ATT&CK: a technique per `T…` tag, each with the tactic when the tags name exactly
/// one; the tactics alone when the tags name no technique.
fn attacks(facts: &Facts) -> Vec<Value> {
    let tactic = |t: &super::Tactic| json!({ "uid": t.id, "name": t.name });
    let only_tactic = match facts.tactics.as_slice() {
        [one] => Some(tactic(one)),
        _ => None,
    };
    if facts.techniques.is_empty() {
        return facts
            .tactics
            .iter()
            .map(|t| json!({ "tactic": tactic(t) }))
            .collect();
    }
    facts
        .techniques
        .iter()
        .map(|id| {
            let mut attack = match id.split_once('.') {
                Some((technique, _)) => {
                    json!({ "technique": { "uid": technique }, "sub_technique": { "uid": id } })
                }
                None => json!({ "technique": { "uid": id } }),
            };
            if let Some(tactic) = &only_tactic {
                attack["tactic"] = tactic.clone();
            }
            attack
        })
        .collect()
}

/// Everything of the Falco alert that has no OCSF attribute, under its Falco name.
fn unmapped(alert: &Alert) -> Value {
    let mut unmapped = Map::new();
    unmapped.insert("rule".into(), alert.rule.clone().into());
    unmapped.insert("priority".into(), alert.priority.as_str().into());
    unmapped.insert("source".into(), alert.source.clone().into());
    unmapped.insert("tags".into(), alert.tags.clone().into());
    unmapped.insert("output_fields".into(), alert.output_fields.clone().into());
    put(&mut unmapped, "event_type", alert.event_type.clone());
    if let Some(response) = &alert.response {
        unmapped.insert("response".into(), json!(response));
    }
    if let Some(aggregated) = &alert.aggregated {
        unmapped.insert("aggregated".into(), json!(aggregated));
    }
    unmapped.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{alerts::formats::sample_alert, responses::Taken};

    fn with_response(outcome: Outcome, point: Option<Point>) -> Alert {
        let mut alert = sample_alert();
        alert.response = Some(Taken {
            name: "stop".into(),
            action: "kill".into(),
            mode: "enforce".into(),
            point,
            outcome,
            reason: None,
        });
        alert
    }

    fn verdict_of(alert: &Alert) -> (Value, Value) {
        let doc = document(alert, Class::Finding);
        (doc["action_id"].clone(), doc["disposition_id"].clone())
    }

    #[test]
    fn only_an_action_taken_is_reported_as_one() {
        assert_eq!(verdict_of(&sample_alert()), (3.into(), 15.into()));
        let denied = with_response(Outcome::Denied, Some(Point::Cgroup));
        assert_eq!(verdict_of(&denied), (2.into(), 2.into()));
        let killed_in_kernel = with_response(Outcome::Killed, Some(Point::Kernel));
        assert_eq!(verdict_of(&killed_in_kernel), (2.into(), 2.into()));
        let killed_after = with_response(Outcome::Killed, Some(Point::UserSpace));
        assert_eq!(verdict_of(&killed_after), (1.into(), 7.into()));
        for not_taken in [
            Outcome::WouldKill,
            Outcome::WouldDeny,
            Outcome::Failed,
            Outcome::Exempt,
            Outcome::Capped,
            Outcome::Unsupported,
            Outcome::Alerted,
        ] {
            let alert = with_response(not_taken, Some(Point::Kernel));
            assert_eq!(verdict_of(&alert), (3.into(), 15.into()), "{not_taken:?}");
        }
    }

    #[test]
    fn a_file_alert_as_finding_and_as_file_activity() {
        let alert = sample_alert();
        let finding = document(&alert, Class::Finding);
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["severity_id"], 3);
        assert_eq!(finding["evidences"][0]["file"]["path"], "/etc/shadow");
        assert_eq!(finding["evidences"][0]["file"]["parent_folder"], "/etc");
        assert_eq!(
            finding["evidences"][0]["process"]["parent_process"]["pid"],
            4200
        );
        assert_eq!(
            finding["evidences"][0]["container"]["image"],
            json!({"uid": "sha256:feed", "name": "registry.local:5000/shop:1.2"})
        );
        assert_eq!(
            finding["resources"],
            json!([{"type": "Kubernetes Pod", "name": "shop-7d9", "namespace": "prod"}])
        );
        assert_eq!(
            finding["attacks"],
            json!([{
                "technique": {"uid": "T1003"},
                "sub_technique": {"uid": "T1003.008"},
                "tactic": {"uid": "TA0006", "name": "Credential Access"},
            }])
        );
        let activity = document(&alert, Class::Activity);
        assert_eq!(activity["class_uid"], 1001);
        assert_eq!(activity["type_uid"], 100114);
        assert_eq!(activity["file"]["name"], "shadow");
        assert_eq!(activity["actor"]["process"]["pid"], 4242);
        // Without its file the alert cannot be a file activity.
        let mut no_file = alert.clone();
        no_file.output_fields.remove("fd.name");
        assert_eq!(document(&no_file, Class::Activity)["class_uid"], 2004);
    }
}
