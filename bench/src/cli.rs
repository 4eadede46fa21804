//! Command-line interface: the `origin`, `load`, `hold` and `compare` subcommands (plus the
//! hidden `hold-child` used by `hold`) and their argument parsing.
//!
//! Names are resolved here, on the main thread, because worker threads run monoio runtimes
//! where a blocking DNS lookup would stall every connection on that core.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::connect::MAX_BIND_COUNT;
use crate::requests::{self, HeaderListArg};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate-bench",
    version,
    about = "tollgate's load generator and origin"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a fixed HTTP/1.1 response as fast as possible (keep-alive, pipelining).
    Origin(OriginArgs),
    /// Generate closed-loop (default) or open-loop (`--rate`) load against a URL.
    Load(LoadArgs),
    /// Hold idle keep-alive connections and measure a process's memory per connection.
    Hold(HoldArgs),
    /// Internal: one holder process of `hold`, driven by commands on stdin.
    #[command(hide = true)]
    HoldChild(HoldChildArgs),
    /// Compare tollgate with nginx and HAProxy: same load, interleaved rounds, req/CPU-s.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// One round of 3 s per scenario and contender (a smoke run, not a measurement).
    #[arg(long)]
    pub quick: bool,
    /// Rounds per scenario; each round runs nginx, HAProxy and tollgate once (default 5).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Measured seconds per run (default 8: the default run of all scenarios stays under 25 minutes).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// tollgate binary (default: <workspace>/target/release/tollgate).
    #[arg(long)]
    pub tollgate: Option<PathBuf>,
    /// Directory with the peer configs (default: bench/peers of this source tree).
    #[arg(long)]
    pub peers: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Scenarios, comma-separated (default all): plain, post16k, newconn, latency (50 % of
    /// nginx's plain rate, needs plain); ratelimit (a limit per client address that never
    /// refuses, 50 source addresses), ratelimit-reject (the same refusing almost everything;
    /// 429/CPU-s), plan (tollgate only: API keys and a usage plan, vs. plain tollgate); tls
    /// (keep-alive HTTPS), tls-newconn (a full TLS 1.3 handshake per request), tls-resume (a
    /// resumed one per request; handshakes/CPU-s).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "plain,post16k,newconn,latency,ratelimit,ratelimit-reject,plan,tls,\
                         tls-newconn,tls-resume"
    )]
    pub scenarios: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OriginArgs {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Response body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub body_bytes: usize,
    /// Delay before each response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Send the body with chunked framing instead of content-length.
    #[arg(long)]
    pub chunked: bool,
    /// Worker threads, one listener each (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target, e.g. http://HOST:PORT/path, or https://HOST:PORT/path (as `--tls`).
    #[arg(long)]
    pub url: String,
    /// TLS 1.3 (ALPN http/1.1, AES-128-GCM offered first); implied by an https:// URL.
    #[arg(long)]
    pub tls: bool,
    /// TLS: the server name sent as SNI (and verified with --ca); default the URL's host if
    /// it is a name (an IP address sends no SNI).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// TLS: verify the server's certificate against the CA certificates (PEM) in FILE; without
    /// it nothing is verified.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// TLS: each new connection resumes the session of the previous one of its slot (TLS 1.3
    /// tickets); without it every handshake is a full one.
    #[arg(long)]
    pub tls_resume: bool,
    /// Concurrent connections in total.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Measured duration, e.g. 10s, 500ms, 1m.
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up before measuring (load runs, stats are discarded).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Worker threads (default: available cores, at most one per connection).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Open loop: total requests per second, latency measured from intended send times.
    #[arg(long, short = 'R')]
    pub rate: Option<f64>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Extra request header, `name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// `NAME:FILE`: FILE has one value per line (blank lines ignored); connection i sends
    /// `NAME: values[i % n]` on every request (e.g. one API key per connection).
    #[arg(long, value_name = "NAME:FILE", value_parser = requests::parse_header_list_arg)]
    pub header_list: Option<HeaderListArg>,
    /// Connection i binds source address 127.0.0.(2 + i % N) before connecting, so limits per
    /// client address see N clients (IPv4 loopback targets only).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_BIND_COUNT)))]
    pub bind_count: Option<u8>,
    /// Request body size in bytes (sent with content-length).
    #[arg(long, default_value_t = 0)]
    pub body_bytes: usize,
    /// Open a new connection for every request instead of keeping connections alive.
    #[arg(long)]
    pub new_connection_per_request: bool,
    /// Per-request timeout (connect, send and full response).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// Target, e.g. http://HOST:PORT/path (plain HTTP only).
    #[arg(long)]
    pub url: String,
    /// PID of the gateway whose memory (`/proc/PID/smaps_rollup`, `Pss:`) is measured.
    #[arg(long)]
    pub pid: u32,
    /// Connection counts to hold, comma-separated; measured in ascending order.
    #[arg(long, value_delimiter = ',', required = true)]
    pub counts: Vec<usize>,
    /// Connections per holder process (each holder needs this many open files).
    #[arg(long, default_value_t = 9000)]
    pub per_process: usize,
    /// Source addresses to bind before connecting, comma-separated, used round robin.
    #[arg(long, value_delimiter = ',', conflicts_with = "source_count")]
    pub sources: Vec<IpAddr>,
    /// Use 127.0.0.1 ..= 127.0.0.N as source addresses.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_count: Option<u8>,
    /// While settling, re-send a request on every connection this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Wait after each step before reading the memory.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Per-connection timeout for connect plus one request/response.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl HoldArgs {
    /// The source addresses to bind, empty to let the kernel choose.
    pub fn source_list(&self) -> Vec<IpAddr> {
        match self.source_count {
            Some(n) => (1..=n)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect(),
            None => self.sources.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct HoldChildArgs {
    #[arg(long)]
    pub url: String,
    #[arg(long, value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// Global index of this holder's first connection, to continue the source round robin.
    #[arg(long, default_value_t = 0)]
    pub first_index: usize,
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Parses `10s`, `250ms`, `2m`, `100us` or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use us, ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// The parts of a target URL the load generator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// Authority as written, for the `host` header.
    pub host: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// An `http://` URL (`hold`: plain HTTP only).
    pub fn parse(url: &str) -> Result<Self> {
        match Self::parse_any(url)? {
            (target, false) => Ok(target),
            (_, true) => bail!("only http:// URLs are supported, got {url:?}"),
        }
    }

    /// An `http://` or `https://` URL (`load`); true for https (default port 443).
    pub fn parse_any(url: &str) -> Result<(Self, bool)> {
        let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            bail!("only http:// and https:// URLs are supported, got {url:?}");
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() {
            bail!("URL {url:?} has no host");
        }
        // A port is present unless the authority has no colon or ends an IPv6 literal.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.ends_with(']'))
            && !(authority.starts_with('[') && authority.ends_with(']'));
        let with_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .with_context(|| format!("{with_port} resolved to no address"))?;
        let target = Self {
            addr,
            host: authority.to_string(),
            path,
        };
        Ok((target, tls))
    }
}

