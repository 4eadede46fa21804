//! An in-process mock upstream: a blocking HTTP/1.1 server on std threads.
//!
//! It binds `127.0.0.1:0`, accepts on one thread and serves each connection on its own thread
//! (at most [`MAX_CONNECTIONS`] at once; beyond that new connections are closed). Every request
//! it parses is recorded ([`Upstream::requests`]) with its raw target, headers in received order
//! and original case, and body; connections accepted are counted. What it answers is a
//! [`Behaviour`]: echo, a fixed response, a chunked or a large response, optionally after a
//! delay or after the test releases a [`Gate`], optionally closing the connection after N
//! responses (without announcing it with `Connection: close`).
//!
//! The connection handling is generic over the byte stream: [`Upstream::start_over`] serves
//! each accepted socket through a wrapper (a TLS server stream: [`crate::tls_upstream`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 256;
/// An idle upstream connection thread gives up after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit on a request head line count (the mock is not a conformance target).
const MAX_HEAD_LINES: usize = 1000;

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Raw request target.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header fields in received order, original case.
    pub headers: Vec<(String, String)>,
    /// Decoded body (de-chunked).
    pub body: Vec<u8>,
    /// The body arrived chunked.
    pub chunked: bool,
    /// Index of the connection (in accept order) it arrived on.
    pub connection: usize,
}

impl Received {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the upstream answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with a JSON body describing the request (method, target, headers, body length).
    Echo,
    /// A fixed status, headers and body (Content-Length added).
    Fixed {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// 200 with these chunks, `Transfer-Encoding: chunked`.
    Chunked(Vec<Vec<u8>>),
    /// 200 with a body of this many bytes of [`pattern`], with Content-Length.
    Large(usize),
}

/// A latch the test opens: requests held by it wait (bounded) until [`Gate::open`].
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<(usize, bool)>,
    cvar: Condvar,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Lets every held (and future) request through.
    pub fn open(&self) {
        self.state.lock().expect("gate lock").1 = true;
        self.cvar.notify_all();
    }

    /// Waits until `n` requests have arrived at the gate; false at the deadline.
    pub fn wait_arrivals(&self, n: usize, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let mut s = self.state.lock().expect("gate lock");
        while s.0 < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            s = self.cvar.wait_timeout(s, end - now).expect("gate lock").0;
        }
        true
    }

    fn pass(&self) {
        let end = Instant::now() + Duration::from_secs(20);
        let mut s = self.state.lock().expect("gate lock");
        s.0 += 1;
        self.cvar.notify_all();
        while !s.1 {
            let now = Instant::now();
            if now >= end {
                return;
            }
            s = self.cvar.wait_timeout(s, end - now).expect("gate lock").0;
        }
    }
}

/// How the upstream behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The response.
    pub reply: Reply,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Wait for this gate before answering.
    pub gate: Option<Arc<Gate>>,
    /// Close each connection after this many responses.
    pub close_after: Option<usize>,
}

impl Behaviour {
    /// Echo, no delay, keep-alive.
    pub fn echo() -> Behaviour {
        Behaviour::reply(Reply::Echo)
    }

    /// A fixed `status` with a plain-text body.
    pub fn fixed(status: u16, body: &str) -> Behaviour {
        Behaviour::reply(Reply::Fixed {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        })
    }

    /// Any reply, no delay, keep-alive.
    pub fn reply(reply: Reply) -> Behaviour {
        Behaviour {
            reply,
            delay: Duration::ZERO,
            gate: None,
            close_after: None,
        }
    }

    /// Answers after `delay`.
    pub fn delay(mut self, delay: Duration) -> Behaviour {
        self.delay = delay;
        self
    }

    /// Answers once `gate` is open.
    pub fn gate(mut self, gate: Arc<Gate>) -> Behaviour {
        self.gate = Some(gate);
        self
    }

    /// Closes each connection after `n` responses.
    pub fn close_after(mut self, n: usize) -> Behaviour {
        self.close_after = Some(n);
        self
    }
}

/// Byte `i` of a large body.
pub fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// `n` bytes of [`pattern`].
pub fn pattern_body(n: usize) -> Vec<u8> {
    (0..n).map(pattern).collect()
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Received>>,
    requests_cvar: Condvar,
    accepted: AtomicUsize,
    open: AtomicUsize,
    stop: AtomicBool,
    /// Connections whose serving thread ended (peer closed, write failed, ...).
    finished: Mutex<usize>,
    finished_cvar: Condvar,
}

/// A running mock upstream; stops accepting on drop.
pub struct Upstream {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Upstream {
    /// Binds 127.0.0.1:0 and serves with `behaviour`.
    pub fn start(behaviour: Behaviour) -> Upstream {
        Upstream::start_over(behaviour, Ok)
    }

