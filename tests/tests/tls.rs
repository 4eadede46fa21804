//! TLS termination on a listener end to end: the certificate chosen by SNI (exact name,
//! wildcard, default, refused), protocol versions, keep-alive and pipelining over TLS, the
//! `https` scheme passed upstream, large bodies both ways, the handshake timeout (a stalled
//! and a silent client), garbage instead of a ClientHello, the handshake counters on
//! `/metrics`, certificates replaced by a reload, and session resumption on the other worker
//! and across a reload. Certificates come from a CA made at test time
//! ([`tollgate_tests::tls`]). Both drivers.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;

use tollgate_tests::admin::{admin_addr, scrape, sum};
use tollgate_tests::config::{mock_hello, proxy_all};
use tollgate_tests::gateway::EVENT_DEADLINE;
use tollgate_tests::tls::{
    client_hello, connect_err, connect_ok, only_alerts, tls_listener, Leaf, Pki, TlsClient,
    TlsOptions, Versions, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use tollgate_tests::upstream::pattern_body;
use tollgate_tests::{get, Behaviour, Client, Gateway, Options, Reply, Upstream, DRIVERS};

use rustls::client::{ClientSessionMemoryCache, Tls12Resumption};
use rustls::{HandshakeKind, ProtocolVersion};

const SHOP: &str = "shop.example.com";
const API_WILDCARD: &str = "*.api.example.com";

/// A CA and two certificates: `shop.example.com` (ECDSA P-256) and `*.api.example.com`
/// (Ed25519).
struct Certs {
    pki: Pki,
    shop: Leaf,
    api: Leaf,
}

fn certs() -> Certs {
    let pki = Pki::new();
    let shop = pki.issue("shop", &[SHOP], &PKCS_ECDSA_P256_SHA256);
    let api = pki.issue("api", &[API_WILDCARD], &PKCS_ED25519);
    Certs { pki, shop, api }
}

/// Both certificates, `shop` the default.
const SHOP_DEFAULT: &str = r#"certificates = ["shop", "api"], default_certificate = "shop""#;

/// `[admin]`, certificates `shop` and `api`, `extra` top-level TOML, the TLS listener `secure`
/// with `tls`, and the plain listener `public`; mock `GET /hello` answers `hello` on both.
fn hello_config(certs: &Certs, tls: &str, extra: &str) -> String {
    mock_hello(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\n{extra}\n{}{}{}",
        certs.shop.toml("shop", None),
        certs.api.toml("api", None),
        tls_listener("secure", tls),
    ))
}

