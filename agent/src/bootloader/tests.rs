//! `install` end to end over a disk-image file, with canned tools and a mounter that stands
//! a fixture directory in for each filesystem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::mount::fake::FakeMounter;
use super::*;
use crate::commands::Params;
use crate::disk::blockdev::partition_path;
use crate::disk::table::{PartitionKind, PartitionSpec, TableKind, write_table};
use crate::tools::ToolOutput;
use crate::tools::fake::FakeTools;

const CSV_LISTING: &str = "BootCurrent: 0001\nBootOrder: 0001\n\
Boot0001* UEFI Misc Device\tPciRoot(0x0)/Pci(0x3,0x0)\n";

struct Bench {
    _tmp: tempfile::TempDir,
    disk: PathBuf,
    scratch: PathBuf,
    fixtures: PathBuf,
    partuuids: Vec<String>,
}

fn spec(size_mib: u64, kind: PartitionKind) -> PartitionSpec {
    PartitionSpec {
        size_mib,
        kind,
        name: String::new(),
        bootable: false,
    }
}

fn bench(kind: TableKind, parts: &[PartitionSpec]) -> anyhow::Result<Bench> {
    let tmp = tempfile::tempdir()?;
    let disk = tmp.path().join("disk");
    std::fs::File::create(&disk)?.set_len(64 << 20)?;
    let table = write_table(&disk, kind, parts)?;
    let scratch = tmp.path().join("scratch");
    let fixtures = tmp.path().join("fixtures");
    std::fs::create_dir_all(&scratch)?;
    Ok(Bench {
        disk,
        scratch,
        fixtures,
        partuuids: table
            .partitions
            .iter()
            .map(|p| p.partuuid.clone())
            .collect(),
        _tmp: tmp,
    })
}

impl Bench {
    /// A fixture directory standing for partition `n`'s filesystem, with `files`.
    fn fs(&self, n: u32, files: &[(&str, &[u8])]) -> anyhow::Result<(PathBuf, PathBuf)> {
        let dir = self.fixtures.join(format!("p{n}"));
        std::fs::create_dir_all(&dir)?;
        for (rel, data) in files {
            let p = dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, data)?;
        }
        Ok((partition_path(&self.disk, n), dir))
    }

    fn host<'a>(&self, tools: &'a FakeTools, mounter: &'a FakeMounter, uefi: bool) -> Host<'a> {
        Host {
            tools,
            mounter,
            efi_booted: uefi,
            efivars: None,
            scratch: self.scratch.clone(),
            sys_block: self.scratch.join("no-sys-block"),
            dev_dir: self.fixtures.join("dev"),
            retry_delay: Duration::ZERO,
        }
    }

    fn scratch_is_empty(&self) -> bool {
        std::fs::read_dir(&self.scratch).is_ok_and(|mut d| d.next().is_none())
    }
}

fn utf16(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
    out
}

fn params(v: serde_json::Value) -> InstallBootloaderParams {
    serde_json::from_value(v).unwrap_or_default()
}

#[test]
fn whole_disk_uefi_gets_an_entry_for_the_csv_loader() -> anyhow::Result<()> {
    let b = bench(
        TableKind::Gpt,
        &[spec(16, PartitionKind::Esp), spec(8, PartitionKind::Linux)],
    )?;
    let esp = b.fs(
        1,
        &[
            (
                "EFI/marker/BOOTX64.CSV",
                &utf16("grubx64.efi,Marker OS,,Test OS\n"),
            ),
            ("EFI/marker/grubx64.efi", b"MZ"),
        ],
    )?;
    let create = format!(
        "efibootmgr -v -c -d {} -p 1 -w -L Marker OS -l \\EFI\\marker\\grubx64.efi",
        b.disk.display()
    );
    let tools = FakeTools::new()
        .ok("efibootmgr -v", CSV_LISTING)
        .ok(&create, "")
        .ok("sync", "");
    let mounter = FakeMounter {
        filesystems: HashMap::from([esp]),
        ..Default::default()
    };
    let p = params(json!({"root_uuid": "0x00000000", "target_boot_mode": "uefi"}));
    let out = install(
        &b.host(&tools, &mounter, true),
        &b.disk,
        &p,
        Policy::default(),
    )?;
    assert!(out.warnings.is_empty());
    assert_eq!(
        tools.calls(),
        vec!["efibootmgr -v", create.as_str(), "sync"]
    );
    assert!(mounter.still_mounted().is_empty());
    assert!(b.scratch_is_empty(), "mount points are removed");
    Ok(())
}

