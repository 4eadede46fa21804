//! Compiles `[state]`, `[throttle]`, `[api_keys]`, `[[usage_plans]]` and the throttle and key
//! settings of APIs, stages and routes into [`crate::usage`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use toml::Spanned;

use crate::compile::{is_token, ranged, span};
use crate::compile_api::DEFAULT_KEY;
use crate::error::{ConfigError, Source};
use crate::file::{
    ApiKeySection, ApiSection, FileConfig, RouteSection, StateSection, ThrottleSection,
    UsagePlanSection,
};
use crate::period::{Period, QuotaSpec};
use crate::plan::ApiPlan;
use crate::usage::{
    parse_sha256, sha256, ApiKeyPlan, OverloadPlan, PlanStage, RouteLimits, StatePlan, Throttle,
    UsagePlanPlan, UsagePlans,
};

/// AWS's account-level default is 10,000 rps with a burst of 5,000; tollgate has no account
/// bucket unless `[throttle]` sets one (a self-hosted gateway's ceiling is its hardware).
const THROTTLE_EXPECTED: &str =
    "`rate_per_s` > 0 (fractions allowed) and `burst` from 1 to 4294967295";

/// AWS requires API key values of at least 20 characters.
const KEY_VALUE_LEN_MIN: usize = 20;

/// Longest key value (the limit phase refuses longer header values before hashing them).
pub const KEY_VALUE_LEN_MAX: usize = crate::usage::KEY_VALUE_LEN_MAX;

/// Ids of keys and plans: they appear in admin API paths and usage subjects.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Quotas are counted in 32 bits per period.
const QUOTA_LIMIT_MAX: u64 = u32::MAX as u64;

/// Default quota chunk (see [`StatePlan::quota_chunk`]).
const DEFAULT_QUOTA_CHUNK: u64 = 100;

/// Default usage flush interval.
const DEFAULT_USAGE_FLUSH_MS: u64 = 1_000;

/// Checks one rate and burst.
pub(crate) fn compile_throttle(
    src: &Source<'_>,
    t: &Spanned<ThrottleSection>,
    key: &str,
) -> Result<Throttle, ConfigError> {
    let ThrottleSection { rate_per_s, burst } = *t.get_ref();
    if !rate_per_s.is_finite() || rate_per_s <= 0.0 || burst == 0 || burst > u64::from(u32::MAX) {
        return Err(src.error(
            span(t),
            key,
            format!("rate_per_s = {rate_per_s}, burst = {burst} is not a usable throttle"),
            THROTTLE_EXPECTED,
        ));
    }
    Ok(Throttle {
        rate_per_s,
        burst: burst as u32,
    })
}

/// The limits of route `r` of API `a` in `stage`.
pub(crate) fn route_limits(
    src: &Source<'_>,
    a: usize,
    api: &ApiSection,
    stage: &str,
    r: usize,
    route: &RouteSection,
) -> Result<RouteLimits, ConfigError> {
    let stage_section = api.stages.get(stage).map(Spanned::get_ref);
    let key = route.route.get_ref();
    let throttle = match stage_section {
        Some(s) => match s.route_throttle.get(key) {
            Some(t) => Some(compile_throttle(
                src,
                t,
                &format!("apis[{a}].stages.{stage}.route_throttle.{key:?}"),
            )?),
            None => s
                .throttle
                .as_ref()
                .map(|t| compile_throttle(src, t, &format!("apis[{a}].stages.{stage}.throttle")))
                .transpose()?,
        },
        None => None,
    };
    let client_throttle = route
        .client_throttle
        .as_ref()
        .map(|t| compile_throttle(src, t, &format!("apis[{a}].routes[{r}].client_throttle")))
        .transpose()?;
    Ok(RouteLimits {
        api_key_required: route
            .api_key_required
            .or(api.api_key_required)
            .unwrap_or(false),
        throttle,
        client_throttle,
    })
}

/// The API-wide per-client throttle, and a check that every stage's `route_throttle` names
/// a route of the API.
pub(crate) fn api_limits(
    src: &Source<'_>,
    a: usize,
    api: &ApiSection,
) -> Result<Option<Throttle>, ConfigError> {
    for (name, stage) in &api.stages {
        for (route_key, t) in &stage.get_ref().route_throttle {
            if !api.routes.iter().any(|r| r.route.get_ref() == route_key) {
                return Err(unknown_route(
                    src,
                    t,
                    &format!("apis[{a}].stages.{name}.route_throttle"),
                    route_key,
                    api,
                ));
            }
        }
    }
    api.client_throttle
        .as_ref()
        .map(|t| compile_throttle(src, t, &format!("apis[{a}].client_throttle")))
        .transpose()
}

