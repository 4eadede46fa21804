//! Upgrade pass-through: once an upstream answers `101 Switching Protocols` to a request that
//! asked for an upgrade (a WebSocket handshake behind an `http` route), the client and upstream
//! connections stop speaking HTTP and bytes are copied both ways until both sides are done.
//!
//! Two pumps run side by side, one per direction, each reading from one socket and writing to
//! the other through a second descriptor of that socket (see [`crate::sys::dup_stream`]): a
//! peer that stops reading stalls only the direction towards it (until the response write
//! timeout ends the tunnel), never the other one. An idle pump holds no buffer: it waits for
//! readiness, and only when bytes are there borrows a pooled buffer for one read and the write
//! that follows. End-of-stream from one side is passed on as a half-close (`shutdown(SHUT_WR)`
//! towards the other); the tunnel ends once both directions are closed, after
//! `tunnel_idle_timeout_ms` without bytes either way, at `tunnel_duration_max_ms`, or when a
//! pump fails.
//!
//! A client on a TLS listener gets the same tunnel from one task ([`tls`]): its rustls
//! connection holds both directions' state.
//!
//! Tunnels keep the plan they started with only for these limits, so a reload never cuts them;
//! a drain lets them run until its deadline (they are closed last, see [`crate::worker`]).

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;

use crate::worker::Worker;
use tollgate_backends::wire::io::{read_more, write_all, IoFail};

pub mod tls;

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

/// A switched connection's other end, waiting for its request to be logged (the connection
/// runs the tunnel after that, see [`crate::conn`]).
pub struct PendingTunnel {
    /// The upstream socket (never pooled again).
    pub upstream: TcpStream,
    /// Idle, duration and write limits, from the plan the request ran on.
    pub limits: TunnelLimits,
}

impl PendingTunnel {
    /// The tunnel to `upstream` under `limits` (its duration counted from now).
    pub fn new(upstream: TcpStream, limits: &tollgate_config::plan::Limits) -> Self {
        let ms = Duration::from_millis;
        PendingTunnel {
            upstream,
            limits: TunnelLimits {
                idle: ms(limits.tunnel_idle_timeout_ms),
                until: Instant::now() + ms(limits.tunnel_duration_max_ms),
                write_timeout: ms(limits.response_write_timeout_ms),
            },
        }
    }
}

/// How a tunnel (or one direction of it) ended.
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

/// Copies bytes both ways between `client` and `upstream` until the tunnel ends. Returns how it
/// ended and the bytes sent to the client.
pub async fn run(
    worker: &Worker,
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    limits: TunnelLimits,
) -> (TunnelEnd, u64) {
    let writers = crate::sys::dup_stream(client.as_raw_fd())
        .and_then(TcpStream::from_std)
        .and_then(|c| {
            Ok((
                c,
                TcpStream::from_std(crate::sys::dup_stream(upstream.as_raw_fd())?)?,
            ))
        });
    let Ok((mut client_writer, mut upstream_writer)) = writers else {
        return (TunnelEnd::Failed, 0);
    };
    let activity = Cell::new(Instant::now());
    let to_client = Cell::new(0u64);
    let up = pump(
        worker,
        client,
        &mut upstream_writer,
        limits,
        &activity,
        None,
    );
    let down = pump(
        worker,
        upstream,
        &mut client_writer,
        limits,
        &activity,
        Some(&to_client),
    );
    let mut up = std::pin::pin!(up);
    let mut down = std::pin::pin!(down);
    // The first direction to end decides, unless it ended cleanly (a half-close): then the
    // other runs on until it ends too.
    let end = monoio::select! {
        end = &mut up => if end == TunnelEnd::Closed { down.await } else { end },
        end = &mut down => if end == TunnelEnd::Closed { up.await } else { end },
    };
    (end, to_client.get())
}

/// Copies `from` → `to` until `from` ends (then half-closes `to`), a write fails, or the tunnel
/// is idle (no bytes either way: `activity` is shared) or expired.
async fn pump(
    worker: &Worker,
    from: &mut TcpStream,
    to: &mut TcpStream,
    limits: TunnelLimits,
    activity: &Cell<Instant>,
    counted: Option<&Cell<u64>>,
) -> TunnelEnd {
    loop {
        let deadline = (activity.get() + limits.idle).min(limits.until);
        match monoio::time::timeout_at(deadline.into(), from.readable(false)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "tunnel: readiness wait failed");
                return TunnelEnd::Failed;
            }
            Err(_) if Instant::now() >= limits.until => return TunnelEnd::Expired,
            // The other direction may have moved meanwhile.
            Err(_) if activity.get() + limits.idle > Instant::now() => continue,
            Err(_) => return TunnelEnd::Idle,
        }
        let mut data = worker.buffers.take_plain();
        // The socket is readable, so this read does not wait; the short deadline only guards a
        // spurious wake-up.
        match read_more(from, &mut data, Instant::now() + SPURIOUS_WAKE_READ).await {
            Ok(n) => {
                activity.set(Instant::now());
                if let Some(c) = counted {
                    c.set(c.get() + n as u64);
                }
                let (res, data) = write_all(to, data, limits.write_timeout).await;
                worker.buffers.give_plain(data);
                if let Err(e) = res {
                    tracing::debug!(error = ?e, "tunnel: write failed");
                    return TunnelEnd::Failed;
                }
                activity.set(Instant::now());
            }
            Err(IoFail::Eof) => {
                worker.buffers.give_plain(data);
                // Half-close: the other side sees end-of-stream and may still answer.
                let _ = to.shutdown().await;
                return TunnelEnd::Closed;
            }
            Err(IoFail::Timeout) => {}
            Err(IoFail::Io(e)) => {
                tracing::debug!(error = %e, "tunnel: read failed");
                return TunnelEnd::Failed;
            }
        }
    }
}
