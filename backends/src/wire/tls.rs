//! TLS on an upstream connection (the client side): our own small adapter between rustls'
//! buffered `ClientConnection` and monoio, plus what both sides share (the handshake's failure
//! reasons, [`HandshakeError`], and the bounds). The server side of a downstream connection
//! is [`super::tls_server`], built on rustls' unbuffered API instead: its buffers are ours,
//! so the many idle keep-alive connections a gateway holds keep none (rustls' buffered
//! connection keeps a record buffer of at least 4 KiB for life). An upstream connection is
//! pooled only while the pool wants it, so it stays on the simpler buffered API.
//!
//! [`connect`] completes the handshake with owned-buffer reads and writes, within one
//! deadline. [`TlsStream`] then moves records between the socket and the rustls connection:
//! ciphertext is read into a buffer of its own and handed to rustls; plaintext is copied out
//! to the reader's buffer; written plaintext is encrypted and flushed at once.
//!
//! Bounds: the ClientHello a server accepts may be at most [`CLIENT_HELLO_MAX`] bytes; the
//! ciphertext buffer holds one read ([`CIPHERTEXT_READ`]) at a time; rustls bounds unread
//! plaintext itself, and what it queues to send at [`PLAINTEXT_LIMIT`]; a record buffer that
//! fills without progress is an error, never a spin.
//!
//! Cancellation: callers wrap reads and writes in timeouts, which drop these futures
//! mid-way; bytes a cancelled read or write had in flight are lost, so a connection whose
//! TLS operation timed out must be closed, never used again (every caller does).

use std::io;
use std::sync::Arc;
use std::time::Instant;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::ops::DerefMut;

use rustls::client::ClientConfig;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ConnectionCommon, SideData};

use crate::wire::io::{read_more, IoFail};

/// Largest ClientHello accepted (a 100 KB one is refused, not buffered).
pub const CLIENT_HELLO_MAX: usize = 32 * 1024;
/// Ciphertext read from the socket at once.
pub const CIPHERTEXT_READ: usize = 16 * 1024 + 256;
/// Bytes rustls may queue for sending (its `set_buffer_limit`; received plaintext is bounded
/// by rustls itself, at 16 KiB of unread data).
pub const PLAINTEXT_LIMIT: usize = 64 * 1024;
/// Longest wait for the close_notify to go out when closing.
pub const CLOSE_NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A fatal `unrecognized_name` alert (RFC 6066 §3) as a plaintext TLS record: sent before
/// any ServerHello, so it needs no keys. (rustls offers no way to send an alert of our
/// choosing from an accepted ClientHello.)
pub(crate) const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112];

/// Why a handshake did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The deadline passed.
    Timeout,
    /// The client closed or reset before the handshake ended.
    Closed,
    /// Not TLS, or TLS rustls refuses (version, ciphers, malformed, too large).
    Protocol,
    /// No configuration for the name asked for, and no default.
    UnknownName,
    /// No TLS version or cipher suite both sides support.
    Incompatible,
    /// A certificate was refused: the client's (missing, expired, revoked, not for client
    /// authentication), or ours by the client.
    BadCertificate,
    /// A certificate chains to no trusted CA: the client's to none of the policy's bundle, or
    /// ours to none the client trusts.
    UnknownCa,
}

impl HandshakeError {
    /// Every reason, in counter order ([`HandshakeError::index`]).
    pub const ALL: [HandshakeError; 7] = [
        HandshakeError::Timeout,
        HandshakeError::Closed,
        HandshakeError::Protocol,
        HandshakeError::UnknownName,
        HandshakeError::Incompatible,
        HandshakeError::BadCertificate,
        HandshakeError::UnknownCa,
    ];

    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeError::Timeout => "timeout",
            HandshakeError::Closed => "closed",
            HandshakeError::Protocol => "protocol",
            HandshakeError::UnknownName => "unknown_name",
            HandshakeError::Incompatible => "no_shared_version_or_cipher",
            HandshakeError::BadCertificate => "bad_certificate",
            HandshakeError::UnknownCa => "unknown_ca",
        }
    }

    /// Position in [`HandshakeError::ALL`] (counter arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason behind a rustls error that ended a handshake.
    pub(crate) fn of(e: &rustls::Error) -> Self {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        match e {
            E::PeerIncompatible(_) => HandshakeError::Incompatible,
            E::InvalidCertificate(C::UnknownIssuer) => HandshakeError::UnknownCa,
            E::InvalidCertificate(_) | E::NoCertificatesPresented => HandshakeError::BadCertificate,
            E::AlertReceived(A::UnknownCA) => HandshakeError::UnknownCa,
            E::AlertReceived(
                A::BadCertificate
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::CertificateUnknown
                | A::UnsupportedCertificate,
            ) => HandshakeError::BadCertificate,
            E::AlertReceived(A::ProtocolVersion | A::InsufficientSecurity) => {
                HandshakeError::Incompatible
            }
            _ => HandshakeError::Protocol,
        }
    }
}

