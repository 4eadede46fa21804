//! Unit tests for response-head parsing and response framing.

use super::*;

fn parse(buf: &[u8], head: bool) -> Result<Option<ResponseHead>, HeadError> {
    parse_response(buf, &HeadLimits::default(), &mut Vec::new(), head)
}

fn ok(buf: &[u8]) -> ResponseHead {
    match parse(buf, false) {
        Ok(Some(h)) => h,
        other => panic!(
            "expected head for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn bad(buf: &[u8]) -> &'static str {
    match parse(buf, false) {
        Err(HeadError::BadRequest(m)) => m,
        other => panic!(
            "expected error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

#[test]
fn content_length_response() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world!";
    let mut headers = Vec::new();
    let h = parse_response(buf, &HeadLimits::default(), &mut headers, false)
        .unwrap()
        .unwrap();
    assert_eq!((h.status, h.version), (200, Version::Http11));
    assert_eq!(h.framing, ResponseFraming::Length(12));
    assert!(h.keep_alive);
    assert_eq!(h.head_len, buf.len() - 12);
    assert_eq!(find_header(buf, &headers, "server"), Some(&b"x"[..]));
}

#[test]
fn framing_rules() {
    let f = |b: &[u8], head: bool| parse(b, head).map(|h| h.map(|h| (h.framing, h.keep_alive)));
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        f(chunked, false),
        Ok(Some((ResponseFraming::Chunked, true)))
    );
    assert_eq!(f(chunked, true), Ok(Some((ResponseFraming::None, true))));
    let close = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    assert_eq!(
        f(close, false),
        Ok(Some((ResponseFraming::UntilClose, false)))
    );
    for status in [
        "100 Continue",
        "101 Switching Protocols",
        "204 No Content",
        "304 Not Modified",
    ] {
        let b = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            f(b.as_bytes(), false),
            Ok(Some((ResponseFraming::None, true))),
            "{status}"
        );
    }
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(f(head, true), Ok(Some((ResponseFraming::None, true))));
    let v10 = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(f(v10, false), Ok(Some((ResponseFraming::Length(5), false))));
    let v10ka = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(
        f(v10ka, false),
        Ok(Some((ResponseFraming::Length(5), true)))
    );
    let closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(
        f(closing, false),
        Ok(Some((ResponseFraming::Length(5), false)))
    );
    // No reason phrase is tolerated.
    assert_eq!(ok(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n").status, 404);
    assert_eq!(
        ok(b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n").status,
        404
    );
}

#[test]
fn rejects_ambiguous_framing() {
    let both = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(bad(both), "both Content-Length and Transfer-Encoding");
    let dup = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(bad(dup), "duplicate Content-Length header");
    assert_eq!(
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: 5,5\r\n\r\n"),
        "Content-Length list not allowed"
    );
    assert_eq!(
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
        "Content-Length is not a decimal number"
    );
    assert_eq!(
        bad(b"HTTP/1.1 304 OK\r\nContent-Length: x\r\n\r\n"),
        "Content-Length is not a decimal number"
    );
    let gz = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(bad(gz), "unsupported Transfer-Encoding in response");
    let nl = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(bad(nl), "chunked is not the final transfer coding");
    let v10 = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(bad(v10), "Transfer-Encoding in HTTP/1.0 response");
}

#[test]
fn same_strictness_as_requests() {
    assert_eq!(
        bad(b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
        "bare LF line ending in head"
    );
    assert_eq!(
        bad(b"HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n"),
        "control character in header field"
    );
    assert_eq!(
        bad(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
        "obsolete line folding (obs-fold) in header"
    );
    assert_eq!(
        bad(b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
        "whitespace between header name and colon"
    );
    assert_eq!(bad(b"\r\nHTTP/1.1 200 OK\r\n\r\n"), "empty start line");
    assert_eq!(bad(b"HTTP/1.1 20 OK\r\n\r\n"), "malformed status code");
    assert_eq!(bad(b"HTTP/1.1 2000 OK\r\n\r\n"), "malformed status code");
    assert_eq!(bad(b"HTTP/1.1 099 OK\r\n\r\n"), "invalid status code");
    assert_eq!(bad(b"HTTP/1.1  200 OK\r\n\r\n"), "malformed status code");
    assert_eq!(bad(b"HTTP/1.1\r\n\r\n"), "malformed status line");
    assert_eq!(bad(b"HTTP/2 200 OK\r\n\r\n"), "malformed HTTP version");
    assert_eq!(bad(b"HTTP/1.2 200 OK\r\n\r\n"), "unsupported HTTP version");
    assert_eq!(bad(b"ICY 200 OK\r\n\r\n"), "malformed HTTP version");
}

/// Only 100..=599 are status codes (RFC 9110 §15); the http integration answers 502
/// (`INTEGRATION_FAILURE`) to any parse error and drops that upstream connection.
#[test]
fn status_code_range() {
    for status in [100u16, 200, 404, 599] {
        let b = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(ok(b.as_bytes()).status, status);
    }
    for status in ["000", "099", "600", "999"] {
        let b = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(bad(b.as_bytes()), "invalid status code", "{status}");
    }
}

#[test]
fn limits_and_incomplete() {
    let lim = HeadLimits {
        header_bytes_max: 40,
        ..HeadLimits::default()
    };
    let mut b = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
    b.resize(40, b'v');
    assert_eq!(
        parse_response(&b, &lim, &mut Vec::new(), false),
        Err(HeadError::HeaderTooLarge)
    );
    let full = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc";
    let want = ok(full);
    for k in 0..full.len() {
        let got = parse(&full[..k], false);
        if k < want.head_len {
            assert_eq!(got, Ok(None), "prefix {k}");
        } else {
            assert_eq!(got, Ok(Some(want)), "prefix {k}");
        }
    }
}
