//! Falco's stable rules, loaded unchanged from the shared folder, live: one daemon
//! (`monitor run --rules falco_rules.yaml`), the real kernel and real containers.
//! Each attack of the rules that need the syscall kind or the exec facts runs for
//! real, in a container or on the host as the rule's tags say, and must raise its rule
//! with the fields that make it actionable; each benign twin must raise nothing.
mod support;

use std::{
    io::Write,
    os::fd::FromRawFd,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use support::{
    Monitor,
    docker::{self, Cleanup, IMAGE, docker},
    serial,
};

const FALCO_STABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/falco-rules/falco_rules.yaml"
);

fn unique(name: &str) -> String {
    format!("monitor-falco-{name}-{}", std::process::id())
}

fn wait_alert(monitor: &Monitor, rule: &str, pred: impl Fn(&Value) -> bool) -> Value {
    monitor.wait_for_within(rule, Duration::from_secs(15), |a| {
        a["rule"] == rule && pred(a)
    })
}

/// Runs a copy of `program` from a memfd, as fileless malware does: the new image's
/// file is the memfd (`memfd:monitor-test`).
fn exec_from_memfd(program: &str) {
    let name = c"monitor-test";
    // SAFETY: a valid NUL-terminated name; no flags, so the fd survives the exec.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: the fd was just created and is owned here.
    let mut memfd = unsafe { std::fs::File::from_raw_fd(fd) };
    memfd.write_all(&std::fs::read(program).unwrap()).unwrap();
    let status = Command::new(format!("/proc/self/fd/{fd}"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// `ptrace(request, pid)` by this test process, as a debugger or an injector would.
fn ptrace(request: libc::c_uint, pid: libc::pid_t) -> libc::c_long {
    // SAFETY: ATTACH and DETACH of our own child; the other arguments are unused.
    unsafe { libc::ptrace(request, pid, 0usize, 0usize) }
}

#[test]
fn falco_stable_rules_fire_on_real_attacks_and_not_on_their_twins() {
    let _serial = serial();
    docker::ensure_image();
    let plain = unique("plain");
    let admin = unique("admin");
    let _cleanup = Cleanup(vec![plain.clone(), admin.clone()]);
    docker(&["run", "-d", "--name", &plain, IMAGE, "sleep", "300"]);
    docker(&[
        "run",
        "-d",
        "--name",
        &admin,
        "--cap-add",
        "SYS_ADMIN",
        "--cap-add",
        "SYS_MODULE",
        IMAGE,
        "sleep",
        "300",
    ]);
    let monitor = Monitor::run(&["--rules", FALCO_STABLE]);
    let sh = |name: &str, script: &str| {
        // Failures are part of some attacks (a module that is no module).
        let _ = Command::new("docker")
            .args(["exec", name, "sh", "-c", script])
            .output()
            .unwrap();
    };

    // The benign twins first: nothing they do may alert, checked at the end.
    sh(&plain, "busybox ln -s /etc/hostname /tmp/ok-link");
    sh(&plain, "busybox ln /etc/hostname /tmp/ok-hardlink");
    sh(&plain, "nc -w 1 127.0.0.1 9 </dev/null; true");
    sh(&plain, "cat /etc/hostname | cat >/dev/null");
    sh(
        &plain,
        "mkdir -p /tmp/twin; echo x > /tmp/twin/release_agent",
    );
    sh(
        &plain,
        "echo junk > /tmp/twin.ko; busybox insmod /tmp/twin.ko",
    );
    sh(&plain, "/bin/busybox true");
    let status = Command::new("/bin/true").status().unwrap();
    assert!(status.success());

    // Symlink and hardlink over a sensitive file, in a container.
    sh(&plain, "busybox ln -s /etc/shadow /tmp/shadow-link");
    let symlink = wait_alert(&monitor, "Create Symlink Over Sensitive Files", |a| {
        a["output_fields"]["evt.arg.linkpath"] == "/tmp/shadow-link"
    });
    assert_eq!(symlink["output_fields"]["evt.arg.target"], "/etc/shadow");
    assert_eq!(
        symlink["output_fields"]["evt.arg.linkpath"],
        "/tmp/shadow-link"
    );
    // busybox calls symlink(2), coreutils symlinkat(2): the rule takes both.
    assert_eq!(symlink["output_fields"]["evt.type"], "symlink");
    sh(&plain, "busybox ln /etc/shadow /tmp/shadow-hardlink");
    let hardlink = wait_alert(&monitor, "Create Hardlink Over Sensitive Files", |a| {
        a["output_fields"]["evt.arg.newpath"] == "/tmp/shadow-hardlink"
    });
    assert_eq!(hardlink["output_fields"]["evt.arg.oldpath"], "/etc/shadow");
    assert_eq!(
        hardlink["output_fields"]["evt.arg.newpath"],
        "/tmp/shadow-hardlink"
    );

    // A packet socket (arping opens one before anything else).
    sh(&plain, "busybox arping -c 1 -w 1 127.0.0.1; true");
    let packet = wait_alert(&monitor, "Packet socket created in container", |a| {
        a["output_fields"]["proc.cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("arping"))
    });
    assert!(
        packet["output_fields"]["evt.args"]
            .as_str()
            .unwrap()
            .contains("domain=AF_PACKET"),
        "{packet}"
    );

    // A reverse shell's redirection: nc -e puts the connection on stdin and stdout.
    sh(
        &plain,
        "nc -l -p 4444 >/dev/null & sleep 0.3; nc 127.0.0.1 4444 -e /bin/true; wait",
    );
    let redirect = wait_alert(
        &monitor,
        "Redirect STDOUT/STDIN to Network Connection in Container",
        |a| a["output_fields"]["fd.rport"] == 4444,
    );
    let fields = &redirect["output_fields"];
    assert_eq!(fields["fd.type"], "ipv4");
    assert_eq!(fields["fd.rport"], 4444);
    let tuple = fields["fd.name"].as_str().unwrap();
    assert!(
        tuple.starts_with("127.0.0.1:") && tuple.ends_with("->127.0.0.1:4444"),
        "{redirect}"
    );

    // A module load with CAP_SYS_MODULE (the file is no module: nothing loads). On a
    // kernel built without module support (the CI host's) the syscall fails with
    // ENOSYS; the attempt still alerts, as Falco's does.
    sh(&admin, "echo junk > /tmp/m.ko; busybox insmod /tmp/m.ko");
    let module = wait_alert(&monitor, "Linux Kernel Module Injection Detected", |a| {
        a["output_fields"]["proc.args"] == "insmod /tmp/m.ko"
    });
    assert_ne!(module["output_fields"]["evt.res"], "SUCCESS", "{module}");
    if !std::path::Path::new("/sys/kernel/tracing/events/syscalls/sys_enter_finit_module").exists()
    {
        eprintln!("this kernel has no module support: the attempt failed with ENOSYS and alerted");
        assert_eq!(module["output_fields"]["evt.res"], "ENOSYS", "{module}");
    }

    // A write to a file named release_agent by root with CAP_SYS_ADMIN.
    sh(&admin, "echo x > /tmp/release_agent");
    let release = wait_alert(
        &monitor,
        "Detect release_agent File Container Escapes",
        |a| a["output_fields"]["fd.name"] == "/tmp/release_agent",
    );
    assert_eq!(release["output_fields"]["fd.name"], "/tmp/release_agent");
    let caps = release["output_fields"]["thread.cap_effective"]
        .as_str()
        .unwrap();
    assert!(caps.split(' ').any(|c| c == "CAP_SYS_ADMIN"), "{caps}");

    // A binary written in the container, then run: its file is in the upper layer.
    sh(&plain, "cp /bin/busybox /tmp/dropped && /tmp/dropped true");
    let dropped = wait_alert(&monitor, "Drop and execute new binary in container", |a| {
        a["output_fields"]["proc.exepath"] == "/tmp/dropped"
    });
    assert_eq!(dropped["output_fields"]["proc.exepath"], "/tmp/dropped");
    // Root in the container has CAP_DAC_OVERRIDE: the file is writable too.
    assert_eq!(
        dropped["output_fields"]["evt.arg.flags"],
        "EXE_WRITABLE|EXE_UPPER_LAYER"
    );

    // On the host: a process run from a memfd.
    exec_from_memfd("/bin/true");
    let memfd = wait_alert(&monitor, "Fileless execution via memfd_create", |a| {
        a["output_fields"]["proc.exepath"]
            .as_str()
            .is_some_and(|p| p.contains("memfd:monitor-test"))
    });
    assert!(
        memfd["output_fields"]["evt.arg.flags"]
            .as_str()
            .unwrap()
            .contains("EXE_FROM_MEMFD"),
        "{memfd}"
    );

    // On the host: ./x run from inside /dev/shm (proc.cwd is `/dev/shm/`).
    let shm = format!("/dev/shm/monitor-shm-{}", std::process::id());
    std::fs::copy("/bin/sleep", &shm).unwrap();
    let file = shm.rsplit('/').next().unwrap().to_string();
    let status = Command::new(format!("./{file}"))
        .arg("0.5")
        .current_dir("/dev/shm")
        .status()
        .unwrap();
    assert!(status.success());
    let from_shm = wait_alert(&monitor, "Execution from /dev/shm", |a| {
        a["output_fields"]["proc.exepath"] == shm.as_str()
    });
    assert_eq!(from_shm["output_fields"]["proc.cwd"], "/dev/shm/");
    let _ = std::fs::remove_file(&shm);

    // On the host: a debugger attaching, and a process asking to be traced.
    let mut target = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = target.id() as libc::pid_t;
    assert_eq!(ptrace(libc::PTRACE_ATTACH, pid), 0, "PTRACE_ATTACH");
    // SAFETY: waiting for the stop of our own traced child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    assert_eq!(ptrace(libc::PTRACE_DETACH, pid), 0, "PTRACE_DETACH");
    let _ = target.kill();
    let _ = target.wait();
    let me = std::env::current_exe().unwrap();
    let me = me.to_str().unwrap();
    let attach = wait_alert(&monitor, "PTRACE attached to process", |a| {
        a["output_fields"]["proc.exepath"] == me
    });
    assert!(
        attach["output"].as_str().unwrap().contains("PTRACE_ATTACH"),
        "{attach}"
    );
    // SAFETY: the child only makes two syscalls and never returns into Rust.
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0usize, 0usize);
            libc::_exit(0);
        }
    }
    assert!(child > 0, "fork");
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    wait_alert(&monitor, "PTRACE anti-debug attempt", |a| {
        a["output_fields"]["proc.exepath"] == me
    });

    let (alerts, _) = monitor.stop();
    // The twins raised none of these rules.
    let quiet = |rule: &str, wrong: &dyn Fn(&Value) -> bool| {
        let found: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["rule"] == rule && wrong(&a["output_fields"]))
            .collect();
        assert!(found.is_empty(), "{rule}: {found:#?}");
    };
    quiet("Create Symlink Over Sensitive Files", &|f| {
        f["evt.arg.target"] == "/etc/hostname"
    });
    quiet("Create Hardlink Over Sensitive Files", &|f| {
        f["evt.arg.oldpath"] == "/etc/hostname"
    });
    quiet("Packet socket created in container", &|f| {
        f["proc.cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("nc "))
    });
    quiet(
        "Redirect STDOUT/STDIN to Network Connection in Container",
        &|f| f["fd.type"] != "ipv4",
    );
    quiet("Linux Kernel Module Injection Detected", &|f| {
        f["proc.args"] == "insmod /tmp/twin.ko"
    });
    quiet("Detect release_agent File Container Escapes", &|f| {
        f["fd.name"] == "/tmp/twin/release_agent"
    });
    quiet("Drop and execute new binary in container", &|f| {
        f["proc.exepath"] == "/bin/busybox"
    });
    quiet("Fileless execution via memfd_create", &|f| {
        f["proc.exepath"] == "/usr/bin/true"
    });
    let attaches = alerts
        .iter()
        .filter(|a| a["rule"] == "PTRACE attached to process")
        .filter(|a| a["output_fields"]["proc.exepath"] == me)
        .count();
    assert_eq!(attaches, 1, "one attach; the detach is no attach");
}
