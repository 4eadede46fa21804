//! The `http` integration: forward a request to an upstream over a pooled keep-alive
//! connection and relay the response.
//!
//! Slow clients must not pin upstream connections, so a request body is read before an
//! upstream connection is taken, up to `body_buffer_bytes` (all of it for `buffered`
//! routes). Only a client that has already sent that much streams the rest through an open
//! upstream connection. Likewise a response that arrives whole is handed back to the pool
//! before it is written to a (possibly slow) client; larger ones stream.
//!
//! A reused pooled connection may have been closed by the upstream meanwhile: when writing to
//! it fails, or it closes before answering, an idempotent request whose body is fully buffered
//! is retried once on a fresh connection.

use std::time::{Duration, Instant};

use monoio::buf::IoBuf as _;
use monoio::io::AsyncWriteRentExt;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use monoio::net::TcpStream;
use tollgate_backends::conn_pool::{HostPool, Pooled};
use tollgate_config::plan::{HttpTarget, UpstreamSettings};
use tollgate_config::responses::{ResponseCatalogue, ResponseType};

use crate::conn::{After, Conn, Facts};
use crate::head_out::{connection_header, DownstreamHead, UpstreamHead};
use crate::tunnel::TunnelLimits;
use crate::worker::WorkerPlan;
use tollgate_backends::wire::body::BodyReader;
use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::http1::{
    parse_response, BodyFraming, ChunkedDecoder, HeadLimits, Method, ResponseFraming, ResponseHead,
    Version,
};
use tollgate_backends::wire::io::{read_more, write_all, IoFail};
use tollgate_backends::wire::respond::content_length;

/// Pooled connections idle at least this long are checked before reuse.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Upstream response heads may be larger than client request heads.
const UPSTREAM_HEAD_LIMITS: HeadLimits = HeadLimits {
    header_bytes_max: 64 * 1024,
    url_bytes_max: 64 * 1024,
    headers_count_max: 128,
};

/// Why the exchange with the upstream failed before a response head was relayed.
enum Fail {
    /// Answer the client with this gateway response.
    Answer(ResponseType, Option<&'static str>),
    /// The client side failed (its status is already sent, or cannot be).
    Client(u16),
}

/// Proxies one request; returns the status relayed, what becomes of the client connection,
/// and the client buffer (holding pipelined bytes, if any).
pub async fn forward(
    conn: &mut Conn,
    wp: &WorkerPlan,
    index: usize,
    target: &HttpTarget,
    facts: &Facts,
    mut buf: IoBuf,
    catalogue: &ResponseCatalogue,
) -> (u16, After, IoBuf) {
    let worker = Rc::clone(&conn.worker);
    let plan = &wp.plan;
    let mut req = worker.buffers.take_plain();
    let upgrade = wants_upgrade(facts, &buf, target, worker.draining.get());
    UpstreamHead {
        buf: &buf.data,
        head: &facts.head,
        headers: &buf.headers,
        captures: &buf.captures,
        route: &plan.routes[index],
        target,
        upstream: &plan.upstreams[target.upstream],
        peer: conn.peer,
        local_port: conn.local_port,
        id_header: &plan.settings.request_id_header,
        request_id: facts.id.as_bytes(),
        upgrade,
    }
    .write(&mut req);
    let mut ubuf = worker.buffers.take();
    let result = exchange(
        conn, wp, target, facts, &mut buf, req, &mut ubuf, catalogue, upgrade,
    )
    .await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(Fail::Answer(kind, detail)) => {
            let status = conn.answer(wp, catalogue, kind, detail, facts, true).await;
            (status, After::Close)
        }
        Err(Fail::Client(status)) => (status, After::Close),
    };
    worker.buffers.give(ubuf);
    (outcome.0, outcome.1, buf)
}

