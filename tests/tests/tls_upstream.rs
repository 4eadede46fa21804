//! TLS origination end to end: `http` integrations with `https://` URLs to a TLS mock upstream
//! ([`tollgate_tests::tls_upstream`]) whose certificate comes from a CA made at test time.
//! A private CA (`ca`) with `server_name` on an IP-address URL (SNI, ALPN, `X-Forwarded-*`,
//! TLS 1.2 and 1.3, the upstream connection reused by keep-alive); the name verified by
//! default (the URL's host: an IP address or a DNS name); certificates refused (another name,
//! another CA, an impostor CA, the default Mozilla roots) → 502 with no request upstream;
//! `insecure_skip_verify` (and its warning); connection pools kept apart by TLS settings; an
//! upstream that closes its TLS connections (reconnected, sessions resumed); large bodies both
//! ways; a client certificate presented to an upstream that asks for one (and the refusal
//! without it); configuration errors (`tls` on an `http://` URL, a `ca` that does not exist
//! or holds no certificate, a bad `server_name`). Both drivers.
use std::path::Path;

use tollgate_tests::config::{listener, proxy_all_with};
use tollgate_tests::gateway::{check, run_refused, EVENT_DEADLINE};
use tollgate_tests::tls::{ClientCert, Leaf, Pki, Versions, PKCS_ECDSA_P256_SHA256};
use tollgate_tests::tls_upstream::{TlsUpstream, UpstreamTls};
use tollgate_tests::upstream::pattern_body;
use tollgate_tests::{get, Behaviour, Client, Driver, Gateway, Options, Reply, Response, DRIVERS};

use rustls::ProtocolVersion;

/// The name the upstream's certificate is for, and the `server_name` configured.
const UPSTREAM: &str = "upstream.example.com";
/// Another name.
const OTHER: &str = "other.example.com";

/// A CA and a leaf it issued for `names`.
fn pki_and_leaf(names: &[&str]) -> (Pki, Leaf) {
    let pki = Pki::new();
    let leaf = pki.issue("upstream", names, &PKCS_ECDSA_P256_SHA256);
    (pki, leaf)
}

/// The gateway proxying everything to `up` with `tls`.
fn proxy_tls(up: &TlsUpstream, tls: &UpstreamTls, driver: Driver) -> Gateway {
    Gateway::start(&proxy_all_with(&up.url(), "", &tls.toml()), driver)
}

/// A keep-alive `GET path` with `Host: shop.example`.
fn get_shop(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n")
}

/// Asserts the gateway answered 502 because the upstream's certificate was refused: it did
/// connect, every connection it made ended without a completed handshake, and no request
/// reached the upstream.
fn assert_refused(up: &TlsUpstream, r: &Response, context: &str) {
    assert_eq!(r.status, 502, "{context}: {}", r.text());
    let connections = up.connections();
    assert!(
        connections >= 1,
        "{context}: the gateway never connected to the upstream"
    );
    assert!(
        up.wait_connections_ended(connections, EVENT_DEADLINE),
        "{context}: the gateway kept a refused connection open"
    );
    assert!(
        up.handshakes().is_empty(),
        "{context}: handshakes completed: {:?}",
        up.handshakes()
    );
    assert!(
        !up.handshake_failures().is_empty(),
        "{context}: no failed handshake recorded"
    );
    assert!(
        up.requests().is_empty(),
        "{context}: the upstream received {:?}",
        up.requests()
    );
}