fn unknown_route(
    src: &Source<'_>,
    t: &Spanned<ThrottleSection>,
    key: &str,
    route_key: &str,
    api: &ApiSection,
) -> ConfigError {
    let known: Vec<&str> = api
        .routes
        .iter()
        .map(|r| r.route.get_ref().as_str())
        .collect();
    src.error(
        span(t),
        key,
        format!("{route_key:?} is not a route of API {:?}", api.id.get_ref()),
        format!("one of: {}", known.join(", ")),
    )
}

/// Compiles the process-wide sections: state, account throttle, keys and plans.
pub(crate) fn usage_plans(
    src: &Source<'_>,
    file: &FileConfig,
    apis: &[ApiPlan],
) -> Result<UsagePlans, ConfigError> {
    let mut out = UsagePlans::default();
    if let Some(h) = &file.api_keys.header {
        let name = h.get_ref().to_ascii_lowercase();
        if !is_token(&name) {
            return Err(src.error(
                span(h),
                "api_keys.header",
                format!("{:?} is not a header name", h.get_ref()),
                "a header name such as \"x-api-key\"",
            ));
        }
        out.key_header = name;
    }
    if let Some(t) = &file.throttle {
        out.rate_limit_headers = t.rate_limit_headers.unwrap_or(true);
        out.account = match (&t.rate_per_s, &t.burst) {
            (None, None) => None,
            (Some(rate), Some(burst)) => {
                let both = Spanned::new(
                    rate.span(),
                    ThrottleSection {
                        rate_per_s: *rate.get_ref(),
                        burst: *burst.get_ref(),
                    },
                );
                Some(compile_throttle(src, &both, "throttle")?)
            }
            _ => {
                return Err(src.error(
                    None,
                    "throttle",
                    "only one of `rate_per_s` and `burst` is set",
                    "both, or neither",
                ));
            }
        };
    }
    out.metrics_per_key = file.api_keys.metrics_per_key.unwrap_or(false);
    out.state = file.state.as_ref().map(|s| state(src, s)).transpose()?;
    if let Some(o) = &file.overload {
        let max = *o.in_flight_max.get_ref();
        if max == 0 || max > u64::from(u32::MAX) {
            return Err(src.error(
                span(&o.in_flight_max),
                "overload.in_flight_max",
                format!("{max} is out of range"),
                "from 1 to 4294967295 requests in flight per worker",
            ));
        }
        out.overload = Some(OverloadPlan {
            in_flight_max: max as u32,
            anonymous_tier: ranged(src, &o.anonymous_tier, "overload.anonymous_tier", 9, 0..9)?
                as u8,
        });
    }
    out.keys = keys(src, &file.api_keys.keys)?;
    let known_keys: HashSet<&str> = out.keys.iter().map(|k| k.id.as_str()).collect();
    let mut seen_plans = HashSet::new();
    // (key, api, stage) → plan, to refuse a key in two plans granting the same API stage.
    let mut granted: HashMap<(String, usize, String), String> = HashMap::new();
    for (p, section) in file.usage_plans.iter().enumerate() {
        let plan = usage_plan(src, p, section, file, apis)?;
        if !seen_plans.insert(plan.id.clone()) {
            return Err(src.error(
                span(&section.id),
                format!("usage_plans[{p}].id"),
                format!("duplicate usage plan id {:?}", plan.id),
                "a unique id",
            ));
        }
        if plan.quota.is_some() && out.state.is_none() {
            return Err(src.error(section.quota.as_ref().map(Spanned::span), format!("usage_plans[{p}].quota"), format!("usage plan {:?} has a quota but there is no `[state]` directory to keep it across restarts", plan.id), "a `[state]` section with `dir`"));
        }
        for (k, key) in section.keys.iter().enumerate() {
            let id = key.get_ref();
            if section.keys[..k].iter().any(|other| other.get_ref() == id) {
                return Err(src.error(
                    span(key),
                    format!("usage_plans[{p}].keys[{k}]"),
                    format!("key {id:?} is listed twice"),
                    "each key once per plan",
                ));
            }
            if !known_keys.contains(id.as_str()) {
                return Err(src.error(
                    span(key),
                    format!("usage_plans[{p}].keys[{k}]"),
                    format!("unknown API key {id:?}"),
                    "the id of an `[[api_keys.keys]]` entry",
                ));
            }
            for s in &plan.stages {
                if let Some(other) =
                    granted.insert((id.clone(), s.api, s.stage.clone()), plan.id.clone())
                {
                    return Err(src.error(
                        span(key),
                        format!("usage_plans[{p}].keys[{k}]"),
                        format!(
                            "key {id:?} is already in usage plan {other:?} for API {:?} stage {:?}",
                            apis[s.api].id, s.stage
                        ),
                        "at most one usage plan per key per API stage, as in API Gateway",
                    ));
                }
            }
        }
        out.plans.push(plan);
    }
    Ok(out)
}

