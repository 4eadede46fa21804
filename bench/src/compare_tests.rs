//! Unit tests of `compare`'s settings, load arguments and parsing of `load --json` output.

use clap::Parser as _;

use super::*;
use crate::cli::{Cli, Command as Cmd};

fn settings(args: &[&str]) -> Result<Settings> {
    let cli = Cli::try_parse_from([&["b", "compare"], args].concat())?;
    let Cmd::Compare(c) = cli.command else {
        bail!("not compare");
    };
    Settings::from_args(&c)
}

#[test]
fn defaults_quick_and_scenarios() -> Result<()> {
    let all: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        settings(&[])?,
        Settings {
            rounds: 5,
            seconds: 10.0,
            scenarios: all
        }
    );
    let q = settings(&["--quick", "--scenarios", "newconn,plain"])?;
    assert_eq!((q.rounds, q.seconds), (1, 3.0));
    assert_eq!(q.scenarios, ["plain", "newconn"]); // canonical order
    assert_eq!(settings(&["--quick", "--rounds", "2"])?.rounds, 2);
    let e = settings(&["--scenarios", "latency"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("add plain"), "{e}");
    assert!(settings(&["--scenarios", "ratelimit"]).is_err());
    assert!(settings(&["--rounds", "0"]).is_err());
    Ok(())
}

#[test]
fn scenario_load_args() {
    let joined = |s, r| load_args(s, 8090, 3.0, r).join(" ");
    let plain = joined("plain", None);
    assert!(
        plain.starts_with("load --url http://127.0.0.1:8090/plain/1k --json"),
        "{plain}"
    );
    assert!(
        plain.contains("--connections 64 --duration 3s --warmup 1s"),
        "{plain}"
    );
    assert!(joined("post16k", None).ends_with("--method POST --body-bytes 16384"));
    assert!(joined("newconn", None).ends_with("--new-connection-per-request"));
    assert!(joined("latency", Some(12345.4)).ends_with("--rate 12345"));
    assert!(!joined("plain", Some(5.0)).contains("--rate"));
}

#[test]
fn parses_load_json() -> Result<()> {
    let v: Value = serde_json::from_str(
        r#"{"mode":"open","rps":2000.0,"target_rps":2000.0,
            "errors":{"connect":1,"timeout":2,"io":0,"status_4xx":0,"status_5xx":3,"status_other":0},
            "latency_us":{"p50":70,"p90":90,"p99":180,"p999":400,"max":900}}"#,
    )?;
    let r = run_from_load_json(&v, "latency", 0.25, Some(2000.0));
    assert_eq!((r.rps, r.req_per_cpu_s), (2000.0, 8000.0));
    assert_eq!((r.p50_us, r.p99_us, r.p999_us, r.errors), (70, 180, 400, 6));
    assert_eq!(r.target_rps, Some(2000.0));
    assert!(run_from_load_json(&v, "plain", 0.0, None)
        .req_per_cpu_s
        .is_nan());
    Ok(())
}
