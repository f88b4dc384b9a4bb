#!/usr/bin/env bash
# Installs what the static builds, the ramdisk builder and the QEMU test bench need on a fresh
# Debian 12 machine (root). Idempotent; safe to run again.
#
#   - bookworm-backports for QEMU 10 (system + user): bookworm's 7.2 would replace the qemu-utils
#     10 backport, and qemu-user 7.2 dies on LoongArch LSX instructions.
#   - OVMF / AAVMF firmware, busybox-static, cpio, zstd, and the rust targets + rust-src.
#   - zig + cargo-zigbuild (PyPI / crates.io) to link the musl targets, incl. loongarch64.
set -euo pipefail

log() { printf '\n==> %s\n' "$*"; }

apt_retry() {
    for i in 1 2 3 4 5; do
        if DEBIAN_FRONTEND=noninteractive apt-get "$@"; then return 0; fi
        sleep $((i * 3))
    done
    echo "apt-get $* failed" >&2
    return 1
}

if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && exec sudo env "PATH=$PATH" \
        "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" bash "$0" "$@"
    echo "install-ramdisk-deps.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

# Add bookworm-backports with the same mirror as the main Debian source.
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # shellcheck source=../ramdisk-elements/lib/apt-sources.sh
    source "$(dirname "$0")/../ramdisk-elements/lib/apt-sources.sh"
    uri=${IRONIC_AGENT_DEBIAN_MIRROR:-$(host_debian_uri bookworm || true)}
    if [ -z "$uri" ]; then
        echo "install-ramdisk-deps.sh: no apt source for bookworm; set IRONIC_AGENT_DEBIAN_MIRROR" >&2
        exit 1
    fi
    log "adding bookworm-backports ($uri)"
    cat >/etc/apt/sources.list.d/backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt_retry update -qq
fi

need=()
for p in qemu-system-x86 qemu-system-arm qemu-user-static; do
    v=""
    dpkg -s "$p" >/dev/null 2>&1 && v=$(dpkg-query -W -f='${Version}' "$p")
    # An installed bookworm 7.2 does not count: qemu-loongarch64-static 7.2 dies on LSX.
    if [ -z "$v" ] || dpkg --compare-versions "$v" lt 1:8; then need+=("$p"); fi
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} from bookworm-backports"
    apt_retry update -qq
    apt_retry install -y -qq --no-install-recommends -t bookworm-backports "${need[@]}"
fi

need=()
# (ramdisk-elements/build-initramfs.sh: apt/dpkg-deb, the Debian archive keyring, binutils'
# readelf, kmod's depmod, cpio, zstd/xz; test-boot.sh: python3 to pick free ports;
# tests/images/build-test-os.sh: mtools to fill FAT images without mounting, fdisk's sfdisk;
# the VM tests' emulated BMC: openipmi's ipmi_sim.)
for p in ovmf qemu-efi-aarch64 busybox-static cpio zstd xz-utils kmod file binutils \
    dnsmasq iproute2 mdadm gdisk dosfstools e2fsprogs debian-archive-keyring python3 \
    mtools fdisk openipmi; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt_retry update -qq
    apt_retry install -y -qq --no-install-recommends "${need[@]}"
fi
# dnsmasq's own service is not wanted: the tests start it in their own network namespace.
systemctl disable --now dnsmasq >/dev/null 2>&1 || true

log "rust targets"
cd "$(dirname "$0")/.."
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null
rustup component add rust-src >/dev/null

if ! command -v cargo-zigbuild >/dev/null || ! python3 -m ziglang version >/dev/null 2>&1; then
    log "zig + cargo-zigbuild"
    python3 -m pip install -q ziglang
    command -v cargo-zigbuild >/dev/null || cargo install -q --locked cargo-zigbuild
fi
log "done"
