//! TLS termination on listeners: `[[certificates]]` read from their PEM files, and per
//! listener a [`TlsListenerPlan`] that the connection adapter asks which rustls
//! [`ServerConfig`] answers a ClientHello ([`TlsListenerPlan::select`]).
//!
//! Every certificate is read, parsed and checked against its private key once per
//! (re)load; each listener then gets one `ServerConfig` per certificate it serves (a
//! listener's versions are its own), all sharing the one loaded key. Names are served by
//! exactly one certificate of a listener: an exact name first, then a `*.example.com`
//! wildcard (one more label only), then the listener's default certificate, or nothing (the
//! handshake is refused).
//!
//! The crypto provider is rustls' *aws-lc-rs* provider ([`crypto_provider`]). No key material is printed: the plan's
//! `Debug` shows certificate ids, names and settings only, and errors about a key file name
//! the file, never its contents.
//!
//! Session resumption: every `ServerConfig` of the process, of every listener and every
//! (re)load, shares one ticket key rotator and one session cache ([`resumption`]), made at
//! the first load and kept for the life of the process. Workers share a plan's configs, so a
//! session made on one worker resumes on any other, and sessions made before a reload resume
//! after it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use toml::Spanned;

use crate::compile::span;
use crate::error::{ConfigError, Source};
use crate::file::{CertificateSection, MtlsSection};
use crate::mtls::{load_policies, ClientCertHeaders, MtlsPolicy};
pub(crate) use crate::tls_resumption::resumption;

/// Handshake deadline when `handshake_timeout_ms` is absent.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Largest `handshake_timeout_ms`.
pub const HANDSHAKE_TIMEOUT_MS_MAX: u64 = 60_000;
/// The one ALPN protocol offered.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";
/// Sessions the process-wide TLS 1.2 session-id cache holds (the oldest make room).
pub const SESSION_CACHE_ENTRIES: usize = 10_000;

/// A listener's TLS termination: which server configuration answers which name.
pub struct TlsListenerPlan {
    /// Server configs by lowercase exact SNI name.
    pub by_name: HashMap<String, Arc<ServerConfig>>,
    /// Wildcards: (".example.com" suffix, config) — `*.example.com` matches exactly one more
    /// label.
    pub wildcards: Vec<(String, Arc<ServerConfig>)>,
    /// No SNI or an unknown one: this config, or None to refuse.
    pub default: Option<Arc<ServerConfig>>,
    /// Time allowed for the whole handshake.
    pub handshake_timeout_ms: u64,
    /// For logs/metrics: certificate id and the names it serves, in the listener's order.
    pub certificates: Vec<(String, Vec<String>)>,
    /// For logs: id of the certificate behind [`Self::default`] (None: refused).
    pub default_certificate: Option<String>,
    /// For logs: the TLS versions offered, as written (`"1.2"`, `"1.3"`), oldest first.
    pub versions: Vec<&'static str>,
    /// For logs: the `[[mtls]]` policy of the listener's own names.
    pub mtls: Option<String>,
    /// For logs: custom domains with their own certificate or policy, and its label.
    pub domains: Vec<(String, Box<str>)>,
    /// Every configuration above, once, with what a handshake under it stands for.
    pub policies: Vec<TlsPolicy>,
}

/// What one server configuration of a listener stands for: a certificate, and the client
/// certificate policy it asks for.
pub struct TlsPolicy {
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// `certificate id` or `certificate id+mtls id`: a request whose `Host` chooses another
    /// label than its connection's handshake did is misdirected. Labels, not
    /// configurations, are compared, so open connections keep theirs across a reload.
    pub label: Box<str>,
    /// Headers that carry a verified client certificate upstream (None: no mTLS).
    pub client_cert_headers: Option<Arc<ClientCertHeaders>>,
}

