//! The one interface every integration implements: what a backend is given and what it
//! returns.
//!
//! A backend receives a [`Request`] — the protocol-neutral view of the routed request (method,
//! raw path and query, headers in order, path parameters, client address, request id, the plan
//! and route it matched) — and the [`Downstream`] it answers on (the client's stream, the read
//! buffer holding the head and whatever body bytes followed it, the worker's buffer pool). It
//! reads the body through the downstream, writes its response there, and returns what happened
//! as a [`Finished`]: a response was sent, the gateway should answer with a catalogue response
//! type, the client broke off, or the upstream switched protocols. It never reaches into the
//! gateway's connection.
//!
//! Phases that run before the integration shape its response through [`ResponseFilters`]:
//! header lines added to the head before it is written (CORS, `X-Cache`, …) and an observer
//! that sees the head and tees the body as it streams (the cache stores it). Both cost nothing
//! when no phase uses them: an empty slice and a `None`.
//!
//! The downstream is generic over its stream type so a TLS stream can stand where the TCP
//! stream stands; the generic code is instantiated in the gateway, so nothing is boxed.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use tollgate_config::plan::{Limits, RoutePlan};
use tollgate_config::responses::ResponseType;
use tollgate_config::Plan;

use crate::client_cert::TlsSession;
use crate::wire::body::BodyError;
use crate::wire::buffers::{BufferPool, IoBuf};
use crate::wire::http1::{HeaderSpan, Method, RequestHead};
use crate::wire::io::write_all;
use crate::wire::respond::Reply;

/// The routed request, as every integration sees it. Everything here outlives the body read;
/// the head's bytes do not (they are in the downstream's buffer, see [`Downstream::header`]).
#[derive(Debug)]
pub struct Request<'a> {
    /// The compiled plan the request runs on.
    pub plan: &'a Plan,
    /// The route it matched (API, stage, route key, parameter names, integration).
    pub route: &'a RoutePlan,
    /// The parsed head: spans into the downstream's buffer, framing, keep-alive.
    pub head: &'a RequestHead,
    /// Request id.
    pub id: &'a [u8],
    /// When the head was complete.
    pub started: Instant,
    /// `date` header value for gateway-made responses.
    pub date: [u8; 29],
    /// The client's address, resolved (PROXY protocol, trusted forwarding headers).
    pub client: IpAddr,
    /// The connection's peer (the client, or the balancer in front of it).
    pub peer: SocketAddr,
    /// The local port the client connected to.
    pub local_port: u16,
    /// What the client connection's TLS handshake established (None: plain HTTP).
    pub tls: Option<&'a TlsSession>,
    /// What the integration reports for the access log.
    pub report: &'a Report,
    /// What the phases before the integration add to its response.
    pub filters: &'a ResponseFilters<'a>,
}

impl Request<'_> {
    /// The plan's request limits (body size, timeouts).
    pub fn limits(&self) -> &Limits {
        &self.plan.limits
    }

    /// The stage's variables (`stageVariables` of events).
    pub fn stage_variables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.route
            .stage_variables
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Request id header name (lowercase).
    pub fn id_header(&self) -> &str {
        &self.plan.settings.request_id_header
    }

    /// A reply descriptor for a response the gateway renders itself (mock, catalogue).
    pub fn reply(&self, close: bool) -> Reply<'_> {
        Reply {
            id_header: self.id_header(),
            request_id: self.id,
            head_request: self.head.method == Method::Head,
            close,
            date: self.date,
            extra: self.filters.add_headers,
            own: b"",
        }
    }
}

/// What an integration learned, for the access log (`$context.integration*`, response length).
/// Cells: the request's facts are shared by reference with every phase.
#[derive(Debug, Default)]
pub struct Report {
    /// The integration's status, when an integration answered.
    pub status: Cell<Option<u16>>,
    /// From the request sent upstream to the upstream's response head.
    pub latency: Cell<Option<Duration>>,
    /// Response body bytes sent to the client.
    pub response_length: Cell<u64>,
}

/// What phases that run before the integration add to its response.
#[derive(Default)]
pub struct ResponseFilters<'a> {
    /// Header lines (each ending in CRLF) added to the response head before it is written.
    pub add_headers: &'a [u8],
    /// Sees the response head and the body bytes as they stream.
    pub observer: Option<&'a dyn ResponseObserver>,
}