#[test]
fn whole_disk_without_esp_fails_with_device_not_found_unless_ignored() -> anyhow::Result<()> {
    let b = bench(TableKind::Msdos, &[spec(8, PartitionKind::Linux)])?;
    let tools = FakeTools::new();
    let mounter = FakeMounter::default();
    let p = params(json!({"root_uuid": null, "target_boot_mode": "uefi"}));
    let host = b.host(&tools, &mounter, true);
    let err = install(&host, &b.disk, &p, Policy::default())
        .err()
        .ok_or_else(|| anyhow::anyhow!("no error"))?;
    let ce = crate::commands::CommandError::from(err.to_ipa_error());
    assert_eq!((ce.kind.as_str(), ce.code), ("DeviceNotFound", 404));
    assert!(
        ce.details
            .contains("Are you using a UEFI-compatible image?"),
        "{}",
        ce.details
    );
    let p = params(json!({"root_uuid": null, "target_boot_mode": "uefi",
                          "ignore_bootloader_failure": true}));
    let out = install(&host, &b.disk, &p, Policy::default())?;
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("No EFI partition"),
        "{:?}",
        out.warnings
    );
    // The configured default works the same way.
    let ignoring = Policy {
        ignore_failure: true,
        ..Policy::default()
    };
    let p = params(json!({"target_boot_mode": "uefi"}));
    assert_eq!(install(&host, &b.disk, &p, ignoring)?.warnings.len(), 1);
    // ... but the parameter wins over it.
    let p = params(json!({"target_boot_mode": "uefi", "ignore_bootloader_failure": false}));
    assert!(install(&host, &b.disk, &p, ignoring).is_err());
    assert!(tools.calls().is_empty(), "{:?}", tools.calls());
    Ok(())
}

#[test]
fn bios_whole_disk_and_empty_esp_do_nothing() -> anyhow::Result<()> {
    let b = bench(TableKind::Gpt, &[spec(16, PartitionKind::Esp)])?;
    let esp = b.fs(1, &[("EFI/other/readme.txt", b"x")])?;
    let tools = FakeTools::new().ok("sync", "");
    let mounter = FakeMounter {
        filesystems: HashMap::from([esp]),
        ..Default::default()
    };
    // Not booted through UEFI: nothing is touched.
    let p = params(json!({"root_uuid": "0x1a2b3c4d"}));
    install(
        &b.host(&tools, &mounter, false),
        &b.disk,
        &p,
        Policy::default(),
    )?;
    assert!(tools.calls().is_empty() && mounter.calls().is_empty());
    // UEFI with an ESP holding no loader: mounted, searched, released; whole disk → done.
    let p = params(json!({"root_uuid": "0x00000000", "target_boot_mode": "uefi"}));
    install(
        &b.host(&tools, &mounter, true),
        &b.disk,
        &p,
        Policy::default(),
    )?;
    assert_eq!(mounter.calls().len(), 2, "{:?}", mounter.calls());
    assert!(mounter.still_mounted().is_empty());
    Ok(())
}

#[test]
fn grub_is_refused_unless_enabled() -> anyhow::Result<()> {
    let b = bench(TableKind::Msdos, &[spec(16, PartitionKind::Linux)])?;
    let tools = FakeTools::new();
    let mounter = FakeMounter::default();
    let p = params(json!({"root_uuid": b.partuuids[0]}));
    let err = install(
        &b.host(&tools, &mounter, false),
        &b.disk,
        &p,
        Policy::default(),
    )
    .err()
    .ok_or_else(|| anyhow::anyhow!("no error"))?;
    let ce = crate::commands::CommandError::from(err.to_ipa_error());
    assert_eq!(ce.kind, "InvalidImage");
    assert!(ce.details.contains("CVE-2026-43003"), "{}", ce.details);
    assert!(mounter.calls().is_empty());
    Ok(())
}

