//! containerd (with its CRI plugin) and Podman beside Docker, for the runtime tests.
//! Both are Debian's packages run for real: containerd with a config of its own (its
//! own root, state and the standard socket, which Docker's containerd does not use),
//! Podman's Docker-compatible service on its standard socket. Images move over from
//! Docker with `docker save` (no registry is reachable).
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::wait_until;

use super::docker::{self, IMAGE, docker};

pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// The CRI plugin's pod sandbox image: the test image with a command that waits.
pub const PAUSE_IMAGE: &str = "monitor-test/pause:v1";

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("run {program}: {err} (cargo xtask setup installs it)"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `docker save` of the test image and the pause image, made once per run.
pub fn saved_images() -> PathBuf {
    docker::ensure_image();
    let tar = std::env::temp_dir().join(format!("monitor-images-{}.tar", std::process::id()));
    if tar.exists() {
        return tar;
    }
    let has_pause = Command::new("docker")
        .args(["image", "inspect", PAUSE_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !has_pause {
        let scratch = docker(&["create", IMAGE, "true"]);
        docker(&[
            "commit",
            "--change",
            r#"CMD ["/bin/sleep", "2147483647"]"#,
            &scratch,
            PAUSE_IMAGE,
        ]);
        docker(&["rm", &scratch]);
    }
    docker(&["save", "-o", tar.to_str().unwrap(), IMAGE, PAUSE_IMAGE]);
    tar
}

/// A containerd of the tests' own, with its CRI plugin, on the standard socket.
/// Killed (and its containers with it) when dropped.
pub struct Containerd {
    child: Option<Child>,
    config: PathBuf,
}

impl Containerd {
    pub fn start() -> Self {
        let dir = PathBuf::from("/var/lib/monitor-test-containerd");
        let state = PathBuf::from("/run/monitor-test-containerd");
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: a pod's oom_score_adj may not go below ours.
  restrict_oom_score_adj = true
"#,
                root = dir.join("root").display(),
                state = state.display(),
            ),
        )
        .unwrap();
        let mut containerd = Containerd {
            child: None,
            config,
        };
        containerd.spawn();
        let tar = saved_images();
        for namespace in ["k8s.io", "default"] {
            ctr(&["-n", namespace, "images", "import", tar.to_str().unwrap()]);
        }
        containerd
    }

    fn spawn(&mut self) {
        let _ = fs::remove_file(CONTAINERD_SOCKET);
        let log = fs::File::create("/var/log/monitor-test-containerd.log").unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (installed with docker.io)");
        self.child = Some(child);
        wait_until("containerd's CRI plugin", Duration::from_secs(30), || {
            Command::new("ctr")
                .args(["--address", CONTAINERD_SOCKET, "plugins", "ls"])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                        let columns: Vec<&str> = l.split_whitespace().collect();
                        columns.first() == Some(&"io.containerd.grpc.v1")
                            && columns.get(1) == Some(&"cri")
                            && columns.last() == Some(&"ok")
                    })
                })
        });
    }

    /// Kills containerd (SIGKILL, as a crash would) and starts it again; its
    /// containers' shims keep running meanwhile.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for namespace in ["k8s.io", "default"] {
            let tasks = ctr_output(&["-n", namespace, "tasks", "ls", "-q"]);
            for task in tasks.lines() {
                let _ = ctr_output(&["-n", namespace, "tasks", "kill", "-s", "KILL", task]);
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Shims and pause processes left behind would keep their cgroups busy (Docker's
        // shims name Docker's own containerd socket, not this one).
        let _ = Command::new("pkill")
            .args([
                "-KILL",
                "-f",
                &format!("containerd-shim.*-address {CONTAINERD_SOCKET}"),
            ])
            .status();
        // dockerd, when (re)started, takes a socket at the standard path for the
        // system's containerd and would wait on this dead one.
        let _ = fs::remove_file(CONTAINERD_SOCKET);
        let _ = fs::remove_file(format!("{CONTAINERD_SOCKET}.ttrpc"));
    }
}

pub fn ctr(args: &[&str]) -> String {
    let mut all = vec!["--address", CONTAINERD_SOCKET];
    all.extend_from_slice(args);
    run("ctr", &all)
}

fn ctr_output(args: &[&str]) -> String {
    let mut all = vec!["--address", CONTAINERD_SOCKET];
    all.extend_from_slice(args);
    Command::new("ctr")
        .args(&all)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Rootful Podman with its Docker-compatible API service on the standard socket.
/// Podman here needs `default_ulimits = []` (root lacks CAP_SYS_RESOURCE) and the
/// cgroupfs manager (no systemd).
pub struct Podman {
    service: Child,
    conf: PathBuf,
}

impl Podman {
    pub fn start() -> Self {
        let dir = PathBuf::from("/var/lib/monitor-test-podman");
        fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("containers.conf");
        fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n",
        )
        .unwrap();
        fs::create_dir_all(Path::new(PODMAN_SOCKET).parent().unwrap()).unwrap();
        let _ = fs::remove_file(PODMAN_SOCKET);
        let log = fs::File::create("/var/log/monitor-test-podman.log").unwrap();
        let service = Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{PODMAN_SOCKET}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start podman system service (cargo xtask setup installs podman)");
        wait_until("podman's API socket", Duration::from_secs(30), || {
            Path::new(PODMAN_SOCKET).exists()
        });
        let podman = Podman { service, conf };
        let tar = saved_images();
        podman.run(&["load", "-q", "-i", tar.to_str().unwrap()]);
        podman
    }

    pub fn run(&self, args: &[&str]) -> String {
        let output = Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .args(args)
            .output()
            .expect("run podman");
        assert!(
            output.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .env("CONTAINERS_CONF", &self.conf)
            .args(["rm", "-af"])
            .output();
        let _ = self.service.kill();
        let _ = self.service.wait();
        // A socket left behind would have later agents watch a runtime that is gone.
        let _ = fs::remove_file(PODMAN_SOCKET);
    }
}
