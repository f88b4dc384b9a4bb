use serde_json::{Value, json};

use super::*;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/dmidecode")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn parsed(text: &str) -> Value {
    serde_json::to_value(parse(text).unwrap()).unwrap()
}

#[test]
fn qemu_guest() {
    let v = parsed(&fixture("qemu-q35.txt"));
    assert_eq!(v["bios"]["Vendor"], "SeaBIOS");
    assert_eq!(v["bios"]["Handle"], "Handle 0x0000, DMI type 0, 24 bytes");
    assert_eq!(
        v["bios"]["Characteristics"],
        json!([
            "BIOS characteristics not supported",
            "Targeted content distribution is supported"
        ])
    );
    assert_eq!(v["cpu"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["cpu"][1]["Socket Designation"], "CPU 1");
    assert_eq!(v["cpu"][1]["Characteristics"], json!(["64-bit capable"]));
    let memory = &v["memory"];
    assert_eq!(memory["Number Of Devices"], 1);
    assert_eq!(memory["Maximum Capacity"], "4 GB");
    assert!(memory.get("Handle").is_none());
    assert_eq!(memory["devices"][0]["Size"], "4 GB");
    assert_eq!(
        memory["devices"][0]["Handle"],
        "Handle 0x1100, DMI type 17, 40 bytes"
    );
}

#[test]
fn two_socket_server() {
    let v = parsed(&fixture("server-2s.txt"));
    assert_eq!(
        v["bios"]["Characteristics"].as_array().map(Vec::len),
        Some(21)
    );
    assert_eq!(v["bios"]["BIOS Revision"], "2.12");
    assert_eq!(v["cpu"][0]["Flags"].as_array().map(Vec::len), Some(28));
    assert_eq!(v["cpu"][0]["Flags"][0], "FPU (Floating-point unit on-chip)");
    // The first array, with the devices of both summed.
    assert_eq!(v["memory"]["Number Of Devices"], 24);
    let devices = v["memory"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 5);
    assert_eq!(devices[2]["Size"], "No Module Installed");
    // Type 13 is not kept anywhere.
    assert!(!v.to_string().contains("Installable Languages"));
    // Key order is the table's (a Python dict's).
    let text = serde_json::to_string(&parse(&fixture("server-2s.txt")).unwrap()).unwrap();
    assert!(text.starts_with(
        r#"{"bios":{"Handle":"Handle 0x0000, DMI type 0, 26 bytes","Vendor":"Dell Inc.""#
    ));
}

const ARRAY: &str =
    "Handle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: Other\n";

#[test]
fn memory_without_arrays_or_devices() {
    assert_eq!(
        parsed("# dmidecode 3.4\n# No SMBIOS nor DMI entry point found, sorry.\n"),
        json!({"bios": {}, "cpu": [], "memory": {"devices": []}})
    );
    // Arrays but no devices: no `devices` key.
    assert_eq!(
        parsed(&format!("{ARRAY}\tNumber Of Devices: 2\n")),
        json!({"bios": {}, "cpu": [], "memory": {"Location": "Other", "Number Of Devices": 2}})
    );
}

#[test]
fn ipas_failures_on_bad_arrays() {
    assert_eq!(
        parse(ARRAY),
        Err(DmiParseError::Raised("'Number Of Devices'".into()))
    );
    assert!(matches!(
        parse(&format!("{ARRAY}\tNumber Of Devices: many\n")),
        Err(DmiParseError::Value(_))
    ));
    assert!(matches!(
        parse(&format!("{ARRAY}\tNumber Of Devices:\n\t\t2\n")),
        Err(DmiParseError::Raised(ref m)) if m.contains("not 'list'")
    ));
    let c = DmiCollected::from_output(ARRAY);
    assert_eq!(serde_json::to_value(&c.dmi).unwrap(), json!({}));
    assert_eq!(
        c.failure.as_deref(),
        Some("collector dmi-decode failed: 'Number Of Devices'")
    );
    let c = DmiCollected::from_output(&format!("{ARRAY}\tNumber Of Devices: x\n"));
    assert_eq!(serde_json::to_value(&c.dmi).unwrap(), json!({}));
    assert_eq!(c.failure, None);
}

#[test]
fn blocks_and_rows_as_ipa_splits_them() {
    // A block whose type cannot be read is skipped; the last BIOS block wins; a row with a
    // colon inside a list ends the list.
    let text = "Handle 0x0001 DMI type 0\nBIOS Information\n\tVendor: A\n\n\
                Handle 0x0002, DMI type 0, 24 bytes\nBIOS Information\n\tVendor: B\n\
                \tCharacteristics:\n\t\tx\n\t\ty: z\n\t\tw\n\n\
                Handle 0x0003, DMI type 0, 24 bytes\nBIOS Information\n\tVendor: C: D\n";
    assert_eq!(
        parsed(text)["bios"],
        json!({"Handle": "Handle 0x0003, DMI type 0, 24 bytes", "Vendor": "C: D"})
    );
    let text = text.rsplit_once("\n\n").unwrap().0;
    assert_eq!(
        parsed(text)["bios"],
        json!({"Handle": "Handle 0x0002, DMI type 0, 24 bytes", "Vendor": "B",
               "Characteristics": ["x"], "y": "z"})
    );
}

#[test]
fn running_dmidecode_fails_as_ipa() {
    let missing = collect("dmidecode-not-installed");
    assert_eq!(missing.dmi, None);
    assert_eq!(
        missing.failure.as_deref(),
        Some(
            "failed to run dmidecode: [Errno 2] No such file or directory: 'dmidecode-not-installed'"
        )
    );
    let failed = collect("false");
    assert_eq!(failed.dmi, None);
    assert_eq!(
        failed.failure.as_deref(),
        Some(
            "failed to run dmidecode: Unexpected error while running command.\nCommand: false -t bios -t processor -t memory\nExit code: 1\nStdout: ''\nStderr: ''"
        )
    );
    assert_eq!(
        run::execution_error(
            "dmidecode",
            1,
            "# dmidecode 3.4\n",
            "/dev/mem: No such file\n"
        ),
        "Unexpected error while running command.\nCommand: dmidecode -t bios -t processor -t memory\nExit code: 1\nStdout: '# dmidecode 3.4\\n'\nStderr: '/dev/mem: No such file\\n'"
    );
}
