//! Mutual TLS end to end: `[[mtls]]` policies on a TLS listener and on a custom domain.
//!
//! - A `required` policy passes the verified client certificate to HTTP integrations as
//!   headers (subject and issuer DNs, serial, validity, the PEM), replacing any copies the
//!   client sent; a plain listener of the same gateway removes a client's copies entirely.
//!   Header names can be renamed or switched off.
//! - It refuses a client without a certificate, with one of another CA, or with an expired
//!   one, each counted by reason on `/metrics`; an `optional` policy admits a client without
//!   one (and no certificate header arrives) but still refuses a certificate it cannot
//!   verify; a CRL revokes a certificate (and a certificate whose CA has no CRL is refused).
//! - A domain's own policy answers its name; a request whose `Host` would choose another
//!   certificate or policy than the handshake's SNI did gets 421 and never reaches the
//!   upstream.
//! - The access log carries the TLS version, cipher and client certificate.
//! - Sessions resume with the client certificate (on either worker), and never across a
//!   change of what the policy trusts (mTLS turned on, a CRL, another CA bundle).
//!
//! TLS 1.3 and the refusal: a TLS 1.3 client has finished its handshake once it sent its
//! certificate and Finished — the server's verdict comes after. So a refused TLS 1.3 client
//! connects, and its first request gets the server's alert instead of a response
//! ([`assert_refused`]); a TLS 1.2 client gets the alert inside its handshake. Both drivers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use rustls::client::Tls12Resumption;
use rustls::{HandshakeKind, ProtocolVersion};
use tollgate_tests::access_log::{self, temp_log_path, wait_lines};
use tollgate_tests::admin::{admin_addr, scrape, sum};
use tollgate_tests::config::proxy_all;
use tollgate_tests::gateway::EVENT_DEADLINE;
use tollgate_tests::tls::{
    connect, connect_ok, tls_listener, wait_eof, ClientCert, Leaf, OfferCounter, Pki, TlsClient,
    TlsOptions, Versions, PKCS_ECDSA_P256_SHA256,
};
use tollgate_tests::{request, Gateway, Received, Response, Upstream, DRIVERS};

const SHOP: &str = "shop.example.com";
const PARTNERS: &str = "partners.example.com";

const PARTNERS_CA: &str = "tollgate partners CA";
const ONE_SERIAL: &[u8] = &[0x0a, 0xbc, 0x01];
const TWO_SERIAL: &[u8] = &[0x0b, 0x02];

/// What the gateway should send for client `one`.
const ONE_SUBJECT: &str = "CN=client one,O=Partners";
const ONE_ISSUER: &str = "CN=tollgate partners CA";
const ONE_SERIAL_HEX: &str = "0a:bc:01";
const ONE_NOT_BEFORE: &str = "Jan  1 00:00:00 2025 GMT";
const ONE_NOT_AFTER: &str = "Dec 31 00:00:00 2099 GMT";

/// The default header names.
const SUBJECT: &str = "x-client-cert-subject";
const ISSUER: &str = "x-client-cert-issuer";
const SERIAL: &str = "x-client-cert-serial";
const NOT_BEFORE: &str = "x-client-cert-not-before";
const NOT_AFTER: &str = "x-client-cert-not-after";
const PEM: &str = "x-client-cert";
const ALL_HEADERS: [&str; 6] = [SUBJECT, ISSUER, SERIAL, NOT_BEFORE, NOT_AFTER, PEM];

/// The gateway's certificates and the clients'.
struct Fixture {
    /// Issues the gateway's certificates.
    servers: Pki,
    /// `shop.example.com`.
    shop: Leaf,
    /// `*.example.com`.
    wild: Leaf,
    /// The CA the `partners` policy trusts.
    partners: Pki,
    /// `CN=client one,O=Partners`, serial `0a:bc:01`.
    one: Leaf,
    /// `CN=client two`, serial `0b:02`.
    two: Leaf,
    /// Of the partners CA, valid 2020 only.
    expired: Leaf,
    /// Another CA, which no policy trusts unless a test says so.
    strangers: Pki,
    /// `CN=client one,O=Partners` too, but of the other CA.
    stranger: Leaf,
}

fn fixture() -> Fixture {
    let servers = Pki::new();
    let shop = servers.issue("shop", &[SHOP], &PKCS_ECDSA_P256_SHA256);
    let wild = servers.issue("wild", &["*.example.com"], &PKCS_ECDSA_P256_SHA256);
    let partners = Pki::named(PARTNERS_CA);
    let one = partners.issue_client(
        "one",
        &ClientCert::new("client one", ONE_SERIAL).organization("Partners"),
    );
    let two = partners.issue_client("two", &ClientCert::new("client two", TWO_SERIAL));
    let expired = partners.issue_client(
        "expired",
        &ClientCert::new("client expired", &[0x0e]).valid((2020, 1, 1), (2021, 1, 1)),
    );
    let strangers = Pki::named("tollgate strangers CA");
    let stranger = strangers.issue_client(
        "stranger",
        &ClientCert::new("client one", ONE_SERIAL).organization("Partners"),
    );
    Fixture {
        servers,
        shop,
        wild,
        partners,
        one,
        two,
        expired,
        strangers,
        stranger,
    }
}

