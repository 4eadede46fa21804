//! The control thread: loads the plan, binds listeners, starts the workers, and then turns
//! signals into commands — SIGHUP reloads (the new plan is compiled and resolved here, once,
//! and sent to every worker as an `Arc`), SIGTERM/SIGINT drain. Everything slow or blocking
//! (file reads, DNS) happens here, never on a worker.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use crossbeam_channel::{select, unbounded, Receiver, Sender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use tollgate_config::access_log::LogTarget;
use tollgate_config::plan::DriverChoice;
use tollgate_config::Plan;
use tracing::{error, info, warn};

use crate::access_log::{LogSender, LogWriter, WorkerLog};
use crate::driver::{self, Driver};
use crate::limits::keeper::{self, Keeper, SharedKeeper};
use crate::limits::runtime::LimitsRuntime;
use crate::listen::bind_group;
use crate::worker::messages::{Apply, Command, Event};
use crate::worker::{self, thread};

/// Start-up options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Configuration file.
    pub config: PathBuf,
    /// Overrides `server.driver`.
    pub driver: Option<DriverChoice>,
    /// Overrides `server.workers`.
    pub workers: Option<usize>,
    /// Enables the test clock's control socket.
    pub test_clock: bool,
}

/// A bound listener group: configured address, backlog and the bound address.
struct Bound {
    configured: SocketAddr,
    backlog: u32,
    bound: SocketAddr,
}

struct WorkerHandle {
    commands: Sender<Command>,
    wake: UnixStream,
    thread: JoinHandle<std::io::Result<()>>,
}

/// The running gateway as the control thread sees it.
pub struct Gateway {
    /// The access log writer thread (idle while the plan has no access log).
    log: LogWriter,
    /// Durable limit state (keys, quotas, usage).
    keeper: SharedKeeper,
    /// Tells the pre-filter thread about new plans.
    prefilter_tx: Sender<crate::prefilter::sweeper::Message>,
    /// The pre-filter's shared state.
    prefilter: Arc<crate::prefilter::PrefilterState>,
    admin: Option<Arc<crate::admin::AdminState>>,
    options: Options,
    signals: Receiver<i32>,
    workers: Vec<WorkerHandle>,
    events: Receiver<Event>,
    listeners: HashMap<String, Bound>,
    plan: Arc<Plan>,
    text: String,
    generation: u64,
}

/// Loads a plan and resolves its upstream names.
fn load(path: &std::path::Path) -> anyhow::Result<(Plan, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the configuration file", path.display()))?;
    let plan = compile_resolved(path, &text)?;
    Ok((plan, text))
}

fn compile_resolved(path: &std::path::Path, text: &str) -> anyhow::Result<Plan> {
    let mut plan = tollgate_config::compile(path, text).map_err(|e| anyhow!("{e}"))?;
    for e in tollgate_backends::resolve::resolve_all(&mut plan.upstreams) {
        warn!(error = %e, "upstream unresolved; its routes answer 502 until it resolves");
    }
    for u in plan
        .upstreams
        .iter()
        .filter(|u| u.tls.as_ref().is_some_and(|t| t.insecure))
    {
        warn!(
            upstream = %u.authority,
            "INSECURE: insecure_skip_verify is on: this https upstream's certificate is not verified"
        );
    }
    warn_certificate_validity(&plan.certificate_validity, crate::clock::now_secs());
    Ok(plan)
}

/// Certificates served outside their validity still load (an outage is worse), loudly.
fn warn_certificate_validity(validity: &[tollgate_config::tls::CertificateValidity], now: i64) {
    const SOON_SECS: i64 = 14 * 86_400;
    for v in validity {
        if v.not_after < now {
            warn!(
                certificate = %v.id,
                not_after = v.not_after,
                "CERTIFICATE EXPIRED: clients will refuse it; replace it and reload"
            );
        } else if v.not_before > now {
            warn!(
                certificate = %v.id,
                not_before = v.not_before,
                "CERTIFICATE NOT YET VALID: clients will refuse it until not_before"
            );
        } else if v.not_after - now < SOON_SECS {
            warn!(
                certificate = %v.id,
                days_left = (v.not_after - now) / 86_400,
                "certificate expires in less than 14 days"
            );
        }
    }
}