impl TlsListenerPlan {
    /// The server configuration for a ClientHello that asked for `sni`: the exact name
    /// first, then a wildcard one label above it, then the default (None: refuse the
    /// handshake). The name is compared case-insensitively; a trailing dot is ignored.
    pub fn select(&self, sni: Option<&str>) -> Option<&Arc<ServerConfig>> {
        let Some(name) = sni else {
            return self.default.as_ref();
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let lowered;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            name
        };
        if let Some(config) = self.by_name.get(name) {
            return Some(config);
        }
        if let Some(dot) = name.find('.').filter(|&d| d > 0) {
            let suffix = &name[dot..];
            if let Some((_, config)) = self.wildcards.iter().find(|(s, _)| s == suffix) {
                return Some(config);
            }
        }
        self.default.as_ref()
    }

    /// What the configuration `config` (one of this listener's) stands for.
    pub fn policy_of(&self, config: &Arc<ServerConfig>) -> Option<&TlsPolicy> {
        self.policies
            .iter()
            .find(|p| Arc::ptr_eq(&p.config, config))
    }

    /// One line for `tollgate check`: `shop = shop.example.com; api = *.api.example.com;
    /// default shop; versions 1.2, 1.3; handshake 10000 ms`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .certificates
            .iter()
            .map(|(id, names)| format!("{id} = {}", names.join(", ")))
            .collect();
        parts.push(match &self.default_certificate {
            Some(id) => format!("default {id}"),
            None => "unknown names refused".to_string(),
        });
        if let Some(mtls) = &self.mtls {
            parts.push(format!("mtls {mtls}"));
        }
        for (host, label) in &self.domains {
            parts.push(format!("domain {host} = {label}"));
        }
        parts.push(format!("versions {}", self.versions.join(", ")));
        parts.push(format!("handshake {} ms", self.handshake_timeout_ms));
        parts.join("; ")
    }
}

impl fmt::Debug for TlsListenerPlan {
    /// Ids, names and settings; never the configurations (they hold the private keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListenerPlan")
            .field("certificates", &self.certificates)
            .field("default_certificate", &self.default_certificate)
            .field("versions", &self.versions)
            .field("mtls", &self.mtls)
            .field("domains", &self.domains)
            .field("handshake_timeout_ms", &self.handshake_timeout_ms)
            .finish_non_exhaustive()
    }
}

/// The `[[certificates]]` and `[[mtls]]` of one file, loaded: what listeners build their
/// configs from.
pub(crate) struct Certificates {
    pub provider: Arc<CryptoProvider>,
    pub loaded: Vec<Loaded>,
    pub policies: Vec<MtlsPolicy>,
}

/// One certificate chain with its checked key.
pub(crate) struct Loaded {
    pub id: String,
    pub key: Arc<CertifiedKey>,
    /// Lowercase names served; wildcards as written (`*.example.com`).
    pub names: Vec<String>,
    /// The leaf's validity, seconds since the Unix epoch.
    pub validity: CertificateValidity,
}

impl Loaded {
    /// True when this certificate serves `host` (lowercase): by name or by wildcard.
    pub fn serves(&self, host: &str) -> bool {
        self.names.iter().any(|n| match n.strip_prefix('*') {
            Some(suffix) => host
                .find('.')
                .is_some_and(|dot| dot > 0 && &host[dot..] == suffix),
            None => n == host,
        })
    }
}

/// A served certificate's validity, for warnings at load and the expiry metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateValidity {
    /// The `[[certificates]]` id.
    pub id: String,
    /// Not valid before, seconds since the Unix epoch.
    pub not_before: i64,
    /// Not valid after, seconds since the Unix epoch.
    pub not_after: i64,
}

/// A name a certificate serves.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    /// `shop.example.com`.
    Exact(String),
    /// `*.example.com`, kept as its suffix `.example.com`.
    Wildcard(String),
}

const NAME_EXPECTED: &str = "a host name such as \"shop.example.com\" or a wildcard such as \
                             \"*.example.com\" (`*` only as the whole first label)";

