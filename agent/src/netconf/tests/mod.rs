//! Parsing and planning real `network_data.json` samples (see `fixtures/README.md`), the
//! bond/VLAN/IPv6 cases, malformed inputs, and applying plans through recording and failing
//! [`NetOps`].

use std::net::IpAddr;

use super::*;

fn nic(name: &str, mac: &str) -> ObservedNic {
    ObservedNic {
        name: name.into(),
        mac: mac.into(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("test address {s}"))
}

fn up(i: &str) -> NetStep {
    NetStep::LinkUp { iface: i.into() }
}

fn mtu(i: &str, mtu: u32) -> NetStep {
    NetStep::SetMtu {
        iface: i.into(),
        mtu,
    }
}

fn addr(i: &str, a: &str, prefix: u8) -> NetStep {
    NetStep::AddAddress {
        iface: i.into(),
        addr: ip(a),
        prefix,
    }
}

fn route(i: &str, dest: &str, prefix: u8, gw: Option<&str>) -> NetStep {
    NetStep::AddRoute {
        iface: i.into(),
        dest: ip(dest),
        prefix,
        gateway: gw.map(ip),
    }
}

fn resolv(servers: &[&str]) -> NetStep {
    NetStep::WriteResolvConf {
        nameservers: servers.iter().map(|s| ip(s)).collect(),
        search: Vec::new(),
    }
}

fn parsed(text: &str) -> NetworkData {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn nova_documentation_example() {
    let data = parsed(include_str!("fixtures/nova_metadata_doc.json"));
    assert_eq!(data.links[0].kind(), LinkKind::Physical);
    assert_eq!(data.links[0].mtu, None);
    let p = plan(
        &data,
        &[
            nic("eth0", "FA:16:3E:9C:BF:3D"),
            nic("eth1", "fa:16:3e:00:00:01"),
        ],
    );
    assert_eq!(p.steps, [up("eth0"), resolv(&["8.8.8.8"])]);
    assert_eq!(p.dhcp, ["eth0", "eth1"]);
    assert!(p.static_ifaces.is_empty());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn glean_rax_static_ipv4_and_ipv6() {
    let data = parsed(include_str!("fixtures/glean_rax_iad.json"));
    // `"type": null` links are physical.
    assert_eq!(data.links[0].kind, None);
    let p = plan(
        &data,
        &[
            nic("eth0", "bc:76:4e:20:d7:2f"),
            nic("eth1", "BC:76:4E:20:D7:33"),
        ],
    );
    assert_eq!(
        p.steps,
        [
            mtu("eth0", 1500),
            up("eth0"),
            mtu("eth1", 1500),
            up("eth1"),
            addr("eth0", "146.20.110.113", 24),
            addr("eth0", "2001:4802:7807:103:be76:4eff:fe20:d72f", 64),
            addr("eth1", "10.210.32.174", 19),
            route("eth0", "0.0.0.0", 0, Some("146.20.110.1")),
            route("eth0", "::", 0, Some("fe80::def")),
            route("eth0", "fd30::", 48, Some("fe80::f001")),
            route("eth1", "10.176.0.0", 12, Some("10.210.32.1")),
            route("eth1", "10.208.0.0", 12, Some("10.210.32.1")),
            resolv(&[
                "69.20.0.196",
                "69.20.0.164",
                "1111:2222:3333:4444::1234",
                "1.2.3.4"
            ]),
        ]
    );
    assert!(p.dhcp.is_empty(), "{:?}", p.dhcp);
    assert_eq!(p.static_ifaces, ["eth0", "eth1"]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn glean_vexxhost_dhcp_and_slaac() {
    let data = parsed(include_str!("fixtures/glean_vexxhost.json"));
    let p = plan(&data, &[nic("ens3", "fa:16:3e:d1:1f:b2")]);
    assert_eq!(
        p.steps,
        [
            mtu("ens3", 1500),
            up("ens3"),
            resolv(&["199.204.44.24", "199.204.47.54"])
        ]
    );
    assert_eq!(p.dhcp, ["ens3"]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// Ironic's own sample: the bond (802.3ad, by MAC) with its VLAN and static address, the
/// routes and DNS servers; the networks Ironic put on a bond member are refused with a warning,
/// and the vif no network uses falls back to DHCP.
#[test]
fn ironic_json_sample() {
    let data = parsed(include_str!("fixtures/ironic_json_samples.json"));
    let nics = [
        nic("eno1", "a0:36:9f:2c:e8:80"),
        nic("eno2", "A0:36:9F:2C:E8:81"),
        nic("eno3", "a0:36:9f:2c:e8:70"),
    ];
    let p = plan(&data, &nics);
    assert_well_formed(&p, &nics);
    let bond = p
        .steps
        .iter()
        .find(|s| matches!(s, NetStep::CreateBond { .. }))
        .cloned();
    assert_eq!(
        bond,
        Some(NetStep::CreateBond {
            name: "bond0".into(),
            mode: "802.3ad".into(),
            options: vec![
                ("miimon".into(), "100".into()),
                ("xmit_hash_policy".into(), "layer3+4".into()),
            ],
            members: vec!["eno1".into(), "eno2".into()],
        })
    );
    assert!(p.steps.contains(&NetStep::CreateVlan {
        parent: "bond0".into(),
        id: 101,
        name: "bond0.101".into(),
        mac: Some("a0:36:9f:2c:e8:80".into()),
    }));
    assert!(p.steps.contains(&addr("bond0.101", "23.253.157.244", 24)));
    assert!(
        p.steps
            .contains(&route("bond0.101", "0.0.0.0", 0, Some("23.253.157.1")))
    );
    let servers = p.steps.iter().find_map(|s| match s {
        NetStep::WriteResolvConf { nameservers, .. } => Some(nameservers.clone()),
        _ => None,
    });
    let servers = servers.unwrap_or_default();
    for dns in ["8.8.8.8", "8.8.4.4", "69.20.0.164", "69.20.0.196"] {
        assert!(servers.contains(&ip(dns)), "{dns} in {servers:?}");
    }
    // Nothing is configured on a bond member: the two networks on interface0 are refused.
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, NetStep::AddAddress { iface, .. } if iface == "eno1")),
        "{:#?}",
        p.steps
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("private-ipv4")),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.dhcp, vec!["eno3".to_string()]);
    assert_eq!(p.static_ifaces, vec!["bond0.101".to_string()]);
}

#[test]
fn glean_liberty_bonds_and_vlans() {
    let data = parsed(include_str!("fixtures/glean_liberty.json"));
    let nics = [
        nic("eth0", "bc:76:4e:01:62:86"),
        nic("eth1", "bc:76:4e:05:7b:06"),
        nic("eth2", "bc:76:4e:05:7b:12"),
        nic("eth3", "bc:76:4e:05:7b:13"),
        nic("eth4", "bc:76:4e:05:7b:14"),
        nic("eth5", "bc:76:4e:05:7b:15"),
        nic("eth6", "bc:76:4e:05:7b:16"),
        nic("eth7", "bc:76:4e:05:7b:17"),
        nic("eth8", "bc:76:4e:05:7b:18"),
        nic("eth9", "bc:76:4e:12:a4:bb"),
        nic("eth10", "bc:76:4e:12:a4:bc"),
        nic("eth11", "52:54:00:00:00:01"),
    ];
    let p = plan(&data, &nics);
    assert_well_formed(&p, &nics);
    let bonds: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            NetStep::CreateBond {
                name,
                mode,
                options,
                members,
            } => Some((
                name.as_str(),
                mode.as_str(),
                options.clone(),
                members.clone(),
            )),
            _ => None,
        })
        .collect();
    let opts = vec![
        ("miimon".to_string(), "100".to_string()),
        ("xmit_hash_policy".to_string(), "layer3+4".to_string()),
    ];
    assert_eq!(
        bonds,
        [
            (
                "bond0",
                "802.3ad",
                opts.clone(),
                vec!["eth3".into(), "eth4".into()]
            ),
            (
                "bond1",
                "802.3ad",
                opts.clone(),
                vec!["eth5".into(), "eth6".into()]
            ),
            ("bond2", "802.3ad", opts, vec!["eth7".into(), "eth8".into()]),
        ]
    );
    let vlans: Vec<_> = p
        .steps
        .iter()
        .filter(|s| matches!(s, NetStep::CreateVlan { .. }))
        .cloned()
        .collect();
    assert_eq!(
        vlans,
        [
            NetStep::CreateVlan {
                parent: "eth10".into(),
                id: 25,
                name: "eth10.25".into(),
                mac: Some("bc:76:4e:12:a4:bc".into())
            },
            NetStep::CreateVlan {
                parent: "eth10".into(),
                id: 26,
                name: "eth10.26".into(),
                mac: Some("bc:76:4e:12:a4:bd".into())
            },
            NetStep::CreateVlan {
                parent: "bond1".into(),
                id: 27,
                name: "bond1.27".into(),
                mac: Some("bc:76:4e:12:a4:be".into())
            },
        ]
    );
    // Bond members are not brought up on their own; a bond comes before its VLAN.
    assert!(!p.steps.contains(&up("eth3")));
    let pos = |s: &NetStep| p.steps.iter().position(|x| x == s);
    assert!(pos(&up("bond1")) < pos(&vlans[2]));
    assert!(p.steps.contains(&addr("bond2", "192.0.2.2", 24)));
    assert_eq!(p.static_ifaces, ["eth0", "eth1", "eth2", "bond2"]);
    // DHCP: the ipv4_dhcp links, plus the NIC the data does not mention. eth10 is a VLAN
    // parent only, the bond members are in bonds.
    assert_eq!(
        p.dhcp,
        ["eth9", "eth11", "bond0", "eth10.25", "eth10.26", "bond1.27"]
    );
    // network2 and network8 bring second default routes: the first one is kept.
    assert!(
        p.steps
            .contains(&route("eth0", "0.0.0.0", 0, Some("23.253.229.1")))
    );
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("network2"), "{:?}", p.warnings);
    assert!(p.warnings[1].contains("network8"), "{:?}", p.warnings);
}

