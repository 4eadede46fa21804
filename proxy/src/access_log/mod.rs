//! The access log: one line per request, in API Gateway's `$context` vocabulary, written off
//! the workers' hot path.
//!
//! Each worker formats lines into its own [`WorkerLog`] buffer (no locks, no allocation) and
//! hands the whole buffer to the writer thread when it reaches the configured size, and on the
//! worker's 50 ms tick. The hand-off never blocks: when the writer's queue is full the chunk
//! is dropped and its lines counted, so a slow disk costs log lines, not latency.
//!
//! ## Key components
//! - [`capture`]: the request's part of a line, copied from the head before the body overwrites it.
//! - [`line`]: formatting a [`Record`] as one JSON (or template) line.
//! - [`writer`]: the writer thread and its control handle ([`LogWriter`]) and the workers'
//!   queue end ([`LogSender`]).

pub mod capture;
pub mod line;
pub mod writer;

use std::cell::{Cell, RefCell};

use tollgate_config::access_log::LineFormat;

pub use line::{write_line, Record};
pub use writer::{LogSender, LogWriter};

use writer::Chunk;

/// Room beyond `buffer_bytes` allocated up front: the line that crosses the threshold is
/// written before the hand-off, and this keeps it from reallocating the buffer.
const LINE_SLACK: usize = 4096;

/// One worker's access log buffer. Used only by its own worker thread.
#[derive(Debug)]
pub struct WorkerLog {
    buffer: RefCell<Vec<u8>>,
    /// Lines in `buffer`.
    lines: Cell<u64>,
    dropped: Cell<u64>,
    sender: LogSender,
    buffer_bytes: usize,
}

impl WorkerLog {
    /// A buffer that hands off once it holds `buffer_bytes` (0: every line at once).
    pub fn new(sender: LogSender, buffer_bytes: usize) -> Self {
        WorkerLog {
            buffer: RefCell::new(Vec::with_capacity(capacity(buffer_bytes))),
            lines: Cell::new(0),
            dropped: Cell::new(0),
            sender,
            buffer_bytes,
        }
    }

    /// Formats and appends one line; if the buffer reached `buffer_bytes`, hands it off now.
    pub fn record(&self, format: &LineFormat, record: &Record<'_>) {
        let full = {
            let mut buffer = self.buffer.borrow_mut();
            write_line(&mut buffer, format, record);
            buffer.len() >= self.buffer_bytes
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush();
        }
    }

    /// Hands off whatever is buffered (called by the worker every 50 ms and on drain). Never
    /// blocks: try_send; on Full the lines are counted as dropped.
    pub fn flush(&self) {
        let lines = self.lines.replace(0);
        if lines == 0 {
            return;
        }
        let mut buffer = self.buffer.borrow_mut();
        if self.sender.is_full() {
            // Reuse the buffer rather than take a new one only to drop the chunk.
            buffer.clear();
            self.count_dropped(lines);
            return;
        }
        let fresh = self.sender.buffer(capacity(self.buffer_bytes));
        let data = std::mem::replace(&mut *buffer, fresh);
        if let Err(chunk) = self.sender.try_send(Chunk { data, lines }) {
            // Another worker took the last slot (or the writer stopped): keep the old buffer,
            // whose capacity is proven, and let the fresh one go.
            let mut data = chunk.data;
            data.clear();
            *buffer = data;
            self.count_dropped(lines);
        }
    }

    /// Lines dropped so far (exported as a metric).
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    fn count_dropped(&self, lines: u64) {
        self.dropped.set(self.dropped.get() + lines);
    }
}

impl Drop for WorkerLog {
    /// A worker that exits without a final flush still hands off its last lines.
    fn drop(&mut self) {
        self.flush();
    }
}

fn capacity(buffer_bytes: usize) -> usize {
    buffer_bytes.saturating_add(LINE_SLACK)
}

