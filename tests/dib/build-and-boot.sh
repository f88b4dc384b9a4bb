#!/usr/bin/env bash
# Opt-in slow test (not run by scripts/test.sh or CI): builds a deploy ramdisk with the
# diskimage-builder element ramdisk-elements/ironic-agent, boots it in QEMU (TCG, no KVM) and
# checks that the agent inside looks its node up in conductor-shim, heartbeats, and answers a
# command the shim sends back through QEMU's port forward.
#
#   1. installs what is missing: sudo debootstrap qemu-utils squashfs-tools cpio (apt),
#      qemu-system-x86 (apt), diskimage-builder + ironic-python-agent-builder (pip);
#   2. disk-image-create debian-minimal ironic-ramdisk-base ironic-agent (DIB_RELEASE=bookworm);
#   3. conductor-shim serve on 127.0.0.1 with a node whose port is the VM NIC's MAC;
#   4. qemu-system-x86_64 -M q35 -m 2048 -kernel X.kernel -initrd X.initramfs, user networking:
#      the guest reaches the shim as 10.0.2.2, the shim reaches the agent through
#      hostfwd 127.0.0.1:AGENT_PORT -> guest :9999 (ipa-advertise-host=127.0.0.1);
#   5. waits (BOOT_TIMEOUT, 240 s) for the lookup and two heartbeats, runs
#      poll.get_hardware_info through the shim, prints build time, ramdisk size, time to the
#      first heartbeat; kills QEMU and the shim, removes its work directory.
#   Field cases: the VM boots with boot_method=vmedia and a CD-ROM labelled config-2 whose
#   etc/ironic-python-agent.d/field.conf sets advertise_port (copied and read as IPA does; the
#   heartbeat's agent_url proves it), and ipa-enable-vlan-interfaces=MAC.100 (ironic-agent-network
#   .service creates the VLAN; the inventory must list it).
# On failure it prints the serial console log and exits non-zero.
#
# Needs root (apt, and DIB's chroot/mount work through sudo), network access to the Debian
# mirror of this machine's apt sources, ~2.5 GiB free in /tmp, ~4 min to build and ~1-2 min to boot under TCG.
#
# Environment:
#   IRONIC_AGENT_BINARY  static agent (default target/static/x86_64/ironic-agent)
#   CONDUCTOR_SHIM       conductor-shim binary (default target/debug/conductor-shim)
#   RAMDISK=PREFIX       skip the build, boot PREFIX.kernel + PREFIX.initramfs
#   DIB_RELEASE          Debian release (default bookworm); any other DIB_* variable passes through
#   DIB_DISTRIBUTION_MIRROR, DIB_DEBIAN_SECURITY_MIRROR  default: this machine's apt sources
#   BOOT_TIMEOUT         seconds from QEMU start to the second heartbeat (default 240)
#   SHIM_PORT, AGENT_PORT  host ports on 127.0.0.1 (default: free ones)
#   KEEP_WORK=1          keep the work directory (ramdisk, logs) instead of removing it
#
# Usage: sudo tests/dib/build-and-boot.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

log() { printf '\n==> %s\n' "$*"; }
die() { echo "build-and-boot: $*" >&2; exit 1; }

mac=52:54:00:12:34:56
node=dib-vm
boot_timeout=${BOOT_TIMEOUT:-240}
agent_bin=${IRONIC_AGENT_BINARY:-$repo/target/static/x86_64/ironic-agent}
shim_bin=${CONDUCTOR_SHIM:-$repo/target/debug/conductor-shim}
export DIB_RELEASE=${DIB_RELEASE:-bookworm}
# The mirrors come from this machine's own apt sources (no host name is kept in the repository);
# DIB's built-in security source line is answered with HTTP 400, so it is always set.
# shellcheck source=../../ramdisk-elements/lib/apt-sources.sh
source "$repo/ramdisk-elements/lib/apt-sources.sh"
DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-$(host_debian_uri "$DIB_RELEASE" || true)}
DIB_DEBIAN_SECURITY_MIRROR=${DIB_DEBIAN_SECURITY_MIRROR:-$(host_debian_uri "$DIB_RELEASE-security" || true)}
[ -n "$DIB_DISTRIBUTION_MIRROR" ] || die "no apt source for $DIB_RELEASE here: set DIB_DISTRIBUTION_MIRROR"
[ -n "$DIB_DEBIAN_SECURITY_MIRROR" ] ||
    die "no apt source for $DIB_RELEASE-security here: set DIB_DEBIAN_SECURITY_MIRROR"
