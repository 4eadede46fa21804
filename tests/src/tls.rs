//! TLS support for the end-to-end tests: certificates made at test time and a blocking TLS
//! client.
//!
//! [`Pki`] is a private CA in a temporary directory (removed on drop) that issues leaf
//! certificates ([`Leaf`]) as PEM files the gateway's `[[certificates]]` point at, by absolute
//! path (the harness writes its configuration under the system temp dir). No key is checked
//! in.
//!
//! [`connect`] runs a rustls client handshake over a std `TcpStream` with [`TlsOptions`] (SNI
//! name or none, protocol versions, the CA to trust) and returns a [`TlsClient`]: the
//! negotiated version, the leaf certificate the gateway presented (compare it with
//! [`Leaf::der`] to tell which certificate was chosen), and a [`Client`] over the TLS stream
//! for raw HTTP/1.1. A failed handshake comes back as a [`HandshakeFailed`], which also tells
//! whether the gateway then closed the connection.
//!
//! Each [`connect`] builds a new client configuration, so a client never resumes a session
//! unless its options were made resuming ([`TlsOptions::resume_with`]): connections made with
//! (clones of) those options share one configuration and its session store, offer the
//! sessions (tickets, TLS 1.2 session ids) of the earlier ones, and [`TlsClient::resumed`]
//! tells whether the gateway took one ([`OfferCounter`] tells whether one was offered).
//!
//! Mutual TLS: [`Pki::issue_client`] issues client certificates (a chosen subject, serial
//! number and validity), [`Pki::write_crl`] revokes some of them, and
//! [`TlsOptions::client_cert`] makes the client present one.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12Resumption, WebPkiServerVerifier,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind,
    ProtocolVersion, RootCertStore, SignatureScheme, StreamOwned,
};

use crate::client::{Client, Transport, READ_TIMEOUT};

mod client_cert;
mod offers;

pub use client_cert::{ClientCert, Day};
pub use offers::OfferCounter;
pub use rcgen::{PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};

/// A TLS stream to the gateway.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl Transport for TlsStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
}

/// A private CA in a temporary directory that issues leaf certificates.
pub struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    ca_pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// PEM chain file (the leaf only).
    pub cert: PathBuf,
    /// PEM private key file (PKCS#8).
    pub key: PathBuf,
    /// The leaf certificate, DER.
    pub der: CertificateDer<'static>,
}

impl Pki {
    /// A new CA (ECDSA P-256) named `tollgate test CA` in a fresh temporary directory.
    pub fn new() -> Pki {
        Pki::named("tollgate test CA")
    }

    /// A new CA (ECDSA P-256) with the common name `name` in a fresh temporary directory.
    /// (Two CAs of one name are told apart by their keys only: a certificate of one checked
    /// against the other fails on its signature rather than as from an unknown issuer.)
    pub fn named(name: &str) -> Pki {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tollgate-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
        let ca = params.self_signed(&key).expect("self-signed CA");
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write the CA certificate");
        Pki {
            dir,
            ca: ca.der().clone(),
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate (DER), for [`TlsOptions::new`].
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The CA certificate as a PEM file (`ca.pem` in [`Self::dir`]: no leaf should be issued
    /// with the stem `ca`), for a trust bundle.
    pub fn ca_pem(&self) -> &Path {
        &self.ca_pem
    }

    /// The directory the files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a server certificate for the DNS `names` with a new `alg` key and writes it to
    /// `<stem>.pem` and `<stem>.key` (overwriting them: a renewal in place).
    pub fn issue(&self, stem: &str, names: &[&str], alg: &'static SignatureAlgorithm) -> Leaf {
        self.issue_valid(stem, names, alg, None)
    }

    /// [`Pki::issue`], valid only from `validity.0` to `validity.1` when given (rcgen's wide
    /// default otherwise): a window in the past makes an expired certificate.
    pub fn issue_valid(
        &self,
        stem: &str,
        names: &[&str],
        alg: &'static SignatureAlgorithm,
        validity: Option<(Day, Day)>,
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf parameters");
        if let Some(((y0, m0, d0), (y1, m1, d1))) = validity {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate_for(alg).expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let leaf = Leaf {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write certificate");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        leaf
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Leaf {
    /// The certificate file's text (PEM).
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.cert.display()))
    }

    /// The private key, read from its file.
    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(&self.key)
            .unwrap_or_else(|e| panic!("read the key {}: {e}", self.key.display()))
    }

    /// A `[[certificates]]` table with this id and files; `names` absent = the cert's SANs.
    pub fn toml(&self, id: &str, names: Option<&[&str]>) -> String {
        let names = names
            .map(|n| format!("names = {n:?}\n"))
            .unwrap_or_default();
        format!(
            "[[certificates]]\nid = \"{id}\"\ncert = {:?}\nkey = {:?}\n{names}\n",
            self.cert.display().to_string(),
            self.key.display().to_string(),
        )
    }
}

/// A `[[listeners]]` table `name` on an OS-chosen port with `tls = { <tls> }`.
pub fn tls_listener(name: &str, tls: &str) -> String {
    format!("[[listeners]]\nname = \"{name}\"\nbind = \"127.0.0.1:0\"\ntls = {{ {tls} }}\n\n")
}

/// Protocol versions a client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// TLS 1.2 and 1.3.
    Both,
    /// TLS 1.2 only.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl Versions {
    /// The rustls protocol versions.
    pub fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            Versions::Both => BOTH,
            Versions::Tls12 => TLS12,
            Versions::Tls13 => TLS13,
        }
    }
}

