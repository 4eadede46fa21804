//! Metrics: every metric name in one place, the per-worker snapshot a scrape collects, and
//! its rendering in the Prometheus text format.
//!
//! Workers keep plain `Cell` counters (never locked or contended). A scrape asks each worker
//! for a [`Snapshot`] over its command channel — the worker copies its counters between
//! requests — and the admin thread merges and renders them, so scraping never stops a worker.

use std::fmt::Write as _;

use crate::counters::LATENCY_BOUNDS_US;
use tollgate_backends::wire::tls::HandshakeError;
use tollgate_config::tls::CertificateValidity;

/// Metric names (documented in docs/metrics.md).
pub mod names {
    /// Requests by api, stage, route and status class (counter).
    pub const REQUESTS: &str = "tollgate_requests_total";
    /// Time from head parsed to response written (histogram, seconds).
    pub const REQUEST_DURATION: &str = "tollgate_request_duration_seconds";
    /// Connections accepted and served, per worker (counter).
    pub const CONNECTIONS_ACCEPTED: &str = "tollgate_connections_accepted_total";
    /// Connections refused at once, per worker and reason (counter).
    pub const CONNECTIONS_REJECTED: &str = "tollgate_connections_rejected_total";
    /// Open downstream connections, per worker (gauge).
    pub const CONNECTIONS_OPEN: &str = "tollgate_connections_open";
    /// Open connections waiting for a request, per worker (gauge).
    pub const CONNECTIONS_IDLE: &str = "tollgate_connections_idle";
    /// Upgraded connections (tunnels) open, per worker (gauge).
    pub const TUNNELS_OPEN: &str = "tollgate_tunnels_open";
    /// Access log lines dropped because the writer fell behind, per worker (counter).
    pub const ACCESS_LOG_DROPPED: &str = "tollgate_access_log_dropped_lines_total";
    /// Requests whose head did not parse, per worker (counter).
    pub const MALFORMED: &str = "tollgate_malformed_requests_total";
    /// Each served certificate's end of validity, seconds since the Unix epoch (gauge).
    pub const TLS_CERTIFICATE_NOT_AFTER: &str = "tollgate_tls_certificate_not_after_seconds";
    /// Each served certificate's start of validity, seconds since the Unix epoch (gauge).
    pub const TLS_CERTIFICATE_NOT_BEFORE: &str = "tollgate_tls_certificate_not_before_seconds";
    /// TLS handshakes completed, per listener and worker (counter).
    pub const TLS_HANDSHAKES: &str = "tollgate_tls_handshakes_total";
    /// TLS handshakes that resumed a session (counter).
    pub const TLS_RESUMPTIONS: &str = "tollgate_tls_resumptions_total";
    /// TLS handshakes that failed, by reason (counter).
    pub const TLS_HANDSHAKE_FAILURES: &str = "tollgate_tls_handshake_failures_total";
    /// Upstream connections opened, per upstream (counter).
    pub const UPSTREAM_CONNECTS: &str = "tollgate_upstream_connects_total";
    /// Requests sent on a reused pooled connection, per upstream (counter).
    pub const UPSTREAM_REUSES: &str = "tollgate_upstream_reuses_total";
    /// Failed upstream connection attempts, per upstream (counter).
    pub const UPSTREAM_CONNECT_FAILURES: &str = "tollgate_upstream_connect_failures_total";
    /// Idle pooled upstream connections, per upstream (gauge).
    pub const UPSTREAM_IDLE: &str = "tollgate_upstream_idle_connections";
    /// Plan generation each worker runs (gauge).
    pub const PLAN_GENERATION: &str = "tollgate_plan_generation";
    /// Reloads by result (counter).
    pub const RELOADS: &str = "tollgate_reloads_total";
    /// 1 per worker, labelled with its io driver (gauge).
    pub const WORKER_INFO: &str = "tollgate_worker_info";
    /// Connections (or requests behind trusted proxies) refused by the userspace pre-filter,
    /// by reason (counter).
    pub const PREFILTER_REFUSED: &str = "tollgate_prefilter_refused_total";
    /// Packets seen by the XDP program by verdict and reason (counter).
    pub const PREFILTER_XDP_PACKETS: &str = "tollgate_prefilter_xdp_packets_total";
    /// Sources blocked now (gauge).
    pub const PREFILTER_BLOCKS: &str = "tollgate_prefilter_blocks";
    /// Per-client throttle buckets held (gauge).
    pub const CLIENT_BUCKETS: &str = "tollgate_client_buckets";
    /// Per-client buckets evicted to make room for new clients at `client_buckets_max`
    /// (counter).
    pub const CLIENT_BUCKETS_EVICTED: &str = "tollgate_client_buckets_evicted_total";
    /// Requests shed under overload, by priority tier (counter).
    pub const REQUESTS_SHED: &str = "tollgate_requests_shed_total";
    /// Requests of keys in a usage plan, by plan and result (counter).
    pub const PLAN_REQUESTS: &str = "tollgate_usage_plan_requests_total";
    /// The same per key, when `[api_keys] metrics_per_key` is on (counter).
    pub const KEY_REQUESTS: &str = "tollgate_api_key_requests_total";
}

