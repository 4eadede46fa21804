//! The `hold` report: per-step memory, the least-squares cost per connection, extrapolation
//! to production connection counts and the system settings such counts need.
//!
//! The slope is fitted over the measured steps only (x = connections alive, y = PSS), so
//! one-time costs paid by the first connection (lazily created buffers, thread stacks) stay in
//! the intercept rather than inflating the per-connection figure. With fewer than two distinct
//! x values the baseline point (0 connections) is added so a single step still gives a slope.
//! Extrapolation is `baseline + slope * n`, as the brief for this mode defines it.

use std::fmt::Write as _;

use serde::Serialize;

/// Connection counts the report extrapolates to.
pub const EXTRAPOLATE_TO: [u64; 2] = [250_000, 1_000_000];

/// Kernel memory per established TCP socket (slab: socket, inode, dentry, file, sock), which
/// PSS does not show.
const KERNEL_BYTES_PER_SOCKET: f64 = 4.2 * 1024.0;

/// One connection-count step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Connections asked for at this step (cumulative).
    pub requested: usize,
    /// Connections whose open and first exchange succeeded (cumulative).
    pub opened: usize,
    /// Connections that failed to open (cumulative).
    pub failed: usize,
    /// Held connections that answered the check request after settling.
    pub alive: usize,
    /// Gateway PSS after settling, before the check requests; `None` if it could not be read.
    pub pss_kb: Option<u64>,
    /// (PSS − baseline) / alive, in kB.
    pub kb_per_conn: Option<f64>,
}

/// Extrapolated gateway memory at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct Extrapolation {
    pub connections: u64,
    pub pss_kb: f64,
    /// Kernel slab estimate for the same number of sockets, not included in `pss_kb`.
    pub kernel_kb: f64,
}

/// The whole `hold` run.
#[derive(Debug, Clone, Serialize)]
pub struct HoldReport {
    pub mode: &'static str,
    pub pid: u32,
    pub baseline_pss_kb: u64,
    pub holder_processes: usize,
    pub sources: Vec<String>,
    pub steps: Vec<Step>,
    /// Least-squares bytes of PSS per alive connection; `None` without usable points.
    pub slope_bytes_per_conn: Option<f64>,
    pub extrapolated: Vec<Extrapolation>,
    pub settings: Vec<String>,
}

/// Least-squares slope of `y` over `x`; `None` unless there are two distinct `x` values.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Bytes per connection from the steps (see the module docs for the choice of points).
pub fn fit(baseline_kb: u64, steps: &[Step]) -> Option<f64> {
    let mut points: Vec<(f64, f64)> = steps
        .iter()
        .filter(|s| s.alive > 0)
        .filter_map(|s| Some((s.alive as f64, s.pss_kb? as f64 * 1024.0)))
        .collect();
    slope(&points).or_else(|| {
        points.push((0.0, baseline_kb as f64 * 1024.0));
        slope(&points)
    })
}

/// PSS in kB at `n` connections: `baseline + slope * n`.
pub fn extrapolate(baseline_kb: u64, slope_bytes: f64, n: u64) -> f64 {
    baseline_kb as f64 + slope_bytes * n as f64 / 1024.0
}

/// What a host needs to hold `n` connections on one port.
pub fn settings(n: u64) -> Vec<String> {
    vec![
        format!("RLIMIT_NOFILE (ulimit -n / LimitNOFILE=) above {n} plus listeners and upstreams"),
        "net.core.somaxconn and the listen backlog large enough for connection bursts (>= 4096)"
            .to_string(),
        format!(
            "loopback tests: net.ipv4.ip_local_port_range widened and ~{} source addresses \
             (about 28k ephemeral ports per source address and destination)",
            n.div_ceil(28_000)
        ),
        format!(
            "kernel memory: ~{:.0} MB of slab for {n} sockets (~4.2 KB each), outside PSS; \
             fs.file-max / fs.nr_open above {n}",
            KERNEL_BYTES_PER_SOCKET * n as f64 / (1024.0 * 1024.0)
        ),
    ]
}

