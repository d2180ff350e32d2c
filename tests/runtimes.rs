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
    // A namespace made after the agent started (here by importing the image into
    // it): its first container is still known, with its image, from its first
    // process on (containerd reports the container before its task starts).
    let fresh = format!("monitor-fresh-{}", std::process::id());
    let tar = support::runtimes::saved_images();
    ctr(&["-n", &fresh, "images", "import", tar.to_str().unwrap()]);
    let fresh_name = format!("monitor-ctr-fresh-{}", std::process::id());
    ctr(&[
        "-n",
        &fresh,
        "run",
        "--rm",
        &format!("docker.io/{IMAGE}"),
        &fresh_name,
        "/bin/cat",
        "/etc/passwd",
    ]);
    let fresh_exec = in_container(
        &monitor,
        &fresh_name,
        "exec of cat in a fresh namespace",
        |e| is_exec_of(e, "cat"),
    );
    let _ = std::process::Command::new("ctr")
        .args(["--address", CONTAINERD_SOCKET, "-n", &fresh, "images", "rm"])
        .arg(format!("docker.io/{IMAGE}"))
        .output();
    let _ = std::process::Command::new("ctr")
        .args(["--address", CONTAINERD_SOCKET, "namespaces", "rm", &fresh])
        .output();
    monitor.stop();
    assert_eq!(
        fresh_exec["container"]["runtime"], "containerd",
        "{fresh_exec}"
    );
    assert_eq!(
        fresh_exec["container"]["image"],
        format!("docker.io/{IMAGE}"),
        "{fresh_exec}"
    );
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
    // The image's manifest digest, from containerd's image service.
    assert!(
        c["image_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71),
        "{exec}"
    );
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

const DEFAULT_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules");
const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco_rules.yaml"
);
const FALCO_INCUBATING_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco-incubating_rules.yaml"
);

/// Runs `command` in a container of each runtime (Docker, Podman, containerd's own
/// `default` namespace), named `names` in that order, with `mode` (`--rm`, `-d`).
fn run_on_every_runtime(podman: &Podman, mode: &str, names: [&str; 3], command: &[&str]) {
    let [docker_name, podman_name, ctr_name] = names;
    support::docker::docker(&[&["run", mode, "--name", docker_name, IMAGE][..], command].concat());
    let podman_image = format!("localhost/{IMAGE}");
    podman.run(
        &[
            &["run", mode, "--name", podman_name, &podman_image][..],
            command,
        ]
        .concat(),
    );
    let ctr_image = format!("docker.io/{IMAGE}");
    ctr(&[
        &["-n", "default", "run", mode, &ctr_image, ctr_name][..],
        command,
    ]
    .concat());
}

/// The alert names container `name`, of image `repository:v2`.
fn assert_container(alert: &Value, name: &str, repository: &str) {
    let fields = &alert["output_fields"];
    assert_eq!(fields["container.name"], name, "{alert}");
    assert_eq!(
        fields["container.image"],
        format!("{repository}:v2"),
        "{alert}"
    );
}

/// The first alert of `rule` whose `output_fields` name container `name`.
fn alerts_for(monitor: &Monitor, rule: &str, name: &str) -> Value {
    monitor.wait_for(&format!("{rule} for {name}"), |a| {
        a["rule"] == rule && a["output_fields"]["container.name"] == name
    })
}