/// An `[[mtls]]` policy `id` trusting the CA bundle `ca`, with `extra` lines (mode, crl,
/// a `[mtls.headers]` table last).
fn policy(id: &str, ca: &Path, extra: &str) -> String {
    format!(
        "[[mtls]]\nid = \"{id}\"\nca = {:?}\n{extra}\n\n",
        ca.display().to_string()
    )
}

/// `[admin]`, `top` (policies, an access log), the certificate `shop`, the TLS listener
/// `secure` with `tls = { <tls> }`, and the plain listener `public`; every request is
/// proxied to `up`.
fn config(f: &Fixture, up: &Upstream, tls: &str, top: &str) -> String {
    proxy_all(
        &up.url(),
        &format!(
            "[admin]\nbind = \"127.0.0.1:0\"\n\n{top}\n{}{}",
            f.shop.toml("shop", None),
            tls_listener("secure", tls)
        ),
    )
}

/// The `secure` listener with the `shop` certificate and the policy `partners`.
const WITH_PARTNERS: &str = r#"certificates = ["shop"], mtls = "partners""#;

/// Options for `SHOP` over `versions`, trusting the gateway's CA.
fn shop_options(f: &Fixture, versions: Versions) -> TlsOptions {
    TlsOptions::new(f.servers.ca()).sni(SHOP).versions(versions)
}

/// A keep-alive `GET path` with this `Host` and extra header lines.
fn get_with(host: &str, path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n")
}

/// Sends `GET path` with `Host: host` and `headers` on `c`, expects a 200, and returns what
/// the upstream received for it (its last request).
fn proxied(
    c: &mut TlsClient,
    up: &Upstream,
    host: &str,
    path: &str,
    headers: &str,
    context: &str,
) -> Received {
    let before = up.requests().len();
    c.send(get_with(host, path, headers));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{context}: {}", r.text());
    let seen = up.requests();
    assert_eq!(seen.len(), before + 1, "{context}: one request upstream");
    seen.last().cloned().expect("the request upstream")
}

/// `%XX` decoded (the `x-client-cert` value).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// Asserts `seen` carries client `one`'s fields under the default names, once each.
fn assert_client_one(seen: &Received, f: &Fixture, context: &str) {
    for (name, expected) in [
        (SUBJECT, ONE_SUBJECT),
        (ISSUER, ONE_ISSUER),
        (SERIAL, ONE_SERIAL_HEX),
        (NOT_BEFORE, ONE_NOT_BEFORE),
        (NOT_AFTER, ONE_NOT_AFTER),
    ] {
        assert_eq!(seen.header_all(name), [expected], "{context}: {name}");
    }
    let pem = seen.header_all(PEM);
    assert_eq!(pem.len(), 1, "{context}: {PEM}: {pem:?}");
    assert!(
        pem[0]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b)),
        "{context}: {PEM} is URL-encoded: {}",
        pem[0]
    );
    assert_eq!(percent_decode(pem[0]), f.one.pem(), "{context}: {PEM}");
}

/// Asserts `seen` carries none of the default certificate headers.
fn assert_no_cert_headers(seen: &Received, context: &str) {
    for name in ALL_HEADERS {
        assert_eq!(
            seen.header_all(name),
            Vec::<&str>::new(),
            "{context}: {name}"
        );
    }
}

