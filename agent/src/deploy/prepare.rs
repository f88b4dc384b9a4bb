//! `standby.prepare_image`: put an image on the install disk, whole-disk or partition image,
//! streamed or through `qemu-img`, then the config drive; record the partition UUIDs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use super::node_info;
use crate::commands::CommandError;
use crate::context::AgentContext;
use crate::disk::configdrive::{self, ConfigDriveFile};
use crate::disk::layout::{self, LayoutRequest};
use crate::disk::uuids::{self, PartitionUuids};
use crate::disk::{DiskError, MIB, blockdev, table, wipe};
use crate::guard::DiskGuard;
use crate::image::checksum::{ExpectedChecksum, resolve_checksum};
use crate::image::error::ImageError;
use crate::image::format::{self, DetectedFormat, FormatError};
use crate::image::info::ImageInfo;
use crate::image::options::DownloadOptions;
use crate::image::pipeline::{self, Target};
use crate::image::qemu::{self, ConvertOptions, QemuError};
use crate::image::source::HttpSource;
use crate::image::{Progress, Stage};

/// Formats the agent accepts when the conductor did not say (IPA's default).
const DEFAULT_PERMITTED: &[&str] = &["raw", "gpt", "qcow2"];
/// Spool alignment on the target disk.
const SPOOL_ALIGN: u64 = MIB;

