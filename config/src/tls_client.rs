//! TLS origination: the client side of `https://` upstreams (`http` integrations).
//!
//! `tls = { ca = "…", server_name = "…", insecure_skip_verify = false, cert = "…", key = "…" }`
//! on an integration
//! compiles to an [`UpstreamTls`]: a rustls `ClientConfig` (the *aws-lc-rs* provider, TLS 1.2 and
//! 1.3, ALPN `http/1.1`, an in-memory session cache so pooled reconnects resume) and the name
//! sent as SNI and verified in the upstream's certificate. Verification is on by default,
//! against the configured CA bundle or else the Mozilla roots compiled in (webpki-roots);
//! `insecure_skip_verify` turns it off under that loud name and is logged at start. With
//! `cert` and `key`, the gateway presents that client certificate to an upstream that asks
//! for one (mutual TLS towards the upstream).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::compile::span;
use crate::error::{ConfigError, Source};
use crate::file::UpstreamTlsSection;

/// How the gateway speaks TLS to one upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The client configuration.
    pub config: Arc<ClientConfig>,
    /// The name sent as SNI and verified in the certificate.
    pub server_name: ServerName<'static>,
    /// Certificates are not verified (`insecure_skip_verify`).
    pub insecure: bool,
    /// What identifies these settings (upstreams share a connection pool only when equal).
    pub key: String,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Compiles an `https://` URL's TLS settings. `key`: the integration's key path for errors;
/// `url_host`: the URL's host (the default name); `config_path`: relative `ca` paths start
/// at its folder.
pub(crate) fn upstream_tls(
    src: &Source<'_>,
    key: &str,
    section: Option<&toml::Spanned<Box<UpstreamTlsSection>>>,
    url_host: &str,
    config_path: &Path,
) -> Result<UpstreamTls, ConfigError> {
    let default = UpstreamTlsSection::default();
    let s: &UpstreamTlsSection = section.map_or(&default, |s| s.get_ref());
    let name_text = s
        .server_name
        .as_ref()
        .map_or(url_host.trim_matches(['[', ']']), |n| n.get_ref().as_str());
    let server_name = ServerName::try_from(name_text.to_string()).map_err(|_| {
        src.error(
            s.server_name
                .as_ref()
                .and_then(span)
                .or_else(|| section.and_then(span)),
            format!("{key}.tls.server_name"),
            format!("{name_text:?} is not a DNS name or IP address"),
            "a name such as \"api.example.com\", or an IP address",
        )
    })?;
    let insecure = s
        .insecure_skip_verify
        .as_ref()
        .is_some_and(|b| *b.get_ref());
    let provider = Arc::new(crate::tls::crypto_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            src.error(
                section.and_then(span),
                format!("{key}.tls"),
                format!("cannot build a TLS client: {e}"),
                "TLS 1.2 and 1.3",
            )
        })?;
    let verified = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let roots = match &s.ca {
            Some(ca) => {
                let path = config_path
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(ca.get_ref());
                load_roots(&path).map_err(|problem| {
                    src.error(
                        span(ca),
                        format!("{key}.tls.ca"),
                        problem,
                        "a PEM file of one or more CA certificates",
                    )
                })?
            }
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        builder.with_root_certificates(roots)
    };
    let base = config_path.parent().unwrap_or(Path::new(""));
    let mut config = match (&s.cert, &s.key) {
        (None, None) => verified.with_no_client_auth(),
        (Some(cert), Some(key_file)) => {
            let cert_path = base.join(cert.get_ref());
            let chain = crate::tls::read_chain(&cert_path).map_err(|problem| {
                src.error(
                    span(cert),
                    format!("{key}.tls.cert"),
                    problem,
                    "a PEM file of -----BEGIN CERTIFICATE----- blocks, leaf first",
                )
            })?;
            let key_path = base.join(key_file.get_ref());
            let key_error = |problem: String, expected: &str| {
                src.error(span(key_file), format!("{key}.tls.key"), problem, expected)
            };
            let private = crate::tls::read_key(&key_path)
                .map_err(|p| key_error(p, crate::tls::KEY_EXPECTED))?;
            verified
                .with_client_auth_cert(chain, private)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => key_error(
                        format!(
                            "the private key in {} does not match the certificate in {}",
                            key_path.display(),
                            cert_path.display()
                        ),
                        "the private key of the chain's first (leaf) certificate",
                    ),
                    e => key_error(
                        format!("the key in {} cannot be used: {e}", key_path.display()),
                        "an RSA key of 2048 bits or more, an ECDSA P-256 or P-384 key, or an \
                         Ed25519 key",
                    ),
                })?
        }
        (Some(only), None) | (None, Some(only)) => {
            return Err(src.error(
                span(only),
                format!("{key}.tls"),
                "a client certificate needs both `cert` and `key`",
                "cert = \"client.pem\" and key = \"client.key\", or neither",
            ))
        }
    };
    config.alpn_protocols = vec![crate::tls::ALPN_HTTP_1_1.to_vec()];
    let ca = s.ca.as_ref().map_or("", |c| c.get_ref().as_str());
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
        insecure,
        key: format!(
            "sni={name_text};ca={ca};insecure={insecure};cert={}",
            s.cert.as_ref().map_or("", |c| c.get_ref().as_str())
        ),
    })
}

/// The certificates of a PEM bundle as trust anchors; a problem names the file.
fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a valid PEM file: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("no usable CA certificate in {}", path.display()));
    }
    Ok(roots)
}

/// `insecure_skip_verify`: every certificate is accepted; handshake signatures are still
/// checked (they prove the peer holds the key of the certificate it sent, whatever that is).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
