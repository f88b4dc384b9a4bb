#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, then runs every check and test.
# Usage: scripts/test.sh            (CI calls exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."

# Root is needed (apt, loop devices): as another user, run again through sudo (keeping PATH
# and rustup's homes, so that the same cargo and toolchain are used).
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then
    exec sudo env "PATH=$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" \
        "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" bash "$0" "$@"
fi

log() { printf '\n==> %s\n' "$*"; }

# Retry apt (the dpkg lock can be held briefly on a fresh machine).
apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    for i in 1 2 3 4 5; do
        if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; then
            return 0
        fi
        sleep $((i * 3))
    done
    echo "apt-get install ${missing[*]} failed" >&2
    return 1
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # iproute2: `ip` for the log bundle; procps: ps; util-linux: losetup, partx, wipefs, blkid,
    # mkswap, lsblk; fdisk: sfdisk builds test images and cross-checks our tables; e2fsprogs and
    # dosfstools: mkfs for layouts and probes; gzip/zstd/xz-utils: compressed test images;
    # qemu-utils: qemu-img (kept if a newer one is installed); genisoimage: ISO probe tests.
    apt_install iproute2 procps util-linux fdisk e2fsprogs dosfstools gzip zstd xz-utils \
        qemu-utils genisoimage xfsprogs btrfs-progs ca-certificates stress-ng fio
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # QEMU 10 (system + user), OVMF/AAVMF, busybox-static, dnsmasq, musl targets, zig.
    log "ramdisk and VM test dependencies"
    bash scripts/install-ramdisk-deps.sh
fi

log "test oracles: IPA 13, Ironic 39 and hardware-detect in a virtual environment"
bash tests/oracle/setup.sh

log "toolchain (pinned in rust-toolchain.toml)"
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup component add rustfmt clippy >/dev/null 2>&1 || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "build binaries"
cargo build --workspace --bins --locked

log "shipped static build (x86_64 musl, profile small): static, runs, fits the size budget"
bash scripts/build-static.sh x86_64
log "static agents for the aarch64 and loongarch64 test ramdisks (profile ramdisk-test: no LTO)"
STATIC_PROFILE=ramdisk-test bash scripts/build-static.sh aarch64 loongarch64

log "ramdisks (x86_64, aarch64) for the QEMU tests"
for arch in x86_64 aarch64; do
    bash ramdisk-elements/build-initramfs.sh --arch "$arch" \
        --agent "target/static/$arch/ironic-agent" --out "target/ramdisk/$arch" \
        --plugin "target/static/$arch/firmware-manager"
done

log "test OS images (x86_64, aarch64) for the bootloader VM tests"
bash tests/images/build-test-os.sh --arch x86_64 \
    --agent target/static/x86_64/ironic-agent --out target/test-os/x86_64
bash tests/images/build-test-os.sh --arch aarch64 \
    --agent target/static/aarch64/ironic-agent --out target/test-os/aarch64 \
    --host-rootfs target/test-os/x86_64/rootfs
rm -rf target/vm-report

log "cargo test"
cargo test --workspace --locked -- --test-threads=4 2>&1 | tee target/test-output.txt

log "fuzz smoke (fuzz/smoke.sh: libFuzzer targets built on stable, corpora replayed, 20 s each)"
# libfuzzer-sys compiles libFuzzer itself: it needs a C++ compiler.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt_install g++; fi
bash fuzz/smoke.sh

log "sizes and VM timings"
bash scripts/ramdisk-report.sh
# Summary line for CI readers.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed\n", p, f }' target/test-output.txt
