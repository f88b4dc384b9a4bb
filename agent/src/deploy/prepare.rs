//! `standby.prepare_image`: put an image on the install disk, whole-disk or partition image,
//! streamed or through `qemu-img`, then the config drive; record the partition UUIDs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hardware_managers::{IpaClass, IpaError, Node};
use tracing::{info, warn};

use super::settings::DeploySettings;
use crate::config::Config;
use crate::devices::{Devices, InstallDeviceError};
use crate::disk::configdrive::{self, ConfigDriveFile};
use crate::disk::layout::{self, LayoutRequest};
use crate::disk::node_info;
use crate::disk::uuids::{self, PartitionUuids};
use crate::disk::{DiskError, MIB, blockdev, table, wipe};
use crate::image::checksum::{ExpectedChecksum, resolve_checksum};
use crate::image::error::ImageError;
use crate::image::format::{DetectedFormat, FormatError};
use crate::image::head::{Head, inspect_allowed, raw_head_check};
use crate::image::info::ImageInfo;
use crate::image::options::DownloadOptions;
use crate::image::pipeline::{self, Target};
use crate::image::qemu::{self, ConvertOptions, QemuError};
use crate::image::source::HttpSource;
use crate::image::{Progress, Stage};
use crate::state::{AgentState, DeployState, ProgressSlot, Shared};

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
    /// IPA's error for this failure.
    pub fn to_ipa_error(&self) -> IpaError {
        let class = match self {
            DeployError::Image(e) => return e.to_ipa_error(),
            DeployError::Hardware(e) => return e.to_ipa_error(),
            DeployError::Format(_) => IpaClass::InvalidImage,
            DeployError::Qemu(_) => IpaClass::ImageWriteError,
            DeployError::Disk(_) => IpaClass::DeploymentError,
            DeployError::Guard(_) => IpaClass::ProtectedDeviceError,
            DeployError::Invalid(_) => IpaClass::InvalidCommandParamsError,
        };
        IpaError::new(class, self.to_string())
    }
}

impl From<InstallDeviceError> for DeployError {
    fn from(e: InstallDeviceError) -> Self {
        match e {
            InstallDeviceError::Hardware(e) => DeployError::Hardware(e),
            InstallDeviceError::Guard(e) => DeployError::Guard(e),
        }
    }
}

/// What `prepare_image` works with besides the image: the devices, the settings, the node and
/// the state it reports into.
#[derive(Debug, Clone, Default)]
pub struct Deployer {
    /// The install device and the disk guard.
    pub devices: Devices,
    /// Download, checksum and format settings.
    pub settings: DeploySettings,
    /// The node cached from lookup or the latest command (root device hints, boot mode).
    pub node: Arc<Shared<Node>>,
    /// Where the running command's progress is published.
    pub progress: Arc<ProgressSlot>,
    /// Where the partition UUIDs are recorded.
    pub state: Arc<DeployState>,
}

impl Deployer {
    /// A deployer on `devices`, with the settings of `config` and the handles of `state`.
    pub fn new(devices: Devices, config: &Config, state: &AgentState) -> Self {
        Deployer {
            devices,
            settings: DeploySettings::new(config, state.lookup.clone())
                .with_shutdown(state.shutdown.clone()),
            node: state.node.clone(),
            progress: state.progress.clone(),
            state: state.deploy.clone(),
        }
    }

    /// The install device chosen by the chain for the cached node, after the disk guard
    /// accepted it.
    ///
    /// # Errors
    /// No device, or a protected one.
    pub fn install_device(&self) -> Result<PathBuf, DeployError> {
        Ok(self.devices.install_device(self.node.get().as_ref())?)
    }

    /// Runs `prepare_image`; returns IPA's result text
    /// (`image (<id>) written to device <dev> root_uuid=<u>[ efi_system_partition_uuid=<e>]`).
    ///
    /// # Errors
    /// Whatever failed; the disk's boot areas are wiped first.
    pub fn prepare_image(
        &self,
        info: &ImageInfo,
        configdrive: Option<&str>,
    ) -> Result<String, DeployError> {
        prepare_image(self, info, configdrive)
    }
}