/// Default worker count: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn targets() -> Result<()> {
        let t = Target::parse("http://192.0.2.10:8080/a/b?c=1")?;
        assert_eq!(t.addr, "192.0.2.10:8080".parse()?);
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("192.0.2.10:8080", "/a/b?c=1")
        );
        let t = Target::parse("http://127.0.0.1")?;
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/"));
        let t = Target::parse("http://[::1]:9000?x")?;
        assert_eq!((t.addr.port(), t.path.as_str()), (9000, "/?x"));
        assert_eq!(Target::parse("http://[::1]/")?.addr.port(), 80);
        assert!(Target::parse("https://127.0.0.1/").is_err());
        let (t, tls) = Target::parse_any("https://127.0.0.1/x")?;
        assert_eq!((t.addr.port(), t.path.as_str(), tls), (443, "/x", true));
        let (t, tls) = Target::parse_any("https://127.0.0.1:8443")?;
        assert_eq!(
            (t.addr.port(), t.host.as_str(), tls),
            (8443, "127.0.0.1:8443", true)
        );
        assert!(!Target::parse_any("http://127.0.0.1/")?.1);
        assert!(Target::parse_any("ftp://127.0.0.1/").is_err());
        Ok(())
    }

    #[test]
    fn load_header_list_and_bind_count() -> Result<()> {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["b", "load", "--url", "http://127.0.0.1:1/"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Load(args) => Some(args),
                _ => None,
            })
        };
        let args = parse(&["--header-list", "x-api-key:keys.txt", "--bind-count", "50"])?
            .context("not load")?;
        let list = args.header_list.context("no header list")?;
        assert_eq!(
            (list.name.as_str(), list.file.to_str()),
            ("x-api-key", Some("keys.txt"))
        );
        assert_eq!(args.bind_count, Some(50));
        let args = parse(&[])?.context("not load")?;
        assert_eq!((args.header_list, args.bind_count), (None, None));
        for bad in [
            &["--bind-count", "0"][..],
            &["--bind-count", "254"],
            &["--header-list", "keys.txt"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn load_tls_options() -> Result<()> {
        let cli = Cli::try_parse_from([
            "b",
            "load",
            "--url",
            "https://127.0.0.1:1/",
            "--sni",
            "bench.example.com",
            "--ca",
            "/c/ca.pem",
            "--tls-resume",
            "--new-connection-per-request",
        ])?;
        let Command::Load(args) = cli.command else {
            bail!("not load");
        };
        assert_eq!(args.sni.as_deref(), Some("bench.example.com"));
        assert_eq!(args.ca, Some(PathBuf::from("/c/ca.pem")));
        assert!(args.tls_resume && args.new_connection_per_request && !args.tls);
        Ok(())
    }

    #[test]
    fn hold_sources() -> Result<()> {
        let cli = Cli::try_parse_from([
            "b",
            "hold",
            "--url",
            "http://127.0.0.1:1/",
            "--pid",
            "1",
            "--counts",
            "5,1",
            "--source-count",
            "3",
        ])?;
        let Command::Hold(args) = cli.command else {
            bail!("not hold");
        };
        assert_eq!(args.counts, [5, 1]);
        let want: Vec<IpAddr> = vec![
            "127.0.0.1".parse()?,
            "127.0.0.2".parse()?,
            "127.0.0.3".parse()?,
        ];
        assert_eq!(args.source_list(), want);
        Ok(())
    }
}