export DIB_DISTRIBUTION_MIRROR DIB_DEBIAN_SECURITY_MIRROR

[ "$(id -u)" = 0 ] || die "run as root (apt installs; diskimage-builder mounts and chroots through sudo)"
[ "$(uname -m)" = x86_64 ] || die "this test builds and boots an x86_64 ramdisk on an x86_64 host"

# ---------------------------------------------------------------------------------------------
log "dependencies"
apt_install() {
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "apt-get install ${missing[*]}"
    for i in 1 2 3 4 5; do
        if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"; then
            return 0
        fi
        sleep $((i * 3))
    done
    die "apt-get install ${missing[*]} failed"
}
# DIB needs sudo even as root; debootstrap builds the Debian tree; qemu-img and mksquashfs are
# called by DIB's block-device and image code. Keep an already installed (newer) qemu-utils.
apt_install sudo debootstrap qemu-utils squashfs-tools cpio gzip curl file genisoimage
command -v qemu-system-x86_64 >/dev/null || apt_install qemu-system-x86

# The ironic-ramdisk-base element ships as data files of the ironic-python-agent-builder wheel.
find_ipa_builder_elements() {
    python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, os
d = m.distribution("ironic-python-agent-builder")
for f in d.files or []:
    if str(f).endswith("ironic-ramdisk-base/element-deps"):
        print(os.path.dirname(os.path.dirname(os.path.realpath(d.locate_file(f)))))
        break
PY
}
ipab_elements=$(find_ipa_builder_elements || true)
if ! command -v disk-image-create >/dev/null || [ -z "$ipab_elements" ]; then
    echo "pip install diskimage-builder ironic-python-agent-builder"
    python3 -m pip install -q diskimage-builder ironic-python-agent-builder
    hash -r
    ipab_elements=$(find_ipa_builder_elements || true)
fi
command -v disk-image-create >/dev/null || die "disk-image-create not on PATH after pip install"
[ -d "$ipab_elements/ironic-ramdisk-base" ] || die "ironic-ramdisk-base element not found (ironic-python-agent-builder)"
echo "diskimage-builder $(python3 -m pip show diskimage-builder 2>/dev/null | awk '/^Version/ {print $2}'), elements from $ipab_elements"

[ -x "$shim_bin" ] || die "$shim_bin missing: cargo build -p conductor-shim (or set CONDUCTOR_SHIM)"

