//! Helpers for tests of API keys, usage plans, throttles and quotas: a state directory per
//! test, the test clock's control socket, and requests carrying a key.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::client::{request, Response};
use crate::gateway::{is, Gateway};

/// A fresh state directory path (not created); removed by [`StateDir`]'s drop.
pub struct StateDir(pub PathBuf);

impl StateDir {
    /// A new, unused path under the temp dir.
    pub fn new() -> StateDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        StateDir(std::env::temp_dir().join(format!("tollgate-state-{}-{n}", std::process::id())))
    }

    /// The path as TOML-ready text.
    pub fn toml(&self) -> String {
        self.0.display().to_string()
    }
}

impl Default for StateDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test clock's control address (the gateway must run with `--test-clock`).
pub fn clock_control(gw: &Gateway) -> SocketAddr {
    let event = gw
        .wait_for(|e| is(e, "test clock control"), Duration::from_secs(5))
        .expect("test clock control event");
    event["addr"]
        .as_str()
        .expect("addr")
        .parse()
        .expect("socket address")
}

/// Moves the gateway's clock forward by `ms`; returns the new time in ms since the epoch.
pub fn advance_clock(control: SocketAddr, ms: u64) -> u64 {
    let mut s = TcpStream::connect(control).expect("connect clock control");
    write!(
        s,
        "POST /clock?advance_ms={ms} HTTP/1.1\r\nHost: clock\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split("\r\n\r\n").nth(1).expect("body");
    let v: serde_json::Value = serde_json::from_str(body).expect("json");
    v["now_ms"].as_u64().expect("now_ms")
}

/// `GET path` with `x-api-key: key` (no key header when None).
pub fn get_with_key(addr: SocketAddr, path: &str, key: Option<&str>) -> Response {
    let key_line = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{key_line}Connection: close\r\n\r\n"),
    )
}
