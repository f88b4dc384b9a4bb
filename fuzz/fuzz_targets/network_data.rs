//! `network_data`: the static network configuration of `agent/src/netconf`: `network_data.json`
//! parsing ([`parse`]), planning against two fake NICs ([`plan`]), applying the plan through
//! the recording [`NetOps`] ([`apply_plan`]), the `ip` command lines ([`ip_commands`]), and
//! `ipa-enable-vlan-interfaces` planning ([`plan_vlans`]).
//!
//! Input: the document, then optionally a NUL byte and the `ipa-enable-vlan-interfaces` value.
//! Non-UTF-8 documents are skipped (the agent reads the file as text).
//!
//! Checked: no panic; every interface a step needs is a NIC or was created by an earlier step;
//! created names are valid interface names, created once; VLAN ids in 1..=4094; MTUs in
//! 68..=65535; prefixes within the family; route destinations without host bits; the DHCP list
//! has no duplicate and names only NICs or created interfaces; the plan round-trips through
//! serde; applying it with the recorder configures every interface and keeps the DHCP list.

#![no_main]

use std::collections::HashSet;
use std::net::IpAddr;

use ironic_agent::netconf::addr::{network_of, valid_ifname};
use ironic_agent::netconf::{
    NetStep, ObservedNic, Plan, RecordingNetOps, apply_plan, ip_commands, parse, plan, plan_vlans,
};
use libfuzzer_sys::fuzz_target;

fn nics() -> [ObservedNic; 2] {
    [
        ObservedNic {
            name: "eth0".into(),
            mac: "52:54:00:aa:00:01".into(),
        },
        ObservedNic {
            name: "eth1".into(),
            mac: "52:54:00:AA:00:02".into(),
        },
    ]
}

/// The invariants of a plan (or of the steps of a VLAN plan) made for `nics`.
fn check(p: &Plan, nics: &[ObservedNic]) {
    let mut exists: HashSet<String> = nics.iter().map(|n| n.name.clone()).collect();
    let mut created: HashSet<String> = HashSet::new();
    for step in &p.steps {
        for need in step.needs() {
            assert!(
                exists.contains(need),
                "{step:?} needs {need}, not there yet"
            );
        }
        let _ = ip_commands(step);
        match step {
            NetStep::CreateBond { name, members, .. } => {
                assert!(!members.is_empty(), "{step:?}");
                assert!(
                    valid_ifname(name) && created.insert(name.clone()),
                    "{step:?}"
                );
                exists.insert(name.clone());
            }
            NetStep::CreateVlan { name, id, .. } => {
                assert!((1..=4094).contains(id), "{step:?}");
                assert!(
                    valid_ifname(name) && created.insert(name.clone()),
                    "{step:?}"
                );
                exists.insert(name.clone());
            }
            NetStep::SetMtu { mtu, .. } => assert!((68..=65535).contains(mtu), "{step:?}"),
            NetStep::AddAddress { addr, prefix, .. } => assert_prefix(addr, *prefix),
            NetStep::AddRoute {
                dest,
                prefix,
                gateway,
                ..
            } => {
                assert_prefix(dest, *prefix);
                assert_eq!(network_of(*dest, *prefix), *dest, "{step:?}");
                assert!(
                    gateway.is_none_or(|g| g.is_ipv4() == dest.is_ipv4()),
                    "{step:?}"
                );
            }
            NetStep::LinkUp { .. } | NetStep::WriteResolvConf { .. } => {}
        }
    }
    let mut seen = HashSet::new();
    for d in &p.dhcp {
        assert!(seen.insert(d), "{d} twice in the DHCP list {:?}", p.dhcp);
        assert!(exists.contains(d), "{d} in the DHCP list does not exist");
    }
    let json = serde_json::to_string(p).expect("a plan serialises");
    let back: Plan = serde_json::from_str(&json).expect("a plan deserialises");
    assert_eq!(&back, p);

    let ops = RecordingNetOps::in_memory();
    let report = apply_plan(p, &ops);
    assert!(
        report.failed.is_empty() && report.errors.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.dhcp, p.dhcp);
    assert_eq!(ops.steps(), p.steps);
}

fn assert_prefix(addr: &IpAddr, prefix: u8) {
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    assert!(prefix <= bits, "{addr}/{prefix}");
}

fuzz_target!(|data: &[u8]| {
    let (doc, spec) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let nics = nics();
    if let Ok(text) = std::str::from_utf8(doc)
        && let Ok(parsed) = parse(text)
    {
        let p = plan(&parsed, &nics);
        check(&p, &nics);
    }
    if let Some(spec) = spec {
        let spec = String::from_utf8_lossy(spec);
        // LLDP answers derived from the name, some of them out of range.
        let lldp = |name: &str| -> Vec<u16> {
            let n = name.len() as u16;
            vec![n, n.wrapping_mul(1021), 4095, 0]
        };
        let vp = plan_vlans(&spec, &nics, &lldp);
        let p = Plan {
            steps: vp.steps.clone(),
            dhcp: vp.created.clone(),
            ..Plan::default()
        };
        check(&p, &nics);
        assert_eq!(vp.steps.len(), 2 * vp.created.len());
    }
});