impl HoldReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "hold: pid {}, baseline PSS {} kB, {} holder process(es), sources: {}",
            self.pid,
            self.baseline_pss_kb,
            self.holder_processes,
            if self.sources.is_empty() {
                "kernel's choice".to_string()
            } else {
                self.sources.join(",")
            }
        );
        let _ = writeln!(
            s,
            "{:>10} {:>10} {:>8} {:>10} {:>12} {:>12}",
            "requested", "opened", "failed", "alive", "PSS kB", "KB/conn"
        );
        for st in &self.steps {
            let pss = st.pss_kb.map_or("-".to_string(), |v| v.to_string());
            let per = st
                .kb_per_conn
                .map_or("-".to_string(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "{:>10} {:>10} {:>8} {:>10} {:>12} {:>12}",
                st.requested, st.opened, st.failed, st.alive, pss, per
            );
        }
        match self.slope_bytes_per_conn {
            Some(b) => {
                let _ = writeln!(s, "slope: {b:.0} bytes of PSS per connection");
                for e in &self.extrapolated {
                    let _ = writeln!(
                        s,
                        "at {:>9} connections: PSS ~{:.1} MB (+ ~{:.0} MB kernel slab)",
                        e.connections,
                        e.pss_kb / 1024.0,
                        e.kernel_kb / 1024.0
                    );
                }
            }
            None => {
                let _ = writeln!(s, "slope: not enough alive connections to fit");
            }
        }
        let _ = writeln!(s, "settings needed at {} connections:", EXTRAPOLATE_TO[1]);
        for line in &self.settings {
            let _ = writeln!(s, "  * {line}");
        }
        s.trim_end().to_string()
    }
}

/// Builds the extrapolation rows for a fitted slope.
pub fn extrapolations(baseline_kb: u64, slope_bytes: Option<f64>) -> Vec<Extrapolation> {
    let Some(slope_bytes) = slope_bytes else {
        return Vec::new();
    };
    EXTRAPOLATE_TO
        .iter()
        .map(|&n| Extrapolation {
            connections: n,
            pss_kb: extrapolate(baseline_kb, slope_bytes, n),
            kernel_kb: KERNEL_BYTES_PER_SOCKET * n as f64 / 1024.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(alive: usize, pss_kb: u64) -> Step {
        Step {
            requested: alive,
            opened: alive,
            failed: 0,
            alive,
            pss_kb: Some(pss_kb),
            kb_per_conn: None,
        }
    }

    #[test]
    fn slope_is_least_squares() {
        // Exact line y = 3x + 7.
        let exact = [(1.0, 10.0), (2.0, 13.0), (4.0, 19.0)];
        assert!((slope(&exact).expect("fit") - 3.0).abs() < 1e-9);
        // Noisy points: hand-computed least squares, mean x 2, mean y 3, sxy 4, sxx 2.
        let noisy = [(1.0, 1.0), (2.0, 4.0), (3.0, 4.0)];
        assert!((slope(&noisy).expect("fit") - 1.5).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(5.0, 2.0), (5.0, 9.0)]), None);
    }

    #[test]
    fn fit_and_extrapolate() {
        // 2 kB per connection over a 1000 kB baseline, plus 100 kB of one-time cost.
        let steps = [step(1000, 3100), step(5000, 11_100), step(10_000, 21_100)];
        let b = fit(1000, &steps).expect("fit");
        assert!((b - 2048.0).abs() < 1e-6, "{b}");
        assert!((extrapolate(1000, b, 250_000) - 501_000.0).abs() < 1e-6);
        assert!((extrapolate(1000, b, 1_000_000) - 2_001_000.0).abs() < 1e-6);
        // One step: the baseline point is used.
        let one = fit(1000, &[step(100, 1200)]).expect("fit");
        assert!((one - 2048.0).abs() < 1e-6, "{one}");
        // Nothing alive: no slope, no extrapolation.
        assert_eq!(fit(1000, &[step(0, 1000)]), None);
        assert!(extrapolations(1000, None).is_empty());
        assert_eq!(extrapolations(1000, Some(b)).len(), 2);
    }
}
