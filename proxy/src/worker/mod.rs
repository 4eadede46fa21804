//! One worker: a monoio runtime on its own thread with its own listeners, connections,
//! upstream pools, buffers and counters. Nothing here is shared with other workers; the
//! control thread talks to it only through [`Command`]s.
//!
//! Plans: the worker holds the current plan in an `Rc` that every request clones when its
//! head is parsed, so a keep-alive connection sees a new route on its next request while an
//! in-flight request finishes on the plan it started with. Applying a plan builds the
//! worker's view of it ([`WorkerPlan`]): the integrations' state (upstream pools) and route
//! counters are carried over by stable key (upstream authority; API id + stage + route key),
//! never by position.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use monoio::io::AsyncReadRent;
use monoio::net::TcpListener;
use tollgate_backends::Backends;
use tollgate_config::Plan;
use tracing::{info, warn};

use crate::access_log::WorkerLog;
use crate::conn::Conn;
use crate::counters::{bump, RouteCounters, WorkerCounters};
use crate::driver::Driver;
use crate::limits::runtime::LimitsRuntime;
use crate::registry::Registry;
use crate::request_id::RequestIds;
use crate::sys::shutdown_read;
use tollgate_backends::wire::buffers::BufferPool;

/// Size of pooled I/O buffers; heads larger than this grow a buffer for that request.
const BUFFER_BYTES: usize = 16 * 1024;
/// Free buffers kept per worker per kind.
const BUFFERS_KEPT: usize = 64;

/// A message from the control thread.
#[derive(Debug)]
pub enum Command {
    /// Switch to a new plan; open and close listeners.
    Apply(Box<Apply>),
    /// Copy the worker's counters for a metrics scrape and send them back.
    Snapshot(Sender<crate::metrics::Snapshot>),
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