/// Checks and lowercases one SNI name.
fn parse_name(text: &str) -> Result<Name, String> {
    if text.is_empty() {
        return Err("an empty name".to_string());
    }
    let lower = text.to_ascii_lowercase();
    if lower.len() > 253 {
        return Err(format!("{text:?} is longer than 253 characters"));
    }
    let labels: Vec<&str> = lower.split('.').collect();
    for (n, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err(format!("{text:?} has an empty label"));
        }
        if label.contains('*') {
            if n > 0 || *label != "*" {
                return Err(format!("{text:?}: `*` may only be the whole first label"));
            }
            continue;
        }
        if label.len() > 63 {
            return Err(format!("{text:?} has a label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{text:?} has characters other than letters, digits, '-' and '_'"
            ));
        }
    }
    if labels[0] == "*" {
        if labels.len() < 3 {
            return Err(format!(
                "{text:?}: a wildcard needs at least two labels after `*.`"
            ));
        }
        return Ok(Name::Wildcard(lower[1..].to_string()));
    }
    Ok(Name::Exact(lower))
}

/// A certificate or policy id: letters, digits, '-', '_' or '.'.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The crypto provider of every TLS configuration the gateway builds, both sides: rustls'
/// *aws-lc-rs* provider. Measured against *ring* on this project's machine (docs/BENCHMARKS.md
/// §19, `bench/provider-compare`): 1.28× the TLS 1.3 full handshakes per CPU-second, 1.32× the
/// resumptions, 1.46× the TLS 1.2 handshakes, and the same cost per record; it also offers
/// the post-quantum hybrid X25519MLKEM768 (rustls' defaults: X25519 preferred).
pub fn crypto_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Reads and checks every `[[certificates]]`; paths are relative to `config_path`'s folder.
pub(crate) fn load_certificates(
    src: &Source<'_>,
    config_path: &Path,
    sections: &[CertificateSection],
    mtls: &[MtlsSection],
) -> Result<Certificates, ConfigError> {
    let provider = Arc::new(crypto_provider());
    let policies = load_policies(src, config_path, mtls, &provider)?;
    let base = config_path.parent().unwrap_or(Path::new(""));
    let mut loaded: Vec<Loaded> = Vec::with_capacity(sections.len());
    for (i, c) in sections.iter().enumerate() {
        let id = c.id.get_ref();
        if !is_id(id) {
            return Err(src.error(
                span(&c.id),
                format!("certificates[{i}].id"),
                format!("{id:?} is not a valid certificate id"),
                "letters, digits, '-', '_' or '.'",
            ));
        }
        if loaded.iter().any(|l| &l.id == id) {
            return Err(src.error(
                span(&c.id),
                format!("certificates[{i}].id"),
                format!("certificate {id:?} is defined twice"),
                "unique certificate ids",
            ));
        }
        let listed = c
            .names
            .as_ref()
            .map(|names| listed_names(src, i, names))
            .transpose()?;
        let cert_path = base.join(c.cert.get_ref());
        let chain = read_chain(&cert_path).map_err(|problem| {
            src.error(
                span(&c.cert),
                format!("certificates[{i}].cert"),
                problem,
                "a PEM file of -----BEGIN CERTIFICATE----- blocks, leaf first",
            )
        })?;
        let leaf_error = |e: &dyn fmt::Display| {
            src.error(
                span(&c.cert),
                format!("certificates[{i}].cert"),
                format!(
                    "the first certificate in {} cannot be parsed: {e}",
                    cert_path.display()
                ),
                "an X.509 certificate (the leaf) first in the file",
            )
        };
        let leaf = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| leaf_error(&e))?;
        let validity = x509_parser::parse_x509_certificate(&chain[0])
            .map(|(_, x)| CertificateValidity {
                id: id.clone(),
                not_before: x.validity().not_before.timestamp(),
                not_after: x.validity().not_after.timestamp(),
            })
            .map_err(|e| leaf_error(&e))?;
        let names = match listed {
            Some(names) => names,
            None => {
                let mut names = Vec::new();
                for san in leaf.valid_dns_names() {
                    let name = parse_name(san).map_err(|problem| {
                        src.error(
                            span(&c.cert),
                            format!("certificates[{i}].cert"),
                            format!("subjectAltName of {}: {problem}", cert_path.display()),
                            "`names` listing the names this certificate serves",
                        )
                    })?;
                    push_unique(&mut names, name);
                }
                if names.is_empty() {
                    return Err(src.error(
                        span(&c.cert),
                        format!("certificates[{i}].cert"),
                        format!(
                            "the certificate in {} has no DNS subjectAltName",
                            cert_path.display()
                        ),
                        "`names` listing the names this certificate serves, e.g. names = \
                         [\"shop.example.com\"]",
                    ));
                }
                names
            }
        };
        let key_path = base.join(c.key.get_ref());
        let key_error = |problem: String, expected: &str| {
            src.error(
                span(&c.key),
                format!("certificates[{i}].key"),
                problem,
                expected,
            )
        };
        let key_der = read_key(&key_path).map_err(|p| key_error(p, KEY_EXPECTED))?;
        let signing_key = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|_| {
                key_error(
                    format!(
                        "the private key in {} is of an unsupported type or size",
                        key_path.display()
                    ),
                    "an RSA key of 2048 bits or more, an ECDSA P-256 or P-384 key, or an \
                     Ed25519 key",
                )
            })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(key_error(
                    format!(
                        "the private key in {} does not match the certificate in {}",
                        key_path.display(),
                        cert_path.display()
                    ),
                    "the private key of the chain's first (leaf) certificate",
                ))
            }
            Err(e) => return Err(leaf_error(&e)),
        }
        loaded.push(Loaded {
            id: id.clone(),
            key: Arc::new(certified),
            names,
            validity,
        });
    }
    Ok(Certificates {
        provider,
        loaded,
        policies,
    })
}

