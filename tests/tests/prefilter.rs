//! The pre-filter's userspace enforcement end to end on loopback (127.0.0.x sources): deny
//! and allow lists at accept time, per-source connection rate, escalation from repeated 404s
//! and 429s to a timed block and back after expiry (moved with the test clock), the real
//! client behind PROXY protocol and behind trusted `X-Forwarded-For`, and the admin API.
//! Both drivers. (The XDP program has its own tests in `ebpf/tests`.)

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tollgate_tests::config::mock_hello;
use tollgate_tests::usage::{advance_clock, clock_control};
use tollgate_tests::{get_request, is, Client, Closed, Gateway, Options, DRIVERS};

const DEADLINE: Duration = Duration::from_secs(5);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

/// A GET from `source`; Some(status) when answered, None when closed without an answer.
/// Panics when the gateway neither answers nor closes within the deadline (a hang is no
/// refusal).
fn try_get(addr: SocketAddr, source: &str, path: &str) -> Option<u16> {
    let mut c = Client::connect_from(addr, ip(source));
    // The gateway may close before reading: the request may not get through.
    let _ = c.try_send(format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    ));
    match c.wait_closed(DEADLINE) {
        Closed::Yes(bytes) if bytes.is_empty() => None,
        Closed::Yes(bytes) | Closed::No(bytes) if !bytes.is_empty() => {
            let text = String::from_utf8_lossy(&bytes);
            let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
            Some(status.unwrap_or_else(|| panic!("not an HTTP answer: {text:?}")))
        }
        _ => panic!("{source}: no answer and no close within {DEADLINE:?}"),
    }
}

#[test]
fn deny_and_allow_lists_refuse_at_accept_time_before_any_byte_is_read() {
    for driver in DRIVERS {
        let toml = mock_hello(
            "[prefilter]\nmode = \"userspace\"\ndeny = [\"127.0.0.0/29\"]\nallow = [\"127.0.0.2\"]\n",
        );
        let gw = Gateway::start(&toml, driver);
        let addr = gw.addr("public");
        let mut denied = Client::connect_from(addr, ip("127.0.0.3"));
        // Closed without reading the request: nothing comes back.
        assert!(denied.assert_closed(DEADLINE).is_empty(), "{driver:?}");
        assert_eq!(
            try_get(addr, "127.0.0.2", "/hello"),
            Some(200),
            "allow beats deny"
        );
        assert_eq!(
            try_get(addr, "127.0.0.9", "/hello"),
            Some(200),
            "outside the list"
        );
    }
}

#[test]
fn per_source_connection_rate_refuses_the_connection_past_the_burst() {
    for driver in DRIVERS {
        let toml = mock_hello(
            "[prefilter]\nmode = \"userspace\"\nconnection_rate_per_s = 0.01\nconnection_burst = 2\n",
        );
        let gw = Gateway::start(&toml, driver);
        let addr = gw.addr("public");
        assert_eq!(try_get(addr, "127.0.0.5", "/hello"), Some(200));
        assert_eq!(try_get(addr, "127.0.0.5", "/hello"), Some(200));
        assert_eq!(
            try_get(addr, "127.0.0.5", "/hello"),
            None,
            "{driver:?}: third connection"
        );
        assert_eq!(
            try_get(addr, "127.0.0.6", "/hello"),
            Some(200),
            "another source"
        );
    }
}

/// Moves the gateway clock to the start of an escalation window (60 s, fixed windows of the
/// gateway clock): offenses counted next cannot straddle a window boundary, which would reset
/// their count.
fn to_window_start(clock: std::net::SocketAddr) {
    let now = advance_clock(clock, 0);
    advance_clock(clock, 60_000 - now % 60_000 + 1);
}