/// A path under the temp directory unique to this process and call.
#[cfg(test)]
pub(crate) fn test_path(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "tollgate-access-log-{}-{nanos}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::net::{IpAddr, Ipv4Addr};
    use tollgate_config::access_log::{Field, LogTarget};

    fn format() -> LineFormat {
        LineFormat::Fields(vec![Field::RequestId, Field::Status, Field::Path])
    }

    fn record(id: &[u8]) -> Record<'_> {
        Record {
            request_id: id,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            request_time_epoch_ms: 1_700_000_000_000,
            http_method: b"GET",
            route_key: "GET /",
            path: b"/",
            protocol: "HTTP/1.1",
            status: 200,
            response_length: 0,
            response_latency_ms: 1,
            integration_latency_ms: None,
            integration_status: None,
            stage: "prod",
            api_id: "api",
            domain_name: b"localhost",
            user_agent: b"test",
            error_message: "",
            tls: None,
        }
    }

    fn ids_in(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                v["requestId"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn chunk_ids(chunk: &Chunk) -> Vec<String> {
        let text = std::str::from_utf8(&chunk.data).unwrap();
        let ids = ids_in(text);
        assert_eq!(ids.len() as u64, chunk.lines);
        ids
    }

    #[test]
    fn full_queue_drops_and_counts_lines() {
        let (sender, rx) = LogSender::for_test(1);
        let log = WorkerLog::new(sender, 1 << 20);
        for id in ["a", "b", "c"] {
            log.record(&format(), &record(id.as_bytes()));
        }
        log.flush();
        assert_eq!(log.dropped(), 0);
        for id in ["d", "e"] {
            log.record(&format(), &record(id.as_bytes()));
        }
        log.flush();
        assert_eq!(log.dropped(), 2);
        for id in ["f", "g", "h", "i"] {
            log.record(&format(), &record(id.as_bytes()));
        }
        log.flush();
        assert_eq!(log.dropped(), 6);
        log.flush(); // nothing buffered: nothing dropped
        assert_eq!(log.dropped(), 6);

        assert_eq!(chunk_ids(&rx.try_recv().unwrap()), ["a", "b", "c"]);
        // The dropped lines are gone from the buffer too.
        log.record(&format(), &record(b"j"));
        log.flush();
        assert_eq!(log.dropped(), 6);
        assert_eq!(chunk_ids(&rx.try_recv().unwrap()), ["j"]);
        assert!(rx.try_recv().is_err());

        // With the writer gone every flushed line counts as dropped.
        drop(rx);
        for id in ["k", "l"] {
            log.record(&format(), &record(id.as_bytes()));
        }
        log.flush();
        assert_eq!(log.dropped(), 8);
    }

    #[test]
    fn hands_off_when_the_buffer_fills() {
        let mut one = Vec::new();
        write_line(&mut one, &format(), &record(b"x"));
        let (sender, rx) = LogSender::for_test(8);
        let log = WorkerLog::new(sender, 2 * one.len());
        log.record(&format(), &record(b"1"));
        assert!(rx.try_recv().is_err());
        log.record(&format(), &record(b"2"));
        assert_eq!(chunk_ids(&rx.try_recv().unwrap()), ["1", "2"]);
        log.record(&format(), &record(b"3"));
        assert!(rx.try_recv().is_err());
        drop(log); // flushes on drop
        assert_eq!(chunk_ids(&rx.try_recv().unwrap()), ["3"]);
    }

    #[test]
    fn two_workers_write_every_line() {
        let path = test_path("two-workers");
        let (writer, sender) = LogWriter::start(LogTarget::File(path.clone())).unwrap();
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    // Small buffer: several hand-offs per worker, but fewer than the queue
                    // holds, so nothing can be dropped however slow the writer is.
                    let log = WorkerLog::new(sender, 1024);
                    for i in 0..100 {
                        let id = format!("w{w}-{i}");
                        log.record(&format(), &record(id.as_bytes()));
                    }
                    log.flush();
                    log.dropped()
                })
            })
            .collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap(), 0);
        }
        writer.stop();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids = ids_in(&text);
        assert_eq!(ids.len(), 200);
        let unique: BTreeSet<String> = ids.into_iter().collect();
        let want: BTreeSet<String> = (0..2)
            .flat_map(|w| (0..100).map(move |i| format!("w{w}-{i}")))
            .collect();
        assert_eq!(unique, want);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn reopen_after_rotation_starts_a_new_file() {
        let path = test_path("rotate");
        let rotated = path.with_extension("1");
        let (writer, sender) = LogWriter::start(LogTarget::File(path.clone())).unwrap();
        let log = WorkerLog::new(sender, 1 << 16);
        for id in ["old-1", "old-2", "old-3"] {
            log.record(&format(), &record(id.as_bytes()));
        }
        log.flush();
        std::fs::rename(&path, &rotated).unwrap();
        writer.reopen();
        for id in ["new-1", "new-2"] {
            log.record(&format(), &record(id.as_bytes()));
        }
        log.flush();
        assert_eq!(log.dropped(), 0);
        writer.stop();
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert_eq!(ids_in(&old), ["old-1", "old-2", "old-3"]);
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(ids_in(&new), ["new-1", "new-2"]);
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&rotated).unwrap();
    }
}