/// Connects with `options` and expects the gateway to refuse the client's certificate (or
/// its absence) with the alert `alert` (rustls' name: `CertificateRequired`, `UnknownCA`, …)
/// and to close the connection. A TLS 1.2 client gets the alert inside its handshake; a TLS
/// 1.3 client has finished its handshake by then (see the file's overview), so it sends a
/// request, and must get the alert instead of a response.
fn assert_refused(addr: SocketAddr, options: &TlsOptions, alert: &str, context: &str) {
    let error = match connect(addr, options) {
        Err(failed) => {
            assert!(
                failed.closed,
                "{context}: not closed after the refusal ({})",
                failed.error
            );
            failed.error
        }
        Ok(mut c) => {
            assert_eq!(
                c.version,
                ProtocolVersion::TLSv1_3,
                "{context}: a TLS 1.2 handshake ends with the server's Finished, after its \
                 verdict"
            );
            // The gateway may have closed already: a failed write is no answer either.
            let _ = c.try_send(get_with(SHOP, "/refused", ""));
            let error = match c.try_read_response() {
                Ok(r) => panic!("{context}: answered {} {}", r.status, r.text()),
                Err(e) => e,
            };
            let mut sock = c.transport().sock.try_clone().expect("clone the socket");
            assert!(
                wait_eof(&mut sock, EVENT_DEADLINE),
                "{context}: not closed after the refusal ({error})"
            );
            error
        }
    };
    assert!(
        error.contains(alert),
        "{context}: expected the alert {alert}, got: {error}"
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

/// Every reason but `except`, for checking that nothing else was counted.
fn other_failures(gw: &Gateway, except: &[&str]) -> Vec<(&'static str, f64)> {
    [
        "timeout",
        "closed",
        "protocol",
        "unknown_name",
        "no_shared_version_or_cipher",
        "bad_certificate",
        "unknown_ca",
    ]
    .into_iter()
    .filter(|r| !except.contains(r))
    .map(|r| (r, failures(gw, r)))
    .filter(|(_, n)| *n != 0.0)
    .collect()
}

const BOTH_VERSIONS: [Versions; 2] = [Versions::Tls12, Versions::Tls13];

#[test]
fn required_policy_passes_the_verified_certificate_upstream() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let top = policy("partners", f.partners.ca_pem(), "");
        let gw = Gateway::start(&config(&f, &up, WITH_PARTNERS, &top), driver);
        let forged = "X-Client-Cert-Subject: CN=admin\r\nx-client-cert-serial: 00\r\n\
                      X-CLIENT-CERT: forged\r\nX-Client-Cert-Subject: CN=root\r\nX-Other: kept\r\n";
        for versions in BOTH_VERSIONS {
            let context = format!("{driver:?}, {versions:?}");
            let options = shop_options(&f, versions).client_cert(&f.one);
            let mut c = connect_ok(gw.addr("secure"), &options);
            let seen = proxied(&mut c, &up, SHOP, "/who", "", &context);
            assert_client_one(&seen, &f, &context);
            assert_eq!(seen.header("x-forwarded-proto"), Some("https"), "{context}");

            // Forged copies are replaced: only the gateway's values arrive.
            let context = format!("{context}, forged headers");
            let seen = proxied(&mut c, &up, SHOP, "/who", forged, &context);
            assert_client_one(&seen, &f, &context);
            assert_eq!(seen.header_all("x-other"), ["kept"], "{context}");
        }

        // The plain listener: no certificate, so no copy of any name survives.
        let r = request(gw.addr("public"), get_with(SHOP, "/plain", forged));
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let seen = up.requests().last().cloned().expect("the plain request");
        assert_eq!(seen.target, "/plain");
        assert_no_cert_headers(&seen, &format!("{driver:?}, plain listener"));
        assert_eq!(seen.header_all("x-other"), ["kept"], "{driver:?}");
    }
}

#[test]
fn required_policy_refuses_a_missing_foreign_or_expired_certificate() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let top = policy("partners", f.partners.ca_pem(), "");
        let gw = Gateway::start(&config(&f, &up, WITH_PARTNERS, &top), driver);
        let addr = gw.addr("secure");
        // (client certificate, the alert, the failure counted)
        let cases = [
            (None, "CertificateRequired", "bad_certificate"),
            (Some(&f.stranger), "UnknownCA", "unknown_ca"),
            (Some(&f.expired), "CertificateExpired", "bad_certificate"),
        ];
        let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
        for versions in BOTH_VERSIONS {
            for (cert, alert, reason) in cases {
                let context = format!("{driver:?}, {versions:?}, {alert}");
                let mut options = shop_options(&f, versions);
                if let Some(cert) = cert {
                    options = options.client_cert(cert);
                }
                assert_refused(addr, &options, alert, &context);
                *expected.entry(reason).or_default() += 1.0;
                assert_eq!(
                    failures(&gw, reason),
                    expected[reason],
                    "{context}: counted as {reason}"
                );
            }
        }
        assert_eq!(
            other_failures(&gw, &["bad_certificate", "unknown_ca"]),
            [],
            "{driver:?}: no other reason"
        );
        assert_eq!(up.requests().len(), 0, "{driver:?}: nothing went upstream");
        let handshakes = sum(
            &scrape(admin_addr(&gw)),
            "tollgate_tls_handshakes_total",
            &[],
        );
        assert_eq!(handshakes, 0.0, "{driver:?}: no handshake completed");

        // A valid client still gets through.
        let mut c = connect_ok(addr, &shop_options(&f, Versions::Both).client_cert(&f.two));
        let seen = proxied(&mut c, &up, SHOP, "/after", "", &format!("{driver:?}"));
        assert_eq!(seen.header_all(SUBJECT), ["CN=client two"], "{driver:?}");
        assert_eq!(seen.header_all(SERIAL), ["0b:02"], "{driver:?}");
    }
}