fn grub_enabled() -> Policy {
    Policy {
        grub_enabled: true,
        ignore_failure: false,
    }
}

#[test]
fn bios_grub_runs_in_a_chroot_and_everything_is_unmounted() -> anyhow::Result<()> {
    let b = bench(TableKind::Msdos, &[spec(16, PartitionKind::Linux)])?;
    let root = b.fs(
        1,
        &[
            ("etc/fstab", b""),
            ("usr/sbin/grub-install", b"#!/bin/sh\n"),
        ],
    )?;
    let tools = FakeTools::new().on_contains("", ToolOutput::ok(""));
    let mounter = FakeMounter {
        filesystems: HashMap::from([root]),
        ..Default::default()
    };
    let p = params(json!({"root_uuid": b.partuuids[0].to_ascii_uppercase(),
                          "target_boot_mode": "bios"}));
    install(
        &b.host(&tools, &mounter, false),
        &b.disk,
        &p,
        grub_enabled(),
    )?;
    let calls = tools.calls();
    let disk = b.disk.display().to_string();
    let chroot: Vec<String> = calls
        .iter()
        .filter_map(|c| c.split_once(" chroot ").map(|(_, rest)| rest.to_string()))
        .map(|rest| {
            rest.split_once(' ')
                .map(|(_, cmd)| cmd.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        chroot,
        vec![
            "mount -a -t vfat".to_string(),
            format!("grub-install {disk}"),
            "grub-mkconfig -o /boot/grub/grub.cfg".to_string(),
            "umount -a -t vfat".to_string(),
        ],
        "{calls:?}"
    );
    let mkconfig = calls
        .iter()
        .find(|c| c.contains("grub-mkconfig"))
        .cloned()
        .unwrap_or_default();
    assert!(
        mkconfig.starts_with("env PATH=")
            && mkconfig.contains(
                ":/bin:/usr/sbin:/sbin GRUB_DISABLE_OS_PROBER=true GRUB_SAVEDEFAULT=true"
            ),
        "{mkconfig}"
    );
    let mounts = mounter.calls();
    let targets: Vec<&str> = mounts
        .iter()
        .filter(|c| c.starts_with("mount "))
        .filter_map(|c| c.rsplit('/').next())
        .collect();
    assert_eq!(targets[1..], ["dev", "proc", "run", "sys"], "{mounts:?}");
    assert!(mounter.still_mounted().is_empty(), "{mounts:?}");
    assert!(b.scratch_is_empty());
    Ok(())
}

#[test]
fn a_failing_grub_install_reports_its_stderr_and_unmounts() -> anyhow::Result<()> {
    let b = bench(TableKind::Msdos, &[spec(16, PartitionKind::Linux)])?;
    let root = b.fs(1, &[("usr/sbin/grub2-install", b"")])?;
    let stderr = "grub2-install: error: cannot find EFI directory.";
    let tools = FakeTools::new()
        .on_contains("grub2-install", ToolOutput::failed(1, stderr))
        .on_contains("", ToolOutput::ok(""));
    let mounter = FakeMounter {
        filesystems: HashMap::from([root]),
        ..Default::default()
    };
    let p = params(json!({"root_uuid": b.partuuids[0]}));
    let host = b.host(&tools, &mounter, false);
    let err = install(&host, &b.disk, &p, grub_enabled())
        .err()
        .ok_or_else(|| anyhow::anyhow!("no error"))?;
    let ce = crate::commands::CommandError::from(err.to_ipa_error());
    assert_eq!((ce.kind.as_str(), ce.code), ("CommandExecutionError", 500));
    assert!(
        ce.details.contains(stderr)
            && ce
                .details
                .contains(&format!("`grub2-install {}`", b.disk.display()))
            && ce.details.contains("exit status 1"),
        "{}",
        ce.details
    );
    assert!(!tools.calls().iter().any(|c| c.contains("mkconfig")));
    assert!(mounter.still_mounted().is_empty(), "{:?}", mounter.calls());
    // Ignored: success with the failure as a warning.
    let p = params(json!({"root_uuid": b.partuuids[0], "ignore_bootloader_failure": true}));
    let out = install(&host, &b.disk, &p, grub_enabled())?;
    assert!(out.warnings[0].contains(stderr), "{:?}", out.warnings);
    assert!(mounter.still_mounted().is_empty());
    Ok(())
}

/// The disk of a UEFI partition image: GPT with the ESP (1) and the root (2), their
/// filesystems standing in as fixture directories.
struct UefiPartition {
    b: Bench,
    mounter: FakeMounter,
    root: PathBuf,
    esp: PathBuf,
}

fn uefi_partition(root: &[(&str, &[u8])], esp: &[(&str, &[u8])]) -> anyhow::Result<UefiPartition> {
    let b = bench(
        TableKind::Gpt,
        &[spec(16, PartitionKind::Esp), spec(16, PartitionKind::Linux)],
    )?;
    let root = b.fs(2, root)?;
    let esp = b.fs(1, esp)?;
    let (root_dir, esp_dir) = (root.1.clone(), esp.1.clone());
    Ok(UefiPartition {
        mounter: FakeMounter {
            filesystems: HashMap::from([root, esp]),
            ..Default::default()
        },
        b,
        root: root_dir,
        esp: esp_dir,
    })
}

impl UefiPartition {
    /// `install_bootloader` as Ironic sends it for this image, with GRUB enabled.
    fn install(&self, tools: &FakeTools, uefi_booted: bool) -> Result<Outcome, BootloaderError> {
        let p = params(json!({"root_uuid": self.b.partuuids[1],
                              "efi_system_part_uuid": self.b.partuuids[0],
                              "target_boot_mode": "uefi"}));
        install(
            &self.b.host(tools, &self.mounter, uefi_booted),
            &self.b.disk,
            &p,
            grub_enabled(),
        )
    }
}

/// Tools listing no disk entries in efibootmgr and succeeding at everything else.
fn obliging_tools() -> FakeTools {
    FakeTools::new()
        .ok("efibootmgr -v", CSV_LISTING)
        .on_contains("", ToolOutput::ok(""))
}

#[test]
fn uefi_partition_image_with_loaders_on_its_esp_gets_entries_only() -> anyhow::Result<()> {
    // As grub-install --removable leaves an ESP.
    let u = uefi_partition(
        &[("etc/fstab", b"# static\n"), ("boot/efi/.keep", b"")],
        &[
            ("EFI/BOOT/BOOTX64.EFI", b"MZ"),
            ("EFI/TestOS/grubx64.efi", b"MZ"),
        ],
    )?;
    let tools = obliging_tools();
    u.install(&tools, true)?;
    let calls = tools.calls();
    // The ESP has loaders, so the NVRAM path alone does: entries made, GRUB not run.
    assert!(
        calls
            .iter()
            .any(|c| c.contains("-L ironic1 -l \\EFI\\BOOT\\BOOTX64.EFI")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains("grub-install")),
        "{calls:?}"
    );
    assert!(u.mounter.still_mounted().is_empty());
    Ok(())
}

#[test]
fn uefi_partition_image_gets_grub_an_fstab_line_and_an_entry() -> anyhow::Result<()> {
    // An empty ESP: GRUB installs onto it (both ways), configures, adds the fstab line.
    let u = uefi_partition(
        &[("etc/fstab", b"# static\n"), ("boot/efi/.keep", b"")],
        &[],
    )?;
    let tools = obliging_tools();
    u.install(&tools, true)?;
    let calls = tools.calls();
    let installs: Vec<&String> = calls
        .iter()
        .filter(|c| c.contains("grub-install"))
        .collect();
    assert_eq!(installs.len(), 2, "{calls:?}");
    assert!(
        installs[0].ends_with(" grub-install") && installs[1].ends_with("grub-install --removable")
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("grub-mkconfig -o /boot/grub/grub.cfg"))
    );
    let fstab = std::fs::read_to_string(u.root.join("etc/fstab"))?;
    assert_eq!(
        fstab,
        format!(
            "# static\nPARTUUID={}\t/boot/efi\tvfat\tumask=0077\t0\t1\n",
            u.b.partuuids[0]
        )
    );
    assert!(
        u.mounter.still_mounted().is_empty(),
        "{:?}",
        u.mounter.calls()
    );
    Ok(())
}

#[test]
fn both_uefi_grub_installs_failing_is_an_error() -> anyhow::Result<()> {
    let u = uefi_partition(&[("etc/fstab", b"")], &[])?;
    let tools = FakeTools::new()
        .on_contains(
            "grub-install",
            ToolOutput::failed(1, "grub-install: error: efibootmgr failed"),
        )
        .on_contains("", ToolOutput::ok(""));
    let err = u
        .install(&tools, false)
        .err()
        .ok_or_else(|| anyhow::anyhow!("no error"))?;
    assert!(err.to_string().contains("efibootmgr failed"), "{err}");
    assert!(u.mounter.still_mounted().is_empty());
    Ok(())
}

#[test]
fn unknown_root_uuid_is_device_not_found() -> anyhow::Result<()> {
    let b = bench(TableKind::Msdos, &[spec(16, PartitionKind::Linux)])?;
    let tools = FakeTools::new();
    let mounter = FakeMounter::default();
    let p = params(json!({"root_uuid": "6f1c0d8e-0000-4000-8000-000000000000"}));
    let err = install(
        &b.host(&tools, &mounter, false),
        &b.disk,
        &p,
        grub_enabled(),
    )
    .err()
    .ok_or_else(|| anyhow::anyhow!("no error"))?;
    assert_eq!(
        crate::commands::CommandError::from(err.to_ipa_error()).code,
        404
    );
    assert!(mounter.calls().is_empty());
    Ok(())
}

#[test]
fn params_are_validated() {
    let parse = |v: serde_json::Value| {
        InstallBootloaderParams::parse(v.as_object().cloned().as_ref().unwrap_or(&Params::new()))
    };
    assert!(parse(json!({"root_uuid": "x", "target_boot_mode": "uefi"})).is_ok());
    assert!(parse(json!({})).is_ok());
    let e = parse(json!({"target_boot_mode": "legacy"}))
        .err()
        .unwrap_or_default();
    assert!(e.contains("\"bios\" or \"uefi\""), "{e}");
    assert!(parse(json!({"root_uuid": 5})).is_err());
    assert!(parse(json!({"ignore_bootloader_failure": "yes"})).is_err());
    assert!(
        InstallBootloaderParams {
            root_uuid: Some("0x00000000".into()),
            ..Default::default()
        }
        .whole_disk()
    );
    let _ = Path::new("");
}

#[test]
fn an_images_own_efi_assets_are_preserved_instead_of_reinstalling_grub() -> anyhow::Result<()> {
    let u = uefi_partition(
        &[
            ("etc/fstab", b""),
            ("usr/sbin/grub-install", b""),
            ("boot/grub/grub.cfg", b"menuentry x {}"),
            (
                "boot/efi/EFI/debian/BOOTX64.CSV",
                &utf16("shimx64.efi,debian,,This is the boot entry for debian\n"),
            ),
            ("boot/efi/EFI/debian/shimx64.efi", b"MZ"),
        ],
        &[],
    )?;
    let tools = obliging_tools();
    u.install(&tools, true)?;
    let calls = tools.calls();
    assert!(
        !calls.iter().any(|c| c.contains("grub-install")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.contains("grub-mkconfig")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("-L debian -l \\EFI\\debian\\shimx64.efi")),
        "{calls:?}"
    );
    // The ESP got the tree, with grub.cfg in the vendor directory.
    assert!(u.esp.join("EFI/debian/shimx64.efi").is_file());
    assert_eq!(
        std::fs::read_to_string(u.esp.join("EFI/debian/grub.cfg"))?,
        "menuentry x {}"
    );
    assert!(std::fs::read_to_string(u.root.join("etc/fstab"))?.contains("/boot/efi\tvfat"));
    assert!(
        u.mounter.still_mounted().is_empty(),
        "{:?}",
        u.mounter.calls()
    );
    assert!(u.b.scratch_is_empty(), "the stash is removed");
    Ok(())
}
