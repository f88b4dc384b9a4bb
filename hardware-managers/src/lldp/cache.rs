//! LLDPDUs kept while the switch says they are valid, so that one inspection listens once.
//!
//! IPA listens again on every `list_network_interfaces` call with `collect_lldp` on: while it
//! waits for an interface at start, in every round of the DHCP wait, for the inventory and in
//! the `lldp` collector; with switches sending every 30 s each of those can take the whole
//! `lldp_timeout`. An LLDPDU states how long its information holds (its TTL TLV, 120 s by the
//! standard's defaults), so a frame received moments ago answers the next question as well as
//! a new one would. [`LldpCache`] keeps each interface's frame until its TTL (at most
//! [`MAX_REUSE`]) runs out. An interface that got nothing is not remembered: it is listened to
//! again next time, as IPA does, since its link may have come up since.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{LldpRaw, LldpTlv, capture, tlv_type, to_inventory};

/// The longest a received LLDPDU is reused, whatever its TTL says.
pub const MAX_REUSE: Duration = Duration::from_secs(120);

/// An interface's LLDPDU in the inventory's form, and the instant it stops being valid.
type Entry = (Instant, Vec<(u8, String)>);

/// Received LLDPDUs by interface name.
#[derive(Debug, Default)]
pub struct LldpCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl LldpCache {
    /// IPA's `collect_lldp_data(names)` (`lo` dropped): each interface's still-valid LLDPDU,
    /// and for the others the first one within `timeout`, all listened to at once.
    pub fn collect(&self, names: &[String], timeout: Duration) -> LldpRaw {
        self.collect_with(names, timeout, capture)
    }

    /// [`collect`](Self::collect) with the listening step given (tests).
    pub fn collect_with(
        &self,
        names: &[String],
        timeout: Duration,
        listen: impl FnOnce(&[String], Duration) -> HashMap<String, Vec<LldpTlv>>,
    ) -> LldpRaw {
        let names: Vec<&String> = names.iter().filter(|n| *n != "lo").collect();
        let mut out = LldpRaw::new();
        let mut missing = Vec::new();
        {
            let now = Instant::now();
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|_, (until, _)| *until > now);
            for name in names {
                match entries.get(name) {
                    Some((_, tlvs)) => {
                        out.insert(name.clone(), tlvs.clone());
                    }
                    None => missing.push(name.clone()),
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        let fresh = listen(&missing, timeout);
        let received = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (name, tlvs) in fresh {
            let inventory = to_inventory(&tlvs);
            if let Some(valid) = validity(&tlvs) {
                entries.insert(name.clone(), (received + valid, inventory.clone()));
            }
            out.insert(name, inventory);
        }
        out
    }
}

/// How long an LLDPDU may be reused: its TTL TLV capped at [`MAX_REUSE`]; `None` for no frame,
/// a frame without a TTL, or a TTL of 0 (the neighbour is shutting down).
fn validity(tlvs: &[LldpTlv]) -> Option<Duration> {
    let ttl = tlvs.iter().find(|t| t.tlv_type == tlv_type::TTL)?;
    let secs = u16::from_be_bytes(ttl.value.get(..2)?.try_into().ok()?);
    (secs > 0).then(|| Duration::from_secs(secs.into()).min(MAX_REUSE))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn frame(ttl: u16) -> Vec<LldpTlv> {
        vec![
            LldpTlv {
                tlv_type: tlv_type::CHASSIS_ID,
                value: vec![4, 2, 0, 0, 0, 0, 1],
            },
            LldpTlv {
                tlv_type: tlv_type::TTL,
                value: ttl.to_be_bytes().to_vec(),
            },
        ]
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_valid_frame_is_reused_and_silent_interfaces_are_listened_to_again() {
        let cache = LldpCache::default();
        let asked = Cell::new(Vec::<Vec<String>>::new());
        let listen = |n: &[String], _: Duration| {
            let mut a = asked.take();
            a.push(n.to_vec());
            asked.set(a);
            let mut m = HashMap::new();
            for name in n {
                let tlvs = if name == "eth0" {
                    frame(120)
                } else {
                    Vec::new()
                };
                m.insert(name.clone(), tlvs);
            }
            m
        };
        let all = names(&["lo", "eth0", "eth1"]);
        let first = cache.collect_with(&all, Duration::from_millis(1), listen);
        let second = cache.collect_with(&all, Duration::from_millis(1), listen);
        assert_eq!(first, second);
        assert_eq!(first["eth0"].len(), 2);
        assert!(first["eth1"].is_empty());
        assert!(!first.contains_key("lo"));
        // The second call listened on eth1 alone: eth0's frame still holds.
        assert_eq!(
            asked.take(),
            vec![names(&["eth0", "eth1"]), names(&["eth1"])]
        );
    }

    #[test]
    fn validity_follows_the_ttl() {
        assert_eq!(validity(&frame(30)), Some(Duration::from_secs(30)));
        assert_eq!(validity(&frame(65535)), Some(MAX_REUSE));
        assert_eq!(validity(&frame(0)), None);
        assert_eq!(validity(&[]), None);
        let mut short = frame(30);
        short[1].value.truncate(1);
        assert_eq!(validity(&short), None);
    }

    #[test]
    fn an_expired_frame_is_listened_for_again() {
        let cache = LldpCache::default();
        let calls = Cell::new(0);
        let listen = |n: &[String], _: Duration| {
            calls.set(calls.get() + 1);
            n.iter().map(|name| (name.clone(), frame(1))).collect()
        };
        let eth0 = names(&["eth0"]);
        cache.collect_with(&eth0, Duration::ZERO, listen);
        // Expire it by hand rather than sleeping for the TTL.
        for (until, _) in cache.entries.lock().unwrap().values_mut() {
            *until = Instant::now();
        }
        cache.collect_with(&eth0, Duration::ZERO, listen);
        assert_eq!(calls.get(), 2);
    }
}
