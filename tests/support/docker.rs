//! A real dockerd for the container tests: the test image is built locally with
//! `docker import` (no registry is reachable), and dockerd itself can be stopped and
//! started to test the agent's behaviour without it.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use super::wait_until;

/// busybox plus a user (`appuser`, uid 4242) that only exists in this image, and a
/// shadow file for the sensitive-read rules.
pub const IMAGE: &str = "monitor-test/busybox:v2";

pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

pub fn is_up() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn ensure_image() {
    assert!(
        is_up(),
        "dockerd is not running: `cargo xtask setup` starts it"
    );
    let exists = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if exists {
        return;
    }
    let root = std::env::temp_dir().join(format!("monitor-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static is installed by `cargo xtask setup`");
    for applet in ["sh", "cat", "nc", "sleep", "true", "ls", "echo", "ip"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nappuser:x:4242:4242:app:/tmp:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nappgroup:x:4242:\n").unwrap();
    std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = Command::new("docker")
        .args(["import", "-", IMAGE])
        .stdin(tar.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(tar.wait().unwrap().success(), "tar failed");
    assert!(status.success(), "docker import failed");
    std::fs::remove_dir_all(root).unwrap();
}

/// Removes the named containers when dropped, whatever the test's outcome.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker")
                .args(["rm", "-f", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn dockerd_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-x", "dockerd"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

pub fn stop_dockerd() {
    let pid = dockerd_pid().expect("dockerd is running");
    // SAFETY: signalling a process by pid.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    wait_until("dockerd to exit", Duration::from_secs(30), || {
        dockerd_pid().is_none()
    });
}

pub fn start_dockerd() {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/var/log/dockerd.log")
        .unwrap();
    // `setsid -f` forks dockerd into its own session and returns at once.
    let status = Command::new("setsid")
        .args(["-f", "dockerd", "--live-restore"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .expect("start dockerd");
    assert!(status.success());
    wait_until("dockerd to answer", Duration::from_secs(60), is_up);
}

/// Starts dockerd again if a test stopped it and failed before starting it.
pub struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        if dockerd_pid().is_none() {
            start_dockerd();
        }
    }
}

/// Containers must survive dockerd going away for the restart test.
pub fn ensure_live_restore() {
    if docker(&["info", "--format", "{{.LiveRestoreEnabled}}"]) == "true" {
        return;
    }
    stop_dockerd();
    start_dockerd();
}

pub fn container_pid(name: &str) -> u32 {
    docker(&["inspect", "--format", "{{.State.Pid}}", name])
        .parse()
        .unwrap()
}

pub fn read_cidfile(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// Runs `sh -c SCRIPT` in the container with a terminal, as `docker exec -it` does
/// for a person; `script` gives docker the terminal it insists on.
pub fn exec_in_terminal(name: &str, script: &str) {
    let status = Command::new("script")
        .args([
            "-qec",
            &format!("docker exec -it {name} sh -c '{script}'"),
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "docker exec -it {name} failed");
}
