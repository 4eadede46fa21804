//! The file's sections for API keys, usage plans, throttles and the state directory, as
//! written (see [`crate::file`] for the conventions). [`crate::compile_usage`] checks them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `[state]`: where durable state lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// Directory of `state.redb` (created if missing; relative to the working directory).
    pub dir: Spanned<String>,
    /// Requests of quota reserved durably at a time per key and plan (the most a crash can
    /// lose is about 1.5 chunks per key and plan).
    pub quota_chunk: Option<Spanned<u64>>,
    /// How often usage counts are written to the state directory.
    pub usage_flush_ms: Option<Spanned<u64>>,
}

/// A rate and a burst, as AWS's `ThrottleSettings`.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSection {
    /// Steady requests per second (may be fractional, e.g. 0.5).
    pub rate_per_s: f64,
    /// Requests allowed at once from a full bucket.
    pub burst: u64,
}

/// `[throttle]`: the account level (all requests of the process).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountThrottleSection {
    /// Steady requests per second across every worker.
    pub rate_per_s: Option<Spanned<f64>>,
    /// Burst across every worker.
    pub burst: Option<Spanned<u64>>,
    /// Send the IETF `RateLimit` / `RateLimit-Policy` headers (default true).
    pub rate_limit_headers: Option<bool>,
}

/// `[overload]`: priority shedding when a worker is saturated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverloadSection {
    /// Requests in flight per worker at which tier 0 is shed too.
    pub in_flight_max: Spanned<u64>,
    /// Tier of requests that carry no key of a plan (default 9, shed first).
    pub anonymous_tier: Option<Spanned<u64>>,
}

/// `[api_keys]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysSection {
    /// Request header carrying the key (default `x-api-key`).
    pub header: Option<Spanned<String>>,
    /// Export request counts per key on `/metrics` (default false: one series per plan).
    pub metrics_per_key: Option<bool>,
    /// Keys defined in the file.
    #[serde(default)]
    pub keys: Vec<Spanned<ApiKeySection>>,
}

/// `[[api_keys.keys]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// Stable id (usage and quotas key on it).
    pub id: Spanned<String>,
    /// Display name.
    pub name: Option<String>,
    /// The key's value (only its SHA-256 is kept in memory).
    pub value: Option<Spanned<String>>,
    /// Or the SHA-256 of the value, 64 hex digits, so the file holds no secret.
    pub value_sha256: Option<Spanned<String>>,
    /// A disabled key is refused as an unknown one (default true).
    pub enabled: Option<bool>,
}

/// `[[usage_plans]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlanSection {
    /// Stable id.
    pub id: Spanned<String>,
    /// Display name.
    pub name: Option<String>,
    /// Priority tier under overload: 0 is served longest, higher tiers are shed first.
    pub tier: Option<Spanned<u64>>,
    /// Per key, across the plan's API stages.
    pub throttle: Option<Spanned<ThrottleSection>>,
    /// Per key, per calendar period.
    pub quota: Option<Spanned<QuotaSection>>,
    /// API stages the plan grants.
    #[serde(default)]
    pub stages: Vec<PlanStageSection>,
    /// Ids of keys in the plan.
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
}

/// A plan's quota, as AWS's `QuotaSettings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSection {
    /// Requests per period.
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH` (UTC, calendar-aligned, weeks from Monday).
    pub period: String,
    /// Requests subtracted from the limit in the initial period.
    pub offset: Option<u64>,
}

/// `[[usage_plans.stages]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStageSection {
    /// API id.
    pub api: Spanned<String>,
    /// Stage name (default `$default`).
    pub stage: Option<Spanned<String>>,
    /// Per key per route throttles by route key.
    #[serde(default)]
    pub routes: BTreeMap<String, Spanned<ThrottleSection>>,
}
