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
//!
//! Every listener gets a free loopback port, chosen by the kernel just before the configs are
//! written ([`Ports`]); a peer that then cannot bind its port, or finds another process
//! listening there too, fails the run as a port race.
//!
//! The rate-limit scenarios run against their own proxy instances (a [`Setup`] each, on their
//! own ports), configured from the base configs by [`configs`]; `plan` is tollgate only and
//! interleaves each round with the base tollgate under the same load (`tollgate-plain`), so
//! its ratio to plain tollgate needs no `plain` scenario.
//!
//! The TLS scenarios (`tls`, `tls-newconn`, `tls-resume`) share one more set of instances that
//! terminate TLS 1.3 with one generated ECDSA P-256 certificate ([`tls`]), checked at start to
//! negotiate the same version, suite, group and ALPN with the load's client and to resume; the
//! load is `load --tls` (`tls_client.rs`). `tls-resume` fails when a contender resumed fewer
//! than [`MIN_RESUMED`] of the handshakes in a run, `tls-newconn` when it resumed any.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cli::CompareArgs;
use crate::compare_procs::{self as procs, Children};
use crate::compare_report::{self as report, Run, PLAIN_BASELINE};

#[path = "compare_configs.rs"]
mod configs;
#[path = "compare_tls.rs"]
mod tls;

/// Scenarios in the order they run (`latency` needs `plain`'s nginx rate).
pub const SCENARIOS: [&str; 10] = [
    "plain",
    "post16k",
    "newconn",
    "latency",
    "ratelimit",
    "ratelimit-reject",
    "plan",
    "tls",
    "tls-newconn",
    "tls-resume",
];
/// `tls-resume` fails below this share of resumed handshakes in any run.
pub const MIN_RESUMED: f64 = 0.9;
const CONNECTIONS: &str = "64";
const WARMUP: Duration = Duration::from_secs(1);
/// The `latency` scenario's open-loop rate, as a fraction of nginx's median `plain` rate.
const LATENCY_LOAD: f64 = 0.5;
/// File (in the scratch directory) of the `plan` scenario's API keys, one per line.
const KEYS_FILE: &str = "keys.txt";

/// A set of proxy instances with one configuration, each on its own port (see [`Ports`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setup {
    /// bench/peers as they are.
    Base,
    RateLimit,
    Reject,
    Plan,
    /// TLS termination (the `tls*` scenarios).
    Tls,
}

impl Setup {
    pub const ALL: [Setup; 5] = [
        Setup::Base,
        Setup::RateLimit,
        Setup::Reject,
        Setup::Plan,
        Setup::Tls,
    ];

    pub fn of(scenario: &str) -> Self {
        match scenario {
            "ratelimit" => Self::RateLimit,
            "ratelimit-reject" => Self::Reject,
            "plan" => Self::Plan,
            "tls" | "tls-newconn" | "tls-resume" => Self::Tls,
            _ => Self::Base,
        }
    }

    /// Suffix of the generated config and log files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::RateLimit => "ratelimit",
            Self::Reject => "reject",
            Self::Plan => "plan",
            Self::Tls => "tls",
        }
    }

    /// Which of nginx, HAProxy and tollgate (as [`report::CONTENDERS`]) have this configuration.
    pub fn proxies(self) -> [bool; 3] {
        match self {
            Self::Plan => [false, false, true],
            _ => [true; 3],
        }
    }

    fn limit(self) -> Option<&'static configs::Limit> {
        match self {
            Self::RateLimit => Some(&configs::NEVER_REJECT),
            Self::Reject => Some(&configs::REJECT),
            _ => None,
        }
    }
}

/// The setups `scenarios` need: always the base (`plan` compares with it), plus their own.
pub fn setups_for(scenarios: &[String]) -> Vec<Setup> {
    Setup::ALL
        .into_iter()
        .filter(|&s| s == Setup::Base || scenarios.iter().any(|x| Setup::of(x) == s))
        .collect()
}

/// The loopback ports of one run: the origin's, and per setup those of nginx, HAProxy and
/// tollgate (as [`report::CONTENDERS`]; `None` where [`Setup::proxies`] has no such proxy).
#[derive(Debug, Clone, PartialEq)]
pub struct Ports {
    pub origin: u16,
    pub setups: Vec<(Setup, [Option<u16>; 3])>,
}

impl Ports {
    /// How many listeners `setups` need, the origin's included.
    pub fn needed(setups: &[Setup]) -> usize {
        1 + setups
            .iter()
            .map(|s| s.proxies().iter().filter(|&&p| p).count())
            .sum::<usize>()
    }

