//! The kernel sensor end to end: real syscalls in, exact JSON fields out.
//!
//! Each test starts the real `monitor events` (real eBPF programs on the running
//! kernel), performs syscalls with known arguments, and finds the matching events by
//! pid/tid or by a unique path.
mod support;

use std::{
    ffi::CString,
    fs,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    os::{
        fd::AsRawFd,
        unix::{ffi::OsStrExt, process::CommandExt},
    },
    path::PathBuf,
    process::Command,
};

use serde_json::{Value, json};
use support::{Monitor, gettid, serial, str_of};

fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monitor-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/file"), b"data").unwrap();
    dir
}

/// Which candidate of an optional enhanced source attached, per the agent's log:
/// `"lsm"` (the kernel matrix's Debian kernels) or `"fentry"` (the 6.12 VM booted with
/// the bpf LSM inactive); `None` where the probe table skipped it (this CI host refuses
/// both with EPERM), which the log must say.
fn enhanced(log: &str, source: &str) -> Option<&'static str> {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("source=\"{source}\"")))
        .unwrap_or_else(|| panic!("no probe table line for {source}:\n{log}"));
    if line.contains("attached lsm") {
        Some("lsm")
    } else if line.contains("attached fentry") {
        Some("fentry")
    } else {
        assert!(line.contains("optional source skipped: lsm"), "{line}");
        None
    }
}

fn is_open_of(e: &Value, pid: u32, path: &str) -> bool {
    e["kind"] == "open" && e["pid"] == pid && e["path"] == path
}

#[test]
fn exec_of_a_known_binary_with_known_arguments() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let child = Command::new("/bin/echo")
        .args(["hello", "monitor test"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    let exec = monitor.wait_for("exec of /bin/echo", |e| {
        e["kind"] == "exec" && e["pid"] == pid
    });
    monitor.stop();

    assert_eq!(exec["tid"], pid);
    assert_eq!(exec["ppid"], std::process::id());
    assert_eq!(exec["syscall"], "execve");
    assert_eq!(exec["result"], 0);
    assert_eq!(exec["error"], Value::Null);
    // /bin is a symlink to /usr/bin on Debian: the kernel reports the real file.
    let expected_exe = fs::canonicalize("/bin/echo").unwrap();
    assert_eq!(str_of(&exec, "exe"), expected_exe.to_str().unwrap());
    assert_eq!(exec["args"], json!(["/bin/echo", "hello", "monitor test"]));
    assert_eq!(exec["args_truncated"], false);
    assert_eq!(exec["comm"], "echo");
    assert_eq!(exec["uid"], 0);
    assert_eq!(exec["euid"], 0);
    assert_eq!(exec["filename"], Value::Null);
    assert!(exec["process_start_boot_ns"].as_u64().unwrap() > 0);
    assert!(exec["cgroup_id"].as_u64().unwrap() > 0);
    assert!(str_of(&exec, "time").ends_with('Z'));
}

#[test]
fn failed_exec_is_an_event_with_its_error() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let missing = format!("/nonexistent-{}/tool", std::process::id());
    let err = Command::new(&missing).arg("--flag").spawn().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let exec = monitor.wait_for("failed exec", |e| {
        e["kind"] == "exec" && e["filename"] == missing
    });
    monitor.stop();

    assert_eq!(exec["result"], -libc::ENOENT);
    assert_eq!(exec["error"], "ENOENT");
    assert_eq!(exec["exe"], Value::Null);
    assert_eq!(exec["args"], json!([missing, "--flag"]));
    assert_eq!(exec["ppid"], std::process::id());
}

/// A script's exec runs its interpreter: the exit tracepoint reports the interpreter
/// as `exe`, and only the `bprm_check_security` hook (LSM on Debian's 6.1 and 6.12 in
/// the kernel matrix, fentry on `security_bprm_check` where the bpf LSM is inactive)
/// sees the script file itself, which it reports as `resolved_filename`, also when the
/// exec then fails because the interpreter is missing. Where the kernel refuses both
/// (this CI host: EPERM) the source is skipped, the events carry no
/// `resolved_filename`, and a failed exec names the script only as the caller spelled
/// it.
#[test]
fn exec_of_a_script_names_the_script_where_bprm_check_security_attached() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let dir = test_dir("script");
    let script = dir.join("sub/run.sh");
    fs::write(&script, b"#!/bin/sh\nexit 0\n").unwrap();
    let broken = dir.join("sub/broken.sh");
    fs::write(&broken, b"#!/nonexistent-interpreter\n").unwrap();
    for file in [&script, &broken] {
        fs::set_permissions(file, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Through a relative name and a symlink: the kernel resolves both.
    let link = dir.join("link.sh");
    std::os::unix::fs::symlink("sub/run.sh", &link).unwrap();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let log = monitor.stderr_lines().join("\n");
    // A success is seen when the new image is in place, a failure at the syscall's exit.
    let (hook, failed_hook) = match enhanced(&log, "bprm_check_security") {
        Some("lsm") => (
            "raw_tp/sched_process_exec+lsm/bprm_check_security",
            "tracepoint/syscalls/sys_exit_execve+lsm/bprm_check_security",
        ),
        Some(_) => (
            "raw_tp/sched_process_exec+fentry/security_bprm_check",
            "tracepoint/syscalls/sys_exit_execve+fentry/security_bprm_check",
        ),
        None => (
            "raw_tp/sched_process_exec",
            "tracepoint/syscalls/sys_exit_execve",
        ),
    };

    let child = Command::new("./link.sh").current_dir(&dir).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    let err = Command::new(&broken).spawn().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    let broken = broken.to_str().unwrap();
    let exec = monitor.wait_for("exec of the script", |e| {
        e["kind"] == "exec" && e["pid"] == pid
    });
    let failed = monitor.wait_for("failed exec of the broken script", |e| {
        e["kind"] == "exec" && e["filename"] == broken
    });
    monitor.stop();

    let script = script.to_str().unwrap();
    let interpreter = fs::canonicalize("/bin/sh").unwrap();
    assert_eq!(str_of(&exec, "exe"), interpreter.to_str().unwrap());
    assert_eq!(exec["args"], json!(["/bin/sh", "./link.sh"]));
    assert_eq!(exec["result"], 0);
    assert_eq!(exec["resolved_filename_truncated"], false);
    assert_eq!(failed["result"], -libc::ENOENT);
    assert_eq!(failed["exe"], Value::Null);
    assert_eq!(exec["hook"], hook);
    assert_eq!(failed["hook"], failed_hook);
    if hook.contains('+') {
        assert_eq!(exec["resolved_filename"], script);
        assert_eq!(failed["resolved_filename"], broken);
    } else {
        assert_eq!(exec["resolved_filename"], Value::Null);
        assert_eq!(failed["resolved_filename"], Value::Null);
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn exec_arguments_with_hostile_bytes_stay_one_valid_json_line() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let hostile = std::ffi::OsStr::from_bytes(b"line1\nline2\x1b[31m\xff\"");
    let child = Command::new("/bin/true").arg(hostile).spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    // The support reader parses every stdout line as JSON and fails on anything else.
    let exec = monitor.wait_for("exec with hostile argv", |e| {
        e["kind"] == "exec" && e["pid"] == pid
    });
    monitor.stop();
    assert_eq!(exec["args"][1], "line1\nline2\u{1b}[31m\\xff\"");
}

#[test]
fn fork_and_exit_with_a_known_code() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "fork,exit"]);
    let mut child = Command::new("/bin/sh")
        .args(["-c", "exit 7"])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(7));
    let mut sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let sleeper_pid = sleeper.id();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    let fork = monitor.wait_for("fork of sh", |e| {
        e["kind"] == "fork" && e["child_pid"] == pid
    });
    let exit = monitor.wait_for("exit of sh", |e| e["kind"] == "exit" && e["pid"] == pid);
    let killed = monitor.wait_for("exit of sleep", |e| {
        e["kind"] == "exit" && e["pid"] == sleeper_pid
    });
    monitor.stop();

    assert_eq!(fork["pid"], std::process::id());
    assert_eq!(fork["child_tid"], pid);
    assert!(fork["child_start_boot_ns"].as_u64().unwrap() > 0);
    assert_eq!(exit["exit_code"], 7);
    assert_eq!(exit["signal"], Value::Null);
    assert_eq!(exit["ppid"], std::process::id());
    assert_eq!(exit["comm"], "sh");
    assert_eq!(exit["process_start_boot_ns"], fork["child_start_boot_ns"]);
    assert_eq!(killed["exit_code"], Value::Null);
    assert_eq!(killed["signal"], libc::SIGKILL);
    assert_eq!(killed["core_dumped"], false);
}

