//! One key's quota in one usage plan, shared by every worker: exact on one node, never
//! over-served, not even across a crash.
//!
//! Workers only ever spend: `state` packs the durable reservation (high 32 bits) and the
//! requests granted from it (low 32 bits) into one atomic, so "is there quota left, and take
//! it" is a single compare-exchange — no lock, no window between check and take. Only the
//! keeper thread raises the reservation, and only after writing the new total to the state
//! directory (see [`crate::limits::keeper`]). A SIGKILL therefore loses at most the reserved
//! but unspent part, never grants more than the limit.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use tollgate_config::period::QuotaSpec;

/// A key's quota counter for one plan.
#[derive(Debug)]
pub struct QuotaCounter {
    /// Key id.
    pub key_id: Arc<str>,
    /// Usage plan id.
    pub plan_id: Arc<str>,
    /// The plan's quota.
    pub spec: QuotaSpec,
    /// Start (unix seconds) of the period `state` counts; set by the keeper only.
    period_start: AtomicI64,
    /// Requests allowed in that period (limit, less the offset in the initial period, plus
    /// admin extensions); set by the keeper only.
    allowance: AtomicU64,
    /// `reserved << 32 | used`.
    state: AtomicU64,
    /// A worker asked the keeper for more (cleared by the keeper when it has looked).
    wanted: AtomicBool,
}

/// What a worker's attempt to spend one request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Granted; `remaining` more are allowed in this period.
    Granted {
        /// Requests left in the period after this one.
        remaining: u64,
        /// The reservation runs low: ask the keeper for more.
        low: bool,
    },
    /// The period's allowance is used up.
    Exceeded,
    /// Quota is left but not reserved yet (a new period, or a burst faster than the keeper
    /// writes): ask the keeper and try again shortly.
    Pending,
}

/// The most a period can allow: reservation and use are counted in 32 bits each.
pub const ALLOWANCE_MAX: u64 = u32::MAX as u64;

fn pack(reserved: u64, used: u64) -> u64 {
    debug_assert!(reserved <= ALLOWANCE_MAX && used <= ALLOWANCE_MAX);
    (reserved.min(ALLOWANCE_MAX) << 32) | used.min(ALLOWANCE_MAX)
}

fn unpack(v: u64) -> (u64, u64) {
    (v >> 32, v & 0xffff_ffff)
}

impl QuotaCounter {
    /// A counter in no period yet: every spend is [`Spend::Pending`] until the keeper
    /// begins the current period.
    pub fn new(key_id: Arc<str>, plan_id: Arc<str>, spec: QuotaSpec) -> Self {
        Self {
            key_id,
            plan_id,
            spec,
            period_start: AtomicI64::new(i64::MIN),
            allowance: AtomicU64::new(0),
            state: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
        }
    }

    /// Spends one request at `now_secs` (the gateway clock). `low_water`: reservation left
    /// at which the keeper should be asked for more.
    pub fn spend(&self, now_secs: i64, low_water: u64) -> Spend {
        // Acquire pairs with the keeper's Release stores: a worker that sees a new period
        // also sees its allowance and its emptied state.
        let start = self.period_start.load(Ordering::Acquire);
        if now_secs >= self.spec.period.next_start(start) {
            return Spend::Pending;
        }
        let allowance = self.allowance.load(Ordering::Acquire);
        let mut v = self.state.load(Ordering::Acquire);
        loop {
            let (reserved, used) = unpack(v);
            // An admin may lower the allowance below what is reserved: the lower one holds.
            if used >= reserved.min(allowance) {
                return if reserved >= allowance {
                    Spend::Exceeded
                } else {
                    Spend::Pending
                };
            }
            match self.state.compare_exchange_weak(
                v,
                pack(reserved, used + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let left_reserved = reserved - used - 1;
                    return Spend::Granted {
                        remaining: allowance.saturating_sub(used + 1),
                        low: left_reserved <= low_water && reserved < allowance,
                    };
                }
                Err(now) => v = now,
            }
        }
    }

    /// Marks that the keeper was asked; true when this caller should send the request (the
    /// first to ask since the keeper last looked).
    pub fn ask(&self) -> bool {
        !self.wanted.swap(true, Ordering::AcqRel)
    }

    /// The keeper has looked at this counter.
    pub fn asked_done(&self) {
        self.wanted.store(false, Ordering::Release);
    }

    /// Period start, allowance, reserved and used, as the keeper and the admin API read them.
    pub fn snapshot(&self) -> QuotaSnapshot {
        let (reserved, used) = unpack(self.state.load(Ordering::Acquire));
        QuotaSnapshot {
            period_start: self.period_start.load(Ordering::Acquire),
            allowance: self.allowance.load(Ordering::Acquire),
            reserved,
            used,
        }
    }

