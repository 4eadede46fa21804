//! Edge operations: the access log (every field checked against the request that made it, a
//! chosen subset, reopen on SIGUSR1), the PROXY protocol (v1 and v2, truncated, from a source
//! that may not send it, required and optional) and trusted-proxy client addresses
//! (X-Forwarded-For and Forwarded). Both drivers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tollgate_tests::access_log::{options, read_lines, temp_log_path, wait_lines};
use tollgate_tests::config::listener;
use tollgate_tests::{is, request, Client, Gateway, Upstream, DRIVERS};

const DEADLINE: Duration = Duration::from_secs(10);

/// Listener `public` (with `listener_extra` lines), API `api` with mock `GET /hello` and
/// `ANY /up/{proxy+}` proxied to `upstream_url`, plus `extra` top-level TOML.
fn config(upstream_url: &str, listener_extra: &str, extra: &str) -> String {
    format!(
        "{extra}\n{listener}{listener_extra}\n[[apis]]\nid = \"api\"\n\n\
         [[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
         [[apis.routes]]\nroute = \"ANY /up/{{proxy+}}\"\nintegration = \"up\"\n\n\
         [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n\n\
         [apis.integrations.up]\ntype = \"http\"\nurl = \"{upstream_url}\"\n",
        listener = listener("public"),
    )
}

fn access_log(path: &std::path::Path, extra: &str) -> String {
    format!("[access_log]\npath = \"{}\"\n{extra}\n", path.display())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn by_id<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["requestId"] == id)
        .unwrap_or_else(|| panic!("no line for request {id}: {lines:?}"))
}

