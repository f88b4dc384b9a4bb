//! The spool path end to end on loop devices, with images made by the real `qemu-img`.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::image::format;
use crate::testutil::LoopDevice;

const MIB: u64 = 1 << 20;

fn opts<'a>() -> ConvertOptions<'a> {
    ConvertOptions {
        qemu_img: test_qemu_img(),
        ..ConvertOptions::default()
    }
}

/// A small deterministic generator (xorshift64*), so reference images need no RNG crate.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A raw reference disk image of `size` bytes: a protective MBR and a GPT header signature,
/// then 1 MiB blocks that alternate random data, zeros (unallocated in the qcow2) and blocks
/// stamped with their own index.
fn make_reference(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    let f = File::create(path)?;
    let mut noise = Noise(seed | 1);
    let mut block = vec![0u8; MIB as usize];
    for i in 0..size / MIB {
        block.fill(0);
        match i % 3 {
            0 => noise.fill(&mut block),
            1 => {}
            _ => {
                for (j, chunk) in block.chunks_mut(512).enumerate() {
                    chunk[..16].copy_from_slice(&((i as u128) << 64 | j as u128).to_le_bytes());
                }
            }
        }
        if i == 0 {
            block[446 + 4] = 0xEE;
            block[510] = 0x55;
            block[511] = 0xAA;
            block[512..520].copy_from_slice(b"EFI PART");
        }
        f.write_all_at(&block, i * MIB)?;
    }
    f.set_len(size)?;
    Ok(())
}

fn qemu_img(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(test_qemu_img()).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn to_format(reference: &Path, fmt: &str, out: &Path) -> anyhow::Result<()> {
    let (fmt, subformat) = fmt.split_once(':').unwrap_or((fmt, ""));
    let (reference, out) = (reference.to_string_lossy(), out.to_string_lossy());
    let mut args = vec!["convert", "-q", "-f", "raw", "-O", fmt];
    let option = format!("subformat={subformat}");
    if !subformat.is_empty() {
        args.extend(["-o", &option]);
    }
    args.extend([&*reference, &*out]);
    qemu_img(&args)
}

/// Copies `file` to byte `offset` of `device` (standing in for the pipeline's spool writer).
fn spool(file: &Path, device: &Path, offset: u64) -> anyhow::Result<u64> {
    let src = File::open(file)?;
    let dst = OpenOptions::new().write(true).open(device)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut at = 0u64;
    loop {
        let n = src.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], offset + at)?;
        at += n as u64;
    }
    Ok(at)
}

/// Fills `[0, len)` of `device` with 0xA5 ("old data" the conversion must overwrite).
fn scribble(device: &Path, len: u64) -> anyhow::Result<()> {
    let dst = OpenOptions::new().write(true).open(device)?;
    let buf = vec![0xA5u8; MIB as usize];
    for i in 0..len / MIB {
        dst.write_all_at(&buf, i * MIB)?;
    }
    dst.sync_all()?;
    Ok(())
}