#[test]
fn optional_policy_admits_clients_without_a_certificate() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let top = policy("partners", f.partners.ca_pem(), "mode = \"optional\"");
        let gw = Gateway::start(&config(&f, &up, WITH_PARTNERS, &top), driver);
        let addr = gw.addr("secure");
        for versions in BOTH_VERSIONS {
            let context = format!("{driver:?}, {versions:?}");
            // No certificate: served, and a forged header does not pass for one.
            let mut c = connect_ok(addr, &shop_options(&f, versions));
            let forged = "X-Client-Cert-Subject: CN=admin\r\n";
            let seen = proxied(&mut c, &up, SHOP, "/anonymous", forged, &context);
            assert_no_cert_headers(&seen, &format!("{context}, no certificate"));

            // A valid certificate: its headers.
            let mut c = connect_ok(addr, &shop_options(&f, versions).client_cert(&f.one));
            let seen = proxied(&mut c, &up, SHOP, "/known", forged, &context);
            assert_client_one(&seen, &f, &format!("{context}, a certificate"));

            // A certificate presented must still verify.
            let options = shop_options(&f, versions).client_cert(&f.stranger);
            assert_refused(addr, &options, "UnknownCA", &format!("{context}, stranger"));
        }
        assert_eq!(failures(&gw, "unknown_ca"), 2.0, "{driver:?}");
        assert_eq!(other_failures(&gw, &["unknown_ca"]), [], "{driver:?}");
    }
}

#[test]
fn header_names_can_be_renamed_or_switched_off() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let top = policy(
            "partners",
            f.partners.ca_pem(),
            "[mtls.headers]\nsubject = \"X-Partner-DN\"\npem = \"\"",
        );
        let gw = Gateway::start(&config(&f, &up, WITH_PARTNERS, &top), driver);
        let forged = "x-partner-dn: CN=admin\r\n";
        let mut c = connect_ok(
            gw.addr("secure"),
            &shop_options(&f, Versions::Both).client_cert(&f.one),
        );
        let seen = proxied(
            &mut c,
            &up,
            SHOP,
            "/renamed",
            forged,
            &format!("{driver:?}"),
        );
        assert_eq!(seen.header_all("x-partner-dn"), [ONE_SUBJECT], "{driver:?}");
        assert_eq!(seen.header_all(SERIAL), [ONE_SERIAL_HEX], "{driver:?}");
        assert_eq!(seen.header_all(ISSUER), [ONE_ISSUER], "{driver:?}");
        for gone in [SUBJECT, PEM] {
            assert_eq!(
                seen.header_all(gone),
                Vec::<&str>::new(),
                "{driver:?}: {gone}"
            );
        }

        let r = request(gw.addr("public"), get_with(SHOP, "/plain", forged));
        assert_eq!(r.status, 200, "{driver:?}");
        let seen = up.requests().last().cloned().expect("the plain request");
        assert_eq!(
            seen.header_all("x-partner-dn"),
            Vec::<&str>::new(),
            "{driver:?}: a renamed header is removed on the plain listener too"
        );
    }
}

#[test]
fn a_crl_revokes_a_certificate() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let crl = f.partners.write_crl("crl", &[ONE_SERIAL]);
        // Both CAs trusted, only the partners CA's CRL given.
        let bundle = f.partners.dir().join("bundle.pem");
        std::fs::write(
            &bundle,
            [f.partners.ca_pem(), f.strangers.ca_pem()]
                .map(|p| std::fs::read_to_string(p).expect("read a CA"))
                .concat(),
        )
        .expect("write the bundle");
        let top = policy(
            "partners",
            &bundle,
            &format!("crl = {:?}", crl.display().to_string()),
        );
        let gw = Gateway::start(&config(&f, &up, WITH_PARTNERS, &top), driver);
        let addr = gw.addr("secure");
        for versions in BOTH_VERSIONS {
            let context = format!("{driver:?}, {versions:?}");
            let revoked = shop_options(&f, versions).client_cert(&f.one);
            assert_refused(addr, &revoked, "CertificateRevoked", &context);

            // Another certificate of the same CA: not revoked.
            let mut c = connect_ok(addr, &shop_options(&f, versions).client_cert(&f.two));
            let seen = proxied(&mut c, &up, SHOP, "/two", "", &context);
            assert_eq!(seen.header_all(SUBJECT), ["CN=client two"], "{context}");

            // A CA without a CRL in the file: the status is unknown, so refused (rustls says
            // UnknownCA to the client; it is a bad certificate of a trusted CA here).
            let unknown = shop_options(&f, versions).client_cert(&f.stranger);
            assert_refused(addr, &unknown, "UnknownCA", &format!("{context}, no CRL"));
        }
        assert_eq!(failures(&gw, "bad_certificate"), 4.0, "{driver:?}");
        assert_eq!(other_failures(&gw, &["bad_certificate"]), [], "{driver:?}");
        assert_eq!(up.requests().len(), 2, "{driver:?}");
    }
}

