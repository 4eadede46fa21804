//! `compare` results: one [`Run`] per (scenario, contender, round), aggregated per scenario and
//! contender into medians and min–max, with tollgate's ratios to nginx and HAProxy, printed as a
//! table or written as JSON.
//!
//! The `plan` scenario has no nginx or HAProxy runs (shown as "—"); instead each of its rounds
//! also runs the base tollgate under the same load, as contender [`PLAIN_BASELINE`], and the
//! report gives tollgate's ratios to that. Refusals (429) are counted apart from errors and
//! reported per CPU-second of the proxy, the main figure of `ratelimit-reject`. TLS handshakes
//! likewise: handshakes per CPU-second, the main figure of `tls-newconn` and `tls-resume`
//! (one handshake per request there), with the share of them that resumed a session.
//!
//! Medians, not means: one disturbed round on a shared machine should not move the result.
//! The JSON field names are meant for scripts and are kept stable.

use serde::Serialize;

/// The contenders, in the order every round runs them.
pub const CONTENDERS: [&str; 3] = ["nginx", "haproxy", "tollgate"];

/// The base tollgate in the `plan` scenario, run under the plan's load for its ratio.
pub const PLAIN_BASELINE: &str = "tollgate-plain";

/// One measured load run against one proxy.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scenario: String,
    pub contender: String,
    pub round: usize,
    pub rps: f64,
    /// Proxy CPU cores used during the measured window (utime + stime / wall time).
    pub cores: f64,
    /// CPU cores the load generator itself used over the window (0 if it did not say).
    pub load_cores: f64,
    /// Requests per CPU-second of the proxy process: `rps / cores`.
    pub req_per_cpu_s: f64,
    /// Responses with status 429 (not counted under `errors`).
    pub status_429: u64,
    /// 429 responses per CPU-second of the proxy process.
    pub r429_per_cpu_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub errors: u64,
    /// TLS handshakes completed in the measured window, and those that resumed a session.
    pub handshakes: u64,
    pub handshakes_resumed: u64,
    /// TLS handshakes per CPU-second of the proxy process.
    pub hs_per_cpu_s: f64,
    /// Open-loop target rate (`latency` scenario only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
}

/// Median, minimum and maximum of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values; the median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One contender in one scenario, over all its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub contender: String,
    pub rounds: usize,
    pub req_per_cpu_s: Spread,
    pub r429_per_cpu_s: Spread,
    pub rps: Spread,
    pub p50_us: Spread,
    pub p99_us: Spread,
    pub p999_us: Spread,
    /// Errors summed over all rounds (429s not included).
    pub errors: u64,
    /// 429 responses summed over all rounds.
    pub status_429: u64,
    pub hs_per_cpu_s: Spread,
    /// TLS handshakes summed over all rounds, and those that resumed.
    pub handshakes: u64,
    pub handshakes_resumed: u64,
}

/// tollgate's median divided by the peer's median (`None` when either is missing or zero).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ratios {
    pub req_per_cpu_s: Option<f64>,
    pub r429_per_cpu_s: Option<f64>,
    pub hs_per_cpu_s: Option<f64>,
    pub rps: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
    pub contenders: Vec<Aggregate>,
    pub tollgate_vs_nginx: Ratios,
    pub tollgate_vs_haproxy: Ratios,
    /// `plan` only: tollgate with the plan over the base tollgate, same load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tollgate_vs_plain: Option<Ratios>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rounds: usize,
    pub seconds: f64,
    pub scenarios: Vec<ScenarioReport>,
    pub runs: Vec<Run>,
}

