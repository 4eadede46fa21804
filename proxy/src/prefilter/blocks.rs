//! Shared pre-filter state, one per process: timed blocks, per-source connection buckets and
//! escalation counters — lock-free maps every worker reads and writes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::Sender;
use tollgate_config::prefilter::{EscalationRule, Offense, PrefilterPlan};

pub use super::block::{Block, BlockReason};
use crate::limits::clients::{scope_of, ClientBuckets};
use crate::limits::gcra::{Decision, Rate};

/// Blocks held at most (the kernel's block map holds as many); past it a new block is not
/// added (and says so in the log).
pub const BLOCKS_MAX: usize = 65_536;
/// Sources with escalation counters at most; past it new sources are not counted until
/// eviction makes room.
pub const OFFENDERS_MAX: usize = 1_000_000;

/// Escalation rules counted per source at most.
pub const RULES_MAX: usize = tollgate_config::prefilter::ESCALATION_RULES_MAX;

/// Per-source escalation windows: `window index << 32 | count` per rule.
#[derive(Debug, Default)]
struct Offenses {
    windows: [AtomicU64; RULES_MAX],
}

/// The process's pre-filter state.
#[derive(Debug)]
pub struct PrefilterState {
    blocks: papaya::HashMap<IpAddr, Block>,
    offenses: papaya::HashMap<IpAddr, Offenses>,
    connections: ClientBuckets,
    connection_scope: u64,
    /// New blocks for the sweeper (kernel map, log); bounded, never waited on.
    added: Option<Sender<(IpAddr, Block)>>,
    /// What the XDP side is doing (written by the pre-filter thread, read by the admin
    /// thread; never by a worker).
    pub kernel: std::sync::Mutex<super::kernel::KernelView>,
}

impl PrefilterState {
    /// Empty state; new blocks are announced on `added` (for the sweeper).
    pub fn new(added: Option<Sender<(IpAddr, Block)>>) -> Self {
        Self {
            blocks: papaya::HashMap::new(),
            offenses: papaya::HashMap::new(),
            connections: ClientBuckets::default(),
            connection_scope: scope_of("prefilter:connections"),
            added,
            kernel: std::sync::Mutex::new(super::kernel::KernelView {
                unavailable: Some("starting".to_string()),
                ..Default::default()
            }),
        }
    }

    /// The connection bucket's rate, when the plan sets one.
    pub fn connection_rate(&self, plan: &PrefilterPlan) -> Option<Rate> {
        plan.connection
            .and_then(|t| Rate::new(t.rate_per_s, t.burst))
    }

    /// Takes one new connection of `ip`; false when over its rate.
    pub fn take_connection(&self, ip: IpAddr, rate: &Rate) -> bool {
        matches!(
            self.connections
                .acquire(self.connection_scope, ip, rate, crate::clock::now_ns()),
            Decision::Allowed { .. }
        )
    }

    /// True while `ip` has a block (the sweeper deletes expired ones).
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocks.pin().contains_key(&ip)
    }

    /// Adds or extends a block; true when it is new. New blocks go to the sweeper.
    pub fn insert_block(&self, ip: IpAddr, block: Block) -> bool {
        let map = self.blocks.pin();
        let new = match map.get(&ip) {
            Some(old) if old.expiry_ms >= block.expiry_ms => return false,
            Some(_) => false,
            None if map.len() >= BLOCKS_MAX => {
                tracing::warn!(ip = %ip, max = BLOCKS_MAX, "block not added: the block table is full");
                return false;
            }
            None => true,
        };
        map.insert(ip, block);
        if let Some(tx) = &self.added {
            let _ = tx.try_send((ip, block));
        }
        new
    }

    /// Removes a block; true if there was one.
    pub fn remove_block(&self, ip: IpAddr) -> bool {
        self.blocks.pin().remove(&ip).is_some()
    }

    /// Every block.
    pub fn blocks(&self) -> Vec<(IpAddr, Block)> {
        self.blocks.pin().iter().map(|(ip, b)| (*ip, *b)).collect()
    }

    /// Removes blocks expired at `now_ms`; returns them.
    pub fn expire(&self, now_ms: u64) -> Vec<(IpAddr, Block)> {
        let map = self.blocks.pin();
        let expired: Vec<(IpAddr, Block)> = map
            .iter()
            .filter(|(_, b)| b.expiry_ms <= now_ms)
            .map(|(ip, b)| (*ip, *b))
            .collect();
        for (ip, b) in &expired {
            // Only if unchanged: a block extended meanwhile stays.
            let _ = map.remove_if(ip, |_, current| current == b);
        }
        expired
    }

    /// Counts one offense of `ip`; returns the rule whose count it reached, if any.
    pub fn count_offense(
        &self,
        plan: &PrefilterPlan,
        ip: IpAddr,
        offense: Offense,
        now_ms: u64,
    ) -> Option<EscalationRule> {
        // Only sources whose refusal some rule counts get an entry.
        if !plan
            .escalation
            .iter()
            .any(|r| r.classes & offense.bit() != 0)
        {
            return None;
        }
        let map = self.offenses.pin();
        if map.len() >= OFFENDERS_MAX && !map.contains_key(&ip) {
            return None;
        }
        let windows = map.get_or_insert_with(ip, Offenses::default);
        let mut reached = None;
        for (i, rule) in plan.escalation.iter().take(RULES_MAX).enumerate() {
            if rule.classes & offense.bit() == 0 {
                continue;
            }
            let index = (now_ms / rule.window_ms) & 0xffff_ffff;
            let cell = &windows.windows[i];
            let mut v = cell.load(Ordering::Acquire);
            let count = loop {
                let next = if v >> 32 == index {
                    v + 1
                } else {
                    (index << 32) | 1
                };
                match cell.compare_exchange_weak(v, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break next & 0xffff_ffff,
                    Err(now) => v = now,
                }
            };
            if count == u64::from(rule.count) {
                reached = Some(*rule);
            }
        }
        reached
    }

    /// Drops idle connection buckets, and escalation windows that can no longer reach a
    /// rule's count (older than the previous window).
    pub fn evict(&self, plan: Option<&PrefilterPlan>, now_ms: u64) {
        self.connections.evict_idle(crate::clock::now_ns());
        let rules: &[EscalationRule] = plan.map_or(&[], |p| &p.escalation);
        self.offenses.pin().retain(|_, o| {
            rules.iter().take(RULES_MAX).enumerate().any(|(i, r)| {
                let v = o.windows[i].load(Ordering::Acquire);
                let current = (now_ms / r.window_ms) & 0xffff_ffff;
                v != 0 && (v >> 32) + 1 >= current
            })
        });
    }

    /// Blocks held.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}