impl Gateway {
    /// Loads the configuration, binds the listeners and starts the workers.
    pub fn start(options: Options) -> anyhow::Result<Self> {
        // Handlers go in first: a SIGHUP or SIGTERM that arrives while starting must be
        // queued, not take the default action (terminate).
        let signals = signal_channel()?;
        if options.test_clock {
            let (listener, addr) = crate::clock::bind_test_control()
                .context("cannot bind the test clock control socket")?;
            warn!(
                addr = %addr,
                warning = "TEST CLOCK ENABLED: the gateway's clock can be moved; never use in production",
                "test clock control"
            );
            std::thread::Builder::new()
                .name("tollgate-test-clock".into())
                .spawn(move || crate::clock::serve_test_control(listener))
                .context("cannot start the test clock thread")?;
        }
        let (plan, text) = load(&options.config)?;
        let choice = options.driver.unwrap_or(plan.settings.driver);
        let (driver, reason) = driver::choose(choice).map_err(|e| anyhow!(e))?;
        let count = options
            .workers
            .or(plan.settings.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        info!(driver = driver.name(), reason = %reason, workers = count, "starting");
        log_connection_ceiling(&plan, count);
        let plan = Arc::new(plan);
        let mut listeners = HashMap::new();
        let mut sockets: Vec<Vec<(String, TcpListener)>> = (0..count).map(|_| Vec::new()).collect();
        for l in &plan.listeners {
            let (group, bound) = bind(&l.name, l.addr, l.backlog, count)?;
            for (i, s) in group.into_iter().enumerate() {
                sockets[i].push((l.name.clone(), s));
            }
            let entry = Bound {
                configured: l.addr,
                backlog: l.backlog,
                bound,
            };
            listeners.insert(l.name.clone(), entry);
        }
        let (keeper, refills) = Keeper::open(Arc::clone(&plan), 1)?;
        let limits = keeper::lock(&keeper).runtime();
        keeper::spawn(Arc::clone(&keeper), refills)?;
        let (log, log_sender, log_buffer_bytes) = start_access_log(&plan)?;
        let bound: Vec<u16> = listeners.values().map(|b| b.bound.port()).collect();
        let (prefilter, prefilter_tx) = start_prefilter(&plan, bound)?;
        let (events_tx, events) = unbounded();
        let mut workers = Vec::with_capacity(count);
        for (id, open) in sockets.into_iter().enumerate() {
            workers.push(spawn_worker(
                id,
                driver,
                Arc::clone(&plan),
                Arc::clone(&limits),
                open,
                events_tx.clone(),
                worker::Services {
                    access_log: WorkerLog::new(log_sender.clone(), log_buffer_bytes),
                    prefilter: Arc::clone(&prefilter),
                },
            )?);
        }
        let mut announce = Vec::with_capacity(workers.len());
        for handle in &workers {
            announce.push((handle.commands.clone(), handle.wake.try_clone()?));
        }
        keeper::lock(&keeper).set_workers(announce);
        let mut gateway = Gateway {
            log,
            keeper,
            prefilter_tx,
            prefilter: Arc::clone(&prefilter),
            admin: None,
            options,
            signals,
            workers,
            events,
            listeners,
            plan,
            text,
            generation: 1,
        };
        gateway.wait_applied(1)?;
        gateway.start_admin()?;
        info!(generation = 1, workers = count, "ready");
        Ok(gateway)
    }

    /// Binds the admin listener, if configured, and serves it on its own thread.
    fn start_admin(&mut self) -> anyhow::Result<()> {
        let Some(admin) = self.plan.admin.clone() else {
            return Ok(());
        };
        let listener = TcpListener::bind(admin.addr)
            .with_context(|| format!("admin listener: cannot bind {}", admin.addr))?;
        let addr = listener.local_addr()?;
        let mut workers = Vec::with_capacity(self.workers.len());
        for handle in &self.workers {
            workers.push((handle.commands.clone(), handle.wake.try_clone()?));
        }
        let state = Arc::new(crate::admin::AdminState {
            workers,
            token: admin.token,
            reloads_ok: Default::default(),
            reloads_failed: Default::default(),
            plan: std::sync::Mutex::new((Arc::clone(&self.plan), self.generation)),
            keeper: Arc::clone(&self.keeper),
            prefilter: Arc::clone(&self.prefilter),
        });
        let shared = Arc::clone(&state);
        std::thread::Builder::new()
            .name("tollgate-admin".into())
            .spawn(move || crate::admin::serve(listener, shared))
            .context("cannot start the admin thread")?;
        info!(addr = %addr, "admin listening");
        self.admin = Some(state);
        Ok(())
    }

    /// The address a listener is bound to (port 0 resolved).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.get(name).map(|b| b.bound)
    }

