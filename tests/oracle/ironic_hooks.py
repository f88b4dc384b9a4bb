"""Oracle driver: runs Ironic 39's own inspection hooks over inspection data our agent posted.

Input (stdin, or the file named by the argument): the JSON body the agent POSTed to the
inspection callback (``{"inventory": ..., <plugin data keys>...}``). It is split as Ironic's
``/v1/continue_inspection`` endpoint does (``inventory`` popped, the rest is plugin data),
after checking it against that endpoint's own schema.

The hooks (``HOOKS``, in that order) are loaded by Ironic's own ``validate_inspection_hooks``
from the ``[inspector] hooks`` option and run as Ironic's ``run_inspection_hooks`` does: every
``preprocess`` first, then every ``__call__``, on a task acquired with Ironic's
``task_manager.acquire`` for a ``fake-hardware`` node (no ports, no properties but the optional
root device hints) created with Ironic's ``ironic.tests.unit.objects.utils`` in an in-memory
SQLite database holding Ironic's schema, set up as Ironic's unit tests do (their fixture
packages, ``fixtures``/``oslotest``, are not in the venv, so not through ``DbTestCase``). Unlike
Ironic, an exception does not stop the chain: it is recorded for its hook and phase, so one
run reports every failing hook. Afterwards the data is stored with Ironic's
``store_inspection_data`` (as the conductor does), which must not fail either.

Options: ``--cidr-map CIDR:PHYSNET[,...]`` sets ``[inspector] physical_network_cidr_map``;
``--pci-alias JSON`` (repeatable) adds an ``[inspector] pci_device_alias`` entry;
``--root-device-hints JSON`` gives the node a ``root_device`` property.

Output (stdout, JSON)::

    {"hooks": [names], "schema_error": str|null,
     "errors": [{"hook": name, "phase": "preprocess"|"call"|"store", "error": str}],
     "node": {"properties": {...}, "extra": {...}},
     "ports": [{"address", "pxe_enabled", "local_link_connection", "physical_network",
                "extra"}],
     "plugin_data": {... after the hooks, "logs" replaced by its length ...}}

Only Ironic's code is called here; nothing of it is copied.
"""

import argparse
import json
import os
import sys
import traceback

# The hooks: Ironic 39's default chain ([inspector] default_hooks), then the optional ones
# that consume what the agent's collectors send, in an order that satisfies their
# dependencies (validate-interfaces first).
HOOKS = [
    # default_hooks
    'ramdisk-error', 'validate-interfaces', 'ports', 'architecture',
    # node properties
    'cpus', 'cpu-capabilities', 'boot-mode', 'memory', 'root-device', 'raid-device',
    # collectors
    'extra-hardware', 'pci-devices', 'accelerators',
    # LLDP and ports
    'parse-lldp', 'local-link-connection', 'physical-network',
]


def _args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cidr-map', default='',
                        help='[inspector] physical_network_cidr_map '
                             '(comma-separated CIDR:physnet)')
    parser.add_argument('--pci-alias', action='append', default=[],
                        help='an [inspector] pci_device_alias entry (JSON with '
                             'vendor_id, product_id, name); repeatable')
    parser.add_argument('--root-device-hints', type=json.loads, default=None,
                        help='the node\'s root_device property (JSON), which the '
                             'root-device hook matches against the inventory disks')
    parser.add_argument('input', nargs='?', default='-',
                        help='the posted JSON body (default: stdin)')
    return parser.parse_args()


def _read_input(path):
    if path != '-':
        with open(path) as f:
            return json.load(f)
    return json.load(sys.stdin)


def _schema_error(data):
    """The error Ironic's continue_inspection endpoint's validator gives, or None."""
    from ironic.api.controllers.v1 import ramdisk

    try:
        ramdisk.DATA_VALIDATOR(name='data', value=json.loads(json.dumps(data)))
    except Exception as e:
        return _describe(e)
    return None


def _describe(exc):
    return '%s: %s' % (type(exc).__name__, exc)


