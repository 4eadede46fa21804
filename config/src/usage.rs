//! The compiled form of API keys, usage plans and throttles: what the limit phase enforces.
//!
//! Levels, as Amazon API Gateway has them plus one: the account (every request of the
//! process), each route of a stage (the stage's default or the route's own setting), each key
//! in a usage plan (across the plan's API stages), each key per route of a plan, and — beyond
//! AWS — each client address per API or per route, as nginx's `limit_req` does. The most
//! restrictive applies. Everything carries stable ids, so counters survive reloads.

use std::path::PathBuf;

use crate::period::QuotaSpec;

/// Longest API key value accepted (config and admin API).
pub const KEY_VALUE_LEN_MAX: usize = 256;

/// A token bucket's rate and burst (AWS's `ThrottleSettings`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Steady requests per second (> 0, may be fractional).
    pub rate_per_s: f64,
    /// Requests allowed at once from a full bucket (≥ 1).
    pub burst: u32,
}

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePlan {
    /// Directory of `state.redb`.
    pub dir: PathBuf,
    /// Quota requests reserved durably at a time per key and plan.
    pub quota_chunk: u64,
    /// How often usage counts are written.
    pub usage_flush_ms: u64,
}

/// An API key defined in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPlan {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// SHA-256 of the value: the value itself is never kept.
    pub value_sha256: [u8; 32],
    /// Disabled keys are refused.
    pub enabled: bool,
}

/// One API stage a usage plan grants.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStage {
    /// Index into [`crate::Plan::apis`].
    pub api: usize,
    /// Stage name.
    pub stage: String,
    /// Per key per route throttles, by route key.
    pub routes: Vec<(String, Throttle)>,
}

/// A usage plan.
#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlanPlan {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Priority tier under overload (0 is shed last).
    pub tier: u8,
    /// Per key, across the plan's stages.
    pub throttle: Option<Throttle>,
    /// Per key per calendar period.
    pub quota: Option<QuotaSpec>,
    /// API stages granted.
    pub stages: Vec<PlanStage>,
    /// Ids of keys in the plan (file-defined; the admin API may attach more).
    pub keys: Vec<String>,
}

impl UsagePlanPlan {
    /// True when the plan grants `stage` of API `api`.
    pub fn grants(&self, api: usize, stage: &str) -> bool {
        self.stages.iter().any(|s| s.api == api && s.stage == stage)
    }
}

/// Limits of one route instance.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RouteLimits {
    /// A valid, enabled key in a plan granting the route's stage is required.
    pub api_key_required: bool,
    /// The route's own bucket (the stage's default or the route's setting).
    pub throttle: Option<Throttle>,
    /// Per client address, for this route.
    pub client_throttle: Option<Throttle>,
}

/// Tiers: 0 is served longest, 9 is shed first.
pub const TIERS: u8 = 10;

/// Priority shedding: tier `t` may start a request while the worker has fewer than
/// `in_flight_max × (10 − t) / 10` (at least 1) requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadPlan {
    /// Requests in flight per worker at which even tier 0 is shed.
    pub in_flight_max: u32,
    /// Tier of requests without a plan's key.
    pub anonymous_tier: u8,
}

impl OverloadPlan {
    /// In-flight requests (on the worker, before this one) at which `tier` is shed.
    pub fn ceiling(&self, tier: u8) -> u32 {
        let share = u64::from(TIERS.saturating_sub(tier.min(TIERS - 1)));
        ((u64::from(self.in_flight_max) * share).div_ceil(u64::from(TIERS))).max(1) as u32
    }
}

/// Keys, plans and process-wide throttle settings.
#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlans {
    /// Header carrying the key, lowercase.
    pub key_header: String,
    /// The account-level bucket.
    pub account: Option<Throttle>,
    /// Send `RateLimit` / `RateLimit-Policy` headers.
    pub rate_limit_headers: bool,
    /// Keys defined in the file.
    pub keys: Vec<ApiKeyPlan>,
    /// Usage plans.
    pub plans: Vec<UsagePlanPlan>,
    /// The state directory, when configured (required for quotas and admin-made keys).
    pub state: Option<StatePlan>,
    /// Priority shedding, when configured.
    pub overload: Option<OverloadPlan>,
    /// Per-key series on `/metrics`.
    pub metrics_per_key: bool,
}

impl Default for UsagePlans {
    fn default() -> Self {
        Self {
            key_header: "x-api-key".to_string(),
            account: None,
            rate_limit_headers: true,
            keys: vec![],
            plans: vec![],
            state: None,
            overload: None,
            metrics_per_key: false,
        }
    }
}

/// Lowercase hex of bytes (key hashes in messages and the admin API).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses 64 hex digits into a SHA-256.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// SHA-256 of a key value.
pub fn sha256(value: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(value).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_ceilings_shed_low_tiers_first() {
        let o = OverloadPlan {
            in_flight_max: 10,
            anonymous_tier: 9,
        };
        let ceilings: Vec<u32> = (0..10).map(|t| o.ceiling(t)).collect();
        assert_eq!(ceilings, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        let tiny = OverloadPlan {
            in_flight_max: 1,
            anonymous_tier: 9,
        };
        assert_eq!(tiny.ceiling(9), 1);
        assert_eq!(tiny.ceiling(200), 1);
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        let h = sha256(b"abc");
        assert_eq!(
            hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_sha256(&hex(&h)), Some(h));
        assert_eq!(parse_sha256("zz"), None);
        assert_eq!(parse_sha256(&"g".repeat(64)), None);
    }
}
