//! Unit tests for request-head parsing: every rejection rule, framing,
//! connection flags. Limits and split points are in `tests_limits.rs`.

use super::*;

fn parse(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_request(buf, &HeadLimits::default(), &mut Vec::new())
}

fn ok(buf: &[u8]) -> RequestHead {
    match parse(buf) {
        Ok(Some(h)) => h,
        other => panic!(
            "expected complete head for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn err(buf: &[u8]) -> HeadError {
    match parse(buf) {
        Err(e) => e,
        other => panic!(
            "expected error for {:?}, got {other:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

fn bad(buf: &[u8]) -> &'static str {
    match err(buf) {
        HeadError::BadRequest(m) => m,
        e => panic!(
            "expected 400 for {:?}, got {e:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// A request with the given header lines (each without CRLF).
fn req(lines: &[&str]) -> Vec<u8> {
    let mut s = String::from("POST /x HTTP/1.1\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

const SIMPLE: &[u8] = b"GET /a/b%20c?x=1&y HTTP/1.1\r\nHost: example.com \r\nAccept: */*\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n";

#[test]
fn simple_get() {
    let mut headers = Vec::new();
    let h = parse_request(SIMPLE, &HeadLimits::default(), &mut headers)
        .unwrap()
        .unwrap();
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.method_span.get(SIMPLE), b"GET");
    assert_eq!(h.target.get(SIMPLE), b"/a/b%20c?x=1&y");
    assert_eq!(h.path.get(SIMPLE), b"/a/b%20c");
    assert_eq!(h.query.map(|q| q.get(SIMPLE)), Some(&b"x=1&y"[..]));
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.host.map(|s| s.get(SIMPLE)), Some(&b"example.com"[..]));
    assert_eq!(h.framing, BodyFraming::None);
    assert!(h.keep_alive && !h.upgrade && !h.expect_continue);
    assert_eq!(h.head_len, SIMPLE.len());
    assert_eq!(headers.len(), 4);
    assert_eq!(headers[2].name.get(SIMPLE), b"X-Dup");
    assert_eq!(headers[3].value.get(SIMPLE), b"2");
    assert_eq!(find_header(SIMPLE, &headers, "x-dup"), Some(&b"1"[..]));
    assert_eq!(find_header(SIMPLE, &headers, "ACCEPT"), Some(&b"*/*"[..]));
    assert_eq!(find_header(SIMPLE, &headers, "nope"), None);
}

#[test]
fn query_forms() {
    let h = ok(b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.query, Some(Span { start: 7, end: 7 }));
    assert!(h.query.is_some_and(|q| q.is_empty()));
    let h = ok(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.query, None);
    let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.method, Method::Options);
}

#[test]
fn pipelined_bytes_not_counted() {
    let mut buf = SIMPLE.to_vec();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(ok(&buf).head_len, SIMPLE.len());
}

#[test]
fn leading_empty_lines_skipped() {
    let h = ok(b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(h.head_len, 31);
    assert_eq!(h.method_span, Span { start: 4, end: 7 });
    assert_eq!(parse(b"\r\n"), Ok(None));
    assert_eq!(parse(b"\r"), Ok(None));
    assert_eq!(
        bad(b"\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        "bare LF line ending in head"
    );
}

#[test]
fn methods() {
    let h = ok(b"PURGE / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((h.method, h.method.as_str()), (Method::Other, None));
    assert_eq!(
        ok(b"get / HTTP/1.1\r\nHost: h\r\n\r\n").method,
        Method::Other
    );
    assert!(Method::Put.is_idempotent() && !Method::Post.is_idempotent());
    assert!(!Method::Patch.is_idempotent() && !Method::Connect.is_idempotent());
    assert_eq!(Method::Delete.as_str(), Some("DELETE"));
}

#[test]
fn framing() {
    assert_eq!(
        ok(&req(&["Host: h", "Content-Length: 42"])).framing,
        BodyFraming::Length(42)
    );
    assert_eq!(
        ok(&req(&["Host: h", "Content-Length: 0"])).framing,
        BodyFraming::Length(0)
    );
    assert_eq!(
        ok(&req(&["Host: h", "Content-Length:  7  "])).framing,
        BodyFraming::Length(7)
    );
    let max = req(&["Host: h", "Content-Length: 18446744073709551615"]);
    assert_eq!(ok(&max).framing, BodyFraming::Length(u64::MAX));
    assert_eq!(
        ok(&req(&["Host: h", "Transfer-Encoding: chunked"])).framing,
        BodyFraming::Chunked
    );
    assert_eq!(
        ok(&req(&["Host: h", "transfer-encoding: ChUnKeD"])).framing,
        BodyFraming::Chunked
    );
}

#[test]
fn rejects_cl_and_te() {
    let m = "both Content-Length and Transfer-Encoding";
    assert_eq!(
        bad(&req(&[
            "Host: h",
            "Content-Length: 5",
            "Transfer-Encoding: chunked"
        ])),
        m
    );
    assert_eq!(
        bad(&req(&[
            "Host: h",
            "Transfer-Encoding: chunked",
            "Content-Length: 5"
        ])),
        m
    );
}

#[test]
fn rejects_bad_content_length() {
    let dup = "duplicate Content-Length header";
    assert_eq!(
        bad(&req(&["Host: h", "Content-Length: 5", "Content-Length: 5"])),
        dup
    );
    assert_eq!(
        bad(&req(&["Host: h", "Content-Length: 5", "content-length: 6"])),
        dup
    );
    assert_eq!(
        bad(&req(&["Host: h", "Content-Length: 5, 5"])),
        "Content-Length list not allowed"
    );
    assert_eq!(
        bad(&req(&["Host: h", "Content-Length:"])),
        "empty Content-Length"
    );
    assert_eq!(
        bad(&req(&["Host: h", "Content-Length:   "])),
        "empty Content-Length"
    );
    let nan = "Content-Length is not a decimal number";
    for v in ["+5", "-5", "5 5", "0x5", "5a", "a", "５", "5\t5"] {
        assert_eq!(
            bad(&req(&["Host: h", &format!("Content-Length: {v}")])),
            nan,
            "{v}"
        );
    }
    let big = req(&["Host: h", "Content-Length: 18446744073709551616"]);
    assert_eq!(bad(&big), "Content-Length out of range");
}

#[test]
fn transfer_encoding_rules() {
    let te = |v: &str| err(&req(&["Host: h", &format!("Transfer-Encoding: {v}")]));
    assert_eq!(te("gzip"), HeadError::UnsupportedTransferCoding);
    assert_eq!(te("gzip, chunked"), HeadError::UnsupportedTransferCoding);
    assert_eq!(te("chunked;q=1"), HeadError::UnsupportedTransferCoding);
    assert_eq!(te("identity"), HeadError::UnsupportedTransferCoding);
    assert_eq!(te("gzip").status(), 501);
    let not_last = HeadError::BadRequest("chunked is not the final transfer coding");
    assert_eq!(te("chunked, gzip"), not_last);
    assert_eq!(te("chunked, chunked"), not_last);
    assert_eq!(
        te(", chunked"),
        HeadError::BadRequest("empty element in Transfer-Encoding")
    );
    assert_eq!(
        te(""),
        HeadError::BadRequest("empty element in Transfer-Encoding")
    );
    let two = req(&[
        "Host: h",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked",
    ]);
    assert_eq!(bad(&two), "multiple Transfer-Encoding headers");
    let v10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(bad(v10), "Transfer-Encoding in HTTP/1.0 request");
}

#[test]
fn rejects_obs_fold_and_leading_whitespace() {
    assert_eq!(
        bad(&req(&["Host: h", "X-A: 1", " folded"])),
        "obsolete line folding (obs-fold) in header"
    );
    assert_eq!(
        bad(&req(&["Host: h", "X-A: 1", "\tfolded"])),
        "obsolete line folding (obs-fold) in header"
    );
    assert_eq!(
        bad(&req(&[" Host: h"])),
        "whitespace before the first header field"
    );
}

#[test]
fn rejects_bare_lf_and_cr() {
    let lf = "bare LF line ending in head";
    assert_eq!(bad(b"GET / HTTP/1.1\nHost: h\r\n\r\n"), lf);
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: h\n\r\n"), lf);
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: h\r\n\n"), lf);
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: h\n\n"), lf);
    assert_eq!(bad(b"GET / HTTP/1.1\r\nX: a\nb\r\nHost: h\r\n\r\n"), lf);
    let cr = "CR not followed by LF in head";
    assert_eq!(bad(b"GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n"), cr);
    assert_eq!(bad(b"GET / HTTP/1.1\r\nHost: h\r\n\r\r"), cr);
    // Detected before the head is complete.
    assert_eq!(bad(b"GET / HTTP/1.1\n"), lf);
}

#[test]
fn rejects_control_chars() {
    let m = "control character in header field";
    for c in [0u8, 1, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f] {
        let mut b = b"GET / HTTP/1.1\r\nHost: h\r\nX: a".to_vec();
        b.push(c);
        b.extend_from_slice(b"b\r\n\r\n");
        assert_eq!(bad(&b), m, "{c:#x}");
    }
    // HTAB and obs-text are fine in values.
    assert!(parse(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\xff\r\n\r\n").is_ok_and(|h| h.is_some()));
    assert_eq!(
        bad(b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n"),
        "control character in start line"
    );
    assert_eq!(
        bad(b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n"),
        "control character in start line"
    );
    assert_eq!(
        bad(b"\x16\x03\x01\x02\x00"),
        "control character in start line"
    );
}

#[test]
fn rejects_bad_header_names() {
    assert_eq!(
        bad(&req(&["Host: h", "X-A : 1"])),
        "whitespace between header name and colon"
    );
    assert_eq!(
        bad(&req(&["Host: h", "X-A\t: 1"])),
        "whitespace between header name and colon"
    );
    assert_eq!(
        bad(&req(&["Host: h", "X A: 1"])),
        "whitespace inside header name"
    );
    assert_eq!(bad(&req(&["Host: h", ": 1"])), "empty header name");
    assert_eq!(
        bad(&req(&["Host: h", "X-A 1"])),
        "header line without colon"
    );
    assert_eq!(
        bad(&req(&["Host: h", "X(A): 1"])),
        "invalid character in header name"
    );
    assert_eq!(
        bad(&req(&["Host: h", "Ä: 1"])),
        "invalid character in header name"
    );
}

#[test]
fn host_rules() {
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\n\r\n"),
        "missing Host header in HTTP/1.1 request"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
        "multiple Host headers"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
        "multiple Host headers"
    );
    let h = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        (h.version, h.host, h.keep_alive),
        (Version::Http10, None, false)
    );
    for v in [
        "a b",
        "a/b",
        "a@b",
        "a,b",
        "a?b",
        "a\"b",
        "a\\b",
        "a\";for=6.6.6.6",
    ] {
        let b = format!("GET / HTTP/1.1\r\nHost: {v}\r\n\r\n");
        assert_eq!(bad(b.as_bytes()), "invalid Host header value", "{v}");
    }
    assert!(ok(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")
        .host
        .is_some());
}

/// Host values by outcome: `None` accepted, else the 400 message.
#[test]
fn host_port_and_empty_rules() {
    let table: &[(&str, Option<&str>)] = &[
        ("example.com", None),
        ("example.com:8080", None),
        ("example.com:0", None),
        ("example.com:65535", None),
        ("example.com:080", None),
        // RFC 3986 `port = *DIGIT`: an empty port is the default one.
        ("example.com:", None),
        ("10.0.0.1:443", None),
        ("[::1]", None),
        ("[::1]:8080", None),
        ("[::1]:", None),
        ("[fe80::1%25eth0]:80", None),
        ("", Some("empty Host header value")),
        (":8080", Some("empty host name in Host header")),
        ("[]:80", Some("empty host name in Host header")),
        ("host:abc", Some("invalid port in Host header")),
        ("host:99999", Some("invalid port in Host header")),
        ("host:65536", Some("invalid port in Host header")),
        ("host:+80", Some("invalid port in Host header")),
        ("host:80:80", Some("invalid port in Host header")),
        ("host:8a", Some("invalid port in Host header")),
        ("[::1]:x", Some("invalid port in Host header")),
        ("[::1]:99999", Some("invalid port in Host header")),
        ("[::1", Some("invalid Host header value")),
        ("[::1]x", Some("invalid Host header value")),
        ("[::1]]", Some("invalid Host header value")),
        ("a]b", Some("invalid Host header value")),
        ("a[b]", Some("invalid Host header value")),
    ];
    for (host, want) in table {
        let b = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        match want {
            None => assert!(parse(b.as_bytes()).is_ok_and(|h| h.is_some()), "{host:?}"),
            Some(m) => assert_eq!(bad(b.as_bytes()), *m, "{host:?}"),
        }
    }
    // Whitespace-only is empty after trimming; HTTP/1.0 gets no pass for an empty value.
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nHost:   \r\n\r\n"),
        "empty Host header value"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.0\r\nHost:\r\n\r\n"),
        "empty Host header value"
    );
}

#[test]
fn rejects_bad_request_line() {
    let mal = "malformed request line";
    for line in [
        "GET  / HTTP/1.1",
        "GET / HTTP/1.1 ",
        " GET / HTTP/1.1",
        "GET /  HTTP/1.1",
        "GET /",
        "GET / ",
        "GET",
        "GET /a b HTTP/1.1",
    ] {
        let b = format!("{line}\r\nHost: h\r\n\r\n");
        assert_eq!(bad(b.as_bytes()), mal, "{line:?}");
    }
    let ver = |v: &str| bad(format!("GET / {v}\r\nHost: h\r\n\r\n").as_bytes());
    assert_eq!(ver("HTTP/1.2"), "unsupported HTTP version");
    assert_eq!(ver("HTTP/2.0"), "unsupported HTTP version");
    assert_eq!(ver("http/1.1"), "malformed HTTP version");
    assert_eq!(ver("HTTP/1.1x"), "malformed HTTP version");
    assert_eq!(ver("HTTP/1"), "malformed HTTP version");
    let tgt = |t: &str| bad(format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    assert_eq!(
        tgt("http://h/a"),
        "absolute-form request target not supported"
    );
    assert_eq!(
        tgt("HTTPS://h/a"),
        "absolute-form request target not supported"
    );
    assert_eq!(tgt("*"), "asterisk-form target is only allowed for OPTIONS");
    assert_eq!(tgt("a/b"), "request target is not origin-form");
    assert_eq!(tgt("/a\tb"), "invalid character in request target");
    assert_eq!(tgt("/é"), "invalid character in request target");
    assert_eq!(tgt("/a#b"), "fragment in request target");
    assert_eq!(
        bad(b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
        "request target is not origin-form"
    );
    assert_eq!(
        bad(b"GE(T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        "invalid character in method"
    );
    assert_eq!(
        bad(b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n"),
        "invalid character in method"
    );
}

#[test]
fn connection_and_upgrade() {
    let h = ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(h.keep_alive && h.upgrade);
    let h = ok(&req(&["Host: h", "Connection: foo,  CLOSE ,bar"]));
    assert!(!h.keep_alive);
    let h = ok(&req(&["Host: h", "Connection: upgrade"]));
    assert!(!h.upgrade, "Upgrade header required");
    let h = ok(&req(&["Host: h", "Upgrade: h2c"]));
    assert!(!h.upgrade, "Connection: upgrade required");
    let h = ok(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(!h.keep_alive);
    let h = ok(&req(&["Host: h", "Connection: keep-alive-ish"]));
    assert!(h.keep_alive);
    assert!(connection_tokens_contain(
        b"a,,b , Keep-Alive",
        "keep-alive"
    ));
    assert!(!connection_tokens_contain(b"keep-alive2", "keep-alive"));
    assert!(is_hop_by_hop(b"Transfer-Encoding") && is_hop_by_hop(b"TE"));
    assert!(is_hop_by_hop(b"proxy-connection") && !is_hop_by_hop(b"Host"));
}

#[test]
fn expect_rules() {
    assert!(ok(&req(&["Host: h", "Expect: 100-Continue"])).expect_continue);
    assert_eq!(
        err(&req(&["Host: h", "Expect: 200-ok"])),
        HeadError::ExpectationFailed
    );
    assert_eq!(err(&req(&["Host: h", "Expect: 200-ok"])).status(), 417);
    let h = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(!h.expect_continue, "ignored for HTTP/1.0");
}

#[test]
fn error_messages_and_statuses() {
    assert_eq!(HeadError::BadRequest("x").message(), "x");
    assert_eq!(HeadError::BadRequest("x").status(), 400);
    assert_eq!(HeadError::UnsupportedTransferCoding.status(), 501);
    assert!(!HeadError::UriTooLong.message().is_empty());
    let s = Span { start: 3, end: 1 };
    assert!(s.is_empty() && s.get(b"abcdef").is_empty());
    assert_eq!(s.len(), 0);
    assert!(Span { start: 2, end: 99 }.get(b"abc").is_empty());
}
