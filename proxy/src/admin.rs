//! The admin listener: `/healthz` (the process is up), `/readyz` (every worker answers),
//! `/metrics` (Prometheus text), `/config` (the running plan, secrets redacted), and the keys,
//! usage plans, quotas and usage API of [`crate::limits::admin`]. It runs on its own thread
//! with blocking I/O, one request per connection, and reaches the workers only through their
//! command channels, so a scrape never locks or stops a worker. When the listener is not on
//! loopback, every request must carry `Authorization: Bearer <token>` (the config refuses a
//! non-loopback admin without one); requests that change state always need the token.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Serves admin requests until the process exits.
pub fn serve(listener: TcpListener, state: Arc<AdminState>) {
    for stream in listener.incoming().flatten() {
        let _ = handle(stream, &state);
    }
}

fn handle(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() + n > HEAD_MAX {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let head_end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |p| p + 4);
    let text = String::from_utf8_lossy(&head[..head_end]).into_owned();
    let request_line = text.split("\r\n").next().unwrap_or("");
    let method = request_line.split(' ').next().unwrap_or("");
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |wanted: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(wanted)
                .then(|| value.trim())
        })
    };
    let authorized = match &state.token {
        Some(token) => {
            header("authorization").and_then(|v| v.strip_prefix("Bearer ")) == Some(token.as_str())
        }
        None => false,
    };
    if crate::limits::admin::serves(path) || crate::prefilter::admin::serves(path) {
        // The body is read before any answer: closing with unread bytes would reset the
        // connection before the client reads the answer.
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if length > BODY_MAX {
            respond(
                &mut stream,
                413,
                "application/json",
                "{\"message\":\"Request Too Long\"}",
            )?;
            // Read what the client still sends (bounded by the read timeout), so closing
            // does not reset the connection before it reads the answer.
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut discarded = 0;
            while discarded < 16 * BODY_MAX {
                match stream.read(&mut chunk) {
                    Ok(n) if n > 0 => discarded += n,
                    _ => break,
                }
            }
            return Ok(());
        }
        let mut body = head[head_end..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body.truncate(length);
        let needs_token = crate::limits::admin::changes_state(method) || state.token.is_some();
        if needs_token && !authorized {
            let (status, message) = if state.token.is_none() {
                (403, "{\"message\":\"changes through the admin API need `[admin] token`; none is configured\"}")
            } else {
                (401, "{\"message\":\"Unauthorized\"}")
            };
            return respond(&mut stream, status, "application/json", message);
        }
        if crate::prefilter::admin::serves(path) {
            let plan = match state.plan.lock() {
                Ok(current) => Arc::clone(&current.0),
                Err(poisoned) => Arc::clone(&poisoned.into_inner().0),
            };
            let (status, answer) =
                crate::prefilter::admin::handle(&plan, &state.prefilter, method, path, &body);
            return respond(&mut stream, status, "application/json", &answer);
        }
        let request = crate::limits::admin::Request {
            method,
            path,
            query,
            body: &body,
        };
        let answer = crate::limits::admin::handle(&mut keeper::lock(&state.keeper), &request);
        if let Some(limits) = answer.changed {
            apply_limits(state, &limits);
        }
        return respond(
            &mut stream,
            answer.status,
            answer.content_type,
            &answer.body,
        );
    }
    if state.token.is_some() && !authorized {
        return respond(
            &mut stream,
            401,
            "application/json",
            "{\"message\":\"Unauthorized\"}",
        );
    }
    match path {
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n"),
        "/readyz" => {
            let answered = snapshots(state).len();
            if answered == state.workers.len() {
                respond(&mut stream, 200, "text/plain", "ready\n")
            } else {
                let body = format!("{answered} of {} workers answered\n", state.workers.len());
                respond(&mut stream, 503, "text/plain", &body)
            }
        }
        "/metrics" => {
            let mut body = render(
                &snapshots(state),
                state.reloads_ok.load(Ordering::Relaxed),
                state.reloads_failed.load(Ordering::Relaxed),
            );
            let k = keeper::lock(&state.keeper);
            let totals = k.usage_totals();
            let plans: Vec<String> = k.plan.usage.plans.iter().map(|p| p.id.clone()).collect();
            let per_key = k.plan.usage.metrics_per_key;
            drop(k);
            crate::metrics::render_plans(&mut body, &totals, &plans, per_key);
            let blocks = state.prefilter.block_count();
            let name = crate::metrics::names::PREFILTER_BLOCKS;
            body.push_str(&format!("# TYPE {name} gauge\n{name} {blocks}\n"));
            let stats = state.prefilter.kernel.lock().ok().and_then(|v| v.stats);
            if let Some(s) = stats {
                crate::metrics::render_xdp(&mut body, &s);
            }
            respond(&mut stream, 200, "text/plain; version=0.0.4", &body)
        }
        "/config" => {
            let (plan, generation) = match state.plan.lock() {
                Ok(current) => (Arc::clone(&current.0), current.1),
                Err(poisoned) => {
                    let current = poisoned.into_inner();
                    (Arc::clone(&current.0), current.1)
                }
            };
            let body = crate::admin_config::render(&plan, generation, &snapshots(state));
            respond(&mut stream, 200, "application/json", &body)
        }
        _ => respond(
            &mut stream,
            404,
            "application/json",
            "{\"message\":\"Not Found\"}",
        ),
    }
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

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        tollgate_backends::wire::respond::reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}
