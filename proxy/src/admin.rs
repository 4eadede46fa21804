//! The admin listener: `/healthz` (the process is up), `/readyz` (every worker answers),
//! `/metrics` (Prometheus text), `/config` (the running plan, secrets redacted), and the keys,
//! usage plans, quotas and usage API of [`crate::limits::admin`]. It runs on its own thread
//! with its own small monoio runtime — a task per connection, a deadline per request, a cap on
//! connections — so slow or many clients cannot starve `/readyz` or `/metrics`. One request
//! per connection. It reaches the workers only through their command channels, so a scrape
//! never locks or stops a worker. When the listener is not on
//! loopback, every request must carry `Authorization: Bearer <token>` (the config refuses a
//! non-loopback admin without one); requests that change state always need the token. The
//! token is checked as soon as the head has arrived — before any body is read — and compared
//! in constant time.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRent;
use tollgate_backends::wire::io::{read_more, write_all};

use crossbeam_channel::Sender;
use tollgate_config::Plan;

use crate::limits::keeper::{self, SharedKeeper};
use crate::metrics::{render, Snapshot};
use crate::worker::messages::Command;

/// Longest admin request head read.
const HEAD_MAX: usize = 8 * 1024;
/// Longest admin request body read.
const BODY_MAX: usize = 64 * 1024;
/// How long a scrape waits for the workers' snapshots.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(1);
/// Longest time one connection may take for its request and answer.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Bytes read and dropped after answering (a refused body still arriving).
const DRAIN_MAX: usize = 2 << 20;
/// Admin connections open at once at most; more are closed at once.
const CONNECTIONS_MAX: usize = 256;
/// Admin connections one source address may hold at once.
const CONNECTIONS_PER_SOURCE_MAX: usize = 64;
/// Longest wait for a request head (the rest of [`REQUEST_DEADLINE`] is for the body and the
/// answer): a client that connects and trickles holds its slot only this long.
const HEAD_DEADLINE: Duration = Duration::from_secs(2);

/// What the admin thread shares with the control thread.
#[derive(Debug)]
pub struct AdminState {
    /// Each worker's command channel and wake-up socket.
    pub workers: Vec<(Sender<Command>, UnixStream)>,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// Successful reloads (written by the control thread).
    pub reloads_ok: AtomicU64,
    /// Failed reloads (written by the control thread).
    pub reloads_failed: AtomicU64,
    /// The plan the control thread last applied, with its generation (for `/config`; only the
    /// admin and control threads touch it, never a worker).
    pub plan: Mutex<(Arc<Plan>, u64)>,
    /// Keys, plans, quotas and usage.
    pub keeper: SharedKeeper,
    /// The pre-filter's blocks.
    pub prefilter: Arc<crate::prefilter::PrefilterState>,
}

/// Serves admin requests until the process exits: a small monoio runtime of its own (epoll,
/// one thread), a task per connection, so a slow or stalled client costs a task, not the
/// listener. Each connection has [`REQUEST_DEADLINE`] for its whole request and answer, and
/// at most [`CONNECTIONS_MAX`] are open at once (more are closed at once).
pub fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "admin listener: cannot start its runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| monoio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "admin listener: cannot register the socket");
                return;
            }
        };
        let open = Rc::new(Cell::new(0usize));
        let per_source: Rc<RefCell<HashMap<IpAddr, usize>>> = Rc::default();
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // Out of descriptors or similar: back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            // One source may hold only a share of the connections, so a client that keeps
            // many open cannot lock the others (health probes, scrapers) out.
            let source = peer.ip();
            let held = per_source.borrow().get(&source).copied().unwrap_or(0);
            if open.get() >= CONNECTIONS_MAX || held >= CONNECTIONS_PER_SOURCE_MAX {
                continue; // dropped: closed at once
            }
            open.set(open.get() + 1);
            *per_source.borrow_mut().entry(source).or_insert(0) += 1;
            let (state, open, per_source) =
                (Arc::clone(&state), Rc::clone(&open), Rc::clone(&per_source));
            monoio::spawn(async move {
                let _ = monoio::time::timeout(REQUEST_DEADLINE, connection(stream, &state)).await;
                open.set(open.get() - 1);
                let mut held = per_source.borrow_mut();
                if let Some(n) = held.get_mut(&source) {
                    *n -= 1;
                    if *n == 0 {
                        held.remove(&source);
                    }
                }
            });
        }
    });
}

