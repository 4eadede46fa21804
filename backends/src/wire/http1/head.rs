//! Request-head parsing: limits, strict validation and body framing.
//!
//! [`parse_request`] first runs the byte-level scan (`scan.rs`), then lets
//! `httparse` tokenise the now known-complete head into spans, then applies
//! the semantic rules that decide framing (RFC 9112 §6) and connection
//! handling. Anything ambiguous is rejected, never guessed: the gateway's
//! upstream might guess differently.
//!
//! Decisions worth knowing:
//! * Leading empty lines (CRLF) before the request line are skipped and
//!   counted in `head_len` (RFC 9112 §2.2 "SHOULD ignore").
//! * Only origin-form targets (and `*` for OPTIONS) are accepted;
//!   absolute-form and authority-form (CONNECT) get 400.
//! * Transfer-Encoding: exactly `chunked` is supported. A list where
//!   `chunked` is not last (or repeated), or with empty elements, is
//!   malformed (400); any other coding, e.g. `gzip` or `gzip, chunked`, is
//!   valid HTTP we do not implement (501).
//! * `Expect: 100-continue` in an HTTP/1.0 request is ignored as RFC 9110
//!   §10.1.1 requires; any other expectation is 417 in both versions.
//! * Host (routed on) must be `uri-host [":" port]` with a non-empty host and
//!   a port of digits up to 65535; an empty value is 400, an empty port
//!   (`host:`) is accepted as RFC 3986 allows it.

use super::scan::{headers_count_max, scan_head, HeadLimits, Kind, MAX_HEADERS};
use super::{
    connection_tokens_contain, trim_ows, BodyFraming, HeadError, HeaderSpan, Method, Span, Version,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// Raw request-target exactly as sent (percent-encoding kept).
    pub target: Span,
    /// Target up to (excluding) '?'.
    pub path: Span,
    /// After '?' (excluding it); `Some(empty)` for a trailing '?'.
    pub query: Option<Span>,
    pub version: Version,
    /// Value span of the single Host header.
    pub host: Option<Span>,
    pub framing: BodyFraming,
    /// HTTP/1.1: true unless Connection has "close"; HTTP/1.0: false unless "keep-alive".
    pub keep_alive: bool,
    /// Connection contains "upgrade" and an Upgrade header is present.
    pub upgrade: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// Bytes of the head including the final CRLF CRLF (and skipped leading CRLFs).
    pub head_len: usize,
}

/// Parse a request head from the start of `buf`.
///
/// `Ok(None)`: incomplete, read more. Errors are final: the connection
/// should get `err.status()` and be closed. `headers` is cleared and filled
/// with the spans in order; it grows (once) to at most the header count.
pub fn parse_request(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Option<RequestHead>, HeadError> {
    headers.clear();
    let Some(scanned) = scan_head(buf, limits, Kind::Request)? else {
        return Ok(None);
    };
    let head = &buf[..scanned.head_end];

    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        // The scan found CRLFCRLF, so httparse must agree the head ends there.
        Ok(_) => return Err(HeadError::BadRequest("malformed request head")),
        Err(e) => return Err(map_httparse_error(e)),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequest("malformed request line"));
    };
    let version = match version {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(HeadError::BadRequest("unsupported HTTP version")),
    };
    fill_headers(buf, req.headers, limits, headers)?;

    let method_span = Span::of(buf, method.as_bytes());
    let method = Method::from_bytes(method.as_bytes());
    let target_bytes = target.as_bytes();
    let target = Span::of(buf, target_bytes);
    let (path, query) = match target_bytes.iter().position(|&b| b == b'?') {
        Some(q) => {
            let q = target.start as usize + q;
            let end = target.end as usize;
            (
                Span::new(target.start as usize, q),
                Some(Span::new(q + 1, end)),
            )
        }
        None => (target, None),
    };

    let f = summarize(buf, headers)?;
    if f.host_count > 1 {
        return Err(HeadError::BadRequest("multiple Host headers"));
    }
    if version == Version::Http11 && f.host.is_none() {
        return Err(HeadError::BadRequest(
            "missing Host header in HTTP/1.1 request",
        ));
    }
    if let Some(h) = f.host {
        check_host(h.get(buf))?;
    }
    if f.expect_other {
        return Err(HeadError::ExpectationFailed);
    }
    // `summarize` already refused CL and TE together.
    let framing = if let Some(te) = f.transfer_encoding {
        if version == Version::Http10 {
            return Err(HeadError::BadRequest(
                "Transfer-Encoding in HTTP/1.0 request",
            ));
        }
        check_request_te(te.get(buf))?;
        BodyFraming::Chunked
    } else if let Some(n) = f.content_length {
        BodyFraming::Length(n)
    } else {
        BodyFraming::None
    };

    Ok(Some(RequestHead {
        method,
        method_span,
        target,
        path,
        query,
        version,
        host: f.host,
        framing,
        keep_alive: f.keep_alive(version),
        upgrade: f.conn_upgrade && f.has_upgrade,
        expect_continue: f.expect_continue && version == Version::Http11,
        head_len: scanned.head_end,
    }))
}

