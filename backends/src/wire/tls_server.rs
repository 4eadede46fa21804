//! TLS on a downstream connection (the server side), built on rustls'
//! `UnbufferedServerConnection`: the connection's buffers are ours, so an idle keep-alive
//! connection holds none of them.
//!
//! Why not rustls' buffered `ServerConnection` (which the client side of an upstream still
//! uses, [`super::tls`]): it owns a record-reading buffer that never shrinks below 4 KiB once
//! it has read, plus queues for plaintext to send; every idle TLS connection carried them
//! (docs/BENCHMARKS.md §18: 9 KB per idle connection). Here the connection owns three plain
//! `Vec`s — ciphertext in, ciphertext out, decrypted bytes not yet taken — and
//! [`ServerTls::shed_idle_buffers`] lets each go (`Vec::new()`) when it is empty: what an
//! idle connection keeps of TLS is rustls' connection state (keys, the state machine) and
//! nothing else.
//!
//! [`accept`] reads the ClientHello with `rustls::server::Acceptor`, only to learn the name
//! the client asked for (SNI); the caller chooses the server configuration by it; then an
//! `UnbufferedServerConnection` is made from that configuration and given the same
//! ClientHello bytes (kept in our buffer, never drained by the acceptor), and the handshake
//! runs to its end within one deadline (a client that stalls mid-handshake is closed like a
//! slow head).
//!
//! Moving records: rustls is handed our incoming buffer and decrypts each record in place
//! there, and says how many bytes at its front are done with (`discard`); the rest — a record
//! still arriving, or handshake fragments being joined — stays where it is, and reads append
//! behind it. rustls 0.23 then copies each decrypted application-data record into a `Vec` of
//! its own (`ReadTraffic::next_record`; in-place reading is announced for a later version),
//! which is moved into our plaintext buffer at once, for [`ServerTls::take_plain`] to copy out:
//! so rustls never holds a record between calls, and its `ReadTraffic` state never blocks a
//! write. Written plaintext is encrypted straight into our outgoing buffer (up to
//! [`WRITE_BATCH`] bytes, four full records, at a time) and sent at once.
//!
//! Bounds, so no peer can make a buffer grow without limit or the worker spin:
//! - the ClientHello may be at most [`CLIENT_HELLO_MAX`] bytes;
//! - incoming ciphertext at most [`INCOMING_MAX`]: the largest handshake message rustls takes
//!   (64 KiB) being joined across records, plus a record behind it; a record can never be
//!   larger than [`MAX_RECORD`], so a buffer that reaches the bound without rustls taking
//!   anything from it holds something that can never complete, and is an error;
//! - outgoing ciphertext at most [`OUTGOING_MAX`] (what is queued is sent once it passes
//!   [`FLUSH_AT`], before more is encoded);
//! - decrypted bytes: rustls decrypts a record only when the previous one was taken out of
//!   it, and the read path stops at the first; writing and closing may decrypt records that
//!   are already buffered (a pipelined request), at most what [`INCOMING_MAX`] held.
//!
//! Every step either returns, sends, reads once, or takes something out of rustls (a record,
//! a queued message), so no loop runs without progress.
//!
//! Cancellation: callers wrap reads and writes in timeouts, which drop these futures mid-way.
//! Bytes a cancelled read or write had in flight are lost, so a connection whose TLS
//! operation timed out must be closed (every caller does), but what rustls has not discarded
//! is never lost: a read that could be cancelled with bytes already buffered reads into a new
//! buffer (a copy of them) and swaps it in only when it completes, because rustls keeps
//! offsets into that buffer (handshake fragments) between calls.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use rustls::server::{Acceptor, ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

use crate::client_cert::TlsSession;
use crate::wire::io::{read_more, IoFail};
use crate::wire::tls::{
    fail, into_io, send, HandshakeError, CLIENT_HELLO_MAX, CLOSE_NOTIFY_WAIT,
    UNRECOGNIZED_NAME_ALERT,
};

