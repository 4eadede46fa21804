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
/// On failure the buffer is returned empty-handed only if the read was cancelled by the
/// deadline (the kernel may still own it), so callers close the connection then.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    mut buf: Vec<u8>,
    deadline: Instant,
) -> (Result<usize, IoFail>, Vec<u8>) {
    if buf.len() == buf.capacity() {
        buf.reserve(buf.capacity().max(4096));
    }
    let len = buf.len();
    let cap = buf.capacity();
    match monoio::time::timeout_at(deadline.into(), stream.read(buf.slice_mut(len..cap))).await {
        Err(_) => (Err(IoFail::Timeout), Vec::new()),
        Ok((Ok(0), slice)) => (Err(IoFail::Eof), slice.into_inner()),
        Ok((Ok(n), slice)) => (Ok(n), slice.into_inner()),
        Ok((Err(e), slice)) => (Err(IoFail::Io(e)), slice.into_inner()),
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
