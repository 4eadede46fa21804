//! Reading the gateway's access log file in tests. Lines reach the file when the writer thread
//! writes a worker's buffer; with [`options`] the gateway logs a debug event for every such
//! write (`access log lines written`, with `lines` and `path`), and [`wait_lines`] waits for
//! those events instead of polling the file.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::gateway::{is, Driver, Gateway, Options};

/// A unique log file path under the temp dir (not created).
pub fn temp_log_path() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("tollgate-test-{}-{n}.log", std::process::id()))
}

/// Start options that make the access log writer report each write.
pub fn options(driver: Driver) -> Options {
    Options::new(driver).log_filter("info,tollgate::access_log=debug")
}

/// Waits until the gateway (started with [`options`]) has written `n` lines in all to `path`
/// since it started, then returns the file's lines parsed as JSON (panics at the deadline).
pub fn wait_lines(gw: &Gateway, path: &Path, n: u64, deadline: Duration) -> Vec<Value> {
    let shown = path.display().to_string();
    // Each event is looked at once, in order, so a running sum is exact.
    let written = Cell::new(0u64);
    gw.wait_for(
        |e| {
            if is(e, "access log lines written") && e["path"] == shown.as_str() {
                written.set(written.get() + e["lines"].as_u64().unwrap_or(0));
            }
            written.get() >= n
        },
        deadline,
    )
    .unwrap_or_else(|e| {
        panic!(
            "{} lines written to {shown}, expected {n}: {e}",
            written.get()
        )
    });
    read_lines(path)
}

/// The file's lines parsed as JSON, as they are now.
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
