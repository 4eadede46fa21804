//! Request smuggling and malformed framing: every ambiguous or malformed request is answered
//! 400 (501 for an unknown transfer coding), the connection is closed, and nothing reaches the
//! upstream. Also: a request after `Connection: close` in the same write is not processed.
//! All cases run on each driver; failures are collected and reported together.

use std::time::Duration;

use tollgate_tests::config::proxy_all;
use tollgate_tests::{get, Client, Closed, Gateway, Upstream, DRIVERS};

/// (name, raw request, expected status).
fn cases() -> Vec<(&'static str, Vec<u8>, u16)> {
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let c = |name: &'static str, raw: String, status: u16| (name, raw.into_bytes(), status);
    vec![
        c(
            "CL+TE",
            format!("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
        ),
        c(
            "TE+CL",
            format!("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
        ),
        c(
            "duplicate CL",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".into(),
            400,
        ),
        c(
            "differing CL",
            format!("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\n{smuggled}"),
            400,
        ),
        c(
            "CL list",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc".into(),
            400,
        ),
        c(
            "CL +5",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nabcde".into(),
            400,
        ),
        c(
            "CL -1",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n".into(),
            400,
        ),
        c(
            "CL with inner space",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n0123456789".into(),
            400,
        ),
        c(
            "CL hex",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nabcde".into(),
            400,
        ),
        c(
            "CL overflow",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n".into(),
            400,
        ),
        c(
            "TE gzip",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            501,
        ),
        c(
            "TE chunked, gzip",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        c(
            "TE chunked twice",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        c(
            "TE xchunked",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".into(),
            501,
        ),
        c(
            "TE in HTTP/1.0",
            format!("POST /x HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
        ),
        c(
            "invalid chunk size",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".into(),
            400,
        ),
        c(
            "overflowing chunk size",
            "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000000001\r\na\r\n0\r\n\r\n".into(),
            400,
        ),
        c(
            "chunk data longer than size",
            format!("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n{smuggled}"),
            400,
        ),
        c(
            "obs-fold",
            "GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\r\n folded\r\n\r\n".into(),
            400,
        ),
        c(
            "bare LF",
            "GET /x HTTP/1.1\nHost: h\n\n".into(),
            400,
        ),
        c(
            "bare CR in value",
            "GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n".into(),
            400,
        ),
        c(
            "NUL in value",
            "GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n".into(),
            400,
        ),
        c(
            "space before colon",
            "GET /x HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n".into(),
            400,
        ),
        c(
            "space before colon on Content-Length",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc".into(),
            400,
        ),
        c(
            "missing Host",
            "GET /x HTTP/1.1\r\nX-A: b\r\n\r\n".into(),
            400,
        ),
        c(
            "duplicate Host",
            "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            400,
        ),
        c(
            "bad request line (double space)",
            "GET  /x HTTP/1.1\r\nHost: h\r\n\r\n".into(),
            400,
        ),
        c(
            "bad request line (no version)",
            "GET /x\r\nHost: h\r\n\r\n".into(),
            400,
        ),
        c(
            "HTTP/1.2",
            "GET /x HTTP/1.2\r\nHost: h\r\n\r\n".into(),
            400,
        ),
        c(
            "HTTP/2.0",
            "GET /x HTTP/2.0\r\nHost: h\r\n\r\n".into(),
            400,
        ),
    ]
}

#[test]
fn malformed_requests_are_rejected_and_never_forwarded() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), ""), driver);
        let addr = gw.addr("public");
        let mut failures = Vec::new();
        for (name, raw, want) in cases() {
            let mut c = Client::connect(addr);
            if c.try_send(&raw).is_err() {
                failures.push(format!("{name}: write failed"));
                continue;
            }
            match c.try_read_response() {
                Ok(r) if r.status == want => {
                    if !r.closes() {
                        failures.push(format!("{name}: {want} without `connection: close`"));
                    }
                    match c.wait_closed(Duration::from_secs(3)) {
                        Closed::Yes(rest) if rest.is_empty() => {}
                        Closed::Yes(rest) | Closed::No(rest) if !rest.is_empty() => {
                            failures.push(format!(
                                "{name}: more bytes after the {want}: {:?}",
                                String::from_utf8_lossy(&rest)
                            ))
                        }
                        _ => failures.push(format!("{name}: connection not closed")),
                    }
                }
                Ok(r) => failures.push(format!(
                    "{name}: expected {want}, got {} {}",
                    r.status,
                    r.text()
                )),
                Err(e) => failures.push(format!("{name}: expected {want}, got {e}")),
            }
        }
        // A well-formed request afterwards, so anything forwarded earlier is visible.
        assert_eq!(get(addr, "/sentinel").status, 200);
        let leaked: Vec<String> = up
            .requests()
            .iter()
            .filter(|r| r.target != "/sentinel")
            .map(|r| format!("{} {} {:?}", r.method, r.target, r.headers))
            .collect();
        if !leaked.is_empty() {
            failures.push(format!("requests reached the upstream: {leaked:?}"));
        }
        assert!(
            failures.is_empty(),
            "{driver:?}: {} problem(s):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
}

#[test]
fn nothing_after_connection_close_is_processed() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), ""), driver);
        let addr = gw.addr("public");
        let mut c = Client::connect(addr);
        c.send(
            "GET /first HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n\
             GET /second HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        assert!(r.closes(), "{driver:?}: {:?}", r.headers);
        let rest = c.assert_closed(Duration::from_secs(5));
        assert!(
            rest.is_empty(),
            "{driver:?}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(get(addr, "/sentinel").status, 200);
        let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
        assert_eq!(targets, ["/first", "/sentinel"], "{driver:?}");
    }
}
