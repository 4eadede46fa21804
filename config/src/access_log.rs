//! Access log settings, compiled: which `$context` fields a line holds (a JSON object of named
//! fields, or a user template with `$context.NAME` placeholders), where lines go, and how much
//! each worker buffers before handing lines to the writer thread.
//!
//! Field names are Amazon API Gateway's `$context` variable names, so a format written for API
//! Gateway works here. The AWS spellings with a dot (`identity.sourceIp`,
//! `identity.userAgent`, `error.message`) are accepted as aliases of the short names.
//!
//! Pure: parsing and validation only. The proxy formats and writes the lines.

use std::fmt;
use std::path::PathBuf;

/// One value an access log line can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The gateway's request id.
    RequestId,
    /// The client's address.
    Ip,
    /// When the request arrived, in Common Log Format (`25/Nov/2026:20:55:01 +0000`).
    RequestTime,
    /// When the request arrived, in milliseconds since the Unix epoch.
    RequestTimeEpoch,
    /// The request method.
    HttpMethod,
    /// The matched route key (`GET /pets/{id}`).
    RouteKey,
    /// The request path as received.
    Path,
    /// The request protocol (`HTTP/1.1`).
    Protocol,
    /// The response status sent to the client.
    Status,
    /// Response body bytes sent to the client.
    ResponseLength,
    /// Milliseconds from request received to response sent.
    ResponseLatency,
    /// Milliseconds spent waiting for the integration.
    IntegrationLatency,
    /// The status the integration answered with.
    IntegrationStatus,
    /// The stage name.
    Stage,
    /// The API id.
    ApiId,
    /// The `Host` the request was sent to.
    DomainName,
    /// The client's `User-Agent`.
    UserAgent,
    /// The message of a gateway-made error response.
    ErrorMessage,
    /// The TLS version of the client connection (`TLSv1.3`).
    TlsVersion,
    /// The TLS cipher suite of the client connection (`TLS13_AES_128_GCM_SHA256`).
    TlsCipher,
    /// The client certificate's subject DN (mutual TLS).
    ClientCertSubject,
    /// The client certificate's issuer DN.
    ClientCertIssuer,
    /// The client certificate's serial number.
    ClientCertSerial,
    /// The client certificate's start of validity.
    ClientCertNotBefore,
    /// The client certificate's end of validity.
    ClientCertNotAfter,
}

impl Field {
    /// Every field, in declaration order.
    pub const ALL: [Field; 25] = [
        Field::RequestId,
        Field::Ip,
        Field::RequestTime,
        Field::RequestTimeEpoch,
        Field::HttpMethod,
        Field::RouteKey,
        Field::Path,
        Field::Protocol,
        Field::Status,
        Field::ResponseLength,
        Field::ResponseLatency,
        Field::IntegrationLatency,
        Field::IntegrationStatus,
        Field::Stage,
        Field::ApiId,
        Field::DomainName,
        Field::UserAgent,
        Field::ErrorMessage,
        Field::TlsVersion,
        Field::TlsCipher,
        Field::ClientCertSubject,
        Field::ClientCertIssuer,
        Field::ClientCertSerial,
        Field::ClientCertNotBefore,
        Field::ClientCertNotAfter,
    ];

