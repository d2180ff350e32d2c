//! Container metadata from the runtimes other than Docker, end to end: the real agent,
//! the real kernel, and Debian's containerd (its own API and its CRI plugin, driven
//! the way kubelet drives it) and Podman.
mod support;

use std::collections::HashMap;

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ImageSpec, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest, runtime_service_client::RuntimeServiceClient,
};
use serde_json::{Value, json};
use support::{
    Monitor,
    docker::IMAGE,
    runtimes::{CONTAINERD_SOCKET, Containerd, Podman, ctr},
    serial,
};

/// What the container does: an exec, an open and a connect, then it waits.
const WORKLOAD: &str = "cat /etc/hostname >/dev/null; nc 127.0.0.1 1 </dev/null; sleep 30";

struct Pod {
    sandbox: String,
    container: String,
    uid: String,
}

/// A pod with host networking (no CNI needed) and one container, made through the
/// CRI API with the labels kubelet puts on its containers.
fn run_pod(name: &str, namespace: &str, command: &[&str]) -> Pod {
    let uid = format!("{name}-{}-uid", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = containerd_client::connect(CONTAINERD_SOCKET).await.unwrap();
        let mut cri = RuntimeServiceClient::new(channel);
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.clone(),
                namespace: namespace.to_string(),
                attempt: 0,
            }),
            labels: HashMap::from([("app".to_string(), "shop-web".to_string())]),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Just after a start the CRI plugin may still be recovering its state.
        let mut attempts = 0;
        let sandbox = loop {
            let reply = cri
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(sandbox_config.clone()),
                    runtime_handler: String::new(),
                })
                .await;
            match reply {
                Ok(reply) => break reply.into_inner().pod_sandbox_id,
                Err(status) if status.message().contains("not initialized") && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(status) => panic!("RunPodSandbox: {status}"),
            }
        };
        let labels = HashMap::from([
            ("io.kubernetes.pod.name".to_string(), name.to_string()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                namespace.to_string(),
            ),
            ("io.kubernetes.pod.uid".to_string(), uid.clone()),
            (
                "io.kubernetes.container.name".to_string(),
                "app".to_string(),
            ),
        ]);
        let container = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "app".to_string(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: format!("docker.io/{IMAGE}"),
                        ..Default::default()
                    }),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    labels,
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox_config),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        cri.start_container(StartContainerRequest {
            container_id: container.clone(),
        })
        .await
        .expect("StartContainer");
        Pod {
            sandbox,
            container,
            uid,
        }
    })
}

fn remove_pod(pod: &Pod) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = containerd_client::connect(CONTAINERD_SOCKET).await.unwrap();
        let mut cri = RuntimeServiceClient::new(channel);
        let _ = cri
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            })
            .await;
        let _ = cri
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            })
            .await;
    });
}

/// An exec of `program`: busybox's shell may run an applet through /proc/self/exe, so
/// the task name at exec can be `exe`; argv[0] is what was asked for.
fn is_exec_of(event: &Value, program: &str) -> bool {
    event["kind"] == "exec"
        && event["args"][0]
            .as_str()
            .is_some_and(|arg0| arg0.rsplit('/').next() == Some(program))
}

fn in_container<'a>(
    monitor: &Monitor,
    id: &'a str,
    what: &'a str,
    pred: impl Fn(&Value) -> bool + 'a,
) -> Value {
    monitor.wait_for(what, move |e| e["container"]["id"] == id && pred(e))
}

