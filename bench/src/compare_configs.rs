//! Config variants of `compare`'s rate-limit scenarios, generated as text from the base configs
//! (the rendered `nginx-proxy.conf` and `haproxy.cfg`, and `peers/tollgate.toml`): each variant
//! is the base with its own port and pid file plus the limit, so the base stays the one source
//! of every other setting. The limits are those of `peers/limits-cost.sh` (c and d, b for keys).
//!
//! Every anchor that is replaced must occur exactly once in the base, so an edited template
//! fails loudly here rather than producing a config that silently lacks its limit.

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

/// `text` with the single occurrence of `from` replaced by `to`.
fn replace_once(text: &str, from: &str, to: &str) -> Result<String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => bail!("expected {from:?} once in the base config, found it {n} times"),
    }
}

/// nginx: the base `nginx-proxy.conf` listening on `port`, with pid and error log
/// `nginx-NAME.*`, the zone before `server {` and the limit in `location /plain/`.
pub fn nginx(base: &str, name: &str, port: u16, limit: &Limit) -> Result<String> {
    let t = replace_once(base, "nginx-proxy.pid", &format!("nginx-{name}.pid"))?;
    let t = replace_once(&t, "nginx-proxy.err", &format!("nginx-{name}.err"))?;
    let t = replace_once(
        &t,
        "listen 127.0.0.1:8080 ",
        &format!("listen 127.0.0.1:{port} "),
    )?;
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

/// HAProxy: the base `haproxy.cfg` listening on `port`, with pid file `haproxy-NAME.pid` and a
/// stick table tracking each source address, denying with 429 above the limit's rate.
pub fn haproxy(base: &str, name: &str, port: u16, limit: &Limit) -> Result<String> {
    let t = replace_once(base, "/haproxy.pid\n", &format!("/haproxy-{name}.pid\n"))?;
    let t = replace_once(
        &t,
        "bind 127.0.0.1:8081 ",
        &format!("bind 127.0.0.1:{port} "),
    )?;
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

/// tollgate: the base `tollgate.toml` listening on `port`, `api` added to the API's table
/// (after its `id`) and `tail` (top-level tables) appended.
pub fn tollgate(base: &str, port: u16, api: &str, tail: &str) -> Result<String> {
    let t = replace_once(base, "\"127.0.0.1:8090\"", &format!("\"127.0.0.1:{port}\""))?;
    let t = replace_once(
        &t,
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
