//! The pre-filter's thread: loads and attaches the XDP program (when configured), logs new
//! blocks, deletes expired ones by the gateway's clock, keeps the kernel's maps in step with
//! the plan and the userspace blocks, reads the program's counters, and evicts idle
//! per-source state. It never sits on a request's path.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tollgate_config::Plan;
use tracing::info;

use super::blocks::{Block, PrefilterState};
use crate::clock::now_ms;

/// The kernel view's reason when the plan has no `[prefilter]`.
const NOT_CONFIGURED: &str = "no [prefilter] configured";

/// How often expiry and eviction run.
const TICK: Duration = Duration::from_millis(100);
/// Ticks between evictions.
const EVICT_EVERY: u32 = 50;

/// What the sweeper is told.
#[derive(Debug)]
pub enum Message {
    /// A new plan (after a reload) and the listeners' bound ports.
    Plan(Arc<Plan>, Vec<u16>),
}

/// Starts the sweeper for `state`; `added` carries new blocks, `messages` plan changes.
pub fn spawn(
    state: Arc<PrefilterState>,
    added: Receiver<(IpAddr, Block)>,
    messages: Receiver<Message>,
    mut plan: Arc<Plan>,
    ports: Vec<u16>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("tollgate-prefilter".to_string())
        .spawn(move || {
            let mut ticks = 0u32;
            let mut kernel = match plan.prefilter.as_ref() {
                Some(p) => {
                    let mut view = super::kernel::KernelView::default();
                    let k = super::kernel::start(p, &ports, &mut view);
                    set_view(&state, view);
                    k
                }
                None => {
                    set_view(&state, unavailable(NOT_CONFIGURED));
                    None
                }
            };
            loop {
                match added.recv_timeout(TICK) {
                    Ok((ip, block)) => log_block(ip, &block),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                for (ip, block) in added.try_iter() {
                    log_block(ip, &block);
                }
                while let Ok(Message::Plan(p, ports)) = messages.try_recv() {
                    plan = p;
                    match (kernel.as_mut(), plan.prefilter.as_ref()) {
                        (Some(k), Some(p)) => k.reload(p, &ports),
                        (Some(_), None) => {
                            // `[prefilter]` removed: detach (dropping the kernel handle).
                            kernel = None;
                            info!("XDP detached: [prefilter] removed by a reload");
                            set_view(&state, unavailable("removed by a reload"));
                        }
                        (None, Some(_)) => {
                            let was_off = state.kernel.lock().is_ok_and(|v| {
                                v.unavailable.as_deref() == Some(NOT_CONFIGURED)
                            });
                            if was_off {
                                let why = "[prefilter] added by a reload: XDP is loaded at start-up only; userspace enforcement is on";
                                set_view(&state, unavailable(why));
                            }
                        }
                        (None, None) => {}
                    }
                }
                let now = now_ms();
                for (ip, block) in state.expire(now) {
                    info!(ip = %ip, reason = block.reason.label(), "block expired");
                }
                if let Some(k) = kernel.as_mut() {
                    k.sync_blocks(state.blocks());
                    let (stats, runs) = (k.stats(), k.runs());
                    if let Ok(mut view) = state.kernel.lock() {
                        view.stats = stats;
                        view.runs = runs;
                    }
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

fn unavailable(why: &str) -> super::kernel::KernelView {
    super::kernel::KernelView {
        unavailable: Some(why.to_string()),
        ..Default::default()
    }
}

fn set_view(state: &PrefilterState, view: super::kernel::KernelView) {
    match state.kernel.lock() {
        Ok(mut current) => *current = view,
        Err(poisoned) => *poisoned.into_inner() = view,
    }
}

fn log_block(ip: IpAddr, block: &Block) {
    info!(
        ip = %ip,
        reason = block.reason.label(),
        expiry_ms = block.expiry_ms,
        "source blocked"
    );
}
