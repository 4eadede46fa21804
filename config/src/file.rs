//! The TOML file as written: serde structs with `deny_unknown_fields`.
//!
//! Nothing here is validated beyond its type; [`crate::compile`] reads the text into a
//! [`FileConfig`] and turns that into a checked [`crate::Plan`]. (Read it that way, not with
//! `toml::from_str`: tables tagged by `type` are rewritten first, see [`IntegrationSection`].)
//! Values whose position matters for error messages are [`Spanned`], so a semantic error
//! can still name the line and column it came from.
//! Every key carries its unit last (`timeout_ms`, `body_bytes_max`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub use crate::file_usage::{
    AccountThrottleSection, ApiKeySection, ApiKeysSection, OverloadSection, PlanStageSection,
    QuotaSection, StateSection, ThrottleSection, UsagePlanSection,
};

/// The whole configuration file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Process-wide settings.
    #[serde(default)]
    pub server: ServerSection,
    /// Request size limits and downstream timeouts.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Defaults for upstream keep-alive pools.
    #[serde(default)]
    pub upstream: UpstreamSection,
    /// Sockets the gateway accepts connections on.
    #[serde(default)]
    pub listeners: Vec<ListenerSection>,
    /// TLS certificates (chain and key files) that listeners serve.
    #[serde(default)]
    pub certificates: Vec<CertificateSection>,
    /// Client-certificate (mutual TLS) policies that listeners and domains name.
    #[serde(default)]
    pub mtls: Vec<MtlsSection>,
    /// The APIs served.
    #[serde(default)]
    pub apis: Vec<ApiSection>,
    /// Custom domains mapping `host/base_path` to an API stage.
    #[serde(default)]
    pub domains: Vec<DomainSection>,
    /// The admin listener (health, readiness, metrics); absent = no admin listener.
    pub admin: Option<AdminSection>,
    /// Which forwarding headers are believed, and from whom.
    #[serde(default)]
    pub client_address: ClientAddressSection,
    /// The access log; absent = no access log.
    pub access_log: Option<AccessLogSection>,
    /// The state directory (quota reservations, usage, admin-made keys).
    pub state: Option<StateSection>,
    /// Account-level (process-wide) throttle and the rate-limit headers switch.
    pub throttle: Option<AccountThrottleSection>,
    /// Where keys are read from, and keys defined in the file.
    #[serde(default)]
    pub api_keys: ApiKeysSection,
    /// Priority shedding under overload.
    pub overload: Option<OverloadSection>,
    /// The kernel pre-filter and its userspace fallback.
    pub prefilter: Option<crate::prefilter::PrefilterSection>,
    /// Usage plans: throttle, quota and API stages for a set of keys.
    #[serde(default)]
    pub usage_plans: Vec<UsagePlanSection>,
}

/// `[client_address]`: how the client's address is resolved behind proxies.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientAddressSection {
    /// CIDRs (or single addresses) of proxies whose forwarding header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// `x-forwarded-for` (default) or `forwarded`.
    pub header: Option<Spanned<String>>,
    /// IPv4 clients are one client per this prefix length (per-client throttles, escalation,
    /// blocks, new-connection buckets).
    pub client_prefix_v4: Option<Spanned<u64>>,
    /// IPv6 clients are one client per this prefix length (default 64: an IPv6 host usually
    /// holds a whole /64 and can rotate through it).
    pub client_prefix_v6: Option<Spanned<u64>>,
}

/// `[access_log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSection {
    /// A file path (appended to; reopened on SIGUSR1) or `stdout`.
    pub path: Spanned<String>,
    /// `$context` field names to write, in order (default: all).
    pub fields: Option<Spanned<Vec<String>>>,
    /// A line template with `$context.NAME` placeholders, instead of `fields`.
    pub format: Option<Spanned<String>>,
    /// Per-worker buffer handed to the writer thread when full or every 50 ms.
    pub buffer_bytes: Option<Spanned<u64>>,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// `IP:PORT`; loopback unless a token is set.
    pub bind: Spanned<String>,
    /// Bearer token; required when `bind` is not a loopback address.
    pub token: Option<Spanned<String>>,
}

