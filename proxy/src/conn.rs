//! One downstream HTTP/1.1 connection: wait for a request without holding a buffer, read and
//! parse its head within the header timeout, route it, run its integration, and loop while the
//! connection may be kept alive (keep-alive, pipelining, request cap, drain).
//!
//! Phases today: parse head → route match → integration (http or mock) → respond → counters.
//! Later phases (CORS, authorizers, usage plans, validation, cache) slot in between route
//! match and integration in [`Conn::dispatch`].

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use tollgate_config::plan::{ForwardingHeader, IntegrationPlan, Limits, ProxyProtocol};
use tollgate_config::responses::{ResponseCatalogue, ResponseType};
use tracing::debug;

use tollgate_backends::exchange::Report;
use tollgate_backends::{Downstream, Finished, Request, ResponseFilters};

use crate::access_log::capture::{Answered, Captured};
use crate::client_addr;
use crate::counters::bump;
use crate::worker::{Worker, WorkerPlan};
use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::http1::{
    head_may_be_complete, parse_request, BodyFraming, HeadError, HeadLimits, Method, RequestHead,
};
use tollgate_backends::wire::io::{read_more, write_all, IoFail};
use tollgate_backends::wire::respond::{self, Reply};

mod answer;
mod limit;
mod prefilter;
mod proxy_header;

/// Longest request id accepted from a client; longer ones are replaced by a generated id.
const REQUEST_ID_MAX: usize = 128;

/// Longest time, and most bytes, read and dropped from a client after the gateway closes its
/// side of the connection.
const LINGERING_CLOSE_TIME: Duration = Duration::from_secs(2);
const LINGERING_CLOSE_BYTES: usize = 1 << 20;

/// How long a connection stays in the busy state waiting for its next request before it
/// drops to the small idle state.
const LINGER: Duration = Duration::from_millis(20);

/// A downstream connection.
pub struct Conn {
    /// Its worker.
    pub worker: Rc<Worker>,
    /// The socket.
    pub stream: TcpStream,
    /// Client address.
    pub peer: SocketAddr,
    /// Local port it connected to.
    pub local_port: u16,
    listener: Rc<str>,
    slot: usize,
    served: u64,
    accepted: Instant,
    /// A PROXY protocol header is still expected before the first request.
    proxy: ProxyProtocol,
    /// This connection's request counts in the worker's in-flight requests.
    in_flight: Option<InFlight>,
}

/// One request in [`Worker::in_flight`] until dropped.
pub struct InFlight(Rc<Worker>);