/// Certificate `shop` and the TLS listener `secure`, for [`proxy_all`].
fn shop_only(certs: &Certs) -> String {
    format!(
        "{}{}",
        certs.shop.toml("shop", None),
        tls_listener("secure", r#"certificates = ["shop"]"#)
    )
}

/// A keep-alive `GET path` with this `Host`.
fn get_with_host(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

/// Sends `GET /hello` with `Host: shop.example.com` on `c` and expects `200 hello`.
fn assert_hello(c: &mut TlsClient, context: &str) {
    assert_hello_for(c, SHOP, context);
}

/// Sends `GET /hello` with this `Host` on `c` and expects `200 hello`.
fn assert_hello_for(c: &mut TlsClient, host: &str, context: &str) {
    c.send(get_with_host(host, "/hello"));
    let r = c.read_response();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello"),
        "{context}: GET /hello over TLS"
    );
}

/// `tollgate_tls_handshake_failures_total{reason}` summed over workers.
fn failures(gw: &Gateway, reason: &str) -> f64 {
    sum(
        &scrape(admin_addr(gw)),
        "tollgate_tls_handshake_failures_total",
        &[("reason", reason)],
    )
}

/// `tollgate_tls_handshakes_total` summed over workers.
fn handshakes(gw: &Gateway) -> f64 {
    sum(
        &scrape(admin_addr(gw)),
        "tollgate_tls_handshakes_total",
        &[],
    )
}

#[test]
fn sni_picks_the_certificate() {
    for driver in DRIVERS {
        let certs = certs();
        let gw = Gateway::start(&hello_config(&certs, SHOP_DEFAULT, ""), driver);
        let addr = gw.addr("secure");
        let options = TlsOptions::new(certs.pki.ca());
        // (SNI, certificate expected, is that certificate valid for the name?)
        let cases = [
            (Some(SHOP), &certs.shop, true),
            (Some("a.api.example.com"), &certs.api, true),
            // A wildcard covers one label only: these fall back to the default.
            (Some("a.b.api.example.com"), &certs.shop, false),
            (Some("api.example.com"), &certs.shop, false),
            (Some("unknown.example.org"), &certs.shop, false),
            (None, &certs.shop, false),
        ];
        for (sni, expected, valid_for_name) in cases {
            let context = format!("{driver:?}, SNI {sni:?}");
            let mut o = options.clone();
            if let Some(name) = sni {
                o = o.sni(name);
            }
            if !valid_for_name {
                o = o.any_name();
            }
            let mut c = connect_ok(addr, &o);
            assert!(c.leaf == expected.der, "{context}: wrong certificate");
            assert_eq!(c.alpn.as_deref(), Some(&b"http/1.1"[..]), "{context}: ALPN");
            assert_hello_for(&mut c, sni.unwrap_or(SHOP), &context);
        }
        // The plain listener of the same gateway still speaks plain HTTP.
        assert_eq!(get(gw.addr("public"), "/hello").text(), "hello");
    }
}

#[test]
fn unknown_name_refused_and_counted() {
    for driver in DRIVERS {
        let certs = certs();
        let tls = r#"certificates = ["shop", "api"], unknown_name = "refuse""#;
        let gw = Gateway::start(&hello_config(&certs, tls, ""), driver);
        let addr = gw.addr("secure");
        let options = TlsOptions::new(certs.pki.ca());

        for sni in [
            Some("unknown.example.org"),
            Some("a.b.api.example.com"),
            None,
        ] {
            let mut o = options.clone().any_name();
            if let Some(name) = sni {
                o = o.sni(name);
            }
            let failed = connect_err(addr, &o);
            assert!(
                failed.closed,
                "{driver:?}, SNI {sni:?}: the gateway did not close after refusing ({})",
                failed.error
            );
        }
        for sni in [SHOP, "a.api.example.com"] {
            let mut c = connect_ok(addr, &options.clone().sni(sni));
            assert_hello_for(&mut c, sni, &format!("{driver:?}, SNI {sni}"));
        }

        assert_eq!(failures(&gw, "unknown_name"), 3.0, "{driver:?}");
        assert_eq!(handshakes(&gw), 2.0, "{driver:?}");
        for reason in ["timeout", "closed", "protocol"] {
            assert_eq!(failures(&gw, reason), 0.0, "{driver:?}: {reason}");
        }
    }
}

#[test]
fn both_versions_by_default_and_restricted_by_config() {
    for driver in DRIVERS {
        let certs = certs();
        let options = TlsOptions::new(certs.pki.ca()).sni(SHOP);

        let gw = Gateway::start(&hello_config(&certs, SHOP_DEFAULT, ""), driver);
        let addr = gw.addr("secure");
        for (offered, negotiated) in [
            (Versions::Tls12, ProtocolVersion::TLSv1_2),
            (Versions::Tls13, ProtocolVersion::TLSv1_3),
            (Versions::Both, ProtocolVersion::TLSv1_3),
        ] {
            let context = format!("{driver:?}, client {offered:?}");
            let mut c = connect_ok(addr, &options.clone().versions(offered));
            assert_eq!(c.version, negotiated, "{context}");
            assert_hello(&mut c, &context);
        }
        // The Ed25519 certificate over TLS 1.2 too.
        let mut c = connect_ok(
            addr,
            &options
                .clone()
                .sni("x.api.example.com")
                .versions(Versions::Tls12),
        );
        assert!(c.leaf == certs.api.der, "{driver:?}: wildcard certificate");
        assert_eq!(c.version, ProtocolVersion::TLSv1_2, "{driver:?}");
        assert_hello_for(
            &mut c,
            "x.api.example.com",
            &format!("{driver:?}, Ed25519 over TLS 1.2"),
        );
        drop(gw);

        let tls13 = format!("{SHOP_DEFAULT}, versions = [\"1.3\"]");
        let gw = Gateway::start(&hello_config(&certs, &tls13, ""), driver);
        let addr = gw.addr("secure");
        let failed = connect_err(addr, &options.clone().versions(Versions::Tls12));
        assert!(failed.closed, "{driver:?}: not closed ({})", failed.error);
        let mut c = connect_ok(addr, &options.clone().versions(Versions::Tls13));
        assert_eq!(c.version, ProtocolVersion::TLSv1_3, "{driver:?}");
        assert_hello(&mut c, &format!("{driver:?}, 1.3-only listener"));
        assert_eq!(
            failures(&gw, "no_shared_version_or_cipher"),
            1.0,
            "{driver:?}: a client without a version the listener speaks"
        );
        assert_eq!(failures(&gw, "protocol"), 0.0, "{driver:?}");
        drop(gw);

        let tls12 = format!("{SHOP_DEFAULT}, versions = [\"1.2\"]");
        let gw = Gateway::start(&hello_config(&certs, &tls12, ""), driver);
        let addr = gw.addr("secure");
        let failed = connect_err(addr, &options.clone().versions(Versions::Tls13));
        assert!(failed.closed, "{driver:?}: not closed ({})", failed.error);
        let mut c = connect_ok(addr, &options);
        assert_eq!(c.version, ProtocolVersion::TLSv1_2, "{driver:?}");
        assert_hello(&mut c, &format!("{driver:?}, 1.2-only listener"));
    }
}

#[test]
fn keep_alive_and_pipelining_over_tls() {
    for driver in DRIVERS {
        let certs = certs();
        let gw = Gateway::start(&hello_config(&certs, SHOP_DEFAULT, ""), driver);
        let addr = gw.addr("secure");
        for versions in [Versions::Tls12, Versions::Tls13] {
            let context = format!("{driver:?}, {versions:?}");
            let options = TlsOptions::new(certs.pki.ca()).sni(SHOP).versions(versions);
            let mut c = connect_ok(addr, &options);
            for _ in 0..5 {
                assert_hello(&mut c, &context);
            }
            // Three requests in one write (one TLS record), answered in order.
            c.send(format!(
                "{}{}{}",
                get_with_host(SHOP, "/hello"),
                get_with_host(SHOP, "/nope"),
                get_with_host(SHOP, "/hello"),
            ));
            let statuses: Vec<u16> = (0..3).map(|_| c.read_response().status).collect();
            assert_eq!(statuses, [200, 404, 200], "{context}: pipelined");
            assert_hello(&mut c, &context);

            // A request that travels with the client's last handshake flight.
            let mut c = connect_ok(addr, &options.early_request(get_with_host(SHOP, "/hello")));
            let r = c.read_response();
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "hello"),
                "{context}: request sent with the Finished"
            );
            assert_hello(&mut c, &context);

            // `Connection: close` ends the connection after its response.
            c.send(format!(
                "GET /hello HTTP/1.1\r\nHost: {SHOP}\r\nConnection: close\r\n\r\n"
            ));
            let r = c.read_response();
            assert_eq!(r.status, 200, "{context}: Connection: close");
            let after = c.assert_closed(EVENT_DEADLINE);
            assert!(after.is_empty(), "{context}: bytes after the last response");
        }
    }
}