/// Convenience for callers: find a header value by case-insensitive name (first match).
pub fn find_header<'a>(buf: &'a [u8], headers: &[HeaderSpan], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value.get(buf))
}

/// Copy httparse's headers into spans, trimming trailing OWS from values
/// (httparse strips leading OWS; trailing handling varies across versions).
pub(crate) fn fill_headers(
    buf: &[u8],
    parsed: &[httparse::Header<'_>],
    limits: &HeadLimits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<(), HeadError> {
    if parsed.len() > headers_count_max(limits) {
        return Err(HeadError::HeaderTooLarge);
    }
    headers.reserve_exact(parsed.len());
    for h in parsed {
        headers.push(HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, trim_ows(h.value)),
        });
    }
    Ok(())
}

pub(crate) fn map_httparse_error(e: httparse::Error) -> HeadError {
    // The scan catches nearly everything first with a better message; these
    // are the backstop if httparse disagrees with it.
    HeadError::BadRequest(match e {
        httparse::Error::TooManyHeaders => return HeadError::HeaderTooLarge,
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status code",
        httparse::Error::Token => "invalid token in start line",
        httparse::Error::Version => "invalid HTTP version",
    })
}

/// What the framing- and connection-relevant header fields say.
#[derive(Default)]
pub(crate) struct Fields {
    pub host: Option<Span>,
    pub host_count: u32,
    pub content_length: Option<u64>,
    pub transfer_encoding: Option<Span>,
    pub conn_close: bool,
    pub conn_keep_alive: bool,
    pub conn_upgrade: bool,
    pub has_upgrade: bool,
    pub expect_continue: bool,
    pub expect_other: bool,
}

impl Fields {
    pub fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.conn_close,
            Version::Http10 => self.conn_keep_alive && !self.conn_close,
        }
    }
}

/// One pass over the headers; rejects what is wrong regardless of direction.
pub(crate) fn summarize(buf: &[u8], headers: &[HeaderSpan]) -> Result<Fields, HeadError> {
    let mut f = Fields::default();
    let mut te_count = 0u32;
    for h in headers {
        let name = h.name.get(buf);
        let value = h.value.get(buf);
        if name.eq_ignore_ascii_case(b"host") {
            f.host_count += 1;
            f.host.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // Even equal duplicates are refused (RFC 9112 §6.3 allows
            // merging them, but a peer might not): there is no reason
            // for a correct sender to repeat it.
            if f.content_length.is_some() {
                return Err(HeadError::BadRequest("duplicate Content-Length header"));
            }
            f.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_count += 1;
            if te_count > 1 {
                return Err(HeadError::BadRequest("multiple Transfer-Encoding headers"));
            }
            f.transfer_encoding = Some(h.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            f.conn_close |= connection_tokens_contain(value, "close");
            f.conn_keep_alive |= connection_tokens_contain(value, "keep-alive");
            f.conn_upgrade |= connection_tokens_contain(value, "upgrade");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            f.has_upgrade = true;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                f.expect_continue = true;
            } else {
                f.expect_other = true;
            }
        }
    }
    if f.content_length.is_some() && f.transfer_encoding.is_some() {
        // RFC 9112 §6.3 lets TE win, but the classic smuggling attack is
        // exactly a front and back end disagreeing here.
        return Err(HeadError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(f)
}

/// `Content-Length = 1*DIGIT`, nothing else: no sign, no inner spaces, no
/// list ("5, 5"), no hex, no overflow.
pub(crate) fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.is_empty() {
        return Err(HeadError::BadRequest("empty Content-Length"));
    }
    if value.contains(&b',') {
        return Err(HeadError::BadRequest("Content-Length list not allowed"));
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return Err(HeadError::BadRequest(
                "Content-Length is not a decimal number",
            ));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::BadRequest("Content-Length out of range"))?;
    }
    Ok(n)
}

