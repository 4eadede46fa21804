//! The request body on its way upstream: read up to the buffering threshold before an upstream
//! connection is taken (so a slow client does not pin one), re-framed when it must stream on.

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use tollgate_config::plan::HttpTarget;
use tollgate_config::responses::ResponseType;

use super::Fail;
use crate::exchange::{Downstream, Request};
use crate::wire::body::BodyReader;
use crate::wire::http1::BodyFraming;
use crate::wire::io::write_all;
use crate::wire::respond::content_length;
use crate::wire::stream::UpstreamStream;

/// The longest framing [`read`] adds after the body: a `content-length` line, or
/// `transfer-encoding: chunked` with a first chunk's size line and its end.
const FRAMING_MAX: usize = 64;

/// The request body as far as it was read before contacting the upstream.
pub(super) enum Upload {
    /// Whole request (head and body) is in the request buffer.
    Complete,
    /// The body continues on the client connection; `chunked` re-frames it.
    Streaming { reader: BodyReader, chunked: bool },
}

/// Reads the request body into `out` (which holds the upstream head so far) up to the
/// buffering threshold and finishes the head's framing. With a complete body the whole request
/// is in `out`.
pub(super) async fn read<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    target: &HttpTarget,
    out: &mut Vec<u8>,
) -> Result<Upload, Fail> {
    let limits = req.limits();
    let framing = req.head.framing;
    if framing == BodyFraming::None {
        out.extend_from_slice(b"\r\n");
        let head_len = req.head.head_len.min(down.buf.data.len());
        down.buf.data.drain(..head_len);
        return Ok(Upload::Complete);
    }
    if !down.continue_if_expected(req.head).await {
        return Err(Fail::Client(400));
    }
    let head_end = out.len();
    let threshold = if target.buffered {
        u64::MAX
    } else {
        limits.body_buffer_bytes as u64
    };
    let mut reader = BodyReader::new(framing, limits.body_bytes_max, req.head.head_len);
    let timeout = Duration::from_millis(limits.body_read_timeout_ms);
    while reader.received() < threshold.max(1) {
        match reader.next(down.stream, &mut down.buf.data, timeout).await {
            Ok(Some(piece)) => {
                // Grown through the pool, with room for the framing line added below: a body
                // larger than a pool buffer reuses a large one instead of reallocating.
                down.buffers.grow_plain(out, piece.len() + FRAMING_MAX);
                out.extend_from_slice(&down.buf.data[piece]);
            }
            Ok(None) => break,
            Err(e) => return Err(Fail::Body(e)),
        }
    }
    let body_len = (out.len() - head_end) as u64;
    // The framing line goes between the head and the body already collected: append it and
    // rotate it into place (no second buffer).
    let complete = reader.is_done();
    let chunked = !complete && framing == BodyFraming::Chunked;
    if complete {
        content_length(out, body_len);
        out.extend_from_slice(b"\r\n");
    } else if let BodyFraming::Length(n) = framing {
        content_length(out, n);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        if body_len > 0 {
            out.extend_from_slice(format_hex(body_len).as_slice());
            out.extend_from_slice(b"\r\n");
        }
    }
    let inserted = out.len() - head_end - body_len as usize;
    out[head_end..].rotate_right(inserted);
    if chunked && body_len > 0 {
        out.extend_from_slice(b"\r\n");
    }
    if complete {
        reader.finish(&mut down.buf.data);
        Ok(Upload::Complete)
    } else {
        Ok(Upload::Streaming { reader, chunked })
    }
}

/// Streams the rest of the body from the client to the upstream, piece by piece.
pub(super) async fn stream<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    reader: &mut BodyReader,
    chunked: bool,
    upstream: &mut UpstreamStream,
    out: &mut Vec<u8>,
    timeout: Duration,
) -> Result<(), Fail> {
    let body_timeout = Duration::from_millis(req.limits().body_read_timeout_ms);
    loop {
        // On a client failure the upstream has part of the body and will be dropped; the
        // client hears why.
        let piece = reader
            .next(down.stream, &mut down.buf.data, body_timeout)
            .await
            .map_err(Fail::Body)?;
        out.clear();
        let last = piece.is_none();
        match piece {
            Some(r) if chunked => push_chunk(out, &down.buf.data[r]),
            Some(r) => out.extend_from_slice(&down.buf.data[r]),
            None if chunked => out.extend_from_slice(b"0\r\n\r\n"),
            None => return Ok(()),
        }
        let (res, r) = write_all(upstream, std::mem::take(out), timeout).await;
        *out = r;
        if res.is_err() {
            return Err(Fail::Answer(ResponseType::IntegrationFailure, None));
        }
        if last {
            return Ok(());
        }
    }
}

/// Lowercase hex digits of `n` (chunk sizes).
fn format_hex(n: u64) -> HexBuf {
    let mut out = HexBuf {
        bytes: [0; 16],
        len: 0,
    };
    let digits = if n == 0 {
        1
    } else {
        (64 - n.leading_zeros()).div_ceil(4) as usize
    };
    for i in 0..digits {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        out.bytes[i] = b"0123456789abcdef"[nibble as usize];
    }
    out.len = digits;
    out
}

struct HexBuf {
    bytes: [u8; 16],
    len: usize,
}

impl HexBuf {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends one chunk (`size CRLF data CRLF`).
pub(super) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format_hex(data.len() as u64).as_slice());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_framed_in_lowercase_hex() {
        let mut out = Vec::new();
        push_chunk(&mut out, &[b'x'; 26]);
        assert_eq!(out, [b"1a\r\n".as_slice(), &[b'x'; 26], b"\r\n"].concat());
        out.clear();
        push_chunk(&mut out, b"");
        assert!(
            out.is_empty(),
            "an empty piece is no chunk (it would end the body)"
        );
        assert_eq!(format_hex(0).as_slice(), b"0");
        assert_eq!(format_hex(u64::MAX).as_slice(), b"ffffffffffffffff");
    }
}
