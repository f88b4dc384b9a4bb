//! IPA 13 run inside a QEMU guest beside our agent, on the same virtual hardware: the oracle of
//! the guest inventory comparison in `tests/vm.rs`.
//!
//! The minimal ramdisk has no Python. The host's root is shared with the guest read-only over
//! virtio-9p (tag [`HOST_TAG`]), a scratch directory read-write (tag [`OUT_TAG`]), and a cpio
//! overlay adds a plug-in hardware manager to the ramdisk: asked `support` when the agent starts,
//! it starts [`RUNNER`] in the background and answers 0 (it leaves the chain). The runner
//! mounts both shares, binds the guest's `/proc`, `/sys`, `/dev` and `/run` over the host
//! root's (scratch space goes to the guest's `/run`), and runs the oracle venv's Python with `tests/oracle/ipa_inventory.py` in a chroot
//! there: IPA's code and the host's tools (lshw, lsblk, ipmitool, dmidecode ...) read the guest's
//! kernel and devices. The inventory lands in the scratch directory as `ipa.json`, its log as
//! `ipa.log`. Nothing is written to the host's root (the share is read-only).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::qemu::Vm;

/// The 9p tag of the host's root (read-only).
pub const HOST_TAG: &str = "hostroot";
/// The 9p tag of the scratch directory the result is written to.
pub const OUT_TAG: &str = "ipaout";

/// The plug-in manager: starts [`RUNNER`] once, then stays out of the chain.
const PLUGIN: &str = r#"#!/bin/sh
# Test fixture (tests/guest_ipa.rs): starts IPA 13's inventory beside the agent, then leaves
# the hardware-manager chain.
cat >/dev/null
case "$IRONIC_AGENT_METHOD" in
support)
    if mkdir /run/ipa-oracle 2>/dev/null; then
        setsid sh /etc/ironic-agent/ipa-oracle.sh </dev/null >/dev/null 2>&1 &
    fi
    printf '{"result": 0}\n' ;;
*)
    printf '{"error": {"type": "IncompatibleHardwareMethodError", "message": "oracle"}}\n' ;;
esac
"#;

/// The runner; `@PYTHON@` and `@SCRIPT@` are the host paths of the venv's python and the
/// driver.
pub const RUNNER: &str = r#"#!/bin/sh
out=/run/ipa-oracle/out
mkdir -p /host "$out"
modprobe 9pnet_virtio; modprobe 9p
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts" ipaout "$out" || exit 1
exec >"$out/ipa.log" 2>&1
set -x
mount -t 9p -o "$opts,ro" hostroot /host || exit 1
for d in proc sys dev run; do mount --bind "/$d" "/host/$d" || exit 1; done
mount --bind "$out" /host/mnt || exit 1
# Scratch space in the guest's /run (the host's /tmp stays visible: the checkout may be there).
mkdir -p /run/ipa-oracle/tmp
chroot /host /usr/bin/env -i HOME=/run/ipa-oracle/tmp TMPDIR=/run/ipa-oracle/tmp LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/sh -c '@PYTHON@ -W ignore @SCRIPT@ /proc/cmdline >/mnt/ipa.json.part &&
                mv /mnt/ipa.json.part /mnt/ipa.json'
echo "exit $?"
"#;

/// The cpio archive (newc) adding the plug-in and the runner to the ramdisk, made in `dir`.
pub fn overlay(dir: &Path) -> anyhow::Result<PathBuf> {
    let python = crate::oracle::python()?;
    let script = crate::oracle::script("ipa_inventory.py");
    let stage = dir.join("stage");
    let plugins = stage.join("etc/ironic-agent/hardware-managers.d");
    std::fs::create_dir_all(&plugins)?;
    let write_exec = |path: PathBuf, text: &str| -> anyhow::Result<()> {
        std::fs::write(&path, text)?;
        let status = Command::new("chmod").arg("0755").arg(&path).status()?;
        if !status.success() {
            bail!("chmod {}", path.display());
        }
        Ok(())
    };
    write_exec(plugins.join("00-ipa-oracle"), PLUGIN)?;
    write_exec(
        stage.join("etc/ironic-agent/ipa-oracle.sh"),
        &RUNNER
            .replace("@PYTHON@", &python.display().to_string())
            .replace("@SCRIPT@", &script.display().to_string()),
    )?;
    let archive = dir.join("ipa-oracle.cpio");
    let out = std::fs::File::create(&archive)?;
    let mut cpio = Command::new("sh")
        .arg("-c")
        .arg("find etc | cpio -o -H newc --owner=0:0 --quiet")
        .current_dir(&stage)
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .context("cpio (Debian package cpio)")?;
    let status = cpio.wait()?;
    if !status.success() {
        bail!("cpio failed: {status}");
    }
    Ok(archive)
}

/// The shares for `VmSpec::shares`: the host's root read-only, `out` read-write.
pub fn shares(out: &Path) -> Vec<(PathBuf, String, bool)> {
    vec![
        (PathBuf::from("/"), HOST_TAG.to_string(), true),
        (out.to_path_buf(), OUT_TAG.to_string(), false),
    ]
}

/// Waits (up to `timeout`) for IPA's inventory in `out`; its run's log in the error.
pub fn wait_inventory(out: &Path, vm: &mut Vm, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let result = out.join("ipa.json");
    loop {
        if let Ok(text) = std::fs::read_to_string(&result) {
            return serde_json::from_str(&text).context("IPA's inventory is not JSON");
        }
        let log = std::fs::read_to_string(out.join("ipa.log")).unwrap_or_default();
        let ended = log.lines().any(|l| l.starts_with("exit "));
        vm.check_running()?;
        if ended && let Ok(text) = std::fs::read_to_string(&result) {
            return serde_json::from_str(&text).context("IPA's inventory is not JSON");
        }
        if ended || Instant::now() > deadline {
            bail!(
                "no inventory from IPA in the guest ({}):\n{log}\nconsole:\n{}",
                if ended { "it failed" } else { "timed out" },
                vm.console()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
