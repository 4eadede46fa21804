//! `[prefilter]`: the kernel pre-filter and its userspace fallback — allow and deny lists,
//! per-source connection (and, with XDP, packet) rates, and escalation from L7 refusals to a
//! timed block. The section as written, its compiled form, and the compile step.

use serde::Deserialize;
use toml::Spanned;

use crate::cidr_set::CidrSet;
use crate::compile::{ranged, span};
use crate::compile_edge::cidrs;
use crate::error::{ConfigError, Source};
use crate::plan::IpNet;
use crate::usage::Throttle;

/// `[prefilter]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefilterSection {
    /// `auto` (XDP where possible, else userspace), `native`, `generic`, `userspace`.
    pub mode: Option<Spanned<String>>,
    /// Interfaces to attach the XDP program to (none: userspace only).
    #[serde(default)]
    pub interfaces: Vec<Spanned<String>>,
    /// Ports the pre-filter guards (default: every listener's port).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Sources never refused or blocked.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Sources always refused.
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
    /// New connections per second per source.
    pub connection_rate_per_s: Option<Spanned<f64>>,
    /// Connection burst per source.
    pub connection_burst: Option<Spanned<u64>>,
    /// Packets per second per source (XDP only).
    pub packet_rate_per_s: Option<Spanned<f64>>,
    /// Packet burst per source (XDP only).
    pub packet_burst: Option<Spanned<u64>>,
    /// Escalation rules.
    #[serde(default)]
    pub escalation: Vec<EscalationSection>,
}

/// `[[prefilter.escalation]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSection {
    /// Response classes that count: `throttled`, `quota`, `auth`, `malformed`, `not_found`.
    pub responses: Spanned<Vec<String>>,
    /// Refusals within the window that block the source.
    pub count: Spanned<u64>,
    /// Window length.
    pub window_ms: Spanned<u64>,
    /// How long the block lasts.
    pub block_ms: Spanned<u64>,
}

/// Guarded ports at most (half the kernel map).
pub const PORTS_MAX: usize = 32;
/// Allow-list entries at most (the kernel map holds twice as many: see `compile`).
pub const ALLOW_ENTRIES_MAX: usize = 8_192;
/// Deny-list entries at most (the kernel map holds twice as many).
pub const DENY_ENTRIES_MAX: usize = 32_768;

/// Escalation rules per gateway (each source keeps one counter per rule).
pub const ESCALATION_RULES_MAX: usize = 4;

/// Where the pre-filter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefilterMode {
    /// XDP native, else generic, else userspace (the log says which and why).
    Auto,
    /// XDP native mode only (else userspace, loudly).
    Native,
    /// XDP generic (SKB) mode only (else userspace, loudly).
    Generic,
    /// No XDP: the same rules at accept time.
    Userspace,
}

/// A class of L7 refusal that escalation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offense {
    /// 429 `THROTTLED`.
    Throttled,
    /// 429 `QUOTA_EXCEEDED`.
    Quota,
    /// 401 and 403.
    Auth,
    /// 400 (malformed requests).
    Malformed,
    /// 404.
    NotFound,
}

impl Offense {
    /// Every class with its config name.
    pub const ALL: [(Offense, &'static str); 5] = [
        (Offense::Throttled, "throttled"),
        (Offense::Quota, "quota"),
        (Offense::Auth, "auth"),
        (Offense::Malformed, "malformed"),
        (Offense::NotFound, "not_found"),
    ];

    /// Bit of this class in [`EscalationRule::classes`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        Offense::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("", |(_, n)| n)
    }
}

/// One escalation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationRule {
    /// Bits of [`Offense`] classes that count.
    pub classes: u8,
    /// Offenses within a window that block.
    pub count: u32,
    /// Window length.
    pub window_ms: u64,
    /// Block length.
    pub block_ms: u64,
}

