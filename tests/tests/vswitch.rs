//! The `vswitch` test switch end to end, in a network namespace of its own: a tap port
//! (access VLAN 100) holding an address of the namespace's kernel, and two trunk UDP ports
//! played by this test. A tagged ARP request from one UDP "guest" must reach the kernel
//! untagged (it answers), the answer must come back tagged to that guest only, and the
//! request is flooded tagged to the other guest. The LLDP the switch sends on trunks names
//! the port and the VLANs. Needs root (skipped otherwise).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hardware_managers::lldp::{parse_lldpdu, vlan_ids};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const GUEST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xaa];
const GUEST_IP: [u8; 4] = [10, 99, 0, 2];
const TAP_IP: [u8; 4] = [10, 99, 0, 1];
const VID: u16 = 100;

/// A network namespace, deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> Option<NetNs> {
        let name = format!("vswitch-test-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(NetNs { name })
    }

    fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .context("ip")?;
        ensure!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Binds UDP sockets on 127.0.0.1 inside the namespace (from a thread that entered it).
    fn udp_sockets(&self, ports: &[u16]) -> anyhow::Result<Vec<UdpSocket>> {
        let path = format!("/var/run/netns/{}", self.name);
        let ports = ports.to_vec();
        thread::spawn(move || -> anyhow::Result<Vec<UdpSocket>> {
            let ns = File::open(&path).with_context(|| path.clone())?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            ports
                .iter()
                .map(|p| Ok(UdpSocket::bind(("127.0.0.1", *p))?))
                .collect()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("socket thread panicked"))?
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The switch process, stopped with SIGTERM (or killed) on drop.
struct Switch(Child);

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&VID.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&GUEST_IP);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&TAP_IP);
    f.resize(64, 0);
    f
}

/// Receives on `sock` until `want` accepts a frame or `timeout`; LLDP frames go to `lldp`.
fn receive(
    sock: &UdpSocket,
    timeout: Duration,
    lldp: &mut Vec<Vec<u8>>,
    want: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no matching frame within {timeout:?}");
        }
        sock.set_read_timeout(Some(left))?;
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let frame = &buf[..n];
        if frame.get(12..14) == Some(&[0x88, 0xcc]) {
            lldp.push(frame.to_vec());
        } else if want(frame) {
            return Ok(frame.to_vec());
        }
    }
}

fn is_arp(frame: &[u8], op: u8) -> bool {
    frame.len() >= 16 + 28
        && frame[12..14] == [0x81, 0x00]
        && frame[16..18] == [0x08, 0x06]
        && frame[18 + 7] == op
}

#[test]
fn tagged_arp_through_a_tap_access_port() -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(ns) = NetNs::new() else {
        eprintln!("skipped: cannot create a network namespace (needs root)");
        return Ok(());
    };
    ns.ip(&["link", "set", "lo", "up"])?;
    ns.ip(&["tuntap", "add", "dev", "vstap0", "mode", "tap"])?;
    ns.ip(&["addr", "add", "10.99.0.1/24", "dev", "vstap0"])?;
    ns.ip(&["link", "set", "vstap0", "up"])?;
    let socks = ns.udp_sockets(&[40002, 40004])?;
    let (guest_a, guest_b) = (&socks[0], &socks[1]);
    let log = tempfile::NamedTempFile::new()?;

    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_vswitch")])
        .args(["--port", "tap:vstap0,access=100"])
        .args(["--port", "udp:40001:40002,trunk,name=guestA"])
        .args(["--port", "udp:40003:40004,trunk,name=guestB"])
        .args(["--lldp", "100,200", "--log"])
        .arg(log.path())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting vswitch")?;
    let stdout = child.stdout.take().context("stdout")?;
    let pid = Pid::from_raw(i32::try_from(child.id())?);
    let mut switch = Switch(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(5))
        .context("vswitch ready")?;
    assert_eq!(line.trim(), "vswitch ready");

    // The kernel activates the tap's queue (carrier came with the switch attaching) from its
    // link watch, up to a second later: until then its answers are dropped, so ask again.
    let mut lldp = Vec::new();
    let mut reply = None;
    for _ in 0..20 {
        guest_a.send_to(&arp_request(), "127.0.0.1:40001")?;
        if let Ok(frame) = receive(guest_a, Duration::from_millis(300), &mut lldp, |f| {
            is_arp(f, 2) && f[..6] == GUEST_MAC
        }) {
            reply = Some(frame);
            break;
        }
    }
    let reply = reply.with_context(|| {
        let log = std::fs::read_to_string(log.path()).unwrap_or_default();
        format!("no ARP reply on guest A; switch log:\n{log}")
    })?;
    // Tagged VLAN 100, from the tap's MAC, answering for 10.99.0.1.
    assert_eq!(u16::from_be_bytes([reply[14], reply[15]]) & 0x0fff, VID);
    assert_eq!(reply[18 + 14..18 + 18], TAP_IP);
    assert_eq!(reply[18 + 24..18 + 28], GUEST_IP);
    let neigh = ns.ip(&["neigh", "show", "dev", "vstap0"])?;
    assert!(
        neigh.contains("10.99.0.2 lladdr 02:00:00:00:00:aa"),
        "{neigh}"
    );

    // Guest B saw the broadcast request, tagged, and not the unicast reply.
    let mut lldp_b = Vec::new();
    let flooded = receive(guest_b, Duration::from_secs(2), &mut lldp_b, |f| {
        is_arp(f, 1)
    })?;
    assert_eq!(flooded, arp_request());
    guest_b.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut buf = [0u8; 2048];
    while let Ok(n) = guest_b.recv(&mut buf) {
        assert!(!is_arp(&buf[..n], 2), "the reply was flooded to guest B");
    }

    // LLDP (sent at start) names each guest's port and both VLANs.
    if lldp.is_empty() {
        receive(guest_a, Duration::from_secs(6), &mut lldp, |_| false).ok();
    }
    let first = lldp.first().context("no LLDP on guest A")?;
    let tlvs = parse_lldpdu(&first[14..])?;
    assert_eq!(vlan_ids(&tlvs), vec![100, 200]);
    assert_eq!(tlvs[1].value, b"\x05guestA");

    kill(pid, Signal::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = switch.0.try_wait()? {
            break s;
        }
        ensure!(Instant::now() < deadline, "vswitch ignored SIGTERM");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(log.path())?;
    assert!(
        log.contains("learned 02:00:00:00:00:aa vlan 100 on guestA"),
        "{log}"
    );
    assert!(log.contains("exiting"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(20));
    Ok(())
}
