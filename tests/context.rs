//! Process and container context end to end: the real agent, the real kernel and a
//! real dockerd (images built locally with `docker import`).
mod support;

use std::{process::Command, time::Duration};

use serde_json::{Value, json};
use support::{
    Monitor,
    docker::{self, Cleanup, IMAGE, docker},
    serial,
};

fn unique(name: &str) -> String {
    format!("monitor-{name}-{}", std::process::id())
}

/// The container fields every event of `id` must carry.
fn assert_container(event: &Value, id: &str, name: &str, labels: Value) {
    let c = &event["container"];
    assert_eq!(c["id"], id, "{event}");
    assert_eq!(c["short_id"], &id[..12]);
    assert_eq!(c["runtime"], "docker");
    assert_eq!(c["name"], name, "{event}");
    assert_eq!(c["image"], IMAGE);
    assert_eq!(c["image_repository"], "monitor-test/busybox");
    assert_eq!(c["image_tag"], "v2");
    assert!(c["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(c["labels"], labels);
    assert_eq!(c["privileged"], false);
}

/// A loop that opens a file from the shell itself (a process older than the agent),
/// and starts `cat` and `nc` (processes newer than it) every 200 ms.
const LOOP: &str = "while :; do read x < /etc/hostname; cat /etc/hostname >/dev/null; \
                    nc 127.0.0.1 1 </dev/null 2>/dev/null; sleep 0.2; done";

fn run_loop_container(name: &str, label: &str) -> String {
    docker(&[
        "run", "-d", "--name", name, "--label", label, IMAGE, "sh", "-c", LOOP,
    ])
}

fn assert_loop_events(monitor: &Monitor, id: &str, name: &str, labels: Value) {
    let in_container = |e: &Value| e["container"]["id"] == id;
    // busybox's shell runs applets through /proc/self/exe: the exec is named by argv.
    let exec = monitor.wait_for("exec of cat", |e| {
        in_container(e) && e["kind"] == "exec" && e["args"][0] == "cat"
    });
    assert_container(&exec, id, name, labels.clone());
    assert_eq!(exec["process"]["exepath"], "/bin/busybox");
    assert_eq!(exec["process"]["exe"], "cat");
    assert_eq!(exec["process"]["args"], json!(["/etc/hostname"]));
    let open = monitor.wait_for("open by cat", |e| {
        in_container(e) && e["kind"] == "open" && e["comm"] == "cat" && e["path"] == "/etc/hostname"
    });
    assert_container(&open, id, name, labels.clone());
    // The applet renamed itself after the exec; later events carry the new name.
    assert_eq!(open["process"]["cmdline"], "cat /etc/hostname");
    let connect = monitor.wait_for("connect by nc", |e| {
        in_container(e) && e["kind"] == "connect" && e["port"] == 1
    });
    assert_container(&connect, id, name, labels);
    assert_eq!(connect["address"], "127.0.0.1");
    assert_eq!(connect["process"]["name"], "nc");
}

#[test]
fn containers_started_before_and_after_the_agent_have_full_context() {
    let _serial = serial();
    docker::ensure_image();
    let before = unique("before");
    let after = unique("after");
    let _cleanup = Cleanup(vec![before.clone(), after.clone()]);
    let before_id = run_loop_container(&before, "tier=before");
    let before_pid = docker::container_pid(&before);

    let monitor = Monitor::start(&["--kinds", "exec,open,connect"]);
    // The loop's shell predates the agent: its context comes from /proc.
    let open = monitor.wait_for("open by the older shell", |e| {
        e["kind"] == "open" && e["pid"] == before_pid && e["path"] == "/etc/hostname"
    });
    assert_container(&open, &before_id, &before, json!({"tier": "before"}));
    assert_eq!(open["process"]["name"], "sh");
    assert_eq!(open["process"]["vpid"], 1, "pid inside the container");
    assert_loop_events(&monitor, &before_id, &before, json!({"tier": "before"}));

    let after_id = run_loop_container(&after, "tier=after");
    assert_loop_events(&monitor, &after_id, &after, json!({"tier": "after"}));
    monitor.stop();
}

#[test]
fn short_lived_container_is_attributed_with_name_and_image() {
    let _serial = serial();
    docker::ensure_image();
    let name = unique("short");
    let cidfile = std::env::temp_dir().join(format!("{name}.cid"));
    let _ = std::fs::remove_file(&cidfile);
    let monitor = Monitor::start(&["--kinds", "exec"]);
    docker(&[
        "run",
        "--rm",
        "--cidfile",
        cidfile.to_str().unwrap(),
        "--name",
        &name,
        "--label",
        "lifetime=short",
        IMAGE,
        "true",
    ]);
    let id = docker::read_cidfile(&cidfile);
    let exec = monitor.wait_for("exec of true", |e| {
        e["kind"] == "exec" && e["container"]["id"] == id.as_str() && e["comm"] == "true"
    });
    monitor.stop();
    assert_container(&exec, &id, &name, json!({"lifetime": "short"}));
    assert_eq!(exec["args"], json!(["true"]));
    std::fs::remove_file(cidfile).unwrap();
}

#[test]
fn three_level_ancestry_links_exec_ids() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    // `; true` keeps each shell from exec'ing its last command in place.
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            "/bin/sh -c '/bin/cat /etc/hostname >/dev/null; true'; true",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let me = std::process::id();
    let outer = monitor.wait_for("outer sh", |e| {
        e["kind"] == "exec" && e["ppid"] == me && e["comm"] == "sh"
    });
    let outer_pid = outer["pid"].clone();
    let inner = monitor.wait_for("inner sh", |e| {
        e["kind"] == "exec" && e["ppid"] == outer_pid && e["comm"] == "sh"
    });
    let inner_pid = inner["pid"].clone();
    let cat = monitor.wait_for("cat", |e| {
        e["kind"] == "exec" && e["ppid"] == inner_pid && e["comm"] == "cat"
    });
    monitor.stop();

    let id = |e: &Value| e["process"]["exec_id"].as_str().unwrap().to_string();
    assert_eq!(cat["process"]["parent_exec_id"], id(&inner).as_str());
    assert_eq!(inner["process"]["parent_exec_id"], id(&outer).as_str());
    assert_ne!(id(&cat), id(&inner));
    let ancestors = cat["ancestors"].as_array().unwrap();
    assert_eq!(ancestors[0]["pid"], inner_pid);
    assert_eq!(ancestors[0]["name"], "sh");
    assert_eq!(ancestors[0]["exec_id"], id(&inner).as_str());
    assert_eq!(
        ancestors[0]["cmdline"],
        "sh -c /bin/cat /etc/hostname >/dev/null; true"
    );
    assert_eq!(ancestors[1]["pid"], outer_pid);
    assert_eq!(ancestors[1]["exec_id"], id(&outer).as_str());
    assert_eq!(ancestors[2]["pid"], me);
    assert_eq!(cat["process"]["cmdline"], "cat /etc/hostname");
    assert_eq!(cat["container"], json!({"id": "host", "name": "host"}));
}

#[test]
fn user_known_only_inside_the_container_is_named() {
    let _serial = serial();
    docker::ensure_image();
    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !host_passwd.contains(":4242:"),
        "the host must not know uid 4242"
    );
    let name = unique("user");
    let _cleanup = Cleanup(vec![name.clone()]);
    docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    let monitor = Monitor::start(&["--kinds", "open"]);
    docker(&["exec", "-u", "4242:4242", &name, "cat", "/etc/hostname"]);
    let open = monitor.wait_for("open as uid 4242", |e| {
        e["kind"] == "open"
            && e["comm"] == "cat"
            && e["uid"] == 4242
            && e["path"] == "/etc/hostname"
    });
    monitor.stop();
    assert_eq!(open["process"]["user"], "appuser");
    assert_eq!(open["process"]["group"], "appgroup");
    assert_eq!(open["process"]["uid"], 4242);
    assert_eq!(open["container"]["name"], name.as_str());
}

