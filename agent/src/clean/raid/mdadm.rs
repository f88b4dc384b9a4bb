//! The md arrays of the machine (from sysfs) and the `mdadm` calls that change them.

use std::path::{Path, PathBuf};

use crate::disk::DiskError;
use crate::disk::cmd;

/// An md array as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    /// `/dev/mdN`.
    pub device: PathBuf,
    /// Member devices (`/dev/vdb1`, ...) from `slaves/`.
    pub members: Vec<PathBuf>,
}

/// The md arrays under `/sys/block` (devices with an `md/` directory), sorted by name.
pub fn arrays(sys_block: &Path) -> Vec<Array> {
    let mut out: Vec<Array> = list_dir(sys_block)
        .into_iter()
        .filter(|n| n.starts_with("md") && sys_block.join(n).join("md").is_dir())
        .map(|n| Array {
            device: Path::new("/dev").join(&n),
            members: list_dir(&sys_block.join(&n).join("slaves"))
                .into_iter()
                .map(|m| Path::new("/dev").join(m))
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| a.device.cmp(&b.device));
    out
}

/// The disk a member partition belongs to (`/dev/vdb1` → `/dev/vdb`), through sysfs; a whole
/// disk is its own holder.
pub fn holder_disk(member: &Path) -> PathBuf {
    let Some(name) = member.file_name() else {
        return member.to_path_buf();
    };
    let dir = Path::new("/sys/class/block").join(name);
    if dir.join("partition").is_file()
        && let Some(disk) = std::fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.parent().and_then(|d| d.file_name()).map(PathBuf::from))
    {
        return Path::new("/dev").join(disk);
    }
    member.to_path_buf()
}

/// `/dev/mdN` for the lowest N not in use, starting at `from`.
pub fn free_device(sys_block: &Path, from: u32) -> Result<PathBuf, DiskError> {
    (from..128)
        .find(|n| !sys_block.join(format!("md{n}")).exists())
        .map(|n| PathBuf::from(format!("/dev/md{n}")))
        .ok_or_else(|| {
            DiskError::Layout("no free md device is left (md0 to md127 are in use)".into())
        })
}

/// `mdadm --create DEV --force --run --metadata=M --level L --name NAME --raid-devices N
/// MEMBERS…`.
pub fn create(
    device: &Path,
    metadata: &str,
    level: &str,
    name: &str,
    members: &[PathBuf],
) -> Result<(), DiskError> {
    let count = members.len().to_string();
    let metadata = format!("--metadata={metadata}");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--create".as_ref(),
        device.as_os_str(),
        "--force".as_ref(),
        "--run".as_ref(),
        metadata.as_ref(),
        "--level".as_ref(),
        level.as_ref(),
        "--name".as_ref(),
        name.as_ref(),
        "--raid-devices".as_ref(),
        count.as_ref(),
    ];
    args.extend(members.iter().map(|m| m.as_os_str()));
    cmd::run("mdadm", args).map(drop)
}

/// The member devices `mdadm --detail --export` reports for `device`.
pub fn detail_members(device: &Path) -> Result<Vec<PathBuf>, DiskError> {
    let out = cmd::run(
        "mdadm",
        ["--detail".as_ref(), "--export".as_ref(), device.as_os_str()],
    )?;
    Ok(parse_export_members(&out))
}

/// `MD_DEVICE_<x>_DEV=/dev/…` values of `mdadm --detail --export` output.
pub(crate) fn parse_export_members(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("MD_DEVICE_") && k.ends_with("_DEV"))
        .map(|(_, v)| PathBuf::from(v.trim()))
        .collect()
}

/// The array name (`MD_NAME`, without a `host:` prefix) of `device`, if mdadm tells it.
pub fn name(device: &Path) -> Option<String> {
    let out = cmd::run(
        "mdadm",
        ["--detail".as_ref(), "--export".as_ref(), device.as_os_str()],
    )
    .ok()?;
    parse_export_name(&out)
}

pub(crate) fn parse_export_name(out: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix("MD_NAME="))
        .map(|v| v.rsplit(':').next().unwrap_or(v).trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `mdadm --add DEV MEMBER`.
pub fn add(device: &Path, member: &Path) -> Result<(), DiskError> {
    cmd::run(
        "mdadm",
        ["--add".as_ref(), device.as_os_str(), member.as_os_str()],
    )
    .map(drop)
}

/// `mdadm --stop DEV`.
pub fn stop(device: &Path) -> Result<(), DiskError> {
    cmd::run("mdadm", ["--stop".as_ref(), device.as_os_str()]).map(drop)
}

/// `mdadm --zero-superblock DEV`.
pub fn zero_superblock(member: &Path) -> Result<(), DiskError> {
    cmd::run("mdadm", ["--zero-superblock".as_ref(), member.as_os_str()]).map(drop)
}

/// Whether `mdadm --examine DEV` finds an md superblock.
pub fn has_superblock(dev: &Path) -> bool {
    cmd::run("mdadm", ["--examine".as_ref(), dev.as_os_str()]).is_ok()
}

/// `mdadm --assemble --scan` (its failures only mean "nothing to assemble").
pub fn assemble_scan() {
    if let Err(e) = cmd::run("mdadm", ["--assemble", "--scan"]) {
        tracing::debug!(error = %e, "mdadm --assemble --scan assembled nothing");
    }
}

/// The sorted entry names of `dir`; empty when unreadable.
fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = "MD_LEVEL=raid1\nMD_DEVICES=2\nMD_METADATA=1.2\nMD_UUID=1b2c:3d4e\n\
MD_NAME=ramdisk:root\nMD_DEVICE_dev_vda1_ROLE=0\nMD_DEVICE_dev_vda1_DEV=/dev/vda1\n\
MD_DEVICE_dev_nvme0n1p1_ROLE=1\nMD_DEVICE_dev_nvme0n1p1_DEV=/dev/nvme0n1p1\n";

    #[test]
    fn export_output_is_parsed() {
        assert_eq!(
            parse_export_members(EXPORT),
            vec![PathBuf::from("/dev/vda1"), PathBuf::from("/dev/nvme0n1p1")]
        );
        assert_eq!(parse_export_name(EXPORT).as_deref(), Some("root"));
        assert_eq!(parse_export_name("MD_NAME=esp\n").as_deref(), Some("esp"));
        assert_eq!(parse_export_name("MD_LEVEL=raid0\n"), None);
    }

    #[test]
    fn arrays_and_free_devices_from_sysfs() -> anyhow::Result<()> {
        let t = tempfile::tempdir()?;
        let b = t.path();
        std::fs::create_dir_all(b.join("md0/md"))?;
        std::fs::create_dir_all(b.join("md0/slaves/vda1"))?;
        std::fs::create_dir_all(b.join("md0/slaves/vdb1"))?;
        std::fs::create_dir_all(b.join("md1"))?; // no md/ directory: not an array
        std::fs::create_dir_all(b.join("vda"))?;
        let a = arrays(b);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].device, PathBuf::from("/dev/md0"));
        assert_eq!(
            a[0].members,
            vec![PathBuf::from("/dev/vda1"), PathBuf::from("/dev/vdb1")]
        );
        assert_eq!(free_device(b, 0)?, PathBuf::from("/dev/md2"));
        assert_eq!(free_device(b, 3)?, PathBuf::from("/dev/md3"));
        Ok(())
    }
}
