//! The Docker API through bollard: dockerd's, and Podman's Docker-compatible service
//! (`podman system service`), which answers the same calls with the same shapes.
use std::{collections::HashMap, path::Path};

#[cfg(test)]
use std::collections::BTreeMap;

use anyhow::Context as _;
use bollard::{
    Docker,
    errors::Error as DockerError,
    query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions},
};
use futures_util::StreamExt;

use super::{Change, Changes, ContainerMeta, Mount, RuntimeApi};

pub struct DockerApi;

impl RuntimeApi for DockerApi {
    type Client = Docker;

    async fn connect(&self, socket: &Path) -> anyhow::Result<Docker> {
        let socket = socket.to_string_lossy();
        let docker = Docker::connect_with_unix(&socket, 5, bollard::API_DEFAULT_VERSION)?;
        // dockerd 20.10 speaks API 1.41, Podman 4.3 1.41 too: agree on a version both know.
        Ok(docker.negotiate_version().await?)
    }

    async fn changes(&self, docker: &Docker) -> anyhow::Result<Changes> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ["create", "start", "die", "destroy", "remove", "rename"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        let events = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        Ok(events
            .filter_map(|event| async move {
                let message = match event {
                    Ok(message) => message,
                    Err(err) => return Some(Err(err.into())),
                };
                let actor = message.actor.unwrap_or_default();
                let id = actor.id.unwrap_or_default();
                match message.action.as_deref() {
                    Some("create" | "start") => Some(Ok(Change::SeenAs(Box::new(from_event(
                        id,
                        actor.attributes.unwrap_or_default(),
                    ))))),
                    Some("rename") => Some(Ok(Change::Seen(id))),
                    // Podman says `remove` where dockerd says `destroy`.
                    Some("destroy" | "remove") => Some(Ok(Change::Removed(id))),
                    _ => None,
                }
            })
            .boxed())
    }

    async fn list(&self, docker: &Docker) -> anyhow::Result<Vec<String>> {
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    async fn inspect(&self, docker: &Docker, id: &str) -> anyhow::Result<Option<ContainerMeta>> {
        let inspect = match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(err) => return Err(err).context("inspecting the container"),
        };
        let digest = match inspect.image.as_deref() {
            Some(image_id) => docker
                .inspect_image(image_id)
                .await
                .ok()
                .and_then(|image| image.repo_digests)
                .and_then(|digests| digests.into_iter().next())
                .and_then(|d| d.split_once('@').map(|(_, digest)| digest.to_string())),
            None => None,
        };
        Ok(Some(to_meta(inspect, digest)))
    }
}

/// What a container event says: its name, image and labels (the attributes other than
/// the engine's own).
fn from_event(id: String, mut attributes: HashMap<String, String>) -> ContainerMeta {
    let name = attributes.remove("name").unwrap_or_default();
    let image = attributes.remove("image").unwrap_or_default();
    for engine_key in ["exitCode", "containerExitCode", "podId", "signal", "execID"] {
        attributes.remove(engine_key);
    }
    let labels = attributes.into_iter().collect();
    ContainerMeta {
        id,
        name,
        pod: ContainerMeta::pod_from_labels(&labels),
        labels,
        ..ContainerMeta::default()
    }
    .with_image(image)
}

fn to_meta(
    inspect: bollard::models::ContainerInspectResponse,
    image_digest: Option<String>,
) -> ContainerMeta {
    let config = inspect.config.unwrap_or_default();
    let host_config = inspect.host_config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default().into_iter().collect();
    let is_host = |mode: &Option<String>| mode.as_deref() == Some("host");
    ContainerMeta {
        id: inspect.id.unwrap_or_default(),
        name: inspect
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image_digest,
        image_id: inspect.image,
        privileged: host_config.privileged.unwrap_or(false),
        host_pid: is_host(&host_config.pid_mode),
        host_network: is_host(&host_config.network_mode),
        host_ipc: is_host(&host_config.ipc_mode),
        network_mode: host_config.network_mode,
        cap_add: host_config.cap_add.unwrap_or_default(),
        cap_drop: host_config.cap_drop.unwrap_or_default(),
        user: config.user.filter(|u| !u.is_empty()),
        mounts: inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| Mount {
                source: m.source.unwrap_or_default(),
                destination: m.destination.unwrap_or_default(),
                mode: m.mode.unwrap_or_default(),
                rw: m.rw.unwrap_or(false),
                propagation: m.propagation.unwrap_or_default(),
                kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
            })
            .collect(),
        started_at: inspect
            .state
            .and_then(|s| s.started_at)
            .filter(|s| !s.starts_with("0001-")),
        pod: ContainerMeta::pod_from_labels(&labels),
        labels,
        ..ContainerMeta::default()
    }
    .with_image(config.image.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_event_names_the_container_its_image_and_labels() {
        let attributes = HashMap::from(
            [
                ("name", "web"),
                ("image", "localhost/team/app:2"),
                ("podId", ""),
                ("tier", "front"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let meta = from_event("abc".into(), attributes);
        assert_eq!((meta.id.as_str(), meta.name.as_str()), ("abc", "web"));
        assert_eq!(meta.image, "localhost/team/app:2");
        assert_eq!(meta.image_repository.as_deref(), Some("localhost/team/app"));
        assert_eq!(meta.image_tag.as_deref(), Some("2"));
        assert_eq!(
            meta.labels,
            BTreeMap::from([("tier".to_string(), "front".to_string())])
        );
    }
}