    /// Hands out `free` (at least [`Ports::needed`] of them): the origin first, then each
    /// setup's proxies in order.
    pub fn assign(setups: &[Setup], free: &[u16]) -> Result<Self> {
        if free.len() < Self::needed(setups) {
            bail!(
                "{} ports for {} listeners",
                free.len(),
                Self::needed(setups)
            );
        }
        let mut next = free.iter().copied();
        let origin = next.next().context("no port for the origin")?;
        let setups = setups
            .iter()
            .map(|&s| (s, s.proxies().map(|has| has.then(|| next.next()).flatten())))
            .collect();
        Ok(Self { origin, setups })
    }

    /// Asks the kernel for free ports for the origin and every proxy of `setups`.
    pub fn choose(setups: &[Setup]) -> Result<Self> {
        Self::assign(setups, &procs::free_ports(Self::needed(setups))?)
    }

    /// The ports of `setup`'s nginx, HAProxy and tollgate (`None`: not in this run).
    pub fn of(&self, setup: Setup) -> [Option<u16>; 3] {
        self.setups
            .iter()
            .find(|(s, _)| *s == setup)
            .map_or([None; 3], |(_, p)| *p)
    }

    /// One line for the progress output, e.g. `origin 40001, base 40002/40003/40004`.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("origin {}", self.origin)];
        for (setup, ports) in &self.setups {
            let p: Vec<String> = ports
                .iter()
                .map(|p| p.map_or("-".to_string(), |p| p.to_string()))
                .collect();
            parts.push(format!("{} {}", setup.name(), p.join("/")));
        }
        parts.join(", ")
    }
}

/// What to run, after defaults and `--quick`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub rounds: usize,
    pub seconds: f64,
    pub scenarios: Vec<String>,
}

impl Settings {
    pub fn from_args(args: &CompareArgs) -> Result<Self> {
        let (rounds, seconds) = if args.quick { (1, 3.0) } else { (5, 8.0) };
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
    let setups = setups_for(&settings.scenarios);
    let path = std::env::temp_dir().join(format!("tollgate-compare.{}", std::process::id()));
    std::fs::create_dir_all(&path).with_context(|| format!("creating {path:?}"))?;
    let mut scratch = Scratch { path, keep: false };
    let result = run_in(&scratch.path, &peers, &tollgate, &settings, &setups);
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

/// One started proxy instance: which contender, where it listens, the PID to measure.
#[derive(Debug, Clone, Copy)]
struct Proxy {
    contender: &'static str,
    port: u16,
    pid: u32,
}

/// The proxies one scenario measures, in the order each round runs them: the scenario's
/// setup, and for `plan` first the base tollgate as [`PLAIN_BASELINE`].
fn targets(scenario: &str, started: &[(Setup, Vec<Proxy>)]) -> Vec<Proxy> {
    let of = |setup: Setup| {
        started
            .iter()
            .find(|(s, _)| *s == setup)
            .map_or(&[][..], |(_, p)| &p[..])
    };
    let mut out = Vec::new();
    if scenario == "plan" {
        out.extend(
            of(Setup::Base)
                .iter()
                .filter(|p| p.contender == "tollgate")
                .map(|p| Proxy {
                    contender: PLAIN_BASELINE,
                    ..*p
                }),
        );
    }
    out.extend_from_slice(of(Setup::of(scenario)));
    out
}

/// Starts everything in `dir`, runs the scenarios and stops everything again.
fn run_in(
    dir: &Path,
    peers: &Path,
    tollgate: &Path,
    s: &Settings,
    setups: &[Setup],
) -> Result<report::Report> {
    let me = std::env::current_exe().context("locating this binary")?;
    let ports = Ports::choose(setups)?;
    eprintln!(
        "compare: ports (nginx/HAProxy/tollgate) {}",
        ports.describe()
    );
    let mut kids = Children::default();
    start_origin(&mut kids, dir, &me, ports.origin)?;
    let mut started = Vec::new();
    for &setup in setups {
        let proxies = start_setup(&mut kids, dir, peers, tollgate, setup, &ports)
            .with_context(|| format!("starting the {} proxies", setup.name()))?;
        started.push((setup, proxies));
    }
    kids.check_alive(dir)?;
    let keys = dir.join(KEYS_FILE);
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
            for proxy in targets(scenario, &started) {
                kids.check_alive(dir)?;
                let ctx = RunCtx {
                    me: &me,
                    scenario,
                    port: proxy.port,
                    seconds: s.seconds,
                    rate,
                    keys: &keys,
                    pid: proxy.pid,
                    tick,
                };
                let contender = proxy.contender;
                let mut r = measure(&ctx).with_context(|| format!("{scenario} on {contender}"))?;
                r.contender = contender.to_string();
                r.round = round;
                let hs = if r.handshakes > 0 {
                    format!(
                        ", {:>8.0} hs/CPU-s ({} of {} resumed)",
                        r.hs_per_cpu_s, r.handshakes_resumed, r.handshakes
                    )
                } else {
                    String::new()
                };
                eprintln!(
                    "{scenario} round {round}/{} {contender:<8}: {:>8.0} req/s, {:.2} cores \
                     (load {:.2}), {:>8.0} req/CPU-s, {:>8.0} 429/CPU-s, p99 {} µs, \
                     {} errors{hs}",
                    s.rounds,
                    r.rps,
                    r.cores,
                    r.load_cores,
                    r.req_per_cpu_s,
                    r.r429_per_cpu_s,
                    r.p99_us,
                    r.errors
                );
                check_resumption(&r).with_context(|| format!("{scenario} on {contender}"))?;
                runs.push(r);
            }
        }
    }
    Ok(report::build(runs, &s.scenarios, s.rounds, s.seconds))
}

