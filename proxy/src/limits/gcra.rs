//! Lock-free GCRA (Generic Cell Rate Algorithm) token bucket.
//!
//! API Gateway throttles with a token bucket: a steady `rate` of requests per second and a
//! `burst` of requests that may arrive at once. A classic token bucket needs two values (level
//! and last update time) that must change together, which forces a lock when the bucket is
//! shared across threads. GCRA expresses the same bucket as ONE number, the "theoretical
//! arrival time" (TAT): the instant at which the bucket would be completely full again. With
//! emission interval `T = 1 / rate` and tolerance `tau = burst * T`:
//!
//! * a request at `now` computes `new_tat = max(tat, now) + T`;
//! * it is allowed iff `new_tat - now <= tau`, and then `new_tat` is stored.
//!
//! Because the whole state is a single `AtomicU64` updated by a compare-exchange loop, the
//! limit is exact across all threads (10 rps burst 20 means 20 in total, not per core) and
//! no thread ever blocks.
//!
//! Time is always passed in as nanoseconds on the caller's clock; nothing here reads a clock.
//! All arithmetic is checked or saturating: a timestamp may be anything, including a clock that
//! jumps backwards. The TAT never moves backwards on `acquire`, so a backwards jump can only
//! make the bucket look emptier, never grant more than `burst` at once.

use std::sync::atomic::{AtomicU64, Ordering};

/// Largest tolerance (`burst * T`) a [`Rate`] uses: 2^62 ns, about 146 years. Keeping well
/// below `u64::MAX` leaves headroom so that `now + T` does not overflow for realistic clocks.
const MAX_TOLERANCE_NS: u64 = 1 << 62;

/// A throttling rate: requests per second plus burst, as GCRA emission interval and tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Emission interval `T`: nanoseconds between two requests at the steady rate.
    emission_ns: u64,
    /// Tolerance `tau = burst * T` in nanoseconds.
    tolerance_ns: u64,
    burst: u32,
    rate_per_s: f64,
}

impl Rate {
    /// Builds a rate of `rate_per_s` requests per second (fractional allowed) with `burst`
    /// requests allowed at once.
    ///
    /// Returns `None` when `rate_per_s` is not finite or `<= 0`, or `burst == 0`.
    ///
    /// The emission interval is `1e9 / rate_per_s` rounded to the nearest nanosecond and then
    /// clamped: at least 1 ns (rates above 1e9/s behave as 1e9/s) and at most
    /// `2^62 / burst` ns (absurdly small rates behave as one request per ~146 years / burst).
    pub fn new(rate_per_s: f64, burst: u32) -> Option<Rate> {
        if !rate_per_s.is_finite() || rate_per_s <= 0.0 || burst == 0 {
            return None;
        }
        let max_emission = MAX_TOLERANCE_NS / u64::from(burst);
        let exact = (1e9 / rate_per_s).round();
        // `as` from f64 saturates (and maps +inf to u64::MAX), so this cannot wrap.
        let emission_ns = (exact as u64).clamp(1, max_emission);
        Some(Rate {
            emission_ns,
            tolerance_ns: emission_ns * u64::from(burst),
            burst,
            rate_per_s,
        })
    }

    /// Emission interval `T` in nanoseconds (time for one request's worth to refill).
    pub fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// Tolerance `burst * T` in nanoseconds (time for an empty bucket to refill completely).
    pub fn tolerance_ns(&self) -> u64 {
        self.tolerance_ns
    }

    /// Burst size: requests allowed at the same instant from a full bucket.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The rate as configured, in requests per second. The enforced rate is
    /// `1e9 / emission_ns()`, which differs only by rounding or clamping.
    pub fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }
}

/// Outcome of taking (or peeking at) one request's worth from a [`Gcra`] bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed.
    Allowed {
        /// How many more requests would be allowed right now, after this one.
        remaining: u32,
        /// Nanoseconds until the bucket is completely refilled (fresh again).
        full_in_ns: u64,
    },
    /// The request is rejected.
    Limited {
        /// Nanoseconds until one request would be allowed (always > 0; `u64::MAX` when the
        /// timestamp is so close to `u64::MAX` that no request can ever be accounted).
        retry_in_ns: u64,
    },
}

