//! What the event shapes share: maps of pairs, query parsing, bodies, the client certificate,
//! the domain prefix and the request time.

use base64::Engine;
use serde_json::{Map, Value};
use tollgate_config::period::civil_from_days;

use super::EventInput;
use crate::client_cert::ClientCertificate;

pub(super) fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn opt(v: Option<&str>) -> Value {
    v.map_or(Value::Null, s)
}

/// A map of name/value pairs, `None` when there are none (the last of duplicates wins).
pub(super) fn pairs(list: &[(&str, &str)]) -> Option<Value> {
    if list.is_empty() {
        return None;
    }
    let map: Map<String, Value> = list.iter().map(|(k, v)| ((*k).into(), s(v))).collect();
    Some(Value::Object(map))
}

/// `name=value` pairs of a query string, percent-decoded, in order; a piece without `=` has
/// an empty value, empty pieces are skipped.
pub(super) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes (a malformed escape is kept as written; `+` is not a space).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The body as the event carries it: the text, or base64 (standard alphabet, padded) with
/// `isBase64Encoded: true`. A body that is not UTF-8 is always base64.
pub(super) fn body(input: &EventInput<'_>, text: bool) -> (String, bool) {
    match std::str::from_utf8(input.body) {
        Ok(t) if text => (t.to_owned(), false),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(input.body),
            true,
        ),
    }
}

/// HTTP APIs: whether a body of this content type is sent as text. AWS does not publish the
/// list ("Working with binary media types for HTTP APIs" only says binary payloads are
/// base64-encoded); the rule followed is the common one: no content type, `text/*`,
/// JSON (`application/json`, `*+json`), XML (`application/xml`, `*+xml`), JavaScript
/// (`application/javascript`, `application/x-javascript`, `application/ecmascript`) and
/// `application/x-www-form-urlencoded` are text; everything else is binary. (The recorded
/// 2.0 event with a JSON body and no `Content-Type` header carries it as text.)
pub fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
        )
}

/// REST: whether the content type is one of the API's binary media types ("Working with
/// binary media types for REST APIs": the request's `Content-Type` against
/// `binaryMediaTypes`, `*/*` matching everything).
pub(super) fn is_binary_media_type(content_type: Option<&str>, binary: &[&str]) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    binary.iter().any(|t| {
        let t = t.to_ascii_lowercase();
        if t == "*/*" || t == media {
            return true;
        }
        match t.strip_suffix("/*") {
            Some(major) => media.split('/').next() == Some(major),
            None => false,
        }
    })
}

/// `clientCert` of `requestContext.authentication` (2.0) and `identity` (1.0, REST)
/// ("Configuring mutual TLS authentication for an HTTP API"/"…for a REST API").
pub(super) fn client_cert(cert: &ClientCertificate) -> Value {
    let mut c = Map::new();
    c.insert("clientCertPem".into(), Value::String(pem(&cert.der)));
    c.insert("subjectDN".into(), s(&cert.subject));
    c.insert("issuerDN".into(), s(&cert.issuer));
    c.insert("serialNumber".into(), s(&cert.serial));
    let mut validity = Map::new();
    validity.insert("notBefore".into(), s(&cert.not_before));
    validity.insert("notAfter".into(), s(&cert.not_after));
    c.insert("validity".into(), Value::Object(validity));
    Value::Object(c)
}

/// A certificate as PEM: 64-character base64 lines, each ending in `\n`.
fn pem(der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The first label of a domain name (`$context.domainPrefix`).
pub(super) fn domain_prefix(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

/// `12/Mar/2020:19:03:58 +0000` for milliseconds since the Unix epoch (UTC).
pub fn request_time(epoch_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = epoch_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m as usize + 11) % 12],
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_times_are_written_like_api_gateway() {
        assert_eq!(
            request_time(1_583_348_638_390),
            "04/Mar/2020:19:03:58 +0000"
        );
        assert_eq!(request_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            request_time(1_735_689_599_999),
            "31/Dec/2024:23:59:59 +0000"
        );
    }

    #[test]
    fn percent_escapes_decode_and_malformed_ones_stay() {
        assert_eq!(percent_decode("a%20b+c"), "a b+c");
        assert_eq!(percent_decode("%E2%82%AC"), "\u{20ac}");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn text_and_binary_media_types() {
        assert!(is_text(None));
        assert!(is_text(Some("application/json; charset=utf-8")));
        assert!(is_text(Some("application/vnd.api+json")));
        assert!(is_text(Some("Text/HTML")));
        assert!(!is_text(Some("image/png")));
        assert!(!is_text(Some("application/octet-stream")));
        assert!(is_binary_media_type(Some("image/png"), &["image/*"]));
        assert!(is_binary_media_type(Some("x/y"), &["*/*"]));
        assert!(!is_binary_media_type(
            Some("image/png"),
            &["application/pdf"]
        ));
        assert!(!is_binary_media_type(None, &["*/*"]));
    }

    #[test]
    fn domain_prefix_is_the_first_label() {
        assert_eq!(
            domain_prefix("id.execute-api.us-east-1.amazonaws.com"),
            "id"
        );
        assert_eq!(domain_prefix("localhost"), "localhost");
    }
}