/// True when the request is a WebSocket handshake the gateway passes on: HTTP/1.1 without a
/// body, `Connection: upgrade`, `Upgrade: websocket` (no other protocol: an `h2c` upgrade would
/// let a client speak to the upstream past routing), `Sec-WebSocket-Key` and
/// `Sec-WebSocket-Version`; not while draining, and not when the integration removes `upgrade`.
fn wants_upgrade(facts: &Facts, buf: &IoBuf, target: &HttpTarget, draining: bool) -> bool {
    if !facts.head.upgrade
        || facts.head.version != Version::Http11
        || facts.head.framing != BodyFraming::None
        || draining
        || target
            .request_remove
            .iter()
            .any(|r| r.eq_ignore_ascii_case("upgrade"))
    {
        return false;
    }
    let (mut websocket, mut key, mut version) = (false, false, false);
    for h in &buf.headers {
        let name = h.name.get(&buf.data);
        let value = h.value.get(&buf.data);
        if name.eq_ignore_ascii_case(b"upgrade") {
            if !value.trim_ascii().eq_ignore_ascii_case(b"websocket") {
                return false;
            }
            websocket = true;
        }
        key |= name.eq_ignore_ascii_case(b"sec-websocket-key");
        version |= name.eq_ignore_ascii_case(b"sec-websocket-version");
    }
    websocket && key && version
}

/// True when a `101` response switches to WebSocket, the only upgrade passed on.
fn switches_to_websocket(ubuf: &IoBuf) -> bool {
    ubuf.headers.iter().any(|h| {
        h.name.get(&ubuf.data).eq_ignore_ascii_case(b"upgrade")
            && h.value
                .get(&ubuf.data)
                .trim_ascii()
                .eq_ignore_ascii_case(b"websocket")
    })
}

/// The request body as far as it was read before contacting the upstream.
enum Upload {
    /// Whole request (head and body) is in the request buffer.
    Complete,
    /// The body continues on the client connection; `chunked` re-frames it.
    Streaming { reader: BodyReader, chunked: bool },
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    conn: &mut Conn,
    wp: &WorkerPlan,
    target: &HttpTarget,
    facts: &Facts,
    buf: &mut IoBuf,
    req: Vec<u8>,
    ubuf: &mut IoBuf,
    catalogue: &ResponseCatalogue,
    upgrade: bool,
) -> Result<(u16, After), Fail> {
    // `request_timeout_ms` bounds everything up to the upstream's response head; the body that
    // follows is bounded per read and per write instead, so long downloads are not cut off.
    let deadline = facts.started + Duration::from_millis(wp.plan.limits.request_timeout_ms);
    let sent = send(conn, wp, target, facts, buf, req, ubuf, catalogue, upgrade);
    let (upstream, head, req) = match monoio::time::timeout_at(deadline.into(), sent).await {
        Ok(sent) => sent?,
        Err(_) => return Err(Fail::Answer(ResponseType::IntegrationTimeout, None)),
    };
    let status = head.status;
    facts.outcome.integration_status.set(Some(status));
    if status == 101 {
        return Ok((
            status,
            tunnel(conn, wp, target, facts, buf, upstream, head, ubuf, req).await,
        ));
    }
    let timeout = Duration::from_millis(target.timeout_ms);
    let pool = &wp.pools[target.upstream];
    let after = relay(
        conn, wp, target, facts, pool, upstream, head, ubuf, req, timeout,
    )
    .await;
    Ok((status, after))
}