/// A bond (active-backup, two NICs by MAC in another case) with a VLAN carrying a static IPv4
/// address, the default route and DNS; numbers given as strings.
const BOND_VLAN: &str = r#"{
  "links": [
    {"id": "port-a", "type": "phy", "ethernet_mac_address": "52:54:00:AA:00:01", "mtu": "9000"},
    {"id": "port-b", "type": "ethernet", "ethernet_mac_address": "52:54:00:aa:00:02"},
    {"id": "pg0", "type": "bond", "bond_links": ["port-a", "port-b"], "bond_mode": "1",
     "ethernet_mac_address": "52:54:00:aa:00:01", "mtu": 9000, "bond_lacp_rate": "fast",
     "bond_updelay": 200, "bond_arp_ip_target": ["10.0.0.1"]},
    {"id": "pg0-vlan", "type": "vlan", "vlan_link": "pg0", "vlan_id": "100",
     "vlan_mac_address": "52:54:00:aa:00:01", "mtu": "1500", "vif_id": "x"}
  ],
  "networks": [
    {"id": "prov", "type": "ipv4", "link": "pg0-vlan", "ip_address": "192.168.10.20",
     "netmask": "255.255.255.0", "network_id": "n",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.10.1"},
                {"network": "10.1.2.3", "netmask": "16", "gateway": "192.168.10.254"}],
     "services": [{"type": "dns", "address": "192.168.10.2"}, {"type": "ntp", "address": "x"}],
     "dns_search": ["example.org"]}
  ],
  "services": [{"type": "dns", "address": "192.168.10.3"}, {"type": "dns", "address": "192.168.10.2"}]
}"#;