fn state(src: &Source<'_>, s: &StateSection) -> Result<StatePlan, ConfigError> {
    let dir = s.dir.get_ref().trim();
    if dir.is_empty() {
        return Err(src.error(
            span(&s.dir),
            "state.dir",
            "the directory is empty",
            "a directory path",
        ));
    }
    Ok(StatePlan {
        dir: PathBuf::from(dir),
        quota_chunk: ranged(
            src,
            &s.quota_chunk,
            "state.quota_chunk",
            DEFAULT_QUOTA_CHUNK,
            1..1_000_000,
        )?,
        usage_flush_ms: ranged(
            src,
            &s.usage_flush_ms,
            "state.usage_flush_ms",
            DEFAULT_USAGE_FLUSH_MS,
            10..3_600_000,
        )?,
    })
}

fn keys(
    src: &Source<'_>,
    sections: &[Spanned<ApiKeySection>],
) -> Result<Vec<ApiKeyPlan>, ConfigError> {
    let mut out: Vec<ApiKeyPlan> = Vec::with_capacity(sections.len());
    let mut by_hash: BTreeMap<[u8; 32], String> = BTreeMap::new();
    for (k, entry) in sections.iter().enumerate() {
        let key = entry.get_ref();
        let id = key.id.get_ref();
        let at = format!("api_keys.keys[{k}]");
        if !is_id(id) {
            return Err(src.error(
                span(&key.id),
                format!("{at}.id"),
                format!("{id:?} is not a key id"),
                "1 to 128 letters, digits or `-._~`",
            ));
        }
        if out.iter().any(|o| o.id == *id) {
            return Err(src.error(
                span(&key.id),
                format!("{at}.id"),
                format!("duplicate API key id {id:?}"),
                "a unique id",
            ));
        }
        let hash = match (&key.value, &key.value_sha256) {
            (Some(v), None) => {
                let text = v.get_ref();
                if text.len() < KEY_VALUE_LEN_MIN
                    || text.len() > KEY_VALUE_LEN_MAX
                    || text.bytes().any(|b| !b.is_ascii_graphic())
                {
                    return Err(src.error(span(v), format!("{at}.value"), format!("the value of key {id:?} is shorter than {KEY_VALUE_LEN_MIN} or longer than {KEY_VALUE_LEN_MAX} characters, or has spaces or control characters"), format!("{KEY_VALUE_LEN_MIN} to {KEY_VALUE_LEN_MAX} visible ASCII characters (API Gateway requires at least {KEY_VALUE_LEN_MIN})")));
                }
                sha256(text.as_bytes())
            }
            (None, Some(h)) => {
                parse_sha256(&h.get_ref().to_ascii_lowercase()).ok_or_else(|| {
                    src.error(
                        span(h),
                        format!("{at}.value_sha256"),
                        format!("{:?} is not a SHA-256", h.get_ref()),
                        "64 hex digits",
                    )
                })?
            }
            _ => {
                return Err(src.error(
                    span(entry),
                    &at,
                    format!("key {id:?} needs exactly one of `value` and `value_sha256`"),
                    "`value = \"...\"` or `value_sha256 = \"<64 hex digits>\"`",
                ));
            }
        };
        if let Some(other) = by_hash.insert(hash, id.clone()) {
            return Err(src.error(
                span(entry),
                &at,
                format!("key {id:?} has the same value as key {other:?}"),
                "a distinct value per key",
            ));
        }
        out.push(ApiKeyPlan {
            id: id.clone(),
            name: key.name.clone().unwrap_or_else(|| id.clone()),
            value_sha256: hash,
            enabled: key.enabled.unwrap_or(true),
        });
    }
    Ok(out)
}

