//! What a TLS handshake on a client connection established, as requests see it
//! ([`TlsSession`]): the protocol version and cipher suite, which certificate-and-policy label
//! answered, and the client's verified certificate ([`ClientCertificate`]) when mutual TLS
//! asked for one. Filled once per connection, after the handshake; HTTP integrations send the
//! certificate's fields upstream as headers, the access log and (later) function events read
//! them.
//!
//! Distinguished names are written as RFC 4514 strings (most specific RDN first, as OpenSSL's
//! `-nameopt RFC2253` and nginx's `$ssl_client_s_dn`), with every byte outside printable
//! ASCII escaped as `\hh`: the values come from a certificate and go into header lines.

use std::sync::Arc;

use tollgate_config::mtls::ClientCertHeaders;
use tollgate_config::period::civil_from_days;
use x509_parser::x509::X509Name;

/// The TLS facts of one client connection.
#[derive(Debug)]
pub struct TlsSession {
    /// The label of the configuration the handshake chose (`certificate` or
    /// `certificate+policy`): requests whose `Host` would choose another are misdirected.
    pub label: Box<str>,
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The cipher suite's IANA-style name (`TLS13_AES_128_GCM_SHA256`).
    pub cipher: &'static str,
    /// The client's verified certificate, when one was asked for and presented (boxed: most
    /// connections have none, and every idle TLS connection holds its session).
    pub client_cert: Option<Box<ClientCertificate>>,
    /// Header names for the certificate's fields (None: the connection's policy has no mTLS).
    pub client_cert_headers: Option<Arc<ClientCertHeaders>>,
}

/// A client certificate's fields (the leaf of the chain the client presented).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Subject DN, RFC 4514.
    pub subject: String,
    /// Issuer DN, RFC 4514.
    pub issuer: String,
    /// Serial number, colon-separated lowercase hex (`0a:1b:…`).
    pub serial: String,
    /// Start of validity, `Aug  3 09:36:04 2026 GMT` (OpenSSL's format, as API Gateway's).
    pub not_before: String,
    /// End of validity.
    pub not_after: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl ClientCertificate {
    /// Reads the fields of a DER certificate (None: not an X.509 certificate, which a
    /// verified chain never has).
    pub fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let validity = cert.validity();
        Some(ClientCertificate {
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
            serial: cert.raw_serial_as_string(),
            not_before: openssl_time(validity.not_before.timestamp()),
            not_after: openssl_time(validity.not_after.timestamp()),
            der: der.to_vec(),
        })
    }

    /// Appends the certificate as PEM, URL-encoded (for one header value: nginx's
    /// `$ssl_client_escaped_cert`, the ALB's `X-Amzn-Mtls-Clientcert`).
    pub fn write_pem_url_encoded(&self, out: &mut Vec<u8>) {
        let mut pem = String::with_capacity(self.der.len() * 4 / 3 + 80);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64_standard(&self.der);
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or(""));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        for &b in pem.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Standard base64 with padding (RFC 4648 §4).
fn base64_standard(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// RFC 4514 keywords for the attribute types it names; others are written as dotted OIDs.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A distinguished name as an RFC 4514 string: RDNs last to first, `,` between them, `+`
/// between the attributes of one RDN.
fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (n, rdn) in rdns.iter().rev().enumerate() {
        if n > 0 {
            out.push(',');
        }
        for (k, attr) in rdn.iter().enumerate() {
            if k > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match keyword(&oid) {
                Some(k) => out.push_str(k),
                None => out.push_str(&oid),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => escape_value(value, &mut out),
                // Not a string type: `#` and the value's bytes in hex (RFC 4514 §2.4).
                Err(_) => {
                    out.push('#');
                    for b in attr.attr_value().data.iter() {
                        out.push(HEX[(b >> 4) as usize].to_ascii_lowercase() as char);
                        out.push(HEX[(b & 15) as usize].to_ascii_lowercase() as char);
                    }
                }
            }
        }
    }
    out
}

/// Escapes an attribute value (RFC 4514 §2.4), and every byte outside printable ASCII as
/// `\hh`, so the string is safe in a header line.
fn escape_value(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' | b'=')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i + 1 == bytes.len() && b == b' ');
        if special {
            out.push('\\');
            out.push(b as char);
        } else if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            out.push('\\');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// `Aug  3 09:36:04 2026 GMT` for seconds since the Unix epoch.
fn openssl_time(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{} {d:>2} {:02}:{:02}:{:02} {y} GMT",
        MONTHS[(m - 1) as usize],
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_like_openssl() {
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        // 2021-08-05T09:36:04Z
        assert_eq!(openssl_time(1_628_156_164), "Aug  5 09:36:04 2021 GMT");
        assert_eq!(openssl_time(1_735_689_599), "Dec 31 23:59:59 2024 GMT");
    }

    #[test]
    fn values_are_escaped_for_rfc4514_and_header_lines() {
        let mut out = String::new();
        escape_value("#a,b+c \"d\"\r\n\u{e9} ", &mut out);
        assert_eq!(out, "\\#a\\,b\\+c \\\"d\\\"\\0D\\0A\\C3\\A9\\ ");
    }

    #[test]
    fn a_generated_certificate_reads_back() {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client one");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Shop, Inc.");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
        params.not_before = rcgen::date_time_ymd(2026, 8, 3);
        params.not_after = rcgen::date_time_ymd(2027, 8, 3);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let parsed = ClientCertificate::parse(cert.der()).unwrap();
        assert_eq!(parsed.subject, "O=Shop\\, Inc.,CN=client one");
        assert_eq!(parsed.subject, parsed.issuer);
        assert_eq!(parsed.serial, "0a:bc");
        assert_eq!(parsed.not_before, "Aug  3 00:00:00 2026 GMT");
        assert_eq!(parsed.not_after, "Aug  3 00:00:00 2027 GMT");
        let mut pem = Vec::new();
        parsed.write_pem_url_encoded(&mut pem);
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{pem}");
        assert!(pem.ends_with("-----END%20CERTIFICATE-----%0A"), "{pem}");
        assert!(!pem.contains(['\n', ' ', '/', '+', '=']));
    }
}
