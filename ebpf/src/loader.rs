//! `Prefilter`: loads the embedded XDP object, takes its maps into typed handles,
//! attaches the program to interfaces, and runs it on test packets.
//!
//! Test runs use aya 0.14's `TestRun` trait (`BPF_PROG_TEST_RUN` on the program fd), so no
//! raw syscall or `unsafe` is needed here. The kernel rejects test packets shorter than
//! an Ethernet header (14 bytes).

use std::error::Error as StdError;
use std::fmt;

use aya::maps::{Map, MapError};
use aya::programs::xdp::XdpLink;
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, TestRun, TestRunOptions};

use crate::blocks::Blocks;
use crate::error::{hint_for, Context, PrefilterError};
use crate::limits::SourceLimits;
use crate::lists::{AllowList, DenyList};
use crate::object;
use crate::ports::Ports;
use crate::stats::Stats;

/// The XDP program's name in the object (its C function).
pub const PROGRAM: &str = "xdp_prefilter";

/// XDP verdict `XDP_DROP` as returned by [`Prefilter::test_run`].
pub const XDP_DROP: u32 = 1;

/// XDP verdict `XDP_PASS` as returned by [`Prefilter::test_run`].
pub const XDP_PASS: u32 = 2;

/// How to attach to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) XDP, falling back to generic when the driver refuses.
    #[default]
    Auto,
    /// Native XDP only: fails on drivers without XDP support.
    Native,
    /// Generic (SKB) XDP: works on every interface, after the kernel allocated an skb.
    Generic,
}

/// The mode an attachment ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// In the driver, before any skb is allocated.
    Native,
    /// In the generic network stack path.
    Generic,
}

impl AttachedMode {
    fn name(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        }
    }

    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachedMode::Native => XdpMode::Driver,
            AttachedMode::Generic => XdpMode::Skb,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The program attached to one interface. Dropping it detaches the program (aya link).
/// Keep the `Prefilter` alive at least as long: its maps are what the program consults.
#[derive(Debug)]
pub struct Attached {
    iface: String,
    mode: AttachedMode,
    fallback_reason: Option<String>,
    _link: XdpLink,
}

impl Attached {
    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The mode in use.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// For `AttachMode::Auto` that ended in generic mode: why native failed (its error
    /// text, with the hint). `None` otherwise.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }
}

/// The pre-filter's maps, as typed handles.
#[derive(Debug)]
pub struct PrefilterMaps {
    /// Gateway destination ports.
    pub ports: Ports,
    /// Source prefixes that always pass.
    pub allow: AllowList,
    /// Source prefixes that drop.
    pub deny: DenyList,
    /// Timed blocks of single sources.
    pub blocks: Blocks,
    /// Per-source SYN and packet token-bucket settings.
    pub limits: SourceLimits,
    /// Verdict counters.
    pub stats: Stats,
}

/// The loaded (verified) XDP pre-filter and its maps. Not attached anywhere until
/// [`Prefilter::attach`]. The program leaves the kernel once this and every [`Attached`]
/// are dropped.
#[derive(Debug)]
pub struct Prefilter {
    maps: PrefilterMaps,
    ebpf: Ebpf,
}

impl Prefilter {
    /// Loads the embedded object: creates the maps, verifies and loads the program.
    /// Needs root or CAP_BPF (plus CAP_NET_ADMIN to attach); every map starts empty, so
    /// the program passes everything until ports are set.
    pub fn load() -> Result<Prefilter, PrefilterError> {
        let bytes = object::bytes().ok_or(PrefilterError::NoObject)?;
        let mut ebpf = Ebpf::load(bytes).map_err(|source| PrefilterError::Load {
            hint: hint_for(&source, Context::Load),
            source: Box::new(source),
        })?;
        let program = xdp_mut(&mut ebpf)?;
        program
            .load()
            .map_err(|source| PrefilterError::ProgramLoad {
                program: PROGRAM,
                hint: hint_for(&source, Context::Load),
                source: Box::new(source),
            })?;
        let maps = PrefilterMaps {
            ports: Ports::new(take(&mut ebpf, "ports")?),
            allow: AllowList::new(take(&mut ebpf, "allow_v4")?, take(&mut ebpf, "allow_v6")?),
            deny: DenyList::new(take(&mut ebpf, "deny_v4")?, take(&mut ebpf, "deny_v6")?),
            blocks: Blocks::new(take(&mut ebpf, "blocks_v4")?, take(&mut ebpf, "blocks_v6")?),
            limits: SourceLimits::new(take(&mut ebpf, "limits")?),
            stats: Stats::new(take(&mut ebpf, "stats")?),
        };
        Ok(Prefilter { maps, ebpf })
    }

