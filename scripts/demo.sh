#!/usr/bin/env bash
# The main job: start the conductor shim and an agent against it on loopback, and show the node
# inspected and heartbeating. Nothing is written to any disk; all traffic stays on 127.0.0.1.
# Usage: scripts/demo.sh [SECONDS_TO_WATCH]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
watch_for=${1:-15}

cargo build --quiet --bins --locked
bin=target/debug
work=$(mktemp -d /tmp/ironic-agent-demo.XXXXXX)
shim_port=${SHIM_PORT:-16385}
agent_port=${AGENT_PORT:-19999}
for p in $shim_port $agent_port; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
        echo "port $p on 127.0.0.1 is in use; set SHIM_PORT/AGENT_PORT" >&2
        exit 1
    fi
done
cleanup() {
    kill "${agent_pid:-}" "${shim_pid:-}" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "logs kept in $work"
}
trap cleanup EXIT

shim() { "$bin/conductor-shim" --db "$work/shim.sqlite" "$@"; }

echo "==> starting conductor-shim on 127.0.0.1:$shim_port"
"$bin/conductor-shim" --db "$work/shim.sqlite" serve --listen 127.0.0.1:$shim_port --heartbeat-timeout 10 \
    >"$work/shim.log" 2>&1 &
shim_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$shim_port/" >/dev/null && break; sleep 0.1; done
kill -0 $shim_pid 2>/dev/null || { echo "conductor-shim failed to start:" >&2; cat "$work/shim.log" >&2; exit 1; }

# The node is found by the MACs of this machine's physical NICs (read-only).
macs=()
for d in /sys/class/net/*; do
    [ -e "$d/device" ] && macs+=(--mac "$(cat "$d/address")")
done
echo "==> enrolling node 'demo' (ports: ${macs[*]:-none}), waiting for inspection"
shim node create --name demo --state "inspect wait" "${macs[@]}"

echo "ipa-api-url=http://127.0.0.1:$shim_port ipa-inspection-callback-url=http://127.0.0.1:$shim_port/v1/continue_inspection ipa-inspection-dhcp-wait-timeout=5" >"$work/cmdline"
echo "==> starting ironic-agent (fake kernel command line: $(cat "$work/cmdline"))"
mkdir -p "$work/plugins"
"$bin/ironic-agent" --cmdline "$work/cmdline" --listen 127.0.0.1:$agent_port --advertise-host 127.0.0.1 \
    --hardware-managers-dir "$work/plugins" --power "record:$work/power" >"$work/agent.log" 2>&1 &
agent_pid=$!

sleep "$watch_for"
echo
echo "==> conductor-shim node list"
shim node list
echo
echo "==> conductor-shim node show demo"
shim node show demo
echo
echo "==> conductor-shim agent demo poll.get_hardware_info (over the agent's HTTPS API)"
shim --json agent demo poll.get_hardware_info --wait | head -c 1200; echo
