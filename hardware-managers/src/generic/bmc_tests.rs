//! BMC rules over captured ipmitool outputs. The captures live in
//! `hardware-managers/tests/fixtures/bmc/<case>/` with their source in each case's `SOURCE`
//! (real servers: openshift/assisted-installer-agent's `src/inventory/bmc_test.go`, a Dell
//! iDRAC in okko123/handbook, an HPE G8 iLO; IPv6 address blocks from ironic-python-agent's
//! `tests/unit/hardware_responses.py`). The same cases are compared with IPA itself in
//! `tests/tests/bmc_oracle.rs`.

use std::path::PathBuf;

use super::*;
use crate::runner::{CommandRunner, RecordingRunner};

fn fixture(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bmc")
        .join(case)
}

/// The three answers for a fixture case, with the ipmitool command lines run.
fn scan(case: &str) -> (String, String, Option<String>, Vec<String>) {
    let runner = RecordingRunner::replaying(fixture(case));
    let run = |a: &[&str]| ipmitool(&runner, a);
    let addr = bmc_address(run).unwrap();
    let v6 = bmc_v6address(run).unwrap();
    let mac = bmc_mac(run).unwrap();
    (addr, v6, mac, runner.calls())
}

#[test]
fn ipv4_dhcp_on_a_later_channel() {
    let (addr, v6, mac, calls) = scan("ipv4_dhcp");
    assert_eq!(addr, "10.16.218.144");
    assert_eq!(v6, "::/0");
    assert_eq!(mac.as_deref(), Some("4c:d9:8f:03:e8:74"));
    // The address scan stops at the first channel with an address.
    assert_eq!(
        calls[..5],
        [1, 2, 3, 4, 5].map(|c| format!("ipmitool lan print {c}"))
    );
    assert_eq!(calls[5], "ipmitool lan6 print 1 enables");
}

#[test]
fn ipv4_static() {
    let (addr, v6, mac, _) = scan("ipv4_static_idrac");
    assert_eq!(addr, "172.16.5.46");
    assert_eq!(v6, "::/0");
    assert_eq!(mac.as_deref(), Some("18:03:73:f5:ef:87"));
}

#[test]
fn slaac_link_local_is_an_address_but_gives_no_mac() {
    let (addr, v6, mac, calls) = scan("slaac_hpe");
    assert_eq!(addr, "0.0.0.0");
    assert_eq!(v6, "fe80::5a20:ffff:feff:ffff");
    assert_eq!(mac, None);
    // Every channel is tried for the IPv4 address (0.0.0.0 does not stop the scan).
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("ipmitool lan print"))
            .count(),
        11 + 11
    );
}

#[test]
fn ipv6_static_after_unset_dynamic() {
    let (addr, v6, mac, calls) = scan("ipv6_static");
    assert_eq!(addr, "0.0.0.0");
    assert_eq!(v6, "2001:5678:5678:5678:5678:5678:5678:5678");
    assert_eq!(mac.as_deref(), Some("58:20:b1:ff:ff:ff"));
    let dynamic = calls
        .iter()
        .position(|c| c == "ipmitool lan6 print 1 dynamic_addr");
    let fixed = calls
        .iter()
        .position(|c| c == "ipmitool lan6 print 1 static_addr");
    assert!(dynamic.is_some() && dynamic < fixed, "{calls:?}");
}

#[test]
fn ipv6_dhcpv6_before_static() {
    let (addr, v6, mac, calls) = scan("ipv6_dhcpv6");
    assert_eq!(addr, "10.16.218.144");
    assert_eq!(v6, "2001:1234:1234:1234:1234:1234:1234:1234");
    assert_eq!(mac.as_deref(), Some("58:20:b1:ff:ff:ff"));
    assert!(!calls.contains(&"ipmitool lan6 print 1 static_addr".to_string()));
}

#[test]
fn unconfigured_bmc() {
    let (addr, v6, mac, _) = scan("unconfigured");
    assert_eq!(addr, "0.0.0.0");
    assert_eq!(v6, "::/0");
    assert_eq!(mac, None);
}

#[test]
fn erroring_channels() {
    let (addr, v6, mac, _) = scan("channel_errors");
    assert_eq!(addr, "10.16.218.144");
    assert_eq!(v6, "::/0");
    // IPA's quirk, kept: lan6 print failing with anything but "Invalid channel" leaves an
    // empty output, which counts as a usable IPv6 address.
    assert_eq!(mac.as_deref(), Some("58:20:b1:ff:ff:ff"));
}

