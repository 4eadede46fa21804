//! The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that a TCP load balancer
//! writes at the very start of a connection to say who the real client is.
//!
//! Parsing is delegated to the `ppp` crate; this file maps its results onto the three answers
//! the connection driver needs — wait for more bytes, strip a header of `n` bytes, or close the
//! connection — and patches the few places where ppp's notion of "partial input" is wrong for
//! a streaming reader. A driver calls [`parse_proxy_header`] on the bytes read so far, once per
//! read, until it gets something other than [`ProxyParse::Incomplete`]; the function never
//! allocates and keeps nothing between calls.
//!
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::SocketAddr;
use std::num::IntErrorKind;

use ppp::{v1, v2, PartialResult};

/// Longest header accepted, in bytes. A v1 header is at most 107 bytes by spec; a v2 header is
/// 16 bytes plus a declared length of up to 65535, almost all of it optional TLVs. Balancers
/// send a few dozen bytes of TLVs at most, so a v2 header longer than this is refused instead of
/// making the driver buffer up to 64 KiB before the first request byte.
pub const PROXY_HEADER_MAX: usize = 4096;

/// The v2 signature; its first byte (`\r`) cannot start a v1 header, which begins with `P`.
const V2_SIGNATURE: &[u8] = v2::PROTOCOL_PREFIX;
/// Signature, version/command byte, family/protocol byte and the 2-byte length.
const V2_FIXED_LEN: usize = 16;
/// Offsets of the v2 bytes that [`v2_fixed_part_invalid`] inspects.
const V2_VERSION_COMMAND: usize = 12;
const V2_FAMILY_PROTOCOL: usize = 13;
const V2_LENGTH_HIGH: usize = 14;

/// What a PROXY header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied TCP connection (v1 TCP4/TCP6, v2 PROXY command with AF_INET/AF_INET6 over
    /// STREAM or DGRAM).
    Proxied {
        /// The client, as the balancer saw it.
        source: SocketAddr,
        /// The address the client connected to (the balancer's listener).
        destination: SocketAddr,
    },
    /// v2 LOCAL command, v1 `UNKNOWN`, or a v2 family that carries no IP addresses
    /// (AF_UNSPEC/AF_UNIX): use the real connection's addresses (health checks from the
    /// balancer).
    Local,
}

/// The result of looking at the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyParse {
    /// More bytes are needed (the bytes so far are a valid prefix of a v1 or v2 header).
    Incomplete,
    /// A complete header of `consumed` bytes; bytes after it are the client's own data (HTTP).
    Done {
        /// What the header said.
        header: ProxyHeader,
        /// Length of the header; the caller drops exactly this many bytes.
        consumed: usize,
    },
    /// Not a valid PROXY header; the message says what was wrong, for the log.
    Invalid(&'static str),
}

const NOT_PROXY: &str = "not a PROXY protocol header";
const V1_MALFORMED: &str = "malformed PROXY v1 header";
const V2_TOO_LONG: &str = "PROXY v2 header too long";

/// Parses a PROXY header at the start of `buf` (v1 or v2, told apart by the first byte).
///
/// Returns [`ProxyParse::Incomplete`] for every strict prefix of a valid header, including the
/// empty buffer, and [`ProxyParse::Invalid`] as soon as the bytes cannot start one, so a client
/// that speaks HTTP directly is turned away on its first read rather than after a timeout.
pub fn parse_proxy_header(buf: &[u8]) -> ProxyParse {
    match buf.first() {
        None => ProxyParse::Incomplete,
        Some(&first) if first == V2_SIGNATURE[0] => parse_v2(buf),
        Some(b'P') => parse_v1(buf),
        Some(_) => ProxyParse::Invalid(NOT_PROXY),
    }
}

