#!/usr/bin/env python3
"""Benchmark: image deploy throughput and peak agent RSS, as ratios against baselines run in the
same invocation on the same loop device.

Floors:   curl URL > /dev/null;  dd if=FILE of=LOOP bs=4M oflag=direct
Ours:     standby.prepare_image through the real agent API (raw + sha256, zstd, gzip, qcow2)
Baselines for the variants: curl URL | zstd -d | dd ...; curl URL | gzip -d | dd ...;
          qemu-img convert -O raw -t none local.qcow2 LOOP

Needs root (loop devices), curl, zstd, gzip, qemu-img. Writes only to a loop device over a file
it creates in --workdir, and detaches it. Nothing here is a test: it prints a table.

Usage: agent/bench/deploy.py [--size-mib 2048] [--workdir /var/tmp/ia-bench]
(build first: cargo build --release -p ironic-agent -p conductor-shim)
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys

from benchlib import ROOT, agent_command, loop_and_shim, sh, timed, wait_http


def make_image(path, size_mib):
    """A compressible-but-not-trivial raw image: an msdos table with one partition, and data."""
    import struct
    size = size_mib << 20
    with open(path, "wb") as f:
        f.truncate(size)
        mbr = bytearray(512)
        mbr[440:444] = b"\x5e\xed\xbe\xef"
        mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, size // 512 - 2048)
        mbr[510:512] = b"\x55\xaa"
        f.write(mbr)
    # Fill 3/4 of it with data (text-like pseudo-random so compressors have work to do).
    block = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(32768))
    with open(path, "r+b") as f:
        f.seek(1 << 20)
        written = 0
        target = (size_mib << 20) * 3 // 4
        while written < target:
            f.write(block)
            written += len(block)


def agent_deploy(agent_bin, loop, url, image_info_extra, workdir):
    info = {"id": os.path.basename(url), "urls": [url], "stream_raw_images": True}
    info.update(image_info_extra)
    elapsed, _, hwm = agent_command(agent_bin, loop, workdir, "standby.prepare_image",
                                    {"image_info": info, "configdrive": None})
    return elapsed, hwm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--workdir", default="/var/tmp/ia-bench")
    args = ap.parse_args()
    for tool in ["curl", "zstd", "gzip", "qemu-img", "losetup"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is required")
    agent_bin = os.path.join(ROOT, "target/release/ironic-agent")
    shim_bin = os.path.join(ROOT, "target/release/conductor-shim")
    for b in (agent_bin, shim_bin):
        if not os.path.exists(b):
            sys.exit(f"{b} missing: cargo build --release -p ironic-agent -p conductor-shim")
    wd = args.workdir
    os.makedirs(wd, exist_ok=True)
    images = os.path.join(wd, "images")
    os.makedirs(images, exist_ok=True)
    raw = os.path.join(images, "img.raw")
    if not os.path.exists(raw) or os.path.getsize(raw) != args.size_mib << 20:
        make_image(raw, args.size_mib)
        sh(f"zstd -q -f -T0 -3 {raw} -o {raw}.zst")
        sh(f"gzip -1 -c {raw} > {raw}.gz")
        sh(f"qemu-img convert -f raw -O qcow2 {raw} {images}/img.qcow2")
    sha = hashlib.sha256(open(raw, "rb").read()).hexdigest()
    loop, shim, base = loop_and_shim(wd, (args.size_mib << 20) * 2 + (4 << 30), shim_bin, images)
    rows = []
    try:
        wait_http(base.rsplit("/images", 1)[0] + "/")
        size = args.size_mib << 20
        mb = lambda t, n=size: n / t / 1e6
        drop = "sync; echo 3 > /proc/sys/vm/drop_caches"
        curl = timed(f"curl -sf {base}/img.raw -o /dev/null")
        dd = timed(f"dd if={raw} of={loop} bs=4M oflag=direct status=none")
        floor = min(mb(curl), mb(dd))
        rows.append(("floor: curl -> /dev/null", mb(curl), None, None))
        rows.append(("floor: dd file -> loop (O_DIRECT)", mb(dd), None, None))
        t, hwm = agent_deploy(agent_bin, loop, f"{base}/img.raw",
                              {"disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": sha}, wd)
        rows.append(("ours: raw stream + sha256", mb(t), mb(t) / floor, hwm))
        for ext, tool in (("zst", "zstd -d -c"), ("gz", "gzip -d -c")):
            zsha = hashlib.sha256(open(f"{raw}.{ext}", "rb").read()).hexdigest()
            b = timed(f"curl -sf {base}/img.raw.{ext} | {tool} | dd of={loop} bs=4M oflag=direct iflag=fullblock status=none")
            rows.append((f"baseline: curl | {tool.split()[0]} -d | dd", mb(b), None, None))
            t, hwm = agent_deploy(agent_bin, loop, f"{base}/img.raw.{ext}",
                                  {"disk_format": "raw", "os_hash_algo": "sha256", "os_hash_value": zsha}, wd)
            rows.append((f"ours: {ext} stream", mb(t), b / t, hwm))
        q = os.path.join(images, "img.qcow2")
        qsha = hashlib.sha256(open(q, "rb").read()).hexdigest()
        b = timed(f"qemu-img convert -f qcow2 -O raw -t none -n {q} {loop}")
        rows.append(("baseline: qemu-img convert local qcow2", mb(b), None, None))
        t, hwm = agent_deploy(agent_bin, loop, f"{base}/img.qcow2",
                              {"disk_format": "qcow2", "os_hash_algo": "sha256", "os_hash_value": qsha}, wd)
        rows.append(("ours: qcow2 (download + spool + convert)", mb(t), b / t, hwm))
        _ = drop
    finally:
        shim.terminate()
        subprocess.run(["losetup", "-d", loop])
    print(f"image: {args.size_mib} MiB raw ({sha[:12]}), served from 127.0.0.1; MB/s = 10^6 bytes of raw image per second")
    print(f"{'case':45} {'MB/s':>9} {'ratio':>7} {'peak RSS':>10}")
    for name, rate, ratio, hwm in rows:
        r = f"{ratio:7.2f}" if ratio is not None else "       "
        h = f"{hwm/1024:7.1f} MiB" if hwm is not None else ""
        print(f"{name:45} {rate:9.1f} {r} {h}")
    print("ratios: raw vs min(floors); zst/gz vs their pipe baselines; qcow2 vs local qemu-img")


if __name__ == "__main__":
    main()
