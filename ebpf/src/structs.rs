//! `#[repr(C)]` mirrors of `bpf/include/structs.h` and the reason numbers of
//! `bpf/include/consts.h`.
//!
//! The compile-time asserts below are the Rust half of the layout contract (Cilium's
//! alignchecker, done by the compiler): a field added on one side only fails the build.
//! Addresses are byte arrays in network order, exactly as the program copies them out of
//! the packet, so no host-endian conversion is ever involved.

use std::mem::{offset_of, size_of};

/// An IPv4 address in network order: key of `blocks_v4`, `syn_v4`, `pkt_v4`.
pub type AddrV4 = [u8; 4];

/// An IPv6 address in network order: key of `blocks_v6`, `syn_v6`, `pkt_v6`.
pub type AddrV6 = [u8; 16];

/// Key of `allow_v4`/`deny_v4` (`struct lpm_key_v4`: prefix length, then the address).
pub type LpmKeyV4 = aya::maps::lpm_trie::Key<AddrV4>;

/// Key of `allow_v6`/`deny_v6` (`struct lpm_key_v6`).
pub type LpmKeyV6 = aya::maps::lpm_trie::Key<AddrV6>;

/// Value of `blocks_v4`/`blocks_v6` (`struct block_value`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockValue {
    /// When the block ends, in ns of CLOCK_MONOTONIC (the clock of `bpf_ktime_get_ns`).
    /// The program never reads it: userspace removes expired entries.
    pub expiry_ns: u64,
    /// Why the source was blocked (userspace's code, opaque to the program).
    pub reason: u32,
    /// Explicit padding, always zero.
    pub pad: u32,
}

/// Value of `syn_*`/`pkt_*` (`struct bucket`): one source's token bucket.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Tokens left, in nano-tokens (`TOKEN_SCALE` per token).
    pub tokens_scaled: u64,
    /// `bpf_ktime_get_ns` of the last refill.
    pub last_ns: u64,
}

/// Value of `limits[0]` (`struct limits`). A rate of 0 turns that bucket off; a burst of
/// 0 counts as 1.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// New TCP connections (SYN without ACK) per second and source.
    pub syn_rate_per_s: u32,
    /// SYNs a source may send at once before the rate applies.
    pub syn_burst: u32,
    /// Packets to gateway ports per second and source.
    pub pkt_rate_per_s: u32,
    /// Packets a source may send at once before the rate applies.
    pub pkt_burst: u32,
    /// IPv4 sources are keyed by this prefix length in blocks and buckets (0: /32).
    pub v4_prefix: u32,
    /// IPv6 sources are keyed by this prefix length in blocks and buckets (0: /128).
    pub v6_prefix: u32,
}

/// One token in `Bucket::tokens_scaled` units (`TOKEN_SCALE`).
pub const TOKEN_SCALE: u64 = 1_000_000_000;

/// Index of each verdict reason in the `stats` per-CPU array (`REASON_*` in consts.h).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Parsed, checked, nothing matched: PASS.
    Pass = 0,
    /// Not classifiable (truncated, non-IP, IPv6 extension header, ...): PASS.
    PassUnparsed = 1,
    /// Destination port is not a gateway port: PASS.
    PassOtherPort = 2,
    /// Source in the allow list: PASS.
    PassAllow = 3,
    /// Source in the deny list: DROP.
    DropDeny = 4,
    /// Source has a timed block: DROP.
    DropBlock = 5,
    /// Source's SYN bucket is empty: DROP.
    DropSynRate = 6,
    /// Source's packet bucket is empty: DROP.
    DropPktRate = 7,
}

impl Reason {
    /// Every reason, in index order (`REASON_COUNT` entries).
    pub const ALL: [Reason; 8] = [
        Reason::Pass,
        Reason::PassUnparsed,
        Reason::PassOtherPort,
        Reason::PassAllow,
        Reason::DropDeny,
        Reason::DropBlock,
        Reason::DropSynRate,
        Reason::DropPktRate,
    ];

    /// The counter's name as used in `PrefilterStats` and in metrics (`drop_deny`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Pass => "pass",
            Reason::PassUnparsed => "pass_unparsed",
            Reason::PassOtherPort => "pass_other_port",
            Reason::PassAllow => "pass_allow",
            Reason::DropDeny => "drop_deny",
            Reason::DropBlock => "drop_block",
            Reason::DropSynRate => "drop_syn_rate",
            Reason::DropPktRate => "drop_pkt_rate",
        }
    }
}

/// `REASON_COUNT`: entries of the `stats` array.
pub const REASON_COUNT: u32 = Reason::ALL.len() as u32;

const _: () = assert!(size_of::<AddrV4>() == 4);
const _: () = assert!(size_of::<AddrV6>() == 16);
const _: () = assert!(size_of::<LpmKeyV4>() == 8);
const _: () = assert!(size_of::<LpmKeyV6>() == 20);
const _: () = assert!(size_of::<BlockValue>() == 16);
const _: () = assert!(offset_of!(BlockValue, expiry_ns) == 0);
const _: () = assert!(offset_of!(BlockValue, reason) == 8);
const _: () = assert!(offset_of!(BlockValue, pad) == 12);
const _: () = assert!(size_of::<Bucket>() == 16);
const _: () = assert!(offset_of!(Bucket, tokens_scaled) == 0);
const _: () = assert!(offset_of!(Bucket, last_ns) == 8);
const _: () = assert!(size_of::<Limits>() == 24);
const _: () = assert!(offset_of!(Limits, syn_rate_per_s) == 0);
const _: () = assert!(offset_of!(Limits, syn_burst) == 4);
const _: () = assert!(offset_of!(Limits, pkt_rate_per_s) == 8);
const _: () = assert!(offset_of!(Limits, pkt_burst) == 12);
const _: () = assert!(offset_of!(Limits, v4_prefix) == 16);
const _: () = assert!(offset_of!(Limits, v6_prefix) == 20);
const _: () = assert!(REASON_COUNT == 8);

// SAFETY: `Pod` lets aya copy these to and from map bytes. Each type is `#[repr(C)]`, made
// only of integers (every bit pattern is valid), and has no implicit padding (the size
// asserts above equal the sum of the fields), so no uninitialised byte is ever read.
#[allow(unsafe_code)]
unsafe impl aya::Pod for BlockValue {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Bucket {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Limits {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_numbered_by_position() {
        for (index, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index, "{}", reason.name());
        }
    }

    #[test]
    fn consts_h_agrees_on_the_reasons() {
        let consts = include_str!("../bpf/include/consts.h");
        for reason in Reason::ALL {
            let define = format!(
                "#define REASON_{} {}",
                reason.name().to_uppercase(),
                reason as u32
            );
            assert!(consts.contains(&define), "consts.h lacks `{define}`");
        }
        assert!(consts.contains(&format!("#define REASON_COUNT {REASON_COUNT}")));
        assert!(consts.contains(&format!("#define TOKEN_SCALE {TOKEN_SCALE}ULL")));
    }
}
