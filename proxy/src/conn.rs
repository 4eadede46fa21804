//! One downstream HTTP/1.1 connection: wait for a request without holding a buffer, read and
//! parse its head within the header timeout, hand it to the request pipeline
//! ([`crate::pipeline`]), run a tunnel when the request upgraded, and loop while the connection
//! may be kept alive (keep-alive, pipelining, request cap, drain).
//!
//! What happens before the first request is here too: the PROXY header ([`proxy_header`]) and
//! the pre-filter's check of the connection's source ([`prefilter`]); and the answers to heads
//! that never parsed ([`unparsed`]).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::http1::{
    head_may_be_complete, parse_request, HeadError, HeadLimits, RequestHead,
};
use tollgate_backends::wire::io::{read_more, write_all, IoFail};
use tollgate_backends::wire::respond::{self, Reply};
use tollgate_backends::wire::stream::ClientStream;
use tollgate_backends::After;
use tollgate_config::plan::{Limits, ProxyProtocol};
use tollgate_config::responses::ResponseType;
use tracing::debug;

use crate::access_log::capture::{Answered, Captured};
use crate::counters::bump;
use crate::pipeline::client::Client;
use crate::pipeline::request::Outcome;
use crate::pipeline::Handled;
use crate::tunnel::PendingTunnel;
use crate::worker::Worker;

mod prefilter;
mod proxy_header;
mod tls;
mod unparsed;

/// Longest time, and most bytes, read and dropped from a client after the gateway closes its
/// side of the connection.
const LINGERING_CLOSE_TIME: Duration = Duration::from_secs(2);
const LINGERING_CLOSE_BYTES: usize = 1 << 20;

/// How long a connection stays in the busy state waiting for its next request before it
/// drops to the small idle state.
const LINGER: Duration = Duration::from_millis(20);

/// A downstream connection.
pub struct Conn {
    /// The parts its requests use (worker, stream, addresses).
    pub client: Client,
    slot: usize,
    /// Requests served (saturating; compared with `requests_per_connection_max`).
    served: u32,
    accepted: Instant,
    /// A PROXY protocol header is still expected before the first request.
    proxy: ProxyProtocol,
    /// The TLS handshake is still to run (a TLS listener's connection before its first
    /// request).
    handshake_pending: bool,
}

impl Drop for Conn {
    /// The registry forgets the descriptor before the socket closes (fields drop after this),
    /// however the connection's task ends, so a drain or sweep never shuts down a reused
    /// descriptor number.
    fn drop(&mut self) {
        self.client.worker.registry.borrow_mut().remove(self.slot);
    }
}

/// Why no request head came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It was malformed or too slow and got an error answer.
    Answered,
    /// The client closed, reset or never sent anything.
    Gone,
}

/// While it lives, the connection is registered as a tunnel to an upstream socket (so a drain
/// closes it last, and both of its sockets).
pub struct TunnelMark {
    worker: Rc<Worker>,
    slot: usize,
}

impl Drop for TunnelMark {
    fn drop(&mut self) {
        self.worker
            .registry
            .borrow_mut()
            .set_tunnel(self.slot, None);
    }
}

fn head_limits(limits: &Limits) -> HeadLimits {
    HeadLimits {
        header_bytes_max: limits.header_bytes_max,
        url_bytes_max: limits.url_bytes_max,
        headers_count_max: limits.headers_count_max,
    }
}

impl Conn {
    /// Registers an accepted connection with its worker.
    pub fn new(
        worker: Rc<Worker>,
        stream: TcpStream,
        peer: SocketAddr,
        local_port: u16,
        listener: Rc<str>,
    ) -> Self {
        let slot = worker.registry.borrow_mut().insert(stream.as_raw_fd());
        Conn {
            client: Client {
                worker,
                stream: ClientStream::Plain(stream),
                peer,
                local_port,
                listener,
            },
            slot,
            served: 0,
            accepted: Instant::now(),
            proxy: ProxyProtocol::Off,
            handshake_pending: false,
        }
    }

