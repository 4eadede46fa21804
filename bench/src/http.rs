//! Minimal sans-IO HTTP/1.1 framing shared by both sides of the bench.
//!
//! The load generator must find where each response ends (status line, `content-length`,
//! chunked, or read-until-close) and the origin must find where each request ends so it can
//! answer pipelined requests and skip request bodies. Neither side needs header values beyond
//! framing and `connection`, so a message is reduced to a [`Message`]: status, keep-alive and
//! the number of bytes it occupied on the wire. Heads are parsed with `httparse`; bodies are
//! consumed by a streaming decoder so they never have to fit in the receive buffer.
//!
//! Everything here is synchronous and I/O-free so the byte-boundary tests can drive it; the
//! buffer that feeds the parser lives in `recv.rs`.

use anyhow::{bail, Context, Result};

/// More headers than any origin or gateway we measure sends; a head with more is rejected.
const MAX_HEADERS: usize = 64;

/// One complete request or response, as far as the bench cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Response status code; 0 for requests.
    pub status: u16,
    /// Whether the connection may carry another message after this one.
    pub keep_alive: bool,
    /// Head plus body bytes this message occupied on the wire.
    pub bytes: u64,
}

/// Where the body of the current message ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// Position inside a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
}

/// Which side of the exchange the parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A response to a request; `head_request` responses carry no body whatever they say.
    Response {
        head_request: bool,
    },
    Request,
}

/// Streaming parser for a sequence of messages on one connection.
#[derive(Debug)]
pub struct Parser {
    kind: Kind,
    /// The message whose head has been parsed and whose body is being consumed.
    current: Option<(Message, Body)>,
}

impl Parser {
    /// A parser for responses; `head_request` says the requests are `HEAD`.
    pub fn response(head_request: bool) -> Self {
        Self {
            kind: Kind::Response { head_request },
            current: None,
        }
    }

    /// A parser for requests (the origin side).
    pub fn request() -> Self {
        Self {
            kind: Kind::Request,
            current: None,
        }
    }

    /// Consumes bytes from `buf`. Returns how many were used and the message if it completed.
    /// `(0, None)` means more bytes are needed; heads and chunk-size lines are only consumed
    /// whole, so the caller keeps unconsumed bytes and appends to them.
    pub fn advance(&mut self, buf: &[u8]) -> Result<(usize, Option<Message>)> {
        let mut used = 0;
        if self.current.is_none() {
            let Some((head_len, message, body)) = self.parse_head(buf)? else {
                return Ok((0, None));
            };
            used = head_len;
            self.current = Some((message, body));
        }
        let Some((message, body)) = self.current.as_mut() else {
            return Ok((used, None));
        };
        let (n, done) = body.advance(&buf[used..])?;
        used += n;
        message.bytes += n as u64;
        if done {
            let finished = *message;
            self.current = None;
            return Ok((used, Some(finished)));
        }
        Ok((used, None))
    }

    /// The peer closed the connection: completes a read-until-close body, otherwise `None`
    /// (the message was cut short, or there was none in progress).
    pub fn eof(&mut self) -> Option<Message> {
        match self.current.take() {
            Some((message, Body::UntilClose)) => Some(message),
            _ => None,
        }
    }

    fn parse_head(&self, buf: &[u8]) -> Result<Option<(usize, Message, Body)>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (len, version, status, headers) = match self.kind {
            Kind::Response { .. } => {
                let mut resp = httparse::Response::new(&mut headers);
                let httparse::Status::Complete(len) = resp.parse(buf)? else {
                    return Ok(None);
                };
                let status = resp.code.unwrap_or(0);
                (len, resp.version.unwrap_or(1), status, resp.headers)
            }
            Kind::Request => {
                let mut req = httparse::Request::new(&mut headers);
                let httparse::Status::Complete(len) = req.parse(buf)? else {
                    return Ok(None);
                };
                (len, req.version.unwrap_or(1), 0, req.headers)
            }
        };
        let framing = Framing::from_headers(version, headers)?;
        let body = match self.kind {
            Kind::Response { head_request } => {
                // RFC 9112 §6.3: these responses end at the head whatever they announce.
                if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
                    Body::Length(0)
                } else {
                    framing.body.unwrap_or(Body::UntilClose)
                }
            }
            // A request without framing has no body.
            Kind::Request => framing.body.unwrap_or(Body::Length(0)),
        };
        let keep_alive = framing.keep_alive && body != Body::UntilClose;
        let message = Message {
            status,
            keep_alive,
            bytes: len as u64,
        };
        Ok(Some((len, message, body)))
    }
}

