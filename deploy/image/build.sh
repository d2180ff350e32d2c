#!/usr/bin/env bash
# Builds monitor's container image without a registry: the two base images are made
# here (debootstrap + docker import) when they are missing, then the multi-stage
# Dockerfile builds the agent inside the build stage.
#
#   deploy/image/build.sh [TAG]          (default TAG: monitor:latest)
#
# Environment:
#   REBUILD_BASES=1   make the base images again (e.g. after a toolchain update; a
#                     changed Cargo.lock does this by itself)
#   SUITE=bookworm    Debian release of both bases (the runtime's glibc must be at
#                     least the build's, so both come from one debootstrap)
#   MIRROR=http://deb.debian.org/debian
#
# The build base carries this machine's rustup toolchains (stable, nightly with
# rust-src), bpf-linker and cargo registry, so the image build runs offline: run
# `cargo xtask setup` first. Needs root, dockerd and about 4 GB of free disk.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tag=${1:-monitor:latest}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
build_base=monitor/build-base:$suite
runtime_base=monitor/runtime-base:$suite
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}

say() { echo "==> $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
# The build base's registry must hold every crate of this Cargo.lock (the build is
# offline): the base is labelled with the lock file's hash and made again when the
# lock file has changed since.
lock_hash=$(sha256sum "$root/Cargo.lock" | cut -d' ' -f1)
base_lock_hash() {
    docker image inspect -f '{{ index .Config.Labels "monitor.cargo-lock" }}' "$build_base" \
        2>/dev/null || true
}

make_bases() {
    command -v debootstrap >/dev/null || {
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    [ -x "$cargo_home/bin/bpf-linker" ] || {
        echo "no bpf-linker in $cargo_home/bin: run \`cargo xtask setup\` first" >&2
        exit 1
    }
    # The offline build in the image needs every crate of Cargo.lock in the registry.
    say "fetching the workspace's crates into $cargo_home/registry"
    (cd "$root" && cargo fetch --locked --quiet)

    work=$(mktemp -d /var/tmp/monitor-bases.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    say "debootstrap $suite (minbase, gcc, libc6-dev, ca-certificates, protobuf-compiler): about 2 minutes"
    debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates,protobuf-compiler \
        "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        exit 1
    }

    say "importing $build_base (Debian + the toolchains)"
    # Host paths are taken as they are here (/root/.rustup, /root/.cargo); a
    # CARGO_HOME or RUSTUP_HOME elsewhere is put at the same place in the image.
    tar -c -C "$work/rootfs" . \
        -C / --exclude='*/share/doc' \
        "${rustup_home#/}/toolchains" "${rustup_home#/}/settings.toml" \
        "${rustup_home#/}/update-hashes" \
        "${cargo_home#/}/bin" "${cargo_home#/}/registry" opt/rust-llvm |
        docker import \
            --change "ENV RUSTUP_HOME=$rustup_home CARGO_HOME=$cargo_home" \
            --change "ENV PATH=$cargo_home/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            --change "LABEL monitor.cargo-lock=$lock_hash" \
            - "$build_base" >/dev/null

    say "importing $runtime_base (glibc, libgcc_s, CA certificates; no shell)"
    local rt=$work/runtime
    mkdir -p "$rt/usr/lib/x86_64-linux-gnu" "$rt/usr/lib64" "$rt/etc/ssl/certs" "$rt/tmp" \
        "$rt/usr/bin"
    chmod 1777 "$rt/tmp"
    for lib in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libgcc_s.so.1; do
        cp -L "$work/rootfs/usr/lib/x86_64-linux-gnu/$lib" "$rt/usr/lib/x86_64-linux-gnu/"
    done
    ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$rt/usr/lib64/ld-linux-x86-64.so.2"
    ln -s usr/lib "$rt/lib"
    ln -s usr/lib64 "$rt/lib64"
    cp -L "$work/rootfs/etc/ssl/certs/ca-certificates.crt" "$rt/etc/ssl/certs/"
    echo 'root:x:0:0:root:/root:/usr/sbin/nologin' >"$rt/etc/passwd"
    echo 'root:x:0:' >"$rt/etc/group"
    tar -c -C "$rt" . | docker import - "$runtime_base" >/dev/null
}

if [ "${REBUILD_BASES:-0}" = 1 ] || ! have_image "$build_base" || ! have_image "$runtime_base"; then
    make_bases
elif [ "$(base_lock_hash)" != "$lock_hash" ]; then
    say "Cargo.lock changed since $build_base was made: making the bases again"
    make_bases
fi

say "building $tag (deploy/image/Dockerfile; the agent compiles in the build stage)"
# The plain builder: docker.io 20.10's BuildKit is not available with every client.
DOCKER_BUILDKIT=0 docker build -f "$root/deploy/image/Dockerfile" \
    --build-arg "BUILD_BASE=$build_base" --build-arg "RUNTIME_BASE=$runtime_base" \
    -t "$tag" "$root" >&2
say "built $tag"
