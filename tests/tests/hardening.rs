//! Inputs that must not slip through: dot segments that would match one route and reach
//! another path upstream, a Host header that would inject parameters into `Forwarded`, and a
//! streamed upload that breaks its limit after the upstream was contacted. Both drivers.

use std::time::Duration;

use tollgate_tests::config::proxy_all;
use tollgate_tests::{get, request, Client, Gateway, Upstream, DRIVERS};

#[test]
fn dot_segments_are_refused_before_routing() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), ""), driver);
        for path in [
            "/public/../admin",
            "/a/./b",
            "/public/%2e%2e/admin",
            "/x/.%2E",
        ] {
            let r = get(gw.addr("public"), path);
            assert_eq!(r.status, 400, "{driver:?} {path}: {}", r.text());
        }
        assert!(up.requests().is_empty(), "nothing reached the upstream");
        assert_eq!(
            get(gw.addr("public"), "/public/...").status,
            200,
            "three dots are a name"
        );
    }
}

#[test]
fn host_header_cannot_inject_forwarded_parameters() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), ""), driver);
        let raw = "GET /x HTTP/1.1\r\nHost: a\";for=6.6.6.6;x=\"\r\n\r\n";
        let r = request(gw.addr("public"), raw);
        assert_eq!(r.status, 400, "{driver:?}");
        assert!(up.requests().is_empty());
    }
}

#[test]
fn streamed_upload_over_the_limit_gets_413() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let limits = "[limits]\nbody_bytes_max = 100000\nbody_buffer_bytes = 1024\n";
        let gw = Gateway::start(&proxy_all(&up.url(), limits), driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        // 2 KiB passes the buffering threshold (the upstream is contacted), then the body goes
        // past body_bytes_max.
        let chunk = format!("800\r\n{}\r\n", "x".repeat(0x800));
        let mut sent = 0;
        while sent < 120_000 {
            if c.try_send(&chunk).is_err() {
                break;
            }
            sent += 0x800;
        }
        let r = c.try_read_response().expect("a response, not a bare close");
        assert_eq!(r.status, 413, "{driver:?}: {}", r.text());
        assert!(r.closes());
        c.assert_closed(Duration::from_secs(5));
    }
}