const START_WAIT: Duration = Duration::from_secs(10);

/// Starts the origin on 127.0.0.1:`port`, CPU 0, and checks its pinning.
fn start_origin(kids: &mut Children, dir: &Path, me: &Path, port: u16) -> Result<()> {
    let listen = format!("127.0.0.1:{port}");
    let origin_args = [
        "origin",
        "--listen",
        &listen,
        "--body-bytes",
        "1024",
        "--threads",
        "1",
    ];
    let origin = kids.spawn_pinned("origin", 0, me, &origin_args, &dir.join("origin.log"))?;
    kids.wait_listening(origin, port, START_WAIT)?;
    procs::verify_pinned(origin, 0, "origin")
}

/// The text of the configs of `setup` (its nginx, HAProxy and tollgate, `None` where it has no
/// such proxy) from the templates in `peers`, with `dir` and the ports of `ports`.
pub fn setup_configs(
    peers: &Path,
    dir: &Path,
    setup: Setup,
    ports: &Ports,
) -> Result<[Option<String>; 3]> {
    let read = |name: &str| {
        let p = peers.join(name);
        std::fs::read_to_string(&p).with_context(|| format!("reading {p:?}"))
    };
    let name = setup.name();
    let [nginx_port, haproxy_port, tg_port] = ports.of(setup);
    // nginx and HAProxy: the template, its variant's limit or TLS added, its placeholders filled.
    type Variant = fn(&str, &str, &configs::Limit) -> Result<String>;
    type TlsVariant = fn(&str) -> Result<String>;
    let peer = |template: &str,
                own: &'static str,
                port: Option<u16>,
                variant: Variant,
                tls: TlsVariant| {
        let Some(port) = port else {
            return Ok(None);
        };
        let t = read(template)?;
        let t = match setup.limit() {
            Some(limit) => variant(&t, name, limit)?,
            None if setup == Setup::Tls => tls(&t)?,
            None => t,
        };
        let vars = [
            (configs::DIR, dir.display().to_string()),
            (configs::ORIGIN_PORT, ports.origin.to_string()),
            (own, port.to_string()),
        ];
        configs::render(&t, template, &vars, &[configs::ORIGIN_PORT, own]).map(Some)
    };
    let nginx = peer(
        "nginx-proxy.conf.in",
        configs::NGINX_PORT,
        nginx_port,
        configs::nginx,
        configs::nginx_tls,
    )?;
    let haproxy = peer(
        "haproxy.cfg.in",
        configs::HAPROXY_PORT,
        haproxy_port,
        configs::haproxy,
        configs::haproxy_tls,
    )?;
    let tollgate = match tg_port {
        Some(port) => {
            let t = configs::tollgate_ports(&read("tollgate.toml")?, port, ports.origin)?;
            Some(match setup {
                Setup::Base => t,
                Setup::Tls => configs::tollgate_tls(&t, dir)?,
                _ => {
                    let (api, tail) = match setup.limit() {
                        Some(limit) => (limit.tollgate_api, String::new()),
                        None => (
                            "api_key_required = true",
                            configs::plan_tail(&dir.join("state")),
                        ),
                    };
                    configs::tollgate(&t, api, &tail)?
                }
            })
        }
        None => None,
    };
    Ok([nginx, haproxy, tollgate])
}

