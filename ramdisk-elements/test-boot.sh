#!/usr/bin/env bash
# test-boot.sh: boots a ramdisk made by build-initramfs.sh in QEMU (TCG) and checks, on the
# serial console log, that it works: modules load, DHCPv4 gives 10.0.2.15, an IPv6 SLAAC address
# appears, the virtio and NVMe disks exist, the agent starts, and `poweroff` ends the VM.
#
#   test-boot.sh --arch x86_64|aarch64 --dir DIR [--shim PATH] [--uefi] [--timeout SECONDS]
#                [--append "MORE KERNEL PARAMS"] [--log FILE]
#                [--shell-cmd "COMMAND"]... [--expect REGEX]...
#
# --shell-cmd commands are typed into the debug shell (ironic_agent.debug_shell=1) once the agent
# has started, before the power-off; their output lands in the serial log, where each --expect
# regular expression must then be found.
#
# Without --shim, the test types /usr/sbin/poweroff into the debug shell once the agent has
# started. With --shim PATH (a conductor-shim binary), it serves the Ironic API on 127.0.0.1,
# waits until the agent has looked its node up and heartbeated, then asks the agent for
# standby.power_off, the way Ironic powers a node off through the agent.
# Exit status 0 when every check passed.
set -euo pipefail

PROG=test-boot.sh
die() {
    echo "$PROG: error: $*" >&2
    exit 2
}

ARCH=
DIR=
SHIM=
UEFI=0
TIMEOUT=180
APPEND=
LOG=
SHELL_CMDS=()
EXPECTS=()
while [ $# -gt 0 ]; do
    case $1 in
        --arch) ARCH=${2:?}; shift 2 ;;
        --dir) DIR=${2:?}; shift 2 ;;
        --shim) SHIM=${2:?}; shift 2 ;;
        --uefi) UEFI=1; shift ;;
        --timeout) TIMEOUT=${2:?}; shift 2 ;;
        --append) APPEND=${2:?}; shift 2 ;;
        --log) LOG=${2:?}; shift 2 ;;
        --shell-cmd) SHELL_CMDS+=("${2:?}"); shift 2 ;;
        --expect) EXPECTS+=("${2:?}"); shift 2 ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[ -n "$ARCH" ] && [ -n "$DIR" ] || die "usage: $PROG --arch x86_64|aarch64 --dir DIR [--shim PATH]"
[ -f "$DIR/vmlinuz" ] && [ -f "$DIR/initramfs.img" ] || die "$DIR has no vmlinuz and initramfs.img"
[ -z "$SHIM" ] || [ -x "$SHIM" ] || die "conductor-shim not executable: $SHIM"

