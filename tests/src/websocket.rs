//! An in-process WebSocket echo upstream and client helpers (tungstenite, blocking, std
//! threads), for testing upgrade pass-through behind `http` routes.
//!
//! The server records each handshake's request target and headers, then echoes every text and
//! binary message until the client closes; it also answers the message `"bye"` by closing
//! the connection itself, so tests can check both close directions. [`wait_end`] tells a
//! connection the peer closed from one that is merely quiet.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tungstenite::error::{Error, ProtocolError};
use tungstenite::handshake::server::{Request, Response};
use tungstenite::{Message, WebSocket};

use crate::client::Transport;

/// Each handshake's target and headers (name lowercase, value), in arrival order.
pub type Handshakes = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A running WebSocket echo server on `127.0.0.1:0`.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    handshakes: Handshakes,
}

impl EchoServer {
    /// Starts the server; it serves until the test process exits.
    pub fn start() -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind websocket upstream");
        let addr = listener.local_addr().expect("local addr");
        let handshakes: Handshakes = Arc::default();
        let seen = Arc::clone(&handshakes);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(stream, &seen));
            }
        });
        EchoServer { addr, handshakes }
    }

    /// `http://127.0.0.1:PORT` for an integration URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Handshakes received so far.
    pub fn handshakes(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.handshakes.lock().expect("handshakes lock").clone()
    }
}

fn serve(stream: TcpStream, seen: &Handshakes) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    // The callback's error type is tungstenite's (large) HTTP error response; it never fails.
    #[allow(clippy::result_large_err)]
    let record = |req: &Request, resp: Response| {
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        seen.lock()
            .expect("handshakes lock")
            .push((req.uri().to_string(), headers));
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, record) else {
        return;
    };
    #[allow(clippy::collapsible_match)] // `msg` moves into `send`: no guard can hold it.
    while let Ok(msg) = ws.read() {
        match msg {
            Message::Text(t) if t.as_str() == "bye" => {
                let _ = ws.close(None);
            }
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(msg).is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Opens a WebSocket to `path` on the gateway at `addr` (Host `host`).
pub fn connect(addr: SocketAddr, host: &str, path: &str) -> WebSocket<TcpStream> {
    try_connect(addr, host, path).expect("websocket handshake through the gateway")
}

/// Like [`connect`], with the handshake error as text.
pub fn try_connect(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<WebSocket<TcpStream>, String> {
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    handshake_over(stream, host, path)
}

/// The WebSocket handshake to `path` (Host `host`) over an open `stream` (TLS, for one).
pub fn handshake_over<S: Read + Write>(
    stream: S,
    host: &str,
    path: &str,
) -> Result<WebSocket<S>, String> {
    let url = format!("ws://{host}{path}");
    tungstenite::client(url.as_str(), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// Sends a text message and returns the text of the next message received.
pub fn round_trip<S: Read + Write>(ws: &mut WebSocket<S>, text: &str) -> String {
    ws.send(Message::text(text)).expect("send message");
    loop {
        match ws.read().expect("read message") {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads until the peer ends the connection, for at most `deadline`. `Ok` when the stream
/// ends: after the close handshake, at an end of stream without one, or at a connection reset.
/// `Err` when it is still open at the deadline (the read timed out), when a data message
/// arrives instead, or on any other failure. Close, ping and pong frames are skipped (the close
/// reply and pongs are sent on the way).
pub fn wait_end<S: Transport>(ws: &mut WebSocket<S>, deadline: Duration) -> Result<(), String> {
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("the connection is still open after {deadline:?}"));
        }
        ws.get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        match ws.read() {
            Ok(Message::Close(_) | Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => return Err(format!("expected the connection to end, got {other:?}")),
            // After the close handshake (a reset then counts as the end too, see tungstenite's
            // `check_connection_reset`), or an end of stream without a close frame.
            Err(Error::ConnectionClosed)
            | Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => return Ok(()),
            Err(Error::Io(e))
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                        | ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(())
            }
            Err(Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return Err(format!(
                    "the connection is still open after {deadline:?} (read: {e})"
                ))
            }
            Err(e) => return Err(format!("the connection failed instead of ending: {e}")),
        }
    }
}
