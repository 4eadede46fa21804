//! The compiled plan: what workers serve. Built once per (re)load by [`crate::compile`], shared
//! read-only between workers behind an `Arc`, never mutated.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

pub use ipnet::IpNet;

use crate::access_log::AccessLogPlan;
use crate::responses::ResponseCatalogue;
use crate::router::Router;
use crate::template::Part;
use crate::usage::{RouteLimits, Throttle, UsagePlans};

/// Which io driver the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring where the kernel allows it, else epoll.
    Auto,
    /// io_uring only (start-up fails without it).
    Uring,
    /// epoll only.
    Epoll,
}

impl DriverChoice {
    /// Parses `auto`, `uring` or `epoll`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "uring" | "io_uring" => Some(Self::Uring),
            "epoll" | "legacy" => Some(Self::Epoll),
            _ => None,
        }
    }
}

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker threads; None = one per available core.
    pub workers: Option<usize>,
    /// Driver requested by the file (the command line may override it).
    pub driver: DriverChoice,
    /// Deadline for in-flight requests after SIGTERM.
    pub shutdown_timeout_ms: u64,
    /// Request id header name, lowercase.
    pub request_id_header: String,
    /// AWS region name (`us-east-1`): the region of method ARNs given to authorizers and
    /// of AWS-service calls.
    pub region: String,
    /// 12 ASCII digits: function events' `requestContext.accountId` and the account of
    /// ARNs.
    pub account_id: String,
}

/// Downstream limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers (431).
    pub header_bytes_max: usize,
    /// Request target (414).
    pub url_bytes_max: usize,
    /// Header fields (431).
    pub headers_count_max: usize,
    /// Request body (413).
    pub body_bytes_max: u64,
    /// Bodies up to this size are read whole before an upstream connection is taken.
    pub body_buffer_bytes: usize,
    /// Complete head within this time, else 408.
    pub header_read_timeout_ms: u64,
    /// Longest pause between body reads.
    pub body_read_timeout_ms: u64,
    /// Idle keep-alive time between requests.
    pub idle_timeout_ms: u64,
    /// Longest pause while writing to a slow reader.
    pub response_write_timeout_ms: u64,
    /// Whole request deadline.
    pub request_timeout_ms: u64,
    /// Requests per connection (0 = unlimited).
    pub requests_per_connection_max: u64,
    /// Open connections per worker.
    pub connections_per_worker_max: usize,
    /// Upgraded connections with no traffic either way are closed after this.
    pub tunnel_idle_timeout_ms: u64,
    /// Longest life of an upgraded connection.
    pub tunnel_duration_max_ms: u64,
    /// Per-client throttle buckets held at most.
    pub client_buckets_max: usize,
}

/// Defaults for upstream connection pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// TCP connect timeout.
    pub connect_timeout_ms: u64,
    /// Idle connections kept per upstream per worker.
    pub idle_per_upstream_max: usize,
    /// Idle connections older than this (since last use) are closed.
    pub idle_timeout_ms: u64,
    /// Connections older than this are not reused.
    pub lifetime_ms: u64,
    /// Re-resolution interval of upstream names.
    pub dns_ttl_ms: u64,
}

/// A socket to accept on, with its routing table.
#[derive(Debug)]
pub struct ListenerPlan {
    /// Name from the file.
    pub name: String,
    /// Address to bind (port 0 = any free port).
    pub addr: SocketAddr,
    /// Accept queue length.
    pub backlog: u32,
    /// Routes reachable through this listener.
    pub routes: RouteTable,
    /// PROXY protocol expectations (fixed for a connection's life once accepted).
    pub proxy_protocol: ProxyProtocol,
    /// Sources allowed to send a PROXY header.
    pub proxy_protocol_from: Vec<IpNet>,
    /// TLS termination (None: plain HTTP).
    pub tls: Option<Arc<crate::tls::TlsListenerPlan>>,
}

/// Whether a listener expects a PROXY protocol header before HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// Plain HTTP.
    Off,
    /// Sources in `proxy_protocol_from` may send a header; other bytes are plain HTTP.
    Optional,
    /// Every connection must come from `proxy_protocol_from` and start with a valid header.
    Required,
}

/// Which forwarding header names the client behind trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingHeader {
    /// `X-Forwarded-For`.
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

/// How the client address is resolved per request.
#[derive(Debug, Clone)]
pub struct ClientAddressPlan {
    /// Proxies whose forwarding header is believed (empty: the header is never believed).
    pub trusted_proxies: Vec<IpNet>,
    /// The header they set.
    pub header: ForwardingHeader,
    /// How addresses are grouped into clients.
    pub keying: ClientKeying,
}

/// How client addresses are grouped into one client for per-client limits, escalation and
/// blocks: by prefix, so a host that rotates through the addresses of its IPv6 /64 (or a
/// configured IPv4 prefix) is still one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeying {
    /// IPv4 prefix length (1–32).
    pub v4: u8,
    /// IPv6 prefix length (1–128).
    pub v6: u8,
}