/// `tls = { cert, key }`: an upstream that requires a client certificate from its own CA gets
/// the configured one (the leaf it saw is that certificate) and serves the request; the same
/// upstream refuses a gateway without one (502, nothing upstream).
#[test]
fn a_client_certificate_is_presented_to_an_upstream_that_asks() {
    for driver in DRIVERS {
        let (pki, leaf) = pki_and_leaf(&[UPSTREAM]);
        let clients = Pki::named("upstream's client CA");
        let identity = clients.issue_client("gateway", &ClientCert::new("tollgate", &[0x42]));
        let tls = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);

        let up =
            TlsUpstream::start_requiring_client_cert(&leaf, clients.ca_pem(), Behaviour::echo());
        let gw = proxy_tls(&up, &tls.clone().client_cert(&identity), driver);
        let r = get(gw.addr("public"), "/with/identity");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["target"], "/with/identity", "{driver:?}");
        let handshakes = up.handshakes();
        let presented = handshakes.last().and_then(|h| h.client_cert.as_ref());
        assert_eq!(
            presented,
            Some(&identity.der),
            "{driver:?}: the certificate presented"
        );
        drop(gw);

        let up =
            TlsUpstream::start_requiring_client_cert(&leaf, clients.ca_pem(), Behaviour::echo());
        let gw = proxy_tls(&up, &tls, driver);
        let r = get(gw.addr("public"), "/without/identity");
        assert_refused(&up, &r, &format!("{driver:?}: no client certificate"));
    }
}

#[test]
fn private_ca_with_server_name_verifies_and_reuses_the_connection() {
    for driver in DRIVERS {
        for (versions, negotiated) in [
            (Versions::Both, ProtocolVersion::TLSv1_3),
            (Versions::Tls12, ProtocolVersion::TLSv1_2),
        ] {
            let context = format!("{driver:?}, upstream {versions:?}");
            let (pki, leaf) = pki_and_leaf(&[UPSTREAM]);
            let up = TlsUpstream::start_with(&leaf, Behaviour::echo(), versions);
            let tls = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);
            let gw = proxy_tls(&up, &tls, driver);
            let addr = gw.addr("public");

            let mut c = Client::connect(addr);
            c.send(get_shop("/items/first?q=a%20b"));
            let r = c.read_response();
            assert_eq!(r.status, 200, "{context}: {}", r.text());
            assert_eq!(r.json()["target"], "/items/first?q=a%20b", "{context}");
            let seen = up.requests();
            let req = seen.first().expect("the request reached the upstream");
            assert_eq!(req.method, "GET", "{context}");
            assert_eq!(req.target, "/items/first?q=a%20b", "{context}");
            // Host is the URL's authority, as for a plain upstream; the client's goes to
            // X-Forwarded-Host.
            assert_eq!(
                req.header_all("host"),
                [up.addr().to_string()],
                "{context}: {:?}",
                req.headers
            );
            assert_eq!(req.header("x-forwarded-host"), Some("shop.example"));
            assert_eq!(req.header("x-forwarded-for"), Some("127.0.0.1"));
            // The client spoke plain HTTP to the gateway.
            assert_eq!(req.header("x-forwarded-proto"), Some("http"), "{context}");
            assert_eq!(
                req.header("x-forwarded-port"),
                Some(addr.port().to_string().as_str()),
                "{context}"
            );

            // 19 more on the same client connection.
            for i in 0..19 {
                let path = format!("/items/{i}");
                c.send(get_shop(&path));
                let r = c.read_response();
                assert_eq!(r.status, 200, "{context}, {path}: {}", r.text());
                assert_eq!(r.json()["target"], path.as_str(), "{context}");
            }
            assert_eq!(up.requests().len(), 20, "{context}");
            assert!(
                up.connections() <= 2,
                "{context}: 20 sequential requests made {} upstream connections",
                up.connections()
            );
            let handshakes = up.handshakes();
            assert!(
                !handshakes.is_empty() && handshakes.len() <= 2,
                "{context}: {handshakes:?}"
            );
            for h in &handshakes {
                assert_eq!(h.sni.as_deref(), Some(UPSTREAM), "{context}: SNI sent");
                assert_eq!(h.version, negotiated, "{context}");
                assert_eq!(h.alpn.as_deref(), Some(&b"http/1.1"[..]), "{context}: ALPN");
            }
            assert!(
                up.handshake_failures().is_empty(),
                "{context}: {:?}",
                up.handshake_failures()
            );
        }
    }
}