fn connect_event(monitor: &Monitor, tid: u32, port: u16) -> Value {
    monitor.wait_for("connect", |e| {
        e["kind"] == "connect" && e["tid"] == tid && e["port"] == port
    })
}

#[test]
fn tcp_connect_to_loopback_v4_and_v6() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "connect"]);
    let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let v4_port = v4.local_addr().unwrap().port();
    let v6_port = v6.local_addr().unwrap().port();
    let s4 = TcpStream::connect(v4.local_addr().unwrap()).unwrap();
    let s6 = TcpStream::connect(v6.local_addr().unwrap()).unwrap();
    let tid = gettid();

    let e4 = connect_event(&monitor, tid, v4_port);
    let e6 = connect_event(&monitor, tid, v6_port);
    let log = monitor.stderr_lines().join("\n");
    monitor.stop();

    // Where the LSM hook (Debian 6.1/6.12 in the kernel matrix) or its fentry stand-in
    // attached, the address is the kernel's copy; where both are refused (this CI
    // host) the caller's memory.
    let hook = match enhanced(&log, "socket_connect") {
        Some("lsm") => "tracepoint/syscalls/sys_exit_connect+lsm/socket_connect",
        Some(_) => "tracepoint/syscalls/sys_exit_connect+fentry/security_socket_connect",
        None => "tracepoint/syscalls/sys_exit_connect",
    };
    assert_eq!(e4["hook"], hook);
    assert_eq!(e6["hook"], hook);

    assert_eq!(e4["pid"], std::process::id());
    assert_eq!(e4["fd"], s4.as_raw_fd());
    assert_eq!(e4["family"], "inet");
    assert_eq!(e4["sock_type"], "stream");
    assert_eq!(e4["address"], "127.0.0.1");
    assert_eq!(e4["result"], 0);
    assert_eq!(e4["error"], Value::Null);
    // The socket's own end, read from the kernel's socket at exit (Falco's fd.name
    // tuple starts with it).
    assert_eq!(e4["local_address"], "127.0.0.1");
    assert_eq!(e4["local_port"], s4.local_addr().unwrap().port());
    assert_eq!(e6["local_address"], "::1");
    assert_eq!(e6["local_port"], s6.local_addr().unwrap().port());
    assert_eq!(e6["fd"], s6.as_raw_fd());
    assert_eq!(e6["family"], "inet6");
    assert_eq!(e6["sock_type"], "stream");
    assert_eq!(e6["address"], "::1");
    assert_eq!(e6["result"], 0);
}

#[test]
fn refused_connect_reports_econnrefused() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "connect"]);
    let closed: SocketAddr = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap()
    };
    let err = TcpStream::connect(closed).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let event = connect_event(&monitor, gettid(), closed.port());
    monitor.stop();
    assert_eq!(event["result"], -libc::ECONNREFUSED);
    assert_eq!(event["error"], "ECONNREFUSED");
    assert_eq!(event["address"], "127.0.0.1");
}