fn usage_plan(
    src: &Source<'_>,
    p: usize,
    section: &UsagePlanSection,
    file: &FileConfig,
    apis: &[ApiPlan],
) -> Result<UsagePlanPlan, ConfigError> {
    let id = section.id.get_ref();
    let at = format!("usage_plans[{p}]");
    if !is_id(id) {
        return Err(src.error(
            span(&section.id),
            format!("{at}.id"),
            format!("{id:?} is not a plan id"),
            "1 to 128 letters, digits or `-._~`",
        ));
    }
    let tier = ranged(src, &section.tier, &format!("{at}.tier"), 0, 0..9)? as u8;
    let throttle = section
        .throttle
        .as_ref()
        .map(|t| compile_throttle(src, t, &format!("{at}.throttle")))
        .transpose()?;
    let quota = section
        .quota
        .as_ref()
        .map(|q| quota(src, q, &format!("{at}.quota")))
        .transpose()?;
    let mut stages: Vec<PlanStage> = Vec::new();
    for (s, stage) in section.stages.iter().enumerate() {
        let skey = format!("{at}.stages[{s}]");
        let api_id = stage.api.get_ref();
        let Some(a) = apis.iter().position(|x| x.id == *api_id) else {
            let known: Vec<&str> = apis.iter().map(|x| x.id.as_str()).collect();
            return Err(src.error(
                span(&stage.api),
                format!("{skey}.api"),
                format!("unknown API {api_id:?}"),
                format!("one of: {}", known.join(", ")),
            ));
        };
        let name = stage
            .stage
            .as_ref()
            .map_or(DEFAULT_KEY, |s| s.get_ref().as_str());
        if !apis[a].stages.iter().any(|x| x == name) {
            return Err(src.error(
                stage
                    .stage
                    .as_ref()
                    .map(Spanned::span)
                    .or(Some(stage.api.span())),
                format!("{skey}.stage"),
                format!("API {api_id:?} has no stage {name:?}"),
                format!("one of: {}", apis[a].stages.join(", ")),
            ));
        }
        if stages.iter().any(|x| x.api == a && x.stage == name) {
            return Err(src.error(
                span(&stage.api),
                &skey,
                format!("API {api_id:?} stage {name:?} is listed twice"),
                "each API stage once per plan",
            ));
        }
        let api_section = &file.apis[a];
        let mut routes = Vec::new();
        for (route_key, t) in &stage.routes {
            if !api_section
                .routes
                .iter()
                .any(|r| r.route.get_ref() == route_key)
            {
                return Err(unknown_route(
                    src,
                    t,
                    &format!("{skey}.routes"),
                    route_key,
                    api_section,
                ));
            }
            routes.push((
                route_key.clone(),
                compile_throttle(src, t, &format!("{skey}.routes.{route_key:?}"))?,
            ));
        }
        stages.push(PlanStage {
            api: a,
            stage: name.to_string(),
            routes,
        });
    }
    Ok(UsagePlanPlan {
        id: id.clone(),
        name: section.name.clone().unwrap_or_else(|| id.clone()),
        tier,
        throttle,
        quota,
        stages,
        keys: section.keys.iter().map(|k| k.get_ref().clone()).collect(),
    })
}

fn quota(
    src: &Source<'_>,
    q: &Spanned<crate::file::QuotaSection>,
    key: &str,
) -> Result<QuotaSpec, ConfigError> {
    let section = q.get_ref();
    let Some(period) = Period::from_name(&section.period) else {
        return Err(src.error(
            span(q),
            format!("{key}.period"),
            format!("unknown period {:?}", section.period),
            "\"DAY\", \"WEEK\" or \"MONTH\"",
        ));
    };
    let offset = section.offset.unwrap_or(0);
    if section.limit == 0 || section.limit > QUOTA_LIMIT_MAX || offset > section.limit {
        return Err(src.error(
            span(q),
            key,
            format!(
                "limit = {}, offset = {offset} is not a usable quota",
                section.limit
            ),
            format!("`limit` from 1 to {QUOTA_LIMIT_MAX} and `offset` from 0 to `limit`"),
        ));
    }
    Ok(QuotaSpec {
        limit: section.limit,
        period,
        offset,
    })
}
