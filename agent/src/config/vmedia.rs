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

    #[test]
    fn boot_method() {
        assert!(booted_from_vmedia(&KernelParams::parse(
            "boot_method=vmedia"
        )));
        assert!(!booted_from_vmedia(&KernelParams::parse("boot_method=pxe")));
        assert!(!booted_from_vmedia(&KernelParams::parse("")));
    }
}