    /// Registers the connection as a tunnel to `upstream` until the mark drops (before the
    /// upstream socket closes).
    pub fn mark_tunnel(&self, upstream: std::os::fd::RawFd) -> TunnelMark {
        self.client
            .worker
            .registry
            .borrow_mut()
            .set_tunnel(self.slot, Some(upstream));
        TunnelMark {
            worker: Rc::clone(&self.client.worker),
            slot: self.slot,
        }
    }

    /// Serves the connection until it closes, alternating between the idle state and the busy
    /// state.
    ///
    /// The idle state is written out here rather than in helper futures because this future is
    /// what every connection's task holds while idle: a readiness wait (no buffer, and no timer
    /// — the worker's sweep enforces the deadline, see [`crate::registry`]) and the connection.
    /// The busy state's future is large (it spans parsing, routing and the integration), so it
    /// lives in a box allocated once per busy period.
    ///
    /// An `async move` block rather than an `async fn`: an `async fn` moves its `self` argument
    /// into a second slot of the state machine, so every idle connection would carry its
    /// `Conn` twice; a block's captured `self` is used in place (pinned by the test
    /// `an_idle_connection_task_holds_the_connection_once`).
    #[allow(clippy::manual_async_fn)]
    pub fn serve(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            match self.proxy_expectation() {
                Some(expected) => self.proxy = expected,
                None => {
                    bump(&self.client.worker.counters.rejected_proxy_protocol);
                    return;
                }
            }

            // A direct client is checked before any byte is read; behind PROXY protocol, the
            // client is known only after the header (see `busy`).
            if self.proxy == ProxyProtocol::Off && !self.prefilter_admits() {
                return;
            }
            // On a TLS listener the wait for the first bytes is the handshake's: the client has
            // `handshake_timeout_ms` from accept to finish it. (In a block: nothing of it may
            // stay in the idle task's state.)
            let mut wait_ms = {
                let handshake_ms = self.listener_tls().map(|t| t.handshake_timeout_ms);
                self.handshake_pending = handshake_ms.is_some();
                handshake_ms
                    .unwrap_or_else(|| self.client.worker.plan().plan.limits.header_read_timeout_ms)
            };
            loop {
                let deadline = Instant::now() + Duration::from_millis(wait_ms);
                self.client
                    .worker
                    .registry
                    .borrow_mut()
                    .set_idle(self.slot, Some(deadline));
                // Not relaxed: on epoll a relaxed wait may report stale readiness, and the read
                // that follows would then sit holding a buffer (one poll(2) more per wait on
                // epoll).
                // Not `ClientStream::readable`: its future would add to every idle task.
                self.client.stream.shed_idle_buffers();
                let ready = if self.client.stream.has_buffered_input() {
                    Ok(())
                } else {
                    match self.client.stream.tcp() {
                        Some(tcp) => tcp.readable(false).await,
                        None => return,
                    }
                };
                let expired = {
                    let mut registry = self.client.worker.registry.borrow_mut();
                    registry.set_idle(self.slot, None);
                    registry.expired(self.slot)
                };
                if expired && self.handshake_pending && self.proxy == ProxyProtocol::Off {
                    // Silent until the handshake's deadline: a handshake timeout.
                    let tls = self.client.worker.counters.tls_of(&self.client.listener);
                    bump(
                        &tls.failed[tollgate_backends::wire::tls::HandshakeError::Timeout.index()],
                    );
                }
                if ready.is_err() || expired || !self.busy_boxed().await {
                    return;
                }
                wait_ms = self.client.worker.plan().plan.limits.idle_timeout_ms;
            }
        }
    }

    /// The busy state's future, boxed. Built in a plain function so the unboxed future never
    /// occupies space in the caller's (per-connection) state machine.
    fn busy_boxed<'s>(
        &'s mut self,
    ) -> std::pin::Pin<Box<impl std::future::Future<Output = bool> + use<'s>>> {
        Box::pin(self.busy())
    }

    /// Serves requests while the client keeps sending them. Returns true when the connection
    /// went quiet (back to the idle state), false when it must close.
    async fn busy(&mut self) -> bool {
        let mut pending: Option<IoBuf> = None;
        if self.proxy != ProxyProtocol::Off {
            let required = self.proxy == ProxyProtocol::Required;
            self.proxy = ProxyProtocol::Off;
            let buf = self.client.worker.buffers.take();
            match self.read_proxy_header(buf, required).await {
                Some(rest) => pending = Some(rest),
                None => return false,
            }
            if !self.prefilter_admits() {
                if let Some(buf) = pending.take() {
                    self.client.worker.buffers.give(buf);
                }
                return false;
            }
        }
        if self.handshake_pending {
            self.handshake_pending = false;
            // Bytes read behind a PROXY header are the start of the TLS handshake.
            let initial = pending.take();
            let done = {
                let bytes = initial.as_ref().map_or(&[][..], |b| &b.data[..]);
                self.handshake(bytes).await
            };
            if let Some(buf) = initial {
                self.client.worker.buffers.give(buf);
            }
            if !done {
                return false;
            }
        }
        loop {
            let buf = pending
                .take()
                .unwrap_or_else(|| self.client.worker.buffers.take());
            let (head, buf) = match self.read_head(buf).await {
                Ok(parsed) => parsed,
                Err(Ended::Answered) => {
                    self.lingering_close().await;
                    return false;
                }
                Err(Ended::Gone) => return false,
            };
            let served = u64::from(self.served);
            let handled = crate::pipeline::handle(&mut self.client, served, head, buf).await;
            let Handled {
                after,
                buf,
                status,
                tunnel,
            } = handled;
            self.served = self.served.saturating_add(1);
            if let Some(tunnel) = tunnel {
                // The request is logged and counted, and its plan let go: a tunnel that lives
                // for hours holds no plan.
                self.client.worker.buffers.give(buf);
                self.run_tunnel(tunnel).await;
                return false;
            }
            let cap = self
                .client
                .worker
                .plan()
                .plan
                .limits
                .requests_per_connection_max;
            if after == After::Close
                || self.client.worker.draining.get()
                || (cap > 0 && u64::from(self.served) >= cap)
            {
                // Input may be left unread after an error answer or behind pipelined requests:
                // close gracefully then, so the answer is not destroyed by a reset. After a
                // clean last exchange a plain close is enough (and cheaper) — over TLS with
                // its close_notify first: without one, a client may take the end of the
                // response for a truncation (OpenSSL 3 reports "unexpected eof").
                let unread = status >= 400 || !buf.data.is_empty();
                self.client.worker.buffers.give(buf);
                if unread {
                    self.lingering_close().await;
                } else if self.client.stream.tls().is_some() {
                    use monoio::io::AsyncWriteRent;
                    let _ = self.client.stream.shutdown().await;
                }
                return false;
            }
            if !buf.data.is_empty() {
                // Pipelined bytes: the next request is already here.
                pending = Some(buf);
                continue;
            }
            // Nothing pipelined: give the buffer back, and wait a little in this state before
            // dropping it, so a client sending request after request stays on one allocation.
            self.client.worker.buffers.give(buf);
            if !self.linger().await {
                return true;
            }
        }
    }

    /// Closes gracefully: the write side first (the client sees the end of our response), then
    /// what the client still sends is read and dropped for a bounded time, so closing with
    /// unread input does not reset the connection and destroy a response in flight (an error
    /// answered before a large body was read, for example).
    async fn lingering_close(&mut self) {
        use monoio::io::AsyncWriteRent;
        if self.client.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGERING_CLOSE_TIME;
        let mut scratch = self.client.worker.buffers.take_plain();
        let mut drained = 0;
        while drained < LINGERING_CLOSE_BYTES {
            scratch.clear();
            match read_more(&mut self.client.stream, &mut scratch, deadline).await {
                Ok(n) => drained += n,
                Err(_) => break,
            }
        }
        self.client.worker.buffers.give_plain(scratch);
    }

    /// Waits up to [`LINGER`] for the next request in the busy state. False when none came.
    async fn linger(&mut self) -> bool {
        // Marked lingering so a drain closes it; the sweep leaves it to LINGER's own timer.
        self.client
            .worker
            .registry
            .borrow_mut()
            .set_lingering(self.slot, true);
        let ready = monoio::time::timeout(LINGER, self.client.stream.readable()).await;
        self.client
            .worker
            .registry
            .borrow_mut()
            .set_lingering(self.slot, false);
        matches!(ready, Ok(Ok(())))
    }

    /// Reads until a complete head parses. Answers and returns None on errors and timeouts.
    async fn read_head(&mut self, mut buf: IoBuf) -> Result<(RequestHead, IoBuf), Ended> {
        let limits = self.client.worker.plan().plan.limits.clone();
        let head_limits = head_limits(&limits);
        let timeout = Duration::from_millis(limits.header_read_timeout_ms);
        // The first request's deadline runs from accept: waiting for its first byte counts.
        let deadline = if self.served == 0 {
            self.accepted + timeout
        } else {
            Instant::now() + timeout
        };
        // When this head started arriving (for the latency of an answer to a bad head).
        let started = Instant::now();
        let mut scanned = 0;
        loop {
            if head_may_be_complete(&buf.data, scanned, &head_limits) {
                match parse_request(&buf.data, &head_limits, &mut buf.headers) {
                    Ok(Some(head)) => return Ok((head, buf)),
                    Ok(None) => {}
                    Err(e) => {
                        bump(&self.client.worker.counters.malformed);
                        self.reject_head(&e, buf, started).await;
                        return Err(Ended::Answered);
                    }
                }
            }
            scanned = buf.data.len();
            let had_bytes = !buf.data.is_empty();
            match read_more(&mut self.client.stream, &mut buf.data, deadline).await {
                Ok(_) => {}
                Err(IoFail::Timeout) if had_bytes => {
                    // `buf` may still be owned by the cancelled read: not returned to the pool.
                    self.answer_unparsed(ResponseType::RequestTimeout, None, started)
                        .await;
                    return Err(Ended::Answered);
                }
                Err(_) => {
                    self.client.worker.buffers.give(buf);
                    return Err(Ended::Gone);
                }
            }
        }
    }

    /// Copies bytes both ways between the client and an upgraded upstream until either ends
    /// (see [`crate::tunnel`]); the connection closes afterwards.
    async fn run_tunnel(&mut self, mut tunnel: PendingTunnel) {
        let worker = Rc::clone(&self.client.worker);
        let _marked = self.mark_tunnel(tunnel.upstream.as_raw_fd());
        let (end, to_client) = match &mut self.client.stream {
            ClientStream::Plain(client) => {
                crate::tunnel::run(&worker, client, &mut tunnel.upstream, tunnel.limits).await
            }
            ClientStream::Tls(client) => {
                crate::tunnel::tls::run(&worker, client, &mut tunnel.upstream, tunnel.limits).await
            }
            ClientStream::Detached => return,
        };
        debug!(?end, to_client, "tunnel ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn returned_size<A, F: std::future::Future>(_f: fn(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle keep-alive connection is one task holding this future, so its size is
    /// memory per connection (the bench measures the whole; this pins the largest part).
    /// It holds the connection once (not the copy an `async fn` would make of its `self`),
    /// the readiness wait and a few words of loop state; the busy state is boxed.
    #[test]
    fn an_idle_connection_task_holds_the_connection_once() {
        let conn = std::mem::size_of::<Conn>();
        let task = returned_size(Conn::serve);
        eprintln!("Conn {conn} bytes, connection task {task} bytes");
        assert!(
            conn <= 184,
            "Conn grew to {conn} bytes: box rarely used state"
        );
        assert!(
            task <= conn + 160 && task < 2 * conn,
            "connection task is {task} bytes for a {conn}-byte Conn"
        );
    }
}
