//! `[limits]` end to end: 431, 414, 413 (declared and chunked), 408 on a slow head, the body
//! read timeout, the idle keep-alive timeout, `requests_per_connection_max` and
//! `connections_per_worker_max`. Limits are set small so each test is fast; every wait is an
//! upper bound. Both drivers.

use std::time::{Duration, Instant};

use tollgate_tests::config::proxy_all;
use tollgate_tests::{get_request, Client, Closed, Gateway, Options, Upstream, DRIVERS};

/// Upper bound for a server-side timeout of ~300 ms to show.
const BOUND: Duration = Duration::from_secs(3);

fn start(up: &Upstream, limits: &str, driver: tollgate_tests::Driver) -> Gateway {
    Gateway::start(
        &proxy_all(&up.url(), &format!("[limits]\n{limits}\n")),
        driver,
    )
}

/// Sends `raw`, expects `status` with `connection: close`, then the close.
fn expect_status_and_close(c: &mut Client, raw: impl AsRef<[u8]>, status: u16, what: &str) {
    c.send(raw);
    let r = c
        .try_read_response()
        .unwrap_or_else(|e| panic!("{what}: expected {status}: {e}"));
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(r.json()["message"].is_string(), "{what}: JSON body");
    assert!(r.closes(), "{what}: {:?}", r.headers);
    c.assert_closed(BOUND);
}

#[test]
fn header_bytes_max_gives_431() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "header_bytes_max = 512", driver);
        let mut c = Client::connect(gw.addr("public"));
        let big = "a".repeat(1000);
        let raw = format!("GET /h HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n");
        expect_status_and_close(&mut c, raw, 431, &format!("{driver:?}"));
        // Just under the limit is fine.
        let mut c = Client::connect(gw.addr("public"));
        c.send(format!(
            "GET /h HTTP/1.1\r\nHost: h\r\nX-Ok: {}\r\n\r\n",
            "a".repeat(300)
        ));
        assert_eq!(c.read_response().status, 200, "{driver:?}");
        assert_eq!(up.requests().len(), 1);
    }
}

#[test]
fn url_bytes_max_gives_414() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "url_bytes_max = 64", driver);
        let mut c = Client::connect(gw.addr("public"));
        let raw = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "p".repeat(200));
        expect_status_and_close(&mut c, raw, 414, &format!("{driver:?}"));
        assert!(up.requests().is_empty());
    }
}

#[test]
fn body_bytes_max_gives_413() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "body_bytes_max = 100", driver);
        let addr = gw.addr("public");

        let mut c = Client::connect(addr);
        let raw = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n";
        expect_status_and_close(&mut c, raw, 413, &format!("{driver:?} content-length"));

        let mut c = Client::connect(addr);
        let chunk = "x".repeat(60);
        let raw = format!(
            "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n{chunk}\r\n3c\r\n{chunk}\r\n0\r\n\r\n"
        );
        expect_status_and_close(&mut c, raw, 413, &format!("{driver:?} chunked"));
        assert!(up.requests().is_empty(), "{driver:?}");

        // At the limit is accepted.
        let mut c = Client::connect(addr);
        c.send(format!(
            "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{}",
            "y".repeat(100)
        ));
        assert_eq!(c.read_response().status, 200, "{driver:?}");
    }
}

#[test]
fn slow_head_gives_408() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "header_read_timeout_ms = 300", driver);
        let mut c = Client::connect(gw.addr("public"));
        let started = Instant::now();
        c.send("GET /slow HTTP/1.1\r\nHost: h\r\nX-Partial: ");
        let r = c
            .try_read_response()
            .unwrap_or_else(|e| panic!("{driver:?}: {e}"));
        assert_eq!(r.status, 408, "{driver:?}: {}", r.text());
        assert!(started.elapsed() >= Duration::from_millis(250));
        c.assert_closed(BOUND);
        assert!(up.requests().is_empty());
    }
}

#[test]
fn stalled_body_is_cut_off() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "body_read_timeout_ms = 300", driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send("POST /stall HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab");
        let started = Instant::now();
        let bytes = c.assert_closed(BOUND);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{driver:?}"
        );
        // If anything was sent, it is an error response, never a 200.
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.starts_with("HTTP/1.1 200"), "{driver:?}: {text}");
    }
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "idle_timeout_ms = 300", driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/one"));
        assert_eq!(c.read_response().status, 200);
        let started = Instant::now();
        let rest = c.assert_closed(BOUND);
        assert!(
            rest.is_empty(),
            "{driver:?}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{driver:?}"
        );
    }
}

