use std::time::{Duration, Instant};

use hardware_managers::lldp::{parse_lldpdu, vlan_ids};

use super::beacon::lldp_for_port;
use super::config::{Config, Endpoint, PortSpec};
use super::frame::{Frame, is_link_local};
use super::switch::{Drop, Forwarding, MAC_AGEING, Mode, Switch};

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const BCAST: [u8; 6] = [0xff; 6];

fn untagged(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0x5a; 46]);
    f
}

fn tagged(dst: [u8; 6], src: [u8; 6], vid: u16) -> Vec<u8> {
    Frame::parse(&untagged(dst, src)).unwrap().tagged(vid)
}

/// Ports: 0 trunk, 1 access 100, 2 access 200, 3 trunk, 4 access 100.
fn switch(native: Option<u16>) -> Switch {
    Switch::new(
        vec![
            Mode::Trunk,
            Mode::Access(100),
            Mode::Access(200),
            Mode::Trunk,
            Mode::Access(100),
        ],
        native,
    )
}

fn ports(f: &Forwarding) -> Vec<usize> {
    f.out.iter().map(|(p, _)| *p).collect()
}

#[test]
fn frame_tag_round_trip() {
    let raw = untagged(BCAST, A);
    let frame = Frame::parse(&raw).unwrap();
    assert_eq!(frame.vid, None);
    assert_eq!(frame.ethertype(), 0x0806);
    let t = frame.tagged(100);
    assert_eq!(&t[12..16], &[0x81, 0x00, 0x00, 100]);
    assert_eq!(t.len(), raw.len() + 4);
    let back = Frame::parse(&t).unwrap();
    assert_eq!(back.vid, Some(100));
    assert_eq!(back.ethertype(), 0x0806);
    assert_eq!(back.untagged(), raw);
    // Priority bits survive re-tagging.
    let mut p = t.clone();
    p[14] |= 0xa0;
    assert_eq!(Frame::parse(&p).unwrap().tagged(200)[14] & 0xe0, 0xa0);
}

#[test]
fn bad_frames_are_rejected_not_panicking() {
    assert_eq!(Frame::parse(&[]), None);
    assert_eq!(Frame::parse(&[0; 13]), None);
    // A tag without an inner ethertype.
    let mut t = BCAST.to_vec();
    t.extend_from_slice(&A);
    t.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    assert_eq!(Frame::parse(&t), None);
    assert_eq!(Frame::parse(&vec![0; 9023]), None);
    let mut s = switch(None);
    let now = Instant::now();
    assert_eq!(s.forward(0, &t, now), Err(Drop::Malformed));
    assert_eq!(s.forward(9, &untagged(BCAST, A), now), Err(Drop::Malformed));
    for len in 0..40 {
        let _ = s.forward(0, &vec![0x81; len], now);
    }
}

#[test]
fn access_to_trunk_is_tagged_and_flooded_within_the_vlan() {
    let mut s = switch(None);
    let f = s.forward(1, &untagged(BCAST, A), Instant::now()).unwrap();
    assert_eq!(ports(&f), vec![0, 3, 4]);
    assert_eq!(f.out[0].1, tagged(BCAST, A, 100));
    assert_eq!(f.out[2].1, untagged(BCAST, A));
    assert_eq!(f.learned, Some((100, A)));
}

#[test]
fn trunk_to_access_is_untagged() {
    let mut s = switch(None);
    let f = s
        .forward(0, &tagged(BCAST, A, 200), Instant::now())
        .unwrap();
    assert_eq!(ports(&f), vec![2, 3]);
    assert_eq!(f.out[0].1, untagged(BCAST, A));
    assert_eq!(f.out[1].1, tagged(BCAST, A, 200));
    // A VLAN no access port has still crosses trunks.
    let f = s
        .forward(0, &tagged(BCAST, A, 300), Instant::now())
        .unwrap();
    assert_eq!(ports(&f), vec![3]);
}

#[test]
fn learned_unicast_goes_to_one_port_never_back() {
    let mut s = switch(None);
    let now = Instant::now();
    s.forward(1, &untagged(BCAST, A), now).unwrap();
    // B (on the trunk, VLAN 100) answers A: only port 1, untagged.
    let f = s.forward(0, &tagged(A, B, 100), now).unwrap();
    assert_eq!(f.out, vec![(1, untagged(A, B))]);
    assert_eq!(f.learned, Some((100, B)));
    // Learning is per VLAN: A in VLAN 200 is unknown, so it floods VLAN 200.
    let f = s.forward(0, &tagged(A, B, 200), now).unwrap();
    assert_eq!(ports(&f), vec![2, 3]);
    // A frame to a MAC learned on the ingress port goes nowhere.
    assert_eq!(
        s.forward(1, &untagged(A, B), now),
        Err(Drop::NoEgress),
        "frames never go back to their ingress port"
    );
    // Re-learning on the same port is not news; a move is.
    assert_eq!(
        s.forward(1, &untagged(BCAST, A), now).unwrap().learned,
        None
    );
    assert_eq!(
        s.forward(4, &untagged(BCAST, A), now).unwrap().learned,
        Some((100, A))
    );
    // Aged entries flood again.
    let later = now + MAC_AGEING + Duration::from_secs(1);
    let f = s.forward(0, &tagged(A, B, 100), later).unwrap();
    assert_eq!(ports(&f), vec![1, 3, 4]);
}