#[test]
fn bond_vlan_static_default_route_dns() {
    let nics = [
        nic("enp1s0", "52:54:00:aa:00:02"),
        nic("enp2s0", "52:54:00:AA:00:01"),
        nic("enp3s0", "52:54:00:aa:00:03"),
    ];
    let p = plan(&parsed(BOND_VLAN), &nics);
    assert_eq!(
        p.steps,
        [
            NetStep::CreateBond {
                name: "bond0".into(),
                mode: "active-backup".into(),
                options: vec![
                    ("miimon".into(), "100".into()),
                    ("lacp_rate".into(), "fast".into()),
                    ("updelay".into(), "200".into()),
                ],
                members: vec!["enp2s0".into(), "enp1s0".into()],
            },
            mtu("bond0", 9000),
            up("bond0"),
            NetStep::CreateVlan {
                parent: "bond0".into(),
                id: 100,
                name: "bond0.100".into(),
                mac: Some("52:54:00:aa:00:01".into()),
            },
            mtu("bond0.100", 1500),
            up("bond0.100"),
            addr("bond0.100", "192.168.10.20", 24),
            route("bond0.100", "0.0.0.0", 0, Some("192.168.10.1")),
            route("bond0.100", "10.1.0.0", 16, Some("192.168.10.254")),
            NetStep::WriteResolvConf {
                nameservers: vec![ip("192.168.10.3"), ip("192.168.10.2")],
                search: vec!["example.org".into()],
            },
        ]
    );
    assert_eq!(p.static_ifaces, ["bond0.100"]);
    assert_eq!(p.dhcp, ["enp3s0"]);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].contains("bond_arp_ip_target"),
        "{:?}",
        p.warnings
    );
}

