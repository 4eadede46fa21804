//! Reading the gateway's access log file in tests: lines appear when a worker hands its
//! buffer to the writer thread (every 50 ms), so readers wait for a line count with a deadline.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A unique log file path under the temp dir (not created).
pub fn temp_log_path() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("tollgate-test-{}-{n}.log", std::process::id()))
}

/// The file's lines parsed as JSON, once it has at least `n` (panics at the deadline).
pub fn wait_lines(path: &Path, n: usize, deadline: Duration) -> Vec<Value> {
    let end = Instant::now() + deadline;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() >= n {
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
        }
        assert!(
            Instant::now() < end,
            "{} has {} lines, expected {n}: {text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