    /// Keeper only: starts period `start` with `allowance` and nothing reserved or used.
    /// The state is emptied first, so no worker spends from the old reservation meanwhile.
    pub fn begin_period(&self, start: i64, allowance: u64) {
        self.state.store(0, Ordering::Release);
        self.allowance
            .store(allowance.min(ALLOWANCE_MAX), Ordering::Release);
        self.period_start.store(start, Ordering::Release);
    }

    /// Keeper only: sets the allowance of the current period (an admin extension).
    pub fn set_allowance(&self, allowance: u64) {
        self.allowance
            .store(allowance.min(ALLOWANCE_MAX), Ordering::Release);
    }

    /// Keeper only: restores a period after a restart: `spent` requests are counted as used
    /// and as reserved (what a crash may have granted is assumed granted).
    pub fn restore(&self, start: i64, allowance: u64, spent: u64) {
        self.begin_period(start, allowance);
        self.state.store(pack(spent, spent), Ordering::Release);
    }

    /// Keeper only: raises the reservation to `reserved` (already durable). Returns false
    /// (and changes nothing) if the state moved to another period meanwhile.
    pub fn raise_reserved(&self, from: u64, reserved: u64) -> bool {
        let mut v = self.state.load(Ordering::Acquire);
        loop {
            let (current, used) = unpack(v);
            if current != from {
                return false;
            }
            match self.state.compare_exchange_weak(
                v,
                pack(reserved, used),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
    }

    /// Keeper only: forgets what was used this period (an admin reset); keeps the period.
    pub fn reset_used(&self) {
        self.state.store(0, Ordering::Release);
    }
}

/// A counter's state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSnapshot {
    /// Period start, unix seconds.
    pub period_start: i64,
    /// Requests allowed in the period.
    pub allowance: u64,
    /// Reserved durably.
    pub reserved: u64,
    /// Granted.
    pub used: u64,
}

impl QuotaSnapshot {
    /// Requests left in the period.
    pub fn remaining(&self) -> u64 {
        self.allowance.saturating_sub(self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_config::period::Period;

    fn counter(limit: u64) -> QuotaCounter {
        let spec = QuotaSpec {
            limit,
            period: Period::Day,
            offset: 0,
        };
        let q = QuotaCounter::new("k".into(), "p".into(), spec);
        assert_eq!(q.spend(0, 0), Spend::Pending);
        q.begin_period(0, limit);
        q
    }

    #[test]
    fn spends_only_what_is_reserved_and_never_past_the_allowance() {
        let q = counter(5);
        assert_eq!(q.spend(10, 0), Spend::Pending);
        assert!(q.raise_reserved(0, 3));
        for _ in 0..3 {
            assert!(matches!(q.spend(10, 0), Spend::Granted { .. }));
        }
        assert_eq!(q.spend(10, 0), Spend::Pending);
        assert!(q.raise_reserved(3, 5));
        assert!(matches!(
            q.spend(10, 0),
            Spend::Granted { remaining: 1, .. }
        ));
        assert!(matches!(
            q.spend(10, 0),
            Spend::Granted { remaining: 0, .. }
        ));
        assert_eq!(q.spend(10, 0), Spend::Exceeded);
        // A stale raise (the keeper read another reservation) changes nothing.
        assert!(!q.raise_reserved(3, 9));
        assert_eq!(q.snapshot().used, 5);
    }

    #[test]
    fn a_lowered_allowance_stops_spending_from_a_larger_reservation() {
        let q = counter(1000);
        assert!(q.raise_reserved(0, 950));
        for _ in 0..850 {
            assert!(matches!(q.spend(10, 0), Spend::Granted { .. }));
        }
        q.set_allowance(800);
        assert_eq!(q.spend(10, 0), Spend::Exceeded);
        assert_eq!(q.snapshot().used, 850);
    }

    #[test]
    fn a_new_period_is_pending_until_the_keeper_begins_it() {
        let q = counter(2);
        assert!(q.raise_reserved(0, 2));
        assert_eq!(q.spend(86_400, 0), Spend::Pending);
        q.begin_period(86_400, 2);
        assert_eq!(q.spend(86_400, 0), Spend::Pending);
        assert!(q.raise_reserved(0, 2));
        assert!(matches!(q.spend(86_400, 0), Spend::Granted { .. }));
    }

    #[test]
    fn threads_never_spend_more_than_reserved() {
        let q = Arc::new(counter(1_000_000));
        assert!(q.raise_reserved(0, 10_000));
        let granted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5_000 {
                        if matches!(q.spend(1, 0), Spend::Granted { .. }) {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::Relaxed), 10_000);
        assert_eq!(q.snapshot().used, 10_000);
    }

    #[test]
    fn low_water_is_reported_once_the_reservation_runs_low() {
        let q = counter(100);
        assert!(q.raise_reserved(0, 10));
        let lows: Vec<bool> = (0..10)
            .map(|_| match q.spend(1, 4) {
                Spend::Granted { low, .. } => low,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lows.iter().filter(|l| **l).count(), 5);
        assert!(!lows[0] && lows[9]);
    }
}
