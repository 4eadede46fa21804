//! FileConfig → Plan: defaults, validation of every value, and the compiled routing tables.
//!
//! Defaults follow Amazon API Gateway's published limits (10 MB payload, 10,240-byte heads,
//! 29 s integration timeout); every one can be raised.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use crate::compile_api::compile_apis;
use crate::error::{ConfigError, Source};
use crate::file::{
    AdminSection, FileConfig, LimitsSection, ListenerSection, ServerSection, UpstreamSection,
};
use crate::plan::{
    AdminPlan, DriverChoice, Limits, ListenerPlan, Plan, RouteTable, Settings, UpstreamSettings,
};
use crate::responses::ResponseCatalogue;
use crate::tls_listener::{listener_tls, DomainOnListener};

/// AWS's payload limit.
pub const DEFAULT_BODY_BYTES_MAX: u64 = 10 * 1024 * 1024;
/// AWS's request line plus headers limit.
pub const DEFAULT_HEADER_BYTES_MAX: u64 = 10_240;
/// AWS's (regional) URL length limit.
pub const DEFAULT_URL_BYTES_MAX: u64 = 10_240;
/// AWS's integration timeout.
pub const DEFAULT_INTEGRATION_TIMEOUT_MS: u64 = 29_000;
/// Region when `[server] region` is absent: AWS's oldest region.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Account id when `[server] account_id` is absent: an all-zero placeholder (LocalStack's
/// default too), so ARNs of an unconfigured gateway are plainly not a real account's.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// Parses and compiles `text` (read from `path`, used in messages).
pub fn compile(path: &Path, text: &str) -> Result<Plan, ConfigError> {
    let src = Source::new(path, text);
    let file: FileConfig = crate::parse::file_config(&src)?;
    let settings = compile_settings(&src, &file.server)?;
    let limits = compile_limits(&src, &file.limits)?;
    let upstream = compile_upstream(&src, &file.upstream)?;
    let certificates = crate::tls::load_certificates(&src, path, &file.certificates, &file.mtls)?;
    let mut listeners = compile_listeners(&src, &file.listeners)?;
    let compiled = compile_apis(&src, &file, &mut listeners)?;
    // TLS last: a listener's names include the custom domains the APIs put on it.
    for (i, (listener, section)) in listeners.iter_mut().zip(&file.listeners).enumerate() {
        let Some(tls) = &section.tls else { continue };
        let domains: Vec<DomainOnListener<'_>> = compiled
            .domains_on
            .iter()
            .filter(|(l, _, _)| *l == i)
            .map(|(_, d, host)| DomainOnListener {
                index: *d,
                host: host.clone(),
                section: &file.domains[*d],
            })
            .collect();
        listener.tls = Some(listener_tls(
            &src,
            i,
            section.name.span(),
            tls,
            &certificates,
            &domains,
        )?);
    }
    crate::tls_listener::check_domains(
        &src,
        &file.domains,
        &certificates,
        &compiled.domains_on,
        &listeners,
        |l| file.listeners[l].tls.is_some(),
    )?;
    let client_cert_header_names = client_cert_header_names(&certificates);
    let certificate_validity = certificates
        .loaded
        .iter()
        .map(|l| l.validity.clone())
        .collect();
    let admin = file
        .admin
        .as_ref()
        .map(|a| compile_admin(&src, a))
        .transpose()?;
    let client_address = crate::compile_edge::client_address(&src, &file.client_address)?;
    let access_log = file
        .access_log
        .as_ref()
        .map(|a| crate::compile_edge::access_log(&src, a))
        .transpose()?;
    let usage = crate::compile_usage::usage_plans(&src, &file, &compiled.apis)?;
    let mut prefilter = file
        .prefilter
        .as_ref()
        .map(|p| crate::prefilter::compile(&src, p))
        .transpose()?;
    if let Some(p) = prefilter.as_mut() {
        p.balancers = client_address.trusted_proxies.clone();
        p.keying = client_address.keying;
        for l in &listeners {
            p.balancers.extend(l.proxy_protocol_from.iter().copied());
        }
        p.balancers.sort_unstable();
        p.balancers.dedup();
        p.index_lists();
    }
    Ok(Plan {
        source: path.to_path_buf(),
        settings,
        limits,
        upstream,
        listeners,
        apis: compiled.apis,
        routes: compiled.routes,
        upstreams: compiled.upstreams,
        default_responses: ResponseCatalogue::default(),
        admin,
        client_address,
        access_log,
        usage,
        prefilter,
        client_cert_header_names,
        certificate_validity,
    })
}

