//! A per-worker pool of I/O buffers. A connection takes one when it has bytes to read and
//! gives it back when its request is done, so an idle keep-alive connection holds no buffer.
//!
//! The pool keeps up to `keep_max` free buffers of each kind for the next requests; a burst
//! of busy connections allocates more and frees them when it ends. When traffic pauses, the
//! pool lets go of its own free buffers too ([`BufferPool::shrink_when_paused`]), so a worker
//! that goes on holding many idle connections keeps no burst-sized pool.

use std::cell::{Cell, RefCell};
use std::ops::Range;

use crate::wire::http1::HeaderSpan;

/// A read buffer with the header-span scratch that parses it.
#[derive(Debug)]
pub struct IoBuf {
    /// Bytes read (head, then whatever followed it).
    pub data: Vec<u8>,
    /// Header spans of the head in `data`.
    pub headers: Vec<HeaderSpan>,
    /// Route parameter captures (byte ranges of the path).
    pub captures: Vec<Range<usize>>,
}

/// Free buffers of one worker.
#[derive(Debug)]
pub struct BufferPool {
    free: RefCell<Vec<IoBuf>>,
    plain: RefCell<Vec<Vec<u8>>>,
    capacity: usize,
    keep_max: usize,
    /// Buffers taken since the last [`Self::shrink_when_paused`] call.
    taken_lately: Cell<usize>,
    /// Buffers taken since the pool last shrank.
    taken_since_shrink: Cell<usize>,
    /// Consecutive calls of [`Self::shrink_when_paused`] without a buffer taken.
    quiet_calls: Cell<usize>,
}

/// Buffers used since the pool last shrank before a pause in traffic shrinks it again: a few
/// requests now and then do not empty the pool each time.
const RETURN_AFTER_TAKEN: usize = 64;

/// Calls of [`BufferPool::shrink_when_paused`] without a buffer taken before the pool shrinks:
/// a second at the worker's 50 ms sweep, so bursts a little apart reuse the pool.
const QUIET_CALLS_BEFORE_SHRINK: usize = 20;

/// Free buffers of each kind kept while traffic pauses: traffic that comes back refills the
/// pool in a few requests.
const KEEP_WHILE_PAUSED: usize = 4;

impl BufferPool {
    /// A pool of buffers of `capacity` bytes, keeping at most `keep_max` free ones of each kind.
    pub fn new(capacity: usize, keep_max: usize) -> Self {
        Self {
            free: RefCell::new(Vec::new()),
            plain: RefCell::new(Vec::new()),
            capacity,
            keep_max,
            taken_lately: Cell::new(0),
            taken_since_shrink: Cell::new(0),
            quiet_calls: Cell::new(0),
        }
    }

    /// Called periodically by the worker (every 50 ms). When no buffer was taken during the
    /// last [`QUIET_CALLS_BEFORE_SHRINK`] calls, after at least [`RETURN_AFTER_TAKEN`] were
    /// taken since the pool last shrank, the pool shrinks to [`KEEP_WHILE_PAUSED`] free buffers
    /// of each kind; returns whether it did. Short gaps between bursts keep the pool.
    pub fn shrink_when_paused(&self) -> bool {
        let lately = self.taken_lately.replace(0);
        let since = self.taken_since_shrink.get().saturating_add(lately);
        let quiet = if lately > 0 {
            0
        } else {
            self.quiet_calls.get() + 1
        };
        self.quiet_calls.set(quiet.min(QUIET_CALLS_BEFORE_SHRINK));
        if quiet < QUIET_CALLS_BEFORE_SHRINK || since < RETURN_AFTER_TAKEN {
            self.taken_since_shrink.set(since);
            return false;
        }
        self.taken_since_shrink.set(0);
        self.free.borrow_mut().truncate(KEEP_WHILE_PAUSED);
        self.plain.borrow_mut().truncate(KEEP_WHILE_PAUSED);
        true
    }

    fn count_taken(&self) {
        self.taken_lately.set(self.taken_lately.get() + 1);
    }

