//! The admin listener end to end: health and readiness, Prometheus metrics parsed with a
//! Prometheus text-format parser and checked against known traffic, reload counts, and the
//! bearer token on a non-loopback admin listener. Both drivers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use tollgate_tests::admin::value;
use tollgate_tests::config::mock_hello;
use tollgate_tests::{get, Gateway, DRIVERS};

/// One GET on the admin listener; returns (status, body).
fn admin(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    tollgate_tests::admin::call(addr, "GET", path, None, token)
}

fn admin_addr(gw: &Gateway) -> SocketAddr {
    let addr = tollgate_tests::admin::admin_addr(gw);
    SocketAddr::new("127.0.0.1".parse().expect("ip"), addr.port())
}

fn scrape(addr: SocketAddr, token: Option<&str>) -> prometheus_parse::Scrape {
    let (status, body) = admin(addr, "/metrics", token);
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

#[test]
fn health_readiness_and_metrics_after_known_traffic() {
    for driver in DRIVERS {
        let config = format!("[admin]\nbind = \"127.0.0.1:0\"\n\n{}", mock_hello(""));
        let gw = Gateway::start(&config, driver);
        let addr = admin_addr(&gw);
        assert_eq!(admin(addr, "/healthz", None), (200, "ok\n".to_string()));
        assert_eq!(admin(addr, "/readyz", None), (200, "ready\n".to_string()));
        for _ in 0..3 {
            assert_eq!(get(gw.addr("public"), "/hello").status, 200);
        }
        assert_eq!(get(gw.addr("public"), "/nope").status, 404);

        let m = scrape(addr, None);
        let hello = [("api", "api"), ("route", "GET /hello"), ("class", "2xx")];
        assert_eq!(
            value(&m, "tollgate_requests_total", &hello),
            Some(3.0),
            "{driver:?}"
        );
        let unmatched = [("api", "api"), ("route", "(unmatched)"), ("class", "4xx")];
        assert_eq!(
            value(&m, "tollgate_requests_total", &unmatched),
            Some(1.0),
            "{driver:?}"
        );
        let histogram = m
            .samples
            .iter()
            .find(|s| {
                s.metric == "tollgate_request_duration_seconds"
                    && s.labels.get("route") == Some("GET /hello")
            })
            .expect("latency histogram for the route");
        match &histogram.value {
            prometheus_parse::Value::Histogram(buckets) => {
                let last = buckets.last().expect("buckets");
                assert_eq!(last.count, 3.0, "every request in the +Inf bucket");
            }
            other => panic!("not a histogram: {other:?}"),
        }
        assert_eq!(
            value(&m, "tollgate_connections_accepted_total", &[]),
            Some(4.0),
            "{driver:?}"
        );
        let workers: Vec<_> = m
            .samples
            .iter()
            .filter(|s| s.metric == "tollgate_worker_info")
            .collect();
        assert_eq!(workers.len(), 2, "one info series per worker");
        assert!(workers.iter().all(|s| s.labels.get("driver").is_some()));
        assert_eq!(
            value(&m, "tollgate_reloads_total", &[("result", "ok")]),
            Some(0.0)
        );

        assert_eq!(gw.reload(&config), Ok(2));
        let m = scrape(addr, None);
        assert_eq!(
            value(&m, "tollgate_reloads_total", &[("result", "ok")]),
            Some(1.0)
        );
        assert_eq!(
            value(&m, "tollgate_plan_generation", &[("worker", "0")]),
            Some(2.0)
        );
        // Counters carry over a reload (stable route identity).
        assert_eq!(
            value(&m, "tollgate_requests_total", &hello),
            Some(3.0),
            "{driver:?}"
        );
        assert_eq!(admin(addr, "/nope", None).0, 404);
    }
}

#[test]
fn non_loopback_admin_requires_the_token() {
    let token = "s3cret-token-for-tests";
    let config = format!(
        "[admin]\nbind = \"0.0.0.0:0\"\ntoken = \"{token}\"\n\n{}",
        mock_hello("")
    );
    let gw = Gateway::start(&config, DRIVERS[0]);
    let addr = admin_addr(&gw);
    assert_eq!(admin(addr, "/metrics", None).0, 401);
    assert_eq!(
        admin(addr, "/healthz", Some("wrong-token-wrong-token")).0,
        401
    );
    assert_eq!(
        admin(addr, "/healthz", Some(token)),
        (200, "ok\n".to_string())
    );
    assert!(!scrape(addr, Some(token)).samples.is_empty());
}

#[test]
fn config_endpoint_shows_the_running_plan_redacted_with_worker_generations() {
    for driver in DRIVERS {
        let token = "s3cret-admin-token-0123";
        let upstream_secret = "Bearer upstream-secret-value";
        let api = |extra_route: &str| {
            format!(
                "[admin]\nbind = \"0.0.0.0:0\"\ntoken = \"{token}\"\n\n\
                 [[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\n\n\
                 [[apis]]\nid = \"shop\"\n\n\
                 [[apis.routes]]\nroute = \"GET /items\"\nintegration = \"items\"\n{extra_route}\n\
                 [apis.integrations.items]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/items\"\n\
                 request_headers = {{ set = {{ authorization = \"{upstream_secret}\" }} }}\n\n\
                 [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hi\"\n"
            )
        };
        let gw = Gateway::start(&api(""), driver);
        let addr = admin_addr(&gw);
        let (status, _) = admin(addr, "/config", None);
        assert_eq!(
            status, 401,
            "{driver:?}: read-only endpoints need the token off loopback"
        );
        let (status, body) = admin(addr, "/config", Some(token));
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains(token), "admin token redacted: {body}");
        assert!(
            !body.contains(upstream_secret),
            "header values redacted: {body}"
        );
        let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(doc["generation"], 1);
        let workers = doc["workers"].as_array().expect("workers");
        assert_eq!(workers.len(), 2);
        assert!(workers.iter().all(|w| w["generation"] == 1));
        let routes = doc["routes"].as_array().expect("routes");
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0]["route"], "GET /items");
        assert_eq!(
            routes[0]["integration"]["request_headers"]["set"]["authorization"],
            "<redacted>"
        );

        let extra = "\n[[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n";
        gw.reload(&api(extra)).expect("reload");
        let (_, body) = admin(addr, "/config", Some(token));
        let doc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(doc["generation"], 2);
        assert!(doc["workers"]
            .as_array()
            .expect("workers")
            .iter()
            .all(|w| w["generation"] == 2));
        assert_eq!(doc["routes"].as_array().expect("routes").len(), 2);
    }
}

