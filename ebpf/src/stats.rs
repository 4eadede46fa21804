//! `Stats`: the per-CPU verdict counters (`stats`), summed over CPUs into
//! `PrefilterStats`. Counters only grow (until the program is unloaded); callers diff two
//! reads for a rate.

use std::fmt;

use aya::maps::{MapData, PerCpuArray};

use crate::error::PrefilterError;
use crate::structs::Reason;

const MAP: &str = "stats";

/// Packets seen by the program since it was loaded, by verdict reason, over all CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefilterStats {
    /// Parsed, checked, nothing matched: passed.
    pub pass: u64,
    /// Not classifiable (truncated, non-IP, IPv6 extension headers, ...): passed.
    pub pass_unparsed: u64,
    /// To a port that is not the gateway's: passed untouched.
    pub pass_other_port: u64,
    /// Source in the allow list: passed.
    pub pass_allow: u64,
    /// Source in the deny list: dropped.
    pub drop_deny: u64,
    /// Source blocked: dropped.
    pub drop_block: u64,
    /// Source over its SYN rate: dropped.
    pub drop_syn_rate: u64,
    /// Source over its packet rate: dropped.
    pub drop_pkt_rate: u64,
}

impl PrefilterStats {
    /// The counter of `reason`.
    pub fn get(&self, reason: Reason) -> u64 {
        match reason {
            Reason::Pass => self.pass,
            Reason::PassUnparsed => self.pass_unparsed,
            Reason::PassOtherPort => self.pass_other_port,
            Reason::PassAllow => self.pass_allow,
            Reason::DropDeny => self.drop_deny,
            Reason::DropBlock => self.drop_block,
            Reason::DropSynRate => self.drop_syn_rate,
            Reason::DropPktRate => self.drop_pkt_rate,
        }
    }

    fn slot(&mut self, reason: Reason) -> &mut u64 {
        match reason {
            Reason::Pass => &mut self.pass,
            Reason::PassUnparsed => &mut self.pass_unparsed,
            Reason::PassOtherPort => &mut self.pass_other_port,
            Reason::PassAllow => &mut self.pass_allow,
            Reason::DropDeny => &mut self.drop_deny,
            Reason::DropBlock => &mut self.drop_block,
            Reason::DropSynRate => &mut self.drop_syn_rate,
            Reason::DropPktRate => &mut self.drop_pkt_rate,
        }
    }

    /// Counts since `earlier` (saturating, so a reload of the program reads as zero rather
    /// than wrapping).
    pub fn since(&self, earlier: &PrefilterStats) -> PrefilterStats {
        let mut delta = PrefilterStats::default();
        for reason in Reason::ALL {
            *delta.slot(reason) = self.get(reason).saturating_sub(earlier.get(reason));
        }
        delta
    }

    /// All packets dropped.
    pub fn dropped(&self) -> u64 {
        self.drop_deny + self.drop_block + self.drop_syn_rate + self.drop_pkt_rate
    }

    /// All packets passed.
    pub fn passed(&self) -> u64 {
        self.pass + self.pass_unparsed + self.pass_other_port + self.pass_allow
    }
}

/// Handle on the `stats` per-CPU array.
pub struct Stats {
    map: PerCpuArray<MapData, u64>,
}

// aya's `PerCpuArray` has no `Debug`; the map's identity is all there is to show.
impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats").field("map", &MAP).finish()
    }
}

impl Stats {
    pub(crate) fn new(map: PerCpuArray<MapData, u64>) -> Self {
        Stats { map }
    }

    /// Reads every counter, summed over CPUs.
    pub fn read(&self) -> Result<PrefilterStats, PrefilterError> {
        let mut stats = PrefilterStats::default();
        for reason in Reason::ALL {
            let per_cpu = self
                .map
                .get(&(reason as u32), 0)
                .map_err(|e| PrefilterError::map(MAP, "get", e))?;
            *stats.slot(reason) = per_cpu.iter().copied().fold(0u64, u64::wrapping_add);
        }
        Ok(stats)
    }
}