/// The largest TLS record on the wire: 16 KiB of plaintext, up to 2 KiB of expansion, a 5-byte
/// header (RFC 5246 §6.2.3; TLS 1.3 allows less, RFC 8446 §5.2). rustls refuses larger ones.
pub const MAX_RECORD: usize = 16 * 1024 + 2048 + 5;
/// Most ciphertext buffered from the client: a handshake message of rustls's largest (64 KiB)
/// being joined from its records, and room for two records besides.
pub const INCOMING_MAX: usize = 0xffff + 2 * MAX_RECORD;
/// Plaintext encrypted into one send (four full records).
pub const WRITE_BATCH: usize = 64 * 1024;
/// Queued ciphertext is sent before more is encoded once it reaches this.
pub const FLUSH_AT: usize = 16 * 1024;
/// Most ciphertext queued to send: under [`FLUSH_AT`], plus one batch or one handshake record
/// (and the small messages rustls may put before it, such as a key update).
pub const OUTGOING_MAX: usize = FLUSH_AT + WRITE_BATCH + 2 * MAX_RECORD;

/// The server side of TLS on a downstream connection (handshake done).
pub struct ServerTls {
    io: TcpStream,
    conn: UnbufferedServerConnection,
    /// Ciphertext received and not yet discarded by rustls: a record still arriving, records
    /// not yet processed, handshake fragments being joined.
    incoming: Vec<u8>,
    /// Ciphertext to send: `outgoing[..out_used]`. The `Vec`'s length is how much of it is
    /// initialised (it only grows while the connection is busy, so encoding never zeroes the
    /// same bytes twice); it is let go of when idle.
    outgoing: Vec<u8>,
    out_used: usize,
    /// Decrypted bytes not yet taken: `plain[plain_at..]`.
    plain: Vec<u8>,
    plain_at: usize,
    /// The client closed TCP (with or without close_notify).
    eof: bool,
    /// The client sent close_notify (rustls reports it once).
    peer_closed: bool,
    /// rustls reported an error: the connection is unusable (its alert was sent).
    failed: bool,
    /// The server configuration the handshake chose.
    chosen: Arc<ServerConfig>,
    /// What the gateway made of the handshake (set after it).
    session: Option<Rc<TlsSession>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.out_used)
            .field("plain", &self.plain_pending())
            .finish()
    }
}

/// What one call into rustls came to.
enum Step {
    /// Something was taken out of rustls (a decrypted record into `plain`, an encoded message
    /// into `outgoing`, the client's close_notify): call again.
    Progress,
    /// What was encoded must be sent before going on.
    Transmit,
    /// Nothing more can happen without more bytes from the client.
    NeedInput,
    /// The write (its plaintext length) or close_notify asked for was encrypted into
    /// `outgoing`.
    Wrote(usize),
    /// Both sides have sent close_notify.
    Closed,
}

/// What the caller wants done once rustls is ready for application data.
#[derive(Clone, Copy)]
enum Want<'a> {
    Read,
    Write(&'a [u8]),
    Close,
}

/// Reads a ClientHello from `io`, picks the server configuration with `select` (given the
/// SNI name, if any; None refuses), and completes the handshake before `deadline`. On failure
/// the TCP stream comes back with the reason (alerts already sent), for the caller to close.
/// `initial`: handshake bytes already read from the socket (behind a PROXY header).
pub async fn accept(
    mut io: TcpStream,
    initial: &[u8],
    select: impl FnOnce(Option<&str>) -> Option<Arc<ServerConfig>>,
    deadline: Instant,
) -> Result<ServerTls, (HandshakeError, TcpStream)> {
    let mut incoming = Vec::with_capacity(4096.max(initial.len()));
    incoming.extend_from_slice(initial);
    let chosen = match hello(&mut io, &mut incoming, select, deadline).await {
        Ok(chosen) => chosen,
        Err(e) => return Err((e, io)),
    };
    let conn = match UnbufferedServerConnection::new(Arc::clone(&chosen)) {
        Ok(conn) => conn,
        Err(e) => return Err((HandshakeError::of(&e), io)),
    };
    let mut tls = ServerTls {
        io,
        conn,
        incoming,
        outgoing: Vec::new(),
        out_used: 0,
        plain: Vec::new(),
        plain_at: 0,
        eof: false,
        peer_closed: false,
        failed: false,
        chosen,
        session: None,
    };
    match tls.handshake(deadline).await {
        Ok(()) => Ok(tls),
        Err(e) => Err((e, tls.io)),
    }
}