impl std::fmt::Debug for ResponseFilters<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFilters")
            .field("add_headers", &String::from_utf8_lossy(self.add_headers))
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl ResponseFilters<'_> {
    /// Filters that change nothing.
    pub const NONE: ResponseFilters<'static> = ResponseFilters {
        add_headers: b"",
        observer: None,
    };

    /// Tells the observer the status and head sent (status line and header lines, without the
    /// final CRLF).
    pub fn head(&self, status: u16, head: &[u8]) {
        if let Some(o) = self.observer {
            o.head(status, head);
        }
    }

    /// Tells the observer about body bytes sent (decoded: no chunk framing).
    pub fn body(&self, bytes: &[u8]) {
        if let Some(o) = self.observer {
            o.body(bytes);
        }
    }

    /// Tells the observer the response ended; `complete` is false when it broke off.
    pub fn end(&self, complete: bool) {
        if let Some(o) = self.observer {
            o.end(complete);
        }
    }
}

/// A phase that watches a response go out (the cache stores it). Called in order: `head` once,
/// `body` for each piece, `end` once. Takes `&self`: an observer keeps its state in cells, as
/// everything per request on a worker does.
pub trait ResponseObserver {
    /// The status and the head as written (without the final CRLF).
    fn head(&self, status: u16, head: &[u8]);
    /// Body bytes, decoded.
    fn body(&self, bytes: &[u8]);
    /// The end of the response; `complete` is false when it broke off.
    fn end(&self, complete: bool);
}

/// The client side of an exchange: its stream, its read buffer and the worker's buffers.
#[derive(Debug)]
pub struct Downstream<'a, S = TcpStream> {
    /// The client's stream.
    pub stream: &'a mut S,
    /// The read buffer: the request head, then whatever followed it (body, pipelined bytes).
    pub buf: &'a mut IoBuf,
    /// The worker's buffer pool.
    pub buffers: &'a BufferPool,
    /// Set while the worker drains: answer with `connection: close`, start no tunnel. A cell,
    /// read when each decision is made: a drain can start while a response is awaited.
    pub draining: &'a Cell<bool>,
    /// Bound on each write to the client.
    pub write_timeout: Duration,
}

impl<S: AsyncReadRent + AsyncWriteRent> Downstream<'_, S> {
    /// Writes `out` to the client within the write timeout and recycles the buffer. False when
    /// the client is gone.
    pub async fn send(&mut self, out: Vec<u8>) -> bool {
        let (res, out) = write_all(self.stream, out, self.write_timeout).await;
        self.buffers.give_plain(out);
        res.is_ok()
    }

    /// Sends `100 Continue` when the client waits for it before sending its body. False when
    /// the client is gone.
    pub async fn continue_if_expected(&mut self, head: &RequestHead) -> bool {
        if !head.expect_continue || self.buf.data.len() > head.head_len {
            return true;
        }
        let mut out = self.buffers.take_plain();
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.send(out).await
    }
}

impl<S> Downstream<'_, S> {
    /// The request's header lines in order, duplicates and name case kept. Valid until the
    /// body is read: reading it may refill the buffer from the start.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let data = &self.buf.data;
        self.buf
            .headers
            .iter()
            .map(move |h: &HeaderSpan| (h.name.get(data), h.value.get(data)))
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The method as sent.
    pub fn method(&self, head: &RequestHead) -> &[u8] {
        head.method_span.get(&self.buf.data)
    }

    /// The raw path (percent-encoding kept) and the raw query (without `?`; empty when none).
    pub fn path_and_query(&self, head: &RequestHead) -> (&[u8], &[u8]) {
        let data = &self.buf.data;
        let query = head.query.map_or(&[][..], |q| q.get(data));
        (head.path.get(data), query)
    }

    /// Path parameters: the route's parameter names with the captured raw values.
    pub fn path_params<'r>(
        &'r self,
        route: &'r RoutePlan,
    ) -> impl Iterator<Item = (&'r str, &'r [u8])> + 'r {
        route.params.iter().zip(&self.buf.captures).map(
            |(name, range): (&String, &Range<usize>)| {
                (name.as_str(), &self.buf.data[range.clone()])
            },
        )
    }
}

/// How an exchange ended for the client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Ready for the next request.
    KeepAlive,
    /// Close the connection.
    Close,
}

impl After {
    /// Keep-alive when `keep` holds.
    pub fn keep_if(keep: bool) -> Self {
        if keep {
            After::KeepAlive
        } else {
            After::Close
        }
    }
}