/// `names = [...]` of certificate `i`, checked and lowercased.
fn listed_names(
    src: &Source<'_>,
    i: usize,
    names: &Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<String>, ConfigError> {
    if names.get_ref().is_empty() {
        return Err(src.error(
            span(names),
            format!("certificates[{i}].names"),
            "an empty list of names",
            "the names this certificate serves, or no `names` key for the certificate's own \
             DNS subjectAltNames",
        ));
    }
    let mut out = Vec::with_capacity(names.get_ref().len());
    for (n, name) in names.get_ref().iter().enumerate() {
        let parsed = parse_name(name.get_ref()).map_err(|problem| {
            src.error(
                span(name),
                format!("certificates[{i}].names[{n}]"),
                problem,
                NAME_EXPECTED,
            )
        })?;
        push_unique(&mut out, parsed);
    }
    Ok(out)
}

/// Adds `name` as written in plans (`*.example.com` for wildcards) unless already there.
fn push_unique(names: &mut Vec<String>, name: Name) {
    let text = match name {
        Name::Exact(n) => n,
        Name::Wildcard(suffix) => format!("*{suffix}"),
    };
    if !names.contains(&text) {
        names.push(text);
    }
}

/// What a private key file must hold.
pub(crate) const KEY_EXPECTED: &str = "an unencrypted PEM private key: PKCS#8 (BEGIN PRIVATE \
                                       KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC \
                                       PRIVATE KEY)";

/// The private key of the PEM file at `path`; a problem names the file, never its contents.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    match PrivateKeyDer::from_pem_file(path) {
        Ok(key) => Ok(key),
        Err(pem::Error::Io(e)) => Err(format!("cannot read {}: {e}", path.display())),
        Err(pem::Error::NoItemsFound) => Err(format!("no private key in {}", path.display())),
        // Other PEM errors may quote a line of the file: never echo a key file.
        Err(_) => Err(format!("{} is not a valid PEM file", path.display())),
    }
}

/// Every certificate of the PEM file at `path`; a problem names the file.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let problem = |e: pem::Error| match e {
        pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        e => format!("{} is not a valid PEM file: {e}", path.display()),
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(problem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(problem)?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_wildcards_become_suffixes() {
        assert_eq!(
            parse_name("Shop.Example.COM"),
            Ok(Name::Exact("shop.example.com".to_string()))
        );
        assert_eq!(
            parse_name("*.Example.com"),
            Ok(Name::Wildcard(".example.com".to_string()))
        );
        assert_eq!(
            parse_name("localhost"),
            Ok(Name::Exact("localhost".to_string()))
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "a.*.example.com",
            "*a.example.com",
            "a*.example.com",
            "*.*.example.com",
            "*",
            "*.com",
            ".example.com",
            "example.com.",
            "a..b",
            "shop example.com",
            "shop/example.com",
        ] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_name(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(parse_name(&format!("{}.com", "a".repeat(63))).is_ok());
    }
}
