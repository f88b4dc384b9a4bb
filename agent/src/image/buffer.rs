//! Page-aligned blocks passed between the pipeline stages, and the pool that recycles them so
//! memory stays bounded and `O_DIRECT` writes need no copy.

use std::sync::Mutex;

/// Alignment of every block: enough for `O_DIRECT` on 512-byte and 4 KiB-sector devices.
pub const ALIGN: usize = 4096;

/// A fixed-capacity byte buffer whose data starts on an [`ALIGN`] boundary.
///
/// Built without `unsafe`: a slightly larger `Vec` and an offset to its first aligned byte
/// (the `Vec` is never resized, so the data never moves).
pub struct Block {
    storage: Vec<u8>,
    start: usize,
    cap: usize,
    len: usize,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("cap", &self.cap)
            .field("len", &self.len)
            .finish()
    }
}

impl Block {
    /// An empty block of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        let storage = vec![0u8; cap + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN).min(ALIGN);
        Block {
            storage,
            start,
            cap,
            len: 0,
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every byte is filled.
    pub fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// The filled bytes.
    pub fn data(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The unfilled tail, to read into; follow with [`Block::advance`].
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.storage[self.start + self.len..self.start + self.cap]
    }

    /// Marks `n` more bytes of the spare tail as filled.
    pub fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.cap);
    }

    /// Appends as much of `data` as fits; returns how many bytes were taken.
    pub fn extend(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap - self.len);
        self.spare()[..n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// Empties the block.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops the first `n` filled bytes, moving the rest to the front.
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let (s, l) = (self.start, self.len);
        self.storage.copy_within(s + n..s + l, s);
        self.len -= n;
    }
}

/// Recycles blocks of one size. Blocks are only allocated when none is free, so the number
/// alive never exceeds what the stages hold at once (bounded by the channel depths).
#[derive(Debug)]
pub struct BlockPool {
    size: usize,
    free: Mutex<Vec<Block>>,
}

impl BlockPool {
    /// A pool of `size`-byte blocks.
    pub fn new(size: usize) -> Self {
        BlockPool {
            size,
            free: Mutex::new(Vec::new()),
        }
    }

    /// Block size.
    pub fn block_size(&self) -> usize {
        self.size
    }

    /// An empty block (recycled when possible).
    pub fn get(&self) -> Block {
        let recycled = self.free.lock().ok().and_then(|mut f| f.pop());
        let mut b = recycled.unwrap_or_else(|| Block::new(self.size));
        b.clear();
        b
    }

    /// Returns a block for reuse.
    pub fn put(&self, b: Block) {
        if b.capacity() == self.size
            && let Ok(mut f) = self.free.lock()
        {
            f.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_fill_and_consume() {
        let mut b = Block::new(8192);
        assert_eq!(b.data().as_ptr().align_offset(ALIGN), 0);
        assert_eq!(b.extend(&[1, 2, 3]), 3);
        b.spare()[..2].copy_from_slice(&[4, 5]);
        b.advance(2);
        assert_eq!(b.data(), &[1, 2, 3, 4, 5]);
        b.consume_front(2);
        assert_eq!(b.data(), &[3, 4, 5]);
        assert_eq!(b.extend(&vec![9u8; 10_000]), 8192 - 3);
        assert!(b.is_full());
    }

    #[test]
    fn pool_recycles() {
        let p = BlockPool::new(4096);
        let mut a = p.get();
        a.extend(b"xyz");
        let addr = a.data().as_ptr() as usize;
        p.put(a);
        let b = p.get();
        assert!(b.is_empty());
        assert_eq!(b.data().as_ptr() as usize, addr);
        p.put(Block::new(8192)); // wrong size: dropped
        assert_eq!(p.get().capacity(), 4096);
    }
}