    /// The map handles.
    pub fn maps(&self) -> &PrefilterMaps {
        &self.maps
    }

    /// The map handles, for updates.
    pub fn maps_mut(&mut self) -> &mut PrefilterMaps {
        &mut self.maps
    }

    /// Attaches the program to `iface`. With `AttachMode::Auto`, a native attach that
    /// fails is retried in generic mode and the result says why native failed.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<Attached, PrefilterError> {
        match mode {
            AttachMode::Native => self.attach_as(iface, AttachedMode::Native, None),
            AttachMode::Generic => self.attach_as(iface, AttachedMode::Generic, None),
            AttachMode::Auto => match self.attach_as(iface, AttachedMode::Native, None) {
                Ok(attached) => Ok(attached),
                Err(native) => {
                    self.attach_as(iface, AttachedMode::Generic, Some(error_text(&native)))
                }
            },
        }
    }

    fn attach_as(
        &mut self,
        iface: &str,
        mode: AttachedMode,
        fallback_reason: Option<String>,
    ) -> Result<Attached, PrefilterError> {
        let context = match mode {
            AttachedMode::Native => Context::AttachNative,
            AttachedMode::Generic => Context::AttachGeneric,
        };
        let attach_error = |source| PrefilterError::Attach {
            iface: iface.to_owned(),
            mode: mode.name(),
            hint: hint_for(&source, context),
            source: Box::new(source),
        };
        let program = xdp_mut(&mut self.ebpf)?;
        let link_id = program
            .attach(iface, mode.xdp_mode())
            .map_err(attach_error)?;
        let link = program.take_link(link_id).map_err(attach_error)?;
        Ok(Attached {
            iface: iface.to_owned(),
            mode,
            fallback_reason,
            _link: link,
        })
    }

    /// How often the program ran and for how long in all, as the kernel counts them — only
    /// while `kernel.bpf_stats_enabled = 1` (off by default: the accounting itself costs a
    /// little per packet). None when the kernel cannot say.
    pub fn run_stats(&self) -> Option<(u64, std::time::Duration)> {
        let program: &Xdp = self.ebpf.program(PROGRAM)?.try_into().ok()?;
        let info = program.info().ok()?;
        Some((info.run_count(), info.run_time()))
    }

    /// Runs the program once on `packet` (an Ethernet frame, at least 14 bytes) with
    /// `BPF_PROG_TEST_RUN` and returns its XDP verdict ([`XDP_PASS`], [`XDP_DROP`]). The
    /// run uses the live maps: it counts in `stats` and takes tokens like a real packet.
    /// Needs root or CAP_BPF (the kernel asks CAP_SYS_ADMIN for some program types).
    pub fn test_run(&self, packet: &[u8]) -> Result<u32, PrefilterError> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| missing(PROGRAM))?
            .try_into()
            .map_err(|_| not_xdp())?;
        let options = TestRunOptions {
            data_in: Some(packet),
            ..TestRunOptions::default()
        };
        program
            .test_run(options)
            .map(|result| result.return_value)
            .map_err(|source| PrefilterError::TestRun {
                len: packet.len(),
                hint: hint_for(&source, Context::TestRun),
                source: Box::new(source),
            })
    }
}

fn xdp_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, PrefilterError> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| missing(PROGRAM))?
        .try_into()
        .map_err(|_| not_xdp())
}

fn missing(name: &'static str) -> PrefilterError {
    PrefilterError::Mismatch {
        name,
        problem: "is missing".to_owned(),
    }
}

fn not_xdp() -> PrefilterError {
    PrefilterError::Mismatch {
        name: PROGRAM,
        problem: "is not an XDP program".to_owned(),
    }
}

/// Takes map `name` out of the object as handle type `M` (checks type and sizes).
fn take<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, PrefilterError>
where
    M: TryFrom<Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| missing(name))?;
    M::try_from(map).map_err(|e| PrefilterError::Mismatch {
        name,
        problem: e.to_string(),
    })
}

/// `err` and its sources, joined with ": ".
fn error_text(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}
