//! The one system call the upstream side needs that std and monoio do not offer: a
//! non-blocking peek, to check a pooled upstream connection before reuse. (monoio's streams
//! implement `AsRawFd` but not `AsFd`, so socket2's safe `recv_with_flags` cannot borrow them.)

use std::os::fd::RawFd;

/// True when an idle upstream connection has nothing to read and is still open: no stale
/// response bytes (an upstream that sent more than it framed, or an unsolicited `408` before
/// closing) and no end-of-stream. Reusing a connection that is not quiet would hand those bytes
/// to the next request as its response.
pub fn is_quiet(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv(2) writes at most 1 byte into `byte`, which lives for the call; the
    // descriptor is owned by the pooled connection the caller holds.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast::<libc::c_void>(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn quiet_only_without_pending_bytes_or_eof() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(is_quiet(client.as_raw_fd()));
        server.write_all(b"x").unwrap();
        // Wait (bounded) for the byte to arrive, then it is no longer quiet.
        let mut quiet = true;
        for _ in 0..1000 {
            quiet = is_quiet(client.as_raw_fd());
            if !quiet {
                break;
            }
            std::thread::yield_now();
        }
        assert!(!quiet, "pending byte seen");
        let client2 = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server2, _) = listener.accept().unwrap();
        drop(server2);
        let mut closed_seen = false;
        for _ in 0..1000 {
            if !is_quiet(client2.as_raw_fd()) {
                closed_seen = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(closed_seen, "end of stream seen");
    }
}