#[test]
fn repeated_404s_block_the_source_until_the_block_expires() {
    for driver in DRIVERS {
        let toml = mock_hello(
            "[prefilter]\nmode = \"userspace\"\nallow = [\"127.0.0.8\"]\n\n\
             [[prefilter.escalation]]\nresponses = [\"not_found\"]\ncount = 3\nwindow_ms = 60000\nblock_ms = 600000\n",
        );
        let gw = Gateway::start_with(&toml, Options::new(driver).test_clock());
        let clock = clock_control(&gw);
        let addr = gw.addr("public");
        to_window_start(clock);
        // Keep-alive: all three 404s on one connection.
        let mut c = Client::connect_from(addr, ip("127.0.0.7"));
        for _ in 0..3 {
            c.send(get_request("/nope"));
            assert_eq!(c.read_response().status, 404);
        }
        let blocked = gw
            .wait_for(
                |e| is(e, "source blocked") && e["ip"] == "127.0.0.7",
                DEADLINE,
            )
            .expect("source blocked event");
        assert_eq!(blocked["reason"], "not_found");
        assert_eq!(
            try_get(addr, "127.0.0.7", "/hello"),
            None,
            "{driver:?}: blocked"
        );
        assert_eq!(
            try_get(addr, "127.0.0.9", "/hello"),
            Some(200),
            "others are served"
        );
        // The allow-listed source is never blocked.
        for _ in 0..5 {
            assert_eq!(try_get(addr, "127.0.0.8", "/nope"), Some(404));
        }
        assert_eq!(try_get(addr, "127.0.0.8", "/hello"), Some(200));
        // Expiry by the gateway's clock.
        let mark = gw.mark();
        advance_clock(clock, 600_000);
        gw.wait_for_since(
            mark,
            |e| is(e, "block expired") && e["ip"] == "127.0.0.7",
            DEADLINE,
        )
        .expect("block expired event");
        assert_eq!(
            try_get(addr, "127.0.0.7", "/hello"),
            Some(200),
            "{driver:?}: served again"
        );
    }
}

