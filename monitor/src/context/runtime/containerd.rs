//! containerd, through its own API and its CRI plugin on the same socket. Containers
//! that kubelet made (namespace `k8s.io`) are described by CRI, which knows their pod;
//! the others (`ctr run`, nerdctl, Docker's own `moby` namespace) by the container
//! record and its OCI spec. The event service, across every namespace, says when a
//! container is created or deleted.
use std::{path::Path, time::Duration};

use anyhow::Context as _;
use containerd_client::{
    events::{ContainerCreate, ContainerDelete},
    services::v1::{
        GetContainerRequest, GetImageRequest, ListContainersRequest, ListNamespacesRequest,
        SubscribeRequest, containers_client::ContainersClient, events_client::EventsClient,
        images_client::ImagesClient, namespaces_client::NamespacesClient,
    },
    tonic::{Code, Request, transport::Channel},
};
use futures_util::StreamExt;
use prost::Message;
use serde_json::Value;

use super::{Change, Changes, ContainerMeta, Mount, RuntimeApi, cri};

pub struct ContainerdApi;

pub struct ContainerdClient {
    channel: Channel,
    /// `None` when this containerd runs without its CRI plugin.
    cri: Option<cri::CriClient>,
}

impl RuntimeApi for ContainerdApi {
    type Client = ContainerdClient;

    async fn connect(&self, socket: &Path) -> anyhow::Result<ContainerdClient> {
        let channel = cri::channel(socket).await?;
        let mut cri = cri::CriClient::new(channel.clone());
        let cri = match cri.version(k8s_cri::v1::VersionRequest::default()).await {
            Ok(_) => Some(cri),
            Err(status) => {
                tracing::info!(
                    "containerd at {} serves no CRI ({}): its containers are described by \
                     their records alone, without pods",
                    socket.display(),
                    status.message()
                );
                None
            }
        };
        // Fails here, not on first use, when the socket is not containerd's.
        namespaces(&channel).await?;
        Ok(ContainerdClient { channel, cri })
    }

    async fn changes(&self, client: &ContainerdClient) -> anyhow::Result<Changes> {
        let mut events = EventsClient::new(client.channel.clone());
        let request = SubscribeRequest {
            filters: vec![
                r#"topic=="/containers/create""#.to_string(),
                r#"topic=="/containers/delete""#.to_string(),
            ],
        };
        // containerd sends the stream's headers only with its first event: awaiting the
        // subscription here would hold the first listing (and readiness) until some
        // container is created. A task of its own subscribes at once; the stream waits
        // for it.
        let subscribed = tokio::spawn(async move { events.subscribe(request).await });
        tokio::task::yield_now().await;
        let envelopes = futures_util::stream::once(subscribed).flat_map(|joined| {
            match joined
                .map_err(anyhow::Error::from)
                .and_then(|subscribed| subscribed.context("subscribing to containerd's events"))
            {
                Ok(response) => response
                    .into_inner()
                    .map(|envelope| envelope.map_err(anyhow::Error::from))
                    .left_stream(),
                Err(err) => futures_util::stream::once(async move { Err(err) }).right_stream(),
            }
        });
        Ok(envelopes
            .filter_map(|envelope| async move {
                let envelope = match envelope {
                    Ok(envelope) => envelope,
                    Err(err) => return Some(Err(err)),
                };
                let event = envelope.event?;
                match envelope.topic.as_str() {
                    "/containers/create" => ContainerCreate::decode(event.value.as_slice())
                        .ok()
                        .map(|e| Ok(Change::Seen(e.id))),
                    "/containers/delete" => ContainerDelete::decode(event.value.as_slice())
                        .ok()
                        .map(|e| Ok(Change::Removed(e.id))),
                    _ => None,
                }
            })
            .boxed())
    }

    async fn list(&self, client: &ContainerdClient) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        for namespace in namespaces(&client.channel).await? {
            let request = in_namespace(ListContainersRequest::default(), &namespace)?;
            let reply = ContainersClient::new(client.channel.clone())
                .list(request)
                .await
                .with_context(|| format!("listing containers in namespace {namespace}"))?;
            ids.extend(reply.into_inner().containers.into_iter().map(|c| c.id));
        }
        Ok(ids)
    }

    async fn cgroup_parents(&self, client: &ContainerdClient) -> Vec<String> {
        namespaces(&client.channel).await.unwrap_or_default()
    }

    async fn inspect(
        &self,
        client: &ContainerdClient,
        id: &str,
    ) -> anyhow::Result<Option<ContainerMeta>> {
        if let Some(cri) = &client.cri
            && let Some(meta) = cri::inspect(cri, id).await?
        {
            return Ok(Some(meta));
        }
        let Some((namespace, container)) = record(client, id).await? else {
            return Ok(None);
        };
        // The CRI plugin creates the record before its own entry: a container it made
        // is asked again for a moment, so its pod is not lost to the race.
        let kind = container.labels.get(CRI_KIND).map(String::as_str);
        if let (Some(cri), Some("container")) = (&client.cri, kind) {
            for _ in 0..CRI_RETRIES {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Some(meta) = cri::inspect(cri, id).await? {
                    return Ok(Some(meta));
                }
            }
        }
        let digest = image_digest(client, &namespace, &container.image).await;
        let mut meta = from_record(container);
        meta.image_digest = digest;
        Ok(Some(meta))
    }
}