fn parse_v1(buf: &[u8]) -> ProxyParse {
    // ppp only ever looks at the bytes up to the first CR (plus one), so everything below is
    // about that line.
    let cr = buf.iter().position(|&b| b == b'\r');
    match v1::Header::try_from(buf) {
        Ok(header) => {
            let header_kind = match header.addresses {
                v1::Addresses::Tcp4(a) => ProxyHeader::Proxied {
                    source: SocketAddr::from((a.source_address, a.source_port)),
                    destination: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                v1::Addresses::Tcp6(a) => ProxyHeader::Proxied {
                    source: SocketAddr::from((a.source_address, a.source_port)),
                    destination: SocketAddr::from((a.destination_address, a.destination_port)),
                },
                v1::Addresses::Unknown => ProxyHeader::Local,
            };
            ProxyParse::Done {
                header: header_kind,
                consumed: header.header.len(),
            }
        }
        Err(err) if err.is_incomplete() => match cr {
            // The CR and the byte after it are both here, so ppp has seen the whole line and more
            // input cannot change its verdict: "incomplete" now means a line it could not use
            // (`PROXY TCP4\r\n` reports a missing address; `PROXY UNKNOWN` with more than four
            // words after it trips ppp's fixed split count). Without this the connection would
            // sit waiting for bytes that can never help.
            Some(cr) if cr + 1 < buf.len() => v1_unknown_fallback(buf, cr),
            _ => ProxyParse::Incomplete,
        },
        // ppp parses the last field (destination port) as soon as it sees the space before it,
        // so a valid prefix ending in "... <source port> " is reported as an invalid, empty port.
        // Before any CR is read that field simply has not arrived yet.
        Err(v1::BinaryParseError::Parse(v1::ParseError::InvalidDestinationPort(Some(e))))
            if cr.is_none() && *e.kind() == IntErrorKind::Empty =>
        {
            ProxyParse::Incomplete
        }
        Err(err) => ProxyParse::Invalid(v1_message(&err)),
    }
}

/// The spec says a receiver must ignore everything between `UNKNOWN` and the CRLF; ppp rejects
/// such lines when they have more than four words, so accept them here. Anything else ppp left
/// unresolved on a complete line is invalid.
fn v1_unknown_fallback(buf: &[u8], cr: usize) -> ProxyParse {
    const UNKNOWN_PREFIX: &[u8] = b"PROXY UNKNOWN ";
    // ppp has already refused lines over 107 bytes and non-UTF-8 ones before reaching here.
    let line = &buf[..cr];
    if buf.get(cr + 1) == Some(&b'\n') && line.starts_with(UNKNOWN_PREFIX) {
        ProxyParse::Done {
            header: ProxyHeader::Local,
            consumed: cr + 2,
        }
    } else {
        ProxyParse::Invalid(V1_MALFORMED)
    }
}

fn v1_message(err: &v1::BinaryParseError) -> &'static str {
    use v1::ParseError as E;
    match err {
        v1::BinaryParseError::InvalidUtf8(_) => "PROXY v1 header is not ASCII",
        v1::BinaryParseError::Parse(e) => match e {
            E::InvalidPrefix => NOT_PROXY,
            E::HeaderTooLong => "PROXY v1 header too long",
            E::InvalidProtocol => "PROXY v1 header has an unknown protocol",
            E::InvalidSuffix => "PROXY v1 header has extra fields or a bad line ending",
            E::InvalidSourceAddress(_) | E::InvalidDestinationAddress(_) => {
                "PROXY v1 header has an invalid address"
            }
            E::InvalidSourcePort(_) | E::InvalidDestinationPort(_) => {
                "PROXY v1 header has an invalid port"
            }
            // The "missing" kinds are incomplete and handled by the caller.
            _ => V1_MALFORMED,
        },
    }
}

fn parse_v2(buf: &[u8]) -> ProxyParse {
    match v2::Header::try_from(buf) {
        Ok(header) if header.len() > PROXY_HEADER_MAX => ProxyParse::Invalid(V2_TOO_LONG),
        Ok(header) => ProxyParse::Done {
            header: v2_header(&header),
            consumed: header.len(),
        },
        // ppp has validated the fixed part; refuse an over-long declared length now instead of
        // buffering towards it.
        Err(v2::ParseError::Partial(_, length)) if V2_FIXED_LEN + length > PROXY_HEADER_MAX => {
            ProxyParse::Invalid(V2_TOO_LONG)
        }
        // ppp reports `Incomplete` for anything shorter than the 16 fixed bytes without looking
        // at bytes 12..16, so a bad version or family would only be noticed after further
        // bytes arrive — which a misbehaving peer may never send.
        Err(v2::ParseError::Incomplete(_)) => match v2_fixed_part_invalid(buf) {
            Some(message) => ProxyParse::Invalid(message),
            None => ProxyParse::Incomplete,
        },
        Err(err) if err.is_incomplete() => ProxyParse::Incomplete,
        Err(err) => ProxyParse::Invalid(v2_message(&err)),
    }
}