/// The listener presents `*.example.com` and asks for no certificate; the API is reached
/// through two custom domains: `shop.example.com` (the whole API) and `partners_host`
/// (under `/v1`), which asks for a `partners` certificate.
fn domains_config(f: &Fixture, up: &Upstream, partners_host: &str) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\n{policy}{wild}{listener}\
         [[apis]]\nid = \"orders\"\nhosts = [\"orders.internal\"]\n\n\
         [[apis.routes]]\nroute = \"ANY /{{proxy+}}\"\nintegration = \"up\"\n\n\
         [apis.integrations.up]\ntype = \"http\"\nurl = \"{url}\"\n\n\
         [[domains]]\nhost = \"{SHOP}\"\n\
         [[domains.mappings]]\napi = \"orders\"\nstage = \"$default\"\n\n\
         [[domains]]\nhost = \"{partners_host}\"\nmtls = \"partners\"\n\
         [[domains.mappings]]\nbase_path = \"v1\"\napi = \"orders\"\nstage = \"$default\"\n",
        policy = policy("partners", f.partners.ca_pem(), ""),
        wild = f.wild.toml("wild", None),
        listener = tls_listener(
            "secure",
            r#"certificates = ["wild"], default_certificate = "wild""#
        ),
        url = up.url(),
    )
}

/// Sends `GET path` with `Host: host` on `c` and expects 421 Misdirected Request, with
/// nothing sent upstream.
fn assert_misdirected(c: &mut TlsClient, up: &Upstream, host: &str, path: &str, context: &str) {
    let before = up.requests().len();
    c.send(get_with(host, path, ""));
    let r = c.read_response();
    assert_eq!(r.status, 421, "{context}: {}", r.text());
    assert_eq!(r.json()["message"], "Misdirected Request", "{context}");
    assert_eq!(up.requests().len(), before, "{context}: nothing upstream");
}

#[test]
fn a_domain_asks_for_its_own_certificate_and_other_hosts_are_misdirected() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let gw = Gateway::start(&domains_config(&f, &up, PARTNERS), driver);
        let addr = gw.addr("secure");
        for versions in BOTH_VERSIONS {
            let context = format!("{driver:?}, {versions:?}");
            let options = TlsOptions::new(f.servers.ca()).versions(versions);

            // A handshake as the shop, without a certificate: the shop is served, the
            // partners' domain is misdirected (it would have asked for a certificate).
            let mut c = connect_ok(addr, &options.clone().sni(SHOP));
            assert!(c.leaf == f.wild.der, "{context}: the wildcard certificate");
            let seen = proxied(&mut c, &up, SHOP, "/v1/orders", "", &context);
            assert_eq!(seen.target, "/v1/orders", "{context}: the shop's whole API");
            assert_no_cert_headers(&seen, &context);
            assert_misdirected(&mut c, &up, PARTNERS, "/v1/orders", &context);
            // Spelled otherwise: with a port, in capitals, with a trailing dot.
            for host in [
                format!("{PARTNERS}:{}", addr.port()),
                PARTNERS.to_ascii_uppercase(),
                format!("{PARTNERS}."),
            ] {
                assert_misdirected(
                    &mut c,
                    &up,
                    &host,
                    "/v1/orders",
                    &format!("{context}, {host}"),
                );
            }

            // No SNI: the default (no mTLS) answers; the partners' domain is misdirected.
            let mut c = connect_ok(addr, &options.clone().any_name());
            assert_misdirected(
                &mut c,
                &up,
                PARTNERS,
                "/v1/orders",
                &format!("{context}, no SNI"),
            );

            // The partners' name asks for a certificate.
            let partners = options.clone().sni(PARTNERS);
            assert_refused(addr, &partners, "CertificateRequired", &context);

            // With one: served through the `v1` mapping; the shop is misdirected there.
            let mut c = connect_ok(addr, &partners.client_cert(&f.one));
            assert!(c.leaf == f.wild.der, "{context}: the wildcard certificate");
            let seen = proxied(&mut c, &up, PARTNERS, "/v1/orders", "", &context);
            assert_eq!(
                seen.target, "/orders",
                "{context}: the base path is the mapping's"
            );
            assert_client_one(&seen, &f, &context);
            assert_misdirected(&mut c, &up, SHOP, "/v1/orders", &context);
        }
        assert_eq!(failures(&gw, "bad_certificate"), 2.0, "{driver:?}");
        assert_eq!(other_failures(&gw, &["bad_certificate"]), [], "{driver:?}");
    }
}