#[test]
fn access_log_has_one_line_per_request_with_every_field() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let path = temp_log_path();
        let gw = Gateway::start_with(
            &config(&up.url(), "", &access_log(&path, "")),
            options(driver),
        );
        let addr = gw.addr("public");
        let before = now_ms();
        let mock = request(
            addr,
            "GET /hello?x=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: tester \"7\"\r\n\
             X-Request-Id: req-mock\r\n\r\n",
        );
        assert_eq!(mock.status, 200);
        let proxied = request(
            addr,
            "POST /up/items HTTP/1.1\r\nHost: shop.example:8080\r\nX-Request-Id: req-up\r\n\
             Content-Length: 3\r\n\r\nabc",
        );
        assert_eq!(proxied.status, 200);
        let missing = request(addr, "GET /nope HTTP/1.0\r\nX-Request-Id: req-404\r\n\r\n");
        assert_eq!(missing.status, 404);
        let malformed = request(addr, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
        assert_eq!(malformed.status, 400);
        let after = now_ms();

        let lines = wait_lines(&gw, &path, 4, DEADLINE);
        assert_eq!(lines.len(), 4, "{driver:?}: one line per request");
        let m = by_id(&lines, "req-mock");
        assert_eq!(m["ip"], "127.0.0.1");
        assert_eq!(m["httpMethod"], "GET");
        assert_eq!(m["routeKey"], "GET /hello");
        assert_eq!(m["path"], "/hello");
        assert_eq!(m["protocol"], "HTTP/1.1");
        assert_eq!(m["status"], 200);
        assert_eq!(m["responseLength"], 5);
        assert_eq!(m["integrationStatus"], "-", "a mock calls no integration");
        assert_eq!(m["integrationLatency"], "-");
        assert_eq!(m["stage"], "$default");
        assert_eq!(m["apiId"], "api");
        assert_eq!(m["domainName"], "shop.example");
        assert_eq!(m["userAgent"], "tester \"7\"");
        assert_eq!(m["errorMessage"], "-");
        let epoch = m["requestTimeEpoch"].as_u64().expect("epoch is a number");
        assert!(
            (before.saturating_sub(1000)..=after + 1000).contains(&epoch),
            "{epoch}"
        );
        let time = m["requestTime"].as_str().expect("requestTime");
        assert!(
            time.len() == 26 && time.ends_with(" +0000") && time.as_bytes()[2] == b'/',
            "CLF time: {time}"
        );
        assert!(m["responseLatency"].as_u64().is_some());

        let u = by_id(&lines, "req-up");
        assert_eq!(u["httpMethod"], "POST");
        assert_eq!(u["routeKey"], "ANY /up/{proxy+}");
        assert_eq!(u["path"], "/up/items");
        assert_eq!(u["status"], 200);
        assert_eq!(u["integrationStatus"], 200);
        assert!(u["integrationLatency"].as_u64().is_some(), "{u}");
        assert_eq!(u["responseLength"], proxied.body.len() as u64);
        assert_eq!(u["domainName"], "shop.example:8080");
        assert_eq!(u["userAgent"], "-");

        let n = by_id(&lines, "req-404");
        assert_eq!(n["status"], 404);
        assert_eq!(n["protocol"], "HTTP/1.0");
        assert_eq!(n["routeKey"], "-");
        assert_eq!(n["errorMessage"], "Not Found");
        assert_eq!(n["responseLength"], missing.body.len() as u64);

        let bad = lines
            .iter()
            .find(|l| l["status"] == 400)
            .expect("a line for the malformed request");
        assert_eq!(bad["httpMethod"], "-");
        assert!(bad["errorMessage"].as_str().is_some_and(|m| m != "-"));
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn access_log_fields_subset_and_reopen_on_sigusr1() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let path = temp_log_path();
        let fields = "fields = [\"requestId\", \"status\", \"ip\"]";
        let gw = Gateway::start_with(
            &config(&up.url(), "", &access_log(&path, fields)),
            options(driver),
        );
        let addr = gw.addr("public");
        request(
            addr,
            "GET /hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: one\r\n\r\n",
        );
        let lines = wait_lines(&gw, &path, 1, DEADLINE);
        let keys: Vec<&str> = lines[0]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(lines[0]["requestId"], "one");
        assert_eq!(lines[0]["status"], 200);

        // Rotation: rename, SIGUSR1, and the next lines go to a new file at the path.
        let rotated = path.with_extension("log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        let mark = gw.mark();
        gw.signal(libc::SIGUSR1);
        gw.wait_for_since(mark, |e| is(e, "access log reopened"), DEADLINE)
            .expect("reopened");
        request(
            addr,
            "GET /hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: two\r\n\r\n",
        );
        // Two lines in all went to this path: one before the rotation, one after.
        let fresh = wait_lines(&gw, &path, 2, DEADLINE);
        assert_eq!(fresh.len(), 1, "{driver:?}");
        assert_eq!(fresh[0]["requestId"], "two");
        let old = read_lines(&rotated);
        assert_eq!(old.len(), 1);
        assert_eq!(old[0]["requestId"], "one");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&rotated);
    }
}