/// Every header name an `[[mtls]]` policy sets, once (removed from every client request).
fn client_cert_header_names(certificates: &crate::tls::Certificates) -> Vec<Box<str>> {
    let mut names: Vec<Box<str>> = Vec::new();
    for p in &certificates.policies {
        for n in p.headers.names() {
            if !names.iter().any(|x| **x == *n) {
                names.push(n.into());
            }
        }
    }
    names
}

fn compile_admin(src: &Source<'_>, a: &AdminSection) -> Result<AdminPlan, ConfigError> {
    let addr: SocketAddr = a.bind.get_ref().parse().map_err(|_| {
        src.error(
            span(&a.bind),
            "admin.bind",
            format!("{:?} is not an address", a.bind.get_ref()),
            "IP:PORT such as \"127.0.0.1:9901\"",
        )
    })?;
    let token = match &a.token {
        Some(t) if t.get_ref().len() < 16 || t.get_ref().bytes().any(|b| !b.is_ascii_graphic()) => {
            return Err(src.error(
                span(t),
                "admin.token",
                "the token is shorter than 16 characters or has spaces or control characters",
                "at least 16 visible ASCII characters",
            ))
        }
        Some(t) => Some(t.get_ref().clone()),
        None if !addr.ip().is_loopback() => {
            return Err(src.error(
                span(&a.bind),
                "admin.token",
                format!("the admin listener on {addr} is not loopback and has no token"),
                "a `token` (sent as `Authorization: Bearer ...`) or a loopback `bind`",
            ))
        }
        None => None,
    };
    Ok(AdminPlan { addr, token })
}

pub(crate) fn span<T>(v: &Spanned<T>) -> Option<Range<usize>> {
    Some(v.span())
}

/// A numeric setting with a default and an inclusive allowed range.
pub(crate) fn ranged(
    src: &Source<'_>,
    value: &Option<Spanned<u64>>,
    key: &str,
    default: u64,
    range: Range<u64>,
) -> Result<u64, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let n = *v.get_ref();
    if n < range.start || n > range.end {
        return Err(src.error(
            span(v),
            key,
            format!("{n} is out of range"),
            format!("a value from {} to {}", range.start, range.end),
        ));
    }
    Ok(n)
}

fn compile_settings(src: &Source<'_>, s: &ServerSection) -> Result<Settings, ConfigError> {
    let workers = match &s.workers {
        None => None,
        Some(w) if *w.get_ref() == 0 || *w.get_ref() > 1024 => {
            return Err(src.error(
                span(w),
                "server.workers",
                format!("{} workers", w.get_ref()),
                "1 to 1024 (leave it out for one per core)",
            ))
        }
        Some(w) => Some(*w.get_ref() as usize),
    };
    let driver = match &s.driver {
        None => DriverChoice::Auto,
        Some(d) => DriverChoice::parse(d.get_ref()).ok_or_else(|| {
            src.error(
                span(d),
                "server.driver",
                format!("unknown driver {:?}", d.get_ref()),
                "\"auto\", \"uring\" or \"epoll\"",
            )
        })?,
    };
    let request_id_header = match &s.request_id_header {
        None => "x-request-id".to_string(),
        Some(h) if !is_token(h.get_ref()) => {
            return Err(src.error(
                span(h),
                "server.request_id_header",
                format!("{:?} is not a header name", h.get_ref()),
                "a header name such as \"x-request-id\"",
            ))
        }
        Some(h) => h.get_ref().to_ascii_lowercase(),
    };
    // Both go into ARNs (colon-separated) and event JSON as written, so they are checked
    // here, where the error can name the line, rather than left to fail later at AWS.
    let region = match &s.region {
        None => DEFAULT_REGION.to_string(),
        Some(r) if !is_region(r.get_ref()) => {
            return Err(src.error(
                span(r),
                "server.region",
                format!("{:?} is not an AWS region name", r.get_ref()),
                "lowercase letters, digits and '-', at most 32 characters, e.g. \"us-east-1\"",
            ))
        }
        Some(r) => r.get_ref().clone(),
    };
    let account_id = match &s.account_id {
        None => DEFAULT_ACCOUNT_ID.to_string(),
        Some(a) if !is_account_id(a.get_ref()) => {
            return Err(src.error(
                span(a),
                "server.account_id",
                format!("{:?} is not an AWS account id", a.get_ref()),
                "a string of exactly 12 digits, e.g. \"123456789012\"",
            ))
        }
        Some(a) => a.get_ref().clone(),
    };
    Ok(Settings {
        workers,
        driver,
        shutdown_timeout_ms: s.shutdown_timeout_ms.unwrap_or(10_000),
        request_id_header,
        region,
        account_id,
    })
}

