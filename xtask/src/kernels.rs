//! `cargo xtask test-kernels`: the kernel matrix. The same `monitor` binary and the
//! same sensor test binary run on this host's kernel and on Debian's stock kernels
//! booted under qemu (software emulation: KVM is not usable on these machines). Each
//! kernel gets one line per program type the probe table attached (or refused) and
//! one line for the sensor tests.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{run_cmd, step, workspace_root};

#[derive(clap::Args, Clone, Debug)]
pub struct KernelsArgs {
    /// Kernels to run on: `host`, `debian-6.1`, `debian-6.12`, `debian-6.12-no-bpf-lsm`,
    /// `debian-6.12-rt` (default: all five).
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Where downloaded kernel packages and the initramfs are kept between runs.
    #[arg(long, default_value = "/var/cache/monitor-kernels")]
    cache_dir: PathBuf,
    /// Only run the sensor tests whose names contain this (libtest filter).
    #[arg(long, env = "MONITOR_VM_TEST_FILTER")]
    test_filter: Option<String>,
    /// Also run the burst tests in the VMs (50,000 events each: minutes under
    /// emulation; they measure the ring buffer, which the host run covers).
    #[arg(long)]
    all_vm_tests: bool,
    /// Rewrite the "Kernel support" table in README.md from this run.
    #[arg(long)]
    write_readme: bool,
}

impl Default for KernelsArgs {
    fn default() -> Self {
        Self {
            kernels: Vec::new(),
            cache_dir: PathBuf::from("/var/cache/monitor-kernels"),
            test_filter: None,
            all_vm_tests: false,
            write_readme: false,
        }
    }
}

/// A kernel of the matrix, and the program types it must accept.
struct KernelSpec {
    name: &'static str,
    /// A regex for `apt-cache search --names-only`; the highest version wins.
    /// `None` is this host's running kernel.
    package: Option<&'static str>,
    /// Program types that must attach there; others may be refused (fallback).
    required: &'static [&'static str],
    /// Added to the VM's kernel command line.
    boot_args: &'static str,
}

const BASE_TYPES: &[&str] = &["tracepoint", "raw_tp"];
/// Debian's kernels enable the bpf LSM and accept LSM programs.
const WITH_LSM: &[&str] = &["tracepoint", "raw_tp", "lsm"];
/// The same kernel booted with the bpf LSM left out of `lsm=`: the LSM programs load
/// but would never run, so the enhanced sources must come from fentry instead.
const WITH_FENTRY: &[&str] = &["tracepoint", "raw_tp", "fentry"];
const NO_BPF_LSM: &str = "lsm=lockdown,capability,landlock,yama,apparmor";

const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        name: "host",
        package: None,
        required: BASE_TYPES,
        boot_args: "",
    },
    KernelSpec {
        name: "debian-6.1",
        package: Some(r"^linux-image-6\.1\.0-[0-9]+-amd64$"),
        required: WITH_LSM,
        boot_args: "",
    },
    KernelSpec {
        name: "debian-6.12",
        package: Some(r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$"),
        required: WITH_LSM,
        boot_args: "",
    },
    KernelSpec {
        name: "debian-6.12-no-bpf-lsm",
        package: Some(r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$"),
        required: WITH_FENTRY,
        boot_args: NO_BPF_LSM,
    },
    // PREEMPT_RT: programs run with migration, not preemption, disabled, so one that
    // builds a record can be preempted mid-way on its CPU by another building its own
    // (the scratch memory's stress test).
    KernelSpec {
        name: "debian-6.12-rt",
        package: Some(r"^linux-image-6\.12\.[0-9]+\+deb12-rt-amd64$"),
        required: WITH_LSM,
        boot_args: "",
    },
];

/// Every program type the probe table can use, in report order.
const PROGRAM_TYPES: &[&str] = &["tracepoint", "raw_tp", "lsm", "fentry"];

/// How long one VM may take before it is killed (TCG on two shared cores).
const VM_TIMEOUT: Duration = Duration::from_secs(900);

/// What the test binaries built for this run are.
struct Binaries {
    monitor: PathBuf,
    sensor_tests: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Pass,
    Skip,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Fail => "FAIL",
        }
    }
}

struct Row {
    kernel: String,
    release: String,
    what: String,
    status: Status,
    detail: String,
}

