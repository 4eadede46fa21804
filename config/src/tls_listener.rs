//! Compiles a listener's `tls = { … }` into its [`TlsListenerPlan`]: which server
//! configuration answers which name. A listener serves its certificates' names (each name by
//! exactly one certificate), a default for no or unknown names (or refuses), under its own
//! client-certificate policy if it names one; a custom domain placed on the listener may
//! bring its own certificate and policy for its host, which then answer that name instead.
//! Each distinct (certificate, policy) pair gets one configuration, labelled
//! ([`crate::tls::TlsPolicy`]) so requests whose `Host` would choose another are misdirected.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use toml::Spanned;

use crate::compile::{ranged, span};
use crate::error::{ConfigError, Source};
use crate::file::{DomainSection, ListenerTlsSection};
use crate::tls::{
    resumption, Certificates, Loaded, TlsListenerPlan, TlsPolicy, ALPN_HTTP_1_1,
    DEFAULT_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS_MAX,
};

/// A custom domain the API placement put on a TLS listener.
pub(crate) struct DomainOnListener<'f> {
    /// Its index in `[[domains]]`.
    pub index: usize,
    /// Its host, lowercase.
    pub host: String,
    /// As written.
    pub section: &'f DomainSection,
}

/// Compiles `tls = { … }` of listener `i` (its `name` span places errors about the whole).
pub(crate) fn listener_tls(
    src: &Source<'_>,
    i: usize,
    listener_span: Range<usize>,
    tls: &ListenerTlsSection,
    certificates: &Certificates,
    domains: &[DomainOnListener<'_>],
) -> Result<Arc<TlsListenerPlan>, ConfigError> {
    let key = |name: &str| format!("listeners[{i}].tls.{name}");
    let (versions, version_names) = versions(src, i, tls)?;
    let handshake_timeout_ms = ranged(
        src,
        &tls.handshake_timeout_ms,
        &key("handshake_timeout_ms"),
        DEFAULT_HANDSHAKE_TIMEOUT_MS,
        1..HANDSHAKE_TIMEOUT_MS_MAX,
    )?;
    let refuse = match &tls.unknown_name {
        None => None,
        Some(v) => match v.get_ref().as_str() {
            "default" => Some(false),
            "refuse" => Some(true),
            other => {
                return Err(src.error(
                    span(v),
                    key("unknown_name"),
                    format!("{other:?} is not a choice"),
                    "\"default\" (serve `default_certificate`) or \"refuse\"",
                ))
            }
        },
    };

    // The certificates, in the listener's order.
    let ids = &tls.certificates;
    if ids.get_ref().is_empty() {
        return Err(src.error(
            span(ids),
            key("certificates"),
            "no certificates",
            "ids of [[certificates]], e.g. certificates = [\"shop\"]",
        ));
    }
    let known = || {
        let ids: Vec<&str> = certificates.loaded.iter().map(|l| l.id.as_str()).collect();
        if ids.is_empty() {
            "a [[certificates]] section with that id".to_string()
        } else {
            format!("one of: {}", ids.join(", "))
        }
    };
    let mut chosen: Vec<(&Loaded, &Spanned<String>)> = Vec::with_capacity(ids.get_ref().len());
    for (j, id) in ids.get_ref().iter().enumerate() {
        let Some(found) = certificates.loaded.iter().find(|l| &l.id == id.get_ref()) else {
            return Err(src.error(
                span(id),
                key(&format!("certificates[{j}]")),
                format!("unknown certificate {:?}", id.get_ref()),
                known(),
            ));
        };
        if chosen.iter().any(|(l, _)| l.id == found.id) {
            return Err(src.error(
                span(id),
                key(&format!("certificates[{j}]")),
                format!("certificate {:?} is listed twice", id.get_ref()),
                "each certificate once",
            ));
        }
        chosen.push((found, id));
    }
    let default_index = match &tls.default_certificate {
        None => None,
        Some(d) => match chosen.iter().position(|(l, _)| &l.id == d.get_ref()) {
            Some(index) => Some(index),
            None => {
                let listed: Vec<&str> = chosen.iter().map(|(l, _)| l.id.as_str()).collect();
                return Err(src.error(
                    span(d),
                    key("default_certificate"),
                    format!(
                        "{:?} is not one of this listener's certificates",
                        d.get_ref()
                    ),
                    format!("one of: {}", listed.join(", ")),
                ));
            }
        },
    };
    let default_index = match (default_index, refuse) {
        (Some(index), None | Some(false)) => Some(index),
        (None, None | Some(true)) => None,
        (None, Some(false)) => {
            return Err(src.error(
                tls.unknown_name.as_ref().and_then(span),
                key("unknown_name"),
                "unknown_name = \"default\" but no default_certificate is set",
                "a `default_certificate`, or unknown_name = \"refuse\"",
            ))
        }
        (Some(_), Some(true)) => {
            return Err(src.error(
                tls.unknown_name.as_ref().and_then(span),
                key("unknown_name"),
                "unknown_name = \"refuse\" leaves default_certificate unused (clients without \
                 SNI are refused too)",
                "no `default_certificate` with \"refuse\", or unknown_name = \"default\"",
            ))
        }
    };

    // Each name to exactly one certificate.
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (index, (loaded, id)) in chosen.iter().enumerate() {
        for name in &loaded.names {
            if let Some(&other) = owner.get(name.as_str()) {
                return Err(src.error(
                    span(id),
                    key(&format!("certificates[{index}]")),
                    format!(
                        "certificates {:?} and {:?} both serve {name:?}",
                        chosen[other].0.id, loaded.id
                    ),
                    "each name served by one certificate of the listener (set `names` on one \
                     of them)",
                ));
            }
            owner.insert(name, index);
        }
    }

    let listener_mtls = tls
        .mtls
        .as_ref()
        .map(|id| policy_index(src, certificates, id, key("mtls")))
        .transpose()?;
    let mut build = Configs {
        src,
        certificates,
        versions: &versions,
        versions_span: tls
            .versions
            .as_ref()
            .map_or(Some(listener_span.clone()), span),
        versions_key: key("versions"),
        listener_span,
        listener_key: format!("listeners[{i}].tls"),
        policies: Vec::new(),
        made: HashMap::new(),
    };
    let mut plan = TlsListenerPlan {
        by_name: HashMap::new(),
        wildcards: Vec::new(),
        default: None,
        handshake_timeout_ms,
        certificates: Vec::with_capacity(chosen.len()),
        default_certificate: default_index.map(|index| chosen[index].0.id.clone()),
        versions: version_names,
        mtls: listener_mtls.map(|m| {
            let p = &certificates.policies[m];
            let mode = if p.required { "required" } else { "optional" };
            format!("{} ({mode})", p.id)
        }),
        domains: Vec::new(),
        policies: Vec::new(),
    };
    for (index, (loaded, _)) in chosen.iter().enumerate() {
        let config = build.config(loaded, listener_mtls)?;
        for name in &loaded.names {
            match name.strip_prefix('*') {
                Some(suffix) => plan.wildcards.push((suffix.to_string(), config.clone())),
                None => {
                    plan.by_name.insert(name.clone(), config.clone());
                }
            }
        }
        if default_index == Some(index) {
            plan.default = Some(config.clone());
        }
        plan.certificates
            .push((loaded.id.clone(), loaded.names.clone()));
    }

    // Custom domains with a certificate or policy of their own answer their host.
    for domain in domains {
        let d = domain.section;
        if d.certificate.is_none() && d.mtls.is_none() {
            continue;
        }
        let dkey = |name: &str| format!("domains[{}].{name}", domain.index);
        // The name as handshakes and `Host`s look it up: `select` ignores one trailing dot,
        // so a host written `partners.example.com.` must be filed without it, or its
        // certificate and policy would never be chosen (and its requests, on connections
        // made without them, not misdirected).
        let host = domain.host.strip_suffix('.').unwrap_or(&domain.host);
        let loaded = match &d.certificate {
            Some(id) => {
                let Some(found) = certificates.loaded.iter().find(|l| &l.id == id.get_ref()) else {
                    let ids: Vec<&str> =
                        certificates.loaded.iter().map(|l| l.id.as_str()).collect();
                    return Err(src.error(
                        span(id),
                        dkey("certificate"),
                        format!("unknown certificate {:?}", id.get_ref()),
                        format!("one of: {}", ids.join(", ")),
                    ));
                };
                if !found.serves(host) {
                    return Err(src.error(
                        span(id),
                        dkey("certificate"),
                        format!(
                            "certificate {:?} does not serve {:?} (it serves {})",
                            found.id,
                            domain.host,
                            found.names.join(", ")
                        ),
                        "a certificate whose names (or DNS subjectAltNames) include the \
                         domain's host",
                    ));
                }
                found
            }
            None => {
                let owner = plan.select(Some(host)).and_then(|c| {
                    build
                        .policies
                        .iter()
                        .find(|p| Arc::ptr_eq(&p.policy.config, c))
                        .map(|p| p.certificate)
                });
                let Some(owner) = owner else {
                    return Err(src.error(
                        span(&d.host),
                        dkey("host"),
                        format!(
                            "{:?} is served on TLS listener {} but none of its certificates \
                             serves it, and it has no default certificate",
                            domain.host, i
                        ),
                        "a `certificate` for the domain, or a listener certificate serving it",
                    ));
                };
                &certificates.loaded[owner]
            }
        };
        let mtls = match &d.mtls {
            Some(id) => Some(policy_index(src, certificates, id, dkey("mtls"))?),
            None => listener_mtls,
        };
        let config = build.config(loaded, mtls)?;
        if let Some(earlier) = plan.domains.iter().find(|(h, _)| h == host) {
            let label = build.label_of(&config);
            if earlier.1 != label {
                return Err(src.error(
                    span(&d.host),
                    dkey("host"),
                    format!(
                        "{:?} is another domain's host with another certificate or mTLS policy \
                         ({} and {label})",
                        domain.host, earlier.1
                    ),
                    "one certificate and mTLS policy per host",
                ));
            }
            continue;
        }
        plan.domains
            .push((host.to_string(), build.label_of(&config)));
        plan.by_name.insert(host.to_string(), config);
    }
    plan.policies = build.policies.into_iter().map(|p| p.policy).collect();
    Ok(Arc::new(plan))
}

/// Checks what `[[domains]]` say about TLS for every domain, wherever its APIs put it: its
/// `certificate` and `mtls` ids exist, and a domain that requires client certificates is on
/// no plain listener (its routes would be reachable there without one).
/// `domains_on`: (listener index, domain index, host) as the API placement made them.
pub(crate) fn check_domains(
    src: &Source<'_>,
    domains: &[DomainSection],
    certificates: &Certificates,
    domains_on: &[(usize, usize, String)],
    listeners: &[crate::plan::ListenerPlan],
    listener_has_tls: impl Fn(usize) -> bool,
) -> Result<(), ConfigError> {
    for (d, domain) in domains.iter().enumerate() {
        let key = |name: &str| format!("domains[{d}].{name}");
        if let Some(id) = &domain.certificate {
            if !certificates.loaded.iter().any(|l| &l.id == id.get_ref()) {
                let ids: Vec<&str> = certificates.loaded.iter().map(|l| l.id.as_str()).collect();
                return Err(src.error(
                    span(id),
                    key("certificate"),
                    format!("unknown certificate {:?}", id.get_ref()),
                    if ids.is_empty() {
                        "a [[certificates]] section with that id".to_string()
                    } else {
                        format!("one of: {}", ids.join(", "))
                    },
                ));
            }
        }
        let Some(mtls) = &domain.mtls else { continue };
        policy_index(src, certificates, mtls, key("mtls"))?;
        if let Some((l, _, _)) = domains_on
            .iter()
            .find(|(l, x, _)| *x == d && !listener_has_tls(*l))
        {
            return Err(src.error(
                span(mtls),
                key("mtls"),
                format!(
                    "the domain requires client certificates, but its API is also served on \
                     the plain listener {:?}, where its routes would be reachable without one",
                    listeners[*l].name
                ),
                "the domain's APIs only on TLS listeners (`listeners = [...]` of the [[apis]] \
                 entry)",
            ));
        }
    }
    Ok(())
}

/// The index of the `[[mtls]]` policy `id` names.
fn policy_index(
    src: &Source<'_>,
    certificates: &Certificates,
    id: &Spanned<String>,
    key: String,
) -> Result<usize, ConfigError> {
    certificates
        .policies
        .iter()
        .position(|p| &p.id == id.get_ref())
        .ok_or_else(|| {
            let ids: Vec<&str> = certificates
                .policies
                .iter()
                .map(|p| p.id.as_str())
                .collect();
            src.error(
                span(id),
                key,
                format!("unknown mTLS policy {:?}", id.get_ref()),
                if ids.is_empty() {
                    "an [[mtls]] section with that id".to_string()
                } else {
                    format!("one of: {}", ids.join(", "))
                },
            )
        })
}

/// A policy being built, with the index of its certificate.
struct Built {
    policy: TlsPolicy,
    certificate: usize,
}

/// Makes one server configuration per (certificate, mTLS policy) pair of a listener.
struct Configs<'s, 'a, 'c> {
    src: &'s Source<'a>,
    certificates: &'c Certificates,
    versions: &'c [&'static SupportedProtocolVersion],
    versions_span: Option<Range<usize>>,
    versions_key: String,
    listener_span: Range<usize>,
    listener_key: String,
    policies: Vec<Built>,
    made: HashMap<(usize, Option<usize>), Arc<ServerConfig>>,
}

