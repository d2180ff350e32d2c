//! The alert as sinks see it: Falco's alert JSON plus this agent's extensions, and the
//! one-line text form for terminals and syslog.
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{output::escape::escape_line, rules::Priority};

/// Falco's alert (`time`, `rule`, `priority`, `source`, `hostname`, `output`, `tags`,
/// `output_fields`) with the extensions `exec_id`, `ancestors` and `container` under
/// their own keys. Serialized, it is always one valid JSON object (serde_json escapes
/// every control character).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    pub rule: String,
    #[serde(serialize_with = "ser_priority", deserialize_with = "de_priority")]
    pub priority: Priority,
    pub source: String,
    pub hostname: String,
    pub output: String,
    pub tags: Vec<String>,
    pub output_fields: Map<String, Value>,
    /// The process's exec id (`process.exec_id` of the event), when known.
    #[serde(default)]
    pub exec_id: Option<String>,
    /// The event's `evt.type` (`execve`, `openat`, `connect`, ...): what OCSF and ECS
    /// documents classify the alert by. Absent on the agent's own alerts (losses,
    /// suppressed alerts), which no event raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default)]
    pub ancestors: Vec<Ancestor>,
    #[serde(default)]
    pub container: Option<Container>,
    /// Only on the summary of repeated alerts (see `aggregate`); absent otherwise, so
    /// every other alert keeps Falco's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregated: Option<Aggregated>,
    /// What a response did about the match (see `crate::responses`); absent when no
    /// response covers the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<crate::responses::Taken>,
}

/// What a summary alert carries under `aggregated` (beside Falco's keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregated {
    /// Alerts of the key in the window, the first (sent at once) included.
    pub count: u64,
    /// Times of the first and last of them (the alerts' `time`).
    pub first: String,
    pub last: String,
    pub window_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ancestor {
    pub pid: Option<u64>,
    pub name: Option<String>,
    pub exe: Option<String>,
    pub exec_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub id: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    /// The image's id (the runtime's `sha256:...`), which OCSF identifies an image by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default)]
    pub labels: Map<String, Value>,
    /// Kubernetes pod name.
    pub pod: Option<String>,
    pub namespace: Option<String>,
}

fn ser_priority<S: Serializer>(p: &Priority, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

fn de_priority<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
    let s = String::deserialize(d)?;
    Priority::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown priority `{s}`")))
}

/// `Priority` in configuration: any case, `info` for Informational.
pub(crate) fn de_priority_config<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
    de_priority(d)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// What an alert tells about the event's process and container beside the rule's
/// output. The daemon's live events and their JSON (replay, fixtures) both answer,
/// with the same values, so `monitor replay` prints what the daemon sends.
pub trait AlertSubject {
    /// The process's exec id (`process.exec_id`).
    fn exec_id(&self) -> Option<String>;
    fn ancestors(&self) -> Vec<Ancestor>;
    fn container(&self) -> Option<Container>;
    /// The executable's path, part of the aggregation key.
    fn exepath(&self) -> Option<String>;
}

/// An event as `monitor events` prints it: the `process`, `ancestors` and `container`
/// objects.
impl AlertSubject for Value {
    fn exec_id(&self) -> Option<String> {
        text(&self["process"]["exec_id"])
    }

