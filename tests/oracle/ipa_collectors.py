"""IPA 13's inspection collectors as the oracle for ours (tests/tests/collectors_oracle.rs).

Runs collectors through IPA's own entry points (`inspector.extension_manager`) and the loop of
`inspector.inspect()` (a raising collector becomes `collector NAME failed: ...`), then prints
JSON: {"data": {...}, "failures": [...]}.

  host                  pci-devices, numa-topology, dmi-decode, usb-devices on this machine
  dmi FILE...           dmi-decode with `dmidecode` answering each FILE's text, plus IPA's
                        unit-test texts (ironic_python_agent.tests.unit.dmi_inspector_data);
                        prints {NAME: {"text", "data", "failures"}}
  usb LSHW_JSON         usb-devices with `lshw -quiet -json` answering that file's text

The generic hardware manager is the only one (IPA's in-tree managers add no filter_device).
"""

import json
import sys
from unittest import mock

import ironic_python_agent.config  # noqa: F401  (registers the options first)
from ironic_python_agent import encoding
from ironic_python_agent import hardware
from ironic_python_agent import inspector
from ironic_python_agent import utils


def run(names):
    hardware._global_managers = [
        {'manager': hardware.GenericHardwareManager(),
         'name': 'GenericHardwareManager', 'version': '1.2', 'support': 1}]
    failures = utils.AccumulatedFailures()
    data = {}
    for ext in inspector.extension_manager(names):
        try:
            ext.plugin(data, failures)
        except Exception as exc:
            failures.add('collector %s failed: %s', ext.name, exc)
    return {'data': data, 'failures': list(failures._failures)}


def answering(text):
    def execute(*cmd, **kwargs):
        return text, ''
    return mock.patch.object(utils, 'execute', execute)


def main(argv):
    mode = argv[1]
    if mode == 'host':
        out = run(['pci-devices', 'numa-topology', 'dmi-decode', 'usb-devices'])
    elif mode == 'dmi':
        texts = {}
        for path in argv[2:]:
            with open(path) as f:
                texts[path] = f.read()
        from ironic_python_agent.tests.unit import dmi_inspector_data as ipa
        for name in ('BIOS_DATA', 'MEMORY_DATA', 'CPU_DATA', 'DMI_DATA'):
            texts['ipa:' + name] = getattr(ipa, name)[0]
        out = {}
        for name, text in texts.items():
            with answering(text):
                out[name] = dict(run(['dmi-decode']), text=text)
    elif mode == 'usb':
        with open(argv[2]) as f:
            text = f.read()
        with answering(text):
            out = run(['usb-devices'])
    else:
        raise SystemExit('unknown mode %s' % mode)
    # As IPA's call_inspector encodes the data it posts.
    sys.stdout.write(encoding.RESTJSONEncoder().encode(out))


if __name__ == '__main__':
    main(sys.argv)
