//! The erase steps end to end on loop devices over files in temp dirs, with canned tool
//! answers where the hardware (NVMe, ATA) cannot be had.

use std::path::{Path, PathBuf};
use std::process::Command;

use hardware_managers::{BlockDevice, Node};
use serde_json::{Value, json};

use super::*;
use crate::disk::probe;
use crate::disk::table::{self, PartitionKind, PartitionSpec, TableKind};
use crate::testutil::{self, LoopDevice, md_superblock, run_tool, wipefs_list};
use crate::tools::fake::FakeTools;
use crate::tools::{ToolOutput, Tools};

const MIB: u64 = 1 << 20;

use crate::clean::testing::device;

fn settings(v: Value) -> anyhow::Result<EraseSettings> {
    match v {
        Value::Object(m) => EraseSettings::from_map(&m).map_err(anyhow::Error::msg),
        _ => anyhow::bail!("not an object"),
    }
}

/// An eraser allowed to write only `allow`, with `tools`.
fn eraser<'a>(s: EraseSettings, tools: &'a dyn Tools, allow: &[&Path]) -> Eraser<'a> {
    let guard = DiskGuard::new(
        allow.iter().map(|p| p.to_path_buf()).collect(),
        Path::new("/"),
    );
    Eraser::new(s, tools, guard, PathBuf::from("/"))
}

/// Tools of a machine without hdparm, smartctl and nvme (as this test host).
fn no_tools() -> FakeTools {
    FakeTools::new().without(&["hdparm", "smartctl", "nvme"])
}

/// A loop disk over a file holding a byte pattern, in a temp dir of its own.
struct Patterned {
    /// The loop device (detached before the dir is removed).
    lo: LoopDevice,
    /// Its path, as the inventory names it.
    name: String,
    /// What the file held at first.
    data: Vec<u8>,
    dir: tempfile::TempDir,
}

impl Patterned {
    /// A disk of `size` bytes.
    fn new(size: u64) -> anyhow::Result<Patterned> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("disk.img");
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8 | 0x80).collect();
        std::fs::write(&file, &data)?;
        let lo = LoopDevice::attach(&file)?;
        let name = lo.path.display().to_string();
        Ok(Patterned {
            lo,
            name,
            data,
            dir,
        })
    }

    /// The disk as the inventory lists it.
    fn listed(&self) -> anyhow::Result<BlockDevice> {
        device(&self.name, self.data.len() as u64)
    }

    /// What the file holds now.
    fn contents(&self) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(&self.lo.file)?)
    }

    /// Whether every byte of it is zero now.
    fn zeroed(&self) -> anyhow::Result<bool> {
        Ok(self.contents()?.iter().all(|b| *b == 0))
    }
}

fn read_all(path: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(path)?)
}

/// A read-only loop device (`losetup -r`), detached on drop.
struct RoLoop {
    path: PathBuf,
}

impl RoLoop {
    /// Attaches `file` read-only, with further `losetup` options (an offset and size limit).
    fn attach(file: &Path, options: &[&str]) -> anyhow::Result<RoLoop> {
        let args = [&["-r", "--find", "--show"], options].concat();
        let dev = run_tool("losetup", &args, file)?.trim().to_string();
        anyhow::ensure!(dev.starts_with("/dev/loop"), "losetup said {dev}");
        Ok(RoLoop {
            path: PathBuf::from(dev),
        })
    }
}

impl Drop for RoLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
    }
}

/// `wipefs --no-act` of bytes `[start, start + size)` of `file`, through a read-only loop
/// device with that offset (an independent view of an old partition's region).
fn wipefs_region(file: &Path, start: u64, size: u64) -> anyhow::Result<String> {
    let (start, size) = (start.to_string(), size.to_string());
    let lo = RoLoop::attach(file, &["-o", &start, "--sizelimit", &size])?;
    wipefs_list(&lo.path)
}