#[test]
fn upstream_sees_the_https_scheme() {
    for driver in DRIVERS {
        let certs = certs();
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), &shop_only(&certs)), driver);
        let secure = gw.addr("secure");

        let mut c = connect_ok(secure, &TlsOptions::new(certs.pki.ca()).sni(SHOP));
        c.send(get_with_host(SHOP, "/over/tls"));
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["target"], "/over/tls", "{driver:?}");
        let seen = up.requests();
        let last = seen.last().expect("the upstream saw the request");
        assert_eq!(
            last.header_all("x-forwarded-proto"),
            ["https"],
            "{driver:?}"
        );
        let port = secure.port().to_string();
        assert_eq!(
            last.header("x-forwarded-port"),
            Some(port.as_str()),
            "{driver:?}"
        );
        let forwarded = last.header("forwarded").unwrap_or_default();
        assert!(
            forwarded.contains("proto=https"),
            "{driver:?}: Forwarded: {forwarded}"
        );

        // The plain listener still says http.
        assert_eq!(get(gw.addr("public"), "/plain").status, 200);
        let seen = up.requests();
        let last = seen.last().expect("the upstream saw the plain request");
        assert_eq!(last.header_all("x-forwarded-proto"), ["http"], "{driver:?}");
        let forwarded = last.header("forwarded").unwrap_or_default();
        assert!(
            forwarded.contains("proto=http") && !forwarded.contains("proto=https"),
            "{driver:?}: Forwarded: {forwarded}"
        );
    }
}

