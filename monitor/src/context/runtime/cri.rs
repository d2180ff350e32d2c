//! The CRI RuntimeService (k8s-cri over tonic): what kubelet itself asks containerd's
//! CRI plugin or CRI-O. A container's status names its image and mounts; the verbose
//! `info` adds the OCI spec the runtime made (privileges, capabilities, user,
//! namespaces), and the pod sandbox's status adds the pod (name, namespace, uid,
//! labels, IP).
use std::{path::Path, time::Duration};

use anyhow::Context as _;
use containerd_client::tonic::{Code, transport::Channel};
use futures_util::StreamExt;
use k8s_cri::v1::{
    ContainerFilter, ContainerStatusRequest, ListContainersRequest, MountPropagation,
    NamespaceMode, PodSandboxStatusRequest, runtime_service_client::RuntimeServiceClient,
};
use serde_json::Value;

use super::{Change, Changes, ContainerMeta, Mount, RuntimeApi};

pub type CriClient = RuntimeServiceClient<Channel>;

/// A channel to a gRPC unix socket (containerd's or CRI-O's).
pub async fn channel(socket: &Path) -> anyhow::Result<Channel> {
    containerd_client::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))
}

/// CRI-O, which is reached through CRI only. CRI has no change feed every runtime
/// serves (GetContainerEvents is optional), so the container list is polled; a
/// container's first events are answered on demand before the poll sees it.
pub struct CriApi {
    pub poll: Duration,
}

impl RuntimeApi for CriApi {
    type Client = CriClient;

    async fn connect(&self, socket: &Path) -> anyhow::Result<CriClient> {
        let mut client = RuntimeServiceClient::new(channel(socket).await?);
        // A socket that answers but does not serve CRI is no use: say so now.
        client
            .version(k8s_cri::v1::VersionRequest::default())
            .await
            .context("asking for the CRI version")?;
        Ok(client)
    }

    async fn changes(&self, client: &CriClient) -> anyhow::Result<Changes> {
        let client = client.clone();
        let mut known = list(&client).await?;
        let ticks = tokio_interval(self.poll);
        Ok(ticks
            .then(move |()| {
                let client = client.clone();
                async move { (list(&client).await, client) }
            })
            .flat_map(move |(now, _)| {
                let changes: Vec<anyhow::Result<Change>> = match now {
                    Ok(now) => {
                        let mut changes: Vec<_> = now
                            .iter()
                            .filter(|id| !known.contains(id))
                            .map(|id| Ok(Change::Seen(id.clone())))
                            .collect();
                        changes.extend(
                            known
                                .iter()
                                .filter(|id| !now.contains(id))
                                .map(|id| Ok(Change::Removed(id.clone()))),
                        );
                        known = now;
                        changes
                    }
                    Err(err) => vec![Err(err)],
                };
                futures_util::stream::iter(changes)
            })
            .boxed())
    }

    async fn list(&self, client: &CriClient) -> anyhow::Result<Vec<String>> {
        list(client).await
    }

    async fn inspect(&self, client: &CriClient, id: &str) -> anyhow::Result<Option<ContainerMeta>> {
        inspect(client, id).await
    }
}

fn tokio_interval(every: Duration) -> futures_util::stream::BoxStream<'static, ()> {
    futures_util::stream::unfold(tokio::time::interval(every), |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
    .boxed()
}

