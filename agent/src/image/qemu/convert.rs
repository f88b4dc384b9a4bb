//! `qemu-img convert` from the spool region of a disk to the start of a disk.

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::QemuError;
use super::device::{self, DeviceInfo};
use super::options::{ConvertOptions, SpoolSource};
use super::run;
use crate::image::format::qemu_driver_for;

/// The checked spool: its device facts and the qemu driver for its format.
struct Spool<'s> {
    source: &'s SpoolSource,
    info: DeviceInfo,
    driver: &'static str,
}

impl<'s> Spool<'s> {
    fn open(source: &'s SpoolSource, format: &str) -> Result<Self, QemuError> {
        let driver = match qemu_driver_for(format) {
            Some(d) => d,
            None => return Err(QemuError::UnsupportedFormat(format.to_string())),
        };
        let info = DeviceInfo::of(&source.device)
            .map_err(io(format!("inspecting {}", source.device.display())))?;
        let end = source.offset.checked_add(source.len);
        if source.len == 0 || end.is_none_or(|e| e > info.size) {
            return Err(QemuError::InvalidArgument(format!(
                "spool of {} bytes at {} does not fit {} ({} bytes)",
                source.len,
                source.offset,
                source.device.display(),
                info.size
            )));
        }
        if !source.offset.is_multiple_of(info.sector) {
            return Err(QemuError::InvalidArgument(format!(
                "spool offset {} is not a multiple of the {}-byte sector",
                source.offset, info.sector
            )));
        }
        Ok(Spool {
            source,
            info,
            driver,
        })
    }

    /// The region qemu reads: the image rounded up to a whole sector (qemu refuses a raw
    /// region of another size; the padding lies inside the spool and formats with a footer
    /// — fixed VHD, streamOptimized VMDK — are whole sectors already).
    fn region_len(&self) -> u64 {
        self.source
            .len
            .next_multiple_of(self.info.sector)
            .min(self.info.size - self.source.offset)
    }

    /// `json:{"driver":<fmt>,"file":{"driver":"raw","offset":…,"size":…,"file":{…}}}`.
    ///
    /// `"backing": null` keeps qcow2 and vmdk from opening any backing file even if the
    /// inspection missed one.
    fn json_filename(&self) -> String {
        let protocol = if self.info.is_block {
            "host_device"
        } else {
            "file"
        };
        let mut spec = json!({
            "driver": self.driver,
            "file": {
                "driver": "raw",
                "offset": self.source.offset,
                "size": self.region_len(),
                "file": { "driver": protocol, "filename": self.source.device.to_string_lossy() },
            },
        });
        if matches!(self.driver, "qcow2" | "vmdk") {
            spec["backing"] = serde_json::Value::Null;
        }
        format!("json:{spec}")
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> QemuError {
    move |source| QemuError::Io { what, source }
}

/// Asks `qemu-img info` for the virtual size of the spooled image, refusing it when qemu
/// sees a backing or external data file.
pub fn virtual_size_of(
    source: &SpoolSource,
    source_format: &str,
    opts: &ConvertOptions,
) -> Result<u64, QemuError> {
    let spool = Spool::open(source, source_format)?;
    info_virtual_size(&spool, opts)
}

fn info_virtual_size(spool: &Spool, opts: &ConvertOptions) -> Result<u64, QemuError> {
    let args: Vec<OsString> = ["info", "--output=json", "-U", "-f", spool.driver]
        .into_iter()
        .map(OsString::from)
        .chain([OsString::from(spool.json_filename())])
        .collect();
    let out = run::run(opts, "info", &args, None)?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| QemuError::BadInfo(format!("not JSON: {e}")))?;
    if let Some(b) = v.get("backing-filename").and_then(|b| b.as_str()) {
        return Err(QemuError::Unsafe(format!("a backing file ({b})")));
    }
    if let Some(d) = v
        .pointer("/format-specific/data/data-file")
        .and_then(|d| d.as_str())
    {
        return Err(QemuError::Unsafe(format!("an external data file ({d})")));
    }
    v.get("virtual-size")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| QemuError::BadInfo(format!("no virtual-size in {v}")))
}