impl Configs<'_, '_, '_> {
    /// The configuration presenting `loaded` and asking for client certificates by policy
    /// `mtls` (an index into the loaded policies), made once.
    fn config(
        &mut self,
        loaded: &Loaded,
        mtls: Option<usize>,
    ) -> Result<Arc<ServerConfig>, ConfigError> {
        let certificate = self
            .certificates
            .loaded
            .iter()
            .position(|l| l.id == loaded.id)
            .expect("a loaded certificate");
        if let Some(config) = self.made.get(&(certificate, mtls)) {
            return Ok(config.clone());
        }
        let policy = mtls.map(|m| &self.certificates.policies[m]);
        let resumption =
            resumption(policy.map(|p| (p.id.as_str(), p.fingerprint))).map_err(|e| {
                self.src.error(
                    Some(self.listener_span.clone()),
                    self.listener_key.clone(),
                    format!("cannot make session ticket keys: {e}"),
                    "a working system random number generator",
                )
            })?;
        let verifier = match policy {
            Some(p) => p.verifier.clone(),
            None => WebPkiClientVerifier::no_client_auth(),
        };
        let mut config = ServerConfig::builder_with_provider(self.certificates.provider.clone())
            .with_protocol_versions(self.versions)
            .map_err(|e| {
                self.src.error(
                    self.versions_span.clone(),
                    self.versions_key.clone(),
                    format!("rustls refuses these versions: {e}"),
                    "\"1.2\" and/or \"1.3\"",
                )
            })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(loaded.key.clone())));
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        config.ticketer = resumption.ticketer;
        config.session_storage = resumption.cache;
        let config = Arc::new(config);
        let label = match policy {
            Some(p) => format!("{}+{}", loaded.id, p.id),
            None => loaded.id.clone(),
        };
        self.policies.push(Built {
            policy: TlsPolicy {
                config: config.clone(),
                label: label.into(),
                client_cert_headers: policy.map(|p| p.headers.clone()),
            },
            certificate,
        });
        self.made.insert((certificate, mtls), config.clone());
        Ok(config)
    }

    /// The label of a configuration made here.
    fn label_of(&self, config: &Arc<ServerConfig>) -> Box<str> {
        self.policies
            .iter()
            .find(|p| Arc::ptr_eq(&p.policy.config, config))
            .map(|p| p.policy.label.clone())
            .expect("a configuration made here")
    }
}

