//! A set of CIDR networks whose membership test costs the same for 10 entries as for 100,000:
//! the networks are merged into sorted, disjoint address ranges (one list per family), and a
//! lookup is one binary search. The pre-filter's allow and deny lists use it on every
//! connection and request; resource policies (source-IP conditions) are meant to reuse it.
//!
//! Built once per plan, never per request; looking up allocates nothing.

use std::net::IpAddr;

use ipnet::IpNet;

/// Networks, merged into ranges for lookup, and as configured (for the kernel's LPM tries and
/// for display).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    nets: Vec<IpNet>,
}

impl CidrSet {
    /// The set of `nets` (overlaps and duplicates allowed).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut nets: Vec<IpNet> = nets.into_iter().map(|n| n.trunc()).collect();
        nets.sort_unstable();
        nets.dedup();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Self {
            v4: merge(v4),
            v6: merge(v6),
            nets,
        }
    }

    /// True when `ip` is in one of the networks. An IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => covered(&self.v4, u32::from(a)),
            IpAddr::V6(a) => covered(&self.v6, u128::from(a)),
        }
    }

    /// The networks as configured (truncated to their prefix, sorted, without duplicates).
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// True when the set has no network.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// Sorts inclusive ranges and merges the ones that overlap or touch.
fn merge<T: Copy + Ord + Successor>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if last.1.successor().is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    merged.shrink_to_fit();
    merged
}

/// True when `x` is in one of the sorted, disjoint inclusive `ranges`.
fn covered<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= x);
    after > 0 && x <= ranges[after - 1].1
}

/// The next address, if any (for merging ranges that touch).
trait Successor: Sized {
    fn successor(self) -> Option<Self>;
}

impl Successor for u32 {
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Successor for u128 {
    fn successor(self) -> Option<Self> {
        self.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(nets: &[&str]) -> CidrSet {
        CidrSet::new(nets.iter().map(|n| n.parse::<IpNet>().expect("net")))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn membership_by_family_and_prefix() {
        let s = set(&[
            "10.0.0.0/8",
            "192.0.2.7/32",
            "2001:db8::/32",
            "10.1.0.0/16",
            "0.0.0.0/32",
        ]);
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "10.1.2.3",
            "192.0.2.7",
            "2001:db8::1",
            "2001:db8:ffff::",
            "::ffff:10.9.9.9",
            "0.0.0.0",
        ] {
            assert!(s.contains(ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.0",
            "9.255.255.255",
            "192.0.2.6",
            "192.0.2.8",
            "2001:db9::",
            "::1",
            "0.0.0.1",
        ] {
            assert!(!s.contains(ip(no)), "{no}");
        }
        assert!(!CidrSet::default().contains(ip("10.0.0.1")));
        // Nested and duplicate networks collapse; the configured list keeps each network.
        assert_eq!(s.v4.len(), 3, "{:?}", s.v4);
        assert_eq!(s.nets().len(), 5);
    }

    #[test]
    fn touching_ranges_merge_up_to_the_last_address() {
        let s = set(&["10.0.0.0/9", "10.128.0.0/9", "255.255.255.255/32", "::/0"]);
        assert_eq!(s.v4, [(0x0a00_0000, 0x0aff_ffff), (u32::MAX, u32::MAX)]);
        assert_eq!(s.v6, [(0, u128::MAX)]);
        assert!(s.contains(ip("255.255.255.255")));
        assert!(s.contains(ip("ffff::1")));
    }

    fn any_v4_net() -> impl Strategy<Value = IpNet> {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::V4(ipnet::Ipv4Net::new(a.into(), p).expect("prefix").trunc()))
    }

    proptest! {
        /// The merged ranges answer exactly as testing every network in turn would.
        #[test]
        fn agrees_with_a_linear_scan(
            nets in proptest::collection::vec(any_v4_net(), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 1..40),
        ) {
            let s = CidrSet::new(nets.iter().copied());
            for p in probes {
                // Probe near network edges too, where off-by-one errors live.
                for a in [p, p & 0xffff_ff00, p | 0xff] {
                    let addr = IpAddr::V4(a.into());
                    let linear = nets.iter().any(|n| n.contains(&addr));
                    prop_assert_eq!(s.contains(addr), linear, "{}", addr);
                }
            }
        }
    }
}