    fn apply(self: &Rc<Self>, apply: Apply) {
        for name in &apply.close {
            let mut listeners = self.listeners.borrow_mut();
            if let Some(i) = listeners.iter().position(|l| &*l.name == name) {
                let l = listeners.remove(i);
                l.stopped.set(true);
                shutdown_read(l.fd);
            }
        }
        for (name, socket) in apply.open {
            let local = socket.local_addr().ok();
            // A second handle on the same socket, for refusing connections at the file limit
            // with plain non-blocking accepts (see `refuse_waiting`).
            let refuse = socket.try_clone().ok();
            match TcpListener::from_std(socket) {
                Ok(listener) => {
                    let stopped = Rc::new(Cell::new(false));
                    let name: Rc<str> = name.into();
                    self.listeners.borrow_mut().push(ListenerHandle {
                        name: Rc::clone(&name),
                        fd: listener.as_raw_fd(),
                        stopped: Rc::clone(&stopped),
                    });
                    let accept = AcceptLoop {
                        listener,
                        refuse,
                        name,
                        local,
                        stopped,
                    };
                    monoio::spawn(accept_loop(Rc::clone(self), accept));
                }
                Err(e) => {
                    warn!(worker = self.id, listener = %name, error = %e, "cannot register listener")
                }
            }
        }
        let early = self.early_limits.borrow_mut().take();
        let limits = match early {
            Some(e) if e.generation == apply.generation && e.version > apply.limits.version => e,
            Some(e) if e.generation > apply.generation => {
                *self.early_limits.borrow_mut() = Some(e);
                apply.limits
            }
            _ => apply.limits,
        };
        let built = WorkerPlan::build(apply.plan, apply.generation, limits, Some(&self.plan()));
        *self.plan.borrow_mut() = Rc::new(built);
        bump(&self.counters.plans_applied);
        info!(
            worker = self.id,
            generation = apply.generation,
            "plan applied"
        );
        let _ = self.events.send(Event::Applied {
            worker: self.id,
            generation: apply.generation,
        });
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

/// How long a drain waits for tunnel tasks to end after closing their sockets.
const TUNNEL_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Process-wide services a worker is handed at start.
#[derive(Debug)]
pub struct Services {
    /// This worker's access log buffer.
    pub access_log: WorkerLog,
    /// The pre-filter's shared state (blocks, per-source buckets, escalation counters).
    pub prefilter: Arc<crate::prefilter::PrefilterState>,
}

/// Runs worker `id` on the calling thread until it has drained.
pub fn run(
    id: usize,
    driver: Driver,
    first: Apply,
    commands: Receiver<Command>,
    wake: std::os::unix::net::UnixStream,
    events: Sender<Event>,
    services: Services,
) -> std::io::Result<()> {
    let Services {
        access_log,
        prefilter,
    } = services;
    let main = async move {
        let empty = Arc::clone(&first.plan);
        let worker = Rc::new(Worker {
            id,
            driver,
            plan: RefCell::new(Rc::new(WorkerPlan::build(
                empty,
                0,
                Arc::clone(&first.limits),
                None,
            ))),
            buffers: BufferPool::new(BUFFER_BYTES, BUFFERS_KEPT),
            registry: RefCell::new(Registry::default()),
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            counters: WorkerCounters::default(),
            ids: RequestIds::new(id),
            date: Cell::new(crate::clock::http_date(crate::clock::now())),
            reserve_fd: RefCell::new(std::fs::File::open("/dev/null").ok()),
            listeners: RefCell::new(Vec::new()),
            events: events.clone(),
            access_log,
            prefilter,
            quota_ready: Default::default(),
            early_limits: RefCell::new(None),
        });
        worker.apply(first);
        monoio::spawn(sweep_loop(Rc::clone(&worker)));
        control_loop(&worker, commands, wake).await;
        let _ = events.send(Event::Stopped { worker: id });
    };
    crate::driver::block_on(driver, main)
}

/// Waits for wake-ups from the control thread and runs its commands.
async fn control_loop(
    worker: &Rc<Worker>,
    commands: Receiver<Command>,
    wake: std::os::unix::net::UnixStream,
) {
    let deadline = match wake
        .set_nonblocking(true)
        .and_then(|()| monoio::net::UnixStream::from_std(wake))
    {
        Ok(mut wake) => {
            let mut scratch = vec![0u8; 64];
            'outer: loop {
                let (res, buf) = wake.read(scratch).await;
                scratch = buf;
                if !matches!(res, Ok(n) if n > 0) {
                    // The control thread is gone: drain with the configured deadline.
                    let ms = worker.plan().plan.settings.shutdown_timeout_ms;
                    break Instant::now() + Duration::from_millis(ms);
                }
                while let Ok(cmd) = commands.try_recv() {
                    match cmd {
                        Command::Apply(apply) => worker.apply(*apply),
                        Command::QuotaReady => worker.quota_ready.signal(),
                        Command::Limits(limits, done) => {
                            worker.set_limits(limits);
                            let _ = done.send(worker.id);
                        }
                        Command::Snapshot(reply) => {
                            let _ = reply.send(crate::metrics::Snapshot::of(worker));
                        }
                        Command::Drain { deadline } => break 'outer deadline,
                    }
                }
            }
        }
        Err(e) => {
            warn!(worker = worker.id, error = %e, "no control channel; draining");
            Instant::now()
        }
    };
    worker.start_drain();
    // Connections that were busy close after their current request; the loop only waits for
    // them (bounded by the deadline), re-closing connections that turned idle meanwhile.
    // Tunnels (upgraded connections) cannot be ended cleanly from here, so they keep running
    // until the deadline and are closed last.
    while !worker.registry.borrow().is_empty() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
        worker.close_idle();
    }
    let tunnels = worker.registry.borrow_mut().close_tunnels();
    if tunnels > 0 {
        info!(
            worker = worker.id,
            tunnels, "drain deadline: tunnels closed"
        );
        let grace = Instant::now() + TUNNEL_CLOSE_GRACE;
        while !worker.registry.borrow().is_empty() && Instant::now() < grace {
            monoio::time::sleep(Duration::from_millis(10)).await;
            // A tunnel whose 101 arrived meanwhile.
            worker.registry.borrow_mut().close_tunnels();
        }
    }
    worker.access_log.flush();
    let plan = worker.plan();
    let (connects, reuses) = plan.backends.connects_and_reuses();
    let requests: u64 = plan
        .routes
        .iter()
        .chain([&plan.unmatched])
        .map(|c| c.total())
        .sum();
    info!(
        worker = worker.id,
        open = worker.registry.borrow().len(),
        accepted = worker.counters.accepted.get(),
        requests,
        upstream_connects = connects,
        upstream_reuses = reuses,
        "worker drained"
    );
}

