//! Turning merged [`Stats`] into the human table or the one-line JSON object.
//!
//! The JSON field names are a stable interface for scripts (docs/BENCHMARKS.md tooling):
//! `requests`, `duration_s`, `rps`, `bytes_per_s`, `errors{...}`, `status{...}`,
//! `latency_us{...}`. New fields may be added; existing ones are not renamed. With `--tls`
//! there is also `tls{handshakes, handshakes_resumed, handshakes_per_s}`. `load_cores` is the
//! CPU the generator itself used over the window (utime + stime of its process, in cores).
//!
//! `status` maps each status code seen (as a string: JSON keys are) to its response count,
//! e.g. `{"200": 9000, "429": 1000}`; the table prints the same as one `status` line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{Errors, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `closed` or `open`.
    pub mode: &'static str,
    pub connections: usize,
    pub threads: usize,
    /// Open-loop target rate, absent in closed loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
    pub requests: u64,
    pub duration_s: f64,
    pub rps: f64,
    pub bytes_per_s: f64,
    pub errors: Errors,
    /// Responses per status code, ascending by code.
    pub status: BTreeMap<u16, u64>,
    pub latency_us: Latency,
    /// CPU the load generator used over the window, in cores (absent if unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_cores: Option<f64>,
    /// TLS handshakes (`--tls` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
}

/// The TLS handshakes completed inside the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TlsSummary {
    pub handshakes: u64,
    /// Handshakes that resumed a session (`--tls-resume`; no certificate was sent).
    pub handshakes_resumed: u64,
    pub handshakes_per_s: f64,
}

impl Summary {
    pub fn new(
        stats: &Stats,
        duration: Duration,
        connections: usize,
        threads: usize,
        rate: Option<f64>,
    ) -> Self {
        let secs = duration.as_secs_f64().max(f64::MIN_POSITIVE);
        let h = &stats.latency;
        // An empty histogram reports zeros, which is what "no responses" should look like.
        let q = |quantile: f64| h.value_at_quantile(quantile);
        Self {
            mode: if rate.is_some() { "open" } else { "closed" },
            connections,
            threads,
            target_rps: rate,
            requests: stats.requests,
            duration_s: duration.as_secs_f64(),
            rps: stats.requests as f64 / secs,
            bytes_per_s: stats.bytes as f64 / secs,
            errors: stats.errors,
            status: status_map(stats),
            latency_us: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: h.max(),
            },
            load_cores: None,
            tls: None,
        }
    }

    /// Adds the handshake counts of `stats` when the run spoke TLS.
    pub fn with_tls(mut self, tls: bool, stats: &Stats) -> Self {
        self.tls = tls.then(|| TlsSummary {
            handshakes: stats.handshakes,
            handshakes_resumed: stats.handshakes_resumed,
            handshakes_per_s: stats.handshakes as f64 / self.duration_s.max(f64::MIN_POSITIVE),
        });
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let l = &self.latency_us;
        let e = &self.errors;
        let status = if self.status.is_empty() {
            "none".to_string()
        } else {
            let parts: Vec<String> = self
                .status
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            parts.join(", ")
        };
        let rate = self
            .target_rps
            .map_or(String::new(), |r| format!(", target {r:.0} req/s"));
        let cores = self
            .load_cores
            .map_or(String::new(), |c| format!(", load {c:.2} cores"));
        let tls = self.tls.map_or(String::new(), |t| {
            format!(
                "\ntls           {} handshakes ({} resumed), {:.1}/s",
                t.handshakes, t.handshakes_resumed, t.handshakes_per_s
            )
        });
        format!(
            "mode {} ({} connections, {} threads{rate}), {:.2}s measured{cores}\n\
             requests      {:>12}\n\
             requests/s    {:>12.1}\n\
             bytes/s       {:>12}\n\
             latency (µs)  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n\
             status        {status}\n\
             errors        {} (connect {}, timeout {}, io {}, tls {}, 4xx {}, 5xx {}, other {}){tls}",
            self.mode,
            self.connections,
            self.threads,
            self.duration_s,
            self.requests,
            self.rps,
            human_bytes(self.bytes_per_s),
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            e.total(),
            e.connect,
            e.timeout,
            e.io,
            e.tls,
            e.status_4xx,
            e.status_5xx,
            e.status_other,
        )
    }
}

/// Status counts in numeric order (serde_json writes the integer keys as strings).
fn status_map(stats: &Stats) -> BTreeMap<u16, u64> {
    stats.statuses.iter().copied().collect()
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_stable_fields() -> anyhow::Result<()> {
        let mut stats = Stats::new();
        stats.response(200, 100, 10);
        let s = Summary::new(&stats, Duration::from_secs(2), 4, 2, None);
        let v: serde_json::Value = serde_json::from_str(&s.to_json())?;
        assert_eq!(v["requests"], 1);
        assert_eq!(v["rps"], 0.5);
        assert_eq!(v["bytes_per_s"], 50.0);
        for k in [
            "connect",
            "timeout",
            "io",
            "tls",
            "status_4xx",
            "status_5xx",
        ] {
            assert_eq!(v["errors"][k], 0, "{k}");
        }
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_us"][k].is_u64(), "{k}");
        }
        assert_eq!(v["status"], serde_json::json!({"200": 1}));
        assert!(s.to_table().contains("requests/s"));
        assert!(v.get("tls").is_none()); // plain runs have no tls object
        assert_eq!(human_bytes(2048.0), "2.0 KiB");
        Ok(())
    }

    #[test]
    fn tls_handshakes() -> anyhow::Result<()> {
        let mut stats = Stats::new();
        stats.response(200, 100, 10);
        for resumed in [false, true, true, true] {
            stats.handshake(resumed);
        }
        let s = Summary::new(&stats, Duration::from_secs(2), 4, 1, None).with_tls(true, &stats);
        let v: serde_json::Value = serde_json::from_str(&s.to_json())?;
        assert_eq!(
            v["tls"],
            serde_json::json!({"handshakes": 4, "handshakes_resumed": 3, "handshakes_per_s": 2.0})
        );
        let table = s.to_table();
        assert!(
            table.ends_with("\ntls           4 handshakes (3 resumed), 2.0/s"),
            "{table}"
        );
        let plain =
            Summary::new(&stats, Duration::from_secs(2), 4, 1, None).with_tls(false, &stats);
        assert!(plain.tls.is_none() && !plain.to_table().contains("handshakes"));
        Ok(())
    }

    #[test]
    fn too_many_requests_is_its_own_status() -> anyhow::Result<()> {
        let mut stats = Stats::new();
        for status in [200, 429, 429, 404, 503, 200, 429] {
            stats.response(status, 10, 10);
        }
        let s = Summary::new(&stats, Duration::from_secs(1), 1, 1, None);
        let v: serde_json::Value = serde_json::from_str(&s.to_json())?;
        assert_eq!(
            v["status"],
            serde_json::json!({"200": 2, "404": 1, "429": 3, "503": 1})
        );
        assert_eq!(
            (
                v["errors"]["status_4xx"].as_u64(),
                v["errors"]["status_5xx"].as_u64()
            ),
            (Some(4), Some(1))
        );
        let table = s.to_table();
        assert!(
            table.contains("\nstatus        200 2, 404 1, 429 3, 503 1\n"),
            "{table}"
        );
        let empty = Summary::new(&Stats::new(), Duration::from_secs(1), 1, 1, None);
        assert!(empty.to_table().contains("\nstatus        none\n"));
        Ok(())
    }
}
