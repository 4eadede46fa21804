//! Real TLS clients against a TLS listener, as users run them: `curl` (OpenSSL underneath)
//! over TLS 1.2 and TLS 1.3 with SNI and verification against the test CA, and
//! `openssl s_client` choosing the certificate by SNI, verifying it, and resuming its session
//! on a second connection (TLS 1.2 and 1.3). Both tools are installed by
//! `scripts/install-deps.sh`; a missing tool fails the test with that cause. Every process runs
//! under `timeout`, so none can hang the suite. Both drivers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tollgate_tests::config::mock_hello;
use tollgate_tests::tls::{tls_listener, Leaf, Pki, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use tollgate_tests::{Gateway, DRIVERS};

const SHOP: &str = "shop.example.com";
const API: &str = "edge.api.example.com";

/// Longest any one client process may run (seconds), as a bound, not a timing.
const PROCESS_BOUND: &str = "30";

struct Setup {
    pki: Pki,
    _shop: Leaf,
    _api: Leaf,
}

fn setup() -> (Setup, String) {
    let pki = Pki::new();
    let shop = pki.issue("shop", &[SHOP], &PKCS_ECDSA_P256_SHA256);
    let api = pki.issue("api", &["*.api.example.com"], &PKCS_ED25519);
    let config = mock_hello(&format!(
        "{}{}{}",
        shop.toml("shop", None),
        api.toml("api", None),
        tls_listener("secure", r#"certificates = ["shop", "api"]"#),
    ));
    (
        Setup {
            pki,
            _shop: shop,
            _api: api,
        },
        config,
    )
}

/// Runs `program args` under `timeout`, with `stdin` written to it.
fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new("timeout")
        .arg(PROCESS_BOUND)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (scripts/install-deps.sh installs it): {e}")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for the client");
    assert_ne!(
        out.status.code(),
        Some(124),
        "{program} ran past {PROCESS_BOUND} s: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `curl` GET /hello on `shop.example.com` at `addr`, with `version_args`.
fn curl(addr: SocketAddr, ca: &Path, version_args: &[&str]) -> Output {
    let resolve = format!("{SHOP}:{}:{}", addr.port(), addr.ip());
    let url = format!("https://{SHOP}:{}/hello", addr.port());
    let ca = ca.display().to_string();
    let mut args = vec![
        "-sS",
        "-v",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-w",
        " %{http_code} %{ssl_verify_result}",
    ];
    args.extend_from_slice(version_args);
    args.push(&url);
    run("curl", &args, b"")
}

#[test]
fn curl_gets_over_tls_1_2_and_1_3() {
    for driver in DRIVERS {
        let (setup, config) = setup();
        let gw = Gateway::start(&config, driver);
        let addr = gw.addr("secure");
        for (version_args, expected) in [
            (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"),
            (&["--tlsv1.3"][..], "TLSv1.3"),
        ] {
            let out = curl(addr, setup.pki.ca_pem(), version_args);
            let stderr = text(&out.stderr);
            assert!(
                out.status.success(),
                "{driver:?} {expected}: curl failed: {stderr}"
            );
            assert_eq!(text(&out.stdout), "hello 200 0", "{driver:?} {expected}");
            assert!(
                stderr.contains(&format!("SSL connection using {expected}")),
                "{driver:?}: curl did not report {expected}: {stderr}"
            );
            assert!(
                stderr.contains("ALPN: server accepted http/1.1"),
                "{driver:?}: {stderr}"
            );
        }
    }
}

/// `openssl s_client` to `addr` asking for `name`; sends one `Connection: close` request.
fn s_client(addr: SocketAddr, ca: &Path, name: &str, extra: &[&str]) -> (String, String) {
    let connect = addr.to_string();
    let ca = ca.display().to_string();
    let mut args = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        name,
        "-CAfile",
        &ca,
        "-verify_return_error",
        "-verify_hostname",
        name,
        "-ign_eof",
    ];
    args.extend_from_slice(extra);
    let request = format!("GET /hello HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    let out = run("openssl", &args, request.as_bytes());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "openssl s_client {name} {extra:?} failed: {stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn openssl_s_client_verifies_the_certificate_chosen_by_sni_and_resumes() {
    for driver in DRIVERS {
        let (setup, config) = setup();
        let gw = Gateway::start(&config, driver);
        let addr = gw.addr("secure");
        let ca = setup.pki.ca_pem();

        // The wildcard's name gets the Ed25519 certificate, verified for that name.
        let (out, _) = s_client(addr, ca, API, &[]);
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "{driver:?}: {out}"
        );
        assert!(
            out.contains("subject=CN = *.api.example.com"),
            "{driver:?}: {out}"
        );
        assert!(
            out.contains("\r\n\r\nhello"),
            "{driver:?}: no response: {out}"
        );

        // Resumption with the session saved by the first connection, per version.
        for version in ["-tls1_2", "-tls1_3"] {
            let session = setup.pki.dir().join(format!("s_client{version}.session"));
            let session = session.display().to_string();
            let (first, _) = s_client(addr, ca, SHOP, &[version, "-sess_out", &session]);
            assert!(
                first.contains("New, TLSv1."),
                "{driver:?} {version}: {first}"
            );
            assert!(first.contains("\r\n\r\nhello"), "{driver:?}: {first}");
            let (second, _) = s_client(addr, ca, SHOP, &[version, "-sess_in", &session]);
            assert!(
                second.contains("Reused, TLSv1."),
                "{driver:?} {version}: the saved session was not resumed: {second}"
            );
            assert!(second.contains("\r\n\r\nhello"), "{driver:?}: {second}");
        }
    }
}
