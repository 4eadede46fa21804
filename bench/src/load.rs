//! `load`: closed- and open-loop HTTP/1.1 load over many connections and threads.
//!
//! Each worker thread runs its own monoio runtime and a share of the connections (connection
//! `c` lives on thread `c % threads`). Each connection is one task with its own reused buffers,
//! pre-formatted request bytes and [`Stats`], so the hot loop neither allocates nor shares.
//! Connection `c` sends `requests[c % len]` (one request per `--header-list` value, see
//! `requests.rs`) and, with `--bind-count N`, connects from `127.0.0.(2 + c % N)`
//! (`connect.rs`).
//!
//! Closed loop: send, wait for the full response, repeat; latency runs from the actual send.
//! Open loop (`--rate`): every connection has a fixed schedule of intended send times
//! (`rate / connections` per second, staggered across connections). Latency runs from the
//! *intended* time, so a slow server that makes the connection fall behind is charged for the
//! queueing it caused (coordinated-omission correction, as in wrk2); a late connection sends
//! immediately rather than skipping slots.
//!
//! Only responses that complete inside the measured window (after the warm-up, before the end)
//! are counted; errors are counted when they happen inside the window.
//!
//! TLS (`--tls`): the request loop is generic over how a connection opens its stream
//! ([`Dial`]): [`Tcp`] gives a `TcpStream` and is the plain path, compiled to the same code as
//! before TLS existed (no enum to match per read, no handshake bookkeeping: those are behind the
//! constant [`Dial::TLS`]); [`Tls`] connects TCP the same way, then runs the TLS handshake
//! (`tls_client.rs`) and gives the gateway's `UpstreamStream`. Handshakes completing inside the
//! window are counted, resumed ones apart. When the server ends a TLS connection (a response
//! without keep-alive, or after every request with `--new-connection-per-request`) the client
//! reads on until the server's close (its close_notify and FIN) before closing, within the
//! request timeout: closing with that alert unread would reset the connection instead of
//! closing it, depending on how fast the server sent it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tollgate_backends::wire::stream::UpstreamStream;

use crate::compare_procs;
use crate::connect;
use crate::http::{Message, Parser};
use crate::recv::RecvBuf;
use crate::runtime;
use crate::stats::{ErrorKind, Stats};
use crate::tls_client;

/// Room for any response head plus a good share of its body per read.
const RECV_CAPACITY: usize = 64 * 1024;

/// After a failed connect (or TLS handshake), wait this long before retrying so a dead target
/// is reported as connect errors instead of a CPU-burning reconnect storm.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Resolution of monoio's timer wheel.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Everything a run needs, shared read-only by all threads.
#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    /// The complete requests, formatted once; connection `c` sends `requests[c % len]`.
    pub requests: Vec<Vec<u8>>,
    /// Bind connection `c` to `127.0.0.(2 + c % n)` before connecting (loopback targets only).
    pub bind_count: Option<u8>,
    /// `HEAD` responses carry no body whatever their headers say.
    pub head_request: bool,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open loop: total requests per second.
    pub rate: Option<f64>,
    pub new_connection_per_request: bool,
    pub timeout: Duration,
    /// TLS on every connection; `None`: plain TCP.
    pub tls: Option<TlsPlan>,
}

/// What every TLS connection of a run shares.
#[derive(Debug, Clone)]
pub struct TlsPlan {
    /// The configuration each connection slot starts from (`tls_client::client_config`).
    pub config: Arc<ClientConfig>,
    /// SNI (and the name verified, with `--ca`).
    pub name: ServerName<'static>,
    /// Each new connection of a slot resumes the previous one's session.
    pub resume: bool,
}

/// The run's time window, fixed before any thread starts so all threads agree.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Clock {
    fn in_window(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.end
    }
}

/// Runs the plan; returns the merged stats of the measured window and the CPU the generator
/// itself used over it, in cores (`None` if `/proc` could not tell), to show when the client
/// rather than the server limits a run.
pub fn run(plan: Plan) -> Result<(Stats, Option<f64>)> {
    if plan.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if plan.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number");
    }
    if plan.requests.is_empty() {
        bail!("no request to send");
    }
    if plan.bind_count.is_some() {
        connect::check_bind_target(plan.addr)?;
    }
    let threads = plan.threads.clamp(1, plan.connections);
    let plan = Arc::new(Plan { threads, ..plan });
    // A short lead time lets every thread build its runtime before the schedule starts, so
    // open-loop connections do not begin already behind.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let clock = Clock {
        start,
        measure_from,
        end: measure_from + plan.duration,
    };
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let plan = Arc::clone(&plan);
        let handle = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || -> Result<Stats> {
                let mut rt = runtime::build()?;
                Ok(rt.block_on(thread_main(plan, t, clock)))
            })
            .context("spawning load thread")?;
        handles.push(handle);
    }
    std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
    let cpu_from = (
        compare_procs::cpu_ticks(std::process::id()).ok(),
        Instant::now(),
    );
    let mut total = Stats::new();
    for handle in handles {
        match handle.join() {
            Ok(stats) => total.merge(&stats?),
            Err(_) => bail!("load thread panicked"),
        }
    }
    let cores = match (cpu_from, compare_procs::cpu_ticks(std::process::id())) {
        ((Some(c0), t0), Ok(c1)) => {
            let tick = compare_procs::clock_ticks_per_second() as f64;
            let wall = t0.elapsed().as_secs_f64().max(f64::MIN_POSITIVE);
            Some(c1.saturating_sub(c0) as f64 / tick / wall)
        }
        _ => None,
    };
    Ok((total, cores))
}

