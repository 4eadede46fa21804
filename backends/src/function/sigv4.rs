//! AWS Signature Version 4 (SigV4) request signing, header form, for the remote Lambda invoke
//! (`POST /2015-03-31/functions/{name}/invocations`, service `lambda`).
//!
//! It follows the AWS IAM user guide pages "Create a signed AWS API request" and "Elements of an
//! AWS API request signature":
//! 1. the canonical request: method, canonical URI, canonical query string, canonical headers,
//!    signed headers and the hex SHA-256 of the payload, one per line ([`canonical_request`]);
//! 2. the string to sign: `AWS4-HMAC-SHA256`, the `X-Amz-Date`, the credential scope
//!    `yyyymmdd/region/service/aws4_request` and the hex SHA-256 of the canonical request;
//! 3. the signing key: `kDate = HMAC("AWS4" + secret, yyyymmdd)`, `kRegion = HMAC(kDate,
//!    region)`, `kService = HMAC(kRegion, service)`, `kSigning = HMAC(kService,
//!    "aws4_request")` ([`signing_key`]);
//! 4. the signature, `hex(HMAC(kSigning, string to sign))`, in the `Authorization` header.
//!
//! [`sign`] takes the path and query as they appear on the wire (already URI-encoded) and, as
//! AWS does for every service but S3, normalizes the path and URI-encodes each segment once more
//! (so a function ARN's `%3A` is signed as `%253A`). It is tested against the AWS signing test
//! suite (`backends/tests/function_sigv4.rs`). HMAC and SHA-256 come from `aws-lc-rs`, the
//! crypto library rustls already uses.

use std::fmt::Write as _;

use aws_lc_rs::{digest, hmac};

/// The algorithm name in the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The payload's hash as the canonical request's last line wants it.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The body itself; the signer hashes it.
    Bytes(&'a [u8]),
    /// The body's SHA-256, already in lowercase hex (or a literal such as `UNSIGNED-PAYLOAD`).
    Sha256Hex(&'a str),
}

/// Everything a signature depends on.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as sent on the wire (URI-encoded), e.g.
    /// `/2015-03-31/functions/arn%3Aaws%3Alambda%3A...%3Afunction%3Amy-fn/invocations`.
    pub path: &'a str,
    /// The query string as sent on the wire, without the `?` (empty when there is none).
    pub query: &'a str,
    /// The headers to sign (`host` at least), in any case and order; repeated names allowed.
    /// `x-amz-date` (and `x-amz-security-token`, `x-amz-content-sha256`) are added by [`sign`].
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, or its hash.
    pub payload: Payload<'a>,
    /// Normalize the path (remove `.`/`..` segments, merge `//`). True for every service but S3.
    pub normalize_path: bool,
}

/// Who signs, where, and when.
#[derive(Debug, Clone)]
pub struct Signer<'a> {
    /// The access key id, e.g. `AKIDEXAMPLE`.
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// Temporary credentials' session token, sent as `x-amz-security-token`.
    pub session_token: Option<&'a str>,
    /// Include `x-amz-security-token` in the signed headers. True for Lambda and most services;
    /// a few (IoT) want it added after signing.
    pub sign_session_token: bool,
    /// `us-east-1`, ...
    pub region: &'a str,
    /// `lambda`.
    pub service: &'a str,
    /// Seconds since the Unix epoch (UTC).
    pub time: u64,
    /// Add and sign `x-amz-content-sha256` (S3 requires it; Lambda does not).
    pub content_sha256_header: bool,
}

/// The headers to add to the request, plus the intermediate texts (for tests and debugging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The `Authorization` header value.
    pub authorization: String,
    /// The `X-Amz-Date` header value, `YYYYMMDDTHHMMSSZ`.
    pub x_amz_date: String,
    /// The `X-Amz-Content-SHA256` header value, when asked for.
    pub x_amz_content_sha256: Option<String>,
    /// The `X-Amz-Security-Token` header value, when a session token was given.
    pub x_amz_security_token: Option<String>,
    /// The signature, lowercase hex.
    pub signature: String,
    /// Step 1's canonical request.
    pub canonical_request: String,
    /// Step 2's string to sign.
    pub string_to_sign: String,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The time cannot be written as a four-digit-year `X-Amz-Date`.
    #[error("time {0} is outside the years 1970-9999")]
    Time(u64),
    /// A header name that is not an HTTP token.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// A header value with CR, LF or another control character (tab is allowed).
    #[error("header {0:?} has a value with a control character")]
    HeaderValue(String),
    /// A region or service that cannot go in the credential scope.
    #[error("region and service must be non-empty and contain no '/'")]
    Scope,
    /// A method that is not an HTTP token.
    #[error("the method must be a non-empty token")]
    Method,
}

