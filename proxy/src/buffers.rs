//! A per-worker pool of I/O buffers. A connection takes one when it has bytes to read and
//! gives it back when its request is done, so an idle keep-alive connection holds no buffer.

use std::cell::RefCell;
use std::ops::Range;

use crate::http1::HeaderSpan;

/// A read buffer with the header-span scratch that parses it.
#[derive(Debug)]
pub struct IoBuf {
    /// Bytes read (head, then whatever followed it).
    pub data: Vec<u8>,
    /// Header spans of the head in `data`.
    pub headers: Vec<HeaderSpan>,
    /// Route parameter captures (byte ranges of the path).
    pub captures: Vec<Range<usize>>,
}

/// Free buffers of one worker.
#[derive(Debug)]
pub struct BufferPool {
    free: RefCell<Vec<IoBuf>>,
    plain: RefCell<Vec<Vec<u8>>>,
    capacity: usize,
    keep_max: usize,
}

impl BufferPool {
    /// A pool of buffers of `capacity` bytes, keeping at most `keep_max` free ones of each kind.
    pub fn new(capacity: usize, keep_max: usize) -> Self {
        Self {
            free: RefCell::new(Vec::new()),
            plain: RefCell::new(Vec::new()),
            capacity,
            keep_max,
        }
    }

    /// Buffer size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A read buffer with header scratch (empty).
    pub fn take(&self) -> IoBuf {
        let popped = self.free.borrow_mut().pop();
        popped.unwrap_or_else(|| IoBuf {
            data: Vec::with_capacity(self.capacity),
            headers: Vec::with_capacity(128),
            captures: Vec::with_capacity(8),
        })
    }

    /// Returns a read buffer.
    pub fn give(&self, mut buf: IoBuf) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep_max && buf.data.capacity() == self.capacity {
            buf.data.clear();
            free.push(buf);
        }
    }

    /// A plain buffer (responses, upstream reads), empty.
    pub fn take_plain(&self) -> Vec<u8> {
        let popped = self.plain.borrow_mut().pop();
        popped.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Returns a plain buffer. Buffers that grew are dropped so the pool stays bounded.
    pub fn give_plain(&self, mut buf: Vec<u8>) {
        let mut plain = self.plain.borrow_mut();
        if plain.len() < self.keep_max && buf.capacity() == self.capacity {
            buf.clear();
            plain.push(buf);
        }
    }
}