#[test]
fn unix_socket_connect_reports_the_path() {
    let _serial = serial();
    let dir = test_dir("unix");
    let socket_path = dir.join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let monitor = Monitor::start(&["--kinds", "connect"]);
    let _stream = std::os::unix::net::UnixStream::connect(&socket_path).unwrap();
    let tid = gettid();
    let event = monitor.wait_for("unix connect", |e| {
        e["kind"] == "connect" && e["tid"] == tid && e["family"] == "unix"
    });
    monitor.stop();
    assert_eq!(event["unix_path"], socket_path.to_str().unwrap());
    assert_eq!(event["sock_type"], "stream");
    assert_eq!(event["address"], Value::Null);
    assert_eq!(event["result"], 0);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn open_of_a_relative_path_through_a_dirfd() {
    let _serial = serial();
    let dir = test_dir("dirfd");
    let monitor = Monitor::start(&["--kinds", "open"]);
    let dirfd = fs::File::open(&dir).unwrap();
    let rel = CString::new("sub/file").unwrap();
    // SAFETY: valid fd and NUL-terminated path.
    let fd = unsafe { libc::openat(dirfd.as_raw_fd(), rel.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0);
    let pid = std::process::id();
    let event = monitor.wait_for("openat via dirfd", |e| is_open_of(e, pid, "sub/file"));
    monitor.stop();
    // SAFETY: closing the fd this test opened.
    unsafe { libc::close(fd) };

    assert_eq!(event["syscall"], "openat");
    assert_eq!(event["dirfd"], dirfd.as_raw_fd());
    assert_eq!(event["result"], fd);
    assert_eq!(event["fd"], fd);
    assert_eq!(event["tid"], gettid());
    let expected = fs::canonicalize(dir.join("sub/file")).unwrap();
    assert_eq!(str_of(&event, "resolved_path"), expected.to_str().unwrap());
    assert_eq!(event["flags"], libc::O_RDONLY);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn open_of_a_relative_path_through_the_cwd() {
    let _serial = serial();
    let dir = test_dir("cwd");
    let monitor = Monitor::start(&["--kinds", "open"]);
    let child = Command::new("/bin/cat")
        .arg("sub/file")
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    let event = monitor.wait_for("cat sub/file", |e| is_open_of(e, pid, "sub/file"));
    monitor.stop();

    assert_eq!(event["dirfd"], libc::AT_FDCWD);
    assert_eq!(event["comm"], "cat");
    let expected = fs::canonicalize(dir.join("sub/file")).unwrap();
    assert_eq!(str_of(&event, "resolved_path"), expected.to_str().unwrap());
    assert!(event["fd"].as_i64().unwrap() >= 0);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn openat2_with_its_flags() {
    let _serial = serial();
    let dir = test_dir("openat2");
    let path = dir.join("sub/file");
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let monitor = Monitor::start(&["--kinds", "open"]);
    /// `struct open_how` (libc's is non-exhaustive).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: valid path and open_how for the call's duration.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    assert!(fd >= 0, "openat2: {}", std::io::Error::last_os_error());
    let pid = std::process::id();
    let event = monitor.wait_for("openat2", |e| is_open_of(e, pid, path.to_str().unwrap()));
    monitor.stop();
    // SAFETY: closing the fd this test opened.
    unsafe { libc::close(fd as i32) };

    assert_eq!(event["syscall"], "openat2");
    assert_eq!(event["flags"], (libc::O_RDONLY | libc::O_CLOEXEC) as u64);
    assert_eq!(event["fd"], fd);
    let expected = fs::canonicalize(&path).unwrap();
    assert_eq!(str_of(&event, "resolved_path"), expected.to_str().unwrap());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn open_that_fails_with_enoent() {
    let _serial = serial();
    let missing = format!("/nonexistent-{}/file", std::process::id());
    let monitor = Monitor::start(&["--kinds", "open"]);
    let err = fs::File::open(&missing).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let pid = std::process::id();
    let event = monitor.wait_for("failed open", |e| is_open_of(e, pid, &missing));
    monitor.stop();

    assert_eq!(event["result"], -libc::ENOENT);
    assert_eq!(event["error"], "ENOENT");
    assert_eq!(event["fd"], Value::Null);
    assert_eq!(event["resolved_path"], Value::Null);
    assert_eq!(event["flags"], libc::O_RDONLY | libc::O_CLOEXEC);
}

/// io_uring's `IORING_OP_OPENAT` opens a file without any open syscall. Where the
/// kernel accepts BPF LSM programs (Debian's 6.1 and 6.12 in the kernel matrix) the
/// `lsm/file_open` hook reports it with the path the kernel resolved; where the bpf LSM
/// is not active but fentry works (the 6.12 VM booted without it), fentry on
/// `security_file_open` does the same; where the kernel refuses both (this CI host:
/// EPERM), the sensor falls back to the syscall tracepoints, which cannot see it at
/// all, and this test asserts exactly that blind spot.
#[test]
fn open_through_io_uring_needs_the_lsm_hook() {
    let _serial = serial();
    let dir = test_dir("io-uring");
    let target = dir.join("sub/file");
    let marker = dir.join("sub/marker");
    let monitor = Monitor::start(&["--kinds", "open"]);
    let log = monitor.stderr_lines().join("\n");
    let hook = enhanced(&log, "file_open").map(|candidate| match candidate {
        "lsm" => "lsm/file_open",
        _ => "fentry/security_file_open",
    });

    let mut ring = io_uring::IoUring::new(4).expect("io_uring_setup");
    let path = CString::new(target.as_os_str().as_bytes()).unwrap();
    let open = io_uring::opcode::OpenAt::new(io_uring::types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(libc::O_RDONLY | libc::O_CLOEXEC)
        .build();
    // SAFETY: `path` outlives the submission, which completes before it is dropped.
    unsafe { ring.submission().push(&open).expect("queue the open") };
    ring.submit_and_wait(1).expect("io_uring_enter");
    let fd = ring.completion().next().expect("a completion").result();
    assert!(fd >= 0, "IORING_OP_OPENAT failed: {fd}");
    // SAFETY: closes the fd io_uring just opened for us.
    unsafe { libc::close(fd) };

    // The ring buffer keeps the kernel's order: once an open made after the io_uring
    // one has arrived, an event for the io_uring open would have too.
    fs::write(&marker, b"after").unwrap();
    let pid = std::process::id();
    let marker = marker.to_str().unwrap().to_string();
    monitor.wait_for("open of the marker", |e| is_open_of(e, pid, &marker));
    let (events, _) = monitor.stop();
    let target = target.to_str().unwrap();
    let seen: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "open" && e["pid"] == pid && e["resolved_path"] == target)
        .collect();
    let Some(hook) = hook else {
        assert!(
            seen.is_empty(),
            "tracepoints cannot see io_uring opens: {seen:?}"
        );
        return;
    };
    assert_eq!(
        seen.len(),
        1,
        "exactly one event for the io_uring open: {seen:?}"
    );
    let event = seen[0];
    assert_eq!(event["hook"], hook);
    assert_eq!(event["syscall"], "openat");
    assert_eq!(event["path"], Value::Null);
    assert_eq!(event["fd"], Value::Null);
    assert_eq!(event["result"], 0);
    assert_eq!(event["error"], Value::Null);
    assert_eq!(event["dirfd"], -100);
    assert_eq!(event["flags"].as_u64().unwrap() & libc::O_ACCMODE as u64, 0);
    assert_eq!(event["uid"], 0);
    // The marker was written by a syscall: the tracepoint reported it, not the LSM.
    let marker_event = events
        .iter()
        .filter(|e| is_open_of(e, pid, &marker))
        .collect::<Vec<_>>();
    assert_eq!(marker_event.len(), 1, "{marker_event:?}");
    assert_eq!(
        marker_event[0]["hook"],
        "tracepoint/syscalls/sys_exit_openat"
    );
}

#[test]
fn kinds_filter_switches_other_kinds_off_in_the_kernel() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "connect", "--no-context"]);
    let _ = fs::read("/etc/hostname");
    Command::new("/bin/true").status().unwrap();
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let _ = TcpStream::connect(closed);
    connect_event(&monitor, gettid(), closed.port());
    let (events, totals) = monitor.stop();
    assert!(events.iter().all(|e| e["kind"] == "connect"));
    for kind in ["exec", "fork", "exit", "open"] {
        assert_eq!(
            totals["kinds"][kind]["sent"], 0,
            "{kind} was not switched off"
        );
    }
}

/// With the default ring buffer, a burst of opens arrives completely, and the
/// kernel's sent counter equals what user space received.
#[test]
fn burst_of_opens_arrives_completely() {
    let _serial = serial();
    const BURST: usize = 50_000;
    let dir = test_dir("burst");
    let path = dir.join("sub/file");
    let monitor = Monitor::start(&["--kinds", "open"]);
    for _ in 0..BURST {
        drop(fs::File::open(&path).unwrap());
    }
    let path = path.to_str().unwrap().to_string();
    let pid = std::process::id();
    // Delivered while the agent runs: a stop judges its backlog for a bounded time only
    // (what it cannot judge is counted, as `unjudged`).
    monitor.wait_for_count(BURST, |e| is_open_of(e, pid, &path));
    let (events, totals) = monitor.stop();
    let seen = events.iter().filter(|e| is_open_of(e, pid, &path)).count();
    let open = &totals["kinds"]["open"];
    assert_eq!(open["dropped"], 0, "totals: {totals}");
    assert_eq!(seen, BURST, "totals: {totals}");
    assert_eq!(open["sent"], open["received"]);
    assert_eq!(totals["malformed"], json!({}));
    fs::remove_dir_all(dir).unwrap();
}

/// Records in the making share per-CPU scratch memory: threads on every CPU opening
/// paths that name themselves, with connects in parallel, must each get back their
/// own path in their own record, whole.
#[test]
fn concurrent_records_never_mix_their_bytes() {
    let _serial = serial();
    const THREADS: usize = 8;
    // Fewer in the kernel matrix's emulated guests.
    let opens: usize = std::env::var("MONITOR_STRESS_OPENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    let dir = test_dir("stress");
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let monitor = Monitor::start(&["--kinds", "open,connect", "--no-context"]);
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let tid = gettid();
                for i in 0..opens {
                    // Long enough to take many writes into scratch memory.
                    let name = format!("{tid}-{i}-{}", "x".repeat(64 + i % 97));
                    assert!(fs::File::open(dir.join(&name)).is_err());
                    if i % 4 == 0 {
                        assert!(TcpStream::connect(closed).is_err());
                    }
                }
                tid
            })
        })
        .collect();
    let tids: Vec<u32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let prefix = format!("{}/", dir.display());
    let pid = std::process::id();
    let ours = |e: &Value| {
        e["kind"] == "open" && e["pid"] == pid && str_of(e, "path").starts_with(&prefix)
    };
    monitor.wait_for_count(THREADS * opens, ours);
    let (events, totals) = monitor.stop();
    let mut seen = 0;
    for e in events.iter().filter(|e| ours(e)) {
        let name = &str_of(e, "path")[prefix.len()..];
        let mut parts = name.splitn(3, '-');
        let (tid, i, padding) = (parts.next(), parts.next(), parts.next());
        assert_eq!(
            tid,
            Some(e["tid"].to_string().as_str()),
            "a record with another thread's path: {e}"
        );
        let i: usize = i
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{e}"));
        assert_eq!(
            padding,
            Some("x".repeat(64 + i % 97).as_str()),
            "a cut or mixed path: {e}"
        );
        seen += 1;
    }
    for e in events
        .iter()
        .filter(|e| e["kind"] == "connect" && e["pid"] == pid)
    {
        assert!(tids.contains(&(e["tid"].as_u64().unwrap() as u32)), "{e}");
        assert_eq!(e["port"], closed.port(), "{e}");
    }
    let open = &totals["kinds"]["open"];
    assert_eq!(totals["malformed"], json!({}), "totals: {totals}");
    assert_eq!(open["sent"], open["received"], "totals: {totals}");
    // Contention for the scratch, if any, is counted as its own cause, and this test
    // gives no other fault a reason to happen.
    let faults = open["faults"].as_object().expect("faults by cause");
    for (cause, n) in faults {
        assert!(
            cause == "scratch_busy" || n == 0,
            "{cause}: {n} (totals: {totals})"
        );
    }
    let lost = open["dropped"].as_u64().unwrap() + faults["scratch_busy"].as_u64().unwrap();
    assert!(
        seen as u64 + lost >= (THREADS * opens) as u64,
        "{seen} of {} opens seen, {lost} counted lost: {totals}",
        THREADS * opens
    );
    fs::remove_dir_all(dir).unwrap();
}