/// One route's counters.
#[derive(Debug, Clone, Default)]
pub struct RouteSnapshot {
    /// API id (empty for requests that matched no API).
    pub api: String,
    /// Stage.
    pub stage: String,
    /// Route key.
    pub route: String,
    /// Responses by status class (1xx … 5xx).
    pub by_class: [u64; 5],
    /// Latency bucket counts (not cumulative), last one unbounded.
    pub buckets: Vec<u64>,
    /// Latency sum in microseconds.
    pub sum_us: u64,
}

/// One upstream pool's counters.
#[derive(Debug, Clone, Default)]
pub struct PoolSnapshot {
    /// `host:port`.
    pub upstream: String,
    /// Idle pooled connections.
    pub idle: u64,
    /// Connections opened.
    pub connects: u64,
    /// Reuses.
    pub reuses: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
}

/// One listener's TLS handshake counts on a worker.
#[derive(Debug, Clone, Default)]
pub struct TlsSnapshot {
    /// Listener name.
    pub listener: String,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of those, resumed.
    pub resumptions: u64,
    /// Failed, by reason (the order of `HandshakeError::ALL`).
    pub failed: [u64; HandshakeError::ALL.len()],
}

/// A worker's counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Worker index.
    pub worker: usize,
    /// io driver name.
    pub driver: &'static str,
    /// Plan generation it runs.
    pub generation: u64,
    /// Open connections.
    pub open: u64,
    /// Accepted connections.
    pub accepted: u64,
    /// Refused at the connection bound.
    pub rejected_at_limit: u64,
    /// Refused at the open-files limit.
    pub rejected_at_file_limit: u64,
    /// Malformed request heads.
    pub malformed: u64,
    /// TLS handshakes per listener.
    pub tls: Vec<TlsSnapshot>,
    /// Connections waiting for a request.
    pub idle: u64,
    /// Open tunnels.
    pub tunnels: u64,
    /// Refused for a missing or invalid PROXY header, or from a source not allowed to send one.
    pub rejected_proxy_protocol: u64,
    /// Access log lines dropped.
    pub log_dropped: u64,
    /// Requests shed under overload, by tier.
    pub shed: [u64; 10],
    /// Refused by the userspace pre-filter: deny, block, connection rate.
    pub prefilter_refused: [u64; 3],
    /// Routes (and one entry for unmatched requests).
    pub routes: Vec<RouteSnapshot>,
    /// Upstream pools.
    pub pools: Vec<PoolSnapshot>,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A per-worker series: name, type, extra labels, value.
type WorkerSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&Snapshot) -> u64,
);
/// A per-upstream series: name, type, value.
type PoolSeries = (&'static str, &'static str, fn(&PoolSnapshot) -> u64);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the merged snapshots of all workers (and the control thread's reload counts).
pub fn render(snapshots: &[Snapshot], reloads_ok: u64, reloads_failed: u64) -> String {
    use names::*;
    let mut out = String::new();
    // Routes: merged over workers by (api, stage, route); a route may appear once per
    // stage/address prefix, so entries with the same key are summed.
    let mut merged: Vec<RouteSnapshot> = Vec::new();
    for s in snapshots {
        for r in &s.routes {
            match merged
                .iter_mut()
                .find(|m| m.api == r.api && m.stage == r.stage && m.route == r.route)
            {
                Some(m) => {
                    for i in 0..5 {
                        m.by_class[i] += r.by_class[i];
                    }
                    for (a, b) in m.buckets.iter_mut().zip(&r.buckets) {
                        *a += b;
                    }
                    m.sum_us += r.sum_us;
                }
                None => merged.push(r.clone()),
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP {REQUESTS} Requests by API, stage, route and status class."
    );
    let _ = writeln!(out, "# TYPE {REQUESTS} counter");
    for r in &merged {
        for (i, class) in CLASSES.iter().enumerate() {
            if r.by_class[i] > 0 {
                let _ = writeln!(
                    out,
                    "{REQUESTS}{{api=\"{}\",stage=\"{}\",route=\"{}\",class=\"{class}\"}} {}",
                    escape(&r.api),
                    escape(&r.stage),
                    escape(&r.route),
                    r.by_class[i]
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP {REQUEST_DURATION} Time from request head parsed to response written."
    );
    let _ = writeln!(out, "# TYPE {REQUEST_DURATION} histogram");
    for r in merged.iter().filter(|r| r.by_class.iter().sum::<u64>() > 0) {
        let labels = format!(
            "api=\"{}\",stage=\"{}\",route=\"{}\"",
            escape(&r.api),
            escape(&r.stage),
            escape(&r.route)
        );
        let mut cumulative = 0;
        for (i, count) in r.buckets.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BOUNDS_US
                .get(i)
                .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(
                out,
                "{REQUEST_DURATION}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{REQUEST_DURATION}_sum{{{labels}}} {}",
            r.sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "{REQUEST_DURATION}_count{{{labels}}} {cumulative}");
    }
    let per_worker: [WorkerSeries; 10] = [
        (CONNECTIONS_ACCEPTED, "counter", "", |s| s.accepted),
        (CONNECTIONS_OPEN, "gauge", "", |s| s.open),
        (CONNECTIONS_IDLE, "gauge", "", |s| s.idle),
        (TUNNELS_OPEN, "gauge", "", |s| s.tunnels),
        (ACCESS_LOG_DROPPED, "counter", "", |s| s.log_dropped),
        (MALFORMED, "counter", "", |s| s.malformed),
        (PLAN_GENERATION, "gauge", "", |s| s.generation),
        (
            CONNECTIONS_REJECTED,
            "counter",
            "reason=\"connection_limit\",",
            |s| s.rejected_at_limit,
        ),
        (
            CONNECTIONS_REJECTED,
            "counter",
            "reason=\"file_limit\",",
            |s| s.rejected_at_file_limit,
        ),
        (
            CONNECTIONS_REJECTED,
            "counter",
            "reason=\"proxy_protocol\",",
            |s| s.rejected_proxy_protocol,
        ),
    ];
    let mut typed: Vec<&str> = Vec::new();
    for (name, kind, extra, value) in per_worker {
        if !typed.contains(&name) {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            typed.push(name);
        }
        for s in snapshots {
            let _ = writeln!(out, "{name}{{{extra}worker=\"{}\"}} {}", s.worker, value(s));
        }
    }
    render_tls(&mut out, snapshots);
    let _ = writeln!(out, "# TYPE {WORKER_INFO} gauge");
    for s in snapshots {
        let _ = writeln!(
            out,
            "{WORKER_INFO}{{worker=\"{}\",driver=\"{}\"}} 1",
            s.worker,
            escape(s.driver)
        );
    }
    let per_pool: [PoolSeries; 4] = [
        (UPSTREAM_CONNECTS, "counter", |p| p.connects),
        (UPSTREAM_REUSES, "counter", |p| p.reuses),
        (UPSTREAM_CONNECT_FAILURES, "counter", |p| p.connect_failures),
        (UPSTREAM_IDLE, "gauge", |p| p.idle),
    ];
    for (name, kind, value) in per_pool {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let mut upstreams: Vec<&str> = snapshots
            .iter()
            .flat_map(|s| s.pools.iter().map(|p| p.upstream.as_str()))
            .collect();
        upstreams.sort_unstable();
        upstreams.dedup();
        for u in upstreams {
            let total: u64 = snapshots
                .iter()
                .flat_map(|s| &s.pools)
                .filter(|p| p.upstream == u)
                .map(value)
                .sum();
            let _ = writeln!(out, "{name}{{upstream=\"{}\"}} {total}", escape(u));
        }
    }
    let _ = writeln!(out, "# TYPE {REQUESTS_SHED} counter");
    for tier in 0..10 {
        let total: u64 = snapshots.iter().map(|s| s.shed[tier]).sum();
        let _ = writeln!(out, "{REQUESTS_SHED}{{tier=\"{tier}\"}} {total}");
    }
    let _ = writeln!(out, "# TYPE {PREFILTER_REFUSED} counter");
    for (i, reason) in ["deny", "block", "connection_rate"].iter().enumerate() {
        let total: u64 = snapshots.iter().map(|s| s.prefilter_refused[i]).sum();
        let _ = writeln!(out, "{PREFILTER_REFUSED}{{reason=\"{reason}\"}} {total}");
    }
    let _ = writeln!(out, "# TYPE {RELOADS} counter");
    let _ = writeln!(out, "{RELOADS}{{result=\"ok\"}} {reloads_ok}");
    let _ = writeln!(out, "{RELOADS}{{result=\"failed\"}} {reloads_failed}");
    out
}

/// Appends the TLS handshake series, per listener and worker.
fn render_tls(out: &mut String, snapshots: &[Snapshot]) {
    use names::{TLS_HANDSHAKES, TLS_HANDSHAKE_FAILURES, TLS_RESUMPTIONS};
    if snapshots.iter().all(|s| s.tls.is_empty()) {
        return;
    }
    type Series = (&'static str, fn(&TlsSnapshot) -> u64);
    let series: [Series; 2] = [
        (TLS_HANDSHAKES, |t| t.handshakes),
        (TLS_RESUMPTIONS, |t| t.resumptions),
    ];
    for (name, value) in series {
        let _ = writeln!(out, "# TYPE {name} counter");
        for s in snapshots {
            for t in &s.tls {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",worker=\"{}\"}} {}",
                    escape(&t.listener),
                    s.worker,
                    value(t)
                );
            }
        }
    }
    let _ = writeln!(out, "# TYPE {TLS_HANDSHAKE_FAILURES} counter");
    for s in snapshots {
        for t in &s.tls {
            for why in HandshakeError::ALL {
                let _ = writeln!(
                    out,
                    "{TLS_HANDSHAKE_FAILURES}{{listener=\"{}\",reason=\"{}\",worker=\"{}\"}} {}",
                    escape(&t.listener),
                    why.label(),
                    s.worker,
                    t.failed[why.index()]
                );
            }
        }
    }
}

/// Appends each served certificate's validity (an expired or not yet valid one is also warned
/// about at every load).
pub fn render_certificates(out: &mut String, validity: &[CertificateValidity]) {
    use names::{TLS_CERTIFICATE_NOT_AFTER, TLS_CERTIFICATE_NOT_BEFORE};
    if validity.is_empty() {
        return;
    }
    type Series = (&'static str, fn(&CertificateValidity) -> i64);
    let series: [Series; 2] = [
        (TLS_CERTIFICATE_NOT_AFTER, |v| v.not_after),
        (TLS_CERTIFICATE_NOT_BEFORE, |v| v.not_before),
    ];
    for (name, value) in series {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for v in validity {
            let _ = writeln!(
                out,
                "{name}{{certificate=\"{}\"}} {}",
                escape(&v.id),
                value(v)
            );
        }
    }
}

/// Appends usage-plan series: requests per plan (and per key when `per_key`) by result, from
/// the keeper's totals since start (subjects `plan/PLAN/key/KEY`).
pub fn render_plans(
    out: &mut String,
    totals: &std::collections::HashMap<String, crate::state::UsageCounts>,
    plans: &[String],
    per_key: bool,
) {
    use names::{KEY_REQUESTS, PLAN_REQUESTS};
    let results = |c: &crate::state::UsageCounts| {
        [
            ("served", c.served),
            ("throttled", c.throttled),
            ("quota_rejected", c.quota_rejected),
        ]
    };
    let _ = writeln!(out, "# TYPE {PLAN_REQUESTS} counter");
    for plan in plans {
        let prefix = format!("plan/{plan}/key/");
        let mut sum = crate::state::UsageCounts::default();
        for (_, c) in totals.iter().filter(|(s, _)| s.starts_with(&prefix)) {
            sum = sum.saturating_add(*c);
        }
        for (result, n) in results(&sum) {
            let _ = writeln!(
                out,
                "{PLAN_REQUESTS}{{plan=\"{}\",result=\"{result}\"}} {n}",
                escape(plan)
            );
        }
    }
    if !per_key {
        return;
    }
    let _ = writeln!(out, "# TYPE {KEY_REQUESTS} counter");
    let mut subjects: Vec<(&String, &crate::state::UsageCounts)> = totals
        .iter()
        .filter(|(s, _)| s.starts_with("plan/"))
        .collect();
    subjects.sort_by(|a, b| a.0.cmp(b.0));
    for (subject, c) in subjects {
        let mut parts = subject.splitn(4, '/').skip(1);
        let (Some(plan), Some(_), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for (result, n) in results(c) {
            let _ = writeln!(
                out,
                "{KEY_REQUESTS}{{plan=\"{}\",key=\"{}\",result=\"{result}\"}} {n}",
                escape(plan),
                escape(key)
            );
        }
    }
}

/// Appends the per-client bucket table's size and evictions.
pub fn render_client_buckets(out: &mut String, held: usize, evicted: u64) {
    use names::{CLIENT_BUCKETS, CLIENT_BUCKETS_EVICTED};
    let _ = writeln!(
        out,
        "# TYPE {CLIENT_BUCKETS} gauge\n{CLIENT_BUCKETS} {held}"
    );
    let _ = writeln!(
        out,
        "# TYPE {CLIENT_BUCKETS_EVICTED} counter\n{CLIENT_BUCKETS_EVICTED} {evicted}"
    );
}

/// Appends the XDP program's counters.
pub fn render_xdp(out: &mut String, s: &tollgate_ebpf::PrefilterStats) {
    use names::PREFILTER_XDP_PACKETS;
    let _ = writeln!(out, "# TYPE {PREFILTER_XDP_PACKETS} counter");
    let rows = [
        ("pass", "none", s.pass),
        ("pass", "unparsed", s.pass_unparsed),
        ("pass", "other_port", s.pass_other_port),
        ("pass", "allow", s.pass_allow),
        ("drop", "deny", s.drop_deny),
        ("drop", "block", s.drop_block),
        ("drop", "syn_rate", s.drop_syn_rate),
        ("drop", "packet_rate", s.drop_pkt_rate),
    ];
    for (verdict, reason, n) in rows {
        let _ = writeln!(
            out,
            "{PREFILTER_XDP_PACKETS}{{verdict=\"{verdict}\",reason=\"{reason}\"}} {n}"
        );
    }
}
