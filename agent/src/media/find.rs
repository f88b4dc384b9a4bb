//! Finding labelled media through sysfs (what IPA asks `lsblk` for), and IPA's test of whether
//! a device looks like virtual media attached by a BMC.

use std::path::{Path, PathBuf};

use tracing::Level;

use super::Notes;
use super::label::read_label;

/// USB disks at least this large are not taken for virtual media (IPA's 4 GiB).
pub const USB_VMEDIA_MAX_BYTES: u64 = 4 << 30;

/// The sysfs model IPA's fall-back looks for (compared lower-case).
pub const VIRTUAL_MEDIA_MODEL: &str = "virtual media";

/// Where block devices are looked for: `/sys` and `/dev` normally, fake trees in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRoots {
    /// The sysfs root (`/sys`): devices are `<sys>/class/block/*`.
    pub sys: PathBuf,
    /// The device directory (`/dev`): device `NAME` is `<dev>/NAME`.
    pub dev: PathBuf,
    /// Whether loop devices are scanned too (tests only: a loop device is never virtual media).
    pub allow_loop: bool,
}

impl Default for BlockRoots {
    fn default() -> Self {
        BlockRoots {
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
            allow_loop: false,
        }
    }
}

impl BlockRoots {
    fn class_block(&self) -> PathBuf {
        self.sys.join("class/block")
    }

    /// Names of the block devices worth reading a label from (sorted): disks, partitions,
    /// `sr*`, `fd*`; no RAM disks, no loop devices unless allowed.
    pub fn device_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.class_block()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !(n.starts_with("ram") || n.starts_with("zram")))
            .filter(|n| self.allow_loop || !n.starts_with("loop"))
            .collect();
        names.sort();
        names
    }
}

/// Devices (as `<dev>/NAME`) whose filesystem label equals one of `labels`, ignoring case (IPA
/// compares upper-cased). Unreadable devices (an empty CD drive) are skipped.
pub fn find_by_labels(roots: &BlockRoots, labels: &[&str]) -> Vec<PathBuf> {
    let wanted: Vec<String> = labels.iter().map(|l| l.to_uppercase()).collect();
    roots
        .device_names()
        .into_iter()
        .map(|n| roots.dev.join(n))
        .filter(|dev| {
            matches!(read_label(dev), Ok(Some(found))
                if found.label.as_ref().is_some_and(|l| wanted.contains(&l.to_uppercase())))
        })
        .collect()
}

/// IPA's `_find_vmedia_device_by_labels`: the first device labelled with one of `labels` that
/// passes [`is_vmedia`].
pub fn find_vmedia_by_labels(
    roots: &BlockRoots,
    labels: &[&str],
    notes: &mut dyn Notes,
) -> Option<PathBuf> {
    for candidate in find_by_labels(roots, labels) {
        if is_vmedia(roots, &candidate, notes) {
            return Some(candidate);
        }
        notes.note(
            Level::INFO,
            format!(
                "Found possible vmedia candidate {}, however the device failed vmedia validity \
                 checking.",
                candidate.display()
            ),
        );
    }
    notes.note(
        Level::INFO,
        "Did not identify any virtual media candidates devices.".into(),
    );
    None
}

