//! The XDP side, driven from the pre-filter thread: loads the program, attaches it to the
//! configured interfaces (native, falling back to generic, or userspace only — the log says
//! which and why per interface), keeps its maps in step with the plan (lists, ports, limits:
//! updated in place on reload) and with the userspace blocks, and reads its counters.

use std::collections::HashMap;
use std::net::IpAddr;

use tollgate_config::prefilter::{PrefilterMode, PrefilterPlan};
use tollgate_ebpf::{AttachMode, Attached, Prefilter, PrefilterStats};
use tracing::{info, warn};

use super::block::{Block, BlockReason};

/// One interface's state, for logs and the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceStatus {
    /// Interface name.
    pub iface: String,
    /// `native`, `generic`, or `userspace` (not attached).
    pub mode: String,
    /// Why it is not native (a fallback or an attach error), if so.
    pub reason: Option<String>,
}

/// What the kernel side is doing, shared with the admin thread.
#[derive(Debug, Clone, Default)]
pub struct KernelView {
    /// Per interface.
    pub interfaces: Vec<InterfaceStatus>,
    /// Why XDP is not used at all, when it is not.
    pub unavailable: Option<String>,
    /// The program's counters, read by the pre-filter thread.
    pub stats: Option<PrefilterStats>,
    /// Runs and total run time of the program (kernel accounting; only moves while
    /// `kernel.bpf_stats_enabled = 1`).
    pub runs: Option<(u64, u64)>,
}

/// The loaded program and its attachments.
pub struct Kernel {
    prefilter: Prefilter,
    /// Kept for their lifetime: dropping one detaches the program.
    _attached: Vec<Attached>,
    /// Blocks the kernel map holds, as last written.
    blocks: HashMap<IpAddr, Block>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

/// Loads and attaches the program as `plan` asks; None (userspace only) when it cannot or
/// should not, with the reason in `view`.
pub fn start(plan: &PrefilterPlan, bound: &[u16], view: &mut KernelView) -> Option<Kernel> {
    let mode = match plan.mode {
        PrefilterMode::Userspace => {
            view.unavailable = Some("mode = \"userspace\"".to_string());
            info!(
                mode = "userspace",
                reason = "configured",
                "pre-filter active"
            );
            return None;
        }
        _ if plan.interfaces.is_empty() => {
            view.unavailable = Some("no interfaces configured".to_string());
            info!(
                mode = "userspace",
                reason = "no interfaces configured",
                "pre-filter active"
            );
            return None;
        }
        PrefilterMode::Auto => AttachMode::Auto,
        PrefilterMode::Native => AttachMode::Native,
        PrefilterMode::Generic => AttachMode::Generic,
    };
    let mut prefilter = match Prefilter::load() {
        Ok(p) => p,
        Err(e) => {
            let why = e.to_string();
            warn!(mode = "userspace", reason = %why, "pre-filter active: XDP unavailable, the same rules run in userspace");
            view.unavailable = Some(why);
            return None;
        }
    };
    if let Err(e) = apply(&mut prefilter, plan, bound) {
        let why = format!("cannot fill the XDP maps: {e}");
        warn!(mode = "userspace", reason = %why, "pre-filter active");
        view.unavailable = Some(why);
        return None;
    }
    let mut attached = Vec::new();
    for iface in &plan.interfaces {
        match prefilter.attach(iface, mode) {
            Ok(a) => {
                let reason = a.fallback_reason().map(str::to_string);
                info!(iface = %iface, mode = %a.mode(), fallback = reason.as_deref().unwrap_or(""), "XDP attached");
                view.interfaces.push(InterfaceStatus {
                    iface: iface.clone(),
                    mode: a.mode().to_string(),
                    reason,
                });
                attached.push(a);
            }
            Err(e) => {
                warn!(iface = %iface, mode = "userspace", reason = %e, "XDP not attached; userspace enforcement only for this interface");
                view.interfaces.push(InterfaceStatus {
                    iface: iface.clone(),
                    mode: "userspace".to_string(),
                    reason: Some(e.to_string()),
                });
            }
        }
    }
    if attached.is_empty() {
        view.unavailable = Some("no interface could be attached".to_string());
        return None;
    }
    Some(Kernel {
        prefilter,
        _attached: attached,
        blocks: HashMap::new(),
    })
}

/// Writes the plan's ports, lists and limits into the maps; new entries go in before old
/// ones leave, so a reload never lets a denied source through.
fn apply(
    prefilter: &mut Prefilter,
    plan: &PrefilterPlan,
    bound: &[u16],
) -> Result<(), tollgate_ebpf::PrefilterError> {
    let maps = prefilter.maps_mut();
    maps.ports.replace_all(&plan.guarded_ports(bound))?;
    // Balancers (trusted proxies, PROXY protocol sources) pass like allowed sources: the
    // kernel sees only their address, never the clients behind them.
    maps.allow.replace_all(&plan.kernel_allow())?;
    maps.deny.replace_all(&plan.deny)?;
    // The kernel counts whole requests per second; fractional rates round up (at least 1).
    let whole = |r: f64| r.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
    maps.limits.set(tollgate_ebpf::structs::Limits {
        syn_rate_per_s: plan.connection.map_or(0, |t| whole(t.rate_per_s)),
        syn_burst: plan.connection.map_or(0, |t| t.burst),
        pkt_rate_per_s: plan.packet.map_or(0, |t| whole(t.rate_per_s)),
        pkt_burst: plan.packet.map_or(0, |t| t.burst),
        // Blocks and buckets key clients as userspace does.
        v4_prefix: u32::from(plan.keying.v4),
        v6_prefix: u32::from(plan.keying.v6),
    })
}

fn reason_code(reason: BlockReason) -> u32 {
    match reason {
        BlockReason::Escalation(o) => 1 + o as u32,
        BlockReason::Admin => 100,
    }
}

impl Kernel {
    /// A reload: the new plan's lists, ports and limits, in place.
    pub fn reload(&mut self, plan: &PrefilterPlan, bound: &[u16]) {
        match apply(&mut self.prefilter, plan, bound) {
            Ok(()) => info!(
                deny = plan.deny.len(),
                allow = plan.allow.len(),
                "XDP maps updated"
            ),
            Err(e) => {
                warn!(error = %e, "cannot update the XDP maps; the previous lists stay in the kernel")
            }
        }
    }

