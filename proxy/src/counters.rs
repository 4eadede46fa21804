//! Per-worker operational counters: plain `Cell`s written only by their own worker, never
//! locked or contended. The metrics exporter (a later phase) merges them when scraped.
//!
//! Route counters are keyed by the route's stable identity (API id, stage, route key), so a
//! reload carries them over; each plan generation indexes them by its own route numbers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use std::time::Duration;
use tollgate_backends::wire::tls::HandshakeError;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is unbounded).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Cell<u64>; LATENCY_BOUNDS_US.len() + 1],
    sum_us: Cell<u64>,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].set(self.buckets[i].get() + 1);
        self.sum_us.set(self.sum_us.get().saturating_add(us));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Cell::get).sum()
    }

    /// Per-bucket counts (not cumulative).
    pub fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets.iter().map(Cell::get)
    }

    /// Sum of all observations, in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.get()
    }
}

/// Requests of one route (or of unmatched requests) on one worker.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    pub by_class: [Cell<u64>; 5],
    /// Time from head parsed to response written.
    pub latency: Histogram,
}

impl RouteCounters {
    /// Records a finished request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        self.by_class[class].set(self.by_class[class].get() + 1);
        self.latency.record(elapsed);
    }

    /// Requests recorded.
    pub fn total(&self) -> u64 {
        self.by_class.iter().map(Cell::get).sum()
    }
}

/// Connection and reload counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Connections accepted and served.
    pub accepted: Cell<u64>,
    /// Connections closed at once because the worker was at its connection bound.
    pub rejected_at_limit: Cell<u64>,
    /// Connections refused at once because the process was at its open-files limit.
    pub rejected_at_file_limit: Cell<u64>,
    /// Connections refused for a missing or invalid PROXY header, or from a source that may
    /// not send one.
    pub rejected_proxy_protocol: Cell<u64>,
    /// Plans applied (the first counts).
    pub plans_applied: Cell<u64>,
    /// Requests whose head did not parse (400/414/431/501).
    pub malformed: Cell<u64>,
    /// Requests shed under overload, by priority tier.
    pub shed_by_tier: [Cell<u64>; 10],
    /// Connections (or requests behind trusted proxies) refused by the userspace pre-filter:
    /// deny list, block, connection rate.
    pub prefilter_refused: [Cell<u64>; 3],
    /// TLS handshakes, per listener (by name: kept across reloads).
    pub tls: RefCell<Vec<Rc<ListenerTls>>>,
}

/// One listener's TLS handshake counts on a worker.
#[derive(Debug)]
pub struct ListenerTls {
    /// The listener's name.
    pub listener: Rc<str>,
    /// Handshakes completed.
    pub handshakes: Cell<u64>,
    /// Of those, the ones that resumed a session.
    pub resumptions: Cell<u64>,
    /// Handshakes that failed, by reason (the order of [`HandshakeError::ALL`]).
    pub failed: [Cell<u64>; HandshakeError::ALL.len()],
}

impl WorkerCounters {
    /// The TLS counters of `listener` (made at its first handshake on this worker).
    pub fn tls_of(&self, listener: &Rc<str>) -> Rc<ListenerTls> {
        let mut all = self.tls.borrow_mut();
        if let Some(found) = all.iter().find(|t| *t.listener == **listener) {
            return found.clone();
        }
        let made = Rc::new(ListenerTls {
            listener: listener.clone(),
            handshakes: Cell::new(0),
            resumptions: Cell::new(0),
            failed: Default::default(),
        });
        all.push(made.clone());
        made
    }
}

/// Adds one to a counter cell.
pub fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_right_bucket_and_classes_count() {
        let c = RouteCounters::default();
        c.record(200, Duration::from_micros(90));
        c.record(404, Duration::from_micros(100));
        c.record(502, Duration::from_secs(60));
        let buckets: Vec<u64> = c.latency.buckets().collect();
        assert_eq!(buckets[0], 2, "<=100us");
        assert_eq!(buckets[LATENCY_BOUNDS_US.len()], 1, "+Inf");
        assert_eq!(c.by_class[1].get(), 1);
        assert_eq!(c.by_class[3].get(), 1);
        assert_eq!(c.by_class[4].get(), 1);
        assert_eq!(c.total(), 3);
    }
}
