use std::fs::File;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

fn tlv(tlv_type: u8, value: &[u8]) -> LldpTlv {
    LldpTlv {
        tlv_type,
        value: value.to_vec(),
    }
}

fn sample_tlvs() -> Vec<LldpTlv> {
    vec![
        tlv(tlv_type::CHASSIS_ID, &[4, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        tlv(tlv_type::PORT_ID, b"\x05Ethernet1/7"),
        tlv(tlv_type::TTL, &[0, 120]),
        tlv(tlv_type::SYSTEM_NAME, b"tor-1"),
        vlan_name_tlv(100, "provisioning"),
        vlan_name_tlv(200, "tenant"),
    ]
}

#[test]
fn parse_round_trips_and_keeps_end() {
    let tlvs = sample_tlvs();
    let mut payload = encode_lldpdu(&tlvs).unwrap();
    // Padding after End is ignored.
    payload.extend_from_slice(&[0; 10]);
    let parsed = parse_lldpdu(&payload).unwrap();
    assert_eq!(parsed.len(), tlvs.len() + 1);
    assert_eq!(&parsed[..tlvs.len()], &tlvs[..]);
    assert_eq!(parsed.last(), Some(&tlv(tlv_type::END, &[])));
}

#[test]
fn parse_header_bits() {
    // Type 127 (0xfe << 1), length 0x1ff would need 511 bytes: 0xff 0xff.
    let mut payload = vec![0xff, 0xff];
    payload.extend(vec![7u8; 511]);
    let parsed = parse_lldpdu(&payload).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].tlv_type, 127);
    assert_eq!(parsed[0].value.len(), 511);
    // Type 1, length 256: the ninth length bit comes from the first byte.
    let mut payload = vec![0x03, 0x00];
    payload.extend(vec![1u8; 256]);
    assert_eq!(parse_lldpdu(&payload).unwrap()[0].value.len(), 256);
}

#[test]
fn parse_tolerates_missing_end_and_stray_byte_but_not_truncation() {
    assert_eq!(parse_lldpdu(&[]).unwrap(), vec![]);
    assert_eq!(
        parse_lldpdu(&[0x06, 0x02, 0, 120, 0x55]).unwrap(),
        vec![tlv(3, &[0, 120])]
    );
    assert_eq!(
        parse_lldpdu(&[0x06, 0x02, 0, 120, 0x0a, 0x05, b'a']),
        Err(LldpError::Truncated {
            offset: 4,
            length: 5,
            available: 1
        })
    );
    assert_eq!(
        parse_lldpdu(&vec![0; MAX_LLDPDU_LEN + 1]),
        Err(LldpError::TooLong(MAX_LLDPDU_LEN + 1))
    );
}

#[test]
fn vlan_ids_from_8021_vlan_name_tlvs() {
    let mut tlvs = sample_tlvs();
    tlvs.push(vlan_name_tlv(100, "again"));
    tlvs.push(vlan_name_tlv(0, "invalid"));
    tlvs.push(vlan_name_tlv(4095, "invalid"));
    // Port VLAN id (subtype 1) and another OUI are not VLAN names.
    tlvs.push(tlv(127, &[0x00, 0x80, 0xc2, 1, 0, 42]));
    tlvs.push(tlv(127, &[0x00, 0x12, 0x0f, 3, 0, 43]));
    tlvs.push(tlv(127, &[0x00, 0x80, 0xc2, 3, 0]));
    assert_eq!(vlan_ids(&tlvs), vec![100, 200]);
}

#[test]
fn inventory_is_lower_case_hex() {
    let inv = to_inventory(&[tlv(1, &[0x04, 0xAB, 0x0c]), tlv(0, &[])]);
    assert_eq!(inv, vec![(1, "04ab0c".to_string()), (0, String::new())]);
    let inv = to_inventory(&[vlan_name_tlv(100, "pxe")]);
    assert_eq!(inv[0], (127, "0080c203006403707865".to_string()));
}

#[test]
fn encode_rejects_oversized() {
    assert!(encode_lldpdu(&[tlv(128, &[])]).is_err());
    assert!(encode_lldpdu(&[tlv(1, &[0; 512])]).is_err());
    let frame = lldp_frame([2, 0, 0, 0, 0, 1], &[tlv(3, &[0, 1])]).unwrap();
    assert_eq!(frame.len(), 60);
    assert_eq!(&frame[..6], &LLDP_MULTICAST);
    assert_eq!(&frame[12..14], &[0x88, 0xcc]);
}

