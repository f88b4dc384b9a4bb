//! Where on the target disk the downloaded image waits for `qemu-img`.

use std::path::Path;

use super::QemuError;
use super::options::SpoolSource;

/// The spool region: the image file's bytes go to `[offset, offset + len)` of the target
/// disk, and `[offset, disk end)` belongs to the spool (a writer that pads its last block up
/// to the plan's alignment stays inside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolPlan {
    /// First byte of the spool on the disk (a multiple of the alignment).
    pub offset: u64,
    /// Size of the image file.
    pub len: u64,
}

impl SpoolPlan {
    /// The region as a source for [`super::convert`] on `device`.
    pub fn source(&self, device: &Path) -> SpoolSource {
        SpoolSource {
            device: device.to_path_buf(),
            offset: self.offset,
            len: self.len,
        }
    }
}

/// Places the spool for an `image_file_size`-byte image at the end of a `disk_size`-byte
/// disk, aligned to `align` (a power of two, at least 4096; 1 MiB is a good choice).
///
/// The converted image will occupy `[0, virtual_size)`; the spool must start at or after
/// that, so `qemu-img` never writes over bytes it has yet to read. With `virtual_size`
/// unknown only the spool's own fit is checked here, and [`super::convert`] checks the
/// virtual size `qemu-img` reports before writing anything.
pub fn plan_spool(
    disk_size: u64,
    image_file_size: u64,
    virtual_size: Option<u64>,
    align: u64,
) -> Result<SpoolPlan, QemuError> {
    if !align.is_power_of_two() || align < 4096 {
        return Err(QemuError::InvalidArgument(format!(
            "spool alignment {align} is not a power of two ≥ 4096"
        )));
    }
    if image_file_size == 0 {
        return Err(QemuError::InvalidArgument("the image file is empty".into()));
    }
    let too_small = || QemuError::DiskTooSmall {
        disk_size,
        image_file_size,
        virtual_size: virtual_size.unwrap_or(0),
    };
    let reserved = image_file_size
        .checked_next_multiple_of(align)
        .ok_or_else(too_small)?;
    let offset = disk_size.checked_sub(reserved).ok_or_else(too_small)? / align * align;
    if virtual_size.is_some_and(|v| v > offset) {
        return Err(too_small());
    }
    tracing::debug!(
        disk_size,
        image_file_size,
        ?virtual_size,
        offset,
        "spool planned at the end of the disk"
    );
    Ok(SpoolPlan {
        offset,
        len: image_file_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn spool_sits_aligned_at_the_end() {
        let p = plan_spool(256 * MIB, 10 * MIB + 5, Some(64 * MIB), MIB).ok();
        assert_eq!(
            p,
            Some(SpoolPlan {
                offset: 245 * MIB,
                len: 10 * MIB + 5
            })
        );
        // A disk size that is not a multiple of the alignment.
        let p = plan_spool(100 * MIB + 512, 3 * MIB, Some(MIB), MIB).ok();
        assert_eq!(p.map(|p| p.offset), Some(97 * MIB));
        // Exactly enough room: the image ends where the spool starts.
        assert!(plan_spool(128 * MIB, 64 * MIB, Some(64 * MIB), MIB).is_ok());
        assert!(plan_spool(128 * MIB, 64 * MIB, None, MIB).is_ok());
    }

    #[test]
    fn too_small_disks_and_bad_arguments() {
        let err = plan_spool(128 * MIB, 64 * MIB, Some(64 * MIB + 1), MIB)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "disk too small to spool and convert: the image needs 67108865 bytes once converted \
                 plus 67108864 bytes of spool, the disk has 134217728 bytes"
            )
        );
        assert!(matches!(
            plan_spool(MIB, 2 * MIB, None, MIB),
            Err(QemuError::DiskTooSmall { .. })
        ));
        assert!(matches!(
            plan_spool(u64::MAX, u64::MAX - 5, None, MIB),
            Err(QemuError::DiskTooSmall { .. })
        ));
        assert!(matches!(
            plan_spool(MIB, 0, None, MIB),
            Err(QemuError::InvalidArgument(_))
        ));
        assert!(matches!(
            plan_spool(MIB, 1, None, 3000),
            Err(QemuError::InvalidArgument(_))
        ));
    }
}
