//! Per-client-address buckets (tollgate's `limit_req`): one lock-free map shared by every
//! worker, keyed by (scope, address), where a scope is one API's or one route's
//! `client_throttle`.
//!
//! A client is an address keyed by prefix (`[client_address] client_prefix_v4/v6`, see
//! `ClientKeying`): the caller passes the key, so a host rotating through its IPv6 /64 is one
//! client.
//!
//! The map grows with the number of distinct clients, so the keeper evicts buckets that are
//! back to full (indistinguishable from a new one), and a cap (`[limits] client_buckets_max`)
//! bounds it under an address flood. At the cap a new client is not refused — that would lock
//! every newcomer out for as long as a spray lasts — but takes the place of the least
//! recently active of a few buckets sampled from the table ([`EVICTION_SAMPLE`]): bounded work
//! per new client, and a sprayer's one-shot addresses are the likeliest to go.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::gcra::{Decision, Gcra, Rate};

/// Buckets kept at most unless configured (about 100 bytes each with the map's overhead).
pub const CLIENT_BUCKETS_MAX: usize = 1_000_000;

/// Buckets looked at to choose one to evict when the table is full.
pub const EVICTION_SAMPLE: usize = 8;

/// The shared map.
#[derive(Debug)]
pub struct ClientBuckets {
    map: papaya::HashMap<(u64, IpAddr), Gcra>,
    /// The cap (set from the plan; relaxed: read only when a new client arrives).
    max: AtomicUsize,
    /// Buckets evicted to make room at the cap, since start.
    evicted: AtomicU64,
}

impl Default for ClientBuckets {
    fn default() -> Self {
        Self {
            map: papaya::HashMap::new(),
            max: AtomicUsize::new(CLIENT_BUCKETS_MAX),
            evicted: AtomicU64::new(0),
        }
    }
}

impl ClientBuckets {
    /// Sets the cap (from the plan in use).
    pub fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    /// Takes one request for client `key` in `scope`.
    pub fn acquire(&self, scope: u64, key: IpAddr, rate: &Rate, now_ns: u64) -> Decision {
        let map = self.map.pin();
        if let Some(bucket) = map.get(&(scope, key)) {
            return bucket.acquire(rate, now_ns);
        }
        if map.len() >= self.max.load(Ordering::Relaxed) {
            self.evict_one();
        }
        map.get_or_insert_with((scope, key), Gcra::new)
            .acquire(rate, now_ns)
    }

    /// Evicts the least recently active (earliest theoretical arrival time) of the first
    /// [`EVICTION_SAMPLE`] buckets of the table. The table's order is its keys' hashes, so the
    /// sample is spread over the address space.
    fn evict_one(&self) {
        let map = self.map.pin();
        let victim = map
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, bucket)| bucket.tat())
            .map(|(key, _)| *key);
        if let Some(key) = victim {
            if map.remove(&key).is_some() {
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Buckets evicted to make room at the cap, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Gives one request back (a stricter limit refused it after this one allowed it).
    pub fn refund(&self, scope: u64, key: IpAddr, rate: &Rate, now_ns: u64) {
        if let Some(bucket) = self.map.pin().get(&(scope, key)) {
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

    #[test]
    fn a_full_table_evicts_instead_of_refusing_newcomers() {
        let buckets = ClientBuckets::default();
        buckets.set_max(16);
        let rate = Rate::new(1.0, 1).expect("rate");
        let s = scope_of("api:shop");
        let now = 1_000_000_000_000;
        // A spray fills the table, each address spending its only token.
        for i in 0..16u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(matches!(
                buckets.acquire(s, ip, &rate, now),
                Decision::Allowed { .. }
            ));
        }
        assert_eq!(buckets.len(), 16);
        // Newcomers are admitted, each taking one sprayed bucket's place.
        for i in 0..100u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0xc000_0200 + i));
            assert!(
                matches!(buckets.acquire(s, ip, &rate, now), Decision::Allowed { .. }),
                "newcomer {i} refused"
            );
            assert!(buckets.len() <= 16);
        }
        assert_eq!(buckets.evicted(), 100);
    }
}