impl Decision {
    /// True for [`Decision::Allowed`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// A GCRA bucket shared across threads. `Default`/[`Gcra::new`] is a fresh (full) bucket.
///
/// The bucket does not store its [`Rate`]: pass the same rate to every call (a changed rate
/// takes effect smoothly from the next call).
#[derive(Debug, Default)]
pub struct Gcra {
    /// Theoretical arrival time in ns; `0` (or anything `<= now`) means full.
    tat: AtomicU64,
}

/// Pure GCRA step: the decision for a bucket whose TAT is `tat`, and the TAT to store if the
/// request is allowed.
fn evaluate(tat: u64, rate: &Rate, now_ns: u64) -> (Decision, Option<u64>) {
    let base = tat.max(now_ns);
    let Some(new_tat) = base.checked_add(rate.emission_ns) else {
        // The new TAT is not representable: refuse rather than saturate, since a saturated
        // TAT would stop counting and let everything through.
        return (
            Decision::Limited {
                retry_in_ns: u64::MAX,
            },
            None,
        );
    };
    // new_tat >= now_ns + T > now_ns, so this cannot underflow.
    let wait = new_tat - now_ns;
    if wait <= rate.tolerance_ns {
        let remaining = (rate.tolerance_ns - wait) / rate.emission_ns;
        let decision = Decision::Allowed {
            // remaining <= burst - 1 because wait >= T; the fallback is unreachable.
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            full_in_ns: wait,
        };
        (decision, Some(new_tat))
    } else {
        let retry_in_ns = wait - rate.tolerance_ns;
        (Decision::Limited { retry_in_ns }, None)
    }
}

impl Gcra {
    /// A fresh (full) bucket.
    pub const fn new() -> Self {
        Gcra {
            tat: AtomicU64::new(0),
        }
    }