/// Compares `len` bytes of `a` at `a_off` with `b` from its start, chunk by chunk.
fn same_bytes(a: &Path, a_off: u64, b: &Path, len: u64) -> anyhow::Result<bool> {
    let (fa, fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut at = 0;
    while at < len {
        let n = (len - at).min(MIB) as usize;
        fa.read_exact_at(&mut ba[..n], a_off + at)?;
        fb.read_exact_at(&mut bb[..n], at)?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

fn all_zero(device: &Path, offset: u64, len: u64) -> anyhow::Result<bool> {
    let f = File::open(device)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(MIB) as usize;
        f.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Spools `image` onto the tail of `lo`, converts it, and checks the result against
/// `reference`. Returns the progress values reported.
fn spool_and_convert(lo: &LoopDevice, image: &Path, reference: &Path) -> anyhow::Result<Vec<f64>> {
    let detected = format::inspect_file(image)?;
    let file_len = std::fs::metadata(image)?.len();
    let disk = lo.size()?;
    let plan = plan_spool(disk, file_len, detected.virtual_size, MIB)?;
    let vsize = std::fs::metadata(reference)?.len();
    scribble(&lo.path, vsize + MIB)?;
    spool(image, &lo.path, plan.offset)?;
    // The pipeline inspects the spooled bytes on the disk itself.
    let on_disk = format::inspect_region(&File::open(&lo.path)?, plan.offset, file_len)?;
    assert_eq!(on_disk, detected, "{}", image.display());

    let seen = RefCell::new(Vec::new());
    let report = |p: f64| seen.borrow_mut().push(p);
    let opts = ConvertOptions {
        progress: Some(&report),
        ..opts()
    };
    let source = plan.source(&lo.path);
    // qemu's view agrees with the inspector's: a VHD's size is rounded up to whole CHS
    // cylinders (so it may exceed the reference a little), and `qemu-img info` counts a fixed
    // VHD's footer while convert writes the footer's size.
    let qemu_vsize = virtual_size_of(&source, detected.name, &opts)?;
    let written = detected.virtual_size.unwrap_or(qemu_vsize);
    let footer = if detected.name == "vhd" && qemu_vsize == written + 512 {
        512
    } else {
        0
    };
    assert_eq!(qemu_vsize, written + footer, "{}", image.display());
    assert!(
        written >= vsize && written - vsize < MIB,
        "{}: {written}",
        image.display()
    );
    convert(&source, detected.name, &lo.path, &opts)?;
    anyhow::ensure!(
        all_zero(&lo.path, vsize, written - vsize)?,
        "{}: padding not zero",
        image.display()
    );

    anyhow::ensure!(
        same_bytes(&lo.path, 0, reference, vsize)?,
        "{}: converted bytes differ",
        image.display()
    );
    anyhow::ensure!(
        all_zero(&lo.path, plan.offset, disk - plan.offset)?,
        "{}: spool not zeroed",
        image.display()
    );
    Ok(seen.into_inner())
}

#[test]
fn every_format_spooled_on_the_tail_lands_byte_identical() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let reference = dir.path().join("ref.raw");
    make_reference(&reference, 64 * MIB, 7)?;
    let lo = LoopDevice::create(&dir.path().join("disk"), 256 * MIB)?;
    for (fmt, file) in [
        ("qcow2", "a.qcow2"),
        ("vmdk", "a.vmdk"),
        ("vpc", "a.vhd"),
        ("vpc:fixed", "f.vhd"),
        ("vhdx", "a.vhdx"),
        ("vdi", "a.vdi"),
    ] {
        let image = dir.path().join(file);
        to_format(&reference, fmt, &image)?;
        let progress = spool_and_convert(&lo, &image, &reference)?;
        assert_eq!(
            progress.last().copied(),
            Some(100.0),
            "{fmt}: progress {progress:?}"
        );
        assert!(
            progress.windows(2).all(|w| w[0] <= w[1]),
            "{fmt}: progress {progress:?}"
        );
    }
    // A compressed qcow2 and a streamOptimized VMDK too.
    let compressed = dir.path().join("c.qcow2");
    qemu_img(&[
        "convert",
        "-q",
        "-c",
        "-f",
        "raw",
        "-O",
        "qcow2",
        &reference.to_string_lossy(),
        &compressed.to_string_lossy(),
    ])?;
    spool_and_convert(&lo, &compressed, &reference)?;
    let stream = dir.path().join("s.vmdk");
    qemu_img(&[
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        &reference.to_string_lossy(),
        &stream.to_string_lossy(),
    ])?;
    spool_and_convert(&lo, &stream, &reference)?;
    Ok(())
}

#[test]
fn an_image_that_leaves_no_room_is_refused_before_writing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lo = LoopDevice::create(&dir.path().join("disk"), 64 * MIB)?;
    // 60 MiB virtual, 8 MiB of data: 60 + 8 > 64.
    let reference = dir.path().join("ref.raw");
    make_reference(&reference, 60 * MIB, 3)?;
    let image = dir.path().join("big.qcow2");
    to_format(&reference, "qcow2", &image)?;
    let detected = format::inspect_file(&image)?;
    let file_len = std::fs::metadata(&image)?.len();
    let err = plan_spool(64 * MIB, file_len, detected.virtual_size, MIB)
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.starts_with("disk too small to spool and convert")),
        "{err:?}"
    );

    // A spool placed inside the output range anyway is refused by convert itself, before
    // qemu-img writes anything.
    scribble(&lo.path, MIB)?;
    let offset = 16 * MIB;
    spool(&image, &lo.path, offset)?;
    let source = SpoolSource {
        device: lo.path.clone(),
        offset,
        len: file_len,
    };
    let err = convert(&source, "qcow2", &lo.path, &opts()).err();
    assert!(
        matches!(err, Some(QemuError::Overlap { virtual_size, spool_offset }) if virtual_size == 60 * MIB && spool_offset == offset),
        "{err:?}"
    );
    let first = File::open(&lo.path)?;
    let mut byte = [0u8; 1];
    first.read_exact_at(&mut byte, 0)?;
    assert_eq!(byte[0], 0xA5, "the disk start was written");
    assert!(
        all_zero(&lo.path, offset, file_len)?,
        "the refused spool was not zeroed"
    );
    Ok(())
}

