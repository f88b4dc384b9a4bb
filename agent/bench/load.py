#!/usr/bin/env python3
"""Benchmark: image streaming throughput while the API is under load, as a ratio against the
same write with an idle API, both run in this invocation on the same loop device.

Floor:    dd if=FILE of=LOOP bs=4M oflag=direct
Alone:    standby.prepare_image (raw, sha256) through the real agent API
Loaded:   the same while agent-loadgen keeps waves of --concurrency (default 1,000) concurrent
          status/commands requests in flight for the whole write (all connected, then sent)

Prints MB/s, the loaded/alone ratio, the number of requests and errors, and per-wave latency.
Needs root (loop devices). Writes only to a loop device over a file it creates in --workdir,
and detaches it. Nothing here is a test.

Usage: agent/bench/load.py [--size-mib 1024] [--concurrency 1000] [--workdir /var/tmp/ia-bench-load]
(build first: cargo build --release -p ironic-agent -p conductor-shim -p e2e-tests --bins)
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

from benchlib import ROOT, TOKEN, agent_command, loop_and_shim, sh, timed, wait_http


def make_image(path, size_mib):
    """Random data behind an msdos table (a whole-disk image needs partitions)."""
    sh(f"dd if=/dev/urandom of={path} bs=1M count={size_mib} status=none")
    sh(f"printf 'label: dos\\n,,L\\n' | sfdisk -q {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--workdir", default="/var/tmp/ia-bench-load")
    args = ap.parse_args()
    rel = os.path.join(ROOT, "target/release")
    agent_bin, shim_bin, loadgen = (os.path.join(rel, b) for b in
                                    ("ironic-agent", "conductor-shim", "agent-loadgen"))
    for b in (agent_bin, shim_bin, loadgen):
        if not os.path.exists(b):
            sys.exit(f"{b} missing: cargo build --release -p ironic-agent -p conductor-shim -p e2e-tests --bins")
    wd = args.workdir
    images = os.path.join(wd, "images")
    os.makedirs(images, exist_ok=True)
    raw = os.path.join(images, "img.raw")
    if not os.path.exists(raw) or os.path.getsize(raw) != args.size_mib << 20:
        make_image(raw, args.size_mib)
    sha = hashlib.sha256(open(raw, "rb").read()).hexdigest()
    loop, shim, base = loop_and_shim(wd, (args.size_mib << 20) + (4 << 30), shim_bin, images)
    url = f"{base}/img.raw"
    info = {"image_info": {"id": "img.raw", "urls": [url], "stream_raw_images": True,
                           "disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": sha},
            "configdrive": None}
    reports = []

    def load(addr):
        p = subprocess.Popen([loadgen, "--addr", addr, "--token", TOKEN, "--concurrency",
                              str(args.concurrency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)

        def stop():
            out, _ = p.communicate(timeout=600)
            reports.append(json.loads(out))
        return stop

    try:
        wait_http(base.rsplit("/images", 1)[0] + "/")
        size = args.size_mib << 20
        mb = lambda t: size / t / 1e6
        alone, _, hwm_alone = agent_command(agent_bin, loop, wd, "standby.prepare_image", info)
        dd = timed(f"dd if={raw} of={loop} bs=4M oflag=direct status=none")
        loaded, _, hwm_loaded = agent_command(agent_bin, loop, wd, "standby.prepare_image", info,
                                              during=load)
        alone2, _, _ = agent_command(agent_bin, loop, wd, "standby.prepare_image", info)
    finally:
        shim.terminate()
        subprocess.run(["losetup", "-d", loop])
    r = reports[0]
    best_alone = min(alone, alone2)
    print(f"image: {args.size_mib} MiB raw, served from 127.0.0.1; MB/s = 10^6 bytes per second")
    print(f"{'case':52} {'MB/s':>8} {'peak RSS':>10}")
    print(f"{'floor: dd file -> loop (O_DIRECT, file cached)':52} {mb(dd):8.1f}")
    print(f"{'agent alone (first run)':52} {mb(alone):8.1f} {hwm_alone/1024:7.1f} MiB")
    print(f"{'agent alone (third run)':52} {mb(alone2):8.1f}")
    print(f"{f'agent under {args.concurrency}-request waves':52} {mb(loaded):8.1f} {hwm_loaded/1024:7.1f} MiB")
    print(f"ratio loaded / alone (best of the two alone runs): {best_alone / loaded:.2f}")
    print(f"requests during the loaded write: {r['requests']} in {r['waves']} waves, "
          f"{r['errors']} errors; latency p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
          f"max {r['max_ms']:.0f} ms")
    if r["errors"]:
        print("errors:", r["error_examples"])
        sys.exit(1)


if __name__ == "__main__":
    main()
