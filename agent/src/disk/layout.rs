//! IPA's partition-image layout (`work_on_disk`): one table with, in this order, the ESP
//! (550 MiB, UEFI) or BIOS boot (1 MiB, BIOS on GPT) or PReP (8 MiB, ppc64 BIOS), then
//! ephemeral, swap, config drive, and root last at exactly `root_mb`; the rest of the disk stays
//! unallocated so cloud-init can grow root.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::blockdev::{self, partition_path};
use super::table::{self, PartitionKind, PartitionSpec, TableKind};
use super::{DiskError, MIB, cmd, wipe};

/// Size of the EFI system partition IPA creates.
pub const ESP_MIB: u64 = 550;
/// Size of the BIOS boot partition.
pub const BIOS_BOOT_MIB: u64 = 1;
/// Size of the PReP boot partition.
pub const PREP_MIB: u64 = 8;
/// Filesystem label of the ESP.
pub const ESP_LABEL: &str = "efi-part";
/// Label of the swap partition.
pub const SWAP_LABEL: &str = "swap1";
/// Filesystem label of the ephemeral partition.
pub const EPHEMERAL_LABEL: &str = "ephemeral0";
/// Ephemeral filesystem when none is given (IPA's `default_ephemeral_format`).
pub const DEFAULT_EPHEMERAL_FORMAT: &str = "ext4";

/// Firmware boot mode of the deployed instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootMode {
    /// UEFI: ESP first, always GPT.
    Uefi,
    /// Legacy BIOS.
    Bios,
}

impl FromStr for BootMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "uefi" => Ok(BootMode::Uefi),
            "bios" => Ok(BootMode::Bios),
            other => Err(format!("unknown boot mode `{other}` (want uefi or bios)")),
        }
    }
}

/// What to lay out on the disk (from `image_info` and the node's capabilities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRequest {
    /// Boot mode; `Uefi` forces a GPT.
    pub boot_mode: BootMode,
    /// Table type asked for (`disk_label`, default msdos); ignored for UEFI.
    pub disk_label: TableKind,
    /// Root partition size, MiB (> 0).
    pub root_mb: u64,
    /// Swap size, MiB (0 = none).
    pub swap_mb: u64,
    /// Ephemeral size, MiB (0 = none).
    pub ephemeral_mb: u64,
    /// Ephemeral filesystem (`mkfs.<format>`); `None` = ext4.
    pub ephemeral_format: Option<String>,
    /// Config drive partition size, MiB (0 = none); see `ConfigDriveFile::size_mib`.
    pub configdrive_mb: u64,
    /// Keep the existing table and ephemeral data (rebuild with `preserve_ephemeral`).
    pub preserve_ephemeral: bool,
    /// A ppc64 machine: PReP boot partition instead of BIOS boot in BIOS mode.
    pub ppc64: bool,
}

impl LayoutRequest {
    /// The table type actually used: GPT for UEFI, else `disk_label`.
    pub fn table_kind(&self) -> TableKind {
        match self.boot_mode {
            BootMode::Uefi => TableKind::Gpt,
            BootMode::Bios => self.disk_label,
        }
    }
}

/// Device nodes of the partitions created (`None` = not in this layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMap {
    /// Root partition (the image is written here by the caller).
    pub root: PathBuf,
    /// Swap.
    pub swap: Option<PathBuf>,
    /// Ephemeral.
    pub ephemeral: Option<PathBuf>,
    /// Config drive (the caller writes the ISO with `write_configdrive`).
    pub configdrive: Option<PathBuf>,
    /// EFI system partition.
    pub efi_system_partition: Option<PathBuf>,
    /// BIOS boot partition.
    pub bios_boot: Option<PathBuf>,
    /// PReP boot partition.
    pub prep: Option<PathBuf>,
}