/// The digest of the image a container was made from (its manifest's, as Falco's
/// `container.image.digest` has it); `None` when the image is gone.
async fn image_digest(client: &ContainerdClient, namespace: &str, image: &str) -> Option<String> {
    let request = in_namespace(
        GetImageRequest {
            name: image.to_string(),
        },
        namespace,
    )
    .ok()?;
    let reply = ImagesClient::new(client.channel.clone())
        .get(request)
        .await
        .ok()?;
    reply
        .into_inner()
        .image?
        .target
        .map(|t| t.digest)
        .filter(|d| !d.is_empty())
}

/// The label the CRI plugin puts on what it makes: `container` or `sandbox`.
const CRI_KIND: &str = "io.cri-containerd.kind";
const CRI_RETRIES: usize = 25;

/// The container's record, and the namespace that holds it.
async fn record(
    client: &ContainerdClient,
    id: &str,
) -> anyhow::Result<Option<(String, containerd_client::services::v1::Container)>> {
    for namespace in namespaces(&client.channel).await? {
        let request = in_namespace(GetContainerRequest { id: id.to_string() }, &namespace)?;
        match ContainersClient::new(client.channel.clone())
            .get(request)
            .await
        {
            Ok(reply) => {
                if let Some(container) = reply.into_inner().container {
                    return Ok(Some((namespace, container)));
                }
            }
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => return Err(status).context("getting the container's record"),
        }
    }
    Ok(None)
}

async fn namespaces(channel: &Channel) -> anyhow::Result<Vec<String>> {
    let reply = NamespacesClient::new(channel.clone())
        .list(ListNamespacesRequest::default())
        .await
        .context("listing containerd namespaces")?;
    Ok(reply
        .into_inner()
        .namespaces
        .into_iter()
        .map(|n| n.name)
        .collect())
}

fn in_namespace<T>(message: T, namespace: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "containerd-namespace",
        namespace
            .parse()
            .with_context(|| format!("namespace name {namespace:?}"))?,
    );
    Ok(request)
}

/// A container known from its record: its id is its name, and the OCI spec says how
/// it runs.
fn from_record(container: containerd_client::services::v1::Container) -> ContainerMeta {
    let spec: Value = container
        .spec
        .as_ref()
        .and_then(|any| serde_json::from_slice(&any.value).ok())
        .unwrap_or(Value::Null);
    let namespaces = spec["linux"]["namespaces"].as_array();
    // A namespace the spec does not ask for is the host's.
    let host = |kind: &str| namespaces.is_some_and(|all| !all.iter().any(|n| n["type"] == kind));
    let propagation = spec["linux"]["rootfsPropagation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mounts = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "bind")
        .map(|m| {
            let options: Vec<&str> = m["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Mount {
                source: m["source"].as_str().unwrap_or_default().to_string(),
                destination: m["destination"].as_str().unwrap_or_default().to_string(),
                mode: options
                    .iter()
                    .find_map(|o| o.strip_prefix("mode="))
                    .unwrap_or_default()
                    .to_string(),
                rw: !options.contains(&"ro"),
                propagation: propagation.clone(),
                kind: "bind".to_string(),
            }
        })
        .collect();
    let host_network = host("network");
    let labels = container.labels.into_iter().collect();
    ContainerMeta {
        name: container.id.clone(),
        id: container.id,
        host_pid: host("pid"),
        host_network,
        host_ipc: host("ipc"),
        network_mode: host_network.then(|| "host".to_string()),
        user: spec["process"]["user"]["uid"]
            .as_u64()
            .map(|uid| uid.to_string()),
        cap_add: spec["process"]["capabilities"]["effective"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(String::from))
            .collect(),
        privileged: looks_privileged(&spec),
        cgroup_path: spec["linux"]["cgroupsPath"].as_str().map(String::from),
        mounts,
        pod: ContainerMeta::pod_from_labels(&labels),
        labels,
        ..ContainerMeta::default()
    }
    .with_image(container.image)
}

/// containerd records no privileged flag; a privileged spec is one with every
/// confinement removed (no masked or read-only paths, no seccomp, no AppArmor
/// profile), which is what `ctr run --privileged` and nerdctl make.
fn looks_privileged(spec: &Value) -> bool {
    let linux = &spec["linux"];
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    spec.is_object()
        && empty(&linux["maskedPaths"])
        && empty(&linux["readonlyPaths"])
        && linux["seccomp"].is_null()
        && spec["process"]["apparmorProfile"]
            .as_str()
            .is_none_or(|p| p.is_empty() || p == "unconfined")
}
