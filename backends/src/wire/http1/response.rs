//! Upstream response-head parsing and response body framing.
//!
//! Same byte-level strictness as requests (`scan.rs`): an upstream that
//! sends bare LF, obs-fold or conflicting lengths is treated as broken
//! (the caller answers 502) rather than interpreted, because whatever we
//! guess decides where the next response on a pooled connection starts.
//!
//! Framing follows RFC 9112 §6.3, except that Transfer-Encoding other than
//! exactly `chunked` is rejected instead of read-until-close: the caller
//! strips hop-by-hop headers and re-frames, which would silently drop a
//! transfer coding such as `gzip`.

use super::head::{classify_te, fill_headers, map_httparse_error, summarize, Te};
use super::scan::HeadLimits;
use super::scan::{scan_head, Kind, MAX_HEADERS};
use super::{HeadError, HeaderSpan, Version};

/// How a response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    None,
    Length(u64),
    Chunked,
    /// No length information: the body ends when upstream closes.
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version: Version,
    pub framing: ResponseFraming,
    /// Whether the upstream connection may be reused after this response.
    pub keep_alive: bool,
    pub head_len: usize,
}

/// Parse a response head from the start of `buf`. `Ok(None)`: incomplete.
///
/// `request_was_head`: a response to HEAD has no body; 1xx, 204 and 304
/// have none either (their Content-Length, if any, describes another
/// representation and is ignored for framing, but must still be valid).
/// Errors are `HeadError::BadRequest(..)` (or `HeaderTooLarge`) and mean
/// "bad gateway" to the caller.
pub fn parse_response(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<HeaderSpan>,
    request_was_head: bool,
) -> Result<Option<ResponseHead>, HeadError> {
    headers.clear();
    let Some(scanned) = scan_head(buf, limits, Kind::Response)? else {
        return Ok(None);
    };
    let head = &buf[..scanned.head_end];

    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(HeadError::BadRequest("malformed response head")),
        Err(e) => return Err(map_httparse_error(e)),
    }
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(HeadError::BadRequest("malformed status line"));
    };
    let version = match version {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(HeadError::BadRequest("unsupported HTTP version")),
    };
    // RFC 9110 §15: status codes are 100..=599. Anything else is a broken upstream whose
    // status a client might read as a class of its own (or refuse): 502, not relayed.
    if !(100..=599).contains(&status) {
        return Err(HeadError::BadRequest("invalid status code"));
    }
    fill_headers(buf, resp.headers, limits, headers)?;

    let f = summarize(buf, headers)?;
    let mut keep_alive = f.keep_alive(version);
    let bodyless =
        request_was_head || (100..200).contains(&status) || status == 204 || status == 304;

    // Validate TE even on bodyless responses: a broken value means a
    // broken upstream either way.
    let te_chunked = match f.transfer_encoding {
        None => false,
        Some(_) if version == Version::Http10 => {
            return Err(HeadError::BadRequest(
                "Transfer-Encoding in HTTP/1.0 response",
            ));
        }
        Some(te) => match classify_te(te.get(buf)) {
            Te::Chunked => true,
            Te::Malformed(m) => return Err(HeadError::BadRequest(m)),
            Te::Unsupported => {
                return Err(HeadError::BadRequest(
                    "unsupported Transfer-Encoding in response",
                ));
            }
        },
    };
    let framing = if bodyless {
        ResponseFraming::None
    } else if te_chunked {
        ResponseFraming::Chunked
    } else if let Some(n) = f.content_length {
        ResponseFraming::Length(n)
    } else {
        // The end of the body is the end of the connection.
        keep_alive = false;
        ResponseFraming::UntilClose
    };

    Ok(Some(ResponseHead {
        status,
        version,
        framing,
        keep_alive,
        head_len: scanned.head_end,
    }))
}
