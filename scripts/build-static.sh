#!/usr/bin/env bash
# Static release builds of ironic-agent for the ramdisks: musl, `small` profile, linked by zig.
#
#   scripts/build-static.sh [x86_64|aarch64|loongarch64 ...]     (default: all three)
#
# Results: target/static/<arch>/ironic-agent, and for x86_64 and aarch64 also
# target/static/<arch>/firmware-manager (the example hardware-manager plug-in of
# hardware-managers/examples/firmware-manager, for build-initramfs.sh --plugin). Each binary is
# checked to be static (no program interpreter, no NEEDED entries) and to run (`--version`, or
# one plug-in protocol call, natively or under qemu-*-static); a size table is printed at the end. Needs what scripts/install-ramdisk-deps.sh installs:
# the musl rust targets, rust-src, zig (python3 -m ziglang), cargo-zigbuild, qemu-user-static.
#
# One mechanism for every target: `cargo zigbuild` (zig is the linker and the C compiler for
# ring, zstd-sys and liblzma-sys). loongarch64 has no prebuilt std, so std is built from
# rust-src (`-Zbuild-std=std,panic_unwind` with RUSTC_BOOTSTRAP=1); the `small` profile keeps
# unwinding, and zig supplies libunwind for every musl target. The default loongarch64 build
# uses LSX (as rustc and zig do by default, and as real LoongArch servers have): under
# emulation it needs qemu-loongarch64-static 8 or later (Debian 12's 7.2 dies with SIGILL).
#
# Environment:
#   STATIC_TARGET_DIR    where cargo builds (default target/static-build, so the host's
#                        debug/release cache is never touched); loongarch64 builds in its own
#                        subdirectory: RUSTC_BOOTSTRAP=1 is tracked by build scripts
#                        (proc-macro2), so sharing host artifacts with the other targets would
#                        rebuild everything on every run
#   STATIC_PROFILE       cargo profile (default `small`, the shipped one; the test ramdisks'
#                        aarch64 and loongarch64 agents use `ramdisk-test`: the same code built
#                        without LTO, several times faster to compile)
#   MAX_MB               size budget per binary in MB (default 12); exceeding it fails
#   SKIP_RUN=1           do not run `--version` on the results
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

die() { printf 'build-static.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '\n==> %s\n' "$*"; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64 loongarch64)
for a in "${arches[@]}"; do
    case "$a" in
        x86_64 | aarch64 | loongarch64) ;;
        *) die "unknown architecture '$a' (x86_64, aarch64 or loongarch64)" ;;
    esac
done

base_dir=${STATIC_TARGET_DIR:-$root/target/static-build}
profile=${STATIC_PROFILE:-small}
max_mb=${MAX_MB:-12}
hint="run scripts/install-ramdisk-deps.sh (as root)"
command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild not found; $hint"
command -v readelf >/dev/null || die "readelf not found (binutils); $hint"
# cargo-zigbuild finds zig on PATH or as the ziglang Python package.
command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1 ||
    die "zig not found (neither \`zig\` nor \`python3 -m ziglang\`); $hint"
installed=$(rustup target list --installed)

# The right machine, and static: no PT_INTERP program header, no dynamic NEEDED entries.
check_static() {
    local bin=$1 machine=$2 out
    out=$(readelf -hW "$bin" 2>&1) || die "$bin is not an ELF file: $out"
    grep -q "Machine: *$machine" <<<"$out" || die "$bin is not a $machine binary: $out"
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        die "$bin has a program interpreter (PT_INTERP): it is not static"
    fi
    out=$(readelf -dW "$bin")
    if grep -q '(NEEDED)' <<<"$out"; then
        die "$bin needs shared libraries: $(grep '(NEEDED)' <<<"$out" | tr -s ' ')"
    fi
}

