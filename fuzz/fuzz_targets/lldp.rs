//! `lldp`: the LLDPDU reader `hardware_managers::lldp::parse_lldpdu` and what reads its TLVs
//! (`vlan_ids`, `to_inventory`), plus the encoder.
//!
//! Input: an LLDPDU (the Ethernet payload after the ethertype), as a switch may send it.
//!
//! Checked: no panic; every TLV has a 7-bit type and at most 511 bytes; only the last TLV may
//! be End; re-encoding the TLVs and parsing again gives them back; the inventory hex is
//! lower case and twice the value's length; VLAN ids are in 1..=4094 and unique.

#![no_main]

use hardware_managers::lldp::{encode_lldpdu, parse_lldpdu, to_inventory, vlan_ids};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tlvs) = parse_lldpdu(data) else {
        return;
    };
    for (i, t) in tlvs.iter().enumerate() {
        assert!(t.tlv_type <= 127);
        assert!(t.value.len() <= 511);
        assert!(t.tlv_type != 0 || i + 1 == tlvs.len(), "End before the last TLV");
    }
    let encoded = encode_lldpdu(&tlvs).expect("parsed TLVs encode");
    let again = parse_lldpdu(&encoded).expect("encoded TLVs parse");
    assert_eq!(&again[..tlvs.len()], &tlvs[..]);
    assert_eq!(again.last().map(|t| t.tlv_type), Some(0));
    for ((typ, hex), t) in to_inventory(&tlvs).iter().zip(&tlvs) {
        assert_eq!(*typ, t.tlv_type);
        assert_eq!(hex.len(), 2 * t.value.len());
        assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
    let ids = vlan_ids(&tlvs);
    for (i, id) in ids.iter().enumerate() {
        assert!((1..=4094).contains(id));
        assert!(!ids[..i].contains(id));
    }
});