/// Sends the request (reading its body as it goes) and reads the upstream's response head.
/// Returns the upstream connection, the head (its bytes in `ubuf`) and the emptied request
/// buffer.
#[allow(clippy::too_many_arguments)]
async fn send(
    conn: &mut Conn,
    wp: &WorkerPlan,
    target: &HttpTarget,
    facts: &Facts,
    buf: &mut IoBuf,
    mut req: Vec<u8>,
    ubuf: &mut IoBuf,
    catalogue: &ResponseCatalogue,
    upgrade: bool,
) -> Result<(Pooled, ResponseHead, Vec<u8>), Fail> {
    let plan = &wp.plan;
    let pool = &wp.pools[target.upstream];
    let mut upload = match read_upload(conn, wp, target, facts, buf, &mut req, catalogue).await {
        Ok(u) => u,
        Err(e) => {
            conn.worker.buffers.give_plain(req);
            return Err(e);
        }
    };
    let retryable = matches!(upload, Upload::Complete) && facts.head.method.is_idempotent();
    let integration_started = Instant::now();
    let timeout = Duration::from_millis(target.timeout_ms);
    let mut attempt = 0;
    let (upstream, head) = loop {
        let (mut up, reused) = acquire(pool, &plan.upstream).await?;
        let (res, r) = write_all(&mut up.stream, req, timeout).await;
        req = r;
        match res {
            Ok(()) => {}
            // A reused connection the upstream closed meanwhile. (Not after a timeout: the
            // cancelled write may have kept the request buffer.)
            Err(IoFail::Io(_) | IoFail::Eof) if reused && retryable && attempt == 0 => {
                attempt += 1;
                continue;
            }
            Err(_) => {
                conn.worker.buffers.give_plain(req);
                return Err(Fail::Answer(ResponseType::IntegrationFailure, None));
            }
        }
        if let Upload::Streaming { reader, chunked } = &mut upload {
            let upstream = &mut up.stream;
            stream_upload(
                conn, wp, reader, *chunked, upstream, buf, &mut req, timeout, facts, catalogue,
            )
            .await?;
        }
        let deadline = Instant::now() + timeout;
        ubuf.data.clear();
        let head_request = facts.head.method == Method::Head;
        match read_response_head(&mut up.stream, ubuf, deadline, head_request, upgrade).await {
            Ok(head) => {
                let latency = integration_started.elapsed();
                facts.outcome.integration_latency.set(Some(latency));
                break (up, head);
            }
            Err(IoFail::Eof | IoFail::Io(_))
                if reused && retryable && attempt == 0 && ubuf.data.is_empty() =>
            {
                attempt += 1;
                continue;
            }
            Err(IoFail::Timeout) => {
                conn.worker.buffers.give_plain(req);
                return Err(Fail::Answer(ResponseType::IntegrationTimeout, None));
            }
            Err(_) => {
                conn.worker.buffers.give_plain(req);
                return Err(Fail::Answer(ResponseType::IntegrationFailure, None));
            }
        }
    };
    if let Upload::Streaming { reader, .. } = upload {
        reader.finish(&mut buf.data);
    }
    req.clear();
    Ok((upstream, head, req))
}

/// Reads the request body into `req` up to the buffering threshold and finishes the head's
/// framing. With a complete body the whole request is in `req`.
async fn read_upload(
    conn: &mut Conn,
    wp: &WorkerPlan,
    target: &HttpTarget,
    facts: &Facts,
    buf: &mut IoBuf,
    req: &mut Vec<u8>,
    catalogue: &ResponseCatalogue,
) -> Result<Upload, Fail> {
    let limits = &wp.plan.limits;
    let framing = facts.head.framing;
    if framing == BodyFraming::None {
        req.extend_from_slice(b"\r\n");
        let head_len = facts.head.head_len.min(buf.data.len());
        buf.data.drain(..head_len);
        return Ok(Upload::Complete);
    }
    if !conn.continue_if_expected(wp, facts, buf).await {
        return Err(Fail::Client(400));
    }
    let head_end = req.len();
    let threshold = if target.buffered {
        u64::MAX
    } else {
        limits.body_buffer_bytes as u64
    };
    let mut reader = BodyReader::new(framing, limits.body_bytes_max, facts.head.head_len);
    let timeout = Duration::from_millis(limits.body_read_timeout_ms);
    while reader.received() < threshold.max(1) {
        match reader.next(&mut conn.stream, &mut buf.data, timeout).await {
            Ok(Some(piece)) => req.extend_from_slice(&buf.data[piece]),
            Ok(None) => break,
            Err(e) => {
                let status = conn.body_failed(wp, catalogue, facts, e).await;
                return Err(Fail::Client(status));
            }
        }
    }
    let body_len = (req.len() - head_end) as u64;
    // The framing line goes between the head and the body already collected: append it and
    // rotate it into place (no second buffer).
    let complete = reader.is_done();
    let chunked = !complete && framing == BodyFraming::Chunked;
    if complete {
        content_length(req, body_len);
        req.extend_from_slice(b"\r\n");
    } else if let BodyFraming::Length(n) = framing {
        content_length(req, n);
        req.extend_from_slice(b"\r\n");
    } else {
        req.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        if body_len > 0 {
            req.extend_from_slice(format_hex(body_len).as_slice());
            req.extend_from_slice(b"\r\n");
        }
    }
    let inserted = req.len() - head_end - body_len as usize;
    req[head_end..].rotate_right(inserted);
    if chunked && body_len > 0 {
        req.extend_from_slice(b"\r\n");
    }
    if complete {
        reader.finish(&mut buf.data);
        Ok(Upload::Complete)
    } else {
        Ok(Upload::Streaming { reader, chunked })
    }
}