/// The partitions of `req` in IPA's order, with the table type.
pub fn plan(req: &LayoutRequest) -> Result<(TableKind, Vec<PartitionSpec>), DiskError> {
    if req.root_mb == 0 {
        return Err(DiskError::Layout("root_mb must be greater than 0".into()));
    }
    let kind = req.table_kind();
    if req.boot_mode == BootMode::Uefi && req.disk_label == TableKind::Msdos {
        tracing::info!("UEFI boot mode: using a GPT instead of the requested msdos label");
    }
    let spec = |size_mib, kind, name: &str, bootable| PartitionSpec {
        size_mib,
        kind,
        name: name.to_string(),
        bootable,
    };
    let mut specs = Vec::new();
    match (req.boot_mode, kind, req.ppc64) {
        (BootMode::Uefi, _, _) => {
            specs.push(spec(ESP_MIB, PartitionKind::Esp, ESP_LABEL, false));
        }
        (BootMode::Bios, _, true) => specs.push(spec(
            PREP_MIB,
            PartitionKind::Prep,
            "prep",
            kind == TableKind::Msdos,
        )),
        (BootMode::Bios, TableKind::Gpt, false) => {
            specs.push(spec(
                BIOS_BOOT_MIB,
                PartitionKind::BiosBoot,
                "bios-boot",
                false,
            ));
        }
        (BootMode::Bios, TableKind::Msdos, false) => {}
    }
    if req.ephemeral_mb > 0 {
        specs.push(spec(
            req.ephemeral_mb,
            PartitionKind::Ephemeral,
            EPHEMERAL_LABEL,
            false,
        ));
    }
    if req.swap_mb > 0 {
        specs.push(spec(req.swap_mb, PartitionKind::Swap, SWAP_LABEL, false));
    }
    if req.configdrive_mb > 0 {
        specs.push(spec(
            req.configdrive_mb,
            PartitionKind::ConfigDrive,
            table::CONFIG_DRIVE_LABEL,
            false,
        ));
    }
    let root_boot = req.boot_mode == BootMode::Bios && kind == TableKind::Msdos;
    specs.push(spec(req.root_mb, PartitionKind::Linux, "root", root_boot));
    if kind == TableKind::Msdos && specs.len() > 4 {
        return Err(DiskError::Layout(format!(
            "{} partitions do not fit in an msdos table (4 primary partitions); use a GPT",
            specs.len()
        )));
    }
    Ok((kind, specs))
}

/// True if an image of `image_bytes` (virtual size) fits in a root partition of `root_mb`.
pub fn root_fits(root_mb: u64, image_bytes: u64) -> bool {
    image_bytes.div_ceil(MIB) <= root_mb
}

/// [`root_fits`] as an invalid-parameters error (IPA's `InvalidCommandParamsError`).
pub fn check_root_fits(root_mb: u64, image_bytes: u64) -> Result<(), DiskError> {
    if root_fits(root_mb, image_bytes) {
        return Ok(());
    }
    Err(DiskError::RootTooSmall {
        image_mib: image_bytes.div_ceil(MIB),
        root_mib: root_mb,
    })
}

/// Checks that the table on `dev` matches the plan closely enough to keep the ephemeral data:
/// every planned partition exists; the ephemeral one and those before it are unchanged.
fn check_preserved(dev: &Path, kind: TableKind, specs: &[PartitionSpec]) -> Result<(), DiskError> {
    let existing = table::read_table(dev)?.ok_or_else(|| {
        DiskError::Layout("preserve_ephemeral is set but the disk has no partition table".into())
    })?;
    if existing.kind != kind {
        return Err(DiskError::Layout(format!(
            "preserve_ephemeral: the disk has a {} table, the layout needs {kind}",
            existing.kind
        )));
    }
    let per_mib = MIB;
    let mut start = MIB;
    let eph_index = specs
        .iter()
        .position(|s| s.kind == PartitionKind::Ephemeral);
    for (i, s) in specs.iter().enumerate() {
        let n = i as u32 + 1;
        let p = existing.get(n).ok_or_else(|| {
            DiskError::Layout(format!("preserve_ephemeral: partition {n} does not exist"))
        })?;
        if eph_index.is_some_and(|e| i <= e) && (p.start != start || p.size != s.size_mib * per_mib)
        {
            return Err(DiskError::Layout(format!(
                "preserve_ephemeral: partition {n} ({}) differs from the requested layout",
                s.name
            )));
        }
        start += s.size_mib * per_mib;
    }
    Ok(())
}