/// Checks whichever of bytes 12..15 are present in a buffer shorter than 16 bytes whose first
/// bytes ppp has already matched against the signature. Same rules as ppp applies once it has
/// all 16, plus the length cap from the high length byte alone.
fn v2_fixed_part_invalid(buf: &[u8]) -> Option<&'static str> {
    if let Some(&b) = buf.get(V2_VERSION_COMMAND) {
        if b >> 4 != 2 {
            return Some("PROXY v2 version is not 2");
        }
        if b & 0x0f > 1 {
            return Some("PROXY v2 command is not LOCAL or PROXY");
        }
    }
    if let Some(&b) = buf.get(V2_FAMILY_PROTOCOL) {
        if b >> 4 > 3 {
            return Some("PROXY v2 address family is unknown");
        }
        if b & 0x0f > 2 {
            return Some("PROXY v2 transport protocol is unknown");
        }
    }
    if let Some(&high) = buf.get(V2_LENGTH_HIGH) {
        if V2_FIXED_LEN + (usize::from(high) << 8) > PROXY_HEADER_MAX {
            return Some(V2_TOO_LONG);
        }
    }
    None
}

fn v2_header(header: &v2::Header<'_>) -> ProxyHeader {
    // Like HAProxy, anything other than PROXY over TCP/UDP with IP addresses falls back to the
    // connection's own addresses instead of being refused: AF_UNIX and AF_UNSPEC carry nothing
    // we can use, and ppp also admits IP families with an UNSPEC transport, which the spec
    // says senders must not emit.
    let stream_or_dgram = matches!(
        header.protocol,
        v2::Protocol::Stream | v2::Protocol::Datagram
    );
    match (header.command, header.addresses) {
        (v2::Command::Proxy, v2::Addresses::IPv4(a)) if stream_or_dgram => ProxyHeader::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        (v2::Command::Proxy, v2::Addresses::IPv6(a)) if stream_or_dgram => ProxyHeader::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        _ => ProxyHeader::Local,
    }
}