#[test]
fn large_request_bodies_over_tls() {
    for driver in DRIVERS {
        let certs = certs();
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), &shop_only(&certs)), driver);
        let mut c = connect_ok(
            gw.addr("secure"),
            &TlsOptions::new(certs.pki.ca()).sni(SHOP),
        );
        let put = |path: &str, len: usize| {
            format!("PUT {path} HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: {len}\r\n\r\n")
        };

        // 40 KB: head and body in one write, three TLS records arriving together.
        let small = pattern_body(40_000);
        let mut request = put("/one-write", small.len()).into_bytes();
        request.extend_from_slice(&small);
        c.send(&request);
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["body_len"], small.len(), "{driver:?}");

        // 300 KB in 50 KB writes, streamed to the upstream.
        let big = pattern_body(300 * 1024 + 17);
        c.send(put("/pieces", big.len()));
        for piece in big.chunks(50_000) {
            c.send(piece);
        }
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["body_len"], big.len(), "{driver:?}");

        let seen = up.requests();
        assert_eq!(seen.len(), 2, "{driver:?}");
        assert!(seen[0].body == small, "{driver:?}: one-write body differs");
        assert!(seen[1].body == big, "{driver:?}: streamed body differs");
    }
}

#[test]
fn large_response_body_over_tls() {
    for driver in DRIVERS {
        let certs = certs();
        let big = 2 * 1024 * 1024 + 3;
        let up = Upstream::start(Behaviour::reply(Reply::Large(big)));
        let gw = Gateway::start(&proxy_all(&up.url(), &shop_only(&certs)), driver);
        // Far past rustls' buffers, twice on a kept-alive connection.
        let mut c = connect_ok(
            gw.addr("secure"),
            &TlsOptions::new(certs.pki.ca()).sni(SHOP),
        );
        for _ in 0..2 {
            c.send(get_with_host(SHOP, "/large"));
            let r = c.read_response();
            assert_eq!(r.status, 200, "{driver:?}");
            assert_eq!(r.body.len(), big, "{driver:?}");
            assert!(r.body == pattern_body(big), "{driver:?}: body differs");
        }
    }
}

/// A TLS listener with a 300 ms handshake deadline, and a head read deadline far beyond the
/// harness's, so only the handshake deadline can close a stalled client in time.
fn short_handshake_config(certs: &Certs) -> String {
    hello_config(
        certs,
        &format!("{SHOP_DEFAULT}, handshake_timeout_ms = 300"),
        "[limits]\nheader_read_timeout_ms = 60000\n",
    )
}

