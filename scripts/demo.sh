#!/usr/bin/env bash
# The main job: a deploy through the conductor shim, as an unmodified Ironic would drive it.
#   1. conductor-shim serves Ironic's ramdisk API and an image directory on 127.0.0.1;
#   2. ironic-agent (fake kernel command line) is inspected, looks its node up and heartbeats;
#   3. `conductor-shim deploy` streams a generated disk image onto a loop device (a sparse file
#      this script creates; the agent may write nothing else: --allow-device), with progress;
#   4. the script checks the disk against the image byte for byte, then cleans up.
# Needs root (loop devices). All traffic stays on 127.0.0.1.
# Usage: scripts/demo.sh [IMAGE_MIB]   (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
image_mib=${1:-256}
# Root is needed for the loop device: as another user, run again through sudo (keeping PATH
# and rustup's homes, so that the same cargo and toolchain are used).
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "run as root (the demo attaches a loop device)" >&2; exit 1; }
    exec sudo env "PATH=$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" \
        "CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}" bash "$0" "$@"
fi

# Release build: the image is streamed at the speed of this build (a debug build is several
# times slower). The first build compiles every dependency: several minutes on 2 cores.
echo "==> building the agent and the shim (release)"
cargo build --release --quiet --bins --locked
bin=target/release
work=$(mktemp -d /tmp/ironic-agent-demo.XXXXXX)
shim_port=${SHIM_PORT:-16385}
agent_port=${AGENT_PORT:-19999}
for p in $shim_port $agent_port; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
        echo "port $p on 127.0.0.1 is in use; set SHIM_PORT/AGENT_PORT" >&2
        exit 1
    fi
done
loop=""
cleanup() {
    kill "${agent_pid:-}" "${shim_pid:-}" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -n "$loop" ]; then partx -d "$loop" 2>/dev/null || true; losetup -d "$loop" || true; fi
    rm -f "$work/disk.img" "$work/images/disk.raw"
    echo "logs kept in $work"
}
trap cleanup EXIT
shim() { "$bin/conductor-shim" --db "$work/shim.sqlite" "$@"; }

echo "==> generating a ${image_mib} MiB whole-disk image (msdos table, one partition, data)"
mkdir -p "$work/images"
python3 - "$work/images/disk.raw" "$image_mib" <<'PY'
import hashlib, struct, sys
path, mib = sys.argv[1], int(sys.argv[2])
size = mib << 20
with open(path, "wb") as f:
    f.truncate(size)
    mbr = bytearray(512)
    mbr[440:444] = b"\xd3\x3d\x1c\x0a"                          # disk signature
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, size // 512 - 2048)
    mbr[510:512] = b"\x55\xaa"
    f.write(mbr)
    f.seek(1 << 20)
    block = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(16384))
    for _ in range(((size - (2 << 20)) * 3 // 4) // len(block)):
        f.write(block)
PY
sha=$(sha256sum "$work/images/disk.raw" | cut -d' ' -f1)

echo "==> attaching a loop device over a sparse 6 GiB file (the only device the agent may write)"
truncate -s 6G "$work/disk.img"
loop=$(losetup --find --show "$work/disk.img")
echo "    $loop"

echo "==> starting conductor-shim on 127.0.0.1:$shim_port (serving $work/images at /images)"
"$bin/conductor-shim" --db "$work/shim.sqlite" serve --listen 127.0.0.1:$shim_port \
    --heartbeat-timeout 10 --images "$work/images" >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$shim_port/" >/dev/null && break; sleep 0.1; done
kill -0 $shim_pid 2>/dev/null || { echo "conductor-shim failed to start:" >&2; cat "$work/shim.log" >&2; exit 1; }

# The node is found by the MACs of this machine's physical NICs (read-only).
macs=()
for d in /sys/class/net/*; do
    [ -e "$d/device" ] && macs+=(--mac "$(cat "$d/address")")
done
echo "==> enrolling node 'demo' (ports: ${macs[*]:-none}), waiting for inspection"
shim node create --name demo --state "inspect wait" "${macs[@]}" >/dev/null

echo "ipa-api-url=http://127.0.0.1:$shim_port ipa-inspection-callback-url=http://127.0.0.1:$shim_port/v1/continue_inspection ipa-inspection-dhcp-wait-timeout=5" >"$work/cmdline"
echo "==> starting ironic-agent (kernel command line: $(cat "$work/cmdline"))"
mkdir -p "$work/plugins"
"$bin/ironic-agent" --cmdline "$work/cmdline" --listen 127.0.0.1:$agent_port --advertise-host 127.0.0.1 \
    --allow-device "$loop" --hardware-managers-dir "$work/plugins" --power "record:$work/power" \
    >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 300); do
    shim --json node show demo | grep -q '"agent_url"' && break
    sleep 0.1
done
echo
shim node list
echo
echo "==> conductor-shim deploy demo (progress on stderr)"
shim deploy demo --image "http://127.0.0.1:$shim_port/images/disk.raw" --checksum "sha256:$sha" \
    --root-hint "name=$loop" --timeout 600
echo
shim node show demo | grep -E "provision_state|power_state|agent_url|last heartbeat|root uuid|deploy|inventory" || true
echo
echo "==> checking $loop against the image"
if cmp -n $((image_mib << 20)) "$work/images/disk.raw" "$loop"; then
    echo "    the disk matches the image byte for byte"
else
    echo "    MISMATCH" >&2; exit 1
fi
# standby.power_off is asynchronous: give the agent a moment to carry it out.
for _ in $(seq 50); do [ -s "$work/power" ] && break; sleep 0.1; done
echo "==> power actions the agent was asked for: $(cat "$work/power" 2>/dev/null || echo none)"
