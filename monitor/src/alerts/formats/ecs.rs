//! ECS 9.4.0 documents (<https://www.elastic.co/docs/reference/ecs>), for Elastic.
//!
//! `event.kind` is `alert` (a detection made outside the Elastic Stack); the event's
//! own category and type ride beside `intrusion_detection`. What ECS has no field for
//! is kept under `monitor.*`, a custom field set as ECS asks custom fields to be.
use serde_json::{Map, Value, json};

use super::{Activity, Facts, PRODUCT, VERSION, put, put_text};
use crate::{
    alerts::model::{Alert, severity},
    responses::{Outcome, Point},
};

/// The ECS version written in `ecs.version`.
pub const ECS_VERSION: &str = "9.4.0";

/// The document for `alert`.
pub fn document(alert: &Alert) -> Value {
    let facts = Facts::of(alert);
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), alert.time.clone().into());
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert("message".into(), alert.output.clone().into());
    doc.insert("event".into(), event(&facts));
    doc.insert("rule".into(), json!({ "name": alert.rule }));
    doc.insert("log".into(), json!({ "level": alert.priority.as_str() }));
    doc.insert(
        "host".into(),
        json!({ "hostname": alert.hostname, "name": alert.hostname }),
    );
    doc.insert(
        "agent".into(),
        json!({ "type": PRODUCT, "version": VERSION, "name": alert.hostname }),
    );
    if !alert.tags.is_empty() {
        doc.insert("tags".into(), alert.tags.clone().into());
    }
    put(&mut doc, "process", process(&facts));
    put(&mut doc, "user", user(&facts));
    put(&mut doc, "file", file(&facts));
    put(
        &mut doc,
        "destination",
        endpoint(facts.destination.as_ref()),
    );
    put(&mut doc, "source", endpoint(facts.source.as_ref()));
    if let Some(transport) = &facts.transport {
        doc.insert("network".into(), json!({ "transport": transport }));
    }
    put(&mut doc, "container", container(&facts));
    if let Some((pod, namespace)) = facts.pod() {
        let mut orchestrator = json!({
            "type": "kubernetes",
            "resource": { "type": "pod", "name": pod },
        });
        if let Some(namespace) = namespace {
            orchestrator["namespace"] = namespace.into_owned().into();
        }
        doc.insert("orchestrator".into(), orchestrator);
    }
    put(&mut doc, "threat", threat(&facts));
    doc.insert("monitor".into(), custom(alert));
    Value::Object(doc)
}

