//! Answers to heads that never parsed (malformed, too large, too slow): written from the
//! gateway's default responses with a fresh request id, logged and counted as unmatched; the
//! connection closes after them. (Answers to parsed requests are the pipeline's respond phase.)

use std::time::{Duration, Instant};

use tollgate_config::responses::ResponseType;

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
        self.client.worker.buffers.give(buf);
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
        let plan = self.client.worker.plan();
        let id = self.client.worker.ids.next_id();
        let mut out = self.client.worker.buffers.take_plain();
        let reply = Reply {
            id_header: &plan.plan.settings.request_id_header,
            request_id: id.as_bytes(),
            head_request: false,
            close: true,
            date: self.client.worker.date.get(),
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
                let now = crate::clock::now_ms();
                crate::prefilter::offend(
                    p,
                    &self.client.worker.prefilter,
                    self.client.peer.ip(),
                    offense,
                    now,
                );
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
                ip: self.client.peer.ip(),
                started,
                status,
                route_key: "",
                api_id: "",
                stage: "",
                outcome: &outcome,
                tls: self
                    .client
                    .stream
                    .tls()
                    .and_then(|s| s.session())
                    .map(|s| &**s),
            };
            Captured::nothing(&self.client.worker).log(&self.client.worker, &log.format, &answered);
        }
        let timeout = Duration::from_millis(plan.plan.limits.response_write_timeout_ms);
        let (_, out) = write_all(&mut self.client.stream, out, timeout).await;
        self.client.worker.buffers.give_plain(out);
    }
}