/// Why a deploy failed, mapped to IPA's error classes.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Download, checksum or write failure of the pipeline.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The image's real format is not acceptable.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// `qemu-img` failed.
    #[error(transparent)]
    Qemu(#[from] QemuError),
    /// Partitioning, probing or the config drive failed.
    #[error(transparent)]
    Disk(#[from] DiskError),
    /// Refused by the disk guard.
    #[error(transparent)]
    Guard(#[from] hardware_managers::guard::GuardError),
    /// The hardware chain failed (e.g. no install device).
    #[error(transparent)]
    Hardware(#[from] hardware_managers::HardwareError),
    /// Bad parameters.
    #[error("{0}")]
    Invalid(String),
}

impl DeployError {
    /// The serialised agent error.
    pub fn to_command_error(&self) -> CommandError {
        match self {
            DeployError::Image(e) => e.to_command_error(),
            DeployError::Format(e) => {
                CommandError::new("InvalidImage", 500, "Invalid image", e.to_string())
            }
            DeployError::Qemu(e) => CommandError::new(
                "ImageWriteError",
                500,
                "Error writing image to device",
                e.to_string(),
            ),
            DeployError::Disk(e) => {
                CommandError::new("DeploymentError", 500, "Deploy step failed", e.to_string())
            }
            DeployError::Guard(e) => CommandError::new(
                "ProtectedDeviceError",
                500,
                "Refusing to write to a protected device",
                e.to_string(),
            ),
            DeployError::Hardware(e) => CommandError::from_hardware(e),
            DeployError::Invalid(m) => CommandError::invalid_params(m.clone()),
        }
    }
}

/// What the last successful `prepare_image` produced.
#[derive(Debug, Default)]
pub struct DeployState {
    uuids: Mutex<Option<PartitionUuids>>,
    image_id: Mutex<Option<String>>,
}

impl DeployState {
    /// `get_partition_uuids`: `{}` before any deploy.
    pub fn partition_uuids(&self) -> PartitionUuids {
        self.uuids
            .lock()
            .ok()
            .and_then(|u| u.clone())
            .unwrap_or_default()
    }

    fn record(&self, id: &str, uuids: PartitionUuids) {
        if let Ok(mut u) = self.uuids.lock() {
            *u = Some(uuids);
        }
        if let Ok(mut i) = self.image_id.lock() {
            *i = Some(id.to_string());
        }
    }
}

/// Download settings from the agent configuration and the lookup `config`.
pub fn download_options(ctx: &AgentContext) -> DownloadOptions {
    let lookup = ctx.lookup_config();
    let k = &ctx.config.kernel;
    let secs = |key: &str| k.get(key).and_then(|v| v.parse::<u64>().ok());
    let mut o = DownloadOptions {
        insecure: ctx.config.insecure,
        cafile: ctx.config.cafile.clone(),
        tls_min_version: lookup
            .as_ref()
            .and_then(|c| c.tls_min_version.clone())
            .unwrap_or_else(|| "1.2".into()),
        shutdown: Some(ctx.shutdown.clone()),
        ..DownloadOptions::default()
    };
    if let Some(t) = secs("ipa-image-download-connection-timeout") {
        o.connection_timeout = std::time::Duration::from_secs(t.max(1));
    }
    if let Some(r) = secs("ipa-image-download-connection-retries") {
        o.retries = u32::try_from(r).unwrap_or(u32::MAX);
    }
    if let Some(i) = secs("ipa-image-download-connection-retry-interval") {
        o.retry_interval = std::time::Duration::from_secs(i);
    }
    if let Some(m) = secs("ipa-image-download-max-duration").filter(|m| *m > 0) {
        o.max_duration = Some(std::time::Duration::from_secs(m));
    }
    o
}

/// Whether MD5 checksums are allowed (lookup's `agent_md5_checksum_enable`; off by default,
/// as in IPA 13).
pub fn md5_enabled(ctx: &AgentContext) -> bool {
    ctx.lookup_config()
        .and_then(|c| c.agent_md5_checksum_enable)
        .unwrap_or(false)
}

fn permitted_formats(ctx: &AgentContext) -> Vec<String> {
    ctx.lookup_config()
        .and_then(|c| c.permitted_image_formats)
        .unwrap_or_else(|| DEFAULT_PERMITTED.iter().map(|s| s.to_string()).collect())
}

/// The install device chosen by the chain, after the disk guard accepted it.
pub fn install_device(ctx: &AgentContext) -> Result<PathBuf, DeployError> {
    let node = ctx.node();
    let dev = ctx.chain.dispatch("get_os_install_device", |m| {
        m.get_os_install_device(node.as_ref())
    })?;
    let dev = PathBuf::from(dev);
    DiskGuard::new(ctx.config.allow_devices.clone(), Path::new("/")).check_writable(&dev)?;
    Ok(dev)
}

/// Runs `prepare_image`; returns IPA's result text
/// (`image (<id>) written to device <dev> root_uuid=<u>[ efi_system_partition_uuid=<e>]`).
pub fn prepare_image(
    ctx: &AgentContext,
    info: &ImageInfo,
    configdrive: Option<&str>,
) -> Result<String, DeployError> {
    let progress = ctx.start_progress();
    let _reporter = ProgressLog::start(progress.clone(), info.id.clone());
    let device = install_device(ctx)?;
    info!(image = %info.id, device = %device.display(), "preparing image");
    let opts = download_options(ctx);
    let expected = resolve_checksum(info, md5_enabled(ctx), &opts)?;
    let tmp = std::env::temp_dir();
    let stop = Some(ctx.shutdown.subscribe());
    let drive = match configdrive.filter(|c| !c.trim().is_empty()) {
        Some(c) => Some(super::configdrive::prepare(
            c,
            &opts.tls_settings(),
            &tmp,
            stop,
        )?),
        None => None,
    };
    let permitted = permitted_formats(ctx);
    let outcome = if info.is_partition_image() {
        partition_image(
            ctx,
            info,
            &expected,
            &opts,
            &progress,
            &device,
            drive.as_ref(),
            &permitted,
        )
    } else {
        whole_disk_image(
            info,
            &expected,
            &opts,
            &progress,
            &device,
            drive.as_ref(),
            &permitted,
        )
    };
    let uuids = match outcome {
        Ok(u) => u,
        Err(e) => {
            // Whatever failed, a half-written disk must never boot.
            if let Err(w) = wipe_boot_areas(&device) {
                warn!(error = %w, "could not wipe the boot areas after a failure");
            }
            return Err(e);
        }
    };
    let text = match &uuids {
        PartitionUuids::PartitionImage(p) => match &p.efi_system_partition_uuid {
            Some(e) => format!("root_uuid={} efi_system_partition_uuid={e}", p.root_uuid),
            None => format!("root_uuid={}", p.root_uuid),
        },
        PartitionUuids::WholeDisk(w) => format!("root_uuid={}", w.root_uuid),
        PartitionUuids::Empty(_) => String::new(),
    };
    ctx.deploy.record(&info.id, uuids);
    let snap = progress.snapshot();
    info!(
        image = %info.id, device = %device.display(), bytes = snap.bytes_written,
        seconds = snap.elapsed_s, "image written"
    );
    Ok(format!(
        "image ({}) written to device {} {text}",
        info.id,
        device.display()
    ))
}

/// Logs the progress of a running deploy every [`ProgressLog::EVERY`] until dropped.
struct ProgressLog {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn start(progress: Arc<Progress>, image: String) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("deploy-progress".into())
            .spawn(move || {
                let tick = std::time::Duration::from_millis(200);
                let mut waited = std::time::Duration::ZERO;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited >= Self::EVERY {
                        waited = std::time::Duration::ZERO;
                        let p = progress.snapshot();
                        info!(
                            image = %image, stage = ?p.stage, bytes_downloaded = p.bytes_downloaded,
                            total_bytes = ?p.total_bytes, bytes_written = p.bytes_written,
                            mb_per_s = p.rate_bytes_per_s / 1e6, elapsed_s = p.elapsed_s,
                            "deploy progress"
                        );
                    }
                }
            })
            .ok();
        ProgressLog { stop, thread }
    }
}

impl Drop for ProgressLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Zeroes the first and last MiB of `device` (MBR boot code, the BIOS-boot gap, both GPTs)
/// and forgets its partitions: the same area the pipeline holds back until verified.
fn wipe_boot_areas(device: &Path) -> Result<(), DiskError> {
    let size = blockdev::size_bytes(device)?;
    let head = MIB.min(size);
    let tail = size.saturating_sub(MIB).max(head);
    blockdev::zero_ranges(device, &[(0, head), (tail, size - tail)])?;
    wipe::wipe_partition_tables(device)
}

/// A head check refusing anything that is not the disk's bytes on the streaming path, and
/// anything outside the permitted formats.
/// The real format of an image from its first bytes, refused when not permitted or not what
/// `disk_format` declares.
fn inspect_allowed(
    head: &[u8],
    total_len: Option<u64>,
    declared: Option<&str>,
    permitted: &[String],
) -> Result<DetectedFormat, ImageError> {
    let detected =
        format::inspect(head, total_len).map_err(|e| ImageError::InvalidImage(e.to_string()))?;
    format::check_allowed(&detected, declared, permitted)
        .map_err(|e| ImageError::InvalidImage(e.to_string()))?;
    Ok(detected)
}

fn raw_head_check(
    declared: Option<String>,
    permitted: Vec<String>,
) -> crate::image::options::HeadCheck {
    Arc::new(move |head: &[u8]| {
        let detected = inspect_allowed(head, None, declared.as_deref(), &permitted)?;
        if !detected.is_raw_bytes() {
            return Err(ImageError::InvalidImage(format!(
                "the image is {} but was to be streamed as raw bytes",
                detected.name
            )));
        }
        Ok(())
    })
}

/// Writes the image into `target` (whole disk, or the root partition): streamed when the
/// bytes are the disk, else spooled at the end of `disk` and converted with `qemu-img`.
#[allow(clippy::too_many_arguments)]
fn write_image_to(
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    opts: &DownloadOptions,
    progress: &Progress,
    target: &Path,
    disk: &Path,
    spool_floor: u64,
    permitted: &[String],
) -> Result<u64, DeployError> {
    let declared = info.disk_format.clone().filter(|d| !d.is_empty());
    if info.streams_raw() {
        let mut o = opts.clone();
        o.head_check = Some(raw_head_check(declared, permitted.to_vec()));
        let t = Target {
            path: target.to_path_buf(),
            offset: 0,
            max_len: None,
        };
        let out = pipeline::stream_to_target(info, expected, &t, &o, progress)?;
        return Ok(out.bytes_written);
    }

    // Spool at the end of the disk, above everything the converted image will occupy.
    let mut src = HttpSource::new(info, &info.urls, opts)?;
    src.open()?;
    let image_len = src.content_length().ok_or_else(|| {
        DeployError::Invalid(
            "the image server sent no Content-Length; cannot size the spool".into(),
        )
    })?;
    drop(src);
    let disk_size = blockdev::size_bytes(disk)?;
    let plan = qemu::plan_spool(disk_size, image_len, None, SPOOL_ALIGN)?;
    if plan.offset < spool_floor {
        return Err(DeployError::Invalid(format!(
            "the disk has no room for a {image_len}-byte spool above its partitions"
        )));
    }
    let detected: Arc<Mutex<Option<DetectedFormat>>> = Arc::new(Mutex::new(None));
    let seen = detected.clone();
    let permitted_owned = permitted.to_vec();
    let mut o = opts.clone();
    o.head_check = Some(Arc::new(move |head: &[u8]| {
        let d = inspect_allowed(head, Some(image_len), declared.as_deref(), &permitted_owned)?;
        if let Ok(mut s) = seen.lock() {
            *s = Some(d);
        }
        Ok(())
    }));
    let t = Target {
        path: disk.to_path_buf(),
        offset: plan.offset,
        max_len: Some(plan.len),
    };
    pipeline::download_to_target(info, expected, &t, &o, progress)?;
    let detected = detected
        .lock()
        .ok()
        .and_then(|d| *d)
        .ok_or_else(|| DeployError::Invalid("the image format was not detected".into()))?;
    let driver = detected.qemu_driver().ok_or_else(|| {
        DeployError::Invalid(format!(
            "{} images cannot be converted by this agent",
            detected.name
        ))
    })?;
    if let Some(v) = detected.virtual_size {
        // The converted image must fit its target and, on the whole disk, stay below the spool.
        let target_room = if target == disk {
            plan.offset
        } else {
            blockdev::size_bytes(target)?
        };
        if v > target_room {
            return Err(DeployError::Invalid(format!(
                "the image's virtual size ({v} bytes) does not fit: {target_room} bytes available below the spool"
            )));
        }
    }
    progress.set_stage(Stage::Converting);
    let total = detected.virtual_size.unwrap_or(0);
    // qemu-img reports percent done: show it as converted bytes written.
    let report = |pct: f64| progress.set_written((total as f64 * pct / 100.0) as u64);
    let copts = ConvertOptions {
        progress: Some(&report),
        ..ConvertOptions::default()
    };
    qemu::convert(&plan.source(disk), driver, target, &copts)?;
    Ok(detected.virtual_size.unwrap_or(image_len))
}

fn whole_disk_image(
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    opts: &DownloadOptions,
    progress: &Progress,
    device: &Path,
    drive: Option<&ConfigDriveFile>,
    permitted: &[String],
) -> Result<PartitionUuids, DeployError> {
    write_image_to(info, expected, opts, progress, device, device, 0, permitted)?;
    progress.set_stage(Stage::Verifying);
    table::finish_whole_disk_image(device)?;
    if let Some(d) = drive {
        progress.set_stage(Stage::Finishing);
        let part = configdrive::ensure_configdrive_partition(device, d.path())?;
        info!(partition = %part.display(), "config drive written");
    }
    Ok(PartitionUuids::WholeDisk(uuids::whole_disk_uuids(device)?))
}

#[allow(clippy::too_many_arguments)]
fn partition_image(
    ctx: &AgentContext,
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    opts: &DownloadOptions,
    progress: &Progress,
    device: &Path,
    drive: Option<&ConfigDriveFile>,
    permitted: &[String],
) -> Result<PartitionUuids, DeployError> {
    let node = ctx.node().unwrap_or_default();
    let ramdisk_uefi = Path::new("/sys/firmware/efi").exists();
    let boot_mode = node_info::boot_mode(&node, ramdisk_uefi);
    let root_mb = info.root_mb.filter(|r| *r > 0).ok_or_else(|| {
        DeployError::Invalid("partition images need root_mb (or root_gb) > 0".into())
    })?;
    let req = LayoutRequest {
        boot_mode,
        disk_label: node_info::disk_label(&node, info.disk_label.as_deref()),
        root_mb,
        swap_mb: info.swap_mb.unwrap_or(0),
        ephemeral_mb: info.ephemeral_mb.unwrap_or(0),
        ephemeral_format: info.ephemeral_format.clone(),
        configdrive_mb: drive.map(|d| d.size_mib()).unwrap_or(0),
        preserve_ephemeral: info.preserve_ephemeral,
        ppc64: std::env::consts::ARCH == "powerpc64",
    };
    progress.set_stage(Stage::Finishing);
    let map = layout::create_partition_image_layout(device, &req)?;
    let root_end = partitions_end(device)?;
    write_image_to(
        info, expected, opts, progress, &map.root, device, root_end, permitted,
    )?;
    if let (Some(d), Some(part)) = (drive, &map.configdrive) {
        configdrive::write_configdrive(part, d.path())?;
    }
    progress.set_stage(Stage::Verifying);
    Ok(PartitionUuids::PartitionImage(
        uuids::partition_image_uuids(device, &map)?,
    ))
}

/// First byte after the last partition of `disk`.
fn partitions_end(disk: &Path) -> Result<u64, DeployError> {
    let end = table::read_table(disk)?
        .map(|t| {
            t.partitions
                .iter()
                .map(|e| e.start + e.size)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    Ok(end)
}