/// [`wipefs_region`] of each of `parts` in `file`: "" for a partition left clean.
fn partition_signatures(
    file: &Path,
    parts: &[table::PartitionEntry],
) -> anyhow::Result<Vec<String>> {
    parts
        .iter()
        .map(|p| wipefs_region(file, p.start, p.size))
        .collect()
}

#[test]
fn steps_as_ipa_offers_them() {
    let shape = |k| {
        steps(k)
            .into_iter()
            .map(|s| {
                assert_eq!(s.interface, "deploy");
                assert!(!s.reboot_requested);
                assert_eq!(s.abortable, Some(true));
                (s.step, s.priority)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shape(StepKind::Clean),
        [
            ("erase_devices".to_string(), 10),
            ("erase_devices_metadata".to_string(), 99),
            ("erase_devices_express".to_string(), 0)
        ]
    );
    assert_eq!(
        shape(StepKind::Deploy),
        [("erase_devices_metadata".to_string(), 0)]
    );
    assert!(shape(StepKind::Service).is_empty());
}

#[test]
fn skip_list_removes_disks_and_their_partitions() -> anyhow::Result<()> {
    let node: Node = serde_json::from_value(json!({
        "properties": {"skip_block_devices": [{"name": "/dev/sdb"}]}
    }))?;
    let devs = vec![
        device("/dev/sda", 1 << 30)?,
        device("/dev/sda1", 1 << 29)?,
        device("/dev/sdb", 1 << 30)?,
        device("/dev/sdb1", 1 << 29)?,
    ];
    let left: Vec<String> = without_skipped(&node, devs)?
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(left, ["/dev/sda", "/dev/sda1"]);
    let bad: Node =
        serde_json::from_value(json!({"properties": {"skip_block_devices": "nonsense"}}))?;
    assert!(matches!(
        without_skipped(&bad, vec![]),
        Err(HardwareError::InvalidArgs(_))
    ));
    Ok(())
}

#[test]
fn erase_devices_overwrites_and_zeroes() -> anyhow::Result<()> {
    let d = Patterned::new(8 * MIB)?;
    let tools = no_tools();
    let e = eraser(EraseSettings::default(), &tools, &[&d.lo.path]);
    let out = e.erase_devices(&[d.listed()?, device("/dev/sdz", 8 * MIB)?])?;
    // Every listed disk is in the result (IPA's shape), the refused one untouched.
    assert_eq!(out, json!({d.name.clone(): null, "/dev/sdz": null}));
    assert!(d.zeroed()?, "not zeroed");
    assert_eq!(tools.calls(), ["hdparm -I ".to_string() + &d.name]);
    Ok(())
}

#[test]
fn erase_devices_without_zeroize_leaves_random_data() -> anyhow::Result<()> {
    let d = Patterned::new(6 * MIB)?;
    let tools = no_tools();
    let s = settings(
        json!({"agent_erase_devices_zeroize": false, "agent_enable_ata_secure_erase": false}),
    )?;
    eraser(s, &tools, &[&d.lo.path]).erase_devices(&[d.listed()?])?;
    let after = d.contents()?;
    assert!(!after.iter().all(|b| *b == 0), "zeroed without zeroize");
    assert_ne!(after, d.data);
    assert!(
        tools.calls().is_empty(),
        "ATA secure erase disabled: {:?}",
        tools.calls()
    );
    // Nothing to overwrite with: IPA's "device is unsupported".
    let s = settings(
        json!({"agent_erase_devices_zeroize": false, "agent_erase_devices_iterations": 0}),
    )?;
    let err = eraser(s, &tools, &[&d.lo.path]).erase_devices(&[d.listed()?]);
    let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("device is unsupported"), "{msg}");
    Ok(())
}

#[test]
fn secure_erase_failures_are_aggregated_or_fall_back() -> anyhow::Result<()> {
    let (a, b) = (Patterned::new(4 * MIB)?, Patterned::new(4 * MIB)?);
    let (an, bn) = (&a.name, &b.name);
    let frozen = "/dev/x:\nSecurity: \n\t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\t\tfrozen\n";
    let tools = FakeTools::new()
        .without(&["smartctl"])
        .ok(&format!("hdparm -I {an}"), frozen)
        .ok(&format!("hdparm -I {bn}"), frozen);
    let s = settings(json!({"disk_erasure_concurrency": 2}))?;
    let e = eraser(s, &tools, &[&a.lo.path, &b.lo.path]);
    let err = e.erase_devices(&[a.listed()?, b.listed()?]).err();
    assert_eq!(
        err.as_ref().map(HardwareError::ipa_type),
        Some("BlockDeviceEraseError")
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.starts_with("Failed to erase the device(s): "), "{msg}");
    for dev in [an, bn] {
        assert!(
            msg.contains(&format!("\"{dev}\": secure erase failed")),
            "{msg}"
        );
    }
    assert!(
        msg.contains("agent_continue_if_secure_erase_failed"),
        "{msg}"
    );
    assert_eq!(
        b.contents()?,
        b.data,
        "nothing written without the fallback"
    );

    // With the fallback allowed, both are overwritten.
    let s = settings(json!({"agent_continue_if_ata_erase_failed": true}))?;
    let e = eraser(s, &tools, &[&a.lo.path, &b.lo.path]);
    e.erase_devices(&[a.listed()?, b.listed()?])?;
    assert!(a.zeroed()? && b.zeroed()?);
    Ok(())
}

#[test]
fn nvme_devices_use_nvme_and_report_the_method() -> anyhow::Result<()> {
    // The admitted-device path only (no such disk here): canned nvme answers.
    let tools = FakeTools::new()
        .ok(
            "nvme id-ctrl /dev/nvme0n1 -o json",
            r#"{"oacs":23,"fna":4,"sanicap":0}"#,
        )
        .ok("nvme format /dev/nvme0n1 -s 2 -f", "");
    let e = eraser(EraseSettings::default(), &tools, &[]);
    assert_eq!(
        e.erase_block_device("/dev/nvme0n1"),
        Ok("NVMe format (cryptographic erase, ses=2)".to_string())
    );
    let tools = FakeTools::new().on(
        "nvme id-ctrl /dev/nvme0n1 -o json",
        Ok(ToolOutput::failed(
            1,
            "identify controller: Input/output error",
        )),
    );
    let e = eraser(EraseSettings::default(), &tools, &[]);
    let err = e
        .erase_block_device("/dev/nvme0n1")
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("Input/output error") && err.contains("agent_continue_if_secure_erase_failed"),
        "{err}"
    );
    Ok(())
}

