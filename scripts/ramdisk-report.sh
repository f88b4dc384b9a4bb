#!/usr/bin/env bash
# Reports what issue 4 measures: static binary sizes (and that they are static), kernel and
# initramfs sizes per architecture, and, from the QEMU tests, the time from QEMU start to the
# first heartbeat on the shim (plus inspection and deploy times).
#
# Usage: scripts/ramdisk-report.sh [--run]
#   --run   run the VM tests first (cargo test -p e2e-tests --test vm), else report the timings
#           the last run wrote to target/vm-report/.
# Needs: scripts/build-static.sh and ramdisk-elements/build-initramfs.sh to have been run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--run" ]; then
    cargo test -q -p e2e-tests --test vm --locked -- --test-threads=1
fi

mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1000000 }'; }

echo "Static agent binaries (profile small):"
printf '  %-12s %12s %10s  %s\n' arch bytes size linkage
for arch in x86_64 aarch64 loongarch64; do
    f=target/static/$arch/ironic-agent
    if [ -f "$f" ]; then
        if readelf -lW "$f" | grep -q 'Requesting program interpreter' || readelf -dW "$f" | grep -q NEEDED; then
            link="DYNAMIC (bad)"
        else
            link="static ($(file -b "$f" | cut -d, -f1-2))"
        fi
        sz=$(stat -c %s "$f")
        printf '  %-12s %12d %10s  %s\n' "$arch" "$sz" "$(mb "$sz")" "$link"
    else
        printf '  %-12s %12s\n' "$arch" "missing (scripts/build-static.sh $arch)"
    fi
done

echo
echo "Ramdisks (ramdisk-elements/build-initramfs.sh):"
printf '  %-10s %12s %16s %18s\n' arch kernel initramfs initramfs-unpacked
for arch in x86_64 aarch64; do
    d=target/ramdisk/$arch
    if [ -f "$d/initramfs.img" ]; then
        k=$(stat -c %s "$d/vmlinuz")
        i=$(stat -c %s "$d/initramfs.img")
        u=$( (zstd -dcq "$d/initramfs.img" 2>/dev/null || xz -dcq "$d/initramfs.img" 2>/dev/null ||
            gzip -dcq "$d/initramfs.img" 2>/dev/null) | wc -c)
        printf '  %-10s %12s %16s %18s\n' "$arch" "$(mb "$k")" "$(mb "$i")" "$(mb "$u")"
    else
        printf '  %-10s %s\n' "$arch" "missing"
    fi
done

echo
echo "QEMU (TCG) timings, seconds from QEMU start:"
printf '  %-24s %10s %16s %10s\n' test inspection first-heartbeat deploy
shopt -s nullglob
found=0
for f in target/vm-report/*.json; do
    found=1
    python3 - "$f" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def secs(key):
    return "-" if r.get(key) is None else "%.1f" % r[key]
main = ("inspection_s", "first_heartbeat_s", "deploy_s")
print("  %-24s %10s %16s %10s" % (r.get("test", "?"), secs(main[0]), secs(main[1]), secs(main[2])))
# Per-step timings of tests that report more (cleaning, RAID).
extra = [k for k in r if k.endswith("_s") and k not in main]
if extra:
    print("    " + ", ".join("%s %s" % (k[:-2], secs(k)) for k in extra))
PY
done
[ $found = 1 ] || echo "  (no VM test has run: scripts/ramdisk-report.sh --run)"
