//! The client's stream, plain TCP or TLS, as one type: everything downstream (the codec's
//! reads, the integrations' writes) works on it through monoio's owned-buffer traits, so a
//! TLS connection takes the same code path as a plain one. The TLS state is boxed: a plain
//! connection — and every idle connection's task — stays as small as before.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use std::ops::DerefMut;

use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};

use super::tls::TlsStream;

/// Bound on a TLS step under the owned-buffer traits, which carry no deadline: callers wrap
/// their reads and writes in their own timeouts, which cancel the step first.
const FAR: Duration = Duration::from_secs(3600);

/// A downstream connection's stream (the server side of TLS).
pub type ClientStream = Stream<ServerConnection>;

/// An upstream connection's stream (the client side of TLS).
pub type UpstreamStream = Stream<ClientConnection>;

/// A connection's stream, plain or TLS.
#[derive(Debug)]
pub enum Stream<C = ServerConnection> {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (handshake done).
    Tls(Box<TlsStream<C>>),
    /// No stream: only while the TCP stream is lent to the TLS handshake, which gives it
    /// back (as TLS, or plain to be closed). I/O on it fails.
    Detached,
}

impl<C: DerefMut<Target = ConnectionCommon<D>>, D: SideData> Stream<C> {
    /// The TCP stream underneath (none while detached).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(t) => Some(t.tcp()),
            Stream::Detached => None,
        }
    }

    /// The TLS connection, when there is one.
    pub fn tls(&self) -> Option<&TlsStream<C>> {
        match self {
            Stream::Tls(t) => Some(t),
            _ => None,
        }
    }

    /// True when a TLS stream holds input already (decrypted, or received and not yet
    /// decrypted) that the socket's readiness would not show.
    pub fn has_buffered_input(&mut self) -> bool {
        match self {
            Stream::Tls(t) => t.has_buffered_input(),
            _ => false,
        }
    }

    /// Lets go of buffers an idle connection does not need (a TLS stream's ciphertext buffer).
    pub fn shed_idle_buffers(&mut self) {
        if let Stream::Tls(t) = self {
            t.shed_idle_buffers();
        }
    }

    /// Waits until a read would find input. Written so that the only future held across the
    /// wait is the socket's own readiness future: every idle connection's task holds this.
    pub async fn readable(&mut self) -> io::Result<()> {
        if self.has_buffered_input() {
            return Ok(());
        }
        match self.tcp() {
            Some(tcp) => tcp.readable(false).await,
            None => Err(detached()),
        }
    }
}

/// The error of I/O on a detached stream.
fn detached() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl<C> AsRawFd for Stream<C> {
    /// The socket's descriptor; -1 while detached (nothing asks then: the connection is in
    /// its handshake, neither idle nor tunnelling).
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Plain(s) => s.as_raw_fd(),
            Stream::Tls(t) => t.tcp().as_raw_fd(),
            Stream::Detached => -1,
        }
    }
}

impl<C: DerefMut<Target = ConnectionCommon<D>>, D: SideData> AsyncReadRent for Stream<C> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let t = match self {
            Stream::Plain(s) => return s.read(buf).await,
            Stream::Tls(t) => t,
            Stream::Detached => return (Err(detached()), buf),
        };
        // Only as many bytes as are ready are initialised and copied, not the whole buffer.
        let ready = match t.wait_plain(Instant::now() + FAR).await {
            Ok(0) => return (Ok(0), buf),
            Ok(n) => n.min(buf.bytes_total()),
            Err(e) => return (Err(e), buf),
        };
        let ptr = buf.write_ptr();
        // SAFETY: `ptr` points to at least `ready` writable bytes owned by `buf`, which this
        // future owns for the whole read. They may be uninitialised, so they are zeroed first
        // and only then borrowed as a `&mut [u8]`; nothing else aliases them meanwhile.
        #[allow(unsafe_code)]
        let dst = unsafe {
            ptr.write_bytes(0, ready);
            std::slice::from_raw_parts_mut(ptr, ready)
        };
        let res = t.take_plain(dst);
        if let Ok(n) = res {
            // SAFETY: `take_plain` wrote `n` <= `ready` bytes at the start of the buffer (and
            // all `ready` were initialised above).
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n)
            };
        }
        (res, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let t = match self {
            Stream::Plain(s) => return s.readv(buf).await,
            Stream::Tls(t) => t,
            Stream::Detached => return (Err(detached()), buf),
        };
        // Into the first iovec only (a short read, as readv may return); as in `read`, only
        // the bytes that are ready are initialised. Nothing here calls readv today.
        let ready = match t.wait_plain(Instant::now() + FAR).await {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        // SAFETY: the raw buffer is the first iovec of `buf`, which this future owns for the
        // whole read; an empty one (or a null pointer) is never borrowed; `ready.min(len)`
        // bytes are zeroed before they are borrowed as `&mut [u8]`.
        #[allow(unsafe_code)]
        let dst: &mut [u8] = unsafe {
            match RawBuf::new_from_iovec_mut(&mut buf) {
                Some(mut raw) => {
                    let (ptr, len) = (raw.write_ptr(), raw.bytes_total().min(ready));
                    if len == 0 || ptr.is_null() {
                        &mut []
                    } else {
                        ptr.write_bytes(0, len);
                        std::slice::from_raw_parts_mut(ptr, len)
                    }
                }
                None => &mut [],
            }
        };
        let res = if dst.is_empty() {
            Ok(0)
        } else {
            t.take_plain(dst)
        };
        if let Ok(n) = res {
            // SAFETY: `n` bytes were written at the start of the first iovec.
            #[allow(unsafe_code)]
            unsafe {
                buf.set_init(n)
            };
        }
        (res, buf)
    }
}

impl<C: DerefMut<Target = ConnectionCommon<D>>, D: SideData> AsyncWriteRent for Stream<C> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let t = match self {
            Stream::Plain(s) => return s.write(buf).await,
            Stream::Tls(t) => t,
            Stream::Detached => return (Err(detached()), buf),
        };
        // SAFETY: `read_ptr` and `bytes_init` describe `buf`'s initialised bytes; `buf` is
        // owned by this future for the whole write and not mutated meanwhile; an empty buffer
        // (whose pointer may be null) is never borrowed.
        #[allow(unsafe_code)]
        let src: &[u8] = if buf.bytes_init() == 0 || buf.read_ptr().is_null() {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
        };
        let res = t.write_plain(src, Instant::now() + FAR).await;
        (res.map(|()| src.len()), buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let t = match self {
            Stream::Plain(s) => return s.writev(buf).await,
            Stream::Tls(t) => t,
            Stream::Detached => return (Err(detached()), buf),
        };
        // The first iovec only (a short write, as writev may return).
        // SAFETY: the raw buffer is the first iovec of `buf`, initialised and owned by this
        // future for the whole write; an empty one (or a null pointer) is never borrowed.
        #[allow(unsafe_code)]
        let src: &[u8] = unsafe {
            match RawBuf::new_from_iovec(&buf) {
                Some(raw) if raw.bytes_init() > 0 && !raw.read_ptr().is_null() => {
                    std::slice::from_raw_parts(raw.read_ptr(), raw.bytes_init())
                }
                _ => &[],
            }
        };
        let res = t.write_plain(src, Instant::now() + FAR).await;
        (res.map(|()| src.len()), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            // Every write flushes its records already.
            Stream::Tls(_) => Ok(()),
            Stream::Detached => Err(detached()),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(t) => t.close(Instant::now() + FAR).await,
            Stream::Detached => Err(detached()),
        }
    }
}
