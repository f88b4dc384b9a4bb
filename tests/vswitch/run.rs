//! The event loop: poll every port and the signals, forward, send LLDP on time.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use anyhow::Context;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::beacon::{LLDP_INTERVAL, lldp_for_port};
use super::config::Config;
use super::frame::MAX_FRAME;
use super::port::Port;
use super::switch::{Mode, Switch};

/// Most frames read from one port per poll round (so one busy port cannot starve the rest).
const BURST: usize = 64;
/// Log lines about dropped frames before they are only counted.
const MAX_DROP_LINES: u64 = 200;
/// Size of the log file beyond which nothing more is written.
const MAX_LOG_BYTES: u64 = 16 << 20;

/// The optional log file.
struct Log {
    file: Option<File>,
    start: Instant,
    drops: u64,
    written: u64,
}

impl Log {
    fn line(&mut self, msg: impl std::fmt::Display) {
        if let Some(f) = &mut self.file
            && self.written < MAX_LOG_BYTES
        {
            let line = format!("{:9.3} {msg}\n", self.start.elapsed().as_secs_f64());
            self.written += line.len() as u64;
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Logs a dropped frame or a failed send, the first [`MAX_DROP_LINES`] times.
    fn drop(&mut self, msg: impl std::fmt::Display) {
        self.drops += 1;
        if self.drops <= MAX_DROP_LINES {
            self.line(msg);
        } else if self.drops == MAX_DROP_LINES + 1 {
            self.line("further drops are not logged");
        }
    }
}

/// Runs the switch until SIGTERM or SIGINT; calls `ready` once every port is open.
pub fn run(config: &Config, ready: impl FnOnce()) -> anyhow::Result<()> {
    let file = match &config.log {
        Some(path) => Some(File::create(path).with_context(|| format!("creating {path}"))?),
        None => None,
    };
    let mut log = Log {
        file,
        start: Instant::now(),
        drops: 0,
        written: 0,
    };
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().context("blocking SIGTERM/SIGINT")?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;

    let mut ports = Vec::new();
    for spec in &config.ports {
        ports.push(Port::open(&spec.endpoint)?);
        log.line(format_args!(
            "port {} {}: {:?} {:?}",
            ports.len() - 1,
            spec.name,
            spec.endpoint,
            spec.mode
        ));
    }
    let names: Vec<&str> = config.ports.iter().map(|p| p.name.as_str()).collect();
    let mut switch = Switch::new(
        config.ports.iter().map(|p| p.mode).collect(),
        config.native_vlan,
    );
    let beacons: Vec<(usize, Vec<u8>)> = if config.lldp.is_empty() {
        Vec::new()
    } else {
        switch
            .modes()
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Mode::Trunk)
            .map(|(i, _)| (i, lldp_for_port(names[i], &config.lldp, config.native_vlan)))
            .collect()
    };
    ready();

    let mut next_lldp = Instant::now();
    let mut buf = vec![0u8; MAX_FRAME + 1];
    loop {
        let now = Instant::now();
        if !beacons.is_empty() && now >= next_lldp {
            for (port, frame) in &beacons {
                if let Err(e) = ports[*port].send(frame) {
                    log.drop(format_args!("LLDP to {}: {e}", names[*port]));
                }
            }
            next_lldp = now + LLDP_INTERVAL;
        }
        let timeout = if beacons.is_empty() {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(next_lldp.saturating_duration_since(now))
                .unwrap_or(PollTimeout::MAX)
        };
        let mut fds: Vec<PollFd<'_>> = ports
            .iter()
            .map(|p| PollFd::new(p.fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready.last() == Some(&true) {
            if let Ok(Some(info)) = sigfd.read_signal() {
                log.line(format_args!("signal {}: exiting", info.ssi_signo));
            }
            return Ok(());
        }
        for (ingress, _) in ready
            .iter()
            .enumerate()
            .filter(|(i, r)| **r && *i < ports.len())
        {
            for _ in 0..BURST {
                let len = match ports[ingress].recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // ICMP "port unreachable" for an earlier send to a guest not yet listening.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => {
                        log.drop(format_args!("read from {}: {e}", names[ingress]));
                        break;
                    }
                };
                let forwarding = match switch.forward(ingress, &buf[..len], Instant::now()) {
                    Ok(f) => f,
                    Err(why) => {
                        log.drop(format_args!("drop from {}: {why:?}", names[ingress]));
                        continue;
                    }
                };
                if let Some((vlan, mac)) = forwarding.learned {
                    log.line(format_args!(
                        "learned {} vlan {vlan} on {}",
                        mac_str(&mac),
                        names[ingress]
                    ));
                }
                for (egress, frame) in &forwarding.out {
                    if let Err(e) = ports[*egress].send(frame)
                        && e.kind() != io::ErrorKind::ConnectionRefused
                    {
                        log.drop(format_args!("send to {}: {e}", names[*egress]));
                    }
                }
            }
        }
    }
}

fn mac_str(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
