//! `Blocks`: timed blocks of single source addresses (`blocks_v4`/`blocks_v6`), filled by
//! the gateway's escalation (a client that keeps getting throttled, fails auth, or
//! exceeds quotas).
//!
//! The program drops while an entry exists and never reads its expiry: checking time per
//! packet would cost a helper call for a decision that changes once. The expiry's clock is
//! the caller's: the gateway writes epoch nanoseconds of its own clock and deletes entries
//! itself; `remove_expired` serves callers that keep one clock for writing and expiring.

use std::net::IpAddr;

use aya::maps::{HashMap, MapData};

use crate::addr::{addr_v4, addr_v6, ip_of_v4, ip_of_v6, removed};
use crate::error::PrefilterError;
use crate::structs::{AddrV4, AddrV6, BlockValue};

const V4: &str = "blocks_v4";
const V6: &str = "blocks_v6";

/// Timed source blocks, both families.
#[derive(Debug)]
pub struct Blocks {
    v4: HashMap<MapData, AddrV4, BlockValue>,
    v6: HashMap<MapData, AddrV6, BlockValue>,
}

impl Blocks {
    pub(crate) fn new(
        v4: HashMap<MapData, AddrV4, BlockValue>,
        v6: HashMap<MapData, AddrV6, BlockValue>,
    ) -> Self {
        Blocks { v4, v6 }
    }

    /// Blocks `addr` until `expiry_ns` (on the caller's clock) for `reason` (the caller's
    /// code, stored for listing). Blocking a blocked source replaces its entry.
    pub fn insert(
        &mut self,
        addr: IpAddr,
        expiry_ns: u64,
        reason: u32,
    ) -> Result<(), PrefilterError> {
        let value = BlockValue {
            expiry_ns,
            reason,
            pad: 0,
        };
        match addr {
            IpAddr::V4(a) => self
                .v4
                .insert(addr_v4(a), value, 0)
                .map_err(|e| PrefilterError::map(V4, "insert", e)),
            IpAddr::V6(a) => self
                .v6
                .insert(addr_v6(a), value, 0)
                .map_err(|e| PrefilterError::map(V6, "insert", e)),
        }
    }

    /// Unblocks `addr`; `Ok(false)` when it was not blocked.
    pub fn remove(&mut self, addr: IpAddr) -> Result<bool, PrefilterError> {
        match addr {
            IpAddr::V4(a) => removed(self.v4.remove(&addr_v4(a)))
                .map_err(|e| PrefilterError::map(V4, "remove", e)),
            IpAddr::V6(a) => removed(self.v6.remove(&addr_v6(a)))
                .map_err(|e| PrefilterError::map(V6, "remove", e)),
        }
    }

    /// Every block as `(source, expiry_ns, reason)`, IPv4 first.
    pub fn list(&self) -> Result<Vec<(IpAddr, u64, u32)>, PrefilterError> {
        let mut blocks = Vec::new();
        for entry in self.v4.iter() {
            let (key, value) = entry.map_err(|e| PrefilterError::map(V4, "list", e))?;
            blocks.push((ip_of_v4(key), value.expiry_ns, value.reason));
        }
        for entry in self.v6.iter() {
            let (key, value) = entry.map_err(|e| PrefilterError::map(V6, "list", e))?;
            blocks.push((ip_of_v6(key), value.expiry_ns, value.reason));
        }
        Ok(blocks)
    }

    /// Removes every block whose expiry is at or before `now_ns`; returns how many.
    pub fn remove_expired(&mut self, now_ns: u64) -> Result<usize, PrefilterError> {
        let mut count = 0;
        for (addr, expiry_ns, _) in self.list()? {
            if expiry_ns <= now_ns && self.remove(addr)? {
                count += 1;
            }
        }
        Ok(count)
    }
}