#[test]
fn the_real_client_is_checked_behind_proxy_protocol_and_trusted_forwarders() {
    for driver in DRIVERS {
        let toml = "[prefilter]\nmode = \"userspace\"\ndeny = [\"198.51.100.7\"]\n\n\
             [client_address]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n\
             [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
             [[listeners]]\nname = \"proxied\"\nbind = \"127.0.0.1:0\"\nproxy_protocol = \"required\"\nproxy_protocol_from = [\"127.0.0.0/8\"]\n\n\
             [[apis]]\nid = \"api\"\n\n[[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
             [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n";
        let gw = Gateway::start(toml, driver);
        let proxied = gw.addr("proxied");
        for (client, served) in [("198.51.100.7", false), ("198.51.100.8", true)] {
            let mut c = Client::connect(proxied);
            c.send(format!("PROXY TCP4 {client} 127.0.0.1 40000 443\r\n"));
            // The gateway may close right after the header: the request may not get through.
            let _ = c.try_send(get_request("/hello"));
            let answered = c.try_read_response().ok().map(|r| r.status);
            assert_eq!(
                answered,
                served.then_some(200),
                "{driver:?}: PROXY from {client}"
            );
        }
        let public = gw.addr("public");
        for (client, served) in [("198.51.100.7", false), ("198.51.100.8", true)] {
            let mut c = Client::connect(public);
            c.send(format!(
                "GET /hello HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {client}\r\n\r\n"
            ));
            let answered = c.try_read_response().ok().map(|r| r.status);
            // Behind a forwarder the connection is the balancer's: a refusal is a 403 answer.
            assert_eq!(
                answered,
                Some(if served { 200 } else { 403 }),
                "{driver:?}: XFF {client}"
            );
        }
    }
}

#[test]
fn blocks_are_listed_added_and_lifted_through_the_admin_api_and_counted() {
    for driver in DRIVERS {
        let toml = mock_hello(
            "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"admin-token-0123456789\"\n\n\
             [prefilter]\nmode = \"userspace\"\ndeny = [\"127.0.0.11\"]\n",
        );
        let gw = Gateway::start(&toml, driver);
        let event = gw
            .wait_for(|e| is(e, "admin listening"), DEADLINE)
            .expect("admin");
        let admin: SocketAddr = event["addr"].as_str().expect("addr").parse().expect("addr");
        let call = |method: &str, path: &str, body: &str| {
            let raw = format!(
                "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer admin-token-0123456789\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let r = tollgate_tests::request(admin, raw);
            (r.status, r.text())
        };
        let addr = gw.addr("public");
        assert_eq!(
            call(
                "POST",
                "/prefilter/blocks",
                "{\"ip\":\"127.0.0.12\",\"block_ms\":60000}"
            )
            .0,
            201
        );
        assert_eq!(
            try_get(addr, "127.0.0.12", "/hello"),
            None,
            "{driver:?}: blocked by admin"
        );
        let (status, listing) = call("GET", "/prefilter", "");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&listing).expect("json");
        assert_eq!(v["deny"][0], "127.0.0.11/32");
        assert_eq!(v["blocks"][0]["ip"], "127.0.0.12");
        assert_eq!(v["blocks"][0]["reason"], "admin");
        assert_eq!(call("DELETE", "/prefilter/blocks/127.0.0.12", "").0, 200);
        assert_eq!(try_get(addr, "127.0.0.12", "/hello"), Some(200));
        assert_eq!(try_get(addr, "127.0.0.11", "/hello"), None);
        let (_, metrics) = call("GET", "/metrics", "");
        assert!(
            metrics.contains("tollgate_prefilter_refused_total{reason=\"deny\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tollgate_prefilter_refused_total{reason=\"block\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tollgate_prefilter_blocks 0\n"),
            "{metrics}"
        );
    }
}

#[test]
fn the_balancer_is_never_refused_rate_limited_or_blocked_and_its_connection_stays_usable() {
    for driver in DRIVERS {
        let toml = mock_hello(
            "[client_address]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n\
             [prefilter]\nmode = \"userspace\"\nconnection_rate_per_s = 0.01\nconnection_burst = 1\n\n\
             [[prefilter.escalation]]\nresponses = [\"not_found\"]\ncount = 3\nwindow_ms = 60000\nblock_ms = 600000\n",
        );
        let gw = Gateway::start_with(&toml, Options::new(driver).test_clock());
        to_window_start(clock_control(&gw));
        let addr = gw.addr("public");
        // The balancer's own requests (no forwarding header) never count against it, and its
        // connections have no rate.
        for _ in 0..5 {
            assert_eq!(try_get(addr, "127.0.0.1", "/nope"), Some(404), "{driver:?}");
        }
        assert_eq!(
            try_get(addr, "127.0.0.1", "/hello"),
            Some(200),
            "{driver:?}: not blocked"
        );
        // A client behind it is blocked; the balancer's connection answers 403 for that client
        // and goes on serving the others.
        let mut c = Client::connect(addr);
        let via = |client: &str, path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {client}\r\n\r\n")
        };
        for _ in 0..3 {
            c.send(via("198.51.100.9", "/nope"));
            assert_eq!(c.read_response().status, 404);
        }
        gw.wait_for(
            |e| is(e, "source blocked") && e["ip"] == "198.51.100.9",
            DEADLINE,
        )
        .expect("client blocked");
        c.send(via("198.51.100.9", "/hello"));
        let refused = c.read_response();
        assert_eq!(refused.status, 403, "{driver:?}");
        assert!(
            !refused.closes(),
            "{driver:?}: the balancer's connection stays open"
        );
        c.send(via("198.51.100.10", "/hello"));
        assert_eq!(
            c.read_response().status,
            200,
            "{driver:?}: other clients go on"
        );
        assert_eq!(
            gw.count(|e| is(e, "source blocked") && e["ip"] == "127.0.0.1"),
            0
        );
    }
}
