//! Proxying through an `http` integration to the in-process mock upstream: header forwarding
//! (case, order, duplicates, hop-by-hop removal, `x-forwarded-*`, request ids), query strings,
//! request bodies (Content-Length, chunked, large and streamed), upstream responses (chunked,
//! large), HTTP/1.0, `Expect: 100-continue`, keep-alive, pipelining, upstream connection reuse,
//! and upstream failures (502, 504, pooled connection closed → retried). Both drivers.

use std::time::{Duration, Instant};

use tollgate_tests::config::{proxy_all, proxy_all_with};
use tollgate_tests::upstream::pattern_body;
use tollgate_tests::{
    get, get_request, request, Behaviour, Client, Gateway, Options, Reply, Upstream, DRIVERS,
};

fn proxy(up: &Upstream, driver: tollgate_tests::Driver) -> Gateway {
    Gateway::start(&proxy_all(&up.url(), ""), driver)
}

#[test]
fn headers_are_forwarded_with_case_order_and_duplicates() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let addr = gw.addr("public");
        let raw = "GET /h HTTP/1.1\r\n\
                   Host: example.test:8080\r\n\
                   X-First: 1\r\n\
                   x-dup: a\r\n\
                   X-MiXeD-CaSe: yes\r\n\
                   X-Dup: b\r\n\
                   Connection: keep-alive, X-Hop\r\n\
                   X-Hop: secret\r\n\
                   Keep-Alive: timeout=5\r\n\
                   TE: trailers\r\n\
                   Accept: */*\r\n\r\n";
        let r = request(addr, raw);
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let seen = up.requests();
        let req = seen.last().expect("request reached the upstream");
        // Host becomes the upstream's authority; the client's goes to x-forwarded-host.
        let client_sent = ["X-First", "x-dup", "X-MiXeD-CaSe", "X-Dup", "Accept"];
        let forwarded: Vec<&str> = req
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| client_sent.contains(n))
            .collect();
        assert_eq!(forwarded, client_sent, "{driver:?}: {:?}", req.headers);
        assert_eq!(req.header_all("x-dup"), ["a", "b"]);
        assert_eq!(req.header_all("host"), [up.addr().to_string()]);
        assert_eq!(req.header("x-forwarded-host"), Some("example.test:8080"));
        for hop in ["connection", "x-hop", "keep-alive", "te"] {
            // `Connection` may be re-added by the gateway for its own pool, but not with the
            // client's tokens.
            let values = req.header_all(hop);
            let leaked = if hop == "connection" {
                values
                    .iter()
                    .any(|v| v.to_ascii_lowercase().contains("x-hop"))
            } else {
                !values.is_empty()
            };
            assert!(
                !leaked,
                "{driver:?}: hop-by-hop {hop} forwarded: {:?}",
                req.headers
            );
        }
    }
}

#[test]
fn forwarded_headers_and_request_ids() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let addr = gw.addr("public");

        let r = request(addr, "GET /f HTTP/1.1\r\nHost: shop.example\r\n\r\n");
        assert_eq!(r.status, 200, "{driver:?}");
        let seen = up.requests();
        let req = seen.last().expect("request reached the upstream");
        assert_eq!(
            req.header("x-forwarded-for"),
            Some("127.0.0.1"),
            "{:?}",
            req.headers
        );
        assert_eq!(req.header("x-forwarded-proto"), Some("http"));
        assert_eq!(
            req.header("x-forwarded-port"),
            Some(addr.port().to_string().as_str())
        );
        assert_eq!(req.header("x-forwarded-host"), Some("shop.example"));
        let fwd = req.header("forwarded").expect("forwarded header");
        assert!(fwd.contains("for=127.0.0.1"), "{fwd}");
        assert!(fwd.contains("proto=http"), "{fwd}");
        // A generated id goes both ways.
        let id = r.header("x-request-id").expect("response x-request-id");
        assert_eq!(req.header("x-request-id"), Some(id), "{driver:?}");

        // A client id is propagated and echoed; an existing X-Forwarded-For is extended.
        let r = request(
            addr,
            "GET /g HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        );
        assert_eq!(r.header("x-request-id"), Some("abc-123"), "{driver:?}");
        let seen = up.requests();
        let req = seen.last().expect("request reached the upstream");
        assert_eq!(
            req.header_all("x-request-id"),
            ["abc-123"],
            "{:?}",
            req.headers
        );
        let xff = req.header_all("x-forwarded-for").join(", ");
        assert!(xff.starts_with("10.0.0.1"), "{driver:?}: {xff}");
        assert!(xff.ends_with("127.0.0.1"), "{driver:?}: {xff}");
    }
}

