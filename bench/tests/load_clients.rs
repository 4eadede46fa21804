//! End-to-end tests of `load --header-list` and `--bind-count` against a tiny in-test server
//! that records, per TCP connection, its peer address and the header values it received, and
//! answers 429 to one of the values so the per-status counts of the report can be checked.
//!
//! Each connection's first request is recorded before it is answered, so every connection
//! that got a response is in the record by the time `load` exits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate-bench");

/// The header the tests spread over connections.
const HEADER: &str = "x-api-key";

/// The value the server refuses with 429.
const REFUSED: &str = "key-3";

/// Header values seen per connection (keyed by the client's address and port).
type Seen = Arc<Mutex<HashMap<SocketAddr, BTreeSet<String>>>>;

/// Starts the recording server on an ephemeral loopback port; its threads live as long as
/// the test process.
fn start_server() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = Arc::clone(&record);
            std::thread::spawn(move || serve(stream, &record));
        }
    });
    (addr, seen)
}

/// Answers GETs on one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, seen: &Seen) {
    let Ok(peer) = stream.peer_addr() else { return };
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut lines = BufReader::new(stream);
    let mut value = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some((name, v)) = line.split_once(':') {
            if name.eq_ignore_ascii_case(HEADER) {
                value = v.trim().to_string();
            }
            continue;
        }
        if line != "\r\n" {
            continue; // the request line
        }
        // End of a head (the bench sends GETs without bodies): record, then answer.
        let refused = value == REFUSED;
        seen.lock()
            .expect("record lock")
            .entry(peer)
            .or_default()
            .insert(std::mem::take(&mut value));
        let status = if refused {
            "429 Too Many Requests"
        } else {
            "200 OK"
        };
        let response = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Writes `key-0` .. `key-{n-1}` one per line, with blank lines the parser must skip.
fn key_file(n: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tb-keys-{}-{n}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    let text: String = (0..n).map(|i| format!("key-{i}\n\n")).collect();
    std::fs::write(&path, text).expect("write key file");
    path
}

/// Runs `load --json` with `args`; returns the exit status success, stdout and stderr.
fn load(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["load", "--url", url, "--json", "--warmup", "0s"])
        .args(args)
        .output()
        .expect("run load");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn load_ok(url: &str, args: &[&str]) -> Value {
    let (ok, stdout, stderr) = load(url, args);
    assert!(ok, "load failed: {stdout} {stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON {stdout:?}: {e}"))
}

/// The single value each connection sent (a connection never changes its value).
fn value_per_connection(seen: &Seen) -> BTreeMap<SocketAddr, String> {
    let seen = seen.lock().expect("record lock");
    seen.iter()
        .map(|(peer, values)| {
            assert_eq!(values.len(), 1, "{peer} sent {values:?}");
            (*peer, values.iter().next().cloned().unwrap_or_default())
        })
        .collect()
}

/// How many connections had each distinct value of `key`.
fn histogram<K: Ord + Clone>(keys: impl Iterator<Item = K>) -> BTreeMap<K, usize> {
    let mut counts = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_insert(0) += 1;
    }
    counts
}

/// The report's per-status counts must add up to `requests` and agree with the classes.
fn check_status_counts(r: &Value) -> (u64, u64) {
    let status = r["status"].as_object().expect("status map");
    let total: u64 = status.values().map(|n| n.as_u64().expect("count")).sum();
    assert_eq!(Some(total), r["requests"].as_u64(), "{r}");
    let ok = status.get("200").and_then(Value::as_u64).unwrap_or(0);
    let refused = status.get("429").and_then(Value::as_u64).unwrap_or(0);
    assert_eq!(ok + refused, total, "only 200 and 429 expected: {r}");
    assert_eq!(r["errors"]["status_4xx"].as_u64(), Some(refused), "{r}");
    for kind in ["connect", "timeout", "io", "status_5xx"] {
        assert_eq!(r["errors"][kind], 0, "{kind} errors in {r}");
    }
    (ok, refused)
}

#[test]
fn header_list_spreads_values_over_connections() {
    let (addr, seen) = start_server();
    let keys = key_file(4);
    let list = format!("{HEADER}:{}", keys.display());
    let r = load_ok(
        &format!("http://{addr}/"),
        &["-c", "8", "-t", "2", "-d", "1s", "--header-list", &list],
    );
    let _ = std::fs::remove_file(&keys);
    let per_conn = value_per_connection(&seen);
    assert_eq!(per_conn.len(), 8, "{per_conn:?}");
    // Connection i sends key-(i % 4): each of the 4 values on exactly 2 connections.
    let want: BTreeMap<String, usize> = (0..4).map(|i| (format!("key-{i}"), 2)).collect();
    assert_eq!(histogram(per_conn.values().cloned()), want);
    // Without --bind-count the kernel picks the source address: the listener's own.
    assert!(per_conn.keys().all(|p| p.ip() == addr.ip()), "{per_conn:?}");
    let (ok, refused) = check_status_counts(&r);
    assert!(ok > 0 && refused > 0, "{r}");
}

#[test]
fn bind_count_gives_distinct_source_addresses() {
    let (addr, seen) = start_server();
    let keys = key_file(4);
    let list = format!("{HEADER}:{}", keys.display());
    let r = load_ok(
        &format!("http://{addr}/"),
        &[
            "-c",
            "12",
            "-t",
            "2",
            "-d",
            "1s",
            "--header-list",
            &list,
            "--bind-count",
            "3",
        ],
    );
    let _ = std::fs::remove_file(&keys);
    check_status_counts(&r);
    let per_conn = value_per_connection(&seen);
    assert_eq!(per_conn.len(), 12, "{per_conn:?}");
    let ips: BTreeMap<IpAddr, usize> = histogram(per_conn.keys().map(SocketAddr::ip));
    let want: BTreeMap<IpAddr, usize> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|ip| (ip.parse().expect("ip"), 4))
        .collect();
    assert_eq!(ips, want);
    // Connection i uses address i % 3 and key i % 4, so all 12 pairs occur exactly once.
    let pairs: BTreeSet<(IpAddr, &String)> = per_conn.iter().map(|(p, v)| (p.ip(), v)).collect();
    assert_eq!(pairs.len(), 12, "{pairs:?}");
}

#[test]
fn bind_count_refuses_a_non_ipv4_loopback_target() {
    // Refused before any connection is attempted, so nothing needs to listen there.
    let (ok, stdout, stderr) = load("http://[::1]:9/", &["-d", "1s", "--bind-count", "2"]);
    assert!(!ok, "load succeeded: {stdout}");
    assert!(stderr.contains("IPv4 loopback"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn missing_or_empty_header_list_file_is_an_error() {
    let empty = key_file(0);
    for file in [empty.clone(), PathBuf::from("/nonexistent/keys.txt")] {
        let list = format!("{HEADER}:{}", file.display());
        let (ok, stdout, stderr) = load("http://127.0.0.1:9/", &["--header-list", &list]);
        assert!(!ok, "load succeeded: {stdout}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    }
    let _ = std::fs::remove_file(&empty);
}
