//! A bounded in-memory copy of the agent's log, for the log bundle.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Keeps the most recent `capacity` bytes of log output (whole lines).
#[derive(Clone, Debug)]
pub struct LogBuffer {
    inner: Arc<Mutex<Ring>>,
}

#[derive(Debug)]
struct Ring {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    capacity: usize,
}

impl LogBuffer {
    /// A buffer keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        LogBuffer {
            inner: Arc::new(Mutex::new(Ring {
                lines: VecDeque::new(),
                bytes: 0,
                capacity,
            })),
        }
    }

    /// Appends raw output (split into lines by the writer).
    pub fn push(&self, data: &[u8]) {
        let Ok(mut ring) = self.inner.lock() else {
            return;
        };
        let data = if data.len() > ring.capacity {
            &data[data.len() - ring.capacity..]
        } else {
            data
        };
        ring.bytes += data.len();
        ring.lines.push_back(data.to_vec());
        while ring.bytes > ring.capacity {
            match ring.lines.pop_front() {
                Some(l) => ring.bytes -= l.len(),
                None => break,
            }
        }
    }

    /// Everything currently held.
    pub fn contents(&self) -> Vec<u8> {
        match self.inner.lock() {
            Ok(ring) => ring.lines.iter().flatten().copied().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// A `MakeWriter` that tees log output to stderr and the buffer.
#[derive(Clone, Debug)]
pub struct TeeWriter {
    buffer: LogBuffer,
}

impl TeeWriter {
    /// Tees into `buffer`.
    pub fn new(buffer: LogBuffer) -> Self {
        TeeWriter { buffer }
    }
}

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.push(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TeeWriter {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_most_recent_bytes() {
        let b = LogBuffer::new(10);
        b.push(b"aaaa\n");
        b.push(b"bbbb\n");
        b.push(b"cccc\n");
        assert_eq!(b.contents(), b"bbbb\ncccc\n");
        b.push(b"0123456789abcdef");
        assert_eq!(b.contents(), b"6789abcdef");
    }
}
