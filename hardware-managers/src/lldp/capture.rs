//! Listening for the first LLDPDU on several interfaces at once.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{LinkAddr, recvfrom};

use super::{LLDP_ETHERTYPE, LLDP_MULTICAST, LldpTlv, parse_lldpdu, sys};

/// IPA's default `lldp_timeout` (`ipa-lldp-timeout`).
pub const DEFAULT_LLDP_TIMEOUT: Duration = Duration::from_secs(30);

/// Receive buffer: a standard frame plus slack, as IPA reads (1600 bytes).
const FRAME_BUFFER: usize = 1600;
/// `PACKET_OUTGOING` (linux/if_packet.h): a frame this host sent.
const PACKET_OUTGOING: u8 = 4;

/// Waits for the first LLDPDU on each of `interfaces`, all at once, until `timeout`.
///
/// Every interface gets an AF_PACKET socket bound to it for ethertype 0x88cc that joins the
/// LLDP multicast group 01:80:c2:00:00:0e; a down interface is brought up (and left up, as
/// the agent needs it afterwards). IPA sets IFF_PROMISC instead of joining the group; the
/// membership has the same effect for LLDP and the kernel drops it when the socket closes.
///
/// The result has an entry for every interface: its TLVs, or an empty list when nothing
/// arrived in time or the socket could not be opened (logged). Frames this host sent and
/// frames that do not parse are skipped (the interface keeps waiting).
pub fn capture(interfaces: &[String], timeout: Duration) -> HashMap<String, Vec<LldpTlv>> {
    let deadline = Instant::now() + timeout;
    let mut result: HashMap<String, Vec<LldpTlv>> = HashMap::new();
    let mut waiting: Vec<(String, OwnedFd)> = Vec::new();
    for name in interfaces {
        result.insert(name.clone(), Vec::new());
        match open(name) {
            Ok(fd) => waiting.push((name.clone(), fd)),
            Err(e) => tracing::warn!(interface = %name, error = %e, "cannot listen for LLDP"),
        }
    }
    let mut buf = vec![0u8; FRAME_BUFFER];
    while !waiting.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            let names: Vec<&str> = waiting.iter().map(|(n, _)| n.as_str()).collect();
            tracing::warn!(interfaces = ?names, "LLDP timed out");
            break;
        }
        let left = (deadline - now).min(Duration::from_secs(60));
        let mut fds: Vec<PollFd<'_>> = waiting
            .iter()
            .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout =
            PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "poll for LLDP failed");
                break;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut done = Vec::new();
        for (index, (name, fd)) in waiting.iter().enumerate() {
            if !ready[index] {
                continue;
            }
            match receive(fd, &mut buf) {
                Ok(Some(tlvs)) => {
                    tracing::info!(interface = %name, tlvs = tlvs.len(), "LLDP received");
                    result.insert(name.clone(), tlvs);
                    done.push(index);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "LLDP receive failed");
                    done.push(index);
                }
            }
        }
        for index in done.into_iter().rev() {
            waiting.remove(index);
        }
    }
    result
}

fn open(name: &str) -> std::io::Result<OwnedFd> {
    let fd = sys::unbound_socket()?;
    if sys::bring_up(&fd, name)? {
        tracing::info!(interface = %name, "brought up to listen for LLDP");
    }
    sys::bind_to(&fd, name, LLDP_ETHERTYPE)?;
    sys::join_multicast(&fd, name, LLDP_MULTICAST)?;
    Ok(fd)
}

/// Reads one frame; `None` when it is not an LLDPDU for us.
fn receive(fd: &OwnedFd, buf: &mut [u8]) -> nix::Result<Option<Vec<LldpTlv>>> {
    let (len, from) =
        recvfrom::<LinkAddr>(fd.as_raw_fd(), buf).map(|(n, a)| (n, a.map(|a| a.pkttype())))?;
    if from == Some(PACKET_OUTGOING) {
        return Ok(None);
    }
    let Some(frame) = buf.get(..len) else {
        return Ok(None);
    };
    // Destination, source, ethertype.
    let Some(payload) = frame.get(14..) else {
        return Ok(None);
    };
    if frame[12..14] != LLDP_ETHERTYPE.to_be_bytes() {
        return Ok(None);
    }
    match parse_lldpdu(payload) {
        Ok(tlvs) => Ok(Some(tlvs)),
        Err(e) => {
            tracing::warn!(error = %e, "malformed LLDPDU skipped");
            Ok(None)
        }
    }
}