/// `[server]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Worker threads; absent means one per available core.
    pub workers: Option<Spanned<u32>>,
    /// `auto`, `uring` or `epoll`; the command line overrides it.
    pub driver: Option<Spanned<String>>,
    /// How long SIGTERM waits for in-flight requests before exiting anyway.
    pub shutdown_timeout_ms: Option<u64>,
    /// Header carrying the request id, propagated when a client sends one.
    pub request_id_header: Option<Spanned<String>>,
    /// AWS region the gateway presents itself in (`us-east-1`): method ARNs, AWS-service
    /// calls.
    pub region: Option<Spanned<String>>,
    /// 12-digit AWS account id the gateway presents itself as: `requestContext.accountId`,
    /// ARNs. A string, not an integer, because account ids keep their leading zeros.
    pub account_id: Option<Spanned<String>>,
}

/// `[limits]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Request line plus headers (431 above it).
    pub header_bytes_max: Option<Spanned<u64>>,
    /// Request target (414 above it).
    pub url_bytes_max: Option<Spanned<u64>>,
    /// Number of header fields (431 above it).
    pub headers_count_max: Option<Spanned<u64>>,
    /// Request body (413 above it).
    pub body_bytes_max: Option<Spanned<u64>>,
    /// Bodies up to this size are read whole before an upstream connection is taken.
    pub body_buffer_bytes: Option<Spanned<u64>>,
    /// Time allowed to receive a complete request head (408 after it).
    pub header_read_timeout_ms: Option<Spanned<u64>>,
    /// Longest pause allowed between two reads of a request body.
    pub body_read_timeout_ms: Option<Spanned<u64>>,
    /// How long a keep-alive connection may sit idle between requests.
    pub idle_timeout_ms: Option<Spanned<u64>>,
    /// Longest pause allowed while writing a response to a slow reader.
    pub response_write_timeout_ms: Option<Spanned<u64>>,
    /// Whole request: head, body, integration and response.
    pub request_timeout_ms: Option<Spanned<u64>>,
    /// Requests served on one connection before it is closed (0 = unlimited).
    pub requests_per_connection_max: Option<u64>,
    /// Open downstream connections per worker; beyond it new ones are closed at once.
    pub connections_per_worker_max: Option<Spanned<u64>>,
    /// An upgraded connection (WebSocket behind an `http` route) with no bytes either way
    /// for this long is closed.
    pub tunnel_idle_timeout_ms: Option<Spanned<u64>>,
    /// Longest life of an upgraded connection.
    pub tunnel_duration_max_ms: Option<Spanned<u64>>,
    /// Per-client throttle buckets held at most (past it the least recently active are
    /// evicted).
    pub client_buckets_max: Option<Spanned<u64>>,
}

/// `[upstream]`: defaults for every `http` integration's connection pool.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// TCP connect timeout.
    pub connect_timeout_ms: Option<Spanned<u64>>,
    /// Idle connections kept per upstream per worker.
    pub idle_per_upstream_max: Option<u64>,
    /// Idle pooled connections are closed after this long.
    pub idle_timeout_ms: Option<Spanned<u64>>,
    /// Pooled connections are retired after this age.
    pub lifetime_ms: Option<Spanned<u64>>,
    /// How often upstream host names are resolved again.
    pub dns_ttl_ms: Option<Spanned<u64>>,
}

/// `[[listeners]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// Name used by `apis.listeners` and in logs.
    pub name: Spanned<String>,
    /// `IP:PORT`, IPv4 or `[IPv6]`; port 0 asks the OS for a free port.
    pub bind: Spanned<String>,
    /// Accept queue length.
    pub backlog: Option<u32>,
    /// `off` (default), `optional` or `required`: PROXY protocol v1/v2 header before HTTP.
    pub proxy_protocol: Option<Spanned<String>>,
    /// CIDRs allowed to send a PROXY header (required when `proxy_protocol` is on).
    #[serde(default)]
    pub proxy_protocol_from: Vec<Spanned<String>>,
    /// TLS termination; absent = plain HTTP.
    pub tls: Option<ListenerTlsSection>,
}

