//! `tollgate` command line: `run` serves a configuration, `check` validates one.

mod allocator;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tollgate::control::{Gateway, Options};
use tollgate_config::plan::DriverChoice;

/// tollgate: a thread-per-core io_uring API gateway.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the APIs of a configuration file (SIGHUP reloads it, SIGTERM drains and exits).
    Run {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// io driver; overrides `server.driver`. `auto` uses io_uring where available.
        #[arg(long, value_enum)]
        driver: Option<DriverArg>,
        /// Worker threads; overrides `server.workers` (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// TESTS ONLY: let a loopback control socket move the gateway's clock (its address is
        /// logged as `test clock control`). Never use in production.
        #[arg(long)]
        test_clock: bool,
    },
    /// Validate a configuration file and print the compiled listeners, APIs, stages and
    /// routes. Exits 0 when valid, 1 when not.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DriverArg {
    Auto,
    Uring,
    Epoll,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if !allocator::configured() {
        tracing::warn!(
            "mimalloc options not all set (MIMALLOC_* in the environment wins; or the bundled \
             mimalloc numbers its options differently): idle connections may keep more memory"
        );
    }
    match cli.command {
        Cmd::Check { config } => match tollgate_config::load(&config) {
            Ok(plan) => {
                print!("{}", plan.describe());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run {
            config,
            driver,
            workers,
            test_clock,
        } => {
            let driver = driver.map(|d| match d {
                DriverArg::Auto => DriverChoice::Auto,
                DriverArg::Uring => DriverChoice::Uring,
                DriverArg::Epoll => DriverChoice::Epoll,
            });
            let options = Options {
                config,
                driver,
                workers,
                test_clock,
            };
            match Gateway::start(options).and_then(Gateway::run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "fatal");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