#[test]
fn missing_ipmitool_reports_the_unset_values() {
    let (addr, v6, mac, _) = scan("no_ipmitool");
    assert_eq!(addr, "0.0.0.0");
    assert_eq!(v6, "::/0");
    assert_eq!(mac, None);
}

#[test]
fn channel_scan() {
    // ipmitool runs but no channel answers: the "unset" values, and no MAC.
    let no_channel = |_: &[&str]| Ok(Ran::failed(1, "Invalid channel: 1"));
    assert_eq!(bmc_address(no_channel).as_deref(), Ok("0.0.0.0"));
    assert_eq!(bmc_v6address(no_channel).as_deref(), Ok("::/0"));
    assert_eq!(bmc_mac(no_channel), Ok(None));
    // ipmitool hangs or cannot start: no BMC at all.
    assert_eq!(bmc_address(|_: &[&str]| Err(())), Err(()));
    assert_eq!(bmc_v6address(|_: &[&str]| Err(())), Err(()));
    assert_eq!(bmc_mac(|_: &[&str]| Err(())), Err(()));
}

#[test]
fn mac_from_routable_ipv6_channel() {
    let lan6 = "IPv6 Dynamic Address 0:\n    Source/Type:    SLAAC\n    Address:        2001:db8::9/64\n    Status:         active\n";
    let run = |args: &[&str]| match args {
        ["lan", "print", "1"] => Ok(Ran::ok(
            "IP Address : 0.0.0.0\nMAC Address : 00:11:22:33:44:55\n",
        )),
        ["lan6", "print", "1"] => Ok(Ran::ok(lan6)),
        _ => Ok(Ran::failed(1, "Invalid channel: 2")),
    };
    assert_eq!(bmc_mac(run), Ok(Some("00:11:22:33:44:55".to_string())));
}

#[test]
fn awk_emulation() {
    let lines = awk_fields(
        "IP Address Source       : DHCP Address\nIP Address              : 10.1.2.3\nMAC Address : aa:bb:cc:dd:ee:ff\nShort IP Address:\n",
        is_ip_or_mac_line,
        Field::Nth(4),
    );
    // `IP Address Source` has text before its colon; a line with fewer fields prints "".
    assert_eq!(lines, ["10.1.2.3", "aa:bb:cc:dd:ee:ff", ""]);
    assert_eq!(
        awk_fields(
            "IPv6/IPv4 Addressing Enables: both\n",
            is_enables_line,
            Field::Last
        ),
        ["both"]
    );
    let lan6 = "IPv6 Static Address 0:\n    Enabled: yes\n    Address: 2001:db8::1/64\nIPv6 Static Router 1:\n    Address: ::\nIPv6 Dynamic Address 12:\n    Address: fe80::1/64\n";
    assert_eq!(
        lan6_section_addresses(lan6),
        ["2001:db8::1/64", "fe80::1/64"]
    );
}

#[test]
fn yaml_and_address_rules() {
    assert!(yaml_truthy("yes") && yaml_truthy("true") && yaml_truthy("on"));
    assert!(!yaml_truthy("no") && !yaml_truthy("False") && !yaml_truthy("") && !yaml_truthy("0"));
    assert!(is_null_v6("::") && is_null_v6("::/0") && is_null_v6("::/128"));
    assert!(!is_null_v6("::1") && !is_null_v6("::/1234") && !is_null_v6("fe80::/64"));
    assert_eq!(
        py_ip_interface("2001:DB8:0:0::5/64").map(|i| i.to_string()),
        Some("2001:db8::5".to_string())
    );
    assert_eq!(py_ip_interface("2001:db8::5/129"), None);
    assert_eq!(py_ip_interface("2001:db8::5/"), None);
    assert!(yaml_blocks("IPv6 Dynamic Address 0:\n    Address: x\n").is_some());
    assert!(yaml_blocks("not yaml at all").is_none());
    assert!(
        is_mac("AA:bb:cc:dd:ee:ff") && !is_mac("aa:bb:cc:dd:ee") && !is_mac("aa-bb-cc-dd-ee-ff")
    );
}

#[test]
fn missing_ipmitool_is_a_shell_failure_and_timeouts_give_up() {
    let missing = RecordingRunner::new(|p, _| Err(RunnerError::NotFound(p.to_string())));
    let ran = ipmitool(&missing, &["lan", "print", "1"]).unwrap();
    assert_eq!(ran.code, Some(127));
    assert!(ran.stdout.is_empty());
    let hung = RecordingRunner::new(|p, _| Err(RunnerError::TimedOut(p.to_string())));
    assert_eq!(ipmitool(&hung, &["lan", "print", "1"]), Err(()));
    let _: &dyn CommandRunner = &hung;
}
