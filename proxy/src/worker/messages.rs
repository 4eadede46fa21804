//! The protocol between the control thread and a worker: [`Command`]s in (over a channel, with
//! a wake-up byte on the worker's socket pair) and [`Event`]s out.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use tollgate_config::Plan;

use crate::limits::runtime::LimitsRuntime;
use crate::metrics::Snapshot;

/// A message from the control thread.
#[derive(Debug)]
pub enum Command {
    /// Switch to a new plan; open and close listeners.
    Apply(Box<Apply>),
    /// Copy the worker's counters for a metrics scrape and send them back.
    Snapshot(Sender<Snapshot>),
    /// Enforce new limits (admin change of keys or plans) if they were built for the plan
    /// generation in use; a later reload brings its own.
    /// The worker answers with its id once the limits are in use (or ignored as stale).
    Limits(Arc<LimitsRuntime>, Sender<usize>),
    /// The keeper reserved quota someone waited for: wake waiting requests.
    QuotaReady,
    /// Stop accepting, finish in-flight requests until `deadline`, then exit.
    Drain {
        /// When to give up on in-flight requests.
        deadline: Instant,
    },
}

/// A plan to apply and the listener changes that come with it.
#[derive(Debug)]
pub struct Apply {
    /// The compiled plan.
    pub plan: Arc<Plan>,
    /// Its generation (1 = the start-up plan).
    pub generation: u64,
    /// The limits built for it.
    pub limits: Arc<LimitsRuntime>,
    /// New listeners for this worker: name and socket.
    pub open: Vec<(String, std::net::TcpListener)>,
    /// Names of listeners to close.
    pub close: Vec<String>,
}

/// A message to the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A plan generation is live on this worker.
    Applied {
        /// Worker index.
        worker: usize,
        /// Generation.
        generation: u64,
    },
    /// The worker has drained and its thread is ending.
    Stopped {
        /// Worker index.
        worker: usize,
    },
}
