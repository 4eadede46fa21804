//! The configs `compare` writes: the peer templates (`peers/nginx-proxy.conf.in`,
//! `peers/haproxy.cfg.in`) rendered with the run's directory and ports, `peers/tollgate.toml`
//! with its ports replaced, and the variants of the rate-limit scenarios, generated as text from
//! those: each variant is the base with its own port and pid file plus the limit, so the base
//! stays the one source of every other setting. The limits are those of `peers/limits-cost.sh`
//! (c and d, b for keys).
//!
//! The templates name their ports as placeholders (`@ORIGIN_PORT@`, `@NGINX_PORT@`,
//! `@HAPROXY_PORT@`, next to `@DIR@`); `tollgate.toml` stays a config tollgate can run as it is,
//! so its ports are literal and replaced as anchors. Every placeholder a proxy's listener or
//! upstream needs must be in its template, no unknown one may be left, and every anchor that is
//! replaced must occur exactly once, so an edited template fails loudly here rather than
//! producing a config that silently listens on a fixed port or lacks its limit.
//!
//! The TLS variants (`tls*` scenarios) terminate TLS 1.3 only with the certificate
//! `compare_tls.rs` writes, ALPN http/1.1 and AES-128-GCM first, each in its own terms: nginx
//! `listen … ssl` with `ssl_protocols TLSv1.3`, the suites by `ssl_conf_command Ciphersuites`,
//! `ssl_session_tickets on` and a shared session cache; HAProxy `ssl crt … alpn http/1.1
//! ssl-min-ver TLSv1.3 ciphersuites …` on its bind line; tollgate `[[certificates]]` and
//! `tls = { certificates, default_certificate, versions = ["1.3"] }` on its listener (it has no
//! cipher setting: rustls, like OpenSSL by default, follows the client's order, and the load
//! offers AES-128-GCM first). Tickets and resumption are each one's defaults otherwise.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Source addresses the rate-limit scenarios load from (`load --bind-count`).
pub const BIND_COUNT: u8 = 50;
/// API keys in the `plan` scenario's usage plan.
pub const PLAN_KEYS: usize = 100;

/// One per-client-address limit, in each proxy's terms.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// nginx, `http` context.
    pub nginx_zone: &'static str,
    /// nginx, inside `location /plain/`.
    pub nginx_location: &'static str,
    /// HAProxy denies with 429 when the source's requests in the last second exceed this.
    pub haproxy_max_rate: u64,
    /// tollgate, in the API's table.
    pub tollgate_api: &'static str,
}

/// `ratelimit`: limits per client address that never refuse. nginx logs refusals and delays
/// at `info`, below the config's `warn`, so it writes nothing, as tollgate and HAProxy.
pub const NEVER_REJECT: Limit = Limit {
    nginx_zone: "limit_req_zone $binary_remote_addr zone=z:10m rate=1000000r/s;",
    nginx_location: "limit_req zone=z burst=1000000 nodelay; limit_req_log_level info;",
    haproxy_max_rate: 100_000_000,
    tollgate_api: "client_throttle = { rate_per_s = 1000000, burst = 1000000 }",
};

/// `ratelimit-reject`: the same limits refusing almost everything, with 429.
pub const REJECT: Limit = Limit {
    nginx_zone: "limit_req_zone $binary_remote_addr zone=z:10m rate=1r/s;",
    nginx_location: "limit_req zone=z; limit_req_status 429; limit_req_log_level info;",
    haproxy_max_rate: 1,
    tollgate_api: "client_throttle = { rate_per_s = 1, burst = 1 }",
};

/// Placeholder of the run's scratch directory in the templates.
pub const DIR: &str = "DIR";
/// Placeholder of the origin's port (every proxy's upstream).
pub const ORIGIN_PORT: &str = "ORIGIN_PORT";
/// Placeholder of nginx's listen port in `nginx-proxy.conf.in`.
pub const NGINX_PORT: &str = "NGINX_PORT";
/// Placeholder of HAProxy's bind port in `haproxy.cfg.in`.
pub const HAPROXY_PORT: &str = "HAPROXY_PORT";

/// The TLS files in the scratch directory (`compare_tls::write_certificate`): the leaf (the
/// chain served), its key, the CA that issued it, and leaf plus key in one file (HAProxy).
pub const TLS_CERT: &str = "tls-cert.pem";
pub const TLS_KEY: &str = "tls-key.pem";
pub const TLS_CA: &str = "tls-ca.pem";
pub const TLS_PEM: &str = "tls-haproxy.pem";