/// With a ring buffer far too small for the burst, the events that did not arrive are
/// exactly the ones the kernel counted as dropped.
#[test]
fn burst_into_a_tiny_ring_buffer_counts_every_drop() {
    let _serial = serial();
    const BURST: usize = 20_000;
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    // Only this test's connects may fill the ring buffer, however busy the machine:
    // a rule on the listener's port (nobody else's) makes the kernel filter drop
    // every other connect before it is recorded, so what was dropped is ours. (Before
    // the filter is in place other connects pass: those are received, and the alerts,
    // one per match, tell ours apart.)
    let rule = std::env::temp_dir().join(format!("monitor-burst-{}.yaml", std::process::id()));
    std::fs::write(
        &rule,
        format!(
            "- rule: burst\n  desc: d\n  condition: evt.type = connect and fd.sport = {}\n  \
             output: o\n  priority: debug\n",
            closed.port()
        ),
    )
    .unwrap();
    let monitor = Monitor::run(&[
        "--rules",
        rule.to_str().unwrap(),
        "--no-context",
        "--no-pin",
        "--ring-buffer-bytes",
        "8192",
    ]);
    for _ in 0..BURST {
        assert!(TcpStream::connect(closed).is_err());
    }
    let finished = monitor.finish(libc::SIGINT);
    let connect = &finished.totals["kinds"]["connect"];
    let number = |key: &str| {
        connect[key]
            .as_u64()
            .unwrap_or_else(|| panic!("totals: {}", finished.totals))
    };
    let (sent, received, dropped) = (number("sent"), number("received"), number("dropped"));
    let ours = finished
        .events
        .iter()
        .filter(|a| a["rule"] == "burst")
        .count() as u64;
    assert!(
        dropped > 0,
        "an 8 KiB buffer should overflow: {}",
        finished.totals
    );
    assert_eq!(ours + dropped, BURST as u64, "totals: {}", finished.totals);
    assert_eq!(sent, received, "totals: {}", finished.totals);
}