/// A PROXY v2 header for TCP over IPv4 or IPv6, with one TLV (skipped by the gateway).
fn proxy_v2(src: std::net::SocketAddr, dst: std::net::SocketAddr) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x21); // version 2, PROXY
    let mut body = Vec::new();
    match (src, dst) {
        (std::net::SocketAddr::V4(s), std::net::SocketAddr::V4(d)) => {
            out.push(0x11);
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
        }
        (std::net::SocketAddr::V6(s), std::net::SocketAddr::V6(d)) => {
            out.push(0x21);
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
        }
        _ => panic!("mixed families"),
    }
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    body.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // a NOOP TLV
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn proxy_protocol_v1_and_v2_give_the_client_address() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let path = temp_log_path();
        let pp = "proxy_protocol = \"required\"\nproxy_protocol_from = [\"127.0.0.0/8\"]\n";
        let gw = Gateway::start_with(
            &config(&up.url(), pp, &access_log(&path, "")),
            options(driver),
        );
        let addr = gw.addr("public");

        let mut c = Client::connect(addr);
        c.send("PROXY TCP4 203.0.113.9 10.0.0.1 5555 443\r\nGET /up/v1 HTTP/1.1\r\nHost: h\r\nX-Request-Id: v1\r\n\r\n");
        assert_eq!(c.read_response().status, 200, "{driver:?}");
        // The next request on the connection keeps the address.
        c.send("GET /up/again HTTP/1.1\r\nHost: h\r\nX-Request-Id: v1b\r\n\r\n");
        assert_eq!(c.read_response().status, 200);

        let mut c = Client::connect(addr);
        let mut bytes = proxy_v2(
            "[2001:db8::7]:40000".parse().expect("addr"),
            "[2001:db8::1]:8443".parse().expect("addr"),
        );
        bytes.extend_from_slice(b"GET /up/v2 HTTP/1.1\r\nHost: h\r\nX-Request-Id: v2\r\n\r\n");
        c.send(bytes);
        assert_eq!(c.read_response().status, 200);

        let seen = up.requests();
        assert_eq!(seen[0].header("x-forwarded-for"), Some("203.0.113.9"));
        assert_eq!(seen[0].header("x-forwarded-port"), Some("443"));
        assert_eq!(seen[1].header("x-forwarded-for"), Some("203.0.113.9"));
        assert_eq!(seen[2].header("x-forwarded-for"), Some("2001:db8::7"));
        assert_eq!(seen[2].header("x-forwarded-port"), Some("8443"));
        let lines = wait_lines(&gw, &path, 3, DEADLINE);
        assert_eq!(by_id(&lines, "v1")["ip"], "203.0.113.9");
        assert_eq!(by_id(&lines, "v1b")["ip"], "203.0.113.9");
        assert_eq!(by_id(&lines, "v2")["ip"], "2001:db8::7");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn required_proxy_protocol_refuses_missing_truncated_and_untrusted_headers() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let pp = "proxy_protocol = \"required\"\nproxy_protocol_from = [\"127.0.0.0/8\"]\n";
        let limits = "[limits]\nheader_read_timeout_ms = 300\n";
        let gw = Gateway::start(&config(&up.url(), pp, limits), driver);
        let addr = gw.addr("public");

        // Plain HTTP: closed at once, nothing answered.
        let mut c = Client::connect(addr);
        c.send("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(c.assert_closed(DEADLINE).is_empty(), "{driver:?}");

        // Truncated v2 header: closed at the header timeout, nothing answered.
        let mut c = Client::connect(addr);
        let v2 = proxy_v2(
            "192.0.2.1:1000".parse().expect("addr"),
            "192.0.2.2:80".parse().expect("addr"),
        );
        c.send(&v2[..20]);
        assert!(c.assert_closed(DEADLINE).is_empty());

        // Truncated v1 line, then garbage: closed.
        let mut c = Client::connect(addr);
        c.send("PROXY TCP4 203.0.113.9 10.0.0.1 55");
        c.send("55 x443\r\nGET / HTTP/1.1\r\n\r\n");
        assert!(c.assert_closed(DEADLINE).is_empty());

        // A source outside proxy_protocol_from is refused even with a valid header.
        let strict = "proxy_protocol = \"required\"\nproxy_protocol_from = [\"10.0.0.0/8\"]\n";
        let gw2 = Gateway::start(&config(&up.url(), strict, ""), driver);
        let mut c = Client::connect(gw2.addr("public"));
        let _ = c.try_send(
            "PROXY TCP4 203.0.113.9 10.0.0.1 5555 443\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert!(c.assert_closed(DEADLINE).is_empty());
        assert!(up.requests().is_empty(), "nothing reached the upstream");
    }
}

#[test]
fn optional_proxy_protocol_serves_plain_http_and_headers_from_allowed_sources() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let pp = "proxy_protocol = \"optional\"\nproxy_protocol_from = [\"127.0.0.1\"]\n";
        let gw = Gateway::start(&config(&up.url(), pp, ""), driver);
        let addr = gw.addr("public");
        assert_eq!(tollgate_tests::get(addr, "/hello").text(), "hello");
        let r = request(
            addr,
            "PROXY TCP4 198.51.100.4 10.0.0.1 5555 80\r\nGET /up/x HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver:?}");
        assert_eq!(
            up.requests()[0].header("x-forwarded-for"),
            Some("198.51.100.4")
        );

        // From a source not allowed to send one, a PROXY header is not HTTP: 400.
        let other = "proxy_protocol = \"optional\"\nproxy_protocol_from = [\"10.0.0.0/8\"]\n";
        let gw2 = Gateway::start(&config(&up.url(), other, ""), driver);
        let r = request(
            gw2.addr("public"),
            "PROXY TCP4 198.51.100.4 10.0.0.1 5555 80\r\nGET /hello HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(r.status, 400);
    }
}

