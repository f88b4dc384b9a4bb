//! Table-driven tests of hint parsing and matching.

use serde_json::{Value, json};

use super::*;

const GIB: u64 = 1 << 30;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Four devices in listing order, with every attribute hints can name.
fn devices() -> Vec<HintTarget> {
    vec![
        HintTarget {
            name: "/dev/sda".into(),
            size: 5 * GIB,
            rotational: true,
            model: Some("QEMU HARDDISK".into()),
            vendor: Some("ATA".into()),
            serial: strings(&["QM00001", "ATA_QEMU_HARDDISK_QM00001"]),
            wwn: strings(&["0x5000c500a1b2c3d4"]),
            wwn_with_extension: strings(&["0x5000c500a1b2c3d4"]),
            wwn_vendor_extension: vec![],
            hctl: Some("0:0:0:0".into()),
            by_path: Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1".into()),
            tran: Some("sata".into()),
        },
        HintTarget {
            name: "/dev/sdb".into(),
            size: 10 * GIB,
            rotational: false,
            model: Some("Samsung SSD 860".into()),
            vendor: Some("ATA".into()),
            serial: strings(&["S3Z1NB0K123"]),
            wwn: strings(&["0x5002538e40a1b2c3"]),
            wwn_with_extension: strings(&["0x5002538e40a1b2c3"]),
            wwn_vendor_extension: vec![],
            hctl: Some("1:0:0:0".into()),
            by_path: None,
            tran: Some("sata".into()),
        },
        HintTarget {
            name: "/dev/nvme0n1".into(),
            size: 1000 * GIB,
            rotational: false,
            model: Some("Samsung SSD 980 PRO 1TB".into()),
            vendor: None,
            serial: strings(&["S5GXNF0R123456"]),
            wwn: strings(&["eui.002538b111b2c3d4"]),
            wwn_with_extension: strings(&["eui.002538b111b2c3d4"]),
            wwn_vendor_extension: vec![],
            hctl: None,
            by_path: None,
            tran: Some("nvme".into()),
        },
        HintTarget {
            name: "/dev/vda".into(),
            size: 20 * GIB + GIB / 2,
            rotational: true,
            model: None,
            vendor: Some("0x1af4".into()),
            serial: strings(&["overlayblk", "007"]),
            wwn: vec![],
            wwn_with_extension: vec![],
            wwn_vendor_extension: strings(&["0xabcdef"]),
            hctl: None,
            by_path: None,
            tran: None,
        },
    ]
}

fn parse(hints: &Value) -> RootDeviceHints {
    match RootDeviceHints::from_value(hints) {
        Ok(Some(h)) => h,
        other => panic!("{hints} did not parse: {other:?}"),
    }
}

/// The first device matching `hints`.
fn pick(hints: &Value) -> Option<String> {
    let devices = devices();
    parse(hints).first_match(&devices).map(|d| d.name.clone())
}