/// Writes the configs of `setup` into `dir`, starts its proxies pinned to CPU 1 on their ports
/// of `ports`, checks pinning and that each one proxies `/plain/1k`; returns them.
fn start_setup(
    kids: &mut Children,
    dir: &Path,
    peers: &Path,
    tollgate: &Path,
    setup: Setup,
    ports: &Ports,
) -> Result<Vec<Proxy>> {
    let name = setup.name();
    let file = |base: &str| match setup {
        Setup::Base => dir.join(base),
        _ => {
            let (stem, ext) = base.split_once('.').unwrap_or((base, ""));
            let stem = stem.strip_suffix("-proxy").unwrap_or(stem);
            dir.join(format!("{stem}-{name}.{ext}"))
        }
    };
    let write =
        |p: &Path, text: &str| std::fs::write(p, text).with_context(|| format!("writing {p:?}"));
    let [nginx_port, haproxy_port, tg_port] = ports.of(setup);
    if setup == Setup::Tls {
        tls::write_certificate(dir).context("making the TLS certificate")?;
    }
    let [nginx_conf, haproxy_cfg, tg_toml] = setup_configs(peers, dir, setup, ports)?;
    let mut header = None;
    let mut out = Vec::new();

    if let (Some(port), Some(text)) = (nginx_port, nginx_conf) {
        let conf = file("nginx-proxy.conf");
        write(&conf, &text)?;
        let prefix = format!("{}/", dir.display());
        let args = [
            "-c",
            &conf.to_string_lossy(),
            "-p",
            &prefix,
            "-g",
            "daemon off;",
        ];
        let log = dir.join(format!("nginx-{name}.log"));
        let master = kids.spawn_pinned("nginx", 1, Path::new("nginx"), &args, &log)?;
        kids.wait_listening(master, port, START_WAIT)?;
        let worker = procs::child_of(master, START_WAIT).context("finding the nginx worker")?;
        procs::verify_pinned(worker, 1, "nginx worker")?;
        out.push(Proxy {
            contender: "nginx",
            port,
            pid: worker,
        });
    }
    if let (Some(port), Some(text)) = (haproxy_port, haproxy_cfg) {
        let cfg = file("haproxy.cfg");
        write(&cfg, &text)?;
        let log = dir.join(format!("haproxy-{name}.log"));
        let args = ["-f", &*cfg.to_string_lossy()];
        let pid = kids.spawn_pinned("haproxy", 1, Path::new("haproxy"), &args, &log)?;
        kids.wait_listening(pid, port, START_WAIT)?;
        procs::verify_pinned(pid, 1, "haproxy")?;
        out.push(Proxy {
            contender: "haproxy",
            port,
            pid,
        });
    }
    if let (Some(port), Some(text)) = (tg_port, tg_toml) {
        let toml = file("tollgate.toml");
        write(&toml, &text)?;
        if setup == Setup::Plan {
            let keys = configs::plan_keys();
            write(&dir.join(KEYS_FILE), &(keys.join("\n") + "\n"))?;
            header = Some(format!("x-api-key: {}", keys[0]));
        }
        let args = ["run", "-c", &*toml.to_string_lossy(), "--workers", "1"];
        let log = dir.join(format!("tollgate-{name}.log"));
        let pid = kids.spawn_pinned("tollgate", 1, tollgate, &args, &log)?;
        kids.wait_listening(pid, port, START_WAIT)?;
        procs::verify_pinned(pid, 1, "tollgate")?;
        out.push(Proxy {
            contender: "tollgate",
            port,
            pid,
        });
    }
    for p in &out {
        if setup == Setup::Tls {
            let seen = tls::check(p.port, &dir.join(configs::TLS_CA)).with_context(|| {
                format!(
                    "{} ({name}) on port {} does not proxy /plain/1k over TLS as the scenarios \
                     need",
                    p.contender, p.port
                )
            })?;
            eprintln!("compare: tls on {}: {}", p.contender, seen.describe());
            continue;
        }
        smoke(p.port, header.as_deref()).with_context(|| {
            format!(
                "{} ({name}) on port {} does not proxy /plain/1k",
                p.contender, p.port
            )
        })?;
    }
    kids.check_alive(dir)?;
    Ok(out)
}