fn event(facts: &Facts) -> Value {
    let alert = facts.alert;
    let (category, kind) = category(facts.activity);
    let mut categories = vec!["intrusion_detection"];
    let mut types = vec![if blocked(alert) { "denied" } else { "info" }];
    if let Some(category) = category {
        categories.push(category);
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    let mut event = json!({
        "kind": "alert",
        "category": categories,
        "type": types,
        "id": facts.uid,
        "module": PRODUCT,
        "dataset": "monitor.alerts",
        "provider": alert.source,
        "severity": severity(alert.priority),
    });
    if let Some(event_type) = &alert.event_type {
        event["action"] = event_type.clone().into();
    }
    event
}

/// Whether a response kept the event from taking effect.
fn blocked(alert: &Alert) -> bool {
    alert.response.as_ref().is_some_and(|taken| {
        taken.outcome == Outcome::Denied
            || (taken.outcome == Outcome::Killed && taken.point == Some(Point::Kernel))
    })
}

/// The ECS category of the event and its type within that category.
fn category(activity: Activity) -> (Option<&'static str>, &'static str) {
    match activity {
        Activity::Exec | Activity::Fork => (Some("process"), "start"),
        Activity::Exit => (Some("process"), "end"),
        Activity::Inject | Activity::SetUid | Activity::ProcessOther => (Some("process"), "change"),
        Activity::FileOpen => (Some("file"), "access"),
        Activity::FileCreate => (Some("file"), "creation"),
        Activity::FileDelete => (Some("file"), "deletion"),
        Activity::FileRename | Activity::FileAttributes => (Some("file"), "change"),
        Activity::Connect | Activity::Accept => (Some("network"), "connection"),
        Activity::Listen => (Some("network"), "start"),
        Activity::Traffic | Activity::NetworkOther => (Some("network"), "info"),
        Activity::Unknown => (None, "info"),
    }
}

fn process(facts: &Facts) -> Option<Value> {
    let p = &facts.process;
    if p.is_empty() {
        return None;
    }
    let mut process = Map::new();
    put(&mut process, "pid", p.pid);
    put_text(&mut process, "name", p.name.clone());
    put_text(&mut process, "executable", p.executable.clone());
    put_text(&mut process, "command_line", p.command_line.clone());
    put_text(
        &mut process,
        "working_directory",
        p.working_directory.clone(),
    );
    put(&mut process, "entity_id", p.exec_id);
    put(&mut process, "user", user(facts));
    let mut parent = Map::new();
    put(&mut parent, "pid", p.parent_pid);
    put_text(&mut parent, "name", p.parent_name.clone());
    put(&mut parent, "entity_id", p.parent_exec_id);
    if !parent.is_empty() {
        process.insert("parent".into(), parent.into());
    }
    Some(process.into())
}

fn user(facts: &Facts) -> Option<Value> {
    let p = &facts.process;
    let mut user = Map::new();
    put_text(&mut user, "name", p.user_name.clone());
    put_text(&mut user, "id", p.user_id.clone());
    (!user.is_empty()).then(|| user.into())
}

fn file(facts: &Facts) -> Option<Value> {
    let path = facts.file.as_deref()?;
    let mut file = json!({ "path": path, "name": path.rsplit('/').next().unwrap_or(path) });
    if let Some((directory, _)) = path.rsplit_once('/').filter(|(dir, _)| !dir.is_empty()) {
        file["directory"] = directory.into();
    }
    Some(file)
}

fn endpoint(end: Option<&super::Endpoint>) -> Option<Value> {
    let end = end?;
    let mut endpoint = Map::new();
    put_text(&mut endpoint, "ip", end.ip.clone());
    put(&mut endpoint, "port", end.port);
    (!endpoint.is_empty()).then(|| endpoint.into())
}

fn container(facts: &Facts) -> Option<Value> {
    let id = facts.container_id()?;
    let mut container = Map::new();
    container.insert("id".into(), id.into_owned().into());
    put_text(&mut container, "name", facts.container_name());
    if let Some((repository, tag)) = facts.image() {
        let mut image = json!({ "name": repository });
        if let Some(tag) = tag {
            image["tag"] = json!([tag]);
        }
        if let Some(image_id) = facts
            .alert
            .container
            .as_ref()
            .and_then(|c| c.image_id.as_deref())
        {
            image["hash"] = json!({ "all": [image_id] });
        }
        container.insert("image".into(), image);
    }
    if let Some(labels) = facts
        .alert
        .container
        .as_ref()
        .map(|c| &c.labels)
        .filter(|l| !l.is_empty())
    {
        container.insert("labels".into(), labels.clone().into());
    }
    Some(container.into())
}

fn threat(facts: &Facts) -> Option<Value> {
    if facts.tactics.is_empty() && facts.techniques.is_empty() {
        return None;
    }
    let mut threat = json!({ "framework": "MITRE ATT&CK" });
    if !facts.tactics.is_empty() {
        threat["tactic"] = json!({
            "id": facts.tactics.iter().map(|t| t.id).collect::<Vec<_>>(),
            "name": facts.tactics.iter().map(|t| t.name).collect::<Vec<_>>(),
        });
    }
    let (subs, techniques): (Vec<&str>, Vec<&str>) =
        facts.techniques.iter().partition(|id| id.contains('.'));
    let mut ids: Vec<&str> = techniques;
    // A sub-technique's technique is a technique of the alert too.
    for sub in &subs {
        let technique = sub.split_once('.').map_or(*sub, |(t, _)| t);
        if !ids.contains(&technique) {
            ids.push(technique);
        }
    }
    if !ids.is_empty() {
        threat["technique"] = json!({ "id": ids });
    }
    if !subs.is_empty() {
        threat["technique"]["subtechnique"] = json!({ "id": subs });
    }
    Some(threat)
}

/// The custom field set: the alert's Falco keys ECS has no field for.
fn custom(alert: &Alert) -> Value {
    let mut custom = Map::new();
    custom.insert("priority".into(), alert.priority.as_str().into());
    custom.insert("output_fields".into(), alert.output_fields.clone().into());
    if let Some(response) = &alert.response {
        custom.insert("response".into(), json!(response));
    }
    if let Some(aggregated) = &alert.aggregated {
        custom.insert("aggregated".into(), json!(aggregated));
    }
    custom.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{alerts::formats::sample_alert, responses::Taken};

    #[test]
    fn a_file_alert_in_a_pod() {
        let doc = document(&sample_alert());
        assert_eq!(
            doc["event"]["category"],
            json!(["intrusion_detection", "file"])
        );
        assert_eq!(doc["event"]["type"], json!(["info", "access"]));
        assert_eq!(doc["event"]["severity"], 4);
        assert_eq!(
            doc["file"],
            json!({"path": "/etc/shadow", "name": "shadow", "directory": "/etc"})
        );
        assert_eq!(doc["process"]["parent"]["entity_id"], "4200-1");
        assert_eq!(doc["user"], json!({"name": "root", "id": "0"}));
        assert_eq!(
            doc["orchestrator"],
            json!({"type": "kubernetes", "namespace": "prod", "resource": {"type": "pod", "name": "shop-7d9"}})
        );
        assert_eq!(doc["container"]["image"]["tag"], json!(["1.2"]));
        assert_eq!(doc["container"]["labels"], json!({"app": "shop"}));
        assert_eq!(doc["threat"]["technique"]["id"], json!(["T1003"]));
        assert_eq!(
            doc["threat"]["technique"]["subtechnique"]["id"],
            json!(["T1003.008"])
        );
        assert!(doc.get("destination").is_none());
    }

    #[test]
    fn a_denied_event_is_typed_denied() {
        let mut alert = sample_alert();
        alert.response = Some(Taken {
            name: "stop".into(),
            action: "deny".into(),
            mode: "enforce".into(),
            point: Some(Point::Kernel),
            outcome: Outcome::Denied,
            reason: None,
        });
        assert_eq!(
            document(&alert)["event"]["type"],
            json!(["denied", "access"])
        );
        alert.response.as_mut().unwrap().outcome = Outcome::WouldDeny;
        assert_eq!(document(&alert)["event"]["type"], json!(["info", "access"]));
    }
}
