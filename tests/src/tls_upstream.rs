//! A TLS mock upstream, for TLS origination (`http` integrations with `https://` URLs).
//!
//! [`TlsUpstream`] is the mock upstream of [`crate::upstream`] (same [`Behaviour`]s, same
//! recording of requests and connections, through `Deref` to [`Upstream`]) behind a rustls
//! server (the *ring* provider, like [`crate::tls`]) presenting a leaf certificate of a test
//! CA ([`crate::tls::Pki`]). Each accepted connection completes its handshake on its own
//! thread before it serves HTTP/1.1; the upstream records every completed handshake
//! ([`Handshake`]: version, the SNI name the gateway sent, whether it resumed a session) and
//! every failed one (the error, e.g. the alert the gateway sent when it refused the
//! certificate). A connection whose handshake fails serves nothing.
//!
//! [`UpstreamTls`] writes the integration's `tls = { … }` line.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ProtocolVersion, ServerConfig, ServerConnection, StreamOwned};

use crate::tls::{provider, Leaf, Versions};
use crate::upstream::{Behaviour, Upstream};

/// A TLS server stream from the upstream's side.
pub type ServerStream = StreamOwned<ServerConnection, TcpStream>;

/// A handshake the upstream completed.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The negotiated version.
    pub version: ProtocolVersion,
    /// The SNI name the client (the gateway) sent, if any.
    pub sni: Option<String>,
    /// The ALPN protocol agreed: `http/1.1` when the client offered it, None when it offered
    /// none.
    pub alpn: Option<Vec<u8>>,
    /// The client resumed a session (an abbreviated handshake).
    pub resumed: bool,
    /// The client certificate the gateway presented (the leaf), when the upstream asked.
    pub client_cert: Option<CertificateDer<'static>>,
}

/// Handshakes seen, shared with the connection threads.
#[derive(Debug, Default)]
struct Handshakes {
    done: Mutex<Vec<Handshake>>,
    failed: Mutex<Vec<String>>,
}

/// A running TLS mock upstream; stops accepting on drop.
pub struct TlsUpstream {
    upstream: Upstream,
    handshakes: Arc<Handshakes>,
}

impl TlsUpstream {
    /// Binds 127.0.0.1:0 and serves `behaviour` over TLS 1.2 and 1.3 with `leaf`.
    pub fn start(leaf: &Leaf, behaviour: Behaviour) -> TlsUpstream {
        TlsUpstream::start_with(leaf, behaviour, Versions::Both)
    }

    /// Binds 127.0.0.1:0 and serves `behaviour` over TLS `versions` with `leaf`.
    pub fn start_with(leaf: &Leaf, behaviour: Behaviour, versions: Versions) -> TlsUpstream {
        TlsUpstream::serve(server_config(leaf, versions, None), behaviour)
    }

    /// Like [`TlsUpstream::start`], requiring a client certificate issued by the CA of the
    /// PEM file `client_ca`.
    pub fn start_requiring_client_cert(
        leaf: &Leaf,
        client_ca: &Path,
        behaviour: Behaviour,
    ) -> TlsUpstream {
        let config = server_config(leaf, Versions::Both, Some(client_ca));
        TlsUpstream::serve(config, behaviour)
    }

    fn serve(config: Arc<ServerConfig>, behaviour: Behaviour) -> TlsUpstream {
        let handshakes = Arc::new(Handshakes::default());
        let seen = Arc::clone(&handshakes);
        let upstream = Upstream::start_over(behaviour, move |sock| accept(&config, sock, &seen));
        TlsUpstream {
            upstream,
            handshakes,
        }
    }

    /// An echoing TLS upstream with `leaf`.
    pub fn echo(leaf: &Leaf) -> TlsUpstream {
        TlsUpstream::start(leaf, Behaviour::echo())
    }

    /// `https://127.0.0.1:PORT` (no path).
    pub fn url(&self) -> String {
        format!("https://{}", self.upstream.addr())
    }

    /// The plain mock underneath (requests, connections).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Handshakes completed so far, in completion order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes
            .done
            .lock()
            .expect("handshakes lock")
            .clone()
    }

    /// Errors of the handshakes that failed so far (what rustls said: an alert the gateway
    /// sent, an end of stream…).
    pub fn handshake_failures(&self) -> Vec<String> {
        self.handshakes
            .failed
            .lock()
            .expect("handshakes lock")
            .clone()
    }
}

