//! A timed block of a source address and why it was set: shared by the userspace state
//! ([`super::blocks`]) and the kernel view that mirrors it into the XDP map ([`super::kernel`]).

use tollgate_config::prefilter::Offense;

/// Why a source is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    /// Too many L7 refusals of this class.
    Escalation(Offense),
    /// Added through the admin API.
    Admin,
}

impl BlockReason {
    /// Label for logs, metrics and the admin API.
    pub fn label(self) -> &'static str {
        match self {
            BlockReason::Escalation(o) => o.name(),
            BlockReason::Admin => "admin",
        }
    }
}

/// A timed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Gateway clock (ms since the epoch) at which the sweeper removes it.
    pub expiry_ms: u64,
    /// Why.
    pub reason: BlockReason,
}