W=$(mktemp -d "${TMPDIR:-/tmp}/ironic-agent-boot.XXXXXX")
LOG=${LOG:-$W/serial.log}
QEMU_PID=
SHIM_PID=
CAT_PID=
cleanup() {
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
    [ -n "$SHIM_PID" ] && kill "$SHIM_PID" 2>/dev/null || true
    [ -n "$CAT_PID" ] && kill "$CAT_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -f "$W/vda.raw" "$W/nvme.raw" "$W/serial.in" "$W/serial.out"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AGENT_PORT=$(free_port)
MAC=52:54:00:12:34:56

# Kernel parameters: the console, IPA's (with the agent reachable from the host through the
# hostfwd below), the disks the agent may write, and the debug shell the test types into.
CMDLINE="ipa-advertise-host=127.0.0.1 ipa-advertise-port=$AGENT_PORT"
CMDLINE="$CMDLINE ironic_agent.allow_device=/dev/vda,/dev/nvme0n1 ironic_agent.debug_shell=1"
if [ -n "$SHIM" ]; then
    SHIM_PORT=$(free_port)
    CMDLINE="$CMDLINE ipa-api-url=http://10.0.2.2:$SHIM_PORT"
    shim() { "$SHIM" --db "$W/shim.sqlite" "$@"; }
    shim serve --listen "127.0.0.1:$SHIM_PORT" --heartbeat-timeout 30 >"$W/shim.log" 2>&1 &
    SHIM_PID=$!
    # The node is created once the shim answers (both open the same database).
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$SHIM_PORT") 2>/dev/null && break
        kill -0 "$SHIM_PID" 2>/dev/null || { cat "$W/shim.log" >&2; die "conductor-shim exited"; }
        sleep 0.1
    done
    shim node create --name bootcheck --state manageable --mac "$MAC" >"$W/node.out" 2>&1 ||
        { cat "$W/node.out" "$W/shim.log" >&2; die "conductor-shim node create failed"; }
else
    CMDLINE="$CMDLINE ipa-api-url=http://10.0.2.2:9"
fi
[ -n "$APPEND" ] && CMDLINE="$CMDLINE $APPEND"

truncate -s 1G "$W/vda.raw"
truncate -s 512M "$W/nvme.raw"
COMMON=(
    -m 1024 -nographic -no-reboot
    -kernel "$DIR/vmlinuz" -initrd "$DIR/initramfs.img"
    -netdev "user,id=n0,ipv4=on,ipv6=on,hostfwd=tcp:127.0.0.1:$AGENT_PORT-:9999"
    -device "virtio-net-pci,netdev=n0,mac=$MAC,romfile="
    -drive "file=$W/vda.raw,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0
    -drive "file=$W/nvme.raw,if=none,id=d1,format=raw" -device nvme,serial=bootcheck0,drive=d1
    -chardev "pipe,id=s0,path=$W/serial" -serial chardev:s0 -monitor none
)
case $ARCH in
    x86_64)
        QEMU=(qemu-system-x86_64 -M q35 "${COMMON[@]}")
        CMDLINE="console=ttyS0 $CMDLINE"
        if [ $UEFI = 1 ]; then
            cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
            QEMU+=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
                -drive "if=pflash,format=raw,file=$W/vars.fd")
        fi
        ;;
    aarch64)
        QEMU=(qemu-system-aarch64 -M virt -cpu cortex-a57 "${COMMON[@]}")
        CMDLINE="console=ttyAMA0 $CMDLINE"
        if [ $UEFI = 1 ]; then
            cp /usr/share/AAVMF/AAVMF_VARS.fd "$W/vars.fd"
            QEMU+=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd
                -drive "if=pflash,format=raw,file=$W/vars.fd")
        fi
        ;;
    *) die "unsupported --arch $ARCH" ;;
esac

mkfifo "$W/serial.in" "$W/serial.out"
: >"$LOG"
echo "$PROG: booting $ARCH ($DIR), serial log $LOG"
echo "$PROG: kernel parameters: $CMDLINE"
START=$(date +%s.%N)
timeout "$TIMEOUT" "${QEMU[@]}" -append "$CMDLINE" >"$W/qemu.out" 2>&1 &
QEMU_PID=$!
cat "$W/serial.out" >>"$LOG" &
CAT_PID=$!
exec 3>"$W/serial.in"

