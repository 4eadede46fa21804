//! The system calls std and monoio do not offer, in one place: shutting down a socket's read
//! side (to end a readiness wait from outside the task), duplicating a socket (a tunnel writes
//! through a second descriptor while it reads through the first), and raising the open-files
//! limit (through the `rlimit` crate). The upstream side's one system call (a peek before
//! reusing a pooled connection) is in `tollgate_backends::sys`.

use std::os::fd::RawFd;

/// Shuts down the read side of a socket: a pending readiness wait completes and reads return
/// end-of-stream. Callers pass only descriptors they know are open: a connection's, while it
/// is registered (it leaves the registry before its socket closes, see `conn::serve`), or a
/// worker's own listener.
pub(crate) fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown(2) takes a descriptor number and no memory; the caller guarantees the
    // descriptor is open and owned by a live socket, and shutdown does not close it.
    #[allow(unsafe_code)]
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// Shuts down both directions of a socket: the task using it sees end-of-stream on reads and
/// errors on writes. Used to close tunnels at the end of a drain; same caller guarantee as
/// [`shutdown_read`].
pub(crate) fn shutdown_both(fd: RawFd) {
    // SAFETY: as in `shutdown_read`: no memory is passed and the descriptor stays open.
    #[allow(unsafe_code)]
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// A second descriptor for the socket behind `fd` (dup(2)), as a std stream: reads through
/// one and writes through the other can then be in flight at the same time from two tasks.
/// Same caller guarantee as [`shutdown_read`].
pub(crate) fn dup_stream(fd: RawFd) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: dup(2) takes a descriptor number and no memory; the caller guarantees `fd` is an
    // open socket. The new descriptor is ours alone and is owned exactly once below.
    #[allow(unsafe_code)]
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh, open descriptor that nothing else owns.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(copy) };
    Ok(std::net::TcpStream::from(owned))
}

/// Raises the soft limit on open files to the hard limit; returns (soft, hard) after it. If
/// the kernel refuses the raise, the limits stay as they were and are returned as they are.
pub(crate) fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    // A refused raise leaves the limits as they were: the caller logs what they are.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    rlimit::Resource::NOFILE.get()
}