/// 200 clients (from four loopback addresses) that open a connection and trickle a head
/// byte by byte, never finishing it, do not keep `/readyz` from answering: the admin listener
/// serves each connection as its own task. And one source cannot take every slot: past its
/// share its connections are closed at once, while another source is still served.
#[test]
fn trickling_clients_do_not_starve_readyz() {
    let config = format!("[admin]\nbind = \"127.0.0.1:0\"\n\n{}", mock_hello(""));
    let gw = Gateway::start(&config, DRIVERS[0]);
    let addr = admin_addr(&gw);
    let mut slow: Vec<TcpStream> = (0..200u8)
        .map(|i| {
            let source = std::net::IpAddr::from([127, 0, 0, 2 + i % 4]);
            tollgate_tests::Client::connect_from(addr, source)
                .stream()
                .try_clone()
                .expect("clone")
        })
        .collect();
    for byte in b"GET /rea" {
        for s in &mut slow {
            s.write_all(&[*byte]).expect("trickle");
        }
    }
    assert_eq!(admin(addr, "/readyz", None), (200, "ready\n".to_string()));
    assert_eq!(admin(addr, "/healthz", None), (200, "ok\n".to_string()));
}

/// One source holds at most its share (64) of the admin listener's connections: 80 opened at
/// once from one address, then a request on each — 64 are answered, the rest were closed on
/// arrival.
#[test]
fn one_source_holds_at_most_its_share_of_admin_connections() {
    use std::io::Read;
    let config = format!("[admin]\nbind = \"127.0.0.1:0\"\n\n{}", mock_hello(""));
    let gw = Gateway::start(&config, DRIVERS[0]);
    let addr = admin_addr(&gw);
    let source = std::net::IpAddr::from([127, 0, 0, 9]);
    let mut crowd: Vec<tollgate_tests::Client> = (0..80)
        .map(|_| tollgate_tests::Client::connect_from(addr, source))
        .collect();
    // Last opened first: the extra ones are settled (closed) before any slot is freed by an
    // answered request.
    let mut answered = 0;
    for c in crowd.iter_mut().rev() {
        let _ = c.try_send(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n");
        let mut head = [0u8; 12];
        let mut s = c.stream().try_clone().expect("clone");
        if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        }
    }
    assert_eq!(answered, 64, "a source's share of admin connections");
}

/// A state-changing request with a wrong token is refused as soon as its head has arrived:
/// the client announces a 1 MB body and sends none of it, and still gets its 401.
#[test]
fn a_wrong_token_is_refused_before_the_body_is_read() {
    let config = format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"right-token-right-token\"\n\n{}",
        mock_hello("")
    );
    let gw = Gateway::start(&config, DRIVERS[0]);
    let addr = admin_addr(&gw);
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"POST /keys HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer wrong-token-wrong\r\n\
          Content-Length: 1048576\r\n\r\n",
    )
    .expect("write head");
    let mut answer = [0u8; 64];
    let n = s.read(&mut answer).expect("an answer before any body byte");
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 401 "), "{text}");
}