/// The compiled `[prefilter]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefilterPlan {
    /// Where it runs.
    pub mode: PrefilterMode,
    /// XDP interfaces.
    pub interfaces: Vec<String>,
    /// Guarded ports; empty: every listener's port (see [`PrefilterPlan::guarded_ports`]).
    pub ports: Vec<u16>,
    /// Never refused or blocked.
    pub allow: Vec<IpNet>,
    /// Always refused.
    pub deny: Vec<IpNet>,
    /// The balancers in front of the gateway (`[client_address] trusted_proxies` and every
    /// listener's `proxy_protocol_from`): treated as allowed — never refused, rate-limited or
    /// blocked, in userspace and in the kernel — since their address is not a client's.
    pub balancers: Vec<IpNet>,
    /// `allow` and `balancers`, indexed for lookup (built by [`PrefilterPlan::index_lists`]).
    pub allowed_set: CidrSet,
    /// `deny`, indexed for lookup (built by [`PrefilterPlan::index_lists`]).
    pub deny_set: CidrSet,
    /// How sources are grouped into clients for blocks, escalation and connection buckets
    /// (`[client_address] client_prefix_v4/v6`); lists match exact addresses.
    pub keying: crate::plan::ClientKeying,
    /// Per-source new-connection bucket.
    pub connection: Option<Throttle>,
    /// Per-source packet bucket (XDP only).
    pub packet: Option<Throttle>,
    /// Escalation rules.
    pub escalation: Vec<EscalationRule>,
}

fn rate(
    src: &Source<'_>,
    key: &str,
    rate: &Option<Spanned<f64>>,
    burst: &Option<Spanned<u64>>,
) -> Result<Option<Throttle>, ConfigError> {
    match (rate, burst) {
        (None, None) => Ok(None),
        (Some(r), Some(b)) => {
            let (r_value, b_value) = (*r.get_ref(), *b.get_ref());
            if !r_value.is_finite()
                || r_value <= 0.0
                || b_value == 0
                || b_value > u64::from(u32::MAX)
            {
                return Err(src.error(
                    span(r),
                    format!("prefilter.{key}_rate_per_s"),
                    format!("rate {r_value} with burst {b_value} is not usable"),
                    "a rate > 0 and a burst from 1 to 4294967295",
                ));
            }
            Ok(Some(Throttle {
                rate_per_s: r_value,
                burst: b_value as u32,
            }))
        }
        (Some(r), None) => Err(src.error(
            span(r),
            format!("prefilter.{key}_burst"),
            "a rate without a burst",
            format!("`{key}_burst` as well"),
        )),
        (None, Some(b)) => Err(src.error(
            span(b),
            format!("prefilter.{key}_rate_per_s"),
            "a burst without a rate",
            format!("`{key}_rate_per_s` as well"),
        )),
    }
}

