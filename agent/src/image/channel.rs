//! Messages between pipeline stages, and a `BufRead` over the receiving end so a decoder can
//! read blocks straight from the queue without another copy.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::Receiver;

use super::buffer::{Block, BlockPool};

/// What flows between two stages.
#[derive(Debug)]
pub enum Msg {
    /// The next bytes of the stream.
    Data(Block),
    /// The stream ended normally. A sender dropped without sending `End` means the upstream
    /// stage failed.
    End,
}

/// The upstream stage stopped without finishing the stream (its own error says why).
#[derive(Debug, thiserror::Error)]
#[error("the upstream pipeline stage stopped")]
pub struct Aborted;

/// Whether `e` is (or wraps) [`Aborted`].
pub fn is_aborted(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<Aborted>())
}

/// Reads the concatenated data of the blocks received on a channel, returning each block to
/// the pool once read.
pub struct ChannelReader<'a> {
    rx: &'a Receiver<Msg>,
    pool: &'a BlockPool,
    cur: Option<Block>,
    off: usize,
    ended: bool,
    total: u64,
}

impl<'a> ChannelReader<'a> {
    /// Reads from `rx`, starting with `first` if given (a block already taken off the queue,
    /// e.g. to sniff its magic bytes).
    pub fn new(rx: &'a Receiver<Msg>, pool: &'a BlockPool, first: Option<Block>) -> Self {
        ChannelReader {
            rx,
            pool,
            cur: first,
            off: 0,
            ended: false,
            total: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.total
    }
}

impl BufRead for ChannelReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // Bounded by the (finite) stream: each turn takes one message off the queue.
        loop {
            if let Some(b) = &self.cur
                && self.off < b.len()
            {
                break;
            }
            if let Some(b) = self.cur.take() {
                self.pool.put(b);
            }
            self.off = 0;
            if self.ended {
                return Ok(&[]);
            }
            match self.rx.recv() {
                Ok(Msg::Data(b)) => self.cur = Some(b),
                Ok(Msg::End) => self.ended = true,
                Err(_) => return Err(io::Error::other(Aborted)),
            }
        }
        Ok(self.cur.as_ref().map_or(&[][..], |b| &b.data()[self.off..]))
    }

    fn consume(&mut self, amt: usize) {
        self.off += amt;
        self.total += amt as u64;
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;

    #[test]
    fn reads_blocks_in_order_then_end() -> io::Result<()> {
        let pool = BlockPool::new(4096);
        let (tx, rx) = sync_channel(4);
        for chunk in [&b"hello "[..], b"", b"world"] {
            let mut b = pool.get();
            b.extend(chunk);
            tx.send(Msg::Data(b)).map_err(io::Error::other)?;
        }
        tx.send(Msg::End).map_err(io::Error::other)?;
        let mut r = ChannelReader::new(&rx, &pool, None);
        let mut s = String::new();
        r.read_to_string(&mut s)?;
        assert_eq!(s, "hello world");
        assert_eq!(r.consumed(), 11);
        Ok(())
    }

    #[test]
    fn dropped_sender_is_an_abort() -> io::Result<()> {
        let pool = BlockPool::new(4096);
        let (tx, rx) = sync_channel::<Msg>(1);
        let mut first = pool.get();
        first.extend(b"abc");
        drop(tx);
        let mut r = ChannelReader::new(&rx, &pool, Some(first));
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf)?, 3);
        let e = r.read(&mut buf).err();
        assert!(e.as_ref().is_some_and(is_aborted), "{e:?}");
        Ok(())
    }
}
