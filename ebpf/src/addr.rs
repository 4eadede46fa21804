//! Conversions between `std::net`/`ipnet` values and the map keys of `structs.rs`, and
//! the "absent is not an error" rule for removals.
//!
//! Addresses go into keys as `octets()` (network order), which is how the program copies
//! them from the packet; no integer conversion, so no endianness to get wrong.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::MapError;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::structs::{AddrV4, AddrV6, LpmKeyV4, LpmKeyV6};

/// LPM-trie key of an IPv4 network (host bits cleared).
pub(crate) fn lpm_key_v4(net: &Ipv4Net) -> LpmKeyV4 {
    LpmKeyV4::new(u32::from(net.prefix_len()), net.trunc().addr().octets())
}

/// LPM-trie key of an IPv6 network (host bits cleared).
pub(crate) fn lpm_key_v6(net: &Ipv6Net) -> LpmKeyV6 {
    LpmKeyV6::new(u32::from(net.prefix_len()), net.trunc().addr().octets())
}

/// The network a v4 trie key stands for, or `None` for a corrupt prefix length.
pub(crate) fn net_of_v4(key: &LpmKeyV4) -> Option<IpNet> {
    let prefix = u8::try_from(key.prefix_len()).ok()?;
    Ipv4Net::new(Ipv4Addr::from(key.data()), prefix)
        .ok()
        .map(IpNet::V4)
}

/// The network a v6 trie key stands for, or `None` for a corrupt prefix length.
pub(crate) fn net_of_v6(key: &LpmKeyV6) -> Option<IpNet> {
    let prefix = u8::try_from(key.prefix_len()).ok()?;
    Ipv6Net::new(Ipv6Addr::from(key.data()), prefix)
        .ok()
        .map(IpNet::V6)
}

/// Hash key of an IPv4 source.
pub(crate) fn addr_v4(addr: Ipv4Addr) -> AddrV4 {
    addr.octets()
}

/// Hash key of an IPv6 source.
pub(crate) fn addr_v6(addr: Ipv6Addr) -> AddrV6 {
    addr.octets()
}

/// `IpAddr` of a v4 hash key.
pub(crate) fn ip_of_v4(key: AddrV4) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(key))
}

/// `IpAddr` of a v6 hash key.
pub(crate) fn ip_of_v6(key: AddrV6) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(key))
}

/// `Ok(true)` when a delete removed something, `Ok(false)` when the key was absent.
pub(crate) fn removed(result: Result<(), MapError>) -> Result<bool, MapError> {
    match result {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound | MapError::ElementNotFound) => Ok(false),
        Err(MapError::SyscallError(err)) if err.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

/// `Ok(None)` for an absent key (a lookup miss is not an error).
pub(crate) fn found<V>(result: Result<V, MapError>) -> Result<Option<V>, MapError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(MapError::KeyNotFound | MapError::ElementNotFound) => Ok(None),
        Err(MapError::SyscallError(err)) if err.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_network_order_with_host_bits_cleared() {
        let net: Ipv4Net = "192.0.2.77/24".parse().unwrap();
        let key = lpm_key_v4(&net);
        assert_eq!(key.prefix_len(), 24);
        assert_eq!(key.data(), [192, 0, 2, 0]);
        assert_eq!(net_of_v4(&key), Some("192.0.2.0/24".parse().unwrap()));
    }

    #[test]
    fn v6_keys_round_trip() {
        let net: Ipv6Net = "2001:db8::1/128".parse().unwrap();
        let key = lpm_key_v6(&net);
        assert_eq!(key.prefix_len(), 128);
        assert_eq!(net_of_v6(&key), Some(IpNet::V6(net)));
    }
}
