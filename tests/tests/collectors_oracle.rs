//! IPA 13 as the oracle for the `pci-devices`, `numa-topology`, `dmi-decode` and
//! `usb-devices` collectors (driver: `tests/oracle/ipa_collectors.py`).
//!
//! - On this host: our agent inspects end to end against the conductor shim with those
//!   collectors; the shim's stored inspection data must carry exactly IPA's keys, values and
//!   failure text from IPA's collectors run on the same machine.
//! - `dmidecode` texts (our fixtures, IPA's unit-test data, malformed tables): IPA's
//!   collector with `dmidecode` answering each text, against our parser.
//! - USB: IPA's selection on the lshw tree lshw builds for a fake sysfs tree (ids renamed for
//!   siblings, classes from the USB class codes and merged NICs), against ours on that tree.

use std::path::Path;
use std::time::Duration;

use e2e_tests::{Shim, free_port, host_macs, oracle, start_agent, wait_for};
use hardware_managers::collectors::{dmi::DmiCollected, usb};
use serde_json::{Value, json};

const COLLECTORS: [&str; 4] = ["pci-devices", "numa-topology", "dmi-decode", "usb-devices"];

/// IPA's `AccumulatedFailures.get_error()` of `failures`.
fn error_text(failures: &Value) -> Value {
    let list: Vec<&str> = failures
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        return Value::Null;
    }
    let items: Vec<String> = list.iter().map(|f| format!("* {f}")).collect();
    Value::String(format!(
        "The following errors were encountered:\n{}",
        items.join("\n")
    ))
}

#[test]
fn host_collectors_equal_ipa() -> anyhow::Result<()> {
    let ipa = oracle::run_json("ipa_collectors.py", &["host"], None)?;
    let dir = tempfile::tempdir()?;
    let shim = Shim::start(dir.path(), &["--no-require-tls"])?;
    let mut args = vec!["node", "create", "--name", "n1", "--state", "inspect wait"];
    let macs = host_macs()?;
    for m in &macs {
        args.push("--mac");
        args.push(m);
    }
    shim.cli(&args, true)?;
    let cmdline = format!(
        "BOOT_IMAGE=/vmlinuz ipa-api-url={u} ipa-inspection-callback-url={u}/v1/continue_inspection \
         ipa-inspection-dhcp-wait-timeout=0 ipa-lookup-timeout=30 \
         ipa-inspection-collectors=default,{}",
        COLLECTORS.join(","),
        u = shim.url
    );
    let port = free_port();
    let _agent = start_agent(
        dir.path(),
        "agent",
        &cmdline,
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise-host",
            "127.0.0.1",
            "--no-auto-tls",
        ],
    )?;
    let node = wait_for(
        Duration::from_secs(90),
        "inspection data in the shim",
        || {
            shim.node("n1")
                .ok()
                .filter(|n| n["inspection_data"].is_object())
        },
    )?;
    let ours = &node["inspection_data"];
    let theirs = &ipa["data"];
    let keys = ["pci_devices", "numa_topology", "dmi", "usb_devices"];
    for key in keys {
        assert_eq!(
            ours.get(key),
            theirs.get(key),
            "{key}: ours (left) differs from IPA's (right)"
        );
    }
    // Equal on this host, and not vacuously.
    assert!(
        theirs["pci_devices"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );
    assert!(theirs["numa_topology"]["cpus"].is_array());
    assert_eq!(ours["error"], error_text(&ipa["failures"]));
    let mut ran = vec!["default"];
    ran.extend(COLLECTORS);
    assert_eq!(ours["configuration"]["collectors"], json!(ran));
    Ok(())
}

/// `dmidecode` outputs no table of which IPA's parser accepts as it is.
const MALFORMED: [(&str, &str); 4] = [
    (
        "no-count",
        "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tUse: System Memory\n",
    ),
    (
        "bad-count",
        "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tNumber Of Devices: two\n",
    ),
    (
        "list-count",
        "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tNumber Of Devices:\n\t\t2\n",
    ),
    (
        "odd-blocks",
        "# dmidecode 3.4\n\n\nHandle 0x0001 DMI type 0\nBIOS Information\n\tVendor: A\n\n\
         Handle 0x0002, DMI type 4, 9 bytes\r\nProcessor Information\r\n\tFlags:\r\n\t\tFPU\r\n\tVersion: x: y\n\n\
         Handle 0x0003, DMI type 17, 9 bytes\nMemory Device\n\tSize: 1 GB\n\n\
         Handle 0x0004, DMI type 16, 9 bytes\nPhysical Memory Array\n\tNumber Of Devices: 1_0\n\
         Handle 0x0005, DMI type 16, 9 bytes\n\tNumber Of Devices: 3\n",
    ),
];

#[test]
fn dmidecode_texts_parse_as_ipa() -> anyhow::Result<()> {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hardware-managers/testdata/dmidecode");
    let tmp = tempfile::tempdir()?;
    let mut args: Vec<String> = ["qemu-q35.txt", "server-2s.txt"]
        .iter()
        .map(|f| fixtures.join(f).display().to_string())
        .collect();
    for (name, text) in MALFORMED {
        let p = tmp.path().join(name);
        std::fs::write(&p, text)?;
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ipa = oracle::run_json("ipa_collectors.py", &[&["dmi"], &args[..]].concat(), None)?;
    let cases = ipa.as_object().expect("an object per text");
    assert_eq!(cases.len(), args.len() + 4, "our texts and IPA's four");
    for (name, case) in cases {
        let text = case["text"].as_str().unwrap_or_default();
        let ours = DmiCollected::from_output(text);
        assert_eq!(
            serde_json::to_value(&ours.dmi)?,
            case["data"].get("dmi").cloned().unwrap_or(Value::Null),
            "{name}: dmi differs (ours left)"
        );
        let failures: Vec<String> = ours.failure.into_iter().collect();
        assert_eq!(json!(failures), case["failures"], "{name}: failures differ");
    }
    Ok(())
}
