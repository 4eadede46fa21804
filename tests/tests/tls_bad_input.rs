//! Handshakes that should not work, and one that should despite its shape, on a TLS listener:
//! SSLv3, TLS 1.0 and TLS 1.1 ClientHellos (refused with an alert, counted as
//! `no_shared_version_or_cipher`), an SSLv2-style hello (refused, `protocol`), a ClientHello cut
//! off by the client (`closed`), a ClientHello sent one byte per segment (it completes), and a
//! TLS 1.2 renegotiation attempt (refused with `no_renegotiation`; the gateway goes on). After
//! each, the gateway still completes a normal handshake. And a certificate of our own out of
//! its validity: it still loads, with a loud warning and its dates on /metrics. Both drivers.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use tollgate_tests::admin::{admin_addr, scrape, sum};
use tollgate_tests::config::mock_hello;
use tollgate_tests::gateway::EVENT_DEADLINE;
use tollgate_tests::tls::{
    client_hello, connect_ok, only_alerts, tls_listener, wait_eof, Leaf, Pki, TlsOptions,
    PKCS_ECDSA_P256_SHA256,
};
use tollgate_tests::{Client, Gateway, DRIVERS};

const SHOP: &str = "shop.example.com";

/// The gateway with certificate `shop` (the default) on the TLS listener `secure`.
fn start(pki: &Pki, driver: tollgate_tests::Driver) -> (Gateway, Leaf) {
    let shop = pki.issue("shop", &[SHOP], &PKCS_ECDSA_P256_SHA256);
    let config = mock_hello(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\n{}{}",
        shop.toml("shop", None),
        tls_listener(
            "secure",
            r#"certificates = ["shop"], default_certificate = "shop""#
        ),
    ));
    (Gateway::start(&config, driver), shop)
}

/// `tollgate_tls_handshake_failures_total{reason}`, all workers.
fn failures(gw: &Gateway, reason: &str) -> f64 {
    sum(
        &scrape(admin_addr(gw)),
        "tollgate_tls_handshake_failures_total",
        &[("reason", reason)],
    )
}

/// A normal client still completes a handshake and a request.
fn assert_tls_works(addr: SocketAddr, pki: &Pki, context: &str) {
    let mut c = connect_ok(addr, &TlsOptions::new(pki.ca()).sni(SHOP));
    c.send(format!("GET /hello HTTP/1.1\r\nHost: {SHOP}\r\n\r\n"));
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{context}");
}

/// A ClientHello as a pre-TLS 1.3 client of `version` sends it: no extensions (so no
/// `supported_versions`), two RSA CBC suites, null compression, in one handshake record.
fn legacy_hello(version: [u8; 2]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES-128/256-CBC-SHA
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, version[0], version[1]];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn old_protocol_versions_are_refused_with_an_alert() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let (gw, _shop) = start(&pki, driver);
        let addr = gw.addr("secure");
        let old = [("SSLv3", [3, 0]), ("TLS 1.0", [3, 1]), ("TLS 1.1", [3, 2])];
        for (name, version) in old {
            let mut c = Client::connect(addr);
            let _ = c.try_send(legacy_hello(version));
            let got = c.assert_closed(EVENT_DEADLINE);
            assert!(
                !got.is_empty() && only_alerts(&got),
                "{driver:?}: {name}: expected an alert, then the close; got {got:?}"
            );
        }
        assert_eq!(
            failures(&gw, "no_shared_version_or_cipher"),
            old.len() as f64,
            "{driver:?}"
        );
        // An SSLv2-style ClientHello (a two-byte header with the high bit set): not TLS.
        let mut c = Client::connect(addr);
        let _ = c.try_send([
            0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x2f,
        ]);
        let got = c.assert_closed(EVENT_DEADLINE);
        assert!(only_alerts(&got), "{driver:?}: SSLv2 hello: got {got:?}");
        assert_eq!(failures(&gw, "protocol"), 1.0, "{driver:?}");
        assert_tls_works(addr, &pki, &format!("{driver:?}: after the old hellos"));
    }
}

#[test]
fn a_client_hello_cut_off_by_the_client_is_counted_as_closed() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let (gw, _shop) = start(&pki, driver);
        let addr = gw.addr("secure");
        let hello = client_hello(&TlsOptions::new(pki.ca()).sni(SHOP), addr);
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.write_all(&hello[..hello.len() / 2])
            .expect("half a ClientHello");
        tcp.shutdown(Shutdown::Write).expect("close the write side");
        assert!(
            wait_eof(&mut tcp, EVENT_DEADLINE),
            "{driver:?}: the gateway should close"
        );
        assert_eq!(failures(&gw, "closed"), 1.0, "{driver:?}");
        assert_eq!(failures(&gw, "timeout"), 0.0, "{driver:?}");
        assert_tls_works(addr, &pki, &format!("{driver:?}: after the cut"));
    }
}