/// Lowercase hex digits of `n` (chunk sizes).
fn format_hex(n: u64) -> HexBuf {
    let mut out = HexBuf {
        bytes: [0; 16],
        len: 0,
    };
    let digits = if n == 0 {
        1
    } else {
        (64 - n.leading_zeros()).div_ceil(4) as usize
    };
    for i in 0..digits {
        let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
        out.bytes[i] = b"0123456789abcdef"[nibble as usize];
    }
    out.len = digits;
    out
}

struct HexBuf {
    bytes: [u8; 16],
    len: usize,
}

impl HexBuf {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends one chunk (`size CRLF data CRLF`).
fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format_hex(data.len() as u64).as_slice());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[allow(clippy::too_many_arguments)]
async fn stream_upload(
    conn: &mut Conn,
    wp: &WorkerPlan,
    reader: &mut BodyReader,
    chunked: bool,
    upstream: &mut TcpStream,
    buf: &mut IoBuf,
    req: &mut Vec<u8>,
    timeout: Duration,
    facts: &Facts,
    catalogue: &ResponseCatalogue,
) -> Result<(), Fail> {
    let body_timeout = Duration::from_millis(wp.plan.limits.body_read_timeout_ms);
    loop {
        let piece = match reader
            .next(&mut conn.stream, &mut buf.data, body_timeout)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                // The upstream has part of the body and will be dropped; the client hears why.
                let status = conn.body_failed(wp, catalogue, facts, e).await;
                return Err(Fail::Client(status));
            }
        };
        req.clear();
        let last = piece.is_none();
        match piece {
            Some(r) if chunked => push_chunk(req, &buf.data[r]),
            Some(r) => req.extend_from_slice(&buf.data[r]),
            None if chunked => req.extend_from_slice(b"0\r\n\r\n"),
            None => return Ok(()),
        }
        let (res, r) = write_all(upstream, std::mem::take(req), timeout).await;
        *req = r;
        if res.is_err() {
            return Err(Fail::Answer(ResponseType::IntegrationFailure, None));
        }
        if last {
            return Ok(());
        }
    }
}

/// Takes a pooled connection or opens one; `true` when reused.
async fn acquire(pool: &HostPool, settings: &UpstreamSettings) -> Result<(Pooled, bool), Fail> {
    let now = Instant::now();
    while let Some(conn) = pool.take(now) {
        // A connection that idled a while may have been closed by the upstream, and one whose
        // last response had no body may hold bytes a broken upstream sent anyway: such a
        // connection is checked (one non-blocking peek) and dropped unless quiet. Connections
        // reused at once skip the check to keep the hot path free of syscalls; for them a
        // closed connection is caught by the retry below and stray bytes make the next
        // response fail to parse (502).
        let stale = now.duration_since(conn.idle_since) >= CHECK_IDLE_AFTER;
        if !(stale || conn.check_before_reuse) || crate::sys::is_quiet(conn.stream.as_raw_fd()) {
            pool.reused.set(pool.reused.get() + 1);
            return Ok((conn, true));
        }
    }
    if pool.addrs.is_empty() {
        return Err(Fail::Answer(
            ResponseType::IntegrationFailure,
            Some("upstream name did not resolve"),
        ));
    }
    // A refused address (a name resolving to ::1 and 127.0.0.1 with the upstream on only one)
    // falls through to the next one; the connect timeout applies per address.
    let timeout = Duration::from_millis(settings.connect_timeout_ms);
    let mut failure = ResponseType::IntegrationFailure;
    for _ in 0..pool.addrs.len() {
        let Some(addr) = pool.next_addr() else { break };
        match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                pool.connected.set(pool.connected.get() + 1);
                return Ok((Pooled::new(stream, addr, Instant::now()), false));
            }
            Ok(Err(_)) => failure = ResponseType::IntegrationFailure,
            Err(_) => failure = ResponseType::IntegrationTimeout,
        }
        pool.connect_failures.set(pool.connect_failures.get() + 1);
    }
    Err(Fail::Answer(failure, None))
}