#[test]
fn server_name_defaults_to_the_url_host() {
    for driver in DRIVERS {
        // (URL host, the certificate's names, status, SNI the upstream saw)
        let cases = [
            // An IP address is verified against the certificate's IP addresses (and never
            // sent as SNI).
            ("127.0.0.1", "127.0.0.1", 200, None),
            ("127.0.0.1", UPSTREAM, 502, None),
            // A DNS name is sent and verified.
            ("localhost", "localhost", 200, Some("localhost")),
            ("localhost", UPSTREAM, 502, Some("localhost")),
        ];
        for (host, cert_name, status, sni) in cases {
            let context = format!("{driver:?}, https://{host}, certificate for {cert_name}");
            let (pki, leaf) = pki_and_leaf(&[cert_name]);
            let up = TlsUpstream::echo(&leaf);
            let url = format!("https://{host}:{}", up.addr().port());
            let tls = UpstreamTls::new().ca(pki.ca_pem());
            let gw = Gateway::start(&proxy_all_with(&url, "", &tls.toml()), driver);
            let r = get(gw.addr("public"), "/default-name");
            if status == 200 {
                assert_eq!(r.status, 200, "{context}: {}", r.text());
                assert_eq!(up.requests().len(), 1, "{context}");
                let handshakes = up.handshakes();
                assert_eq!(handshakes.len(), 1, "{context}: {handshakes:?}");
                assert_eq!(handshakes[0].sni.as_deref(), sni, "{context}: SNI");
            } else {
                assert_refused(&up, &r, &context);
            }
        }
    }
}

#[test]
fn certificate_for_another_name_is_refused() {
    for driver in DRIVERS {
        let (pki, leaf) = pki_and_leaf(&[OTHER]);
        let up = TlsUpstream::echo(&leaf);
        let tls = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);
        let gw = proxy_tls(&up, &tls, driver);
        let addr = gw.addr("public");
        let r = get(addr, "/wrong-name");
        assert_refused(&up, &r, &format!("{driver:?}, certificate for {OTHER}"));
        // Still refused on the next request (nothing was cached as good).
        let r = get(addr, "/again");
        assert_refused(&up, &r, &format!("{driver:?}, second request"));
        // The gateway itself keeps serving.
        let mut c = Client::connect(addr);
        c.send(get_shop("/third"));
        assert_eq!(c.read_response().status, 502, "{driver:?}");
    }
}

#[test]
fn unknown_ca_is_refused() {
    for driver in DRIVERS {
        let (_pki, leaf) = pki_and_leaf(&[UPSTREAM]);
        // Another CA, and an impostor: another key under the issuer's own name (found as the
        // issuer, refused on the signature).
        let other_ca = Pki::named("another test CA");
        let impostor = Pki::new();
        let cases = [
            (
                "another CA",
                UpstreamTls::new()
                    .ca(other_ca.ca_pem())
                    .server_name(UPSTREAM),
            ),
            (
                "an impostor CA",
                UpstreamTls::new()
                    .ca(impostor.ca_pem())
                    .server_name(UPSTREAM),
            ),
            // No `ca`: the Mozilla roots, which do not include a test CA.
            (
                "the default roots",
                UpstreamTls::new().server_name(UPSTREAM),
            ),
        ];
        for (trust, tls) in cases {
            let context = format!("{driver:?}, {trust} trusted");
            let up = TlsUpstream::echo(&leaf);
            let gw = proxy_tls(&up, &tls, driver);
            let r = get(gw.addr("public"), "/unknown-ca");
            assert_refused(&up, &r, &context);
        }
    }
}

