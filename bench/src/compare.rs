//! `compare`: tollgate against nginx and HAProxy as reverse proxies, following the method of
//! the benchmarking notes (§10): origin and load generator on CPU 0, each proxy alone on CPU 1
//! with one worker, the same load for every contender, rounds interleaved (nginx, HAProxy,
//! tollgate, nginx, …), and requests per CPU-second of the proxy process as the main figure.
//!
//! The origin is this binary's own `origin` (1 KiB body) and every load run is this binary's
//! own `load --json`, both re-executed under `taskset -c 0`. CPU time is utime + stime of the
//! proxy process from `/proc/PID/stat` (all threads), sampled after the load's warm-up and
//! after it exits; for nginx it is the worker, not the master. Nothing is installed: missing
//! tools fail the run with the command to install them.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cli::CompareArgs;
use crate::compare_procs::{self as procs, Children};
use crate::compare_report::{self as report, Run, CONTENDERS};

/// Scenarios in the order they run (`latency` needs `plain`'s nginx rate).
pub const SCENARIOS: [&str; 4] = ["plain", "post16k", "newconn", "latency"];
const ORIGIN_PORT: u16 = 9000;
/// Ports of nginx, HAProxy and tollgate, as in bench/peers (same order as [`CONTENDERS`]).
const PROXY_PORTS: [u16; 3] = [8080, 8081, 8090];
const CONNECTIONS: &str = "64";
const WARMUP: Duration = Duration::from_secs(1);
/// The `latency` scenario's open-loop rate, as a fraction of nginx's median `plain` rate.
const LATENCY_LOAD: f64 = 0.5;

/// What to run, after defaults and `--quick`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub rounds: usize,
    pub seconds: f64,
    pub scenarios: Vec<String>,
}

impl Settings {
    pub fn from_args(args: &CompareArgs) -> Result<Self> {
        let (rounds, seconds) = if args.quick { (1, 3.0) } else { (5, 10.0) };
        let rounds = args.rounds.unwrap_or(rounds);
        let seconds = args.seconds.unwrap_or(seconds);
        if rounds == 0 || !seconds.is_finite() || seconds <= 0.0 {
            bail!("--rounds and --seconds must be positive");
        }
        for s in &args.scenarios {
            if !SCENARIOS.contains(&s.as_str()) {
                bail!("unknown scenario {s:?} (known: {})", SCENARIOS.join(", "));
            }
        }
        let has = |name: &str| args.scenarios.iter().any(|s| s == name);
        if has("latency") && !has("plain") {
            bail!("scenario latency runs at 50 % of nginx's plain rate: add plain to --scenarios");
        }
        let scenarios = SCENARIOS
            .iter()
            .filter(|s| has(s))
            .map(|s| s.to_string())
            .collect();
        Ok(Self {
            rounds,
            seconds,
            scenarios,
        })
    }
}

/// Removes the scratch directory on drop, unless a failure asked to keep its logs.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(args: &CompareArgs) -> Result<()> {
    procs::check_tools(&std::env::var("PATH").unwrap_or_default())?;
    let settings = Settings::from_args(args)?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let peers = args.peers.clone().unwrap_or_else(|| manifest.join("peers"));
    let tollgate = args
        .tollgate
        .clone()
        .unwrap_or_else(|| manifest.join("../target/release/tollgate"));
    if !tollgate.is_file() {
        bail!("no tollgate binary at {tollgate:?}: cargo build --release -p tollgate, or pass --tollgate PATH");
    }
    let mut ports = vec![(ORIGIN_PORT, "the origin")];
    ports.extend(PROXY_PORTS.iter().zip(CONTENDERS).map(|(&p, c)| (p, c)));
    procs::check_ports_free(&ports)?;
    let path = std::env::temp_dir().join(format!("tollgate-compare.{}", std::process::id()));
    std::fs::create_dir_all(&path).with_context(|| format!("creating {path:?}"))?;
    let mut scratch = Scratch { path, keep: false };
    let result = run_in(&scratch.path, &peers, &tollgate, &settings);
    if result.is_err() {
        scratch.keep = true;
        eprintln!("compare: configs and logs kept in {:?}", scratch.path);
    }
    let report = result?;
    println!("{}", report.to_table());
    if let Some(file) = &args.json {
        std::fs::write(file, report.to_json()).with_context(|| format!("writing {file:?}"))?;
    }
    Ok(())
}

