//! The TLS pieces of `compare`: the certificate every contender serves, and the check at start
//! that each one negotiates what the TLS scenarios compare and resumes sessions.
//!
//! The certificate is made here with rcgen (no `openssl` tool needed): a private CA and a leaf
//! for [`NAME`], both ECDSA P-256, written to the scratch directory as the leaf
//! ([`configs::TLS_CERT`], the chain served: the leaf only), its key ([`configs::TLS_KEY`],
//! PKCS#8), the CA ([`configs::TLS_CA`]) and the leaf and key in one file for HAProxy
//! ([`configs::TLS_PEM`]).
//!
//! [`check`] connects twice with a blocking rustls client offering exactly what `load --tls`
//! offers (`tls_client::client_config`, here verifying against the CA): a GET of `/plain/1k`
//! must answer 200 over TLS 1.3 with AES-128-GCM, X25519 and ALPN http/1.1, without a
//! HelloRetryRequest; the second connection must resume the first's session. It also counts
//! the session tickets the server sends after each kind of handshake, for the progress output
//! (tickets are work per handshake that differs between servers).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, HandshakeKind, NamedGroup, ProtocolVersion,
    StreamOwned,
};

use super::configs;
use crate::tls_client;

/// The name the certificate is for, sent as SNI by every TLS load.
pub const NAME: &str = "bench.example.com";

/// Writes the CA, the leaf for [`NAME`], its key and the HAProxy bundle into `dir`.
pub fn write_certificate(dir: &Path) -> Result<()> {
    let mut ca = CertificateParams::new(Vec::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tollgate-bench CA");
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec![NAME.to_string()])?;
    leaf.distinguished_name.push(DnType::CommonName, NAME);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = leaf.signed_by(&key, &issuer)?;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {p:?}"))
    };
    write(configs::TLS_CA, &ca_cert.pem())?;
    write(configs::TLS_CERT, &cert.pem())?;
    write(configs::TLS_KEY, &key.serialize_pem())?;
    write(
        configs::TLS_PEM,
        &format!("{}{}", cert.pem(), key.serialize_pem()),
    )
}

/// What a contender negotiated with the load's client, from [`check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// Session tickets received after the full handshake.
    pub tickets_full: usize,
    /// Session tickets received after the resumed handshake.
    pub tickets_resumed: usize,
}

impl Negotiated {
    /// One line for the progress output.
    pub fn describe(&self) -> String {
        format!(
            "TLSv1.3 TLS13_AES_128_GCM_SHA256 X25519, ALPN http/1.1, resumes; session tickets \
             sent: {} after a full handshake, {} after a resumed one",
            self.tickets_full, self.tickets_resumed
        )
    }
}

/// Checks the TLS listener on 127.0.0.1:`port` (see the module doc); `ca`: the CA file.
pub fn check(port: u16, ca: &Path) -> Result<Negotiated> {
    let store = Arc::new(CountingStore::default());
    let base = tls_client::client_config(Some(ca))?;
    let mut config = ClientConfig::clone(&base);
    config.resumption = Resumption::store(store.clone());
    let config = Arc::new(config);
    let first = get(port, &config).context("first connection")?;
    first.expect(HandshakeKind::Full)?;
    let tickets_full = store.inserted.swap(0, Ordering::Relaxed);
    let second = get(port, &config).context("second connection")?;
    second.expect(HandshakeKind::Resumed)?;
    Ok(Negotiated {
        tickets_full,
        tickets_resumed: store.inserted.load(Ordering::Relaxed),
    })
}

/// What one connection of [`check`] saw.
#[derive(Debug)]
struct Seen {
    status: String,
    version: Option<ProtocolVersion>,
    suite: Option<CipherSuite>,
    group: Option<NamedGroup>,
    alpn: Option<Vec<u8>>,
    kind: Option<HandshakeKind>,
}

impl Seen {
    /// Fails unless the connection is what the scenarios compare, with a handshake of `kind`.
    fn expect(&self, kind: HandshakeKind) -> Result<()> {
        let want = (
            Some(ProtocolVersion::TLSv1_3),
            Some(CipherSuite::TLS13_AES_128_GCM_SHA256),
            Some(NamedGroup::X25519),
            Some(tls_client::ALPN.to_vec()),
            Some(kind),
        );
        let got = (
            self.version,
            self.suite,
            self.group,
            self.alpn.clone(),
            self.kind,
        );
        if !self.status.starts_with("HTTP/1.1 200") {
            bail!("answered {:?}, not 200", self.status);
        }
        if got != want {
            bail!(
                "negotiated {:?} {:?} {:?}, ALPN {:?}, handshake {:?}; wanted TLSv1_3 \
                 TLS13_AES_128_GCM_SHA256 X25519, ALPN http/1.1, handshake {kind:?}",
                self.version,
                self.suite,
                self.group,
                self.alpn.as_deref().map(String::from_utf8_lossy),
                self.kind
            );
        }
        Ok(())
    }
}

/// One `GET /plain/1k` with `Connection: close` over TLS, read to the server's close.
fn get(port: u16, config: &Arc<ClientConfig>) -> Result<Seen> {
    let name = ServerName::try_from(NAME)?;
    let conn = ClientConnection::new(Arc::clone(config), name)?;
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut tls = StreamOwned::new(conn, sock);
    tls.write_all(b"GET /plain/1k HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // Closed without close_notify after a complete response: still an answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e).context("reading the response"),
    }
    let c = &tls.conn;
    Ok(Seen {
        status: String::from_utf8_lossy(&response[..response.len().min(12)]).into_owned(),
        version: c.protocol_version(),
        suite: c.negotiated_cipher_suite().map(|s| s.suite()),
        group: c.negotiated_key_exchange_group().map(|g| g.name()),
        alpn: c.alpn_protocol().map(<[u8]>::to_vec),
        kind: c.handshake_kind(),
    })
}

/// A session store that counts the TLS 1.3 tickets it is given.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    inserted: AtomicUsize,
}

impl Default for CountingStore {
    fn default() -> Self {
        Self {
            inner: ClientSessionMemoryCache::new(1),
            inserted: AtomicUsize::new(0),
        }
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.inserted.fetch_add(1, Ordering::Relaxed);
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}