/// Signs `req`: "Create a signed AWS API request", steps 1-5.
pub fn sign(req: &Request<'_>, signer: &Signer<'_>) -> Result<Signed, SignError> {
    if !is_token(req.method) {
        return Err(SignError::Method);
    }
    for part in [signer.region, signer.service] {
        if part.is_empty() || part.contains('/') {
            return Err(SignError::Scope);
        }
    }
    let x_amz_date = amz_date(signer.time)?;
    let date = &x_amz_date[..8];
    let payload_hash = match req.payload {
        Payload::Bytes(body) => hex(digest::digest(&digest::SHA256, body).as_ref()),
        Payload::Sha256Hex(h) => h.to_owned(),
    };

    let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
    headers.push(("x-amz-date", &x_amz_date));
    let content_sha = signer.content_sha256_header.then(|| payload_hash.clone());
    if let Some(h) = &content_sha {
        headers.push(("x-amz-content-sha256", h));
    }
    if let (Some(token), true) = (signer.session_token, signer.sign_session_token) {
        headers.push(("x-amz-security-token", token));
    }
    let (canonical_headers, signed_headers) = canonical_headers(&headers)?;

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path, req.normalize_path),
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let scope = format!("{date}/{}/{}/aws4_request", signer.region, signer.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{x_amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let key = signing_key(
        signer.secret_access_key,
        date,
        signer.region,
        signer.service,
    );
    let signature = hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        signer.access_key_id
    );
    Ok(Signed {
        authorization,
        x_amz_date,
        x_amz_content_sha256: content_sha,
        x_amz_security_token: signer.session_token.map(str::to_owned),
        signature,
        canonical_request,
        string_to_sign,
    })
}

/// "Elements of an AWS API request signature", signing key: the HMAC chain from
/// `"AWS4" + secret` through the date (`yyyymmdd`), region, service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let k_secret = format!("AWS4{secret}");
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, k_secret.as_bytes());
    for part in [date, region, service, "aws4_request"] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// `YYYYMMDDTHHMMSSZ` for `secs` after the Unix epoch (UTC).
pub fn amz_date(secs: u64) -> Result<String, SignError> {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    if y > 9999 {
        return Err(SignError::Time(secs));
    }
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    Ok(format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z"))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The canonical URI: the path, normalized (when asked), each segment URI-encoded. The path is
/// taken as sent (already encoded once), so this is AWS's "encode twice" for non-S3 services.
pub fn canonical_uri(path: &str, normalize: bool) -> String {
    let path = if normalize {
        normalize_path(path)
    } else if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    path.split('/')
        .map(|seg| uri_encode(seg.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// RFC 3986 §5.2.4 dot-segment removal plus merging of repeated `/`; a trailing `/` is kept and
/// an empty result is `/`.
fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for seg in &segments {
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = path.ends_with('/')
        || segments
            .last()
            .is_some_and(|last| *last == "." || *last == "..");
    let mut s = String::from("/");
    s.push_str(&out.join("/"));
    if trailing && !out.is_empty() {
        s.push('/');
    }
    s
}

/// The canonical query string: each parameter's name and value percent-decoded, then
/// URI-encoded with AWS's unreserved set, sorted by name then value, joined with `&`; a
/// parameter without `=` gets an empty value.
pub fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name)),
                uri_encode(&percent_decode(value)),
            )
        })
        .collect();
    params.sort();
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The canonical headers block (each `name:value\n`) and the signed-headers list: names
/// lower-cased and sorted, values trimmed with inner runs of spaces collapsed, a repeated
/// name's values joined with `,` in order.
fn canonical_headers(headers: &[(&str, &str)]) -> Result<(String, String), SignError> {
    let mut entries: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_token(name) {
            return Err(SignError::HeaderName((*name).to_owned()));
        }
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(SignError::HeaderValue((*name).to_owned()));
        }
        let name = name.to_ascii_lowercase();
        let value = value
            .split([' ', '\t'])
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        match entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => entries.push((name, value)),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    for (name, value) in &entries {
        let _ = writeln!(block, "{name}:{value}");
    }
    let signed = entries
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    Ok((block, signed))
}

/// An HTTP token (RFC 9110 `tchar`s), non-empty.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// AWS URI encoding: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX` (upper-case hex).
pub fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = match bytes.get(i + 1..i + 3) {
            Some(&[hi, lo]) => hex_val(hi).zip(hex_val(lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (bytes[i], hex_pair) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The value of one hex digit.
fn hex_val(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
