//! The admin listener: `/healthz` (the process is up), `/readyz` (every worker answers) and
//! `/metrics` (Prometheus text) and `/config` (the running plan, secrets redacted). It runs on its own thread with blocking I/O, one request per
//! connection, and reaches the workers only through their command channels, so a scrape
//! never locks or stops a worker. When the listener is not on loopback, every request must
//! carry `Authorization: Bearer <token>` (the config refuses a non-loopback admin without one).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tollgate_config::Plan;

use crate::metrics::{render, Snapshot};
use crate::worker::Command;

/// Longest admin request head read.
const HEAD_MAX: usize = 8 * 1024;
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
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    if let Some(token) = &state.token {
        let authorized = lines.any(|l| {
            l.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("authorization")
                    && value.trim().strip_prefix("Bearer ") == Some(token.as_str())
            })
        });
        if !authorized {
            return respond(
                &mut stream,
                401,
                "application/json",
                "{\"message\":\"Unauthorized\"}",
            );
        }
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
            let body = render(
                &snapshots(state),
                state.reloads_ok.load(Ordering::Relaxed),
                state.reloads_failed.load(Ordering::Relaxed),
            );
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
        crate::respond::reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}
