//! The switch's ports: UDP tunnels (QEMU's `-netdev dgram` / `socket,udp=`) and tap devices.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;
use nix::libc;

use super::config::Endpoint;

/// An open port; every read and write is one whole frame and never blocks.
#[derive(Debug)]
pub enum Port {
    /// A UDP socket bound to 127.0.0.1:local, sending to 127.0.0.1:remote.
    Udp {
        /// The bound socket.
        socket: UdpSocket,
        /// Where frames go.
        remote: SocketAddr,
    },
    /// A tap device opened through /dev/net/tun (IFF_TAP | IFF_NO_PI).
    Tap(File),
}

/// `struct ifreq` with the `ifr_flags` member (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Port {
    /// Opens `endpoint` in non-blocking mode.
    pub fn open(endpoint: &Endpoint) -> anyhow::Result<Port> {
        match endpoint {
            Endpoint::Udp { local, remote } => {
                let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, *local))
                    .with_context(|| format!("binding 127.0.0.1:{local}"))?;
                socket.set_nonblocking(true)?;
                let remote = SocketAddr::from((Ipv4Addr::LOCALHOST, *remote));
                Ok(Port::Udp { socket, remote })
            }
            Endpoint::Tap(name) => open_tap(name)
                .map(Port::Tap)
                .with_context(|| format!("opening tap device {name}")),
        }
    }

    /// Reads one frame into `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Port::Udp { socket, .. } => socket.recv_from(buf).map(|(n, _)| n),
            Port::Tap(file) => (&*file).read(buf),
        }
    }

    /// Writes one frame (a full socket buffer drops it, as a congested switch would).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self {
            Port::Udp { socket, remote } => socket.send_to(frame, remote).map(|_| ()),
            Port::Tap(file) => (&*file).write(frame).map(|_| ()),
        }
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Port::Udp { socket, .. } => socket.as_fd(),
            Port::Tap(file) => file.as_fd(),
        }
    }
}

fn open_tap(name: &str) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .context("/dev/net/tun")?;
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    anyhow::ensure!(name.len() < libc::IFNAMSIZ, "interface name too long");
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads an ifreq (name and flags) from `req`, a live struct of the
    // kernel's ifreq size, and may write the name back into it.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF as _, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error()).context("TUNSETIFF");
    }
    Ok(file)
}