/// At the open-files limit: frees the worker's reserve descriptor, accepts and closes the
/// connections waiting in the backlog (refused at once rather than left waiting, and not
/// retried in a loop), then takes the reserve back. Returns how many were refused.
fn refuse_waiting(worker: &Worker, listener: &std::net::TcpListener) -> usize {
    drop(worker.reserve_fd.borrow_mut().take());
    let mut refused = 0;
    while refused < 1024 {
        match listener.accept() {
            Ok((stream, _)) => {
                drop(stream);
                refused += 1;
            }
            Err(_) => break,
        }
    }
    *worker.reserve_fd.borrow_mut() = std::fs::File::open("/dev/null").ok();
    let counter = &worker.counters.rejected_at_file_limit;
    counter.set(counter.get() + refused as u64);
    refused
}

/// How often idle deadlines are enforced (the precision of idle and header-wait timeouts).
const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Closes idle connections past their deadline and refreshes the cached `date` header, for
/// the life of the worker (formatting the date per response would cost every request).
async fn sweep_loop(worker: Rc<Worker>) {
    loop {
        monoio::time::sleep(SWEEP_INTERVAL).await;
        worker.registry.borrow_mut().sweep(Instant::now());
        worker.access_log.flush();
        // Free buffers a burst left in the pool go back to the allocator, which returns the
        // pages they empty to the system (see the bin's `allocator`).
        worker.buffers.shrink_when_paused();
        worker
            .date
            .set(crate::clock::http_date(crate::clock::now()));
    }
}

/// What an accept loop works with.
struct AcceptLoop {
    listener: TcpListener,
    refuse: Option<std::net::TcpListener>,
    name: Rc<str>,
    local: Option<SocketAddr>,
    stopped: Rc<Cell<bool>>,
}

async fn accept_loop(worker: Rc<Worker>, accept: AcceptLoop) {
    let AcceptLoop {
        listener,
        refuse,
        name,
        local,
        stopped,
    } = accept;
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted = listener.accept().await;
        if stopped.get() {
            break;
        }
        match accepted {
            Ok((stream, peer)) => {
                let limit = worker.plan().plan.limits.connections_per_worker_max;
                if worker.registry.borrow().len() >= limit {
                    // Close at once instead of leaving it in the backlog: under SO_REUSEPORT a
                    // connection queued here would never move to another worker.
                    bump(&worker.counters.rejected_at_limit);
                    drop(stream);
                    continue;
                }
                bump(&worker.counters.accepted);
                let port = local.map_or(0, |l| l.port());
                let conn = Conn::new(Rc::clone(&worker), stream, peer, port, Rc::clone(&name));
                monoio::spawn(conn.serve());
            }
            Err(e) => {
                let now = Instant::now();
                if last_error_log.is_none_or(|t| now.duration_since(t) > Duration::from_secs(1)) {
                    warn!(worker = worker.id, listener = %name, error = %e, "accept failed");
                    last_error_log = Some(now);
                }
                let at_file_limit = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if at_file_limit {
                    if let Some(refuse) = &refuse {
                        if refuse_waiting(&worker, refuse) > 0 {
                            continue;
                        }
                    }
                }
                // Nothing could be refused (or another error): back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