/// A parsed admin request head.
struct Head {
    method: String,
    path: String,
    query: String,
    content_length: usize,
    authorization: Option<String>,
}

/// Reads the head (up to [`HEAD_MAX`]); None when the client went away or sent too much.
async fn read_head(stream: &mut monoio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(p + 4);
        }
        if buf.len() >= HEAD_MAX {
            return None;
        }
        read_more(stream, buf, deadline).await.ok()?;
    }
}

fn parse_head(head: &[u8]) -> Head {
    let text = String::from_utf8_lossy(head);
    let request_line = text.split("\r\n").next().unwrap_or("");
    let method = request_line.split(' ').next().unwrap_or("");
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |wanted: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_string())
        })
    };
    Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        content_length: header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        authorization: header("authorization"),
    }
}

/// True when the request carries the configured token. The comparison takes the same time
/// wherever the first difference is (both sides hashed, then every byte compared), so the
/// token cannot be guessed byte by byte from answer times.
fn authorized(state: &AdminState, head: &Head) -> bool {
    let (Some(token), Some(given)) = (&state.token, &head.authorization) else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    constant_time_eq(token.as_bytes(), given.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// One connection: the head, the token (checked before any body is read: an unauthorized
/// client cannot make the gateway read its upload), the body, the answer.
async fn connection(mut stream: monoio::net::TcpStream, state: &AdminState) {
    let mut buf = Vec::with_capacity(1024);
    let Some(head_end) = read_head(&mut stream, &mut buf).await else {
        return;
    };
    let head = parse_head(&buf[..head_end]);
    let answer = match refuse_early(state, &head) {
        Some(refusal) => refusal,
        None => {
            let mut body = buf.split_off(head_end);
            let far = Instant::now() + REQUEST_DEADLINE;
            while body.len() < head.content_length {
                if read_more(&mut stream, &mut body, far).await.is_err() {
                    return;
                }
            }
            body.truncate(head.content_length);
            route(state, &head, &body)
        }
    };
    let out = answer.render().into_bytes();
    let (_, _) = write_all(&mut stream, out, REQUEST_DEADLINE).await;
    // A refused body may still be arriving: the write side closes first (the client sees the
    // whole answer), then what comes is read and dropped, within the connection's deadline, so
    // closing with unread input does not reset the answer away.
    if stream.shutdown().await.is_ok() {
        let mut scratch = Vec::with_capacity(16 * 1024);
        let far = Instant::now() + REQUEST_DEADLINE;
        let mut drained = 0;
        while drained < DRAIN_MAX {
            scratch.clear();
            match read_more(&mut stream, &mut scratch, far).await {
                Ok(n) => drained += n,
                Err(_) => break,
            }
        }
    }
}

/// An answer to an admin request.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Answer {
    fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
        }
    }

    fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "application/json", body)
    }

    fn render(&self) -> String {
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            self.status,
            tollgate_backends::wire::respond::reason(self.status),
            self.content_type,
            self.body.len(),
            self.body
        )
    }
}

/// What is refused from the head alone: a body over [`BODY_MAX`], a missing or wrong token.
fn refuse_early(state: &AdminState, head: &Head) -> Option<Answer> {
    let path = head.path.as_str();
    let api = crate::limits::admin::serves(path) || crate::prefilter::admin::serves(path);
    let needs_token =
        state.token.is_some() || (api && crate::limits::admin::changes_state(&head.method));
    if needs_token && !authorized(state, head) {
        return Some(if state.token.is_none() {
            Answer::json(
                403,
                "{\"message\":\"changes through the admin API need `[admin] token`; none is configured\"}",
            )
        } else {
            Answer::json(401, "{\"message\":\"Unauthorized\"}")
        });
    }
    if head.content_length > BODY_MAX {
        return Some(Answer::json(413, "{\"message\":\"Request Too Long\"}"));
    }
    None
}