/// `tls = { … }` of a `[[listeners]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsSection {
    /// Ids of `[[certificates]]` served, chosen by the name the client asks for (SNI).
    pub certificates: Spanned<Vec<Spanned<String>>>,
    /// Id (one of `certificates`) served to clients without SNI or with an unknown name.
    pub default_certificate: Option<Spanned<String>>,
    /// `default` (the default when `default_certificate` is set) or `refuse`.
    pub unknown_name: Option<Spanned<String>>,
    /// `"1.2"`, `"1.3"`; default both.
    pub versions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Time allowed for the whole handshake (default 10000).
    pub handshake_timeout_ms: Option<Spanned<u64>>,
    /// Id of an `[[mtls]]` policy every handshake on this listener follows (a domain may
    /// name its own); absent = no client certificates asked for.
    pub mtls: Option<Spanned<String>>,
}

/// `[[mtls]]`: a client-certificate (mutual TLS) policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsSection {
    /// Referenced by `listeners.tls.mtls` and `domains.mtls`.
    pub id: Spanned<String>,
    /// PEM bundle of the CA certificates client certificates must chain to; relative to the
    /// configuration file's folder.
    pub ca: Spanned<String>,
    /// `required` (the default) or `optional` (a client may present none; one it presents
    /// must verify).
    pub mode: Option<Spanned<String>>,
    /// PEM file of certificate revocation lists (one or more `X509 CRL` blocks).
    pub crl: Option<Spanned<String>>,
    /// Request headers that carry the client certificate to HTTP integrations.
    pub headers: Option<ClientCertHeadersSection>,
}

/// `[mtls.headers]`: header names for each client-certificate field; `""` sends the field in
/// no header. Absent keys keep their defaults (`X-Client-Cert-Subject`, …).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertHeadersSection {
    /// Subject distinguished name (RFC 4514).
    pub subject: Option<Spanned<String>>,
    /// Issuer distinguished name (RFC 4514).
    pub issuer: Option<Spanned<String>>,
    /// Serial number, colon-separated hex.
    pub serial: Option<Spanned<String>>,
    /// Start of validity (`Aug  3 09:36:04 2026 GMT`).
    pub not_before: Option<Spanned<String>>,
    /// End of validity.
    pub not_after: Option<Spanned<String>>,
    /// The certificate in PEM, URL-encoded.
    pub pem: Option<Spanned<String>>,
}

/// `[[certificates]]`: a certificate chain and its private key, in PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    /// Referenced by `listeners.tls.certificates`.
    pub id: Spanned<String>,
    /// PEM chain, leaf first; relative to the configuration file's folder.
    pub cert: Spanned<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); relative to the configuration file's folder.
    pub key: Spanned<String>,
    /// SNI names served (`*.example.com` wildcards allowed); absent = the leaf's DNS
    /// subjectAltNames.
    pub names: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[apis]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Stable id: counters, pools and logs key on it.
    pub id: Spanned<String>,
    /// `http` (`rest` and `websocket` come later).
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    /// Hosts the API answers on; empty means any host.
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// Path prefix before the stage segment (for several APIs on one host).
    #[serde(default)]
    pub base_path: Option<Spanned<String>>,
    /// Listener names; empty means all.
    #[serde(default)]
    pub listeners: Vec<Spanned<String>>,
    /// Stages by name; `$default` has no path prefix.
    #[serde(default)]
    pub stages: BTreeMap<String, Spanned<StageSection>>,
    /// Routes of every stage.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// Every route needs an API key (a route may say otherwise).
    pub api_key_required: Option<bool>,
    /// Per client address, across the API's routes and stages.
    pub client_throttle: Option<Spanned<ThrottleSection>>,
    /// Integrations by id.
    #[serde(default)]
    pub integrations: BTreeMap<String, Spanned<IntegrationSection>>,
    /// Overrides of gateway-made responses by type name (`THROTTLED`, `DEFAULT_4XX`, …).
    #[serde(default)]
    pub gateway_responses: BTreeMap<String, Spanned<GatewayResponseSection>>,
}

/// `[apis.stages.NAME]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    /// `${stageVariables.NAME}` values.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Default throttle of each route of the stage (each route has its own bucket, as AWS's
    /// default route throttling).
    pub throttle: Option<Spanned<ThrottleSection>>,
    /// Per-route throttles by route key, overriding `throttle`.
    #[serde(default)]
    pub route_throttle: BTreeMap<String, Spanned<ThrottleSection>>,
}

