//! Which workload a container belongs to: its Kubernetes owner when the pod's labels
//! and name say so, otherwise its image repository.
//!
//! The owner is read from what the runtime already told us (no API server access):
//! each controller stamps its pods with labels of its own and names them after
//! itself, so both together give the owner's name without asking for it.
use std::{fmt, str::FromStr};

use crate::context::runtime::ContainerMeta;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    /// A bare pod whose image is unknown (pods normally fall back to `Image`).
    Pod,
    /// Plain containers and bare pods: every container of one image repository is one
    /// workload.
    Image,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 7] = [
        WorkloadKind::Deployment,
        WorkloadKind::DaemonSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::Pod,
        WorkloadKind::Image,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::Pod => "pod",
            WorkloadKind::Image => "image",
        }
    }

    /// Kinds that live in a Kubernetes namespace (written `kind/namespace/name`).
    pub fn namespaced(self) -> bool {
        !matches!(self, WorkloadKind::Image)
    }
}

/// One workload: `deployment/default/web`, `image/docker.io/library/nginx`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    /// The Kubernetes namespace; `None` for images (and pods whose namespace is not
    /// known).
    pub namespace: Option<String>,
    pub name: String,
}

impl WorkloadId {
    pub fn new(kind: WorkloadKind, namespace: Option<&str>, name: &str) -> Self {
        WorkloadId {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) if self.kind.namespaced() => {
                write!(f, "{}/{}/{}", self.kind.as_str(), ns, self.name)
            }
            _ => write!(f, "{}/{}", self.kind.as_str(), self.name),
        }
    }
}

impl FromStr for WorkloadId {
    type Err = String;

