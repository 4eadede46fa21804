//! `tollgate-bench`: tollgate's load generator, origin server and peer comparisons.
//!
//! A skeleton until the bench issue fills it (open- and closed-loop load, `origin` and `hold`
//! modes, `compare` against nginx and HAProxy). Until then docs/BENCHMARKS.md records runs
//! made with wrk against an nginx origin, following the method in the benchmarking notes.

use std::process::ExitCode;

const USAGE: &str = "tollgate-bench: load generator, origin and comparisons (not built yet).\n\
Until then, measure with wrk as docs/BENCHMARKS.md describes.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("{USAGE}");
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
