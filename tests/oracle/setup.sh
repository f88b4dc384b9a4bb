#!/usr/bin/env bash
# Creates the virtual environment of the test oracles: IPA 13, Ironic 39 and the `hardware`
# package (hardware-detect), from PyPI through this machine's own pip configuration, plus the
# Debian tools they call (lshw, dmidecode, ethtool, smartctl, ipmitool, lspci/lsusb).
#
# Usage: tests/oracle/setup.sh [--venv DIR] [--index-url URL]
#   --venv DIR        where to create it (default: $ORACLE_VENV or target/oracle-venv)
#   --index-url URL   a PyPI index to use instead of pip's configured one
# The tests find the venv through $ORACLE_VENV or target/oracle-venv; they fail (never skip)
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="${ORACLE_VENV:-$PWD/target/oracle-venv}"
PIP_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) VENV="$2"; shift 2 ;;
        --index-url) PIP_ARGS+=(--index-url "$2"); shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done

# The pinned peers. Changing one is a deliberate act: the tests compare against them.
PEERS=(ironic-python-agent==13.0.0 ironic==39.0.0 hardware==0.33.0)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    for p in lshw dmidecode ethtool smartmontools ipmitool pciutils usbutils python3-venv; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        for i in 1 2 3 4 5; do
            if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; then
                break
            fi
            [ "$i" = 5 ] && { echo "apt-get install ${need[*]} failed" >&2; exit 1; }
            sleep $((i * 3))
        done
    fi
fi

stamp="$VENV/.peers"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${PEERS[*]}" ]; then
    echo "oracle venv up to date: $VENV"
    exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
for i in 1 2 3; do
    if "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_ARGS[@]}" "${PEERS[@]}"; then
        break
    fi
    [ "$i" = 3 ] && { echo "pip install ${PEERS[*]} failed" >&2; exit 1; }
    sleep $((i * 5))
done
"$VENV/bin/python" -W ignore -c '
import ironic_python_agent.config, ironic_python_agent.hardware
from ironic.drivers.modules.inspector.hooks import parse_lldp
import hardware'
test -x "$VENV/bin/hardware-detect"
echo "${PEERS[*]}" > "$stamp"
echo "oracle venv ready: $VENV"