#[test]
fn query_string_passes_through() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let r = get(gw.addr("public"), "/search?q=a%20b&x=1&x=2&empty=&flag");
        assert_eq!(
            r.json()["target"],
            "/search?q=a%20b&x=1&x=2&empty=&flag",
            "{driver:?}"
        );
    }
}

#[test]
fn post_with_content_length_body() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let r = request(
            gw.addr("public"),
            "POST /items HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
        );
        assert_eq!(r.status, 200, "{driver:?}");
        let body = r.json();
        assert_eq!(body["method"], "POST");
        assert_eq!(body["body"], "hello world", "{driver:?}");
    }
}

#[test]
fn chunked_request_body_arrives_intact() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        c.send("5\r\nhello\r\n");
        c.send("1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["body"], "hello world!", "{driver:?}");
        // The connection remains usable.
        c.send(get_request("/after"));
        assert_eq!(c.read_response().json()["target"], "/after");
    }
}

#[test]
fn large_request_bodies_stream_intact() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let addr = gw.addr("public");
        let body = pattern_body(300 * 1024 + 17);

        // Content-Length, sent in pieces.
        let mut c = Client::connect(addr);
        c.send(format!(
            "PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        for piece in body.chunks(50_000) {
            c.send(piece);
        }
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        assert_eq!(r.json()["body_len"], body.len());

        // Chunked.
        c.send("PUT /big2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(40_000) {
            c.send(format!("{:x}\r\n", piece.len()));
            c.send(piece);
            c.send("\r\n");
        }
        c.send("0\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");

        let seen = up.requests();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].body == body, "{driver:?}: CL body differs");
        assert!(seen[1].body == body, "{driver:?}: chunked body differs");
    }
}

#[test]
fn buffered_body_mode_forwards_with_content_length() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(
            &proxy_all_with(&up.url(), "", "body_mode = \"buffered\""),
            driver,
        );
        let mut c = Client::connect(gw.addr("public"));
        c.send("POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let seen = up.requests();
        assert_eq!(seen[0].body, b"abcdef");
        assert_eq!(
            seen[0].header("content-length"),
            Some("6"),
            "{:?}",
            seen[0].headers
        );
    }
}

#[test]
fn chunked_and_large_upstream_responses_arrive_intact() {
    for driver in DRIVERS {
        let chunks: Vec<Vec<u8>> = vec![b"first ".to_vec(), vec![b'x'; 70_000], b" end".to_vec()];
        let expected: Vec<u8> = chunks.concat();
        let up = Upstream::start(Behaviour::reply(Reply::Chunked(chunks)));
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/chunked"));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        assert!(r.body == expected, "{driver:?}: chunked body differs");
        c.send(get_request("/again"));
        assert!(c.read_response().body == expected);

        let big = 2 * 1024 * 1024 + 3;
        let up = Upstream::start(Behaviour::reply(Reply::Large(big)));
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/large"));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        assert_eq!(r.body.len(), big);
        assert!(
            r.body == pattern_body(big),
            "{driver:?}: large body differs"
        );
    }
}

#[test]
fn http10_client() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send("GET /old HTTP/1.0\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["target"], "/old");
        // No keep-alive requested: the server closes.
        c.assert_closed(Duration::from_secs(5));

        // HTTP/1.0 with keep-alive gets it and can send a second request.
        let mut c = Client::connect(gw.addr("public"));
        c.send("GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "{driver:?}: {:?}",
            r.headers
        );
        c.send("GET /ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(c.read_response().json()["target"], "/ka2");
    }
}

