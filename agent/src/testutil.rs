//! Test support: real loop devices over files the test created, detached on drop, disks
//! laid out as a deployed machine's, and running the tools that check them.
//!
//! Only compiled for tests (and for the workspace's e2e tests via the `test-support` feature).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::disk::blockdev;
use crate::disk::table::{self, PartitionKind, PartitionSpec, PartitionTable, TableKind};

/// A loop device attached to a backing file; detached (with its partitions) when dropped.
#[derive(Debug)]
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: PathBuf,
    /// The backing file.
    pub file: PathBuf,
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl LoopDevice {
    /// Creates a sparse file of `size` bytes at `file` and attaches it.
    pub fn create(file: &Path, size: u64) -> anyhow::Result<LoopDevice> {
        let f =
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
        f.set_len(size)?;
        drop(f);
        Self::attach(file)
    }

    /// Attaches an existing file (the file must be one the test created).
    pub fn attach(file: &Path) -> anyhow::Result<LoopDevice> {
        let dev = run(Command::new("losetup").args(["--find", "--show"]).arg(file))
            .context("attaching a loop device (tests need root and loop support)")?;
        if !dev.starts_with("/dev/loop") {
            bail!("losetup returned `{dev}`, not a loop device");
        }
        Ok(LoopDevice {
            path: PathBuf::from(dev),
            file: file.to_path_buf(),
        })
    }

    /// `/dev/loopNpK`.
    pub fn partition(&self, k: u32) -> PathBuf {
        PathBuf::from(format!("{}p{k}", self.path.display()))
    }

    /// Re-reads the partition table into `/dev/loopNpK` nodes with `partx` (this host's kernel
    /// does not scan loop partitions by itself). Stale nodes are removed first.
    pub fn rescan(&self) -> anyhow::Result<()> {
        let _ = Command::new("partx").arg("-d").arg(&self.path).output();
        let out = Command::new("partx").arg("-a").arg(&self.path).output()?;
        // partx -a fails when there is no partition table; that is not an error here.
        let _ = out;
        Ok(())
    }

    /// Size in bytes of the backing file.
    pub fn size(&self) -> anyhow::Result<u64> {
        Ok(std::fs::metadata(&self.file)?.len())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("partx").arg("-d").arg(&self.path).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
    }
}

/// Runs `tool args… target`, failing on a non-zero exit; returns its stdout.
pub fn run_tool(tool: &str, args: &[&str], target: &Path) -> anyhow::Result<String> {
    let out = Command::new(tool).args(args).arg(target).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{tool} {args:?} {}: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `wipefs --no-act` of `path`: the signatures it would erase (empty when clean).
pub fn wipefs_list(path: &Path) -> anyhow::Result<String> {
    let out = run_tool("wipefs", &["--no-act", "--noheadings"], path)?;
    Ok(out.trim().to_string())
}

/// A loop disk over a new `size`-byte `file` with a `kind` table of `parts` (MiB, kind), the
/// first three formatted ext4 (`root`), vfat (`ESP`) and swap (`swap1`) like a deployed disk.
pub fn busy_disk(
    file: &Path,
    size: u64,
    kind: TableKind,
    parts: &[(u64, PartitionKind)],
) -> anyhow::Result<(LoopDevice, PartitionTable)> {
    let lo = LoopDevice::create(file, size)?;
    let specs: Vec<PartitionSpec> = parts
        .iter()
        .map(|&(size_mib, kind)| PartitionSpec {
            size_mib,
            kind,
            name: String::new(),
            bootable: false,
        })
        .collect();
    let t = table::write_table(&lo.path, kind, &specs)?;
    lo.rescan()?;
    run_tool("mkfs.ext4", &["-q", "-F", "-L", "root"], &lo.partition(1))?;
    run_tool("mkfs.vfat", &["-F", "32", "-n", "ESP"], &lo.partition(2))?;
    run_tool("mkswap", &["-L", "swap1"], &lo.partition(3))?;
    Ok((lo, t))
}

/// Writes an md 1.0 superblock (a RAID member's) at the end of bytes `[start, start + size)`
/// of `dev`.
pub fn md_superblock(dev: &Path, start: u64, size: u64) -> anyhow::Result<()> {
    let at = start + ((((size >> 9) - 16) & !7) << 9);
    let mut sb = vec![0u8; 512];
    sb[0..4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&[0x42; 16]);
    sb[144..152].copy_from_slice(&((at - start) >> 9).to_le_bytes());
    File::options()
        .write(true)
        .open(dev)?
        .write_all_at(&sb, at)?;
    blockdev::flush(dev)?;
    Ok(())
}

/// A server on 127.0.0.1 that answers every request with `head` (status line, headers and
/// any body bytes) and then holds the connection open, silent, for `hold`. Returns its base
/// URL and the count of requests.
pub fn raw_server(
    head: String,
    hold: Duration,
) -> anyhow::Result<(String, std::sync::Arc<std::sync::atomic::AtomicU32>)> {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU32, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", l.local_addr()?);
    let count = std::sync::Arc::new(AtomicU32::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for c in l.incoming().take(64) {
            let Ok(mut c) = c else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let head = head.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = c.read(&mut buf);
                let _ = c.write_all(head.as_bytes());
                std::thread::sleep(hold);
            });
        }
    });
    Ok((url, count))
}

/// Serves fixed answers on 127.0.0.1 until the process ends: `routes` maps a request target
/// (`/path?query`) to `(status, body)`; anything else is a 404. Returns `http://127.0.0.1:PORT`.
pub fn serve_routes<K: Into<String>>(
    routes: impl IntoIterator<Item = (K, (u16, Vec<u8>))>,
) -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    let routes: std::collections::HashMap<String, (u16, Vec<u8>)> =
        routes.into_iter().map(|(k, v)| (k.into(), v)).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let routes = std::sync::Arc::new(routes);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(&conn);
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let target = first.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = routes
                    .get(target)
                    .cloned()
                    .unwrap_or((404, b"not found".to_vec()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_and_detach() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path;
        {
            let lo = LoopDevice::create(&dir.path().join("disk.img"), 8 << 20)?;
            path = lo.path.clone();
            assert!(path.exists());
            let listed = run(Command::new("losetup").arg("-j").arg(&lo.file))?;
            assert!(listed.contains(&path.display().to_string()));
        }
        let listed = run(Command::new("losetup")
            .arg("-j")
            .arg(dir.path().join("disk.img")))?;
        assert!(listed.is_empty(), "loop device still attached: {listed}");
        Ok(())
    }
}
