//! A tiny HTTP/1.1 image server on 127.0.0.1 for the pipeline tests: `Range` support, byte
//! counting, and fault injection (status codes, dropped connections, truncation, stalls, a
//! server that ignores `Range`). One request per connection; every wait is bounded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Faults applied to a route; `times` counts requests from the first.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer every request with this status.
    pub status: Option<u16>,
    /// Answer the first `n` requests with this status.
    pub status_first: Option<(u16, u32)>,
    /// Close the connection after this many body bytes, for the first `n` requests.
    pub drop_after: Option<(u64, u32)>,
    /// Never send bytes at or beyond this offset (while announcing the full length).
    pub truncate_at: Option<u64>,
    /// After this many body bytes, pause, for the first `n` requests.
    pub stall: Option<(u64, Duration, u32)>,
    /// Answer `Range` requests with the whole body (200).
    pub ignore_range: bool,
}

/// What a route served.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests received.
    pub requests: u32,
    /// Body bytes written to sockets.
    pub bytes: u64,
    /// `Range` header of each request.
    pub ranges: Vec<Option<String>>,
    /// `Authorization` header of each request.
    pub auth: Vec<Option<String>>,
}

type Routes = HashMap<String, (Arc<Vec<u8>>, Faults)>;

#[derive(Default)]
struct State {
    routes: Mutex<Routes>,
    stats: Mutex<HashMap<String, Stats>>,
}

/// The running server; stops (and joins its accept thread) on drop.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts on an ephemeral loopback port.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let st = st.clone();
                    std::thread::spawn(move || handle(c, &st));
                }
            }
        });
        Ok(TestServer {
            addr,
            state,
            stop,
            accept: Some(accept),
        })
    }

    /// Serves `body` at `path` with `faults`.
    pub fn route(&self, path: &str, body: Vec<u8>, faults: Faults) {
        if let Ok(mut r) = self.state.routes.lock() {
            r.insert(path.to_string(), (Arc::new(body), faults));
        }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What `path` served so far.
    pub fn stats(&self, path: &str) -> Stats {
        self.state
            .stats
            .lock()
            .ok()
            .and_then(|s| s.get(path).cloned())
            .unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn read_head(c: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut byte).ok()?;
        if n == 0 || buf.len() > 16 << 10 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn handle(mut c: TcpStream, state: &State) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
    let Some(head) = read_head(&mut c) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    let mut range = None;
    let mut auth = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let route = state.routes.lock().ok().and_then(|r| r.get(&path).cloned());
    let k = {
        let Ok(mut s) = state.stats.lock() else {
            return;
        };
        let e = s.entry(path.clone()).or_default();
        e.requests += 1;
        e.ranges.push(range.clone());
        e.auth.push(auth);
        e.requests - 1
    };
    let Some((body, f)) = route else {
        let _ = c.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        );
        return;
    };
    let status = f
        .status
        .or(f.status_first.filter(|&(_, n)| k < n).map(|(s, _)| s));
    if let Some(s) = status {
        let _ = write!(
            c,
            "HTTP/1.1 {s} Injected\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfault"
        );
        return;
    }
    let len = body.len() as u64;
    let start = range
        .as_deref()
        .filter(|_| !f.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok());
    let start = match start {
        Some(s) if s >= len => {
            let _ = write!(
                c,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        Some(s) => {
            let _ = write!(
                c,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                len - 1,
                len - s
            );
            s
        }
        None => {
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            );
            0
        }
    };
    let mut end = len;
    if let Some(t) = f.truncate_at {
        end = end.min(t.max(start));
    }
    if let Some((n, times)) = f.drop_after
        && k < times
    {
        end = end.min(start + n);
    }
    let stall = f.stall.filter(|&(_, _, times)| k < times);
    let mut pos = start;
    let mut stalled = false;
    // Bounded by the body length.
    while pos < end {
        let mut chunk_end = (pos + (64 << 10)).min(end);
        if let Some((after, pause, _)) = stall
            && !stalled
        {
            let at = start + after;
            if pos >= at {
                let _ = c.flush();
                std::thread::sleep(pause);
                stalled = true;
            } else {
                chunk_end = chunk_end.min(at);
            }
        }
        let (a, b) = (pos as usize, chunk_end as usize);
        if c.write_all(&body[a..b]).is_err() {
            break;
        }
        if let Ok(mut s) = state.stats.lock()
            && let Some(e) = s.get_mut(&path)
        {
            e.bytes += chunk_end - pos;
        }
        pos = chunk_end;
    }
    let _ = c.flush();
    let _ = c.shutdown(Shutdown::Both);
}
