//! The pre-filter's housekeeping thread: logs and applies new blocks (to the kernel map when
//! XDP is attached), deletes expired blocks by the gateway's clock, and evicts idle per-source
//! state. It never sits on a request's path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tollgate_config::Plan;
use tracing::info;

use super::blocks::{Block, PrefilterState};
use super::now_ms;

/// How often expiry and eviction run.
const TICK: Duration = Duration::from_millis(100);
/// Ticks between evictions.
const EVICT_EVERY: u32 = 50;

/// What the sweeper is told.
#[derive(Debug)]
pub enum Message {
    /// A new plan (after a reload).
    Plan(Arc<Plan>),
}

/// Starts the sweeper for `state`; `added` carries new blocks, `messages` plan changes.
pub fn spawn(
    state: Arc<PrefilterState>,
    added: Receiver<(IpAddr, Block)>,
    messages: Receiver<Message>,
    mut plan: Arc<Plan>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("tollgate-prefilter".to_string())
        .spawn(move || {
            let mut ticks = 0u32;
            loop {
                match added.recv_timeout(TICK) {
                    Ok((ip, block)) => log_block(ip, &block),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                for (ip, block) in added.try_iter() {
                    log_block(ip, &block);
                }
                while let Ok(Message::Plan(p)) = messages.try_recv() {
                    plan = p;
                }
                let now = now_ms();
                for (ip, block) in state.expire(now) {
                    info!(ip = %ip, reason = block.reason.label(), "block expired");
                }
                ticks += 1;
                if ticks.is_multiple_of(EVICT_EVERY) {
                    state.evict(plan.prefilter.as_ref(), now);
                }
            }
        })
        .context("cannot start the pre-filter thread")?;
    Ok(())
}

fn log_block(ip: IpAddr, block: &Block) {
    info!(
        ip = %ip,
        reason = block.reason.label(),
        expiry_ms = block.expiry_ms,
        "source blocked"
    );
}