/// Reads the ClientHello into `incoming` (all of it stays there, for the connection to
/// process again) and returns the configuration `select` picks for its SNI. An acceptor
/// parses it: it gets copies of the bytes.
async fn hello(
    io: &mut TcpStream,
    incoming: &mut Vec<u8>,
    select: impl FnOnce(Option<&str>) -> Option<Arc<ServerConfig>>,
    deadline: Instant,
) -> Result<Arc<ServerConfig>, HandshakeError> {
    let mut acceptor = Acceptor::default();
    // How much of `incoming` the acceptor has taken.
    let mut fed = 0;
    // Bytes already here (behind a PROXY header) are fed before anything is read.
    let mut read_first = incoming.is_empty();
    loop {
        if read_first {
            read_more(io, incoming, deadline).await.map_err(fail)?;
        }
        read_first = true;
        // A ClientHello is a few hundred bytes; a huge one is refused, not buffered.
        if incoming.len() > CLIENT_HELLO_MAX {
            return Err(HandshakeError::Protocol);
        }
        // Bytes the acceptor does not take now are offered again after the next read (which
        // the bound above ends).
        let mut rest = &incoming[fed..];
        while !rest.is_empty() {
            match acceptor.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                // Its buffer is full: a ClientHello larger than rustls takes.
                Err(_) => return Err(HandshakeError::Protocol),
            }
        }
        fed = incoming.len() - rest.len();
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                return match select(accepted.client_hello().server_name()) {
                    Some(config) => Ok(config),
                    None => {
                        let _ = send(io, UNRECOGNIZED_NAME_ALERT.to_vec(), deadline).await;
                        Err(HandshakeError::UnknownName)
                    }
                };
            }
            Ok(None) => {}
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                let _ = alert.write_all(&mut out);
                let _ = send(io, out, deadline).await;
                return Err(HandshakeError::of(&e));
            }
        }
    }
}

/// Calls `f` with the unused part of `out` (past `used`); when rustls says the room is too
/// small, grows `out` to what it asked (within [`OUTGOING_MAX`]) and calls again. Returns
/// the bytes written.
fn encode_into<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    used: &mut usize,
    required: impl Fn(&E) -> Option<InsufficientSizeError>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<usize, rustls::Error> {
    let n = match f(&mut out[*used..]) {
        Ok(n) => n,
        Err(e) => {
            let Some(InsufficientSizeError { required_size }) = required(&e) else {
                return Err(rustls::Error::General(e.to_string()));
            };
            let need = *used + required_size;
            if need > OUTGOING_MAX {
                return Err(rustls::Error::General("TLS output over its bound".into()));
            }
            if need > out.len() {
                out.resize(need, 0);
            }
            f(&mut out[*used..]).map_err(|e| rustls::Error::General(e.to_string()))?
        }
    };
    *used += n;
    Ok(n)
}

fn encode_room(e: &EncodeError) -> Option<InsufficientSizeError> {
    match e {
        EncodeError::InsufficientSize(s) => Some(*s),
        _ => None,
    }
}

fn encrypt_room(e: &EncryptError) -> Option<InsufficientSizeError> {
    match e {
        EncryptError::InsufficientSize(s) => Some(*s),
        _ => None,
    }
}

impl ServerTls {
    /// The TCP stream underneath (readiness waits, the descriptor).
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// Decrypted bytes waiting to be taken.
    fn plain_pending(&self) -> usize {
        self.plain.len() - self.plain_at
    }