#[test]
fn not_root_or_bad_ring_size_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["events", "--ring-buffer-bytes", "1000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "monitor: config error: flag --ring-buffer-bytes: sensor.ring_buffer_bytes: 1000 \
             is not a power of two of at least 4096"
        ),
        "{stderr}"
    );
    // Drop to an unprivileged uid in the child only.
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .arg("events")
        .uid(65534)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("monitor must run as root"), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one-line error expected: {stderr}"
    );
}

/// Fresh nodes boot without tracefs mounted; the agent mounts it itself.
#[test]
fn tracefs_is_mounted_when_missing() {
    let _serial = serial();
    support::require_root();
    while Command::new("umount")
        .arg("/sys/kernel/tracing")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
    {}
    assert!(!std::path::Path::new("/sys/kernel/tracing/events").exists());
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    child.wait_with_output().unwrap();
    monitor.wait_for("exec after mounting tracefs", |e| e["pid"] == pid);
    let log = monitor.stderr_lines().join("\n");
    monitor.stop();
    assert!(
        log.contains("mounted tracefs at /sys/kernel/tracing"),
        "{log}"
    );
}

#[test]
fn missing_btf_is_a_one_line_error_that_says_what_to_do() {
    let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["events", "--btf", "/nonexistent/vmlinux"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end(),
        "monitor: error: kernel BTF not found at /nonexistent/vmlinux: monitor needs a kernel \
         >= 5.8 built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels are)"
    );
}

/// Whether this kernel has the syscall tracepoint `name` (the module syscalls exist
/// only with CONFIG_MODULES: the kernel matrix's Debian kernels have them, the CI
/// host's kernel does not).
fn has_syscall_tracepoint(name: &str) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|t| std::path::Path::new(&format!("{t}/events/syscalls/sys_enter_{name}")).exists())
}