async fn thread_main(plan: Arc<Plan>, thread: usize, clock: Clock) -> Stats {
    let tasks: Vec<_> = (thread..plan.connections)
        .step_by(plan.threads)
        .map(|c| match &plan.tls {
            None => monoio::spawn(connection(Arc::clone(&plan), c, clock, Tcp)),
            Some(tls) => monoio::spawn(connection(Arc::clone(&plan), c, clock, Tls::new(tls))),
        })
        .collect();
    let mut stats = Stats::new();
    for task in tasks {
        stats.merge(&task.await);
    }
    stats
}

/// How a load connection opens its stream.
trait Dial {
    type Stream: AsyncReadRent + AsyncWriteRent;
    /// TLS: count handshakes, and read a connection the server ends to its close.
    const TLS: bool;

    /// A new stream to `plan.addr`, from `source` if given.
    async fn dial(
        &mut self,
        plan: &Plan,
        source: Option<IpAddr>,
    ) -> Result<Self::Stream, ErrorKind>;

    /// The last handshake's completion time and whether it resumed, once (TLS only).
    fn handshake(&mut self) -> Option<(Instant, bool)> {
        None
    }
}

/// Plain TCP (with `TCP_NODELAY`).
struct Tcp;

impl Dial for Tcp {
    type Stream = TcpStream;
    const TLS: bool = false;

