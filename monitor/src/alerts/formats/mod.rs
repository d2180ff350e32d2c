//! The alert as the documents SIEMs and data lakes index: OCSF ([`ocsf`]) and ECS
//! ([`ecs`]) beside Falco's JSON, which stays the default.
//!
//! Both read the same facts out of an alert: the event's activity (from its `evt.type`),
//! the process, file and endpoints the rule's output fields name, the container and
//! pod, and the MITRE ATT&CK tags. What a format has no place for stays in the
//! document under the format's own bag (OCSF `unmapped`, ECS `monitor.*`), so nothing
//! the Falco JSON carries is lost.
pub mod ecs;
pub mod ocsf;

use std::borrow::Cow;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::model::{Alert, Format};

impl Alert {
    /// The alert in a sink's format: one line of text, or one JSON document.
    pub fn render(&self, format: Format, color: bool) -> String {
        match format {
            Format::Json => self.to_json(),
            Format::Text => self.to_text(color),
            Format::Ocsf => ocsf::document(self, ocsf::Class::Finding).to_string(),
            Format::OcsfActivity => ocsf::document(self, ocsf::Class::Activity).to_string(),
            Format::Ecs => ecs::document(self).to_string(),
        }
    }
}

/// The product name and version documents name as their source.
pub const PRODUCT: &str = "monitor";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the event did, in the terms both formats classify by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Exec,
    Fork,
    Exit,
    /// ptrace: one process reaching into another.
    Inject,
    SetUid,
    /// Another process-level syscall (namespaces, bpf, module loads, memfd, ...).
    ProcessOther,
    FileOpen,
    FileCreate,
    FileDelete,
    FileRename,
    FileAttributes,
    Connect,
    Accept,
    Listen,
    Traffic,
    NetworkOther,
    /// No event type (summaries of repeated or suppressed alerts) or a measure.
    Unknown,
}

impl Activity {
    /// The activity of a Falco `evt.type`.
    pub fn of(event_type: Option<&str>) -> Activity {
        let Some(event_type) = event_type else {
            return Activity::Unknown;
        };
        match event_type {
            "execve" | "execveat" => Activity::Exec,
            "clone" | "clone3" | "fork" | "vfork" => Activity::Fork,
            "procexit" => Activity::Exit,
            "ptrace" => Activity::Inject,
            "setuid" => Activity::SetUid,
            "open" | "openat" | "openat2" => Activity::FileOpen,
            "creat" | "mkdir" | "mkdirat" | "symlink" | "symlinkat" | "link" | "linkat" => {
                Activity::FileCreate
            }
            "unlink" | "unlinkat" | "rmdir" => Activity::FileDelete,
            "rename" | "renameat" | "renameat2" => Activity::FileRename,
            "chmod" | "fchmod" | "fchmodat" => Activity::FileAttributes,
            "connect" => Activity::Connect,
            "accept" | "accept4" => Activity::Accept,
            "listen" => Activity::Listen,
            "sendto" | "sendmsg" | "recvfrom" | "recvmsg" => Activity::Traffic,
            "socket" => Activity::NetworkOther,
            "container_stats" => Activity::Unknown,
            _ => Activity::ProcessOther,
        }
    }

    pub fn is_file(self) -> bool {
        matches!(
            self,
            Activity::FileOpen
                | Activity::FileCreate
                | Activity::FileDelete
                | Activity::FileRename
                | Activity::FileAttributes
        )
    }

    pub fn is_network(self) -> bool {
        matches!(
            self,
            Activity::Connect
                | Activity::Accept
                | Activity::Listen
                | Activity::Traffic
                | Activity::NetworkOther
        )
    }
}

/// The process the alert is about, from the rule's output fields and the alert's own
/// extensions.
#[derive(Debug, Default)]
pub struct Process<'a> {
    pub pid: Option<u64>,
    pub name: Option<Cow<'a, str>>,
    pub executable: Option<Cow<'a, str>>,
    pub command_line: Option<Cow<'a, str>>,
    pub working_directory: Option<Cow<'a, str>>,
    pub user_name: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    /// The exec id: unique per program run on the node.
    pub exec_id: Option<&'a str>,
    pub parent_pid: Option<u64>,
    pub parent_name: Option<Cow<'a, str>>,
    pub parent_exec_id: Option<&'a str>,
}

impl Process<'_> {
    pub fn is_empty(&self) -> bool {
        self.pid.is_none() && self.name.is_none() && self.exec_id.is_none()
    }
}