/// Reads until a final (non-1xx) response head parses, or a `101` to a request that asked for
/// an upgrade.
async fn read_response_head(
    stream: &mut TcpStream,
    ubuf: &mut IoBuf,
    deadline: Instant,
    head_request: bool,
    upgrade: bool,
) -> Result<ResponseHead, IoFail> {
    let mut scanned = 0;
    loop {
        // A head arriving in many small reads is parsed once it may be complete, not per read.
        let limits = &UPSTREAM_HEAD_LIMITS;
        let parsed =
            if tollgate_backends::wire::http1::head_may_be_complete(&ubuf.data, scanned, limits) {
                parse_response(&ubuf.data, limits, &mut ubuf.headers, head_request)
            } else {
                Ok(None)
            };
        match parsed {
            Ok(Some(head)) if head.status == 101 && upgrade && switches_to_websocket(ubuf) => {
                return Ok(head)
            }
            Ok(Some(head)) if head.status == 101 => {
                // No upgrade was asked for (its headers were not forwarded): the bytes that
                // follow are not HTTP, so the exchange cannot continue.
                return Err(IoFail::Io(std::io::Error::other(
                    "unsolicited 101 from upstream",
                )));
            }
            Ok(Some(head)) if (100..200).contains(&head.status) => {
                // Interim responses (100 Continue, 103 Early Hints) are not relayed.
                ubuf.data.drain(..head.head_len);
                scanned = 0;
                continue;
            }
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(_) => {
                return Err(IoFail::Io(std::io::Error::other(
                    "malformed upstream response",
                )))
            }
        }
        scanned = ubuf.data.len();
        read_more(stream, &mut ubuf.data, deadline).await?;
    }
}

impl From<IoFail> for Fail {
    fn from(_: IoFail) -> Self {
        Fail::Answer(ResponseType::IntegrationFailure, None)
    }
}

/// How the response body goes to the client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Down {
    None,
    Length,
    Chunked,
    Close,
}

/// Relays the response head and body; returns what becomes of the client connection.
#[allow(clippy::too_many_arguments)]
async fn relay(
    conn: &mut Conn,
    wp: &WorkerPlan,
    target: &HttpTarget,
    facts: &Facts,
    pool: &HostPool,
    mut upstream: Pooled,
    head: ResponseHead,
    ubuf: &mut IoBuf,
    mut out: Vec<u8>,
    timeout: Duration,
) -> After {
    let mut client_keep = facts.head.keep_alive && !conn.worker.draining.get();
    DownstreamHead {
        status: head.status,
        buf: &ubuf.data,
        headers: &ubuf.headers,
        target,
        id_header: &wp.plan.settings.request_id_header,
        request_id: facts.id.as_bytes(),
        keep_content_length: facts.head.method == Method::Head,
        upgrade: false,
    }
    .write(&mut out);
    let down = match head.framing {
        ResponseFraming::None => Down::None,
        ResponseFraming::Length(n) => {
            content_length(&mut out, n);
            if facts.head.method != Method::Head {
                facts.outcome.response_length.set(n);
            }
            Down::Length
        }
        _ if facts.head.version == Version::Http11 => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Down::Chunked
        }
        _ => {
            client_keep = false;
            Down::Close
        }
    };
    connection_header(&mut out, facts.head.version, client_keep);
    out.extend_from_slice(b"\r\n");
    let mut reusable = head.keep_alive;
    let body_start = head.head_len;
    let sent = match head.framing {
        ResponseFraming::None => {
            reusable &= ubuf.data.len() == body_start;
            true
        }
        ResponseFraming::Length(n) => {
            relay_length(
                conn,
                wp,
                &mut upstream,
                ubuf,
                &mut out,
                body_start,
                n,
                &mut reusable,
                timeout,
            )
            .await
        }
        ResponseFraming::Chunked | ResponseFraming::UntilClose => {
            relay_stream(
                conn,
                wp,
                &mut upstream,
                ubuf,
                &mut out,
                body_start,
                head.framing,
                down,
                &mut reusable,
                timeout,
                &facts.outcome.response_length,
            )
            .await
        }
    };
    if !sent {
        conn.worker.buffers.give_plain(out);
        return After::Close;
    }
    // The body is complete: hand the upstream connection back before the last client write,
    // so a slow reader does not hold it.
    if reusable {
        upstream.check_before_reuse = head.framing == ResponseFraming::None;
        pool.put(upstream, Instant::now());
    }
    let ok = conn.send(wp, out).await;
    if ok && client_keep {
        After::KeepAlive
    } else {
        After::Close
    }
}