impl InFlight {
    fn enter(worker: &Rc<Worker>) -> Self {
        worker.in_flight.set(worker.in_flight.get() + 1);
        InFlight(Rc::clone(worker))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

impl Drop for Conn {
    /// The registry forgets the descriptor before the socket closes (fields drop after this),
    /// however the connection's task ends, so a drain or sweep never shuts down a reused
    /// descriptor number.
    fn drop(&mut self) {
        self.worker.registry.borrow_mut().remove(self.slot);
    }
}

/// The request id of one request, on the stack.
#[derive(Clone, Copy)]
pub struct RequestIdBuf {
    bytes: [u8; REQUEST_ID_MAX],
    len: usize,
}

impl RequestIdBuf {
    /// The id.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
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

pub use tollgate_backends::After;

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

/// What a request's phases learned about its answer, for its access log line. Cells, so
/// phases that see the request's facts only by shared reference can still record.
#[derive(Default)]
pub struct Outcome {
    /// What the integration reported (its status and latency, the response length).
    pub integration: Report,
    /// Message of a gateway-made error response.
    pub error_message: Cell<Option<&'static str>>,
    /// Type of a gateway-made response (escalation tells throttling from quota refusals).
    pub gateway_kind: Cell<Option<ResponseType>>,
}

/// Per-request facts taken from the head before the body may overwrite it.
pub struct Facts {
    /// The parsed head.
    pub head: RequestHead,
    /// Request id.
    pub id: RequestIdBuf,
    /// When the head was complete.
    pub started: Instant,
    /// `date` header value for gateway-made responses.
    pub date: [u8; 29],
    /// The client's address, resolved (see [`Facts::client_ip`]).
    client: IpAddr,
    /// What the phases learned.
    pub outcome: Outcome,
}

impl Facts {
    /// The client's address: the connection's peer, or the address a PROXY protocol header
    /// gave, or — behind trusted proxies — the right-most untrusted hop of their forwarding
    /// header. Everything that needs "the client" (access log, forwarding headers, rate
    /// limits, policies) asks here.
    pub fn client_ip(&self) -> IpAddr {
        self.client
    }

    /// A reply descriptor for gateway-made responses.
    pub fn reply<'a>(&'a self, id_header: &'a str, close: bool) -> Reply<'a> {
        Reply {
            id_header,
            request_id: self.id.as_bytes(),
            head_request: self.head.method == Method::Head,
            close,
            date: self.date,
            extra: b"",
            own: b"",
        }
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
            worker,
            stream,
            peer,
            local_port,
            listener,
            slot,
            served: 0,
            accepted: Instant::now(),
            proxy: ProxyProtocol::Off,
            in_flight: None,
        }
    }

    /// Registers the connection as a tunnel to `upstream` until the mark drops (before the
    /// upstream socket closes).
    pub fn mark_tunnel(&self, upstream: std::os::fd::RawFd) -> TunnelMark {
        self.worker
            .registry
            .borrow_mut()
            .set_tunnel(self.slot, Some(upstream));
        TunnelMark {
            worker: Rc::clone(&self.worker),
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
                    bump(&self.worker.counters.rejected_proxy_protocol);
                    return;
                }
            }
            // A direct client is checked before any byte is read; behind PROXY protocol, the
            // client is known only after the header (see `busy`).
            if self.proxy == ProxyProtocol::Off && !self.prefilter_admits() {
                return;
            }
            let mut wait_ms = self.worker.plan().plan.limits.header_read_timeout_ms;
            loop {
                let deadline = Instant::now() + Duration::from_millis(wait_ms);
                self.worker
                    .registry
                    .borrow_mut()
                    .set_idle(self.slot, Some(deadline));
                // Not relaxed: on epoll a relaxed wait may report stale readiness, and the read
                // that follows would then sit holding a buffer (one poll(2) more per wait on
                // epoll).
                let ready = self.stream.readable(false).await;
                let expired = {
                    let mut registry = self.worker.registry.borrow_mut();
                    registry.set_idle(self.slot, None);
                    registry.expired(self.slot)
                };
                if ready.is_err() || expired || !self.busy_boxed().await {
                    return;
                }
                wait_ms = self.worker.plan().plan.limits.idle_timeout_ms;
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
            let buf = self.worker.buffers.take();
            match self.read_proxy_header(buf, required).await {
                Some(rest) => pending = Some(rest),
                None => return false,
            }
            if !self.prefilter_admits() {
                if let Some(buf) = pending.take() {
                    self.worker.buffers.give(buf);
                }
                return false;
            }
        }
        loop {
            let buf = pending.take().unwrap_or_else(|| self.worker.buffers.take());
            let (head, buf) = match self.read_head(buf).await {
                Ok(parsed) => parsed,
                Err(Ended::Answered) => {
                    self.lingering_close().await;
                    return false;
                }
                Err(Ended::Gone) => return false,
            };
            let (after, buf, status) = self.handle(head, buf).await;
            self.served += 1;
            let cap = self.worker.plan().plan.limits.requests_per_connection_max;
            if after == After::Close
                || self.worker.draining.get()
                || (cap > 0 && self.served >= cap)
            {
                // Input may be left unread after an error answer or behind pipelined requests:
                // close gracefully then, so the answer is not destroyed by a reset. After a
                // clean last exchange a plain close is enough (and cheaper).
                let unread = status >= 400 || !buf.data.is_empty();
                self.worker.buffers.give(buf);
                if unread {
                    self.lingering_close().await;
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
            self.worker.buffers.give(buf);
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
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGERING_CLOSE_TIME;
        let mut scratch = self.worker.buffers.take_plain();
        let mut drained = 0;
        while drained < LINGERING_CLOSE_BYTES {
            scratch.clear();
            match read_more(&mut self.stream, &mut scratch, deadline).await {
                Ok(n) => drained += n,
                Err(_) => break,
            }
        }
        self.worker.buffers.give_plain(scratch);
    }

    /// Waits up to [`LINGER`] for the next request in the busy state. False when none came.
    async fn linger(&mut self) -> bool {
        // Marked lingering so a drain closes it; the sweep leaves it to LINGER's own timer.
        self.worker
            .registry
            .borrow_mut()
            .set_lingering(self.slot, true);
        let ready = monoio::time::timeout(LINGER, self.stream.readable(false)).await;
        self.worker
            .registry
            .borrow_mut()
            .set_lingering(self.slot, false);
        matches!(ready, Ok(Ok(())))
    }

    /// Reads until a complete head parses. Answers and returns None on errors and timeouts.
    async fn read_head(&mut self, mut buf: IoBuf) -> Result<(RequestHead, IoBuf), Ended> {
        let limits = self.worker.plan().plan.limits.clone();
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
                        bump(&self.worker.counters.malformed);
                        self.reject_head(&e, buf, started).await;
                        return Err(Ended::Answered);
                    }
                }
            }
            scanned = buf.data.len();
            let had_bytes = !buf.data.is_empty();
            match read_more(&mut self.stream, &mut buf.data, deadline).await {
                Ok(_) => {}
                Err(IoFail::Timeout) if had_bytes => {
                    // `buf` may still be owned by the cancelled read: not returned to the pool.
                    self.answer_unparsed(ResponseType::RequestTimeout, None, started)
                        .await;
                    return Err(Ended::Answered);
                }
                Err(_) => {
                    self.worker.buffers.give(buf);
                    return Err(Ended::Gone);
                }
            }
        }
    }