    /// The field's name: its key in a JSON line and its `$context.NAME` in a template.
    pub fn name(self) -> &'static str {
        match self {
            Field::RequestId => "requestId",
            Field::Ip => "ip",
            Field::RequestTime => "requestTime",
            Field::RequestTimeEpoch => "requestTimeEpoch",
            Field::HttpMethod => "httpMethod",
            Field::RouteKey => "routeKey",
            Field::Path => "path",
            Field::Protocol => "protocol",
            Field::Status => "status",
            Field::ResponseLength => "responseLength",
            Field::ResponseLatency => "responseLatency",
            Field::IntegrationLatency => "integrationLatency",
            Field::IntegrationStatus => "integrationStatus",
            Field::Stage => "stage",
            Field::ApiId => "apiId",
            Field::DomainName => "domainName",
            Field::UserAgent => "userAgent",
            Field::ErrorMessage => "errorMessage",
            Field::TlsVersion => "tlsVersion",
            Field::TlsCipher => "tlsCipher",
            // API Gateway's names.
            Field::ClientCertSubject => "identity.clientCert.subjectDN",
            Field::ClientCertIssuer => "identity.clientCert.issuerDN",
            Field::ClientCertSerial => "identity.clientCert.serialNumber",
            Field::ClientCertNotBefore => "identity.clientCert.validity.notBefore",
            Field::ClientCertNotAfter => "identity.clientCert.validity.notAfter",
        }
    }

    /// The field named `name` (exact case), or one of AWS's dotted aliases.
    pub fn from_name(name: &str) -> Option<Field> {
        match name {
            "identity.sourceIp" => return Some(Field::Ip),
            "identity.userAgent" => return Some(Field::UserAgent),
            "error.message" => return Some(Field::ErrorMessage),
            _ => {}
        }
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the value is a JSON number (else a string).
    pub fn is_number(self) -> bool {
        matches!(
            self,
            Field::RequestTimeEpoch
                | Field::Status
                | Field::ResponseLength
                | Field::ResponseLatency
                | Field::IntegrationLatency
                | Field::IntegrationStatus
        )
    }
}

/// The known names, comma-separated, for error messages.
fn known_names() -> String {
    let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    names.join(", ")
}

/// One piece of a template line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinePart {
    /// Text copied as it is.
    Literal(String),
    /// A field's value, escaped as inside a JSON string but without quotes.
    Field(Field),
}

/// How each line is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    /// JSON object with these fields, in order
    Fields(Vec<Field>),
    /// user template with $context.NAME placeholders
    Template(Vec<LinePart>),
}