#[test]
fn read_only_disks_are_skipped_or_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ro.img");
    let data: Vec<u8> = (0..4 * MIB).map(|i| (i % 7) as u8 + 1).collect();
    std::fs::write(&file, &data)?;
    let ro = RoLoop::attach(&file, &[])?;
    let name = ro.path.display().to_string();
    let tools = no_tools();
    let disks = [device(&name, 4 * MIB)?];

    let err = eraser(EraseSettings::default(), &tools, &[&ro.path])
        .erase_devices(&disks)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("flagged read-only") && err.contains("agent_erase_skip_read_only"),
        "{err}"
    );
    let s = settings(json!({"agent_erase_skip_read_only": true}))?;
    assert_eq!(
        eraser(s, &tools, &[&ro.path]).erase_devices(&disks)?,
        json!({name: null})
    );
    // The metadata erase leaves read-only devices out, as IPA does.
    assert_eq!(
        eraser(EraseSettings::default(), &tools, &[&ro.path]).erase_devices_metadata(&disks)?,
        Value::Null
    );
    assert_eq!(std::fs::read(&file)?, data);
    Ok(())
}

/// A GPT loop disk with ext4, vfat and swap partitions, listed with its partitions.
fn busy_disk(dir: &Path) -> anyhow::Result<(LoopDevice, table::PartitionTable, Vec<BlockDevice>)> {
    let (lo, t) = testutil::busy_disk(
        &dir.join("disk.img"),
        64 * MIB,
        TableKind::Gpt,
        &[
            (16, PartitionKind::Linux),
            (34, PartitionKind::Esp),
            (8, PartitionKind::Swap),
        ],
    )?;
    let mut listed = vec![device(&lo.path.display().to_string(), 64 * MIB)?];
    for p in &t.partitions {
        listed.push(device(
            &lo.partition(p.number).display().to_string(),
            p.size,
        )?);
    }
    Ok((lo, t, listed))
}

