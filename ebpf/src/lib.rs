//! # tollgate-ebpf
//!
//! The kernel pre-filter: XDP programs in C (`*.bpf.c`, compiled with clang `-target bpf`)
//! and their aya loader with typed map handles (deny/allow CIDR lists, per-source token
//! buckets, timed blocks, per-CPU verdict counters), plus a userspace fallback that enforces
//! the same rules at accept time when XDP cannot attach.
//!
//! This crate is a skeleton until the pre-filter issue fills it; it exists now so the
//! workspace layout is final and the gateway's accept path has a place to call into.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Where the pre-filter runs for an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No kernel program: rules are enforced in userspace at accept time.
    Userspace,
}

/// The mode available today (the XDP program comes with the pre-filter issue).
pub fn available_mode() -> Mode {
    Mode::Userspace
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_the_program_the_mode_is_userspace() {
        assert_eq!(super::available_mode(), super::Mode::Userspace);
    }
}