/// Writes `out` to the client and returns it cleared for reuse; None when the client is gone.
async fn flush(conn: &mut Conn, wp: &WorkerPlan, out: Vec<u8>) -> Option<Vec<u8>> {
    let timeout = Duration::from_millis(wp.plan.limits.response_write_timeout_ms);
    let (res, mut out) = write_all(&mut conn.stream, out, timeout).await;
    out.clear();
    res.ok().map(|()| out)
}

/// Relays a Content-Length body. Returns false when the exchange broke off.
#[allow(clippy::too_many_arguments)]
async fn relay_length(
    conn: &mut Conn,
    wp: &WorkerPlan,
    upstream: &mut Pooled,
    ubuf: &mut IoBuf,
    out: &mut Vec<u8>,
    body_start: usize,
    n: u64,
    reusable: &mut bool,
    timeout: Duration,
) -> bool {
    let available = (ubuf.data.len() - body_start) as u64;
    let first = available.min(n) as usize;
    out.extend_from_slice(&ubuf.data[body_start..body_start + first]);
    *reusable &= available <= n;
    let mut remaining = n - first as u64;
    while remaining > 0 {
        // Larger bodies stream: what is queued goes out, then the upstream is read straight
        // into the upstream buffer and written from it.
        match flush(conn, wp, std::mem::take(out)).await {
            Some(o) => *out = o,
            None => return false,
        }
        ubuf.data.clear();
        let res = read_more(
            &mut upstream.stream,
            &mut ubuf.data,
            Instant::now() + timeout,
        )
        .await;
        let Ok(got) = res else { return false };
        let take = (got as u64).min(remaining) as usize;
        *reusable &= got as u64 <= remaining;
        remaining -= take as u64;
        if remaining == 0 {
            // The tail goes out with the final write after the upstream is released.
            out.extend_from_slice(&ubuf.data[..take]);
            break;
        }
        let slice = std::mem::take(&mut ubuf.data).slice(0..take);
        let (res, slice) = monoio::time::timeout(
            Duration::from_millis(wp.plan.limits.response_write_timeout_ms),
            conn.stream.write_all(slice),
        )
        .await
        .unwrap_or_else(|_| {
            (
                Err(std::io::ErrorKind::TimedOut.into()),
                monoio::buf::Slice::new(Vec::new(), 0, 0),
            )
        });
        ubuf.data = slice.into_inner();
        if res.is_err() {
            return false;
        }
    }
    true
}