/// How [`connect`] connects.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The SNI name sent; None sends none (the server name is then the IP address, which
    /// rustls never sends as SNI).
    pub sni: Option<String>,
    /// Versions offered.
    pub versions: Versions,
    /// The CA trusted.
    pub ca: CertificateDer<'static>,
    /// Check that the certificate is valid for the SNI name (the chain is always checked).
    pub check_name: bool,
    /// ALPN protocols offered.
    pub alpn: Vec<Vec<u8>>,
    /// Plaintext queued before the handshake: it leaves right behind the client's Finished.
    pub early_request: Option<Vec<u8>>,
    /// The one client configuration of a resuming client ([`Self::resume_with`]); None: each
    /// connection builds its own, with a store of its own (so never resumes).
    pub resuming: Option<Arc<ClientConfig>>,
    /// The client certificate (and its key) presented when the gateway asks for one; None:
    /// an empty certificate list.
    pub client_cert: Option<Leaf>,
}

impl TlsOptions {
    /// No SNI, both versions, `ca` trusted, ALPN `http/1.1`.
    pub fn new(ca: &CertificateDer<'static>) -> TlsOptions {
        TlsOptions {
            sni: None,
            versions: Versions::Both,
            ca: ca.clone(),
            check_name: true,
            alpn: vec![b"http/1.1".to_vec()],
            early_request: None,
            resuming: None,
            client_cert: None,
        }
    }

    /// Sends `name` as SNI.
    pub fn sni(mut self, name: &str) -> TlsOptions {
        self.sni = Some(name.to_string());
        self
    }

    /// Offers only `versions`.
    pub fn versions(mut self, versions: Versions) -> TlsOptions {
        self.versions = versions;
        self
    }

    /// Accepts a certificate valid for another name than the SNI (chain still checked): to
    /// see which certificate the gateway falls back to.
    pub fn any_name(mut self) -> TlsOptions {
        self.check_name = false;
        self
    }

    /// Queues `request` before the handshake, so it travels with the client's last flight.
    pub fn early_request(mut self, request: impl AsRef<[u8]>) -> TlsOptions {
        self.early_request = Some(request.as_ref().to_vec());
        self
    }

    /// Presents `leaf` (certificate and key) when the gateway asks for a client certificate.
    /// Call it before [`Self::resume_with`], which builds the configuration.
    pub fn client_cert(mut self, leaf: &Leaf) -> TlsOptions {
        self.client_cert = Some(leaf.clone());
        self
    }

    /// Makes the client resume: the client configuration is built now, once, with its session
    /// store `store` and TLS 1.2 sessions resumed as `tls12` says — `SessionIdOrTickets`
    /// (tickets when the server sends them) or `SessionIdOnly` (no ticket extension offered:
    /// the server's session cache) — and every connection with these options (or clones)
    /// uses it: rustls resumes a session only under the configuration (the same certificate
    /// verifier) that made it. Call it after the settings of the configuration (versions,
    /// name check, ALPN, client certificate); the SNI name may still change.
    pub fn resume_with(
        self,
        store: &Arc<ClientSessionMemoryCache>,
        tls12: Tls12Resumption,
    ) -> TlsOptions {
        let store: Arc<ClientSessionMemoryCache> = Arc::clone(store);
        self.resume_with_store(store, tls12)
    }

    /// [`Self::resume_with`] with any session store (an [`OfferCounter`], say).
    pub fn resume_with_store(
        mut self,
        store: Arc<dyn ClientSessionStore>,
        tls12: Tls12Resumption,
    ) -> TlsOptions {
        let mut config = self.client_config();
        config.resumption = Resumption::store(store).tls12_resumption(tls12);
        self.resuming = Some(Arc::new(config));
        self
    }

    /// The configuration a connection uses: the resuming one, or a new one.
    fn config(&self) -> Arc<ClientConfig> {
        match &self.resuming {
            Some(config) => Arc::clone(config),
            None => Arc::new(self.client_config()),
        }
    }

    /// The rustls client configuration.
    pub fn client_config(&self) -> ClientConfig {
        let provider = Arc::new(provider());
        let versions = self.versions.protocol_versions();
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("trust the test CA");
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .expect("certificate verifier");
        let verifier = Arc::new(Verifier {
            webpki,
            check_name: self.check_name && self.sni.is_some(),
        });
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.client_cert {
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.der.clone()], leaf.private_key())
                .expect("the client certificate and its key"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        config
    }

