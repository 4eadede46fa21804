//! A worker's thread: its runtime, the loops it runs (control commands, accepts, the sweep),
//! applying plans and listener changes, and the drain at the end.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use monoio::io::AsyncReadRent;
use monoio::net::TcpListener;
use tollgate_backends::wire::buffers::BufferPool;
use tracing::{info, warn};

use super::messages::{Apply, Command, Event};
use super::{ListenerHandle, Services, Worker, WorkerPlan, BUFFERS_KEPT, BUFFER_BYTES};
use crate::conn::Conn;
use crate::counters::{bump, WorkerCounters};
use crate::driver::Driver;
use crate::registry::Registry;
use crate::request_id::RequestIds;
use crate::sys::shutdown_read;

/// How long a drain waits for tunnel tasks to end after closing their sockets.
const TUNNEL_CLOSE_GRACE: Duration = Duration::from_secs(1);

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
        apply(&worker, first);
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
                        Command::Apply(next) => apply(worker, *next),
                        Command::QuotaReady => worker.quota_ready.signal(),
                        Command::Limits(limits, done) => {
                            worker.set_limits(limits);
                            let _ = done.send(worker.id);
                        }
                        Command::Snapshot(reply) => {
                            let _ = reply.send(worker.snapshot());
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

/// Opens and closes listeners and swaps in the new plan, then reports the generation applied.
fn apply(worker: &Rc<Worker>, apply: Apply) {
    for name in &apply.close {
        let mut listeners = worker.listeners.borrow_mut();
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
                worker.listeners.borrow_mut().push(ListenerHandle {
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
                monoio::spawn(accept_loop(Rc::clone(worker), accept));
            }
            Err(e) => {
                warn!(worker = worker.id, listener = %name, error = %e, "cannot register listener")
            }
        }
    }
    let early = worker.early_limits.borrow_mut().take();
    let limits = match early {
        Some(e) if e.generation == apply.generation && e.version > apply.limits.version => e,
        Some(e) if e.generation > apply.generation => {
            *worker.early_limits.borrow_mut() = Some(e);
            apply.limits
        }
        _ => apply.limits,
    };
    let built = WorkerPlan::build(apply.plan, apply.generation, limits, Some(&worker.plan()));
    *worker.plan.borrow_mut() = Rc::new(built);
    bump(&worker.counters.plans_applied);
    info!(
        worker = worker.id,
        generation = apply.generation,
        "plan applied"
    );
    let _ = worker.events.send(Event::Applied {
        worker: worker.id,
        generation: apply.generation,
    });
}