/// `[[apis.routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// `METHOD /path/{param}/{rest+}`, `ANY /path` or `$default`.
    pub route: Spanned<String>,
    /// Id of an integration of this API.
    pub integration: Spanned<String>,
    /// Overrides the API's `api_key_required`.
    pub api_key_required: Option<bool>,
    /// Per client address, for this route.
    pub client_throttle: Option<Spanned<ThrottleSection>>,
}

/// `[apis.integrations.ID]`, chosen by its `type` key.
///
/// Written `type = "http"` beside the fields, but read as serde's externally tagged form
/// (`http = { … }`): the crate's `parse` module rewrites every table listed in its
/// `TAGGED_TABLES` before serde runs, because an internally tagged enum
/// (`#[serde(tag = "type")]`) buffers the table and loses every span inside it. So the
/// variants' fields keep their positions and errors in them name their own line and key.
/// Later tables tagged by `type` (authorizers, pools, functions) work the same way.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationSection {
    /// Proxy to an HTTP endpoint.
    Http(HttpIntegrationSection),
    /// Answer with a fixed response.
    Mock(MockIntegrationSection),
}

/// `type = "http"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpIntegrationSection {
    /// `http://host:port/path/{param}/{proxy}?q=${stageVariables.x}`.
    pub url: Spanned<String>,
    /// Time for the upstream to answer (504 after it).
    pub timeout_ms: Option<Spanned<u64>>,
    /// `stream` (default) or `buffered` (whole body read first, capped by body_bytes_max).
    pub body_mode: Option<Spanned<String>>,
    /// Headers set or removed on the way to the upstream.
    #[serde(default)]
    pub request_headers: HeaderMappingSection,
    /// Headers set or removed on the way back to the client.
    #[serde(default)]
    pub response_headers: HeaderMappingSection,
    /// TLS to an `https://` upstream (boxed: rare, and large).
    pub tls: Option<Spanned<Box<UpstreamTlsSection>>>,
}

/// `tls = { … }` of an `http` integration with an `https://` URL.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSection {
    /// PEM bundle of trusted CAs (default: the Mozilla roots compiled in).
    pub ca: Option<Spanned<String>>,
    /// Name sent as SNI and verified (default: the URL's host).
    pub server_name: Option<Spanned<String>>,
    /// No certificate verification at all.
    pub insecure_skip_verify: Option<Spanned<bool>>,
    /// PEM chain (leaf first) presented when the upstream asks for a client certificate;
    /// needs `key`.
    pub cert: Option<Spanned<String>>,
    /// PEM private key of `cert`.
    pub key: Option<Spanned<String>>,
}

/// Header rewrites.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeaderMappingSection {
    /// Headers added, replacing any of the same name; values may use `${stageVariables.x}`.
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Header names removed.
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// `type = "mock"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockIntegrationSection {
    /// Status code, default 200.
    pub status: Option<Spanned<u16>>,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Response body (default empty); `${stageVariables.x}` is substituted.
    pub body: Option<Spanned<String>>,
}

/// `[apis.gateway_responses.TYPE]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayResponseSection {
    /// Status to answer with instead of the type's default.
    pub status: Option<Spanned<u16>>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template; `$context.error.message` and `$context.requestId` are substituted.
    pub body: Option<String>,
}

/// `[[domains]]`: a custom domain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSection {
    /// Host name clients send.
    pub host: Spanned<String>,
    /// Id of the `[[certificates]]` entry TLS listeners present for this host (it must serve
    /// the host); absent = the listener's own choice for the name.
    pub certificate: Option<Spanned<String>>,
    /// Id of an `[[mtls]]` policy for this host, instead of the listener's.
    pub mtls: Option<Spanned<String>>,
    /// Base path → API stage.
    #[serde(default)]
    pub mappings: Vec<DomainMappingSection>,
}

/// `[[domains.mappings]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainMappingSection {
    /// First path segments (`v1`, `v1/shop`); empty maps the whole domain.
    pub base_path: Option<Spanned<String>>,
    /// API id.
    pub api: Spanned<String>,
    /// Stage name.
    pub stage: Spanned<String>,
}
