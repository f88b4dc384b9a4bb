//! `vswitch`: a userspace Ethernet switch with 802.1Q VLANs, for the VM tests (the test host's
//! kernel has no bridge and no 8021q). See `e2e_tests::vswitch`.
//!
//! ```text
//! vswitch --port SPEC [--port SPEC ...] [--native-vlan VID] [--lldp VID[,VID...]] [--log FILE]
//!   SPEC: udp:LOCAL_PORT:REMOTE_PORT[,trunk|,access=VID][,name=NAME]
//!         tap:IFNAME[,trunk|,access=VID][,name=NAME]            (default: access=1)
//! ```
//!
//! - `udp:L:R`: one Ethernet frame per UDP datagram; the switch binds 127.0.0.1:L and sends to
//!   127.0.0.1:R. The matching QEMU (10.x) guest NIC is either
//!   `-netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=R,remote.type=inet,remote.host=127.0.0.1,remote.port=L`
//!   or the older `-netdev socket,id=n0,udp=127.0.0.1:L,localaddr=127.0.0.1:R`,
//!   with `-device virtio-net-pci,netdev=n0,mac=...`.
//! - `tap:IF`: an existing tap device (`ip tuntap add dev IF mode tap`) of the network
//!   namespace the switch runs in, opened with IFF_TAP | IFF_NO_PI.
//! - `access=VID`: untagged member of VLAN VID (frames tagged VID or 0 are accepted too);
//!   `trunk`: every VLAN, tagged; untagged frames on a trunk belong to `--native-vlan` (and
//!   leave trunks untagged) or are dropped without it.
//! - MAC learning per VLAN (aged after 300 s, at most 4096 addresses); unknown unicast,
//!   broadcast and multicast flood the VLAN; nothing goes back out of its ingress port;
//!   802.1D link-local frames (01:80:c2:00:00:0X: LLDP, STP) are not forwarded.
//! - `--lldp 100,200`: an LLDP frame every 5 s (and at start) out of every trunk: chassis id
//!   (MAC 02:76:73:77:00:01), port id (the port's name), TTL 120, system name "vswitch",
//!   management address 198.51.100.254, the IEEE 802.1 port VLAN id (`--native-vlan`), and
//!   one IEEE 802.1 VLAN-name TLV ("vlanN") per VID.
//!
//! Prints `vswitch ready` on stdout once every port is open; exits 0 on SIGTERM or SIGINT;
//! errors (a port that cannot open, a bad argument) exit 1 with the reason on stderr.

use std::io::Write;

use e2e_tests::vswitch::{Config, run};

fn main() -> anyhow::Result<()> {
    let config = Config::parse(std::env::args().skip(1))?;
    run(&config, || {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "vswitch ready");
        let _ = out.flush();
    })
}
