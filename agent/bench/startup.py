#!/usr/bin/env python3
"""Benchmark: agent start -> first `/v1/status` answer, and idle RSS.

Both are reported as ratios against a baseline measured in the same run: Python's own
`http.server` (IPA is a Python program; an interpreter that only serves a static answer is a
lower bound for what IPA can achieve). Nothing here is a test: it prints figures.

Usage: agent/bench/startup.py [--runs N] [--binary PATH]
(build first: cargo build --release -p ironic-agent)
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port


def first_answer(cmd, port, path, timeout=10.0):
    """Starts cmd, returns (seconds until an HTTP 200 on path, the process)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    while time.perf_counter() - t0 < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(request)
                head = s.recv(64)
                if head.startswith(b"HTTP/1.") and b" 200 " in head[:16]:
                    return time.perf_counter() - t0, proc
        except OSError:
            time.sleep(0.0005)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not answer within {timeout}s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(cmd_for_port, path, runs, settle=1.0):
    times, rss = [], []
    for _ in range(runs):
        port = free_port()
        t, proc = first_answer(cmd_for_port(port), port, path)
        times.append(t)
        time.sleep(settle)  # idle
        rss.append(rss_kib(proc.pid))
        proc.terminate()
        proc.wait(5)
    return statistics.median(times), statistics.median(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--binary", default=os.path.join(root, "target/release/ironic-agent"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} missing: run cargo build --release -p ironic-agent")

    tmp = tempfile.mkdtemp()
    cmdline = os.path.join(tmp, "cmdline")
    with open(cmdline, "w") as f:
        f.write("ipa-agent-token=benchmark-token-0123456789abcdef0123\n")
    plugins = os.path.join(tmp, "plugins")
    os.mkdir(plugins)

    agent = lambda port: [args.binary, "--cmdline", cmdline, "--listen", f"127.0.0.1:{port}",
                          "--hardware-managers-dir", plugins, "--power", f"record:{tmp}/power"]
    baseline = lambda port: [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                             "--directory", tmp]

    b_t, b_rss = measure(baseline, "/", args.runs)
    a_t, a_rss = measure(agent, "/v1/status", args.runs)
    print(f"runs: {args.runs} (medians)")
    print(f"baseline python3 -m http.server : first answer {b_t*1000:7.2f} ms, idle RSS {b_rss/1024:6.2f} MiB")
    print(f"ironic-agent (release)          : first answer {a_t*1000:7.2f} ms, idle RSS {a_rss/1024:6.2f} MiB")
    print(f"ratio agent/baseline            : start {a_t/b_t:.3f}, RSS {a_rss/b_rss:.3f}")
    print(f"targets: start <= 20 ms -> {'OK' if a_t <= 0.020 else 'MISSED'}; "
          f"idle RSS <= 12 MB -> {'OK' if a_rss * 1024 <= 12e6 else 'MISSED'}")


if __name__ == "__main__":
    main()
