//! A raw HTTP/1.1 client over a std `TcpStream`, for byte-exact requests.
//!
//! [`Client::send`] writes bytes as given; [`Client::read_response`] parses one response
//! (status line, headers, body by Content-Length, chunked, or until close) from a buffer that
//! keeps any bytes past it for the next call (pipelining). Reads have a timeout, so a missing
//! response fails the test instead of hanging it. [`Client::wait_closed`] tells whether the
//! server closed the connection within a bound.
//!
//! [`Client`] is generic over its byte stream ([`Transport`]): plain TCP by default, a TLS
//! stream for [`crate::tls`].

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Default bound on any single wait for response bytes.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// Decoded body.
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body parsed as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Does the response ask to close the connection?
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// How a wait for the peer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// End of stream (or reset) after these bytes.
    Yes(Vec<u8>),
    /// Still open at the deadline; bytes received meanwhile.
    No(Vec<u8>),
}

/// A byte stream a [`Client`] talks over: TCP, or TLS over TCP.
pub trait Transport: Read + Write {
    /// Sets the read timeout of the socket underneath.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// One client connection (over plain TCP unless `S` says otherwise).
pub struct Client<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    eof: bool,
}

impl Client<TcpStream> {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// Connects to `addr`, returning the error.
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        Client::over(TcpStream::connect_timeout(&addr, Duration::from_secs(5))?)
    }

    /// A client over a connected stream, with the suite's socket options and timeouts.
    fn over(stream: TcpStream) -> std::io::Result<Client> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        Ok(Client::over_transport(stream))
    }

    /// Connects to `addr` from the local address `source` (e.g. `127.0.0.3`), so the gateway
    /// sees another client.
    pub fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let connect = || -> std::io::Result<Client> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                None,
            )?;
            socket.bind(&SocketAddr::new(source, 0).into())?;
            socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
            Client::over(socket.into())
        };
        connect().unwrap_or_else(|e| panic!("connect {addr} from {source}: {e}"))
    }

    /// The underlying stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl<S: Transport> Client<S> {
    /// A client over `stream` as it is (its timeouts set by the caller).
    pub fn over_transport(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The underlying transport.
    pub fn transport(&self) -> &S {
        &self.stream
    }

    /// Writes `bytes`; panics on error.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Writes `bytes`, returning the error (the server may have closed).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> std::io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            // UnexpectedEof: a TLS peer closed TCP without a close_notify.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) =>
            {
                self.eof = true;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads one response; panics (with what was read) on timeout, close or parse error.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response()
            .unwrap_or_else(|e| panic!("read_response: {e}"))
    }

    /// Reads one response, or explains why not (timeout, close before a response, garbage).
    pub fn try_read_response(&mut self) -> Result<Response, String> {
        self.try_read_response_to(None)
    }

    /// Reads one response to a request with `method` (HEAD responses have no body).
    pub fn try_read_response_to(&mut self, method: Option<&str>) -> Result<Response, String> {
        let head_end = self.read_until_head()?;
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let (n, v) = l
                .split_once(':')
                .ok_or_else(|| format!("bad header line {l:?}"))?;
            headers.push((n.to_string(), v.trim().to_string()));
        }
        self.buf.drain(..head_end + 4);
        let mut resp = Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) || status == 204 || status == 304 || method == Some("HEAD")
        {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = self.read_chunked_body()?;
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| format!("bad content-length {cl:?}"))?;
            while self.buf.len() < n {
                if self.fill().map_err(|e| format!("reading body: {e}"))? == 0 {
                    return Err(format!("closed after {} of {n} body bytes", self.buf.len()));
                }
            }
            resp.body = self.buf.drain(..n).collect();
        } else {
            while self.fill().map_err(|e| format!("reading body: {e}"))? > 0 {}
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    fn read_until_head(&mut self) -> Result<usize, String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Ok(i);
            }
            match self.fill() {
                Ok(0) => {
                    return Err(format!(
                        "connection closed before a response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "no response head ({e}); got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        }
    }

    fn read_chunked_body(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = self.wait_for_bytes(b"\r\n")?;
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailer section up to the empty line.
                loop {
                    let end = self.wait_for_bytes(b"\r\n")?;
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill().map_err(|e| format!("chunk: {e}"))? == 0 {
                    return Err("closed inside a chunk".to_string());
                }
            }
            body.extend(self.buf.drain(..size));
            if &self.buf[..2] != b"\r\n" {
                return Err("chunk data not followed by CRLF".to_string());
            }
            self.buf.drain(..2);
        }
    }

    fn wait_for_bytes(&mut self, needle: &[u8]) -> Result<usize, String> {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                return Ok(i);
            }
            if self.fill().map_err(|e| format!("chunked body: {e}"))? == 0 {
                return Err("closed inside a chunked body".to_string());
            }
        }
    }

    /// Waits up to `deadline` for the server to close; returns what arrived meanwhile
    /// (including bytes already buffered).
    pub fn wait_closed(&mut self, deadline: Duration) -> Closed {
        let end = Instant::now() + deadline;
        loop {
            let now = Instant::now();
            if now >= end {
                return Closed::No(std::mem::take(&mut self.buf));
            }
            let _ = Transport::set_read_timeout(
                &self.stream,
                Some((end - now).max(Duration::from_millis(1))),
            );
            match self.fill() {
                Ok(0) => {
                    let _ = Transport::set_read_timeout(&self.stream, Some(READ_TIMEOUT));
                    return Closed::Yes(std::mem::take(&mut self.buf));
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Closed::Yes(std::mem::take(&mut self.buf)),
            }
        }
    }

    /// Asserts the server closes within `deadline`; returns the bytes that came before.
    pub fn assert_closed(&mut self, deadline: Duration) -> Vec<u8> {
        match self.wait_closed(deadline) {
            Closed::Yes(b) => b,
            Closed::No(b) => panic!(
                "connection still open after {deadline:?}; received {:?}",
                String::from_utf8_lossy(&b)
            ),
        }
    }

    /// Checks the server has not closed and sent nothing within `window` (a short bound).
    pub fn is_open_and_quiet(&mut self, window: Duration) -> bool {
        matches!(self.wait_closed(window), Closed::No(b) if b.is_empty())
    }

    /// Bytes buffered but not yet consumed by a response.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A `GET path` with `Host: localhost`, keep-alive.
pub fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// One request on a fresh connection; returns the response.
pub fn request(addr: SocketAddr, raw: impl AsRef<[u8]>) -> Response {
    let mut c = Client::connect(addr);
    c.send(raw);
    c.read_response()
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, get_request(path))
}

/// `GET path` with a `Host` on a fresh connection.
pub fn get_host(addr: SocketAddr, host: &str, path: &str) -> Response {
    request(addr, format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}
