//! # tollgate-ebpf
//!
//! The kernel pre-filter: an XDP program in C (`bpf/xdp_prefilter.bpf.c`, compiled by
//! `build.rs` with clang `-target bpf` and embedded in the crate) and its aya loader with
//! typed map handles.
//!
//! ## Key components
//!
//! - [`Prefilter`] (`loader.rs`): load, [`Prefilter::attach`] (native, generic, or native
//!   falling back to generic), [`Prefilter::test_run`] (`BPF_PROG_TEST_RUN`).
//! - Map handles in [`PrefilterMaps`]: [`Ports`] (the gateway's destination ports),
//!   [`AllowList`]/[`DenyList`] (CIDR LPM tries), [`Blocks`] (timed per-source blocks),
//!   [`SourceLimits`] (per-source SYN and packet token buckets), [`Stats`] (per-CPU
//!   verdict counters, read as [`PrefilterStats`]).
//! - [`structs`]: `#[repr(C)]` mirrors of `bpf/include/structs.h` with layout asserts.
//! - [`packet`]: a small packet builder for program tests and benchmarks.
//!
//! ## Architecture
//!
//! Verdict order in the kernel (default PASS, DROP only on a positive match): unparsable →
//! PASS; destination port not a gateway port → PASS; source allowed → PASS; denied →
//! DROP; blocked → DROP; SYN over the source's SYN rate → DROP; packet over the source's
//! packet rate → DROP; else PASS. Each verdict counts under its reason. See
//! `ebpf/README.md` for the map layout.
//!
//! ## Usage
//!
//! ```no_run
//! use tollgate_ebpf::{AttachMode, Prefilter};
//! # fn main() -> Result<(), tollgate_ebpf::PrefilterError> {
//! let mut prefilter = Prefilter::load()?;
//! prefilter.maps_mut().ports.replace_all(&[443])?;
//! prefilter.maps_mut().deny.replace_all(&["192.0.2.0/24".parse().expect("a CIDR")])?;
//! let attached = prefilter.attach("eth0", AttachMode::Auto)?;
//! println!("XDP {} on {}", attached.mode(), attached.iface());
//! # Ok(()) }
//! ```
//!
//! ## Error handling
//!
//! Everything returns [`PrefilterError`]; load and attach errors carry a hint for the
//! usual causes (no privileges, a driver without native XDP). A build without clang has
//! no object ([`object_embedded`] is false) and `Prefilter::load` returns
//! [`PrefilterError::NoObject`]: the gateway then enforces the same rules in userspace.
//!
//! ## Performance considerations
//!
//! Per packet to a gateway port: a hash lookup (port), two LPM lookups (allow, deny), a
//! hash lookup (block), an array lookup (limits) and up to two LRU-hash updates (token
//! buckets), plus a per-CPU counter. Traffic to other ports costs the parse and one
//! lookup.

#![warn(missing_docs)]

mod addr;
mod blocks;
mod error;
mod limits;
mod lists;
mod loader;
mod object;
pub mod packet;
mod ports;
mod stats;
pub mod structs;

pub use blocks::Blocks;
pub use error::PrefilterError;
pub use limits::SourceLimits;
pub use lists::{Allow, AllowList, CidrList, Deny, DenyList, ListKind};
pub use loader::{
    AttachMode, Attached, AttachedMode, Prefilter, PrefilterMaps, PROGRAM, XDP_DROP, XDP_PASS,
};
pub use object::embedded as object_embedded;
pub use ports::Ports;
pub use stats::{PrefilterStats, Stats};
pub use structs::{Limits, Reason};