/// A network namespace with a veth pair `va` (up) / `vb` (down), removed on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    /// Fails the test loudly where namespaces cannot be made (not root, no `ip`): the capture
    /// is only tested for real.
    fn new(tag: &str) -> NetNs {
        let name = format!("hm-lldp-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot create network namespace {name}: the LLDP capture tests need root and `ip`"
        );
        let ns = NetNs { name };
        ns.ip(&["link", "add", "va", "type", "veth", "peer", "name", "vb"]);
        ns.ip(&["link", "set", "va", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let status = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip -n {} {args:?}", self.name);
    }

    /// Runs `f` on a thread inside the namespace (threads it spawns are inside too).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        thread::spawn(move || {
            let ns = File::open(path).unwrap();
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn captures_a_real_frame_over_veth() {
    let ns = NetNs::new("rx");
    let tlvs = sample_tlvs();
    let frame = lldp_frame([0x02, 0, 0, 0, 0, 0x0a], &tlvs).unwrap();
    let (result, elapsed) = ns.run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let stop = stop.clone();
            thread::spawn(move || {
                let fd = sys::packet_socket("va", LLDP_ETHERTYPE).unwrap();
                // vb comes up only when capture starts: repeat until it is done.
                while !stop.load(Ordering::Relaxed) {
                    let _ = nix::unistd::write(&fd, &frame);
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let start = Instant::now();
        let result = capture(&["vb".to_string()], Duration::from_secs(10));
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        sender.join().unwrap();
        (result, elapsed)
    });
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let got = &result["vb"];
    assert_eq!(&got[..tlvs.len()], &tlvs[..]);
    assert_eq!(got[tlvs.len()].tlv_type, tlv_type::END);
    assert_eq!(vlan_ids(got), vec![100, 200]);
}

#[test]
fn times_out_with_empty_lists() {
    let ns = NetNs::new("to");
    let (result, elapsed) = ns.run(|| {
        let start = Instant::now();
        let names = ["vb".to_string(), "nosuchif0".to_string()];
        (capture(&names, Duration::from_millis(700)), start.elapsed())
    });
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(result.len(), 2);
    assert!(result.values().all(Vec::is_empty));
}

/// `list_network_interfaces` with `collect_lldp`: the peer's TLVs in IPA's `[[type, hex], ...]`
/// form (End TLV included), `[]` for an interface that heard nothing, all within one timeout.
/// The fake root lists the namespace's `vb` and `vd` as NICs (a `device` link), as veths are
/// not inventory interfaces.
#[test]
fn list_network_interfaces_reports_lldp_as_ipa() {
    use crate::HardwareManager;
    use crate::generic::{GenericConfig, GenericHardwareManager};

    let ns = NetNs::new("inv");
    ns.ip(&["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
    ns.ip(&["link", "set", "vc", "up"]);
    let root = tempfile::tempdir().unwrap();
    for (name, mac) in [("vb", "02:00:00:00:00:0b"), ("vd", "02:00:00:00:00:0d")] {
        let dir = root.path().join("sys/class/net").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
        std::os::unix::fs::symlink("../../../devices/virtual", dir.join("device")).unwrap();
    }
    let manager = GenericHardwareManager::new(GenericConfig {
        root: root.path().to_path_buf(),
        collect_lldp: true,
        lldp_timeout: Duration::from_secs(2),
        ..GenericConfig::default()
    });
    let tlvs = sample_tlvs();
    let frame = lldp_frame([0x02, 0, 0, 0, 0, 0x0a], &tlvs).unwrap();
    let (ifaces, elapsed) = ns.run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let stop = stop.clone();
            thread::spawn(move || {
                let fd = sys::packet_socket("va", LLDP_ETHERTYPE).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = nix::unistd::write(&fd, &frame);
                    thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let start = Instant::now();
        let ifaces = manager.list_network_interfaces().unwrap();
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        sender.join().unwrap();
        (ifaces, elapsed)
    });
    // vd waits out the one shared timeout; vb answers within it.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let json: Vec<serde_json::Value> = ifaces
        .iter()
        .map(|i| {
            let v = serde_json::to_value(i).unwrap();
            serde_json::json!({"name": v["name"], "lldp": v["lldp"]})
        })
        .collect();
    assert_eq!(
        json,
        vec![
            serde_json::json!({"name": "vb", "lldp": [
                [1, "04525400123456"],
                [2, "0545746865726e6574312f37"],
                [3, "0078"],
                [5, "746f722d31"],
                [127, "0080c20300640c70726f766973696f6e696e67"],
                [127, "0080c20300c80674656e616e74"],
                [0, ""],
            ]}),
            serde_json::json!({"name": "vd", "lldp": []}),
        ]
    );
}
