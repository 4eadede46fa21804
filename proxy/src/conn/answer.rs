//! Answers the connection writes itself: gateway responses from the catalogue (with extra
//! header lines, for a 429's `Retry-After`), refusals that keep or close the connection, and
//! answers to heads that never parsed.

use std::time::{Duration, Instant};

use tollgate_config::responses::{ResponseCatalogue, ResponseType};

use super::*;

impl Conn {
    pub(super) async fn reject_head(&mut self, e: &HeadError, buf: IoBuf, started: Instant) {
        let kind = match e.status() {
            414 => ResponseType::UriTooLong,
            431 => ResponseType::RequestHeaderFieldsTooLarge,
            417 => ResponseType::ExpectationFailed,
            501 => ResponseType::NotImplemented,
            _ => ResponseType::BadRequest,
        };
        self.worker.buffers.give(buf);
        self.answer_unparsed(kind, Some(e.message()), started).await;
    }

    /// Answers a request whose head never parsed (malformed, or too slow) from the gateway's
    /// default responses, with a fresh request id; the connection closes after it. `started`:
    /// when the head began to arrive (the latency logged).
    pub(super) async fn answer_unparsed(
        &mut self,
        kind: ResponseType,
        detail: Option<&'static str>,
        started: Instant,
    ) {
        let plan = self.worker.plan();
        let id = self.worker.ids.next_id();
        let mut out = self.worker.buffers.take_plain();
        let reply = Reply {
            id_header: &plan.plan.settings.request_id_header,
            request_id: id.as_bytes(),
            head_request: false,
            close: true,
            date: self.worker.date.get(),
            extra: b"",
            own: b"",
        };
        let catalogue = &plan.plan.default_responses;
        let status = respond::gateway(&mut out, catalogue, kind, detail, reply);
        plan.unmatched.record(status, started.elapsed());
        // A malformed head counts for escalation (by the connection's source: no head, no
        // forwarding header).
        if let Some(p) = plan
            .plan
            .prefilter
            .as_ref()
            .filter(|p| !p.escalation.is_empty())
        {
            if let Some(offense) = crate::prefilter::offense_of(status, Some(kind)) {
                let now = crate::prefilter::now_ms();
                crate::prefilter::offend(p, &self.worker.prefilter, self.peer.ip(), offense, now);
            }
        }
        if let Some(log) = &plan.plan.access_log {
            let outcome = Outcome::default();
            outcome
                .error_message
                .set(Some(detail.unwrap_or(kind.default_message())));
            outcome
                .integration
                .response_length
                .set(respond::body_len(&out));
            let answered = Answered {
                request_id: id.as_bytes(),
                ip: self.peer.ip(),
                started,
                status,
                route_key: "",
                api_id: "",
                stage: "",
                outcome: &outcome,
            };
            Captured::nothing(&self.worker).log(&self.worker, &log.format, &answered);
        }
        let timeout = Duration::from_millis(plan.plan.limits.response_write_timeout_ms);
        let (_, out) = write_all(&mut self.stream, out, timeout).await;
        self.worker.buffers.give_plain(out);
    }

    /// Answers a request without reading its body; the connection stays open only when there
    /// is no body (unread body bytes would be taken for the next request).
    pub(super) async fn refuse(
        &mut self,
        wp: &WorkerPlan,
        catalogue: &ResponseCatalogue,
        kind: ResponseType,
        facts: &Facts,
        buf: IoBuf,
    ) -> (u16, After, IoBuf) {
        self.refuse_with(wp, catalogue, kind, facts, buf, b"").await
    }

    /// [`Conn::refuse`] with more header lines.
    pub(super) async fn refuse_with(
        &mut self,
        wp: &WorkerPlan,
        catalogue: &ResponseCatalogue,
        kind: ResponseType,
        facts: &Facts,
        mut buf: IoBuf,
        extra: &[u8],
    ) -> (u16, After, IoBuf) {
        let close = facts.head.framing != BodyFraming::None || !facts.head.keep_alive;
        let status = self
            .answer_with(wp, catalogue, kind, None, facts, close, extra)
            .await;
        let head_len = facts.head.head_len.min(buf.data.len());
        buf.data.drain(..head_len);
        (
            status,
            if close {
                After::Close
            } else {
                After::KeepAlive
            },
            buf,
        )
    }

    /// Writes a gateway response; returns its status.
    pub async fn answer(
        &mut self,
        wp: &WorkerPlan,
        catalogue: &ResponseCatalogue,
        kind: ResponseType,
        detail: Option<&'static str>,
        facts: &Facts,
        close: bool,
    ) -> u16 {
        self.answer_with(wp, catalogue, kind, detail, facts, close, b"")
            .await
    }

    /// [`Conn::answer`] with more header lines (each ending in CRLF).
    #[allow(clippy::too_many_arguments)]
    pub async fn answer_with(
        &mut self,
        wp: &WorkerPlan,
        catalogue: &ResponseCatalogue,
        kind: ResponseType,
        detail: Option<&'static str>,
        facts: &Facts,
        close: bool,
        extra: &[u8],
    ) -> u16 {
        let mut out = self.worker.buffers.take_plain();
        let mut reply = facts.reply(&wp.plan.settings.request_id_header, close);
        reply.own = extra;
        let status = respond::gateway(&mut out, catalogue, kind, detail, reply);
        let outcome = &facts.outcome;
        outcome
            .error_message
            .set(Some(detail.unwrap_or(kind.default_message())));
        outcome.gateway_kind.set(Some(kind));
        outcome
            .integration
            .response_length
            .set(respond::body_len(&out));
        self.send(wp, out).await;
        status
    }

    /// Writes `out` to the client within the response write timeout; recycles the buffer.
    pub async fn send(&mut self, wp: &WorkerPlan, out: Vec<u8>) -> bool {
        let timeout = Duration::from_millis(wp.plan.limits.response_write_timeout_ms);
        let (res, out) = write_all(&mut self.stream, out, timeout).await;
        self.worker.buffers.give_plain(out);
        res.is_ok()
    }
}
