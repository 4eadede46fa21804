//! Upgrade pass-through: once an upstream answers `101 Switching Protocols` to a request that
//! asked for an upgrade (a WebSocket handshake behind an `http` route), the client and upstream
//! connections stop speaking HTTP and bytes are copied both ways until both sides are done.
//!
//! An idle tunnel holds no buffer: it waits for readiness on both sockets, and only a side that
//! has bytes borrows a pooled buffer for one read and the write that follows. One loop serves
//! both directions, so a peer that does not read pushes back on the other (bounded by the
//! response write timeout). End-of-stream from one side is passed on as a half-close
//! (`shutdown(SHUT_WR)` towards the other), and the tunnel ends once both directions are
//! closed, after `tunnel_idle_timeout_ms` without bytes either way, or at
//! `tunnel_duration_max_ms`.
//!
//! Tunnels keep the plan they started with only for these limits, so a reload never cuts them;
//! a drain lets them run until its deadline (they are closed last, see [`crate::worker`]).

use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use crate::io::{read_more, write_all, IoFail};
use crate::worker::Worker;

/// Longest wait for bytes after a readiness wake-up.
const SPURIOUS_WAKE_READ: Duration = Duration::from_millis(100);

/// The limits of one tunnel.
#[derive(Debug, Clone, Copy)]
pub struct TunnelLimits {
    /// No bytes either way for this long closes the tunnel.
    pub idle: Duration,
    /// The tunnel closes at this instant in any case.
    pub until: Instant,
    /// Longest stall writing to a side that does not read.
    pub write_timeout: Duration,
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides closed their direction.
    Closed,
    /// No traffic for the idle limit.
    Idle,
    /// The duration limit passed.
    Expired,
    /// A read or write failed (reset, write stall).
    Failed,
}

/// Which socket became readable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

/// Copies bytes both ways between `client` and `upstream` until the tunnel ends. Returns how it
/// ended and the bytes sent to the client.
pub async fn run(
    worker: &Worker,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    limits: TunnelLimits,
) -> (TunnelEnd, u64) {
    let mut client_open = true;
    let mut upstream_open = true;
    let mut last_activity = Instant::now();
    let mut to_client = 0u64;
    while client_open || upstream_open {
        let idle_deadline = last_activity + limits.idle;
        let deadline = idle_deadline.min(limits.until);
        let waited = monoio::time::timeout_at(
            deadline.into(),
            readable(client, upstream, client_open, upstream_open),
        )
        .await;
        let side = match waited {
            Ok(Ok(side)) => side,
            Ok(Err(_)) => return (TunnelEnd::Failed, to_client),
            Err(_) if Instant::now() >= limits.until => return (TunnelEnd::Expired, to_client),
            Err(_) => return (TunnelEnd::Idle, to_client),
        };
        let (from, to) = match side {
            Side::Client => (&mut *client, &mut *upstream),
            Side::Upstream => (&mut *upstream, &mut *client),
        };
        let mut data = worker.buffers.take_plain();
        // The socket is readable, so this read does not wait; the short deadline only guards a
        // spurious wake-up (the other direction waits meanwhile).
        let read = read_more(from, &mut data, Instant::now() + SPURIOUS_WAKE_READ).await;
        match read {
            Ok(n) => {
                last_activity = Instant::now();
                if side == Side::Upstream {
                    to_client += n as u64;
                }
                let (res, data) = write_all(to, data, limits.write_timeout).await;
                worker.buffers.give_plain(data);
                if res.is_err() {
                    return (TunnelEnd::Failed, to_client);
                }
            }
            Err(IoFail::Eof) => {
                worker.buffers.give_plain(data);
                // Half-close: the other side sees end-of-stream and may still answer.
                let _ = to.shutdown().await;
                match side {
                    Side::Client => client_open = false,
                    Side::Upstream => upstream_open = false,
                }
            }
            Err(IoFail::Timeout) => continue,
            Err(IoFail::Io(_)) => return (TunnelEnd::Failed, to_client),
        }
    }
    (TunnelEnd::Closed, to_client)
}

/// Waits until one of the open sides has bytes (or end-of-stream) to read.
async fn readable(
    client: &TcpStream,
    upstream: &TcpStream,
    client_open: bool,
    upstream_open: bool,
) -> std::io::Result<Side> {
    match (client_open, upstream_open) {
        (true, true) => {
            monoio::select! {
                r = client.readable(false) => r.map(|()| Side::Client),
                r = upstream.readable(false) => r.map(|()| Side::Upstream),
            }
        }
        (true, false) => client.readable(false).await.map(|()| Side::Client),
        _ => upstream.readable(false).await.map(|()| Side::Upstream),
    }
}
