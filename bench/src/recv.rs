//! The receive buffer between a monoio socket and the sans-IO [`Parser`].
//!
//! It keeps unconsumed bytes (a partial head, the start of a pipelined message) across reads and
//! drops consumed ones, so one fixed-capacity `Vec` serves a connection for its whole life.

use anyhow::Result;

use crate::http::{Message, Parser};

/// A receive buffer that keeps unconsumed bytes (partial heads, pipelined messages) and drops
/// consumed ones. Its `Vec` is lent to monoio for reads via [`RecvBuf::take`] / [`RecvBuf::put`]
/// because monoio reads need an owned buffer.
#[derive(Debug)]
pub struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl RecvBuf {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            start: 0,
            capacity,
        }
    }

    /// Runs `parser` over the buffered bytes; returns the next complete message if any.
    pub fn next_message(&mut self, parser: &mut Parser) -> Result<Option<Message>> {
        loop {
            let (n, message) = parser.advance(&self.buf[self.start..])?;
            self.start += n;
            if message.is_some() {
                return Ok(message);
            }
            if n == 0 {
                break;
            }
        }
        // Make room for the next read; drain moves bytes in place, it does not allocate.
        if self.start == self.buf.len() {
            self.buf.clear();
        } else if self.start > 0 {
            self.buf.drain(..self.start);
        }
        self.start = 0;
        Ok(None)
    }

    /// True when a head does not fit: reading more would not help.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.capacity
    }

    /// Forgets buffered bytes (the connection they came from is gone).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Lends out the buffer for a read; its length is the fill level to append after.
    pub fn take(&mut self) -> Vec<u8> {
        // A read future dropped by a timeout loses the buffer; replace it so the next read
        // has room again (only on that error path does this allocate).
        if self.buf.capacity() == 0 {
            self.buf = Vec::with_capacity(self.capacity);
            self.start = 0;
        }
        std::mem::take(&mut self.buf)
    }

    /// Returns the buffer after a read.
    pub fn put(&mut self, buf: Vec<u8>) {
        self.buf = buf;
    }

    /// Appends bytes as a read would (used by tests).
    #[cfg(test)]
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}