/// One end of a connection.
#[derive(Debug)]
pub struct Endpoint<'a> {
    pub ip: Option<Cow<'a, str>>,
    pub port: Option<u64>,
}

/// A MITRE ATT&CK tactic named by a `mitre_*` tag.
#[derive(Debug, PartialEq, Eq)]
pub struct Tactic {
    pub id: &'static str,
    pub name: &'static str,
}

/// The facts both formats are built from.
#[derive(Debug)]
pub struct Facts<'a> {
    pub alert: &'a Alert,
    pub activity: Activity,
    pub process: Process<'a>,
    /// The file's path, for a file activity.
    pub file: Option<Cow<'a, str>>,
    /// The server side of a connection (what a connect reached).
    pub destination: Option<Endpoint<'a>>,
    /// The client side.
    pub source: Option<Endpoint<'a>>,
    pub transport: Option<Cow<'a, str>>,
    pub tactics: Vec<Tactic>,
    /// `T1234` and `T1234.001` tags, in tag order.
    pub techniques: Vec<&'a str>,
    /// Milliseconds since the epoch of the alert's `time`.
    pub time_ms: i64,
    /// A stable id for the alert: the same alert delivered twice (at-least-once
    /// delivery, a replay) has the same id, so a store can drop the repeat.
    pub uid: String,
}

impl<'a> Facts<'a> {
    pub fn of(alert: &'a Alert) -> Facts<'a> {
        let activity = Activity::of(alert.event_type.as_deref());
        let fields = &alert.output_fields;
        let parent = alert.ancestors.first();
        let process = Process {
            pid: number(fields, "proc.pid"),
            name: text(fields, "proc.name"),
            executable: text(fields, "proc.exepath").or_else(|| text(fields, "proc.exe")),
            command_line: text(fields, "proc.cmdline"),
            working_directory: text(fields, "proc.cwd"),
            user_name: text(fields, "user.name"),
            user_id: text(fields, "user.uid"),
            exec_id: alert.exec_id.as_deref(),
            parent_pid: number(fields, "proc.ppid").or_else(|| parent.and_then(|a| a.pid)),
            parent_name: text(fields, "proc.pname")
                .or_else(|| parent.and_then(|a| a.name.as_deref()).map(Cow::Borrowed)),
            parent_exec_id: parent.and_then(|a| a.exec_id.as_deref()),
        };
        let file = activity
            .is_file()
            .then(|| text(fields, "fd.name").or_else(|| text(fields, "fs.path.name")))
            .flatten();
        let endpoint = |ip: &str, port: &str| {
            let end = Endpoint {
                ip: text(fields, ip),
                port: number(fields, port),
            };
            (end.ip.is_some() || end.port.is_some()).then_some(end)
        };
        let network = activity.is_network();
        let (destination, source) = if network {
            (
                endpoint("fd.sip", "fd.sport"),
                endpoint("fd.cip", "fd.cport"),
            )
        } else {
            (None, None)
        };
        let time_ms = humantime::parse_rfc3339(&alert.time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        Facts {
            alert,
            activity,
            process,
            file,
            destination,
            source,
            transport: network.then(|| text(fields, "fd.l4proto")).flatten(),
            tactics: alert.tags.iter().filter_map(|t| tactic(t)).collect(),
            techniques: alert
                .tags
                .iter()
                .map(String::as_str)
                .filter(|t| is_technique(t))
                .collect(),
            time_ms,
            uid: uid(alert),
        }
    }

    /// The alert's container image as `repository` and `tag`, from the output fields
    /// Falco appends to every alert, else from the image reference.
    pub fn image(&self) -> Option<(Cow<'a, str>, Option<Cow<'a, str>>)> {
        let fields = &self.alert.output_fields;
        if let Some(repository) = text(fields, "container.image.repository") {
            return Some((repository, text(fields, "container.image.tag")));
        }
        let reference = self.alert.container.as_ref()?.image.as_deref()?;
        // A digest reference (`name@sha256:...`) names no tag.
        if let Some((name, _digest)) = reference.split_once('@') {
            return Some((Cow::Borrowed(name), None));
        }
        // A tag follows the last ':' after the last '/' (a registry port is no tag).
        let name_start = reference.rfind('/').map_or(0, |i| i + 1);
        Some(match reference[name_start..].rfind(':') {
            Some(colon) => {
                let at = name_start + colon;
                (
                    Cow::Borrowed(&reference[..at]),
                    Some(Cow::Borrowed(&reference[at + 1..])),
                )
            }
            None => (Cow::Borrowed(reference), None),
        })
    }

    /// The container's id, when the event happened in one (`host` is the host).
    pub fn container_id(&self) -> Option<Cow<'a, str>> {
        text(&self.alert.output_fields, "container.id")
            .or_else(|| {
                let id = self.alert.container.as_ref()?.id.as_deref()?;
                Some(Cow::Borrowed(id))
            })
            .filter(|id| id != "host")
    }

    pub fn container_name(&self) -> Option<Cow<'a, str>> {
        text(&self.alert.output_fields, "container.name").or_else(|| {
            let name = self.alert.container.as_ref()?.name.as_deref()?;
            Some(Cow::Borrowed(name))
        })
    }