impl Deref for TlsUpstream {
    type Target = Upstream;
    fn deref(&self) -> &Upstream {
        &self.upstream
    }
}

/// The server configuration: `leaf` (its PEM key file), `versions`, ALPN `http/1.1` (a
/// client offering only other protocols is refused), rustls' default session cache (TLS 1.2
/// ids and TLS 1.3 stateful tickets, so a client can resume), and client certificates
/// required from the CA of the PEM file `client_ca` when given.
fn server_config(leaf: &Leaf, versions: Versions, client_ca: Option<&Path>) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::from_pem_file(&leaf.key)
        .unwrap_or_else(|e| panic!("read the key {}: {e}", leaf.key.display()));
    let provider = Arc::new(provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions.protocol_versions())
        .expect("protocol versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).expect("read the client CA") {
                roots
                    .add(cert.expect("a CA certificate"))
                    .expect("trust the client CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(vec![leaf.der.clone()], key)
        .expect("the upstream's certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Completes the server handshake on `sock` and records it (or its failure).
fn accept(
    config: &Arc<ServerConfig>,
    mut sock: TcpStream,
    seen: &Handshakes,
) -> std::io::Result<ServerStream> {
    let mut conn = ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            seen.failed
                .lock()
                .expect("handshakes lock")
                .push(e.to_string());
            return Err(e);
        }
    }
    let handshake = Handshake {
        version: conn.protocol_version().expect("negotiated version"),
        sni: conn.server_name().map(str::to_string),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
        client_cert: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.clone().into_owned()),
    };
    seen.done.lock().expect("handshakes lock").push(handshake);
    Ok(StreamOwned::new(conn, sock))
}

/// The `tls = { … }` of an `http` integration; unset fields are left out (the defaults).
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// `ca`: the trusted roots' PEM file.
    pub ca: Option<PathBuf>,
    /// `server_name`.
    pub server_name: Option<String>,
    /// `insecure_skip_verify`.
    pub insecure_skip_verify: Option<bool>,
    /// `cert` and `key`: the client certificate presented.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl UpstreamTls {
    /// No field set: `tls = { }`.
    pub fn new() -> UpstreamTls {
        UpstreamTls::default()
    }

    /// Trusts the CA certificates of the PEM file `path`.
    pub fn ca(mut self, path: &Path) -> UpstreamTls {
        self.ca = Some(path.to_path_buf());
        self
    }

    /// Sends and verifies `name`.
    pub fn server_name(mut self, name: &str) -> UpstreamTls {
        self.server_name = Some(name.to_string());
        self
    }

    /// Sets `insecure_skip_verify`.
    pub fn insecure_skip_verify(mut self, skip: bool) -> UpstreamTls {
        self.insecure_skip_verify = Some(skip);
        self
    }

    /// Presents the certificate of `leaf` (its chain and key files) when asked.
    pub fn client_cert(mut self, leaf: &Leaf) -> UpstreamTls {
        self.client_cert = Some((leaf.cert.clone(), leaf.key.clone()));
        self
    }

    /// The fields as `key = value` TOML, comma-separated.
    fn fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        if let Some(ca) = &self.ca {
            fields.push(format!("ca = {:?}", ca.display().to_string()));
        }
        if let Some(name) = &self.server_name {
            fields.push(format!("server_name = {name:?}"));
        }
        if let Some(skip) = self.insecure_skip_verify {
            fields.push(format!("insecure_skip_verify = {skip}"));
        }
        if let Some((cert, key)) = &self.client_cert {
            fields.push(format!("cert = {:?}", cert.display().to_string()));
            fields.push(format!("key = {:?}", key.display().to_string()));
        }
        fields
    }

    /// `tls = { … }` (one line, for [`crate::config::proxy_all_with`]).
    pub fn toml(&self) -> String {
        format!("tls = {{ {} }}", self.fields().join(", "))
    }

    /// The same as a `[<integration>.tls]` table, one field a line (`integration`: e.g.
    /// `apis.integrations.up`); it must come after the integration's own keys.
    pub fn table(&self, integration: &str) -> String {
        let mut out = format!("[{integration}.tls]\n");
        for field in self.fields() {
            let _ = writeln!(out, "{field}");
        }
        out
    }
}
