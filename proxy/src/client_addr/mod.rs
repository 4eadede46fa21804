//! Who the client is, when the gateway sits behind load balancers and other proxies.
//!
//! The TCP peer of a connection is often not the client but a balancer or proxy in front of
//! the gateway. The gateway finds the real client address in two steps, each believing only
//! sources that the configuration trusts:
//!
//! 1. **Per connection — PROXY protocol.** When a connection comes from an address listed in
//!    the listener's `proxy_protocol_from`, its first bytes must be a PROXY header (v1 or v2);
//!    the driver feeds what it has read to [`parse_proxy_header`] until it gets
//!    [`ProxyParse::Done`], strips `consumed` bytes, and from then on uses the header's source
//!    address as the connection's peer ([`ProxyHeader::Local`] keeps the real one).
//!    [`ProxyParse::Invalid`] closes the connection. Connections from other addresses never
//!    have their bytes interpreted as a PROXY header, so clients cannot forge one.
//! 2. **Per request — forwarding headers.** If that peer is within the trusted proxies,
//!    [`client_from_header`] walks `X-Forwarded-For` or `Forwarded` from the right, past
//!    further trusted proxies, to the first address nothing trusted vouches for.
//!
//! Both steps run on the hot path, so neither allocates: results are small `Copy` values.
//! IPv4-mapped IPv6 addresses (what a dual-stack socket reports for IPv4 clients) are
//! compared and returned as IPv4 throughout, so trusted networks can be written as plain IPv4.

mod forwarded;
mod proxy_protocol;

use std::net::IpAddr;

use ipnet::IpNet;

pub use forwarded::{client_from_header, ForwardedHeader};
pub use proxy_protocol::{parse_proxy_header, ProxyHeader, ProxyParse, PROXY_HEADER_MAX};

/// Whether `addr` is inside any of `nets`. `addr` is first normalized (`::ffff:a.b.c.d` becomes
/// `a.b.c.d`), and an IPv4 address also matches a network written in IPv4-mapped form
/// (`::ffff:10.0.0.0/104`), so both spellings of a trusted network behave the same. Broader
/// IPv6 networks such as `::/0` do not cover IPv4.
pub fn is_trusted(addr: IpAddr, nets: &[IpNet]) -> bool {
    let addr = addr.to_canonical();
    nets.iter().any(|net| match (net, addr) {
        // A prefix of at least 96 bits that contains a mapped address lies entirely within
        // ::ffff:0:0/96, i.e. it is an IPv4 network in disguise.
        (IpNet::V6(net), IpAddr::V4(v4)) => {
            net.prefix_len() >= 96 && net.contains(&v4.to_ipv6_mapped())
        }
        _ => net.contains(&addr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_v4_and_v6() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(is_trusted(ip("10.1.2.3"), &trusted));
        assert!(!is_trusted(ip("11.1.2.3"), &trusted));
        assert!(is_trusted(ip("2001:db8::1"), &trusted));
        assert!(!is_trusted(ip("2001:db9::1"), &trusted));
        assert!(!is_trusted(ip("10.0.0.1"), &[]));
    }

    #[test]
    fn v4_mapped_address_matches_v4_net() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert!(is_trusted(ip("::ffff:10.0.0.1"), &trusted));
        assert!(!is_trusted(ip("::ffff:11.0.0.1"), &trusted));
    }

    #[test]
    fn v4_mapped_net_matches_both_spellings() {
        let trusted = nets(&["::ffff:10.0.0.0/104"]);
        assert!(is_trusted(ip("10.0.0.1"), &trusted));
        assert!(is_trusted(ip("::ffff:10.0.0.1"), &trusted));
        assert!(!is_trusted(ip("11.0.0.1"), &trusted));
    }

    #[test]
    fn wide_v6_net_does_not_cover_v4() {
        let trusted = nets(&["::/0"]);
        assert!(is_trusted(ip("2001:db8::1"), &trusted));
        assert!(!is_trusted(ip("10.0.0.1"), &trusted));
        assert!(!is_trusted(ip("::ffff:10.0.0.1"), &trusted));
    }
}
