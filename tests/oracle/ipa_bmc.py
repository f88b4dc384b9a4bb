"""Oracle: IPA 13's get_bmc_address / get_bmc_v6address / get_bmc_mac over captured outputs.

Usage: ipa_bmc.py FIXTURE_DIR [FIXTURE_DIR ...]

Each FIXTURE_DIR holds captured ipmitool answers (the format is documented at
hardware_managers::runner::RecordingRunner::replaying): `ipmitool a b c` prints `a_b_c.out`,
`a_b_c.err` on stderr and exits with `a_b_c.rc` (default 0); without `a_b_c.out` it fails with
`Invalid channel: <c>`; with `NO_IPMITOOL` it is "not installed" (the shell's exit 127).

IPA's own methods run unchanged; only the environment is faked: `any_ipmi_device_exists` says
yes, and `utils.execute` runs its command (a shell pipeline through the real awk, or a plain
ipmitool call read as YAML) with a stand-in `ipmitool` first on PATH that answers from the
fixture. Prints {dir: {"bmc_address", "bmc_v6address", "bmc_mac", "commands"}} as JSON;
`bmc_mac` is null where IPA raises IncompatibleHardwareMethodError (IPA then leaves it out).
"""

import json
import os
import stat
import sys
import tempfile
from unittest import mock

import ironic_python_agent.config  # noqa: F401  (registers the options hardware needs)
from ironic_python_agent import errors
from ironic_python_agent import hardware
from ironic_python_agent import utils

FAKE_IPMITOOL = r"""#!/bin/sh
fix="$IPA_BMC_FIXTURE"
if [ -e "$fix/NO_IPMITOOL" ]; then
    echo "sh: 1: ipmitool: not found" >&2
    exit 127
fi
name=$(echo "$*" | tr ' ' '_')
if [ ! -f "$fix/$name.out" ]; then
    echo "Invalid channel: $3" >&2
    exit 1
fi
cat "$fix/$name.out"
[ -f "$fix/$name.err" ] && cat "$fix/$name.err" >&2
rc=0
[ -f "$fix/$name.rc" ] && rc=$(cat "$fix/$name.rc")
exit "$rc"
"""


def run_case(fixture):
    os.environ["IPA_BMC_FIXTURE"] = os.path.abspath(fixture)
    commands = []
    real_execute = utils.execute

    def execute(*cmd, **kwargs):
        commands.append(" ".join(cmd))
        return real_execute(*cmd, **kwargs)

    manager = hardware.GenericHardwareManager()
    with mock.patch.object(hardware.GenericHardwareManager,
                           "any_ipmi_device_exists", return_value=True), \
            mock.patch.object(utils, "execute", side_effect=execute):
        address = manager.get_bmc_address()
        v6address = manager.get_bmc_v6address()
        try:
            mac = manager.get_bmc_mac()
        except errors.IncompatibleHardwareMethodError:
            mac = None
    return {"bmc_address": address, "bmc_v6address": v6address,
            "bmc_mac": mac, "commands": commands}


def main():
    with tempfile.TemporaryDirectory() as bindir:
        tool = os.path.join(bindir, "ipmitool")
        with open(tool, "w") as f:
            f.write(FAKE_IPMITOOL)
        os.chmod(tool, stat.S_IRWXU)
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        result = {d: run_case(d) for d in sys.argv[1:]}
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
