//! Heads tollgate writes: the request head sent upstream and the response head sent back
//! downstream. Client header names keep their case, order and duplicates; hop-by-hop headers
//! (and any the `Connection` header names) are dropped; forwarding headers are added.

use std::net::SocketAddr;
use std::ops::Range;

use tollgate_config::plan::{HttpTarget, RoutePlan, UpstreamPlan};
use tollgate_config::template::Part;

use crate::client_cert::TlsSession;
use crate::wire::http1::{
    connection_tokens_contain, is_hop_by_hop, HeaderSpan, RequestHead, Version,
};
use crate::wire::respond::{header, status_line};

/// Headers tollgate sets itself on the upstream request; the client's copies are replaced
/// (X-Forwarded-For and Forwarded are extended, not replaced).
const REPLACED: [&[u8]; 6] = [
    b"host",
    b"content-length",
    b"expect",
    b"x-forwarded-proto",
    b"x-forwarded-port",
    b"x-forwarded-host",
];

/// Everything the upstream request head is made from.
#[derive(Debug)]
pub struct UpstreamHead<'a> {
    /// The client's head bytes.
    pub buf: &'a [u8],
    /// The parsed client head.
    pub head: &'a RequestHead,
    /// Its header spans.
    pub headers: &'a [HeaderSpan],
    /// Route captures (ranges of the path).
    pub captures: &'a [Range<usize>],
    /// The matched route.
    pub route: &'a RoutePlan,
    /// Its integration.
    pub target: &'a HttpTarget,
    /// The upstream.
    pub upstream: &'a UpstreamPlan,
    /// Client address.
    pub peer: SocketAddr,
    /// Port the client connected to.
    pub local_port: u16,
    /// Request id header name (lowercase).
    pub id_header: &'a str,
    /// Request id.
    pub request_id: &'a [u8],
    /// The client asked for an upgrade the gateway passes on (its `Upgrade` headers are
    /// forwarded with `connection: upgrade`).
    pub upgrade: bool,
    /// The client's TLS session (`X-Forwarded-Proto: https`, `Forwarded: proto=https`, the
    /// client certificate's headers).
    pub tls: Option<&'a TlsSession>,
    /// Header names only the gateway may set (client-certificate fields): the client's copies
    /// are dropped.
    pub strip: &'a [Box<str>],
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn push_ip(out: &mut Vec<u8>, addr: SocketAddr) {
    use std::io::Write;
    let _ = write!(out, "{}", addr.ip());
}

