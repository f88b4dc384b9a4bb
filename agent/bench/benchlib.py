"""Helpers shared by the benchmark scripts: ports, waiting for HTTP, timing shell commands, and
running one command through a standalone agent allowed to write a single loop device."""
import json
import os
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "bench-token-0123456789abcdef0123456789abcdef"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def loop_and_shim(workdir, disk_bytes, shim_bin, images):
    """A loop device over a sparse DISK_BYTES file in WORKDIR, and `conductor-shim serve` on a
    free port serving IMAGES. Returns (loop path, shim process, "http://127.0.0.1:PORT/images");
    the caller terminates the shim and detaches the loop device."""
    disk = os.path.join(workdir, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(disk_bytes)
    loop = subprocess.run(["losetup", "--find", "--show", disk], check=True, capture_output=True,
                          text=True).stdout.strip()
    port = free_port()
    shim = subprocess.Popen([shim_bin, "--db", os.path.join(workdir, "shim.sqlite"), "serve",
                             "--listen", f"127.0.0.1:{port}", "--images", images],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return loop, shim, f"http://127.0.0.1:{port}/images"


def timed(cmd):
    t0 = time.perf_counter()
    sh(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def agent_command(agent_bin, loop, workdir, name, params, during=None):
    """Starts the agent (standalone, token from its command line, --allow-device LOOP), runs
    command NAME with PARAMS (wait=true) and stops it. Returns (seconds, result, peak RSS KiB);
    raises unless the command SUCCEEDED. DURING, if given, is called with the agent's
    "127.0.0.1:PORT" right before the command is sent and returns a callable that is called
    (to stop it) right after the command finished."""
    port = free_port()
    cmdline = os.path.join(workdir, "cmdline")
    with open(cmdline, "w") as f:
        f.write(f"ipa-agent-token={TOKEN}\n")
    plugins = os.path.join(workdir, "plugins")
    os.makedirs(plugins, exist_ok=True)
    log = open(os.path.join(workdir, "agent.log"), "a")
    proc = subprocess.Popen([agent_bin, "--cmdline", cmdline, "--listen", f"127.0.0.1:{port}",
                             "--allow-device", loop, "--hardware-managers-dir", plugins,
                             "--power", f"record:{workdir}/power"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/v1/status")
        body = json.dumps({"name": name, "params": params}).encode()
        stop = during(f"127.0.0.1:{port}") if during else None
        t0 = time.perf_counter()
        req = urllib.request.Request(f"{base}/v1/commands/?agent_token={TOKEN}&wait=true", data=body,
                                     headers={"Content-Type": "application/json"})
        res = json.load(urllib.request.urlopen(req, timeout=3600))
        elapsed = time.perf_counter() - t0
        if stop:
            stop()
        if res["command_status"] != "SUCCEEDED":
            raise RuntimeError(f"{name} failed: {res['command_error']}")
        with open(f"/proc/{proc.pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        return elapsed, res["command_result"], hwm
    finally:
        proc.terminate()
        proc.wait(10)
