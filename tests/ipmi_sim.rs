//! An emulated BMC for the VM tests: OpenIPMI's `ipmi_sim` (Debian package `openipmi`) on the
//! host's loopback, reached by the guest's in-band KCS interface through QEMU's
//! `ipmi-bmc-extern` device. Its LAN channel 1 reports the addresses of [`BmcLan`] (answered by a
//! `lan_config_program` script of the test's own), so `ipmitool lan print 1` in the guest sees
//! them as on a real server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What the BMC's LAN channel 1 reports.
#[derive(Debug, Clone)]
pub struct BmcLan {
    /// `IP Address`.
    pub ip: &'static str,
    /// `MAC Address`.
    pub mac: &'static str,
    /// `Subnet Mask`.
    pub netmask: &'static str,
    /// `Default Gateway IP`.
    pub gateway: &'static str,
}

/// A running `ipmi_sim`; killed on drop.
pub struct IpmiSim {
    child: Child,
    /// The QEMU arguments that attach the guest to it (`-chardev`, `-device` ...).
    pub qemu_args: Vec<String>,
}

impl IpmiSim {
    /// Starts `ipmi_sim` with its files in `dir`, its VM serial interface on a free loopback
    /// port (and its LAN interface on another), and waits until it listens.
    pub fn start(dir: &Path, lan: &BmcLan) -> anyhow::Result<IpmiSim> {
        if Command::new("ipmi_sim").arg("--version").output().is_err() {
            bail!(
                "ipmi_sim is missing: install the Debian package openipmi (scripts/install-ramdisk-deps.sh does)"
            );
        }
        std::fs::create_dir_all(dir.join("state"))?;
        let control = dir.join("lancontrol");
        std::fs::write(
            &control,
            format!(
                "#!/bin/sh\n# ipmi_sim's lan_config_program: DEVICE OP PARAM...\nshift\n\
                 [ \"$1\" = get ] || exit 0\nshift\nfor p in \"$@\"; do\n  case $p in\n\
                 ip_addr) v={ip} ;;\n    ip_addr_src) v=static ;;\n    mac_addr) v={mac} ;;\n\
                 subnet_mask) v={mask} ;;\n    default_gw_ip_addr) v={gw} ;;\n\
                 backup_gw_ip_addr) v=0.0.0.0 ;;\n\
                 default_gw_mac_addr|backup_gw_mac_addr) v=00:00:00:00:00:00 ;;\n\
                 *) echo \"Invalid parameter: $p\"; exit 1 ;;\n  esac\n  echo \"$p:$v\"\ndone\n",
                ip = lan.ip,
                mac = lan.mac,
                mask = lan.netmask,
                gw = lan.gateway
            ),
        )?;
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&control)
            .status()?;
        let serial_port = crate::free_port();
        let lan_port = crate::free_port();
        let conf = dir.join("lan.conf");
        std::fs::write(
            &conf,
            format!(
                "name \"agentbmc\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {lan_port}\n\
                 \x20   priv_limit admin\n    allowed_auths_admin md5\n\
                 \x20   guid a123456789abcdefa123456789abcdef\n\
                 \x20   lan_config_program \"{control} eth0\"\n  endlan\n\
                 \x20 serial 15 127.0.0.1 {serial_port} codec VM\n  startnow false\n\
                 \x20 user 2 true \"admin\" \"password\" admin 10 md5\n",
                control = control.display()
            ),
        )?;
        let emu = dir.join("bmc.emu");
        std::fs::write(
            &emu,
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
             sel_enable 0x20 50 0x0a\nmc_enable 0x20\n",
        )?;
        let log = std::fs::File::create(dir.join("ipmi_sim.log"))?;
        // SIGPIPE ignored: ipmi_sim dies of it when a client (QEMU reconnecting, or anything
        // probing the port) goes away while it writes.
        let child = Command::new("sh")
            .arg("-c")
            .arg("trap '' PIPE; exec ipmi_sim \"$@\"")
            .arg("ipmi_sim")
            .arg("-c")
            .arg(&conf)
            .arg("-f")
            .arg(&emu)
            .arg("-s")
            .arg(dir.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting ipmi_sim")?;
        let sim = IpmiSim {
            child,
            qemu_args: vec![
                "-chardev".into(),
                format!("socket,id=ipmi0,host=127.0.0.1,port={serial_port},reconnect-ms=1000"),
                "-device".into(),
                "ipmi-bmc-extern,id=bmc0,chardev=ipmi0".into(),
                "-device".into(),
                "isa-ipmi-kcs,bmc=bmc0".into(),
            ],
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Not by connecting: ipmi_sim serves one VM connection and stops listening while a
        // client is connected.
        while !listening(serial_port) {
            if Instant::now() > deadline {
                bail!(
                    "ipmi_sim did not listen on port {serial_port}: {}",
                    std::fs::read_to_string(dir.join("ipmi_sim.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(sim)
    }
}

/// Whether a TCP socket listens on 127.0.0.1:`port` (from `/proc/net/tcp`).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
