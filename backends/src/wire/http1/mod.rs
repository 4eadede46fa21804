//! Sans-IO HTTP/1.1 codec: request heads, response heads and chunked bodies.
//!
//! Nothing here performs IO or allocates per message (beyond the caller's
//! `Vec<HeaderSpan>` growing once). Heads are described by [`Span`]s into the
//! caller's read buffer, so the caller can keep reading into the same buffer
//! and forward the raw bytes without copying.
//!
//! The parsers are deliberately stricter than `httparse` (which they use for
//! the final tokenisation): a gateway sits between two HTTP implementations,
//! and every leniency that the two sides interpret differently is a
//! request-smuggling vector. See `scan.rs` for the byte-level rules that are
//! enforced before `httparse` ever sees the head.
//!
//! This module depends only on `core`/`std` and `httparse`, so it can be
//! copied verbatim into another crate.

pub mod chunked;
pub mod head;
pub mod response;
mod scan;

#[cfg(test)]
mod tests_chunked;
#[cfg(test)]
mod tests_head;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_prop;
#[cfg(test)]
mod tests_response;

pub use chunked::{ChunkError, ChunkedDecoder, Decoded};
pub use head::{find_header, parse_request, RequestHead};
pub use response::{parse_response, ResponseFraming, ResponseHead};
pub use scan::HeadLimits;

/// Byte range into the buffer a head was parsed from (u32 keeps spans small).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes this span covers. Returns an empty slice rather than
    /// panicking if `buf` is not the buffer the span was made from.
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Span of `part`, which must be a sub-slice of `buf`. Offsets come from
    /// pointer arithmetic on addresses (safe code); heads are bounded by
    /// `HeadLimits`, whose effective maximum is clamped to `u32::MAX`, so
    /// the conversion cannot truncate — the saturation is only a safeguard.
    pub(crate) fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        Span::new(start, start.saturating_add(part.len()))
    }

    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }
}

/// One header, as name and value spans (case, order and duplicates are kept by the caller's Vec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Trace,
    Connect,
    /// Any other valid token; the exact bytes are in `RequestHead::method_span`.
    Other,
}

impl Method {
    /// Methods the RFC defines as idempotent, i.e. safe to retry upstream.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }

    /// Canonical name; `None` for [`Method::Other`] (use the method span).
    pub fn as_str(&self) -> Option<&'static str> {
        Some(match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other => return None,
        })
    }

    /// Methods are case-sensitive (RFC 9110 §9.1), so `get` is `Other`.
    pub fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// How a request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// Why a head was rejected. Each maps to exactly one status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 400; the message says what was wrong.
    BadRequest(&'static str),
    /// 414
    UriTooLong,
    /// 431 (head bytes or header count over the limit)
    HeaderTooLarge,
    /// 501 (a transfer coding other than `chunked`)
    UnsupportedTransferCoding,
    /// 417 (an `Expect` other than `100-continue`)
    ExpectationFailed,
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeaderTooLarge => 431,
            HeadError::UnsupportedTransferCoding => 501,
            HeadError::ExpectationFailed => 417,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            HeadError::BadRequest(m) => m,
            HeadError::UriTooLong => "request target too long",
            HeadError::HeaderTooLarge => "request head too large or too many header fields",
            HeadError::UnsupportedTransferCoding => "unsupported transfer coding",
            HeadError::ExpectationFailed => "unsupported expectation",
        }
    }
}

/// Hop-by-hop header names (RFC 9110 §7.6.1 plus the de-facto ones) that a
/// proxy must not forward.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether a comma-separated `Connection`-style list contains `token`
/// (case-insensitive, optional whitespace around elements, empty elements ignored).
pub fn connection_tokens_contain(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
}

/// Strip optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether bytes read since `scanned` may have completed a head (an empty line, CRLF or a bare
/// LF that the parser will reject) or passed a size limit. A head trickling in byte by byte is
/// then parsed once, not once per read (which would cost quadratic time).
pub fn head_may_be_complete(data: &[u8], scanned: usize, limits: &HeadLimits) -> bool {
    if scanned == 0 || data.len() >= limits.header_bytes_max || data.len() > limits.url_bytes_max {
        return true;
    }
    let from = scanned.saturating_sub(2).min(data.len());
    data[from..]
        .windows(2)
        .any(|w| w == b"\n\n" || w == b"\n\r")
}

#[cfg(test)]
mod may_be_complete_tests {
    use super::*;

    #[test]
    fn a_trickled_head_is_parsed_only_when_it_may_be_complete() {
        let limits = HeadLimits::default();
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n";
        assert!(
            head_may_be_complete(head, 0, &limits),
            "first look always parses"
        );
        assert!(!head_may_be_complete(head, head.len() - 1, &limits));
        let done = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(head_may_be_complete(done, done.len() - 1, &limits));
        let bare = b"GET / HTTP/1.1\nHost: a\n\n";
        assert!(head_may_be_complete(bare, bare.len() - 1, &limits));
    }
}
