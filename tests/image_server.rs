//! A tiny HTTP/1.1 file server on 127.0.0.1 for the deploy tests: serves files from a
//! directory with `Range` support, counts the body bytes it sends, and can misbehave on demand.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server misbehaves for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection after this many body bytes, once (the next request is served).
    DropOnceAfter(u64),
    /// Announce the full length but close after this many bytes, every time.
    AlwaysTruncateAt(u64),
    /// Send the body at about this many bytes per second (so that a test can act while the
    /// client is still writing the image).
    Throttle {
        /// Body bytes sent per second.
        bytes_per_sec: u64,
    },
    /// Answer `200` with `Transfer-Encoding: chunked` and no `Content-Length` (the size is
    /// unknown until the end), ignoring `Range`.
    Chunked,
}

struct Shared {
    dir: PathBuf,
    served: AtomicU64,
    requests: Mutex<Vec<String>>,
    faults: Mutex<HashMap<String, Fault>>,
    stop: AtomicBool,
}

/// A running server; stops when dropped.
pub struct ImageServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
}

impl ImageServer {
    /// Serves the files of `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<ImageServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            served: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        crate::spawn_accept_loop(
            listener,
            shared.clone(),
            |s| &s.stop,
            |s, c| {
                let _ = handle(s, c);
            },
        );
        Ok(ImageServer { url, shared })
    }

    /// Makes `name` misbehave.
    pub fn set_fault(&self, name: &str, fault: Fault) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.insert(name.to_string(), fault);
        }
    }

    /// Makes `name` behave again.
    pub fn clear_fault(&self, name: &str) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.remove(name);
        }
    }

    /// Body bytes sent so far (all files).
    pub fn bytes_served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Request lines with their `Range` header, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn handle(s: &Shared, stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut range: Option<(u64, Option<u64>)> = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.trim().eq_ignore_ascii_case("range")
                && let Some(spec) = v.trim().strip_prefix("bytes=")
                && let Some((a, b)) = spec.split_once('-')
            {
                range = a.parse().ok().map(|a| (a, b.trim().parse().ok()));
            }
        }
        if let Ok(mut r) = s.requests.lock() {
            r.push(format!("{method} {path} range={range:?}"));
        }
        let name = path.trim_start_matches('/').to_string();
        let file = s.dir.join(&name);
        if name.contains("..") || !file.is_file() {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")?;
            continue;
        }
        let fault = s.faults.lock().ok().and_then(|f| f.get(&name).copied());
        let mut f = std::fs::File::open(&file)?;
        let len = f.metadata()?.len();
        if fault == Some(Fault::Chunked) {
            out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            if method != "HEAD" {
                send_chunked(s, &mut f, &mut out)?;
            }
            continue;
        }
        let (start, end) = match range {
            Some((a, b)) if a < len => (a, b.map_or(len - 1, |b| b.min(len - 1))),
            Some(_) => {
                write!(
                    out,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
            None => (0, len.saturating_sub(1)),
        };
        let body_len = if len == 0 { 0 } else { end - start + 1 };
        if range.is_some() {
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{len}\r\nContent-Length: {body_len}\r\nAccept-Ranges: bytes\r\n\r\n"
            )?;
        } else {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\nAccept-Ranges: bytes\r\n\r\n"
            )?;
        }
        if method == "HEAD" {
            continue;
        }
        let (limit, rate) = match fault {
            Some(Fault::DropOnceAfter(n)) => {
                if let Ok(mut f) = s.faults.lock() {
                    f.remove(&name);
                }
                (Some(n), None)
            }
            Some(Fault::AlwaysTruncateAt(n)) => (Some(n.saturating_sub(start)), None),
            Some(Fault::Throttle { bytes_per_sec }) => (None, Some(bytes_per_sec.max(1))),
            Some(Fault::Chunked) | None => (None, None),
        };
        f.seek(SeekFrom::Start(start))?;
        let mut remaining = limit.map_or(body_len, |l| l.min(body_len));
        // Throttled: a tenth of the rate every 100 ms.
        let piece = rate.map_or(256 * 1024, |r| (r / 10).clamp(512, 256 * 1024));
        let mut buf = vec![0u8; usize::try_from(piece).unwrap_or(256 * 1024)];
        // Bounded by the file length; a stopped server ends throttled bodies early.
        while remaining > 0 {
            if rate.is_some() {
                if s.stop.load(Ordering::Relaxed) {
                    let _ = out.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let want = usize::try_from(remaining.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            s.served.fetch_add(n as u64, Ordering::Relaxed);
            remaining -= n as u64;
        }
        if limit.is_some_and(|l| l < body_len) {
            // Simulate a dropped connection.
            let _ = out.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
    }
}

/// Sends the rest of `f` as a chunked body, ending with the zero-length chunk.
fn send_chunked(s: &Shared, f: &mut std::fs::File, out: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    // Bounded by the file length.
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        write!(out, "{n:x}\r\n")?;
        out.write_all(&buf[..n])?;
        out.write_all(b"\r\n")?;
        s.served.fetch_add(n as u64, Ordering::Relaxed);
    }
    out.write_all(b"0\r\n\r\n")
}
