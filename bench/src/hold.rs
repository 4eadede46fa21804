//! `hold`: hold many idle keep-alive connections to a gateway and measure its memory.
//!
//! This process only coordinates: every connection lives in a `hold-child` holder process (the
//! same binary), at most `--per-process` per holder, because one process may only have so
//! many open files. This process and every holder raise their soft RLIMIT_NOFILE to the hard
//! limit; a `--per-process` the hard limit cannot hold fails the run before anything starts.
//! Holders are driven over their stdin/stdout (`open N`, `ping`, `exit`, see
//! `hold_child.rs`), all at once: a command goes to every holder before any reply is read.
//!
//! Per count, ascending: grow to that many connections (keeping the open ones), wait
//! `--settle` (pinging every `--interval` meanwhile), read the gateway's PSS from
//! `/proc/PID/smaps_rollup`, then send one request on every held connection to count the
//! live ones. Failed connections and dead holders are counted, never fatal.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::IpAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{HoldArgs, Target};
use crate::hold_child::FD_RESERVE;
use crate::hold_report::{self, HoldReport, Step, EXTRAPOLATE_TO};
use crate::nofile;

/// Reads the `Pss:` line of `/proc/PID/smaps_rollup`, in kB.
pub fn read_pss_kb(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_pss_kb(&text).with_context(|| format!("no Pss: line in {path}"))
}

fn parse_pss_kb(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Fails unless a holder can keep its share of the connections open: at most `per_process`,
/// or `largest` (the largest count) if that is fewer, plus [`FD_RESERVE`], within `soft`, the
/// open-files limit (RLIMIT_NOFILE) after raising it to the hard limit `hard`.
fn check_nofile(per_process: usize, largest: usize, soft: u64, hard: u64) -> Result<()> {
    let held = per_process.max(1).min(largest);
    let needed = held + FD_RESERVE;
    if needed as u64 <= soft {
        return Ok(());
    }
    let limit = if soft < hard {
        format!("{soft} (the soft limit; raising it to the hard limit {hard} failed)")
    } else {
        format!("{hard} (the hard limit)")
    };
    let fits = soft.saturating_sub(FD_RESERVE as u64);
    let smaller = if fits > 0 {
        format!("use --per-process {fits} or less (hold starts more holder processes instead), or ")
    } else {
        String::new()
    };
    bail!(
        "--per-process {per_process} needs {needed} open files per holder process ({held} \
         connections + {FD_RESERVE} for connects in flight and the process itself), but \
         RLIMIT_NOFILE is {limit}: {smaller}raise the hard limit as root (ulimit -Hn, systemd \
         LimitNOFILE=, /etc/security/limits.d/; at most fs.nr_open)"
    )
}

/// One holder process and the pipes to drive it.
struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Connections this holder has been asked to open.
    assigned: usize,
    /// False once the holder stopped answering; its connections count as dead.
    healthy: bool,
}

impl Holder {
    fn send(&mut self, line: &str) {
        let ok = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush());
        self.healthy &= ok.is_ok();
    }

    /// Reads a reply `WORD A B`; `None` (and unhealthy) on EOF or garbage.
    fn reply(&mut self, word: &str) -> Option<(usize, usize)> {
        if !self.healthy {
            return None;
        }
        let mut line = String::new();
        let parsed = match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => {
                let w: Vec<&str> = line.split_whitespace().collect();
                match w.as_slice() {
                    [x, a, b] if *x == word => a.parse().ok().zip(b.parse().ok()),
                    _ => None,
                }
            }
            _ => None,
        };
        self.healthy &= parsed.is_some();
        parsed
    }
}

/// All holders plus the totals across them.
struct Fleet<'a> {
    args: &'a HoldArgs,
    sources: &'a [IpAddr],
    holders: Vec<Holder>,
    requested: usize,
    opened: usize,
    failed: usize,
}

impl<'a> Fleet<'a> {
    fn spawn(&mut self) -> Result<()> {
        let exe = std::env::current_exe().context("locating own binary")?;
        let mut cmd = Command::new(exe);
        cmd.args(["hold-child", "--url", &self.args.url])
            .arg("--timeout")
            .arg(format!("{}ms", self.args.timeout.as_millis()))
            .arg("--first-index")
            .arg(self.requested.to_string());
        if !self.sources.is_empty() {
            let list: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
            cmd.arg("--sources").arg(list.join(","));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning hold-child")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("hold-child without pipes");
        };
        self.holders.push(Holder {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            assigned: 0,
            healthy: true,
        });
        Ok(())
    }

    /// Opens connections until `count` have been requested in total.
    fn grow_to(&mut self, count: usize) -> Result<()> {
        let per = self.args.per_process.max(1);
        let mut need = count.saturating_sub(self.requested);
        let mut plan: Vec<(usize, usize)> = Vec::new();
        while need > 0 {
            let room = self.holders.last().map_or(0, |h| per - h.assigned);
            if room == 0 {
                self.spawn()?;
                continue;
            }
            let idx = self.holders.len() - 1;
            let n = room.min(need);
            self.holders[idx].assigned += n;
            self.requested += n;
            need -= n;
            plan.push((idx, n));
            // Command each holder as soon as its share is known so they connect in parallel.
            self.holders[idx].send(&format!("open {n}"));
        }
        for (idx, n) in plan {
            match self.holders[idx].reply("opened") {
                Some((ok, bad)) => {
                    self.opened += ok;
                    self.failed += bad;
                }
                None => self.failed += n,
            }
        }
        Ok(())
    }

