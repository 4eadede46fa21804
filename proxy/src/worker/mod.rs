//! One worker: a monoio runtime on its own thread with its own listeners, connections,
//! upstream pools, buffers and counters. Nothing here is shared with other workers; the
//! control thread talks to it only through [`messages::Command`]s.
//!
//! - this module: the worker's state ([`Worker`]) and its view of a plan ([`WorkerPlan`]);
//! - [`messages`]: the protocol with the control thread;
//! - [`thread`]: its thread — runtime, accept, sweep and control loops, plan apply, drain;
//! - [`snapshot`]: the copy of its counters a metrics scrape takes.
//!
//! Plans: the worker holds the current plan in an `Rc` that every request clones when its
//! head is parsed, so a keep-alive connection sees a new route on its next request while an
//! in-flight request finishes on the plan it started with. Applying a plan builds the
//! worker's view of it ([`WorkerPlan`]): the integrations' state (upstream pools) and route
//! counters are carried over by stable key (upstream authority; API id + stage + route key),
//! never by position.

pub mod messages;
mod snapshot;
pub mod thread;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_channel::Sender;
use tollgate_backends::wire::buffers::BufferPool;
use tollgate_backends::Backends;
use tollgate_config::Plan;
use tracing::info;

use crate::access_log::WorkerLog;
use crate::counters::{RouteCounters, WorkerCounters};
use crate::driver::Driver;
use crate::limits::runtime::LimitsRuntime;
use crate::registry::Registry;
use crate::request_id::RequestIds;
use crate::sys::shutdown_read;
use messages::Event;

/// Size of pooled I/O buffers; heads larger than this grow a buffer for that request.
const BUFFER_BYTES: usize = 16 * 1024;
/// Free buffers kept per worker per kind.
const BUFFERS_KEPT: usize = 64;

/// The worker's view of one plan generation.
#[derive(Debug)]
pub struct WorkerPlan {
    /// The shared plan.
    pub plan: Arc<Plan>,
    /// Its generation.
    pub generation: u64,
    /// The integrations' per-worker state (upstream connection pools, …).
    pub backends: Backends,
    /// Route counters by `plan.routes` index.
    pub routes: Vec<Rc<RouteCounters>>,
    /// Requests that matched no route.
    pub unmatched: Rc<RouteCounters>,
    /// Keys, throttles and quotas for this plan.
    pub limits: Arc<LimitsRuntime>,
}

impl WorkerPlan {
    fn build(
        plan: Arc<Plan>,
        generation: u64,
        limits: Arc<LimitsRuntime>,
        old: Option<&WorkerPlan>,
    ) -> Self {
        let mut old_routes: HashMap<(&str, &str, &str), &Rc<RouteCounters>> = HashMap::new();
        if let Some(old) = old {
            for (r, c) in old.plan.routes.iter().zip(&old.routes) {
                let api = old.plan.apis[r.api].id.as_str();
                old_routes.insert((api, r.stage.as_str(), r.route_key.as_str()), c);
            }
        }
        let backends = Backends::build(&plan, old.map(|o| &o.backends));
        let routes = plan
            .routes
            .iter()
            .map(|r| {
                let key = (
                    plan.apis[r.api].id.as_str(),
                    r.stage.as_str(),
                    r.route_key.as_str(),
                );
                old_routes
                    .get(&key)
                    .map_or_else(Rc::default, |c| Rc::clone(c))
            })
            .collect();
        let unmatched = old.map_or_else(Rc::default, |o| Rc::clone(&o.unmatched));
        Self {
            plan,
            generation,
            backends,
            routes,
            unmatched,
            limits,
        }
    }

    /// The same plan with other limits.
    fn with_limits(&self, limits: Arc<LimitsRuntime>) -> Self {
        Self {
            plan: Arc::clone(&self.plan),
            generation: self.generation,
            backends: self.backends.clone(),
            routes: self.routes.clone(),
            unmatched: Rc::clone(&self.unmatched),
            limits,
        }
    }
}

/// A listener this worker accepts on.
#[derive(Debug)]
struct ListenerHandle {
    name: Rc<str>,
    fd: RawFd,
    stopped: Rc<Cell<bool>>,
}

/// All state of one worker.
#[derive(Debug)]
pub struct Worker {
    /// Index (0-based).
    pub id: usize,
    /// The io driver it runs.
    pub driver: Driver,
    plan: RefCell<Rc<WorkerPlan>>,
    /// Pooled I/O buffers.
    pub buffers: BufferPool,
    /// Open downstream connections.
    pub registry: RefCell<Registry>,
    /// Set by a drain: finish the current request, then close.
    pub draining: Cell<bool>,
    /// Requests being handled (counted only when `[overload]` is configured).
    pub in_flight: Cell<u32>,
    /// Connection and reload counters.
    pub counters: WorkerCounters,
    /// Request id generator.
    pub ids: RequestIds,
    /// A descriptor kept open to be given up at the open-files limit (see `refuse_waiting`).
    reserve_fd: RefCell<Option<std::fs::File>>,
    /// `date` header value, refreshed by the sweep from the gateway's clock.
    pub date: Cell<[u8; 29]>,
    listeners: RefCell<Vec<ListenerHandle>>,
    events: Sender<Event>,
    /// This worker's access log buffer (used when the plan has an access log).
    pub access_log: WorkerLog,
    /// The pre-filter's shared state.
    pub prefilter: Arc<crate::prefilter::PrefilterState>,
    /// Requests waiting for the keeper to reserve quota.
    pub quota_ready: crate::limits::ready::QuotaReady,
    /// Limits that arrived before their plan generation (see `set_limits`).
    early_limits: RefCell<Option<Arc<LimitsRuntime>>>,
}

impl Worker {
    /// The plan current now (cloned per request when its head is parsed).
    pub fn plan(&self) -> Rc<WorkerPlan> {
        Rc::clone(&self.plan.borrow())
    }

    /// Uses `limits` if they are for the plan in use and newer than its own; keeps limits
    /// for a plan generation that has not arrived yet (an admin change can overtake a reload
    /// on the way here) until it does.
    fn set_limits(&self, limits: Arc<LimitsRuntime>) {
        let current = self.plan();
        if limits.generation > current.generation {
            let mut early = self.early_limits.borrow_mut();
            if early.as_ref().is_none_or(|e| e.version < limits.version) {
                *early = Some(limits);
            }
            return;
        }
        if limits.generation == current.generation && limits.version > current.limits.version {
            *self.plan.borrow_mut() = Rc::new(current.with_limits(limits));
        }
    }

    fn start_drain(&self) {
        self.draining.set(true);
        info!(worker = self.id, "drain started");
        for l in self.listeners.borrow_mut().drain(..) {
            l.stopped.set(true);
            shutdown_read(l.fd);
        }
        self.close_idle();
        self.plan().backends.clear();
    }

    fn close_idle(&self) {
        for fd in self.registry.borrow().idle_fds() {
            shutdown_read(fd);
        }
    }
}

/// Process-wide services a worker is handed at start.
#[derive(Debug)]
pub struct Services {
    /// This worker's access log buffer.
    pub access_log: WorkerLog,
    /// The pre-filter's shared state (blocks, per-source buckets, escalation counters).
    pub prefilter: Arc<crate::prefilter::PrefilterState>,
}
