//! Builds the kernel programs (`monitor-ebpf`) for the BPF target with the nightly
//! toolchain and bpf-linker, and places the object where `include_bytes_aligned!`
//! finds it. `cargo xtask setup` installs what this needs.
//!
//! With `AYA_BUILD_SKIP=1` (for tools that only need the library, such as the fuzz
//! target) an empty object is put in its place; the agent then refuses to start with
//! an error saying so.
fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitor-ebpf");
    let package = aya_build::Package {
        name: "monitor-ebpf",
        root_dir: root,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).map_err(|err| {
        anyhow::anyhow!(
            "building the eBPF programs failed: {err:#}\nhint: run `cargo xtask setup` \
             (nightly rust-src and bpf-linker)"
        )
    })?;
    let object = std::path::Path::new(&std::env::var("OUT_DIR")?).join("monitor");
    if !object.exists() {
        std::fs::write(&object, [])?;
    }
    Ok(())
}
