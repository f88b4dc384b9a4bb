//! The streaming pipeline: downloader → decompressor → writer, three threads joined by bounded
//! channels of recycled aligned blocks, so network, CPU and disk overlap and memory stays
//! bounded whatever the image size.
//!
//! ```text
//!  HttpSource ─► [block]─q─► sniff ─► decode (gzip/zstd/xz) ─► head_check ─► [block]─q─► Sink
//!  (retries,       depth                                                      depth  (O_DIRECT,
//!   Range resume)                                                                    held head)
//! ```
//! The digest is computed over the bytes as downloaded. Which thread computes it depends on
//! the stream, to balance the CPU work: for a compressed image the downloader hashes (the
//! decompressor is busy decoding); for a raw image the decompressor stage, otherwise idle,
//! hashes while passing blocks through, so hashing overlaps the network copy. Both threads sniff
//! the same first block, so they always agree on who hashes.
//!
//! The checksum is compared once every byte but the held-back first MiB is on the disk; only
//! then is the first MiB written. Any failure wipes the partition-table areas.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;
use std::time::Instant;

use tracing::{info, warn};

use super::buffer::{Block, BlockPool};
use super::channel::{ChannelReader, Msg, is_aborted};
use super::checksum::{ExpectedChecksum, HashAlgo};
use super::decompress::{Compression, decoder, sniff};
use super::error::ImageError;
use super::hash::Hasher;
use super::head::Head;
use super::info::ImageInfo;
use super::options::{DownloadOptions, HeadCheck};
use super::progress::{Progress, Stage};
use super::sink::Sink;
pub use super::sink::Target;
use super::source::{HttpSource, on_own_thread};

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOutcome {
    /// Image bytes received (as served, before decompression).
    pub bytes_downloaded: u64,
    /// Bytes written to the target (after decompression).
    pub bytes_written: u64,
    /// The verified digest (hex).
    pub checksum_hex: String,
    /// The compression found on the wire.
    pub compression: Compression,
}

/// Why a stage stopped.
enum StageError {
    /// A real failure.
    Image(ImageError),
    /// Another stage failed first and closed its end of a channel.
    Cancelled,
}

impl From<ImageError> for StageError {
    fn from(e: ImageError) -> Self {
        StageError::Image(e)
    }
}

type StageResult<T> = Result<T, StageError>;

/// Streams the image into `target`, decompressing by magic, verifying `expected` over the
/// downloaded bytes, with the first MiB held back until verified.
pub fn stream_to_target(
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    target: &Target,
    opts: &DownloadOptions,
    progress: &Progress,
) -> Result<StreamOutcome, ImageError> {
    run(info, expected, target, opts, progress, Stage::Writing)
}

/// The same pipeline, for spooling an image that needs `qemu-img` into a region of the target
/// (`target.offset`, `target.max_len`); progress shows the `spooling` stage.
pub fn download_to_target(
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    target: &Target,
    opts: &DownloadOptions,
    progress: &Progress,
) -> Result<StreamOutcome, ImageError> {
    run(info, expected, target, opts, progress, Stage::Spooling)
}

fn run(
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    target: &Target,
    opts: &DownloadOptions,
    progress: &Progress,
    stage: Stage,
) -> Result<StreamOutcome, ImageError> {
    // One download: its retries are the source's (IPA's three settings), with no restart of
    // the whole download on top.
    on_own_thread(|| {
        progress.set_stage(Stage::Starting);
        run_once(info, expected, target, opts, progress, stage)
    })
}

