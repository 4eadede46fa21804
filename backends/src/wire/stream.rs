//! The client's stream, plain TCP or TLS, as one type: everything downstream (the codec's
//! reads, the integrations' writes) works on it through monoio's owned-buffer traits, so a
//! TLS connection takes the same code path as a plain one. The TLS state is boxed: a plain
//! connection — and every idle connection's task — stays as small as before.
//!
//! The two sides of TLS are two types behind one small trait, [`TlsIo`]: a downstream
//! connection's [`ServerTls`] (rustls' unbuffered server connection with buffers of our own,
//! which an idle connection lets go of: [`super::tls_server`]) and an upstream connection's
//! [`TlsStream`] (rustls' buffered client connection: [`super::tls`]). [`Stream`] is generic
//! over it, so [`ClientStream`] and [`UpstreamStream`] share every line here and neither pays
//! for the other (no dynamic dispatch, no extra variant).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use std::ops::DerefMut;

use rustls::{ClientConnection, ConnectionCommon, SideData};

use super::tls::TlsStream;
use super::tls_server::ServerTls;

/// Bound on a TLS step under the owned-buffer traits, which carry no deadline: callers wrap
/// their reads and writes in their own timeouts, which cancel the step first.
const FAR: Duration = Duration::from_secs(3600);

/// A downstream connection's stream (the server side of TLS).
pub type ClientStream = Stream<ServerTls>;

/// An upstream connection's stream (the client side of TLS).
pub type UpstreamStream = Stream<TlsStream<ClientConnection>>;

/// What [`Stream`] needs of a TLS connection (handshake done): plaintext in and out over the
/// TCP stream underneath. Both sides implement it with the inherent methods of the same names.
// `async fn` in a public trait: the futures are not `Send`, and need not be (one thread per
// core; monoio never moves a task between threads).
#[allow(async_fn_in_trait)]
pub trait TlsIo {
    /// The TCP stream underneath (readiness waits, the descriptor).
    fn tcp(&self) -> &TcpStream;
    /// True when input is buffered (decrypted or not) that the socket's readiness would not
    /// show.
    fn has_buffered_input(&mut self) -> bool;
    /// Lets go of buffers an idle connection does not need.
    fn shed_idle_buffers(&mut self);
    /// Decrypted bytes ready now (`Some(n)`), after at most one read from the socket
    /// (`Some(0)`: a record is still incomplete), or None at the end of the stream.
    async fn read_available(&mut self, deadline: Instant) -> io::Result<Option<usize>>;
    /// Waits until decrypted bytes are ready; how many (0: the end of the stream). The
    /// caller then knows how much room [`TlsIo::take_plain`] needs.
    async fn wait_plain(&mut self, deadline: Instant) -> io::Result<usize> {
        loop {
            match self.read_available(deadline).await? {
                Some(0) => {}
                Some(n) => return Ok(n),
                None => return Ok(0),
            }
        }
    }
    /// Copies decrypted bytes that are ready into `dst`; how many.
    fn take_plain(&mut self, dst: &mut [u8]) -> io::Result<usize>;
    /// Encrypts all of `src` and writes it before `deadline`.
    async fn write_plain(&mut self, src: &[u8], deadline: Instant) -> io::Result<()>;
    /// Sends close_notify and shuts the write side.
    async fn close(&mut self, deadline: Instant) -> io::Result<()>;
}

impl TlsIo for ServerTls {
    fn tcp(&self) -> &TcpStream {
        ServerTls::tcp(self)
    }
    fn has_buffered_input(&mut self) -> bool {
        ServerTls::has_buffered_input(self)
    }
    fn shed_idle_buffers(&mut self) {
        ServerTls::shed_idle_buffers(self)
    }
    async fn read_available(&mut self, deadline: Instant) -> io::Result<Option<usize>> {
        ServerTls::read_available(self, deadline).await
    }
    fn take_plain(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        ServerTls::take_plain(self, dst)
    }
    async fn write_plain(&mut self, src: &[u8], deadline: Instant) -> io::Result<()> {
        ServerTls::write_plain(self, src, deadline).await
    }
    async fn close(&mut self, deadline: Instant) -> io::Result<()> {
        ServerTls::close(self, deadline).await
    }
}

impl<C: DerefMut<Target = ConnectionCommon<D>>, D: SideData> TlsIo for TlsStream<C> {
    fn tcp(&self) -> &TcpStream {
        TlsStream::tcp(self)
    }
    fn has_buffered_input(&mut self) -> bool {
        TlsStream::has_buffered_input(self)
    }
    fn shed_idle_buffers(&mut self) {
        TlsStream::shed_idle_buffers(self)
    }
    async fn read_available(&mut self, deadline: Instant) -> io::Result<Option<usize>> {
        TlsStream::read_available(self, deadline).await
    }
    fn take_plain(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        TlsStream::take_plain(self, dst)
    }
    async fn write_plain(&mut self, src: &[u8], deadline: Instant) -> io::Result<()> {
        TlsStream::write_plain(self, src, deadline).await
    }
    async fn close(&mut self, deadline: Instant) -> io::Result<()> {
        TlsStream::close(self, deadline).await
    }
}

/// A connection's stream, plain or TLS (`S`: [`ServerTls`] or [`TlsStream`]).
#[derive(Debug)]
pub enum Stream<S = ServerTls> {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (handshake done).
    Tls(Box<S>),
    /// No stream: only while the TCP stream is lent to the TLS handshake, which gives it
    /// back (as TLS, or plain to be closed). I/O on it fails.
    Detached,
}

impl<S: TlsIo> Stream<S> {
    /// The TCP stream underneath (none while detached).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(t) => Some(t.tcp()),
            Stream::Detached => None,
        }
    }

    /// The TLS connection, when there is one.
    pub fn tls(&self) -> Option<&S> {
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

    /// Lets go of buffers an idle connection does not need (a TLS stream's ciphertext and
    /// plaintext buffers).
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

impl<S: TlsIo> AsRawFd for Stream<S> {
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

impl<S: TlsIo> AsyncReadRent for Stream<S> {
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

impl<S: TlsIo> AsyncWriteRent for Stream<S> {
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