/// An AWS region name as it appears in ARNs (`us-east-1`, `eu-central-2`, `us-gov-west-1`).
/// Only the alphabet and length are checked, not a list of regions: new regions and
/// partitions keep appearing, and a fixed list would reject them until the next release.
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An AWS account id: exactly 12 ASCII digits (leading zeros included).
fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

const HOUR_MS: u64 = 3_600_000;

fn compile_limits(src: &Source<'_>, l: &LimitsSection) -> Result<Limits, ConfigError> {
    let k = |name: &str| format!("limits.{name}");
    Ok(Limits {
        header_bytes_max: ranged(
            src,
            &l.header_bytes_max,
            &k("header_bytes_max"),
            DEFAULT_HEADER_BYTES_MAX,
            256..1 << 20,
        )? as usize,
        url_bytes_max: ranged(
            src,
            &l.url_bytes_max,
            &k("url_bytes_max"),
            DEFAULT_URL_BYTES_MAX,
            16..1 << 20,
        )? as usize,
        headers_count_max: ranged(
            src,
            &l.headers_count_max,
            &k("headers_count_max"),
            100,
            1..128,
        )? as usize,
        body_bytes_max: ranged(
            src,
            &l.body_bytes_max,
            &k("body_bytes_max"),
            DEFAULT_BODY_BYTES_MAX,
            0..1 << 40,
        )?,
        body_buffer_bytes: ranged(
            src,
            &l.body_buffer_bytes,
            &k("body_buffer_bytes"),
            64 * 1024,
            0..64 << 20,
        )? as usize,
        header_read_timeout_ms: ranged(
            src,
            &l.header_read_timeout_ms,
            &k("header_read_timeout_ms"),
            10_000,
            1..HOUR_MS,
        )?,
        body_read_timeout_ms: ranged(
            src,
            &l.body_read_timeout_ms,
            &k("body_read_timeout_ms"),
            10_000,
            1..HOUR_MS,
        )?,
        idle_timeout_ms: ranged(
            src,
            &l.idle_timeout_ms,
            &k("idle_timeout_ms"),
            60_000,
            1..24 * HOUR_MS,
        )?,
        response_write_timeout_ms: ranged(
            src,
            &l.response_write_timeout_ms,
            &k("response_write_timeout_ms"),
            10_000,
            1..HOUR_MS,
        )?,
        request_timeout_ms: ranged(
            src,
            &l.request_timeout_ms,
            &k("request_timeout_ms"),
            60_000,
            1..24 * HOUR_MS,
        )?,
        requests_per_connection_max: l.requests_per_connection_max.unwrap_or(10_000),
        connections_per_worker_max: ranged(
            src,
            &l.connections_per_worker_max,
            &k("connections_per_worker_max"),
            8_192,
            1..10_000_000,
        )? as usize,
        // AWS's WebSocket limits: 10 minutes idle, 2 hours per connection.
        tunnel_idle_timeout_ms: ranged(
            src,
            &l.tunnel_idle_timeout_ms,
            &k("tunnel_idle_timeout_ms"),
            10 * 60_000,
            1..24 * HOUR_MS,
        )?,
        tunnel_duration_max_ms: ranged(
            src,
            &l.tunnel_duration_max_ms,
            &k("tunnel_duration_max_ms"),
            2 * HOUR_MS,
            1..30 * 24 * HOUR_MS,
        )?,
        client_buckets_max: ranged(
            src,
            &l.client_buckets_max,
            &k("client_buckets_max"),
            1_000_000,
            1..100_000_000,
        )? as usize,
    })
}

fn compile_upstream(
    src: &Source<'_>,
    u: &UpstreamSection,
) -> Result<UpstreamSettings, ConfigError> {
    let k = |name: &str| format!("upstream.{name}");
    Ok(UpstreamSettings {
        connect_timeout_ms: ranged(
            src,
            &u.connect_timeout_ms,
            &k("connect_timeout_ms"),
            2_000,
            1..HOUR_MS,
        )?,
        idle_per_upstream_max: u.idle_per_upstream_max.unwrap_or(64) as usize,
        idle_timeout_ms: ranged(
            src,
            &u.idle_timeout_ms,
            &k("idle_timeout_ms"),
            60_000,
            1..24 * HOUR_MS,
        )?,
        lifetime_ms: ranged(
            src,
            &u.lifetime_ms,
            &k("lifetime_ms"),
            600_000,
            1..7 * 24 * HOUR_MS,
        )?,
        dns_ttl_ms: ranged(
            src,
            &u.dns_ttl_ms,
            &k("dns_ttl_ms"),
            30_000,
            100..7 * 24 * HOUR_MS,
        )?,
    })
}