/// Runs `mkfs.<format>` on `dev` with `label`, with the options each family needs to work
/// unattended.
pub fn make_filesystem(format: &str, dev: &Path, label: &str) -> Result<(), DiskError> {
    if format.is_empty() || !format.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(DiskError::Layout(format!(
            "unsupported filesystem `{format}`"
        )));
    }
    let dev = dev.as_os_str();
    let tool = format!("mkfs.{format}");
    let args: Vec<&std::ffi::OsStr> = match format {
        "ext2" | "ext3" | "ext4" => vec![
            "-q".as_ref(),
            "-F".as_ref(),
            "-L".as_ref(),
            label.as_ref(),
            dev,
        ],
        "xfs" | "btrfs" => vec!["-f".as_ref(), "-L".as_ref(), label.as_ref(), dev],
        "vfat" | "fat" | "msdos" => vec!["-n".as_ref(), label.as_ref(), dev],
        _ => vec!["-L".as_ref(), label.as_ref(), dev],
    };
    cmd::run(&tool, args)?;
    Ok(())
}

/// Formats the ESP (`mkfs.vfat -F 32 -n efi-part`).
fn format_esp(dev: &Path) -> Result<(), DiskError> {
    cmd::run(
        "mkfs.vfat",
        [
            "-F".as_ref(),
            "32".as_ref(),
            "-n".as_ref(),
            ESP_LABEL.as_ref(),
            dev.as_os_str(),
        ],
    )?;
    Ok(())
}

/// Formats swap (`mkswap -L swap1`).
fn format_swap(dev: &Path) -> Result<(), DiskError> {
    cmd::run(
        "mkswap",
        ["-L".as_ref(), SWAP_LABEL.as_ref(), dev.as_os_str()],
    )?;
    Ok(())
}

