//! End-to-end tests of `load --tls` against a tiny in-test TLS 1.3 server (rustls, a thread per
//! connection, stateless session tickets) that counts full and resumed handshakes on its side,
//! so the client's own counts (`tls.handshakes`, `tls.handshakes_resumed`) can be checked
//! against the server's. A response to `connection: close` ends with a close_notify, as nginx
//! and tollgate send it. Counts and correctness only, never speeds; each run is half a second.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate-bench");
const NAME: &str = "bench.example.com";
const BODY: &[u8] = b"hello";

/// A CA and a leaf for [`NAME`] it issued, written to a fresh directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("tb-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let mut ca = CertificateParams::new(Vec::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let leaf = CertificateParams::new(vec![NAME.to_string()])
            .expect("leaf parameters")
            .signed_by(&key, &issuer)
            .expect("leaf certificate");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
        std::fs::write(dir.join("cert.pem"), leaf.pem()).expect("write cert.pem");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key.pem");
        Pki { dir }
    }

    fn ca(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Handshakes the server completed, by kind.
#[derive(Default)]
struct Counts {
    full: AtomicU64,
    resumed: AtomicU64,
}

/// Starts the server with the certificate of `pki`; returns its port and its counts.
fn serve(pki: &Pki) -> (u16, Arc<Counts>) {
    let config = server_config(&pki.dir);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { return };
            let (config, counts) = (Arc::clone(&config), Arc::clone(&c));
            std::thread::spawn(move || connection(sock, config, &counts));
        }
    });
    (port, counts)
}

#[allow(deprecated)] // the ring provider, as the gateway's
fn server_config(dir: &Path) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .expect("read cert.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse cert.pem");
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key.pem");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate");
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().expect("ticketer");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Answers every request head with 200 and [`BODY`]; after one with `connection: close`,
/// sends close_notify and closes.
fn connection(sock: TcpStream, config: Arc<ServerConfig>, counts: &Counts) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, sock);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut counted = false;
    loop {
        let n = match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !counted {
            counted = true;
            let kind = match tls.conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => &counts.resumed,
                _ => &counts.full,
            };
            kind.fetch_add(1, Ordering::Relaxed);
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            let close = head.contains("connection: close");
            let mut response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{}\r\n",
                BODY.len(),
                if close { "connection: close\r\n" } else { "" }
            )
            .into_bytes();
            response.extend_from_slice(BODY);
            if tls.write_all(&response).is_err() {
                return;
            }
            if close {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return;
            }
        }
    }
}

/// Runs `load --json --warmup 0s` with `args`; the parsed report.
fn load(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["load", "--json", "--warmup", "0s", "-t", "1", "-d", "500ms"])
        .args(args)
        .output()
        .expect("run load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

fn count(v: &Value, key: &str) -> u64 {
    v["tls"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no tls.{key} in {v}"))
}

fn assert_no_errors(r: &Value) {
    for kind in [
        "connect",
        "timeout",
        "io",
        "tls",
        "status_4xx",
        "status_5xx",
    ] {
        assert_eq!(r["errors"][kind], 0, "{kind} errors in {r}");
    }
}

/// The client's counts match the server's, give or take the handshakes in flight when the
/// window closed (at most one per connection).
fn assert_counts_match(r: &Value, server: &Counts, connections: u64) {
    let full = server.full.load(Ordering::Relaxed);
    let resumed = server.resumed.load(Ordering::Relaxed);
    let client_full = count(r, "handshakes") - count(r, "handshakes_resumed");
    let client_resumed = count(r, "handshakes_resumed");
    let close = |server: u64, client: u64| client <= server && server - client <= connections;
    assert!(
        close(full, client_full) && close(resumed, client_resumed),
        "server {full} full, {resumed} resumed; client {r}"
    );
}

#[test]
fn new_connections_resume_when_asked() {
    let pki = Pki::new("resume");
    let (port, server) = serve(&pki);
    let url = format!("https://127.0.0.1:{port}/");
    let r = load(&[
        "--url",
        &url,
        "-c",
        "3",
        "--sni",
        NAME,
        "--ca",
        &pki.ca(),
        "--new-connection-per-request",
        "--tls-resume",
    ]);
    assert_no_errors(&r);
    let (requests, handshakes) = (
        r["requests"].as_u64().expect("requests"),
        count(&r, "handshakes"),
    );
    assert!(requests > 10, "{r}");
    // One handshake per request; only each slot's first one is full.
    assert!(handshakes.abs_diff(requests) <= 3, "{r}");
    assert!(handshakes - count(&r, "handshakes_resumed") <= 3, "{r}");
    assert_counts_match(&r, &server, 3);
}

#[test]
fn new_connections_make_full_handshakes_without_resume() {
    let pki = Pki::new("full");
    let (port, server) = serve(&pki);
    // --tls on an http:// URL, and no verification (no --ca).
    let url = format!("http://127.0.0.1:{port}/");
    let r = load(&[
        "--url",
        &url,
        "--tls",
        "-c",
        "2",
        "--new-connection-per-request",
    ]);
    assert_no_errors(&r);
    assert!(count(&r, "handshakes") > 10, "{r}");
    assert_eq!(count(&r, "handshakes_resumed"), 0, "{r}");
    assert_eq!(server.resumed.load(Ordering::Relaxed), 0);
    assert_counts_match(&r, &server, 2);
}

#[test]
fn keep_alive_handshakes_once_per_connection() {
    let pki = Pki::new("keepalive");
    let (port, server) = serve(&pki);
    let url = format!("https://127.0.0.1:{port}/x");
    let r = load(&["--url", &url, "-c", "4", "--sni", NAME, "--ca", &pki.ca()]);
    assert_no_errors(&r);
    assert!(r["requests"].as_u64().expect("requests") > 40, "{r}");
    assert_eq!(count(&r, "handshakes"), 4, "{r}");
    assert_eq!(server.full.load(Ordering::Relaxed), 4);
    let cores = r["load_cores"].as_f64().expect("load_cores");
    assert!(cores > 0.0 && cores < 1.5, "{r}"); // one load thread
                                                // Head and body of every response counted, as over plain HTTP.
    let per_response = r["bytes_per_s"].as_f64().expect("bytes") / r["rps"].as_f64().expect("rps");
    assert!((per_response - 43.0).abs() < 0.5, "{per_response} in {r}");
}

#[test]
fn verification_refuses_a_wrong_ca_or_name() {
    let pki = Pki::new("verify");
    let other = Pki::new("other");
    let (port, _) = serve(&pki);
    let url = format!("https://127.0.0.1:{port}/");
    // Signed by another CA.
    let r = load(&["--url", &url, "-c", "1", "--sni", NAME, "--ca", &other.ca()]);
    assert_eq!(r["requests"], 0, "{r}");
    assert!(r["errors"]["tls"].as_u64().expect("tls") > 0, "{r}");
    // The right CA, but without --sni the name checked is 127.0.0.1, not the certificate's.
    let r = load(&["--url", &url, "-c", "1", "--ca", &pki.ca()]);
    assert_eq!(r["requests"], 0, "{r}");
    assert!(r["errors"]["tls"].as_u64().expect("tls") > 0, "{r}");
}

#[test]
fn tls_options_need_tls() {
    let out = Command::new(BIN)
        .args(["load", "--url", "http://127.0.0.1:1/", "--tls-resume"])
        .output()
        .expect("run load");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--sni, --ca and --tls-resume need --tls or an https:// URL"),
        "{stderr}"
    );
}
