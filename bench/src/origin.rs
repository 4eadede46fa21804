//! `origin`: a fixed-response HTTP/1.1 server used as the upstream in benchmarks.
//!
//! Thread-per-core like tollgate itself: each thread runs its own monoio runtime and accepts
//! on its own `SO_REUSEPORT` listener, so the kernel spreads connections and no thread shares
//! state with another. The response is formatted once; per request the server only parses the
//! head, skips any body and copies the prepared bytes into the connection's reused output
//! buffer. Pipelined requests are answered in one write.

use std::io::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cli::{default_threads, OriginArgs};
use crate::http::{build_response, Parser};
use crate::recv::RecvBuf;
use crate::runtime;

/// Large enough for any request head a benchmark sends.
const RECV_CAPACITY: usize = 16 * 1024;

/// The two prepared responses: the usual one and one announcing `connection: close`.
struct Responses {
    keep_alive: Vec<u8>,
    close: Vec<u8>,
}

/// Binds one listener per thread, prints `origin listening on ADDR`, then serves forever.
pub fn run(args: &OriginArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let first = bind(args.listen)?;
    // With port 0 the first bind picks the port; the others must share that exact port.
    let addr = first.local_addr().context("listener address")?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr)?);
    }
    let responses = Arc::new(Responses {
        keep_alive: build_response(args.body_bytes, args.chunked, false),
        close: build_response(args.body_bytes, args.chunked, true),
    });
    let delay = Duration::from_millis(args.delay_ms);
    let mut handles = Vec::with_capacity(threads);
    for (i, listener) in listeners.into_iter().enumerate() {
        let responses = Arc::clone(&responses);
        let handle = std::thread::Builder::new()
            .name(format!("origin-{i}"))
            .spawn(move || -> Result<()> {
                let mut rt = runtime::build()?;
                rt.block_on(serve(listener, responses, delay))
            })
            .context("spawning origin thread")?;
        handles.push(handle);
    }
    // Scripts and tests wait for this line, so it is flushed only once every socket is bound.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "origin listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);
    for handle in handles {
        match handle.join() {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("origin thread panicked"),
        }
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    socket.listen(4096)?;
    Ok(socket.into())
}

async fn serve(
    listener: std::net::TcpListener,
    responses: Arc<Responses>,
    delay: Duration,
) -> Result<()> {
    let listener = TcpListener::from_std(listener).context("registering listener")?;
    // Copy the responses into this thread so connection tasks share them without atomics.
    let responses = Rc::new(Responses {
        keep_alive: responses.keep_alive.clone(),
        close: responses.close.clone(),
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(connection(stream, Rc::clone(&responses), delay));
            }
            // Usually EMFILE under a connection storm: back off instead of spinning on it.
            Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Serves one connection until the peer closes, asks to close, or sends garbage.
async fn connection(mut stream: TcpStream, responses: Rc<Responses>, delay: Duration) {
    let mut recv = RecvBuf::with_capacity(RECV_CAPACITY);
    let mut parser = Parser::request();
    let mut out: Vec<u8> = Vec::with_capacity(responses.keep_alive.len() * 4);
    loop {
        // Answer every complete request already buffered (pipelining) before reading again.
        let mut close = false;
        loop {
            match recv.next_message(&mut parser) {
                Ok(Some(request)) => {
                    close = !request.keep_alive;
                    if !delay.is_zero() {
                        // With a delay, earlier answers must not wait for later requests' delays.
                        if !flush(&mut stream, &mut out).await {
                            return;
                        }
                        monoio::time::sleep(delay).await;
                    }
                    let response = if close {
                        &responses.close
                    } else {
                        &responses.keep_alive
                    };
                    out.extend_from_slice(response);
                    if close {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    // Malformed request: answer what was valid, then drop the connection.
                    flush(&mut stream, &mut out).await;
                    return;
                }
            }
        }
        if !flush(&mut stream, &mut out).await || close || recv.is_full() {
            return;
        }
        let buf = recv.take();
        let len = buf.len();
        let (result, slice) = stream.read(buf.slice_mut(len..)).await;
        recv.put(slice.into_inner());
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Writes and clears `out`; false if the connection failed.
async fn flush(stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    let (result, mut buf) = stream.write_all(std::mem::take(out)).await;
    buf.clear();
    *out = buf;
    result.is_ok()
}
