//! Owned-buffer read and write helpers over monoio, with the deadlines every downstream and
//! upstream operation needs.
//!
//! monoio's `read` fills a buffer from index 0; these helpers append into the spare capacity
//! (`slice_mut(len..)`) instead, and never read into a full buffer (that would return 0 bytes
//! and look like end-of-stream).

use std::io;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

/// Why an I/O step failed.
#[derive(Debug)]
pub enum IoFail {
    /// The deadline passed.
    Timeout,
    /// The peer closed the stream.
    Eof,
    /// A socket error.
    Io(io::Error),
}

/// Appends at least one byte read from `stream` to `buf` before `deadline`.
/// The buffer is lent to the kernel for the read and put back; if the deadline cancels the
/// read, the kernel may still own it, so `buf` is left empty (new) and callers close.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, IoFail> {
    let mut owned = std::mem::take(buf);
    if owned.len() == owned.capacity() {
        owned.reserve(owned.capacity().max(4096));
    }
    let len = owned.len();
    let cap = owned.capacity();
    let read = stream.read(owned.slice_mut(len..cap));
    let (res, slice) = match monoio::time::timeout_at(deadline.into(), read).await {
        Err(_) => return Err(IoFail::Timeout),
        Ok(done) => done,
    };
    *buf = slice.into_inner();
    match res {
        Ok(0) => Err(IoFail::Eof),
        Ok(n) => Ok(n),
        Err(e) => Err(IoFail::Io(e)),
    }
}

/// Writes all of `buf` within `timeout`; returns the buffer for reuse.
pub async fn write_all<S: monoio::io::AsyncWriteRent>(
    stream: &mut S,
    buf: Vec<u8>,
    timeout: Duration,
) -> (Result<(), IoFail>, Vec<u8>) {
    match monoio::time::timeout(timeout, stream.write_all(buf)).await {
        Err(_) => (Err(IoFail::Timeout), Vec::new()),
        Ok((Ok(_), buf)) => (Ok(()), buf),
        Ok((Err(e), buf)) => (Err(IoFail::Io(e)), buf),
    }
}