/// `versions` of listener `i`: rustls' versions and their names, oldest first.
fn versions(
    src: &Source<'_>,
    i: usize,
    tls: &ListenerTlsSection,
) -> Result<(Vec<&'static SupportedProtocolVersion>, Vec<&'static str>), ConfigError> {
    let Some(list) = &tls.versions else {
        return Ok((
            vec![&rustls::version::TLS12, &rustls::version::TLS13],
            vec!["1.2", "1.3"],
        ));
    };
    if list.get_ref().is_empty() {
        return Err(src.error(
            span(list),
            format!("listeners[{i}].tls.versions"),
            "no TLS versions",
            "[\"1.2\", \"1.3\"], or [\"1.3\"] for TLS 1.3 only",
        ));
    }
    let (mut tls12, mut tls13) = (false, false);
    for (j, v) in list.get_ref().iter().enumerate() {
        match v.get_ref().as_str() {
            "1.2" => tls12 = true,
            "1.3" => tls13 = true,
            other => {
                return Err(src.error(
                    span(v),
                    format!("listeners[{i}].tls.versions[{j}]"),
                    format!("{other:?} is not a supported TLS version"),
                    "\"1.2\" or \"1.3\"",
                ))
            }
        }
    }
    let mut out = (Vec::new(), Vec::new());
    if tls12 {
        out.0.push(&rustls::version::TLS12);
        out.1.push("1.2");
    }
    if tls13 {
        out.0.push(&rustls::version::TLS13);
        out.1.push("1.3");
    }
    Ok(out)
}