pub fn run(args: &KernelsArgs) -> Result<()> {
    let specs: Vec<&KernelSpec> = if args.kernels.is_empty() {
        KERNELS.iter().collect()
    } else {
        args.kernels
            .iter()
            .map(|name| {
                KERNELS.iter().find(|k| k.name == name).with_context(|| {
                    format!(
                        "unknown kernel `{name}`; known: {}",
                        KERNELS
                            .iter()
                            .map(|k| k.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let binaries = build_binaries()?;
    fs::create_dir_all(&args.cache_dir)
        .with_context(|| format!("creating {}", args.cache_dir.display()))?;
    let needs_vm = specs.iter().any(|k| k.package.is_some());
    let initramfs = if needs_vm {
        let mut vm_tests = test_args(args.test_filter.as_deref());
        if !args.all_vm_tests {
            vm_tests.extend(["--skip".to_string(), "burst".to_string()]);
        }
        Some(build_initramfs(&args.cache_dir, &binaries, &vm_tests)?)
    } else {
        None
    };

    // Downloads one at a time (apt's lock), then every kernel at once: each VM is
    // one emulated machine, and the host run mostly waits on the kernel.
    let kernels: Vec<(&KernelSpec, Result<Option<PathBuf>>)> = specs
        .into_iter()
        .map(|spec| {
            let vmlinuz = spec
                .package
                .map(|pattern| fetch_kernel(&args.cache_dir, pattern))
                .transpose();
            (spec, vmlinuz)
        })
        .collect();
    let started = Instant::now();
    let outputs: Vec<(&KernelSpec, Result<String>)> = thread::scope(|scope| {
        let runs: Vec<_> = kernels
            .into_iter()
            .map(|(spec, vmlinuz)| {
                let binaries = &binaries;
                let initramfs = initramfs.as_deref();
                let filter = args.test_filter.as_deref();
                let run = scope.spawn(move || match (vmlinuz?, initramfs) {
                    (None, _) => run_on_host(binaries, filter),
                    (Some(vmlinuz), Some(initramfs)) => {
                        boot_once_more_after_a_tcg_fault(spec, &vmlinuz, initramfs)
                    }
                    (Some(_), None) => unreachable!("an initramfs is built for VM kernels"),
                });
                (spec, run)
            })
            .collect();
        runs.into_iter()
            .map(|(spec, run)| {
                let output = run
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the {} run panicked", spec.name)));
                (spec, output)
            })
            .collect()
    });
    step(&format!(
        "kernel matrix ran in {:.0} s",
        started.elapsed().as_secs_f64()
    ));

    let mut rows = Vec::new();
    for (spec, output) in outputs {
        let kernel_rows = match output {
            Ok(console) => judge(spec, &console),
            Err(err) => vec![Row {
                kernel: spec.name.into(),
                release: "?".into(),
                what: "boot".into(),
                status: Status::Fail,
                detail: format!("{err:#}"),
            }],
        };
        for row in &kernel_rows {
            println!(
                "kernel-matrix: {:<22} {:<26} {:<13} {}  {}",
                row.kernel,
                row.release,
                row.what,
                row.status.label(),
                row.detail
            );
        }
        rows.extend(kernel_rows);
    }

    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let kernels: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.kernel.as_str()).collect();
    println!(
        "kernel-matrix summary: {} kernels, {} PASS, {} SKIP, {} FAIL",
        kernels.len(),
        count(Status::Pass),
        count(Status::Skip),
        count(Status::Fail)
    );
    if args.write_readme {
        write_readme(&rows)?;
    }
    if count(Status::Fail) > 0 {
        bail!("the kernel matrix has failures (lines marked FAIL above)");
    }
    Ok(())
}

/// Builds `monitor` and the sensor test binary; cargo reports where it put them, which
/// honours CARGO_TARGET_DIR.
fn build_binaries() -> Result<Binaries> {
    step("building the sensor tests (release)");
    let output = Command::new("cargo")
        .current_dir(workspace_root())
        .args([
            "test",
            "--release",
            "--package",
            "monitor",
            "--test",
            "sensor",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !output.status.success() {
        bail!("building the sensor tests failed ({})", output.status);
    }
    let mut monitor = None;
    let mut sensor_tests = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) else {
            continue;
        };
        let kinds = &message["target"]["kind"];
        if name == "monitor" && kinds.as_array().is_some_and(|k| k.contains(&"bin".into())) {
            monitor = Some(PathBuf::from(exe));
        } else if name == "sensor" {
            sensor_tests = Some(PathBuf::from(exe));
        }
    }
    Ok(Binaries {
        monitor: monitor.context("cargo did not report the monitor binary")?,
        sensor_tests: sensor_tests.context("cargo did not report the sensor test binary")?,
    })
}

/// Markers the VM's /init prints around each part of its output; the host run prints
/// the same so both are judged alike.
const PROBES_BEGIN: &str = "@@monitor-probes-begin";
const PROBES_END: &str = "@@monitor-probes-end";
const TESTS_BEGIN: &str = "@@monitor-tests-begin";
const TESTS_END: &str = "@@monitor-tests-end";
const RELEASE: &str = "@@kernel-release";

fn test_args(filter: Option<&str>) -> Vec<String> {
    let mut args = vec!["--test-threads=1".to_string()];
    args.extend(filter.map(str::to_string));
    args
}

fn run_on_host(binaries: &Binaries, filter: Option<&str>) -> Result<String> {
    step("host kernel: monitor probes --json, then the sensor tests");
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let probes = Command::new(&binaries.monitor)
        .args(["probes", "--json"])
        .stderr(Stdio::inherit())
        .output()
        .context("running monitor probes")?;
    let tests = Command::new(&binaries.sensor_tests)
        .args(test_args(filter))
        .stdin(Stdio::null())
        .output()
        .context("running the sensor tests")?;
    Ok(format!(
        "{RELEASE} {}\n{PROBES_BEGIN}\n{}\n{PROBES_END} rc={}\n{TESTS_BEGIN}\n{}{}\n{TESTS_END} rc={}\n",
        release.trim(),
        String::from_utf8_lossy(&probes.stdout),
        probes.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&tests.stdout),
        String::from_utf8_lossy(&tests.stderr),
        tests.status.code().unwrap_or(-1),
    ))
}

/// The newest package matching `pattern`, downloaded and unpacked once into the
/// cache; returns its vmlinuz.
fn fetch_kernel(cache: &Path, pattern: &str) -> Result<PathBuf> {
    let mut package = newest_package(pattern)?;
    if package.is_none() {
        run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        package = newest_package(pattern)?;
    }
    let package = package.with_context(|| {
        format!("apt offers no package matching {pattern}; is Debian bookworm in sources.list?")
    })?;
    let dir = cache.join(&package);
    if let Some(vmlinuz) = find_vmlinuz(&dir) {
        step(&format!("{package}: cached"));
        return Ok(vmlinuz);
    }
    step(&format!("{package}: apt-get download and dpkg -x"));
    let download = cache.join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)?;
    run_cmd(
        Command::new("apt-get")
            .current_dir(&download)
            .args(["download", "-qq", &package]),
    )?;
    let deb = fs::read_dir(&download)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let unpacking = cache.join(format!("{package}.partial"));
    let _ = fs::remove_dir_all(&unpacking);
    run_cmd(Command::new("dpkg").arg("-x").arg(&deb).arg(&unpacking))?;
    // Only the kernel image boots; the modules would keep hundreds of MB in the cache.
    let _ = fs::remove_dir_all(unpacking.join("lib"));
    let _ = fs::remove_dir_all(unpacking.join("usr"));
    fs::rename(&unpacking, &dir)?;
    let _ = fs::remove_dir_all(&download);
    find_vmlinuz(&dir).with_context(|| format!("{package} holds no boot/vmlinuz-*"))
}

fn newest_package(pattern: &str) -> Result<Option<String>> {
    let output = Command::new("apt-cache")
        .args(["search", "--names-only", pattern])
        .output()
        .context("running apt-cache (the kernel matrix needs Debian's apt)")?;
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    names.sort_by_key(|n| version_key(n));
    Ok(names.pop())
}

/// `linux-image-6.1.0-56-amd64` sorts by its numbers: 6, 1, 0, 56.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir.join("boot"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
}

/// The VM's /init: mounts what a node has (the sensor mounts tracefs itself when it
/// is missing, but the tests expect a normal node), brings loopback up for the
/// connect tests, runs the probes and the tests, then powers off. debugfs stays
/// unmounted, as on the CI host: it would bring a second tracefs at
/// /sys/kernel/debug/tracing, and the test that unmounts tracefs expects none left.
fn init_script(binaries: &Binaries, test_args: &[String]) -> String {
    let tests = test_args
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
# The scratch stress test at a scale emulation runs in seconds.
export MONITOR_STRESS_OPENS=2000
mkdir -p /proc /sys /dev /tmp /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
# Every node has a cgroup v2 hierarchy: the agent's host and container scopes come
# from it (a process in a cgroup the agent never classified gets no kernel kill).
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
# Kernel messages (a refused module load logs one) must not split the tests' lines.
dmesg -n 1
echo "{RELEASE} $(uname -r)"
echo "@@lsm $(cat /sys/kernel/security/lsm)"
echo {PROBES_BEGIN}
{monitor} probes --json 2>/tmp/probes.log
rc=$?
echo "{PROBES_END} rc=$rc"
sed 's/^/@@probes-log /' /tmp/probes.log
echo {TESTS_BEGIN}
{tests_bin} {tests} 2>&1
rc=$?
echo "{TESTS_END} rc=$rc"
poweroff -f
"#,
        monitor = binaries.monitor.display(),
        tests_bin = binaries.sensor_tests.display(),
    )
}

/// An initramfs of busybox, the two binaries at the paths they were built at (the
/// test binary has `monitor`'s path compiled in) and their shared libraries.
fn build_initramfs(cache: &Path, binaries: &Binaries, test_args: &[String]) -> Result<PathBuf> {
    step("building the initramfs (busybox, monitor, the sensor tests)");
    let root = cache.join("initramfs-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("bin"))?;
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!("/bin/busybox is missing: apt-get install busybox-static (cargo xtask setup)");
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    let mut files = vec![binaries.monitor.clone(), binaries.sensor_tests.clone()];
    for binary in [&binaries.monitor, &binaries.sensor_tests] {
        files.extend(shared_libraries(binary)?);
    }
    for file in &files {
        let target = root.join(file.strip_prefix("/").unwrap_or(file));
        fs::create_dir_all(target.parent().expect("absolute path"))?;
        // Follow symlinks: the library's real bytes go in under the name ldd gave.
        fs::copy(file, &target).with_context(|| format!("copying {}", file.display()))?;
    }
    let init = root.join("init");
    fs::write(&init, init_script(binaries, test_args))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    let archive = cache.join("initramfs.cpio");
    run_cmd(Command::new("sh").current_dir(&root).arg("-c").arg(format!(
        "find . | /bin/busybox cpio -o -H newc > '{}' 2>/dev/null",
        archive.display()
    )))?;
    Ok(archive)
}

/// The absolute paths `ldd` lists, the dynamic loader among them.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// What the console of an emulated kernel shows when qemu's TCG lost track of live
/// text patching (static keys, flipped as programs attach and detach): a vCPU runs a
/// stale translation of the patching breakpoint and either oopses on it or spins on
/// it while the other vCPU waits for it forever. Seen on a different guest each time,
/// in about one run of four with two vCPUs; guests now get one vCPU, which leaves
/// no other vCPU to race, and these stay as a guard.
const TCG_TEXT_PATCH_FAULTS: [&str; 2] = ["Oops: int3", "soft lockup"];

fn shows_a_tcg_fault(console: &str) -> bool {
    TCG_TEXT_PATCH_FAULTS
        .iter()
        .any(|fault| console.contains(fault))
}

/// [`boot`], and once more when the tests did not finish because the emulated kernel
/// hit one of [`TCG_TEXT_PATCH_FAULTS`]. The retry is announced, and a second fault
/// fails the row as before.
fn boot_once_more_after_a_tcg_fault(
    spec: &KernelSpec,
    vmlinuz: &Path,
    initramfs: &Path,
) -> Result<String> {
    let console = boot(spec, vmlinuz, initramfs)?;
    if console.contains(TESTS_END) || !shows_a_tcg_fault(&console) {
        return Ok(console);
    }
    step(&format!(
        "{}: the emulated kernel faulted on a live-patching breakpoint (a TCG fault: {}) \
         before the tests finished; booting it once more",
        spec.name,
        tail(&console, 3)
    ));
    boot(spec, vmlinuz, initramfs)
}

/// Boots `vmlinuz` with the initramfs and returns everything the serial console
/// printed. A console that shows a TCG fault ends the VM at once: its kernel never
/// recovers, and waiting for the timeout would cost the rest of the 15 minutes.
fn boot(spec: &KernelSpec, vmlinuz: &Path, initramfs: &Path) -> Result<String> {
    step(&format!(
        "{}: booting {} under qemu (TCG) {}",
        spec.name,
        vmlinuz.display(),
        spec.boot_args
    ));
    let name = spec.name.to_string();
    let mut child = Command::new("qemu-system-x86_64")
        // One vCPU: see TCG_TEXT_PATCH_FAULTS.
        .args(["-accel", "tcg", "-m", "1024", "-smp", "1"])
        .args(["-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args([
            "-append",
            &format!("console=ttyS0 panic=-1 quiet {}", spec.boot_args),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let faulted = Arc::new(AtomicBool::new(false));
    let reader = thread::spawn({
        let faulted = faulted.clone();
        move || {
            let mut console = String::new();
            for line in BufReader::new(&mut stdout).lines() {
                let line = line.unwrap_or_default();
                if shows_a_tcg_fault(&line) {
                    faulted.store(true, Ordering::Relaxed);
                }
                // Progress while a slow emulated kernel runs the tests.
                if line.starts_with("test ") || line.starts_with("@@") {
                    eprintln!("    {name}| {line}");
                }
                console.push_str(&line);
                console.push('\n');
            }
            console
        }
    });
    let err_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(Some(status));
        }
        if faulted.load(Ordering::Relaxed) {
            // Let the fault's report reach the console before the VM goes.
            thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            break Some(None);
        }
        if started.elapsed() > VM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let console = reader.join().unwrap_or_default();
    let qemu_err = err_reader.join().unwrap_or_default();
    match status {
        None => bail!(
            "the VM did not power off within {} s; its console ended with:\n{}",
            VM_TIMEOUT.as_secs(),
            tail(&console, 20)
        ),
        Some(Some(status)) if !status.success() => bail!(
            "qemu failed ({status}): {}\n{}",
            qemu_err.trim(),
            tail(&console, 20)
        ),
        Some(_) => Ok(console),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn between<'a>(console: &'a str, begin: &str, end: &str) -> Option<(&'a str, i32)> {
    let start = console.find(begin)? + begin.len();
    let stop = start + console[start..].find(end)?;
    let rc = console[stop + end.len()..]
        .lines()
        .next()
        .and_then(|l| l.trim().strip_prefix("rc="))
        .and_then(|rc| rc.parse().ok())
        .unwrap_or(-1);
    Some((&console[start..stop], rc))
}

/// Turns one kernel's console output into its rows.
fn judge(spec: &KernelSpec, console: &str) -> Vec<Row> {
    // Kernel messages can share a console line with ours: look anywhere in the line.
    let release = console
        .lines()
        .find_map(|l| l.find(RELEASE).map(|i| &l[i + RELEASE.len()..]))
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let row = |what: &str, status, detail: String| Row {
        kernel: spec.name.into(),
        release: release.clone(),
        what: what.into(),
        status,
        detail,
    };
    let mut rows = Vec::new();
    match between(console, PROBES_BEGIN, PROBES_END) {
        Some((json, 0)) => match serde_json::from_str::<Value>(json.trim())
            .map_err(|e| e.to_string())
            .and_then(|v| match v["probes"].as_array() {
                Some(reports) => Ok(reports.clone()),
                None => Err("no `probes` array".into()),
            }) {
            Ok(reports) => rows.extend(
                program_types(spec, &reports)
                    .into_iter()
                    .map(|(ty, status, detail)| row(ty, status, detail)),
            ),
            Err(err) => rows.push(row(
                "probes",
                Status::Fail,
                format!("monitor probes --json printed invalid JSON: {err}"),
            )),
        },
        Some((_, rc)) => {
            let log: Vec<&str> = console
                .lines()
                .filter_map(|l| l.strip_prefix("@@probes-log "))
                .collect();
            rows.push(row(
                "probes",
                Status::Fail,
                format!("monitor probes exited with {rc}: {}", log.join(" | ")),
            ));
        }
        None => rows.push(row(
            "probes",
            Status::Fail,
            format!(
                "no probe report; console ended with:\n{}",
                tail(console, 20)
            ),
        )),
    }
    rows.push(match between(console, TESTS_BEGIN, TESTS_END) {
        Some((output, rc)) => {
            let (passed, failed) = test_results(output);
            let status = if rc == 0 && failed.is_empty() && passed > 0 {
                Status::Pass
            } else {
                Status::Fail
            };
            let mut detail = format!("tests/sensor.rs: {passed} passed, {} failed", failed.len());
            if let Some(skipped) = filtered_out(output) {
                let _ = write!(detail, ", {skipped} not run (filtered out)");
            }
            if !failed.is_empty() {
                let _ = write!(detail, " ({})", failed.join(", "));
                // libtest prints each failure's output after the results.
                if let Some(at) = output.find("failures:") {
                    let _ = write!(detail, "\n{}", &output[at..]);
                }
            }
            if status == Status::Fail && failed.is_empty() {
                let _ = write!(detail, "; exit code {rc}:\n{}", tail(output, 30));
            }
            row("sensor-tests", status, detail)
        }
        None => row(
            "sensor-tests",
            Status::Fail,
            format!(
                "the tests did not finish; console ended with:\n{}",
                tail(console, 30)
            ),
        ),
    });
    rows
}

/// The count in libtest's `test result: ... N filtered out` line, when not 0.
fn filtered_out(output: &str) -> Option<usize> {
    let line = output.lines().find(|l| l.contains("test result:"))?;
    let before = line.split(" filtered out").next()?;
    let n = before.rsplit(' ').next()?.parse().ok()?;
    (n > 0).then_some(n)
}

/// libtest's `test name ... ok|FAILED` lines.
fn test_results(output: &str) -> (usize, Vec<String>) {
    let mut passed = 0;
    let mut failed = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix(" ... ok") {
            let _ = name;
            passed += 1;
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            failed.push(name.to_string());
        }
    }
    (passed, failed)
}

/// One verdict per program type: PASS where sources attached with it, SKIP where it
/// was only refused and the kernel need not accept it, FAIL where a required type did
/// not attach, or where the kernel refused to load one of our programs of a type it
/// must accept (a verifier that gives up on a program is our defect, even when the
/// source is optional).
fn program_types(spec: &KernelSpec, reports: &[Value]) -> Vec<(&'static str, Status, String)> {
    let mut attached: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut refused: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for report in reports {
        let source = report["source"].as_str().unwrap_or("?");
        // How a path is read (`lsm with bpf_d_path`) is worth a row's reader knowing.
        let label = match report["chosen"]
            .as_str()
            .and_then(|c| c.split_once(" with "))
        {
            Some((_, how)) => format!("{source} ({how})"),
            None => source.to_string(),
        };
        for hook in report["hooks"].as_array().into_iter().flatten() {
            let hook = hook.as_str().unwrap_or("");
            if let Some(ty) = PROGRAM_TYPES
                .iter()
                .find(|t| hook.starts_with(&format!("{t}/")))
            {
                let sources = attached.entry(ty).or_default();
                // A syscall's entry and exit programs are one source.
                if !sources.contains(&label) {
                    sources.push(label.clone());
                }
            }
        }
        for reason in report["refused"].as_array().into_iter().flatten() {
            let reason = reason.as_str().unwrap_or("");
            if let Some(ty) = PROGRAM_TYPES
                .iter()
                .find(|t| reason.contains(&format!(" {t}/")))
            {
                refused
                    .entry(ty)
                    .or_default()
                    .push(format!("{source}: {reason}"));
            }
        }
    }
    let mut out = Vec::new();
    for ty in PROGRAM_TYPES {
        let required = spec.required.contains(ty);
        let rejected: Vec<&String> = refused
            .get(ty)
            .into_iter()
            .flatten()
            .filter(|r| r.contains("load failed"))
            .collect();
        let (status, detail) = match (attached.get(ty), refused.get(ty)) {
            (Some(_), _) if required && !rejected.is_empty() => (
                Status::Fail,
                format!(
                    "refused by the verifier: {}",
                    rejected
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ),
            (Some(sources), _) => (Status::Pass, format!("attached: {}", sources.join(", "))),
            (None, Some(reasons)) if required => (Status::Fail, reasons.join("; ")),
            (None, Some(reasons)) => (Status::Skip, format!("fallback: {}", reasons.join("; "))),
            (None, None) if required => (Status::Fail, "no source used it".into()),
            (None, None) => continue,
        };
        out.push((*ty, status, detail));
    }
    out
}

const README_BEGIN: &str = "<!-- kernel-matrix:begin (cargo xtask test-kernels --write-readme) -->";
const README_END: &str = "<!-- kernel-matrix:end -->";

/// Rewrites the table between the README's markers.
fn write_readme(rows: &[Row]) -> Result<()> {
    let path = workspace_root().join("README.md");
    let readme = fs::read_to_string(&path)?;
    let (Some(start), Some(end)) = (readme.find(README_BEGIN), readme.find(README_END)) else {
        bail!("README.md lacks the markers {README_BEGIN} and {README_END}");
    };
    let mut table =
        String::from("\n| kernel | release | check | result | detail |\n|---|---|---|---|---|\n");
    for row in rows {
        let detail = row.detail.lines().next().unwrap_or("").replace('|', "\\|");
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} |",
            row.kernel,
            row.release,
            row.what,
            row.status.label(),
            detail
        );
    }
    let updated = format!(
        "{}{README_BEGIN}{table}{}",
        &readme[..start],
        &readme[end..]
    );
    fs::write(&path, updated)?;
    step("README.md: kernel support table updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_versions_sort_numerically() {
        let mut names = [
            "linux-image-6.1.0-9-amd64".to_string(),
            "linux-image-6.1.0-56-amd64".to_string(),
            "linux-image-6.1.0-100-amd64".to_string(),
        ];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names.last().unwrap(), "linux-image-6.1.0-100-amd64");
    }

    #[test]
    fn refused_enhanced_hooks_are_a_skip_and_missing_base_types_a_failure() {
        let reports: Vec<Value> = serde_json::from_str(
            r#"[{"source":"openat","hooks":["tracepoint/syscalls/sys_enter_openat"],
                 "refused":["lsm: lsm/file_open refused: load failed (EPERM)"]}]"#,
        )
        .unwrap();
        let rows = program_types(&KERNELS[0], &reports);
        let verdicts: Vec<(&str, Status)> = rows.iter().map(|(t, s, _)| (*t, *s)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("tracepoint", Status::Pass),
                ("raw_tp", Status::Fail),
                ("lsm", Status::Skip)
            ]
        );
    }

    /// An optional syscall source whose program the verifier refused on a kernel that
    /// must take tracepoints fails the row: the program is ours to fix.
    #[test]
    fn a_program_the_verifier_refuses_fails_its_type() {
        let reports: Vec<Value> = serde_json::from_str(
            r#"[{"source":"openat","hooks":["tracepoint/syscalls/sys_enter_openat"],"refused":[]},
                {"source":"sendto","hooks":[],
                 "refused":["syscall tracepoints: tracepoint/syscalls/sys_exit_sendto refused: load failed (Permission denied (os error 13)); verifier: combined stack size of 2 calls is 544. Too large"]},
                {"source":"openat2","hooks":[],
                 "refused":["syscall tracepoints: tracepoint/syscalls/sys_enter_openat2 does not exist on this kernel"]}]"#,
        )
        .unwrap();
        let rows = program_types(&KERNELS[0], &reports);
        let tracepoint = rows.iter().find(|(t, _, _)| *t == "tracepoint").unwrap();
        assert_eq!(tracepoint.1, Status::Fail, "{}", tracepoint.2);
        assert!(tracepoint.2.contains("sendto"), "{}", tracepoint.2);
        assert!(!tracepoint.2.contains("openat2"), "{}", tracepoint.2);
    }

    #[test]
    fn the_path_method_of_a_chosen_candidate_is_named() {
        let reports: Vec<Value> = serde_json::from_str(
            r#"[{"source":"file_open","chosen":"lsm with bpf_d_path","hooks":["lsm/file_open"],"refused":[]},
                {"source":"socket_connect","chosen":"lsm","hooks":["lsm/socket_connect"],"refused":[]}]"#,
        )
        .unwrap();
        let rows = program_types(&KERNELS[1], &reports);
        let lsm = rows.iter().find(|(t, _, _)| *t == "lsm").unwrap();
        assert_eq!(lsm.2, "attached: file_open (bpf_d_path), socket_connect");
    }

    #[test]
    fn libtest_lines_are_counted() {
        let (passed, failed) =
            test_results("running 3 tests\ntest a ... ok\ntest b ... FAILED\ntest c ... ok\n");
        assert_eq!(passed, 2);
        assert_eq!(failed, vec!["b"]);
        assert_eq!(
            filtered_out(
                "test result: ok. 16 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out; finished in 1s"
            ),
            Some(2)
        );
    }
}