    /// Makes the kernel's block map match the userspace blocks `now` (new and extended blocks
    /// in, expired and lifted ones out).
    pub fn sync_blocks(&mut self, now: Vec<(IpAddr, Block)>) {
        let now: HashMap<IpAddr, Block> = now.into_iter().collect();
        let blocks = &mut self.prefilter.maps_mut().blocks;
        let mut changed = 0;
        for (ip, block) in &now {
            if self.blocks.get(ip) != Some(block) {
                let expiry_ns = block.expiry_ms.saturating_mul(1_000_000);
                match blocks.insert(*ip, expiry_ns, reason_code(block.reason)) {
                    Ok(()) => {
                        self.blocks.insert(*ip, *block);
                        changed += 1;
                    }
                    Err(e) => warn!(ip = %ip, error = %e, "cannot add a block to the XDP map"),
                }
            }
        }
        let gone: Vec<IpAddr> = self
            .blocks
            .keys()
            .filter(|ip| !now.contains_key(ip))
            .copied()
            .collect();
        for ip in gone {
            match blocks.remove(ip) {
                Ok(_) => {
                    self.blocks.remove(&ip);
                    changed += 1;
                }
                Err(e) => warn!(ip = %ip, error = %e, "cannot remove a block from the XDP map"),
            }
        }
        if changed > 0 {
            info!(changed, blocks = self.blocks.len(), "XDP blocks updated");
        }
    }

    /// The program's counters.
    pub fn stats(&self) -> Option<PrefilterStats> {
        self.prefilter.maps().stats.read().ok()
    }

    /// Runs and run time in nanoseconds (see [`KernelView::runs`]).
    pub fn runs(&self) -> Option<(u64, u64)> {
        self.prefilter
            .run_stats()
            .map(|(n, t)| (n, t.as_nanos() as u64))
    }
}