/// The TLS 1.3 suites of the OpenSSL peers, in order: AES-128-GCM first.
pub const OPENSSL_SUITES: &str =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/// The literal listen address of `peers/tollgate.toml`, replaced by the chosen one.
pub const TOLLGATE_BIND: &str = "\"127.0.0.1:8090\"";
/// The literal origin address of `peers/tollgate.toml` (its integration's URL).
pub const TOLLGATE_ORIGIN: &str = "//127.0.0.1:9000/";

/// `template` (the file `what`) with every `@NAME@` of `vars` replaced by its value. Fails if
/// a name in `required` does not occur (the proxy would listen or connect somewhere else) or
/// if any other `@NAME@` is left.
pub fn render(
    template: &str,
    what: &str,
    vars: &[(&str, String)],
    required: &[&str],
) -> Result<String> {
    for name in required {
        if !template.contains(&format!("@{name}@")) {
            bail!(
                "{what} has no @{name}@: each port of a peer template must be a placeholder \
                 (see bench/peers/*.in), compare chooses free ports at run time"
            );
        }
    }
    let mut text = template.to_string();
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    if let Some(left) = placeholders(&text).first() {
        let known: Vec<&str> = vars.iter().map(|(n, _)| *n).collect();
        bail!(
            "{what} has an unknown placeholder @{left}@ (known: {})",
            known.join(", ")
        );
    }
    Ok(text)
}

/// The names of the `@NAME@` placeholders in `text` (NAME: capitals, digits, `_`).
fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if len > 0 && after[len..].starts_with('@') {
            found.push(&after[..len]);
            rest = &after[len + 1..];
        } else {
            rest = after;
        }
    }
    found
}

/// `text` with the single occurrence of `from` replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => bail!("expected {from:?} once in the base config, found it {n} times"),
    }
}

/// nginx: the template `nginx-proxy.conf.in` with pid and error log `nginx-NAME.*`, the zone
/// before `server {` and the limit in `location /plain/` (the port is rendered afterwards).
pub fn nginx(base: &str, name: &str, limit: &Limit) -> Result<String> {
    let t = replace_once(base, "nginx-proxy.pid", &format!("nginx-{name}.pid"))?;
    let t = replace_once(&t, "nginx-proxy.err", &format!("nginx-{name}.err"))?;
    let t = replace_once(
        &t,
        "\n  server {",
        &format!("\n  {}\n  server {{", limit.nginx_zone),
    )?;
    replace_once(
        &t,
        "location /plain/ { ",
        &format!("location /plain/ {{ {} ", limit.nginx_location),
    )
}

/// HAProxy: the template `haproxy.cfg.in` with pid file `haproxy-NAME.pid` and a stick table
/// tracking each source address, denying with 429 above the limit's rate (the port is rendered
/// afterwards).
pub fn haproxy(base: &str, name: &str, limit: &Limit) -> Result<String> {
    let t = replace_once(base, "/haproxy.pid\n", &format!("/haproxy-{name}.pid\n"))?;
    let bind = t
        .lines()
        .find(|l| l.trim_start().starts_with("bind "))
        .context("no bind line in the base haproxy.cfg")?;
    let rules = format!(
        "{bind}\n  stick-table type ip size 100k expire 30s store http_req_rate(1s)\n  \
         http-request track-sc0 src\n  \
         http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {} }}\n",
        limit.haproxy_max_rate
    );
    replace_once(&t, &format!("{bind}\n"), &rules)
}

/// nginx terminating TLS: the template `nginx-proxy.conf.in` with pid and error log
/// `nginx-tls.*`, `ssl` on its listen line and the TLS settings before `server {` (the port and
/// `@DIR@` are rendered afterwards).
pub fn nginx_tls(base: &str) -> Result<String> {
    let t = replace_once(base, "nginx-proxy.pid", "nginx-tls.pid")?;
    let t = replace_once(&t, "nginx-proxy.err", "nginx-tls.err")?;
    let t = replace_once(
        &t,
        "listen 127.0.0.1:@NGINX_PORT@ ",
        "listen 127.0.0.1:@NGINX_PORT@ ssl ",
    )?;
    let settings = format!(
        "\n  ssl_certificate @DIR@/{TLS_CERT};\n  ssl_certificate_key @DIR@/{TLS_KEY};\n  \
         ssl_protocols TLSv1.3;\n  ssl_conf_command Ciphersuites {OPENSSL_SUITES};\n  \
         ssl_session_cache shared:tls:10m;\n  ssl_session_tickets on;\n  server {{"
    );
    replace_once(&t, "\n  server {", &settings)
}