#[test]
fn insecure_skip_verify_accepts_any_certificate() {
    for driver in DRIVERS {
        let (_pki, wrong_name) = pki_and_leaf(&[OTHER]);
        // (the tls settings, the SNI expected: the server name, none for an IP address)
        let cases = [
            (
                UpstreamTls::new()
                    .server_name(UPSTREAM)
                    .insecure_skip_verify(true),
                Some(UPSTREAM),
            ),
            (UpstreamTls::new().insecure_skip_verify(true), None),
        ];
        for (tls, sni) in cases {
            let context = format!("{driver:?}, {}", tls.toml());
            let up = TlsUpstream::echo(&wrong_name);
            let gw = proxy_tls(&up, &tls, driver);
            let r = get(gw.addr("public"), "/insecure");
            assert_eq!(r.status, 200, "{context}: {}", r.text());
            assert_eq!(r.json()["target"], "/insecure", "{context}");
            assert_eq!(up.requests().len(), 1, "{context}");
            let handshakes = up.handshakes();
            assert_eq!(handshakes.len(), 1, "{context}: {handshakes:?}");
            assert_eq!(handshakes[0].sni.as_deref(), sni, "{context}: SNI");
            // Said loudly at start.
            let warned = gw.count(|e| {
                matches!(e["level"].as_str(), Some("WARN" | "ERROR"))
                    && e.to_string().to_ascii_lowercase().contains("insecure")
            });
            assert!(
                warned >= 1,
                "{context}: no warning about insecure_skip_verify:\n{}",
                gw.log_text()
            );
        }
        // `insecure_skip_verify = false` is verification as usual.
        let up = TlsUpstream::echo(&wrong_name);
        let tls = UpstreamTls::new()
            .server_name(UPSTREAM)
            .insecure_skip_verify(false);
        let gw = proxy_tls(&up, &tls, driver);
        let r = get(gw.addr("public"), "/verified");
        assert_refused(
            &up,
            &r,
            &format!("{driver:?}, insecure_skip_verify = false"),
        );
    }
}

#[test]
fn upstreams_with_other_tls_settings_do_not_share_connections() {
    for driver in DRIVERS {
        let (pki, leaf) = pki_and_leaf(&[UPSTREAM]);
        let other_ca = Pki::new();
        let up = TlsUpstream::echo(&leaf);
        let https = up.url();
        let plain = format!("http://{}", up.addr());
        let good = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);
        let bad = UpstreamTls::new()
            .ca(other_ca.ca_pem())
            .server_name(UPSTREAM);
        // Three integrations on one authority: verified, refused (another CA), plain HTTP.
        let config = format!(
            "{listener}[[apis]]\nid = \"api\"\n\n\
             [[apis.routes]]\nroute = \"ANY /good/{{proxy+}}\"\nintegration = \"good\"\n\n\
             [[apis.routes]]\nroute = \"ANY /bad/{{proxy+}}\"\nintegration = \"bad\"\n\n\
             [[apis.routes]]\nroute = \"ANY /plain/{{proxy+}}\"\nintegration = \"plain\"\n\n\
             [apis.integrations.good]\ntype = \"http\"\nurl = \"{https}\"\n{good}\n\n\
             [apis.integrations.bad]\ntype = \"http\"\nurl = \"{https}\"\n{bad}\n\n\
             [apis.integrations.plain]\ntype = \"http\"\nurl = \"{plain}\"\n",
            listener = listener("public"),
            good = good.toml(),
            bad = bad.toml(),
        );
        // One worker: every request finds the pool the earlier ones left.
        let gw = Gateway::start_with(&config, Options::new(driver).workers(1));
        let addr = gw.addr("public");
        // good, bad, plain, good again: the pooled verified connection serves neither the
        // integration that does not trust the upstream's CA nor the plain one. (A 502 closes
        // the client connection; the next request comes on a new one.)
        let mut c = Client::connect(addr);
        for (path, status) in [
            ("/good/1", 200),
            ("/bad/1", 502),
            ("/plain/1", 502),
            ("/good/2", 200),
            ("/bad/2", 502),
        ] {
            c.send(get_shop(path));
            let r = c
                .try_read_response()
                .unwrap_or_else(|e| panic!("{driver:?}, {path}: {e}"));
            assert_eq!(r.status, status, "{driver:?}, {path}: {}", r.text());
            if r.closes() {
                c = Client::connect(addr);
            }
        }
        let targets: Vec<String> = up.requests().into_iter().map(|r| r.target).collect();
        assert_eq!(targets, ["/good/1", "/good/2"], "{driver:?}");
        // /good/2 reused the connection of /good/1.
        assert_eq!(
            up.handshakes().len(),
            1,
            "{driver:?}: {:?}",
            up.handshakes()
        );
    }
}