def _configure(cidr_map, pci_aliases):
    """Ironic's configuration as its unit tests set it (``ironic.tests.base.TestCase``, whose
    fixture packages the venv lacks): an in-memory SQLite database with Ironic's schema, the
    ``fake-hardware`` type with its fake interfaces, and the hooks."""
    from oslo_db.sqlalchemy import enginefacade

    from ironic.common import config as ironic_config
    from ironic.conf import CONF
    from ironic.db.sqlalchemy import models
    from ironic.drivers import base as drivers_base

    ironic_config.parse_args([], default_config_files=[])
    CONF.set_override('connection', 'sqlite://', group='database')
    CONF.set_override('sqlite_synchronous', False, group='database')
    CONF.set_override('host', 'ironic-hooks-oracle')
    CONF.set_override('enabled_hardware_types', ['fake-hardware'])
    for iface in drivers_base.ALL_INTERFACES:
        values = ['noop'] if iface in ('network', 'storage') else ['fake']
        CONF.set_override('enabled_%s_interfaces' % iface, values)
    CONF.set_override('hooks', ','.join(HOOKS), group='inspector')
    if cidr_map:
        CONF.set_override('physical_network_cidr_map', cidr_map.split(','),
                          group='inspector')
    # Read when the pci-devices hook's module is imported (by the hook loading below).
    CONF.set_override('pci_device_alias', pci_aliases, group='inspector')
    models.Base.metadata.create_all(enginefacade.writer.get_engine())


def run(data, cidr_map, pci_aliases, root_device_hints):
    """Runs the hooks over the posted body ``data``; returns the result document."""
    from ironic.common import context as ironic_context
    from ironic.common import states
    from ironic.conductor import task_manager
    from ironic.drivers.modules import inspect_utils
    from ironic import objects
    from ironic.tests.unit.objects import utils as obj_utils

    _configure(cidr_map, pci_aliases)
    result = {'schema_error': _schema_error(data)}
    data = json.loads(json.dumps(data))
    inventory = data.pop('inventory')
    plugin_data = data

    hooks = inspect_utils.validate_inspection_hooks('agent', HOOKS)
    result['hooks'] = [h.name for h in hooks]

    context = ironic_context.get_admin_context()
    properties = {}
    if root_device_hints is not None:
        properties['root_device'] = root_device_hints
    node = obj_utils.create_test_node(
        context, properties=properties, extra={}, driver='fake-hardware',
        provision_state=states.INSPECTING)

    errors = []
    with task_manager.acquire(context, node.id) as task:
        for hook in hooks:
            try:
                hook.obj.preprocess(task, inventory, plugin_data)
            except Exception as e:
                errors.append({'hook': hook.name, 'phase': 'preprocess',
                               'error': _describe(e),
                               'trace': traceback.format_exc()})
        for hook in hooks:
            try:
                hook.obj.__call__(task, inventory, plugin_data)
            except Exception as e:
                errors.append({'hook': hook.name, 'phase': 'call',
                               'error': _describe(e),
                               'trace': traceback.format_exc()})
        # As the conductor: logs are stored apart, the rest in the database.
        logs = plugin_data.pop('logs', None)
        try:
            inspect_utils.store_inspection_data(
                task.node, inventory, plugin_data, context=task.context)
        except Exception as e:
            errors.append({'hook': 'store_inspection_data', 'phase': 'store',
                           'error': _describe(e),
                           'trace': traceback.format_exc()})
        if logs is not None:
            plugin_data['logs'] = len(logs)

    node = objects.Node.get_by_id(context, node.id)
    result['errors'] = errors
    result['node'] = {'properties': node.properties, 'extra': node.extra}
    result['ports'] = [
        {'address': p.address, 'pxe_enabled': p.pxe_enabled,
         'local_link_connection': p.local_link_connection,
         'physical_network': p.physical_network, 'extra': p.extra}
        for p in objects.Port.list_by_node_id(context, node.id)]
    result['plugin_data'] = plugin_data
    return result


def main():
    # Ironic logs to stdout: keep it for the JSON alone, send everything else to stderr.
    out = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)
    # Ironic's unit-test package selects oslo.service's threading backend when imported: it
    # must come before anything that would select the default one.
    import ironic.tests.unit  # noqa: F401

    args = _args()
    result = run(_read_input(args.input), args.cidr_map,
                 args.pci_alias, args.root_device_hints)
    json.dump(result, out, indent=1, sort_keys=True, default=str)
    out.write('\n')
    out.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