#[test]
fn events_keep_their_container_while_dockerd_is_down() {
    let _serial = serial();
    docker::ensure_image();
    docker::ensure_live_restore();
    let survivor = unique("survivor");
    let later = unique("later");
    let _cleanup = Cleanup(vec![survivor.clone(), later.clone()]);
    let survivor_id = run_loop_container(&survivor, "role=survivor");
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let before_stop = monitor.wait_for("exec before the stop", |e| {
        e["container"]["id"] == survivor_id.as_str() && e["args"][0] == "cat"
    });
    assert_eq!(before_stop["container"]["name"], survivor.as_str());
    // A container stopped mid-start by dockerd's shutdown can hang; let it settle.
    std::thread::sleep(Duration::from_secs(2));

    let _restart = docker::RestartOnDrop;
    docker::stop_dockerd();
    let stopped_at = support::boot_ns_now();
    let during = monitor.wait_for("exec while dockerd is down", |e| {
        e["container"]["id"] == survivor_id.as_str()
            && e["args"][0] == "cat"
            && e["boot_ns"].as_u64().unwrap() > stopped_at
    });
    assert_eq!(during["container"]["runtime"], "docker");
    let down_logs: Vec<String> = monitor
        .stderr_lines()
        .into_iter()
        .filter(|l| l.contains("docker API"))
        .collect();

    docker::start_dockerd();
    let later_id = run_loop_container(&later, "role=later");
    let resolved = monitor.wait_for_within(
        "exec in a container started after",
        Duration::from_secs(30),
        |e| {
            e["container"]["id"] == later_id.as_str()
                && e["args"][0] == "cat"
                && e["container"]["name"] == later.as_str()
        },
    );
    let logs = monitor.stderr_lines();
    monitor.stop();
    assert_container(&resolved, &later_id, &later, json!({"role": "later"}));
    assert_eq!(
        down_logs.len(),
        1,
        "the outage is logged once: {down_logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("is reachable again")),
        "{logs:?}"
    );
}