#[test]
fn ipv6_only_static() {
    let data = parsed(
        r#"{"links": [{"id": "l0", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:10"}],
            "networks": [{"id": "v6", "type": "ipv6", "link": "l0",
                          "ip_address": "2001:db8:1::10/64",
                          "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8:1::1"},
                                     {"network": "2001:db8:2::/48", "gateway": "fe80::1"}],
                          "services": [{"type": "dns", "address": "2001:db8:1::53"}]}]}"#,
    );
    let p = plan(&data, &[nic("eno1", "52:54:00:00:00:10")]);
    assert_eq!(
        p.steps,
        [
            up("eno1"),
            addr("eno1", "2001:db8:1::10", 64),
            route("eno1", "::", 0, Some("2001:db8:1::1")),
            route("eno1", "2001:db8:2::", 48, Some("fe80::1")),
            resolv(&["2001:db8:1::53"]),
        ]
    );
    assert!(p.dhcp.is_empty());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let cmds: Vec<_> = p.steps.iter().flat_map(ip_commands).collect();
    assert_eq!(
        cmds[1],
        ["-6", "addr", "replace", "2001:db8:1::10/64", "dev", "eno1"]
    );
    assert_eq!(
        cmds[2],
        [
            "-6",
            "route",
            "replace",
            "::/0",
            "via",
            "2001:db8:1::1",
            "dev",
            "eno1"
        ]
    );
}

#[test]
fn malformed_documents_are_errors_with_a_position() {
    for (text, line) in [
        ("", 1),
        ("not json", 1),
        ("{\n  \"links\": 5\n}", 2),
        ("[1, 2]", 1),
        (
            "{\"links\": [\n {\"id\": \"x\", \"ethernet_mac_address\": {}}]}",
            2,
        ),
        ("{\"networks\": [{\"routes\": [1]}]}", 1),
        ("{\"links\": [", 1),
    ] {
        match parse(text) {
            Err(NetDataError::Json { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
            Ok(d) => panic!("{text:?} parsed as {d:?}"),
        }
    }
    let e = parse("{\n\"links\": [}").err().map(|e| e.to_string());
    assert!(e.as_deref().is_some_and(|e| e.contains("line 2")), "{e:?}");
    // null and empty documents are fine.
    assert_eq!(parse("{}").ok(), Some(NetworkData::default()));
    assert_eq!(
        parse(r#"{"links": null, "networks": null, "services": null}"#).ok(),
        Some(NetworkData::default())
    );
}

#[test]
fn bad_data_is_warned_about_and_skipped() {
    let data = parsed(
        r#"{
      "links": [
        {"id": "good", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01",
         "mtu": -5},
        {"id": "badmac", "type": "phy", "ethernet_mac_address": "52:54:00:00:00"},
        {"id": "nomatch", "type": "phy", "ethernet_mac_address": "52:54:00:99:99:99"},
        {"id": "nomac", "type": "tap"},
        {"type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"},
        {"id": "good", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"},
        {"id": "emptybond", "type": "bond", "bond_links": ["nomatch", "ghost"]},
        {"id": "badmode", "type": "bond", "bond_links": ["good"], "bond_mode": "fastest"},
        {"id": "v-huge", "type": "vlan", "vlan_link": "good", "vlan_id": 1e30},
        {"id": "v-big", "type": "vlan", "vlan_link": "good", "vlan_id": 99999999999999999999999},
        {"id": "v-zero", "type": "vlan", "vlan_link": "good", "vlan_id": "0"},
        {"id": "v-none", "type": "vlan", "vlan_link": "good"},
        {"id": "v-orphan", "type": "vlan", "vlan_link": "ghost", "vlan_id": 5},
        {"id": "v-on-skipped", "type": "vlan", "vlan_link": "emptybond", "vlan_id": 6},
        {"id": "v-self", "type": "vlan", "vlan_link": "v-self", "vlan_id": 7},
        {"id": "v-ok", "type": "vlan", "vlan_link": "good", "vlan_id": 8,
         "vlan_mac_address": "zz"}
      ],
      "networks": [
        {"id": "n-ghost", "type": "ipv4", "link": "ghost", "ip_address": "10.0.0.2",
         "netmask": "24"},
        {"id": "n-skipped", "type": "ipv4", "link": "nomatch", "ip_address": "10.0.0.3",
         "netmask": "24"},
        {"id": "n-mask", "type": "ipv4", "link": "good", "ip_address": "10.0.0.4",
         "netmask": "255.0.255.0"},
        {"id": "n-bigmask", "type": "ipv4", "link": "good", "ip_address": "10.0.0.4",
         "netmask": 4294967296},
        {"id": "n-addr", "type": "ipv6", "link": "good", "ip_address": "2001:db8::zz",
         "netmask": "64"},
        {"id": "n-noaddr", "type": "ipv4", "link": "good"},
        {"id": "n-type", "type": "ipx", "link": "good"},
        {"type": "ipv4_dhcp"},
        {"id": "n-routes", "type": "ipv4", "link": "v-ok", "ip_address": "10.9.0.2/24",
         "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "nope"},
                    {"network": "10.8.0.0", "netmask": "16", "gateway": "fe80::1"},
                    {"netmask": "16"}],
         "services": [{"type": "dns", "address": "dns.example.org"}]}
      ]
    }"#,
    );
    let nics = [
        nic("eth0", "52:54:00:00:00:01"),
        nic("eth1", "52:54:00:00:00:02"),
        nic("eth2", "not a mac"),
    ];
    let p = plan(&data, &nics);
    assert_well_formed(&p, &nics);
    let w = p.warnings.join("\n");
    for expected in [
        "link 4 has no id",
        "\"good\" is defined more than once",
        "\"good\": mtu \"-5\"",
        "\"badmac\": \"52:54:00:00:00\" is not a MAC address",
        "\"nomatch\": no network interface has MAC 52:54:00:99:99:99",
        "\"nomac\" (type tap) has no ethernet_mac_address",
        "bond \"emptybond\": member link \"ghost\" is not in the network data",
        "bond \"emptybond\": member link \"nomatch\" matches no network interface",
        "bond \"emptybond\": none of its bond_links",
        "bond \"badmode\": unknown bond_mode \"fastest\"",
        "vlan \"v-huge\": vlan_id",
        "vlan \"v-big\": vlan_id",
        "vlan \"v-zero\": vlan_id 0",
        "vlan \"v-none\" has no vlan_id",
        "vlan \"v-orphan\": its vlan_link \"ghost\" is not in the network data",
        "vlan \"v-on-skipped\": its vlan_link \"emptybond\" was not configured",
        "vlan \"v-self\": its vlan_link \"v-self\" is the VLAN itself",
        "vlan \"v-ok\": vlan_mac_address \"zz\"",
        "network \"n-ghost\" is on unknown link \"ghost\"",
        "network \"n-skipped\" is on link \"nomatch\", which was not configured",
        "network \"n-mask\": netmask 255.0.255.0 is not contiguous",
        "network \"n-bigmask\": prefix length 4294967296 out of range",
        "network \"n-addr\": \"2001:db8::zz\" is not an IP address",
        "network \"n-noaddr\" has no ip_address",
        "network \"n-type\" has unknown type \"ipx\"",
        "network networks[7] has no link",
        "network \"n-routes\": route 0: gateway \"nope\"",
        "network \"n-routes\": route 1: gateway fe80::1 is not of the family",
        "network \"n-routes\": route 2: no network",
        "network \"n-routes\": DNS server \"dns.example.org\"",
    ] {
        assert!(w.contains(expected), "missing {expected:?} in\n{w}");
    }
    assert_eq!(
        p.steps,
        [
            up("eth0"),
            NetStep::CreateVlan {
                parent: "eth0".into(),
                id: 8,
                name: "eth0.8".into(),
                mac: None
            },
            up("eth0.8"),
            addr("eth0.8", "10.9.0.2", 24),
        ]
    );
    // eth0 carries only broken networks but is a VLAN parent; eth1 and eth2 are unused.
    assert_eq!(p.dhcp, ["eth1", "eth2"]);
}

#[test]
fn wrong_scalar_types_are_read_leniently() {
    let data = parsed(
        r#"{"links": [{"id": 7, "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01",
                       "mtu": true, "bond_links": "x", "name": 5}],
            "networks": [{"id": 1, "type": "ipv4", "link": 7, "ip_address": "10.0.0.1",
                          "netmask": 8, "dns_nameservers": ["10.0.0.53", 3]}]}"#,
    );
    assert_eq!(data.links[0].id, "7");
    assert_eq!(data.links[0].mtu, Some(Num::Invalid("true".into())));
    assert_eq!(data.links[0].bond_links, ["x"]);
    let p = plan(&data, &[nic("eth0", "52:54:00:00:00:01")]);
    assert!(p.steps.contains(&addr("eth0", "10.0.0.1", 8)));
    assert!(p.steps.contains(&resolv(&["10.0.0.53"])));
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
}

