//! The `mock` integration: a fixed status, headers and body from the plan.
//!
//! A buffered kind, so it comes in two halves: [`response`] renders the answer without any I/O
//! (unit tests drive it directly), and [`run`] is the I/O shell around it — read and discard
//! the request body so the connection can carry the next request, then write. (A mock has no
//! request half: it ignores the request.)

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use tollgate_config::plan::MockResponse;

use crate::exchange::{After, Downstream, Finished, ResponseFilters};
use crate::wire::body::{BodyError, BodyReader};
use crate::wire::http1::{BodyFraming, Version};
use crate::wire::respond::{body_len, content_length, header, status_line, Reply};
use crate::Request;

/// Answers with the mock response.
pub async fn run<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    m: &MockResponse,
) -> Finished {
    // The body is read and discarded so the connection can carry the next request, within
    // the request deadline.
    let deadline = req.started + Duration::from_millis(req.limits().request_timeout_ms);
    let discarded = monoio::time::timeout_at(deadline.into(), discard_body(req, down)).await;
    if let Err(e) = discarded.unwrap_or(Err(BodyError::Timeout)) {
        return Finished::body_failed(e);
    }
    let keep = req.head.keep_alive && !down.draining.get();
    let mut out = down.buffers.take_plain();
    let reply = req.reply(!keep);
    response(&mut out, m, reply, req.head.version, req.filters);
    req.report.response_length.set(body_len(&out));
    let ok = down.send(out).await;
    Finished::Sent {
        status: m.status,
        after: After::keep_if(ok && keep),
    }
}

/// Renders the mock response into `out`: status, `date`, the configured headers (a JSON
/// content type when none is set and there is a body), the request id, what the phases add,
/// the framing and the connection header the client's version needs.
pub fn response(
    out: &mut Vec<u8>,
    m: &MockResponse,
    reply: Reply<'_>,
    version: Version,
    filters: &ResponseFilters<'_>,
) {
    status_line(out, m.status);
    header(out, b"date", &reply.date);
    for (n, v) in &m.headers {
        header(out, n.as_bytes(), v.as_bytes());
    }
    let has_content_type = m.headers.iter().any(|(n, _)| n == "content-type");
    if !has_content_type && !m.body.is_empty() {
        header(out, b"content-type", b"application/json");
    }
    header(out, reply.id_header.as_bytes(), reply.request_id);
    out.extend_from_slice(reply.extra);
    content_length(out, m.body.len() as u64);
    if reply.close {
        header(out, b"connection", b"close");
    } else if version == Version::Http10 {
        // HTTP/1.0 clients need to hear that the connection stays open.
        header(out, b"connection", b"keep-alive");
    }
    filters.head(m.status, out);
    out.extend_from_slice(b"\r\n");
    if !reply.head_request {
        out.extend_from_slice(m.body.as_bytes());
        filters.body(m.body.as_bytes());
    }
    filters.end(true);
}

/// Reads and drops the request body, leaving pipelined bytes at the front of the buffer.
async fn discard_body<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
) -> Result<(), BodyError> {
    let head = req.head;
    if head.framing == BodyFraming::None {
        down.buf
            .data
            .drain(..head.head_len.min(down.buf.data.len()));
        return Ok(());
    }
    if !down.continue_if_expected(head).await {
        return Err(BodyError::Closed);
    }
    let limits = req.limits();
    let mut reader = BodyReader::new(head.framing, limits.body_bytes_max, head.head_len);
    let timeout = Duration::from_millis(limits.body_read_timeout_ms);
    while reader
        .next(down.stream, &mut down.buf.data, timeout)
        .await?
        .is_some()
    {}
    reader.finish(&mut down.buf.data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::ResponseObserver;
    use std::cell::RefCell;

    fn mock(body: &str, headers: &[(&str, &str)]) -> MockResponse {
        MockResponse {
            status: 201,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    fn reply(close: bool, head_request: bool) -> Reply<'static> {
        Reply {
            id_header: "x-request-id",
            request_id: b"r-1",
            head_request,
            close,
            date: *b"Sun, 06 Nov 1994 08:49:37 GMT",
            extra: b"",
            own: b"",
        }
    }

    fn render(m: &MockResponse, reply: Reply<'_>, version: Version, f: &ResponseFilters) -> String {
        let mut out = Vec::new();
        response(&mut out, m, reply, version, f);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_status_headers_id_and_body() {
        let m = mock("{\"ok\":true}", &[("x-kind", "demo")]);
        let text = render(
            &m,
            reply(false, false),
            Version::Http11,
            &ResponseFilters::NONE,
        );
        assert_eq!(
            text,
            "HTTP/1.1 201 Created\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\nx-kind: demo\r\n\
             content-type: application/json\r\nx-request-id: r-1\r\ncontent-length: 11\r\n\r\n\
             {\"ok\":true}"
        );
    }

    #[test]
    fn configured_content_type_wins_and_head_requests_get_no_body() {
        let m = mock("hi", &[("content-type", "text/plain")]);
        let text = render(
            &m,
            reply(true, true),
            Version::Http11,
            &ResponseFilters::NONE,
        );
        assert_eq!(text.matches("content-type").count(), 1, "{text}");
        assert!(text.contains("content-length: 2\r\n"), "{text}");
        assert!(text.ends_with("connection: close\r\n\r\n"), "{text}");
    }

    #[test]
    fn http10_keep_alive_is_announced() {
        let m = mock("", &[]);
        let text = render(
            &m,
            reply(false, false),
            Version::Http10,
            &ResponseFilters::NONE,
        );
        assert!(text.contains("connection: keep-alive\r\n"), "{text}");
        assert!(!text.contains("content-type"), "no body, no type: {text}");
    }

    /// Records what it is shown.
    #[derive(Default)]
    struct Recorder {
        seen: RefCell<Vec<String>>,
    }

    impl ResponseObserver for Recorder {
        fn head(&self, status: u16, head: &[u8]) {
            let last = String::from_utf8_lossy(head)
                .lines()
                .last()
                .unwrap()
                .to_owned();
            self.seen.borrow_mut().push(format!("head {status} {last}"));
        }
        fn body(&self, bytes: &[u8]) {
            let text = String::from_utf8_lossy(bytes);
            self.seen.borrow_mut().push(format!("body {text}"));
        }
        fn end(&self, complete: bool) {
            self.seen.borrow_mut().push(format!("end {complete}"));
        }
    }

    #[test]
    fn filters_add_header_lines_and_observe_the_response() {
        let recorder = Recorder::default();
        let filters = ResponseFilters {
            add_headers: b"access-control-allow-origin: *\r\n",
            observer: Some(&recorder),
        };
        let m = mock("hello", &[]);
        let mut r = reply(false, false);
        r.extra = filters.add_headers;
        let text = render(&m, r, Version::Http11, &filters);
        assert!(
            text.contains("x-request-id: r-1\r\naccess-control-allow-origin: *\r\n"),
            "{text}"
        );
        assert_eq!(
            *recorder.seen.borrow(),
            ["head 201 content-length: 5", "body hello", "end true"]
        );
    }
}