#[test]
fn fork_storm_beyond_the_process_cap_stays_bounded() {
    let _serial = serial();
    const CAP: u64 = 300;
    let monitor = Monitor::start(&["--kinds", "exit", "--process-cap", "300"]);
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 1200 ]; do /bin/true & i=$((i+1)); done; wait",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, totals) = monitor.stop();
    let processes = &totals["context"]["processes"];
    assert!(processes["tracked"].as_u64().unwrap() <= CAP, "{totals}");
    assert!(processes["peak"].as_u64().unwrap() <= CAP + 1, "{totals}");
    assert!(processes["evictions"].as_u64().unwrap() >= 900, "{totals}");
}

/// The hash is computed off the event path: a later exec of the same file carries it.
#[test]
fn exec_events_carry_the_sha256_of_the_executable() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let run_true = || {
        let child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait_with_output().unwrap();
        pid
    };
    run_true();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let hashed = loop {
        let pid = run_true();
        let exec = monitor.wait_for("exec of true", |e| e["kind"] == "exec" && e["pid"] == pid);
        if !exec["process"]["exe_sha256"].is_null() {
            break exec;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no hash arrived: {exec}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    monitor.stop();
    let sha256sum = Command::new("sha256sum").arg("/bin/true").output().unwrap();
    let expected = String::from_utf8(sha256sum.stdout).unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    assert_eq!(hashed["process"]["exe_sha256"], expected);
}

#[test]
fn exe_hashing_can_be_switched_off() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec", "--no-exe-hash"]);
    let mut pids = Vec::new();
    for _ in 0..3 {
        let child = Command::new("/bin/true").spawn().unwrap();
        pids.push(child.id());
        child.wait_with_output().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = *pids.last().unwrap();
    let exec = monitor.wait_for("exec of true", |e| e["kind"] == "exec" && e["pid"] == last);
    monitor.stop();
    assert_eq!(exec["process"]["exe_sha256"], Value::Null);
}

/// The agent reads /proc, cgroupfs, passwd files and the Docker socket below
/// `--host-root`, as in a DaemonSet pod with the host at /host. A stand-in root whose
/// /etc/passwd names uid 0 differently shows the prefix is really used.
#[test]
fn host_root_prefixes_every_host_path() {
    let _serial = serial();
    docker::ensure_image();
    let root = std::env::temp_dir().join(format!("monitor-hostroot-{}", std::process::id()));
    let mounts = ["proc", "sys", "var/run"];
    for dir in mounts.iter().chain(["etc"].iter()) {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "hostroot-admin:x:0:0::/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "hostroot-group:x:0:\n").unwrap();
    struct Unmount(Vec<std::path::PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for target in self.0.iter().rev() {
                let _ = Command::new("umount").arg("-l").arg(target).status();
            }
        }
    }
    let mut unmount = Unmount(Vec::new());
    for dir in mounts {
        let target = root.join(dir);
        let status = Command::new("mount")
            .args(["--rbind", &format!("/{dir}")])
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success(), "bind-mount /{dir}");
        unmount.0.push(target);
    }
    let name = unique("hostroot");
    let _cleanup = Cleanup(vec![name.clone()]);
    let monitor = Monitor::start(&["--kinds", "exec", "--host-root", root.to_str().unwrap()]);
    let host = Command::new("/bin/true").spawn().unwrap();
    let host_pid = host.id();
    host.wait_with_output().unwrap();
    let id = docker(&["run", "-d", "--name", &name, IMAGE, "sleep", "300"]);
    let host_exec = monitor.wait_for("host exec", |e| e["kind"] == "exec" && e["pid"] == host_pid);
    let container_exec = monitor.wait_for("container exec", |e| {
        e["kind"] == "exec" && e["container"]["id"] == id.as_str()
    });
    monitor.stop();
    assert_eq!(host_exec["process"]["user"], "hostroot-admin");
    assert_eq!(host_exec["process"]["group"], "hostroot-group");
    assert_eq!(container_exec["container"]["name"], name.as_str());
    assert_eq!(
        container_exec["process"]["user"], "root",
        "from the container's own passwd"
    );
    drop(unmount);
    let _ = std::fs::remove_dir_all(root);
}