/// Asserts that the gateway closes `c` (EOF or reset, with at most TLS alerts before it)
/// within the harness deadline.
fn assert_closed_by_gateway(c: &mut Client, context: &str) {
    let got = c.assert_closed(EVENT_DEADLINE);
    assert!(
        only_alerts(&got),
        "{context}: expected nothing or TLS alerts before the close, got {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A TLS client still gets through.
fn assert_tls_works(addr: SocketAddr, certs: &Certs, context: &str) {
    let mut c = connect_ok(addr, &TlsOptions::new(certs.pki.ca()).sni(SHOP));
    assert_hello(&mut c, context);
}

#[test]
fn handshake_timeout_closes_a_stalled_client_hello() {
    for driver in DRIVERS {
        let certs = certs();
        let gw = Gateway::start(&short_handshake_config(&certs), driver);
        let addr = gw.addr("secure");
        let hello = client_hello(&TlsOptions::new(certs.pki.ca()).sni(SHOP), addr);

        let mut c = Client::connect(addr);
        c.send(&hello[..hello.len() / 2]);
        assert_closed_by_gateway(&mut c, &format!("{driver:?}: half a ClientHello"));
        assert_eq!(failures(&gw, "timeout"), 1.0, "{driver:?}");

        // A client that gives up mid-ClientHello is a `closed` failure, not a timeout.
        let mut c = Client::connect(addr);
        c.send(&hello[..hello.len() / 2]);
        c.stream()
            .shutdown(Shutdown::Write)
            .expect("shut the write side");
        assert_closed_by_gateway(&mut c, &format!("{driver:?}: half a ClientHello, then FIN"));
        assert_eq!(failures(&gw, "closed"), 1.0, "{driver:?}");
        assert_eq!(failures(&gw, "timeout"), 1.0, "{driver:?}");
        assert_tls_works(addr, &certs, &format!("{driver:?}"));
    }
}

/// `handshake_timeout_ms` bounds the whole handshake from the accept, so a client that never
/// sends its ClientHello is closed by it too (and counted as a `timeout`), not left to the
/// head read deadline.
#[test]
fn handshake_timeout_closes_a_silent_client() {
    for driver in DRIVERS {
        let certs = certs();
        let gw = Gateway::start(&short_handshake_config(&certs), driver);
        let addr = gw.addr("secure");

        let mut c = Client::connect(addr);
        assert_closed_by_gateway(&mut c, &format!("{driver:?}: nothing sent"));
        assert_eq!(failures(&gw, "timeout"), 1.0, "{driver:?}");
        assert_tls_works(addr, &certs, &format!("{driver:?}"));
    }
}

/// Garbage a client may send instead of a ClientHello.
fn garbage() -> Vec<(&'static str, Vec<u8>)> {
    // A handshake record whose header claims 65535 bytes (over the 16 KiB + 2 KiB limit).
    let mut oversized_record = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    oversized_record.extend_from_slice(&[0u8; 64]);
    // A well-framed handshake record whose ClientHello body is 4 bytes of junk.
    let junk_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,
    ];
    // A ClientHello announced as 64 KiB - 1, in full-size records: 48 KiB sent.
    let mut huge_hello = Vec::new();
    for i in 0..3 {
        huge_hello.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
        let mut fragment = vec![0x41u8; 0x4000];
        if i == 0 {
            fragment[..4].copy_from_slice(&[0x01, 0x00, 0xff, 0xff]);
        }
        huge_hello.extend_from_slice(&fragment);
    }
    vec![
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n".to_vec(),
        ),
        ("oversized record", oversized_record),
        ("junk ClientHello", junk_hello),
        ("48 KiB ClientHello", huge_hello),
    ]
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed() {
    for driver in DRIVERS {
        let certs = certs();
        let gw = Gateway::start(&hello_config(&certs, SHOP_DEFAULT, ""), driver);
        let addr = gw.addr("secure");
        let cases = garbage();
        for (what, bytes) in &cases {
            let context = format!("{driver:?}: {what}");
            let mut c = Client::connect(addr);
            // The gateway may close before it has read everything (a reset then).
            let _ = c.try_send(bytes);
            assert_closed_by_gateway(&mut c, &context);
        }
        assert_eq!(
            failures(&gw, "protocol"),
            cases.len() as f64,
            "{driver:?}: protocol failures"
        );
        assert_eq!(failures(&gw, "timeout"), 0.0, "{driver:?}");
        assert_tls_works(addr, &certs, &format!("{driver:?}"));
        assert_eq!(handshakes(&gw), 1.0, "{driver:?}");
    }
}

/// Certificate `shop` from `leaf` on the TLS listener `secure`, mock `GET /hello`.
fn shop_config(leaf: &Leaf) -> String {
    mock_hello(&format!(
        "{}{}",
        leaf.toml("shop", None),
        tls_listener(
            "secure",
            r#"certificates = ["shop"], default_certificate = "shop""#
        )
    ))
}

#[test]
fn reload_replaces_the_certificate_for_new_connections() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let a = pki.issue("shop-a", &[SHOP], &PKCS_ECDSA_P256_SHA256);
        let gw = Gateway::start(&shop_config(&a), driver);
        let addr = gw.addr("secure");
        let options = TlsOptions::new(pki.ca()).sni(SHOP);

        let mut old = connect_ok(addr, &options);
        assert!(old.leaf == a.der, "{driver:?}: certificate A first");
        assert_hello(&mut old, &format!("{driver:?}, before the reload"));

        // Certificate B, a new key in other files.
        let b = pki.issue("shop-b", &[SHOP], &PKCS_ECDSA_P384_SHA384);
        assert_eq!(gw.reload(&shop_config(&b)), Ok(2), "{driver:?}");
        assert_hello(
            &mut old,
            &format!("{driver:?}, old connection after the reload"),
        );
        let mut new = connect_ok(addr, &options);
        assert!(
            new.leaf == b.der,
            "{driver:?}: certificate B after the reload"
        );
        assert_hello(&mut new, &format!("{driver:?}, new connection"));

        // Renewed in place: same paths, same configuration text.
        let c = pki.issue("shop-b", &[SHOP], &PKCS_ECDSA_P256_SHA256);
        assert_eq!(gw.reload(&shop_config(&c)), Ok(3), "{driver:?}");
        let mut renewed = connect_ok(addr, &options);
        assert!(
            renewed.leaf == c.der,
            "{driver:?}: the renewed files after the second reload"
        );
        assert_hello(&mut renewed, &format!("{driver:?}, renewed"));
        assert_hello(&mut old, &format!("{driver:?}, old connection at the end"));
        assert_hello(&mut new, &format!("{driver:?}, B connection at the end"));
    }
}