# ---------------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/ironic-agent-dib.XXXXXX)
qemu_pid="" shim_pid="" ok=0
cleanup() {
    local rc=$?
    [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
    [ -n "$shim_pid" ] && kill "$shim_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "$ok" != 1 ]; then
        if [ -s "$work/serial.log" ]; then
            echo "----- serial console (last 300 lines of $work/serial.log) -----" >&2
            tail -n 300 "$work/serial.log" | tr -d '\r' >&2
            echo "----- end of serial console -----" >&2
        fi
        if [ -s "$work/shim.log" ]; then
            echo "----- conductor-shim log (last 40 lines) -----" >&2
            tail -n 40 "$work/shim.log" >&2
        fi
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
    [ "$ok" = 1 ] || echo "build-and-boot: FAILED (rc=$rc)" >&2
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
shim_port=${SHIM_PORT:-$(free_port)}
agent_port=${AGENT_PORT:-$(free_port)}
[ "$shim_port" != "$agent_port" ] || agent_port=$(free_port)

# ---------------------------------------------------------------------------------------------
build_secs="-"
if [ -n "${RAMDISK:-}" ]; then
    prefix=$RAMDISK
    log "using the existing ramdisk $prefix.{kernel,initramfs} (no build)"
else
    [ -f "$agent_bin" ] || die "$agent_bin missing: build the static agent (or set IRONIC_AGENT_BINARY)"
    file -L "$agent_bin" | grep -Eq 'statically linked|static-pie linked' ||
        die "$agent_bin is not statically linked: $(file -L "$agent_bin")"
    prefix=$work/out/ironic-agent
    mkdir -p "$work/out"
    log "disk-image-create debian-minimal ironic-ramdisk-base ironic-agent (DIB_RELEASE=$DIB_RELEASE; log $work/build.log)"
    start=$(date +%s)
    if ! env ELEMENTS_PATH="$repo/ramdisk-elements:$ipab_elements" \
        IRONIC_AGENT_BINARY="$(readlink -f "$agent_bin")" \
        disk-image-create -o "$prefix" debian-minimal ironic-ramdisk-base ironic-agent \
        >"$work/build.log" 2>&1; then
        tail -n 60 "$work/build.log" >&2
        die "disk-image-create failed (see above)"
    fi
    build_secs=$(($(date +%s) - start))
    echo "built in ${build_secs} s"
fi
[ -f "$prefix.kernel" ] && [ -f "$prefix.initramfs" ] || die "$prefix.kernel / $prefix.initramfs missing"
initramfs_bytes=$(stat -c %s "$prefix.initramfs")
kernel_bytes=$(stat -c %s "$prefix.kernel")
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
ls -l "$prefix.kernel" "$prefix.initramfs"

# ---------------------------------------------------------------------------------------------
shim() { "$shim_bin" --db "$work/shim.sqlite" "$@"; }
log "conductor-shim serve on 127.0.0.1:$shim_port, node $node with port $mac"
# heartbeat_timeout 20: the agent heartbeats every 6-12 s, so a second heartbeat comes quickly.
"$shim_bin" --db "$work/shim.sqlite" serve --listen "127.0.0.1:$shim_port" --heartbeat-timeout 20 \
    >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$shim_port/" >/dev/null && break
    kill -0 "$shim_pid" 2>/dev/null || break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$shim_port/" >/dev/null || die "conductor-shim did not start"
# manageable + the shim's default fast-track: lookup and heartbeats allowed, nothing driven.
shim node create --name "$node" --mac "$mac" --state manageable >/dev/null

# ---------------------------------------------------------------------------------------------
# Field cases (issue 15): a virtual-media boot whose ISO (label config-2) carries an IPA
# configuration file with the advertise port (without it the agent advertises 9999, which the
# shim cannot reach), and a VLAN made by the agent from ipa-enable-vlan-interfaces (MAC.VLAN:
# the NIC's name depends on the distribution's naming scheme).
mkdir -p "$work/iso/etc/ironic-python-agent.d"
printf '[DEFAULT]\n# from the virtual-media ISO\nadvertise_port = %s\n' "$agent_port" \
    >"$work/iso/etc/ironic-python-agent.d/field.conf"
genisoimage -quiet -r -J -V config-2 -o "$work/config.iso" "$work/iso" ||
    die "genisoimage failed (apt-get install genisoimage)"
cmdline="console=ttyS0 boot_method=vmedia ipa-api-url=http://10.0.2.2:$shim_port ipa-insecure=1"
cmdline+=" ipa-advertise-host=127.0.0.1 ipa-enable-vlan-interfaces=$mac.100"
qemu-img create -q -f qcow2 "$work/disk0.qcow2" 10G
log "booting under TCG (no KVM): hostfwd 127.0.0.1:$agent_port -> guest :9999"
echo "kernel command line: $cmdline"
boot_start=$(date +%s.%N)
timeout $((boot_timeout + 120)) qemu-system-x86_64 -M q35 -m 2048 -smp 2 -nographic -no-reboot \
    -kernel "$prefix.kernel" -initrd "$prefix.initramfs" -append "$cmdline" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$agent_port-:9999" \
    -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -drive "if=none,id=d0,file=$work/disk0.qcow2,format=qcow2" -device virtio-blk-pci,drive=d0,serial=dib-disk0 \
    -drive "if=none,id=cd0,file=$work/config.iso,format=raw,media=cdrom,readonly=on" \
    -device ide-cd,drive=cd0,bus=ide.0 \
    </dev/null >"$work/serial.log" 2>&1 &
qemu_pid=$!

elapsed() { awk -v s="$boot_start" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'; }
# Prints "count url last" from the shim's view of the node.
node_state() {
    shim --json node show "$node" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin).get("driver_internal_info") or {}
print(d.get("agent_heartbeat_count") or 0, d.get("agent_url") or "-", d.get("agent_last_heartbeat") or "-")
' 2>/dev/null || echo "0 - -"
}

t_agent="" t_first="" t_second="" url=""
deadline=$(($(date +%s) + boot_timeout))
while :; do
    kill -0 "$qemu_pid" 2>/dev/null || die "QEMU exited after $(elapsed) s"
    if [ -z "$t_agent" ] && grep -aq 'ironic-agent starting\|ironic-agent listening' "$work/serial.log"; then
        t_agent=$(elapsed)
        echo "  ${t_agent} s: the agent is running in the guest"
    fi
    read -r count url last < <(node_state)
    if [ -z "$t_first" ] && [ "$count" -ge 1 ]; then
        t_first=$(elapsed)
        echo "  ${t_first} s: looked up, first heartbeat (agent_url $url)"
    fi
    if [ "$count" -ge 2 ]; then
        t_second=$(elapsed)
        echo "  ${t_second} s: heartbeat #$count at $last"
        break
    fi
    [ "$(date +%s)" -lt "$deadline" ] ||
        die "no ${t_first:+second }heartbeat within ${boot_timeout} s (heartbeats: $count)"
    sleep 1
done
case "$url" in
    https://127.0.0.1:$agent_port) ;;
    *) die "agent_url is $url, expected https://127.0.0.1:$agent_port (auto-TLS, advertise_port from the ISO's configuration file)" ;;
esac

log "conductor-shim agent $node poll.get_hardware_info (shim -> hostfwd -> agent, TLS)"
shim --json agent "$node" poll.get_hardware_info >"$work/hardware.json" 2>"$work/agent-cmd.err" ||
    { cat "$work/agent-cmd.err" >&2; die "poll.get_hardware_info through the shim failed"; }
python3 - "$work/hardware.json" <<'PY' || die "poll.get_hardware_info returned no usable inventory"
import json, sys
doc = json.load(open(sys.argv[1]))
def find(o, key):
    if isinstance(o, dict):
        if key in o:
            return o[key]
        for v in o.values():
            r = find(v, key)
            if r is not None:
                return r
    return None
cpu, mem = find(doc, "cpu") or {}, find(doc, "memory") or {}
ifaces, disks = find(doc, "interfaces") or [], find(doc, "disks") or []
print(f"  cpu: {cpu.get('model_name', '?')} x{cpu.get('count', '?')}; memory: {mem.get('physical_mb', '?')} MB")
print("  interfaces: " + ", ".join(f"{i.get('name')} {i.get('mac_address')} {i.get('ipv4_address')}" for i in ifaces))
print("  disks: " + ", ".join(f"{d.get('name')} {int(d.get('size', 0)) >> 30} GiB" for d in disks))
if not any(str(i.get("mac_address", "")).lower() == "52:54:00:12:34:56" for i in ifaces) or not disks:
    sys.exit("the inventory misses the VM's NIC or disk")
vlans = [i for i in ifaces if str(i.get("name", "")).endswith(".100")
         and str(i.get("mac_address", "")).lower() == "52:54:00:12:34:56"]
if not vlans:
    sys.exit("no VLAN 100 interface on the NIC (ipa-enable-vlan-interfaces=MAC.100)")
print(f"  VLAN from ipa-enable-vlan-interfaces: {vlans[0]['name']}")
PY

ok=1
log "PASS"
printf '  %-32s %s\n' \
    "build (disk-image-create)" "${build_secs} s" \
    "initramfs" "$(mib "$initramfs_bytes") ($initramfs_bytes bytes)" \
    "kernel" "$(mib "$kernel_bytes")" \
    "QEMU start -> agent running" "${t_agent:-?} s" \
    "QEMU start -> first heartbeat" "$t_first s" \
    "QEMU start -> second heartbeat" "$t_second s"