/// A TLS connection over a TCP stream: the client side of an upstream one
/// (`ClientConnection`, the default). The adapter is generic over rustls' buffered
/// connections; the gateway's server side is [`super::tls_server::ServerTls`].
pub struct TlsStream<C = ClientConnection> {
    io: TcpStream,
    conn: C,
    /// Ciphertext read but not yet taken by rustls.
    incoming: Vec<u8>,
    /// The peer closed TCP (with or without close_notify).
    eof: bool,
    /// A TCP close without close_notify is an error (the client side of an upstream, whose
    /// response body may be delimited by the close).
    unclean_eof_is_error: bool,
}

impl<C> std::fmt::Debug for TlsStream<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("incoming", &self.incoming.len())
            .finish()
    }
}

impl<C> TlsStream<C> {
    /// The TCP stream underneath (readiness waits, the descriptor).
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }
}

/// Connects TLS as a client over `io` to `name` (SNI and the name verified), finishing the
/// handshake before `deadline`. On failure the TCP stream comes back with the reason.
pub async fn connect(
    io: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    deadline: Instant,
) -> Result<TlsStream<ClientConnection>, (HandshakeError, TcpStream)> {
    let mut conn = match ClientConnection::new(config, name) {
        Ok(conn) => conn,
        Err(_) => return Err((HandshakeError::Protocol, io)),
    };
    conn.set_buffer_limit(Some(PLAINTEXT_LIMIT));
    let mut stream = TlsStream {
        io,
        conn,
        incoming: Vec::with_capacity(4096),
        eof: false,
        unclean_eof_is_error: true,
    };
    match stream.finish_handshake(deadline).await {
        Ok(()) => Ok(stream),
        Err(e) => Err((e, stream.io)),
    }
}

/// The handshake failure behind an I/O failure.
pub(crate) fn fail(e: IoFail) -> HandshakeError {
    match e {
        IoFail::Timeout => HandshakeError::Timeout,
        IoFail::Eof | IoFail::Io(_) => HandshakeError::Closed,
    }
}