fn check_table(table: &[(Value, Option<&str>)]) {
    let mut failures = Vec::new();
    for (hints, expected) in table {
        let got = pick(hints);
        if got.as_deref() != *expected {
            failures.push(format!("{hints}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn size_operators() {
    check_table(&[
        (json!({"size": 10}), Some("/dev/sdb")),
        (json!({"size": "10"}), Some("/dev/sdb")),
        (json!({"size": " 10 "}), Some("/dev/sdb")),
        (json!({"size": "+10"}), Some("/dev/sdb")),
        (json!({"size": "== 10"}), Some("/dev/sdb")),
        (json!({"size": "==10"}), Some("/dev/sdb")),
        (json!({"size": "!= 5"}), Some("/dev/sdb")),
        (json!({"size": ">= 11"}), Some("/dev/nvme0n1")),
        (json!({"size": ">= 10"}), Some("/dev/sdb")),
        (json!({"size": "> 10"}), Some("/dev/nvme0n1")),
        (json!({"size": "<= 5"}), Some("/dev/sda")),
        (json!({"size": "< 6"}), Some("/dev/sda")),
        (json!({"size": "< 5"}), None),
        // Legacy `=` means >=.
        (json!({"size": "= 10"}), Some("/dev/sdb")),
        (json!({"size": "=6"}), Some("/dev/sdb")),
        (json!({"size": "= 1001"}), None),
        // Compared as a float: 20.5 GiB is neither 20 nor 21.
        (json!({"size": 20}), None),
        (json!({"size": 21}), None),
        (
            json!({"size": "> 20", "rotational": true}),
            Some("/dev/vda"),
        ),
        (
            json!({"size": "< 21", "rotational": true}),
            Some("/dev/sda"),
        ),
        // <or>: numeric equality with any value; first device in listing order wins.
        (json!({"size": "<or> 1000 <or> 10"}), Some("/dev/sdb")),
        (json!({"size": "<or> 1000"}), Some("/dev/nvme0n1")),
        (json!({"size": "<or> 7 <or> 8"}), None),
        // <range-in> with open and closed ends.
        (json!({"size": "<range-in> [ 10 20 ]"}), Some("/dev/sdb")),
        (json!({"size": "<range-in> ( 10 20 ]"}), None),
        (json!({"size": "<range-in> ( 10 21 )"}), Some("/dev/vda")),
        (json!({"size": "<range-in> [ 5 10 )"}), Some("/dev/sda")),
        (json!({"size": "<range-in> ( 5 10 ]"}), Some("/dev/sdb")),
        (json!({"size": "<range-in> ( 5 10 )"}), None),
        (json!({"size": "<range-in> [5 5]"}), Some("/dev/sda")),
        (
            json!({"size": "<range-in> [ 20.4 20.6 ]"}),
            Some("/dev/vda"),
        ),
    ]);
}

#[test]
fn string_operators() {
    check_table(&[
        // Default s==, case-insensitive, spaces quoted on both sides.
        (json!({"model": "QEMU HARDDISK"}), Some("/dev/sda")),
        (json!({"model": "qemu harddisk"}), Some("/dev/sda")),
        (json!({"model": "  qemu harddisk  "}), Some("/dev/sda")),
        (json!({"model": "qemu"}), None),
        (json!({"model": "s== samsung ssd 860"}), Some("/dev/sdb")),
        (json!({"model": "s==Samsung SSD 860"}), Some("/dev/sdb")),
        // s!=: the first device whose model differs; a device without a model counts.
        (json!({"model": "s!= qemu harddisk"}), Some("/dev/sdb")),
        (
            json!({"model": "s!= x", "size": "<range-in> ( 20 21 )"}),
            Some("/dev/vda"),
        ),
        // Ordering on the quoted, lower-cased strings.
        (json!({"model": "s> r"}), Some("/dev/sdb")),
        (
            json!({"model": "s>= samsung ssd 980"}),
            Some("/dev/nvme0n1"),
        ),
        (json!({"model": "s< r"}), Some("/dev/sda")),
        (json!({"model": "s<= qemu harddisk"}), Some("/dev/sda")),
        (json!({"model": "s< qemu harddisk"}), None),
        // <in>, <all-in>, <or>.
        (json!({"model": "<in> samsung"}), Some("/dev/sdb")),
        (json!({"model": "<in> 980"}), Some("/dev/nvme0n1")),
        (json!({"model": "<in> SSD 9"}), Some("/dev/nvme0n1")),
        // `<in> 20` must not match the %20 that quoting makes of a space.
        (json!({"model": "<in> 20"}), None),
        (
            json!({"model": "<all-in> samsung pro"}),
            Some("/dev/nvme0n1"),
        ),
        (json!({"model": "<all-in> samsung"}), Some("/dev/sdb")),
        (json!({"model": "<all-in> samsung qemu"}), None),
        (
            json!({"model": "<or> foo <or> samsung ssd 980 pro 1tb"}),
            Some("/dev/nvme0n1"),
        ),
        (
            json!({"model": "<or> Samsung SSD 860 <or> qemu harddisk"}),
            Some("/dev/sda"),
        ),
        (json!({"model": "<or> foo"}), None),
        // Without a leading operator the whole text is the value.
        (json!({"model": "a <or> b"}), None),
        (json!({"vendor": "ata", "size": 10}), Some("/dev/sdb")),
        (json!({"vendor": "<in> at"}), Some("/dev/sda")),
        (json!({"vendor": "0X1AF4"}), Some("/dev/vda")),
        // A device without the attribute fails everything but the negations.
        (json!({"vendor": "<in> a", "size": "> 900"}), None),
        (json!({"vendor": "s< zzz", "size": "> 900"}), None),
        (
            json!({"vendor": "s!= ata", "size": "> 900"}),
            Some("/dev/nvme0n1"),
        ),
    ]);
}

#[test]
fn identifier_lists_and_list_hints() {
    check_table(&[
        (json!({"serial": "QM00001"}), Some("/dev/sda")),
        // Any of the device's serials will do.
        (
            json!({"serial": "ATA_QEMU_HARDDISK_QM00001"}),
            Some("/dev/sda"),
        ),
        (json!({"serial": "qm00001"}), Some("/dev/sda")),
        (json!({"serial": "<in> nb0k"}), Some("/dev/sdb")),
        // A list hint: any element matching.
        (
            json!({"serial": ["nope", "S5GXNF0R123456"]}),
            Some("/dev/nvme0n1"),
        ),
        (
            json!({"serial": ["nope", "<in> overlay"]}),
            Some("/dev/vda"),
        ),
        (json!({"serial": ["nope"]}), None),
        (json!({"wwn": "0x5002538E40A1B2C3"}), Some("/dev/sdb")),
        (json!({"wwn": "<in> eui."}), Some("/dev/nvme0n1")),
        (
            json!({"wwn": ["0x1", "0x5000c500a1b2c3d4"]}),
            Some("/dev/sda"),
        ),
        (
            json!({"wwn_with_extension": "0x5000c500a1b2c3d4"}),
            Some("/dev/sda"),
        ),
        (
            json!({"wwn_vendor_extension": "0xABCDEF"}),
            Some("/dev/vda"),
        ),
        (
            json!({"wwn_vendor_extension": "<in> 0x", "size": "< 20"}),
            None,
        ),
        // Numeric operators on string attributes read the value as a number.
        (json!({"serial": "== 7"}), Some("/dev/vda")),
        (json!({"serial": "<range-in> ( 6 8 )"}), Some("/dev/vda")),
        (json!({"serial": "> 100"}), None),
        (json!({"hctl": ">= 1"}), None),
    ]);
}

#[test]
fn name_hctl_by_path_tran() {
    check_table(&[
        (json!({"name": "/dev/sdb"}), Some("/dev/sdb")),
        // IPA normalises a bare kernel name to /dev/...
        (json!({"name": "sdb"}), Some("/dev/sdb")),
        (json!({"name": "SDB"}), Some("/dev/sdb")),
        (json!({"name": "s== nvme0n1"}), Some("/dev/nvme0n1")),
        (json!({"name": "/dev/sdz"}), None),
        (json!({"name": "<or> sdz <or> /dev/vda"}), Some("/dev/vda")),
        (json!({"name": "<in> nvme"}), Some("/dev/nvme0n1")),
        (json!({"name": "<in> da"}), Some("/dev/sda")),
        (json!({"name": "s!= /dev/sda"}), Some("/dev/sdb")),
        (json!({"name": "s!= sda"}), Some("/dev/sdb")),
        (json!({"name": "s>= sdc"}), Some("/dev/vda")),
        (json!({"name": "s< /dev/sda"}), Some("/dev/nvme0n1")),
        (json!({"hctl": "1:0:0:0"}), Some("/dev/sdb")),
        (json!({"hctl": "<in> 0:0:0"}), Some("/dev/sda")),
        (json!({"hctl": "2:0:0:0"}), None),
        (
            json!({"by_path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"}),
            Some("/dev/sda"),
        ),
        (json!({"by_path": "<in> ata-1"}), Some("/dev/sda")),
        (json!({"tran": "NVME"}), Some("/dev/nvme0n1")),
        (
            json!({"tran": "sata", "rotational": false}),
            Some("/dev/sdb"),
        ),
        (json!({"tran": "sas"}), None),
        (json!({"tran": "s!= sata"}), Some("/dev/nvme0n1")),
    ]);
}

/// `by_path` as IPA's `device_hints` treats it (checked against IPA 13): the whole link,
/// case-insensitively, with no prefix normalisation.
#[test]
fn by_path_is_compared_whole() {
    check_table(&[
        (
            json!({"by_path": "/dev/disk/by-path/PCI-0000:00:1F.2-ATA-1"}),
            Some("/dev/sda"),
        ),
        (
            json!({"by_path": "s== /dev/disk/by-path/pci-0000:00:1f.2-ata-1"}),
            Some("/dev/sda"),
        ),
        // Unlike `name`, no prefix is added: IPA finds no device for these.
        (json!({"by_path": "pci-0000:00:1f.2-ata-1"}), None),
        (
            json!({"by_path": "disk/by-path/pci-0000:00:1f.2-ata-1"}),
            None,
        ),
        // A partial name needs <in>; the compat and the new ATA names are different links.
        (
            json!({"by_path": "<in> pci-0000:00:1f.2"}),
            Some("/dev/sda"),
        ),
        (
            json!({"by_path": "/dev/disk/by-path/pci-0000:00:1f.2-ata-1.0"}),
            None,
        ),
        (
            json!({"by_path": "<or> /dev/disk/by-path/x <or> /dev/disk/by-path/pci-0000:00:1f.2-ata-1"}),
            Some("/dev/sda"),
        ),
    ]);
}

#[test]
fn rotational_and_combinations() {
    check_table(&[
        (json!({"rotational": false}), Some("/dev/sdb")),
        (json!({"rotational": true}), Some("/dev/sda")),
        (json!({"rotational": "true"}), Some("/dev/sda")),
        (json!({"rotational": "False"}), Some("/dev/sdb")),
        (
            json!({"rotational": " no ", "tran": "nvme"}),
            Some("/dev/nvme0n1"),
        ),
        (json!({"rotational": 0}), Some("/dev/sdb")),
        (json!({"rotational": "1"}), Some("/dev/sda")),
        (
            json!({"rotational": "on", "size": "> 10"}),
            Some("/dev/vda"),
        ),
        (json!({"rotational": "t", "size": "> 1000"}), None),
        // Every hint must match.
        (
            json!({"vendor": "ata", "rotational": false, "size": ">= 10"}),
            Some("/dev/sdb"),
        ),
        (
            json!({"vendor": "ata", "rotational": true, "size": ">= 10"}),
            None,
        ),
        (
            json!({"model": "<in> samsung", "size": "<range-in> [ 100 2000 ]", "tran": "nvme"}),
            Some("/dev/nvme0n1"),
        ),
    ]);
}

#[test]
fn bool_from_string_is_strict() {
    let table: &[(Value, Option<bool>)] = &[
        (json!(true), Some(true)),
        (json!(false), Some(false)),
        (json!(1), Some(true)),
        (json!(0), Some(false)),
        (json!(2), None),
        (json!("1"), Some(true)),
        (json!("0"), Some(false)),
        (json!("t"), Some(true)),
        (json!("F"), Some(false)),
        (json!("TRUE"), Some(true)),
        (json!("false"), Some(false)),
        (json!("On"), Some(true)),
        (json!("off"), Some(false)),
        (json!("y"), Some(true)),
        (json!("n"), Some(false)),
        (json!("yes"), Some(true)),
        (json!(" No "), Some(false)),
        (json!("maybe"), None),
        (json!(""), None),
        (json!("truee"), None),
        (json!(null), None),
        (json!([true]), None),
        (json!(1.0), None),
    ];
    for (value, expected) in table {
        assert_eq!(bool_from_value(value).ok(), *expected, "{value}");
    }
}

#[test]
fn quote_is_pythons() {
    let table = [
        ("abc", "abc"),
        ("ABC09", "ABC09"),
        ("a b", "a%20b"),
        ("/dev/sda", "/dev/sda"),
        ("0:0:0:0", "0%3A0%3A0%3A0"),
        ("_.-~", "_.-~"),
        ("a+b=c&d?", "a%2Bb%3Dc%26d%3F"),
        ("%", "%25"),
        ("<in>", "%3Cin%3E"),
        ("[ 10 20 )", "%5B%2010%2020%20%29"),
        ("é", "%C3%A9"),
        ("\u{2603}", "%E2%98%83"),
        ("", ""),
    ];
    for (input, expected) in table {
        assert_eq!(quote(input), expected, "{input:?}");
    }
    assert_eq!(
        normalise_device_value(" QEMU HARDDISK "),
        Some("qemu%20harddisk".into())
    );
    assert_eq!(normalise_device_value("   "), None);
}

#[test]
fn parsed_conditions() {
    let table: &[(Value, Condition)] = &[
        (
            json!({"size": 10}),
            Condition::Number {
                op: NumOp::Eq,
                value: 10.0,
            },
        ),
        (
            json!({"size": "= 10"}),
            Condition::Number {
                op: NumOp::Ge,
                value: 10.0,
            },
        ),
        (
            json!({"size": "<or> 1 <or> 2"}),
            Condition::AnyOf(vec![
                Condition::Number {
                    op: NumOp::Eq,
                    value: 1.0,
                },
                Condition::Number {
                    op: NumOp::Eq,
                    value: 2.0,
                },
            ]),
        ),
        (
            json!({"size": "<range-in> ( 1 2 ]"}),
            Condition::Range {
                low: RangeBound {
                    value: 1.0,
                    inclusive: false,
                },
                high: RangeBound {
                    value: 2.0,
                    inclusive: true,
                },
            },
        ),
        (
            json!({"model": "Foo Bar"}),
            Condition::Text {
                op: StrOp::Eq,
                value: "foo%20bar".into(),
            },
        ),
        (
            json!({"model": "s>= B"}),
            Condition::Text {
                op: StrOp::Ge,
                value: "b".into(),
            },
        ),
        (
            json!({"name": "sda"}),
            Condition::Text {
                op: StrOp::Eq,
                value: "/dev/sda".into(),
            },
        ),
        (
            json!({"name": "<or> sda <or> /dev/sdb"}),
            Condition::AnyOf(vec![
                Condition::Text {
                    op: StrOp::Eq,
                    value: "/dev/sda".into(),
                },
                Condition::Text {
                    op: StrOp::Eq,
                    value: "/dev/sdb".into(),
                },
            ]),
        ),
        (
            json!({"model": "<in> Foo Bar"}),
            Condition::Contains("foo bar".into()),
        ),
        (
            json!({"model": "<all-in> a  b"}),
            Condition::ContainsAll(vec!["a".into(), "b".into()]),
        ),
        (json!({"rotational": "yes"}), Condition::Bool(true)),
    ];
    for (hints, expected) in table {
        let parsed = parse(hints);
        assert_eq!(&parsed.hints()[0].condition, expected, "{hints}");
    }
}

#[test]
fn invalid_hints() {
    let table: &[(Value, &str)] = &[
        (json!({"foo": 1}), "unknown root device hint(s) foo"),
        (json!({"size": 1, "bar": 1, "baz": 2}), "bar, baz"),
        (json!({"size": 0}), "not a positive integer"),
        (json!({"size": -1}), "not a positive integer"),
        (json!({"size": "> 0"}), "not a positive integer"),
        (json!({"size": "abc"}), "not an integer"),
        (json!({"size": 10.5}), "not an integer"),
        (json!({"size": "10 GiB"}), "not an integer"),
        (json!({"size": true}), "positive integer"),
        (json!({"size": null}), "positive integer"),
        (json!({"size": "s== 10"}), "does not apply to size"),
        (json!({"size": "<in> 10"}), "does not apply to size"),
        (json!({"size": "<all-in> 10"}), "does not apply to size"),
        (json!({"size": ">="}), ">= needs a value"),
        (json!({"size": "<or>"}), "<or> needs a value"),
        (json!({"size": "<or> 10 <or>"}), "after every <or>"),
        (json!({"size": "<or> 10 <or> x"}), "not an integer"),
        (
            json!({"size": "<range-in> [ 20 10 ]"}),
            "greater than the upper bound",
        ),
        (json!({"size": "<range-in> 10 20"}), "needs an interval"),
        (json!({"size": "<range-in> [ 10 ]"}), "needs an interval"),
        (json!({"size": "<range-in> { 10 20 }"}), "needs an interval"),
        (json!({"size": "<range-in> [ a 20 ]"}), "not a number"),
        (json!({"size": ""}), "empty"),
        (json!({"model": ""}), "empty"),
        (json!({"model": "   "}), "empty"),
        (json!({"model": 5}), "model must be a string"),
        (json!({"model": null}), "model must be a string"),
        (json!({"model": ["a"]}), "takes a single string"),
        (json!({"serial": []}), "list of values is empty"),
        (json!({"serial": [1]}), "not a string"),
        (json!({"serial": ["ok", ""]}), "empty"),
        (json!({"rotational": "maybe"}), "not a boolean"),
        (json!({"rotational": 2}), "not a boolean"),
        (json!({"rotational": null}), "not a boolean"),
        (json!({"model": "< foo"}), "write \"s== < foo\""),
        (json!({"model": "s=="}), "s== needs a value"),
        (json!({"model": "<in>"}), "<in> needs a value"),
        (json!({"model": "<range-in> [a b]"}), "not a number"),
        (json!([1, 2]), "must be a JSON object"),
        (json!(5), "must be a JSON object"),
        (json!("not json"), "not valid JSON"),
        (json!("[1]"), "must be a JSON object"),
    ];
    let mut failures = Vec::new();
    for (hints, expected) in table {
        match RootDeviceHints::from_value(hints) {
            Err(e) if e.to_string().contains(expected) => {}
            other => failures.push(format!(
                "{hints}: expected error ~ {expected:?}, got {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every bad hint is reported at once, each naming its key.
    let e = RootDeviceHints::from_value(&json!({"size": 0, "model": 5}))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hint \"size\"") && e.contains("hint \"model\""),
        "{e}"
    );
}

#[test]
fn empty_hints_are_no_hints() {
    for v in [json!(null), json!({}), json!(""), json!("  "), json!("{}")] {
        assert_eq!(RootDeviceHints::from_value(&v), Ok(None), "{v}");
    }
    // A JSON string holding hints parses like the object.
    assert_eq!(
        pick(&json!("{\"size\": \">= 11\"}")),
        Some("/dev/nvme0n1".into())
    );
}

#[test]
fn explanations_show_device_values() {
    let devices = devices();
    let hints = parse(&json!({"size": ">= 100", "rotational": true, "vendor": "ata"}));
    assert_eq!(hints.first_match(&devices), None);
    let mismatches = hints.mismatches(&devices[0]);
    assert_eq!(mismatches.len(), 1);
    assert_eq!(
        mismatches[0].to_string(),
        "size is 5 GiB (5368709120 bytes), hint wants \">= 100\""
    );
    let nvme = hints.mismatches(&devices[2]);
    let text: Vec<String> = nvme.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "vendor is unset, hint wants \"ata\"",
            "rotational is false, hint wants true"
        ]
    );
    let all = hints.explain(&devices);
    assert!(
        all.contains("/dev/vda (size is ~20.500 GiB (22011707392 bytes), hint wants \">= 100\", vendor is \"0x1af4\", hint wants \"ata\")"),
        "{all}"
    );
    let serial = parse(&json!({"serial": "x"}));
    assert!(
        serial
            .explain(&devices)
            .contains("serial is [\"QM00001\", \"ATA_QEMU_HARDDISK_QM00001\"]"),
        "{}",
        serial.explain(&devices)
    );
    // Truncated, not rounded.
    let almost = HintTarget {
        name: "/dev/x".into(),
        size: 10 * GIB - 1,
        ..HintTarget::default()
    };
    assert!(
        parse(&json!({"size": 10}))
            .explain(&[almost])
            .contains("~9.999 GiB"),
    );
    assert_eq!(
        hints.to_string(),
        serde_json::to_string(hints.original()).unwrap()
    );
}

#[test]
fn add_identifier_dedups() {
    let mut t = HintTarget::default();
    t.add_identifier(HintKey::Serial, "a");
    t.add_identifier(HintKey::Serial, " a ");
    t.add_identifier(HintKey::Serial, "");
    t.add_identifier(HintKey::Serial, "b");
    t.add_identifier(HintKey::Wwn, "w");
    t.add_identifier(HintKey::Model, "ignored");
    assert_eq!(t.serial, vec!["a", "b"]);
    assert_eq!(t.wwn, vec!["w"]);
    assert_eq!(t.model, None);
}

fn node(instance_info: Value, properties: Value) -> Node {
    serde_json::from_value(json!({"instance_info": instance_info, "properties": properties}))
        .unwrap()
}

#[test]
fn node_hints_instance_info_first() {
    let n = node(
        json!({"root_device": {"name": "sdb"}}),
        json!({"root_device": {"name": "sda"}}),
    );
    let hints = root_device_hints(&n).unwrap().unwrap();
    assert_eq!(hints.original()["name"], "sdb");

    // Empty instance_info hints fall back to properties; a JSON string is accepted.
    for empty in [json!({}), json!(null), json!(""), json!("{}")] {
        let n = node(
            json!({"root_device": empty}),
            json!({"root_device": "{\"size\": 10}"}),
        );
        let hints = root_device_hints(&n).unwrap().unwrap();
        assert_eq!(hints.original()["size"], 10);
    }
    assert_eq!(root_device_hints(&Node::default()).unwrap(), None);

    // Invalid hints are an error naming where they came from (no silent fallback).
    let n = node(
        json!({"root_device": {"colour": "red"}}),
        json!({"root_device": {"size": 10}}),
    );
    let e = root_device_hints(&n).unwrap_err();
    assert!(matches!(e, crate::HardwareError::InvalidArgs(_)));
    assert_eq!(e.code(), 400);
    assert!(
        e.to_string().starts_with(
            "invalid root device hints in instance_info.root_device: unknown root device \
             hint(s) colour; valid hints are size, model"
        ),
        "{e}"
    );
    let n = node(json!({}), json!({"root_device": "{oops"}));
    let e = root_device_hints(&n).unwrap_err().to_string();
    assert!(
        e.contains("properties.root_device") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[test]
fn skip_list_parsing() {
    let n = node(
        json!({}),
        json!({"skip_block_devices": [
            {"name": "/dev/sda"},
            {"volume_name": "large"},
            {"serial": "<in> nb0k", "rotational": false},
        ]}),
    );
    let skip = SkipList::from_node(&n).unwrap();
    assert!(!skip.is_empty());
    assert_eq!(skip.disk_hints().len(), 2);
    assert_eq!(skip.raid_volume_names(), ["large"]);
    let devices = devices();
    let skipped: Vec<&str> = devices
        .iter()
        .filter(|d| skip.matching_entry(d).is_some())
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(skipped, vec!["/dev/sda", "/dev/sdb"]);

    for empty in [json!(null), json!([]), json!(""), json!("[]")] {
        assert!(SkipList::from_value(&empty).unwrap().is_empty(), "{empty}");
    }
    assert!(SkipList::from_node(&Node::default()).unwrap().is_empty());
    let from_string = SkipList::from_value(&json!("[{\"size\": 5}]")).unwrap();
    assert_eq!(from_string.disk_hints().len(), 1);

    let table: &[(Value, &str)] = &[
        (json!({"name": "sda"}), "expected a list"),
        (json!("nope"), "not valid JSON"),
        (json!(["sda"]), "entry 0 (\"sda\") is not a dictionary"),
        (json!([{"name": "sda"}, {}]), "entry 1 is empty"),
        (
            json!([{"volume_name": ""}]),
            "volume_name must be a non-empty string",
        ),
        (
            json!([{"volume_name": 3}]),
            "volume_name must be a non-empty string",
        ),
        (
            json!([{"volume_name": "x", "size": 1}]),
            "takes no other key",
        ),
        (json!([{"size": "huge"}]), "entry 0"),
        (
            json!([{"colour": "red"}]),
            "unknown root device hint(s) colour",
        ),
    ];
    for (value, expected) in table {
        let e = SkipList::from_value(value).unwrap_err().to_string();
        assert!(e.contains(expected), "{value}: {e}");
    }
    let bad = node(json!({}), json!({"skip_block_devices": [{"size": 0}]}));
    let e = SkipList::from_node(&bad).unwrap_err();
    assert!(matches!(e, crate::HardwareError::InvalidArgs(_)));
    assert!(
        e.to_string()
            .starts_with("invalid properties.skip_block_devices: entry 0")
    );
}