/// Relays a chunked or close-delimited body, re-framed for the client, adding the body bytes to
/// `sent`. Returns false when the exchange broke off.
#[allow(clippy::too_many_arguments)]
async fn relay_stream(
    conn: &mut Conn,
    wp: &WorkerPlan,
    upstream: &mut Pooled,
    ubuf: &mut IoBuf,
    out: &mut Vec<u8>,
    body_start: usize,
    framing: ResponseFraming,
    down: Down,
    reusable: &mut bool,
    timeout: Duration,
    sent: &std::cell::Cell<u64>,
) -> bool {
    let mut decoder = (framing == ResponseFraming::Chunked).then(ChunkedDecoder::new);
    if decoder.is_none() {
        *reusable = false;
    }
    let mut pos = body_start;
    loop {
        let (data, done) = match &mut decoder {
            Some(d) => match d.decode(&ubuf.data[pos..]) {
                Ok(step) => {
                    let data = step.data.map(|r| pos + r.start..pos + r.end);
                    pos += step.consumed;
                    (data, d.is_done())
                }
                Err(_) => return false,
            },
            None => {
                let data = (pos < ubuf.data.len()).then_some(pos..ubuf.data.len());
                pos = ubuf.data.len();
                (data, false)
            }
        };
        if let Some(r) = data {
            sent.set(sent.get() + r.len() as u64);
            match down {
                Down::Chunked => push_chunk(out, &ubuf.data[r]),
                _ => out.extend_from_slice(&ubuf.data[r]),
            }
        }
        if done {
            *reusable &= pos == ubuf.data.len();
            break;
        }
        if pos < ubuf.data.len() {
            continue;
        }
        // More input is needed: whatever is queued goes out first, so a streamed body flows.
        if !out.is_empty() {
            match flush(conn, wp, std::mem::take(out)).await {
                Some(o) => *out = o,
                None => return false,
            }
        }
        ubuf.data.clear();
        pos = 0;
        let res = read_more(
            &mut upstream.stream,
            &mut ubuf.data,
            Instant::now() + timeout,
        )
        .await;
        match res {
            Ok(_) => {}
            Err(IoFail::Eof) if decoder.is_none() => break,
            Err(_) => return false,
        }
    }
    if down == Down::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    true
}

/// The upstream switched protocols: relays its `101` head (and any bytes behind it) to the
/// client, sends the client's bytes that followed its request head, and runs the tunnel until
/// it ends. The connection closes afterwards; the upstream connection is never pooled again.
#[allow(clippy::too_many_arguments)]
async fn tunnel(
    conn: &mut Conn,
    wp: &WorkerPlan,
    target: &HttpTarget,
    facts: &Facts,
    buf: &mut IoBuf,
    mut upstream: Pooled,
    head: ResponseHead,
    ubuf: &mut IoBuf,
    mut out: Vec<u8>,
) -> After {
    DownstreamHead {
        status: 101,
        buf: &ubuf.data,
        headers: &ubuf.headers,
        target,
        id_header: &wp.plan.settings.request_id_header,
        request_id: facts.id.as_bytes(),
        keep_content_length: false,
        upgrade: true,
    }
    .write(&mut out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&ubuf.data[head.head_len..]);
    if !conn.send(wp, out).await {
        return After::Close;
    }
    let limits = &wp.plan.limits;
    let write_timeout = Duration::from_millis(limits.response_write_timeout_ms);
    if !buf.data.is_empty() {
        let mut early = conn.worker.buffers.take_plain();
        early.extend_from_slice(&buf.data);
        buf.data.clear();
        let (res, early) = write_all(&mut upstream.stream, early, write_timeout).await;
        conn.worker.buffers.give_plain(early);
        if res.is_err() {
            return After::Close;
        }
    }
    // The request and response buffers are not needed while the tunnel runs (it borrows a
    // buffer per read): back to the pool, so a long-lived tunnel holds none.
    conn.worker
        .buffers
        .give_plain(std::mem::take(&mut buf.data));
    conn.worker
        .buffers
        .give_plain(std::mem::take(&mut ubuf.data));
    let tunnel_limits = TunnelLimits {
        idle: Duration::from_millis(limits.tunnel_idle_timeout_ms),
        until: Instant::now() + Duration::from_millis(limits.tunnel_duration_max_ms),
        write_timeout,
    };
    // The tunnel itself runs after the request is done (logged, its plan and buffers let go):
    // see `Conn::run_tunnel`.
    conn.pending_tunnel = Some(Box::new(crate::conn::PendingTunnel {
        upstream: upstream.stream,
        limits: tunnel_limits,
    }));
    After::Close
}
