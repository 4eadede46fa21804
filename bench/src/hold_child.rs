//! `hold-child`: one holder process of `hold`, driven line by line over stdin/stdout.
//!
//! A process may only have so many open files, so `hold` spreads its connections over several
//! copies of this binary. Each one raises its soft RLIMIT_NOFILE to the hard limit, runs a
//! single monoio runtime and answers three commands:
//!
//! * `open N`: open `N` more connections (at most [`IN_FLIGHT`] connecting at once), send one
//!   `GET` on each and read its full response; keep the ones that answered with keep-alive.
//!   Replies `opened OK FAILED`.
//! * `ping`: send one more `GET` on every held connection and read the response; connections
//!   that fail are dropped. Replies `alive ALIVE DEAD`.
//! * `exit` (or end of stdin): close everything and exit.
//!
//! Between commands the process blocks on stdin *inside* the runtime. That is deliberate: an
//! idle connection needs no task, nothing is pending while the process waits, and the sockets
//! are only ever created and dropped inside the runtime, as monoio requires.

use std::cell::RefCell;
use std::future::Future;
use std::io::{BufRead as _, ErrorKind, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::{HoldChildArgs, Target};
use crate::http::{build_request, Parser};
use crate::recv::RecvBuf;
use crate::{nofile, runtime};

/// Connects (or pings) in flight at once per holder.
pub const IN_FLIGHT: usize = 500;

/// Open files a holder needs besides its held connections: a second descriptor per connect in
/// flight (the `SO_ERROR` probe) and the process's own (stdio, the runtime's ring, eventfd).
pub const FD_RESERVE: usize = IN_FLIGHT + 64;

/// `EINPROGRESS` on Linux (`io::ErrorKind::InProgress` is not stable on our toolchain).
const EINPROGRESS: i32 = 115;

/// Room for a response head; bodies are streamed through it. Allocated per exchange only, so
/// an idle connection costs the holder no buffer.
const RECV_CAPACITY: usize = 16 * 1024;

/// What every connection task needs, shared read-only.
struct Shared {
    addr: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
}

/// Runs the command loop until `exit` or end of stdin, with the soft open-files limit raised
/// to the hard one first (the parent checked that the hard one is enough).
pub fn run(args: &HoldChildArgs) -> Result<()> {
    nofile::raise_nofile_limit().context("reading RLIMIT_NOFILE")?;
    let target = Target::parse(&args.url)?;
    let shared = Rc::new(Shared {
        addr: target.addr,
        request: build_request("GET", &target.path, &target.host, &[], 0, false),
        timeout: args.timeout,
    });
    let sources = args.sources.clone();
    let first_index = args.first_index;
    let mut rt = runtime::build()?;
    rt.block_on(command_loop(shared, sources, first_index))
}

async fn command_loop(shared: Rc<Shared>, sources: Vec<IpAddr>, first_index: usize) -> Result<()> {
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut next_index = first_index;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.context("reading command")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["open", n] => {
                let n: usize = n
                    .parse()
                    .with_context(|| format!("bad count in {line:?}"))?;
                let jobs: Vec<Option<IpAddr>> = (next_index..next_index + n)
                    .map(|i| (!sources.is_empty()).then(|| sources[i % sources.len()]))
                    .collect();
                next_index += n;
                let shared2 = Rc::clone(&shared);
                let opened = bounded(jobs, move |source| open(Rc::clone(&shared2), source)).await;
                let before = conns.len();
                conns.extend(opened.into_iter().flatten());
                let ok = conns.len() - before;
                writeln!(stdout, "opened {ok} {}", n - ok)?;
            }
            ["ping"] => {
                let held = std::mem::take(&mut conns);
                let total = held.len();
                let shared2 = Rc::clone(&shared);
                let pinged = bounded(held, move |stream| ping(Rc::clone(&shared2), stream)).await;
                conns.extend(pinged.into_iter().flatten());
                writeln!(stdout, "alive {} {}", conns.len(), total - conns.len())?;
            }
            ["exit"] => break,
            _ => bail!("unknown command {line:?}"),
        }
        stdout.flush()?;
    }
    drop(conns);
    Ok(())
}

/// Runs `f` over `items` with at most [`IN_FLIGHT`] futures in flight; results in any order.
async fn bounded<I, O, F, Fut>(items: Vec<I>, f: F) -> Vec<O>
where
    I: 'static,
    O: 'static,
    F: Fn(I) -> Fut + Clone + 'static,
    Fut: Future<Output = O> + 'static,
{
    let workers = IN_FLIGHT.min(items.len());
    let queue = Rc::new(RefCell::new(items.into_iter()));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let queue = Rc::clone(&queue);
            let f = f.clone();
            monoio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let next = queue.borrow_mut().next();
                    let Some(item) = next else { break };
                    out.push(f(item).await);
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await);
    }
    all
}

/// Opens one connection from `source` and completes one exchange on it.
async fn open(shared: Rc<Shared>, source: Option<IpAddr>) -> Option<TcpStream> {
    let timeout = shared.timeout;
    let attempt = async {
        let mut stream = connect(shared.addr, source).await?;
        let _ = stream.set_nodelay(true);
        exchange(&mut stream, &shared.request).await?;
        Some(stream)
    };
    monoio::time::timeout(timeout, attempt).await.ok().flatten()
}

/// Sends one more request on a held connection; `None` if it is dead.
async fn ping(shared: Rc<Shared>, mut stream: TcpStream) -> Option<TcpStream> {
    let ok = monoio::time::timeout(shared.timeout, exchange(&mut stream, &shared.request)).await;
    matches!(ok, Ok(Some(()))).then_some(stream)
}

/// Non-blocking connect after an optional bind to `source` (port chosen by the kernel).
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Option<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).ok()?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into()).ok()?;
    }
    socket.set_nonblocking(true).ok()?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => return None,
    }
    // A duplicate descriptor to read SO_ERROR once the runtime owns the socket.
    let probe = socket.try_clone().ok()?;
    let stream = TcpStream::from_std(socket.into()).ok()?;
    stream.writable(false).await.ok()?;
    match probe.take_error() {
        Ok(None) => {}
        _ => return None,
    }
    probe.peer_addr().ok()?;
    Some(stream)
}

/// Writes the request and reads one full keep-alive response.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Option<()> {
    let (result, _) = stream.write_all(request.to_vec()).await;
    result.ok()?;
    let mut recv = RecvBuf::with_capacity(RECV_CAPACITY);
    let mut parser = Parser::response(false);
    loop {
        match recv.next_message(&mut parser) {
            Ok(Some(response)) => return response.keep_alive.then_some(()),
            Ok(None) if recv.is_full() => return None,
            Ok(None) => {}
            Err(_) => return None,
        }
        let buf = recv.take();
        let len = buf.len();
        let (result, slice) = stream.read(buf.slice_mut(len..)).await;
        recv.put(slice.into_inner());
        match result {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