fn prepare_image(
    d: &Deployer,
    info: &ImageInfo,
    configdrive: Option<&str>,
) -> Result<String, DeployError> {
    // Parameters first: nothing is fetched or written for a deploy that cannot succeed.
    node_info::disk_label(
        &d.node.get().unwrap_or_default(),
        info.disk_label.as_deref(),
    )
    .map_err(DeployError::Invalid)?;
    let progress = d.progress.start();
    let _reporter = ProgressLog::start(progress.clone(), info.id.clone());
    let device = d.install_device()?;
    info!(image = %info.id, device = %device.display(), "preparing image");
    let opts = d.settings.download_options();
    let expected = resolve_checksum(info, d.settings.md5_enabled(), &opts)?;
    let tmp = std::env::temp_dir();
    let stop = Some(d.settings.shutdown().subscribe());
    let drive = match configdrive.filter(|c| !c.trim().is_empty()) {
        Some(c) => Some(super::configdrive::prepare(
            c,
            &opts.tls_settings(),
            &tmp,
            stop,
        )?),
        None => None,
    };
    let permitted = d.settings.permitted_formats();
    let job = WriteJob {
        info,
        expected: &expected,
        opts: &opts,
        progress: &progress,
        permitted: &permitted,
    };
    let outcome = if info.is_partition_image() {
        job.partition_image(&d.node.get().unwrap_or_default(), &device, drive.as_ref())
    } else {
        job.whole_disk_image(&device, drive.as_ref())
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
    d.state.record(uuids);
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

/// One image write: what every stage of `prepare_image` reads.
#[derive(Clone, Copy)]
struct WriteJob<'a> {
    info: &'a ImageInfo,
    expected: &'a ExpectedChecksum,
    opts: &'a DownloadOptions,
    progress: &'a Progress,
    /// The image formats the conductor permits.
    permitted: &'a [String],
}

impl WriteJob<'_> {
    /// Writes the image into `target` (whole disk, or the root partition): streamed when the
    /// bytes are the disk, else spooled at the end of `disk` and converted with `qemu-img`.
    fn write_image_to(
        &self,
        target: &Path,
        disk: &Path,
        spool_floor: u64,
    ) -> Result<u64, DeployError> {
        let WriteJob {
            info,
            expected,
            opts,
            progress,
            permitted,
        } = *self;
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
                "the image server did not send the image's size (Content-Length), which \
                 converting the image needs"
                    .into(),
            )
        })?;
        drop(src);
        let disk_size = blockdev::size_bytes(disk)?;
        let plan = qemu::plan_spool(disk_size, image_len, None, SPOOL_ALIGN)?;
        if plan.offset < spool_floor {
            return Err(DeployError::Invalid(format!(
                "the disk has no room above its partitions for the {image_len}-byte image \
                 to be converted"
            )));
        }
        let detected: Arc<Mutex<Option<DetectedFormat>>> = Arc::new(Mutex::new(None));
        let seen = detected.clone();
        let permitted_owned = permitted.to_vec();
        let mut o = opts.clone();
        o.head_check = Some(Arc::new(move |head: &Head<'_>| {
            let d = inspect_allowed(
                head.bytes,
                Some(image_len),
                declared.as_deref(),
                &permitted_owned,
            )?;
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
                    "the image's virtual size ({v} bytes) does not fit: {target_room} bytes \
                 available (the end of the disk holds the downloaded image during conversion)"
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
        &self,
        device: &Path,
        drive: Option<&ConfigDriveFile>,
    ) -> Result<PartitionUuids, DeployError> {
        let progress = self.progress;
        self.write_image_to(device, device, 0)?;
        progress.set_stage(Stage::Verifying);
        table::finish_whole_disk_image(device)?;
        if let Some(d) = drive {
            progress.set_stage(Stage::Finishing);
            let part = configdrive::ensure_configdrive_partition(device, d.path())?;
            info!(partition = %part.display(), "config drive written");
        }
        Ok(PartitionUuids::WholeDisk(uuids::whole_disk_uuids(device)?))
    }

    fn partition_image(
        &self,
        node: &Node,
        device: &Path,
        drive: Option<&ConfigDriveFile>,
    ) -> Result<PartitionUuids, DeployError> {
        let (info, progress) = (self.info, self.progress);
        let ramdisk_uefi = Path::new("/sys/firmware/efi").exists();
        let boot_mode = node_info::boot_mode(node, ramdisk_uefi);
        let root_mb = info.root_mb.filter(|r| *r > 0).ok_or_else(|| {
            DeployError::Invalid("partition images need root_mb (or root_gb) > 0".into())
        })?;
        let req = LayoutRequest {
            boot_mode,
            disk_label: node_info::disk_label(node, info.disk_label.as_deref())
                .map_err(DeployError::Invalid)?,
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
        self.write_image_to(&map.root, device, root_end)?;
        if let (Some(d), Some(part)) = (drive, &map.configdrive) {
            configdrive::write_configdrive(part, d.path())?;
        }
        progress.set_stage(Stage::Verifying);
        Ok(PartitionUuids::PartitionImage(
            uuids::partition_image_uuids(device, &map)?,
        ))
    }
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