impl UpstreamHead<'_> {
    /// The scheme the client used.
    fn scheme(&self) -> &'static [u8] {
        if self.tls.is_some() {
            b"https"
        } else {
            b"http"
        }
    }

    /// Writes the request line and headers, without the framing header and the final CRLF
    /// (the caller adds them once it knows how the body goes).
    pub fn write(&self, out: &mut Vec<u8>) {
        let buf = self.buf;
        let head = self.head;
        out.extend_from_slice(head.method_span.get(buf));
        out.push(b' ');
        self.write_target(out);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        header(out, b"host", self.upstream.authority.as_bytes());
        let connection = ConnectionTokens::collect(buf, self.headers);
        let mut xff: Option<&[u8]> = None;
        let mut forwarded: Option<&[u8]> = None;
        for h in self.headers {
            let name = h.name.get(buf);
            let value = h.value.get(buf);
            if eq(name, b"x-forwarded-for") {
                xff = Some(value);
                continue;
            }
            if eq(name, b"forwarded") {
                forwarded = Some(value);
                continue;
            }
            let skip = is_hop_by_hop(name)
                || REPLACED.iter().any(|r| eq(name, r))
                || eq(name, self.id_header.as_bytes())
                || connection.lists(name)
                || self.strip.iter().any(|s| eq(name, s.as_bytes()))
                || self
                    .target
                    .request_remove
                    .iter()
                    .any(|r| eq(name, r.as_bytes()))
                || self
                    .target
                    .request_set
                    .iter()
                    .any(|(n, _)| eq(name, n.as_bytes()));
            if !skip || (self.upgrade && eq(name, b"upgrade")) {
                header(out, name, value);
            }
        }
        if self.upgrade {
            out.extend_from_slice(b"connection: upgrade\r\n");
        }
        // X-Forwarded-For: the client's list (when it sent one), then the peer.
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(v) = xff {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
        push_ip(out, self.peer);
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(self.scheme());
        out.extend_from_slice(b"\r\nx-forwarded-port: ");
        out.extend_from_slice(itoa::Buffer::new().format(self.local_port).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(host) = head.host {
            header(out, b"x-forwarded-host", host.get(buf));
        }
        out.extend_from_slice(b"forwarded: ");
        if let Some(v) = forwarded {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"for=");
        if self.peer.is_ipv6() {
            out.extend_from_slice(b"\"[");
            push_ip(out, self.peer);
            out.extend_from_slice(b"]\"");
        } else {
            push_ip(out, self.peer);
        }
        out.extend_from_slice(b";proto=");
        out.extend_from_slice(self.scheme());
        if let Some(host) = head.host {
            if !host.is_empty() {
                out.extend_from_slice(b";host=\"");
                out.extend_from_slice(host.get(buf));
                out.push(b'"');
            }
        }
        out.extend_from_slice(b"\r\n");
        header(out, self.id_header.as_bytes(), self.request_id);
        self.write_client_cert(out);
        for (n, v) in &self.target.request_set {
            header(out, n.as_bytes(), v.as_bytes());
        }
    }

    /// The verified client certificate's fields, under its policy's header names.
    fn write_client_cert(&self, out: &mut Vec<u8>) {
        let Some(tls) = self.tls else { return };
        let (Some(cert), Some(names)) = (&tls.client_cert, &tls.client_cert_headers) else {
            return;
        };
        let fields = [
            (&names.subject, &cert.subject),
            (&names.issuer, &cert.issuer),
            (&names.serial, &cert.serial),
            (&names.not_before, &cert.not_before),
            (&names.not_after, &cert.not_after),
        ];
        for (name, value) in fields {
            if let Some(name) = name {
                header(out, name.as_bytes(), value.as_bytes());
            }
        }
        if let Some(name) = &names.pem {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            cert.write_pem_url_encoded(out);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The upstream request target: the integration's path template (or the request path
    /// without the stage prefix), then the integration's query and the client's, raw.
    fn write_target(&self, out: &mut Vec<u8>) {
        let path = self.head.path.get(self.buf);
        match &self.target.path {
            Some(parts) => self.write_parts(out, parts, path),
            None => {
                let rest = path.get(self.route.prefix_len..).unwrap_or(b"");
                if rest.is_empty() || rest[0] != b'/' {
                    out.push(b'/');
                }
                out.extend_from_slice(rest);
            }
        }
        let client_query = self.head.query.map(|q| q.get(self.buf));
        match (&self.target.query, client_query) {
            (Some(parts), q) => {
                out.push(b'?');
                self.write_parts(out, parts, path);
                if let Some(q) = q.filter(|q| !q.is_empty()) {
                    out.push(b'&');
                    out.extend_from_slice(q);
                }
            }
            (None, Some(q)) => {
                out.push(b'?');
                out.extend_from_slice(q);
            }
            (None, None) => {}
        }
    }

    fn write_parts(&self, out: &mut Vec<u8>, parts: &[Part], path: &[u8]) {
        for part in parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Capture(i) => {
                    if let Some(r) = self.captures.get(*i) {
                        out.extend_from_slice(path.get(r.clone()).unwrap_or(b""));
                    }
                }
            }
        }
    }
}

/// The values of a head's `Connection` headers (up to a few; more are treated as listing
/// everything, which only drops headers), collected once per head so checking each header
/// against them is linear, not quadratic.
struct ConnectionTokens<'a> {
    values: [&'a [u8]; 4],
    len: usize,
    overflow: bool,
}

impl<'a> ConnectionTokens<'a> {
    fn collect(buf: &'a [u8], headers: &[HeaderSpan]) -> Self {
        let mut tokens = Self {
            values: [&[]; 4],
            len: 0,
            overflow: false,
        };
        for h in headers
            .iter()
            .filter(|h| eq(h.name.get(buf), b"connection"))
        {
            if tokens.len == tokens.values.len() {
                tokens.overflow = true;
                break;
            }
            tokens.values[tokens.len] = h.value.get(buf);
            tokens.len += 1;
        }
        tokens
    }

    /// True when a Connection header lists `name` (such a header is hop-by-hop).
    fn lists(&self, name: &[u8]) -> bool {
        if self.overflow {
            return true;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        self.values[..self.len]
            .iter()
            .any(|v| connection_tokens_contain(v, name))
    }
}

/// What the downstream response head needs beyond the upstream's head.
#[derive(Debug)]
pub struct DownstreamHead<'a> {
    /// Upstream status.
    pub status: u16,
    /// Upstream head bytes and header spans.
    pub buf: &'a [u8],
    /// Upstream header spans.
    pub headers: &'a [HeaderSpan],
    /// Integration (response header mappings).
    pub target: &'a HttpTarget,
    /// Request id header and value.
    pub id_header: &'a str,
    /// Request id.
    pub request_id: &'a [u8],
    /// Keep the upstream's Content-Length (a HEAD response).
    pub keep_content_length: bool,
    /// A `101` to an upgrade: the upstream's `Upgrade` header is kept and `connection: upgrade`
    /// added.
    pub upgrade: bool,
}

impl DownstreamHead<'_> {
    /// Writes the status line and headers, without framing and final CRLF.
    pub fn write(&self, out: &mut Vec<u8>) {
        let buf = self.buf;
        status_line(out, self.status);
        let connection = ConnectionTokens::collect(buf, self.headers);
        for h in self.headers {
            let name = h.name.get(buf);
            let skip = is_hop_by_hop(name)
                || (eq(name, b"content-length") && !self.keep_content_length)
                || eq(name, self.id_header.as_bytes())
                || connection.lists(name)
                || self
                    .target
                    .response_remove
                    .iter()
                    .any(|r| eq(name, r.as_bytes()))
                || self
                    .target
                    .response_set
                    .iter()
                    .any(|(n, _)| eq(name, n.as_bytes()));
            if !skip || (self.upgrade && eq(name, b"upgrade")) {
                header(out, name, h.value.get(buf));
            }
        }
        if self.upgrade {
            out.extend_from_slice(b"connection: upgrade\r\n");
        }
        for (n, v) in &self.target.response_set {
            header(out, n.as_bytes(), v.as_bytes());
        }
        header(out, self.id_header.as_bytes(), self.request_id);
    }
}

/// Appends the connection header a response needs for the client's version and our choice.
pub fn connection_header(out: &mut Vec<u8>, version: Version, keep_alive: bool) {
    match (version, keep_alive) {
        (Version::Http11, false) => out.extend_from_slice(b"connection: close\r\n"),
        (Version::Http10, true) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
}
