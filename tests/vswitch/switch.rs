//! Forwarding: VLAN membership, tagging and MAC learning, as pure functions of the frames.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::frame::{Frame, is_group, is_link_local};

/// How a port treats VLANs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Untagged member of one VLAN.
    Access(u16),
    /// Carries every VLAN tagged (the native VLAN untagged).
    Trunk,
}

/// How long a learned address stays.
pub const MAC_AGEING: Duration = Duration::from_secs(300);
/// Most addresses learned at once; beyond that new ones are not learned (frames flood).
pub const MAX_MACS: usize = 4096;

/// Why a frame went nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Not a well-formed frame.
    Malformed,
    /// Untagged on a trunk without a native VLAN.
    UntaggedOnTrunk,
    /// Tagged with another VLAN on an access port, or with VLAN 4095.
    WrongVlan(u16),
    /// To an 802.1D reserved address (LLDP, STP): consumed by the switch.
    LinkLocal,
    /// No other port is in the VLAN (or the learned port is the ingress port).
    NoEgress,
}

/// The switch state: its ports' modes and the learned addresses.
#[derive(Debug)]
pub struct Switch {
    modes: Vec<Mode>,
    native_vlan: Option<u16>,
    macs: HashMap<(u16, [u8; 6]), (usize, Instant)>,
}

/// What happened to a frame: where it goes, and whether its source was newly learned.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// `(egress port, frame bytes)`.
    pub out: Vec<(usize, Vec<u8>)>,
    /// `(vlan, mac)` newly learned on the ingress port.
    pub learned: Option<(u16, [u8; 6])>,
}

impl Switch {
    /// A switch with ports `0..modes.len()`.
    pub fn new(modes: Vec<Mode>, native_vlan: Option<u16>) -> Switch {
        Switch {
            modes,
            native_vlan,
            macs: HashMap::new(),
        }
    }

    /// The ports' modes.
    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// The VLAN a frame belongs to on `ingress`.
    fn classify(&self, ingress: Mode, frame: &Frame<'_>) -> Result<u16, Drop> {
        match (ingress, frame.vid) {
            (Mode::Access(v), None | Some(0)) => Ok(v),
            (Mode::Access(v), Some(t)) if t == v => Ok(v),
            (Mode::Access(_), Some(t)) => Err(Drop::WrongVlan(t)),
            (Mode::Trunk, None | Some(0)) => self.native_vlan.ok_or(Drop::UntaggedOnTrunk),
            (Mode::Trunk, Some(4095)) => Err(Drop::WrongVlan(4095)),
            (Mode::Trunk, Some(t)) => Ok(t),
        }
    }

    /// Forwards `bytes` received on port `ingress` at `now`.
    pub fn forward(
        &mut self,
        ingress: usize,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Forwarding, Drop> {
        let frame = Frame::parse(bytes).ok_or(Drop::Malformed)?;
        let mode = *self.modes.get(ingress).ok_or(Drop::Malformed)?;
        let vlan = self.classify(mode, &frame)?;
        if is_link_local(&frame.dst) {
            return Err(Drop::LinkLocal);
        }
        let learned = self.learn(vlan, frame.src, ingress, now);
        let known = if is_group(&frame.dst) {
            None
        } else {
            self.macs
                .get(&(vlan, frame.dst))
                .filter(|(_, seen)| now.duration_since(*seen) < MAC_AGEING)
                .map(|(port, _)| *port)
        };
        let (mut untagged, mut tagged) = (None, None);
        let mut out = Vec::new();
        for (port, egress) in self.modes.iter().enumerate() {
            if port == ingress || known.is_some_and(|k| k != port) {
                continue;
            }
            let bytes = match *egress {
                Mode::Access(v) if v == vlan => untagged.get_or_insert_with(|| frame.untagged()),
                Mode::Access(_) => continue,
                Mode::Trunk if self.native_vlan == Some(vlan) => {
                    untagged.get_or_insert_with(|| frame.untagged())
                }
                Mode::Trunk => tagged.get_or_insert_with(|| frame.tagged(vlan)),
            };
            out.push((port, bytes.clone()));
        }
        if out.is_empty() {
            return Err(Drop::NoEgress);
        }
        Ok(Forwarding { out, learned })
    }

    /// Records that `mac` in `vlan` is behind `port`; returns it when it is new or moved.
    fn learn(
        &mut self,
        vlan: u16,
        mac: [u8; 6],
        port: usize,
        now: Instant,
    ) -> Option<(u16, [u8; 6])> {
        if is_group(&mac) {
            return None;
        }
        if self.macs.len() >= MAX_MACS && !self.macs.contains_key(&(vlan, mac)) {
            self.macs
                .retain(|_, (_, seen)| now.duration_since(*seen) < MAC_AGEING);
            if self.macs.len() >= MAX_MACS {
                return None;
            }
        }
        match self.macs.insert((vlan, mac), (port, now)) {
            Some((old, _)) if old == port => None,
            _ => Some((vlan, mac)),
        }
    }
}
