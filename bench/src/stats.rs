//! Measurement state: counters, error kinds and an HdrHistogram of latencies.
//!
//! Each connection task owns its own [`Stats`] (no shared cells on the hot path); tasks are
//! merged per thread and threads are merged on the main thread when the run ends.
//!
//! Besides the status classes under [`Errors`], every status code is counted on its own
//! ([`Stats::statuses`]), so a 429 from a rate limiter is told apart from other 4xx.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency tracked exactly; larger values are clamped (an hour, in µs).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Why a request did not produce a usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connect failed (refused, unreachable, ...).
    Connect,
    /// No complete response before the per-request timeout.
    Timeout,
    /// Write, read, reset, early close or an unparseable response.
    Io,
    /// The TLS handshake failed (refused, no common version or cipher, closed mid-way).
    Tls,
}

/// Error counts by kind; field names are part of the JSON output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub io: u64,
    /// TLS handshakes that failed (`load --tls`; always 0 without it).
    pub tls: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Responses that are neither 2xx/3xx nor 4xx/5xx (1xx or invalid codes).
    pub status_other: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect
            + self.timeout
            + self.io
            + self.tls
            + self.status_4xx
            + self.status_5xx
            + self.status_other
    }

    fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.io += o.io;
        self.tls += o.tls;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.status_other += o.status_other;
    }
}

#[derive(Debug, Clone)]
pub struct Stats {
    /// Complete responses inside the measured window, whatever their status.
    pub requests: u64,
    /// Head plus body bytes of those responses.
    pub bytes: u64,
    pub errors: Errors,
    /// Responses per status code, in first-seen order. A run sees a handful of codes, so a
    /// linear scan (usually hitting the first entry) beats hashing on the hot path.
    pub statuses: Vec<(u16, u64)>,
    /// Latency in µs, from send (closed loop) or intended send (open loop) to full response.
    pub latency: Histogram<u64>,
    /// TLS handshakes completed inside the measured window (`load --tls`).
    pub handshakes: u64,
    /// Of those, the ones that resumed a session (no certificate was sent).
    pub handshakes_resumed: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        // 3 significant digits keeps the histogram small (tens of KiB) while resolving 0.1 %.
        let latency =
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid");
        Self {
            requests: 0,
            bytes: 0,
            errors: Errors::default(),
            statuses: Vec::new(),
            latency,
            handshakes: 0,
            handshakes_resumed: 0,
        }
    }

    /// Records a completed TLS handshake.
    pub fn handshake(&mut self, resumed: bool) {
        self.handshakes += 1;
        self.handshakes_resumed += u64::from(resumed);
    }

    /// Records a complete response.
    pub fn response(&mut self, status: u16, bytes: u64, latency_us: u64) {
        self.requests += 1;
        self.bytes += bytes;
        self.latency.saturating_record(latency_us.max(1));
        self.count_status(status, 1);
        match status {
            200..=399 => {}
            400..=499 => self.errors.status_4xx += 1,
            500..=599 => self.errors.status_5xx += 1,
            _ => self.errors.status_other += 1,
        }
    }

    /// Responses with `status`, 0 if none was seen.
    #[cfg(test)]
    pub fn status_count(&self, status: u16) -> u64 {
        self.statuses
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    fn count_status(&mut self, status: u16, n: u64) {
        match self.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += n,
            None => self.statuses.push((status, n)),
        }
    }

    pub fn error(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.errors.connect += 1,
            ErrorKind::Timeout => self.errors.timeout += 1,
            ErrorKind::Io => self.errors.io += 1,
            ErrorKind::Tls => self.errors.tls += 1,
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.errors.merge(&other.errors);
        self.handshakes += other.handshakes;
        self.handshakes_resumed += other.handshakes_resumed;
        for &(status, n) in &other.statuses {
            self.count_status(status, n);
        }
        // Same bounds on both sides, so adding cannot fail; saturate rather than panic anyway.
        if self.latency.add(&other.latency).is_err() {
            for v in other.latency.iter_recorded() {
                self.latency
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_classify() {
        let mut a = Stats::new();
        a.response(200, 100, 50);
        a.response(404, 10, 70);
        let mut b = Stats::new();
        b.response(503, 10, 1_000);
        b.response(101, 10, 0);
        b.response(200, 10, 5);
        b.error(ErrorKind::Connect);
        b.error(ErrorKind::Timeout);
        b.error(ErrorKind::Io);
        b.error(ErrorKind::Tls);
        b.handshake(true);
        b.handshake(false);
        a.handshake(false);
        a.merge(&b);
        assert_eq!(
            (a.handshakes, a.handshakes_resumed, a.errors.tls),
            (3, 1, 1)
        );
        assert_eq!((a.requests, a.bytes), (5, 140));
        assert_eq!(
            (
                a.status_count(200),
                a.status_count(404),
                a.status_count(429)
            ),
            (2, 1, 0)
        );
        assert_eq!(a.statuses.len(), 4, "{:?}", a.statuses);
        let e = a.errors;
        assert_eq!(
            (
                e.connect,
                e.timeout,
                e.io,
                e.status_4xx,
                e.status_5xx,
                e.status_other
            ),
            (1, 1, 1, 1, 1, 1)
        );
        assert_eq!(e.total(), 7);
        assert_eq!(a.latency.len(), 5);
        assert!(a.latency.max() >= 1_000);
    }
}
