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