/// Starts everything in `dir`, runs the scenarios and stops everything again.
fn run_in(dir: &Path, peers: &Path, tollgate: &Path, s: &Settings) -> Result<report::Report> {
    procs::render_configs(peers, dir)?;
    let me = std::env::current_exe().context("locating this binary")?;
    let mut kids = Children::default();
    let pids = start_all(&mut kids, dir, peers, tollgate, &me)?;
    let tick = procs::clock_ticks_per_second() as f64;
    let mut runs: Vec<Run> = Vec::new();
    let mut rate = None;
    for scenario in &s.scenarios {
        if scenario == "latency" {
            let plain =
                report::aggregate(&runs, "plain", "nginx").context("no plain nginx runs")?;
            rate = Some((plain.rps.median * LATENCY_LOAD).max(1.0));
        }
        for round in 1..=s.rounds {
            for (i, contender) in CONTENDERS.iter().enumerate() {
                kids.check_alive(dir)?;
                let ctx = RunCtx {
                    me: &me,
                    scenario,
                    port: PROXY_PORTS[i],
                    seconds: s.seconds,
                    rate,
                    pid: pids[i],
                    tick,
                };
                let mut r = measure(&ctx).with_context(|| format!("{scenario} on {contender}"))?;
                r.contender = contender.to_string();
                r.round = round;
                eprintln!(
                    "{scenario} round {round}/{} {contender:<8}: {:>8.0} req/s, {:.2} cores, \
                     {:>8.0} req/CPU-s, p99 {} µs, {} errors",
                    s.rounds, r.rps, r.cores, r.req_per_cpu_s, r.p99_us, r.errors
                );
                runs.push(r);
            }
        }
    }
    Ok(report::build(runs, &s.scenarios, s.rounds, s.seconds))
}

/// Starts origin, nginx, HAProxy and tollgate, pinned, and checks each answers; returns the
/// PIDs to measure (nginx worker, HAProxy, tollgate).
fn start_all(
    kids: &mut Children,
    dir: &Path,
    peers: &Path,
    tollgate: &Path,
    me: &Path,
) -> Result<[u32; 3]> {
    let wait = Duration::from_secs(10);
    let local = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let origin_args = [
        "origin",
        "--listen",
        "127.0.0.1:9000",
        "--body-bytes",
        "1024",
    ];
    let origin = kids.spawn_pinned(
        "origin",
        0,
        me,
        &[&origin_args[..], &["--threads", "1"]].concat(),
        &dir.join("origin.log"),
    )?;
    procs::wait_listening(local(ORIGIN_PORT), wait, "origin")?;

    let conf = dir.join("nginx-proxy.conf");
    let prefix = format!("{}/", dir.display());
    let nginx_args = [
        "-c",
        &conf.to_string_lossy(),
        "-p",
        &prefix,
        "-g",
        "daemon off;",
    ];
    let master = kids.spawn_pinned(
        "nginx",
        1,
        Path::new("nginx"),
        &nginx_args,
        &dir.join("nginx.log"),
    )?;
    procs::wait_listening(local(PROXY_PORTS[0]), wait, "nginx")?;
    let worker = procs::child_of(master, wait).context("finding the nginx worker")?;

    let cfg = dir.join("haproxy.cfg");
    let haproxy = kids.spawn_pinned(
        "haproxy",
        1,
        Path::new("haproxy"),
        &["-f", &cfg.to_string_lossy()],
        &dir.join("haproxy.log"),
    )?;
    procs::wait_listening(local(PROXY_PORTS[1]), wait, "haproxy")?;

    let toml = peers.join("tollgate.toml");
    let tg_args = ["run", "-c", &toml.to_string_lossy(), "--workers", "1"];
    let tg = kids.spawn_pinned("tollgate", 1, tollgate, &tg_args, &dir.join("tollgate.log"))?;
    procs::wait_listening(local(PROXY_PORTS[2]), wait, "tollgate")?;

    procs::verify_pinned(origin, 0, "origin")?;
    procs::verify_pinned(worker, 1, "nginx worker")?;
    procs::verify_pinned(haproxy, 1, "haproxy")?;
    procs::verify_pinned(tg, 1, "tollgate")?;
    for (port, name) in PROXY_PORTS.iter().zip(CONTENDERS) {
        smoke(*port).with_context(|| format!("{name} on port {port} does not proxy /plain/1k"))?;
    }
    kids.check_alive(dir)?;
    Ok([worker, haproxy, tg])
}

