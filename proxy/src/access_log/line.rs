//! Formatting one access log line from a borrowed [`Record`], without allocating: values are
//! written straight into the worker's buffer.
//!
//! ## Value rules
//! - Strings are JSON-escaped: `"` and `\` are backslashed, `\n` `\r` `\t` use their short
//!   escapes, other control characters and DEL become `\u00XX`.
//! - Bytes that are not valid UTF-8 (possible in the path, `Host`, `User-Agent`, method and
//!   request id, which come from the wire) are written as `\u00XX` of each byte. Unlike
//!   replacing them with U+FFFD this keeps the bytes a client sent (useful when reading attack
//!   traffic); a JSON reader sees them as U+0080..U+00FF characters. The line is always valid
//!   UTF-8 and valid JSON.
//! - Numbers are bare JSON numbers.
//! - A missing value (an absent integration status or latency, or an empty string) is `-`, as
//!   API Gateway writes it; in a [`LineFormat::Fields`] line that is the string `"-"`, so the
//!   line stays valid JSON whatever is missing.
//! - `requestTime` is Common Log Format in UTC, like API Gateway: `25/Nov/2026:20:55:01 +0000`.
//!
//! In a [`LineFormat::Template`] a value is escaped as inside a JSON string but not quoted,
//! so `"$context.userAgent"` in a JSON template stays valid JSON.

use std::io::Write;
use std::net::IpAddr;

use tollgate_backends::client_cert::TlsSession;
use tollgate_config::access_log::{Field, LineFormat, LinePart};

/// Everything one line may need, borrowed from the request (no allocation to build it).
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The gateway's request id.
    pub request_id: &'a [u8],
    /// The client's address.
    pub ip: IpAddr,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub request_time_epoch_ms: u64,
    /// The request method as received.
    pub http_method: &'a [u8],
    /// The matched route key, empty when no route matched.
    pub route_key: &'a str,
    /// The request path as received.
    pub path: &'a [u8],
    /// The request protocol (`HTTP/1.1`).
    pub protocol: &'static str,
    /// The response status sent to the client.
    pub status: u16,
    /// Response body bytes sent.
    pub response_length: u64,
    /// Milliseconds from request received to response sent.
    pub response_latency_ms: u64,
    /// Milliseconds waiting for the integration; `None` when none was called.
    pub integration_latency_ms: Option<u64>,
    /// The integration's status; `None` when none answered.
    pub integration_status: Option<u16>,
    /// The stage name.
    pub stage: &'a str,
    /// The API id.
    pub api_id: &'a str,
    /// The `Host` the request was sent to.
    pub domain_name: &'a [u8],
    /// The client's `User-Agent`.
    pub user_agent: &'a [u8],
    /// The message of a gateway-made error, empty otherwise.
    pub error_message: &'a str,
    /// The client connection's TLS session (None: plain HTTP).
    pub tls: Option<&'a TlsSession>,
}

/// Appends one line (with trailing '\n') to `out`, allocation-free apart from `out` growing.
pub fn write_line(out: &mut Vec<u8>, format: &LineFormat, record: &Record<'_>) {
    match format {
        LineFormat::Fields(fields) => {
            out.push(b'{');
            for (i, &field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(field.name().as_bytes());
                out.extend_from_slice(b"\":");
                write_value(out, field, record, true);
            }
            out.push(b'}');
        }
        LineFormat::Template(parts) => {
            for part in parts {
                match part {
                    LinePart::Literal(text) => out.extend_from_slice(text.as_bytes()),
                    LinePart::Field(field) => write_value(out, *field, record, false),
                }
            }
        }
    }
    out.push(b'\n');
}