    fn ancestors(&self) -> Vec<Ancestor> {
        self["ancestors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|a| Ancestor {
                        pid: a["pid"].as_u64(),
                        name: text(&a["name"]),
                        exe: text(&a["exepath"]).or_else(|| text(&a["exe"])),
                        exec_id: text(&a["exec_id"]),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn container(&self) -> Option<Container> {
        self.get("container").filter(|c| c.is_object()).map(|c| {
            let pod = text(&c["pod"]["name"]).or_else(|| text(&c["pod"]));
            let namespace = text(&c["pod"]["namespace"]).or_else(|| text(&c["namespace"]));
            Container {
                id: text(&c["id"]),
                name: text(&c["name"]),
                image: text(&c["image"]),
                image_id: text(&c["image_id"]),
                labels: c["labels"].as_object().cloned().unwrap_or_default(),
                pod,
                namespace,
            }
        })
    }

    fn exepath(&self) -> Option<String> {
        text(&self["process"]["exepath"])
    }
}

impl Alert {
    /// Builds the alert from the rule engine's alert and the event the rules saw.
    pub fn from_rule_alert(
        alert: crate::rules::Alert,
        hostname: &str,
        subject: &(impl AlertSubject + ?Sized),
    ) -> Alert {
        let time = match &alert.time {
            Value::String(s) => s.clone(),
            Value::Null => {
                humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
            }
            other => other.to_string(),
        };
        Alert {
            time,
            rule: alert.rule,
            priority: alert.priority,
            source: alert.source.to_string(),
            hostname: hostname.to_string(),
            // A folded YAML output (`output: >`) ends with a line break that is no part of
            // the message.
            output: alert.output.trim_end().to_string(),
            tags: alert.tags,
            output_fields: alert.output_fields,
            exec_id: subject.exec_id(),
            event_type: Some(alert.event_type.as_str().to_string()),
            ancestors: subject.ancestors(),
            container: subject.container(),
            aggregated: None,
            response: None,
        }
    }

    /// One JSON object, no newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an alert always serializes")
    }

    /// The human line: `TIME PRIORITY RULE: OUTPUT`, every attacker-reachable part
    /// escaped so it stays one line without terminal escapes. With `color`, the
    /// priority is colored (ANSI) by severity.
    pub fn to_text(&self, color: bool) -> String {
        let mut line = String::with_capacity(self.output.len() + 96);
        let _ = write!(line, "{} ", escape_line(&self.time));
        if color {
            let _ = write!(
                line,
                "{}{}\x1b[0m",
                priority_color(self.priority),
                self.priority.as_str()
            );
        } else {
            line.push_str(self.priority.as_str());
        }
        let _ = write!(
            line,
            " {}: {}",
            escape_line(&self.rule),
            escape_line(&self.output)
        );
        // Where it happened, whatever the rule's output names: the container and pod.
        let field = |name: &str| self.output_fields.get(name).and_then(Value::as_str);
        if let Some(id) = field("container.id").filter(|id| *id != "host") {
            let name = field("container.name").unwrap_or(id);
            let _ = write!(line, " [container={}", escape_line(name));
            if let Some(repository) = field("container.image.repository") {
                let tag = field("container.image.tag").unwrap_or("latest");
                let _ = write!(
                    line,
                    " image={}:{}",
                    escape_line(repository),
                    escape_line(tag)
                );
            }
            if let Some(pod) = field("k8s.pod.name") {
                let namespace = field("k8s.ns.name").unwrap_or("");
                let _ = write!(line, " pod={}/{}", escape_line(namespace), escape_line(pod));
            }
            line.push(']');
        }
        if let Some(taken) = &self.response {
            let _ = write!(
                line,
                " [response={} action={} mode={}",
                escape_line(&taken.name),
                taken.action,
                taken.mode
            );
            if let Some(point) = taken.point {
                let _ = write!(line, " point={}", point.as_str());
            }
            let _ = write!(line, " outcome={}", taken.outcome.as_str());
            if let Some(reason) = &taken.reason {
                let _ = write!(line, " reason=\"{}\"", escape_line(reason));
            }
            line.push(']');
        }
        line
    }

    /// Syslog severity (RFC 5424): Emergency 0 … Debug 7.
    pub fn severity(&self) -> u8 {
        severity(self.priority)
    }
}

pub fn severity(p: Priority) -> u8 {
    match p {
        Priority::Emergency => 0,
        Priority::Alert => 1,
        Priority::Critical => 2,
        Priority::Error => 3,
        Priority::Warning => 4,
        Priority::Notice => 5,
        Priority::Informational => 6,
        Priority::Debug => 7,
    }
}

fn priority_color(p: Priority) -> &'static str {
    match p {
        Priority::Emergency | Priority::Alert | Priority::Critical => "\x1b[1;31m",
        Priority::Error => "\x1b[31m",
        Priority::Warning => "\x1b[33m",
        Priority::Notice => "\x1b[36m",
        Priority::Informational => "\x1b[32m",
        Priority::Debug => "\x1b[2m",
    }
}

/// Output format of a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Falco's alert JSON with this agent's extensions, an object per line (also
    /// `falco`).
    #[serde(alias = "falco")]
    #[value(alias = "falco")]
    Json,
    /// A line for people: time, priority, rule, output, container.
    Text,
    /// OCSF 1.8.0 Detection Finding (class 2004).
    Ocsf,
    /// OCSF 1.8.0 activity class of the event (Process 1007, File System 1001,
    /// Network 4001) with the Security Control profile.
    OcsfActivity,
    /// ECS 9.4.0, `event.kind: alert`.
    Ecs,
}