/// Hands `buf`'s bytes to `read_tls` until it takes no more, and drops what it took — also
/// when it stops with an error (its buffers are full until processed or read): bytes it took
/// must never be handed over twice. Returns how many it took, and whether it stopped on an
/// error (a full buffer) rather than because it took everything.
fn feed(
    buf: &mut Vec<u8>,
    mut read_tls: impl FnMut(&mut dyn io::Read) -> io::Result<usize>,
) -> (usize, bool) {
    let mut rest: &[u8] = buf;
    let mut full = false;
    while !rest.is_empty() {
        match read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    let taken = buf.len() - rest.len();
    buf.drain(..taken);
    (taken, full)
}

/// Writes `out` to `io` before `deadline`.
pub(crate) async fn send(
    io: &mut TcpStream,
    out: Vec<u8>,
    deadline: Instant,
) -> Result<(), IoFail> {
    match monoio::time::timeout_at(deadline.into(), io.write_all(out)).await {
        Err(_) => Err(IoFail::Timeout),
        Ok((Ok(_), _)) => Ok(()),
        Ok((Err(e), _)) => Err(IoFail::Io(e)),
    }
}

impl<C: DerefMut<Target = ConnectionCommon<D>>, D: SideData> TlsStream<C> {
    /// Runs the handshake to its end: our flights out, the client's in. Bytes that arrived
    /// behind the ClientHello are in `incoming` already and are fed first.
    async fn finish_handshake(&mut self, deadline: Instant) -> Result<(), HandshakeError> {
        while self.conn.is_handshaking() {
            self.flush_tls(deadline).await.map_err(fail)?;
            if !self.conn.is_handshaking() {
                break;
            }
            if self.incoming.is_empty() {
                read_more(&mut self.io, &mut self.incoming, deadline)
                    .await
                    .map_err(fail)?;
            }
            // Nothing taken with bytes waiting (the peer's close_notify mid-handshake, or a
            // refusal): the handshake cannot go on — never loop without reading.
            match self.take_ciphertext() {
                Ok(0) if !self.incoming.is_empty() => return Err(HandshakeError::Protocol),
                Ok(_) => {}
                Err(e) => {
                    let _ = self.flush_tls(deadline).await;
                    return Err(HandshakeError::of(&e));
                }
            }
        }
        // The handshake's last flight (TLS 1.3 session tickets, TLS 1.2 Finished).
        self.flush_tls(deadline).await.map_err(fail)
    }

    /// True when decrypted or undecrypted bytes are waiting here: a readiness wait on the
    /// socket would not see them.
    pub fn has_buffered_input(&mut self) -> bool {
        !self.incoming.is_empty()
            || self
                .conn
                .process_new_packets()
                .is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
    }

    /// Lets go of the ciphertext buffer when it is empty: an idle connection should hold as
    /// little as it can (the next read allocates it again, once per busy period).
    pub fn shed_idle_buffers(&mut self) {
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
    }

    /// Feeds buffered ciphertext to rustls and processes it, as much as rustls takes; returns
    /// how many bytes it took. When rustls's record buffer fills, what it holds is processed
    /// and feeding goes on; when decrypted bytes wait for the reader, the rest waits in
    /// `incoming`. A buffer that stays full with nothing to read — a handshake message larger
    /// than rustls buffers, which can never complete — is an error: looping on it would spin
    /// the worker.
    fn take_ciphertext(&mut self) -> Result<usize, rustls::Error> {
        let mut total = 0;
        let mut stalled = false;
        loop {
            let conn = &mut self.conn;
            let (taken, full) = feed(&mut self.incoming, |rd| conn.read_tls(rd));
            total += taken;
            let state = self.conn.process_new_packets()?;
            if !full || state.plaintext_bytes_to_read() > 0 {
                return Ok(total);
            }
            if taken == 0 && stalled {
                return Err(rustls::Error::General(
                    "TLS record buffer full and nothing to read".into(),
                ));
            }
            stalled = taken == 0;
        }
    }

    /// Writes every TLS record rustls has queued.
    async fn flush_tls(&mut self, deadline: Instant) -> Result<(), IoFail> {
        while self.conn.wants_write() {
            let mut out = Vec::with_capacity(4096);
            while self.conn.wants_write() {
                if self.conn.write_tls(&mut out).is_err() {
                    break;
                }
            }
            send(&mut self.io, out, deadline).await?;
        }
        Ok(())
    }

    /// Decrypted bytes ready now (`Some(n)`), after at most one read from the socket (which
    /// waits for bytes until `deadline`; `Some(0)`: a record is still incomplete), or None at
    /// the end of the stream. A tunnel calls it when the socket is readable, so one direction
    /// never waits on a partial record while the other has bytes to move.
    pub async fn read_available(&mut self, deadline: Instant) -> io::Result<Option<usize>> {
        let mut read_once = false;
        loop {
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // The alert for the error, if any, then the error.
                    let _ = self.flush_tls(deadline).await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            if state.plaintext_bytes_to_read() > 0 {
                return Ok(Some(state.plaintext_bytes_to_read()));
            }
            if state.peer_has_closed() {
                return Ok(None);
            }
            if self.eof {
                // TCP closed without close_notify: the end for a client (HTTP frames its
                // requests); a truncation for a response read from an upstream, whose body
                // may be delimited by the close.
                return if self.unclean_eof_is_error {
                    Err(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Ok(None)
                };
            }
            // Alerts or key updates rustls wants to send go out before waiting for more.
            self.flush_tls(deadline).await.map_err(into_io)?;
            if self.incoming.is_empty() {
                if read_once {
                    return Ok(Some(0));
                }
                read_once = true;
                // Room for a whole record in one read.
                self.incoming.reserve(CIPHERTEXT_READ);
                match read_more(&mut self.io, &mut self.incoming, deadline).await {
                    Ok(_) => {}
                    Err(IoFail::Eof) => {
                        self.eof = true;
                        continue;
                    }
                    Err(e) => return Err(into_io(e)),
                }
            }
            match self.take_ciphertext() {
                // Bytes waiting that rustls will not take, nothing to read, no close: an error
                // rather than a loop without a read.
                Ok(0) if !self.incoming.is_empty() && !self.has_plaintext_or_close() => {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = self.flush_tls(deadline).await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }

    /// True when decrypted bytes are ready or the peer has closed (with close_notify).
    fn has_plaintext_or_close(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .is_ok_and(|s| s.plaintext_bytes_to_read() > 0 || s.peer_has_closed())
    }

    /// Copies decrypted bytes that are ready into `dst` (at most what [`wait_plain`] said).
    ///
    /// [`wait_plain`]: crate::wire::stream::TlsIo::wait_plain
    pub fn take_plain(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        match self.conn.reader().read(dst) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Encrypts all of `src` and writes it before `deadline`.
    pub async fn write_plain(&mut self, src: &[u8], deadline: Instant) -> io::Result<()> {
        use std::io::Write;
        let mut rest = src;
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
            self.flush_tls(deadline).await.map_err(into_io)?;
        }
        Ok(())
    }

    /// Sends close_notify (within [`CLOSE_NOTIFY_WAIT`] at most: a peer that does not read
    /// must not hold the connection open) and shuts the write side.
    pub async fn close(&mut self, deadline: Instant) -> io::Result<()> {
        use monoio::io::AsyncWriteRent;
        self.conn.send_close_notify();
        let deadline = deadline.min(Instant::now() + CLOSE_NOTIFY_WAIT);
        let _ = self.flush_tls(deadline).await;
        self.io.shutdown().await
    }
}

/// The I/O error behind an I/O failure.
pub(crate) fn into_io(e: IoFail) -> io::Error {
    match e {
        IoFail::Timeout => io::ErrorKind::TimedOut.into(),
        IoFail::Eof => io::ErrorKind::UnexpectedEof.into(),
        IoFail::Io(e) => e,
    }
}
