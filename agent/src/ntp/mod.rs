//! Setting the clock from an NTP server at start-up (IPA's `ipa-ntp-server`,
//! `fail_if_clock_not_set`), with an SNTPv4 client of our own instead of `ntpdate`/`chronyd`.
//!
//! [`query`] asks one server; [`sync`] tries servers in order and sets a [`Clock`];
//! [`sync_at_startup`] applies IPA's rule that a failure is fatal only with
//! `fail_if_clock_not_set`.

mod clock;
pub mod packet;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use tracing::{info, warn};

pub use clock::{Clock, RecordingClock, SystemClock};
use packet::Timestamp;

/// The NTP port.
pub const NTP_PORT: u16 = 123;

/// A default per-server timeout (ntpdate and chronyd give up after a few seconds too).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors asking a server or setting the clock.
#[derive(Debug, thiserror::Error)]
pub enum NtpError {
    /// The server name did not resolve, or is not a valid host / host:port.
    #[error("cannot resolve NTP server {0}")]
    Resolve(String),
    /// A socket error.
    #[error("NTP socket: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("no answer from the NTP server within {0:?}")]
    Timeout(Duration),
    /// The answer is not a usable server reply.
    #[error("malformed NTP reply: {0}")]
    Malformed(String),
    /// A kiss-of-death packet (stratum 0) with its code (`RATE`, `DENY`, ...).
    #[error("NTP server sent kiss-of-death {0}")]
    KissOfDeath(String),
    /// The server is not synchronised (leap indicator 3, stratum 16+).
    #[error("NTP server is not synchronised ({0})")]
    Unsynchronised(String),
    /// The reply does not answer our request (origin timestamp differs).
    #[error("NTP reply does not match our request (origin timestamp)")]
    OriginMismatch,
    /// Setting the system clock failed.
    #[error("setting the clock: {0}")]
    SetClock(String),
    /// No server was configured.
    #[error("no NTP server given")]
    NoServers,
    /// Every server failed; the last error.
    #[error("no NTP server answered usefully (last: {server}: {last})")]
    AllFailed {
        /// The last server tried.
        server: String,
        /// Its error.
        last: Box<NtpError>,
    },
}

/// One accepted measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpSample {
    /// Server time minus local time, in nanoseconds.
    pub offset_nanos: i128,
    /// The address that answered.
    pub server: SocketAddr,
    /// Its stratum.
    pub stratum: u8,
}

/// `host`, `host:port`, `v4`, `v4:port`, `v6` or `[v6]:port` as socket addresses (port 123
/// unless given).
fn resolve(server: &str) -> Result<Vec<SocketAddr>, NtpError> {
    let server = server.trim();
    if server.is_empty() {
        return Err(NtpError::Resolve("(empty)".into()));
    }
    if let Ok(sa) = server.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    let bare = server.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, NTP_PORT)]);
    }
    let with_port = if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:{NTP_PORT}")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|e| NtpError::Resolve(format!("{server}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(NtpError::Resolve(server.to_string()));
    }
    Ok(addrs)
}

/// Asks `server` for the time once (blocking, at most `timeout`), measuring against the
/// system clock.
///
/// # Errors
/// Any [`NtpError`] but `SetClock`, `NoServers` and `AllFailed`.
pub fn query(server: &str, timeout: Duration) -> Result<NtpSample, NtpError> {
    query_with(server, timeout, &SystemClock::default())
}

/// [`query`], measuring against `clock`.
///
/// # Errors
/// As [`query`].
pub fn query_with(
    server: &str,
    timeout: Duration,
    clock: &dyn Clock,
) -> Result<NtpSample, NtpError> {
    let target = *resolve(server)?
        .first()
        .ok_or_else(|| NtpError::Resolve(server.to_string()))?;
    let bind: SocketAddr = if target.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    };
    let sock = UdpSocket::bind(bind)?;
    // Connected: the kernel drops datagrams from other sources.
    sock.connect(target)?;
    let t1 = clock.now();
    let sent = Timestamp::from_system(t1);
    sock.send(&packet::request(sent))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    let n = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NtpError::Timeout(timeout));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) => break n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NtpError::Timeout(timeout));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    };
    let t4 = clock.now();
    let reply = packet::parse_reply(buf.get(..n).unwrap_or_default(), sent)?;
    Ok(NtpSample {
        offset_nanos: packet::offset_nanos(
            packet::system_nanos(t1),
            &reply,
            packet::system_nanos(t4),
        ),
        server: target,
        stratum: reply.stratum,
    })
}

/// Tries `servers` in order (each for at most `timeout`) and sets `clock` from the first good
/// answer.
///
/// # Errors
/// [`NtpError::NoServers`], [`NtpError::SetClock`] (not retried with another server), or
/// [`NtpError::AllFailed`] with the last server's error.
pub fn sync(
    servers: &[String],
    timeout: Duration,
    clock: &dyn Clock,
) -> Result<NtpSample, NtpError> {
    let mut last = None;
    for server in servers {
        match query_with(server, timeout, clock) {
            Ok(sample) => {
                let target = packet::shift(clock.now(), sample.offset_nanos);
                clock.set(target)?;
                info!(
                    server = %sample.server,
                    stratum = sample.stratum,
                    offset_ms = (sample.offset_nanos / 1_000_000) as i64,
                    "clock set from NTP"
                );
                return Ok(sample);
            }
            Err(e) => {
                warn!(%server, error = %e, "NTP server did not give the time");
                last = Some((server.clone(), e));
            }
        }
    }
    match last {
        Some((server, e)) => Err(NtpError::AllFailed {
            server,
            last: Box::new(e),
        }),
        None => Err(NtpError::NoServers),
    }
}

/// IPA's start-up clock sync (`utils.sync_clock(ignore_errors=True)` first thing in `run()`):
/// nothing without servers; a failure is returned only when `fail_if_clock_not_set`, and
/// logged otherwise. Blocking: call it through `spawn_blocking` from async code.
///
/// # Errors
/// The [`sync`] error, when `fail_if_clock_not_set`.
pub fn sync_at_startup(
    servers: &[String],
    timeout: Duration,
    fail_if_clock_not_set: bool,
    clock: &dyn Clock,
) -> Result<Option<NtpSample>, NtpError> {
    if servers.is_empty() {
        return Ok(None);
    }
    match sync(servers, timeout, clock) {
        Ok(sample) => Ok(Some(sample)),
        Err(e) if fail_if_clock_not_set => Err(e),
        Err(e) => {
            warn!(error = %e, "could not set the clock from NTP; continuing");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;