/// The syscall kind: each syscall with its arguments as the caller passed them, the
/// string arguments, and for a dup of a socket both of its ends.
#[test]
fn other_syscalls_are_reported_with_their_arguments() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "syscall"]);
    let dir = test_dir("syscalls");
    let c = |p: PathBuf| CString::new(p.as_os_str().as_bytes()).unwrap();
    let (target, link, hard) = (
        c(dir.join("sub/file")),
        c(dir.join("link")),
        c(dir.join("hard")),
    );
    let tid = gettid();
    // SAFETY: valid NUL-terminated paths; the other arguments are plain integers.
    unsafe {
        assert_eq!(
            libc::syscall(
                libc::SYS_symlinkat,
                target.as_ptr(),
                libc::AT_FDCWD,
                link.as_ptr()
            ),
            0
        );
        assert_eq!(
            libc::syscall(
                libc::SYS_linkat,
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_FDCWD,
                hard.as_ptr(),
                0
            ),
            0
        );
        // No such process: the request is reported with its error.
        assert_eq!(
            libc::ptrace(libc::PTRACE_ATTACH, i32::MAX, 0usize, 0usize),
            -1
        );
    }
    let udp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(udp >= 0);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let server = listener.local_addr().unwrap();
    let stream = TcpStream::connect(server).unwrap();
    let client = stream.local_addr().unwrap();
    let copy = unsafe { libc::dup3(stream.as_raw_fd(), 100, libc::O_CLOEXEC) };
    assert_eq!(copy, 100);
    // Namespaces, identity, modes and BPF, each harmless: joining the namespace the
    // test is already in, unsharing nothing, becoming the uid it has, a setuid bit on
    // a file of its own, a program load with no program.
    let uts = fs::File::open("/proc/self/ns/uts").unwrap();
    let mode_path = c(dir.join("sub/file"));
    // SAFETY: an open fd, plain integers, a NUL-terminated path; bpf gets no attributes.
    unsafe {
        assert_eq!(libc::setns(uts.as_raw_fd(), libc::CLONE_NEWUTS), 0);
        assert_eq!(libc::unshare(0), 0);
        assert_eq!(libc::setuid(libc::getuid()), 0);
        assert_eq!(
            libc::syscall(libc::SYS_chmod, mode_path.as_ptr(), 0o4755),
            0
        );
        assert_eq!(
            libc::syscall(
                libc::SYS_fchmodat,
                libc::AT_FDCWD,
                mode_path.as_ptr(),
                0o644,
                0
            ),
            0
        );
        assert_eq!(libc::syscall(libc::SYS_bpf, 5, 0usize, 0), -1);
    }

    let find = |syscall: &str| {
        monitor.wait_for(syscall, |e| {
            e["kind"] == "syscall" && e["tid"] == tid && e["syscall"] == syscall
        })
    };
    let symlink = find("symlinkat");
    assert_eq!(symlink["target"], target.to_str().unwrap());
    assert_eq!(symlink["linkpath"], link.to_str().unwrap());
    assert_eq!(symlink["dirfd"], libc::AT_FDCWD);
    assert_eq!(symlink["result"], 0);
    let hardlink = find("linkat");
    assert_eq!(hardlink["oldpath"], target.to_str().unwrap());
    assert_eq!(hardlink["newpath"], hard.to_str().unwrap());
    let ptrace = find("ptrace");
    assert_eq!(ptrace["request"], libc::PTRACE_ATTACH);
    assert_eq!(ptrace["target_pid"], i32::MAX);
    assert_eq!(ptrace["error"], "ESRCH");
    let socket = find("socket");
    assert_eq!(socket["domain"], libc::AF_INET);
    assert_eq!(socket["sock_type"], libc::SOCK_DGRAM | libc::SOCK_CLOEXEC);
    assert_eq!(socket["result"], udp);
    let dup = find("dup3");
    assert_eq!(dup["fd"], stream.as_raw_fd());
    assert_eq!(dup["newfd"], 100);
    assert_eq!(dup["flags"], libc::O_CLOEXEC);
    assert_eq!(dup["result"], 100);
    assert_eq!(dup["family"], "inet");
    assert_eq!(dup["sock_type"], "stream");
    assert_eq!(dup["local_address"], "127.0.0.1");
    assert_eq!(dup["local_port"], client.port());
    assert_eq!(dup["address"], "127.0.0.1");
    assert_eq!(dup["port"], server.port());

    let setns = find("setns");
    assert_eq!(setns["fd"], uts.as_raw_fd());
    assert_eq!(setns["nstype"], libc::CLONE_NEWUTS);
    assert_eq!(setns["result"], 0);
    assert_eq!(find("unshare")["flags"], 0);
    let setuid = find("setuid");
    assert_eq!(setuid["target_uid"], unsafe { libc::getuid() });
    let chmod = find("chmod");
    assert_eq!(chmod["path"], mode_path.to_str().unwrap());
    assert_eq!(chmod["mode"], 0o4755);
    let fchmodat = find("fchmodat");
    assert_eq!(fchmodat["dirfd"], libc::AT_FDCWD);
    assert_eq!(fchmodat["mode"], 0o644);
    let bpf = find("bpf");
    assert_eq!(bpf["cmd"], 5);
    assert!(bpf["result"].as_i64().unwrap() < 0, "{bpf}");
    // Not a module: the kernel refuses it after the syscall is recorded. A kernel built
    // without module support (the CI host's) has no tracepoints for it, yet the
    // syscall exists and fails with ENOSYS: the raw syscall tracepoints report it.
    let junk = dir.join("junk.ko");
    fs::write(&junk, b"not a module").unwrap();
    let file = fs::File::open(&junk).unwrap();
    let params = CString::new("debug=1").unwrap();
    // SAFETY: an open fd and a NUL-terminated string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    assert_eq!(rc, -1);
    let module = find("finit_module");
    assert_eq!(module["fd"], file.as_raw_fd());
    assert_eq!(module["uargs"], "debug=1");
    assert!(module["result"].as_i64().unwrap() < 0, "{module}");
    if has_syscall_tracepoint("finit_module") {
        assert_eq!(module["hook"], "tracepoint/syscalls/sys_exit_finit_module");
    } else {
        assert_eq!(module["hook"], "raw_tp/sys_exit");
        assert_eq!(module["error"], "ENOSYS");
    }
    unsafe {
        libc::close(copy);
        libc::close(udp);
    }
    monitor.stop();
    let _ = fs::remove_dir_all(dir);
}

