//! The client address from `X-Forwarded-For` or `Forwarded` (RFC 7239), believed only as far as
//! a chain of trusted proxies vouches for it.
//!
//! Every proxy appends the address it received the request from, so the right end of the list
//! was written by the proxy nearest to us and the left end by whoever sent the request first —
//! possibly an attacker making up entries. Starting from the connection's peer, each trusted
//! hop vouches for the hop to its left; the first hop that is not trusted is the client, since
//! nothing we trust stands behind the entries further left. A hop that cannot be read ends the
//! walk at the last address that was vouched for, so an unreadable value never becomes the
//! answer.
//!
//! Runs once per request; it neither allocates nor copies the header values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::is_trusted;

/// Which request header carries the proxy chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `Forwarded: for=client, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

/// The client address: when `peer` (the connection's address, after any PROXY header) is in
/// `trusted`, walk the header's hops right to left (the values of every occurrence of the
/// header, in order, joined as one list), skipping hops that are themselves trusted; the first
/// untrusted hop is the client. If every hop is trusted, the left-most hop is the client. A hop
/// that cannot be parsed (garbage, `unknown`, obfuscated `_name` identifiers in Forwarded, a
/// Forwarded element without `for=`) stops the walk: the client is then the last address reached
/// (the nearest trusted one, or the peer) — never an attacker-controlled unparsable value. When
/// `peer` is not trusted the header is ignored and `peer` is the client.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), in `peer` or in the header, are matched and
/// returned as IPv4.
///
/// `values` only needs to be iterable once, front to back: the walk is computed in a single
/// left-to-right pass (see `Walk`), so any `DoubleEndedIterator + Clone` over the header
/// values works too. Each value is split on its own, so a broken quoted string in one
/// `Forwarded` line cannot swallow the elements of the next line (which a trusted proxy may
/// have added).
pub fn client_from_header<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    kind: ForwardedHeader,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut walk = Walk::new(trusted);
    for value in values {
        match kind {
            ForwardedHeader::XForwardedFor => {
                // No quoting in X-Forwarded-For: every comma separates entries.
                for entry in value.split(|&b| b == b',') {
                    let entry = trim_ows(entry);
                    if !entry.is_empty() {
                        walk.push(parse_node(entry, false));
                    }
                }
            }
            ForwardedHeader::Forwarded => {
                for element in SplitOutsideQuotes::new(value, b',') {
                    let element = trim_ows(element);
                    if !element.is_empty() {
                        walk.push(forwarded_for(element));
                    }
                }
            }
        }
    }
    walk.client(peer)
}

/// The right-to-left walk, computed left to right. Splitting `Forwarded` from the right is not
/// reliable (a quoted string may hide commas and its escapes only read forwards), and buffering
/// the hops would allocate. The walk's answer depends only on the right-most hop that stops it
/// and on what lies to that hop's right, so one forward pass keeping just that is enough.
struct Walk<'t> {
    trusted: &'t [IpNet],
    /// The first hop, if it is a trusted address; the answer when nothing stops the walk.
    leftmost: Option<IpAddr>,
    stop: Stop,
}

/// The right-most hop seen so far that would stop a right-to-left walk.
enum Stop {
    /// None yet: every hop so far is a trusted address.
    Nothing,
    /// An untrusted address: the client, unless a later hop stops the walk first.
    Untrusted(IpAddr),
    /// An unreadable hop; the walk ends at the trusted address just right of it, if any yet.
    Unreadable { right: Option<IpAddr> },
}

impl<'t> Walk<'t> {
    fn new(trusted: &'t [IpNet]) -> Self {
        Self {
            trusted,
            leftmost: None,
            stop: Stop::Nothing,
        }
    }

    /// Adds the next hop to the right; `None` for a hop that could not be read.
    fn push(&mut self, hop: Option<IpAddr>) {
        match hop {
            None => self.stop = Stop::Unreadable { right: None },
            Some(addr) if !is_trusted(addr, self.trusted) => self.stop = Stop::Untrusted(addr),
            Some(addr) => {
                // `stop` never returns to `Nothing`, so when the walk ends without a stop this
                // is indeed the first hop.
                self.leftmost.get_or_insert(addr);
                if let Stop::Unreadable {
                    right: right @ None,
                } = &mut self.stop
                {
                    *right = Some(addr);
                }
            }
        }
    }

    fn client(self, peer: IpAddr) -> IpAddr {
        match self.stop {
            Stop::Nothing => self.leftmost.unwrap_or(peer),
            Stop::Untrusted(addr) => addr,
            Stop::Unreadable { right } => right.unwrap_or(peer),
        }
    }
}