impl Default for ClientKeying {
    fn default() -> Self {
        Self { v4: 32, v6: 64 }
    }
}

impl ClientKeying {
    /// The client `ip` belongs to: the address with the bits past the prefix cleared (an
    /// IPv4-mapped IPv6 address counts as IPv4).
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.v4)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.v6)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// Host → router, with a fallback for APIs that answer on any host.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Lowercase host (no port) → router over [`Plan::routes`] indices.
    pub by_host: HashMap<String, Router<usize>>,
    /// APIs without hosts.
    pub any_host: Router<usize>,
}

impl RouteTable {
    /// Matches a request: the host's own router first, then the any-host router.
    /// `host` must be lowercase without a port. Returns the route index.
    pub fn lookup(
        &self,
        host: Option<&str>,
        method: &str,
        path: &str,
        captures: &mut Vec<std::ops::Range<usize>>,
    ) -> Option<usize> {
        if let Some(router) = host.and_then(|h| self.by_host.get(h)) {
            if let Some(found) = router.lookup(method, path, captures) {
                return Some(*found);
            }
        }
        self.any_host.lookup(method, path, captures).copied()
    }
}

/// The kind of an API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// An HTTP API.
    Http,
}

/// One API.
#[derive(Debug)]
pub struct ApiPlan {
    /// Stable id from the file; also the `apiId` of events and ARNs
    /// (`requestContext.apiId`, `$context.apiId`), as API Gateway's generated API id is.
    pub id: String,
    /// Kind.
    pub kind: ApiKind,
    /// Stage names.
    pub stages: Vec<String>,
    /// Gateway response overrides.
    pub responses: ResponseCatalogue,
    /// Per client address across the API's routes.
    pub client_throttle: Option<Throttle>,
}

/// One route of one API stage, as reached through one address prefix.
#[derive(Debug)]
pub struct RoutePlan {
    /// Index into [`Plan::apis`].
    pub api: usize,
    /// Stage name (`$default` included).
    pub stage: String,
    /// `GET /pets/{id}` or `$default`.
    pub route_key: String,
    /// Bytes of the request path that address the API stage (`/v1` or `/prod`), stripped
    /// before the path is forwarded.
    pub prefix_len: usize,
    /// Parameter names in template order (captures use the same order).
    pub params: Vec<String>,
    /// The stage's variables (`${stageVariables.x}` is substituted at compile time; function
    /// events carry them as `stageVariables`).
    pub stage_variables: Arc<BTreeMap<String, String>>,
    /// What answers the route.
    pub integration: IntegrationPlan,
    /// Key requirement and throttles.
    pub limits: RouteLimits,
}

/// What answers a route.
#[derive(Debug)]
pub enum IntegrationPlan {
    /// Proxy to an HTTP endpoint.
    Http(HttpTarget),
    /// Fixed response.
    Mock(MockResponse),
    /// No route of the API stage matched: answer `RESOURCE_NOT_FOUND` with the API's own
    /// gateway responses (the catch-all behind an API stage without a `$default` route).
    NotFound,
}

/// A compiled `http` integration for one stage.
#[derive(Debug)]
pub struct HttpTarget {
    /// Integration id from the file.
    pub id: String,
    /// Index into [`Plan::upstreams`].
    pub upstream: usize,
    /// Path template; None forwards the request path (stage prefix stripped).
    pub path: Option<Vec<Part>>,
    /// Query from the URL template, forwarded before the client's query.
    pub query: Option<Vec<Part>>,
    /// Upstream response deadline.
    pub timeout_ms: u64,
    /// Read the whole body before contacting the upstream.
    pub buffered: bool,
    /// Headers set on the upstream request (name lowercase).
    pub request_set: Vec<(String, String)>,
    /// Header names removed from the upstream request (lowercase).
    pub request_remove: Vec<String>,
    /// Headers set on the response (name lowercase).
    pub response_set: Vec<(String, String)>,
    /// Header names removed from the response (lowercase).
    pub response_remove: Vec<String>,
}

/// A compiled `mock` integration.
#[derive(Debug)]
pub struct MockResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body, stage variables substituted.
    pub body: String,
}

/// An upstream authority (`host:port`). Its key is stable across reloads, so pools carry over.
#[derive(Debug, Clone)]
pub struct UpstreamPlan {
    /// `host:port` as written (after stage variables): the pool key.
    pub authority: String,
    /// Host part (name or IP literal), also the `Host` header sent.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Addresses to connect to, filled by the control thread's resolver (never by a worker).
    pub addrs: Vec<SocketAddr>,
    /// TLS settings of an `https://` upstream.
    pub tls: Option<crate::tls_client::UpstreamTls>,
}