#[test]
fn requests_per_connection_max() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = start(&up, "requests_per_connection_max = 2", driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(format!(
            "{}{}{}",
            get_request("/1"),
            get_request("/2"),
            get_request("/3")
        ));
        let r1 = c.read_response();
        assert_eq!(r1.status, 200);
        assert!(!r1.closes(), "{driver:?}: first response closes");
        let r2 = c.read_response();
        assert_eq!(r2.status, 200);
        assert!(r2.closes(), "{driver:?}: second lacks connection: close");
        let rest = c.assert_closed(BOUND);
        assert!(
            rest.is_empty(),
            "{driver:?}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
        assert_eq!(targets, ["/1", "/2"], "{driver:?}");
    }
}

#[test]
fn connections_per_worker_max() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start_with(
            &proxy_all(&up.url(), "[limits]\nconnections_per_worker_max = 2\n"),
            Options::new(driver).workers(1),
        );
        let addr = gw.addr("public");
        let mut a = Client::connect(addr);
        let mut b = Client::connect(addr);
        for c in [&mut a, &mut b] {
            c.send(get_request("/held"));
            assert_eq!(c.read_response().status, 200, "{driver:?}");
        }
        // A third is closed at once (possibly after an error response).
        let mut extra = Client::connect(addr);
        let _ = extra.try_send(get_request("/extra"));
        match extra.wait_closed(BOUND) {
            Closed::Yes(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.starts_with("HTTP/1.1 200"),
                    "{driver:?}: served: {text}"
                );
            }
            Closed::No(bytes) => panic!(
                "{driver:?}: third connection not closed; got {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
        // Existing ones still work.
        for c in [&mut a, &mut b] {
            c.send(get_request("/still"));
            assert_eq!(c.read_response().status, 200, "{driver:?}");
        }
        // Closing one frees a slot.
        drop(a);
        let mut ok = None;
        for _ in 0..50 {
            let mut c = Client::connect(addr);
            if c.try_send(get_request("/later")).is_ok() {
                if let Ok(r) = c.try_read_response() {
                    ok = Some(r.status);
                    break;
                }
            }
        }
        assert_eq!(ok, Some(200), "{driver:?}: a slot was not freed");
    }
}

/// A full per-client bucket table does not lock newcomers out: with room for 4 buckets, 20
/// clients (20 loopback source addresses) that each spend their only token are all served —
/// each newcomer takes the place of a sampled bucket — and /metrics counts the evictions.
#[test]
fn a_full_client_bucket_table_evicts_instead_of_refusing() {
    for driver in DRIVERS {
        let config = tollgate_tests::config::mock_hello(
            "[admin]\nbind = \"127.0.0.1:0\"\n\n[limits]\nclient_buckets_max = 4\n",
        )
        .replace(
            "id = \"api\"\n",
            "id = \"api\"\nclient_throttle = { rate_per_s = 0.001, burst = 1 }\n",
        );
        let gw = Gateway::start(&config, driver);
        let addr = gw.addr("public");
        for n in 10..30u8 {
            let source = std::net::IpAddr::from([127, 0, 0, n]);
            let mut c = Client::connect_from(addr, source);
            c.send(get_request("/hello"));
            assert_eq!(c.read_response().status, 200, "{driver:?}: client {source}");
        }
        // The last client's bucket is still there: its second request is throttled.
        let mut c = Client::connect_from(addr, std::net::IpAddr::from([127, 0, 0, 29]));
        c.send(get_request("/hello"));
        assert_eq!(c.read_response().status, 429, "{driver:?}: bucket kept");
        let metrics = tollgate_tests::admin::scrape(tollgate_tests::admin::admin_addr(&gw));
        let value = |name: &str| {
            tollgate_tests::admin::value(&metrics, name, &[]).unwrap_or_else(|| panic!("{name}"))
        };
        assert!(value("tollgate_client_buckets") <= 4.0, "{driver:?}");
        assert_eq!(
            value("tollgate_client_buckets_evicted_total"),
            16.0,
            "{driver:?}"
        );
    }
}
