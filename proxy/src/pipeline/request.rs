//! What one request carries through the phases: facts taken from its head before the body may
//! overwrite the buffer (head spans, request id, start time, resolved client address), and the
//! outcome the phases record for its access log line.

use std::cell::Cell;
use std::net::IpAddr;
use std::time::Instant;

use tollgate_backends::exchange::Report;
use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::http1::head::find_header;
use tollgate_backends::wire::http1::{Method, RequestHead};
use tollgate_backends::wire::respond::Reply;
use tollgate_config::plan::ForwardingHeader;
use tollgate_config::responses::ResponseType;
use tollgate_config::Plan;

use super::client::Client;
use crate::client_addr;

/// Longest request id accepted from a client; longer ones are replaced by a generated id.
const REQUEST_ID_MAX: usize = 128;

/// The request id of one request, on the stack.
#[derive(Clone, Copy)]
pub struct RequestIdBuf {
    bytes: [u8; REQUEST_ID_MAX],
    len: usize,
}

impl RequestIdBuf {
    /// The id.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The client's id from the request id header when it is usable (printable, not too long),
    /// or a fresh one.
    fn of(client: &Client, buf: &IoBuf, header: &str) -> Self {
        let mut id = RequestIdBuf {
            bytes: [0; REQUEST_ID_MAX],
            len: 0,
        };
        let given = find_header(&buf.data, &buf.headers, header).filter(|v| {
            !v.is_empty() && v.len() <= REQUEST_ID_MAX && v.iter().all(|b| b.is_ascii_graphic())
        });
        let generated;
        let value = match given {
            Some(v) => v,
            None => {
                generated = client.worker.ids.next_id();
                generated.as_bytes()
            }
        };
        id.bytes[..value.len()].copy_from_slice(value);
        id.len = value.len();
        id
    }
}

/// What a request's phases learned about its answer, for its access log line. Cells, so
/// phases that see the request's facts only by shared reference can still record.
#[derive(Default)]
pub struct Outcome {
    /// What the integration reported (its status and latency, the response length).
    pub integration: Report,
    /// Message of a gateway-made error response.
    pub error_message: Cell<Option<&'static str>>,
    /// Type of a gateway-made response (escalation tells throttling from quota refusals).
    pub gateway_kind: Cell<Option<ResponseType>>,
}

/// Per-request facts taken from the head before the body may overwrite it.
pub struct Facts {
    /// The parsed head.
    pub head: RequestHead,
    /// Request id.
    pub id: RequestIdBuf,
    /// When the head was complete.
    pub started: Instant,
    /// `date` header value for gateway-made responses.
    pub date: [u8; 29],
    /// The client's address, resolved (see [`Facts::client_ip`]).
    client: IpAddr,
    /// What the phases learned.
    pub outcome: Outcome,
}

impl Facts {
    /// The facts of a request whose head just parsed into `buf`.
    pub fn new(client: &Client, plan: &Plan, head: RequestHead, buf: &IoBuf) -> Self {
        Facts {
            head,
            id: RequestIdBuf::of(client, buf, &plan.settings.request_id_header),
            started: Instant::now(),
            date: client.worker.date.get(),
            client: client_ip(client, plan, buf),
            outcome: Outcome::default(),
        }
    }

    /// The client's address: the connection's peer, or the address a PROXY protocol header
    /// gave, or — behind trusted proxies — the right-most untrusted hop of their forwarding
    /// header. Everything that needs "the client" (access log, forwarding headers, rate
    /// limits, policies) asks here.
    pub fn client_ip(&self) -> IpAddr {
        self.client
    }

    /// A reply descriptor for gateway-made responses.
    pub fn reply<'a>(&'a self, id_header: &'a str, close: bool) -> Reply<'a> {
        Reply {
            id_header,
            request_id: self.id.as_bytes(),
            head_request: self.head.method == Method::Head,
            close,
            date: self.date,
            extra: b"",
            own: b"",
        }
    }
}

/// The client address of a request (see [`Facts::client_ip`]).
fn client_ip(client: &Client, plan: &Plan, buf: &IoBuf) -> IpAddr {
    let peer = client.peer.ip();
    let trust = &plan.client_address;
    if trust.trusted_proxies.is_empty() {
        return peer;
    }
    let (name, kind): (&[u8], _) = match trust.header {
        ForwardingHeader::XForwardedFor => (
            b"x-forwarded-for",
            client_addr::ForwardedHeader::XForwardedFor,
        ),
        ForwardingHeader::Forwarded => (b"forwarded", client_addr::ForwardedHeader::Forwarded),
    };
    let data = &buf.data;
    let values = buf
        .headers
        .iter()
        .filter(|h| h.name.get(data).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(data));
    client_addr::client_from_header(peer, &trust.trusted_proxies, kind, values)
}