#[test]
fn a_corrupt_qcow2_fails_with_qemu_img_stderr() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let reference = dir.path().join("ref.raw");
    make_reference(&reference, 16 * MIB, 5)?;
    let image = dir.path().join("bad.qcow2");
    to_format(&reference, "qcow2", &image)?;
    // Make the first L2 table pointer unaligned (qemu flags the image corrupt when it reads it).
    let f = OpenOptions::new().read(true).write(true).open(&image)?;
    let mut l1 = [0u8; 8];
    f.read_exact_at(&mut l1, 40)?;
    f.write_all_at(
        &(1u64 << 63 | 0x12345).to_be_bytes(),
        u64::from_be_bytes(l1),
    )?;
    drop(f);
    let lo = LoopDevice::create(&dir.path().join("disk"), 64 * MIB)?;
    let len = std::fs::metadata(&image)?.len();
    let plan = plan_spool(64 * MIB, len, Some(16 * MIB), MIB)?;
    spool(&image, &lo.path, plan.offset)?;
    let err = convert(&plan.source(&lo.path), "qcow2", &lo.path, &opts()).err();
    match &err {
        Some(
            e @ QemuError::Failed {
                action: "convert",
                stderr,
                ..
            },
        ) => {
            assert!(
                stderr.contains("L2 table offset") && stderr.contains("qemu-img:"),
                "{stderr}"
            );
            assert!(
                e.to_string()
                    .starts_with("qemu-img convert failed (exit code 1): "),
                "{e}"
            );
        }
        other => panic!("expected qemu-img's failure, got {other:?}"),
    }
    assert!(all_zero(&lo.path, plan.offset, len)?);
    Ok(())
}

#[test]
fn qemu_img_info_on_a_spool_in_a_regular_file_refuses_backing_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        &d.join("base.qcow2").to_string_lossy(),
        "16M",
    ])?;
    let overlay = d.join("overlay.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        &overlay.to_string_lossy(),
    ])?;
    // A "disk" file with the overlay spooled at 1 MiB (qemu's `file` protocol).
    let disk = d.join("disk");
    File::create(&disk)?.set_len(8 * MIB)?;
    let len = spool(&overlay, &disk, MIB)?;
    let source = SpoolSource {
        device: disk.clone(),
        offset: MIB,
        len,
    };
    let err = virtual_size_of(&source, "qcow2", &opts())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("qemu-img reports a backing file (base.qcow2): refused")
    );
    // A plain qcow2 in the same place is fine.
    let plain = d.join("plain.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        &plain.to_string_lossy(),
        "3M",
    ])?;
    let len = spool(&plain, &disk, MIB)?;
    let source = SpoolSource {
        device: disk,
        offset: MIB,
        len,
    };
    assert_eq!(virtual_size_of(&source, "qcow2", &opts())?, 3 * MIB);
    Ok(())
}

