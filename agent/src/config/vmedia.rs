//! Configuration from virtual media, as IPA reads it when booted with `boot_method=vmedia`:
//! `parameters.txt` on the `ir-vfd-dev` floppy (merged over the kernel parameters), and the
//! `etc/ironic-python-agent{,.d}/` files of the virtual-media ISO or config drive (`config-2`,
//! `vmedia_boot_iso`) copied into `/etc` before the configuration files are read.
//!
//! A device that is missing or cannot be mounted is logged and skipped (the agent may still
//! have everything it needs); a `parameters.txt` that cannot be read from a mounted floppy is
//! an error naming both.

use std::path::{Path, PathBuf};

use tracing::Level;

use super::cmdline::KernelParams;
use crate::media::{
    BlockRoots, Notes, ReadOnlyMount, find_vmedia_by_labels, is_vmedia, virtual_media_model_device,
};

/// The label of the virtual-media floppy carrying `parameters.txt`.
pub const PARAMS_LABEL: &str = "ir-vfd-dev";

/// The file of parameters on it.
pub const PARAMS_FILE: &str = "parameters.txt";

/// Labels of media whose `etc/ironic-python-agent{,.d}` are copied.
pub const CONFIG_LABELS: &[&str] = &["config-2", "vmedia_boot_iso"];

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum VmediaError {
    /// The floppy was mounted but its `parameters.txt` could not be read.
    #[error("virtual media {device}: reading {file}: {source}", device = device.display(), file = file.display())]
    Params {
        /// The device.
        device: PathBuf,
        /// The file on it.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Whether the kernel command line says the agent was booted from virtual media.
pub fn booted_from_vmedia(kernel: &KernelParams) -> bool {
    kernel.get("boot_method") == Some("vmedia")
}

/// How long a virtual-media boot waits for its devices to show up (USB mass storage is scanned
/// a second or more after its controller's driver loads; without udev, nothing else waits).
pub const DEVICE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Waits (at most `timeout`, polling twice a second) for virtual media: with `floppy`, until
/// the parameters floppy (`ir-vfd-dev`, or a device whose model says "virtual media") exists —
/// the configuration has nowhere else to come from; otherwise until any device labelled
/// `ir-vfd-dev`, `config-2` or `vmedia_boot_iso` does. Returns whether it was found; logged
/// either way.
pub fn wait_for_devices(
    roots: &BlockRoots,
    floppy: bool,
    timeout: std::time::Duration,
    notes: &mut dyn Notes,
) -> bool {
    let all = [PARAMS_LABEL, CONFIG_LABELS[0], CONFIG_LABELS[1]];
    let labels: &[&str] = if floppy { &all[..1] } else { &all };
    let start = std::time::Instant::now();
    loop {
        let mut found = crate::media::find_by_labels(roots, labels);
        if floppy {
            found.extend(virtual_media_model_device(roots));
        }
        if !found.is_empty() {
            if !start.elapsed().is_zero() {
                notes.note(
                    Level::INFO,
                    format!(
                        "Virtual media {} found after {:.1} s",
                        found
                            .iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        start.elapsed().as_secs_f64()
                    ),
                );
            }
            return true;
        }
        if start.elapsed() >= timeout {
            notes.note(
                Level::WARN,
                format!(
                    "boot_method=vmedia but no device labelled {} after {} s",
                    labels.join(", "),
                    timeout.as_secs()
                ),
            );
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// IPA's `_get_vmedia_params`: the parameters of `parameters.txt` on the virtual-media floppy
/// (found by label, else by the "virtual media" model), with the device; `None` without one.
pub fn read_params(
    roots: &BlockRoots,
    notes: &mut dyn Notes,
) -> Result<Option<(PathBuf, KernelParams)>, VmediaError> {
    let device = match find_vmedia_by_labels(roots, &[PARAMS_LABEL], notes) {
        Some(d) => d,
        None => match virtual_media_model_device(roots) {
            Some(d) if is_vmedia(roots, &d, notes) => d,
            _ => {
                notes.note(
                    Level::INFO,
                    "No virtual media floppy with parameters found".into(),
                );
                return Ok(None);
            }
        },
    };
    let mount = match ReadOnlyMount::new(&device) {
        Ok(m) => m,
        Err(e) => {
            notes.note(
                Level::WARN,
                format!("Virtual media parameters not read: {e}"),
            );
            return Ok(None);
        }
    };
    let file = mount.path().join(PARAMS_FILE);
    let text = std::fs::read_to_string(&file).map_err(|source| VmediaError::Params {
        device: device.clone(),
        file: PathBuf::from(PARAMS_FILE),
        source,
    })?;
    let params = KernelParams::parse_params_file(&text);
    notes.note(
        Level::INFO,
        format!(
            "Read {} parameter(s) from {PARAMS_FILE} on virtual media {}",
            params.len(),
            device.display()
        ),
    );
    Ok(Some((device, params)))
}

/// IPA's `copy_config_from_vmedia`: copies `etc/ironic-python-agent/*` and
/// `etc/ironic-python-agent.d/*` from a `config-2` or `vmedia_boot_iso` virtual-media device to
/// `<root>/etc/...`. Returns the device and the files copied; failures are logged and skipped.
pub fn copy_config(
    roots: &BlockRoots,
    root: &Path,
    notes: &mut dyn Notes,
) -> Option<(PathBuf, Vec<PathBuf>)> {
    let Some(device) = find_vmedia_by_labels(roots, CONFIG_LABELS, notes) else {
        notes.note(Level::INFO, "No virtual media device detected".into());
        return None;
    };
    let mount = match ReadOnlyMount::new(&device) {
        Ok(m) => m,
        Err(e) => {
            notes.note(
                Level::WARN,
                format!("Configuration on virtual media not copied: {e}"),
            );
            return None;
        }
    };
    let copied = copy_config_from(mount.path(), root, notes);
    Some((device, copied))
}

/// Copies `<from>/etc/ironic-python-agent{,.d}/*` to `<root>/etc/...` (IPA's
/// `_copy_config_from`); returns the files written.
pub fn copy_config_from(from: &Path, root: &Path, notes: &mut dyn Notes) -> Vec<PathBuf> {
    let mut copied = Vec::new();
    for dir in ["etc/ironic-python-agent", "etc/ironic-python-agent.d"] {
        let src = from.join(dir);
        if !src.is_dir() {
            notes.note(Level::INFO, format!("{} not found", src.display()));
            continue;
        }
        let dest = root.join(dir);
        notes.note(
            Level::INFO,
            format!(
                "Copying configuration from {} to {}",
                src.display(),
                dest.display()
            ),
        );
        if let Err(e) = copy_dir_files(&src, &dest, &mut copied) {
            notes.note(
                Level::WARN,
                format!(
                    "Unable to copy vmedia configuration {} to {}: {e}",
                    src.display(),
                    dest.display()
                ),
            );
        }
    }
    copied
}

/// The regular files directly in `src`, copied into `dest` (created).
fn copy_dir_files(src: &Path, dest: &Path, copied: &mut Vec<PathBuf>) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(src)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        let (Some(name), true) = (path.file_name(), path.is_file()) else {
            continue;
        };
        let to = dest.join(name);
        std::fs::copy(&path, &to)?;
        copied.push(to);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::find::tests::{FakeDev, FakeTree, SATA, USB, dev};

    #[test]
    fn copies_both_directories() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let media = t.path().join("media");
        std::fs::create_dir_all(media.join("etc/ironic-python-agent"))?;
        std::fs::create_dir_all(media.join("etc/ironic-python-agent.d/subdir"))?;
        std::fs::write(media.join("etc/ironic-python-agent/ironic.crt"), "CA")?;
        std::fs::write(
            media.join("etc/ironic-python-agent.d/ironic-tls.conf"),
            "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\n",
        )?;
        let root = t.path().join("root");
        let mut notes = Vec::new();
        let copied = copy_config_from(&media, &root, &mut notes);
        assert_eq!(
            copied,
            vec![
                root.join("etc/ironic-python-agent/ironic.crt"),
                root.join("etc/ironic-python-agent.d/ironic-tls.conf"),
            ]
        );
        assert_eq!(std::fs::read_to_string(&copied[0])?, "CA");
        assert_eq!(notes.len(), 2, "{notes:?}");
        // Nothing there: two "not found" lines, nothing copied.
        let mut notes = Vec::new();
        assert!(copy_config_from(&root.join("nothing"), &root, &mut notes).is_empty());
        assert!(
            notes.iter().all(|n| n.1.ends_with("not found")),
            "{notes:?}"
        );
        Ok(())
    }

    #[test]
    fn waits_for_labelled_devices_bounded() -> anyhow::Result<()> {
        let t = FakeTree::new()?;
        t.add(&dev("sda", SATA, 100))?;
        let mut notes = Vec::new();
        let start = std::time::Instant::now();
        assert!(!wait_for_devices(
            &t.roots,
            false,
            std::time::Duration::from_secs(1),
            &mut notes
        ));
        assert!(start.elapsed() >= std::time::Duration::from_secs(1));
        assert!(
            notes
                .iter()
                .any(|n| n.1.contains("no device labelled ir-vfd-dev")),
            "{notes:?}"
        );
        let img = t.dir.path().join("cd.img");
        let out = std::process::Command::new("mkfs.vfat")
            .args(["-C", "-n", "CONFIG-2"])
            .arg(&img)
            .arg("1440")
            .output()
            .map_err(|e| anyhow::anyhow!("mkfs.vfat is required by this test: {e}"))?;
        anyhow::ensure!(out.status.success(), "mkfs.vfat failed");
        t.add(&FakeDev {
            image: Some(&img),
            ..dev("sr0", SATA, 2880)
        })?;
        let start = std::time::Instant::now();
        assert!(wait_for_devices(
            &t.roots,
            false,
            std::time::Duration::from_secs(30),
            &mut notes
        ));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // A config-2 disk is not the parameters floppy.
        assert!(!wait_for_devices(
            &t.roots,
            true,
            std::time::Duration::from_millis(600),
            &mut notes
        ));
        Ok(())
    }

    #[test]
    fn no_device_no_params() -> anyhow::Result<()> {
        let t = FakeTree::new()?;
        t.add(&dev("sda", SATA, 100))?;
        let mut notes = Vec::new();
        assert!(read_params(&t.roots, &mut notes)?.is_none());
        assert!(copy_config(&t.roots, t.dir.path(), &mut notes).is_none());
        assert!(
            notes
                .iter()
                .any(|n| n.1 == "No virtual media device detected")
        );
        Ok(())
    }

    #[test]
    fn unmountable_floppy_is_skipped() -> anyhow::Result<()> {
        // The host kernel has no vfat: the labelled floppy is found but cannot be mounted (or,
        // with vfat, is a regular file that mount(2) refuses), which is logged and skipped.
        let t = FakeTree::new()?;
        let img = crate::media::find::tests::mkfs_vfat(t.dir.path(), "vfd", "ir-vfd-dev")?;
        t.add(&FakeDev {
            image: Some(&img),
            ..dev("sdb", USB, 2880)
        })?;
        let mut notes = Vec::new();
        assert!(read_params(&t.roots, &mut notes)?.is_none());
        assert!(
            notes
                .iter()
                .any(|(l, m)| *l == Level::WARN && m.contains("parameters not read")),
            "{notes:?}"
        );
        Ok(())
    }

    /// An ext4 image labelled `label` holding the files of `content` (`mkfs.ext4 -d`).
    fn ext4_image(dir: &Path, name: &str, label: &str, content: &Path) -> anyhow::Result<PathBuf> {
        let img = dir.join(name);
        std::fs::File::create(&img)?.set_len(8 << 20)?;
        let out = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", label, "-d"])
            .arg(content)
            .arg(&img)
            .output()
            .map_err(|e| anyhow::anyhow!("mkfs.ext4 is required by this test: {e}"))?;
        anyhow::ensure!(
            out.status.success(),
            "mkfs.ext4: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(img)
    }

    /// The whole vmedia path of `Config::load` on real loop devices (ext4: this host has no
    /// vfat or iso9660), made to look like CD-ROM drives by a fake sysfs: `parameters.txt` on
    /// `ir-vfd-dev` merged over the command line, `ironic-tls.conf` and the CA copied from
    /// `config-2` into the etc root and read from there, both devices unmounted afterwards.
    #[test]
    fn load_with_virtual_media_on_loop_devices() -> anyhow::Result<()> {
        use crate::config::{Config, EarlyLog, Flags};
        use crate::testutil::LoopDevice;
        use clap::Parser;

        let t = tempfile::tempdir()?;
        let floppy = t.path().join("floppy");
        std::fs::create_dir_all(&floppy)?;
        std::fs::write(
            floppy.join(PARAMS_FILE),
            "ipa-api-url=http://10.9.9.9:6385 ipa-lookup-timeout=77\nipa-debug=1\n",
        )?;
        let iso = t.path().join("iso");
        std::fs::create_dir_all(iso.join("etc/ironic-python-agent.d"))?;
        std::fs::create_dir_all(iso.join("etc/ironic-python-agent"))?;
        std::fs::write(iso.join("etc/ironic-python-agent/ironic.crt"), "CA")?;
        std::fs::write(
            iso.join("etc/ironic-python-agent.d/ironic-tls.conf"),
            "[DEFAULT]\ncafile = /etc/ironic-python-agent/ironic.crt\nlookup_timeout = 88\n",
        )?;
        let vfd = LoopDevice::attach(&ext4_image(t.path(), "vfd.img", "IR-VFD-DEV", &floppy)?)?;
        let cd = LoopDevice::attach(&ext4_image(t.path(), "cd.img", "config-2", &iso)?)?;

        let tree = FakeTree::new()?;
        for lo in [&vfd, &cd] {
            let name = lo
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            tree.add(&FakeDev {
                scsi_type: Some("5"),
                ..dev(name, "virtual", 16384)
            })?;
        }
        let cmdline = t.path().join("cmdline");
        std::fs::write(&cmdline, "boot_method=vmedia ipa-api-url=http://kernel:1\n")?;
        let root = t.path().join("root");
        let arg = |p: &Path| p.display().to_string();
        let flags = Flags::parse_from([
            "ironic-agent".to_string(),
            format!("--cmdline={}", arg(&cmdline)),
            format!("--etc-root={}", arg(&root)),
            format!("--sys-root={}", arg(&tree.roots.sys)),
            "--dev-root=/dev".into(),
            "--vmedia-allow-loop".into(),
        ]);
        let mut early = EarlyLog::default();
        let c = Config::load(&flags, &mut early)?;
        let lines: Vec<&str> = early.lines().iter().map(|(_, l)| l.as_str()).collect();
        assert!(c.boot_method_vmedia);
        assert_eq!(c.api_urls, vec!["http://10.9.9.9:6385"], "{lines:#?}");
        assert!(c.debug);
        assert_eq!(
            c.lookup_timeout,
            std::time::Duration::from_secs(88),
            "the copied file wins over parameters.txt"
        );
        assert_eq!(
            c.cafile.as_deref(),
            Some(Path::new("/etc/ironic-python-agent/ironic.crt"))
        );
        assert_eq!(
            std::fs::read_to_string(root.join("etc/ironic-python-agent/ironic.crt"))?,
            "CA"
        );
        assert_eq!(c.sources.len(), 4, "{:?}", c.sources);
        assert!(c.sources[1].contains(&arg(&vfd.path)), "{:?}", c.sources);
        // Nothing stays mounted.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        let (vfd_s, cd_s) = (arg(&vfd.path), arg(&cd.path));
        assert!(
            !mounts.contains(&format!(" {vfd_s} ")) && !mounts.contains(&format!(" {cd_s} ")),
            "{mounts}"
        );
        Ok(())
    }

    #[test]
    fn boot_method() {
        assert!(booted_from_vmedia(&KernelParams::parse(
            "boot_method=vmedia"
        )));
        assert!(!booted_from_vmedia(&KernelParams::parse("boot_method=pxe")));
        assert!(!booted_from_vmedia(&KernelParams::parse("")));
    }
}