#[test]
fn trusted_proxies_decide_which_forwarded_hop_is_the_client() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let path = temp_log_path();
        let send = |gw: &Gateway, id: &str, header: &str| {
            let raw =
                format!("GET /hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: {id}\r\n{header}\r\n\r\n");
            assert_eq!(request(gw.addr("public"), raw).status, 200);
        };
        let xff = "X-Forwarded-For: 198.51.100.1, 203.0.113.5\r\nX-Forwarded-For: 10.1.2.3";
        let trust = "[client_address]\ntrusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n";
        let gw = Gateway::start_with(
            &config(&up.url(), "", &format!("{trust}{}", access_log(&path, ""))),
            options(driver),
        );
        send(&gw, "xff", xff);
        send(
            &gw,
            "garbage",
            "X-Forwarded-For: 198.51.100.1, not-an-ip, 10.9.9.9",
        );
        let lines = wait_lines(&gw, &path, 2, DEADLINE);
        assert_eq!(by_id(&lines, "xff")["ip"], "203.0.113.5", "{driver:?}");
        assert_eq!(
            by_id(&lines, "garbage")["ip"],
            "10.9.9.9",
            "an unparsable hop stops the walk at the nearest trusted address"
        );
        drop(gw);
        let _ = std::fs::remove_file(&path);

        // Without trust the header is ignored.
        let path = temp_log_path();
        let gw = Gateway::start_with(
            &config(&up.url(), "", &access_log(&path, "")),
            options(driver),
        );
        send(&gw, "untrusted", xff);
        let lines = wait_lines(&gw, &path, 1, DEADLINE);
        assert_eq!(by_id(&lines, "untrusted")["ip"], "127.0.0.1");
        drop(gw);
        let _ = std::fs::remove_file(&path);

        // Forwarded, with a quoted IPv6 hop.
        let path = temp_log_path();
        let fwd = "[client_address]\ntrusted_proxies = [\"127.0.0.1\"]\nheader = \"forwarded\"\n";
        let gw = Gateway::start_with(
            &config(&up.url(), "", &format!("{fwd}{}", access_log(&path, ""))),
            options(driver),
        );
        send(
            &gw,
            "fwd",
            "Forwarded: for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\"",
        );
        let lines = wait_lines(&gw, &path, 1, DEADLINE);
        assert_eq!(by_id(&lines, "fwd")["ip"], "2001:db8:cafe::17");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_reload_turns_the_access_log_on_and_moves_it() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start_with(&config(&up.url(), "", ""), options(driver));
        let addr = gw.addr("public");
        let first = temp_log_path();
        gw.reload(&config(&up.url(), "", &access_log(&first, "")))
            .expect("reload");
        request(
            addr,
            "GET /hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: a\r\n\r\n",
        );
        let lines = wait_lines(&gw, &first, 1, DEADLINE);
        assert_eq!(lines[0]["requestId"], "a", "{driver:?}");

        let second = temp_log_path();
        gw.reload(&config(&up.url(), "", &access_log(&second, "")))
            .expect("reload");
        request(
            addr,
            "GET /hello HTTP/1.1\r\nHost: h\r\nX-Request-Id: b\r\n\r\n",
        );
        let lines = wait_lines(&gw, &second, 1, DEADLINE);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["requestId"], "b");
        assert_eq!(
            read_lines(&first).len(),
            1,
            "the old file keeps only its line"
        );
        let _ = std::fs::remove_file(&first);
        let _ = std::fs::remove_file(&second);
    }
}
