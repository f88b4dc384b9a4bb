"""Oracle: IPA 13's inventory of this machine, printed as IPA posts it.

Usage: ipa_inventory.py CMDLINE_FILE

Runs ``GenericHardwareManager.list_hardware_info`` (the ``default`` collector's
inventory and ``poll.get_hardware_info``'s result) with the agent parameters read
from CMDLINE_FILE instead of /proc/cmdline (the same file our agent is given), and
prints it through IPA's ``RESTJSONEncoder``.

Nothing is written: the manager's ``initialize`` (iSCSI start, mdadm assemble,
modprobe of the IPMI and multipath modules, waiting for disks) is not called, and
multipath is off, as on a ramdisk without multipath tools.
"""

import json
import sys

from ironic_python_agent import utils


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: ipa_inventory.py CMDLINE_FILE')
    # The agent's state: its parameters come from the given file. They must be
    # cached before ironic_python_agent.config is imported: its option
    # defaults (ipa-collect-lldp, ipa-lldp-timeout, ...) are read at import.
    utils._set_cached_params(utils._read_params_from_file(sys.argv[1]))
    import ironic_python_agent.config  # noqa: F401  (before hardware)
    from ironic_python_agent import encoding
    from ironic_python_agent import hardware
    from oslo_config import cfg

    cfg.CONF([], project='ironic-python-agent', default_config_files=[],
             default_config_dirs=[])
    # No multipath (IPA would modprobe and start multipathd to find out).
    hardware.MULTIPATH_ENABLED = False
    manager = hardware.GenericHardwareManager()
    # dispatch_to_managers goes to this manager alone, without probing and
    # initializing the others (initialize writes: see above).
    hardware._global_managers = [{
        'name': manager.__class__.__name__,
        'manager': manager,
        'support': manager.evaluate_hardware_support(),
    }]
    inventory = hardware.dispatch_to_managers('list_hardware_info')
    json.dump(json.loads(encoding.RESTJSONEncoder().encode(inventory)),
              sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
