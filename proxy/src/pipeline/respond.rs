//! The respond phase for answers the gateway makes itself: a phase that stops a request says
//! how ([`Stop`]), and this writes it from the API's (or the gateway's default) catalogue of
//! gateway responses — the status, the `{"message": …}` body, the request id, and the header
//! lines the stopping phase adds (a 429's `Retry-After` and `RateLimit` lines).

use std::time::Duration;

use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::http1::BodyFraming;
use tollgate_backends::wire::io::write_all;
use tollgate_backends::wire::respond;
use tollgate_backends::After;
use tollgate_config::responses::{ResponseCatalogue, ResponseType};

use super::client::Client;
use super::request::Facts;
use crate::limits::phase::{self, PolicyNote};
use crate::worker::WorkerPlan;

/// How a phase stops a request before (or instead of) its integration.
pub enum Stop {
    /// Close the connection without an answer (a refused client on its own connection).
    Close,
    /// Answer without reading the body; the connection stays open when there is none (unread
    /// body bytes would be taken for the next request).
    Refuse {
        /// The gateway response type.
        kind: ResponseType,
        /// Header lines of this answer (a 429's `Retry-After`, …).
        own: RefusalHeaders,
    },
    /// Answer and close (the body may be half read).
    Fail {
        /// The gateway response type.
        kind: ResponseType,
        /// A message replacing the type's default.
        detail: Option<&'static str>,
    },
}

impl Stop {
    /// A refusal without header lines of its own.
    pub fn refuse(kind: ResponseType) -> Self {
        Stop::Refuse {
            kind,
            own: RefusalHeaders::None,
        }
    }
}

/// Writes the answer `stop` asks for; returns the status sent (0 for none) and what becomes of
/// the connection, and hands back the buffer (with any pipelined bytes at its front).
///
/// `added`: the header lines the phases add to every response of the route (CORS, …); none
/// before the route is known.
pub async fn stop(
    client: &mut Client,
    wp: &WorkerPlan,
    catalogue: &ResponseCatalogue,
    facts: &Facts,
    mut buf: IoBuf,
    stop: Stop,
    added: &[u8],
) -> (u16, After, IoBuf) {
    let answered = Answered {
        wp,
        catalogue,
        facts,
        added,
    };
    match stop {
        Stop::Close => (0, After::Close, buf),
        Stop::Fail { kind, detail } => {
            let (status, _) = answered.write(client, kind, detail, true, b"").await;
            (status, After::Close, buf)
        }
        Stop::Refuse { kind, own } => {
            let close = facts.head.framing != BodyFraming::None || !facts.head.keep_alive;
            let mut lines = [0u8; 256];
            let n = own.render(&mut lines);
            let own = &lines[..n];
            let (status, written) = answered.write(client, kind, None, close, own).await;
            let head_len = facts.head.head_len.min(buf.data.len());
            buf.data.drain(..head_len);
            // An answer not wholly written (timeout, reset) leaves the stream mid-response:
            // the connection cannot carry another one.
            (status, After::keep_if(!close && written), buf)
        }
    }
}

/// What every gateway answer to one request shares.
struct Answered<'a> {
    wp: &'a WorkerPlan,
    catalogue: &'a ResponseCatalogue,
    facts: &'a Facts,
    added: &'a [u8],
}

impl Answered<'_> {
    /// Writes a gateway response of `kind`, with `own` header lines (each ending in CRLF), and
    /// records it in the request's outcome; returns its status and whether it was all written.
    async fn write(
        &self,
        client: &mut Client,
        kind: ResponseType,
        detail: Option<&'static str>,
        close: bool,
        own: &[u8],
    ) -> (u16, bool) {
        let (wp, facts) = (self.wp, self.facts);
        let mut out = client.worker.buffers.take_plain();
        let mut reply = facts.reply(&wp.plan.settings.request_id_header, close);
        reply.own = own;
        reply.extra = self.added;
        let status = respond::gateway(&mut out, self.catalogue, kind, detail, reply);
        let outcome = &facts.outcome;
        outcome
            .error_message
            .set(Some(detail.unwrap_or(kind.default_message())));
        outcome.gateway_kind.set(Some(kind));
        outcome
            .integration
            .response_length
            .set(respond::body_len(&out));
        let timeout = Duration::from_millis(wp.plan.limits.response_write_timeout_ms);
        let (res, out) = write_all(&mut client.stream, out, timeout).await;
        client.worker.buffers.give_plain(out);
        (status, res.is_ok())
    }
}

/// The header lines of a refusal, rendered when it is written.
#[derive(Debug, Clone, Copy)]
pub enum RefusalHeaders {
    /// None.
    None,
    /// `Retry-After: 1` (the keeper did not reserve quota in time).
    RetrySoon,
    /// `Retry-After` and, when enabled, the `RateLimit` fields of the limit that refused.
    Limit {
        /// The limit.
        note: PolicyNote,
        /// Add `RateLimit-Policy` / `RateLimit`.
        rate_limit_headers: bool,
    },
}

impl RefusalHeaders {
    /// Renders the lines into `out`; returns their length.
    pub fn render(&self, out: &mut [u8; 256]) -> usize {
        match self {
            RefusalHeaders::None => 0,
            RefusalHeaders::RetrySoon => {
                let line = b"retry-after: 1\r\n";
                out[..line.len()].copy_from_slice(line);
                line.len()
            }
            RefusalHeaders::Limit {
                note,
                rate_limit_headers,
            } => phase::refusal_headers(out, note, *rate_limit_headers),
        }
    }
}