    /// Waits until every worker runs `generation`.
    fn wait_applied(&mut self, generation: u64) -> anyhow::Result<()> {
        let mut pending: Vec<bool> = vec![true; self.workers.len()];
        let deadline = Instant::now() + Duration::from_secs(30);
        while pending.iter().any(|p| *p) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Applied {
                    worker,
                    generation: g,
                }) if g == generation => pending[worker] = false,
                Ok(Event::Stopped { worker }) => {
                    return Err(anyhow!("worker {worker} stopped unexpectedly"))
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(anyhow!(
                        "workers did not apply generation {generation} within 30 s"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Runs until SIGTERM or SIGINT has drained the workers.
    pub fn run(mut self) -> anyhow::Result<()> {
        let signals = self.signals.clone();
        let refresh = Duration::from_millis(self.plan.upstream.dns_ttl_ms);
        loop {
            select! {
                recv(signals) -> sig => match sig {
                    Ok(SIGHUP) => self.reload(),
                    Ok(SIGUSR1) => {
                        self.log.reopen();
                        info!("access log reopened");
                    }
                    Ok(_) | Err(_) => return self.drain(),
                },
                recv(self.events) -> ev => {
                    if let Ok(Event::Stopped { worker }) = ev {
                        error!(worker, "worker stopped unexpectedly");
                    }
                }
                default(refresh) => self.refresh_names(),
            }
        }
    }

    /// SIGHUP: compile and resolve the file again; if it is valid, switch every worker.
    fn reload(&mut self) {
        info!(file = %self.options.config.display(), "reload requested");
        let result = load(&self.options.config).and_then(|(plan, text)| {
            // The writer moves to a new access log path before the workers switch, so no line
            // of the new plan lands at the old target.
            let before = self.plan.access_log.as_ref().map(|a| &a.target);
            let after = plan.access_log.as_ref().map(|a| &a.target);
            if let Some(target) = after.filter(|t| Some(*t) != before) {
                self.log.retarget(target.clone());
            }
            self.switch(plan, text)
        });
        if let Some(admin) = &self.admin {
            let counter = if result.is_ok() {
                &admin.reloads_ok
            } else {
                &admin.reloads_failed
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match result {
            Ok(generation) => info!(generation, "reload complete"),
            Err(e) => {
                error!(error = %e, generation = self.generation, "reload failed; the previous configuration keeps serving")
            }
        }
    }

    /// Re-resolves upstream names; a change becomes a new plan generation.
    fn refresh_names(&mut self) {
        let named = self
            .plan
            .upstreams
            .iter()
            .any(|u| u.host.parse::<IpAddr>().is_err());
        if !named {
            return;
        }
        let Ok(plan) = compile_resolved(&self.options.config, &self.text) else {
            return;
        };
        let changed = plan
            .upstreams
            .iter()
            .zip(&self.plan.upstreams)
            .any(|(a, b)| a.addrs != b.addrs);
        if changed {
            let text = self.text.clone();
            match self.switch(plan, text) {
                Ok(generation) => info!(generation, "upstream addresses changed"),
                Err(e) => warn!(error = %e, "cannot apply new upstream addresses"),
            }
        }
    }

    /// Binds new listeners, sends the plan to every worker and waits for all to apply it.
    fn switch(&mut self, plan: Plan, text: String) -> anyhow::Result<u64> {
        let count = self.workers.len();
        let mut open: Vec<Vec<(String, TcpListener)>> = (0..count).map(|_| Vec::new()).collect();
        let mut close = Vec::new();
        let mut kept = HashMap::new();
        for l in &plan.listeners {
            let bound = match self.listeners.get(&l.name) {
                Some(b) if b.configured == l.addr && b.backlog == l.backlog => b.bound,
                existing => {
                    if existing.is_some() {
                        close.push(l.name.clone());
                    }
                    let (group, bound) = bind(&l.name, l.addr, l.backlog, count)?;
                    for (i, s) in group.into_iter().enumerate() {
                        open[i].push((l.name.clone(), s));
                    }
                    bound
                }
            };
            let entry = Bound {
                configured: l.addr,
                backlog: l.backlog,
                bound,
            };
            kept.insert(l.name.clone(), entry);
        }
        close.extend(
            self.listeners
                .keys()
                .filter(|n| !kept.contains_key(*n))
                .cloned(),
        );
        let generation = self.generation + 1;
        let plan = Arc::new(plan);
        if plan.usage.state.as_ref().map(|s| &s.dir)
            != self.plan.usage.state.as_ref().map(|s| &s.dir)
        {
            warn!("[state] changed: the state directory opened at start-up stays in use until a restart");
        }
        // Keys and plans are checked against admin-made ones before anything switches.
        let limits = keeper::lock(&self.keeper)
            .rebuild(Arc::clone(&plan), generation)
            .map_err(|e| anyhow!(e))?;
        self.generation = generation;
        let _ = self
            .prefilter_tx
            .send(crate::prefilter::sweeper::Message::Plan(
                Arc::clone(&plan),
                kept.values().map(|b| b.bound.port()).collect(),
            ));
        for (handle, open) in self.workers.iter_mut().zip(open) {
            let apply = Apply {
                plan: Arc::clone(&plan),
                generation,
                limits: Arc::clone(&limits),
                open,
                close: close.clone(),
            };
            send(handle, Command::Apply(Box::new(apply)));
        }
        self.listeners = kept;
        if let Some(admin) = &self.admin {
            if let Ok(mut current) = admin.plan.lock() {
                *current = (Arc::clone(&plan), generation);
            }
        }
        self.plan = plan;
        self.text = text;
        self.wait_applied(generation)?;
        Ok(generation)
    }

    /// Drains and stops a gateway started in-process, as SIGTERM does for [`Self::run`].
    /// (Dropping a `Gateway` instead leaves its workers running: the keeper holds their
    /// wake-up sockets.)
    pub fn stop(self) -> anyhow::Result<()> {
        self.drain()
    }

    /// Stops accepting, lets in-flight requests finish until the deadline, and joins workers.
    fn drain(self) -> anyhow::Result<()> {
        let timeout = Duration::from_millis(self.plan.settings.shutdown_timeout_ms);
        info!(
            timeout_ms = self.plan.settings.shutdown_timeout_ms,
            "draining"
        );
        let deadline = Instant::now() + timeout;
        for handle in &self.workers {
            send(handle, Command::Drain { deadline });
        }
        for handle in self.workers {
            match handle.thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "worker runtime failed"),
                Err(_) => warn!("worker panicked"),
            }
        }
        self.log.stop();
        keeper::lock(&self.keeper).shutdown();
        info!("shutdown complete");
        Ok(())
    }
}

fn bind(
    name: &str,
    addr: SocketAddr,
    backlog: u32,
    count: usize,
) -> anyhow::Result<(Vec<TcpListener>, SocketAddr)> {
    let (group, bound) = bind_group(addr, backlog, count)
        .with_context(|| format!("listener {name:?}: cannot bind {addr}"))?;
    info!(listener = name, addr = %bound, "listening");
    Ok((group, bound))
}

/// Raises the open-files limit to its hard limit and logs how many client connections that
/// allows: each worker keeps a few descriptors (ring, wake-up socket, reserve, one per
/// listener twice), and every proxied request in flight needs an upstream connection too.
fn log_connection_ceiling(plan: &Plan, workers: usize) {
    match crate::sys::raise_nofile_limit() {
        Ok((soft, hard)) => {
            let fixed = 32 + workers as u64 * (4 + 2 * plan.listeners.len() as u64);
            let by_files = soft.saturating_sub(fixed);
            let by_config = plan.limits.connections_per_worker_max as u64 * workers as u64;
            info!(
                nofile = soft,
                nofile_hard = hard,
                connections_max = by_files.min(by_config),
                "file descriptor limit"
            );
        }
        Err(e) => warn!(error = %e, "cannot read the open-files limit"),
    }
}

fn send(handle: &WorkerHandle, command: Command) {
    let _ = handle.commands.send(command);
    // One byte wakes the worker's control task; it then drains the channel.
    let _ = (&handle.wake).write_all(&[1]);
}

fn spawn_worker(
    id: usize,
    driver: Driver,
    plan: Arc<Plan>,
    limits: Arc<LimitsRuntime>,
    open: Vec<(String, TcpListener)>,
    events: Sender<Event>,
    services: worker::Services,
) -> anyhow::Result<WorkerHandle> {
    let (commands, rx) = unbounded();
    let (wake, wake_rx) = UnixStream::pair().context("cannot create a worker wake-up socket")?;
    // Writers never block on it: a full socket already holds a byte that wakes the worker
    // (a stuck worker must not stall the control or admin thread that signals it).
    wake.set_nonblocking(true)
        .context("cannot make the wake-up socket non-blocking")?;
    let first = Apply {
        plan,
        generation: 1,
        limits,
        open,
        close: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("tollgate-w{id}"))
        .spawn(move || thread::run(id, driver, first, rx, wake_rx, events, services))
        .context("cannot start a worker thread")?;
    Ok(WorkerHandle {
        commands,
        wake,
        thread,
    })
}

/// Creates the pre-filter's shared state and starts its thread (always: a reload can add
/// `[prefilter]`); returns the state and the thread's plan channel.
fn start_prefilter(
    plan: &Arc<Plan>,
    bound: Vec<u16>,
) -> anyhow::Result<(
    Arc<crate::prefilter::PrefilterState>,
    Sender<crate::prefilter::sweeper::Message>,
)> {
    let (added_tx, added_rx) = crossbeam_channel::bounded(4096);
    let state = Arc::new(crate::prefilter::PrefilterState::new(Some(added_tx)));
    let (tx, rx) = unbounded();
    crate::prefilter::sweeper::spawn(Arc::clone(&state), added_rx, rx, Arc::clone(plan), bound)?;
    Ok((state, tx))
}

/// Starts the access log writer on the plan's target (stdout, unused, when the plan has no
/// access log, so a reload can turn it on); returns it, the workers' queue end and the
/// per-worker buffer size.
fn start_access_log(plan: &Plan) -> anyhow::Result<(LogWriter, LogSender, usize)> {
    let (target, buffer_bytes) = match &plan.access_log {
        Some(a) => (a.target.clone(), a.buffer_bytes),
        None => (LogTarget::Stdout, 64 * 1024),
    };
    let (writer, sender) = LogWriter::start(target.clone())
        .with_context(|| format!("access log: cannot open {target}"))?;
    Ok((writer, sender, buffer_bytes))
}

/// Forwards SIGHUP, SIGTERM, SIGINT and SIGUSR1 to a channel.
fn signal_channel() -> anyhow::Result<Receiver<i32>> {
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])
        .context("cannot install signal handlers")?;
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("tollgate-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(rx)
}