/// Containers that read /etc/shadow and exit at once, on every runtime: each alert
/// carries the container's full metadata (its events were held until the runtime had
/// described it), never empty container fields.
#[test]
fn short_lived_containers_of_every_runtime_alert_with_full_metadata() {
    let _serial = serial();
    let _containerd = Containerd::start();
    let podman = Podman::start();
    let monitor = Monitor::run(&["--rules", DEFAULT_RULES]);
    let tag = std::process::id();
    let (docker_name, podman_name, ctr_name) = (
        format!("monitor-shadow-docker-{tag}"),
        format!("monitor-shadow-podman-{tag}"),
        format!("monitor-shadow-ctr-{tag}"),
    );
    let read_shadow = ["cat", "/etc/shadow"];
    run_on_every_runtime(
        &podman,
        "--rm",
        [&docker_name, &podman_name, &ctr_name],
        &read_shadow,
    );
    let pod = run_pod("shadow-0", "payments", &["cat", "/etc/shadow"]);
    const RULE: &str = "Password database read in container";
    let expected = [
        (docker_name.as_str(), "monitor-test/busybox"),
        (podman_name.as_str(), "localhost/monitor-test/busybox"),
        (ctr_name.as_str(), "docker.io/monitor-test/busybox"),
        ("app", "docker.io/monitor-test/busybox"),
    ];
    let alerts: Vec<Value> = expected
        .iter()
        .map(|(name, _)| alerts_for(&monitor, RULE, name))
        .collect();
    monitor.stop();
    remove_pod(&pod);
    for ((name, repository), alert) in expected.iter().zip(&alerts) {
        assert_container(alert, name, repository);
        let fields = &alert["output_fields"];
        assert_eq!(fields["container.image.repository"], *repository, "{alert}");
        assert_eq!(fields["container.image.tag"], "v2", "{alert}");
        assert_eq!(fields["fd.name"], "/etc/shadow", "{alert}");
        // What Falcosidekick requires of an alert.
        for key in ["rule", "priority", "time"] {
            assert!(
                alert[key].as_str().is_some_and(|v| !v.is_empty()),
                "{alert}"
            );
        }
    }
    let cri = &alerts[3]["output_fields"];
    assert_eq!(cri["k8s.pod.name"], "shadow-0", "{cri}");
    assert_eq!(cri["k8s.ns.name"], "payments", "{cri}");
    for alert in &alerts[..3] {
        assert_eq!(
            alert["output_fields"]["k8s.pod.name"],
            Value::Null,
            "{alert}"
        );
    }
}