    /// Sends one request on every held connection; returns how many answered.
    fn ping(&mut self) -> usize {
        let active = |h: &Holder| h.healthy && h.assigned > 0;
        for h in self.holders.iter_mut().filter(|h| active(h)) {
            h.send("ping");
        }
        self.holders
            .iter_mut()
            .filter(|h| active(h))
            .filter_map(|h| h.reply("alive"))
            .map(|(alive, _)| alive)
            .sum()
    }

    fn shutdown(&mut self) {
        for h in &mut self.holders {
            h.send("exit");
        }
        for h in &mut self.holders {
            // A holder that stopped answering may not read `exit` either.
            if !h.healthy {
                let _ = h.child.kill();
            }
            let _ = h.child.wait();
        }
    }
}

/// Runs the `hold` mode and prints its report.
pub fn run(args: &HoldArgs) -> Result<()> {
    Target::parse(&args.url)?;
    let sources = args.source_list();
    let mut counts: Vec<usize> = args.counts.iter().copied().filter(|&c| c > 0).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() {
        bail!("--counts needs at least one positive count");
    }
    // Holders inherit the raised limit, and raise their own as well.
    let (soft, hard) = nofile::raise_nofile_limit().context("reading RLIMIT_NOFILE")?;
    check_nofile(args.per_process, counts[counts.len() - 1], soft, hard)?;
    let baseline = read_pss_kb(args.pid)?;
    let mut fleet = Fleet {
        args,
        sources: &sources,
        holders: Vec::new(),
        requested: 0,
        opened: 0,
        failed: 0,
    };
    let result = measure(&mut fleet, &counts, baseline);
    fleet.shutdown();
    let steps = result?;
    let slope = hold_report::fit(baseline, &steps);
    let report = HoldReport {
        mode: "hold",
        pid: args.pid,
        baseline_pss_kb: baseline,
        holder_processes: fleet.holders.len(),
        sources: sources.iter().map(ToString::to_string).collect(),
        steps,
        slope_bytes_per_conn: slope,
        extrapolated: hold_report::extrapolations(baseline, slope),
        settings: hold_report::settings(EXTRAPOLATE_TO[1]),
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    Ok(())
}

fn measure(fleet: &mut Fleet<'_>, counts: &[usize], baseline: u64) -> Result<Vec<Step>> {
    let mut steps = Vec::with_capacity(counts.len());
    for &count in counts {
        fleet.grow_to(count)?;
        settle(fleet, fleet.args.settle, fleet.args.interval);
        let pss_kb = read_pss_kb(fleet.args.pid).ok();
        let alive = fleet.ping();
        let kb_per_conn = pss_kb
            .filter(|_| alive > 0)
            .map(|p| (p as f64 - baseline as f64) / alive as f64);
        steps.push(Step {
            requested: fleet.requested,
            opened: fleet.opened,
            failed: fleet.failed,
            alive,
            pss_kb,
            kb_per_conn,
        });
    }
    Ok(steps)
}

/// Waits `settle`, re-sending a request on every connection each `interval` meanwhile.
fn settle(fleet: &mut Fleet<'_>, settle: Duration, interval: Duration) {
    let mut left = settle;
    while !interval.is_zero() && left > interval {
        std::thread::sleep(interval);
        fleet.ping();
        left -= interval;
    }
    std::thread::sleep(left);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_line() {
        let text = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\nPss:  1234 kB\n\
                    Pss_Dirty: 1000 kB\n";
        assert_eq!(parse_pss_kb(text), Some(1234));
        assert_eq!(parse_pss_kb("Rss: 1 kB\n"), None);
        assert!(read_pss_kb(std::process::id()).expect("own pss") > 0);
    }

    #[test]
    fn open_files_limit_check() {
        let r = FD_RESERVE as u64;
        assert!(check_nofile(9000, 19_000, 20_000, 20_000).is_ok());
        assert!(check_nofile(1000, 500, 500 + r, 500 + r).is_ok()); // the largest count holds
        assert!(check_nofile(1000, 501, 500 + r, 500 + r).is_err());
        let e = check_nofile(30_000, 100_000, 20_000, 20_000)
            .unwrap_err()
            .to_string();
        let want = format!(
            "--per-process 30000 needs {} open files per holder process (30000 connections + \
             {r} for connects in flight and the process itself), but RLIMIT_NOFILE is 20000 \
             (the hard limit): use --per-process {} or less",
            30_000 + r,
            20_000 - r
        );
        assert!(e.starts_with(&want), "{e}");
        assert!(e.contains("raise the hard limit"), "{e}");
        let e = check_nofile(300, 300, 256, 20_000).unwrap_err().to_string();
        let want = "is 256 (the soft limit; raising it to the hard limit 20000 failed): raise";
        assert!(e.contains(want), "{e}");
        let e = check_nofile(9000, 9000, 1024, 4096)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "RLIMIT_NOFILE is 1024 (the soft limit; raising it to the hard limit 4096 failed)"
            ),
            "{e}"
        );
    }
}
