//! A per-worker pool of I/O buffers. A connection takes one when it has bytes to read and
//! gives it back when its request is done, so an idle keep-alive connection holds no buffer.
//!
//! The pool keeps up to `keep_max` free buffers of each kind for the next requests; a burst
//! of busy connections allocates more and frees them when it ends. When traffic pauses, the
//! pool lets go of its own free buffers too ([`BufferPool::shrink_when_paused`]), so a worker
//! that goes on holding many idle connections keeps no burst-sized pool.
//!
//! Plain buffers that must hold more than the pool's buffer size (a request body read whole
//! before the upstream is contacted, a response head with a full upstream read behind it)
//! grow through the pool ([`BufferPool::grow_plain`]) into a second size class: a few free
//! buffers of up to eight times the size, powers of two, reused by the next large body
//! instead of a fresh allocation each time. The class is emptied at every pause in traffic,
//! so it costs idle workers nothing.

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
    /// Free plain buffers larger than `capacity`, up to `LARGE_FACTOR * capacity`.
    large: RefCell<Vec<Vec<u8>>>,
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

/// The largest buffer the large class keeps, in pool buffer sizes: with 16 KiB buffers,
/// 128 KiB, which holds a head and the default `body_buffer_bytes` (64 KiB) plus the read
/// that crosses it. Larger buffers (bodies buffered whole) are freed when given back.
const LARGE_FACTOR: usize = 8;

/// Free buffers the large class keeps at most (fewer when `keep_max` is smaller).
const LARGE_KEPT: usize = 8;

