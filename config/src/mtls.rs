//! Client-certificate (mutual TLS) policies: `[[mtls]]` sections, each a trusted CA bundle,
//! `required` or `optional`, an optional CRL file, and the request headers that carry the
//! verified certificate to HTTP integrations. A TLS listener names one for all its handshakes
//! (`listeners.tls.mtls`); a custom domain may name its own (`domains.mtls`), which its name's
//! handshakes follow instead ([`crate::tls`] builds one server configuration per certificate
//! and policy).
//!
//! Verification is rustls' WebPKI client verifier: the chain must lead to one of the bundle's
//! certificates, be valid now, and allow client authentication. With a CRL file, every
//! certificate of the chain below the trust anchor is checked against it, and one whose
//! issuer has no CRL in the file is refused (status unknown): the file must hold a CRL of
//! every CA that issues client certificates or their intermediates.
//!
//! Headers: a client could send a header with a name the gateway uses for the certificate,
//! hoping an upstream trusts it. Every request (on every listener, with or without a client
//! certificate) loses the headers of every policy's names before it goes upstream
//! ([`crate::Plan::client_cert_header_names`]); only the gateway's own copies arrive.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use toml::Spanned;

use crate::compile::{is_token, span};
use crate::error::{ConfigError, Source};
use crate::file::{ClientCertHeadersSection, MtlsSection};

/// Header names that carry a verified client certificate upstream (lowercase; None: not sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertHeaders {
    /// Subject distinguished name (RFC 4514).
    pub subject: Option<Box<str>>,
    /// Issuer distinguished name (RFC 4514).
    pub issuer: Option<Box<str>>,
    /// Serial number, colon-separated hex.
    pub serial: Option<Box<str>>,
    /// Start of validity, `Aug  3 09:36:04 2026 GMT`.
    pub not_before: Option<Box<str>>,
    /// End of validity.
    pub not_after: Option<Box<str>>,
    /// The leaf certificate in PEM, URL-encoded.
    pub pem: Option<Box<str>>,
}

impl ClientCertHeaders {
    /// The defaults: every field, under `x-client-cert-*` names.
    pub fn defaults() -> Self {
        let name = |n: &str| Some(n.into());
        ClientCertHeaders {
            subject: name("x-client-cert-subject"),
            issuer: name("x-client-cert-issuer"),
            serial: name("x-client-cert-serial"),
            not_before: name("x-client-cert-not-before"),
            not_after: name("x-client-cert-not-after"),
            pem: name("x-client-cert"),
        }
    }

    /// Every name in use.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        [
            &self.subject,
            &self.issuer,
            &self.serial,
            &self.not_before,
            &self.not_after,
            &self.pem,
        ]
        .into_iter()
        .filter_map(|n| n.as_deref())
    }
}

/// One `[[mtls]]` policy, loaded.
pub(crate) struct MtlsPolicy {
    pub id: String,
    /// A client must present a certificate (else: may, and one presented must verify).
    pub required: bool,
    pub headers: Arc<ClientCertHeaders>,
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// Changes whenever what the policy trusts changes (bundle, CRLs, mode): sessions made
    /// under one set of trust never resume under another ([`crate::tls`]).
    pub fingerprint: u64,
}

const MODE_EXPECTED: &str = "\"required\" or \"optional\"";