    /// The name the client connects to: the SNI name, or the IP address (no SNI).
    fn server_name(&self, addr: SocketAddr) -> ServerName<'static> {
        match &self.sni {
            Some(name) => ServerName::try_from(name.clone()).expect("a valid DNS name"),
            None => ServerName::IpAddress(addr.ip().into()),
        }
    }
}

/// The gateway's crypto provider (aws-lc-rs), for the test clients and servers too.
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    tollgate_config::tls::crypto_provider()
}

/// Web PKI verification, optionally without the name check.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// An established TLS connection: what was negotiated, and a [`Client`] over it
/// (`send`, `read_response`, `wait_closed`… through `Deref`).
pub struct TlsClient {
    /// The negotiated protocol version.
    pub version: ProtocolVersion,
    /// The leaf certificate the gateway presented.
    pub leaf: CertificateDer<'static>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    client: Client<TlsStream>,
}

impl TlsClient {
    /// The rustls connection.
    pub fn connection(&self) -> &ClientConnection {
        &self.client.transport().conn
    }

    /// True when the handshake resumed a session (no certificate was sent then: [`Self::leaf`]
    /// is the one of the session's first handshake).
    pub fn resumed(&self) -> bool {
        self.connection().handshake_kind() == Some(HandshakeKind::Resumed)
    }
}

impl Deref for TlsClient {
    type Target = Client<TlsStream>;
    fn deref(&self) -> &Client<TlsStream> {
        &self.client
    }
}

impl DerefMut for TlsClient {
    fn deref_mut(&mut self) -> &mut Client<TlsStream> {
        &mut self.client
    }
}

/// A handshake that did not complete.
#[derive(Debug)]
pub struct HandshakeFailed {
    /// The client's error (rustls's, or the I/O error).
    pub error: String,
    /// The gateway closed (or reset) the connection afterwards, within [`READ_TIMEOUT`].
    pub closed: bool,
}

/// Connects to `addr` and completes a TLS handshake with `options`.
pub fn connect(addr: SocketAddr, options: &TlsOptions) -> Result<TlsClient, HandshakeFailed> {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    sock.set_nodelay(true).expect("nodelay");
    sock.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    sock.set_write_timeout(Some(READ_TIMEOUT)).expect("timeout");
    let mut conn = ClientConnection::new(options.config(), options.server_name(addr))
        .expect("client connection");
    if let Some(early) = &options.early_request {
        conn.writer()
            .write_all(early)
            .expect("queue the early request");
    }
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let error = match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => format!("{tls:?}"),
                None => format!("{:?}: {e}", e.kind()),
            };
            return Err(HandshakeFailed {
                error,
                closed: wait_eof(&mut sock, READ_TIMEOUT),
            });
        }
    }
    // Our last flight (and any early request) goes out now.
    while conn.wants_write() {
        conn.write_tls(&mut sock)
            .expect("send the client's Finished");
    }
    let version = conn.protocol_version().expect("negotiated version");
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server's certificate")
        .clone()
        .into_owned();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    Ok(TlsClient {
        version,
        leaf,
        alpn,
        client: Client::over_transport(StreamOwned::new(conn, sock)),
    })
}

/// Connects, expecting the handshake to succeed.
pub fn connect_ok(addr: SocketAddr, options: &TlsOptions) -> TlsClient {
    connect(addr, options).unwrap_or_else(|f| {
        panic!(
            "TLS handshake with {addr} ({:?}, {:?}) failed: {}",
            options.sni, options.versions, f.error
        )
    })
}

/// Connects, expecting the handshake to fail.
pub fn connect_err(addr: SocketAddr, options: &TlsOptions) -> HandshakeFailed {
    match connect(addr, options) {
        Ok(c) => panic!(
            "TLS handshake with {addr} ({:?}, {:?}) succeeded ({:?}), expected a failure",
            options.sni, options.versions, c.version
        ),
        Err(f) => f,
    }
}

/// Reads (and drops) until end of stream or reset; false when the socket is still open at
/// `deadline`.
pub fn wait_eof(sock: &mut TcpStream, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            return false;
        }
        let _ = sock.set_read_timeout(Some(end - now));
        match sock.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// The bytes of a ClientHello for `sni` (one TLS record), as a client would send first.
pub fn client_hello(options: &TlsOptions, addr: SocketAddr) -> Vec<u8> {
    let mut conn =
        ClientConnection::new(Arc::new(options.client_config()), options.server_name(addr))
            .expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write the ClientHello");
    }
    out
}

/// Is `bytes` empty or TLS alert records only (what a server may send before closing on a
/// bad handshake)?
pub fn only_alerts(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        // Record header: type 21 (alert), version, 2-byte length.
        if rest.len() < 5 || rest[0] != 21 {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest.len() < 5 + len {
            return false;
        }
        rest = &rest[5 + len..];
    }
    true
}