#[test]
fn a_client_hello_in_one_byte_segments_completes() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let (gw, _shop) = start(&pki, driver);
        let addr = gw.addr("secure");
        let options = TlsOptions::new(pki.ca()).sni(SHOP);
        let name = ServerName::try_from(SHOP).expect("a DNS name");
        let mut conn =
            ClientConnection::new(Arc::new(options.client_config()), name).expect("client");
        let mut tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        tcp.set_read_timeout(Some(EVENT_DEADLINE)).expect("timeout");
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello).expect("ClientHello");
        }
        // One write (one segment, with Nagle off) per byte.
        for byte in &hello {
            tcp.write_all(std::slice::from_ref(byte))
                .expect("one byte of the ClientHello");
        }
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .unwrap_or_else(|e| panic!("{driver:?}: handshake after a split hello: {e}"));
        }
        let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
        stream
            .write_all(
                format!("GET /hello HTTP/1.1\r\nHost: {SHOP}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .expect("request");
        let mut response = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut response);
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("hello"),
            "{driver:?}: {text}"
        );
    }
}

#[test]
fn a_renegotiation_attempt_is_refused_and_the_gateway_goes_on() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let (gw, _shop) = start(&pki, driver);
        let addr = gw.addr("secure");
        // `R` at the start of a line makes s_client renegotiate (TLS 1.2 only has it).
        let mut child = Command::new("timeout")
            .args(["30", "openssl", "s_client", "-tls1_2", "-connect"])
            .arg(addr.to_string())
            .args(["-servername", SHOP])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl (scripts/install-deps.sh installs it)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"R\n")
            .expect("ask for a renegotiation");
        let out = child.wait_with_output().expect("s_client");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("RENEGOTIATING"), "{driver:?}: {text}");
        assert!(
            text.contains("no renegotiation"),
            "{driver:?}: expected the gateway's no_renegotiation alert: {text}"
        );
        assert_tls_works(addr, &pki, &format!("{driver:?}: after the renegotiation"));
    }
}

#[test]
fn an_expired_certificate_loads_with_a_warning_and_its_dates_on_metrics() {
    for driver in DRIVERS {
        let pki = Pki::new();
        let old = pki.issue_valid(
            "old",
            &["old.example.com"],
            &PKCS_ECDSA_P256_SHA256,
            Some(((2020, 1, 1), (2021, 1, 1))),
        );
        let shop = pki.issue("shop", &[SHOP], &PKCS_ECDSA_P256_SHA256);
        let config = mock_hello(&format!(
            "[admin]\nbind = \"127.0.0.1:0\"\n\n{}{}{}",
            old.toml("old", None),
            shop.toml("shop", None),
            tls_listener(
                "secure",
                r#"certificates = ["old", "shop"], default_certificate = "shop""#
            ),
        ));
        let gw = Gateway::start(&config, driver);
        let log = gw.log_text();
        assert!(
            log.contains("CERTIFICATE EXPIRED") && log.contains("old"),
            "{driver:?}: no warning about the expired certificate: {log}"
        );
        let metrics = scrape(admin_addr(&gw));
        let not_after = |id: &str| {
            sum(
                &metrics,
                "tollgate_tls_certificate_not_after_seconds",
                &[("certificate", id)],
            )
        };
        // 2021-01-01T00:00:00Z and 2020-01-01T00:00:00Z.
        assert_eq!(not_after("old"), 1_609_459_200.0, "{driver:?}");
        assert_eq!(
            sum(
                &metrics,
                "tollgate_tls_certificate_not_before_seconds",
                &[("certificate", "old")],
            ),
            1_577_836_800.0,
            "{driver:?}"
        );
        assert!(not_after("shop") > 1_609_459_200.0, "{driver:?}");
        // The listener serves: the valid certificate as ever, and the expired one is
        // refused by a client that checks dates.
        assert_tls_works(gw.addr("secure"), &pki, &format!("{driver:?}"));
        let refused = tollgate_tests::tls::connect_err(
            gw.addr("secure"),
            &TlsOptions::new(pki.ca()).sni("old.example.com"),
        );
        assert!(
            refused.error.contains("Expired"),
            "{driver:?}: {}",
            refused.error
        );
    }
}