/// Writes one field's value; `quoted` puts strings (and the missing marker) in quotes.
fn write_value(out: &mut Vec<u8>, field: Field, r: &Record<'_>, quoted: bool) {
    match field {
        Field::RequestId => write_string(out, r.request_id, quoted),
        Field::Ip => {
            open(out, quoted);
            write_ip(out, r.ip);
            open(out, quoted);
        }
        Field::RequestTime => {
            open(out, quoted);
            write_clf_time(out, r.request_time_epoch_ms / 1000);
            open(out, quoted);
        }
        Field::RequestTimeEpoch => write_number(out, r.request_time_epoch_ms),
        Field::HttpMethod => write_string(out, r.http_method, quoted),
        Field::RouteKey => write_string(out, r.route_key.as_bytes(), quoted),
        Field::Path => write_string(out, r.path, quoted),
        Field::Protocol => write_string(out, r.protocol.as_bytes(), quoted),
        Field::Status => write_number(out, r.status),
        Field::ResponseLength => write_number(out, r.response_length),
        Field::ResponseLatency => write_number(out, r.response_latency_ms),
        Field::IntegrationLatency => match r.integration_latency_ms {
            Some(ms) => write_number(out, ms),
            None => write_missing(out, quoted),
        },
        Field::IntegrationStatus => match r.integration_status {
            Some(status) => write_number(out, status),
            None => write_missing(out, quoted),
        },
        Field::Stage => write_string(out, r.stage.as_bytes(), quoted),
        Field::ApiId => write_string(out, r.api_id.as_bytes(), quoted),
        Field::DomainName => write_string(out, r.domain_name, quoted),
        Field::UserAgent => write_string(out, r.user_agent, quoted),
        Field::ErrorMessage => write_string(out, r.error_message.as_bytes(), quoted),
        Field::TlsVersion | Field::TlsCipher => match r.tls {
            Some(tls) if field == Field::TlsVersion => {
                write_string(out, tls.version.as_bytes(), quoted)
            }
            Some(tls) => write_string(out, tls.cipher.as_bytes(), quoted),
            None => write_missing(out, quoted),
        },
        Field::ClientCertSubject
        | Field::ClientCertIssuer
        | Field::ClientCertSerial
        | Field::ClientCertNotBefore
        | Field::ClientCertNotAfter => {
            let Some(cert) = r.tls.and_then(|t| t.client_cert.as_ref()) else {
                return write_missing(out, quoted);
            };
            let value = match field {
                Field::ClientCertSubject => &cert.subject,
                Field::ClientCertIssuer => &cert.issuer,
                Field::ClientCertSerial => &cert.serial,
                Field::ClientCertNotBefore => &cert.not_before,
                _ => &cert.not_after,
            };
            write_string(out, value.as_bytes(), quoted)
        }
    }
}

/// A quote, when quoting (opens and closes a string).
fn open(out: &mut Vec<u8>, quoted: bool) {
    if quoted {
        out.push(b'"');
    }
}

fn write_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_missing(out: &mut Vec<u8>, quoted: bool) {
    out.extend_from_slice(if quoted { b"\"-\"" } else { b"-" });
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8], quoted: bool) {
    if bytes.is_empty() {
        write_missing(out, quoted);
        return;
    }
    open(out, quoted);
    escape_json(out, bytes);
    open(out, quoted);
}

/// Escapes `bytes` as the inside of a JSON string; invalid UTF-8 bytes become `\u00XX`.
fn escape_json(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        escape_valid(out, chunk.valid().as_bytes());
        for &b in chunk.invalid() {
            write_u00(out, b);
        }
    }
}

/// Escapes valid UTF-8, copying runs that need no escape in one go. Multi-byte characters
/// are all ≥ 0x80 and pass through untouched.
fn escape_valid(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            // DEL is legal in JSON but escaped anyway so a log viewed in a terminal is inert.
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if short.is_empty() {
            write_u00(out, b);
        } else {
            out.extend_from_slice(short);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
}

fn write_u00(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// Writes an address; an IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4
/// client) is written as the IPv4 address it is.
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_number(out, octet);
            }
        }
        // Writing into a Vec cannot fail; Display of an address needs no allocation.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Writes `secs` since the epoch as `dd/Mon/yyyy:HH:MM:SS +0000`.
fn write_clf_time(out: &mut Vec<u8>, secs: u64) {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    write_2(out, u64::from(day));
    out.push(b'/');
    out.extend_from_slice(MONTHS[(month - 1) as usize]);
    out.push(b'/');
    // Epoch time is unsigned, so the year is at least 1970: four digits need no padding.
    write_number(out, year);
    out.push(b':');
    write_2(out, in_day / 3600);
    out.push(b':');
    write_2(out, in_day / 60 % 60);
    out.push(b':');
    write_2(out, in_day % 60);
    out.extend_from_slice(b" +0000");
}

