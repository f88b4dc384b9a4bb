//! The LLDP frames the switch sends out of its trunks, so a guest learns its VLANs.

use std::time::Duration;

use hardware_managers::lldp::{LldpTlv, lldp_frame, tlv_type, vlan_name_tlv};

/// How often LLDP goes out (and once at start).
pub const LLDP_INTERVAL: Duration = Duration::from_secs(5);
/// The switch's chassis MAC (locally administered), also the frames' source.
pub const CHASSIS_MAC: [u8; 6] = [0x02, 0x76, 0x73, 0x77, 0x00, 0x01];
/// The system name TLV.
pub const SYSTEM_NAME: &str = "vswitch";
/// The management address TLV's IPv4 address (documentation range: never routed).
pub const MGMT_IPV4: [u8; 4] = [198, 51, 100, 254];
/// The management address TLV type (IEEE 802.1AB table 8-1).
const TLV_MANAGEMENT_ADDRESS: u8 = 8;
/// The IEEE 802.1 OUI of the organisationally specific TLVs.
const IEEE_8021_OUI: [u8; 3] = [0x00, 0x80, 0xc2];

/// The LLDP frame for port `port_name` announcing `vlans`: chassis id (MAC), port id
/// (interface name), TTL 120 s, system name, management address ([`MGMT_IPV4`]), the 802.1
/// port VLAN id `pvid` (the native VLAN) when there is one, and one 802.1 VLAN-name TLV
/// ("vlanN") per VLAN.
pub fn lldp_for_port(port_name: &str, vlans: &[u16], pvid: Option<u16>) -> Vec<u8> {
    let mut chassis = vec![4u8]; // subtype 4: MAC address
    chassis.extend_from_slice(&CHASSIS_MAC);
    let mut port = vec![5u8]; // subtype 5: interface name
    port.extend(port_name.bytes().take(255));
    let mut tlvs = vec![
        LldpTlv {
            tlv_type: tlv_type::CHASSIS_ID,
            value: chassis,
        },
        LldpTlv {
            tlv_type: tlv_type::PORT_ID,
            value: port,
        },
        LldpTlv {
            tlv_type: tlv_type::TTL,
            value: 120u16.to_be_bytes().to_vec(),
        },
        LldpTlv {
            tlv_type: tlv_type::SYSTEM_NAME,
            value: SYSTEM_NAME.as_bytes().to_vec(),
        },
        LldpTlv {
            tlv_type: TLV_MANAGEMENT_ADDRESS,
            value: management_address(MGMT_IPV4),
        },
    ];
    if let Some(pvid) = pvid {
        let mut value = IEEE_8021_OUI.to_vec();
        value.push(1); // subtype 1: port VLAN ID
        value.extend_from_slice(&pvid.to_be_bytes());
        tlvs.push(LldpTlv {
            tlv_type: tlv_type::ORG_SPECIFIC,
            value,
        });
    }
    tlvs.extend(vlans.iter().map(|v| vlan_name_tlv(*v, &format!("vlan{v}"))));
    // Every TLV is within limits (a port name of at most 255 bytes, 32-byte VLAN names);
    // should that ever change, an empty frame is simply not sent.
    lldp_frame(CHASSIS_MAC, &tlvs).unwrap_or_default()
}

/// A management address TLV's value for an IPv4 address: address string length (subtype +
/// address), subtype 1 (IPv4), the address, interface numbering subtype 2 (ifIndex),
/// interface number 1, no OID.
fn management_address(ip: [u8; 4]) -> Vec<u8> {
    let mut v = vec![5u8, 1];
    v.extend_from_slice(&ip);
    v.extend_from_slice(&[2, 0, 0, 0, 1, 0]);
    v
}