#[test]
fn expect_100_continue() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send("POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        let interim = c.read_response();
        assert_eq!(interim.status, 100, "{driver:?}: {interim:?}");
        c.send("12345");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        assert_eq!(r.json()["body"], "12345");
        let seen = up.requests();
        assert!(
            seen[0].header("expect").is_none(),
            "{driver:?}: Expect forwarded: {:?}",
            seen[0].headers
        );
    }
}

#[test]
fn keep_alive_serves_several_requests() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        for i in 0..5 {
            c.send(get_request(&format!("/ka/{i}")));
            let r = c.read_response();
            assert_eq!(r.status, 200, "{driver:?}");
            assert!(!r.closes());
            assert_eq!(r.json()["target"], format!("/ka/{i}"));
        }
    }
}

#[test]
fn pipelined_requests_answered_in_order() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let mut c = Client::connect(gw.addr("public"));
        let batch = format!(
            "{}POST /p/2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc{}",
            get_request("/p/1"),
            get_request("/p/3")
        );
        c.send(batch);
        for (i, body) in [(1, ""), (2, "abc"), (3, "")] {
            let r = c.read_response();
            assert_eq!(r.status, 200, "{driver:?}");
            let j = r.json();
            assert_eq!(j["target"], format!("/p/{i}"), "{driver:?}");
            assert_eq!(j["body"], body);
        }
    }
}

#[test]
fn upstream_connections_are_reused() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = proxy(&up, driver);
        let addr = gw.addr("public");
        // Sequential requests on fresh client connections (spread over both workers).
        for i in 0..20 {
            let r = get(addr, &format!("/reuse/{i}"));
            assert_eq!(r.status, 200, "{driver:?}");
        }
        let n = up.connections();
        assert!(
            n <= 2,
            "{driver:?}: 20 sequential requests opened {n} upstream connections"
        );
    }
}

#[test]
fn upstream_down_is_502() {
    for driver in DRIVERS {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = l.local_addr().expect("addr");
        drop(l);
        let gw = Gateway::start(&proxy_all(&format!("http://{dead}"), ""), driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/down"));
        let r = c.read_response();
        assert_eq!(r.status, 502, "{driver:?}");
        assert!(r.json()["message"].is_string());
        assert!(r.header("x-request-id").is_some());
        // Either the connection stays usable or the response said it would close.
        if r.closes() {
            c.assert_closed(Duration::from_secs(5));
        } else {
            c.send(get_request("/down"));
            assert_eq!(c.read_response().status, 502);
        }
    }
}

#[test]
fn slow_upstream_is_504() {
    for driver in DRIVERS {
        let up = Upstream::start(Behaviour::echo().delay(Duration::from_secs(2)));
        let gw = Gateway::start(&proxy_all_with(&up.url(), "", "timeout_ms = 200"), driver);
        let started = Instant::now();
        let r = get(gw.addr("public"), "/slow");
        let took = started.elapsed();
        assert_eq!(r.status, 504, "{driver:?}: {}", r.text());
        assert!(r.json()["message"].is_string());
        assert!(
            took < Duration::from_millis(1500),
            "{driver:?}: 504 took {took:?}"
        );
    }
}

#[test]
fn pooled_connection_closed_by_upstream_is_retried() {
    for driver in DRIVERS {
        // Closes after every response without saying `Connection: close`.
        let up = Upstream::start(Behaviour::echo().close_after(1));
        let gw = Gateway::start_with(&proxy_all(&up.url(), ""), Options::new(driver).workers(1));
        let mut c = Client::connect(gw.addr("public"));
        for i in 0..10 {
            c.send(get_request(&format!("/r/{i}")));
            let r = c.read_response();
            assert_eq!(r.status, 200, "{driver:?}: request {i}: {}", r.text());
            assert_eq!(r.json()["target"], format!("/r/{i}"));
        }
        let seen = up.requests();
        assert_eq!(
            seen.iter().filter(|r| r.target == "/r/9").count(),
            1,
            "{driver:?}"
        );
    }
}
