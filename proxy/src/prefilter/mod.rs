//! The pre-filter's userspace side: the same allow and deny lists, per-source connection
//! buckets and timed blocks as the XDP program, enforced at accept time (before any byte is
//! read; behind PROXY protocol right after its header; for clients behind trusted proxies
//! right after the head), and escalation from L7 refusals to a timed block.
//!
//! With XDP attached the kernel drops the same sources earlier and cheaper; the userspace
//! checks stay on as the second line (a source blocked by escalation is refused here at once,
//! before the kernel map is updated). Block expiry is enforced by the sweeper deleting entries
//! by the gateway's clock, so tests move it with the test clock.

pub mod admin;
pub mod block;
pub mod blocks;
pub mod kernel;
pub mod sweeper;

use std::net::IpAddr;

use tollgate_config::prefilter::{Offense, PrefilterPlan};

pub use blocks::{Block, BlockReason, PrefilterState};

/// Why a source was refused at accept time (or after its head, behind trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// In the deny list.
    Deny,
    /// Blocked (escalation or the admin API).
    Block,
    /// Over its new-connection rate.
    ConnectionRate,
}

impl Refused {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Deny => "deny",
            Refused::Block => "block",
            Refused::ConnectionRate => "connection_rate",
        }
    }
}

/// Checks a new connection's source: allow list (and balancers), deny list, blocks, then its
/// connection bucket (which only a connection that passed the lists spends).
pub fn check_connection(
    plan: &PrefilterPlan,
    state: &PrefilterState,
    ip: IpAddr,
) -> Result<(), Refused> {
    let ip = ip.to_canonical();
    if lists_admit(plan, state, ip)? == Admitted::Allowed {
        return Ok(());
    }
    if let Some(rate) = &state.connection_rate(plan) {
        if !state.take_connection(plan.keying.key(ip), rate) {
            return Err(Refused::ConnectionRate);
        }
    }
    Ok(())
}

/// Checks a source against the lists and blocks only (a client found behind a trusted proxy
/// shares its connection with others, so it has no connection bucket).
pub fn check_source(
    plan: &PrefilterPlan,
    state: &PrefilterState,
    ip: IpAddr,
) -> Result<(), Refused> {
    lists_admit(plan, state, ip.to_canonical()).map(|_| ())
}

/// How a source passed the lists.
#[derive(PartialEq, Eq)]
enum Admitted {
    /// Allow-listed or a balancer: nothing else applies.
    Allowed,
    /// Neither denied nor blocked.
    Unlisted,
}

/// Allow list (and balancers), then deny list and blocks, of a canonical address.
fn lists_admit(
    plan: &PrefilterPlan,
    state: &PrefilterState,
    ip: IpAddr,
) -> Result<Admitted, Refused> {
    if plan.allowed(ip) {
        return Ok(Admitted::Allowed);
    }
    if plan.in_deny_list(ip) {
        return Err(Refused::Deny);
    }
    if state.is_blocked(plan.keying.key(ip)) {
        return Err(Refused::Block);
    }
    Ok(Admitted::Unlisted)
}

/// The L7 refusal class of a response, if escalation counts it.
pub fn offense_of(
    status: u16,
    kind: Option<tollgate_config::responses::ResponseType>,
) -> Option<Offense> {
    use tollgate_config::responses::ResponseType;
    match (status, kind) {
        (429, Some(ResponseType::Throttled)) => Some(Offense::Throttled),
        (429, Some(ResponseType::QuotaExceeded)) => Some(Offense::Quota),
        (401 | 403, _) => Some(Offense::Auth),
        (400, _) => Some(Offense::Malformed),
        (404, _) => Some(Offense::NotFound),
        _ => None,
    }
}

/// Counts an offense of `ip`; blocks it when a rule's count is reached within its window
/// (never an allow-listed source). Returns the new block, if any.
pub fn offend(
    plan: &PrefilterPlan,
    state: &PrefilterState,
    ip: IpAddr,
    offense: Offense,
    now_ms: u64,
) -> Option<Block> {
    let ip = ip.to_canonical();
    if plan.escalation.is_empty() || plan.allowed(ip) {
        return None;
    }
    // Offenses count, and blocks hold, per client: the source's prefix, so a host cannot
    // escape by rotating through the addresses of its /64.
    let client = plan.keying.key(ip);
    let rule = state.count_offense(plan, client, offense, now_ms)?;
    let block = Block {
        expiry_ms: now_ms.saturating_add(rule.block_ms),
        reason: BlockReason::Escalation(offense),
    };
    state.insert_block(client, block).then_some(block)
}