#[test]
fn bond_names_and_modes() {
    for (mode, kernel) in [
        ("0", "balance-rr"),
        ("active-backup", "active-backup"),
        ("2", "balance-xor"),
        ("Broadcast", "broadcast"),
        ("4", "802.3ad"),
        ("balance-tlb", "balance-tlb"),
        ("6", "balance-alb"),
    ] {
        assert_eq!(plan::bond_mode(mode), Some(kernel));
    }
    assert_eq!(plan::bond_mode("7"), None);
    let data = parsed(
        r#"{"links": [
          {"id": "a", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"},
          {"id": "b", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"},
          {"id": "c", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:03"},
          {"id": "x", "type": "bond", "bond_links": ["a"], "name": "bond0"},
          {"id": "y", "type": "bond", "bond_links": ["b", "a"], "bond_miimon": "oops"},
          {"id": "z", "type": "bond", "bond_links": ["c"], "name": "eth/0",
           "bond_xmit_hash_policy": "layer2 3"}
        ]}"#,
    );
    let nics = [
        nic("eth0", "52:54:00:00:00:01"),
        nic("eth1", "52:54:00:00:00:02"),
        nic("eth2", "52:54:00:00:00:03"),
    ];
    let p = plan(&data, &nics);
    let names: Vec<_> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            NetStep::CreateBond {
                name,
                members,
                mode,
                options,
            } => Some((name.clone(), members.clone(), mode.clone(), options.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "bond0".into(),
                vec!["eth0".to_string()],
                "balance-rr".into(),
                1
            ),
            (
                "bond1".into(),
                vec!["eth1".to_string()],
                "balance-rr".into(),
                1
            ),
            (
                "bond2".into(),
                vec!["eth2".to_string()],
                "balance-rr".into(),
                1
            ),
        ]
    );
    let w = p.warnings.join("\n");
    assert!(
        w.contains("member \"a\" (eth0) is already in a bond"),
        "{w}"
    );
    assert!(w.contains("bond_miimon \"oops\""), "{w}");
    assert!(w.contains("bond_xmit_hash_policy"), "{w}");
    // Created bonds without networks still get DHCP; their members do not.
    assert_eq!(p.dhcp, ["bond0", "bond1", "bond2"]);
}

