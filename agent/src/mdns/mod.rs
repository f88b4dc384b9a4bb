//! Finding the Ironic API (or the inspection endpoint) over multicast DNS, as IPA does for
//! `ipa-api-url=mdns`, `ipa-inspection-callback-url=mdns` and `ipa-use-mdns`.
//!
//! IPA resolves the service instance `<service_type>._openstack._tcp.local.` (service types
//! `baremetal` and `baremetal-introspection`): its SRV record (host and port), its TXT record
//! (`path`, `protocol` and `ipa_*` configuration overrides) and the host's addresses, in up to
//! `[mdns] lookup_attempts` (3) attempts spaced 0.1 s, 0.2 s, ... apart. [`get_endpoint`] does
//! the same with our own DNS [`message`] code over UDP.

pub mod endpoint;
pub mod message;
mod transport;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

pub use endpoint::{
    DEFAULT_ALLOWED_OVERRIDES, Endpoint, Override, ServiceInfo, inspection_callback_url,
};
use message::{
    CLASS_IN, CLASS_TOP_BIT, FLAG_RESPONSE, Message, Name, Question, RData, TYPE_A, TYPE_AAAA,
    TYPE_PTR, TYPE_SRV, TYPE_TXT,
};
pub use transport::{MDNS_V4, MDNS_V6_GROUP};

/// The DNS-SD domain of OpenStack services.
pub const SERVICE_DOMAIN: &str = "_openstack._tcp.local.";
/// The Bare Metal API's service type.
pub const BAREMETAL: &str = "baremetal";
/// The inspection service's type.
pub const BAREMETAL_INTROSPECTION: &str = "baremetal-introspection";

/// Errors of a lookup.
#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    /// No complete answer (SRV, TXT and an address) in any attempt.
    #[error("cannot find service {service} over mDNS after {attempts} attempts")]
    NotFound {
        /// Service type.
        service: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The service's addresses are all unusable.
    #[error("none of the addresses {addresses:?} of service {service} is valid")]
    NoValidAddress {
        /// Service type.
        service: String,
        /// What was announced.
        addresses: Vec<IpAddr>,
    },
    /// A TXT key is not UTF-8.
    #[error("invalid mDNS properties: {0}")]
    BadProperties(String),
    /// No socket could be opened.
    #[error("mDNS socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Where queries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// `224.0.0.251:5353` and `[ff02::fb]:5353` from the given interface addresses (IPA's
    /// `[mdns] interfaces`), or from every up multicast interface when empty.
    Multicast {
        /// Interface addresses to send from; empty for all.
        interfaces: Vec<IpAddr>,
    },
    /// Fixed unicast destinations (a test responder).
    Unicast(Vec<SocketAddr>),
}

/// How a lookup runs; the defaults are IPA's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupOptions {
    /// `[mdns] lookup_attempts` (at least 1).
    pub attempts: u32,
    /// How long one attempt waits for a complete answer (zeroconf's 3 s).
    pub attempt_timeout: Duration,
    /// Pause after the first failed attempt, doubled after each further one.
    pub first_delay: Duration,
    /// First re-send of the query within an attempt, doubled after each.
    pub resend_interval: Duration,
    /// Where queries go.
    pub destinations: Destinations,
    /// Ignore loopback addresses of the service.
    pub skip_loopback: bool,
    /// Ignore link-local route sources when checking an address is routable.
    pub skip_link_local: bool,
}

impl Default for LookupOptions {
    fn default() -> Self {
        Self {
            attempts: 3,
            attempt_timeout: Duration::from_secs(3),
            first_delay: Duration::from_millis(100),
            resend_interval: Duration::from_millis(200),
            destinations: Destinations::Multicast {
                interfaces: Vec::new(),
            },
            skip_loopback: true,
            skip_link_local: false,
        }
    }
}

/// What the answers so far say about one instance.
#[derive(Debug, Default)]
struct Collected {
    srv: Option<(Name, u16)>,
    txt: Option<Vec<Vec<u8>>>,
    addresses: Vec<(Name, IpAddr)>,
}

