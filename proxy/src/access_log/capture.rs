//! The request side of an access log line, copied out of the request head when it parses:
//! the head's bytes are gone once the body has been read (the buffer is drained and reused),
//! but the line is written after the response. The copy goes into a pooled buffer, so logging
//! allocates nothing per request once warm, and nothing at all happens when the plan has no
//! access log.

use std::ops::Range;
use std::time::Instant;

use crate::worker::Worker;
use tollgate_backends::wire::http1::head::find_header;
use tollgate_backends::wire::http1::{HeaderSpan, RequestHead, Version};

use super::Record;

/// What a log line needs from the request head, copied.
pub struct Captured {
    bytes: Vec<u8>,
    method: Range<usize>,
    path: Range<usize>,
    host: Range<usize>,
    user_agent: Range<usize>,
    protocol: &'static str,
}

/// What the gateway learned answering the request.
pub struct Answered<'a> {
    /// Request id.
    pub request_id: &'a [u8],
    /// Resolved client address.
    pub ip: std::net::IpAddr,
    /// When the head was complete.
    pub started: Instant,
    /// Status sent.
    pub status: u16,
    /// Route key, API id and stage (empty when no API matched).
    pub route_key: &'a str,
    /// API id.
    pub api_id: &'a str,
    /// Stage.
    pub stage: &'a str,
    /// What the phases recorded.
    pub outcome: &'a crate::pipeline::request::Outcome,
    /// The client connection's TLS session.
    pub tls: Option<&'a tollgate_backends::client_cert::TlsSession>,
}

fn append(bytes: &mut Vec<u8>, value: &[u8]) -> Range<usize> {
    let start = bytes.len();
    bytes.extend_from_slice(value);
    start..bytes.len()
}

impl Captured {
    /// Copies the method, path (without the query, as API Gateway's `$context.path`), Host and
    /// User-Agent of a parsed head.
    pub fn take(worker: &Worker, data: &[u8], head: &RequestHead, headers: &[HeaderSpan]) -> Self {
        let mut bytes = worker.buffers.take_plain();
        let method = append(&mut bytes, head.method_span.get(data));
        let path = append(&mut bytes, head.path.get(data));
        let host = append(&mut bytes, head.host.map_or(&[][..], |h| h.get(data)));
        let ua = find_header(data, headers, "user-agent").unwrap_or_default();
        let user_agent = append(&mut bytes, ua);
        let protocol = match head.version {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        };
        Captured {
            bytes,
            method,
            path,
            host,
            user_agent,
            protocol,
        }
    }

    /// Nothing known of the request (its head never parsed).
    pub fn nothing(worker: &Worker) -> Self {
        Captured {
            bytes: worker.buffers.take_plain(),
            method: 0..0,
            path: 0..0,
            host: 0..0,
            user_agent: 0..0,
            protocol: "HTTP/1.1",
        }
    }

    /// Gives the copy back to the pool without logging (a request closed without an answer).
    pub fn discard(self, worker: &Worker) {
        worker.buffers.give_plain(self.bytes);
    }

    /// Writes the line into the worker's log buffer and gives the copy back to the pool.
    pub fn log(
        self,
        worker: &Worker,
        format: &tollgate_config::access_log::LineFormat,
        a: &Answered<'_>,
    ) {
        let elapsed = a.started.elapsed();
        let now_ms = crate::clock::now_ms();
        let b = &self.bytes;
        let outcome = a.outcome;
        let record = Record {
            request_id: a.request_id,
            ip: a.ip,
            request_time_epoch_ms: now_ms.saturating_sub(elapsed.as_millis() as u64),
            http_method: &b[self.method.clone()],
            route_key: a.route_key,
            path: &b[self.path.clone()],
            protocol: self.protocol,
            status: a.status,
            response_length: outcome.integration.response_length.get(),
            response_latency_ms: elapsed.as_millis() as u64,
            integration_latency_ms: outcome
                .integration
                .latency
                .get()
                .map(|d| d.as_millis() as u64),
            integration_status: outcome.integration.status.get(),
            stage: a.stage,
            api_id: a.api_id,
            domain_name: &b[self.host.clone()],
            user_agent: &b[self.user_agent.clone()],
            error_message: outcome.error_message.get().unwrap_or(""),
            tls: a.tls,
        };
        worker.access_log.record(format, &record);
        worker.buffers.give_plain(self.bytes);
    }
}
