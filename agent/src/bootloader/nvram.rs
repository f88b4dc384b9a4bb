//! UEFI boot entries for the loaders of an ESP, with `efibootmgr`.
//!
//! For every (disk, ESP partition) pair and every [`BootTarget`], stale entries are deleted
//! first: those with the same label (as IPA does) and those already pointing at the same
//! loader file on the same partition. Then `efibootmgr -v -c -d DISK -p N -w -L LABEL -l
//! LOADER` creates the entry, which efibootmgr puts first in `BootOrder`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info};

use super::esp::BootTarget;
use crate::efibootmgr::{BootEntry, decode_output, parse_efibootmgr};
use crate::tools::{self, Tools};

/// How long one `efibootmgr` run may take.
const EFIBOOTMGR_TIMEOUT: Duration = Duration::from_secs(60);

/// Where an ESP lives: its disk and partition number, and its PARTUUID when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspLocation {
    /// The disk (`/dev/sda`; for a RAID ESP, a holder disk).
    pub disk: PathBuf,
    /// The partition number on that disk.
    pub number: u32,
    /// The GPT partition GUID, lower-case, when the disk is GPT.
    pub partuuid: Option<String>,
    /// Appended to each label (`(RAID, part0)`), for ESP mirrors.
    pub label_suffix: Option<String>,
}

impl EspLocation {
    /// Partition `number` of `disk`, its PARTUUID read from the disk's table.
    pub fn new(disk: &Path, number: u32, label_suffix: Option<String>) -> Self {
        let partuuid = crate::disk::table::read_table(disk)
            .ok()
            .flatten()
            .and_then(|t| t.get(number).map(|p| p.partuuid.clone()));
        EspLocation {
            disk: disk.to_path_buf(),
            number,
            partuuid,
            label_suffix,
        }
    }
}

/// Whether `entry` already boots `loader` from the partition `partuuid`.
fn same_loader(entry: &BootEntry, loader: &str, partuuid: Option<&str>) -> bool {
    let path = entry.path.to_ascii_lowercase();
    let file = format!("file({})", loader.to_ascii_lowercase());
    path.contains(&file) && partuuid.is_some_and(|u| path.contains(&u.to_ascii_lowercase()))
}

/// Creates one boot entry per target on each ESP location, deleting stale ones first.
/// Returns the labels created.
///
/// # Errors
/// The failing efibootmgr command with its stderr.
pub fn add_entries(
    tools: &dyn Tools,
    locations: &[EspLocation],
    targets: &[BootTarget],
) -> Result<Vec<String>, String> {
    let listing = tools::run_ok(tools, "efibootmgr", &["-v"], EFIBOOTMGR_TIMEOUT)?;
    let existing = parse_efibootmgr(&decode_output(&listing));
    let mut deleted: Vec<String> = Vec::new();
    let mut created = Vec::new();
    for loc in locations {
        let disk = loc.disk.to_string_lossy();
        let number = loc.number.to_string();
        for t in targets {
            let label = match &loc.label_suffix {
                Some(s) => format!("{} {s}", t.label),
                None => t.label.clone(),
            };
            for e in &existing {
                let stale = e.label == label || same_loader(e, &t.loader, loc.partuuid.as_deref());
                if stale && !deleted.contains(&e.num) {
                    info!(boot = %e.num, label = %e.label, path = %e.path, "deleting the stale UEFI boot entry");
                    tools::run_ok(
                        tools,
                        "efibootmgr",
                        &["-b", &e.num, "-B"],
                        EFIBOOTMGR_TIMEOUT,
                    )?;
                    deleted.push(e.num.clone());
                }
            }
            info!(disk = %disk, partition = loc.number, loader = %t.loader, label = %label,
                  "adding a UEFI boot entry");
            let out = tools::run_ok(
                tools,
                "efibootmgr",
                &[
                    "-v", "-c", "-d", &disk, "-p", &number, "-w", "-L", &label, "-l", &t.loader,
                ],
                EFIBOOTMGR_TIMEOUT,
            )?;
            debug!(output = %out.trim(), "efibootmgr");
            created.push(label);
        }
    }
    Ok(created)
}