/// Fails every step on the interfaces in `fail`.
struct FailingOps {
    fail: Vec<&'static str>,
    record: RecordingNetOps,
}

impl NetOps for FailingOps {
    fn apply(&self, step: &NetStep) -> Result<(), NetOpError> {
        self.record.apply(step)?;
        match step.iface() {
            Some(i) if self.fail.contains(&i) => Err(NetOpError::Invalid(format!("{i} broke"))),
            _ => Ok(()),
        }
    }
}

#[test]
fn apply_continues_after_failures_and_falls_back_to_dhcp() {
    let nics = [
        nic("enp1s0", "52:54:00:aa:00:02"),
        nic("enp2s0", "52:54:00:aa:00:01"),
        nic("enp3s0", "52:54:00:aa:00:03"),
    ];
    let p = plan(&parsed(BOND_VLAN), &nics);
    let ops = FailingOps {
        fail: vec!["bond0"],
        record: RecordingNetOps::in_memory(),
    };
    let report = apply_plan(&p, &ops);
    // Nothing on the bond or its VLAN was tried after the bond failed; resolv.conf was.
    let tried = ops.record.steps();
    assert_eq!(tried.len(), 2, "{tried:?}");
    assert!(matches!(tried[0], NetStep::CreateBond { .. }));
    assert!(matches!(tried[1], NetStep::WriteResolvConf { .. }));
    assert_eq!(report.failed, ["bond0", "bond0.100"]);
    assert!(report.configured.is_empty());
    assert_eq!(report.errors.len(), 9, "{:?}", report.errors);
    assert!(
        report.errors[0].contains("bond0 broke"),
        "{:?}",
        report.errors
    );
    assert!(report.errors[1].contains("skipped"), "{:?}", report.errors);
    // The members go back to DHCP; the interfaces never created are not listed.
    assert_eq!(report.dhcp, ["enp3s0", "enp2s0", "enp1s0"]);

    // A static address failing on a NIC: the NIC goes back to DHCP, the rest is configured.
    let data = parsed(include_str!("fixtures/glean_rax_iad.json"));
    let p = plan(
        &data,
        &[
            nic("eth0", "bc:76:4e:20:d7:2f"),
            nic("eth1", "bc:76:4e:20:d7:33"),
        ],
    );
    let ops = FailingOps {
        fail: vec!["eth1"],
        record: RecordingNetOps::in_memory(),
    };
    let report = apply_plan(&p, &ops);
    assert_eq!(report.configured, ["eth0"]);
    assert_eq!(report.failed, ["eth1"]);
    assert_eq!(report.dhcp, ["eth1"]);
    assert_eq!(ops.record.steps().len(), 9);
}

#[test]
fn recording_writes_json_lines() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("net.jsonl");
    let ops = RecordingNetOps::to_file(&path);
    let p = plan(
        &parsed(BOND_VLAN),
        &[
            nic("enp1s0", "52:54:00:aa:00:02"),
            nic("enp2s0", "52:54:00:aa:00:01"),
        ],
    );
    let report = apply_plan(&p, &ops);
    assert!(report.failed.is_empty() && report.errors.is_empty());
    assert_eq!(report.configured, ["bond0", "bond0.100"]);
    assert!(report.dhcp.is_empty());
    let text = std::fs::read_to_string(&path)?;
    let back: Vec<NetStep> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(back, p.steps);
    assert_eq!(back, ops.steps());
    assert!(
        text.starts_with(r#"{"step":"create_bond","name":"bond0""#),
        "{text}"
    );
    Ok(())
}