    /// Takes one request's worth at `now_ns` (nanoseconds on the caller's clock).
    pub fn acquire(&self, rate: &Rate, now_ns: u64) -> Decision {
        // Orderings: the limit itself only needs the atomicity of the compare-exchange (all
        // read-modify-writes of one location form a single total order, so every successful
        // CAS builds on the latest TAT and no two threads can spend the same slot). We still
        // publish with Release and read with Acquire so that a thread which observes a TAT
        // also observes everything the writer did before it (e.g. a rate it looked up, admin
        // views built on `peek`). On x86 every RMW is a full barrier anyway, so this is free.
        let mut current = self.tat.load(Ordering::Acquire);
        loop {
            let (decision, new_tat) = evaluate(current, rate, now_ns);
            let Some(new_tat) = new_tat else {
                return decision;
            };
            match self.tat.compare_exchange_weak(
                current,
                new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back one acquired request (used when a later, stricter limit rejected the
    /// request after this one allowed it). Never makes the bucket fuller than fresh: the TAT
    /// moves back by one emission interval but never below `now_ns`.
    pub fn refund(&self, rate: &Rate, now_ns: u64) {
        let mut current = self.tat.load(Ordering::Acquire);
        loop {
            if current <= now_ns {
                return; // already full at now_ns
            }
            let new_tat = current.saturating_sub(rate.emission_ns).max(now_ns);
            match self.tat.compare_exchange_weak(
                current,
                new_tat,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Read-only: what [`Gcra::acquire`] would say at `now_ns`, without taking (for headers
    /// and admin views). Racy by nature: another thread may take in between.
    pub fn peek(&self, rate: &Rate, now_ns: u64) -> Decision {
        evaluate(self.tat.load(Ordering::Acquire), rate, now_ns).0
    }

    /// Its theoretical arrival time (ns on the caller's clock): the earlier, the longer ago the
    /// bucket was last used (or the more capacity it has regained).
    pub fn tat(&self) -> u64 {
        self.tat.load(Ordering::Acquire)
    }

    /// True when the bucket is indistinguishable from a fresh one at `now_ns` (for eviction of
    /// idle per-client buckets): its TAT is not after `now_ns`, whatever the rate.
    pub fn is_idle(&self, now_ns: u64) -> bool {
        self.tat.load(Ordering::Acquire) <= now_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn rate(r: f64, b: u32) -> Rate {
        Rate::new(r, b).expect("valid rate")
    }

    fn allowed(d: Decision) -> bool {
        d.is_allowed()
    }

    #[test]
    fn rate_validation_and_accessors() {
        assert!(Rate::new(0.0, 1).is_none());
        assert!(Rate::new(-1.0, 1).is_none());
        assert!(Rate::new(f64::NAN, 1).is_none());
        assert!(Rate::new(f64::INFINITY, 1).is_none());
        assert!(Rate::new(1.0, 0).is_none());
        let r = rate(10.0, 20);
        assert_eq!(r.emission_ns(), 100 * MS);
        assert_eq!(r.tolerance_ns(), 2 * S);
        assert_eq!(r.burst(), 20);
        assert_eq!(r.rate_per_s(), 10.0);
        assert_eq!(rate(0.5, 1).emission_ns(), 2 * S);
        assert_eq!(rate(1e12, 3).emission_ns(), 1);
        let tiny = rate(1e-300, 4);
        assert_eq!(tiny.emission_ns(), MAX_TOLERANCE_NS / 4);
        assert_eq!(tiny.tolerance_ns(), MAX_TOLERANCE_NS);
    }

    #[test]
    fn burst_then_one_per_interval() {
        let r = rate(10.0, 20);
        let g = Gcra::new();
        let t0 = 5 * S;
        for i in 0..20u32 {
            assert_eq!(
                g.acquire(&r, t0),
                Decision::Allowed {
                    remaining: 19 - i,
                    full_in_ns: u64::from(i + 1) * 100 * MS
                }
            );
        }
        assert_eq!(
            g.acquire(&r, t0),
            Decision::Limited {
                retry_in_ns: 100 * MS
            }
        );
        assert_eq!(
            g.acquire(&r, t0 + 100 * MS - 1),
            Decision::Limited { retry_in_ns: 1 }
        );
        let d = g.acquire(&r, t0 + 100 * MS);
        assert_eq!(
            d,
            Decision::Allowed {
                remaining: 0,
                full_in_ns: 2 * S
            }
        );
        assert!(!allowed(g.acquire(&r, t0 + 100 * MS)));
        assert!(!g.is_idle(t0 + 2 * S + 100 * MS - 1));
        assert!(g.is_idle(t0 + 2 * S + 100 * MS));
    }

    #[test]
    fn fractional_rate() {
        let r = rate(0.5, 1);
        let g = Gcra::default();
        assert!(allowed(g.acquire(&r, 0)));
        assert_eq!(g.acquire(&r, 0), Decision::Limited { retry_in_ns: 2 * S });
        assert_eq!(g.acquire(&r, S), Decision::Limited { retry_in_ns: S });
        assert!(allowed(g.acquire(&r, 2 * S)));
        assert!(!allowed(g.acquire(&r, 3 * S)));
        assert!(allowed(g.acquire(&r, 4 * S)));
    }

    #[test]
    fn peek_does_not_take() {
        let r = rate(1.0, 2);
        let g = Gcra::new();
        for _ in 0..5 {
            assert_eq!(
                g.peek(&r, S),
                Decision::Allowed {
                    remaining: 1,
                    full_in_ns: S
                }
            );
        }
        assert!(g.is_idle(S));
        g.acquire(&r, S);
        g.acquire(&r, S);
        assert_eq!(g.peek(&r, S), Decision::Limited { retry_in_ns: S });
    }

    #[test]
    fn refund_gives_back_one() {
        let r = rate(10.0, 5);
        let g = Gcra::new();
        let t = 7 * S;
        for _ in 0..5 {
            assert!(allowed(g.acquire(&r, t)));
        }
        assert!(!allowed(g.acquire(&r, t)));
        g.refund(&r, t);
        assert!(allowed(g.acquire(&r, t)));
        assert!(!allowed(g.acquire(&r, t)));
    }

    #[test]
    fn refund_never_overfills() {
        let r = rate(10.0, 5);
        let g = Gcra::new();
        let t = 7 * S;
        g.refund(&r, t);
        g.refund(&r, t);
        let n = (0..10).filter(|_| allowed(g.acquire(&r, t))).count();
        assert_eq!(n, 5);
        // A bucket that refilled partially cannot be pushed past full either.
        let later = t + 250 * MS;
        for _ in 0..10 {
            g.refund(&r, later);
        }
        assert!(g.is_idle(later));
        // ...and refunds never move the TAT before their own `now`: after a clock jump back
        // to `t` the bucket is as full as a fresh one at `later` seen from `t`, i.e. only
        // (500 ms - 250 ms) / 100 ms = 2 requests fit, not a whole new burst.
        assert!(!g.is_idle(later - 1));
        let back = (0..10).filter(|_| allowed(g.acquire(&r, t))).count();
        assert_eq!(back, 2);
        let g = Gcra::new();
        for _ in 0..10 {
            g.refund(&r, later);
        }
        let n = (0..10).filter(|_| allowed(g.acquire(&r, later))).count();
        assert_eq!(n, 5);
    }

    #[test]
    fn clock_backwards_never_exceeds_burst() {
        let r = rate(10.0, 4);
        let g = Gcra::new();
        let late = 100 * S;
        assert!(allowed(g.acquire(&r, late)));
        assert!(allowed(g.acquire(&r, late)));
        // Jump back a little and a lot: only the 2 remaining slots may be granted.
        let early_small = late - 50 * MS;
        let mut n = (0..10)
            .filter(|_| allowed(g.acquire(&r, early_small)))
            .count();
        n += (0..10).filter(|_| allowed(g.acquire(&r, 0))).count();
        n += (0..10).filter(|_| allowed(g.acquire(&r, late))).count();
        assert!(n <= 2, "granted {n} after jumping back");
        // Extreme timestamps do not panic and never grant more than the burst.
        let g = Gcra::new();
        let n = (0..10).filter(|_| allowed(g.acquire(&r, u64::MAX))).count();
        assert_eq!(
            g.acquire(&r, u64::MAX),
            Decision::Limited {
                retry_in_ns: u64::MAX
            }
        );
        let n2 = (0..10)
            .filter(|_| allowed(g.acquire(&r, u64::MAX - S)))
            .count();
        assert!(n + n2 <= 4);
        g.refund(&r, 0);
        let n3 = (0..10).filter(|_| allowed(g.acquire(&r, 0))).count();
        assert!(n3 <= 4);
    }

    #[test]
    fn threads_at_one_instant_get_exactly_burst() {
        let r = rate(10.0, 20);
        let g = Arc::new(Gcra::new());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    (0..5_000)
                        .filter(|_| allowed(g.acquire(&r, 42 * S)))
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().expect("join")).sum();
        assert_eq!(total, 20);
    }

    #[test]
    fn threads_with_shared_advancing_clock() {
        let r = rate(10.0, 20);
        let start = 1_000 * S;
        let step = MS; // every attempt advances the shared clock by 1 ms
        let per_thread = 2_000u64;
        let clock = Arc::new(AtomicU64::new(start));
        let g = Arc::new(Gcra::new());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (g, clock) = (Arc::clone(&g), Arc::clone(&clock));
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    for _ in 0..per_thread {
                        let now = clock.fetch_add(step, Ordering::AcqRel);
                        n += u64::from(allowed(g.acquire(&r, now)));
                    }
                    n
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().expect("join")).sum();
        let elapsed_ns = (8 * per_thread - 1) * step; // last timestamp handed out - start
        let ideal = 20 + elapsed_ns / r.emission_ns(); // 20 + 1599
        assert!(total <= ideal + 1, "total {total} > {ideal} + 1");
        assert!(total + 3 >= ideal, "total {total} far below {ideal}");
    }

    /// Independent reference: a plain token bucket in "nanosecond units" of level.
    struct Naive {
        cap: u128,
        t: u128,
        level: u128,
        last: Option<u64>,
    }

    impl Naive {
        fn new(r: &Rate) -> Self {
            let t = u128::from(r.emission_ns());
            let cap = t * u128::from(r.burst());
            Naive {
                cap,
                t,
                level: cap,
                last: None,
            }
        }
        /// Returns (allowed, remaining-or-retry_in, full_in).
        fn take(&mut self, now: u64) -> Decision {
            let elapsed = self.last.map_or(0, |l| now - l);
            self.last = Some(now);
            self.level = (self.level + u128::from(elapsed)).min(self.cap);
            if self.level >= self.t {
                self.level -= self.t;
                Decision::Allowed {
                    remaining: (self.level / self.t) as u32,
                    full_in_ns: (self.cap - self.level) as u64,
                }
            } else {
                Decision::Limited {
                    retry_in_ns: (self.t - self.level) as u64,
                }
            }
        }
    }

    fn gap() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 0u64..1_000, 0u64..S, 0u64..100 * S,]
    }

    proptest! {
        #[test]
        fn matches_naive_token_bucket(
            r in 0.01f64..1e6,
            burst in 1u32..50,
            start in 0u64..1_000_000_000_000_000_000,
            gaps in proptest::collection::vec(gap(), 1..200),
        ) {
            let r = rate(r, burst);
            let g = Gcra::new();
            let mut naive = Naive::new(&r);
            let mut now = start;
            for gap in gaps {
                now += gap;
                let peeked = g.peek(&r, now);
                let got = g.acquire(&r, now);
                prop_assert_eq!(peeked, got);
                prop_assert_eq!(got, naive.take(now));
            }
        }

        #[test]
        fn any_window_bounded_even_with_jumps(
            r in 0.1f64..100.0,
            burst in 1u32..10,
            times in proptest::collection::vec(0u64..20 * S, 1..80),
        ) {
            let r = rate(r, burst);
            let g = Gcra::new();
            let granted: Vec<u64> =
                times.into_iter().filter(|&t| allowed(g.acquire(&r, t))).collect();
            for &a in &granted {
                for &b in granted.iter().filter(|&&b| b >= a) {
                    let n = granted.iter().filter(|&&t| a <= t && t <= b).count() as u64;
                    prop_assert!(n <= u64::from(burst) + (b - a) / r.emission_ns());
                }
            }
        }
    }
}