fn run_once(
    info: &ImageInfo,
    expected: &ExpectedChecksum,
    target: &Target,
    opts: &DownloadOptions,
    progress: &Progress,
    stage: Stage,
) -> Result<StreamOutcome, ImageError> {
    let started = Instant::now();
    let mut source = HttpSource::new(info, &info.urls, opts)?;
    source.open()?;
    let content_length = source.content_length();
    if let Some(n) = content_length {
        progress.set_total(n);
    }
    let url = source.url();
    let block_size = opts.effective_block_size();
    let mut sink = Sink::open(target, block_size, opts.direct_io)?;
    let capacity = sink.capacity();
    progress.set_stage(stage);
    info!(image = %info.id, %url, ?content_length, target = %target.path.display(),
          offset = target.offset, ?capacity, "streaming image");

    let pool = BlockPool::new(block_size);
    let depth = opts.effective_queue_depth();
    let (dl, dc, wr) = {
        let (tx_raw, rx_raw) = sync_channel::<Msg>(depth);
        let (tx_out, rx_out) = sync_channel::<Msg>(depth);
        let pool = &pool;
        let sink = &mut sink;
        let head_check = opts.head_check.as_ref();
        thread::scope(|s| {
            let dl = thread::Builder::new()
                .name("image-download".into())
                .spawn_scoped(s, move || {
                    download_stage(source, expected, pool, tx_raw, progress)
                });
            let algo = expected.algo;
            let dc = thread::Builder::new()
                .name("image-decompress".into())
                .spawn_scoped(s, move || {
                    let sizes = (content_length, capacity);
                    decompress_stage(rx_raw, pool, tx_out, head_check, sizes, algo, &target.path)
                });
            let wr = thread::Builder::new()
                .name("image-write".into())
                .spawn_scoped(s, move || write_stage(sink, rx_out, pool, progress));
            (join(dl), join(dc), join(wr))
        })
    };

    let failure = match (dl, dc, wr) {
        (Ok(d), Ok(c), Ok(w)) => Ok((d, c, w)),
        (d, c, w) => Err(first_error([d.err(), c.err(), w.err()])),
    };
    let result = failure.and_then(|((downloaded, dl_hex), (compression, dc_hex), written)| {
        progress.set_stage(Stage::Verifying);
        sink.finish()?;
        let actual = dl_hex
            .or(dc_hex)
            .ok_or_else(|| ImageError::Internal("no stage computed the digest".into()))?;
        if !actual.eq_ignore_ascii_case(expected.hex.trim()) {
            return Err(ImageError::Checksum {
                algo: expected.algo.name().into(),
                expected: expected.hex.clone(),
                actual,
                url: url.clone(),
            });
        }
        sink.commit()?;
        Ok(StreamOutcome {
            bytes_downloaded: downloaded,
            bytes_written: written,
            checksum_hex: expected.hex.clone(),
            compression,
        })
    });
    match result {
        Ok(outcome) => {
            let secs = started.elapsed().as_secs_f64();
            info!(image = %info.id, bytes_downloaded = outcome.bytes_downloaded,
                  bytes_written = outcome.bytes_written,
                  compression = outcome.compression.name(), direct = sink.is_direct(),
                  seconds = secs,
                  mb_per_s = outcome.bytes_written as f64 / 1e6 / secs.max(1e-9),
                  "image written and verified");
            Ok(outcome)
        }
        Err(e) => {
            warn!(image = %info.id, error = %e, "image write failed");
            if let Err(w) = sink.wipe() {
                warn!(error = %w, "wiping the partition-table areas failed too");
            }
            Err(e)
        }
    }
}

fn join<T>(h: io::Result<thread::ScopedJoinHandle<'_, StageResult<T>>>) -> StageResult<T> {
    match h {
        Err(e) => Err(StageError::Image(ImageError::Internal(format!(
            "cannot start a pipeline thread: {e}"
        )))),
        Ok(h) => h.join().unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(StageError::Image(ImageError::Internal(format!(
                "a pipeline thread panicked: {what}"
            ))))
        }),
    }
}

/// The root cause: the first real error in stage order (a downstream stage only sees its
/// upstream's failure as a cancellation, and vice versa).
fn first_error(errs: [Option<StageError>; 3]) -> ImageError {
    errs.into_iter()
        .flatten()
        .find_map(|e| match e {
            StageError::Image(e) => Some(e),
            StageError::Cancelled => None,
        })
        .unwrap_or_else(|| ImageError::Internal("the pipeline stopped without an error".into()))
}