    /// The Kubernetes pod and its namespace.
    pub fn pod(&self) -> Option<(Cow<'a, str>, Option<Cow<'a, str>>)> {
        let fields = &self.alert.output_fields;
        let container = self.alert.container.as_ref();
        let pod = text(fields, "k8s.pod.name")
            .or_else(|| container?.pod.as_deref().map(Cow::Borrowed))?;
        let namespace = text(fields, "k8s.ns.name")
            .or_else(|| container?.namespace.as_deref().map(Cow::Borrowed));
        Some((pod, namespace))
    }
}

/// An output field as text: strings as they are, numbers and booleans written out;
/// none for null, an empty string and Falco's `<NA>`.
pub fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<Cow<'a, str>> {
    match fields.get(name)? {
        Value::String(s) if s.is_empty() || s == "<NA>" => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// An output field as a non-negative integer (a number, or a string of one).
pub fn number(fields: &Map<String, Value>, name: &str) -> Option<u64> {
    match fields.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `T1059` or `T1059.004`.
fn is_technique(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix('T') else {
        return false;
    };
    let (id, sub) = rest.split_once('.').unwrap_or((rest, ""));
    id.len() == 4
        && id.bytes().all(|b| b.is_ascii_digit())
        && (sub.is_empty() || (sub.len() == 3 && sub.bytes().all(|b| b.is_ascii_digit())))
}

/// The ATT&CK enterprise tactic a Falco `mitre_*` tag names.
fn tactic(tag: &str) -> Option<Tactic> {
    let (id, name) = match tag.strip_prefix("mitre_")? {
        "reconnaissance" => ("TA0043", "Reconnaissance"),
        "resource_development" => ("TA0042", "Resource Development"),
        "initial_access" => ("TA0001", "Initial Access"),
        "execution" => ("TA0002", "Execution"),
        "persistence" => ("TA0003", "Persistence"),
        "privilege_escalation" => ("TA0004", "Privilege Escalation"),
        "defense_evasion" => ("TA0005", "Defense Evasion"),
        "credential_access" => ("TA0006", "Credential Access"),
        "discovery" => ("TA0007", "Discovery"),
        "lateral_movement" => ("TA0008", "Lateral Movement"),
        "collection" => ("TA0009", "Collection"),
        "command_and_control" => ("TA0011", "Command and Control"),
        "exfiltration" => ("TA0010", "Exfiltration"),
        "impact" => ("TA0040", "Impact"),
        _ => return None,
    };
    Some(Tactic { id, name })
}

/// 128 bits of SHA-256 over what makes the alert this alert, in hex.
fn uid(alert: &Alert) -> String {
    let mut hash = Sha256::new();
    for part in [
        alert.hostname.as_str(),
        alert.time.as_str(),
        alert.rule.as_str(),
        alert.exec_id.as_deref().unwrap_or(""),
        alert.output.as_str(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Inserts `value` under `key` unless it is none; the documents leave out what the
/// alert does not know rather than writing nulls.
pub fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        map.insert(key.to_string(), value.into());
    }
}

/// `put` for text.
pub fn put_text(map: &mut Map<String, Value>, key: &str, value: Option<Cow<'_, str>>) {
    put(map, key, value.map(Cow::into_owned));
}

/// An alert of a shell reading a file in a pod, for the formats' tests.
#[cfg(test)]
pub(crate) fn sample_alert() -> Alert {
    use crate::rules::Priority;
    let fields = serde_json::json!({
        "proc.pid": 4242, "proc.name": "cat", "proc.exepath": "/bin/cat",
        "proc.cmdline": "cat /etc/shadow", "user.name": "root", "user.uid": 0,
        "fd.name": "/etc/shadow", "container.id": "0123456789ab", "container.name": "shop",
        "container.image.repository": "registry.local:5000/shop", "container.image.tag": "1.2",
        "k8s.ns.name": "prod", "k8s.pod.name": "shop-7d9",
    });
    Alert {
        time: "2025-03-01T12:00:00.123456789Z".into(),
        rule: "Read sensitive file".into(),
        priority: Priority::Warning,
        source: "syscall".into(),
        hostname: "node-1".into(),
        output: "Sensitive file opened (file=/etc/shadow)".into(),
        tags: vec!["mitre_credential_access".into(), "T1003.008".into()],
        output_fields: fields.as_object().unwrap().clone(),
        exec_id: Some("4242-1".into()),
        event_type: Some("openat".into()),
        ancestors: vec![super::model::Ancestor {
            pid: Some(4200),
            name: Some("sh".into()),
            exe: Some("/bin/sh".into()),
            exec_id: Some("4200-1".into()),
        }],
        container: Some(super::model::Container {
            id: Some("0123456789ab".into()),
            name: Some("shop".into()),
            image: Some("registry.local:5000/shop:1.2".into()),
            image_id: Some("sha256:feed".into()),
            labels: serde_json::json!({"app": "shop"})
                .as_object()
                .unwrap()
                .clone(),
            pod: Some("shop-7d9".into()),
            namespace: Some("prod".into()),
        }),
        aggregated: None,
        response: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_a_file_alert_in_a_pod() {
        let alert = sample_alert();
        let facts = Facts::of(&alert);
        assert_eq!(facts.activity, Activity::FileOpen);
        assert_eq!(facts.file.as_deref(), Some("/etc/shadow"));
        assert!(facts.destination.is_none());
        assert_eq!(facts.process.pid, Some(4242));
        assert_eq!(facts.process.user_id.as_deref(), Some("0"));
        assert_eq!(facts.process.parent_pid, Some(4200));
        assert_eq!(facts.process.parent_exec_id, Some("4200-1"));
        assert_eq!(facts.time_ms, 1_740_830_400_123);
        assert_eq!(
            facts.image(),
            Some((
                Cow::Borrowed("registry.local:5000/shop"),
                Some(Cow::Borrowed("1.2"))
            ))
        );
        assert_eq!(facts.techniques, ["T1003.008"]);
        assert_eq!(facts.tactics[0].id, "TA0006");
        // Stable: the same alert, the same id; another output, another id.
        assert_eq!(facts.uid, Facts::of(&alert.clone()).uid);
        let mut other = alert.clone();
        other.output.push('!');
        assert_ne!(facts.uid, Facts::of(&other).uid);
    }

    #[test]
    fn an_image_reference_splits_at_its_tag_not_at_a_registry_port() {
        let mut alert = sample_alert();
        alert.output_fields.remove("container.image.repository");
        let image = |reference: &str| {
            let mut alert = alert.clone();
            alert.container.as_mut().unwrap().image = Some(reference.into());
            Facts::of(&alert)
                .image()
                .map(|(r, t)| (r.into_owned(), t.map(Cow::into_owned)))
        };
        assert_eq!(
            image("registry.local:5000/shop"),
            Some(("registry.local:5000/shop".into(), None))
        );
        assert_eq!(image("shop:1.2"), Some(("shop".into(), Some("1.2".into()))));
        assert_eq!(image("shop@sha256:ab"), Some(("shop".into(), None)));
    }

    #[test]
    fn techniques_and_tactics_come_from_falco_tags() {
        assert!(is_technique("T1059"));
        assert!(is_technique("T1059.004"));
        assert!(!is_technique("T105"));
        assert!(!is_technique("T1059.4"));
        assert!(!is_technique("TA0002"));
        assert_eq!(
            tactic("mitre_command_and_control"),
            Some(Tactic {
                id: "TA0011",
                name: "Command and Control"
            })
        );
        assert_eq!(tactic("mitre_unknown"), None);
        assert_eq!(tactic("container"), None);
    }

    #[test]
    fn activities_of_event_types() {
        assert_eq!(Activity::of(Some("execve")), Activity::Exec);
        assert_eq!(Activity::of(Some("openat2")), Activity::FileOpen);
        assert_eq!(Activity::of(Some("renameat2")), Activity::FileRename);
        assert_eq!(Activity::of(Some("accept4")), Activity::Accept);
        assert_eq!(Activity::of(Some("memfd_create")), Activity::ProcessOther);
        assert_eq!(Activity::of(None), Activity::Unknown);
    }
}
