//! Reading a request body from the client connection's buffer, piece by piece, whatever its
//! framing (Content-Length or chunked), with the size cap and the between-reads timeout.
//!
//! Pieces are ranges into the connection's read buffer; a piece must be used before asking for
//! the next one, because the buffer is refilled from the start once it is consumed (which also
//! overwrites the request head: callers take what they need from the head first).

use std::ops::Range;
use std::time::{Duration, Instant};

use monoio::io::AsyncReadRent;

use crate::wire::http1::{BodyFraming, ChunkedDecoder};
use crate::wire::io::{read_more, IoFail};

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than `body_bytes_max`.
    TooLarge,
    /// Bad chunked framing.
    Malformed(&'static str),
    /// The client paused longer than `body_read_timeout_ms`.
    Timeout,
    /// The client closed or reset the connection mid-body.
    Closed,
}

#[derive(Debug)]
enum Kind {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// A request body being read.
#[derive(Debug)]
pub struct BodyReader {
    kind: Kind,
    received: u64,
    max: u64,
    pos: usize,
}

impl BodyReader {
    /// A reader for a body that starts at `start` in the buffer.
    pub fn new(framing: BodyFraming, max: u64, start: usize) -> Self {
        let kind = match framing {
            BodyFraming::None => Kind::Length(0),
            BodyFraming::Length(n) => Kind::Length(n),
            BodyFraming::Chunked => Kind::Chunked(ChunkedDecoder::new()),
        };
        Self {
            kind,
            received: 0,
            max,
            pos: start,
        }
    }

    /// The whole body has been read.
    pub fn is_done(&self) -> bool {
        match &self.kind {
            Kind::Length(remaining) => *remaining == 0,
            Kind::Chunked(d) => d.is_done(),
        }
    }

    /// Body bytes delivered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next piece of body data as a range of `buf`, or None at the end of the body.
    pub async fn next<S: AsyncReadRent>(
        &mut self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<Option<Range<usize>>, BodyError> {
        loop {
            if self.is_done() {
                return Ok(None);
            }
            if self.pos < buf.len() {
                if let Some(piece) = self.take(buf)? {
                    return Ok(Some(piece));
                }
                if self.is_done() {
                    return Ok(None);
                }
            }
            // Everything buffered is consumed: refill from the start.
            buf.clear();
            self.pos = 0;
            match read_more(stream, buf, Instant::now() + timeout).await {
                Ok(_) => {}
                Err(IoFail::Timeout) => return Err(BodyError::Timeout),
                Err(IoFail::Eof | IoFail::Io(_)) => return Err(BodyError::Closed),
            }
        }
    }

    fn take(&mut self, buf: &[u8]) -> Result<Option<Range<usize>>, BodyError> {
        let start = self.pos;
        let piece = match &mut self.kind {
            Kind::Length(remaining) => {
                let n = (*remaining).min((buf.len() - start) as u64) as usize;
                *remaining -= n as u64;
                self.pos += n;
                (n > 0).then(|| start..start + n)
            }
            Kind::Chunked(decoder) => {
                let d = decoder
                    .decode(&buf[start..])
                    .map_err(|e| BodyError::Malformed(e.message()))?;
                self.pos += d.consumed;
                d.data.map(|r| start + r.start..start + r.end)
            }
        };
        if let Some(r) = &piece {
            self.received += r.len() as u64;
            if self.received > self.max {
                return Err(BodyError::TooLarge);
            }
        }
        Ok(piece)
    }

    /// After the body: moves the bytes that follow it (a pipelined request) to the front.
    pub fn finish(self, buf: &mut Vec<u8>) {
        let pos = self.pos.min(buf.len());
        buf.drain(..pos);
    }
}