elapsed() { awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
# wait_for REGEX SECONDS: waits until the serial log matches (or QEMU ended).
wait_for() {
    for _ in $(seq $(($2 * 5))); do
        grep -aqE "$1" "$LOG" && return 0
        kill -0 "$QEMU_PID" 2>/dev/null || { grep -aqE "$1" "$LOG"; return; }
        sleep 0.2
    done
    return 1
}

AGENT_T=
if wait_for 'ironic-agent-init: starting /usr/bin/ironic-agent' "$TIMEOUT"; then
    AGENT_T=$(elapsed)
    echo "$PROG: agent started $AGENT_T s after QEMU started"
fi
HEARTBEAT=
if [ -n "$AGENT_T" ]; then
    # Give SLAAC and late log lines a moment.
    wait_for 'ironic-agent-init: IPv6 addresses' 30 || true
    if [ ${#SHELL_CMDS[@]} -gt 0 ]; then
        printf '\n' >&3
        sleep 1
        for c in "${SHELL_CMDS[@]}"; do printf '%s\n' "$c" >&3; done
        printf 'echo TEST-SHELL-""DONE\n' >&3
        wait_for '^TEST-SHELL-DONE' "$TIMEOUT" || echo "$PROG: the shell commands did not finish"
    fi
    if [ -n "$SHIM" ]; then
        for _ in $(seq 150); do
            if shim --json node show bootcheck 2>/dev/null | grep -q '"agent_url": *"http'; then
                HEARTBEAT=$(elapsed)
                break
            fi
            sleep 0.4
        done
        if [ -n "$HEARTBEAT" ]; then
            echo "$PROG: agent looked up and heartbeated $HEARTBEAT s after QEMU started"
            shim agent bootcheck standby.power_off >"$W/power_off.out" 2>&1 || true
        fi
    else
        sleep 2
        printf '\n/usr/sbin/poweroff\n' >&3
    fi
fi
# The VM must now power itself off.
POWEROFF=
for _ in $(seq 300); do
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 0.2
done
if ! kill -0 "$QEMU_PID" 2>/dev/null; then
    rc=0
    wait "$QEMU_PID" || rc=$?
    QEMU_PID=
    [ $rc = 0 ] && POWEROFF=$(elapsed)
fi
sleep 0.5

fails=0
check() { # check NAME REGEX
    if grep -aqE "$2" "$LOG"; then
        echo "  PASS  $1"
    else
        echo "  FAIL  $1 (no /$2/ in the serial log)"
        fails=$((fails + 1))
    fi
}
echo "$PROG: results"
check "modules loaded" 'ironic-agent-init: loaded [0-9]+ modules from /etc/ironic-agent/modules.?$'
check "DHCPv4 address 10.0.2.15" 'udhcpc: eth0: bound: 10\.0\.2\.15/24'
check "IPv6 SLAAC address" 'IPv6 addresses: eth0: fec0::5054:ff:fe12:3456/64'
check "virtio disk /dev/vda" 'block devices: .*\bvda\b'
check "NVMe disk /dev/nvme0n1" 'block devices: .*\bnvme0n1\b'
check "agent started" 'ironic-agent-init: starting /usr/bin/ironic-agent'
check "agent running" 'ironic-agent starting|fake-agent'
if [ $UEFI = 1 ]; then check "UEFI: efivarfs" 'UEFI boot: efivarfs mounted'; fi
if [ -n "$SHIM" ]; then
    if [ -n "$HEARTBEAT" ]; then
        echo "  PASS  lookup + heartbeat through conductor-shim"
    else
        echo "  FAIL  no heartbeat at conductor-shim (log: $W/shim.log)"
        fails=$((fails + 1))
    fi
fi
for e in "${EXPECTS[@]}"; do check "expected: $e" "$e"; done
check "poweroff requested" 'ironic-agent-init: poweroff requested'
if [ -n "$POWEROFF" ]; then
    echo "  PASS  the VM powered off (QEMU exited $POWEROFF s after it started)"
else
    echo "  FAIL  the VM did not power off"
    fails=$((fails + 1))
fi
uptime_line=$(grep -aoE 'starting /usr/bin/ironic-agent.*\(uptime [0-9.]+ s\)' "$LOG" | head -1 |
    sed -n 's/.*uptime \([0-9.]*\) s.*/\1/p')
echo "$PROG: timings: agent started at guest uptime ${uptime_line:-?} s, ${AGENT_T:-?} s after QEMU started${HEARTBEAT:+, first heartbeat after $HEARTBEAT s}"
if [ $fails -gt 0 ]; then
    echo "$PROG: $fails check(s) failed; serial log: $LOG; work dir: $W"
    trap - EXIT
    cleanup
    exit 1
fi
echo "$PROG: all checks passed"
# The work directory (disks, shim database and log, and the serial log unless --log) is only
# kept when a check failed.
cleanup
trap - EXIT
rm -rf "$W"
