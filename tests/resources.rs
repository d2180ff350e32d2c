//! Resource sampling against real containers: limits set with `docker run` and the
//! CPU a busy loop and an idle one use, read from their cgroups as the agent would.
mod support;

use std::{
    thread,
    time::{Duration, Instant},
};

use monitor::{
    context::host::HostRoot,
    resources::{CgroupMounts, ContainerCgroups, ContainerResources, Limit, Measure, Usage},
};
use support::docker::{self, Cleanup, IMAGE, docker};

fn unique(name: &str) -> String {
    format!("monitor-resources-{name}-{}", std::process::id())
}

fn cgroups_of(name: &str) -> ContainerCgroups {
    let host = HostRoot::default();
    let mounts = CgroupMounts::discover(&host);
    let pid = docker::container_pid(name);
    let cgroups = ContainerCgroups::of_pid(&host, &mounts, pid).expect("the container's pid");
    eprintln!("{name}: layout {:?}, {cgroups:?}", mounts.layout());
    cgroups
}

#[test]
fn limits_and_cpu_of_real_containers() {
    support::require_root();
    docker::ensure_image();
    let busy = unique("busy");
    let idle = unique("idle");
    let _cleanup = Cleanup(vec![busy.clone(), idle.clone()]);
    docker(&[
        "run",
        "-d",
        "--name",
        &busy,
        "--cpus",
        "0.5",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        IMAGE,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    docker(&["run", "-d", "--name", &idle, IMAGE, "sleep", "300"]);

    let mut busy_resources = ContainerResources::new(cgroups_of(&busy));
    let idle_cgroups = cgroups_of(&idle);
    // Let the loop reach its quota before measuring it.
    thread::sleep(Duration::from_millis(500));

    // The machine is shared with builds: the loop may get less than its quota for a
    // second, so a low reading is retried; a reading above the quota never passes.
    let mut readings = Vec::new();
    let mut busy_usage = None;
    for _ in 0..3 {
        let first = busy_resources.tick(Instant::now());
        let idle_before = idle_cgroups.sample(Instant::now());
        thread::sleep(Duration::from_secs(1));
        let usage = busy_resources.tick(Instant::now());
        let idle_usage = Usage::between(&idle_before, &idle_cgroups.sample(Instant::now()));

        assert_eq!(
            first.cores.is_some(),
            !readings.is_empty(),
            "no rate on the first tick"
        );
        let idle_cores = idle_usage.cores.expect("the idle container's cpu usage");
        assert!(idle_cores < 0.05, "idle container used {idle_cores} cores");

        let cores = usage.cores.expect("the busy container's cpu usage");
        assert!(
            cores <= 0.6,
            "{cores} cores is above the 0.5 quota: {usage:?}"
        );
        readings.push(cores);
        if cores >= 0.3 {
            busy_usage = Some(usage);
            break;
        }
    }
    let usage = busy_usage.unwrap_or_else(|| panic!("the loop never got 0.3 cores: {readings:?}"));

    let sample = busy_resources.last_sample().expect("a sample");
    assert_eq!(sample.cpu_limit_cores, Some(Limit::Max(0.5)));
    assert_eq!(sample.memory_limit_bytes, Some(Limit::Max(64 << 20)));
    assert_eq!(sample.pids_limit, Some(Limit::Max(50)));
    assert_eq!(sample.oom_kills, Some(0));
    assert!(usage.pids.is_some_and(|p| p >= 1), "{usage:?}");
    assert!(usage.memory_bytes.is_some_and(|m| m > 0), "{usage:?}");
    let pct = usage.cpu_limit_pct.expect("cpu against its limit");
    assert!((60.0..=120.0).contains(&pct), "{pct}% of the limit");
    assert!(usage.memory_limit_pct.is_some_and(|p| p > 0.0 && p < 100.0));
    assert_eq!(usage.new_oom_kills, Some(0));

    let minute = busy_resources
        .history
        .means(Measure::Cores, usage.at)
        .last_minute;
    assert!(minute.is_some_and(|c| c > 0.0 && c <= 0.6), "{minute:?}");

    // The idle container has no limits.
    let idle_sample = idle_cgroups.sample(Instant::now());
    assert_eq!(idle_sample.cpu_limit_cores, Some(Limit::Unlimited));
    assert_eq!(idle_sample.memory_limit_bytes, Some(Limit::Unlimited));
    assert_eq!(idle_sample.pids_limit, Some(Limit::Unlimited));
}
