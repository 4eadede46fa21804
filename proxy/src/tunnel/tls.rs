//! The tunnel of an upgraded request that came over TLS (a WebSocket on a TLS listener): the
//! same contract as the plain tunnel ([`super::run`]) — bytes both ways until both sides are
//! done, half-closes passed on, idle and duration limits — but one rustls connection holds
//! both directions' state, so one task runs both: it waits for either socket to become
//! readable (a readiness wait, which is safe to abandon), then moves what arrived. A partial
//! TLS record never blocks the other direction ([`ServerTls::read_available`] reads once);
//! a side that does not read stalls both directions for at most the write timeout, which then
//! ends the tunnel.
//!
//! An upstream end-of-stream becomes close_notify and a TCP half-close towards the client; a
//! client's close_notify (or TCP close) becomes a half-close towards the upstream.

use std::time::Instant;

use monoio::io::AsyncWriteRent;
use monoio::net::TcpStream;
use tollgate_backends::wire::io::{read_more, IoFail};
use tollgate_backends::wire::tls_server::ServerTls;

use super::{TunnelEnd, TunnelLimits, SPURIOUS_WAKE_READ};
use crate::worker::Worker;

/// Which side has bytes.
enum Side {
    Client,
    Upstream,
    Deadline,
}

/// Copies bytes both ways between the TLS `client` and `upstream` until the tunnel ends.
/// Returns how it ended and the plaintext bytes sent to the client.
pub async fn run(
    worker: &Worker,
    client: &mut ServerTls,
    upstream: &mut TcpStream,
    limits: TunnelLimits,
) -> (TunnelEnd, u64) {
    let mut activity = Instant::now();
    let mut to_client = 0u64;
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        let deadline = (activity + limits.idle).min(limits.until);
        let side = if client_open && client.has_buffered_input() {
            Side::Client
        } else {
            let client_readable = async {
                match client_open {
                    true => client.tcp().readable(false).await,
                    false => std::future::pending().await,
                }
            };
            let upstream_readable = async {
                match upstream_open {
                    true => upstream.readable(false).await,
                    false => std::future::pending().await,
                }
            };
            monoio::select! {
                r = client_readable => match r {
                    Ok(()) => Side::Client,
                    Err(_) => return (TunnelEnd::Failed, to_client),
                },
                r = upstream_readable => match r {
                    Ok(()) => Side::Upstream,
                    Err(_) => return (TunnelEnd::Failed, to_client),
                },
                _ = monoio::time::sleep_until(deadline.into()) => Side::Deadline,
            }
        };
        match side {
            Side::Deadline if Instant::now() >= limits.until => {
                return (TunnelEnd::Expired, to_client)
            }
            Side::Deadline => return (TunnelEnd::Idle, to_client),
            Side::Client => {
                // Readable, so the one read does not wait; the short deadline guards a
                // spurious wake-up.
                match client
                    .read_available(Instant::now() + SPURIOUS_WAKE_READ)
                    .await
                {
                    Ok(Some(0)) => {}
                    Ok(Some(n)) => {
                        let mut data = worker.buffers.take_plain();
                        data.resize(n, 0);
                        let taken = client.take_plain(&mut data).unwrap_or(0);
                        data.truncate(taken);
                        let (res, data) = tollgate_backends::wire::io::write_all(
                            upstream,
                            data,
                            limits.write_timeout,
                        )
                        .await;
                        worker.buffers.give_plain(data);
                        if res.is_err() {
                            return (TunnelEnd::Failed, to_client);
                        }
                        activity = Instant::now();
                    }
                    Ok(None) => {
                        client_open = false;
                        let _ = upstream.shutdown().await;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS tunnel: client read failed");
                        return (TunnelEnd::Failed, to_client);
                    }
                }
            }
            Side::Upstream => {
                let mut data = worker.buffers.take_plain();
                let read =
                    read_more(upstream, &mut data, Instant::now() + SPURIOUS_WAKE_READ).await;
                match read {
                    Ok(n) => {
                        let sent = client
                            .write_plain(&data, Instant::now() + limits.write_timeout)
                            .await;
                        worker.buffers.give_plain(data);
                        if sent.is_err() {
                            return (TunnelEnd::Failed, to_client);
                        }
                        to_client += n as u64;
                        activity = Instant::now();
                    }
                    Err(IoFail::Eof) => {
                        worker.buffers.give_plain(data);
                        upstream_open = false;
                        // close_notify, then the TCP half-close: the client may still send.
                        let _ = client.close(Instant::now() + limits.write_timeout).await;
                    }
                    Err(IoFail::Timeout) => worker.buffers.give_plain(data),
                    Err(IoFail::Io(e)) => {
                        worker.buffers.give_plain(data);
                        tracing::debug!(error = %e, "TLS tunnel: upstream read failed");
                        return (TunnelEnd::Failed, to_client);
                    }
                }
            }
        }
    }
    (TunnelEnd::Closed, to_client)
}
