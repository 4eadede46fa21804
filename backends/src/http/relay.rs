//! The upstream's response on its way to the client: its head rewritten for the client (plus
//! what the phases add), its body relayed whatever its framing and re-framed when needed, the
//! upstream connection handed back to the pool as soon as the body is complete. A `101` to a
//! WebSocket handshake is relayed and the upstream socket handed to the gateway for a tunnel.

use std::time::{Duration, Instant};

use monoio::buf::IoBuf as _;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use tollgate_config::plan::HttpTarget;

use super::head_out::{connection_header, DownstreamHead};
use super::upload::push_chunk;
use crate::conn_pool::{HostPool, Pooled};
use crate::exchange::{After, Downstream, Finished, Request};
use crate::wire::buffers::IoBuf;
use crate::wire::http1::{ChunkedDecoder, Method, ResponseFraming, ResponseHead, Version};
use crate::wire::io::{read_more, write_all, IoFail};
use crate::wire::respond::content_length;
use crate::wire::stream::UpstreamStream;

/// The most bytes of chunk framing around a piece, and the last chunk after it.
const CHUNK_FRAMING_MAX: usize = 32;

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
pub(super) async fn relay<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    target: &HttpTarget,
    pool: &HostPool,
    mut upstream: Pooled,
    head: ResponseHead,
    ubuf: &mut IoBuf,
    mut out: Vec<u8>,
    timeout: Duration,
) -> After {
    let method = req.head.method;
    let version = req.head.version;
    let mut client_keep = req.head.keep_alive && !down.draining.get();
    DownstreamHead {
        status: head.status,
        buf: &ubuf.data,
        headers: &ubuf.headers,
        target,
        id_header: req.id_header(),
        request_id: req.id,
        keep_content_length: method == Method::Head,
        upgrade: false,
    }
    .write(&mut out);
    out.extend_from_slice(req.filters.add_headers);
    let framing = match head.framing {
        ResponseFraming::None => Down::None,
        ResponseFraming::Length(n) => {
            content_length(&mut out, n);
            if method != Method::Head {
                req.report.response_length.set(n);
            }
            Down::Length
        }
        _ if version == Version::Http11 => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Down::Chunked
        }
        _ => {
            client_keep = false;
            Down::Close
        }
    };
    connection_header(&mut out, version, client_keep);
    req.filters.head(head.status, &out);
    out.extend_from_slice(b"\r\n");
    let mut reusable = head.keep_alive;
    let body_start = head.head_len;
    let mut body = Body {
        req,
        upstream: &mut upstream,
        ubuf,
        out: &mut out,
        reusable: &mut reusable,
        timeout,
    };
    let sent = match head.framing {
        ResponseFraming::None => {
            *body.reusable &= body.ubuf.data.len() == body_start;
            true
        }
        ResponseFraming::Length(n) => body.length(down, body_start, n).await,
        ResponseFraming::Chunked | ResponseFraming::UntilClose => {
            body.stream(down, body_start, head.framing, framing).await
        }
    };
    req.filters.end(sent);
    if !sent {
        down.buffers.give_plain(out);
        return After::Close;
    }
    // The body is complete: hand the upstream connection back before the last client write,
    // so a slow reader does not hold it.
    if reusable {
        upstream.check_before_reuse = head.framing == ResponseFraming::None;
        pool.put(upstream, Instant::now());
    }
    let ok = down.send(out).await;
    After::keep_if(ok && client_keep)
}

/// A response body being relayed.
struct Body<'r, 'a> {
    req: &'r Request<'a>,
    upstream: &'r mut Pooled,
    ubuf: &'r mut IoBuf,
    out: &'r mut Vec<u8>,
    /// The upstream connection can carry another request after this body.
    reusable: &'r mut bool,
    timeout: Duration,
}

impl Body<'_, '_> {
    /// Writes what is queued to the client; false when the client is gone.
    async fn flush<S: AsyncReadRent + AsyncWriteRent>(
        &mut self,
        down: &mut Downstream<'_, S>,
    ) -> bool {
        let (res, mut out) =
            write_all(down.stream, std::mem::take(self.out), down.write_timeout).await;
        out.clear();
        *self.out = out;
        res.is_ok()
    }

