//! `cargo xtask setup`: everything a fresh machine needs, each step skipped when it is
//! already done.
use std::{path::Path, process::Command, thread, time::Duration};

use anyhow::{Context, Result, bail};

use crate::util::{is_root, run_cmd, step, succeeds};

/// The LLVM major version of the pinned nightly; bpf-linker must link the same one.
const LLVM_MAJOR: &str = "22";
/// qemu boots the stock kernels of the kernel matrix; bpftool reads the kernel
/// programs' run times for `cargo xtask bench`, bpftrace attaches the empty programs
/// its floor is measured with, iproute2 makes its network namespace. protoc builds the
/// containerd and CRI clients; containerd (with docker.io) and podman are the other
/// runtimes the container tests run. debootstrap makes the Debian image of the benign
/// corpus test (tests/benign.rs; no registry is reachable). nats-server runs the
/// JetStream clusters that fleet profiles are shared through (tests/fleet.rs).
const APT_PACKAGES: [&str; 11] = [
    "docker.io",
    "protobuf-compiler",
    "podman",
    "rsyslog",
    "busybox-static",
    "qemu-system-x86",
    "bpftool",
    "bpftrace",
    "iproute2",
    "debootstrap",
    "nats-server",
];

pub fn run() -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    apt_packages()?;
    dockerd()?;
    demo_image()?;
    step("setup complete");
    Ok(())
}

fn rust_src() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("rustup is needed to build the eBPF programs (https://rustup.rs)")?;
    if !installed.status.success() {
        bail!(
            "no nightly toolchain: install it with `rustup toolchain install nightly` \
             (the eBPF programs build with -Z build-std)"
        );
    }
    if String::from_utf8_lossy(&installed.stdout).contains("rust-src") {
        step("nightly rust-src: present");
        return Ok(());
    }
    step("nightly rust-src: installing");
    run_cmd(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn bpf_linker() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("running rustc +nightly")?;
    let sysroot = String::from_utf8(sysroot.stdout)?.trim().to_string();
    let lib_dir = Path::new(&sysroot).join("lib");
    // bpf-linker loads the nightly's libLLVM at run time; cargo +nightly puts that
    // directory on the library path when it runs the linker, so check it the same way.
    let works = Command::new("bpf-linker")
        .arg("--version")
        .env("LD_LIBRARY_PATH", &lib_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        step("bpf-linker: present");
        return Ok(());
    }
    step(&format!(
        "bpf-linker: building against the nightly's LLVM {LLVM_MAJOR} (about 3 minutes)"
    ));
    let llvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{LLVM_MAJOR}")))
        })
        .with_context(|| {
            format!(
                "the nightly toolchain in {} ships no libLLVM.so.{LLVM_MAJOR}*: bpf-linker \
                 needs the nightly's LLVM",
                lib_dir.display()
            )
        })?;
    // bpf-linker's build looks for `lib/libLLVM.so` under LLVM_PREFIX.
    let prefix = Path::new("/opt/rust-llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&llvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), llvm.display()))?;
    run_cmd(
        Command::new("cargo")
            .env("LLVM_PREFIX", prefix)
            .args(["install", "bpf-linker", "--force", "--version", "0.13.0"])
            .arg("--no-default-features")
            .args(["--features", &format!("llvm-{LLVM_MAJOR}")]),
    )
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !succeeds("dpkg", &["-s", p]))
        .collect();
    if missing.is_empty() {
        step(&format!("packages ({}): present", APT_PACKAGES.join(", ")));
        return Ok(());
    }
    if !is_root() {
        bail!(
            "packages {} are missing; install them as root: apt-get install -y {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    step(&format!(
        "installing {} from Debian's packages",
        missing.join(", ")
    ));
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}

/// The image the README's first alert runs (no registry needed): Debian's static
/// busybox with an /etc/shadow. Named as a Docker Hub official image, so that the
/// default rules' registry check stays quiet and the demo shows one alert.
pub const DEMO_IMAGE: &str = "busybox:monitor-demo";

fn demo_image() -> Result<()> {
    if !succeeds("docker", &["info"]) {
        step("demo image: skipped (no container engine)");
        return Ok(());
    }
    if succeeds("docker", &["image", "inspect", DEMO_IMAGE]) {
        step(&format!("demo image {DEMO_IMAGE}: present"));
        return Ok(());
    }
    step(&format!(
        "demo image {DEMO_IMAGE}: importing from /bin/busybox"
    ));
    let root = std::env::temp_dir().join(format!("monitor-demo-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for dir in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("copying /bin/busybox (Debian's busybox-static package)")?;
    for applet in ["sh", "cat", "ls", "sleep", "id"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n")?;
    let result = run_cmd(Command::new("sh").arg("-c").arg(format!(
        "tar -C '{}' -c . | docker import - {DEMO_IMAGE} >/dev/null",
        root.display()
    )));
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// Container tests need a running engine; start one when none answers.
fn dockerd() -> Result<()> {
    if succeeds("docker", &["info"]) {
        step("dockerd: running");
        return Ok(());
    }
    if !is_root() {
        step("dockerd: not running (start it as root for the container tests)");
        return Ok(());
    }
    step("dockerd: starting with --live-restore (log in /var/log/dockerd.log)");
    let log = std::fs::File::create("/var/log/dockerd.log")?;
    // Live restore keeps containers running while dockerd is down, which the
    // context tests rely on to show that events keep flowing without it.
    // `setsid -f` forks dockerd into its own session and returns at once.
    run_cmd(
        Command::new("setsid")
            .args(["-f", "dockerd", "--live-restore"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    for _ in 0..60 {
        if succeeds("docker", &["info"]) {
            step("dockerd: ready");
            return Ok(());
        }
        thread::sleep(Duration::from_millis(500));
    }
    bail!("dockerd did not become ready within 30 s; see /var/log/dockerd.log")
}
