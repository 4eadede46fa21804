//! `PrefilterError`: everything loading, attaching, running and updating the pre-filter
//! can fail with, and the hints that go with the common causes.

use std::error::Error as StdError;
use std::io;

use aya::maps::MapError;
use aya::programs::ProgramError;
use aya::EbpfError;

/// An error of the kernel pre-filter. Each variant says what usually causes it; the
/// `hint` fields are short operator advice derived from the OS error. aya's errors are
/// boxed: some are hundreds of bytes, and every map call returns this type.
#[derive(Debug, thiserror::Error)]
pub enum PrefilterError {
    /// The crate was built where clang was missing, so no XDP object is embedded. Usually
    /// a build machine without the `clang` and `libbpf-dev` packages; the gateway runs
    /// the userspace fallback instead.
    #[error("no XDP object in this build: clang was missing at build time (install clang and libbpf-dev, rebuild)")]
    NoObject,

    /// The kernel refused the object or its maps (`BPF_MAP_CREATE`, BTF). Usually missing
    /// privileges, or a kernel too old for BTF maps.
    #[error("loading the XDP object failed ({hint})")]
    Load {
        /// What usually helps.
        hint: &'static str,
        /// aya's error.
        #[source]
        source: Box<EbpfError>,
    },

    /// The verifier rejected the program, or loading it failed (`BPF_PROG_LOAD`).
    /// Usually missing privileges; a verifier log in the source means a program bug.
    #[error("loading the XDP program `{program}` failed ({hint})")]
    ProgramLoad {
        /// Program (function) name in the object.
        program: &'static str,
        /// What usually helps.
        hint: &'static str,
        /// aya's error, with the verifier log when there is one.
        #[source]
        source: Box<ProgramError>,
    },

    /// The object lacks a map or program the loader expects, or it has another type or
    /// key/value size. Usually the C and Rust sides of this crate were edited out of step.
    #[error("the XDP object does not match the loader: `{name}` {problem}")]
    Mismatch {
        /// Map or program name.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// Attaching to an interface failed. Usually no such interface, missing privileges,
    /// a driver without native XDP, or another XDP program already on the interface.
    #[error("attaching the XDP program to `{iface}` in {mode} mode failed ({hint})")]
    Attach {
        /// Interface name.
        iface: String,
        /// The mode tried last (`native` or `generic`).
        mode: &'static str,
        /// What usually helps.
        hint: &'static str,
        /// aya's error.
        #[source]
        source: Box<ProgramError>,
    },

    /// `BPF_PROG_TEST_RUN` failed. Usually missing privileges, or a packet shorter than
    /// an Ethernet header (14 bytes) or longer than a page, which the kernel rejects.
    #[error("BPF_PROG_TEST_RUN of a {len}-byte packet failed ({hint})")]
    TestRun {
        /// Length of the packet given.
        len: usize,
        /// What usually helps.
        hint: &'static str,
        /// aya's error.
        #[source]
        source: Box<ProgramError>,
    },

    /// A map lookup, update, delete or walk failed. Usually a full map (`E2BIG`/`ENOSPC`:
    /// raise the MAX_* limit in consts.h) or missing privileges.
    #[error("{op} on map `{map}` failed ({hint})")]
    Map {
        /// Map name.
        map: &'static str,
        /// Operation: `insert`, `remove`, `get`, `list`.
        op: &'static str,
        /// What usually helps.
        hint: &'static str,
        /// aya's error.
        #[source]
        source: Box<MapError>,
    },
}

impl PrefilterError {
    /// A `Map` error for `op` on `map`, with a hint from the OS error.
    pub(crate) fn map(map: &'static str, op: &'static str, source: MapError) -> Self {
        let hint = hint_for(&source, Context::Map);
        PrefilterError::Map {
            map,
            op,
            hint,
            source: Box::new(source),
        }
    }
}

/// Where an error happened, for choosing a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// Loading the object or program.
    Load,
    /// Attaching in native (driver) mode.
    AttachNative,
    /// Attaching in generic mode.
    AttachGeneric,
    /// A test run.
    TestRun,
    /// A map operation.
    Map,
}

/// The first OS error number in `err`'s source chain.
pub(crate) fn os_error(err: &(dyn StdError + 'static)) -> Option<i32> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(code) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        next = err.source();
    }
    None
}

/// Operator advice for the common causes of `err` in `context`.
pub(crate) fn hint_for(err: &(dyn StdError + 'static), context: Context) -> &'static str {
    let code = os_error(err);
    match err.downcast_ref::<ProgramError>() {
        Some(ProgramError::UnknownInterface { .. }) => return "no such interface",
        // The verifier says no with EACCES or EINVAL; only EPERM means privileges here.
        Some(ProgramError::LoadError { .. }) if code != Some(libc::EPERM) => {
            return "the verifier rejected the program: its log is in the source error";
        }
        _ => {}
    }
    match (code, context) {
        (Some(libc::EPERM | libc::EACCES), _) => "not root or no CAP_BPF/CAP_NET_ADMIN",
        (Some(libc::EOPNOTSUPP | libc::EINVAL), Context::AttachNative) => {
            "driver has no native XDP: try generic"
        }
        (Some(libc::EBUSY | libc::EEXIST), Context::AttachNative | Context::AttachGeneric) => {
            "another XDP program is attached to this interface"
        }
        (Some(libc::EINVAL), Context::TestRun) => {
            "packet shorter than 14 bytes or longer than a page"
        }
        (Some(libc::ENOMEM), _) => "out of memory for maps (lower the MAX_* limits)",
        (Some(libc::E2BIG | libc::ENOSPC), Context::Map) => {
            "map full: raise its MAX_* limit in bpf/include/consts.h"
        }
        (_, Context::Load) => "see the verifier log, if any, in the source error",
        _ => "see the source error",
    }
}
