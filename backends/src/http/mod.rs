//! The `http` integration: forward a request to an upstream over a pooled keep-alive
//! connection and relay the response.
//!
//! Slow clients must not pin upstream connections, so a request body is read before an
//! upstream connection is taken, up to `body_buffer_bytes` (all of it for `buffered`
//! routes). Only a client that has already sent that much streams the rest through an open
//! upstream connection ([`upload`]). Likewise a response that arrives whole is handed back to
//! the pool before it is written to a (possibly slow) client; larger ones stream ([`relay`]).
//!
//! A reused pooled connection may have been closed by the upstream meanwhile: when writing to
//! it fails, or it closes before answering, an idempotent request whose body is fully buffered
//! is retried once on a fresh connection.

pub mod head_out;
mod relay;
mod upload;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use tollgate_config::plan::{HttpTarget, UpstreamSettings};
use tollgate_config::responses::ResponseType;
use tracing::{debug, warn};

use crate::conn_pool::{HostPool, Pooled};
use crate::exchange::{Downstream, Finished, Request};
use crate::wire::body::BodyError;
use crate::wire::buffers::IoBuf;
use crate::wire::http1::{
    head_may_be_complete, parse_response, BodyFraming, HeadLimits, Method, ResponseHead, Version,
};
use crate::wire::io::{read_more, write_all, IoFail};
use crate::wire::stream::UpstreamStream;
use crate::wire::tls::{connect, HandshakeError};
use head_out::UpstreamHead;
use upload::Upload;

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
    /// The gateway answers with this response (and closes).
    Answer(ResponseType, Option<&'static str>),
    /// The client's body could not be read.
    Body(BodyError),
    /// The client side failed (its status is already sent, or cannot be).
    Client(u16),
}

impl From<Fail> for Finished {
    fn from(fail: Fail) -> Self {
        match fail {
            Fail::Answer(kind, detail) => Finished::Answer { kind, detail },
            Fail::Body(e) => Finished::body_failed(e),
            Fail::Client(status) => Finished::Broken { status },
        }
    }
}

impl From<IoFail> for Fail {
    fn from(_: IoFail) -> Self {
        Fail::Answer(ResponseType::IntegrationFailure, None)
    }
}

/// Proxies one request to `target` through its upstream's connection `pool`.
pub async fn run<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    target: &HttpTarget,
    pool: &HostPool,
) -> Finished {
    let plan = req.plan;
    let mut out = down.buffers.take_plain();
    // A tunnel copies raw TCP both ways: no upgrade through an https upstream yet.
    let upgrade = pool.tls.is_none() && wants_upgrade(req, down, target);
    UpstreamHead {
        buf: &down.buf.data,
        head: req.head,
        headers: &down.buf.headers,
        captures: &down.buf.captures,
        route: req.route,
        target,
        upstream: &plan.upstreams[target.upstream],
        peer: req.peer,
        local_port: req.local_port,
        id_header: req.id_header(),
        request_id: req.id,
        upgrade,
        tls: req.tls,
        strip: &plan.client_cert_header_names,
    }
    .write(&mut out);
    let mut ubuf = down.buffers.take();
    let finished = match exchange(req, down, target, pool, out, &mut ubuf, upgrade).await {
        Ok(finished) => finished,
        Err(fail) => fail.into(),
    };
    down.buffers.give(ubuf);
    finished
}

