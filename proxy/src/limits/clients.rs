//! Per-client-address buckets (tollgate's `limit_req`): one lock-free map shared by every
//! worker, keyed by (scope, address), where a scope is one API's or one route's
//! `client_throttle`.
//!
//! The map grows with the number of distinct clients, so the keeper evicts buckets that are
//! back to full (indistinguishable from a new one) and a hard cap bounds it under an address
//! flood: past the cap, a new address is refused as throttled until eviction makes room.

use std::net::IpAddr;

use super::gcra::{Decision, Gcra, Rate};

/// Buckets kept at most (about 100 bytes each with the map's overhead).
pub const CLIENT_BUCKETS_MAX: usize = 1_000_000;

/// The shared map.
#[derive(Debug, Default)]
pub struct ClientBuckets {
    map: papaya::HashMap<(u64, IpAddr), Gcra>,
}

impl ClientBuckets {
    /// Takes one request for `ip` in `scope`.
    pub fn acquire(&self, scope: u64, ip: IpAddr, rate: &Rate, now_ns: u64) -> Decision {
        let map = self.map.pin();
        if let Some(bucket) = map.get(&(scope, ip)) {
            return bucket.acquire(rate, now_ns);
        }
        if map.len() >= CLIENT_BUCKETS_MAX {
            return Decision::Limited {
                retry_in_ns: rate.emission_ns(),
            };
        }
        map.get_or_insert_with((scope, ip), Gcra::new)
            .acquire(rate, now_ns)
    }

    /// Gives one request back (a stricter limit refused it after this one allowed it).
    pub fn refund(&self, scope: u64, ip: IpAddr, rate: &Rate, now_ns: u64) {
        if let Some(bucket) = self.map.pin().get(&(scope, ip)) {
            bucket.refund(rate, now_ns);
        }
    }

    /// Drops buckets that are full again; returns how many remain.
    pub fn evict_idle(&self, now_ns: u64) -> usize {
        let map = self.map.pin();
        map.retain(|_, bucket| !bucket.is_idle(now_ns));
        map.len()
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The scope id of a stable name (`api:shop`, `route:shop/prod/GET /pets`).
pub fn scope_of(name: &str) -> u64 {
    // FNV-1a: stable across runs and cheap; computed once per plan, never per request.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_scopes_have_their_own_buckets_and_idle_ones_are_evicted() {
        let buckets = ClientBuckets::default();
        let rate = Rate::new(1.0, 2).expect("rate");
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "2001:db8::1".parse().expect("ip");
        let s = scope_of("api:shop");
        let t = scope_of("route:shop/$default/GET /x");
        assert_ne!(s, t);
        let now = 1_000_000_000_000;
        for _ in 0..2 {
            assert!(matches!(
                buckets.acquire(s, a, &rate, now),
                Decision::Allowed { .. }
            ));
        }
        assert!(matches!(
            buckets.acquire(s, a, &rate, now),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            buckets.acquire(s, b, &rate, now),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.acquire(t, a, &rate, now),
            Decision::Allowed { .. }
        ));
        assert_eq!(buckets.len(), 3);
        // One second later `b` and `t` are full again; `a` is not.
        assert_eq!(buckets.evict_idle(now + 1_000_000_000), 1);
        assert_eq!(buckets.evict_idle(now + 2_000_000_000), 0);
    }
}
