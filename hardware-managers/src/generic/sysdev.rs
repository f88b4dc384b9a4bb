//! A minimal view of the sysfs device tree as udev's `sd_device` sees it: a device is a
//! directory under `sys/devices` holding a `uevent` file; its parent is the nearest ancestor
//! directory that is a device; its subsystem is the name its `subsystem` link points at;
//! `DEVTYPE` comes from `uevent`. Every path is looked up under a root so that tests can use
//! fake trees.

use std::fs;
use std::path::{Path, PathBuf};

/// The sysfs tree under a filesystem root.
#[derive(Debug, Clone)]
pub(crate) struct SysTree {
    /// The canonical `<root>/sys`.
    sys: PathBuf,
}

/// One sysfs device: its canonical directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SysDevice {
    path: PathBuf,
}

impl SysTree {
    /// The tree under `root` (`/` in production); `None` when `<root>/sys` does not exist.
    pub fn new(root: &Path) -> Option<Self> {
        let sys = fs::canonicalize(root.join("sys")).ok()?;
        Some(SysTree { sys })
    }

    /// The device whose directory (or a link to it, like `sys/class/block/sda`) is `path`.
    pub fn device(&self, path: &Path) -> Option<SysDevice> {
        let path = fs::canonicalize(path).ok()?;
        (path.starts_with(&self.sys) && path != self.sys).then_some(SysDevice { path })
    }

    /// The device called `sysname` in `subsystem`, found as udev does through
    /// `sys/bus/<subsystem>/devices/` or `sys/class/<subsystem>/`.
    pub fn by_subsystem_sysname(&self, subsystem: &str, sysname: &str) -> Option<SysDevice> {
        let file = sysname.replace('/', "!");
        [
            self.sys
                .join("bus")
                .join(subsystem)
                .join("devices")
                .join(&file),
            self.sys.join("class").join(subsystem).join(&file),
        ]
        .iter()
        .find_map(|p| self.device(p))
    }

    /// The nearest ancestor of `dev` that is a device (has a `uevent` file).
    pub fn parent(&self, dev: &SysDevice) -> Option<SysDevice> {
        let mut dir = dev.path.parent()?;
        while dir.starts_with(&self.sys) && dir != self.sys {
            if dir.join("uevent").is_file() {
                return Some(SysDevice {
                    path: dir.to_path_buf(),
                });
            }
            dir = dir.parent()?;
        }
        None
    }

    /// The device path relative to `sys`, with a leading slash (`/devices/pci0000:00/...`),
    /// as udev's `DEVPATH`.
    pub fn devpath(&self, dev: &SysDevice) -> String {
        let rel = dev.path.strip_prefix(&self.sys).unwrap_or(&dev.path);
        format!("/{}", rel.to_string_lossy())
    }

    /// The syspath as udev spells it (`/sys/devices/...`), independent of the root.
    pub fn syspath(&self, dev: &SysDevice) -> String {
        format!("/sys{}", self.devpath(dev))
    }
}

impl SysDevice {
    /// The device's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel name (`sda`, `0:0:0:0`; `!` in the directory name reads as `/`).
    pub fn sysname(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().replace('!', "/"))
            .unwrap_or_default()
    }

    /// The trailing decimal digits of the kernel name (`3` of `session3`), if any.
    pub fn sysnum(&self) -> Option<String> {
        let name = self.sysname();
        let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
        (digits > 0).then(|| name[name.len() - digits..].to_string())
    }

    /// The subsystem: the final component of the `subsystem` link.
    pub fn subsystem(&self) -> Option<String> {
        let target = fs::read_link(self.path.join("subsystem")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Whether the device belongs to `subsystem`.
    pub fn in_subsystem(&self, subsystem: &str) -> bool {
        self.subsystem().as_deref() == Some(subsystem)
    }

    /// `DEVTYPE` from the device's `uevent` file.
    pub fn devtype(&self) -> Option<String> {
        let text = fs::read_to_string(self.path.join("uevent")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("DEVTYPE="))
            .map(str::to_string)
    }

    /// Attribute `name` with trailing newlines removed, as `sd_device_get_sysattr_value`
    /// returns it; `None` when unreadable.
    pub fn attr(&self, name: &str) -> Option<String> {
        let bytes = fs::read(self.path.join(name)).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        Some(text.trim_end_matches(['\n', '\r']).to_string())
    }
}
