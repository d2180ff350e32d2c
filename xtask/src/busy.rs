//! Busy containers in the background of a test run (`cargo xtask test --busy N`): the
//! suite must hold on a machine where other containers exec, open files and connect
//! all the time, as a node's do.
use std::process::Command;

use anyhow::{Result, bail};

use crate::{
    setup::DEMO_IMAGE,
    util::{run_cmd, step, succeeds},
};

const LABEL: &str = "monitor.xtask.busy";

/// Each loop: three execs, their opens, a refused connect to the container's own
/// loopback, a file written. The pause keeps 20 of them near half a core on this
/// 2-core machine: busy, not a fork bomb that would only measure the CPU.
const WORK: &str = "i=0; while :; do \
    cat /etc/passwd >/dev/null; ls / >/dev/null; \
    /bin/busybox wget -q -T 1 -O /dev/null http://127.0.0.1:9/ 2>/dev/null; \
    i=$((i+1)); echo $i > /tmp/loops; sleep 0.2; done";

/// The running busy containers; removed when dropped.
pub struct Busy {
    names: Vec<String>,
}

impl Busy {
    pub fn start(count: usize) -> Result<Busy> {
        remove_leftovers();
        let mut busy = Busy { names: Vec::new() };
        if count == 0 {
            return Ok(busy);
        }
        if !succeeds("docker", &["image", "inspect", DEMO_IMAGE]) {
            bail!("--busy needs dockerd and the {DEMO_IMAGE} image (cargo xtask setup)");
        }
        step(&format!(
            "starting {count} busy containers ({DEMO_IMAGE}, label {LABEL})"
        ));
        for i in 0..count {
            let name = format!("monitor-busy-{i}");
            run_cmd(
                Command::new("docker")
                    .args(["run", "-d", "--name", &name, "--label", LABEL])
                    .args([DEMO_IMAGE, "/bin/sh", "-c", WORK])
                    .stdout(std::process::Stdio::null()),
            )?;
            busy.names.push(name);
        }
        Ok(busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let running = labelled(false).len();
        step(&format!(
            "busy containers: {running} of {} still running at the end; removing them",
            self.names.len()
        ));
        remove_leftovers();
    }
}

/// Busy containers of an earlier run that was interrupted.
fn remove_leftovers() {
    let ids = labelled(true);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// The ids of the containers with the busy label: running ones, or `all`.
fn labelled(all: bool) -> Vec<String> {
    let filter = format!("label={LABEL}");
    let mut args = vec!["ps", "-q", "--filter", &filter];
    if all {
        args.push("--all");
    }
    Command::new("docker")
        .args(args)
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