/// Aggregates the runs of `contender` in `scenario`; `None` if there are none.
pub fn aggregate(runs: &[Run], scenario: &str, contender: &str) -> Option<Aggregate> {
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| r.scenario == scenario && r.contender == contender)
        .collect();
    let spread =
        |f: &dyn Fn(&Run) -> f64| Spread::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
    Some(Aggregate {
        contender: contender.to_string(),
        rounds: mine.len(),
        req_per_cpu_s: spread(&|r| r.req_per_cpu_s)?,
        r429_per_cpu_s: spread(&|r| r.r429_per_cpu_s)?,
        rps: spread(&|r| r.rps)?,
        p50_us: spread(&|r| r.p50_us as f64)?,
        p99_us: spread(&|r| r.p99_us as f64)?,
        p999_us: spread(&|r| r.p999_us as f64)?,
        errors: mine.iter().map(|r| r.errors).sum(),
        status_429: mine.iter().map(|r| r.status_429).sum(),
        hs_per_cpu_s: spread(&|r| r.hs_per_cpu_s)?,
        handshakes: mine.iter().map(|r| r.handshakes).sum(),
        handshakes_resumed: mine.iter().map(|r| r.handshakes_resumed).sum(),
    })
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The ratios of `ours` to `peer` (medians).
pub fn ratios(ours: Option<&Aggregate>, peer: Option<&Aggregate>) -> Ratios {
    let (Some(a), Some(b)) = (ours, peer) else {
        return Ratios::default();
    };
    Ratios {
        req_per_cpu_s: ratio(a.req_per_cpu_s.median, b.req_per_cpu_s.median),
        r429_per_cpu_s: ratio(a.r429_per_cpu_s.median, b.r429_per_cpu_s.median),
        hs_per_cpu_s: ratio(a.hs_per_cpu_s.median, b.hs_per_cpu_s.median),
        rps: ratio(a.rps.median, b.rps.median),
        p99: ratio(a.p99_us.median, b.p99_us.median),
    }
}