#[test]
fn upstream_closing_its_tls_connections_is_reconnected() {
    for driver in DRIVERS {
        let (pki, leaf) = pki_and_leaf(&[UPSTREAM]);
        // Closes each connection after one response, without close_notify or
        // `Connection: close`.
        let up = TlsUpstream::start(&leaf, Behaviour::echo().close_after(1));
        let tls = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);
        let gw = proxy_tls(&up, &tls, driver);
        let mut c = Client::connect(gw.addr("public"));
        for i in 0..5 {
            let path = format!("/closing/{i}");
            c.send(get_shop(&path));
            let r = c.read_response();
            assert_eq!(r.status, 200, "{driver:?}, {path}: {}", r.text());
            assert_eq!(r.json()["target"], path.as_str(), "{driver:?}");
        }
        assert_eq!(up.requests().len(), 5, "{driver:?}");
        assert!(
            up.connections() >= 5,
            "{driver:?}: {} connections",
            up.connections()
        );
        assert!(
            up.handshake_failures().is_empty(),
            "{driver:?}: {:?}",
            up.handshake_failures()
        );
        // Reconnections resume the first connection's session (its TLS 1.3 ticket).
        let handshakes = up.handshakes();
        assert!(
            handshakes.len() >= 5 && handshakes.iter().skip(1).all(|h| h.resumed),
            "{driver:?}: {handshakes:?}"
        );
    }
}

#[test]
fn large_bodies_cross_the_tls_upstream_intact() {
    for driver in DRIVERS {
        let (pki, leaf) = pki_and_leaf(&[UPSTREAM]);
        let tls = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);

        // A 300 KiB request body, Content-Length then chunked.
        let up = TlsUpstream::echo(&leaf);
        let gw = proxy_tls(&up, &tls, driver);
        let body = pattern_body(300 * 1024 + 17);
        let mut c = Client::connect(gw.addr("public"));
        c.send(format!(
            "PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        for piece in body.chunks(50_000) {
            c.send(piece);
        }
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["body_len"], body.len(), "{driver:?}");
        c.send("PUT /big2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(40_000) {
            c.send(format!("{:x}\r\n", piece.len()));
            c.send(piece);
            c.send("\r\n");
        }
        c.send("0\r\n\r\n");
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let seen = up.requests();
        assert_eq!(seen.len(), 2, "{driver:?}");
        assert!(seen[0].body == body, "{driver:?}: Content-Length body");
        assert!(seen[1].body == body, "{driver:?}: chunked body");

        // A 2 MiB response body.
        let n = 2 * 1024 * 1024 + 3;
        let up = TlsUpstream::start(&leaf, Behaviour::reply(Reply::Large(n)));
        let gw = proxy_tls(&up, &tls, driver);
        let r = get(gw.addr("public"), "/large");
        assert_eq!(r.status, 200, "{driver:?}");
        assert_eq!(r.body.len(), n, "{driver:?}");
        assert!(r.body == pattern_body(n), "{driver:?}: response body");
    }
}

/// The 1-based line of the first line of `text` that starts with `prefix`, and that line.
fn line_of<'a>(text: &'a str, prefix: &str) -> (usize, &'a str) {
    text.lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, l)| (i + 1, l))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

