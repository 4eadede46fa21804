//! The compiled XDP object, embedded at build time by `build.rs` (or absent when clang
//! was missing, under `cfg(tollgate_no_bpf_object)`).

/// The object's bytes, 8-byte aligned as the ELF parser needs.
#[cfg(not(tollgate_no_bpf_object))]
pub(crate) fn bytes() -> Option<&'static [u8]> {
    Some(aya::include_bytes_aligned!(concat!(
        env!("OUT_DIR"),
        "/xdp_prefilter.bpf.o"
    )))
}

/// No object in this build: clang was missing when the crate was built.
#[cfg(tollgate_no_bpf_object)]
pub(crate) fn bytes() -> Option<&'static [u8]> {
    None
}

/// Whether this build embeds the XDP object (false when clang was missing at build time).
pub fn embedded() -> bool {
    bytes().is_some()
}
