//! Where network data comes from: `openstack/latest/network_data.json` on a config drive or a
//! virtual-media ISO, found by filesystem label.

use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::media::{self, BlockRoots, ReadOnlyMount, TracingNotes};

/// The labels of devices carrying network data: a config drive (`config-2`, also a config
/// drive partition) and Ironic's virtual-media deploy ISO (`vmedia_boot_iso`); compared
/// ignoring case.
pub const LABELS: [&str; 2] = ["config-2", "vmedia_boot_iso"];

/// Where the file is on such a device.
pub const NETWORK_DATA: &str = "openstack/latest/network_data.json";

/// Larger network data is refused (Ironic's is a few KiB).
pub const MAX_BYTES: u64 = 1 << 20;

/// Network data read from a device.
#[derive(Debug, Clone)]
pub struct Found {
    /// The device it was read from.
    pub device: PathBuf,
    /// The file's text.
    pub text: String,
}

/// The labelled devices in preference order: virtual media first (a BMC's CD or USB disk, what
/// Ironic attached for this boot), then the rest (a config drive partition on a disk).
pub fn candidates(roots: &BlockRoots) -> Vec<PathBuf> {
    let mut found = media::find_by_labels(roots, &LABELS);
    let mut notes = TracingNotes;
    found.sort_by_cached_key(|d| !media::is_vmedia(roots, d, &mut notes));
    found
}

/// Reads the network data of the first labelled device that has it. Devices that cannot be
/// mounted, or lack the file, are logged and passed over; `None` when no device has it.
pub fn find(roots: &BlockRoots) -> Option<Found> {
    for device in candidates(roots) {
        match read_from(&device) {
            Ok(Some(text)) => {
                info!(device = %device.display(), "network data found");
                return Some(Found { device, text });
            }
            Ok(None) => info!(device = %device.display(), "no {NETWORK_DATA} on this device"),
            Err(e) => warn!(device = %device.display(), error = %e, "cannot read network data"),
        }
    }
    None
}

/// The file's text from `device`, mounted read-only for the time of the read.
fn read_from(device: &Path) -> anyhow::Result<Option<String>> {
    let mount = ReadOnlyMount::new(device)?;
    let path = mount.path().join(NETWORK_DATA);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    };
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_BYTES {
        anyhow::bail!("{} is larger than {MAX_BYTES} bytes", path.display());
    }
    Ok(Some(text))
}