impl BufferPool {
    /// A pool of buffers of `capacity` bytes, keeping at most `keep_max` free ones of each kind.
    pub fn new(capacity: usize, keep_max: usize) -> Self {
        Self {
            free: RefCell::new(Vec::new()),
            plain: RefCell::new(Vec::new()),
            large: RefCell::new(Vec::new()),
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
    /// of each kind. Short gaps between bursts keep the pool. The large class is emptied at
    /// every pause, however little traffic came before it. Returns whether any free buffer
    /// was let go.
    pub fn shrink_when_paused(&self) -> bool {
        let lately = self.taken_lately.replace(0);
        let since = self.taken_since_shrink.get().saturating_add(lately);
        let quiet = if lately > 0 {
            0
        } else {
            self.quiet_calls.get() + 1
        };
        self.quiet_calls.set(quiet.min(QUIET_CALLS_BEFORE_SHRINK));
        // Exactly once per pause: the count stays capped above the threshold until a take.
        let large_freed = quiet == QUIET_CALLS_BEFORE_SHRINK && {
            let mut large = self.large.borrow_mut();
            let had = !large.is_empty();
            large.clear();
            had
        };
        if quiet < QUIET_CALLS_BEFORE_SHRINK || since < RETURN_AFTER_TAKEN {
            self.taken_since_shrink.set(since);
            return large_freed;
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

    /// Returns a plain buffer. One that grew goes to the large class when it is no larger than
    /// [`LARGE_FACTOR`] buffer sizes; the pool stays bounded: buffers beyond what a class keeps
    /// are dropped.
    pub fn give_plain(&self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        let (mut class, keep) = if capacity == self.capacity {
            (self.plain.borrow_mut(), self.keep_max)
        } else if capacity > self.capacity && capacity <= self.large_max() {
            (self.large.borrow_mut(), self.keep_max.min(LARGE_KEPT))
        } else {
            return;
        };
        if class.len() < keep {
            buf.clear();
            class.push(buf);
        }
    }

    /// Makes room for `additional` more bytes in `buf`, a plain buffer, without growing it in
    /// place: when it lacks room, the smallest free buffer of the large class that has enough
    /// takes over its bytes, or else a new one sized to the next power of two (at least two
    /// buffer sizes), and `buf`'s old buffer goes back to the pool. Needs beyond the large
    /// class grow the buffer in place (it is freed when given back).
    pub fn grow_plain(&self, buf: &mut Vec<u8>, additional: usize) {
        let needed = buf.len().saturating_add(additional);
        if needed <= buf.capacity() {
            return;
        }
        if needed > self.large_max() {
            buf.reserve(additional);
            return;
        }
        let reused = {
            let mut large = self.large.borrow_mut();
            let fitting = (0..large.len())
                .filter(|&i| large[i].capacity() >= needed)
                .min_by_key(|&i| large[i].capacity());
            fitting.map(|i| large.swap_remove(i))
        };
        let mut bigger = reused.unwrap_or_else(|| {
            let size = needed.next_power_of_two().max(2 * self.capacity);
            Vec::with_capacity(size.min(self.large_max()))
        });
        bigger.extend_from_slice(buf);
        let old = std::mem::replace(buf, bigger);
        self.give_plain(old);
    }

    /// The largest buffer the large class keeps.
    fn large_max(&self) -> usize {
        self.capacity.saturating_mul(LARGE_FACTOR)
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

    fn large_capacities(pool: &BufferPool) -> Vec<usize> {
        pool.large.borrow().iter().map(Vec::capacity).collect()
    }

    #[test]
    fn a_large_body_reuses_the_buffer_the_last_one_grew() {
        let pool = BufferPool::new(16 * 1024, 64);
        let mut out = pool.take_plain();
        out.extend_from_slice(b"head");
        pool.grow_plain(&mut out, 100);
        assert_eq!(out.capacity(), 16 * 1024, "room enough: unchanged");
        pool.grow_plain(&mut out, 60 * 1024);
        assert_eq!(out, b"head", "the bytes move over");
        assert_eq!(out.capacity(), 64 * 1024, "sized to a power of two");
        assert_eq!(free_counts(&pool).1, 1, "the small buffer went back");
        let grown = out.as_ptr();
        pool.give_plain(out);
        assert_eq!(large_capacities(&pool), [64 * 1024]);

        // The next large body gets the same allocation; a small request does not take it.
        let mut next = pool.take_plain();
        assert_eq!(next.capacity(), 16 * 1024);
        next.extend_from_slice(&[7; 1000]);
        pool.grow_plain(&mut next, 50 * 1024);
        assert_eq!(next.as_ptr(), grown, "reused, not allocated");
        assert_eq!(next, [7; 1000]);
        assert!(large_capacities(&pool).is_empty());

        // A buffer that grew by itself (not through the pool) is kept as well, and the
        // smallest one that fits is handed out.
        let mut by_itself = pool.take_plain();
        by_itself.extend_from_slice(&[0; 20 * 1024]);
        let grown_by_itself = by_itself.capacity();
        assert!(grown_by_itself < 64 * 1024);
        pool.give_plain(by_itself);
        pool.give_plain(next);
        let mut small_need = pool.take_plain();
        pool.grow_plain(&mut small_need, 17 * 1024);
        assert_eq!(small_need.capacity(), grown_by_itself);
        assert_eq!(large_capacities(&pool), [64 * 1024]);
    }

    #[test]
    fn the_large_class_is_bounded() {
        let size = 1024;
        let pool = BufferPool::new(size, 64);
        for _ in 0..3 * LARGE_KEPT {
            pool.give_plain(Vec::with_capacity(4 * size));
        }
        assert_eq!(large_capacities(&pool).len(), LARGE_KEPT, "a few kept");
        let fewer = BufferPool::new(size, 2);
        for _ in 0..LARGE_KEPT {
            fewer.give_plain(Vec::with_capacity(4 * size));
        }
        assert_eq!(large_capacities(&fewer).len(), 2, "no more than keep_max");

        // Beyond the class: grown in place, and freed when given back.
        let pool = BufferPool::new(size, 64);
        let mut huge = pool.take_plain();
        pool.grow_plain(&mut huge, LARGE_FACTOR * size + 1);
        assert!(huge.capacity() > LARGE_FACTOR * size);
        pool.give_plain(huge);
        pool.give_plain(Vec::with_capacity(2 * LARGE_FACTOR * size));
        assert!(large_capacities(&pool).is_empty());
        // The largest kept size is capped even when the next power of two is beyond it.
        let odd = BufferPool::new(10_000, 64);
        let mut out = odd.take_plain();
        odd.grow_plain(&mut out, 70_000);
        assert_eq!(out.capacity(), 80_000);
        odd.give_plain(out);
        assert_eq!(large_capacities(&odd), [80_000]);
    }

    #[test]
    fn every_pause_empties_the_large_class() {
        let pool = BufferPool::new(16 * 1024, 64);
        let mut out = pool.take_plain();
        pool.grow_plain(&mut out, 20 * 1024);
        pool.give_plain(out);
        assert!(!pool.shrink_when_paused(), "taken since the last call");
        // One request, far fewer than RETURN_AFTER_TAKEN: the pool keeps its small buffer,
        // the large one goes.
        assert!(pause(&pool));
        assert!(large_capacities(&pool).is_empty());
        assert_eq!(free_counts(&pool).1, 1);
        assert!(!pause(&pool), "once per pause");

        // After a burst the pool shrinks too, large class included.
        let bufs: Vec<Vec<u8>> = (0..100).map(|_| pool.take_plain()).collect();
        let mut grown: Vec<Vec<u8>> = (0..LARGE_KEPT).map(|_| pool.take_plain()).collect();
        grown.iter_mut().for_each(|b| pool.grow_plain(b, 40 * 1024));
        bufs.into_iter().for_each(|b| pool.give_plain(b));
        grown.into_iter().for_each(|b| pool.give_plain(b));
        assert_eq!(large_capacities(&pool).len(), LARGE_KEPT);
        assert!(!pool.shrink_when_paused());
        assert!(pause(&pool));
        assert_eq!(free_counts(&pool).1, KEEP_WHILE_PAUSED);
        assert!(large_capacities(&pool).is_empty());
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
