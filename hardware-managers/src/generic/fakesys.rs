//! Test support: fake sysfs trees laid out as the kernel lays them out (device directories
//! with `uevent` and `subsystem`, class links), for the udev-less naming modules.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// A fake root with a `sys` tree.
pub(crate) struct FakeSys {
    dir: tempfile::TempDir,
}

impl FakeSys {
    pub fn new() -> Self {
        let f = FakeSys {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(f.root().join("sys/devices")).unwrap();
        f
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Device `sys/devices/<rel>` in `subsystem` with `devtype`.
    pub fn dev(&self, rel: &str, subsystem: Option<&str>, devtype: Option<&str>) -> &Self {
        let d = self.root().join("sys/devices").join(rel);
        fs::create_dir_all(&d).unwrap();
        let uevent = devtype
            .map(|t| format!("DEVTYPE={t}\n"))
            .unwrap_or_default();
        fs::write(d.join("uevent"), uevent).unwrap();
        if let Some(s) = subsystem {
            let _ = fs::remove_file(d.join("subsystem"));
            symlink(format!("/sys/bus/{s}"), d.join("subsystem")).unwrap();
        }
        self
    }

    /// A chain of devices (`a`, `a/b`, ...), each `(name, subsystem, devtype)`.
    pub fn chain(&self, base: &str, parts: &[(&str, Option<&str>, Option<&str>)]) -> &Self {
        let mut rel = base.to_string();
        for (name, subsystem, devtype) in parts {
            rel = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            self.dev(&rel, *subsystem, *devtype);
        }
        self
    }

    /// Class link `sys/class/<subsystem>/<name>` to device `sys/devices/<rel>`.
    pub fn class(&self, subsystem: &str, name: &str, rel: &str) -> &Self {
        let link = self.root().join("sys/class").join(subsystem).join(name);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(self.root().join("sys/devices").join(rel), link).unwrap();
        self
    }

    /// Attribute `name` of `sys/devices/<rel>`.
    pub fn attr(&self, rel: &str, name: &str, value: impl AsRef<[u8]>) -> &Self {
        let p = self.root().join("sys/devices").join(rel).join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, value).unwrap();
        self
    }

    /// Block device (`disk` or `partition`) at `sys/devices/<rel>`, linked from
    /// `sys/class/block`.
    pub fn block(&self, rel: &str) -> &Self {
        let name = rel.rsplit('/').next().unwrap();
        let parent = self.root().join("sys/devices").join(rel);
        let partition = fs::read_link(parent.parent().unwrap().join("subsystem"))
            .is_ok_and(|s| s.ends_with("block"));
        self.dev(
            rel,
            Some("block"),
            Some(if partition { "partition" } else { "disk" }),
        )
        .class("block", name, rel);
        if partition {
            let num: String = name
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect();
            self.attr(
                rel,
                "partition",
                format!("{}\n", num.chars().rev().collect::<String>()),
            );
        }
        self
    }
}