#[test]
fn reload_with_a_mismatched_key_keeps_the_old_certificate() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let a = pki.issue("shop-a", &[SHOP], &PKCS_ECDSA_P256_SHA256);
        let gw = Gateway::start(&shop_config(&a), driver);
        let addr = gw.addr("secure");
        let options = TlsOptions::new(pki.ca()).sni(SHOP);

        // B's certificate with another certificate's key.
        let b = pki.issue("shop-b", &[SHOP], &PKCS_ECDSA_P256_SHA256);
        let other = pki.issue("other", &[SHOP], &PKCS_ECDSA_P256_SHA256);
        let broken = Leaf {
            key: other.key.clone(),
            ..b.clone()
        };
        let err = gw
            .reload(&shop_config(&broken))
            .expect_err("a key that does not match its certificate must be refused");
        assert!(
            err.contains(&broken.key.display().to_string()),
            "{driver:?}: the error names the key file: {err}"
        );
        assert!(
            !err.contains("PRIVATE KEY"),
            "{driver:?}: the error shows key material: {err}"
        );
        let c = connect_ok(addr, &options);
        assert!(c.leaf == a.der, "{driver:?}: still certificate A");
    }
}

/// The values of the per-worker series `name`, by worker label.
fn by_worker(scrape: &prometheus_parse::Scrape, name: &str) -> BTreeMap<String, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| {
            let worker = s.labels.get("worker")?.to_string();
            match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => {
                    Some((worker, v))
                }
                _ => None,
            }
        })
        .collect()
}