    /// Relays a Content-Length body. Returns false when the exchange broke off.
    async fn length<S: AsyncReadRent + AsyncWriteRent>(
        &mut self,
        down: &mut Downstream<'_, S>,
        body_start: usize,
        n: u64,
    ) -> bool {
        let available = (self.ubuf.data.len() - body_start) as u64;
        let first = available.min(n) as usize;
        let first = &self.ubuf.data[body_start..body_start + first];
        self.req.filters.body(first);
        // The head and a full upstream read may not fit a pool buffer: grown through the pool.
        down.buffers.grow_plain(self.out, first.len());
        self.out.extend_from_slice(first);
        *self.reusable &= available <= n;
        let mut remaining = n - first.len() as u64;
        while remaining > 0 {
            // Larger bodies stream: what is queued goes out, then the upstream is read straight
            // into the upstream buffer and written from it.
            if !self.flush(down).await {
                return false;
            }
            self.ubuf.data.clear();
            let deadline = Instant::now() + self.timeout;
            let res = read_more(&mut self.upstream.stream, &mut self.ubuf.data, deadline).await;
            let Ok(got) = res else { return false };
            let take = (got as u64).min(remaining) as usize;
            *self.reusable &= got as u64 <= remaining;
            remaining -= take as u64;
            self.req.filters.body(&self.ubuf.data[..take]);
            if remaining == 0 {
                // The tail goes out with the final write after the upstream is released.
                self.out.extend_from_slice(&self.ubuf.data[..take]);
                break;
            }
            let slice = std::mem::take(&mut self.ubuf.data).slice(0..take);
            let (res, slice) =
                monoio::time::timeout(down.write_timeout, down.stream.write_all(slice))
                    .await
                    .unwrap_or_else(|_| {
                        (
                            Err(std::io::ErrorKind::TimedOut.into()),
                            monoio::buf::Slice::new(Vec::new(), 0, 0),
                        )
                    });
            self.ubuf.data = slice.into_inner();
            if res.is_err() {
                return false;
            }
        }
        true
    }

    /// Relays a chunked or close-delimited body, re-framed for the client, counting the body
    /// bytes in the report. Returns false when the exchange broke off.
    async fn stream<S: AsyncReadRent + AsyncWriteRent>(
        &mut self,
        down: &mut Downstream<'_, S>,
        body_start: usize,
        framing: ResponseFraming,
        to_client: Down,
    ) -> bool {
        let sent = &self.req.report.response_length;
        let mut decoder = (framing == ResponseFraming::Chunked).then(ChunkedDecoder::new);
        if decoder.is_none() {
            *self.reusable = false;
        }
        let mut pos = body_start;
        loop {
            let (data, done) = match &mut decoder {
                Some(d) => match d.decode(&self.ubuf.data[pos..]) {
                    Ok(step) => {
                        let data = step.data.map(|r| pos + r.start..pos + r.end);
                        pos += step.consumed;
                        (data, d.is_done())
                    }
                    Err(_) => return false,
                },
                None => {
                    let data = (pos < self.ubuf.data.len()).then_some(pos..self.ubuf.data.len());
                    pos = self.ubuf.data.len();
                    (data, false)
                }
            };
            if let Some(r) = data {
                let piece = &self.ubuf.data[r];
                sent.set(sent.get() + piece.len() as u64);
                self.req.filters.body(piece);
                // Room for the piece, its chunk framing and the last chunk, through the pool.
                let room = piece.len() + CHUNK_FRAMING_MAX;
                down.buffers.grow_plain(self.out, room);
                match to_client {
                    Down::Chunked => push_chunk(self.out, piece),
                    _ => self.out.extend_from_slice(piece),
                }
            }
            if done {
                *self.reusable &= pos == self.ubuf.data.len();
                break;
            }
            if pos < self.ubuf.data.len() {
                continue;
            }
            // More input is needed: whatever is queued goes out first, so a streamed body flows.
            if !self.out.is_empty() && !self.flush(down).await {
                return false;
            }
            self.ubuf.data.clear();
            pos = 0;
            let deadline = Instant::now() + self.timeout;
            match read_more(&mut self.upstream.stream, &mut self.ubuf.data, deadline).await {
                Ok(_) => {}
                Err(IoFail::Eof) if decoder.is_none() => break,
                Err(_) => return false,
            }
        }
        if to_client == Down::Chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        true
    }
}

/// The upstream switched protocols: relays its `101` head (and any bytes behind it) to the
/// client and sends the client's bytes that followed its request head. The gateway runs the
/// tunnel once the request is logged; the upstream connection is never pooled again.
pub(super) async fn upgrade<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    target: &HttpTarget,
    upstream: Pooled,
    head: ResponseHead,
    ubuf: &mut IoBuf,
    mut out: Vec<u8>,
) -> Finished {
    DownstreamHead {
        status: 101,
        buf: &ubuf.data,
        headers: &ubuf.headers,
        target,
        id_header: req.id_header(),
        request_id: req.id,
        keep_content_length: false,
        upgrade: true,
    }
    .write(&mut out);
    out.extend_from_slice(req.filters.add_headers);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&ubuf.data[head.head_len..]);
    let broken = Finished::Sent {
        status: 101,
        after: After::Close,
    };
    if !down.send(out).await {
        return broken;
    }
    let mut upstream = upstream.stream;
    if !down.buf.data.is_empty() {
        let mut early = down.buffers.take_plain();
        early.extend_from_slice(&down.buf.data);
        down.buf.data.clear();
        let (res, early) = write_all(&mut upstream, early, down.write_timeout).await;
        down.buffers.give_plain(early);
        if res.is_err() {
            return broken;
        }
    }
    // The request and response buffers are not needed while the tunnel runs (it borrows a
    // buffer per read): back to the pool, so a long-lived tunnel holds none.
    down.buffers.give_plain(std::mem::take(&mut down.buf.data));
    down.buffers.give_plain(std::mem::take(&mut ubuf.data));
    match upstream {
        UpstreamStream::Plain(tcp) => Finished::Upgraded(Box::new(tcp)),
        // Not reached: an upgrade is asked of plain upstreams only (see `run`).
        _ => broken,
    }
}