/// IPA's `_check_vmedia_device`, from sysfs: a partition is not virtual media; a ROM drive
/// (`sr*`, or SCSI type 5) is; a USB-attached disk smaller than 4 GiB is; nothing else.
pub fn is_vmedia(roots: &BlockRoots, device: &Path, notes: &mut dyn Notes) -> bool {
    let Some(name) = device.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let entry = roots.class_block().join(name);
    if !entry.exists() {
        notes.note(
            Level::INFO,
            format!(
                "Device {} is not a block device known to {}; not virtual media.",
                device.display(),
                roots.class_block().display()
            ),
        );
        return false;
    }
    let shown = device.display();
    if entry.join("partition").exists() {
        notes.note(
            Level::INFO,
            format!(
                "Excluding device {shown} from virtual media consideration as it is a partition."
            ),
        );
        return false;
    }
    let scsi_type = read_trimmed(&entry.join("device/type"));
    if name.starts_with("sr") || scsi_type.as_deref() == Some("5") {
        return true;
    }
    let usb = std::fs::canonicalize(&entry)
        .map(|p| p.to_string_lossy().contains("/usb"))
        .unwrap_or(false);
    if usb {
        let size = read_trimmed(&entry.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .map(|sectors| sectors.saturating_mul(512));
        match size {
            Some(bytes) if bytes < USB_VMEDIA_MAX_BYTES => return true,
            _ => notes.note(
                Level::INFO,
                format!(
                    "Device {shown} appears to not qualify as virtual due to the device size. \
                     Size: {}",
                    size.map(|b| b.to_string()).unwrap_or_default()
                ),
            ),
        }
    }
    notes.note(
        Level::INFO,
        format!(
            "Device {shown} was disqualified as virtual media. Type: disk, Transport: {}",
            if usb { "usb" } else { "" }
        ),
    );
    false
}

/// IPA's `_get_vmedia_device`: the first block device whose `device/model` contains
/// "virtual media" (any case), as `<dev>/NAME`.
pub fn virtual_media_model_device(roots: &BlockRoots) -> Option<PathBuf> {
    roots.device_names().into_iter().find_map(|name| {
        let model = std::fs::read_to_string(roots.class_block().join(&name).join("device/model"));
        model
            .ok()
            .filter(|m| m.to_lowercase().contains(VIRTUAL_MEDIA_MODEL))
            .map(|_| roots.dev.join(&name))
    })
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A fake `/sys` + `/dev`: devices are added with [`FakeTree::add`].
    pub(crate) struct FakeTree {
        pub(crate) dir: tempfile::TempDir,
        pub(crate) roots: BlockRoots,
    }

    /// One fake block device.
    pub(crate) struct FakeDev<'a> {
        pub(crate) name: &'a str,
        /// Under `devices/`: e.g. `pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/.../block`.
        pub(crate) bus_path: &'a str,
        pub(crate) sectors: u64,
        pub(crate) scsi_type: Option<&'a str>,
        pub(crate) model: Option<&'a str>,
        pub(crate) partition: bool,
        /// Contents of `/dev/NAME` (an image file standing in for the device).
        pub(crate) image: Option<&'a Path>,
    }

    impl FakeTree {
        pub(crate) fn new() -> anyhow::Result<FakeTree> {
            let dir = tempfile::tempdir()?;
            let roots = BlockRoots {
                sys: dir.path().join("sys"),
                dev: dir.path().join("dev"),
                allow_loop: false,
            };
            std::fs::create_dir_all(roots.sys.join("class/block"))?;
            std::fs::create_dir_all(&roots.dev)?;
            Ok(FakeTree { dir, roots })
        }

        pub(crate) fn add(&self, d: &FakeDev<'_>) -> anyhow::Result<()> {
            let real = self.roots.sys.join("devices").join(d.bus_path).join(d.name);
            std::fs::create_dir_all(real.join("device"))?;
            std::fs::write(real.join("size"), format!("{}\n", d.sectors))?;
            if let Some(t) = d.scsi_type {
                std::fs::write(real.join("device/type"), format!("{t}\n"))?;
            }
            if let Some(m) = d.model {
                std::fs::write(real.join("device/model"), format!("{m}\n"))?;
            }
            if d.partition {
                std::fs::write(real.join("partition"), "1\n")?;
            }
            symlink(&real, self.roots.sys.join("class/block").join(d.name))?;
            match d.image {
                Some(img) => std::fs::copy(img, self.roots.dev.join(d.name)).map(drop)?,
                None => std::fs::write(self.roots.dev.join(d.name), [])?,
            }
            Ok(())
        }
    }

    pub(crate) const USB: &str =
        "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block";
    pub(crate) const SATA: &str = "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block";

    pub(crate) fn dev<'a>(name: &'a str, bus_path: &'a str, sectors: u64) -> FakeDev<'a> {
        FakeDev {
            name,
            bus_path,
            sectors,
            scsi_type: None,
            model: None,
            partition: false,
            image: None,
        }
    }

    pub(crate) fn mkfs_vfat(dir: &Path, name: &str, label: &str) -> anyhow::Result<PathBuf> {
        let p = dir.join(name);
        std::fs::File::create(&p)?.set_len(1_474_560)?;
        let out = std::process::Command::new("mkfs.vfat")
            .args(["-n", label])
            .arg(&p)
            .output()
            .map_err(|e| anyhow::anyhow!("mkfs.vfat is required by this test: {e}"))?;
        anyhow::ensure!(out.status.success(), "mkfs.vfat failed");
        Ok(p)
    }

    #[test]
    fn vmedia_check_follows_ipa() -> anyhow::Result<()> {
        let t = FakeTree::new()?;
        let big = 5u64 << 30 >> 9;
        t.add(&dev("sr0", SATA, 2048))?;
        t.add(&FakeDev {
            scsi_type: Some("5"),
            ..dev("sdz", SATA, 2048)
        })?;
        t.add(&dev("sdb", USB, 2880))?;
        t.add(&dev("sdc", USB, big))?;
        t.add(&dev("sda", SATA, 2880))?;
        t.add(&FakeDev {
            partition: true,
            ..dev("sdb1", USB, 2000)
        })?;
        let mut notes = Vec::new();
        let r = &t.roots;
        assert!(is_vmedia(r, &r.dev.join("sr0"), &mut notes));
        assert!(is_vmedia(r, &r.dev.join("sdz"), &mut notes));
        assert!(is_vmedia(r, &r.dev.join("sdb"), &mut notes));
        assert!(notes.is_empty(), "{notes:?}");
        assert!(!is_vmedia(r, &r.dev.join("sdc"), &mut notes));
        assert!(
            notes[0]
                .1
                .contains("due to the device size. Size: 5368709120")
        );
        assert!(notes[1].1.contains("Transport: usb"), "{notes:?}");
        notes.clear();
        assert!(!is_vmedia(r, &r.dev.join("sda"), &mut notes));
        assert!(notes[0].1.contains("was disqualified"), "{notes:?}");
        notes.clear();
        assert!(!is_vmedia(r, &r.dev.join("sdb1"), &mut notes));
        assert!(notes[0].1.contains("it is a partition"), "{notes:?}");
        assert!(!is_vmedia(r, &r.dev.join("nothere"), &mut notes));
        Ok(())
    }

    #[test]
    fn finds_by_label_case_insensitively() -> anyhow::Result<()> {
        let t = FakeTree::new()?;
        let img = mkfs_vfat(t.dir.path(), "vfd.img", "IR-VFD-DEV")?;
        let other = mkfs_vfat(t.dir.path(), "other.img", "OTHER")?;
        t.add(&FakeDev {
            image: Some(&img),
            ..dev("sdb", USB, 2880)
        })?;
        t.add(&FakeDev {
            image: Some(&img),
            ..dev("sda", SATA, 2880)
        })?;
        t.add(&FakeDev {
            image: Some(&other),
            ..dev("sdd", USB, 2880)
        })?;
        t.add(&FakeDev {
            image: Some(&img),
            ..dev("loop0", "virtual", 2880)
        })?;
        t.add(&dev("sr0", SATA, 0))?;
        let r = &t.roots;
        assert_eq!(
            find_by_labels(r, &["ir-vfd-dev"]),
            vec![r.dev.join("sda"), r.dev.join("sdb")]
        );
        let mut notes = Vec::new();
        // sda is first but is no virtual media: sdb is taken.
        assert_eq!(
            find_vmedia_by_labels(r, &["ir-vfd-dev"], &mut notes),
            Some(r.dev.join("sdb"))
        );
        assert!(
            notes.iter().any(|n| n.1.contains("candidate"))
                && notes.iter().any(|n| n.1.contains("/sda")),
            "{notes:?}"
        );
        assert_eq!(find_vmedia_by_labels(r, &["config-2"], &mut notes), None);
        assert!(
            notes
                .last()
                .is_some_and(|n| n.1.contains("Did not identify"))
        );
        let with_loop = BlockRoots {
            allow_loop: true,
            ..r.clone()
        };
        assert!(find_by_labels(&with_loop, &["ir-vfd-dev"]).contains(&r.dev.join("loop0")));
        Ok(())
    }

    #[test]
    fn model_fallback() -> anyhow::Result<()> {
        let t = FakeTree::new()?;
        t.add(&FakeDev {
            model: Some("Samsung SSD"),
            ..dev("sda", SATA, 100)
        })?;
        assert_eq!(virtual_media_model_device(&t.roots), None);
        t.add(&FakeDev {
            model: Some("Virtual Media    "),
            ..dev("sdb", USB, 100)
        })?;
        assert_eq!(
            virtual_media_model_device(&t.roots),
            Some(t.roots.dev.join("sdb"))
        );
        Ok(())
    }
}
