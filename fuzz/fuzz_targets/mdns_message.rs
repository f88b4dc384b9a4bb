//! `mdns_message`: the agent's DNS message decoder and encoder (`mdns/message.rs`) on what an
//! mDNS responder — anyone on the deployment network — sends back, and the endpoint building
//! of `mdns/endpoint.rs` on the records it yields.
//!
//! Input: one UDP datagram.
//!
//! Checked: no panic; a decoded message that encodes again decodes to the same message; every
//! SRV record with the message's TXT and addresses either builds an endpoint whose URL starts
//! with its protocol and `://`, or fails with a typed error.

#![no_main]

use std::net::IpAddr;

use ironic_agent::mdns::endpoint::{ServiceInfo, build};
use ironic_agent::mdns::message::{Message, RData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::decode(data) else {
        return;
    };
    if let Ok(wire) = m.encode() {
        let again = Message::decode(&wire).expect("an encoded message decodes");
        assert_eq!(again, m, "round trip changed the message");
    }
    let txt = m
        .records()
        .find_map(|r| match &r.data {
            RData::Txt(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let addresses: Vec<IpAddr> = m
        .records()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(IpAddr::V4(a)),
            RData::Aaaa(a) => Some(IpAddr::V6(a)),
            _ => None,
        })
        .collect();
    for r in m.records() {
        if let RData::Srv { port, target, .. } = &r.data {
            let info = ServiceInfo {
                server: target.clone(),
                port: *port,
                txt: txt.clone(),
                addresses: addresses.clone(),
            };
            if let Ok(e) = build("baremetal", &info, true, |ip| ip.is_ipv4()) {
                assert!(e.url.contains("://"), "{}", e.url);
                let _ = e.overrides(None);
            }
        }
    }
});