/// Reads into `block` until it is full or the stream ends; returns whether it ended.
fn fill(r: &mut impl Read, block: &mut Block, mut on_read: impl FnMut(usize)) -> io::Result<bool> {
    // Bounded: each turn fills bytes or ends.
    while !block.is_full() {
        match r.read(block.spare()) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                block.advance(n);
                on_read(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn send(tx: &SyncSender<Msg>, m: Msg) -> StageResult<()> {
    tx.send(m).map_err(|_| StageError::Cancelled)
}

/// Downloads into blocks; hashes them when the stream is compressed. Returns (bytes, digest if
/// computed here).
fn download_stage(
    mut source: HttpSource,
    expected: &ExpectedChecksum,
    pool: &BlockPool,
    tx: SyncSender<Msg>,
    progress: &Progress,
) -> StageResult<(u64, Option<String>)> {
    let url = source.url();
    let mut hasher: Option<Hasher> = None;
    let mut total = 0u64;
    // Bounded by the stream length (the source's retries are bounded).
    loop {
        let mut block = pool.get();
        let ended = fill(&mut source, &mut block, |n| {
            progress.add_downloaded(n as u64)
        })
        .map_err(|e| {
            ImageError::from_io(e, |e| ImageError::Download {
                url: url.clone(),
                reason: e.to_string(),
                bytes: total,
            })
        })?;
        if total == 0 && !block.is_empty() && sniff(block.data()) != Compression::None {
            hasher = Some(Hasher::new(expected.algo));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(block.data());
        }
        total += block.len() as u64;
        if block.is_empty() {
            pool.put(block);
        } else {
            send(&tx, Msg::Data(block))?;
        }
        if ended {
            send(&tx, Msg::End)?;
            return Ok((total, hasher.map(Hasher::finish_hex)));
        }
    }
}

/// Sniffs the compression, runs the caller's head check, decodes, or passes raw blocks through
/// while hashing them. Returns the compression and the digest if computed here.
fn decompress_stage(
    rx: Receiver<Msg>,
    pool: &BlockPool,
    tx: SyncSender<Msg>,
    head_check: Option<&HeadCheck>,
    (content_length, capacity): (Option<u64>, Option<u64>),
    algo: HashAlgo,
    target: &std::path::Path,
) -> StageResult<(Compression, Option<String>)> {
    let first = match rx.recv() {
        Ok(Msg::Data(b)) => b,
        Ok(Msg::End) => {
            return Err(ImageError::InvalidImage("the image is empty (0 bytes)".into()).into());
        }
        Err(_) => return Err(StageError::Cancelled),
    };
    let compression = sniff(first.data());
    info!(
        compression = compression.name(),
        "image compression detected"
    );
    // The head is the whole image when the stream ended within the first block (a block
    // is passed on short only at the end of the stream).
    let check = |bytes: &[u8], whole_image: bool| {
        head_check.map_or(Ok(()), |f| f(&Head { bytes, whole_image }))
    };

    if compression == Compression::None {
        if let (Some(len), Some(cap)) = (content_length, capacity)
            && len > cap
        {
            return Err(ImageError::TooLarge {
                size: len,
                capacity: cap,
                target: target.display().to_string(),
            }
            .into());
        }
        check(first.data(), !first.is_full())?;
        let mut hasher = Hasher::new(algo);
        hasher.update(first.data());
        send(&tx, Msg::Data(first))?;
        // Bounded by the stream length.
        loop {
            match rx.recv() {
                Ok(Msg::Data(b)) => {
                    hasher.update(b.data());
                    send(&tx, Msg::Data(b))?;
                }
                Ok(Msg::End) => {
                    send(&tx, Msg::End)?;
                    return Ok((compression, Some(hasher.finish_hex())));
                }
                Err(_) => return Err(StageError::Cancelled),
            }
        }
    }

    let mut input = ChannelReader::new(&rx, pool, Some(first));
    let corrupt = |e: io::Error, produced: u64| -> StageError {
        if is_aborted(&e) {
            StageError::Cancelled
        } else {
            StageError::Image(ImageError::InvalidImage(format!(
                "the {} stream is corrupt after {produced} decompressed bytes: {e}",
                compression.name()
            )))
        }
    };
    let mut produced = 0u64;
    {
        let mut dec = decoder(compression, &mut input).map_err(|e| corrupt(e, 0))?;
        let mut first_out = true;
        // Bounded by the stream length.
        loop {
            let mut out = pool.get();
            let ended = fill(&mut dec, &mut out, |_| {}).map_err(|e| corrupt(e, produced))?;
            produced += out.len() as u64;
            if first_out {
                first_out = false;
                if out.is_empty() {
                    return Err(ImageError::InvalidImage(format!(
                        "the {} stream decompresses to nothing",
                        compression.name()
                    ))
                    .into());
                }
                check(out.data(), ended)?;
            }
            if out.is_empty() {
                pool.put(out);
            } else {
                send(&tx, Msg::Data(out))?;
            }
            if ended {
                break;
            }
        }
    }
    // Drain what follows the compressed stream so the downloader can finish (it is hashed).
    let mut trailing = 0u64;
    loop {
        use std::io::BufRead;
        let n = input.fill_buf().map_err(|e| corrupt(e, produced))?.len();
        if n == 0 {
            break;
        }
        input.consume(n);
        trailing += n as u64;
    }
    if trailing > 0 {
        warn!(
            bytes = trailing,
            "ignored data after the end of the compressed stream"
        );
    }
    send(&tx, Msg::End)?;
    Ok((compression, None))
}

/// Writes blocks to the sink; returns the bytes accepted.
fn write_stage(
    sink: &mut Sink,
    rx: Receiver<Msg>,
    pool: &BlockPool,
    progress: &Progress,
) -> StageResult<u64> {
    // Bounded by the stream length.
    loop {
        match rx.recv() {
            Ok(Msg::Data(b)) => {
                sink.write(b.data())?;
                progress.add_written(b.len() as u64);
                pool.put(b);
            }
            Ok(Msg::End) => return Ok(sink.bytes_accepted()),
            Err(_) => return Err(StageError::Cancelled),
        }
    }
}