/// Answers an authorized request.
fn route(state: &AdminState, head: &Head, body: &[u8]) -> Answer {
    let (method, path) = (head.method.as_str(), head.path.as_str());
    if crate::prefilter::admin::serves(path) {
        let plan = match state.plan.lock() {
            Ok(current) => Arc::clone(&current.0),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().0),
        };
        let (status, answer) =
            crate::prefilter::admin::handle(&plan, &state.prefilter, method, path, body);
        return Answer::json(status, answer);
    }
    if crate::limits::admin::serves(path) {
        let request = crate::limits::admin::Request {
            method,
            path,
            query: &head.query,
            body,
        };
        let answer = crate::limits::admin::handle(&mut keeper::lock(&state.keeper), &request);
        if let Some(limits) = answer.changed {
            apply_limits(state, &limits);
        }
        return Answer::new(answer.status, answer.content_type, answer.body);
    }
    match path {
        "/healthz" => Answer::new(200, "text/plain", "ok\n"),
        "/readyz" => {
            let answered = snapshots(state).len();
            if answered == state.workers.len() {
                Answer::new(200, "text/plain", "ready\n")
            } else {
                let body = format!("{answered} of {} workers answered\n", state.workers.len());
                Answer::new(503, "text/plain", body)
            }
        }
        "/metrics" => Answer::new(200, "text/plain; version=0.0.4", metrics(state)),
        "/config" => {
            let (plan, generation) = match state.plan.lock() {
                Ok(current) => (Arc::clone(&current.0), current.1),
                Err(poisoned) => {
                    let current = poisoned.into_inner();
                    (Arc::clone(&current.0), current.1)
                }
            };
            let body = crate::admin_config::render(&plan, generation, &snapshots(state));
            Answer::json(200, body)
        }
        _ => Answer::json(404, "{\"message\":\"Not Found\"}"),
    }
}

/// The Prometheus text of every metric.
fn metrics(state: &AdminState) -> String {
    let mut body = render(
        &snapshots(state),
        state.reloads_ok.load(Ordering::Relaxed),
        state.reloads_failed.load(Ordering::Relaxed),
    );
    let k = keeper::lock(&state.keeper);
    let totals = k.usage_totals();
    let plans: Vec<String> = k.plan.usage.plans.iter().map(|p| p.id.clone()).collect();
    let per_key = k.plan.usage.metrics_per_key;
    let clients = Arc::clone(&k.counters.clients);
    let certificates = k.plan.certificate_validity.clone();
    drop(k);
    crate::metrics::render_certificates(&mut body, &certificates);
    crate::metrics::render_plans(&mut body, &totals, &plans, per_key);
    crate::metrics::render_client_buckets(&mut body, clients.len(), clients.evicted());
    let blocks = state.prefilter.block_count();
    let name = crate::metrics::names::PREFILTER_BLOCKS;
    body.push_str(&format!("# TYPE {name} gauge\n{name} {blocks}\n"));
    let stats = state.prefilter.kernel.lock().ok().and_then(|v| v.stats);
    if let Some(s) = stats {
        crate::metrics::render_xdp(&mut body, &s);
    }
    body
}

/// Sends new limits to every worker and waits (bounded) until each uses them, so a client
/// that got the admin API's answer sees the change on its next request.
fn apply_limits(state: &AdminState, limits: &Arc<crate::limits::runtime::LimitsRuntime>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut sent = 0;
    for (commands, wake) in &state.workers {
        if commands
            .send(Command::Limits(Arc::clone(limits), tx.clone()))
            .is_ok()
        {
            let _ = (&*wake).write_all(&[1]);
            sent += 1;
        }
    }
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    for _ in 0..sent {
        if rx.recv_deadline(deadline).is_err() {
            break;
        }
    }
}

/// Asks every worker for its counters; returns those that answered in time, by worker.
fn snapshots(state: &AdminState) -> Vec<Snapshot> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for (commands, wake) in &state.workers {
        if commands.send(Command::Snapshot(tx.clone())).is_ok() {
            let _ = (&*wake).write_all(&[1]);
        }
    }
    drop(tx);
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    let mut out = Vec::with_capacity(state.workers.len());
    while out.len() < state.workers.len() {
        match rx.recv_deadline(deadline) {
            Ok(s) => out.push(s),
            Err(_) => break,
        }
    }
    out.sort_by_key(|s| s.worker);
    out
}