fn compile_listeners(
    src: &Source<'_>,
    listeners: &[ListenerSection],
) -> Result<Vec<ListenerPlan>, ConfigError> {
    if listeners.is_empty() {
        return Err(src.error(
            None,
            "listeners",
            "no [[listeners]] section",
            "at least one listener, e.g. [[listeners]] name = \"public\" bind = \"0.0.0.0:8080\"",
        ));
    }
    let mut out: Vec<ListenerPlan> = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.iter().enumerate() {
        let name = l.name.get_ref();
        if !is_token(name) {
            return Err(src.error(
                span(&l.name),
                format!("listeners[{i}].name"),
                format!("{name:?} is not a valid name"),
                "letters, digits, '-' or '_'",
            ));
        }
        if out.iter().any(|o| &o.name == name) {
            return Err(src.error(
                span(&l.name),
                format!("listeners[{i}].name"),
                format!("listener {name:?} is defined twice"),
                "unique listener names",
            ));
        }
        let addr: SocketAddr = l.bind.get_ref().parse().map_err(|_| {
            src.error(
                span(&l.bind),
                format!("listeners[{i}].bind"),
                format!("{:?} is not an address", l.bind.get_ref()),
                "IP:PORT such as \"0.0.0.0:8080\" or \"[::]:8080\"",
            )
        })?;
        if addr.port() != 0 && out.iter().any(|o| o.addr == addr) {
            return Err(src.error(
                span(&l.bind),
                format!("listeners[{i}].bind"),
                format!("{addr} is bound by another listener"),
                "a distinct address per listener",
            ));
        }
        let (proxy_protocol, proxy_protocol_from) = crate::compile_edge::proxy_protocol(src, i, l)?;
        out.push(ListenerPlan {
            name: name.clone(),
            addr,
            backlog: l.backlog.unwrap_or(4096),
            routes: RouteTable::default(),
            proxy_protocol,
            proxy_protocol_from,
            // Compiled once the APIs placed their domains (see `compile`).
            tls: None,
        });
    }
    Ok(out)
}

/// An HTTP token (header names, listener names).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: &str = "[[listeners]]\nname = \"main\"\nbind = \"127.0.0.1:0\"\n";

    fn settings(server: &str) -> Settings {
        compile(Path::new("t.toml"), &format!("{server}\n{LISTENER}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .settings
    }

    #[test]
    fn identity_defaults_apply_when_absent() {
        for server in ["", "[server]\nworkers = 2\n"] {
            let settings = settings(server);
            assert_eq!(settings.region, "us-east-1");
            assert_eq!(settings.account_id, "000000000000");
        }
    }

    #[test]
    fn configured_identity_reaches_the_plan() {
        let settings =
            settings("[server]\nregion = \"eu-central-2\"\naccount_id = \"012345678901\"\n");
        assert_eq!(settings.region, "eu-central-2");
        // The leading zero survives: the key is a string for that reason.
        assert_eq!(settings.account_id, "012345678901");
    }

    #[test]
    fn account_id_is_exactly_twelve_ascii_digits() {
        for good in ["000000000000", "123456789012"] {
            assert!(is_account_id(good), "{good}");
        }
        // Too short, too long, a sign, spaces, dashes as the console prints them, and
        // non-ASCII digits (Arabic-Indic) that `char::is_numeric` would accept.
        for bad in [
            "",
            "12345",
            "1234567890123",
            "+12345678901",
            " 12345678901",
            "1234-5678-9012",
            "١٢٣٤٥٦٧٨٩٠١٢",
        ] {
            assert!(!is_account_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn region_is_lowercase_letters_digits_and_hyphens() {
        for good in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "a",
            &"a".repeat(32),
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "US East",
            "us-East-1",
            "us_east_1",
            "us-east-1 ",
            "us.east.1",
            &"a".repeat(33),
        ] {
            assert!(!is_region(bad), "{bad:?}");
        }
    }
}