    /// The Display form back: `deployment/default/web`, `image/docker.io/library/nginx`
    /// (an image's name keeps its slashes; a namespaced kind's namespace is the part
    /// before the next slash).
    fn from_str(text: &str) -> Result<Self, String> {
        let expected = "expected KIND/NAMESPACE/NAME (deployment, daemonset, statefulset, \
                        job, cronjob, pod) or image/REPOSITORY";
        let (kind, rest) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}`: {expected}"))?;
        let kind = WorkloadKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| format!("`{text}`: unknown kind `{kind}`; {expected}"))?;
        if rest.is_empty() {
            return Err(format!("`{text}`: no name; {expected}"));
        }
        if !kind.namespaced() {
            return Ok(WorkloadId::new(kind, None, rest));
        }
        match rest.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                Ok(WorkloadId::new(kind, Some(ns), name))
            }
            _ => Ok(WorkloadId::new(kind, None, rest)),
        }
    }
}

/// The workload of a container; `None` when nothing names it (no pod owner and no
/// image).
pub fn workload_of(meta: &ContainerMeta) -> Option<WorkloadId> {
    if let Some(owner) = kubernetes_owner(meta) {
        return Some(owner);
    }
    if let Some(repo) = meta.image_repository.as_deref().filter(|r| !r.is_empty()) {
        return Some(WorkloadId::new(WorkloadKind::Image, None, repo));
    }
    let pod = meta.pod.as_ref()?;
    let name = pod.name.as_deref().filter(|n| !n.is_empty())?;
    Some(WorkloadId::new(
        WorkloadKind::Pod,
        pod.namespace.as_deref(),
        name,
    ))
}

fn kubernetes_owner(meta: &ContainerMeta) -> Option<WorkloadId> {
    let pod = meta.pod.as_ref()?;
    let pod_name = pod.name.as_deref()?;
    // The sandbox's labels (CRI) carry the controllers' labels; Docker-era kubelets
    // only label containers, so those are read too.
    let label = |key: &str| {
        pod.labels
            .get(key)
            .or_else(|| meta.labels.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let ns = pod
        .namespace
        .as_deref()
        .or_else(|| label("io.kubernetes.pod.namespace"));
    let id = |kind, name: &str| (!name.is_empty()).then(|| WorkloadId::new(kind, ns, name));

    if let Some(job) = label("batch.kubernetes.io/job-name").or_else(|| label("job-name")) {
        return match cronjob_of(job) {
            Some(cronjob) => id(WorkloadKind::CronJob, cronjob),
            None => id(WorkloadKind::Job, job),
        };
    }
    if label("statefulset.kubernetes.io/pod-name").is_some() {
        let (name, ordinal) = pod_name.rsplit_once('-')?;
        return (!ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
            .then(|| id(WorkloadKind::StatefulSet, name))
            .flatten();
    }
    if let Some(hash) = label("pod-template-hash") {
        // Pod `web-7d4b9c8f5-x2x9z` of ReplicaSet `web-7d4b9c8f5`. A long name is cut
        // before the random suffix, which can cut into the hash: then the last two
        // parts go.
        let name = match pod_name.rfind(&format!("-{hash}-")) {
            Some(at) => &pod_name[..at],
            None => pod_name
                .rsplit_once('-')
                .and_then(|(rs, _)| rs.rsplit_once('-'))
                .map(|(deployment, _)| deployment)?,
        };
        return id(WorkloadKind::Deployment, name);
    }
    if label("controller-revision-hash").is_some() && label("pod-template-generation").is_some() {
        let (name, _suffix) = pod_name.rsplit_once('-')?;
        return id(WorkloadKind::DaemonSet, name);
    }
    None
}

/// A CronJob names its Jobs `<cronjob>-<scheduled time in minutes since the epoch>`:
/// eight digits since 1989. Fewer digits are a person's numbering (`migrate-2`), not
/// a schedule, so such a Job stays a Job.
fn cronjob_of(job: &str) -> Option<&str> {
    let (name, minutes) = job.rsplit_once('-')?;
    (minutes.len() >= 8 && minutes.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty())
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::context::runtime::PodInfo;

    fn pod(name: &str, labels: &[(&str, &str)]) -> ContainerMeta {
        ContainerMeta {
            id: "0123456789ab".into(),
            image: "docker.io/library/nginx:1.27".into(),
            image_repository: Some("docker.io/library/nginx".into()),
            pod: Some(PodInfo {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                ..PodInfo::default()
            }),
            ..ContainerMeta::default()
        }
    }

    fn of(meta: &ContainerMeta) -> String {
        workload_of(meta).unwrap().to_string()
    }

    #[test]
    fn deployment_from_pod_template_hash() {
        let meta = pod(
            "web-frontend-7d4b9c8f5-x2x9z",
            &[("app", "web-frontend"), ("pod-template-hash", "7d4b9c8f5")],
        );
        assert_eq!(of(&meta), "deployment/shop/web-frontend");
        // A long name truncated into the hash: the last two parts go.
        let meta = pod(
            "a-very-long-deployment-name-that-kubernetes-truncates-7d4b9c-abcde",
            &[("pod-template-hash", "7d4b9c8f5")],
        );
        assert_eq!(
            of(&meta),
            "deployment/shop/a-very-long-deployment-name-that-kubernetes-truncates"
        );
    }

    #[test]
    fn daemonset_from_revision_hash_and_generation() {
        let meta = pod(
            "fluent-bit-k8x2p",
            &[
                ("app.kubernetes.io/name", "fluent-bit"),
                ("controller-revision-hash", "6b8d9c7f4"),
                ("pod-template-generation", "3"),
            ],
        );
        assert_eq!(of(&meta), "daemonset/shop/fluent-bit");
    }

    #[test]
    fn statefulset_from_pod_name_label() {
        let meta = pod(
            "postgres-primary-12",
            &[
                ("controller-revision-hash", "postgres-primary-5c9f8d7b6"),
                ("statefulset.kubernetes.io/pod-name", "postgres-primary-12"),
                ("apps.kubernetes.io/pod-index", "12"),
            ],
        );
        assert_eq!(of(&meta), "statefulset/shop/postgres-primary");
    }

    #[test]
    fn job_and_cronjob_from_job_name() {
        let meta = pod(
            "db-migrate-2-q8x7w",
            &[
                ("batch.kubernetes.io/controller-uid", "5c1e0a52-43a1"),
                ("batch.kubernetes.io/job-name", "db-migrate-2"),
                ("job-name", "db-migrate-2"),
            ],
        );
        assert_eq!(of(&meta), "job/shop/db-migrate-2");
        let meta = pod(
            "nightly-backup-28391040-7kq2d",
            &[("job-name", "nightly-backup-28391040")],
        );
        assert_eq!(of(&meta), "cronjob/shop/nightly-backup");
    }

    #[test]
    fn bare_pods_and_plain_containers_are_their_image() {
        let meta = pod("debug", &[("run", "debug")]);
        assert_eq!(of(&meta), "image/docker.io/library/nginx");
        let plain = ContainerMeta {
            image_repository: Some("registry.local:5000/team/api".into()),
            ..ContainerMeta::default()
        };
        assert_eq!(of(&plain), "image/registry.local:5000/team/api");
        let mut unknown_image = pod("debug", &[]);
        unknown_image.image_repository = None;
        assert_eq!(of(&unknown_image), "pod/shop/debug");
        assert_eq!(workload_of(&ContainerMeta::default()), None);
    }

    #[test]
    fn container_labels_stand_in_for_sandbox_labels() {
        let mut meta = pod("web-7d4b9c8f5-x2x9z", &[]);
        meta.labels
            .insert("pod-template-hash".into(), "7d4b9c8f5".into());
        assert_eq!(of(&meta), "deployment/shop/web");
    }

    #[test]
    fn ids_read_back_from_their_text() {
        for text in [
            "deployment/default/web",
            "image/docker.io/library/nginx",
            "image/registry.local:5000/team/api",
            "cronjob/ops/nightly-backup",
        ] {
            assert_eq!(text.parse::<WorkloadId>().unwrap().to_string(), text);
        }
        assert!("nginx".parse::<WorkloadId>().is_err());
        assert!("replicaset/default/web".parse::<WorkloadId>().is_err());
        assert!("image/".parse::<WorkloadId>().is_err());
    }
}