fn v2_message(err: &v2::ParseError) -> &'static str {
    use v2::ParseError as E;
    match err {
        E::Prefix => NOT_PROXY,
        E::Version(_) => "PROXY v2 version is not 2",
        E::Command(_) => "PROXY v2 command is not LOCAL or PROXY",
        E::AddressFamily(_) => "PROXY v2 address family is unknown",
        E::Protocol(_) => "PROXY v2 transport protocol is unknown",
        E::InvalidAddresses(..) => "PROXY v2 length too short for its addresses",
        // Header::try_from never produces these (TLVs are not parsed), nor reaches here with
        // the incomplete kinds.
        _ => "malformed PROXY v2 header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

    /// Builds a v2 header by hand (not with ppp's builder) so the tests do not share the
    /// parser's idea of the format.
    fn v2(ver_cmd: u8, fam_proto: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let len = u16::try_from(addresses.len() + tlvs.len()).unwrap();
        let mut out = SIG.to_vec();
        out.push(ver_cmd);
        out.push(fam_proto);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(addresses);
        out.extend_from_slice(tlvs);
        out
    }

    fn v2_inet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&src.octets());
        a.extend_from_slice(&dst.octets());
        a.extend_from_slice(&sport.to_be_bytes());
        a.extend_from_slice(&dport.to_be_bytes());
        v2(0x21, 0x11, &a, tlvs)
    }

    fn v2_inet6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&src.octets());
        a.extend_from_slice(&dst.octets());
        a.extend_from_slice(&sport.to_be_bytes());
        a.extend_from_slice(&dport.to_be_bytes());
        v2(0x21, 0x21, &a, tlvs)
    }

    fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    fn proxied(source: SocketAddr, destination: SocketAddr, consumed: usize) -> ProxyParse {
        ProxyParse::Done {
            header: ProxyHeader::Proxied {
                source,
                destination,
            },
            consumed,
        }
    }

    /// Asserts `header` parses to `expected` (with `consumed == header.len()`), that every
    /// strict prefix is Incomplete, and that trailing HTTP bytes are left alone.
    fn check_valid(header: &[u8], expected: ProxyHeader) {
        let done = ProxyParse::Done {
            header: expected,
            consumed: header.len(),
        };
        assert_eq!(parse_proxy_header(header), done);
        for i in 0..header.len() {
            assert_eq!(
                parse_proxy_header(&header[..i]),
                ProxyParse::Incomplete,
                "prefix of {i} bytes of {header:?}"
            );
        }
        let mut with_http = header.to_vec();
        with_http.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(parse_proxy_header(&with_http), done);
    }

    fn assert_invalid(buf: &[u8]) {
        assert!(
            matches!(parse_proxy_header(buf), ProxyParse::Invalid(_)),
            "{buf:?} -> {:?}",
            parse_proxy_header(buf)
        );
    }

    #[test]
    fn v1_tcp4() {
        check_valid(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            ProxyHeader::Proxied {
                source: sa(Ipv4Addr::new(192, 168, 0, 1), 56324),
                destination: sa(Ipv4Addr::new(192, 168, 0, 11), 443),
            },
        );
    }

    #[test]
    fn v1_tcp6() {
        check_valid(
            b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n",
            ProxyHeader::Proxied {
                source: sa("2001:db8::1".parse::<Ipv6Addr>().unwrap(), 56324),
                destination: sa("2001:db8::2".parse::<Ipv6Addr>().unwrap(), 443),
            },
        );
    }

    #[test]
    fn v1_unknown() {
        check_valid(b"PROXY UNKNOWN\r\n", ProxyHeader::Local);
        check_valid(
            b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
              ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
            ProxyHeader::Local,
        );
        // More words than ppp splits; the spec says to ignore them.
        check_valid(b"PROXY UNKNOWN a b c d e f\r\n", ProxyHeader::Local);
    }

    #[test]
    fn v1_complete_but_unusable_line_is_invalid() {
        assert_invalid(b"PROXY TCP4\r\n");
        assert_invalid(b"PROXY TCP4 1.2.3.4\r\nGET / HTTP/1.1\r\n");
        assert_invalid(b"PROXY UNKNOWN\rX");
        assert_invalid(b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
        assert_invalid(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
        assert_invalid(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 02\r\n");
        assert_invalid(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n");
    }

    #[test]
    fn v1_too_long_without_crlf() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(PROXY_HEADER_MAX, b'a');
        // Still a possible header at 105 bytes (CRLF would make it 107)...
        assert_eq!(parse_proxy_header(&line[..105]), ProxyParse::Incomplete);
        // ...but never at 108.
        assert_eq!(
            parse_proxy_header(&line[..108]),
            ProxyParse::Invalid("PROXY v1 header too long")
        );
        let mut long = line[..120].to_vec();
        long.extend_from_slice(b"\r\n");
        assert_invalid(&long);
    }

    #[test]
    fn plain_http_is_invalid_at_once() {
        assert_eq!(
            parse_proxy_header(b"GET / HTTP/1.1\r\n"),
            ProxyParse::Invalid(NOT_PROXY)
        );
        assert_eq!(parse_proxy_header(b"G"), ProxyParse::Invalid(NOT_PROXY));
        // Methods starting with P are told apart by their second or third byte.
        assert_invalid(b"PUT / HTTP/1.1\r\n");
        assert_invalid(b"POST / HTTP/1.1\r\n");
        assert_invalid(b"PATCH / HTTP/1.1\r\n");
        assert_invalid(b"PRI * HTTP/2.0\r\n");
        // TLS ClientHello.
        assert_invalid(&[0x16, 0x03, 0x01, 0x02, 0x00]);
    }

    #[test]
    fn v2_proxy_inet() {
        let h = v2_inet(
            Ipv4Addr::new(10, 1, 2, 3),
            Ipv4Addr::new(10, 9, 9, 9),
            40000,
            443,
            &[],
        );
        check_valid(
            &h,
            ProxyHeader::Proxied {
                source: sa(Ipv4Addr::new(10, 1, 2, 3), 40000),
                destination: sa(Ipv4Addr::new(10, 9, 9, 9), 443),
            },
        );
    }

    #[test]
    fn v2_proxy_inet_with_tlvs() {
        // PP2_TYPE_AUTHORITY "example.com" and an AWS-style custom TLV (0xEA).
        let mut tlvs = vec![0x02, 0x00, 0x0b];
        tlvs.extend_from_slice(b"example.com");
        tlvs.extend_from_slice(&[0xea, 0x00, 0x04, 0x01, b'v', b'p', b'c']);
        let h = v2_inet(
            Ipv4Addr::new(203, 0, 113, 7),
            Ipv4Addr::new(10, 0, 0, 1),
            1234,
            80,
            &tlvs,
        );
        assert_eq!(h.len(), 16 + 12 + tlvs.len());
        check_valid(
            &h,
            ProxyHeader::Proxied {
                source: sa(Ipv4Addr::new(203, 0, 113, 7), 1234),
                destination: sa(Ipv4Addr::new(10, 0, 0, 1), 80),
            },
        );
    }

    #[test]
    fn v2_malformed_tlvs_are_skipped_not_read() {
        // A TLV claiming 0xffff bytes of value inside a 5-byte TLV area.
        let h = v2_inet(
            Ipv4Addr::new(1, 2, 3, 4),
            Ipv4Addr::new(5, 6, 7, 8),
            1,
            2,
            &[0x20, 0xff, 0xff, 0x00, 0x01],
        );
        assert_eq!(
            parse_proxy_header(&h),
            proxied(
                sa(Ipv4Addr::new(1, 2, 3, 4), 1),
                sa(Ipv4Addr::new(5, 6, 7, 8), 2),
                h.len()
            )
        );
    }

    #[test]
    fn v2_proxy_inet6_with_and_without_tlvs() {
        let src: Ipv6Addr = "2001:db8:cafe::17".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::443".parse().unwrap();
        let expected = ProxyHeader::Proxied {
            source: sa(src, 4711),
            destination: sa(dst, 8443),
        };
        check_valid(&v2_inet6(src, dst, 4711, 8443, &[]), expected);
        check_valid(
            &v2_inet6(src, dst, 4711, 8443, &[0x04, 0x00, 0x02, 0xaa, 0xbb]),
            expected,
        );
    }

    #[test]
    fn v2_udp_is_proxied() {
        let mut a = [0u8; 12];
        a[..4].copy_from_slice(&[192, 0, 2, 1]);
        a[8..10].copy_from_slice(&53u16.to_be_bytes());
        let h = v2(0x21, 0x12, &a, &[]);
        assert_eq!(
            parse_proxy_header(&h),
            proxied(
                sa(Ipv4Addr::new(192, 0, 2, 1), 53),
                sa(Ipv4Addr::UNSPECIFIED, 0),
                28
            )
        );
    }

    #[test]
    fn v2_local_and_non_ip_families_are_local() {
        // LOCAL, AF_UNSPEC, no payload: what HAProxy sends for its own health checks.
        check_valid(&v2(0x20, 0x00, &[], &[]), ProxyHeader::Local);
        // LOCAL with addresses: they must be ignored.
        let mut inet = v2_inet(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            1,
            2,
            &[],
        );
        inet[12] = 0x20;
        check_valid(&inet, ProxyHeader::Local);
        // PROXY over AF_UNSPEC, with a TLV.
        check_valid(&v2(0x21, 0x00, &[], &[1, 0, 1, b'h']), ProxyHeader::Local);
        // PROXY over AF_UNIX stream: 216 bytes of paths.
        check_valid(&v2(0x21, 0x31, &[0u8; 216], &[]), ProxyHeader::Local);
    }

    #[test]
    fn v2_bad_signature() {
        let mut h = v2_inet(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2, &[]);
        h[5] = b'X';
        assert_eq!(parse_proxy_header(&h), ProxyParse::Invalid(NOT_PROXY));
        // Already refused before the signature is complete.
        assert_eq!(parse_proxy_header(&h[..6]), ProxyParse::Invalid(NOT_PROXY));
        assert_invalid(b"\r\nGET / HTTP/1.1\r\n");
    }

    #[test]
    fn v2_version_1_is_invalid_at_once() {
        let mut h = v2_inet(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 1, 2, &[]);
        h[12] = 0x11;
        for end in 13..=h.len() {
            assert_invalid(&h[..end]);
        }
    }

    #[test]
    fn v2_bad_command_family_or_protocol_is_invalid_at_once() {
        let good = v2(0x21, 0x11, &[0u8; 12], &[]);
        for (index, byte) in [(12, 0x22), (13, 0x41), (13, 0x13)] {
            let mut h = good.clone();
            h[index] = byte;
            for end in index + 1..=h.len() {
                assert_invalid(&h[..end]);
            }
        }
    }

    #[test]
    fn v2_length_too_short_for_family() {
        assert_invalid(&v2(0x21, 0x21, &[0u8; 12], &[]));
    }

    #[test]
    fn v2_length_over_cap() {
        let max_tlvs = PROXY_HEADER_MAX - V2_FIXED_LEN - 12;
        // Exactly at the cap (a single TLV padded out): accepted.
        let at_cap = v2_inet(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            1,
            2,
            &vec![0u8; max_tlvs],
        );
        assert_eq!(at_cap.len(), PROXY_HEADER_MAX);
        assert!(matches!(
            parse_proxy_header(&at_cap),
            ProxyParse::Done { consumed, .. } if consumed == PROXY_HEADER_MAX
        ));
        // One byte more: refused as soon as the length field is read, complete or not.
        let over = v2_inet(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            1,
            2,
            &vec![0u8; max_tlvs + 1],
        );
        for end in [16, 17, 100, over.len()] {
            assert_eq!(
                parse_proxy_header(&over[..end]),
                ProxyParse::Invalid(V2_TOO_LONG),
                "{end} bytes"
            );
        }
        // The maximum declared length, caught from its high byte alone.
        let huge = [&SIG[..], &[0x21, 0x11, 0xff]].concat();
        assert_eq!(parse_proxy_header(&huge), ProxyParse::Invalid(V2_TOO_LONG));
    }

    fn arb_v1() -> impl Strategy<Value = (Vec<u8>, ProxyHeader)> {
        prop_oneof![
            (
                any::<[u8; 4]>(),
                any::<[u8; 4]>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(s, d, sp, dp)| {
                    let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
                    let line = format!("PROXY TCP4 {s} {d} {sp} {dp}\r\n").into_bytes();
                    let header = ProxyHeader::Proxied {
                        source: sa(s, sp),
                        destination: sa(d, dp),
                    };
                    (line, header)
                }),
            (
                any::<[u8; 16]>(),
                any::<[u8; 16]>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(|(s, d, sp, dp)| {
                    let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
                    let line = format!("PROXY TCP6 {s} {d} {sp} {dp}\r\n").into_bytes();
                    let header = ProxyHeader::Proxied {
                        source: sa(s, sp),
                        destination: sa(d, dp),
                    };
                    (line, header)
                }),
        ]
    }

    fn arb_v2() -> impl Strategy<Value = (Vec<u8>, ProxyHeader)> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(s, d, sp, dp, inet6, tlvs)| {
                if inet6 {
                    let (s, d) = (Ipv6Addr::from(s), Ipv6Addr::from(d));
                    let header = ProxyHeader::Proxied {
                        source: sa(s, sp),
                        destination: sa(d, dp),
                    };
                    (v2_inet6(s, d, sp, dp, &tlvs), header)
                } else {
                    let s = Ipv4Addr::new(s[0], s[1], s[2], s[3]);
                    let d = Ipv4Addr::new(d[0], d[1], d[2], d[3]);
                    let header = ProxyHeader::Proxied {
                        source: sa(s, sp),
                        destination: sa(d, dp),
                    };
                    (v2_inet(s, d, sp, dp, &tlvs), header)
                }
            })
    }

    proptest! {
        #[test]
        fn never_panics_and_consumed_is_in_bounds(
            buf in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..256),
                // Steer towards the interesting paths: real prefixes followed by noise.
                proptest::collection::vec(any::<u8>(), 0..256)
                    .prop_map(|tail| [&b"PROXY "[..], &tail].concat()),
                proptest::collection::vec(any::<u8>(), 0..256)
                    .prop_map(|tail| [&SIG[..], &tail].concat()),
            ]
        ) {
            if let ProxyParse::Done { consumed, .. } = parse_proxy_header(&buf) {
                prop_assert!(consumed <= buf.len());
                prop_assert!(consumed <= PROXY_HEADER_MAX);
            }
        }

        #[test]
        fn generated_headers_parse_exactly(
            (bytes, header) in prop_oneof![arb_v1(), arb_v2()],
            tail in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            for i in 0..bytes.len() {
                prop_assert_eq!(parse_proxy_header(&bytes[..i]), ProxyParse::Incomplete);
            }
            let done = ProxyParse::Done { header, consumed: bytes.len() };
            prop_assert_eq!(parse_proxy_header(&bytes), done);
            prop_assert_eq!(parse_proxy_header(&[&bytes[..], &tail].concat()), done);
        }
    }
}
