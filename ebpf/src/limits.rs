//! `SourceLimits`: the per-source token-bucket settings (`limits[0]`), read by the
//! program on every packet to a gateway port, so a change applies at once. Bucket state
//! already in the LRU maps is kept: a lowered burst caps it on the next packet.

use std::fmt;

use aya::maps::{Array, MapData};

use crate::error::PrefilterError;
use crate::structs::Limits;

const MAP: &str = "limits";

/// Handle on the single `limits` entry.
pub struct SourceLimits {
    map: Array<MapData, Limits>,
}

// aya's `Array` has no `Debug`; the map's identity is all there is to show.
impl fmt::Debug for SourceLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceLimits").field("map", &MAP).finish()
    }
}

impl SourceLimits {
    pub(crate) fn new(map: Array<MapData, Limits>) -> Self {
        SourceLimits { map }
    }

    /// Sets the limits. A rate of 0 turns that bucket off (the initial state); a burst of
    /// 0 counts as 1.
    pub fn set(&mut self, limits: Limits) -> Result<(), PrefilterError> {
        self.map
            .set(0, limits, 0)
            .map_err(|e| PrefilterError::map(MAP, "insert", e))
    }

    /// The limits in force.
    pub fn get(&self) -> Result<Limits, PrefilterError> {
        self.map
            .get(&0, 0)
            .map_err(|e| PrefilterError::map(MAP, "get", e))
    }
}