#[test]
fn system_ops_write_bonding_sysfs_and_resolv_conf() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A fake /sys/class/net whose bond already exists; `true` stands in for `ip`.
    let sys = dir.path().join("sys");
    let bonding = sys.join("bond0/bonding");
    std::fs::create_dir_all(&bonding)?;
    for f in ["mode", "miimon", "lacp_rate", "slaves"] {
        std::fs::write(bonding.join(f), "")?;
    }
    std::fs::write(sys.join("bonding_masters"), "")?;
    let root = dir.path().join("root");
    let ops = SystemNetOps::with_paths(&root, &sys, "true");
    ops.apply(&NetStep::CreateBond {
        name: "bond0".into(),
        mode: "active-backup".into(),
        options: vec![
            ("miimon".into(), "100".into()),
            ("lacp_rate".into(), "fast".into()),
        ],
        members: vec!["eth0".into()],
    })?;
    assert_eq!(
        std::fs::read_to_string(bonding.join("mode"))?,
        "active-backup"
    );
    assert_eq!(std::fs::read_to_string(bonding.join("miimon"))?, "100");
    assert_eq!(std::fs::read_to_string(bonding.join("lacp_rate"))?, "fast");
    assert_eq!(std::fs::read_to_string(bonding.join("slaves"))?, "+eth0");
    // Again (a second run): the bond is left as it is; `false` as `ip` proves no member is
    // taken down again.
    std::fs::write(bonding.join("mode"), "active-backup 1\n")?;
    std::fs::write(bonding.join("slaves"), "eth0\n")?;
    std::fs::write(bonding.join("miimon"), "100\n")?;
    std::fs::write(bonding.join("lacp_rate"), "fast 1\n")?;
    SystemNetOps::with_paths(&root, &sys, "false").apply(&NetStep::CreateBond {
        name: "bond0".into(),
        mode: "active-backup".into(),
        options: vec![
            ("miimon".into(), "100".into()),
            ("lacp_rate".into(), "fast".into()),
        ],
        members: vec!["eth0".into()],
    })?;
    assert_eq!(
        std::fs::read_to_string(bonding.join("mode"))?,
        "active-backup 1\n"
    );
    // An existing VLAN interface is not added again.
    std::fs::create_dir_all(sys.join("eth0.5"))?;
    SystemNetOps::with_paths(&root, &sys, "false").apply(&NetStep::CreateVlan {
        parent: "eth0".into(),
        id: 5,
        name: "eth0.5".into(),
        mac: None,
    })?;
    // A bond that does not exist yet is asked of bonding_masters.
    let missing = ops.apply(&NetStep::CreateBond {
        name: "bond1".into(),
        mode: "802.3ad".into(),
        options: Vec::new(),
        members: vec!["eth1".into()],
    });
    assert!(missing.is_err());
    assert_eq!(
        std::fs::read_to_string(sys.join("bonding_masters"))?,
        "+bond1"
    );

    ops.apply(&resolv(&["10.0.0.53", "2001:db8::53"]))?;
    assert_eq!(
        std::fs::read_to_string(root.join("etc/resolv.conf"))?,
        "# Written by ironic-agent from the node's network data.\n\
         nameserver 10.0.0.53\nnameserver 2001:db8::53\n"
    );
    ops.apply(&up("eth0"))?;
    let failing = SystemNetOps::with_paths(&root, &sys, "false");
    assert!(matches!(
        failing.apply(&up("eth0")),
        Err(NetOpError::Tool(_))
    ));
    Ok(())
}

#[test]
fn ip_command_lines() {
    let vlan = NetStep::CreateVlan {
        parent: "bond0".into(),
        id: 100,
        name: "bond0.100".into(),
        mac: Some("52:54:00:aa:00:01".into()),
    };
    assert_eq!(
        ip_commands(&vlan),
        [
            vec![
                "link",
                "add",
                "link",
                "bond0",
                "name",
                "bond0.100",
                "type",
                "vlan",
                "id",
                "100"
            ],
            vec![
                "link",
                "set",
                "dev",
                "bond0.100",
                "address",
                "52:54:00:aa:00:01"
            ],
        ]
    );
    assert_eq!(
        ip_commands(&mtu("eth0", 9000)),
        [["link", "set", "dev", "eth0", "mtu", "9000"]]
    );
    assert_eq!(
        ip_commands(&addr("eth0", "10.0.0.2", 24)),
        [["-4", "addr", "replace", "10.0.0.2/24", "dev", "eth0"]]
    );
    assert_eq!(
        ip_commands(&route("eth0", "10.1.0.0", 16, None)),
        [["-4", "route", "replace", "10.1.0.0/16", "dev", "eth0"]]
    );
    assert!(ip_commands(&resolv(&["10.0.0.1"])).is_empty());
}