    /// One call into rustls with what is buffered, and what its answer asks for done (nothing
    /// here waits): decrypted records moved into `plain`, handshake messages encoded into
    /// `outgoing`, `want`'s write or close_notify encrypted there once rustls allows
    /// application data. The bytes rustls is done with leave `incoming` before this returns.
    fn advance(&mut self, want: Want<'_>) -> Result<Step, rustls::Error> {
        let UnbufferedStatus { mut discard, state } =
            self.conn.process_tls_records(&mut self.incoming[..]);
        let step = match state {
            Err(e) => Err(e),
            Ok(ConnectionState::ReadTraffic(mut records)) => {
                if self.plain_at > 0 {
                    self.plain.drain(..self.plain_at);
                    self.plain_at = 0;
                }
                let mut step = Ok(Step::Progress);
                while let Some(record) = records.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            self.plain.extend_from_slice(record.payload);
                        }
                        Err(e) => {
                            step = Err(e);
                            break;
                        }
                    }
                }
                step
            }
            Ok(ConnectionState::EncodeTlsData(mut message)) => {
                encode_into(&mut self.outgoing, &mut self.out_used, encode_room, |out| {
                    message.encode(out)
                })
                .map(|_| Step::Progress)
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                // Sent by the caller before the next call (rustls only needs to know it will).
                transmit.done();
                Ok(Step::Transmit)
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Step::NeedInput),
            Ok(ConnectionState::PeerClosed) => {
                self.peer_closed = true;
                Ok(Step::Progress)
            }
            Ok(ConnectionState::Closed) => {
                self.peer_closed = true;
                Ok(Step::Closed)
            }
            Ok(ConnectionState::WriteTraffic(mut traffic)) => match want {
                Want::Read => Ok(Step::NeedInput),
                Want::Write(src) => encode_into(
                    &mut self.outgoing,
                    &mut self.out_used,
                    encrypt_room,
                    |out| traffic.encrypt(src, out),
                )
                .map(|_| Step::Wrote(src.len())),
                Want::Close => encode_into(
                    &mut self.outgoing,
                    &mut self.out_used,
                    encrypt_room,
                    |out| traffic.queue_close_notify(out),
                )
                .map(Step::Wrote),
            },
            // Early data is never accepted (`max_early_data_size` is 0); any other state is
            // one this rustls version does not have.
            Ok(other) => Err(rustls::Error::General(format!(
                "unexpected TLS state {other:?}"
            ))),
        };
        self.incoming.drain(..discard.min(self.incoming.len()));
        step
    }

    /// Reads once from the socket, appending to `incoming` (at most [`MAX_RECORD`] bytes, and
    /// never past [`INCOMING_MAX`]).
    async fn fill(&mut self, deadline: Instant) -> Result<usize, IoFail> {
        let held = self.incoming.len();
        if held >= INCOMING_MAX {
            // Nothing rustls could take, and no room for more: it can never complete.
            return Err(IoFail::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS input over its bound",
            )));
        }
        let room = (INCOMING_MAX - held).min(MAX_RECORD);
        // An empty buffer is read into directly: a cancelled read loses nothing. Bytes already
        // held go into a new buffer that replaces it only when the read completes: rustls
        // keeps offsets into them (see the module's notes on cancellation).
        let mut buf = if held == 0 {
            std::mem::take(&mut self.incoming)
        } else {
            let mut buf = Vec::with_capacity(held + room);
            buf.extend_from_slice(&self.incoming);
            buf
        };
        if buf.capacity() - buf.len() < room {
            buf.reserve_exact(room);
        }
        let read = read_more(&mut self.io, &mut buf, deadline).await;
        // On a timeout `read_more` leaves `buf` empty (the kernel may own it): `incoming` is
        // then either what it was, or was empty already.
        if !matches!(read, Err(IoFail::Timeout)) {
            self.incoming = buf;
        }
        read
    }

    /// Sends what is queued in `outgoing`. If the deadline cancels the send, the buffer goes
    /// with it (the kernel may still own it) and the connection must be closed.
    async fn flush(&mut self, deadline: Instant) -> Result<(), IoFail> {
        if self.out_used == 0 {
            return Ok(());
        }
        let used = std::mem::take(&mut self.out_used);
        let buf = std::mem::take(&mut self.outgoing);
        let sent =
            monoio::time::timeout_at(deadline.into(), self.io.write_all(buf.slice(..used))).await;
        match sent {
            Err(_) => Err(IoFail::Timeout),
            Ok((res, buf)) => {
                self.outgoing = buf.into_inner();
                res.map(|_| ()).map_err(IoFail::Io)
            }
        }
    }

    /// After rustls reported an error: the alert it queued for it is encoded, and the
    /// connection is marked unusable. rustls hands queued messages out first on the next
    /// calls; a call with none queued would process the offending input again (and queue a
    /// second fatal alert), so calls stop as soon as nothing is queued.
    fn queue_alert(&mut self) {
        self.failed = true;
        while self.conn.wants_write() {
            if !matches!(self.advance(Want::Read), Ok(Step::Progress)) {
                break;
            }
        }
    }

    /// Sends the alert for `e` (within `deadline`) and returns the error for the reader or
    /// writer.
    async fn fail(&mut self, e: rustls::Error, deadline: Instant) -> io::Error {
        self.queue_alert();
        let _ = self.flush(deadline).await;
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    fn usable(&self) -> io::Result<()> {
        match self.failed {
            true => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the TLS connection failed",
            )),
            false => Ok(()),
        }
    }

    /// Runs the handshake to its end: our flights out, the client's in; the ClientHello and
    /// whatever arrived behind it are in `incoming` already.
    async fn handshake(&mut self, deadline: Instant) -> Result<(), HandshakeError> {
        loop {
            // Done, with a request already here (or the client's close): it waits in `plain`.
            if !self.conn.is_handshaking() && (self.plain_pending() > 0 || self.peer_closed) {
                break;
            }
            if self.out_used >= FLUSH_AT {
                self.flush(deadline).await.map_err(fail)?;
            }
            match self.advance(Want::Read) {
                Ok(Step::Progress | Step::Wrote(_)) => {}
                Ok(Step::Transmit) => self.flush(deadline).await.map_err(fail)?,
                Ok(Step::Closed) => return Err(HandshakeError::Protocol),
                Ok(Step::NeedInput) => {
                    if !self.conn.is_handshaking() {
                        break;
                    }
                    self.flush(deadline).await.map_err(fail)?;
                    match self.fill(deadline).await {
                        Ok(_) => {}
                        // Over the input bound: a handshake message that cannot complete.
                        Err(IoFail::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                            return Err(HandshakeError::Protocol)
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                Err(e) => {
                    self.queue_alert();
                    let _ = self.flush(deadline).await;
                    return Err(HandshakeError::of(&e));
                }
            }
        }
        // The handshake's last flight (TLS 1.3 session tickets, TLS 1.2 Finished).
        self.flush(deadline).await.map_err(fail)
    }

    /// True when decrypted or undecrypted bytes are waiting here, or the client's close: a
    /// readiness wait on the socket would not see them.
    pub fn has_buffered_input(&self) -> bool {
        self.plain_pending() > 0 || !self.incoming.is_empty() || self.peer_closed || self.eof
    }

    /// Lets go of every buffer that is empty: an idle connection holds none (the next read
    /// or write allocates again, once per busy period).
    pub fn shed_idle_buffers(&mut self) {
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
        if self.out_used == 0 {
            self.outgoing = Vec::new();
        }
        if self.plain_pending() == 0 {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
    }

    /// Decrypted bytes ready now (`Some(n)`), after at most one read from the socket (which
    /// waits for bytes until `deadline`; `Some(0)`: a record is still incomplete), or None at
    /// the end of the stream (close_notify, or TCP closed without it: HTTP frames its
    /// requests). A tunnel calls it when the socket is readable, so one direction never waits
    /// on a partial record while the other has bytes to move.
    pub async fn read_available(&mut self, deadline: Instant) -> io::Result<Option<usize>> {
        self.usable()?;
        let mut read_once = false;
        loop {
            let ready = self.plain_pending();
            if ready > 0 {
                return Ok(Some(ready));
            }
            if self.peer_closed {
                return Ok(None);
            }
            if self.out_used >= FLUSH_AT {
                self.flush(deadline).await.map_err(into_io)?;
            }
            match self.advance(Want::Read) {
                Ok(Step::Progress | Step::Wrote(_)) => {}
                Ok(Step::Transmit) => self.flush(deadline).await.map_err(into_io)?,
                Ok(Step::Closed) => return Ok(None),
                Ok(Step::NeedInput) => {
                    // Alerts or key updates rustls wants sent go out before waiting for more.
                    self.flush(deadline).await.map_err(into_io)?;
                    if self.eof {
                        return Ok(None);
                    }
                    if read_once {
                        return Ok(Some(0));
                    }
                    read_once = true;
                    match self.fill(deadline).await {
                        Ok(_) => {}
                        Err(IoFail::Eof) => self.eof = true,
                        Err(e) => return Err(into_io(e)),
                    }
                }
                Err(e) => return Err(self.fail(e, deadline).await),
            }
        }
    }

    /// Copies decrypted bytes that are ready into `dst` (at most what [`wait_plain`] said).
    ///
    /// [`wait_plain`]: crate::wire::stream::TlsIo::wait_plain
    pub fn take_plain(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        let ready = &self.plain[self.plain_at..];
        let n = ready.len().min(dst.len());
        dst[..n].copy_from_slice(&ready[..n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain.clear();
            self.plain_at = 0;
        }
        Ok(n)
    }

    /// Encrypts all of `src` and writes it before `deadline`.
    pub async fn write_plain(&mut self, src: &[u8], deadline: Instant) -> io::Result<()> {
        self.usable()?;
        let mut rest = src;
        while !rest.is_empty() {
            if self.out_used >= FLUSH_AT {
                self.flush(deadline).await.map_err(into_io)?;
            }
            let batch = &rest[..rest.len().min(WRITE_BATCH)];
            match self.advance(Want::Write(batch)) {
                Ok(Step::Wrote(n)) => {
                    rest = &rest[n..];
                    self.flush(deadline).await.map_err(into_io)?;
                }
                Ok(Step::Progress) => {}
                Ok(Step::Transmit) => self.flush(deadline).await.map_err(into_io)?,
                // Both sides closed (or, impossible after the handshake, still in it).
                Ok(Step::Closed | Step::NeedInput) => return Err(io::ErrorKind::BrokenPipe.into()),
                Err(e) => return Err(self.fail(e, deadline).await),
            }
        }
        Ok(())
    }

    /// Sends close_notify (within [`CLOSE_NOTIFY_WAIT`] at most: a peer that does not read
    /// must not hold the connection open) and shuts the write side.
    pub async fn close(&mut self, deadline: Instant) -> io::Result<()> {
        use monoio::io::AsyncWriteRent;
        let deadline = deadline.min(Instant::now() + CLOSE_NOTIFY_WAIT);
        if !self.failed {
            loop {
                if self.out_used >= FLUSH_AT && self.flush(deadline).await.is_err() {
                    break;
                }
                match self.advance(Want::Close) {
                    Ok(Step::Progress | Step::Transmit) => {}
                    Ok(Step::Wrote(_) | Step::Closed | Step::NeedInput) => break,
                    Err(_) => {
                        self.queue_alert();
                        break;
                    }
                }
            }
            let _ = self.flush(deadline).await;
        }
        self.io.shutdown().await
    }

    /// The server configuration the handshake chose (by SNI, or the default).
    pub fn chosen_config(&self) -> &Arc<ServerConfig> {
        &self.chosen
    }

    /// Records what the gateway made of the handshake.
    pub fn set_session(&mut self, session: TlsSession) {
        self.session = Some(Rc::new(session));
    }

    /// What the gateway made of the handshake, once recorded (shared: a request holds it
    /// while the stream is lent to its integration).
    pub fn session(&self) -> Option<&Rc<TlsSession>> {
        self.session.as_ref()
    }

    /// The negotiated version (`TLSv1.2`, `TLSv1.3`) and cipher suite name.
    pub fn negotiated(&self) -> (&'static str, &'static str) {
        let version = match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "",
        };
        let cipher = self
            .conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("");
        (version, cipher)
    }

    /// The client's certificate (the leaf, DER) when it presented one that verified.
    pub fn peer_leaf(&self) -> Option<&[u8]> {
        self.conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.as_ref())
    }

    /// True when the handshake resumed an earlier session (a ticket or a cached session id)
    /// instead of a full one.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }
}