/// Transfer-Encoding outcome, shared by request and response handling.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Te {
    /// Exactly `chunked`.
    Chunked,
    /// Syntactically broken: empty element, `chunked` not last or repeated.
    Malformed(&'static str),
    /// Well-formed but uses a coding other than plain `chunked`.
    Unsupported,
}

pub(crate) fn classify_te(value: &[u8]) -> Te {
    if value.eq_ignore_ascii_case(b"chunked") {
        return Te::Chunked;
    }
    let mut elements = value.split(|&b| b == b',').map(trim_ows).peekable();
    while let Some(e) = elements.next() {
        if e.is_empty() {
            return Te::Malformed("empty element in Transfer-Encoding");
        }
        if e.eq_ignore_ascii_case(b"chunked") && elements.peek().is_some() {
            return Te::Malformed("chunked is not the final transfer coding");
        }
    }
    Te::Unsupported
}

fn check_request_te(value: &[u8]) -> Result<(), HeadError> {
    match classify_te(value) {
        Te::Chunked => Ok(()),
        Te::Malformed(m) => Err(HeadError::BadRequest(m)),
        Te::Unsupported => Err(HeadError::UnsupportedTransferCoding),
    }
}

/// Host is routed on, so reject what cannot be a `uri-host [":" port]`
/// and would let two components disagree about the authority.
fn check_host(host: &[u8]) -> Result<(), HeadError> {
    // Only what RFC 3986 allows in a host and port (reg-name, IP literal): in particular no
    // quote or backslash, which could break out of the quoted `host=` of a `Forwarded` header.
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=:[]%".contains(&b);
    if !host.iter().all(|&b| allowed(b)) {
        return Err(HeadError::BadRequest("invalid Host header value"));
    }
    // RFC 9110 §7.2 allows an empty Host only for targets without an authority, which an
    // origin-form request to a gateway never is; and §4.2.1 forbids an empty host identifier.
    if host.is_empty() {
        return Err(HeadError::BadRequest("empty Host header value"));
    }
    let Some((name, port)) = split_authority(host) else {
        return Err(HeadError::BadRequest("invalid Host header value"));
    };
    if name.is_empty() {
        return Err(HeadError::BadRequest("empty host name in Host header"));
    }
    // An empty port (`host:`) is accepted: RFC 3986 §3.2.3 has `port = *DIGIT` and reads an
    // empty one as the scheme's default, and routing strips it like any other port.
    match port {
        Some(p) if !is_port(p) => Err(HeadError::BadRequest("invalid port in Host header")),
        _ => Ok(()),
    }
}

/// `uri-host [":" port]` split at the port's colon: the one after an IP literal's `]`, else
/// the first (a reg-name or IPv4 address has none, so `a:b:c` gets the port `b:c`). The name
/// is returned without brackets. `None` when a bracket is misplaced or unbalanced.
fn split_authority(host: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (name, rest) = match host {
        [b'[', inner @ ..] => {
            let close = inner.iter().position(|&b| b == b']')?;
            (&inner[..close], &inner[close + 1..])
        }
        _ => {
            let colon = host.iter().position(|&b| b == b':').unwrap_or(host.len());
            host.split_at(colon)
        }
    };
    if name.iter().any(|&b| b == b'[' || b == b']') {
        return None;
    }
    match rest {
        [] => Some((name, None)),
        [b':', port @ ..] => Some((name, Some(port))),
        _ => None,
    }
}

/// `*DIGIT` with a value that fits a TCP port (leading zeros allowed, as RFC 3986 does); true
/// for the empty port (see `check_host`).
fn is_port(port: &[u8]) -> bool {
    port.iter()
        .try_fold(0u16, |n, &b| {
            if !b.is_ascii_digit() {
                return None;
            }
            n.checked_mul(10)?.checked_add(u16::from(b - b'0'))
        })
        .is_some()
}
