//! Byte-level pre-scan of a message head, run before `httparse`.
//!
//! `httparse` is lenient in ways a gateway must not be: it accepts bare `\n`
//! line endings, skips any number of leading empty lines (also for
//! responses), accepts non-ASCII bytes in the request target and maps many
//! different defects to one error kind. This scanner walks the head once and
//! enforces, with a distinct message per defect:
//!
//! * every line ends in exactly CRLF (no bare LF, no CR without LF);
//! * no control characters other than HTAB anywhere, and no DEL;
//! * no obs-fold / no whitespace before the first header line;
//! * header lines are `token ":" value` with no whitespace before the colon;
//! * the start line is well formed (request line or status line);
//! * size limits, checked while the head is still incomplete so a slow or
//!   endless head is refused as early as possible.
//!
//! Each call rescans from the start of the buffer; heads are bounded by
//! `header_bytes_max`, so the worst case is a few passes over ~10 KiB.

use super::{is_tchar, HeadError};

/// Size limits for a head. The effective header count is capped at 128 (the
/// on-stack `httparse` array) and the byte limit at `u32::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    pub header_bytes_max: usize,
    pub url_bytes_max: usize,
    pub headers_count_max: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            header_bytes_max: 10_240,
            url_bytes_max: 10_240,
            headers_count_max: 100,
        }
    }
}

/// Upper bound on header fields, the size of the on-stack `httparse` array.
pub(crate) const MAX_HEADERS: usize = 128;

/// How much of a start line past `url_bytes_max` is looked at to decide
/// between 414 and 431 (room for the method and version around the target).
const START_LINE_SLACK: usize = 1024;

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Request,
    Response,
}

/// A complete head that passed the byte-level rules.
pub(crate) struct Scanned {
    /// Length of the head including the final CRLF CRLF.
    pub head_end: usize,
}

/// Effective limits: clamped so spans fit in `u32` and headers fit the array.
pub(crate) fn header_bytes_max(limits: &HeadLimits) -> usize {
    limits.header_bytes_max.min(u32::MAX as usize)
}

pub(crate) fn headers_count_max(limits: &HeadLimits) -> usize {
    limits.headers_count_max.min(MAX_HEADERS)
}

/// `Ok(None)`: incomplete and still within limits.
pub(crate) fn scan_head(
    buf: &[u8],
    limits: &HeadLimits,
    kind: Kind,
) -> Result<Option<Scanned>, HeadError> {
    let header_max = header_bytes_max(limits);
    let count_max = headers_count_max(limits);

    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before
    // the request line (old clients send CRLF after a POST body). We skip
    // any number; they count towards head_len and the size limit. A
    // response has no such allowance: an empty line there means upstream
    // framing is off, which the scan loop rejects.
    let mut start = 0;
    if let Kind::Request = kind {
        while buf.get(start..start + 2) == Some(b"\r\n") {
            start += 2;
        }
    }

    let end = buf.len().min(header_max);
    let mut line_start = start;
    let mut line_no = 0usize;
    let mut i = start;
    while i < end {
        match buf[i] {
            b'\r' => {
                let Some(&next) = buf.get(i + 1) else {
                    break; // CR is the last byte read so far: need more
                };
                if next != b'\n' {
                    return Err(bad("CR not followed by LF in head"));
                }
                let line = &buf[line_start..i];
                if line.is_empty() {
                    if line_no == 0 {
                        return Err(bad("empty start line"));
                    }
                    let head_end = i + 2;
                    if head_end > header_max {
                        return Err(HeadError::HeaderTooLarge);
                    }
                    return Ok(Some(Scanned { head_end }));
                }
                if line_no == 0 {
                    match kind {
                        Kind::Request => check_request_line(line, limits.url_bytes_max)?,
                        Kind::Response => check_status_line(line)?,
                    }
                } else {
                    if line_no > count_max {
                        return Err(HeadError::HeaderTooLarge);
                    }
                    check_header_line(line)?;
                }
                line_no += 1;
                i += 2;
                line_start = i;
                // A line starting with whitespace is either obs-fold (a
                // continuation of the previous field) or, right after the
                // start line, an attempt to smuggle a field past parsers
                // that ignore it (RFC 9112 §2.2, §5.2). Both are rejected.
                if let Some(b' ' | b'\t') = buf.get(i) {
                    return Err(bad(if line_no == 1 {
                        "whitespace before the first header field"
                    } else {
                        "obsolete line folding (obs-fold) in header"
                    }));
                }
                continue;
            }
            b'\n' => return Err(bad("bare LF line ending in head")),
            b'\t' => {}
            0..=0x1f | 0x7f => {
                return Err(bad(if line_no == 0 {
                    "control character in start line"
                } else {
                    "control character in header field"
                }));
            }
            _ => {}
        }
        i += 1;
    }

    if line_no == 0 {
        if let Kind::Request = kind {
            // Prefer 414 over 431 when it is the target that is too long,
            // even if that target runs past the head size limit.
            let rest = &buf[start..];
            let rest = &rest[..rest
                .len()
                .min(limits.url_bytes_max.saturating_add(START_LINE_SLACK))];
            let line = match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                Some(e) => &rest[..e],
                None => rest,
            };
            if target_len(line) > limits.url_bytes_max {
                return Err(HeadError::UriTooLong);
            }
        }
    }
    if buf.len() >= header_max {
        return Err(HeadError::HeaderTooLarge);
    }
    Ok(None)
}