pub async fn list(client: &CriClient) -> anyhow::Result<Vec<String>> {
    let reply = client
        .clone()
        .list_containers(ListContainersRequest::default())
        .await
        .context("listing CRI containers")?;
    Ok(reply
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// `Ok(None)` when the runtime has no such container.
pub async fn inspect(client: &CriClient, id: &str) -> anyhow::Result<Option<ContainerMeta>> {
    let mut client = client.clone();
    let reply = client
        .container_status(ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        })
        .await;
    let reply = match reply {
        Ok(reply) => reply.into_inner(),
        Err(status) if status.code() == Code::NotFound => return Ok(None),
        Err(status) => return Err(status).context("asking for the container's status"),
    };
    let Some(status) = reply.status else {
        return Ok(None);
    };
    // The verbose info is runtime-specific JSON; both containerd and CRI-O put the
    // OCI spec under `runtimeSpec` and the sandbox under `sandboxID`.
    let info: Value = reply
        .info
        .get("info")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let sandbox_id = match info["sandboxID"].as_str() {
        Some(id) => Some(id.to_string()),
        None => sandbox_of(&mut client, id).await?,
    };
    let sandbox = match sandbox_id {
        Some(sandbox_id) => client
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id,
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().status),
        None => None,
    };
    let spec = &info["runtimeSpec"];
    let labels = status.labels.into_iter().collect();
    let mut pod = ContainerMeta::pod_from_labels(&labels).unwrap_or_default();
    let mut host_namespaces = [false; 3];
    if let Some(sandbox) = &sandbox {
        if let Some(metadata) = &sandbox.metadata {
            pod.name = Some(metadata.name.clone());
            pod.namespace = Some(metadata.namespace.clone());
            pod.uid = Some(metadata.uid.clone());
        }
        pod.labels = sandbox.labels.clone().into_iter().collect();
        pod.ip = sandbox
            .network
            .as_ref()
            .map(|n| n.ip.clone())
            .filter(|ip| !ip.is_empty());
        if let Some(options) = sandbox
            .linux
            .as_ref()
            .and_then(|l| l.namespaces.as_ref())
            .and_then(|n| n.options.as_ref())
        {
            let node = NamespaceMode::Node as i32;
            host_namespaces = [
                options.pid == node,
                options.network == node,
                options.ipc == node,
            ];
        }
    }
    if sandbox.is_none() {
        // Without the sandbox's options, the spec says which namespaces are the host's.
        let has_namespace = |kind: &str| {
            spec["linux"]["namespaces"]
                .as_array()
                .map(|all| all.iter().any(|n| n["type"] == kind))
        };
        for (i, kind) in ["pid", "network", "ipc"].into_iter().enumerate() {
            if let Some(has) = has_namespace(kind) {
                host_namespaces[i] = !has;
            }
        }
    }
    let image = status.image.map(|i| i.image).unwrap_or_default();
    let image_digest = status
        .image_ref
        .split_once('@')
        .map(|(_, digest)| digest.to_string());
    let image_id = Some(status.image_id)
        .filter(|s| !s.is_empty())
        .or_else(|| Some(status.image_ref.clone()).filter(|r| r.starts_with("sha256:")));
    let privileged = info["config"]["linux"]["security_context"]["privileged"] == true
        || info["privileged"] == true;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let user = match &spec["process"]["user"] {
        Value::Null => None,
        user => user["uid"].as_u64().map(|uid| uid.to_string()),
    };
    let name = status
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let [host_pid, host_network, host_ipc] = host_namespaces;
    Ok(Some(
        ContainerMeta {
            id: status.id,
            name,
            image_digest,
            image_id,
            privileged,
            host_pid,
            host_network,
            host_ipc,
            network_mode: host_network.then(|| "host".to_string()),
            cap_add: strings(&spec["process"]["capabilities"]["effective"]),
            user,
            mounts: status.mounts.into_iter().map(to_mount).collect(),
            started_at: (status.started_at > 0).then(|| rfc3339(status.started_at)),
            pod: (pod.name.is_some()).then_some(pod),
            labels,
            ..ContainerMeta::default()
        }
        .with_image(image),
    ))
}

/// The sandbox a container belongs to, for runtimes whose verbose info lacks it.
async fn sandbox_of(client: &mut CriClient, id: &str) -> anyhow::Result<Option<String>> {
    let reply = client
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                id: id.to_string(),
                ..ContainerFilter::default()
            }),
        })
        .await
        .context("looking up the container's pod")?;
    Ok(reply
        .into_inner()
        .containers
        .into_iter()
        .next()
        .map(|c| c.pod_sandbox_id))
}

fn to_mount(m: k8s_cri::v1::Mount) -> Mount {
    let propagation = match MountPropagation::try_from(m.propagation) {
        Ok(MountPropagation::PropagationHostToContainer) => "rslave",
        Ok(MountPropagation::PropagationBidirectional) => "rshared",
        _ => "rprivate",
    };
    Mount {
        source: m.host_path,
        destination: m.container_path,
        mode: if m.readonly { "ro" } else { "" }.to_string(),
        rw: !m.readonly,
        propagation: propagation.to_string(),
        kind: "bind".to_string(),
    }
}

/// Nanoseconds since the epoch, as RFC 3339 (what Docker's `StartedAt` looks like).
fn rfc3339(ns: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_nanos(time).to_string()
}