/// Reads every `[[mtls]]`; paths are relative to `config_path`'s folder.
pub(crate) fn load_policies(
    src: &Source<'_>,
    config_path: &Path,
    sections: &[MtlsSection],
    provider: &Arc<CryptoProvider>,
) -> Result<Vec<MtlsPolicy>, ConfigError> {
    let base = config_path.parent().unwrap_or(Path::new(""));
    let mut out: Vec<MtlsPolicy> = Vec::with_capacity(sections.len());
    for (i, m) in sections.iter().enumerate() {
        let key = |name: &str| format!("mtls[{i}].{name}");
        let id = m.id.get_ref();
        if !crate::tls::is_id(id) {
            return Err(src.error(
                span(&m.id),
                key("id"),
                format!("{id:?} is not a valid mTLS policy id"),
                "letters, digits, '-', '_' or '.'",
            ));
        }
        if out.iter().any(|p| &p.id == id) {
            return Err(src.error(
                span(&m.id),
                key("id"),
                format!("mTLS policy {id:?} is defined twice"),
                "unique mTLS policy ids",
            ));
        }
        let required = match m.mode.as_ref().map(|v| v.get_ref().as_str()) {
            None | Some("required") => true,
            Some("optional") => false,
            Some(other) => {
                return Err(src.error(
                    m.mode.as_ref().and_then(span),
                    key("mode"),
                    format!("{other:?} is not a mode"),
                    MODE_EXPECTED,
                ))
            }
        };
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        required.hash(&mut fingerprint);

        let ca_path = base.join(m.ca.get_ref());
        const CA_EXPECTED: &str =
            "a PEM file of the CA certificates (-----BEGIN CERTIFICATE-----) client certificates \
             chain to";
        let ca_error = |problem: String| src.error(span(&m.ca), key("ca"), problem, CA_EXPECTED);
        let read = |e: pem::Error| match e {
            pem::Error::Io(e) => format!("cannot read {}: {e}", ca_path.display()),
            e => format!("{} is not a valid PEM file: {e}", ca_path.display()),
        };
        let cas = CertificateDer::pem_file_iter(&ca_path)
            .map_err(|e| ca_error(read(e)))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(read(e)))?;
        if cas.is_empty() {
            return Err(ca_error(format!("no certificate in {}", ca_path.display())));
        }
        let mut roots = RootCertStore::empty();
        for (n, ca) in cas.into_iter().enumerate() {
            ca.as_ref().hash(&mut fingerprint);
            roots.add(ca).map_err(|e| {
                ca_error(format!(
                    "certificate {} of {} cannot be a trust anchor: {e}",
                    n + 1,
                    ca_path.display()
                ))
            })?;
        }

        let mut crls = Vec::new();
        if let Some(crl) = &m.crl {
            let crl_path = base.join(crl.get_ref());
            let crl_error = |problem: String| {
                src.error(
                    span(crl),
                    key("crl"),
                    problem,
                    "a PEM file of certificate revocation lists (-----BEGIN X509 CRL-----)",
                )
            };
            let read = |e: pem::Error| match e {
                pem::Error::Io(e) => format!("cannot read {}: {e}", crl_path.display()),
                e => format!("{} is not a valid PEM file: {e}", crl_path.display()),
            };
            crls = CertificateRevocationListDer::pem_file_iter(&crl_path)
                .map_err(|e| crl_error(read(e)))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| crl_error(read(e)))?;
            if crls.is_empty() {
                return Err(crl_error(format!("no CRL in {}", crl_path.display())));
            }
            for c in &crls {
                c.as_ref().hash(&mut fingerprint);
            }
        }
        let crl_span = m.crl.as_ref().and_then(span);
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .with_crls(crls);
        if !required {
            builder = builder.allow_unauthenticated();
        }
        let verifier = builder.build().map_err(|e| {
            src.error(
                crl_span.clone().or_else(|| span(&m.ca)),
                key(if m.crl.is_some() { "crl" } else { "ca" }),
                format!("the client certificate verifier cannot be built: {e}"),
                "valid CA certificates and CRLs",
            )
        })?;
        let headers = Arc::new(headers(src, i, m.headers.as_ref())?);
        out.push(MtlsPolicy {
            id: id.clone(),
            required,
            headers,
            verifier,
            fingerprint: fingerprint.finish(),
        });
    }
    Ok(out)
}

/// `[mtls.headers]` of policy `i` over the defaults.
fn headers(
    src: &Source<'_>,
    i: usize,
    section: Option<&ClientCertHeadersSection>,
) -> Result<ClientCertHeaders, ConfigError> {
    let mut out = ClientCertHeaders::defaults();
    let Some(s) = section else {
        return Ok(out);
    };
    type Field<'a> = (
        &'static str,
        &'a Option<Spanned<String>>,
        &'a mut Option<Box<str>>,
    );
    let fields: [Field<'_>; 6] = [
        ("subject", &s.subject, &mut out.subject),
        ("issuer", &s.issuer, &mut out.issuer),
        ("serial", &s.serial, &mut out.serial),
        ("not_before", &s.not_before, &mut out.not_before),
        ("not_after", &s.not_after, &mut out.not_after),
        ("pem", &s.pem, &mut out.pem),
    ];
    for (field, written, slot) in fields {
        let Some(name) = written else { continue };
        let text = name.get_ref();
        if text.is_empty() {
            *slot = None;
            continue;
        }
        if !is_token(text) {
            return Err(src.error(
                span(name),
                format!("mtls[{i}].headers.{field}"),
                format!("{text:?} is not a header name"),
                "an HTTP header name such as \"X-Client-Cert-Subject\", or \"\" for none",
            ));
        }
        *slot = Some(text.to_ascii_lowercase().into());
    }
    let names: Vec<&str> = out.names().collect();
    for (n, name) in names.iter().enumerate() {
        if names[..n].contains(name) {
            return Err(src.error(
                None,
                format!("mtls[{i}].headers"),
                format!("{name:?} is used for two fields"),
                "a distinct header name per field",
            ));
        }
    }
    Ok(out)
}