/// A domain host written with a trailing dot is the same name to TLS (SNI and `Host` are
/// looked up without one): its policy must still answer its handshakes. (It once did not:
/// the domain was filed under the dotted name, which no lookup asks for, so a client without
/// a certificate reached it with `Host: partners.example.com.`.)
#[test]
fn a_domain_host_written_with_a_trailing_dot_asks_for_its_certificate() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let dotted = format!("{PARTNERS}.");
        let gw = Gateway::start(&domains_config(&f, &up, &dotted), driver);
        let addr = gw.addr("secure");
        let context = format!("{driver:?}");
        let options = TlsOptions::new(f.servers.ca()).sni(PARTNERS);
        assert_refused(addr, &options, "CertificateRequired", &context);
        // The router matches the host as written.
        let mut c = connect_ok(addr, &options.client_cert(&f.one));
        let seen = proxied(&mut c, &up, &dotted, "/v1/orders", "", &context);
        assert_eq!(seen.target, "/orders", "{context}");
        assert_client_one(&seen, &f, &context);
        // And a connection made without the policy is misdirected there.
        let mut c = connect_ok(addr, &TlsOptions::new(f.servers.ca()).sni(SHOP));
        assert_misdirected(&mut c, &up, &dotted, "/v1/orders", &context);
        assert_eq!(failures(&gw, "bad_certificate"), 1.0, "{context}");
    }
}

/// The access log line of request `id`.
fn line_of<'a>(lines: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["requestId"] == id)
        .unwrap_or_else(|| panic!("no line for request {id}: {lines:?}"))
}

#[test]
fn the_access_log_names_the_tls_session_and_the_client_certificate() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let path = temp_log_path();
        let top = format!(
            "{}[access_log]\npath = {:?}\n\n",
            policy("partners", f.partners.ca_pem(), "mode = \"optional\""),
            path.display().to_string()
        );
        let gw = Gateway::start_with(
            &config(&f, &up, WITH_PARTNERS, &top),
            access_log::options(driver),
        );
        let addr = gw.addr("secure");
        let mut ciphers = BTreeMap::new();
        for (versions, id) in [(Versions::Tls13, "req-13"), (Versions::Tls12, "req-12")] {
            let mut c = connect_ok(addr, &shop_options(&f, versions).client_cert(&f.one));
            let suite = c
                .connection()
                .negotiated_cipher_suite()
                .expect("a cipher suite")
                .suite();
            ciphers.insert(id, format!("{suite:?}"));
            proxied(
                &mut c,
                &up,
                SHOP,
                "/log",
                &format!("X-Request-Id: {id}\r\n"),
                id,
            );
        }
        let mut c = connect_ok(addr, &shop_options(&f, Versions::Tls13));
        proxied(
            &mut c,
            &up,
            SHOP,
            "/log",
            "X-Request-Id: req-anonymous\r\n",
            "anonymous",
        );
        let r: Response = request(
            gw.addr("public"),
            get_with(SHOP, "/log", "X-Request-Id: req-plain\r\n"),
        );
        assert_eq!(r.status, 200, "{driver:?}");

        let lines = wait_lines(&gw, &path, 4, EVENT_DEADLINE);
        for (id, version) in [("req-13", "TLSv1.3"), ("req-12", "TLSv1.2")] {
            let context = format!("{driver:?}, {id}");
            let l = line_of(&lines, id);
            assert_eq!(l["tlsVersion"], version, "{context}: {l}");
            assert_eq!(l["tlsCipher"], ciphers[id].as_str(), "{context}: {l}");
            assert_eq!(
                l["identity.clientCert.subjectDN"], ONE_SUBJECT,
                "{context}: {l}"
            );
            assert_eq!(
                l["identity.clientCert.issuerDN"], ONE_ISSUER,
                "{context}: {l}"
            );
            assert_eq!(
                l["identity.clientCert.serialNumber"], ONE_SERIAL_HEX,
                "{context}: {l}"
            );
            assert_eq!(
                l["identity.clientCert.validity.notBefore"], ONE_NOT_BEFORE,
                "{context}: {l}"
            );
            assert_eq!(
                l["identity.clientCert.validity.notAfter"], ONE_NOT_AFTER,
                "{context}: {l}"
            );
        }
        let anonymous = line_of(&lines, "req-anonymous");
        assert_eq!(
            anonymous["tlsVersion"], "TLSv1.3",
            "{driver:?}: {anonymous}"
        );
        assert_eq!(
            anonymous["identity.clientCert.subjectDN"], "-",
            "{driver:?}"
        );
        let plain = line_of(&lines, "req-plain");
        for field in [
            "tlsVersion",
            "tlsCipher",
            "identity.clientCert.subjectDN",
            "identity.clientCert.serialNumber",
        ] {
            assert_eq!(
                plain[field], "-",
                "{driver:?}: {field} of a plain request: {plain}"
            );
        }
        let _ = std::fs::remove_file(&path);
    }
}