/// Parses a template like `{"id":"$context.requestId","st":$context.status}`.
///
/// A name is the longest run of `[A-Za-z0-9_]+` segments joined by single dots, so a dot that
/// ends a sentence (`id=$context.requestId.`) stays literal. An unknown `$context.x` is an error
/// naming it and listing the known names; a `$` not followed by `context.` is literal.
///
/// Each request is one line, so line breaks at the end are trimmed (TOML multi-line strings
/// end with one) and any other line break is an error.
pub fn parse_template(text: &str) -> Result<Vec<LinePart>, String> {
    const OPEN: &str = "$context.";
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err("the access log format is empty".to_string());
    }
    if text.contains(['\n', '\r']) {
        return Err(
            "the access log format has a line break; each request is logged as one line"
                .to_string(),
        );
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        literal.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let len = name_len(after);
        if len == 0 {
            return Err(format!(
                "\"$context.\" without a field name in the access log format; known fields: {}",
                known_names()
            ));
        }
        let name = &after[..len];
        let field = Field::from_name(name).ok_or_else(|| {
            format!(
                "unknown access log field \"$context.{name}\"; known fields: {}",
                known_names()
            )
        })?;
        if !literal.is_empty() {
            parts.push(LinePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(LinePart::Field(field));
        rest = &after[len..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(LinePart::Literal(literal));
    }
    Ok(parts)
}

/// Length of the placeholder name at the start of `text`: identifier segments joined by dots.
fn name_len(text: &str) -> usize {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = text.as_bytes();
    let mut end = 0;
    let mut i = 0;
    loop {
        let segment = bytes[i..].iter().take_while(|&&b| is_ident(b)).count();
        if segment == 0 {
            return end;
        }
        i += segment;
        end = i;
        // A dot belongs to the name only when another segment follows it.
        if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(|&b| is_ident(b)) {
            i += 1;
        } else {
            return end;
        }
    }
}

/// Parses a list of field names for a JSON line. Unknown names, duplicates (an alias counts as
/// its field) and an empty list are errors.
pub fn parse_fields(names: &[String]) -> Result<Vec<Field>, String> {
    if names.is_empty() {
        return Err(format!(
            "the access log field list is empty; known fields: {}",
            known_names()
        ));
    }
    let mut fields = Vec::with_capacity(names.len());
    for name in names {
        let field = Field::from_name(name).ok_or_else(|| {
            format!(
                "unknown access log field {name:?}; known fields: {}",
                known_names()
            )
        })?;
        if fields.contains(&field) {
            return Err(format!(
                "access log field {name:?} is listed twice (as {:?})",
                field.name()
            ));
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Where lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// The process's standard output.
    Stdout,
    /// A file, opened for appending and created if missing.
    File(PathBuf),
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogTarget::Stdout => f.write_str("stdout"),
            LogTarget::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The compiled access log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogPlan {
    /// Where lines go.
    pub target: LogTarget,
    /// How each line is built.
    pub format: LineFormat,
    /// Bytes a worker buffers before handing them to the writer (it also hands off on a timer).
    pub buffer_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
        }
        let mut names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::ALL.len());
        assert_eq!(Field::from_name("identity.sourceIp"), Some(Field::Ip));
        assert_eq!(
            Field::from_name("identity.userAgent"),
            Some(Field::UserAgent)
        );
        assert_eq!(Field::from_name("error.message"), Some(Field::ErrorMessage));
        assert_eq!(Field::from_name("RequestId"), None);
    }

    #[test]
    fn template_substitutes_fields_between_literals() {
        let parts = parse_template(r#"{"id":"$context.requestId","st":$context.status}"#).unwrap();
        assert_eq!(
            parts,
            vec![
                LinePart::Literal(r#"{"id":""#.to_string()),
                LinePart::Field(Field::RequestId),
                LinePart::Literal(r#"","st":"#.to_string()),
                LinePart::Field(Field::Status),
                LinePart::Literal("}".to_string()),
            ]
        );
    }

    #[test]
    fn template_adjacent_fields_aliases_and_trailing_dot() {
        let parts =
            parse_template("$context.httpMethod$context.identity.sourceIp id=$context.requestId.")
                .unwrap();
        assert_eq!(
            parts,
            vec![
                LinePart::Field(Field::HttpMethod),
                LinePart::Field(Field::Ip),
                LinePart::Literal(" id=".to_string()),
                LinePart::Field(Field::RequestId),
                LinePart::Literal(".".to_string()),
            ]
        );
    }

    #[test]
    fn template_dollar_without_context_is_literal() {
        let parts = parse_template("cost $5 $contextual $ctx.x $context.path $").unwrap();
        assert_eq!(
            parts,
            vec![
                LinePart::Literal("cost $5 $contextual $ctx.x ".to_string()),
                LinePart::Field(Field::Path),
                LinePart::Literal(" $".to_string()),
            ]
        );
    }

    #[test]
    fn template_unknown_field_names_it_and_lists_known() {
        let err = parse_template(r#"{"x":"$context.requestid"}"#).unwrap_err();
        assert!(err.contains("\"$context.requestid\""), "{err}");
        for field in Field::ALL {
            assert!(err.contains(field.name()), "{err} lacks {}", field.name());
        }
        let err = parse_template("$context.status.code").unwrap_err();
        assert!(err.contains("$context.status.code"), "{err}");
        let err = parse_template("a $context. b").unwrap_err();
        assert!(err.contains("without a field name"), "{err}");
    }

    #[test]
    fn template_line_breaks() {
        assert_eq!(
            parse_template("$context.status\n").unwrap(),
            vec![LinePart::Field(Field::Status)]
        );
        assert!(parse_template("$context.status\n$context.path")
            .unwrap_err()
            .contains("line break"));
        assert!(parse_template("\n").unwrap_err().contains("empty"));
    }

    #[test]
    fn fields_parse_in_order() {
        let fields = parse_fields(&strings(&["status", "requestId", "error.message"])).unwrap();
        assert_eq!(
            fields,
            vec![Field::Status, Field::RequestId, Field::ErrorMessage]
        );
    }

    #[test]
    fn fields_unknown_duplicate_and_empty_are_errors() {
        let err = parse_fields(&strings(&["status", "sourceIp"])).unwrap_err();
        assert!(err.contains("\"sourceIp\""), "{err}");
        assert!(err.contains("requestTimeEpoch"), "{err}");
        let err = parse_fields(&strings(&["ip", "status", "identity.sourceIp"])).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        assert!(parse_fields(&[]).unwrap_err().contains("empty"));
    }

    #[test]
    fn target_displays() {
        assert_eq!(LogTarget::Stdout.to_string(), "stdout");
        assert_eq!(
            LogTarget::File(PathBuf::from("/var/log/a.log")).to_string(),
            "/var/log/a.log"
        );
    }
}
