#!/usr/bin/env python3
"""Benchmark: the overwrite fallback of erase_devices, as ratios against the tools IPA uses, run
in the same invocation on the same loop device.

Baselines:  dd if=/dev/zero of=LOOP bs=4M oflag=direct conv=fsync (one zero pass)
            shred --force --zero --iterations 1 LOOP             (IPA's command: random + zeros)
Ours:       clean.execute_clean_step erase_devices through the real agent API, with
            driver_internal_info agent_erase_devices_iterations 0 / 1 and zeroize true
            (a loop device has no NVMe or ATA secure erase, so the overwrite runs)

Needs root (loop devices), dd, shred, losetup. Writes only to a loop device over a file it creates
in --workdir (the agent is started with --allow-device LOOP: every other disk is refused by the
disk guard), and detaches it. Nothing here is a test: it prints a table.

Usage: agent/bench/erase.py [--size-mib 1024] [--workdir /var/tmp/ia-bench-erase]
(build first: cargo build --release -p ironic-agent)
"""
import argparse
import os
import shutil
import subprocess
import sys

from benchlib import ROOT, agent_command, timed


def agent_erase(agent_bin, loop, iterations, workdir):
    """erase_devices through the agent's API; returns the seconds the command took."""
    node = {"uuid": "bench", "driver_internal_info": {
        "agent_erase_devices_iterations": iterations,
        "agent_erase_devices_zeroize": True,
        "agent_enable_ata_secure_erase": False,
        "agent_enable_nvme_secure_erase": False}}
    step = {"step": "erase_devices", "interface": "deploy", "priority": 10,
            "reboot_requested": False, "abortable": True}
    elapsed, result, _ = agent_command(agent_bin, loop, workdir, "clean.execute_clean_step",
                                       {"step": step, "node": node, "ports": []})
    erased = result["clean_result"]
    if loop not in erased:
        raise RuntimeError(f"{loop} was not erased: {erased}")
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--workdir", default="/var/tmp/ia-bench-erase")
    args = ap.parse_args()
    for tool in ["dd", "shred", "losetup", "fallocate"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is required")
    agent_bin = os.path.join(ROOT, "target/release/ironic-agent")
    if not os.path.exists(agent_bin):
        sys.exit(f"{agent_bin} missing: cargo build --release -p ironic-agent")
    wd = args.workdir
    os.makedirs(wd, exist_ok=True)
    disk = os.path.join(wd, "disk.img")
    # Allocated up front, so that no case pays for the file system's block allocation.
    subprocess.run(["fallocate", "-l", str(args.size_mib << 20), disk], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", disk], check=True, capture_output=True,
                          text=True).stdout.strip()
    size = args.size_mib << 20
    rows = []
    try:
        mb = lambda t, passes: size * passes / t / 1e6
        # Warm-up: the first write to the loop device pays for things no case should.
        timed(f"dd if=/dev/zero of={loop} bs=4M count={size >> 22} oflag=direct status=none")
        dd = timed(f"dd if=/dev/zero of={loop} bs=4M count={size >> 22} oflag=direct conv=fsync status=none")
        ours0 = agent_erase(agent_bin, loop, 0, wd)
        shred = timed(f"shred --force --zero --iterations 1 {loop}")
        ours1 = agent_erase(agent_bin, loop, 1, wd)
        rows.append(("baseline: dd zeros (O_DIRECT)", mb(dd, 1), None))
        rows.append(("ours: erase_devices, zeros only", mb(ours0, 1), dd / ours0))
        rows.append(("baseline: shred -n 1 -z (IPA)", mb(shred, 2), None))
        rows.append(("ours: erase_devices, 1 random pass + zeros", mb(ours1, 2), shred / ours1))
    finally:
        subprocess.run(["losetup", "-d", loop])
        os.unlink(disk)
    print(f"device: loop over a {args.size_mib} MiB file; MB/s = 10^6 bytes written per second "
          f"(all passes)")
    print(f"{'case':45} {'MB/s':>9} {'ratio':>7}")
    for name, rate, ratio in rows:
        r = f"{ratio:7.2f}" if ratio is not None else ""
        print(f"{name:45} {rate:9.1f} {r}")
    print("ratio = baseline time / our time (above 1: we are faster)")


if __name__ == "__main__":
    main()