/// How a client resumes: versions offered and TLS 1.2 mode.
const RESUMPTION_CASES: [(Versions, Tls12Resumption, &str); 3] = [
    (
        Versions::Tls13,
        Tls12Resumption::SessionIdOrTickets,
        "TLS 1.3 tickets",
    ),
    (
        Versions::Tls12,
        Tls12Resumption::SessionIdOrTickets,
        "TLS 1.2 tickets",
    ),
    (
        Versions::Tls12,
        Tls12Resumption::SessionIdOnly,
        "TLS 1.2 session ids",
    ),
];

/// `tollgate_tls_handshakes_total` by worker.
fn handshakes_by_worker(admin: SocketAddr) -> BTreeMap<String, f64> {
    scrape(admin)
        .samples
        .into_iter()
        .filter(|s| s.metric == "tollgate_tls_handshakes_total")
        .filter_map(|s| {
            let worker = s.labels.get("worker")?.to_string();
            match s.value {
                prometheus_parse::Value::Counter(v) => Some((worker, v)),
                _ => None,
            }
        })
        .collect()
}

/// Connects with `options` and sends one request (which the upstream must see with client
/// `one`'s headers); returns the connection and the worker whose handshake counter went up
/// (counted before the response is sent, so read after it).
fn mtls_request_on_a_worker(
    admin: SocketAddr,
    addr: SocketAddr,
    options: &TlsOptions,
    f: &Fixture,
    up: &Upstream,
    context: &str,
) -> (TlsClient, String) {
    let before = handshakes_by_worker(admin);
    let mut c = connect_ok(addr, options);
    let seen = proxied(&mut c, up, SHOP, "/resume", "", context);
    assert_client_one(&seen, f, context);
    let grown: Vec<String> = handshakes_by_worker(admin)
        .into_iter()
        .filter(|(w, n)| before.get(w).copied().unwrap_or(0.0) != *n)
        .map(|(w, _)| w)
        .collect();
    assert_eq!(grown.len(), 1, "{context}: one worker made the handshake");
    (c, grown[0].clone())
}

/// Tries before giving up on reaching the other worker (each try misses it with
/// probability 1/2).
const TRIES: usize = 50;

/// A session made with a client certificate resumes on either worker (two by default), and
/// the resumed connection's requests still carry the certificate.
#[test]
fn sessions_resume_with_the_client_certificate_on_either_worker() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let top = policy("partners", f.partners.ca_pem(), "");
        let gw = Gateway::start(&config(&f, &up, WITH_PARTNERS, &top), driver);
        let (admin, addr) = (admin_addr(&gw), gw.addr("secure"));
        let mut resumed = 0;
        for (versions, tls12, what) in RESUMPTION_CASES {
            let context = format!("{driver:?}, {what}");
            let store = OfferCounter::new();
            let options = shop_options(&f, versions)
                .client_cert(&f.one)
                .resume_with_store(store.clone(), tls12);
            let (c, first) = mtls_request_on_a_worker(admin, addr, &options, &f, &up, &context);
            assert_eq!(c.connection().handshake_kind(), Some(HandshakeKind::Full));
            let mut tries = 0;
            loop {
                tries += 1;
                assert!(
                    tries <= TRIES,
                    "{context}: every connection on worker {first}"
                );
                let context = format!("{context}, connection {tries}");
                let (c, worker) =
                    mtls_request_on_a_worker(admin, addr, &options, &f, &up, &context);
                assert!(c.resumed(), "{context}: resumed on worker {worker}");
                if worker != first {
                    break;
                }
            }
            // One session offered per connection after the first, and each taken.
            assert_eq!(store.offered(), tries, "{context}");
            resumed += tries;
        }
        assert_eq!(
            sum(&scrape(admin), "tollgate_tls_resumptions_total", &[]),
            resumed as f64,
            "{driver:?}"
        );
    }
}

/// Connects with `options`, which must offer a session (`store` counts it), and expects a
/// full handshake that the gateway refuses with `alert`.
fn assert_offered_and_refused(
    addr: SocketAddr,
    options: &TlsOptions,
    store: &OfferCounter,
    alert: &str,
    context: &str,
) {
    let offered = store.offered();
    assert_refused(addr, options, alert, context);
    assert_eq!(
        store.offered(),
        offered + 1,
        "{context}: a session was offered"
    );
}