declare -A secs
for arch in "${arches[@]}"; do
    triple=$arch-unknown-linux-musl
    case "$arch" in
        x86_64) machine="Advanced Micro Devices X86-64" ;;
        aarch64) machine=AArch64 ;;
        loongarch64) machine=LoongArch ;;
    esac
    args=(zigbuild --locked --profile "$profile" -p ironic-agent --bin ironic-agent --target "$triple")
    env=()
    if [ "$arch" = loongarch64 ]; then
        rustc_src="$(rustc --print sysroot)/lib/rustlib/src/rust/library"
        [ -d "$rustc_src" ] || die "rust-src is missing (needed to build std for loongarch64); $hint"
        args+=(-Zbuild-std=std,panic_unwind)
        env+=(RUSTC_BOOTSTRAP=1)
        export CARGO_TARGET_DIR=$base_dir/build-std
    else
        export CARGO_TARGET_DIR=$base_dir/prebuilt-std
        grep -qx "$triple" <<<"$installed" || die "rust target $triple is not installed; $hint"
    fi
    log "building ironic-agent for $triple"
    start=$(date +%s)
    env "${env[@]}" cargo "${args[@]}"
    secs[$arch]=$(($(date +%s) - start))
    mkdir -p "target/static/$arch"
    # Copy, then rename: a test may be running the previous binary.
    cp -p "$CARGO_TARGET_DIR/$triple/$profile/ironic-agent" "target/static/$arch/.ironic-agent.new"
    mv -f "target/static/$arch/.ironic-agent.new" "target/static/$arch/ironic-agent"
    check_static "target/static/$arch/ironic-agent" "$machine"
    echo "    target/static/$arch/ironic-agent: static, profile $profile, built in ${secs[$arch]} s"
    # The example plug-in (not for loongarch64: no ramdisk is built for it).
    if [ "$arch" != loongarch64 ]; then
        log "building the firmware-manager example plug-in for $triple"
        cargo zigbuild --locked --profile "$profile" -p hardware-managers --example firmware-manager \
            --target "$triple"
        cp -p "$CARGO_TARGET_DIR/$triple/$profile/examples/firmware-manager" \
            "target/static/$arch/.firmware-manager.new"
        mv -f "target/static/$arch/.firmware-manager.new" "target/static/$arch/firmware-manager"
        check_static "target/static/$arch/firmware-manager" "$machine"
        echo "    target/static/$arch/firmware-manager: static"
    fi
done

if [ "${SKIP_RUN:-0}" != 1 ]; then
    log "running each binary (--version)"
    for arch in "${arches[@]}"; do
        bin=target/static/$arch/ironic-agent
        case "$arch" in
            "$(uname -m)") runner=() ;;
            *)
                runner=("qemu-$arch-static")
                command -v "${runner[0]}" >/dev/null || die "${runner[0]} not found; $hint"
                ;;
        esac
        out=$("${runner[@]}" "$bin" --version 2>&1) || die "$bin --version failed: $out"
        printf '    %-12s %s\n' "$arch" "$out"
        plugin=target/static/$arch/firmware-manager
        if [ -x "$plugin" ]; then
            out=$(echo '{"method": "version", "args": {}}' |
                IRONIC_AGENT_METHOD=version "${runner[@]}" "$plugin" 2>&1) ||
                die "$plugin (method version) failed: $out"
            grep -q '"class_name":"FirmwareHardwareManager"' <<<"$out" ||
                die "$plugin answered the version call with: $out"
            printf '    %-12s %s\n' "$arch" "firmware-manager: $out"
        fi
    done
fi

log "sizes (profile $profile, budget ${max_mb} MB)"
printf '%-12s %12s %8s %8s %8s  %s\n' arch bytes MB MiB build-s file
over=0
for arch in "${arches[@]}"; do
    for bin in "target/static/$arch/ironic-agent" "target/static/$arch/firmware-manager"; do
        [ -f "$bin" ] || continue
        bytes=$(stat -c %s "$bin")
        mb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1000000 }')
        mib=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')
        built=${secs[$arch]:--}
        [ "${bin##*/}" = ironic-agent ] || built=-
        printf '%-12s %12d %8s %8s %8s  %s\n' "$arch" "$bytes" "$mb" "$mib" "$built" "$bin"
        [ "$bytes" -le $((max_mb * 1000000)) ] || over=1
    done
done
[ "$over" = 0 ] || die "a binary exceeds ${max_mb} MB"