/// What an integration did.
#[derive(Debug)]
pub enum Finished {
    /// It wrote a response with this status.
    Sent {
        /// The status sent.
        status: u16,
        /// What becomes of the client connection.
        after: After,
    },
    /// Nothing was written: the gateway answers with this catalogue response and closes.
    Answer {
        /// The response type.
        kind: ResponseType,
        /// A message replacing the type's default.
        detail: Option<&'static str>,
    },
    /// Nothing was read past the head: the gateway answers with this catalogue response and
    /// keeps the connection when the request has no body.
    Refuse {
        /// The response type.
        kind: ResponseType,
    },
    /// The client side failed mid-exchange (gone, or its answer could not be written); the
    /// status is the one logged.
    Broken {
        /// The status logged.
        status: u16,
    },
    /// The upstream switched protocols and its `101` was relayed: the gateway runs a tunnel
    /// between the client and this socket once the request is logged. Boxed: rare, and
    /// it keeps the common variants small.
    Upgraded(Box<TcpStream>),
}

impl Finished {
    /// The gateway's answer for a body that could not be read.
    pub fn body_failed(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Finished::Answer {
                kind: ResponseType::RequestTooLarge,
                detail: None,
            },
            BodyError::Malformed(m) => Finished::Answer {
                kind: ResponseType::BadRequest,
                detail: Some(m),
            },
            BodyError::Timeout => Finished::Answer {
                kind: ResponseType::RequestTimeout,
                detail: None,
            },
            BodyError::Closed => Finished::Broken { status: 400 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http1::{parse_request, HeadLimits};

    /// A downstream over `raw` (no stream: the views need none), its head parsed.
    fn parsed(raw: &[u8], captures: Vec<Range<usize>>) -> (IoBuf, RequestHead) {
        let mut buf = IoBuf {
            data: raw.to_vec(),
            headers: Vec::new(),
            captures,
        };
        let head = parse_request(&buf.data, &HeadLimits::default(), &mut buf.headers)
            .expect("valid head")
            .expect("complete head");
        (buf, head)
    }

    #[test]
    fn views_keep_the_raw_request() {
        let raw = b"GET /pets/a%2Fb/toys?x=1&x=2 HTTP/1.1\r\nHost: h\r\nX-Tag: one\r\n\
                    x-tag: two\r\n\r\n";
        // `{id}` captured as bytes 10..15 of the buffer (`a%2Fb`).
        let (mut buf, head) = parsed(raw, std::iter::once(10..15).collect());
        let pool = BufferPool::new(1024, 1);
        let draining = Cell::new(false);
        let mut stream = ();
        let down = Downstream {
            stream: &mut stream,
            buf: &mut buf,
            buffers: &pool,
            draining: &draining,
            write_timeout: Duration::from_secs(1),
        };
        assert_eq!(down.method(&head), b"GET");
        let (path, query) = down.path_and_query(&head);
        assert_eq!(path, b"/pets/a%2Fb/toys", "percent-encoding kept");
        assert_eq!(query, b"x=1&x=2");
        let headers: Vec<_> = down.headers().collect();
        assert_eq!(
            headers,
            [
                (&b"Host"[..], &b"h"[..]),
                (b"X-Tag", b"one"),
                (b"x-tag", b"two")
            ],
            "order, case and duplicates kept"
        );
        assert_eq!(down.header(b"x-TAG"), Some(&b"one"[..]));
        assert_eq!(down.header(b"absent"), None);
        let route = RoutePlan {
            params: vec!["id".into()],
            ..test_route()
        };
        let params: Vec<_> = down.path_params(&route).collect();
        assert_eq!(params, [("id", &b"a%2Fb"[..])]);
    }

    #[test]
    fn a_request_without_a_query_has_an_empty_one() {
        let (mut buf, head) = parsed(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", vec![]);
        let pool = BufferPool::new(1024, 1);
        let draining = Cell::new(false);
        let down = Downstream {
            stream: &mut (),
            buf: &mut buf,
            buffers: &pool,
            draining: &draining,
            write_timeout: Duration::from_secs(1),
        };
        assert_eq!(down.path_and_query(&head), (&b"/a"[..], &b""[..]));
    }

    fn test_route() -> RoutePlan {
        RoutePlan {
            api: 0,
            stage: "$default".into(),
            route_key: "GET /pets/{id}/toys".into(),
            prefix_len: 0,
            params: vec![],
            stage_variables: Default::default(),
            integration: tollgate_config::plan::IntegrationPlan::NotFound,
            limits: Default::default(),
        }
    }
}