/// Connects with `options` (client `one`), which must offer a session, and sends a request:
/// the handshake must be `kind` and the upstream must see the certificate.
fn assert_offered_and_served(
    addr: SocketAddr,
    options: &TlsOptions,
    store: &OfferCounter,
    kind: HandshakeKind,
    (f, up): (&Fixture, &Upstream),
    context: &str,
) {
    let offered = store.offered();
    let mut c = connect_ok(addr, options);
    assert_eq!(
        store.offered(),
        offered + 1,
        "{context}: a session was offered"
    );
    assert_eq!(c.connection().handshake_kind(), Some(kind), "{context}");
    let seen = proxied(&mut c, up, SHOP, "/trust", "", context);
    assert_client_one(&seen, f, context);
}

/// Sessions never outlive a change of what a listener's policy trusts, whatever a client
/// offers: one made before mTLS was turned on does not let a client without a certificate
/// in; one made with a certificate does not resume once a CRL revokes it, nor once the
/// policy trusts another CA. A reload that leaves the trust as it was keeps them.
#[test]
fn sessions_never_resume_across_a_change_of_trust() {
    for driver in DRIVERS {
        let f = fixture();
        let up = Upstream::echo();
        let crl = f.partners.write_crl("crl", &[ONE_SERIAL]);
        let partners = policy("partners", f.partners.ca_pem(), "");
        let revoking = policy(
            "partners",
            f.partners.ca_pem(),
            &format!("crl = {:?}", crl.display().to_string()),
        );
        let strangers = policy("partners", f.strangers.ca_pem(), "");
        let without = config(&f, &up, r#"certificates = ["shop"]"#, &partners);
        let with = config(&f, &up, WITH_PARTNERS, &partners);
        let gw = Gateway::start(&without, driver);
        let addr = gw.addr("secure");
        let mut generation = 1;
        let mut reload = |text: &str, context: &str| {
            generation += 1;
            assert_eq!(gw.reload(text), Ok(generation), "{context}: reload");
        };
        let mut refusals = BTreeMap::new();
        for (n, (versions, tls12, what)) in RESUMPTION_CASES.into_iter().enumerate() {
            let context = format!("{driver:?}, {what}");
            if n > 0 {
                reload(&without, &context);
            }
            // A session without a certificate, before the listener asks for one.
            let anonymous_store = OfferCounter::new();
            let anonymous =
                shop_options(&f, versions).resume_with_store(anonymous_store.clone(), tls12);
            let mut c = connect_ok(addr, &anonymous);
            let seen = proxied(&mut c, &up, SHOP, "/before", "", &context);
            assert_no_cert_headers(&seen, &context);

            reload(&with, &context);
            let step = format!("{context}, mTLS turned on");
            assert_offered_and_refused(
                addr,
                &anonymous,
                &anonymous_store,
                "CertificateRequired",
                &step,
            );
            *refusals.entry("bad_certificate").or_insert(0.0) += 1.0;

            // A session with client one's certificate resumes, also after a reload that
            // changes nothing.
            let store = OfferCounter::new();
            let one = shop_options(&f, versions)
                .client_cert(&f.one)
                .resume_with_store(store.clone(), tls12);
            let mut c = connect_ok(addr, &one);
            assert!(!c.resumed(), "{context}: the first session");
            assert_client_one(
                &proxied(&mut c, &up, SHOP, "/one", "", &context),
                &f,
                &context,
            );
            let ours = (&f, &up);
            assert_offered_and_served(addr, &one, &store, HandshakeKind::Resumed, ours, &context);
            reload(&with, &context);
            let step = format!("{context}, after a reload");
            assert_offered_and_served(addr, &one, &store, HandshakeKind::Resumed, ours, &step);

            // A CRL revokes it: its sessions go with it.
            reload(&config(&f, &up, WITH_PARTNERS, &revoking), &context);
            let step = format!("{context}, revoked");
            assert_offered_and_refused(addr, &one, &store, "CertificateRevoked", &step);
            *refusals.entry("bad_certificate").or_insert(0.0) += 1.0;

            // The policy trusts another CA: no session of the first resumes.
            reload(&config(&f, &up, WITH_PARTNERS, &strangers), &context);
            let step = format!("{context}, another CA");
            assert_offered_and_refused(addr, &one, &store, "UnknownCA", &step);
            *refusals.entry("unknown_ca").or_insert(0.0) += 1.0;
        }
        for (reason, n) in &refusals {
            assert_eq!(failures(&gw, reason), *n, "{driver:?}: {reason}");
        }
        assert_eq!(
            other_failures(&gw, &["bad_certificate", "unknown_ca"]),
            [],
            "{driver:?}"
        );
    }
}