#[test]
fn vlan_plan_feeds_apply() {
    let nics = [nic("eth0", "52:54:00:00:00:01")];
    let vp = plan_vlans("eth0.100", &nics, &|_| Vec::new());
    let p = Plan {
        steps: vp.steps.clone(),
        dhcp: vp.created.clone(),
        ..Plan::default()
    };
    let ops = RecordingNetOps::in_memory();
    let report = apply_plan(&p, &ops);
    assert_eq!(report.configured, ["eth0.100"]);
    assert_eq!(report.dhcp, ["eth0.100"]);
}

/// What every plan must satisfy (the fuzz target `network_data` checks the same).
fn assert_well_formed(p: &Plan, nics: &[ObservedNic]) {
    let mut exists: std::collections::HashSet<String> =
        nics.iter().map(|n| n.name.clone()).collect();
    for step in &p.steps {
        for need in step.needs() {
            assert!(exists.contains(need), "{step:?} needs {need}: {p:#?}");
        }
        if let NetStep::CreateBond { name, .. } | NetStep::CreateVlan { name, .. } = step {
            assert!(addr::valid_ifname(name), "{step:?}");
            assert!(exists.insert(name.clone()), "{name} created twice");
        }
        if let NetStep::AddRoute { dest, prefix, .. } = step {
            assert_eq!(addr::network_of(*dest, *prefix), *dest, "{step:?}");
        }
    }
    let mut seen = std::collections::HashSet::new();
    for d in &p.dhcp {
        assert!(seen.insert(d) && exists.contains(d), "{d} in {:?}", p.dhcp);
    }
}

#[test]
fn networks_and_vlans_on_bond_members_are_refused() {
    let data = parsed(
        r#"{"links": [
          {"id": "a", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:01"},
          {"id": "b", "type": "phy", "ethernet_mac_address": "52:54:00:00:00:02"},
          {"id": "bond", "type": "bond", "bond_links": ["a", "b"], "bond_mode": "4"},
          {"id": "v", "type": "vlan", "vlan_link": "a", "vlan_id": 10}],
          "networks": [{"id": "n", "type": "ipv4_dhcp", "link": "a"},
                       {"id": "m", "type": "ipv4_dhcp", "link": "bond"}]}"#,
    );
    let nics = [
        nic("eth0", "52:54:00:00:00:01"),
        nic("eth1", "52:54:00:00:00:02"),
    ];
    let p = plan(&data, &nics);
    assert_well_formed(&p, &nics);
    let w = p.warnings.join("\n");
    assert!(
        w.contains("network \"n\" is on link \"a\", a member of bond bond0"),
        "{w}"
    );
    assert!(
        w.contains("vlan \"v\": its vlan_link \"a\" is a member of bond bond0"),
        "{w}"
    );
    assert_eq!(p.dhcp, ["bond0"]);
}

/// Every sample, and every sample with one byte changed or cut short at many places, parses
/// or fails cleanly, and plans into a well-formed plan (a small deterministic fuzz run).
#[test]
fn mutated_samples_never_panic() {
    let nics = [
        nic("eth0", "bc:76:4e:20:d7:2f"),
        nic("eth1", "52:54:00:aa:00:01"),
        nic("eth2", "bc:76:4e:05:7b:13"),
        nic("eth3", "bc:76:4e:05:7b:15"),
        nic("eth4", "bc:76:4e:12:a4:bc"),
    ];
    let samples = [
        include_str!("fixtures/glean_liberty.json"),
        include_str!("fixtures/glean_rax_iad.json"),
        include_str!("fixtures/glean_vexxhost.json"),
        include_str!("fixtures/nova_metadata_doc.json"),
        include_str!("fixtures/ironic_json_samples.json"),
        BOND_VLAN,
    ];
    let mut planned = 0;
    for sample in samples {
        let bytes = sample.as_bytes();
        let mut variants = vec![sample.to_string()];
        for i in (0..bytes.len()).step_by(9) {
            variants.push(String::from_utf8_lossy(&bytes[..i]).into_owned());
            for b in [b'0', b'"', b'9', b'-', b'.', b':', b'/', b'}', b'n'] {
                let mut m = bytes.to_vec();
                m[i] = b;
                variants.push(String::from_utf8_lossy(&m).into_owned());
            }
        }
        for v in variants {
            if let Ok(data) = parse(&v) {
                let p = plan(&data, &nics);
                assert_well_formed(&p, &nics);
                let report = apply_plan(&p, &RecordingNetOps::in_memory());
                assert_eq!(report.dhcp, p.dhcp);
                planned += 1;
            }
        }
    }
    assert!(planned > 100, "{planned}");
}