#[test]
fn cri_pod_events_carry_the_pod_and_the_container() {
    let _serial = serial();
    let _containerd = Containerd::start();
    let monitor = Monitor::start(&["--kinds", "exec,open,connect"]);
    let pod = run_pod("web-0", "shop", &["/bin/sh", "-c", WORKLOAD]);
    let id = pod.container.as_str();
    let exec = in_container(&monitor, id, "exec of cat", |e| is_exec_of(e, "cat"));
    let open = in_container(&monitor, id, "open of /etc/hostname", |e| {
        e["kind"] == "open" && e["path"] == "/etc/hostname"
    });
    let connect = in_container(&monitor, id, "connect to port 1", |e| {
        e["kind"] == "connect" && e["port"] == 1
    });
    monitor.stop();
    remove_pod(&pod);
    for event in [&exec, &open, &connect] {
        let c = &event["container"];
        assert_eq!(c["runtime"], "containerd", "{event}");
        assert_eq!(c["name"], "app", "{event}");
        assert_eq!(c["image"], format!("docker.io/{IMAGE}"), "{event}");
        assert_eq!(c["image_repository"], "docker.io/monitor-test/busybox");
        assert_eq!(c["image_tag"], "v2");
        assert_eq!(c["host_network"], true, "{event}");
        assert_eq!(c["host_pid"], false, "{event}");
        assert_eq!(c["privileged"], false, "{event}");
        let p = &c["pod"];
        assert_eq!(p["name"], "web-0", "{event}");
        assert_eq!(p["namespace"], "shop", "{event}");
        assert_eq!(p["uid"], pod.uid.as_str(), "{event}");
        assert_eq!(p["labels"], json!({"app": "shop-web"}), "{event}");
        assert_eq!(c["labels"]["io.kubernetes.container.name"], "app");
    }
}

#[test]
fn ctr_run_container_in_the_default_namespace_carries_its_name_and_image() {
    let _serial = serial();
    let _containerd = Containerd::start();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let name = format!("monitor-ctr-{}", std::process::id());
    ctr(&[
        "-n",
        "default",
        "run",
        "--rm",
        &format!("docker.io/{IMAGE}"),
        &name,
        "/bin/cat",
        "/etc/passwd",
    ]);
    let exec = in_container(&monitor, &name, "exec of cat", |e| is_exec_of(e, "cat"));
    monitor.stop();
    let c = &exec["container"];
    assert_eq!(c["runtime"], "containerd", "{exec}");
    assert_eq!(c["name"], name.as_str(), "{exec}");
    assert_eq!(c["image"], format!("docker.io/{IMAGE}"), "{exec}");
    assert_eq!(c["image_tag"], "v2", "{exec}");
    assert_eq!(c["pod"], Value::Null, "{exec}");
    assert_eq!(c["privileged"], false, "{exec}");
    // `ctr run` gives the container a network namespace of its own.
    assert_eq!(c["host_network"], false, "{exec}");
    assert_eq!(c["user"], "0", "{exec}");
}

#[test]
fn podman_container_carries_its_name_and_image() {
    let _serial = serial();
    let podman = Podman::start();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let name = format!("monitor-podman-{}", std::process::id());
    let id = podman.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "tier=batch",
        &format!("localhost/{IMAGE}"),
        "sh",
        "-c",
        "cat /etc/hostname; sleep 30",
    ]);
    let exec = in_container(&monitor, &id, "exec of cat", |e| is_exec_of(e, "cat"));
    monitor.stop();
    podman.run(&["rm", "-f", &name]);
    let c = &exec["container"];
    assert_eq!(c["runtime"], "podman", "{exec}");
    assert_eq!(c["name"], name.as_str(), "{exec}");
    assert_eq!(c["image"], format!("localhost/{IMAGE}"), "{exec}");
    assert_eq!(c["labels"]["tier"], "batch", "{exec}");
}

#[test]
fn containerd_killed_and_started_again_keeps_events_flowing_and_resolves_new_containers() {
    let _serial = serial();
    let mut containerd = Containerd::start();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let first = run_pod("before-0", "shop", &["/bin/sh", "-c", WORKLOAD]);
    in_container(&monitor, &first.container, "exec before the restart", |e| {
        is_exec_of(e, "cat") && e["container"]["name"] == "app"
    });
    containerd.restart();
    // The agent notices, reconnects with backoff, and says so.
    monitor.wait_for_log("reachable again");
    // The pod from before keeps running under its shim; a new one must be resolved.
    let second = run_pod("after-0", "shop", &["/bin/sh", "-c", WORKLOAD]);
    let exec = in_container(&monitor, &second.container, "exec after the restart", |e| {
        is_exec_of(e, "cat")
    });
    monitor.stop();
    remove_pod(&first);
    remove_pod(&second);
    assert_eq!(exec["container"]["runtime"], "containerd", "{exec}");
    assert_eq!(exec["container"]["name"], "app", "{exec}");
    assert_eq!(exec["container"]["pod"]["name"], "after-0", "{exec}");
}

#[test]
fn runtime_sockets_are_described_in_help() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--containerd-socket", "--crio-socket", "--podman-socket"] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