impl Collected {
    fn absorb(&mut self, instance: &Name, m: &Message) {
        if m.flags & FLAG_RESPONSE == 0 {
            return;
        }
        for r in m.records() {
            match &r.data {
                RData::Srv { port, target, .. } if r.name.same(instance) => {
                    self.srv = Some((target.clone(), *port));
                }
                RData::Txt(strings) if r.name.same(instance) => {
                    self.txt = Some(strings.clone());
                }
                RData::A(ip) => self.add(&r.name, IpAddr::V4(*ip)),
                RData::Aaaa(ip) => self.add(&r.name, IpAddr::V6(*ip)),
                _ => {}
            }
        }
    }

    fn add(&mut self, name: &Name, ip: IpAddr) {
        if !self.addresses.iter().any(|(n, a)| *a == ip && n.same(name)) {
            self.addresses.push((name.clone(), ip));
        }
    }

    /// SRV, TXT and at least one address of the SRV target: IPv4 first.
    fn complete(&self) -> Option<ServiceInfo> {
        let (server, port) = self.srv.clone()?;
        let txt = self.txt.clone()?;
        let mut addresses: Vec<IpAddr> = self
            .addresses
            .iter()
            .filter(|(n, _)| n.same(&server))
            .map(|(_, a)| *a)
            .collect();
        addresses.sort_by_key(IpAddr::is_ipv6);
        (!addresses.is_empty()).then_some(ServiceInfo {
            server,
            port,
            txt,
            addresses,
        })
    }

    /// The query: PTR of the domain, SRV and TXT of the instance, and A/AAAA of the SRV target
    /// once known; all asking for a unicast answer.
    fn query(&self, instance: &Name) -> Message {
        let q = |name: &Name, qtype| Question {
            name: name.clone(),
            qtype,
            qclass: CLASS_IN | CLASS_TOP_BIT,
        };
        let mut questions = vec![
            q(&Name::parse(SERVICE_DOMAIN), TYPE_PTR),
            q(instance, TYPE_SRV),
            q(instance, TYPE_TXT),
        ];
        if let Some((server, _)) = &self.srv {
            questions.push(q(server, TYPE_A));
            questions.push(q(server, TYPE_AAAA));
        }
        Message {
            id: rand::random(),
            questions,
            ..Message::default()
        }
    }
}

/// Looks `service_type` up (`baremetal`, `baremetal-introspection`) and builds its endpoint
/// as IPA does (see [`endpoint::build`]).
///
/// # Errors
/// [`MdnsError::NotFound`] after all attempts, and the errors of [`endpoint::build`].
pub async fn get_endpoint(service_type: &str, opts: &LookupOptions) -> Result<Endpoint, MdnsError> {
    let instance = Name::parse(&format!("{service_type}.{SERVICE_DOMAIN}"));
    let mut transport = transport::Transport::open(&opts.destinations).await?;
    let mut collected = Collected::default();
    let attempts = opts.attempts.max(1);
    let mut delay = opts.first_delay;
    for attempt in 1..=attempts {
        let deadline = Instant::now() + opts.attempt_timeout;
        let mut interval = opts.resend_interval;
        let mut resend_at = Instant::now();
        while Instant::now() < deadline {
            if Instant::now() >= resend_at {
                match collected.query(&instance).encode() {
                    Ok(packet) => transport.send(&packet).await,
                    Err(e) => debug!(error = %e, "mDNS query not encodable"),
                }
                resend_at = Instant::now() + interval;
                interval = interval.saturating_mul(2);
            }
            let Some(datagram) = transport.recv(resend_at.min(deadline)).await else {
                continue;
            };
            match Message::decode(&datagram) {
                Ok(m) => collected.absorb(&instance, &m),
                Err(e) => debug!(error = %e, "ignoring an undecodable mDNS message"),
            }
            if let Some(found) = collected.complete() {
                let skip_ll = opts.skip_link_local;
                let e = endpoint::build(service_type, &found, opts.skip_loopback, |ip| {
                    crate::conductor::advertise::route_source(ip)
                        .is_some_and(|src| !(skip_ll && is_link_local(src)))
                })?;
                info!(service = service_type, url = %e.url, "endpoint found over mDNS");
                return Ok(e);
            }
        }
        debug!(
            attempt,
            attempts,
            service = service_type,
            "no mDNS answer yet"
        );
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
    Err(MdnsError::NotFound {
        service: service_type.to_string(),
        attempts,
    })
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests;