/// What went up between two maps of per-worker values.
fn grown(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(w, v)| (w.clone(), v - before.get(w).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// Connects with `options`, sends `GET /hello` over the connection, and returns it with the
/// worker that accepted it. The worker is learnt from `/metrics`: the access log line names
/// no worker (its fields are API Gateway's `$context` names), but
/// `tollgate_tls_handshakes_total{worker}` goes up by one on the worker that made the
/// handshake — read after the response, which that worker sends only once its handshake has
/// finished and been counted. `tollgate_tls_resumptions_total{worker}` must go up with it
/// on the same worker when the client resumed, and nowhere when it did not.
fn connect_on_a_worker(
    admin: SocketAddr,
    addr: SocketAddr,
    options: &TlsOptions,
    context: &str,
) -> (TlsClient, String) {
    let before = scrape(admin);
    let mut c = connect_ok(addr, options);
    assert_hello(&mut c, context);
    let after = scrape(admin);
    let handshakes = grown(
        &by_worker(&before, "tollgate_tls_handshakes_total"),
        &by_worker(&after, "tollgate_tls_handshakes_total"),
    );
    assert_eq!(
        handshakes.len(),
        1,
        "{context}: one worker made the handshake: {handshakes:?}"
    );
    let (worker, count) = handshakes[0].clone();
    assert_eq!(count, 1.0, "{context}: handshakes on worker {worker}");
    let resumptions = grown(
        &by_worker(&before, "tollgate_tls_resumptions_total"),
        &by_worker(&after, "tollgate_tls_resumptions_total"),
    );
    let expected = if c.resumed() {
        vec![(worker.clone(), 1.0)]
    } else {
        Vec::new()
    };
    assert_eq!(resumptions, expected, "{context}: resumptions counted");
    (c, worker)
}

/// How a client resumes: versions offered and TLS 1.2 mode; its first handshake's version.
const RESUMPTION_CASES: [(Versions, Tls12Resumption, ProtocolVersion, &str); 3] = [
    (
        Versions::Tls13,
        Tls12Resumption::SessionIdOrTickets,
        ProtocolVersion::TLSv1_3,
        "TLS 1.3 tickets",
    ),
    (
        Versions::Tls12,
        Tls12Resumption::SessionIdOrTickets,
        ProtocolVersion::TLSv1_2,
        "TLS 1.2 tickets",
    ),
    (
        Versions::Tls12,
        Tls12Resumption::SessionIdOnly,
        ProtocolVersion::TLSv1_2,
        "TLS 1.2 session ids (no ticket extension)",
    ),
];

/// Two workers, in the file (the harness also passes `--workers 2`).
const TWO_WORKERS: &str = "[server]\nworkers = 2\n";

/// Tries before giving up on reaching a worker: SO_REUSEPORT spreads connections over the two
/// workers by a hash of the client's port, so each try misses one with probability 1/2.
const TRIES: usize = 50;

/// Full handshake with a session store; returns the options that share it and the worker.
fn first_handshake(
    admin: SocketAddr,
    addr: SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    (versions, tls12, version, _): (Versions, Tls12Resumption, ProtocolVersion, &str),
    context: &str,
) -> (TlsOptions, String) {
    let store = Arc::new(ClientSessionMemoryCache::new(64));
    let options = TlsOptions::new(ca)
        .sni(SHOP)
        .versions(versions)
        .resume_with(&store, tls12);
    let (c, worker) = connect_on_a_worker(admin, addr, &options, context);
    assert_eq!(
        c.connection().handshake_kind(),
        Some(HandshakeKind::Full),
        "{context}: first handshake"
    );
    assert_eq!(c.version, version, "{context}");
    (options, worker)
}

/// Connects with `options` until a connection lands on a worker other than `first` (all
/// of them must resume, whichever worker they land on); returns how many tries it took.
fn resume_until_another_worker(
    admin: SocketAddr,
    addr: SocketAddr,
    options: &TlsOptions,
    certificate: &Leaf,
    first: &str,
    context: &str,
) -> usize {
    for n in 1..=TRIES {
        let context = format!("{context}, connection {n}");
        let (c, worker) = connect_on_a_worker(admin, addr, options, &context);
        assert_eq!(
            c.connection().handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{context}: resumed on worker {worker} (the session was made on worker {first})"
        );
        assert!(
            c.leaf == certificate.der,
            "{context}: the session's certificate"
        );
        if worker != first {
            return n;
        }
    }
    panic!("{context}: {TRIES} connections all landed on worker {first}");
}

/// Two workers and one TLS listener: a session made on one worker (a full handshake)
/// resumes on the other — TLS 1.3 and TLS 1.2 tickets (one ticket key for the process) and
/// TLS 1.2 session ids (one session cache for the process). Every resumption is counted on
/// the worker that accepted it.
#[test]
fn sessions_resume_on_the_other_worker() {
    for driver in DRIVERS {
        let certs = certs();
        let config = hello_config(&certs, SHOP_DEFAULT, TWO_WORKERS);
        let gw = Gateway::start_with(&config, Options::new(driver).workers(2));
        let admin = admin_addr(&gw);
        let addr = gw.addr("secure");
        let mut resumed = 0;
        for case in RESUMPTION_CASES {
            let context = format!("{driver:?}, {}", case.3);
            let (options, first) = first_handshake(admin, addr, certs.pki.ca(), case, &context);
            resumed +=
                resume_until_another_worker(admin, addr, &options, &certs.shop, &first, &context);
        }
        let m = scrape(admin);
        assert_eq!(
            sum(&m, "tollgate_tls_resumptions_total", &[]),
            resumed as f64,
            "{driver:?}"
        );
        assert_eq!(
            sum(&m, "tollgate_tls_handshakes_total", &[]),
            (resumed + RESUMPTION_CASES.len()) as f64,
            "{driver:?}"
        );
    }
}

/// Asserts every worker runs plan `generation` (a reload completes only once every worker
/// applied it, so no wait is needed).
fn assert_generation(admin: SocketAddr, generation: f64, context: &str) {
    let generations = by_worker(&scrape(admin), "tollgate_plan_generation");
    assert!(
        generations.len() == 2 && generations.values().all(|g| *g == generation),
        "{context}: workers at generations {generations:?}"
    );
}

/// Sessions made before a reload (same certificate files) resume after it, on both workers:
/// the reload builds new server configurations, which keep the process's ticket key and
/// session cache.
#[test]
fn sessions_resume_after_a_reload() {
    for driver in DRIVERS {
        let certs = certs();
        let config = hello_config(&certs, SHOP_DEFAULT, TWO_WORKERS);
        let gw = Gateway::start_with(&config, Options::new(driver).workers(2));
        let admin = admin_addr(&gw);
        let addr = gw.addr("secure");
        let before: Vec<(TlsOptions, String)> = RESUMPTION_CASES
            .into_iter()
            .map(|case| {
                let context = format!("{driver:?}, {}, before the reload", case.3);
                first_handshake(admin, addr, certs.pki.ca(), case, &context)
            })
            .collect();

        assert_eq!(gw.reload(&config), Ok(2), "{driver:?}");
        assert_generation(admin, 2.0, &format!("{driver:?}"));
        for ((options, first), case) in before.iter().zip(RESUMPTION_CASES) {
            let context = format!("{driver:?}, {}, after the reload", case.3);
            // The first connection can only offer a session from before the reload.
            let (c, worker) = connect_on_a_worker(admin, addr, options, &context);
            assert_eq!(
                c.connection().handshake_kind(),
                Some(HandshakeKind::Resumed),
                "{context}: a session made on worker {first} resumed on worker {worker}"
            );
            // And on the other worker too.
            resume_until_another_worker(admin, addr, options, &certs.shop, &worker, &context);
        }
    }
}

/// A handshake message that announces 64 KiB and never completes (TLS 1.2, where the client's
/// second flight is plaintext): rustls buffers at most that much, so its record buffer fills
/// and stays full. The gateway must refuse the connection — before the fix it spun on the
/// full buffer forever, without a read or a timer, freezing its worker — and the same worker
/// (there is one) must go on serving.
#[test]
fn a_handshake_message_that_cannot_complete_is_refused_without_a_spin() {
    use std::io::{Read, Write};
    for driver in DRIVERS {
        let certs = certs();
        let config = hello_config(&certs, SHOP_DEFAULT, "");
        let gw = Gateway::start_with(&config, Options::new(driver).workers(1));
        let addr = gw.addr("secure");
        let options = TlsOptions::new(certs.pki.ca())
            .sni(SHOP)
            .versions(Versions::Tls12);
        let mut conn = rustls::ClientConnection::new(
            Arc::new(options.client_config()),
            rustls::pki_types::ServerName::try_from(SHOP).expect("name"),
        )
        .expect("client");
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(EVENT_DEADLINE)).expect("timeout");
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).expect("ClientHello");
        }
        tcp.write_all(&hello).expect("send ClientHello");
        // The server's first flight, up to ServerHelloDone: the client then has its own
        // flight ready to write.
        let mut chunk = [0u8; 16 * 1024];
        while !conn.wants_write() {
            let n = tcp.read(&mut chunk).expect("server flight");
            assert!(n > 0, "{driver:?}: closed during the server's flight");
            conn.read_tls(&mut &chunk[..n]).expect("read_tls");
            conn.process_new_packets().expect("server flight accepted");
        }
        // Instead of it: plaintext handshake records carrying one message that announces
        // 0xffff bytes, sent in full records (more than the message can take).
        let mut junk = Vec::new();
        let mut payload = vec![0x10, 0x00, 0xff, 0xff];
        payload.resize(70_000, 0x41);
        for piece in payload.chunks(16_384) {
            junk.extend_from_slice(&[22, 3, 3]);
            junk.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            junk.extend_from_slice(piece);
        }
        let _ = tcp.write_all(&junk);
        assert!(
            tollgate_tests::tls::wait_eof(&mut tcp, EVENT_DEADLINE),
            "{driver:?}: the gateway should close the connection"
        );
        // The one worker still serves.
        assert_tls_works(addr, &certs, &format!("{driver:?}: after the junk"));
        assert!(failures(&gw, "protocol") >= 1.0, "{driver:?}");
    }
}