/// Two digits, zero-padded (`n` < 100).
fn write_2(out: &mut Vec<u8>, n: u64) {
    out.push(b'0' + (n / 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// (year, month 1..=12, day 1..=31) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar. Howard Hinnant's `civil_from_days`, unsigned because epoch milliseconds
/// are unsigned: shifting the epoch to 0000-03-01 puts leap days at the end of each year, and
/// 400-year eras repeat exactly (146 097 days).
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tollgate_config::access_log::{parse_template, Field};

    fn sample() -> Record<'static> {
        Record {
            request_id: b"0123456789abcdef0123456789abcdef",
            ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            request_time_epoch_ms: 1_795_640_101_234,
            http_method: b"GET",
            route_key: "GET /pets/{id}",
            path: b"/pets/42",
            protocol: "HTTP/1.1",
            status: 200,
            response_length: 1234,
            response_latency_ms: 17,
            integration_latency_ms: Some(12),
            integration_status: Some(201),
            stage: "prod",
            api_id: "a1b2c3",
            domain_name: b"api.example.com",
            user_agent: b"curl/8.5.0",
            error_message: "",
            tls: None,
        }
    }

    fn line(format: &LineFormat, record: &Record<'_>) -> String {
        let mut out = Vec::new();
        write_line(&mut out, format, record);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        String::from_utf8(out).unwrap()
    }

    fn json(format: &LineFormat, record: &Record<'_>) -> Value {
        serde_json::from_str(&line(format, record)).unwrap()
    }

    #[test]
    fn every_field_in_order() {
        let format = LineFormat::Fields(Field::ALL.to_vec());
        let text = line(&format, &sample());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["requestId"], "0123456789abcdef0123456789abcdef");
        assert_eq!(v["ip"], "203.0.113.7");
        assert_eq!(v["requestTime"], "25/Nov/2026:20:55:01 +0000");
        assert_eq!(v["requestTimeEpoch"], 1_795_640_101_234u64);
        assert_eq!(v["httpMethod"], "GET");
        assert_eq!(v["routeKey"], "GET /pets/{id}");
        assert_eq!(v["path"], "/pets/42");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["responseLength"], 1234);
        assert_eq!(v["responseLatency"], 17);
        assert_eq!(v["integrationLatency"], 12);
        assert_eq!(v["integrationStatus"], 201);
        assert_eq!(v["stage"], "prod");
        assert_eq!(v["apiId"], "a1b2c3");
        assert_eq!(v["domainName"], "api.example.com");
        assert_eq!(v["userAgent"], "curl/8.5.0");
        assert_eq!(v["errorMessage"], "-");
        assert_eq!(v.as_object().unwrap().len(), Field::ALL.len());
        // Keys come in the configured order.
        let mut at = 0;
        for field in Field::ALL {
            let key = format!("\"{}\":", field.name());
            let found = text[at..].find(&key).unwrap();
            at += found + key.len();
        }
    }

    #[test]
    fn missing_values_are_dashes() {
        let record = Record {
            integration_latency_ms: None,
            integration_status: None,
            route_key: "",
            user_agent: b"",
            domain_name: b"",
            ..sample()
        };
        let v = json(&LineFormat::Fields(Field::ALL.to_vec()), &record);
        for key in [
            "integrationLatency",
            "integrationStatus",
            "routeKey",
            "userAgent",
            "domainName",
            "errorMessage",
        ] {
            assert_eq!(v[key], "-", "{key}");
        }
        // Zero is a value, not a missing one.
        let record = Record {
            integration_latency_ms: Some(0),
            response_length: 0,
            ..record
        };
        let v = json(&LineFormat::Fields(Field::ALL.to_vec()), &record);
        assert_eq!(v["integrationLatency"], 0);
        assert_eq!(v["responseLength"], 0);
    }

    #[test]
    fn strings_are_escaped() {
        let record = Record {
            user_agent: b"a\"b\\c\n\r\t\x01\x1f\x7f\xc3\xa9z",
            path: b"/p\xff\xfeq/\xe2\x82",
            error_message: "quote \" and \u{2028}",
            ..sample()
        };
        let format = LineFormat::Fields(vec![Field::UserAgent, Field::Path, Field::ErrorMessage]);
        let text = line(&format, &record);
        assert_eq!(
            text,
            concat!(
                r#"{"userAgent":"a\"b\\c\n\r\t\u0001\u001f\u007fé"#,
                r#"z","path":"/p\u00ff\u00feq/\u00e2\u0082","errorMessage":"quote \" and "#,
                "\u{2028}\"}\n"
            )
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["userAgent"], "a\"b\\c\n\r\t\u{1}\u{1f}\u{7f}éz");
        assert_eq!(v["path"], "/p\u{ff}\u{fe}q/\u{e2}\u{82}");
        assert_eq!(v["errorMessage"], "quote \" and \u{2028}");
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let format = LineFormat::Fields(vec![Field::Ip]);
        let record = Record {
            ip: IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
            ..sample()
        };
        assert_eq!(json(&format, &record)["ip"], "2001:db8::1");
        let record = Record {
            ip: IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped()),
            ..sample()
        };
        assert_eq!(json(&format, &record)["ip"], "10.1.2.3");
    }

    #[test]
    fn template_substitutes_escaped_unquoted_values() {
        let parts = parse_template(
            r#"{"id":"$context.requestId","st":$context.status,"ua":"$context.identity.userAgent","is":"$context.integrationStatus","t":"$context.requestTime"} $x"#,
        )
        .unwrap();
        let record = Record {
            user_agent: b"say \"hi\"\n",
            integration_status: None,
            ..sample()
        };
        let text = line(&LineFormat::Template(parts), &record);
        assert_eq!(
            text,
            concat!(
                r#"{"id":"0123456789abcdef0123456789abcdef","st":200,"ua":"say \"hi\"\n","#,
                r#""is":"-","t":"25/Nov/2026:20:55:01 +0000"} $x"#,
                "\n"
            )
        );
        let (object, _) = text.split_once(" $x").unwrap();
        let v: Value = serde_json::from_str(object).unwrap();
        assert_eq!(v["ua"], "say \"hi\"\n");
    }

    #[test]
    fn template_missing_numbers_are_bare_dashes() {
        let parts = parse_template("$context.integrationLatency $context.stage|").unwrap();
        let record = Record {
            integration_latency_ms: None,
            stage: "",
            ..sample()
        };
        assert_eq!(line(&LineFormat::Template(parts), &record), "- -|\n");
    }

    fn clf(secs: u64) -> String {
        let mut out = Vec::new();
        write_clf_time(&mut out, secs);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn clf_known_times() {
        // Checked with `date -u -d @N '+%d/%b/%Y:%H:%M:%S %z'`.
        let cases = [
            (0, "01/Jan/1970:00:00:00 +0000"),
            (86_399, "01/Jan/1970:23:59:59 +0000"),
            (951_782_400, "29/Feb/2000:00:00:00 +0000"),
            (951_868_800, "01/Mar/2000:00:00:00 +0000"),
            (946_684_799, "31/Dec/1999:23:59:59 +0000"),
            (946_684_800, "01/Jan/2000:00:00:00 +0000"),
            (1_709_208_000, "29/Feb/2024:12:00:00 +0000"),
            (1_735_689_599, "31/Dec/2024:23:59:59 +0000"),
            (1_735_689_600, "01/Jan/2025:00:00:00 +0000"),
            (1_795_640_101, "25/Nov/2026:20:55:01 +0000"),
            // 2100 is not a leap year: Feb 28 is followed by Mar 1.
            (4_107_542_399, "28/Feb/2100:23:59:59 +0000"),
            (4_107_542_400, "01/Mar/2100:00:00:00 +0000"),
            (253_402_300_799, "31/Dec/9999:23:59:59 +0000"),
        ];
        for (secs, want) in cases {
            assert_eq!(clf(secs), want, "{secs}");
        }
    }

    /// Hinnant's inverse, to check every day of several 400-year eras round-trips.
    fn days_from_civil(y: u64, m: u32, d: u32) -> u64 {
        let y = y - u64::from(m <= 2);
        let era = y / 400;
        let yoe = y % 400;
        let m = u64::from(m);
        let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + u64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn civil_dates_are_consecutive() {
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..(3 * 146_097) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let month_len = [
                31,
                28 + u32::from(leap),
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            assert!((1..=month_len[m as usize - 1]).contains(&d), "{y}-{m}-{d}");
            let next_of_prev = if prev.2 < 28 {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 == 12 && prev.2 == 31 {
                (prev.0 + 1, 1, 1)
            } else if d == 1 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0, prev.1, prev.2 + 1)
            };
            assert_eq!((y, m, d), next_of_prev);
            prev = (y, m, d);
        }
    }

    #[test]
    fn huge_epoch_still_formats() {
        let v = json(
            &LineFormat::Fields(vec![Field::RequestTime]),
            &Record {
                request_time_epoch_ms: u64::MAX,
                ..sample()
            },
        );
        assert!(v["requestTime"].as_str().unwrap().ends_with(" +0000"));
    }
}
