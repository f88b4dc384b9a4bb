//! AF_PACKET sockets for LLDP: what nix does not wrap (binding to an ethertype, multicast
//! membership, interface flags) is a few `libc` calls through nix's re-export.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;
use nix::net::if_::if_nametoindex;
use nix::sys::socket::{AddressFamily, LinkAddr, SockFlag, SockType, SockaddrLike, bind, socket};

/// `PACKET_ADD_MEMBERSHIP` (linux/if_packet.h).
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
/// `PACKET_MR_MULTICAST` (linux/if_packet.h).
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
/// `SIOCGIFFLAGS` / `SIOCSIFFLAGS` (linux/sockios.h).
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;
/// `IFF_UP` (linux/if.h).
const IFF_UP: libc::c_short = 0x1;

/// `struct packet_mreq` (linux/if_packet.h).
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

/// `struct ifreq` with the `ifr_flags` member of its union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A raw AF_PACKET socket bound to `ifname` receiving (and sending) frames of `ethertype`
/// (the tests send with it).
#[cfg(test)]
pub(crate) fn packet_socket(ifname: &str, ethertype: u16) -> io::Result<OwnedFd> {
    let fd = unbound_socket()?;
    bind_to(&fd, ifname, ethertype)?;
    Ok(fd)
}

/// A raw AF_PACKET socket with protocol 0: it receives nothing until [`bind_to`].
pub(crate) fn unbound_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

/// Binds a packet socket to `ifname` and `ethertype`. Bind an interface that is up: binding
/// to a down one leaves ENETDOWN pending on the socket.
pub(crate) fn bind_to(fd: &OwnedFd, ifname: &str, ethertype: u16) -> io::Result<()> {
    let ifindex = if_nametoindex(ifname)?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = libc::c_int::try_from(ifindex).map_err(io::Error::other)?;
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` is an initialised sockaddr_ll of family AF_PACKET and `len` its size.
    let addr = unsafe { LinkAddr::from_raw((&raw const sll).cast(), Some(len)) }
        .ok_or_else(|| io::Error::other("sockaddr_ll rejected"))?;
    bind(fd.as_raw_fd(), &addr)?;
    Ok(())
}

/// Joins the link-layer multicast group `mac` on `ifname` for the socket's lifetime (the
/// kernel leaves it when the socket closes).
pub(crate) fn join_multicast(fd: &OwnedFd, ifname: &str, mac: [u8; 6]) -> io::Result<()> {
    let ifindex = if_nametoindex(ifname)?;
    let mut address = [0u8; 8];
    address[..6].copy_from_slice(&mac);
    let mreq = PacketMreq {
        mr_ifindex: libc::c_int::try_from(ifindex).map_err(io::Error::other)?,
        mr_type: PACKET_MR_MULTICAST,
        mr_alen: 6,
        mr_address: address,
    };
    // SAFETY: `mreq` is a live packet_mreq and the length passed is its size; the kernel only
    // reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            (&raw const mreq).cast(),
            size_of::<PacketMreq>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets IFF_UP on `ifname` if it is down; returns whether it had to.
pub(crate) fn bring_up(fd: &OwnedFd, ifname: &str) -> io::Result<bool> {
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    let bytes = ifname.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into `req`, a live ifreq
    // of the kernel's size.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGIFFLAGS as _, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if req.flags & IFF_UP != 0 {
        return Ok(false);
    }
    req.flags |= IFF_UP;
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SIOCSIFFLAGS as _, &raw const req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}