/// The container-start rules judge a container by its first process, which must
/// already carry the runtime's metadata. `--privileged` cannot start here (runc cannot
/// apply a bounding set that has capabilities the test's root lacks), so the
/// privileged cases are a container with the Docker socket mounted (the default rule)
/// and one given CAP_SYS_ADMIN, which Falco's "Launch Excessively Capable Container"
/// checks for.
#[test]
fn container_start_rules_fire_once_on_the_first_process() {
    let _serial = serial();
    support::docker::ensure_image();
    let monitor = Monitor::run(&[
        "--rules",
        DEFAULT_RULES,
        "--rules",
        FALCO_RULES,
        "--rules",
        FALCO_INCUBATING_RULES,
    ]);
    let tag = std::process::id();
    let (socket_name, capable_name) = (
        format!("monitor-socket-{tag}"),
        format!("monitor-capable-{tag}"),
    );
    let _cleanup = support::docker::Cleanup(vec![socket_name.clone(), capable_name.clone()]);
    // Later processes of the same containers must not alert again; nc's own alert
    // says they have all been judged (each container's events stay in order). Paths,
    // so busybox's shell executes the files rather than re-running itself as applets;
    // a last command after sleep, so the shell stays pid 1 (a pid 1 that executes
    // another program is a new `proc.vpid = 1` exec, which Falco judges again too).
    let script = "/bin/true; /bin/true; /bin/nc 127.0.0.1 1 </dev/null; /bin/sleep 30; true";
    support::docker::docker(&[
        "run",
        "-d",
        "--name",
        &socket_name,
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    support::docker::docker(&[
        "run",
        "-d",
        "--name",
        &capable_name,
        "--cap-add",
        "SYS_ADMIN",
        IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let socket = alerts_for(
        &monitor,
        "Container started with host privileges",
        &socket_name,
    );
    let capable = alerts_for(
        &monitor,
        "Launch Excessively Capable Container",
        &capable_name,
    );
    for name in [&socket_name, &capable_name] {
        alerts_for(
            &monitor,
            "Launch Suspicious Network Tool in Container",
            name,
        );
    }
    let (alerts, _) = monitor.stop();
    let count = |rule: &str, name: &str| {
        alerts
            .iter()
            .filter(|a| a["rule"] == rule && a["output_fields"]["container.name"] == name)
            .count()
    };
    assert_eq!(
        count("Container started with host privileges", &socket_name),
        1
    );
    assert_eq!(
        count("Launch Excessively Capable Container", &capable_name),
        1
    );
    assert_eq!(
        count("Container started with host privileges", &capable_name),
        0
    );
    assert!(
        socket["output_fields"]["container.mounts"]
            .as_str()
            .unwrap()
            .contains("/var/run/docker.sock:/var/run/docker.sock"),
        "{socket}"
    );
    assert_eq!(
        socket["output_fields"]["container.type"], "docker",
        "{socket}"
    );
    assert!(
        capable["output_fields"]["thread.cap_permitted"]
            .as_str()
            .unwrap()
            .contains("CAP_SYS_ADMIN"),
        "{capable}"
    );
    assert_eq!(
        capable["output_fields"]["container.image.repository"],
        "monitor-test/busybox"
    );
}

/// The CRI-only client (the one CRI-O gets: no runtime API besides CRI, no change
/// feed, the container list polled). CRI-O is not packaged for this Debian release,
/// so containerd's CRI plugin stands in for it here: the agent is pointed at
/// containerd's socket as if it were CRI-O's, with its containerd client off.
#[test]
fn cri_only_client_describes_pods_from_a_real_cri_server() {
    let _serial = serial();
    let _containerd = Containerd::start();
    let monitor = Monitor::start(&[
        "--kinds",
        "exec",
        "--containerd-socket",
        "",
        "--crio-socket",
        CONTAINERD_SOCKET,
    ]);
    let pod = run_pod("cri-0", "batch", &["/bin/sh", "-c", WORKLOAD]);
    let exec = in_container(&monitor, &pod.container, "exec of cat", |e| {
        is_exec_of(e, "cat")
    });
    monitor.stop();
    remove_pod(&pod);
    let c = &exec["container"];
    // The runtime that answered is the one the agent was told it was.
    assert_eq!(c["runtime"], "cri-o", "{exec}");
    assert_eq!(c["name"], "app", "{exec}");
    assert_eq!(c["image"], format!("docker.io/{IMAGE}"), "{exec}");
    assert_eq!(c["pod"]["name"], "cri-0", "{exec}");
    assert_eq!(c["pod"]["namespace"], "batch", "{exec}");
    assert_eq!(c["pod"]["labels"], json!({"app": "shop-web"}), "{exec}");
    assert_eq!(c["host_network"], true, "{exec}");
}

/// Resumes a stopped process when dropped, so a failing test never leaves dockerd
/// frozen for the tests after it.
struct Frozen(i32);

impl Frozen {
    fn freeze(pid: i32) -> Self {
        // SAFETY: plain signals to a process of this machine.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Containers that ran before the agent started, one per runtime, each with a shell
/// that reads /etc/shadow every 100 ms: the first alerts after start-up carry each
/// container's name and image. The readers are shells older than the agent (found in
/// /proc), and containerd names its own containers only by namespace and name
/// (`/default/NAME`): the process table is seeded once every runtime has answered its
/// first listing. dockerd is frozen (SIGSTOP) while the agent starts and thawed 3 s
/// later: the agent is not ready before Docker has answered.
#[test]
fn first_events_after_start_up_carry_the_metadata_of_every_runtime() {
    let _serial = serial();
    let _containerd = Containerd::start();
    let podman = Podman::start();
    let tag = std::process::id();
    let (docker_name, podman_name, ctr_name) = (
        format!("monitor-early-docker-{tag}"),
        format!("monitor-early-podman-{tag}"),
        format!("monitor-early-ctr-{tag}"),
    );
    // `read` is the shell's own: the open is the long-lived shell's, never a new exec's.
    // Service account tokens are watched by container rules only: the kernel filter
    // must not count a container that only its runtime can name among the host's
    // cgroups, whose scope would drop these reads.
    let reader = [
        "sh",
        "-c",
        "t=/var/run/secrets/kubernetes.io/serviceaccount; mkdir -p $t; echo x > $t/token; \
         while :; do read l </etc/shadow; read l <$t/token; sleep 0.1; done",
    ];
    run_on_every_runtime(
        &podman,
        "-d",
        [&docker_name, &podman_name, &ctr_name],
        &reader,
    );
    let cleanup = Cleanup(|| {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &docker_name])
            .output();
        // Podman's own guard removes its containers.
        remove_ctr_container(&ctr_name);
    });

    let dockerd: i32 = String::from_utf8(
        std::process::Command::new("pidof")
            .arg("dockerd")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .next()
    .expect("dockerd runs (cargo xtask setup starts it)")
    .parse()
    .unwrap();
    let frozen = Frozen::freeze(dockerd);
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(frozen);
        std::time::Instant::now()
    });
    let monitor = Monitor::run(&["--rules", DEFAULT_RULES]);
    let ready_at = std::time::Instant::now();
    let thawed_at = thaw.join().unwrap();
    assert!(
        ready_at > thawed_at,
        "ready {:?} before dockerd was thawed",
        thawed_at - ready_at
    );

    const RULE: &str = "Password database read in container";
    let expected = [
        (docker_name.as_str(), "monitor-test/busybox"),
        (podman_name.as_str(), "localhost/monitor-test/busybox"),
        (ctr_name.as_str(), "docker.io/monitor-test/busybox"),
    ];
    let alerts: Vec<Value> = expected
        .iter()
        .map(|(name, _)| alerts_for(&monitor, RULE, name))
        .collect();
    // After the kernel filter's host cgroups were refreshed (every second).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let credentials_from = std::time::SystemTime::now();
    let credentials = monitor.wait_for("a token read in the ctr container", |a| {
        a["rule"] == "Kubernetes credentials read in container"
            && a["output_fields"]["container.name"] == ctr_name.as_str()
            && a["time"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .is_some_and(|t| t >= credentials_from)
    });
    let log = monitor.stderr_lines();
    monitor.stop();
    drop(cleanup);

    for ((name, repository), alert) in expected.iter().zip(&alerts) {
        assert_container(alert, name, repository);
        let fields = &alert["output_fields"];
        assert_eq!(fields["proc.name"], "sh", "{alert}");
        assert_eq!(fields["fd.name"], "/etc/shadow", "{alert}");
    }
    assert_container(&credentials, &ctr_name, "docker.io/monitor-test/busybox");
    assert_eq!(
        credentials["output_fields"]["fd.name"],
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "{credentials}"
    );
    // The first listings were answered, and only then was the agent ready.
    let running = log
        .iter()
        .position(|l| l.contains("monitor running"))
        .unwrap_or_else(|| panic!("no running line:\n{}", log.join("\n")));
    for runtime in ["docker", "containerd", "podman"] {
        let answered = log
            .iter()
            .position(|l| {
                l.contains(&format!("{runtime} at ")) && l.contains("answered its first listing")
            })
            .unwrap_or_else(|| panic!("no first listing from {runtime}:\n{}", log.join("\n")));
        assert!(
            answered < running,
            "{runtime} answered after ready:\n{}",
            log.join("\n")
        );
    }
}

/// Runs its closure when dropped: containers are removed even when an assertion
/// fails, so no later test (or run) finds them.
struct Cleanup<F: FnMut()>(F);

impl<F: FnMut()> Drop for Cleanup<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Kills a `ctr run -d` container's task, waits until containerd has reaped it, then
/// removes the container.
fn remove_ctr_container(name: &str) {
    let ctr = |args: &[&str]| {
        std::process::Command::new("ctr")
            .args(["--address", CONTAINERD_SOCKET, "-n", "default"])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ctr(&["task", "kill", "-s", "SIGKILL", name]);
    for _ in 0..100 {
        if ctr(&["task", "rm", name]) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ctr(&["containers", "rm", name]);
}
