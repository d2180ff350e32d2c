//! Builds the kernel programs (`monitor-ebpf`) for the BPF target with the nightly
//! toolchain and bpf-linker, and places the object where `include_bytes_aligned!`
//! finds it. `cargo xtask setup` installs what this needs.
fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitor-ebpf");
    let package = aya_build::Package {
        name: "monitor-ebpf",
        root_dir: root,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default()).map_err(|err| {
        anyhow::anyhow!("building the eBPF programs failed: {err:#}\nhint: run `cargo xtask setup` (nightly rust-src and bpf-linker)")
    })
}