/// Boot entries on `locations` for the loaders of the ESP mounted at `mnt`.
///
/// # Errors
/// No loader on the ESP, an unreadable CSV, or the failing efibootmgr command.
pub fn entries_for_esp(
    tools: &dyn Tools,
    mnt: &Path,
    locations: &[EspLocation],
) -> Result<Vec<String>, String> {
    let loaders = super::esp::find_loaders(mnt);
    if loaders.is_empty() {
        return Err(format!(
            "no boot loader on the ESP mounted at {}",
            mnt.display()
        ));
    }
    let targets = super::esp::boot_targets(mnt, &loaders, None)?;
    add_entries(tools, locations, &targets)
}

/// Writes everything to disk (`sync`); a failure is only logged.
pub fn sync(tools: &dyn Tools) {
    if let Err(e) = tools::run_ok(tools, "sync", &[], EFIBOOTMGR_TIMEOUT) {
        tracing::warn!(error = %e, "sync failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::fake::FakeTools;

    const LISTING: &str = "BootCurrent: 0001\nBootOrder: 0003,0001,0002\n\
Boot0001* UEFI Misc Device\tPciRoot(0x0)/Pci(0x3,0x0){auto_created_boot_option}\n\
Boot0002* Marker OS\tHD(1,GPT,11111111-2222-3333-4444-555555555555,0x800,0x18000)/File(\\EFI\\old\\grubx64.efi)\n\
Boot0003* ironic1\tHD(1,GPT,aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee,0x800,0x18000)/File(\\EFI\\marker\\grubx64.efi)\n";

    #[test]
    fn stale_entries_are_deleted_then_the_entry_created() -> anyhow::Result<()> {
        let create =
            "efibootmgr -v -c -d /dev/vda -p 1 -w -L Marker OS -l \\EFI\\marker\\grubx64.efi";
        let fake = FakeTools::new()
            .ok("efibootmgr -v", LISTING)
            .ok("efibootmgr -b 0002 -B", "")
            .ok("efibootmgr -b 0003 -B", "")
            .ok(create, "Boot0004* Marker OS");
        let created = add_entries(
            &fake,
            &[EspLocation {
                disk: "/dev/vda".into(),
                number: 1,
                partuuid: Some("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE".into()),
                label_suffix: None,
            }],
            &[BootTarget {
                loader: "\\EFI\\marker\\grubx64.efi".into(),
                label: "Marker OS".into(),
            }],
        )
        .map_err(anyhow::Error::msg)?;
        assert_eq!(created, vec!["Marker OS"]);
        assert_eq!(
            fake.calls(),
            vec![
                "efibootmgr -v",
                "efibootmgr -b 0002 -B",
                "efibootmgr -b 0003 -B",
                create
            ]
        );
        Ok(())
    }

    #[test]
    fn raid_components_get_suffixed_labels_and_errors_carry_stderr() -> anyhow::Result<()> {
        let fake = FakeTools::new()
            .ok("efibootmgr -v", "BootCurrent: 0001\n")
            .ok("efibootmgr -v -c -d /dev/vda -p 3 -w -L ironic1 (RAID, part0) -l \\EFI\\BOOT\\BOOTX64.EFI", "")
            .on(
                "efibootmgr -v -c -d /dev/vdb -p 3 -w -L ironic1 (RAID, part1) -l \\EFI\\BOOT\\BOOTX64.EFI",
                Ok(crate::tools::ToolOutput::failed(5, "Could not prepare Boot variable: No space left on device")),
            );
        let loc = |d: &str, i: u32| EspLocation {
            disk: d.into(),
            number: 3,
            partuuid: None,
            label_suffix: Some(format!("(RAID, part{i})")),
        };
        let err = add_entries(
            &fake,
            &[loc("/dev/vda", 0), loc("/dev/vdb", 1)],
            &[BootTarget {
                loader: "\\EFI\\BOOT\\BOOTX64.EFI".into(),
                label: "ironic1".into(),
            }],
        )
        .err()
        .unwrap_or_default();
        assert!(
            err.contains("No space left on device") && err.contains("/dev/vdb"),
            "{err}"
        );
        Ok(())
    }
}