impl UpstreamPlan {
    /// What a connection pool is keyed by: the authority, and the TLS settings if any (a
    /// plain and an https upstream on one authority must not share connections).
    pub fn pool_key(&self) -> String {
        match &self.tls {
            None => self.authority.clone(),
            // The settings as a short hash: the key is also the pool's metrics label.
            Some(tls) => {
                let hash = tls.key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                format!("https://{}#{:08x}", self.authority, hash as u32)
            }
        }
    }
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPlan {
    /// Address to bind (port 0 = any free port).
    pub addr: SocketAddr,
    /// Bearer token every request must carry (always set for a non-loopback address).
    pub token: Option<String>,
}

/// Everything a worker serves, compiled from one file.
#[derive(Debug)]
pub struct Plan {
    /// The file it came from.
    pub source: PathBuf,
    /// Process settings.
    pub settings: Settings,
    /// Downstream limits.
    pub limits: Limits,
    /// Upstream pool settings.
    pub upstream: UpstreamSettings,
    /// Listeners.
    pub listeners: Vec<ListenerPlan>,
    /// APIs.
    pub apis: Vec<ApiPlan>,
    /// Route instances (api × stage × address prefix).
    pub routes: Vec<RoutePlan>,
    /// Upstream authorities.
    pub upstreams: Vec<UpstreamPlan>,
    /// Responses for requests that match no API.
    pub default_responses: ResponseCatalogue,
    /// The admin listener, if configured (bound at start-up; a reload does not move it).
    pub admin: Option<AdminPlan>,
    /// Client address resolution behind trusted proxies.
    pub client_address: ClientAddressPlan,
    /// The access log, if configured.
    pub access_log: Option<AccessLogPlan>,
    /// API keys, usage plans, throttles and the state directory.
    pub usage: UsagePlans,
    /// The pre-filter, when configured.
    pub prefilter: Option<crate::prefilter::PrefilterPlan>,
    /// Every header name a client-certificate policy sets: removed from every client request
    /// before it goes upstream, so a client cannot forge them (`[[mtls]]`).
    pub client_cert_header_names: Vec<Box<str>>,
    /// Validity of every `[[certificates]]` entry (warnings at load, the expiry metric).
    pub certificate_validity: Vec<crate::tls::CertificateValidity>,
}

impl Plan {
    /// Human-readable summary printed by `tollgate check`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "config {}: valid", self.source.display());
        for l in &self.listeners {
            let _ = writeln!(out, "listener {} on {}", l.name, l.addr);
            if let Some(tls) = &l.tls {
                let _ = writeln!(out, "  tls: {}", tls.summary());
            }
        }
        for (index, api) in self.apis.iter().enumerate() {
            let _ = writeln!(
                out,
                "api {} ({:?}), stages: {}",
                api.id,
                api.kind,
                api.stages.join(", ")
            );
            for route in self.routes.iter().filter(|r| r.api == index) {
                let target = match &route.integration {
                    IntegrationPlan::Http(h) => {
                        let u = &self.upstreams[h.upstream];
                        let scheme = if u.tls.is_some() { "https" } else { "http" };
                        format!("{scheme} {} -> {}", h.id, u.authority)
                    }
                    IntegrationPlan::Mock(m) => format!("mock {}", m.status),
                    IntegrationPlan::NotFound => continue,
                };
                let _ = writeln!(out, "  [{}] {} => {}", route.stage, route.route_key, target);
            }
        }
        for l in &self.listeners {
            for (host, router) in &l.routes.by_host {
                for (method, template, &r) in router.routes() {
                    if matches!(self.routes[r].integration, IntegrationPlan::NotFound) {
                        continue;
                    }
                    let _ = writeln!(
                        out,
                        "  route {}: host {host} {} {template}",
                        l.name,
                        method.unwrap_or("ANY")
                    );
                }
            }
            for (method, template, &r) in l.routes.any_host.routes() {
                if matches!(self.routes[r].integration, IntegrationPlan::NotFound) {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "  route {}: any host {} {template}",
                    l.name,
                    method.unwrap_or("ANY")
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod keying_tests {
    use super::*;

    #[test]
    fn clients_are_keyed_by_prefix() {
        let keying = |v4, v6| ClientKeying { v4, v6 };
        let d = ClientKeying::default();
        let cases: [(ClientKeying, &str, &str); 12] = [
            (d, "192.0.2.77", "192.0.2.77"),
            (d, "::ffff:192.0.2.77", "192.0.2.77"),
            (d, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
            (d, "2001:db8:1:2::1", "2001:db8:1:2::"),
            (d, "2001:db8:1:3::1", "2001:db8:1:3::"),
            (d, "::1", "::"),
            (keying(24, 64), "192.0.2.77", "192.0.2.0"),
            (keying(1, 64), "192.0.2.77", "128.0.0.0"),
            (keying(32, 128), "2001:db8::1", "2001:db8::1"),
            (keying(32, 48), "2001:db8:1:2::1", "2001:db8:1::"),
            (keying(32, 1), "2001:db8::1", "::"),
            (keying(32, 56), "2001:db8:1:2ff::1", "2001:db8:1:200::"),
        ];
        for (k, ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("address");
            let want: IpAddr = want.parse().expect("address");
            assert_eq!(k.key(ip), want, "{ip} under /{} /{}", k.v4, k.v6);
        }
    }
}