/// One `GET /plain/1k` with `Connection: close`; fails unless the status is 200.
fn smoke(port: u16) -> Result<()> {
    let mut last = None;
    for _ in 0..20 {
        match get_status(port) {
            Ok(200) => return Ok(()),
            Ok(code) => last = Some(anyhow::anyhow!("status {code}")),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no answer")))
}

fn get_status(port: u16) -> Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /plain/1k HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {text:?}"))
}

/// Everything one load run needs.
struct RunCtx<'a> {
    me: &'a Path,
    scenario: &'a str,
    port: u16,
    seconds: f64,
    rate: Option<f64>,
    pid: u32,
    tick: f64,
}

/// The `load` arguments of a scenario.
pub fn load_args(scenario: &str, port: u16, seconds: f64, rate: Option<f64>) -> Vec<String> {
    let mut a: Vec<String> = [
        "load".to_string(),
        "--url".into(),
        format!("http://127.0.0.1:{port}/plain/1k"),
        "--json".into(),
        "--threads".into(),
        "1".into(),
        "--connections".into(),
        CONNECTIONS.into(),
        "--duration".into(),
        format!("{seconds}s"),
        "--warmup".into(),
        format!("{}s", WARMUP.as_secs_f64()),
    ]
    .into();
    let extra: &[&str] = match scenario {
        "post16k" => &["--method", "POST", "--body-bytes", "16384"],
        "newconn" => &["--new-connection-per-request"],
        _ => &[],
    };
    a.extend(extra.iter().map(|s| s.to_string()));
    if let (Some(r), "latency") = (rate, scenario) {
        a.extend(["--rate".to_string(), format!("{r:.0}")]);
    }
    a
}

/// Runs one `load` child on CPU 0 and measures the proxy's CPU over its measured window.
fn measure(ctx: &RunCtx) -> Result<Run> {
    let args = load_args(ctx.scenario, ctx.port, ctx.seconds, ctx.rate);
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(ctx.me)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting load")?;
    std::thread::sleep(WARMUP);
    let (c0, t0) = (procs::cpu_ticks(ctx.pid)?, Instant::now());
    let out = child.wait_with_output().context("waiting for load")?;
    let (c1, wall) = (procs::cpu_ticks(ctx.pid)?, t0.elapsed().as_secs_f64());
    if !out.status.success() {
        bail!(
            "load failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing load --json output")?;
    let cores = c1.saturating_sub(c0) as f64 / ctx.tick / wall.max(f64::MIN_POSITIVE);
    Ok(run_from_load_json(&v, ctx.scenario, cores, ctx.rate))
}

/// A [`Run`] (contender and round still unset) from `load --json` output and the cores used.
pub fn run_from_load_json(v: &Value, scenario: &str, cores: f64, rate: Option<f64>) -> Run {
    let rps = v["rps"].as_f64().unwrap_or(0.0);
    let lat = |k: &str| v["latency_us"][k].as_u64().unwrap_or(0);
    let errors = v["errors"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(Value::as_u64).sum());
    Run {
        scenario: scenario.to_string(),
        contender: String::new(),
        round: 0,
        rps,
        cores,
        req_per_cpu_s: if cores > 0.0 { rps / cores } else { f64::NAN },
        p50_us: lat("p50"),
        p99_us: lat("p99"),
        p999_us: lat("p999"),
        errors,
        target_rps: rate.filter(|_| scenario == "latency"),
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