/// One `GET /plain/1k` with `Connection: close` (and `header`, if any); fails unless the
/// status is 200. The first request from 127.0.0.1 passes even the rejecting limits.
fn smoke(port: u16, header: Option<&str>) -> Result<()> {
    let mut last = None;
    for _ in 0..20 {
        match get_status(port, header) {
            Ok(200) => return Ok(()),
            Ok(code) => last = Some(anyhow::anyhow!("status {code}")),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no answer")))
}

fn get_status(port: u16, header: Option<&str>) -> Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let extra = header.map_or(String::new(), |h| format!("{h}\r\n"));
    let req = format!("GET /plain/1k HTTP/1.1\r\nhost: bench\r\n{extra}connection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
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
    /// The `--header-list` file of `plan`.
    keys: &'a Path,
    pid: u32,
    tick: f64,
}

/// The `load` arguments of a scenario (`keys`: the API key file of `plan`).
pub fn load_args(
    scenario: &str,
    port: u16,
    seconds: f64,
    rate: Option<f64>,
    keys: &Path,
) -> Vec<String> {
    let scheme = if scenario.starts_with("tls") {
        "https"
    } else {
        "http"
    };
    let mut a: Vec<String> = [
        "load".to_string(),
        "--url".into(),
        format!("{scheme}://127.0.0.1:{port}/plain/1k"),
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
        "newconn" | "tls-newconn" => &["--new-connection-per-request"],
        "tls-resume" => &["--new-connection-per-request", "--tls-resume"],
        _ => &[],
    };
    a.extend(extra.iter().map(|s| s.to_string()));
    if matches!(scenario, "ratelimit" | "ratelimit-reject") {
        a.extend(["--bind-count".to_string(), configs::BIND_COUNT.to_string()]);
    }
    if scenario == "plan" {
        a.extend([
            "--header-list".to_string(),
            format!("x-api-key:{}", keys.display()),
        ]);
    }
    if let (Some(r), "latency") = (rate, scenario) {
        a.extend(["--rate".to_string(), format!("{r:.0}")]);
    }
    if scenario.starts_with("tls") {
        a.extend(["--sni".to_string(), tls::NAME.to_string()]);
    }
    a
}

/// Fails a `tls-resume` run in which fewer than [`MIN_RESUMED`] of the handshakes resumed (or
/// that made none), and a `tls-newconn` run in which any did: either would measure something
/// else than the scenario says.
pub fn check_resumption(r: &Run) -> Result<()> {
    match r.scenario.as_str() {
        "tls-newconn" | "tls-resume" if r.handshakes == 0 => {
            bail!("no TLS handshake completed in the measured window")
        }
        "tls-resume" => {
            let share = r.handshakes_resumed as f64 / r.handshakes as f64;
            if share < MIN_RESUMED {
                bail!(
                    "only {} of {} TLS handshakes resumed a session ({:.1} %, at least {:.0} % \
                     needed): does the proxy send session tickets and accept them?",
                    r.handshakes_resumed,
                    r.handshakes,
                    share * 100.0,
                    MIN_RESUMED * 100.0
                );
            }
        }
        "tls-newconn" if r.handshakes_resumed > 0 => bail!(
            "{} of {} TLS handshakes resumed a session, where every one should be full",
            r.handshakes_resumed,
            r.handshakes
        ),
        _ => {}
    }
    Ok(())
}

/// Runs one `load` child on CPU 0 and measures the proxy's CPU over its measured window.
fn measure(ctx: &RunCtx) -> Result<Run> {
    let args = load_args(ctx.scenario, ctx.port, ctx.seconds, ctx.rate, ctx.keys);
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
    // 429s are counted apart (a 429 is also in `errors.status_4xx`).
    let status_429 = v["status"]["429"].as_u64().unwrap_or(0);
    let errors = v["errors"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(Value::as_u64).sum::<u64>())
        .saturating_sub(status_429);
    let seconds = v["duration_s"].as_f64().unwrap_or(0.0);
    let per_cpu_s = |per_s: f64| if cores > 0.0 { per_s / cores } else { f64::NAN };
    let per_s = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let r429_per_s = per_s(status_429);
    let handshakes = v["tls"]["handshakes"].as_u64().unwrap_or(0);
    Run {
        scenario: scenario.to_string(),
        contender: String::new(),
        round: 0,
        rps,
        cores,
        load_cores: v["load_cores"].as_f64().unwrap_or(0.0),
        req_per_cpu_s: per_cpu_s(rps),
        status_429,
        r429_per_cpu_s: per_cpu_s(r429_per_s),
        p50_us: lat("p50"),
        p99_us: lat("p99"),
        p999_us: lat("p999"),
        errors,
        handshakes,
        handshakes_resumed: v["tls"]["handshakes_resumed"].as_u64().unwrap_or(0),
        hs_per_cpu_s: per_cpu_s(per_s(handshakes)),
        target_rps: rate.filter(|_| scenario == "latency"),
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