#[test]
fn metadata_erase_wipes_the_disk_and_every_partition() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (lo, t, listed) = busy_disk(dir.path())?;
    let before = partition_signatures(&lo.file, &t.partitions)?;
    assert!(before.iter().all(|s| !s.is_empty()), "{before:?}");
    let tools = no_tools();
    // Only the disk is allowed: its partitions are wiped through it.
    let e = eraser(EraseSettings::default(), &tools, &[&lo.path]);
    assert_eq!(e.erase_devices_metadata(&listed)?, Value::Null);
    assert_eq!(wipefs_list(&lo.path)?, "");
    assert_eq!(table::read_table(&lo.path)?, None);
    assert_eq!(partition_signatures(&lo.file, &t.partitions)?, ["", "", ""]);
    Ok(())
}

#[test]
fn metadata_erase_keeps_raid_members_and_wipes_other_partitions() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (lo, t, mut listed) = busy_disk(dir.path())?;
    // Partition 3 becomes a RAID member: the disk is skipped, partitions 1 and 2 are wiped on
    // their own (IPA's per-device view), partition 3 is kept.
    let p3 = t.get(3).cloned().ok_or_else(|| anyhow::anyhow!("p3"))?;
    md_superblock(&lo.path, p3.start, p3.size)?;
    let parts: Vec<PathBuf> = (1..=3).map(|n| lo.partition(n)).collect();
    let allow: Vec<&Path> = std::iter::once(lo.path.as_path())
        .chain(parts.iter().map(PathBuf::as_path))
        .collect();
    let tools = no_tools();
    let e = eraser(EraseSettings::default(), &tools, &allow);
    // The targets, in IPA's order (descending names).
    let (targets, failures) = e.erasable(&listed);
    assert!(failures.is_empty(), "{failures:?}");
    let names: Vec<&str> = targets.iter().map(|t| t.dev.as_str()).collect();
    let (p1, p2) = (
        parts[0].display().to_string(),
        parts[1].display().to_string(),
    );
    assert_eq!(names, [p2.as_str(), p1.as_str()]);

    e.erase_devices_metadata(&listed)?;
    assert_eq!(
        partition_signatures(&lo.file, &t.partitions[..2])?,
        ["", ""]
    );
    let kept = probe::probe_all_range(&lo.path, p3.start, p3.size)?;
    assert!(
        kept.iter().any(|p| p.fstype == "linux_raid_member"),
        "{kept:?}"
    );
    assert!(
        table::read_table(&lo.path)?.is_some(),
        "the member's disk keeps its table"
    );

    // erase_devices skips the RAID member disk altogether.
    listed.truncate(1);
    let before = read_all(&lo.file)?;
    e.erase_devices(&listed)?;
    assert_eq!(read_all(&lo.file)?, before);
    Ok(())
}

