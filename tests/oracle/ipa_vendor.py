"""Oracle: IPA 13's in-tree `mlnx` and `cna` hardware managers over a fake /sys tree.

Usage: ipa_vendor.py ROOT COLLECT_LLDP(0|1) IFACE [IFACE ...]

IPA's managers run unchanged with /sys redirected to ROOT/sys (open, os.listdir,
os.path.exists; `readlink` through utils.execute on the redirected path) and the ioctl/netlink
helpers answered from the tree (`get_mac_addr` reads ROOT/sys/class/net/IF/address, no IPv4).
Prints JSON:
  {"mlnx": {"support": N, "interfaces": {IF: {mac_address, client_id, vendor, product,
            has_carrier} | null}},
   "cna": {"support": N}}
and, as IPA does when the chain is built, calls the CNA manager's initialize() when it claims
support, with [DEFAULT] collect_lldp = COLLECT_LLDP (it writes into ROOT/sys/kernel/debug).
"""

import builtins
import json
import os
import subprocess
import sys
from unittest import mock

from ironic_python_agent import config  # noqa: F401  (registers the options)
from ironic_python_agent import errors
from ironic_python_agent import hardware
from ironic_python_agent.hardware_managers import cna
from ironic_python_agent.hardware_managers import mlnx
from ironic_python_agent import netutils
from oslo_config import cfg

ROOT = os.path.abspath(sys.argv[1])


def redirect(path):
    path = os.fspath(path)
    if isinstance(path, str) and (path == "/sys" or path.startswith("/sys/")):
        return ROOT + path
    return path


def main():
    collect_lldp = sys.argv[2] == "1"
    names = sys.argv[3:]
    real_open, real_listdir, real_exists = builtins.open, os.listdir, os.path.exists

    def fake_execute(*cmd, **kwargs):
        cmd = [redirect(c) for c in cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            from oslo_concurrency import processutils
            raise processutils.ProcessExecutionError(
                stdout=proc.stdout, stderr=proc.stderr,
                exit_code=proc.returncode, cmd=" ".join(cmd))
        return proc.stdout, proc.stderr

    def mac_of(name):
        with real_open(redirect("/sys/class/net/%s/address" % name)) as f:
            return f.read().strip()

    cfg.CONF.set_override("collect_lldp", collect_lldp)
    result = {}
    with mock.patch.object(builtins, "open",
                           lambda p, *a, **k: real_open(redirect(p), *a, **k)), \
            mock.patch.object(os, "listdir",
                              lambda p=".": real_listdir(redirect(p))), \
            mock.patch.object(os.path, "exists",
                              lambda p: real_exists(redirect(p))), \
            mock.patch.object(cna.utils, "execute", side_effect=fake_execute), \
            mock.patch.object(netutils, "get_mac_addr", side_effect=mac_of), \
            mock.patch.object(netutils, "get_ipv4_addr", return_value=None):
        m = mlnx.MellanoxDeviceHardwareManager()
        interfaces = {}
        for name in names:
            try:
                info = m.get_interface_info(name)
                interfaces[name] = {
                    "mac_address": info.mac_address,
                    "client_id": info.client_id,
                    "vendor": info.vendor,
                    "product": info.product,
                    "has_carrier": info.has_carrier,
                }
            except errors.IncompatibleHardwareMethodError:
                interfaces[name] = None
        result["mlnx"] = {"support": int(m.evaluate_hardware_support()),
                          "interfaces": interfaces}
        c = cna.IntelCnaHardwareManager()
        support = int(c.evaluate_hardware_support())
        if support > 0:
            c.initialize()
        result["cna"] = {"support": support}
    assert hardware  # imported for its option registration side effects
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