/// True when the request is a WebSocket handshake the gateway passes on: HTTP/1.1 without a
/// body, `Connection: upgrade`, `Upgrade: websocket` (no other protocol: an `h2c` upgrade would
/// let a client speak to the upstream past routing), `Sec-WebSocket-Key` and
/// `Sec-WebSocket-Version`; not while draining, and not when the integration removes `upgrade`.
/// (A client on a TLS listener upgrades too; an `https` upstream does not yet, see [`run`].)
fn wants_upgrade<S>(req: &Request<'_>, down: &Downstream<'_, S>, target: &HttpTarget) -> bool {
    let head = req.head;
    if !head.upgrade
        || head.version != Version::Http11
        || head.framing != BodyFraming::None
        || down.draining.get()
        || target
            .request_remove
            .iter()
            .any(|r| r.eq_ignore_ascii_case("upgrade"))
    {
        return false;
    }
    let (mut websocket, mut key, mut version) = (false, false, false);
    for (name, value) in down.headers() {
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

async fn exchange<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    target: &HttpTarget,
    pool: &HostPool,
    out: Vec<u8>,
    ubuf: &mut IoBuf,
    upgrade: bool,
) -> Result<Finished, Fail> {
    // `request_timeout_ms` bounds everything up to the upstream's response head; the body that
    // follows is bounded per read and per write instead, so long downloads are not cut off.
    let deadline = req.started + Duration::from_millis(req.limits().request_timeout_ms);
    let sent = send(req, down, target, pool, out, ubuf, upgrade);
    let (upstream, head, out) = match monoio::time::timeout_at(deadline.into(), sent).await {
        Ok(sent) => sent?,
        Err(_) => return Err(Fail::Answer(ResponseType::IntegrationTimeout, None)),
    };
    req.report.status.set(Some(head.status));
    if head.status == 101 {
        return Ok(relay::upgrade(req, down, target, upstream, head, ubuf, out).await);
    }
    let timeout = Duration::from_millis(target.timeout_ms);
    let after = relay::relay(req, down, target, pool, upstream, head, ubuf, out, timeout).await;
    Ok(Finished::Sent {
        status: head.status,
        after,
    })
}

/// Sends the request (reading its body as it goes) and reads the upstream's response head.
/// Returns the upstream connection, the head (its bytes in `ubuf`) and the emptied request
/// buffer.
async fn send<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    target: &HttpTarget,
    pool: &HostPool,
    mut out: Vec<u8>,
    ubuf: &mut IoBuf,
    upgrade: bool,
) -> Result<(Pooled, ResponseHead, Vec<u8>), Fail> {
    let mut upload = match upload::read(req, down, target, &mut out).await {
        Ok(u) => u,
        Err(e) => {
            down.buffers.give_plain(out);
            return Err(e);
        }
    };
    let retryable = matches!(upload, Upload::Complete) && req.head.method.is_idempotent();
    let integration_started = Instant::now();
    let timeout = Duration::from_millis(target.timeout_ms);
    let mut attempt = 0;
    let (upstream, head) = loop {
        let (mut up, reused) = acquire(pool, &req.plan.upstream).await?;
        let (res, r) = write_all(&mut up.stream, out, timeout).await;
        out = r;
        match res {
            Ok(()) => {}
            // A reused connection the upstream closed meanwhile. (Not after a timeout: the
            // cancelled write may have kept the request buffer.)
            Err(IoFail::Io(_) | IoFail::Eof) if reused && retryable && attempt == 0 => {
                attempt += 1;
                continue;
            }
            Err(_) => {
                down.buffers.give_plain(out);
                return Err(Fail::Answer(ResponseType::IntegrationFailure, None));
            }
        }
        if let Upload::Streaming { reader, chunked } = &mut upload {
            upload::stream(
                req,
                down,
                reader,
                *chunked,
                &mut up.stream,
                &mut out,
                timeout,
            )
            .await?;
        }
        let deadline = Instant::now() + timeout;
        ubuf.data.clear();
        let head_request = req.head.method == Method::Head;
        match read_response_head(&mut up.stream, ubuf, deadline, head_request, upgrade).await {
            Ok(head) => {
                req.report.latency.set(Some(integration_started.elapsed()));
                break (up, head);
            }
            Err(IoFail::Eof | IoFail::Io(_))
                if reused && retryable && attempt == 0 && ubuf.data.is_empty() =>
            {
                attempt += 1;
                continue;
            }
            Err(IoFail::Timeout) => {
                down.buffers.give_plain(out);
                return Err(Fail::Answer(ResponseType::IntegrationTimeout, None));
            }
            Err(_) => {
                down.buffers.give_plain(out);
                return Err(Fail::Answer(ResponseType::IntegrationFailure, None));
            }
        }
    };
    if let Upload::Streaming { reader, .. } = upload {
        reader.finish(&mut down.buf.data);
    }
    out.clear();
    Ok((upstream, head, out))
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
        let deadline = Instant::now() + timeout;
        match monoio::time::timeout_at(deadline.into(), TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let stream = match &pool.tls {
                    None => UpstreamStream::Plain(stream),
                    // The handshake counts in the connect timeout.
                    Some(tls) => {
                        let (config, name) = (Arc::clone(&tls.config), tls.server_name.clone());
                        match connect(stream, config, name, deadline).await {
                            Ok(tls) => UpstreamStream::Tls(Box::new(tls)),
                            Err((why, _)) => {
                                // A refused certificate is the operator's to fix (a CA bundle,
                                // a server name): loud. Others (timeouts, resets) are the
                                // upstream's state, seen in the failure counters.
                                if matches!(
                                    why,
                                    HandshakeError::BadCertificate | HandshakeError::UnknownCa
                                ) {
                                    warn!(upstream = %pool.authority, reason = why.label(),
                                        server_name = ?tls.server_name,
                                        "upstream TLS certificate refused");
                                } else {
                                    debug!(upstream = %pool.authority, reason = why.label(),
                                        "upstream TLS handshake failed");
                                }
                                failure = match why {
                                    HandshakeError::Timeout => ResponseType::IntegrationTimeout,
                                    _ => ResponseType::IntegrationFailure,
                                };
                                pool.connect_failures.set(pool.connect_failures.get() + 1);
                                continue;
                            }
                        }
                    }
                };
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
    stream: &mut UpstreamStream,
    ubuf: &mut IoBuf,
    deadline: Instant,
    head_request: bool,
    upgrade: bool,
) -> Result<ResponseHead, IoFail> {
    let mut scanned = 0;
    loop {
        // A head arriving in many small reads is parsed once it may be complete, not per read.
        let limits = &UPSTREAM_HEAD_LIMITS;
        let parsed = if head_may_be_complete(&ubuf.data, scanned, limits) {
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
