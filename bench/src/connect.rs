//! `load --bind-count N`: connecting from one of N loopback source addresses, so limits keyed
//! on the client address (tollgate's `client_throttle`, nginx `limit_req`, HAProxy stick
//! tables) see N clients. Connection `i` binds `127.0.0.(2 + i % N)`; 127.0.0.1 is left out so
//! the test clients never share an address with anything else on the machine.
//!
//! monoio's `TcpStream::connect_addr` cannot bind first, so the socket is made with socket2:
//! bind (port left to the kernel), non-blocking connect (`EINPROGRESS`), hand it to monoio with
//! `from_std` and wait for writability, then read `SO_ERROR`. This never blocks the runtime
//! thread, unlike a blocking connect, and the per-request timeout covers it like any connect.
//! Only IPv4 loopback targets are allowed: the whole 127/8 is local on Linux, and a
//! 127.0.0.x source could not reach any other target.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Result};
use monoio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// `EINPROGRESS` on Linux (`io::ErrorKind::InProgress` is not stable on our toolchain).
const EINPROGRESS: i32 = 115;

/// Most source addresses: 127.0.0.2 ..= 127.0.0.254.
pub const MAX_BIND_COUNT: u8 = 253;

/// Refuses `--bind-count` unless the target is an IPv4 loopback address.
pub fn check_bind_target(target: SocketAddr) -> Result<()> {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => Ok(()),
        ip => bail!(
            "--bind-count binds 127.0.0.x source addresses, so the target must be an IPv4 \
             loopback address (127.0.0.0/8), not {ip}"
        ),
    }
}

/// The source address of connection `index` when binding `count` addresses.
pub fn source_addr(index: usize, count: u8) -> IpAddr {
    let count = usize::from(count.clamp(1, MAX_BIND_COUNT));
    // 2 + (index % count) <= 254, so the cast cannot truncate.
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (2 + index % count) as u8))
}

/// Connects to `addr`, first binding `source` (port chosen by the kernel) if given.
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect_addr(addr).await;
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    // A duplicate descriptor to read SO_ERROR once the runtime owns the socket.
    let probe = socket.try_clone()?;
    let stream = TcpStream::from_std(socket.into())?;
    stream.writable(false).await?;
    if let Some(e) = probe.take_error()? {
        return Err(e);
    }
    // Not connected after all (e.g. woken by a hang-up): fails with ENOTCONN.
    probe.peer_addr()?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_cycle_from_127_0_0_2() {
        let got: Vec<IpAddr> = (0..5).map(|i| source_addr(i, 3)).collect();
        let want: Vec<IpAddr> = [2, 3, 4, 2, 3]
            .iter()
            .map(|&d| IpAddr::V4(Ipv4Addr::new(127, 0, 0, d)))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            source_addr(252, MAX_BIND_COUNT),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 254))
        );
        assert_eq!(
            source_addr(253, MAX_BIND_COUNT),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
        );
    }

    #[test]
    fn only_ipv4_loopback_targets() -> Result<()> {
        check_bind_target("127.0.0.1:80".parse()?)?;
        check_bind_target("127.1.2.3:80".parse()?)?;
        for bad in ["[::1]:80", "192.0.2.1:80", "0.0.0.0:80"] {
            let err = check_bind_target(bad.parse()?).expect_err(bad);
            assert!(err.to_string().contains("IPv4 loopback"), "{err}");
        }
        Ok(())
    }
}