#[test]
fn special_filesystems_are_protected() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lo = LoopDevice::create(&dir.path().join("vmfs.img"), 32 * MIB)?;
    let linux = PartitionSpec {
        size_mib: 8,
        kind: PartitionKind::Linux,
        name: String::new(),
        bootable: false,
    };
    table::write_table(&lo.path, TableKind::Gpt, &[linux])?;
    let out = Command::new("sfdisk")
        .arg("--part-type")
        .arg(&lo.path)
        .args(["1", "AA31E02A-400F-11DB-9590-000C2911D1B8"])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = [device(&lo.path.display().to_string(), 32 * MIB)?];
    let tools = no_tools();
    for step in [ERASE_DEVICES, ERASE_DEVICES_METADATA, ERASE_DEVICES_EXPRESS] {
        let e = eraser(EraseSettings::default(), &tools, &[&lo.path]);
        let r = match step {
            ERASE_DEVICES => e.erase_devices(&listed),
            ERASE_DEVICES_METADATA => e.erase_devices_metadata(&listed),
            _ => e.erase_devices_express(&listed),
        };
        let err = r.err();
        assert_eq!(
            err.as_ref().map(HardwareError::ipa_type),
            Some("ProtectedDeviceError"),
            "{step}"
        );
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("VMware VMFS Partition (GPT)"), "{msg}");
        assert!(
            table::read_table(&lo.path)?.is_some(),
            "{step} wrote to the disk"
        );
    }
    let s = settings(json!({"wipe_special_filesystems": false}))?;
    eraser(s, &tools, &[&lo.path]).erase_devices_metadata(&listed)?;
    assert_eq!(table::read_table(&lo.path)?, None);
    Ok(())
}

#[test]
fn express_formats_nvme_and_wipes_the_rest() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (lo, t, listed) = busy_disk(dir.path())?;
    let tools = no_tools();
    let e = eraser(EraseSettings::default(), &tools, &[&lo.path]);
    assert_eq!(e.erase_devices_express(&listed)?, Value::Null);
    assert!(
        tools.calls().is_empty(),
        "no NVMe here: {:?}",
        tools.calls()
    );
    assert_eq!(wipefs_list(&lo.path)?, "");
    assert_eq!(partition_signatures(&lo.file, &t.partitions)?, ["", "", ""]);
    Ok(())
}

#[test]
fn execute_runs_the_steps_through_the_agent() -> anyhow::Result<()> {
    let d = Patterned::new(4 * MIB)?;
    let ctx = crate::clean::testing::agent(
        d.dir.path(),
        &[&d.lo.path],
        vec![d.listed()?, device("/dev/sdy", 1 << 30)?],
    )?;
    let node = |dii: Value| -> anyhow::Result<StepContext> {
        Ok(StepContext {
            kind: Some(StepKind::Clean),
            node: serde_json::from_value(json!({"uuid": "n1", "driver_internal_info": dii}))?,
            ports: vec![],
        })
    };
    let args = Map::new();
    assert!(
        execute(&ctx.devices(), "burnin_cpu", &node(json!({}))?, &args)
            .is_err_and(|e| e.is_incompatible())
    );
    let bad = execute(
        &ctx.devices(),
        ERASE_DEVICES,
        &node(json!({"disk_erasure_concurrency": "x"}))?,
        &args,
    );
    assert!(matches!(bad, Err(HardwareError::InvalidArgs(_))), "{bad:?}");

    let out = execute(
        &ctx.devices(),
        ERASE_DEVICES,
        &node(json!({"agent_enable_ata_secure_erase": false}))?,
        &args,
    )?;
    assert_eq!(out, json!({d.name.clone(): null, "/dev/sdy": null}));
    assert!(d.zeroed()?);

    run_tool("mkswap", &[], &d.lo.path)?;
    assert_ne!(wipefs_list(&d.lo.path)?, "");
    assert_eq!(
        execute(
            &ctx.devices(),
            ERASE_DEVICES_METADATA,
            &node(json!({}))?,
            &args
        )?,
        Value::Null
    );
    assert_eq!(wipefs_list(&d.lo.path)?, "");
    Ok(())
}