/// A client that handshakes under one name and sends `Host` for a domain another
/// certificate of the listener serves gets 421 Misdirected Request, never that domain's
/// routes; a `Host` the handshake's certificate serves (or the default serves, when the
/// handshake got the default) is served. Open connections keep their certificate's identity
/// across a reload.
#[test]
fn a_host_of_another_certificate_is_misdirected() {
    for driver in DRIVERS {
        let certs = certs();
        let gw = Gateway::start(&hello_config(&certs, SHOP_DEFAULT, ""), driver);
        let addr = gw.addr("secure");
        let options = TlsOptions::new(certs.pki.ca());
        let context = format!("{driver:?}");
        // Handshake as the wildcard's domain, then ask for the shop: misdirected.
        let mut c = connect_ok(addr, &options.clone().sni("a.api.example.com"));
        c.send(get_with_host(SHOP, "/hello"));
        let r = c.read_response();
        assert_eq!(r.status, 421, "{context}: {}", r.text());
        assert_eq!(r.json()["message"], "Misdirected Request");
        // The same connection, its own domain: served.
        assert_hello_for(&mut c, "b.api.example.com", &context);
        // Handshake as the shop, ask for the wildcard's domain: misdirected.
        let mut c = connect_ok(addr, &options.clone().sni(SHOP));
        c.send(get_with_host("a.api.example.com", "/hello"));
        assert_eq!(c.read_response().status, 421, "{context}");
        // No SNI (the default, shop): a Host no certificate names is the default's: served;
        // the wildcard's domain is not.
        let mut c = connect_ok(addr, &options.clone().any_name());
        assert_hello_for(&mut c, "127.0.0.1", &context);
        c.send(get_with_host("a.api.example.com", "/hello"));
        assert_eq!(c.read_response().status, 421, "{context}");
        // A reload rebuilds the configurations: an open connection keeps its certificate.
        let mut c = connect_ok(addr, &options.clone().sni(SHOP));
        assert_hello(&mut c, &context);
        let config = hello_config(&certs, SHOP_DEFAULT, "");
        assert_eq!(gw.reload(&config), Ok(2), "{context}");
        assert_hello(&mut c, &format!("{context}: after a reload"));
    }
}
