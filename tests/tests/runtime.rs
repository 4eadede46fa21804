//! The gateway's own clock (moved by the test-only switch), the whole-request timeout, and
//! IPv6 listeners and upstreams. Both drivers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tollgate_tests::config::{listener, mock_hello, proxy_all_with};
use tollgate_tests::{
    get, get_request, is, Behaviour, Client, Closed, Gate, Gateway, Options, Upstream, DRIVERS,
};

/// Sends one request to the test clock control socket; returns the clock in ms.
fn clock(addr: SocketAddr, target: &str) -> u128 {
    let mut s = TcpStream::connect(addr).expect("connect clock control");
    write!(s, "POST {target} HTTP/1.1\r\nHost: clock\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split("\r\n\r\n").nth(1).expect("body");
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    v["now_ms"].as_u64().expect("now_ms") as u128
}

fn year_of(date: &str) -> u32 {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    date.split_whitespace()
        .nth(3)
        .and_then(|y| y.parse().ok())
        .unwrap_or_else(|| panic!("date {date:?}"))
}

#[test]
fn test_clock_moves_the_gateways_clock_without_sleeping() {
    for driver in DRIVERS {
        let gw = Gateway::start_with(&mock_hello(""), Options::new(driver).test_clock());
        let event = gw
            .wait_for(|e| is(e, "test clock control"), Duration::from_secs(5))
            .expect("the switch announces itself");
        assert_eq!(event["level"], "WARN", "the switch logs loudly");
        let control: SocketAddr = event["addr"]
            .as_str()
            .expect("addr")
            .parse()
            .expect("socket address");
        let before = get(gw.addr("public"), "/hello");
        let year_before = year_of(before.header("date").expect("date header"));
        let start = clock(control, "/clock");
        let moved = clock(control, "/clock?advance_ms=63072000000"); // two years
        assert!(moved >= start + 63_072_000_000, "{start} -> {moved}");
        // Workers pick the new time up at their next date refresh (every 50 ms): ask until
        // the new year shows, up to a deadline.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut year_after = year_before;
        while year_after == year_before && Instant::now() < deadline {
            year_after = year_of(
                get(gw.addr("public"), "/hello")
                    .header("date")
                    .expect("date header"),
            );
        }
        assert!(
            year_after > year_before,
            "{driver:?}: {year_before} -> {year_after}"
        );
    }
}

#[test]
fn without_the_switch_there_is_no_clock_control() {
    let gw = Gateway::start(&mock_hello(""), DRIVERS[0]);
    assert_eq!(gw.count(|e| is(e, "test clock control")), 0);
}

#[test]
fn request_timeout_closes_a_request_that_runs_too_long() {
    for driver in DRIVERS {
        let gate = Gate::new();
        let up = Upstream::start(Behaviour::echo().gate(gate.clone()));
        let gw = Gateway::start(
            &proxy_all_with(
                &up.url(),
                "[limits]\nrequest_timeout_ms = 300\n",
                "timeout_ms = 20000",
            ),
            driver,
        );
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/stuck"));
        assert!(gate.wait_arrivals(1, Duration::from_secs(5)));
        // No response head yet when the deadline passes: the client hears 504, then the close.
        let r = c.read_response();
        assert_eq!(r.status, 504, "{driver:?}: {}", r.text());
        assert!(r.closes());
        let closed = c.wait_closed(Duration::from_secs(5));
        assert!(matches!(closed, Closed::Yes(_)), "{driver:?}: {closed:?}");
        gate.open();
        // Other requests are unaffected.
        assert_eq!(get(gw.addr("public"), "/after").status, 200);
    }
}

/// A fixed-response HTTP/1.1 server on [::1] (keep-alive, one thread per connection).
fn ipv6_upstream() -> SocketAddr {
    let listener = TcpListener::bind("[::1]:0").expect("bind [::1]");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut filled = 0;
                while let Ok(n) = stream.read(&mut buf[filled..]) {
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                        filled = 0;
                        let body = "v6";
                        let r = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(r.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn ipv6_listener_and_upstream() {
    for driver in DRIVERS {
        let up = ipv6_upstream();
        let config = proxy_all_with(&format!("http://{up}"), "", "").replace(
            &listener("public"),
            "[[listeners]]\nname = \"public\"\nbind = \"[::1]:0\"\n\n",
        );
        let gw = Gateway::start(&config, driver);
        let addr = gw.addr("public");
        assert!(addr.is_ipv6(), "{addr}");
        let r = get(addr, "/x");
        assert_eq!((r.status, r.text().as_str()), (200, "v6"), "{driver:?}");
        assert!(r.header("x-request-id").is_some());
    }
}

/// Upstream host names are resolved by the control thread (workers only get addresses): an
/// integration URL naming `localhost` reaches the upstream.
#[test]
fn upstream_names_are_resolved_for_the_workers() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let url = format!("http://localhost:{}", up.addr().port());
        let gw = Gateway::start(&proxy_all_with(&url, "", ""), driver);
        let r = get(gw.addr("public"), "/named");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(
            up.requests()[0].header("host"),
            Some(format!("localhost:{}", up.addr().port()).as_str())
        );
    }
}