/// Creates IPA's partition-image layout on `dev` and returns the partition nodes.
///
/// Unless `preserve_ephemeral`: erases the disk's metadata, writes a fresh table (GPT for UEFI,
/// else `disk_label`) and formats the ephemeral partition (`mkfs.<format> -L ephemeral0`).
/// With `preserve_ephemeral` the existing table is kept and checked against the plan. Then the
/// partition nodes are waited for, the ESP is formatted (`mkfs.vfat -F 32 -n efi-part`) and swap
/// made (`mkswap -L swap1`). Root and the config drive are left for the caller to write.
///
/// Only call after the disk guard accepted `dev`.
pub fn create_partition_image_layout(
    dev: &Path,
    req: &LayoutRequest,
) -> Result<PartitionMap, DiskError> {
    let (kind, specs) = plan(req)?;
    if req.preserve_ephemeral {
        check_preserved(dev, kind, &specs)?;
    } else {
        wipe::erase_metadata(dev)?;
        table::write_table(dev, kind, &specs)?;
    }
    let numbers: Vec<u32> = (1..=specs.len() as u32).collect();
    blockdev::reread_partitions(dev, &numbers)?;

    let mut map = PartitionMap {
        root: PathBuf::new(),
        swap: None,
        ephemeral: None,
        configdrive: None,
        efi_system_partition: None,
        bios_boot: None,
        prep: None,
    };
    for (i, s) in specs.iter().enumerate() {
        let node = partition_path(dev, i as u32 + 1);
        let slot = match s.kind {
            PartitionKind::Esp => &mut map.efi_system_partition,
            PartitionKind::BiosBoot => &mut map.bios_boot,
            PartitionKind::Prep => &mut map.prep,
            PartitionKind::Ephemeral => &mut map.ephemeral,
            PartitionKind::Swap => &mut map.swap,
            PartitionKind::ConfigDrive => &mut map.configdrive,
            PartitionKind::Linux => {
                map.root = node;
                continue;
            }
            // Partition images never ask for RAID members.
            PartitionKind::LinuxRaid => continue,
        };
        *slot = Some(node);
    }
    if let Some(esp) = &map.efi_system_partition {
        format_esp(esp)?;
    }
    if let Some(swap) = &map.swap {
        format_swap(swap)?;
    }
    if let Some(eph) = &map.ephemeral
        && !req.preserve_ephemeral
    {
        let format = req
            .ephemeral_format
            .as_deref()
            .filter(|f| !f.is_empty())
            .unwrap_or(DEFAULT_EPHEMERAL_FORMAT);
        make_filesystem(format, eph, EPHEMERAL_LABEL)?;
    }
    for node in [&map.efi_system_partition, &map.swap, &map.ephemeral]
        .into_iter()
        .flatten()
    {
        blockdev::flush(node)?;
    }
    tracing::info!(disk = %dev.display(), ?map, "partition-image layout ready");
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::table::{GPT_BIOS_BOOT, GPT_ESP, GPT_LINUX_FS, GPT_LINUX_SWAP, PartitionType};
    use crate::disk::testing::{partx_show, run_tool, sfdisk_json};
    use crate::disk::{probe, uuids};
    use crate::testutil::LoopDevice;

    fn req(boot_mode: BootMode, disk_label: TableKind) -> LayoutRequest {
        LayoutRequest {
            boot_mode,
            disk_label,
            root_mb: 64,
            swap_mb: 0,
            ephemeral_mb: 0,
            ephemeral_format: None,
            configdrive_mb: 0,
            preserve_ephemeral: false,
            ppc64: false,
        }
    }

    fn kinds(specs: &[PartitionSpec]) -> Vec<(PartitionKind, u64, bool)> {
        specs
            .iter()
            .map(|s| (s.kind, s.size_mib, s.bootable))
            .collect()
    }

    #[test]
    fn plans_follow_ipa_order() -> anyhow::Result<()> {
        use PartitionKind::*;
        let mut r = req(BootMode::Uefi, TableKind::Msdos);
        r.swap_mb = 16;
        r.ephemeral_mb = 32;
        r.configdrive_mb = 2;
        let (kind, specs) = plan(&r)?;
        assert_eq!(kind, TableKind::Gpt, "UEFI forces GPT");
        assert_eq!(
            kinds(&specs),
            vec![
                (Esp, 550, false),
                (Ephemeral, 32, false),
                (Swap, 16, false),
                (ConfigDrive, 2, false),
                (Linux, 64, false)
            ]
        );

        let mut r = req(BootMode::Bios, TableKind::Gpt);
        r.swap_mb = 8;
        let (kind, specs) = plan(&r)?;
        assert_eq!(kind, TableKind::Gpt);
        assert_eq!(
            kinds(&specs),
            vec![(BiosBoot, 1, false), (Swap, 8, false), (Linux, 64, false)]
        );

        let (kind, specs) = plan(&req(BootMode::Bios, TableKind::Msdos))?;
        assert_eq!(kind, TableKind::Msdos);
        assert_eq!(kinds(&specs), vec![(Linux, 64, true)], "boot flag on root");

        let mut r = req(BootMode::Bios, TableKind::Msdos);
        r.ppc64 = true;
        assert_eq!(
            kinds(&plan(&r)?.1),
            vec![(Prep, 8, true), (Linux, 64, true)]
        );
        r.swap_mb = 1;
        r.ephemeral_mb = 1;
        r.configdrive_mb = 1;
        assert!(matches!(plan(&r), Err(DiskError::Layout(_))), "5 on msdos");

        let mut r = req(BootMode::Bios, TableKind::Msdos);
        r.root_mb = 0;
        assert!(plan(&r).is_err());
        Ok(())
    }

    #[test]
    fn root_size_check() {
        assert!(root_fits(10, 10 * MIB));
        assert!(!root_fits(10, 10 * MIB + 1));
        assert!(root_fits(1, 1));
        let e = check_root_fits(10, 11 * MIB).err();
        assert!(
            e.as_ref().is_some_and(DiskError::is_invalid_params),
            "{e:?}"
        );
    }

    fn loop_disk(dir: &Path, mib: u64) -> anyhow::Result<LoopDevice> {
        LoopDevice::create(&dir.join("disk.img"), mib * MIB)
    }

    #[test]
    fn uefi_gpt_layout_with_everything() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = loop_disk(dir.path(), 720)?;
        let mut r = req(BootMode::Uefi, TableKind::Gpt);
        r.swap_mb = 16;
        r.ephemeral_mb = 40;
        r.ephemeral_format = Some("ext4".into());
        r.configdrive_mb = 2;
        let map = create_partition_image_layout(&lo.path, &r)?;
        assert_eq!(map.efi_system_partition, Some(lo.partition(1)));
        assert_eq!(map.ephemeral, Some(lo.partition(2)));
        assert_eq!(map.swap, Some(lo.partition(3)));
        assert_eq!(map.configdrive, Some(lo.partition(4)));
        assert_eq!(map.root, lo.partition(5));
        assert_eq!((map.bios_boot.clone(), map.prep.clone()), (None, None));

        let t = table::read_table(&lo.path)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        let got: Vec<(u64, u64, PartitionType)> = t
            .partitions
            .iter()
            .map(|p| (p.start / MIB, p.size / MIB, p.ptype))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 550, PartitionType::Gpt(GPT_ESP)),
                (551, 40, PartitionType::Gpt(GPT_LINUX_FS)),
                (591, 16, PartitionType::Gpt(GPT_LINUX_SWAP)),
                (607, 2, PartitionType::Gpt(GPT_LINUX_FS)),
                (609, 64, PartitionType::Gpt(GPT_LINUX_FS)),
            ]
        );
        let px = partx_show(&lo.path)?;
        assert_eq!(
            px.iter().map(|x| (x.start, x.sectors)).collect::<Vec<_>>(),
            vec![
                (2048, 550 * 2048),
                (551 * 2048, 40 * 2048),
                (591 * 2048, 16 * 2048),
                (607 * 2048, 2 * 2048),
                (609 * 2048, 64 * 2048),
            ]
        );
        if let Some(j) = sfdisk_json(&lo.path)? {
            assert_eq!(j["partitiontable"]["partitions"][4]["size"], 64 * 2048);
        }
        // Every node is a block device of the right size.
        for (i, p) in t.partitions.iter().enumerate() {
            assert_eq!(blockdev::size_bytes(&lo.partition(i as u32 + 1))?, p.size);
        }
        let esp = probe::probe(&lo.partition(1))?.ok_or_else(|| anyhow::anyhow!("ESP empty"))?;
        assert_eq!(
            (esp.fstype, esp.label.as_deref()),
            ("vfat", Some(ESP_LABEL))
        );
        let eph = probe::probe(&lo.partition(2))?.ok_or_else(|| anyhow::anyhow!("eph"))?;
        assert_eq!(
            (eph.fstype, eph.label.as_deref()),
            ("ext4", Some(EPHEMERAL_LABEL))
        );
        let swap = probe::probe(&lo.partition(3))?.ok_or_else(|| anyhow::anyhow!("swap"))?;
        assert_eq!(
            (swap.fstype, swap.label.as_deref()),
            ("swap", Some(SWAP_LABEL))
        );
        assert_eq!(probe::probe(&lo.partition(5))?, None, "root is left empty");

        // The image pipeline writes root; then get_partition_uuids.
        let root_uuid = "6a1f2b3c-4d5e-4f60-8172-8394a5b6c7d8";
        run_tool("mkfs.ext4", &["-q", "-F", "-U", root_uuid], &map.root)?;
        let u = uuids::partition_image_uuids(&lo.path, &map)?;
        assert_eq!(u.root_uuid, root_uuid);
        assert_eq!(u.efi_system_partition_uuid, esp.uuid);
        assert!(
            u.efi_system_partition_uuid
                .as_deref()
                .is_some_and(|s| s.len() == 9)
        );
        assert_eq!(u.prep_boot_partition_uuid, None);
        let j = serde_json::to_value(&u)?;
        let keys: Vec<&str> = j["partitions"]
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            vec![
                "efi system partition",
                "ephemeral",
                "swap",
                "configdrive",
                "root"
            ]
        );
        assert_eq!(
            j["partitions"]["root"],
            lo.partition(5).display().to_string()
        );
        Ok(())
    }

    #[test]
    fn bios_gpt_layout_has_bios_boot_first() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = loop_disk(dir.path(), 128)?;
        let mut r = req(BootMode::Bios, TableKind::Gpt);
        r.swap_mb = 8;
        let map = create_partition_image_layout(&lo.path, &r)?;
        assert_eq!(map.bios_boot, Some(lo.partition(1)));
        assert_eq!(map.swap, Some(lo.partition(2)));
        assert_eq!(map.root, lo.partition(3));
        let t = table::read_table(&lo.path)?.ok_or_else(|| anyhow::anyhow!("no table"))?;
        assert_eq!(t.partitions[0].ptype, PartitionType::Gpt(GPT_BIOS_BOOT));
        assert_eq!((t.partitions[0].start, t.partitions[0].size), (MIB, MIB));
        assert_eq!(t.partitions[2].size, 64 * MIB);
        // Root without a filesystem: "root uuid" falls back to the PARTUUID.
        let u = uuids::partition_image_uuids(&lo.path, &map)?;
        assert_eq!(u.root_uuid, t.partitions[2].partuuid);
        assert_eq!(u.efi_system_partition_uuid, None);
        assert_eq!(
            u.partitions.bios_boot.as_deref(),
            Some(lo.partition(1).to_string_lossy().as_ref())
        );
        Ok(())
    }

    #[test]
    fn bios_msdos_layout_flags_root_and_keeps_order() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = loop_disk(dir.path(), 160)?;
        let mut r = req(BootMode::Bios, TableKind::Msdos);
        r.swap_mb = 8;
        r.ephemeral_mb = 16;
        r.ephemeral_format = Some("ext3".into());
        r.configdrive_mb = 1;
        let map = create_partition_image_layout(&lo.path, &r)?;
        assert_eq!(
            (
                map.ephemeral.clone(),
                map.swap.clone(),
                map.configdrive.clone()
            ),
            (
                Some(lo.partition(1)),
                Some(lo.partition(2)),
                Some(lo.partition(3))
            )
        );
        assert_eq!(map.root, lo.partition(4));
        let px = partx_show(&lo.path)?;
        assert_eq!(
            px.iter()
                .map(|x| (
                    x.start / 2048,
                    x.sectors / 2048,
                    x.ptype.as_str(),
                    x.flags.as_str()
                ))
                .collect::<Vec<_>>(),
            vec![
                (1, 16, "0x83", "0x0"),
                (17, 8, "0x82", "0x0"),
                (25, 1, "0x83", "0x0"),
                (26, 64, "0x83", "0x80"),
            ]
        );
        let eph = probe::probe(&lo.partition(1))?.ok_or_else(|| anyhow::anyhow!("eph"))?;
        assert_eq!(eph.fstype, "ext3");
        if let Some(j) = sfdisk_json(&lo.path)? {
            assert_eq!(j["partitiontable"]["partitions"][3]["bootable"], true);
        }
        // get_partition_uuids: MBR PARTUUID fallback is "<signature>-<nn>".
        let u = uuids::partition_image_uuids(&lo.path, &map)?;
        assert!(u.root_uuid.ends_with("-04"), "{}", u.root_uuid);
        Ok(())
    }

    #[test]
    fn preserve_ephemeral_keeps_data_and_checks_the_layout() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lo = loop_disk(dir.path(), 160)?;
        let mut r = req(BootMode::Bios, TableKind::Gpt);
        r.ephemeral_mb = 32;
        r.swap_mb = 8;
        let map = create_partition_image_layout(&lo.path, &r)?;
        let eph = map
            .ephemeral
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no eph"))?;
        let before = probe::probe(&eph)?.ok_or_else(|| anyhow::anyhow!("eph fs"))?;
        let table_before = table::read_table(&lo.path)?;

        r.preserve_ephemeral = true;
        let again = create_partition_image_layout(&lo.path, &r)?;
        assert_eq!(again, map);
        assert_eq!(
            probe::probe(&eph)?,
            Some(before),
            "ephemeral filesystem kept"
        );
        assert_eq!(
            table::read_table(&lo.path)?,
            table_before,
            "table untouched"
        );

        r.ephemeral_mb = 48;
        assert!(matches!(
            create_partition_image_layout(&lo.path, &r),
            Err(DiskError::Layout(_))
        ));
        Ok(())
    }
}
