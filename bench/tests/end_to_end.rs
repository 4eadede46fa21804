//! End-to-end tests of the built binary: `load` and `hold` against `origin` on loopback.
//!
//! They assert counts and correctness only, never speeds, because the test machine is shared
//! and slow; each run is about a second so the whole file stays well under 20 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate-bench");

/// An `origin` child process, killed when dropped so failing tests do not leak servers.
struct Origin {
    child: Child,
    addr: SocketAddr,
}

impl Origin {
    fn start(extra: &[&str]) -> Origin {
        let mut child = Command::new(BIN)
            .args(["origin", "--listen", "127.0.0.1:0", "--threads", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn origin");
        let stdout = child.stdout.take().expect("origin stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read origin banner");
        let addr = line
            .trim()
            .strip_prefix("origin listening on ")
            .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
            .parse()
            .expect("banner address");
        Origin { child, addr }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `load --json` with `args` and returns the parsed report.
fn load(url: &str, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["load", "--url", url, "--json", "--warmup", "0s"])
        .args(args)
        .output()
        .expect("run load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

fn assert_no_errors(report: &Value) {
    for kind in ["connect", "timeout", "io", "status_4xx", "status_5xx"] {
        assert_eq!(report["errors"][kind], 0, "{kind} errors in {report}");
    }
}

#[test]
fn closed_loop_against_origin() {
    let origin = Origin::start(&[]);
    let url = format!("http://{}/hello", origin.addr);
    let r = load(&url, &["-c", "4", "-t", "2", "-d", "1s"]);
    assert_no_errors(&r);
    let requests = r["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{r}");
    assert_eq!(r["duration_s"], 1.0);
    assert!(r["rps"].as_f64().expect("rps") > 0.0);
    // Every response is the same size, so bytes must be an exact multiple of requests.
    let per_response = r["bytes_per_s"].as_f64().expect("bytes") / requests as f64;
    assert!(per_response > 1024.0, "{r}");
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(r["latency_us"][k].as_u64().expect(k) > 0, "{k} in {r}");
    }
}

#[test]
fn chunked_origin_new_connections_and_request_bodies() {
    let origin = Origin::start(&["--chunked", "--body-bytes", "3000"]);
    let url = format!("http://{}/upload", origin.addr);
    let r = load(
        &url,
        &[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "500ms",
            "--method",
            "POST",
            "--body-bytes",
            "5000",
            "-H",
            "x-test: yes",
            "--new-connection-per-request",
        ],
    );
    assert_no_errors(&r);
    assert!(r["requests"].as_u64().expect("requests") > 0, "{r}");
}

#[test]
fn open_loop_sends_at_the_requested_rate() {
    let origin = Origin::start(&[]);
    let url = format!("http://{}/", origin.addr);
    let r = load(&url, &["-c", "4", "-t", "1", "-d", "1s", "--rate", "200"]);
    assert_no_errors(&r);
    let requests = r["requests"].as_u64().expect("requests");
    assert!((160..=240).contains(&requests), "expected ~200, {r}");
    assert_eq!(r["mode"], "open");
}

#[test]
fn nothing_listening_counts_connect_errors() {
    // Bind then drop to get a port that is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let r = load(
        &format!("http://127.0.0.1:{port}/"),
        &["-c", "2", "-t", "1", "-d", "300ms"],
    );
    assert_eq!(r["requests"], 0, "{r}");
    assert!(r["errors"]["connect"].as_u64().expect("connect") > 0, "{r}");
    assert_eq!(r["errors"]["io"], 0, "{r}");
}

#[test]
fn origin_answers_pipelined_requests_in_order() {
    let origin = Origin::start(&["--body-bytes", "5"]);
    let mut s = TcpStream::connect(origin.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // A GET, a POST whose body looks like a request (it must be skipped, not answered), and a
    // final request asking to close, all in one write.
    s.write_all(
        b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n\
POST /b HTTP/1.1\r\nhost: x\r\ncontent-length: 26\r\n\r\nGET /c HTTP/1.1\r\nhost: x\r\n\
GET /d HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .expect("write");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("read until close");
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
    assert_eq!(all.matches("content-length: 5\r\n").count(), 3, "{all}");
    assert!(
        all.ends_with("connection: close\r\ncontent-length: 5\r\n\r\nxxxxx"),
        "{all}"
    );
}

/// Runs `hold --json` against `url`, measuring `pid`, and returns the parsed report.
fn hold(url: &str, pid: u32, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args([
            "hold",
            "--url",
            url,
            "--json",
            "--settle",
            "0s",
            "--timeout",
            "3s",
        ])
        .args(["--pid", &pid.to_string()])
        .args(args)
        .output()
        .expect("run hold");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hold failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

#[test]
fn hold_keeps_connections_alive_across_holder_processes() {
    let origin = Origin::start(&[]);
    let url = format!("http://{}/held", origin.addr);
    // 200 > 120 per process, so two holder processes are needed.
    let r = hold(
        &url,
        origin.child.id(),
        &[
            "--counts",
            "200,50",
            "--per-process",
            "120",
            "--source-count",
            "2",
        ],
    );
    assert_eq!(r["mode"], "hold", "{r}");
    assert_eq!(r["holder_processes"], 2, "{r}");
    assert!(r["baseline_pss_kb"].as_u64().expect("baseline") > 0, "{r}");
    let steps = r["steps"].as_array().expect("steps");
    let requested: Vec<u64> = steps
        .iter()
        .map(|s| s["requested"].as_u64().expect("n"))
        .collect();
    assert_eq!(requested, [50, 200], "counts are measured ascending: {r}");
    for step in steps {
        assert_eq!(step["alive"], step["requested"], "{r}");
        assert_eq!(step["opened"], step["requested"], "{r}");
        assert_eq!(step["failed"], 0, "{r}");
        assert!(step["pss_kb"].as_u64().expect("pss") > 0, "{r}");
    }
    assert!(r["slope_bytes_per_conn"].is_number(), "{r}");
    assert_eq!(r["extrapolated"][0]["connections"], 250_000, "{r}");
    assert_eq!(r["extrapolated"][1]["connections"], 1_000_000, "{r}");
    assert!(
        !r["settings"].as_array().expect("settings").is_empty(),
        "{r}"
    );
}

#[test]
fn hold_against_a_closed_port_reports_failures() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // Measure this test process itself: any live PID will do.
    let r = hold(
        &format!("http://127.0.0.1:{port}/"),
        std::process::id(),
        &["--counts", "5,12", "--per-process", "8"],
    );
    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{r}");
    assert_eq!(steps[1]["requested"], 12, "{r}");
    assert_eq!(steps[1]["failed"], 12, "{r}");
    for step in steps {
        assert_eq!(step["alive"], 0, "{r}");
        assert_eq!(step["opened"], 0, "{r}");
    }
    assert!(r["slope_bytes_per_conn"].is_null(), "{r}");
}

/// `tollgate-bench ARGS` started through `sh` after `ulimit LIMIT` (e.g. `-Sn 256`), so it
/// starts with that open-files limit.
fn under_ulimit(limit: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit {limit} && exec \"$@\""))
        .arg("sh")
        .arg(BIN)
        .args(args);
    cmd
}

/// Output of `ulimit ARGS` in `sh` (a number: the limits here are never unlimited).
fn sh_ulimit(args: &str) -> usize {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {args}"))
        .output()
        .expect("run sh");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("ulimit {args}: {text:?}: {e}"))
}

/// Soft limit for the holders' tests, and connections above it (well below any hard limit:
/// they need about 600 more for connects in flight and the process).
const LOW_SOFT: usize = 256;
const ABOVE_SOFT: usize = 300;

/// Skips (true) where the hard limit could not hold `ABOVE_SOFT` connections anyway.
fn hard_limit_too_low() -> bool {
    assert_eq!(
        sh_ulimit(&format!("-Sn {LOW_SOFT} && ulimit -Sn")),
        LOW_SOFT,
        "the test's ulimit does not take effect"
    );
    let hard = sh_ulimit("-Hn");
    if hard < ABOVE_SOFT + 1000 {
        eprintln!("hard open-files limit {hard} too low for this test: skipped");
        return true;
    }
    false
}

#[test]
fn hold_raises_its_open_files_limit_above_the_soft_one() {
    if hard_limit_too_low() {
        return;
    }
    let origin = Origin::start(&[]);
    let url = format!("http://{}/held", origin.addr);
    let n = ABOVE_SOFT.to_string();
    let pid = origin.child.id().to_string();
    let args = [
        "hold",
        "--url",
        &url,
        "--pid",
        &pid,
        "--json",
        "--settle",
        "0s",
        "--timeout",
        "5s",
        "--counts",
        &n,
        "--per-process",
        &n,
    ];
    let out = under_ulimit(&format!("-Sn {LOW_SOFT}"), &args)
        .output()
        .expect("run hold");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hold failed: {stdout} {stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).expect("hold JSON");
    // One holder process with more connections than the soft limit it started with.
    assert_eq!(r["holder_processes"], 1, "{r}");
    let step = &r["steps"][0];
    assert_eq!(step["requested"], ABOVE_SOFT, "{r}");
    assert_eq!(step["opened"], ABOVE_SOFT, "{r}");
    assert_eq!(step["failed"], 0, "{r}");
    assert_eq!(step["alive"], ABOVE_SOFT, "{r}");
}

/// A holder started on its own under the low soft limit raises it itself, and holds more
/// connections than that limit allowed.
#[test]
fn holder_raises_its_own_open_files_limit() {
    if hard_limit_too_low() {
        return;
    }
    let origin = Origin::start(&[]);
    let url = format!("http://{}/held", origin.addr);
    let args = [
        "hold-child",
        "--url",
        &url,
        "--timeout",
        "5s",
        "--first-index",
        "0",
    ];
    let mut holder = under_ulimit(&format!("-Sn {LOW_SOFT}"), &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn hold-child");
    let mut stdin = holder.stdin.take().expect("holder stdin");
    let mut replies = BufReader::new(holder.stdout.take().expect("holder stdout"));
    let mut ask = |command: &str| {
        writeln!(stdin, "{command}").expect("command");
        stdin.flush().expect("flush");
        let mut line = String::new();
        replies.read_line(&mut line).expect("reply");
        line.trim().to_string()
    };
    assert_eq!(
        ask(&format!("open {ABOVE_SOFT}")),
        format!("opened {ABOVE_SOFT} 0")
    );
    // `sh` exec'd the holder, so its PID is the child's: its soft limit is the hard one now.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", holder.id())).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let n: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n[0], n[1], "{line}");
    assert!(n[0] > ABOVE_SOFT, "{line}");
    assert_eq!(ask("ping"), format!("alive {ABOVE_SOFT} 0"));
    writeln!(stdin, "exit").expect("exit");
    drop(stdin);
    assert!(holder.wait().expect("wait holder").success());
}

#[test]
fn hold_refuses_more_per_process_than_the_hard_limit_allows() {
    let own = std::process::id().to_string();
    let args = [
        "hold",
        "--url",
        "http://127.0.0.1:1/",
        "--pid",
        &own,
        "--counts",
        "5000",
        "--per-process",
        "5000",
    ];
    // `ulimit -n` sets the soft and the hard limit; anyone may lower them.
    let out = under_ulimit("-n 1000", &args).output().expect("run hold");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "hold succeeded: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for part in [
        "--per-process 5000 needs ",
        "(5000 connections + ",
        "RLIMIT_NOFILE is 1000 (the hard limit): use --per-process ",
        "or raise the hard limit",
    ] {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
}
