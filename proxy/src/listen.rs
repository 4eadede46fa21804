//! Listening sockets: one SO_REUSEPORT socket per listener per worker, so the kernel spreads
//! new connections over the workers without a shared accept lock.
//!
//! The control thread binds them all (port 0 is resolved by the first bind, and the others bind
//! the same port), then hands each worker its own.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` SO_REUSEPORT sockets on `addr`; returns them and the bound address.
pub fn bind_group(
    addr: SocketAddr,
    backlog: u32,
    count: usize,
) -> std::io::Result<(Vec<TcpListener>, SocketAddr)> {
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = Socket::new(
            Domain::for_address(bound),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        if bound.is_ipv6() {
            // An [::] listener should not also claim the IPv4 port: a separate 0.0.0.0
            // listener may want it.
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.bind(&bound.into())?;
        socket.listen(backlog.min(i32::MAX as u32) as i32)?;
        let listener: TcpListener = socket.into();
        bound = listener.local_addr()?;
        sockets.push(listener);
    }
    Ok((sockets, bound))
}
