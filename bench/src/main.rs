//! `tollgate-bench`: tollgate's bundled load generator and fixed-response origin.
//!
//! * `origin` serves a fixed HTTP/1.1 response (thread-per-core, `SO_REUSEPORT`), to stand in
//!   for the upstream behind tollgate.
//! * `load` drives closed-loop or open-loop (`--rate`, coordinated-omission corrected) load
//!   and reports throughput, errors by kind, counts per status and latency percentiles, as a
//!   table or JSON. Connections can carry a header value each from a list (`--header-list`,
//!   e.g. API keys) and bind one of N loopback source addresses (`--bind-count`). With `--tls`
//!   (or an https:// URL) it speaks TLS 1.3 through the gateway's own rustls adapter and counts
//!   full and resumed handshakes (`--tls-resume`).
//! * `hold` holds idle keep-alive connections (in `hold-child` holder processes) and measures
//!   the gateway's PSS per connection at several counts.
//!
//! * `compare` runs the same load against tollgate, nginx and HAProxy (pinned, interleaved
//!   rounds) and reports requests per CPU-second of each proxy, throughput and latency.

mod cli;
mod compare;
mod compare_procs;
mod compare_report;
mod connect;
mod hold;
mod hold_child;
mod hold_report;
mod http;
mod load;
mod nofile;
mod origin;
mod recv;
mod report;
mod requests;
mod runtime;
mod stats;
mod tls_client;

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser as _;

use cli::{Cli, Command, LoadArgs, Target};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Origin(args) => origin::run(&args),
        Command::Load(args) => run_load(&args),
        Command::Hold(args) => hold::run(&args),
        Command::HoldChild(args) => hold_child::run(&args),
        Command::Compare(args) => compare::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_load(args: &LoadArgs) -> Result<()> {
    let (target, https) = Target::parse_any(&args.url)?;
    let tls = if args.tls || https {
        Some(load::TlsPlan {
            config: tls_client::client_config(args.ca.as_deref())?,
            name: tls_client::server_name(args.sni.as_deref(), &target.host)?,
            resume: args.tls_resume,
        })
    } else {
        if args.sni.is_some() || args.ca.is_some() || args.tls_resume {
            bail!("--sni, --ca and --tls-resume need --tls or an https:// URL");
        }
        None
    };
    let threads = args
        .threads
        .unwrap_or_else(cli::default_threads)
        .clamp(1, args.connections.max(1));
    let values = match &args.header_list {
        Some(list) => Some(requests::read_values(&list.file)?),
        None => None,
    };
    let spec = requests::RequestSpec {
        method: &args.method,
        path: &target.path,
        host: &target.host,
        headers: &args.headers,
        body_bytes: args.body_bytes,
        close: args.new_connection_per_request,
    };
    let list = args
        .header_list
        .as_ref()
        .zip(values.as_deref())
        .map(|(l, v)| (l.name.as_str(), v));
    let plan = load::Plan {
        addr: target.addr,
        requests: requests::build_requests(&spec, list),
        bind_count: args.bind_count,
        head_request: args.method.eq_ignore_ascii_case("HEAD"),
        connections: args.connections,
        threads,
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        new_connection_per_request: args.new_connection_per_request,
        timeout: args.timeout,
        tls,
    };
    let tls = plan.tls.is_some();
    let (stats, load_cores) = load::run(plan)?;
    let mut summary =
        report::Summary::new(&stats, args.duration, args.connections, threads, args.rate)
            .with_tls(tls, &stats);
    summary.load_cores = load_cores;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        println!("{}", summary.to_table());
    }
    Ok(())
}