/// The file syscalls report relative paths resolved in the kernel against their dirfd
/// (or the caller's working directory); the socket syscalls, the socket they worked on,
/// the peer, and the first bytes they moved.
#[test]
fn file_and_traffic_syscalls_carry_resolved_paths_sockets_and_data() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "syscall"]);
    let dir = test_dir("file-syscalls");
    let dir_text = dir.to_str().unwrap().to_string();
    let cstr = |s: &str| CString::new(s).unwrap();
    let dirfd = fs::File::open(&dir).unwrap();
    let tid = gettid();
    let (made, gone) = (cstr("made"), cstr(&format!("{dir_text}/sub/file")));
    let memfd_name = cstr("monitor-test-memfd");
    // SAFETY: an open directory fd, NUL-terminated paths and plain integers.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_mkdirat, dirfd.as_raw_fd(), made.as_ptr(), 0o750),
            0
        );
        assert_eq!(
            libc::syscall(
                libc::SYS_unlinkat,
                dirfd.as_raw_fd(),
                made.as_ptr(),
                libc::AT_REMOVEDIR
            ),
            0
        );
        assert_eq!(libc::syscall(libc::SYS_unlink, gone.as_ptr()), 0);
        let fd = libc::syscall(
            libc::SYS_memfd_create,
            memfd_name.as_ptr(),
            libc::MFD_CLOEXEC,
        );
        assert!(fd >= 0);
        libc::close(fd as i32);
    }
    // A relative rename from the working directory of another process.
    fs::write(dir.join("before"), b"x").unwrap();
    let mv = Command::new("mv")
        .args(["before", "after"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(mv.success());

    // Traffic on loopback: a TCP exchange (accept4, sendto, recvfrom) and one datagram
    // to an unconnected socket's named peer.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let server = listener.local_addr().unwrap();
    let client = TcpStream::connect(server).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    let payload = b"GET /monitor-test \xca\xfe";
    // SAFETY: valid buffers of the lengths given, open sockets.
    unsafe {
        let sent = libc::send(
            client.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
        );
        assert_eq!(sent, payload.len() as isize);
        let mut buf = [0u8; 64];
        let got = libc::recv(accepted.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0);
        assert_eq!(got, payload.len() as isize);
    }
    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let sink = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    udp.send_to(b"ping", sink.local_addr().unwrap()).unwrap();

    let find = |syscall: &str, also: &dyn Fn(&Value) -> bool| {
        monitor.wait_for(syscall, |e| {
            e["kind"] == "syscall" && e["syscall"] == syscall && also(e)
        })
    };
    let ours = |e: &Value| e["tid"] == tid;
    let mkdir = find("mkdirat", &ours);
    assert_eq!(mkdir["path"], "made");
    assert_eq!(mkdir["resolved_path"], format!("{dir_text}/made"));
    assert_eq!(mkdir["dirfd"], dirfd.as_raw_fd());
    assert_eq!(mkdir["mode"], 0o750);
    let rmdir = find("unlinkat", &ours);
    assert_eq!(rmdir["name"], "made");
    assert_eq!(rmdir["resolved_name"], format!("{dir_text}/made"));
    assert_eq!(rmdir["flags"], libc::AT_REMOVEDIR);
    let unlink = find("unlink", &ours);
    assert_eq!(unlink["path"], format!("{dir_text}/sub/file"));
    assert_eq!(unlink["resolved_path"], Value::Null, "absolute: as given");
    let memfd = find("memfd_create", &ours);
    assert_eq!(memfd["name"], "monitor-test-memfd");
    assert_eq!(memfd["flags"], libc::MFD_CLOEXEC);
    assert!(memfd["result"].as_i64().unwrap() >= 0, "{memfd}");
    // Coreutils' mv calls renameat2, busybox's (the kernel matrix's guests) rename.
    let rename = monitor.wait_for("rename by mv", |e| {
        e["kind"] == "syscall"
            && ["rename", "renameat", "renameat2"].contains(&e["syscall"].as_str().unwrap_or(""))
            && e["comm"] == "mv"
            && e["newpath"] == "after"
    });
    assert_eq!(rename["oldpath"], "before");
    assert_eq!(rename["resolved_oldpath"], format!("{dir_text}/before"));
    assert_eq!(rename["resolved_newpath"], format!("{dir_text}/after"));
    assert_eq!(rename["result"], 0);

    let accept = find("accept4", &|e| e["local_port"] == server.port());
    assert_eq!(accept["fd"], listener.as_raw_fd());
    assert_eq!(accept["result"], accepted.as_raw_fd());
    assert_eq!(accept["address"], "127.0.0.1");
    assert_eq!(accept["port"], peer.port());
    let sent = find("sendto", &|e| e["fd"] == client.as_raw_fd() && ours(e));
    assert_eq!(sent["result"], payload.len());
    assert_eq!(sent["size"], payload.len());
    assert_eq!(sent["port"], server.port());
    assert_eq!(sent["sock_type"], "stream");
    // Bytes that are no UTF-8 are written as `\xNN`.
    assert_eq!(sent["data"], "GET /monitor-test \\xca\\xfe");
    let received = find("recvfrom", &|e| e["fd"] == accepted.as_raw_fd() && ours(e));
    assert_eq!(received["data"], sent["data"]);
    assert_eq!(received["local_port"], server.port());
    assert_eq!(received["port"], peer.port());
    let datagram = find("sendto", &|e| e["fd"] == udp.as_raw_fd() && ours(e));
    assert_eq!(datagram["sock_type"], "dgram");
    assert_eq!(datagram["address"], "127.0.0.1");
    assert_eq!(datagram["port"], sink.local_addr().unwrap().port());
    assert_eq!(datagram["data"], "ping");
    monitor.stop();
    let _ = fs::remove_dir_all(dir);
}

/// Falco's exec facts, read in the kernel: root (CAP_DAC_OVERRIDE) may write the file
/// it runs, `nobody` may not write root's `/bin/true`; neither is on an overlay
/// or a memfd here, and the capability sets are the callers'.
#[test]
fn exec_facts_follow_the_caller() {
    let _serial = serial();
    let monitor = Monitor::start(&["--kinds", "exec"]);
    let as_root = Command::new("/bin/true").spawn().unwrap();
    let root_pid = as_root.id();
    as_root.wait_with_output().unwrap();
    let as_nobody = Command::new("/bin/true")
        .uid(65534)
        .gid(65534)
        .spawn()
        .unwrap();
    let nobody_pid = as_nobody.id();
    as_nobody.wait_with_output().unwrap();
    // A session of its own, made just before the exec: only a read at the exec itself
    // knows it (the fork saw this test's session, and /bin/true is gone at once).
    let mut leader = Command::new("/bin/true");
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        leader.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    };
    let leader = leader.spawn().unwrap();
    let leader_pid = leader.id();
    leader.wait_with_output().unwrap();
    let exec_of = |pid: u32| {
        monitor.wait_for("exec", |e| {
            e["kind"] == "exec" && e["pid"] == pid && !e["process"].is_null()
        })
    };
    let (root, nobody) = (exec_of(root_pid), exec_of(nobody_pid));
    let leader = exec_of(leader_pid);
    monitor.stop();
    assert_eq!(root["process"]["exe_writable"], true, "{root}");
    assert_eq!(nobody["process"]["exe_writable"], false, "{nobody}");
    for e in [&root, &nobody] {
        assert_eq!(e["process"]["exe_from_memfd"], false, "{e}");
        assert_eq!(e["process"]["exe_upper_layer"], Value::Null, "{e}");
    }
    assert!(
        root["process"]["cap_effective"]
            .as_str()
            .unwrap()
            .contains("CAP_DAC_OVERRIDE"),
        "{root}"
    );
    assert_eq!(nobody["process"]["cap_effective"], "", "{nobody}");
    // Session and process group are inherited from this test: read in the kernel at
    // the exec's entry, they are there although /bin/true is gone at once. (Under a
    // matrix guest's init both are 0, which the output leaves out as `null`.)
    // SAFETY: getpgrp and getsid have no preconditions.
    let (pgrp, sid) = unsafe { (libc::getpgrp(), libc::getsid(0)) };
    for e in [&root, &nobody] {
        let vpgid = e["process"]["vpgid"].as_i64().unwrap_or(0);
        assert_eq!(vpgid, i64::from(pgrp), "{e}");
        assert_eq!(e["process"]["sid"], sid, "{e}");
    }
    assert_eq!(leader["process"]["sid"], leader_pid, "{leader}");
    assert_eq!(leader["process"]["vpgid"], leader_pid, "{leader}");
}