/// Compiles `[prefilter]`.
pub(crate) fn compile(
    src: &Source<'_>,
    p: &PrefilterSection,
) -> Result<PrefilterPlan, ConfigError> {
    let mode = match p.mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("auto") => PrefilterMode::Auto,
        Some("native") => PrefilterMode::Native,
        Some("generic") => PrefilterMode::Generic,
        Some("userspace") => PrefilterMode::Userspace,
        Some(other) => {
            return Err(src.error(
                p.mode.as_ref().map(Spanned::span),
                "prefilter.mode",
                format!("unknown mode {other:?}"),
                "\"auto\", \"native\", \"generic\" or \"userspace\"",
            ))
        }
    };
    let mut interfaces = Vec::new();
    for (i, name) in p.interfaces.iter().enumerate() {
        let n = name.get_ref();
        if n.is_empty() || n.len() > 15 || n.bytes().any(|b| b == b'/' || b.is_ascii_whitespace()) {
            return Err(src.error(
                span(name),
                format!("prefilter.interfaces[{i}]"),
                format!("{n:?} is not an interface name"),
                "a Linux interface name such as \"eth0\" (1 to 15 characters)",
            ));
        }
        interfaces.push(n.clone());
    }
    // Empty: the listeners' ports, as bound (a port 0 in the file is chosen at bind time).
    let mut ports = p.ports.clone();
    ports.sort_unstable();
    ports.dedup();
    if p.escalation.len() > ESCALATION_RULES_MAX {
        return Err(src.error(
            None,
            "prefilter.escalation",
            format!("{} escalation rules", p.escalation.len()),
            format!("at most {ESCALATION_RULES_MAX}"),
        ));
    }
    let mut escalation = Vec::new();
    for (i, e) in p.escalation.iter().enumerate() {
        let at = format!("prefilter.escalation[{i}]");
        let mut classes = 0u8;
        for name in e.responses.get_ref() {
            let Some((o, _)) = Offense::ALL.iter().find(|(_, n)| n == name) else {
                return Err(src.error(
                    span(&e.responses),
                    format!("{at}.responses"),
                    format!("unknown response class {name:?}"),
                    "\"throttled\", \"quota\", \"auth\", \"malformed\" or \"not_found\"",
                ));
            };
            classes |= o.bit();
        }
        if classes == 0 {
            return Err(src.error(
                span(&e.responses),
                format!("{at}.responses"),
                "no response class",
                "at least one class",
            ));
        }
        let some = |v: &Spanned<u64>| Some(Spanned::new(v.span(), *v.get_ref()));
        escalation.push(EscalationRule {
            classes,
            count: ranged(
                src,
                &some(&e.count),
                &format!("{at}.count"),
                1,
                1..1_000_000,
            )? as u32,
            window_ms: ranged(
                src,
                &some(&e.window_ms),
                &format!("{at}.window_ms"),
                1,
                1..86_400_000,
            )?,
            block_ms: ranged(
                src,
                &some(&e.block_ms),
                &format!("{at}.block_ms"),
                1,
                1..31_536_000_000,
            )?,
        });
    }
    if ports.len() > PORTS_MAX {
        return Err(src.error(
            None,
            "prefilter.ports",
            format!("{} ports", ports.len()),
            format!("at most {PORTS_MAX}"),
        ));
    }
    let allow = cidrs(src, "prefilter.allow", &p.allow)?;
    let deny = cidrs(src, "prefilter.deny", &p.deny)?;
    // Half the kernel maps' sizes: a reload inserts the new entries before it removes the old
    // ones, so old and new must fit together.
    for (key, list, max) in [
        ("allow", &allow, ALLOW_ENTRIES_MAX),
        ("deny", &deny, DENY_ENTRIES_MAX),
    ] {
        if list.len() > max {
            return Err(src.error(
                None,
                format!("prefilter.{key}"),
                format!("{} entries", list.len()),
                format!("at most {max} (half the kernel map, so a reload can swap them)"),
            ));
        }
    }
    Ok(PrefilterPlan {
        mode,
        interfaces,
        ports,
        allow,
        deny,
        balancers: Vec::new(),
        allowed_set: CidrSet::default(),
        deny_set: CidrSet::default(),
        keying: Default::default(),
        connection: rate(
            src,
            "connection",
            &p.connection_rate_per_s,
            &p.connection_burst,
        )?,
        packet: rate(src, "packet", &p.packet_rate_per_s, &p.packet_burst)?,
        escalation,
    })
}

impl PrefilterPlan {
    /// The ports to guard: the configured ones, or the listeners' bound ports.
    pub fn guarded_ports(&self, bound: &[u16]) -> Vec<u16> {
        let mut ports = if self.ports.is_empty() {
            bound.to_vec()
        } else {
            self.ports.clone()
        };
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Indexes the lists for lookup, once `allow`, `deny` and `balancers` are final: each
    /// lookup is then a binary search, however long the lists (the deny list may hold tens of
    /// thousands of networks, checked on every connection and request).
    pub fn index_lists(&mut self) {
        self.allowed_set = CidrSet::new(self.allow.iter().chain(&self.balancers).copied());
        self.deny_set = CidrSet::new(self.deny.iter().copied());
    }

    /// True when `ip` is in the allow list or is a balancer.
    pub fn allowed(&self, ip: std::net::IpAddr) -> bool {
        self.allowed_set.contains(ip)
    }

    /// True when `ip` is in the deny list (whether or not it is also allowed).
    pub fn in_deny_list(&self, ip: std::net::IpAddr) -> bool {
        self.deny_set.contains(ip)
    }

    /// The networks the kernel must let through: the allow list and the balancers.
    pub fn kernel_allow(&self) -> Vec<IpNet> {
        let mut all: Vec<IpNet> = self.allow.iter().chain(&self.balancers).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}