#[test]
fn untagged_on_trunk_needs_a_native_vlan() {
    let mut s = switch(None);
    let now = Instant::now();
    assert_eq!(
        s.forward(0, &untagged(BCAST, A), now),
        Err(Drop::UntaggedOnTrunk)
    );
    let mut s = switch(Some(100));
    let f = s.forward(0, &untagged(BCAST, A), now).unwrap();
    assert_eq!(ports(&f), vec![1, 3, 4]);
    // The native VLAN leaves trunks untagged too.
    assert_eq!(f.out[1].1, untagged(BCAST, A));
    let f = s.forward(1, &untagged(BCAST, B), now).unwrap();
    assert_eq!(f.out[0], (0, untagged(BCAST, B)));
}

#[test]
fn access_ports_drop_foreign_tags_and_accept_their_own() {
    let mut s = switch(None);
    let now = Instant::now();
    assert_eq!(
        s.forward(1, &tagged(BCAST, A, 200), now),
        Err(Drop::WrongVlan(200))
    );
    let f = s.forward(1, &tagged(BCAST, A, 100), now).unwrap();
    assert_eq!(f.out[2], (4, untagged(BCAST, A)));
    assert_eq!(
        s.forward(0, &tagged(BCAST, A, 4095), now),
        Err(Drop::WrongVlan(4095))
    );
}

#[test]
fn link_local_frames_are_not_forwarded() {
    let lldp = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
    assert!(is_link_local(&lldp));
    assert!(!is_link_local(&[0x01, 0x80, 0xc2, 0, 0, 0x10]));
    let mut s = switch(None);
    assert_eq!(
        s.forward(1, &untagged(lldp, A), Instant::now()),
        Err(Drop::LinkLocal)
    );
}

#[test]
fn lldp_beacon_announces_port_and_vlans() {
    let frame = lldp_for_port("guest0", &[100, 200], Some(10));
    assert_eq!(&frame[..6], &[0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    assert_eq!(&frame[12..14], &[0x88, 0xcc]);
    let tlvs = parse_lldpdu(&frame[14..]).unwrap();
    assert_eq!(vlan_ids(&tlvs), vec![100, 200]);
    assert_eq!(tlvs[1].value, b"\x05guest0");
    assert_eq!(tlvs[2].value, vec![0, 120]);
    // Management address 198.51.100.254, then the port VLAN id 10.
    assert_eq!(tlvs[4].tlv_type, 8);
    assert_eq!(&tlvs[4].value[..6], &[5, 1, 198, 51, 100, 254]);
    assert_eq!(tlvs[5].value, vec![0x00, 0x80, 0xc2, 1, 0, 10]);
}

#[test]
fn command_line() {
    let args = [
        "--port",
        "udp:4000:4001,trunk,name=guest0",
        "--port",
        "tap:tap0,access=100",
        "--port",
        "udp:4002:4003",
        "--native-vlan",
        "10",
        "--lldp",
        "100,200",
        "--log",
        "/tmp/x",
    ];
    let c = Config::parse(args.iter().map(|s| s.to_string())).unwrap();
    assert_eq!(
        c.ports,
        vec![
            PortSpec {
                endpoint: Endpoint::Udp {
                    local: 4000,
                    remote: 4001
                },
                mode: Mode::Trunk,
                name: "guest0".into()
            },
            PortSpec {
                endpoint: Endpoint::Tap("tap0".into()),
                mode: Mode::Access(100),
                name: "tap0".into()
            },
            PortSpec {
                endpoint: Endpoint::Udp {
                    local: 4002,
                    remote: 4003
                },
                mode: Mode::Access(1),
                name: "udp4002".into()
            },
        ]
    );
    assert_eq!(c.native_vlan, Some(10));
    assert_eq!(c.lldp, vec![100, 200]);
    assert_eq!(c.log.as_deref(), Some("/tmp/x"));
    for bad in [
        "udp:1",
        "udp:1:2:3",
        "tap:",
        "tap:0123456789abcdef",
        "udp:1:2,access=0",
        "udp:1:2,access=4095",
        "udp:1:2,bogus",
        "eth:x",
    ] {
        assert!(PortSpec::parse(bad).is_err(), "{bad}");
    }
    assert!(Config::parse(Vec::new()).is_err());
    assert!(Config::parse(["--lldp".to_string()]).is_err());
}