/// A deny response on a connect rule the kernel decides exactly: the cgroup program
/// refuses the connect with EPERM (the listener never sees it), a connect to another
/// port goes through, and the alert says the cgroup program did it. A host rule on
/// loopback, so it runs in the kernel matrix guests too.
#[test]
fn a_kernel_deny_slot_refuses_the_connect_before_it_leaves() {
    let _serial = serial();
    let dir = test_dir("kernel-deny");
    let listener = |_| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    let (forbidden, allowed) = (listener(0), listener(1));
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
    let rules = dir.join("rules.yaml");
    fs::write(
        &rules,
        format!(
            "\
- rule: forbidden port on host
  desc: d
  condition: >
    evt.type = connect and container.id = host and fd.sip = 127.0.0.1 and fd.sport = {}
  output: o (connection=%fd.name)
  priority: warning
- response: refuse forbidden port
  rules: [forbidden port on host]
  action: deny
  mode: enforce
",
            port(&forbidden)
        ),
    )
    .unwrap();
    let monitor = Monitor::run(&["--rules", rules.to_str().unwrap(), "--no-pin"]);
    monitor.wait_for_log("1 in-kernel deny slots installed");
    let connect =
        |l: &std::net::TcpListener| std::net::TcpStream::connect(("127.0.0.1", port(l))).map(drop);
    connect(&allowed).expect("another port goes through");
    let refused = connect(&forbidden).expect_err("refused");
    assert_eq!(refused.raw_os_error(), Some(libc::EPERM), "{refused}");
    assert_eq!(
        forbidden.accept().map(drop).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing reached the listener"
    );
    let alert = monitor.wait_for("the kernel's deny", |a| {
        a["rule"] == "forbidden port on host" && a["response"]["outcome"] == "denied"
    });
    assert_eq!(alert["response"]["point"], "cgroup", "{alert}");
    assert!(
        alert["output_fields"]["fd.name"]
            .as_str()
            .unwrap()
            .ends_with(&format!("127.0.0.1:{}", port(&forbidden))),
        "{alert}"
    );
}

/// A kill response on a rule the kernel decides exactly: the open's exit program
/// kills the reader before it reads a byte (SIGKILL, nothing printed), the alert says
/// the kernel did it, and an open the rule does not name is untouched. A host rule, so
/// it runs in the kernel matrix guests too (no container engine there).
#[test]
fn a_kernel_kill_slot_kills_the_reader_as_its_open_returns() {
    let _serial = serial();
    let dir = test_dir("kernel-kill");
    let guarded = dir.join("guarded");
    let other = dir.join("other");
    fs::write(&guarded, b"secret\n").unwrap();
    fs::write(&other, b"public\n").unwrap();
    let rules = dir.join("rules.yaml");
    fs::write(&rules, support::guarded_read_kill_rules(&guarded)).unwrap();
    let monitor = Monitor::run(&["--rules", rules.to_str().unwrap(), "--no-pin"]);
    monitor.wait_for_log("1 in-kernel kill slots installed");
    let cat = |path: &PathBuf| Command::new("cat").arg(path).output().unwrap();
    let read = cat(&other);
    assert_eq!(
        (read.status.code(), read.stdout.as_slice()),
        (Some(0), &b"public\n"[..])
    );
    let killed = cat(&guarded);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (killed.status.signal(), killed.stdout.as_slice()),
        (Some(libc::SIGKILL), &b""[..]),
        "killed before it read: {killed:?}"
    );
    let alert = monitor.wait_for("the kernel's kill", |a| {
        a["rule"] == "guarded read on host" && a["response"]["outcome"] == "killed"
    });
    assert_eq!(alert["response"]["point"], "kernel", "{alert}");
    assert_eq!(
        alert["output_fields"]["fd.name"],
        guarded.display().to_string()
    );
}

/// The probe table on a kernel that lacks what a source needs. A tracefs without any
/// events stands in for such a kernel; the programs and maps are the real ones.
mod probe_table {
    use std::path::Path;

    use monitor::sensor::{
        btf::{KernelLayout, VMLINUX_BTF},
        load_object,
        probes::{KernelEnv, SOURCES, Source, attach_source},
    };
    use monitor_common::KernelOffsets;

    fn object_and_empty_tracefs() -> (aya::Ebpf, KernelEnv) {
        let offsets = KernelLayout::open(Path::new(VMLINUX_BTF))
            .and_then(|layout| layout.offsets())
            .expect("kernel BTF");
        let ebpf = load_object(&offsets, 4096, None).expect("load object (run tests as root)");
        let tracefs =
            std::env::temp_dir().join(format!("monitor-fake-tracefs-{}", std::process::id()));
        std::fs::create_dir_all(tracefs.join("events")).unwrap();
        (ebpf, KernelEnv::new(&tracefs, Path::new(VMLINUX_BTF)))
    }

    fn source(name: &str) -> &'static Source {
        SOURCES.iter().find(|s| s.name == name).expect("source")
    }

    #[test]
    fn a_missing_required_tracepoint_is_a_clear_error() {
        let (mut ebpf, kernel) = object_and_empty_tracefs();
        let err = attach_source(&mut ebpf, &kernel, source("execve"), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot observe `execve` (exec events): syscall tracepoints: \
             tracepoint/syscalls/sys_enter_execve does not exist on this kernel; monitor \
             needs syscall and sched tracepoints (CONFIG_FTRACE_SYSCALLS) and BPF ring \
             buffers (kernel >= 5.8)"
        );
    }

    #[test]
    fn a_missing_optional_tracepoint_is_skipped_with_the_reason() {
        let (mut ebpf, kernel) = object_and_empty_tracefs();
        let report = attach_source(&mut ebpf, &kernel, source("openat2"), None).unwrap();
        assert_eq!(report.chosen, None);
        assert_eq!(
            report.refused,
            vec![
                "syscall tracepoints: tracepoint/syscalls/sys_enter_openat2 does not exist on this kernel"
            ]
        );
    }

    /// A kernel whose BTF lacks `linux_binprm.file` (simulated: the offsets of this
    /// kernel with that one marked absent) skips the exec hook that reads it, saying
    /// why, instead of attaching a program that could only count read errors.
    #[test]
    fn a_source_reading_an_absent_member_is_skipped_naming_it() {
        let (mut ebpf, kernel) = object_and_empty_tracefs();
        let mut offsets = KernelLayout::open(Path::new(VMLINUX_BTF))
            .and_then(|layout| layout.offsets())
            .expect("kernel BTF");
        offsets.binprm_file = KernelOffsets::ABSENT;
        let kernel = kernel.with_absent_members(&offsets);
        assert_eq!(kernel.absent_members, ["linux_binprm.file"]);
        let report =
            attach_source(&mut ebpf, &kernel, source("bprm_check_security"), None).unwrap();
        assert_eq!(report.chosen, None);
        assert_eq!(
            report.refused,
            [
                "every candidate: the kernel's BTF has no `linux_binprm.file`, which its programs read"
            ]
        );
    }
}