/// The address in one `Forwarded` element's `for=` parameter, or `None` if the element is
/// malformed, has no `for=` (or two), or its node is `unknown`, obfuscated or not an address.
///
/// Every parameter's value must be a whole token or a whole quoted string, even for parameters
/// we do not use. That is what keeps a trusted proxy's element intact when it appends to a
/// value written by the client: text such as `x="` left open by the client either runs to the
/// end of the value or leaves bytes after a closing quote, and both make the element
/// unreadable instead of letting the client's `for=` stand in for the proxy's.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let mut node = None;
    for pair in SplitOutsideQuotes::new(element, b';') {
        let pair = trim_ows(pair);
        if pair.is_empty() {
            continue; // `for=a;;proto=http` is allowed by the grammar.
        }
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let value = param_value(value)?;
        if name.eq_ignore_ascii_case(b"for") {
            if node.is_some() {
                return None; // RFC 7239 §4: a parameter must not occur twice in one element.
            }
            node = Some(value);
        }
    }
    // `unknown` and `_obfuscated` nodes fail to parse as addresses, which is what we want.
    parse_node(node?, true)
}

/// A parameter value: a token, or the contents of a quoted string that ends the value. Quoted
/// strings with escapes are refused (no address contains a backslash) to avoid unescaping
/// into a buffer.
fn param_value(value: &[u8]) -> Option<&[u8]> {
    match value.strip_prefix(b"\"") {
        Some(quoted) => {
            let inner = quoted.strip_suffix(b"\"")?;
            if inner.iter().any(|&b| b == b'"' || b == b'\\') {
                return None;
            }
            Some(inner)
        }
        // Looser than RFC 7239's token (it admits `:` and `[]`, which senders leave unquoted
        // in the wild); quotes and whitespace are still refused.
        None if !value.is_empty()
            && value
                .iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\') =>
        {
            Some(value)
        }
        None => None,
    }
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`. With `obfuscated_port`, the port may also be an
/// RFC 7239 `_identifier`. The port is checked, then dropped.
fn parse_node(node: &[u8], obfuscated_port: bool) -> Option<IpAddr> {
    let addr = if let Some(bracketed) = node.strip_prefix(b"[") {
        let close = bracketed.iter().position(|&b| b == b']')?;
        let after = &bracketed[close + 1..];
        if !after.is_empty() {
            check_port(after.strip_prefix(b":")?, obfuscated_port)?;
        }
        IpAddr::V6(parse_ascii::<Ipv6Addr>(&bracketed[..close])?)
    } else if let Some(v6) = parse_ascii::<Ipv6Addr>(node) {
        // Bare IPv6 cannot carry a port: its last `:` group is part of the address.
        IpAddr::V6(v6)
    } else {
        let (host, port) = match node.iter().position(|&b| b == b':') {
            Some(colon) => (&node[..colon], Some(&node[colon + 1..])),
            None => (node, None),
        };
        if let Some(port) = port {
            check_port(port, obfuscated_port)?;
        }
        IpAddr::V4(parse_ascii::<Ipv4Addr>(host)?)
    };
    Some(addr.to_canonical())
}

fn check_port(port: &[u8], obfuscated: bool) -> Option<()> {
    let numeric = (1..=5).contains(&port.len())
        && port.iter().all(u8::is_ascii_digit)
        && parse_ascii::<u16>(port).is_some();
    // RFC 7239 §6.3: obfport = "_" 1*(ALPHA / DIGIT / "." / "_" / "-").
    let obfuscated = obfuscated
        && port.len() > 1
        && port[0] == b'_'
        && port[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (numeric || obfuscated).then_some(())
}

fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Strips RFC 9110 optional whitespace (spaces and tabs) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Splits on `sep` where it is not inside a double-quoted string (with `\` escapes). An
/// unterminated quote runs to the end of the input, making that last piece unparsable.
struct SplitOutsideQuotes<'a> {
    rest: Option<&'a [u8]>,
    sep: u8,
}

impl<'a> SplitOutsideQuotes<'a> {
    fn new(input: &'a [u8], sep: u8) -> Self {
        Self {
            rest: Some(input),
            sep,
        }
    }
}

impl<'a> Iterator for SplitOutsideQuotes<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let input = self.rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in input.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted {
                match b {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if b == b'"' {
                quoted = true;
            } else if b == self.sep {
                self.rest = Some(&input[i + 1..]);
                return Some(&input[..i]);
            }
        }
        self.rest = None;
        Some(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(peer: &str, trusted: &[&str], values: &[&str]) -> IpAddr {
        client_from_header(
            ip(peer),
            &nets(trusted),
            ForwardedHeader::XForwardedFor,
            values.iter().map(|v| v.as_bytes()),
        )
    }

    fn fwd(peer: &str, trusted: &[&str], values: &[&str]) -> IpAddr {
        client_from_header(
            ip(peer),
            &nets(trusted),
            ForwardedHeader::Forwarded,
            values.iter().map(|v| v.as_bytes()),
        )
    }

    const TEN: &[&str] = &["10.0.0.0/8"];

    #[test]
    fn untrusted_peer_ignores_header() {
        assert_eq!(xff("203.0.113.9", TEN, &["1.1.1.1"]), ip("203.0.113.9"));
        assert_eq!(fwd("203.0.113.9", TEN, &["for=1.1.1.1"]), ip("203.0.113.9"));
        // Normalized even when returned as is.
        assert_eq!(
            xff("::ffff:203.0.113.9", TEN, &["1.1.1.1"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn first_untrusted_hop_from_the_right() {
        assert_eq!(xff("10.0.0.1", TEN, &["1.1.1.1, 10.0.0.2"]), ip("1.1.1.1"));
        // An attacker's made-up entries left of the real client are not reached.
        assert_eq!(
            xff("10.0.0.1", TEN, &["6.6.6.6, 10.9.9.9, 1.1.1.1, 10.0.0.2"]),
            ip("1.1.1.1")
        );
    }

    #[test]
    fn all_trusted_gives_leftmost() {
        assert_eq!(
            xff("10.0.0.1", TEN, &["10.0.0.3, 10.0.0.2"]),
            ip("10.0.0.3")
        );
        assert_eq!(
            fwd("10.0.0.1", TEN, &["for=10.0.0.3,for=10.0.0.2"]),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn no_hops_gives_peer() {
        assert_eq!(xff("10.0.0.1", TEN, &[]), ip("10.0.0.1"));
        assert_eq!(xff("10.0.0.1", TEN, &["", " , ,"]), ip("10.0.0.1"));
        assert_eq!(fwd("10.0.0.1", TEN, &[""]), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_hop_stops_walk() {
        // Garbage right after the peer: the peer is the client.
        assert_eq!(xff("10.0.0.1", TEN, &["1.1.1.1, garbage"]), ip("10.0.0.1"));
        // Garbage behind trusted hops: the nearest trusted one.
        assert_eq!(
            xff("10.0.0.1", TEN, &["1.1.1.1, garbage, 10.0.0.3, 10.0.0.2"]),
            ip("10.0.0.3")
        );
        // Garbage left of the client does not matter.
        assert_eq!(xff("10.0.0.1", TEN, &["garbage, 1.1.1.1"]), ip("1.1.1.1"));
        assert_eq!(xff("10.0.0.1", TEN, &["1.1.1.1 2.2.2.2"]), ip("10.0.0.1"));
        assert_eq!(xff("10.0.0.1", TEN, &["unknown"]), ip("10.0.0.1"));
    }

    #[test]
    fn occurrences_are_joined_in_order() {
        assert_eq!(
            xff(
                "10.0.0.1",
                TEN,
                &["1.1.1.1", "2.2.2.2, 10.0.0.3", "10.0.0.2"]
            ),
            ip("2.2.2.2")
        );
        assert_eq!(
            xff("10.0.0.1", TEN, &["10.0.0.5", "10.0.0.4"]),
            ip("10.0.0.5")
        );
        assert_eq!(
            xff("10.0.0.1", TEN, &["2.2.2.2", "garbage", "10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(
            fwd("10.0.0.1", TEN, &["for=1.1.1.1", "for=2.2.2.2", ""]),
            ip("2.2.2.2")
        );
    }

    #[test]
    fn xff_ports_brackets_and_whitespace() {
        let v6 = ip("2001:db8::1");
        assert_eq!(xff("10.0.0.1", TEN, &["2001:db8::1"]), v6);
        assert_eq!(xff("10.0.0.1", TEN, &["[2001:db8::1]"]), v6);
        assert_eq!(xff("10.0.0.1", TEN, &["[2001:db8::1]:443, 10.0.0.2"]), v6);
        assert_eq!(
            xff("10.0.0.1", TEN, &["\t1.1.1.1:8080 ,10.0.0.2 "]),
            ip("1.1.1.1")
        );
        for bad in [
            "1.1.1.1:",
            "1.1.1.1:99999",
            "1.1.1.1:http",
            "[2001:db8::1",
            "[2001:db8::1]443",
            "[1.1.1.1]",
            "1.1.1",
            "1.1.1.1:_obf",
        ] {
            assert_eq!(xff("10.0.0.1", TEN, &[bad]), ip("10.0.0.1"), "{bad}");
        }
    }

    #[test]
    fn v4_mapped_addresses_are_ipv4() {
        // The peer matches a v4 trusted net, and the hop comes back as v4.
        assert_eq!(
            xff("::ffff:10.0.0.1", TEN, &["::ffff:1.1.1.1"]),
            ip("1.1.1.1")
        );
        // A mapped hop inside a v4 trusted net is skipped.
        assert_eq!(
            xff("10.0.0.1", TEN, &["1.1.1.1, [::ffff:10.0.0.2]:80"]),
            ip("1.1.1.1")
        );
        assert_eq!(
            fwd("10.0.0.1", TEN, &[r#"for="[::ffff:1.1.1.1]:4711""#]),
            ip("1.1.1.1")
        );
    }

    #[test]
    fn ipv6_trusted_nets() {
        let trusted = &["2001:db8:ffff::/48"];
        assert_eq!(
            xff(
                "2001:db8:ffff::1",
                trusted,
                &["2001:db8::17, 2001:db8:ffff::2"]
            ),
            ip("2001:db8::17")
        );
    }

    #[test]
    fn forwarded_quoted_v6_and_mixed_case() {
        assert_eq!(
            fwd("10.0.0.1", TEN, &[r#"For="[2001:db8:cafe::17]:4711""#]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd(
                "10.0.0.1",
                TEN,
                &["for=192.0.2.60;proto=http;by=203.0.113.43, FOR=10.0.0.2"]
            ),
            ip("192.0.2.60")
        );
        assert_eq!(
            fwd(
                "10.0.0.1",
                TEN,
                &[r#"proto=https; for="192.0.2.60:80" ; by=_x"#]
            ),
            ip("192.0.2.60")
        );
        // Quoted commas and semicolons belong to the value, not the list.
        assert_eq!(
            fwd(
                "10.0.0.1",
                TEN,
                &[r#"for=192.0.2.60;ext="a,b;c", for=10.0.0.2"#]
            ),
            ip("192.0.2.60")
        );
    }

    #[test]
    fn forwarded_unknown_and_obfuscated_stop_walk() {
        assert_eq!(
            fwd("10.0.0.1", TEN, &["for=1.1.1.1, for=unknown"]),
            ip("10.0.0.1")
        );
        assert_eq!(fwd("10.0.0.1", TEN, &[r#"for="_gazonk""#]), ip("10.0.0.1"));
        assert_eq!(
            fwd("10.0.0.1", TEN, &["for=1.1.1.1, for=_hidden, for=10.0.0.2"]),
            ip("10.0.0.2")
        );
        // An obfuscated port on a real address is fine.
        assert_eq!(
            fwd("10.0.0.1", TEN, &[r#"for="192.0.2.43:_p1""#]),
            ip("192.0.2.43")
        );
    }

    #[test]
    fn forwarded_malformed_elements_stop_walk() {
        for bad in [
            "by=10.0.0.9",             // no for=
            "for=1.1.1.1;for=2.2.2.2", // for twice
            "for",                     // no '='
            r#"for="1.1.1.1"x"#,       // bytes after the closing quote
            r#"for="1.1.1.1"#,         // unterminated quote
            r#"for="1.1\.1.1""#,       // escapes refused
            "for=",                    // empty value
            "f r=1;for=1.1.1.1",       // bad parameter name
        ] {
            assert_eq!(fwd("10.0.0.1", TEN, &[bad]), ip("10.0.0.1"), "{bad}");
        }
    }

    #[test]
    fn forwarded_client_cannot_swallow_the_proxys_element() {
        // A client leaves a quote open; the trusted proxy appends its own element to the same
        // value. The proxy's entry must not vanish into the client's parameter, leaving the
        // client's for= as the answer.
        let value = r#"for=6.6.6.6;x=", for="[2001:db8::5]""#;
        assert_eq!(fwd("10.0.0.1", TEN, &[value]), ip("10.0.0.1"));
        let value = r#"for=6.6.6.6;x=", for=1.1.1.1"#;
        assert_eq!(fwd("10.0.0.1", TEN, &[value]), ip("10.0.0.1"));
        // As separate header lines, the proxy's line is read on its own.
        assert_eq!(
            fwd("10.0.0.1", TEN, &[r#"for=6.6.6.6;x=""#, "for=1.1.1.1"]),
            ip("1.1.1.1")
        );
    }

    #[test]
    fn split_outside_quotes() {
        let parts: Vec<&[u8]> = SplitOutsideQuotes::new(br#"a,"b,\",c",d"#, b',').collect();
        assert_eq!(parts, [&b"a"[..], br#""b,\",c""#, b"d"]);
        let parts: Vec<&[u8]> = SplitOutsideQuotes::new(b"", b',').collect();
        assert_eq!(parts, [&b""[..]]);
    }
}
