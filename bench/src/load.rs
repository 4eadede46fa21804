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

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::connect;
use crate::http::{Message, Parser};
use crate::recv::RecvBuf;
use crate::runtime;
use crate::stats::{ErrorKind, Stats};

/// Room for any response head plus a good share of its body per read.
const RECV_CAPACITY: usize = 64 * 1024;

/// After a failed connect, wait this long before retrying so a dead target is reported as
/// connect errors instead of a CPU-burning reconnect storm.
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

/// Runs the plan and returns the merged stats of the measured window.
pub fn run(plan: Plan) -> Result<Stats> {
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
    let mut total = Stats::new();
    for handle in handles {
        match handle.join() {
            Ok(stats) => total.merge(&stats?),
            Err(_) => bail!("load thread panicked"),
        }
    }
    Ok(total)
}

async fn thread_main(plan: Arc<Plan>, thread: usize, clock: Clock) -> Stats {
    let tasks: Vec<_> = (thread..plan.connections)
        .step_by(plan.threads)
        .map(|c| monoio::spawn(connection(Arc::clone(&plan), c, clock)))
        .collect();
    let mut stats = Stats::new();
    for task in tasks {
        stats.merge(&task.await);
    }
    stats
}

/// One connection's request loop; returns its stats when the window ends.
async fn connection(plan: Arc<Plan>, index: usize, clock: Clock) -> Stats {
    let mut stats = Stats::new();
    let request = index % plan.requests.len();
    let mut conn = Conn {
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
        let error = match outcome {
            Ok(Ok(response)) => {
                if clock.in_window(now) {
                    let latency = now.saturating_duration_since(intended);
                    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    stats.response(response.status, response.bytes, us);
                }
                if !response.keep_alive || plan.new_connection_per_request {
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
        if error == ErrorKind::Connect {
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
struct Conn {
    stream: Option<TcpStream>,
    recv: RecvBuf,
    /// The request bytes, lent to each write and returned.
    send: Vec<u8>,
    /// Index of this connection's request in [`Plan::requests`].
    request: usize,
    /// Source address to bind before connecting (`--bind-count`).
    source: Option<IpAddr>,
}

impl Conn {
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
            let stream = connect::connect(plan.addr, self.source)
                .await
                .map_err(|_| ErrorKind::Connect)?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
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
}