    /// Binds 127.0.0.1:0 and serves with `behaviour` over `wrap(socket)` for each accepted
    /// socket (its timeouts set; `wrap` runs on the connection's own thread). A connection
    /// whose `wrap` fails is counted as accepted and ended, and serves nothing.
    pub fn start_over<S, W>(behaviour: Behaviour, wrap: W) -> Upstream
    where
        S: Read + Write,
        W: Fn(TcpStream) -> std::io::Result<S> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || accept_loop(listener, st, behaviour, wrap));
        Upstream { addr, state }
    }

    /// An echoing upstream.
    pub fn echo() -> Upstream {
        Upstream::start(Behaviour::echo())
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (no path).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// Waits until `n` requests have been received; false at the deadline.
    pub fn wait_requests(&self, n: usize, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let mut reqs = self.state.requests.lock().expect("requests lock");
        while reqs.len() < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            reqs = self
                .state
                .requests_cvar
                .wait_timeout(reqs, end - now)
                .expect("requests lock")
                .0;
        }
        true
    }

    /// Waits until `n` connections have ended on the upstream side (the gateway closed them or
    /// a write to them failed); false at the deadline.
    pub fn wait_connections_ended(&self, n: usize, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let mut done = self.state.finished.lock().expect("finished lock");
        while *done < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            done = self
                .state
                .finished_cvar
                .wait_timeout(done, end - now)
                .expect("finished lock")
                .0;
        }
        true
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop<S, W>(listener: TcpListener, state: Arc<State>, behaviour: Behaviour, wrap: W)
where
    S: Read + Write,
    W: Fn(TcpStream) -> std::io::Result<S> + Send + Sync + 'static,
{
    let wrap = Arc::new(wrap);
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let index = state.accepted.fetch_add(1, Ordering::SeqCst);
        if state.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        state.open.fetch_add(1, Ordering::SeqCst);
        let st = Arc::clone(&state);
        let b = behaviour.clone();
        let wrap = Arc::clone(&wrap);
        std::thread::spawn(move || {
            let _ = configure(&stream)
                .and_then(|()| wrap(stream))
                .and_then(|s| serve(s, index, &st, &b));
            st.open.fetch_sub(1, Ordering::SeqCst);
            *st.finished.lock().expect("finished lock") += 1;
            st.finished_cvar.notify_all();
        });
    }
}

/// The socket options of every accepted connection.
fn configure(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)
}

fn serve<S: Read + Write>(
    stream: S,
    connection: usize,
    state: &State,
    behaviour: &Behaviour,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut served = 0usize;
    loop {
        let Some(req) = read_request(&mut reader, connection)? else {
            return Ok(());
        };
        state
            .requests
            .lock()
            .expect("requests lock")
            .push(req.clone());
        state.requests_cvar.notify_all();
        if let Some(gate) = &behaviour.gate {
            gate.pass();
        }
        if !behaviour.delay.is_zero() {
            std::thread::sleep(behaviour.delay);
        }
        let response = render(&behaviour.reply, &req);
        // Bytes read ahead (a pipelined request) stay in the reader's buffer.
        let writer = reader.get_mut();
        writer.write_all(&response)?;
        writer.flush()?;
        served += 1;
        let client_close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if client_close || behaviour.close_after.is_some_and(|n| served >= n) {
            return Ok(());
        }
    }
}

/// Reads one request; `None` at a clean end of stream before any byte.
fn read_request(reader: &mut impl BufRead, connection: usize) -> std::io::Result<Option<Received>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let request_line = line.trim_end_matches(['\r', '\n']).to_string();
    let mut parts = request_line.splitn(3, ' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let version = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for _ in 0..MAX_HEAD_LINES {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("eof in head"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| bad("header without colon"))?;
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut req = Received {
        method,
        target,
        version,
        headers,
        body: Vec::new(),
        chunked: false,
        connection,
    };
    let te = req.header("transfer-encoding").map(str::to_ascii_lowercase);
    if te.as_deref().is_some_and(|t| t.contains("chunked")) {
        req.chunked = true;
        req.body = read_chunked(reader)?;
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().map_err(|_| bad("bad content-length"))?;
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut body = Vec::new();
    let mut line = String::new();
    for _ in 0..10_000_000 {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim_end().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text.trim(), 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            // Trailers until the empty line.
            for _ in 0..MAX_HEAD_LINES {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
            return Err(bad("too many trailers"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
    Err(bad("too many chunks"))
}

fn render(reply: &Reply, req: &Received) -> Vec<u8> {
    match reply {
        Reply::Echo => {
            let headers: Vec<_> = req
                .headers
                .iter()
                .map(|(n, v)| serde_json::json!([n, v]))
                .collect();
            let body = serde_json::json!({
                "method": req.method,
                "target": req.target,
                "version": req.version,
                "headers": headers,
                "body_len": req.body.len(),
                "body": String::from_utf8_lossy(&req.body),
            })
            .to_string();
            fixed(
                200,
                &[("Content-Type".into(), "application/json".into())],
                body.as_bytes(),
            )
        }
        Reply::Fixed {
            status,
            headers,
            body,
        } => fixed(*status, headers, body),
        Reply::Chunked(chunks) => {
            let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in chunks.iter().filter(|c| !c.is_empty()) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
        Reply::Large(n) => fixed(
            200,
            &[("Content-Type".into(), "application/octet-stream".into())],
            &pattern_body(*n),
        ),
    }
}

fn fixed(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Mock\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}
