//! Writing responses the gateway makes itself: the catalogue of gateway response types
//! (`{"message": "..."}` JSON, the request id header, per-API overrides), and the status and
//! header lines every writer shares (the `mock` integration renders its own with them).

use tollgate_config::responses::{ResponseCatalogue, ResponseType};

/// What a gateway-made response needs to know about its request.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Request id header name (lowercase).
    pub id_header: &'a str,
    /// Request id value.
    pub request_id: &'a [u8],
    /// Answering a HEAD request: no body.
    pub head_request: bool,
    /// Ask the client to close (and close after writing).
    pub close: bool,
    /// The `date` header value (the worker's cached IMF-fixdate).
    pub date: [u8; 29],
    /// More header lines, each ending in CRLF: what the phases add to every response (see
    /// `exchange::ResponseFilters`).
    pub extra: &'a [u8],
    /// The answer's own header lines, each ending in CRLF (`Retry-After` of a 429).
    pub own: &'a [u8],
}

/// Canonical reason phrase for a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Appends `HTTP/1.1 STATUS REASON\r\n`.
pub fn status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`.
pub fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `content-length: N\r\n`.
pub fn content_length(out: &mut Vec<u8>, n: u64) {
    header(
        out,
        b"content-length",
        itoa::Buffer::new().format(n).as_bytes(),
    );
}

/// Body bytes of a response rendered into `out` (after its head's blank line).
pub fn body_len(out: &[u8]) -> u64 {
    out.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| (out.len() - p - 4) as u64)
}

/// Renders a gateway response of `kind` into `out`; returns the status sent.
/// `detail` replaces the type's default message (e.g. which header was malformed).
pub fn gateway(
    out: &mut Vec<u8>,
    catalogue: &ResponseCatalogue,
    kind: ResponseType,
    detail: Option<&str>,
    reply: Reply<'_>,
) -> u16 {
    let message = detail.unwrap_or(kind.default_message());
    let custom = catalogue.override_for(kind);
    let status = custom
        .and_then(|c| c.status)
        .unwrap_or(kind.default_status());
    status_line(out, status);
    header(out, b"date", &reply.date);
    header(out, b"content-type", b"application/json");
    header(out, reply.id_header.as_bytes(), reply.request_id);
    if let Some(c) = custom {
        for (n, v) in &c.headers {
            header(out, n.as_bytes(), v.as_bytes());
        }
    }
    out.extend_from_slice(reply.own);
    out.extend_from_slice(reply.extra);
    if reply.close {
        header(out, b"connection", b"close");
    }
    // The body is rendered first and the length line rotated in front of it afterwards: one
    // buffer, no temporary allocation.
    let body_start = out.len();
    match custom.and_then(|c| c.body.as_deref()) {
        Some(template) => render_template(out, template, message, reply.request_id),
        None => {
            out.extend_from_slice(b"{\"message\":");
            json_string(out, message);
            out.push(b'}');
        }
    }
    let body_len = out.len() - body_start;
    content_length(out, body_len as u64);
    out.extend_from_slice(b"\r\n");
    let trailer_len = out.len() - body_start - body_len;
    out[body_start..].rotate_right(trailer_len);
    if reply.head_request {
        out.truncate(body_start + trailer_len);
    }
    status
}

fn render_template(out: &mut Vec<u8>, template: &str, message: &str, request_id: &[u8]) {
    let mut rest = template;
    while let Some(i) = rest.find("$context.") {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$context.error.messageString") {
            json_string(out, message);
            rest = r;
        } else if let Some(r) = after.strip_prefix("$context.error.message") {
            json_escaped(out, message);
            rest = r;
        } else if let Some(r) = after.strip_prefix("$context.requestId") {
            out.extend_from_slice(request_id);
            rest = r;
        } else {
            out.extend_from_slice(b"$context.");
            rest = &after["$context.".len()..];
        }
    }
    out.extend_from_slice(rest.as_bytes());
}

/// Appends `s` as a quoted JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_escaped(out, s);
    out.push(b'"');
}

fn json_escaped(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(b"0123456789abcdef"[usize::from(b >> 4)]);
                out.push(b"0123456789abcdef"[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tollgate_config::responses::ResponseOverride;

    fn reply(close: bool) -> Reply<'static> {
        Reply {
            id_header: "x-request-id",
            request_id: b"abc",
            head_request: false,
            close,
            date: *b"Sun, 06 Nov 1994 08:49:37 GMT",
            extra: b"",
            own: b"",
        }
    }

    #[test]
    fn default_response_is_json_with_length_and_id() {
        let mut out = Vec::new();
        let status = gateway(
            &mut out,
            &ResponseCatalogue::default(),
            ResponseType::ResourceNotFound,
            None,
            reply(false),
        );
        assert_eq!(status, 404);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-type: application/json\r\nx-request-id: abc\r\ncontent-length: 23\r\n\r\n{\"message\":\"Not Found\"}"
        );
    }

    #[test]
    fn override_changes_status_headers_and_body_template() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            ResponseType::Default4xx,
            ResponseOverride {
                status: Some(418),
                headers: vec![("x-a".into(), "b".into())],
                body: Some(
                    "{\"error\":\"$context.error.message\",\"id\":\"$context.requestId\"}".into(),
                ),
            },
        );
        let mut out = Vec::new();
        let status = gateway(
            &mut out,
            &ResponseCatalogue::new(overrides),
            ResponseType::BadRequest,
            Some("bad \"x\""),
            reply(true),
        );
        assert_eq!(status, 418);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 418 Unknown\r\n"), "{text}");
        assert!(text.contains("x-a: b\r\n") && text.contains("connection: close\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body, "{\"error\":\"bad \\\"x\\\"\",\"id\":\"abc\"}");
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
