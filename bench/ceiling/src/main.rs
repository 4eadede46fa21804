//! `tollgate-ceiling LISTEN UPSTREAM MODE`: a proxy that does nothing but relay bytes, used to
//! measure the kernel's floor under any proxy on a machine (docs/BENCHMARKS.md §13).
//!
//! Every accepted client connection is paired with its own upstream connection, and bytes
//! flow both ways unparsed, so a keep-alive HTTP/1.1 exchange costs exactly the four socket
//! operations a proxy cannot avoid (read the request, send it upstream, read the response,
//! send it back) plus the event machinery of the chosen MODE:
//! - `epoll`: level-triggered epoll with recv(2)/send(2) (see [`epoll`]);
//! - `uring`: io_uring with one-shot receives re-armed after each completion;
//! - `uring-multishot`: io_uring multishot receives into a provided-buffer ring.
//!
//! Both io_uring modes use `COOP_TASKRUN | SINGLE_ISSUER | DEFER_TASKRUN`, as tollgate does.
//! One thread; pin it with taskset.

mod epoll;
mod uring;

use std::net::TcpStream;
use std::os::fd::{IntoRawFd, RawFd};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, mode] = &args[..] else {
        eprintln!("usage: tollgate-ceiling LISTEN UPSTREAM epoll|uring|uring-multishot");
        std::process::exit(2);
    };
    let listener = std::net::TcpListener::bind(listen).unwrap_or_else(|e| {
        eprintln!("cannot listen on {listen}: {e}");
        std::process::exit(1);
    });
    let result = match mode.as_str() {
        "epoll" => epoll::run(listener, upstream),
        "uring" => uring::run(listener, upstream, false),
        "uring-multishot" => uring::run(listener, upstream, true),
        other => {
            eprintln!("unknown mode {other:?}: expected epoll, uring or uring-multishot");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("{mode}: {e}");
        std::process::exit(1);
    }
}

/// Connects the upstream half of a pair (blocking connect, then non-blocking), TCP_NODELAY
/// on both halves as every proxy sets it.
fn pair_upstream(client: &std::net::TcpStream, upstream: &str) -> std::io::Result<RawFd> {
    client.set_nodelay(true)?;
    client.set_nonblocking(true)?;
    let up = TcpStream::connect(upstream)?;
    up.set_nodelay(true)?;
    up.set_nonblocking(true)?;
    Ok(up.into_raw_fd())
}
