//! `load --tls`: the client side of TLS, through the gateway's own rustls↔monoio adapter
//! (`tollgate_backends::wire::tls::connect`, the stream as `UpstreamStream`), so the bench
//! exercises the same record handling the gateway uses towards its upstreams.
//!
//! What the client offers, fixed so every server under test sees the same ClientHello:
//! TLS 1.3 only; the cipher suites AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, in that order
//! (servers that follow the client's order, as rustls, OpenSSL and so nginx and HAProxy do by
//! default, pick AES-128-GCM); the key exchange groups X25519, P-256, P-384 (the one key
//! share sent is X25519's: see [`provider`]); ALPN `http/1.1`; SNI with the name of `--sni`
//! (or the URL's host when it is a name; an IP address sends none).
//!
//! Verification: with `--ca FILE` the server's certificate must chain to a certificate of FILE
//! and name the server (rustls' WebPKI verifier). Without it nothing is checked, neither the
//! certificate nor the handshake signature, so the client spends no CPU on work the server
//! does not cause: a load generator, not a browser.
//!
//! Resumption (`--tls-resume`): every connection slot has its own session store (a
//! `ClientSessionMemoryCache`; all slots of a run share one configuration otherwise), so each
//! new connection offers a ticket of the previous connection of its slot, whatever the server's
//! ticket policy: OpenSSL (nginx, HAProxy) sends two tickets after a full handshake but one
//! after a resumed one, and a store shared by many connections would run dry now and then and
//! fall back to full handshakes at a rate that depends on the server, not on the scenario.
//! Without `--tls-resume` no ticket is ever offered: every handshake is a full one.
//!
//! Counting resumptions: rustls keeps whether a client handshake resumed inside the connection,
//! which the adapter does not expose. A full handshake is the only one in which the server's
//! certificate is verified, so the verifier counts its calls in a thread-local counter, and
//! [`handshake`] reads that counter around each poll of the handshake future: monoio polls one
//! task at a time on a thread, so what changed during those polls is this handshake's alone.

use std::cell::Cell;
use std::future::Future as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use monoio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption, WebPkiServerVerifier};
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tollgate_backends::wire::stream::UpstreamStream;
use tollgate_backends::wire::tls::{self, HandshakeError};

/// The one ALPN protocol offered.
pub const ALPN: &[u8] = b"http/1.1";

thread_local! {
    /// Server certificates verified on this thread: one per full handshake.
    static CERTIFICATES_SEEN: Cell<u64> = const { Cell::new(0) };
}

fn certificates_seen() -> u64 {
    CERTIFICATES_SEEN.with(Cell::get)
}

/// The *aws-lc-rs* provider, as the gateway's, with the TLS 1.3 suites in the order offered
/// (AES-128-GCM first) and X25519 as the only group. The provider's own order starts with the
/// post-quantum hybrid X25519MLKEM768, then P-384, and the client sends a key share for its
/// first group, which servers accept as it is: every handshake would pay for those instead of
/// the X25519 that OpenSSL 3.0 clients (wrk, curl on Debian 12) send.
pub fn provider() -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
        aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384,
        aws_lc_rs::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    p.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    p
}

/// The configuration every connection of a run starts from: TLS 1.3, [`ALPN`], verification
/// against the certificates of `ca` (or none), and no resumption (see [`for_connection`]).
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(provider());
    let inner = match ca {
        None => None,
        Some(file) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(file)
                .with_context(|| format!("reading --ca {}", file.display()))?;
            for cert in certs {
                let cert = cert.with_context(|| format!("parsing --ca {}", file.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate of --ca {}", file.display()))?;
            }
            if roots.is_empty() {
                bail!("--ca {} holds no certificate", file.display());
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .context("building the certificate verifier")?;
            Some(verifier)
        }
    };
    let verifier = Arc::new(Verifier {
        inner,
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the aws-lc-rs provider")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// One connection slot's configuration: `base` itself, or with `resume` a copy with a session
/// store of its own (one server name, so a store of one entry).
pub fn for_connection(base: &Arc<ClientConfig>, resume: bool) -> Arc<ClientConfig> {
    if !resume {
        return Arc::clone(base);
    }
    let mut config = ClientConfig::clone(base);
    config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(1)));
    Arc::new(config)
}

/// The name sent as SNI (and verified with `--ca`): `sni` if given, else `host` (the URL's
/// host, brackets and port removed), which for an IP address means no SNI.
pub fn server_name(sni: Option<&str>, host: &str) -> Result<ServerName<'static>> {
    let name = match sni {
        Some(name) => name.to_string(),
        None => host_of(host).to_string(),
    };
    ServerName::try_from(name.clone()).with_context(|| format!("bad TLS server name {name:?}"))
}

/// The host of an authority (`host:port`, `[v6]:port`, `host`).
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, _)) => host,
        None => authority,
    }
}

/// A TLS handshake over `tcp` before `deadline`; the stream and whether the handshake resumed
/// a session (no certificate was verified during it, see the module doc).
pub async fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
) -> Result<(UpstreamStream, bool), HandshakeError> {
    let mut connecting = std::pin::pin!(tls::connect(tcp, config, name, deadline));
    let mut seen = 0;
    let done = std::future::poll_fn(|cx| {
        let before = certificates_seen();
        let poll = connecting.as_mut().poll(cx);
        seen += certificates_seen() - before;
        poll
    })
    .await;
    match done {
        Ok(stream) => Ok((UpstreamStream::Tls(Box::new(stream)), seen == 0)),
        Err((e, _tcp)) => Err(e),
    }
}

/// Counts every certificate verification on its thread, then verifies with WebPKI (`--ca`) or
/// accepts anything.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    schemes: Vec<SignatureScheme>,
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
        CERTIFICATES_SEEN.with(|c| c.set(c.get() + 1));
        match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.inner {
            Some(v) => v.verify_tls12_signature(message, cert, dss),
            None => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.inner {
            Some(v) => v.verify_tls13_signature(message, cert, dss),
            None => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() -> Result<()> {
        let dns = |s: &str| ServerName::try_from(s.to_string()).map_err(anyhow::Error::from);
        assert_eq!(
            server_name(Some("bench.example.com"), "127.0.0.1:8443")?,
            dns("bench.example.com")?
        );
        assert_eq!(server_name(None, "gw.example:443")?, dns("gw.example")?);
        assert_eq!(server_name(None, "gw.example")?, dns("gw.example")?);
        assert!(matches!(
            server_name(None, "127.0.0.1:8443")?,
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name(None, "[::1]:8443")?,
            ServerName::IpAddress(_)
        ));
        assert!(server_name(Some("bad name"), "h").is_err());
        Ok(())
    }

    #[test]
    fn configs_offer_tls13_aes128_first_and_resume_per_slot() -> Result<()> {
        let base = client_config(None)?;
        assert_eq!(base.alpn_protocols, [ALPN.to_vec()]);
        assert_eq!(
            base.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            base.crypto_provider().kx_groups[0].name(),
            rustls::NamedGroup::X25519
        );
        // Without resumption every slot shares the one configuration; with it each has its own.
        assert!(Arc::ptr_eq(&for_connection(&base, false), &base));
        let (a, b) = (for_connection(&base, true), for_connection(&base, true));
        assert!(!Arc::ptr_eq(&a, &b));
        let missing = client_config(Some(Path::new("/nonexistent/ca.pem")));
        assert!(missing.is_err());
        Ok(())
    }
}
