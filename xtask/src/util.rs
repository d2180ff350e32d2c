//! Running commands with a progress line and a clear error.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn step(message: &str) {
    eprintln!("==> {message}");
}

/// Runs `cmd`, failing with its command line when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Does `program args` run and exit 0 (output discarded)?
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn monitor_binary() -> PathBuf {
    // Cargo puts the build where CARGO_TARGET_DIR says, when it is set.
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("release/monitor")
}

pub fn build_release() -> Result<()> {
    step("building monitor and its kernel programs (release)");
    run_cmd(Command::new("cargo").current_dir(workspace_root()).args([
        "build",
        "--release",
        "--package",
        "monitor",
    ]))
}

/// `monitor ARGS`; without a command, the daemon with the default rules printing
/// alerts as text (colored on a terminal: the daemon decides, and honours NO_COLOR).
pub fn run_monitor(args: &[String]) -> Result<()> {
    let args: Vec<String> = if args.first().is_none_or(|a| a.starts_with('-')) {
        let rules = workspace_root().join("rules");
        let mut daemon: Vec<String> = vec![
            "run".into(),
            "--rules".into(),
            rules.display().to_string(),
            "--stdout-format".into(),
            "text".into(),
        ];
        daemon.extend_from_slice(args);
        daemon
    } else {
        args.to_vec()
    };
    step(&format!("running monitor {}", args.join(" ")));
    let mut cmd = if is_root() {
        Command::new(monitor_binary())
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg(monitor_binary());
        sudo
    };
    run_cmd(cmd.args(&args))
}

/// The end-to-end test binaries of the quick tier: each runs in well under a minute
/// and needs no image build, no second runtime and no NATS cluster.
pub const QUICK_TESTS: &[&str] = &[
    "sensor",
    "responses",
    "alerts",
    "operations",
    "signals",
    "formats",
];

pub fn run_tests(quick: bool, args: &[String]) -> Result<()> {
    if !is_root() {
        bail!(
            "the test suite loads eBPF programs and drives dockerd: run it as root \
             (sudo -E cargo xtask test)"
        );
    }
    let mut command = Command::new("cargo");
    command
        .current_dir(workspace_root())
        .args(["test", "--release"]);
    if quick {
        step(&format!(
            "running the quick tier: unit tests, then {}",
            QUICK_TESTS.join(", ")
        ));
        // The default members (not the eBPF crate, which only builds for bpf).
        command.args(["--lib", "--bins"]);
        for test in QUICK_TESTS {
            command.args(["--test", test]);
        }
    } else {
        step("running the test suite");
    }
    run_cmd(command.args(args))
}