/// Converts the spooled image to raw at the start of `target`, then zeroes the spool.
///
/// `source_format` is Ironic's name of the detected format (`qcow2`, `vmdk`, `vhd`, `vhdx`,
/// `vdi`; `raw`/`gpt`/`iso` work too) or a qemu driver name (`vpc`). Before writing, the
/// virtual size `qemu-img info` reports must fit `target` without reaching the spool when the
/// spool lies on `target` (or `target` is a partition of the spool's disk).
///
/// The spool is consumed either way: once it has been found valid, the spool region is
/// zeroed whether the conversion succeeds, fails or is refused, so no copy of the image stays
/// on the disk (on failure the caller wipes the partition table).
pub fn convert(
    source: &SpoolSource,
    source_format: &str,
    target: &Path,
    opts: &ConvertOptions,
) -> Result<(), QemuError> {
    let spool = Spool::open(source, source_format)?;
    let result = convert_spool(&spool, target, opts);
    let zeroed = device::zero_range(
        &source.device,
        &spool.info,
        source.offset,
        spool.region_len(),
    )
    .map_err(io(format!(
        "zeroing the spool on {}",
        source.device.display()
    )));
    let max_rss_kib = result?;
    zeroed?;
    tracing::info!(qemu_img_max_rss_kib = max_rss_kib, "spool zeroed");
    Ok(())
}

/// Checks the sizes, runs `qemu-img convert`, flushes the target; returns qemu-img's peak RSS.
fn convert_spool(spool: &Spool, target: &Path, opts: &ConvertOptions) -> Result<u64, QemuError> {
    let source = spool.source;
    if !target.is_absolute() {
        return Err(QemuError::InvalidArgument(format!(
            "target {} is not an absolute path",
            target.display()
        )));
    }
    let target_info =
        DeviceInfo::of(target).map_err(io(format!("inspecting {}", target.display())))?;
    // Bytes the pipeline wrote through the page cache must be on the device before qemu reads
    // the region with O_DIRECT.
    device::flush(&source.device).map_err(io(format!("flushing {}", source.device.display())))?;

    let virtual_size = info_virtual_size(spool, opts)?;
    if virtual_size > target_info.size {
        return Err(QemuError::TargetTooSmall {
            virtual_size,
            target_size: target_info.size,
        });
    }
    if let Some(start) = spool.info.placement_of(&target_info) {
        let (out_start, out_end) = (start, start.saturating_add(virtual_size));
        let (spool_start, spool_end) = (source.offset, source.offset + spool.region_len());
        if out_start < spool_end && spool_start < out_end {
            return Err(QemuError::Overlap {
                virtual_size,
                spool_offset: source.offset,
            });
        }
    }

    let started = Instant::now();
    tracing::info!(
        format = spool.driver,
        virtual_size,
        spool_offset = source.offset,
        spool_len = source.len,
        target = %target.display(),
        "converting the spooled image with qemu-img"
    );
    let mut args: Vec<OsString> = ["convert", "-U", "-n", "-W", "-S", "0", "-O", "raw"]
        .map(OsString::from)
        .to_vec();
    args.extend(
        [
            "-f",
            spool.driver,
            "-t",
            opts.target_cache.as_str(),
            "-T",
            opts.source_cache.as_str(),
        ]
        .map(OsString::from),
    );
    if opts.progress.is_some() {
        args.push("-p".into());
    }
    args.push(spool.json_filename().into());
    args.push(target.as_os_str().to_owned());
    let finished = run::run(opts, "convert", &args, opts.progress)?;
    device::flush(target).map_err(io(format!("flushing {}", target.display())))?;
    tracing::info!(
        virtual_size,
        elapsed_s = started.elapsed().as_secs_f64(),
        qemu_img_max_rss_kib = finished.max_rss_kib,
        "qemu-img convert finished"
    );
    Ok(finished.max_rss_kib)
}