    fn request_id(&self, head: &RequestHead, buf: &IoBuf, name: &str) -> RequestIdBuf {
        let mut id = RequestIdBuf {
            bytes: [0; REQUEST_ID_MAX],
            len: 0,
        };
        let given =
            tollgate_backends::wire::http1::head::find_header(&buf.data, &buf.headers, name)
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= REQUEST_ID_MAX
                        && v.iter().all(|b| b.is_ascii_graphic())
                });
        match given {
            Some(v) => {
                id.bytes[..v.len()].copy_from_slice(v);
                id.len = v.len();
            }
            None => {
                let generated = self.worker.ids.next_id();
                let g = generated.as_bytes();
                id.bytes[..g.len()].copy_from_slice(g);
                id.len = g.len();
            }
        }
        let _ = head;
        id
    }

    /// Runs one request through the phases; returns what becomes of the connection and the
    /// buffer holding any pipelined bytes.
    async fn handle(&mut self, mut head: RequestHead, mut buf: IoBuf) -> (After, IoBuf, u16) {
        let wp = self.worker.plan();
        let plan = &wp.plan;
        // The last request a connection may carry (cap or drain) says so in its response.
        let cap = plan.limits.requests_per_connection_max;
        if self.worker.draining.get() || (cap > 0 && self.served + 1 >= cap) {
            head.keep_alive = false;
        }
        let facts = Facts {
            head,
            id: self.request_id(&head, &buf, &plan.settings.request_id_header),
            started: Instant::now(),
            date: self.worker.date.get(),
            client: self.client_ip(plan, &buf),
            outcome: Outcome::default(),
        };
        let captured = plan
            .access_log
            .as_ref()
            .map(|_| Captured::take(&self.worker, &buf.data, &head, &buf.headers));
        // Every request: a client behind trusted proxies is known only now, and a direct
        // client may have been blocked (or denied by a reload) since its connection opened.
        let refused = plan.prefilter.as_ref().and_then(|p| {
            crate::prefilter::check_source(p, &self.worker.prefilter, facts.client_ip()).err()
        });
        let route = match refused {
            Some(why) => Err(Err(why)),
            None => self.route(&wp, &facts, &mut buf).map_err(Ok),
        };
        let mut tunnel = None;
        let (status, after, route) = match route {
            // The connection is the client's own: closed without an answer (status 0: not
            // logged, not counted as a response).
            Err(Err(why)) if facts.client_ip() == self.peer.ip() => {
                self.count_refused(why, facts.client_ip());
                (0, After::Close, None)
            }
            // The connection is the balancer's, shared with other clients: an answer, and
            // the connection stays usable (closing it would look like a failure of this
            // gateway to the balancer).
            Err(Err(why)) => {
                self.count_refused(why, facts.client_ip());
                let catalogue = &plan.default_responses;
                let kind = ResponseType::AccessDenied;
                let (status, after, b) = self.refuse(&wp, catalogue, kind, &facts, buf).await;
                buf = b;
                wp.unmatched.record(status, facts.started.elapsed());
                (status, after, None)
            }
            Ok(index) => {
                let r = &plan.routes[index];
                let catalogue = &plan.apis[r.api].responses;
                let (status, after, b, upgraded) =
                    self.dispatch(&wp, index, &facts, buf, catalogue).await;
                buf = b;
                tunnel = upgraded;
                // A tunnel's latency is the time to its 101, not its whole life.
                let elapsed = match facts.outcome.integration.latency.get() {
                    Some(to_101) if status == 101 => to_101,
                    _ => facts.started.elapsed(),
                };
                wp.routes[index].record(status, elapsed);
                (status, after, Some(r))
            }
            Err(Ok(kind)) => {
                let catalogue = &plan.default_responses;
                let (status, after, b) = self.refuse(&wp, catalogue, kind, &facts, buf).await;
                buf = b;
                wp.unmatched.record(status, facts.started.elapsed());
                (status, after, None)
            }
        };
        if let (Some(captured), Some(log), true) = (captured, &plan.access_log, status != 0) {
            let answered = Answered {
                request_id: facts.id.as_bytes(),
                ip: facts.client_ip(),
                started: facts.started,
                status,
                // The catch-all behind an API stage is no route of the API.
                route_key: route
                    .filter(|r| !matches!(r.integration, IntegrationPlan::NotFound))
                    .map_or("", |r| r.route_key.as_str()),
                api_id: route.map_or("", |r| plan.apis[r.api].id.as_str()),
                stage: route.map_or("", |r| r.stage.as_str()),
                outcome: &facts.outcome,
            };
            captured.log(&self.worker, &log.format, &answered);
        }
        if let Some(p) = plan.prefilter.as_ref().filter(|p| !p.escalation.is_empty()) {
            let kind = facts.outcome.gateway_kind.get();
            if let Some(offense) = crate::prefilter::offense_of(status, kind) {
                let now = crate::prefilter::now_ms();
                crate::prefilter::offend(
                    p,
                    &self.worker.prefilter,
                    facts.client_ip(),
                    offense,
                    now,
                );
            }
        }
        self.in_flight = None;
        if let Some(tunnel) = tunnel {
            // The request is logged and counted: its plan and capture buffer are let go, so a
            // tunnel that lives for hours holds neither.
            drop(wp);
            self.run_tunnel(tunnel).await;
        }
        (after, buf, status)
    }

    /// Copies bytes both ways between the client and an upgraded upstream until either ends
    /// (see [`crate::tunnel`]); the connection closes afterwards.
    async fn run_tunnel(&mut self, mut tunnel: PendingTunnel) {
        let worker = Rc::clone(&self.worker);
        let _marked = self.mark_tunnel(tunnel.upstream.as_raw_fd());
        let (end, to_client) = crate::tunnel::run(
            &worker,
            &mut self.stream,
            &mut tunnel.upstream,
            tunnel.limits,
        )
        .await;
        debug!(?end, to_client, "tunnel ended");
    }

    /// The client address of a request on this connection (see [`Facts::client_ip`]).
    fn client_ip(&self, plan: &tollgate_config::Plan, buf: &IoBuf) -> IpAddr {
        let peer = self.peer.ip();
        let trust = &plan.client_address;
        if trust.trusted_proxies.is_empty() {
            return peer;
        }
        let name: &[u8] = match trust.header {
            ForwardingHeader::XForwardedFor => b"x-forwarded-for",
            ForwardingHeader::Forwarded => b"forwarded",
        };
        let kind = match trust.header {
            ForwardingHeader::XForwardedFor => client_addr::ForwardedHeader::XForwardedFor,
            ForwardingHeader::Forwarded => client_addr::ForwardedHeader::Forwarded,
        };
        let data = &buf.data;
        let values = buf
            .headers
            .iter()
            .filter(|h| h.name.get(data).eq_ignore_ascii_case(name))
            .map(|h| h.value.get(data));
        client_addr::client_from_header(peer, &trust.trusted_proxies, kind, values)
    }

    /// Route match: listener → host → path → method. Errors with the response type to send.
    fn route(
        &self,
        wp: &WorkerPlan,
        facts: &Facts,
        buf: &mut IoBuf,
    ) -> Result<usize, ResponseType> {
        let plan = &wp.plan;
        let Some(listener) = plan.listeners.iter().find(|l| *l.name == *self.listener) else {
            return Err(ResponseType::ResourceNotFound);
        };
        let mut host_buf = [0u8; 256];
        let host = facts
            .head
            .host
            .and_then(|h| lowercase_host(h.get(&buf.data), &mut host_buf));
        let method = std::str::from_utf8(facts.head.method_span.get(&buf.data))
            .map_err(|_| ResponseType::BadRequest)?;
        let raw_path = facts.head.path.get(&buf.data);
        // `.` and `..` segments would let `/public/../admin` match a public route while the
        // upstream resolves it elsewhere: refused rather than normalized.
        if has_dot_segment(raw_path) {
            return Err(ResponseType::BadRequest);
        }
        let path = std::str::from_utf8(raw_path).map_err(|_| ResponseType::BadRequest)?;
        listener
            .routes
            .lookup(host, method, path, &mut buf.captures)
            .ok_or(ResponseType::ResourceNotFound)
    }

    /// Runs the route's integration (after the size check and the limits phase); returns the
    /// status, what becomes of the connection, the buffer, and an upgraded upstream to tunnel
    /// to once the request is logged.
    async fn dispatch(
        &mut self,
        wp: &WorkerPlan,
        index: usize,
        facts: &Facts,
        buf: IoBuf,
        catalogue: &ResponseCatalogue,
    ) -> (u16, After, IoBuf, Option<PendingTunnel>) {
        let limits = &wp.plan.limits;
        if let BodyFraming::Length(n) = facts.head.framing {
            if n > limits.body_bytes_max {
                let kind = ResponseType::RequestTooLarge;
                let status = self.answer(wp, catalogue, kind, None, facts, true).await;
                return (status, After::Close, buf, None);
            }
        }
        let mut buf = match self.limit(wp, index, facts, buf, catalogue).await {
            Ok(buf) => buf,
            Err((status, after, buf)) => return (status, after, buf, None),
        };
        // Only admitted requests count in flight: refusals are quick and must not crowd out
        // the tiers that are still served.
        if wp.plan.usage.overload.is_some() {
            self.in_flight = Some(InFlight::enter(&self.worker));
        }
        let filters = ResponseFilters::NONE;
        let req = Request {
            plan: &wp.plan,
            route: &wp.plan.routes[index],
            head: &facts.head,
            id: facts.id.as_bytes(),
            started: facts.started,
            date: facts.date,
            client: facts.client_ip(),
            peer: self.peer,
            local_port: self.local_port,
            report: &facts.outcome.integration,
            filters: &filters,
        };
        let mut down = Downstream {
            stream: &mut self.stream,
            buf: &mut buf,
            buffers: &self.worker.buffers,
            draining: &self.worker.draining,
            write_timeout: Duration::from_millis(limits.response_write_timeout_ms),
        };
        match tollgate_backends::integrate(&req, &mut down, &wp.backends).await {
            Finished::Sent { status, after } => (status, after, buf, None),
            Finished::Broken { status } => (status, After::Close, buf, None),
            Finished::Answer { kind, detail } => {
                let status = self.answer(wp, catalogue, kind, detail, facts, true).await;
                (status, After::Close, buf, None)
            }
            Finished::Refuse { kind } => {
                let (status, after, buf) = self.refuse(wp, catalogue, kind, facts, buf).await;
                (status, after, buf, None)
            }
            Finished::Upgraded(upstream) => {
                let tunnel = PendingTunnel {
                    upstream: *upstream,
                    limits: crate::tunnel::TunnelLimits {
                        idle: Duration::from_millis(limits.tunnel_idle_timeout_ms),
                        until: Instant::now()
                            + Duration::from_millis(limits.tunnel_duration_max_ms),
                        write_timeout: Duration::from_millis(limits.response_write_timeout_ms),
                    },
                };
                (101, After::Close, buf, Some(tunnel))
            }
        }
    }
}