/// Checks `config`: `tollgate check` exits 1 naming `key` at `line` (a column on that line),
/// and `tollgate run` refuses it on each driver, naming `key`.
fn assert_config_error(config: &str, key: &str, line: usize, line_text: &str) {
    let checked = check(config);
    assert_eq!(checked.code, Some(1), "{key}: {checked:?}\n{config}");
    let (at_line, column) = checked
        .position()
        .unwrap_or_else(|| panic!("{key}: no FILE:LINE:COL in {:?}", checked.stderr));
    assert_eq!(
        at_line, line,
        "{key}: the error is not on the line of {line_text:?}: {}",
        checked.stderr
    );
    assert!(
        (1..=line_text.len()).contains(&column),
        "{key}: column {column} is outside {line_text:?}: {}",
        checked.stderr
    );
    assert!(
        checked.stderr.contains(&format!("{key}:")),
        "want key {key}: {}",
        checked.stderr
    );
    for driver in DRIVERS {
        let stderr = run_refused(config, driver);
        assert!(stderr.contains(key), "{driver:?}, {key}: {stderr}");
    }
}

#[test]
fn tls_configuration_errors_name_the_key_line_and_column() {
    let (pki, leaf) = pki_and_leaf(&[UPSTREAM]);
    let https = "https://127.0.0.1:9/";
    let missing = Path::new("/nonexistent/tollgate-test-ca.pem");

    // `tls` on an http:// URL.
    let config = proxy_all_with(
        "http://127.0.0.1:9/",
        "",
        &UpstreamTls::new().ca(pki.ca_pem()).toml(),
    );
    let (line, text) = line_of(&config, "tls = ");
    assert_config_error(&config, "apis[0].integrations.up.tls", line, text);

    // A `ca` that does not exist, inline and as a table of its own.
    let tls = UpstreamTls::new().ca(missing).server_name(UPSTREAM);
    let config = proxy_all_with(https, "", &tls.toml());
    let (line, text) = line_of(&config, "tls = ");
    assert_config_error(&config, "apis[0].integrations.up.tls.ca", line, text);
    let config = proxy_all_with(https, "", &tls.table("apis.integrations.up"));
    let (line, text) = line_of(&config, "ca = ");
    assert_config_error(&config, "apis[0].integrations.up.tls.ca", line, text);
    let checked = check(&config);
    assert!(
        checked.stderr.contains(&missing.display().to_string()),
        "the problem names the file: {}",
        checked.stderr
    );

    // A `ca` file with no certificate in it (a private key).
    let tls = UpstreamTls::new().ca(&leaf.key).server_name(UPSTREAM);
    let config = proxy_all_with(https, "", &tls.table("apis.integrations.up"));
    let (line, text) = line_of(&config, "ca = ");
    assert_config_error(&config, "apis[0].integrations.up.tls.ca", line, text);

    // A `server_name` that is no DNS name.
    let tls = UpstreamTls::new()
        .ca(pki.ca_pem())
        .server_name("not a name!");
    let config = proxy_all_with(https, "", &tls.table("apis.integrations.up"));
    let (line, text) = line_of(&config, "server_name = ");
    assert_config_error(
        &config,
        "apis[0].integrations.up.tls.server_name",
        line,
        text,
    );

    // A client certificate whose key is another certificate's.
    let other = pki.issue("other", &[OTHER], &PKCS_ECDSA_P256_SHA256);
    let mismatched = Leaf {
        key: other.key.clone(),
        ..leaf.clone()
    };
    let tls = UpstreamTls::new()
        .ca(pki.ca_pem())
        .server_name(UPSTREAM)
        .client_cert(&mismatched);
    let config = proxy_all_with(https, "", &tls.table("apis.integrations.up"));
    let (line, text) = line_of(&config, "key = ");
    assert_config_error(&config, "apis[0].integrations.up.tls.key", line, text);
    let checked = check(&config);
    assert!(
        checked.stderr.contains("does not match"),
        "the problem says what is wrong: {}",
        checked.stderr
    );

    // The same settings, valid, pass.
    let tls = UpstreamTls::new().ca(pki.ca_pem()).server_name(UPSTREAM);
    let checked = check(&proxy_all_with(https, "", &tls.toml()));
    assert_eq!(checked.code, Some(0), "{checked:?}");
}