fn bad(msg: &'static str) -> HeadError {
    HeadError::BadRequest(msg)
}

/// Length of the (possibly still partial) request target in a start line.
fn target_len(line: &[u8]) -> usize {
    match line.iter().position(|&b| b == b' ') {
        Some(sp) => {
            let t = &line[sp + 1..];
            t.iter().position(|&b| b == b' ').unwrap_or(t.len())
        }
        None => 0,
    }
}

/// `method SP request-target SP HTTP-version`, each separated by exactly one SP.
fn check_request_line(line: &[u8], url_max: usize) -> Result<(), HeadError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if method.is_empty() || target.is_empty() || version.is_empty() {
        return Err(bad("malformed request line"));
    }
    if !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("invalid character in method"));
    }
    check_version(version)?;
    if target.len() > url_max {
        return Err(HeadError::UriTooLong);
    }
    // RFC 9112 §3.2: the target is ASCII. Raw non-ASCII (which httparse
    // accepts) is rejected rather than forwarded to an upstream that may
    // decode it differently. HTAB is the only control char left here.
    if !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(bad("invalid character in request target"));
    }
    // Fragments are never sent on the wire (RFC 9110 §7.1); a '#' in the
    // target means a broken or malicious client.
    if target.contains(&b'#') {
        return Err(bad("fragment in request target"));
    }
    match target[0] {
        b'/' => Ok(()),
        b'*' if target == b"*" => {
            if method == b"OPTIONS" {
                Ok(())
            } else {
                Err(bad("asterisk-form target is only allowed for OPTIONS"))
            }
        }
        _ if starts_with_ignore_case(target, b"http://")
            || starts_with_ignore_case(target, b"https://") =>
        {
            // A gateway is not a forward proxy; absolute-form would also
            // require overriding Host with the target's authority.
            Err(bad("absolute-form request target not supported"))
        }
        _ => Err(bad("request target is not origin-form")),
    }
}

fn check_version(version: &[u8]) -> Result<(), HeadError> {
    match version {
        b"HTTP/1.1" | b"HTTP/1.0" => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', d1, b'.', d2]
            if d1.is_ascii_digit() && d2.is_ascii_digit() =>
        {
            Err(bad("unsupported HTTP version"))
        }
        _ => Err(bad("malformed HTTP version")),
    }
}

/// `HTTP-version SP 3DIGIT [SP reason-phrase]`. A missing reason phrase is
/// tolerated (common in the wild and unambiguous).
fn check_status_line(line: &[u8]) -> Result<(), HeadError> {
    let (version, rest) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => return Err(bad("malformed status line")),
    };
    check_version(version)?;
    match rest {
        [a, b, c] | [a, b, c, b' ', ..]
            if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
        {
            Ok(())
        }
        _ => Err(bad("malformed status code")),
    }
}

/// `field-name ":" OWS field-value OWS`. Value bytes were already checked
/// for control characters by the caller.
fn check_header_line(line: &[u8]) -> Result<(), HeadError> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(bad("header line without colon"));
    };
    let name = &line[..colon];
    match name {
        [] => Err(bad("empty header name")),
        // RFC 9112 §5.1: no whitespace between name and colon; some parsers
        // strip it, others treat it as part of the name — a smuggling classic.
        [.., b' ' | b'\t'] => Err(bad("whitespace between header name and colon")),
        _ if name.iter().any(|&b| b == b' ' || b == b'\t') => {
            Err(bad("whitespace inside header name"))
        }
        _ if !name.iter().all(|&b| is_tchar(b)) => Err(bad("invalid character in header name")),
        _ => Ok(()),
    }
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