#[test]
fn formats_the_agent_does_not_convert_are_refused() {
    let source = SpoolSource {
        device: PathBuf::from("/nonexistent"),
        offset: 0,
        len: 1,
    };
    assert!(matches!(
        convert(&source, "luks", Path::new("/dev/null"), &opts()),
        Err(QemuError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        convert(&source, "qed", Path::new("/dev/null"), &opts()),
        Err(QemuError::UnsupportedFormat(_))
    ));
}

#[test]
fn partition_targets_are_placed_on_their_disk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lo = LoopDevice::create(&dir.path().join("disk"), 128 * MIB)?;
    // An MBR with one partition from 1 MiB to 33 MiB.
    let mut mbr = [0u8; 512];
    mbr[446 + 4] = 0x83;
    mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&(32 * 2048u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    OpenOptions::new()
        .write(true)
        .open(&lo.path)?
        .write_all_at(&mbr, 0)?;
    lo.rescan()?;
    let part = lo.partition(1);
    anyhow::ensure!(part.exists(), "partx did not create {}", part.display());

    let reference = dir.path().join("root.raw");
    make_reference(&reference, 32 * MIB, 11)?;
    let image = dir.path().join("root.qcow2");
    to_format(&reference, "qcow2", &image)?;
    let len = std::fs::metadata(&image)?.len();
    let plan = plan_spool(128 * MIB, len, Some(33 * MIB), MIB)?;
    spool(&image, &lo.path, plan.offset)?;
    convert(&plan.source(&lo.path), "qcow2", &part, &opts())?;
    assert!(same_bytes(&lo.path, MIB, &reference, 32 * MIB)?);
    assert!(all_zero(&lo.path, plan.offset, len)?);

    // A spool inside the partition's output is refused.
    let offset = 16 * MIB;
    spool(&image, &lo.path, offset)?;
    let source = SpoolSource {
        device: lo.path.clone(),
        offset,
        len,
    };
    assert!(matches!(
        convert(&source, "qcow2", &part, &opts()),
        Err(QemuError::Overlap { .. })
    ));
    Ok(())
}

/// A stand-in `qemu-img` that fails for lack of memory `failures` times, then reports the
/// limits it was run under as the virtual size.
fn fake_qemu_img(dir: &Path, failures: u32, message: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("qemu-img");
    let count = dir.join("count");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat {count} 2>/dev/null || echo 0)\necho $((n + 1)) > {count}\n\
             if [ \"$n\" -lt {failures} ]; then echo 'qemu-img: {message}' >&2; exit 1; fi\n\
             echo \"{{\\\"virtual-size\\\": $(ulimit -v), \\\"arenas\\\": \\\"$MALLOC_ARENA_MAX\\\"}}\"\n",
            count = count.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

fn runs(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_failures_are_retried_under_ipa_limits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let spool_file = dir.path().join("spool");
    std::fs::write(&spool_file, vec![0u8; 4096])?;
    let source = SpoolSource {
        device: spool_file,
        offset: 0,
        len: 4096,
    };
    let fast = |qemu_img: PathBuf, attempts| ConvertOptions {
        qemu_img,
        attempts,
        retry_delay: std::time::Duration::from_millis(10),
        ..ConvertOptions::default()
    };

    let d = tempfile::tempdir()?;
    let fake = fake_qemu_img(d.path(), 2, "Cannot allocate memory")?;
    // RLIMIT_AS 2048 MiB, as `ulimit -v` shows it in KiB.
    assert_eq!(
        virtual_size_of(&source, "qcow2", &fast(fake, 3))?,
        2048 * 1024
    );
    assert_eq!(runs(d.path()), 3);

    let d = tempfile::tempdir()?;
    let fake = fake_qemu_img(d.path(), 5, "Resource temporarily unavailable")?;
    let err = virtual_size_of(&source, "qcow2", &fast(fake, 3))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("qemu-img info failed (exit code 1): qemu-img: Resource temporarily unavailable")
    );
    assert_eq!(runs(d.path()), 3);

    let d = tempfile::tempdir()?;
    let fake = fake_qemu_img(d.path(), 5, "Image is not in qcow2 format")?;
    assert!(virtual_size_of(&source, "qcow2", &fast(fake, 3)).is_err());
    assert_eq!(runs(d.path()), 1, "other failures are not retried");

    let missing = fast(PathBuf::from("/nonexistent/qemu-img"), 3);
    assert!(matches!(
        virtual_size_of(&source, "qcow2", &missing),
        Err(QemuError::Spawn { .. })
    ));
    Ok(())
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn children_max_rss_kib() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

/// Run alone in a child process by `agent_rss_does_not_grow_with_the_image`: converts a
/// 32 MiB and then a 192 MiB qcow2 and prints the process's peak RSS after each.
#[test]
#[ignore = "run by agent_rss_does_not_grow_with_the_image in its own process"]
fn rss_probe() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let lo = LoopDevice::create(&dir.path().join("disk"), 512 * MIB)?;
    for size in [32, 192] {
        let reference = dir.path().join(format!("ref{size}.raw"));
        make_reference(&reference, size * MIB, size)?;
        let image = dir.path().join(format!("img{size}.qcow2"));
        to_format(&reference, "qcow2", &image)?;
        spool_and_convert(&lo, &image, &reference)?;
        std::fs::remove_file(&reference)?;
        println!(
            "RSS_PROBE {size} {} {}",
            vm_hwm_kib(),
            children_max_rss_kib()
        );
    }
    Ok(())
}

#[test]
fn agent_rss_does_not_grow_with_the_image() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args([
            "image::qemu::tests::rss_probe",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("RUST_TEST_THREADS")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "probe failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<u64>> = stdout
        .lines()
        .filter_map(|l| l.split_once("RSS_PROBE ").map(|(_, row)| row))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .collect();
    anyhow::ensure!(
        rows.len() == 2 && rows.iter().all(|r| r.len() == 3),
        "probe output: {stdout}"
    );
    for r in &rows {
        println!(
            "image {} MiB: agent peak RSS {} KiB, qemu-img (children) peak RSS {} KiB",
            r[0], r[1], r[2]
        );
    }
    // Six times the image, the same agent: its peak may move by allocator noise, not by MiBs.
    let growth = rows[1][1].saturating_sub(rows[0][1]);
    assert!(
        growth < 4 * 1024,
        "agent peak RSS grew by {growth} KiB with the image"
    );
    assert!(rows[1][1] < 64 * 1024, "agent peak RSS {} KiB", rows[1][1]);
    Ok(())
}