    /// Buffer size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A read buffer with header scratch (empty).
    pub fn take(&self) -> IoBuf {
        let popped = self.free.borrow_mut().pop();
        self.count_taken();
        popped.unwrap_or_else(|| IoBuf {
            data: Vec::with_capacity(self.capacity),
            headers: Vec::with_capacity(128),
            captures: Vec::with_capacity(8),
        })
    }

    /// Returns a read buffer.
    pub fn give(&self, mut buf: IoBuf) {
        let mut free = self.free.borrow_mut();
        if free.len() < self.keep_max && buf.data.capacity() == self.capacity {
            buf.data.clear();
            free.push(buf);
        }
    }

    /// A plain buffer (responses, upstream reads), empty.
    pub fn take_plain(&self) -> Vec<u8> {
        let popped = self.plain.borrow_mut().pop();
        self.count_taken();
        popped.unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Returns a plain buffer. Buffers that grew are dropped so the pool stays bounded.
    pub fn give_plain(&self, mut buf: Vec<u8>) {
        let mut plain = self.plain.borrow_mut();
        if plain.len() < self.keep_max && buf.capacity() == self.capacity {
            buf.clear();
            plain.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls the pause check as the sweep does while nothing is taken; whether the last
    /// call shrank the pool (none before it may).
    fn pause(pool: &BufferPool) -> bool {
        for _ in 1..QUIET_CALLS_BEFORE_SHRINK {
            assert!(!pool.shrink_when_paused(), "shrank before a full pause");
        }
        pool.shrink_when_paused()
    }

    fn free_counts(pool: &BufferPool) -> (usize, usize) {
        (pool.free.borrow().len(), pool.plain.borrow().len())
    }

    #[test]
    fn a_pause_after_traffic_shrinks_the_pool_once() {
        let pool = BufferPool::new(16 * 1024, 64);
        // 100 connections busy at once, each with a read buffer and a plain one.
        let reads: Vec<IoBuf> = (0..100).map(|_| pool.take()).collect();
        let plains: Vec<Vec<u8>> = (0..100).map(|_| pool.take_plain()).collect();
        assert!(
            !pool.shrink_when_paused(),
            "buffers were taken since the last call"
        );
        reads.into_iter().for_each(|b| pool.give(b));
        plains.into_iter().for_each(|b| pool.give_plain(b));
        assert_eq!(
            free_counts(&pool),
            (64, 64),
            "the pool keeps keep_max of each"
        );
        assert!(pause(&pool), "none taken for a full pause");
        assert_eq!(free_counts(&pool), (KEEP_WHILE_PAUSED, KEEP_WHILE_PAUSED));
        assert!(!pause(&pool), "once per pause");
    }

    #[test]
    fn steady_traffic_never_pauses() {
        let pool = BufferPool::new(16 * 1024, 64);
        for _ in 0..1_000 {
            for _ in 0..10 {
                let buf = pool.take();
                pool.give(buf);
            }
            assert!(!pool.shrink_when_paused());
        }
    }

    #[test]
    fn a_few_requests_now_and_then_do_not_empty_the_pool() {
        let pool = BufferPool::new(16 * 1024, 64);
        for _ in 0..RETURN_AFTER_TAKEN - 1 {
            let buf = pool.take_plain();
            pool.give_plain(buf);
            assert!(!pool.shrink_when_paused(), "taken since the last call");
            assert!(!pause(&pool), "paused, but fewer than the threshold since");
        }
        let buf = pool.take();
        pool.give(buf);
        assert!(!pool.shrink_when_paused());
        assert!(pause(&pool), "the threshold's worth, then a pause");
    }

    #[test]
    fn gaps_shorter_than_a_pause_keep_the_pool() {
        let pool = BufferPool::new(16 * 1024, 64);
        for _ in 0..50 {
            let bufs: Vec<IoBuf> = (0..100).map(|_| pool.take()).collect();
            bufs.into_iter().for_each(|b| pool.give(b));
            for _ in 1..QUIET_CALLS_BEFORE_SHRINK {
                assert!(!pool.shrink_when_paused(), "a gap, not a pause");
            }
            assert_eq!(free_counts(&pool).0, 64);
        }
    }
}