/// Builds the per-scenario reports, in the order of `scenarios`.
pub fn build(runs: Vec<Run>, scenarios: &[String], rounds: usize, seconds: f64) -> Report {
    let reports = scenarios
        .iter()
        .map(|s| {
            let contenders: Vec<Aggregate> = CONTENDERS
                .iter()
                .chain(&[PLAIN_BASELINE])
                .filter_map(|c| aggregate(&runs, s, c))
                .collect();
            let find = |c: &str| contenders.iter().find(|a| a.contender == c);
            ScenarioReport {
                scenario: s.clone(),
                target_rps: runs
                    .iter()
                    .find(|r| &r.scenario == s)
                    .and_then(|r| r.target_rps),
                tollgate_vs_nginx: ratios(find("tollgate"), find("nginx")),
                tollgate_vs_haproxy: ratios(find("tollgate"), find("haproxy")),
                tollgate_vs_plain: find(PLAIN_BASELINE)
                    .map(|plain| ratios(find("tollgate"), Some(plain))),
                contenders,
            }
        })
        .collect();
    Report {
        rounds,
        seconds,
        scenarios: reports,
        runs,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
}

/// `resumed` of `handshakes` as a percentage, "-" for none.
fn fmt_share(resumed: u64, handshakes: u64) -> String {
    if handshakes == 0 {
        return "-".to_string();
    }
    format!("{:.1} %", resumed as f64 * 100.0 / handshakes as f64)
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let mut out = format!(
            "{} round(s) of {} s per scenario and contender; medians (min–max) over rounds\n",
            self.rounds, self.seconds
        );
        for s in &self.scenarios {
            let target = s
                .target_rps
                .map_or(String::new(), |t| format!(" (open loop, {t:.0} req/s)"));
            out += &format!("\n## {}{target}\n", s.scenario);
            // 429/CPU-s only where something was refused (ratelimit-reject).
            let refusals = s.contenders.iter().any(|a| a.status_429 > 0);
            let r429_head = if refusals {
                format!(" {:>24}", "429/CPU-s (min–max)")
            } else {
                String::new()
            };
            // Handshakes per CPU-second where the window saw handshakes (tls-newconn, tls-resume).
            let handshakes = s.contenders.iter().any(|a| a.handshakes > 0);
            let hs_head = if handshakes {
                format!(" {:>24} {:>8}", "hs/CPU-s (min–max)", "resumed")
            } else {
                String::new()
            };
            out += &format!(
                "{:<14} {:>24}{r429_head}{hs_head} {:>10} {:>8} {:>8} {:>8} {:>7}\n",
                "proxy", "req/CPU-s (min–max)", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "errors"
            );
            let spread = |x: &Spread| format!("{:.0} ({:.0}–{:.0})", x.median, x.min, x.max);
            for c in CONTENDERS.iter().chain(&[PLAIN_BASELINE]) {
                let Some(a) = s.contenders.iter().find(|a| a.contender == *c) else {
                    if CONTENDERS.contains(c) {
                        out += &format!("{c:<14} {:>24}\n", "—");
                    }
                    continue;
                };
                let r429 = if refusals {
                    format!(" {:>24}", spread(&a.r429_per_cpu_s))
                } else {
                    String::new()
                };
                let hs = if handshakes {
                    format!(
                        " {:>24} {:>8}",
                        spread(&a.hs_per_cpu_s),
                        fmt_share(a.handshakes_resumed, a.handshakes)
                    )
                } else {
                    String::new()
                };
                out += &format!(
                    "{:<14} {:>24}{r429}{hs} {:>10.0} {:>8.0} {:>8.0} {:>8.0} {:>7}\n",
                    a.contender,
                    spread(&a.req_per_cpu_s),
                    a.rps.median,
                    a.p50_us.median,
                    a.p99_us.median,
                    a.p999_us.median,
                    a.errors
                );
            }
            let line = |r: &Ratios| {
                let r429 = if refusals {
                    format!("429/CPU-s {}, ", fmt_ratio(r.r429_per_cpu_s))
                } else {
                    String::new()
                };
                let hs = if handshakes {
                    format!("hs/CPU-s {}, ", fmt_ratio(r.hs_per_cpu_s))
                } else {
                    String::new()
                };
                format!(
                    "{r429}{hs}req/CPU-s {}, req/s {}, p99 {}",
                    fmt_ratio(r.req_per_cpu_s),
                    fmt_ratio(r.rps),
                    fmt_ratio(r.p99)
                )
            };
            for (peer, r) in [
                ("nginx", &s.tollgate_vs_nginx),
                ("HAProxy", &s.tollgate_vs_haproxy),
            ] {
                let has_peer = s
                    .contenders
                    .iter()
                    .any(|a| a.contender.eq_ignore_ascii_case(peer));
                if has_peer {
                    out += &format!("tollgate/{peer}: {}\n", line(r));
                } else {
                    out += &format!("tollgate/{peer}: — (not run)\n");
                }
            }
            if let Some(r) = &s.tollgate_vs_plain {
                out += &format!("tollgate/{PLAIN_BASELINE}: {}\n", line(r));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(contender: &str, round: usize, rpc: f64, p99: u64) -> Run {
        Run {
            scenario: "plain".into(),
            contender: contender.into(),
            round,
            rps: rpc / 2.0,
            cores: 0.5,
            load_cores: 0.9,
            req_per_cpu_s: rpc,
            status_429: 0,
            r429_per_cpu_s: 0.0,
            p50_us: p99 / 2,
            p99_us: p99,
            p999_us: p99 * 2,
            errors: round as u64,
            handshakes: 0,
            handshakes_resumed: 0,
            hs_per_cpu_s: 0.0,
            target_rps: None,
        }
    }

    #[test]
    fn spreads() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[f64::NAN, 5.0]).unwrap().median, 5.0);
    }

    #[test]
    fn aggregates_and_ratios() {
        let runs = vec![
            run("nginx", 1, 100.0, 1000),
            run("tollgate", 1, 150.0, 500),
            run("nginx", 2, 300.0, 3000),
            run("tollgate", 2, 250.0, 700),
            run("nginx", 3, 200.0, 2000),
            run("tollgate", 3, 1000.0, 600),
        ];
        let ng = aggregate(&runs, "plain", "nginx").unwrap();
        assert_eq!(ng.rounds, 3);
        assert_eq!(
            ng.req_per_cpu_s,
            Spread {
                median: 200.0,
                min: 100.0,
                max: 300.0
            }
        );
        assert_eq!(ng.errors, 6);
        assert!(aggregate(&runs, "plain", "haproxy").is_none());
        assert!(aggregate(&runs, "post16k", "nginx").is_none());
        let report = build(runs, &["plain".into()], 3, 1.0);
        let s = &report.scenarios[0];
        assert_eq!(s.contenders.len(), 2);
        assert_eq!(s.tollgate_vs_nginx.req_per_cpu_s, Some(1.25));
        assert_eq!(s.tollgate_vs_nginx.rps, Some(1.25));
        assert_eq!(s.tollgate_vs_nginx.p99, Some(0.3));
        assert_eq!(s.tollgate_vs_haproxy.req_per_cpu_s, None);
        let table = report.to_table();
        assert!(table.contains("tollgate/nginx: req/CPU-s 1.25"), "{table}");
        assert!(table.contains("tollgate/HAProxy: — (not run)"), "{table}");
        assert!(
            table.contains("\nhaproxy                               —\n"),
            "{table}"
        );
        assert!(
            !table.contains("429/CPU-s") && !table.contains(PLAIN_BASELINE),
            "{table}"
        );
        assert!(!table.contains("hs/CPU-s"), "{table}");
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            v["scenarios"][0]["contenders"][0]["req_per_cpu_s"]["median"],
            200.0
        );
        assert_eq!(v["runs"].as_array().unwrap().len(), 6);
        assert!(ratio(1.0, 0.0).is_none());
    }

    #[test]
    fn handshakes_per_cpu_second() {
        let mut runs = Vec::new();
        for (c, round, hs, resumed) in [
            ("nginx", 1, 1000.0, 950),
            ("tollgate", 1, 1500.0, 1000),
            ("nginx", 2, 3000.0, 1000),
            ("tollgate", 2, 2500.0, 1000),
        ] {
            let mut r = run(c, round, hs, 100);
            r.scenario = "tls-resume".into();
            r.hs_per_cpu_s = hs;
            r.handshakes = 1000;
            r.handshakes_resumed = resumed;
            runs.push(r);
        }
        let report = build(runs, &["tls-resume".into()], 2, 1.0);
        let s = &report.scenarios[0];
        assert_eq!(s.tollgate_vs_nginx.hs_per_cpu_s, Some(1.0));
        let ng = &s.contenders[0];
        assert_eq!((ng.handshakes, ng.handshakes_resumed), (2000, 1950));
        let table = report.to_table();
        for want in [
            "hs/CPU-s (min–max)  resumed",
            "\nnginx                  2000 (1000–3000)         2000 (1000–3000)   97.5 %       1000",
            "\ntollgate               2000 (1500–2500)         2000 (1500–2500)  100.0 %       1000",
            "tollgate/nginx: hs/CPU-s 1.00, req/CPU-s 1.00",
        ] {
            assert!(table.contains(want), "{want:?} in\n{table}");
        }
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            v["scenarios"][0]["contenders"][1]["handshakes_resumed"],
            2000
        );
        assert_eq!(v["scenarios"][0]["tollgate_vs_nginx"]["hs_per_cpu_s"], 1.0);
        assert_eq!(v["runs"][0]["hs_per_cpu_s"], 1000.0);
    }

    #[test]
    fn refusals_and_plain_baseline() {
        let mut runs = Vec::new();
        for (c, rpc, r429) in [
            ("nginx", 100.0, 80.0),
            ("tollgate", 300.0, 240.0),
            (PLAIN_BASELINE, 400.0, 0.0),
        ] {
            let mut r = run(c, 1, rpc, 100);
            r.scenario = "x".into();
            r.status_429 = (r429 / 10.0) as u64;
            r.r429_per_cpu_s = r429;
            runs.push(r);
        }
        let report = build(runs, &["x".into()], 1, 1.0);
        let s = &report.scenarios[0];
        assert_eq!(s.tollgate_vs_nginx.r429_per_cpu_s, Some(3.0));
        assert_eq!(s.tollgate_vs_plain.unwrap().req_per_cpu_s, Some(0.75));
        assert_eq!(s.contenders.iter().map(|a| a.status_429).sum::<u64>(), 32);
        let table = report.to_table();
        for want in [
            "429/CPU-s (min–max)",
            "\nnginx                     100 (100–100)               80 (80–80)         50",
            "tollgate/nginx: 429/CPU-s 3.00, req/CPU-s 3.00",
            "tollgate/tollgate-plain: 429/CPU-s -, req/CPU-s 0.75",
        ] {
            assert!(table.contains(want), "{want:?} in\n{table}");
        }
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(
            v["scenarios"][0]["tollgate_vs_plain"]["req_per_cpu_s"],
            0.75
        );
        assert_eq!(v["runs"][0]["status_429"], 8);
    }
}