impl Format {
    /// Whether the format is a JSON document (all but `text`).
    pub fn is_json(self) -> bool {
        self != Format::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn hostile() -> Alert {
        Alert {
            time: "2024-01-02T03:04:05.123456789Z".into(),
            rule: "Evil\nrule".into(),
            priority: Priority::Critical,
            source: "syscall".into(),
            hostname: "h".into(),
            output: "x\nFAKE 2024 Critical forged: \x1b[31mred".into(),
            tags: vec!["t".into()],
            output_fields: Map::new(),
            exec_id: None,
            event_type: None,
            ancestors: vec![],
            container: None,
            aggregated: None,
            response: None,
        }
    }

    #[test]
    fn alerts_text_says_what_the_response_did() {
        let mut alert = hostile();
        alert.output = "File read".into();
        alert.response = Some(crate::responses::Taken {
            name: "Stop\ntheft".into(),
            action: "kill".into(),
            mode: "enforce".into(),
            point: Some(crate::responses::Point::UserSpace),
            outcome: crate::responses::Outcome::Failed,
            reason: Some("not killed: the process had already exited".into()),
        });
        assert!(alert.to_text(false).ends_with(
            "File read [response=Stop\\ntheft action=kill mode=enforce point=user-space \
             outcome=failed reason=\"not killed: the process had already exited\"]"
        ));
        let json: Value = serde_json::from_str(&alert.to_json()).unwrap();
        assert_eq!(
            json["response"],
            json!({"name": "Stop\ntheft", "action": "kill", "mode": "enforce",
                "point": "user-space", "outcome": "failed",
                "reason": "not killed: the process had already exited"})
        );
    }

    #[test]
    fn alerts_text_is_one_escaped_line() {
        let line = hostile().to_text(false);
        assert_eq!(
            line,
            "2024-01-02T03:04:05.123456789Z Critical Evil\\nrule: x\\nFAKE 2024 Critical forged: \\x1b[31mred"
        );
        let colored = hostile().to_text(true);
        assert!(colored.contains("\x1b[1;31mCritical\x1b[0m"));
        assert_eq!(colored.matches('\x1b').count(), 2);
    }

    #[test]
    fn alerts_text_names_the_container_and_pod() {
        let mut alert = hostile();
        alert.output = "File read".into();
        alert.output_fields = json!({
            "container.id": "0123456789ab", "container.name": "web\x1b[2J",
            "container.image.repository": "docker.io/team/app", "container.image.tag": "2",
            "k8s.ns.name": "shop", "k8s.pod.name": "web-0",
        })
        .as_object()
        .unwrap()
        .clone();
        assert!(alert.to_text(false).ends_with(
            "File read [container=web\\x1b[2J image=docker.io/team/app:2 pod=shop/web-0]"
        ));
        alert.output_fields = json!({"container.id": "host"}).as_object().unwrap().clone();
        assert!(alert.to_text(false).ends_with("File read"));
    }

    #[test]
    fn alerts_json_round_trips() {
        let a = hostile();
        let j = a.to_json();
        assert!(!j.contains('\n') && !j.contains('\x1b'));
        let back: Alert = serde_json::from_str(&j).unwrap();
        assert_eq!(back, a);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["priority"], "Critical");
    }

    #[test]
    fn alerts_extensions_from_event() {
        let event = json!({
            "process": {"exec_id": "e1"},
            "ancestors": [{"pid": 1, "name": "sh", "exe": "sh", "exepath": "/bin/sh", "exec_id": "e0"}],
            "container": {"id": "abc", "name": "web", "image": "nginx:1", "labels": {"a": "b"},
                          "pod": {"name": "p", "namespace": "ns"}}
        });
        let rule_alert = crate::rules::Alert {
            time: json!("2024-01-02T03:04:05.000000001Z"),
            rule: "R".into(),
            priority: Priority::Warning,
            output: "o".into(),
            output_fields: Map::new(),
            tags: vec![],
            source: "syscall",
            event_type: crate::rules::EventType::Openat,
        };
        let a = Alert::from_rule_alert(rule_alert, "host1", &event);
        assert_eq!(a.exec_id.as_deref(), Some("e1"));
        assert_eq!(a.event_type.as_deref(), Some("openat"));
        assert_eq!(
            a.ancestors,
            vec![Ancestor {
                pid: Some(1),
                name: Some("sh".into()),
                exe: Some("/bin/sh".into()),
                exec_id: Some("e0".into())
            }]
        );
        let c = a.container.unwrap();
        assert_eq!(c.id.as_deref(), Some("abc"));
        assert_eq!(c.namespace.as_deref(), Some("ns"));
        assert_eq!(c.pod.as_deref(), Some("p"));
        assert_eq!(c.labels["a"], "b");
        assert_eq!(a.priority, Priority::Warning);
        assert_eq!(a.hostname, "host1");
    }
}