    async fn dial(&mut self, plan: &Plan, source: Option<IpAddr>) -> Result<TcpStream, ErrorKind> {
        let stream = connect::connect(plan.addr, source)
            .await
            .map_err(|_| ErrorKind::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// TLS over TCP: one connection slot's configuration (its own session store with
/// `--tls-resume`), the server name, and the last handshake not yet counted.
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    last: Option<(Instant, bool)>,
}

impl Tls {
    fn new(plan: &TlsPlan) -> Self {
        Self {
            config: tls_client::for_connection(&plan.config, plan.resume),
            name: plan.name.clone(),
            last: None,
        }
    }
}

impl Dial for Tls {
    type Stream = UpstreamStream;
    const TLS: bool = true;

    async fn dial(
        &mut self,
        plan: &Plan,
        source: Option<IpAddr>,
    ) -> Result<UpstreamStream, ErrorKind> {
        let tcp = Tcp.dial(plan, source).await?;
        let deadline = Instant::now() + plan.timeout;
        let (stream, resumed) =
            tls_client::handshake(tcp, Arc::clone(&self.config), self.name.clone(), deadline)
                .await
                .map_err(|_| ErrorKind::Tls)?;
        self.last = Some((Instant::now(), resumed));
        Ok(stream)
    }

    fn handshake(&mut self) -> Option<(Instant, bool)> {
        self.last.take()
    }
}

/// One connection's request loop; returns its stats when the window ends.
async fn connection<D: Dial>(plan: Arc<Plan>, index: usize, clock: Clock, dial: D) -> Stats {
    let mut stats = Stats::new();
    let request = index % plan.requests.len();
    let mut conn = Conn {
        dial,
        stream: None,
        recv: RecvBuf::with_capacity(RECV_CAPACITY),
        send: plan.requests[request].clone(),
        request,
        source: plan.bind_count.map(|n| connect::source_addr(index, n)),
    };
    // Per-connection interval; connections are offset by a fraction of it so the total
    // request stream is evenly spaced rather than arriving in bursts of `connections`.
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(plan.connections as f64 / r));
    let mut next = clock.start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / plan.connections as f64)
        });
    // Closed-loop connections also start together, once every thread is up.
    sleep_until(clock.start).await;
    loop {
        let intended = match interval {
            Some(interval) => {
                if next >= clock.end {
                    break;
                }
                // The timer wheel has millisecond ticks and rounds deadlines up, so waking
                // for `next` itself would add up to a tick of our own lateness to every
                // latency. Wake up to a tick early instead; the send time then stays within
                // a tick of the schedule and latency is taken from the earlier of the two.
                sleep_until(next.checked_sub(TIMER_TICK).unwrap_or(next)).await;
                let t = next;
                next += interval;
                t
            }
            None => {
                let now = Instant::now();
                if now >= clock.end {
                    break;
                }
                now
            }
        };
        let sent = Instant::now();
        // Behind schedule: charge from the intended time (coordinated omission). Early by
        // less than a tick: charge from the real send, or latency would be understated.
        let intended = intended.min(sent);
        // Never wait past the end of the run: a request still pending then is neither a
        // success nor a timeout, it simply was not finished inside the window.
        let deadline = (sent + plan.timeout).min(clock.end);
        let outcome = monoio::time::timeout_at(
            monoio::time::Instant::from_std(deadline),
            conn.exchange(&plan),
        )
        .await;
        let now = Instant::now();
        if D::TLS {
            if let Some((at, resumed)) = conn.dial.handshake() {
                if clock.in_window(at) {
                    stats.handshake(resumed);
                }
            }
        }
        let error = match outcome {
            Ok(Ok(response)) => {
                if clock.in_window(now) {
                    let latency = now.saturating_duration_since(intended);
                    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    stats.response(response.status, response.bytes, us);
                }
                if !response.keep_alive || plan.new_connection_per_request {
                    if D::TLS {
                        conn.read_to_close((now + plan.timeout).min(clock.end))
                            .await;
                    }
                    conn.reset();
                }
                continue;
            }
            Ok(Err(kind)) => kind,
            Err(_) if now >= clock.end => {
                conn.reset();
                break;
            }
            Err(_) => ErrorKind::Timeout,
        };
        conn.reset();
        conn.repair(&plan);
        if clock.in_window(now) {
            stats.error(error);
        }
        if matches!(error, ErrorKind::Connect | ErrorKind::Tls) {
            monoio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
    stats
}

/// Sleeps until `t` unless it has passed (a late open-loop connection sends at once).
async fn sleep_until(t: Instant) {
    if t > Instant::now() {
        monoio::time::sleep_until(monoio::time::Instant::from_std(t)).await;
    }
}

/// A load connection's socket and reused buffers.
struct Conn<D: Dial> {
    dial: D,
    stream: Option<D::Stream>,
    recv: RecvBuf,
    /// The request bytes, lent to each write and returned.
    send: Vec<u8>,
    /// Index of this connection's request in [`Plan::requests`].
    request: usize,
    /// Source address to bind before connecting (`--bind-count`).
    source: Option<IpAddr>,
}

impl<D: Dial> Conn<D> {
    /// Drops the socket and any bytes read from it.
    fn reset(&mut self) {
        self.stream = None;
        self.recv.clear();
    }

    /// A write future dropped by a timeout takes the request buffer with it; rebuild it
    /// (allocation only on this error path).
    fn repair(&mut self, plan: &Plan) {
        let request = &plan.requests[self.request];
        if self.send.len() != request.len() {
            self.send = request.clone();
        }
    }

    /// Sends one request (connecting first if needed) and reads its full response.
    async fn exchange(&mut self, plan: &Plan) -> Result<Message, ErrorKind> {
        if self.stream.is_none() {
            self.stream = Some(self.dial.dial(plan, self.source).await?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ErrorKind::Connect);
        };
        let (result, buf) = stream.write_all(std::mem::take(&mut self.send)).await;
        self.send = buf;
        result.map_err(|_| ErrorKind::Io)?;
        let mut parser = Parser::response(plan.head_request);
        loop {
            match self.recv.next_message(&mut parser) {
                Ok(Some(response)) => return Ok(response),
                Ok(None) if self.recv.is_full() => return Err(ErrorKind::Io),
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::Io),
            }
            let buf = self.recv.take();
            let len = buf.len();
            let (result, slice) = stream.read(buf.slice_mut(len..)).await;
            self.recv.put(slice.into_inner());
            match result {
                Ok(0) => return parser.eof().ok_or(ErrorKind::Io),
                Ok(_) => {}
                Err(_) => return Err(ErrorKind::Io),
            }
        }
    }

    /// Reads and discards whatever the server still sends until it closes (or `deadline`):
    /// a TLS server ends with a close_notify, which must not be left unread (see the module
    /// doc). Errors end it too; the connection is closed next either way.
    async fn read_to_close(&mut self, deadline: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let recv = &mut self.recv;
        let drain = async {
            loop {
                recv.clear();
                let (result, buf) = stream.read(recv.take()).await;
                recv.put(buf);
                if !matches!(result, Ok(n) if n > 0) {
                    break;
                }
            }
        };
        let _ = monoio::time::timeout_at(monoio::time::Instant::from_std(deadline), drain).await;
    }
}
