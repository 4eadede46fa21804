//! `AllowList` and `DenyList`: CIDR lists of source prefixes, each a pair of LPM tries
//! (`allow_v4`/`allow_v6`, `deny_v4`/`deny_v6`). Both are `CidrList`, told apart by a
//! marker type so a deny entry cannot be written to the allow tries by mistake.
//!
//! Each entry's value is its prefix length. A longest-prefix lookup returns the value of
//! the longest stored prefix that covers the key, so `contains` (exact entry) and
//! `matching` (which entry covers an address) are single lookups, not walks.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::net::IpAddr;

use aya::maps::{LpmTrie, MapData};
use ipnet::IpNet;

use crate::addr::{found, lpm_key_v4, lpm_key_v6, net_of_v4, net_of_v6, removed};
use crate::error::PrefilterError;
use crate::structs::{AddrV4, AddrV6};

/// Which pair of tries a `CidrList` writes to.
pub trait ListKind {
    /// Name of the IPv4 trie in the object.
    const V4: &'static str;
    /// Name of the IPv6 trie in the object.
    const V6: &'static str;
}

/// Marker for the allow list: sources that always PASS.
#[derive(Debug)]
pub struct Allow;

/// Marker for the deny list: sources that DROP (unless allowed).
#[derive(Debug)]
pub struct Deny;

impl ListKind for Allow {
    const V4: &'static str = "allow_v4";
    const V6: &'static str = "allow_v6";
}

impl ListKind for Deny {
    const V4: &'static str = "deny_v4";
    const V6: &'static str = "deny_v6";
}

/// Source prefixes that always PASS (checked before the deny list and blocks).
pub type AllowList = CidrList<Allow>;

/// Source prefixes that DROP on the gateway's ports.
pub type DenyList = CidrList<Deny>;

/// A list of IPv4 and IPv6 source prefixes; each `IpNet` goes to its family's trie.
#[derive(Debug)]
pub struct CidrList<K: ListKind> {
    v4: LpmTrie<MapData, AddrV4, u8>,
    v6: LpmTrie<MapData, AddrV6, u8>,
    kind: PhantomData<K>,
}

impl<K: ListKind> CidrList<K> {
    pub(crate) fn new(v4: LpmTrie<MapData, AddrV4, u8>, v6: LpmTrie<MapData, AddrV6, u8>) -> Self {
        CidrList {
            v4,
            v6,
            kind: PhantomData,
        }
    }

    /// Adds `net` (host bits are cleared: `192.0.2.7/24` is stored as `192.0.2.0/24`).
    /// Adding an entry that is present is a no-op.
    pub fn insert(&mut self, net: IpNet) -> Result<(), PrefilterError> {
        match net {
            IpNet::V4(net) => self
                .v4
                .insert(&lpm_key_v4(&net), net.prefix_len(), 0)
                .map_err(|e| PrefilterError::map(K::V4, "insert", e)),
            IpNet::V6(net) => self
                .v6
                .insert(&lpm_key_v6(&net), net.prefix_len(), 0)
                .map_err(|e| PrefilterError::map(K::V6, "insert", e)),
        }
    }

    /// Removes exactly `net`; `Ok(false)` when it was not in the list. Wider or narrower
    /// entries are left alone.
    pub fn remove(&mut self, net: IpNet) -> Result<bool, PrefilterError> {
        match net {
            IpNet::V4(net) => removed(self.v4.remove(&lpm_key_v4(&net)))
                .map_err(|e| PrefilterError::map(K::V4, "remove", e)),
            IpNet::V6(net) => removed(self.v6.remove(&lpm_key_v6(&net)))
                .map_err(|e| PrefilterError::map(K::V6, "remove", e)),
        }
    }

    /// Whether exactly `net` is an entry (not merely covered by a wider one).
    pub fn contains(&self, net: IpNet) -> Result<bool, PrefilterError> {
        let longest = match net {
            IpNet::V4(net) => found(self.v4.get(&lpm_key_v4(&net), 0))
                .map_err(|e| PrefilterError::map(K::V4, "get", e))?,
            IpNet::V6(net) => found(self.v6.get(&lpm_key_v6(&net), 0))
                .map_err(|e| PrefilterError::map(K::V6, "get", e))?,
        };
        Ok(longest == Some(net.prefix_len()))
    }

    /// The entry the program would match for source `addr` (the longest covering
    /// prefix), if any.
    pub fn matching(&self, addr: IpAddr) -> Result<Option<IpNet>, PrefilterError> {
        let host = IpNet::from(addr);
        let prefix_len = match host {
            IpNet::V4(net) => found(self.v4.get(&lpm_key_v4(&net), 0))
                .map_err(|e| PrefilterError::map(K::V4, "get", e))?,
            IpNet::V6(net) => found(self.v6.get(&lpm_key_v6(&net), 0))
                .map_err(|e| PrefilterError::map(K::V6, "get", e))?,
        };
        Ok(prefix_len.and_then(|len| IpNet::new(addr, len).ok().map(|net| net.trunc())))
    }

    /// Every entry, IPv4 first, in the kernel's walk order.
    pub fn list(&self) -> Result<Vec<IpNet>, PrefilterError> {
        let mut nets = Vec::new();
        for key in self.v4.keys() {
            let key = key.map_err(|e| PrefilterError::map(K::V4, "list", e))?;
            nets.extend(net_of_v4(&key));
        }
        for key in self.v6.keys() {
            let key = key.map_err(|e| PrefilterError::map(K::V6, "list", e))?;
            nets.extend(net_of_v6(&key));
        }
        Ok(nets)
    }

    /// Makes the list exactly `nets`: inserts every wanted entry first, then removes the
    /// entries no longer wanted. For the deny list this order means a reload never has a
    /// moment where a source denied before and after passes; the price is a moment where
    /// both the old and the new entries apply. For the allow list it means a source
    /// allowed before and after is never dropped.
    pub fn replace_all(&mut self, nets: &[IpNet]) -> Result<(), PrefilterError> {
        let wanted: HashSet<IpNet> = nets.iter().map(IpNet::trunc).collect();
        for net in &wanted {
            self.insert(*net)?;
        }
        for net in self.list()? {
            if !wanted.contains(&net) {
                self.remove(net)?;
            }
        }
        Ok(())
    }
}