/// A switched connection's other end, waiting for its request to be logged.
pub(crate) struct PendingTunnel {
    /// The upstream socket (never pooled again).
    pub upstream: TcpStream,
    /// Idle, duration and write limits, from the plan the request ran on.
    pub limits: crate::tunnel::TunnelLimits,
}

/// True when a path has a `.` or `..` segment, also percent-encoded (`%2e`, `.%2E`, …).
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|segment| {
        let mut dots = 0;
        let mut rest = segment;
        while !rest.is_empty() {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3
                && rest[0] == b'%'
                && rest[1] == b'2'
                && (rest[2] | 0x20) == b'e'
            {
                rest = &rest[3..];
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

/// `Example.COM:8080` → `example.com`, `[::1]:8080` → `[::1]`, into `out`. None when too
/// long or not text.
fn lowercase_host<'a>(host: &[u8], out: &'a mut [u8; 256]) -> Option<&'a str> {
    let name = without_port(host);
    if name.len() > out.len() {
        return None;
    }
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(&out[..name.len()]).ok()
}

/// The host without a `:port` suffix (an IPv6 literal keeps its brackets).
fn without_port(host: &[u8]) -> &[u8] {
    let search_from = if host.first() == Some(&b'[') {
        match host.iter().position(|&b| b == b']') {
            Some(end) => end + 1,
            None => return host,
        }
    } else {
        0
    };
    match host[search_from..].iter().rposition(|&b| b == b':') {
        Some(i) if host[search_from + i + 1..].iter().all(u8::is_ascii_digit) => {
            &host[..search_from + i]
        }
        _ => host,
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
            conn <= 208,
            "Conn grew to {conn} bytes: box rarely used state"
        );
        assert!(
            task <= conn + 160 && task < 2 * conn,
            "connection task is {task} bytes for a {conn}-byte Conn"
        );
    }

    #[test]
    fn dot_segments_are_found_raw_and_encoded() {
        for p in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/%2e/x",
        ] {
            assert!(has_dot_segment(p.as_bytes()), "{p}");
        }
        for p in ["/a/b", "/a/...", "/a/.b", "/a/b.", "/", "/a/%2f"] {
            assert!(!has_dot_segment(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn host_port_is_stripped_for_names_and_ipv6_literals() {
        let mut out = [0u8; 256];
        assert_eq!(
            lowercase_host(b"Example.COM:8080", &mut out),
            Some("example.com")
        );
        assert_eq!(lowercase_host(b"[::1]:8080", &mut out), Some("[::1]"));
        assert_eq!(lowercase_host(b"[::1]", &mut out), Some("[::1]"));
        assert_eq!(lowercase_host(b"a.b", &mut out), Some("a.b"));
    }
}