/// What the headers say about body framing and connection reuse.
struct Framing {
    body: Option<Body>,
    keep_alive: bool,
}

impl Framing {
    fn from_headers(version: u8, headers: &[httparse::Header<'_>]) -> Result<Self> {
        // HTTP/1.1 defaults to persistent connections, HTTP/1.0 to closing.
        let mut keep_alive = version >= 1;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        for h in headers {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value)?.trim();
                let n: u64 = v
                    .parse()
                    .with_context(|| format!("bad content-length {v:?}"))?;
                if length.is_some_and(|old| old != n) {
                    bail!("conflicting content-length headers");
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only the final coding decides framing.
                let v = std::str::from_utf8(h.value)?;
                let last = v.rsplit(',').next().unwrap_or("").trim();
                chunked = last.eq_ignore_ascii_case("chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in std::str::from_utf8(h.value)?.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    }
                }
            }
        }
        // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3).
        let body = if chunked {
            Some(Body::Chunked(Chunk::Size))
        } else {
            length.map(Body::Length)
        };
        Ok(Self { body, keep_alive })
    }
}

impl Body {
    /// Consumes body bytes; returns `(used, finished)`. `(0, false)` means more bytes are needed.
    fn advance(&mut self, buf: &[u8]) -> Result<(usize, bool)> {
        match self {
            Body::Length(rem) => {
                let n = (*rem).min(buf.len() as u64);
                *rem -= n;
                Ok((n as usize, *rem == 0))
            }
            Body::UntilClose => Ok((buf.len(), false)),
            Body::Chunked(state) => advance_chunked(state, buf),
        }
    }
}

fn advance_chunked(state: &mut Chunk, buf: &[u8]) -> Result<(usize, bool)> {
    let mut used = 0;
    loop {
        let rest = &buf[used..];
        match *state {
            Chunk::Size => {
                let Some(line) = find_crlf(rest)? else {
                    return Ok((used, false));
                };
                let size = parse_chunk_size(&rest[..line])?;
                used += line + 2;
                *state = if size == 0 {
                    Chunk::Trailer
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(rem) => {
                if rest.is_empty() {
                    return Ok((used, false));
                }
                let n = rem.min(rest.len() as u64);
                used += n as usize;
                *state = if n == rem {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rem - n)
                };
            }
            Chunk::DataEnd => {
                if rest.len() < 2 {
                    return Ok((used, false));
                }
                if &rest[..2] != b"\r\n" {
                    bail!("chunk data not followed by CRLF");
                }
                used += 2;
                *state = Chunk::Size;
            }
            Chunk::Trailer => {
                let Some(line) = find_crlf(rest)? else {
                    return Ok((used, false));
                };
                used += line + 2;
                if line == 0 {
                    return Ok((used, true));
                }
            }
        }
    }
}

/// Index of the first CRLF; errors on absurdly long lines so a broken peer cannot make the
/// receive buffer hold an unterminated line forever.
fn find_crlf(buf: &[u8]) -> Result<Option<usize>> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(i)),
        None if buf.len() > 4096 => bail!("chunk line too long"),
        None => Ok(None),
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64> {
    // Chunk extensions (`;name=value`) are allowed and ignored.
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = std::str::from_utf8(&line[..end])?.trim_matches([' ', '\t']);
    if digits.is_empty() {
        bail!("empty chunk size");
    }
    u64::from_str_radix(digits, 16).with_context(|| format!("bad chunk size {digits:?}"))
}

/// The fixed response the origin sends, built once. `close` adds `connection: close` for
/// requests that asked for it.
pub fn build_response(body_bytes: usize, chunked: bool, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body_bytes + 128);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        if body_bytes > 0 {
            out.extend_from_slice(format!("{body_bytes:x}\r\n").as_bytes());
            out.resize(out.len() + body_bytes, b'x');
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {body_bytes}\r\n\r\n").as_bytes());
        out.resize(out.len() + body_bytes, b'x');
    }
    out
}

/// The request a load connection sends, formatted once and reused for every request.
pub fn build_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[String],
    body_bytes: usize,
    close: bool,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for h in headers {
        head.push_str(h.trim());
        head.push_str("\r\n");
    }
    if body_bytes > 0 {
        head.push_str(&format!("content-length: {body_bytes}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.resize(out.len() + body_bytes, b'x');
    out
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