/// HAProxy terminating TLS: the template `haproxy.cfg.in` with pid file `haproxy-tls.pid` and
/// the TLS settings on its bind line (the port and `@DIR@` are rendered afterwards).
pub fn haproxy_tls(base: &str) -> Result<String> {
    let t = replace_once(base, "/haproxy.pid\n", "/haproxy-tls.pid\n")?;
    let bind = t
        .lines()
        .find(|l| l.trim_start().starts_with("bind "))
        .context("no bind line in the base haproxy.cfg")?;
    let tls = format!(
        "{bind} ssl crt @DIR@/{TLS_PEM} alpn http/1.1 ssl-min-ver TLSv1.3 \
         ciphersuites {OPENSSL_SUITES}\n"
    );
    replace_once(&t, &format!("{bind}\n"), &tls)
}

/// tollgate terminating TLS: `base` (ports already replaced) with the certificate of `dir` as
/// `[[certificates]]` id `bench` and TLS 1.3 on its listener (after its `name`).
pub fn tollgate_tls(base: &str, dir: &Path) -> Result<String> {
    let t = replace_once(
        base,
        "\nname = \"bench\"\n",
        "\nname = \"bench\"\n\
         tls = { certificates = [\"bench\"], default_certificate = \"bench\", versions = [\"1.3\"] }\n",
    )?;
    Ok(format!(
        "[[certificates]]\nid = \"bench\"\ncert = \"{}\"\nkey = \"{}\"\n\n{t}",
        dir.join(TLS_CERT).display(),
        dir.join(TLS_KEY).display()
    ))
}

/// tollgate: `tollgate.toml` listening on 127.0.0.1:`port` and proxying to the origin on
/// 127.0.0.1:`origin` (its literal [`TOLLGATE_BIND`] and [`TOLLGATE_ORIGIN`] replaced).
pub fn tollgate_ports(base: &str, port: u16, origin: u16) -> Result<String> {
    let t = replace_once(base, TOLLGATE_BIND, &format!("\"127.0.0.1:{port}\""))?;
    replace_once(&t, TOLLGATE_ORIGIN, &format!("//127.0.0.1:{origin}/"))
}

/// tollgate: `base` with `api` added to the API's table (after its `id`) and `tail`
/// (top-level tables) appended.
pub fn tollgate(base: &str, api: &str, tail: &str) -> Result<String> {
    let t = replace_once(
        base,
        "\nid = \"bench\"\n",
        &format!("\nid = \"bench\"\n{api}\n"),
    )?;
    Ok(if tail.is_empty() {
        t
    } else {
        format!("{t}\n{tail}")
    })
}

/// The `plan` scenario's API key values, one per line of the `--header-list` file.
pub fn plan_keys() -> Vec<String> {
    (0..PLAN_KEYS)
        .map(|i| format!("bench-key-{i:020}"))
        .collect()
}

/// The `plan` scenario's top-level tables: the state directory (quotas need it), the keys
/// `k0`… and one usage plan holding them all, with a throttle and a quota that never refuse.
pub fn plan_tail(state_dir: &Path) -> String {
    let mut t = format!("[state]\ndir = \"{}\"\n\n", state_dir.display());
    for (i, key) in plan_keys().iter().enumerate() {
        t += &format!("[[api_keys.keys]]\nid = \"k{i}\"\nvalue = \"{key}\"\n\n");
    }
    let ids: Vec<String> = (0..PLAN_KEYS).map(|i| format!("\"k{i}\"")).collect();
    t += &format!(
        "[[usage_plans]]\nid = \"bench\"\nkeys = [{}]\n\
         throttle = {{ rate_per_s = 1000000, burst = 1000000 }}\n\
         quota = {{ limit = 4000000000, period = \"MONTH\" }}\n\
         [[usage_plans.stages]]\napi = \"bench\"\n",
        ids.join(", ")
    );
    t
}
