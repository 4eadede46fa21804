//! Builds a [`LimitsRuntime`] from a plan and the admin-made keys and attachments, reusing
//! the counters of the previous runtime by stable id (`plan:gold/key:k1`,
//! `route:shop/prod/GET /pets`), so a reload or an admin change never refills a bucket or
//! forgets a quota.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_config::usage::{Throttle, UsagePlanPlan};
use tollgate_config::Plan;

use super::clients::{scope_of, ClientBuckets};
use super::gcra::{Gcra, Rate};
use super::quota::QuotaCounter;
use super::runtime::{
    Bucket, ClientScope, Grant, KeyEntry, LimitsRuntime, Meter, PlanInfo, RouteLimiter,
};

/// A key as the assembler sees it: from the file or from the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySource {
    /// Stable id.
    pub id: String,
    /// SHA-256 of the value.
    pub value_sha256: [u8; 32],
    /// Enabled.
    pub enabled: bool,
    /// Made through the admin API (false: from the file).
    pub admin: bool,
}

/// Counters that outlive runtimes, by stable id.
#[derive(Debug, Default)]
pub struct Counters {
    /// Token buckets.
    pub buckets: HashMap<String, Arc<Gcra>>,
    /// Quota counters by (key id, plan id).
    pub quotas: HashMap<(String, String), Arc<QuotaCounter>>,
    /// Usage meters by subject (`plan/gold/key/k1`, `route/shop/prod/GET /pets`).
    pub meters: HashMap<String, Arc<Meter>>,
    /// Per-client buckets (one map for every scope).
    pub clients: Arc<ClientBuckets>,
}

/// Why the keys and attachments do not fit the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// An admin-made key has the id of a key in the file.
    #[error("API key {id:?} is defined in the config file and was also created through the admin API; delete one of them")]
    DuplicateKeyId {
        /// The key id.
        id: String,
    },
    /// Two keys have the same value.
    #[error("API keys {first:?} and {second:?} have the same value")]
    DuplicateKeyValue {
        /// One key.
        first: String,
        /// The other.
        second: String,
    },
    /// A key would be in two plans that grant the same API stage.
    #[error("API key {key:?} would be in usage plans {first:?} and {second:?}, which both grant API {api:?} stage {stage:?}; a key may be in one plan per API stage")]
    TwoPlansOneStage {
        /// The key.
        key: String,
        /// The plan it is already in.
        first: String,
        /// The other plan.
        second: String,
        /// API id.
        api: String,
        /// Stage.
        stage: String,
    },
}

/// What the assembler needs besides the plan.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// Keys from the file and the admin API.
    pub keys: &'a [KeySource],
    /// Admin-made (plan id, key id) attachments.
    pub attachments: &'a [(String, String)],
}

/// The bucket `id` at rate `t`. The rate is part of the id: a reload that changes a
/// throttle starts its buckets full (a bucket's state is a time computed with the old rate).
fn bucket(
    counters: &mut Counters,
    used: &mut Vec<String>,
    id: String,
    t: &Throttle,
) -> Option<Bucket> {
    let rate = Rate::new(t.rate_per_s, t.burst)?;
    let id = format!("{id}@{}x{}", rate.emission_ns(), rate.burst());
    let gcra = Arc::clone(counters.buckets.entry(id.clone()).or_default());
    used.push(id);
    Some(Bucket { rate, gcra })
}

fn client_scope(name: &str, t: &Throttle) -> Option<ClientScope> {
    Some(ClientScope {
        rate: Rate::new(t.rate_per_s, t.burst)?,
        scope: scope_of(name),
    })
}

fn meter(counters: &mut Counters, subject: String) -> Arc<Meter> {
    Arc::clone(counters.meters.entry(subject).or_default())
}

/// Builds the runtime for `plan` at `generation`; counters not used by it are dropped from
/// `counters` except quota counters (the keeper still returns their unspent reservation).
pub fn assemble(
    plan: &Plan,
    generation: u64,
    inputs: &Inputs<'_>,
    counters: &mut Counters,
) -> Result<LimitsRuntime, Conflict> {
    let usage = &plan.usage;
    // Bucket ids this runtime uses; the others are dropped from `counters` at the end.
    let used = &mut Vec::new();
    let mut rt = LimitsRuntime::open(generation, 0);
    rt.key_header = usage.key_header.clone();
    rt.rate_limit_headers = usage.rate_limit_headers;
    rt.overload = usage.overload;
    rt.clients = Arc::clone(&counters.clients);
    rt.clients.set_max(plan.limits.client_buckets_max);
    rt.account = usage
        .account
        .and_then(|t| bucket(counters, used, "account".to_string(), &t));
    rt.routes = plan
        .routes
        .iter()
        .map(|r| {
            let api = &plan.apis[r.api].id;
            let name = format!("{api}/{}/{}", r.stage, r.route_key);
            let mut limiter = RouteLimiter {
                key_required: r.limits.api_key_required,
                bucket: r
                    .limits
                    .throttle
                    .and_then(|t| bucket(counters, used, format!("route:{name}"), &t)),
                client: r
                    .limits
                    .client_throttle
                    .and_then(|t| client_scope(&format!("route:{name}"), &t)),
                api_client: plan.apis[r.api]
                    .client_throttle
                    .and_then(|t| client_scope(&format!("api:{api}"), &t)),
                meter: None,
            };
            if !limiter.is_open() {
                limiter.meter = Some(meter(counters, format!("route/{name}")));
            }
            limiter
        })
        .collect();
    let mut by_id: HashMap<&str, [u8; 32]> = HashMap::new();
    for k in inputs.keys {
        if by_id.insert(&k.id, k.value_sha256).is_some() {
            return Err(Conflict::DuplicateKeyId { id: k.id.clone() });
        }
        let entry = KeyEntry {
            id: Arc::from(k.id.as_str()),
            enabled: k.enabled,
            grants: Vec::new(),
        };
        if let Some(first) = rt.keys.insert(k.value_sha256, entry) {
            return Err(Conflict::DuplicateKeyValue {
                first: first.id.to_string(),
                second: k.id.clone(),
            });
        }
    }
    for (p, up) in usage.plans.iter().enumerate() {
        rt.plans.push(PlanInfo {
            id: Arc::from(up.id.as_str()),
            tier: up.tier,
        });
        let members = up.keys.iter().map(String::as_str).chain(
            inputs
                .attachments
                .iter()
                .filter(|(plan_id, _)| *plan_id == up.id)
                .map(|(_, key)| key.as_str()),
        );
        for key_id in members {
            // Attachments of deleted keys, or file keys removed by a reload, grant nothing.
            let Some(hash) = by_id.get(key_id) else {
                continue;
            };
            let Some(entry) = rt.keys.get_mut(hash) else {
                continue;
            };
            grant(plan, p, up, entry, counters, used)?;
        }
    }
    let used: std::collections::HashSet<&String> = used.iter().collect();
    counters.buckets.retain(|id, _| used.contains(id));
    Ok(rt)
}

/// Adds plan `p`'s grants to a key.
fn grant(
    plan: &Plan,
    p: usize,
    up: &UsagePlanPlan,
    entry: &mut KeyEntry,
    counters: &mut Counters,
    used: &mut Vec<String>,
) -> Result<(), Conflict> {
    let key_id = entry.id.to_string();
    if entry.grants.iter().any(|g| g.plan == p) {
        return Ok(()); // attached both in the file and through the admin API
    }
    let subject = format!("plan:{}/key:{key_id}", up.id);
    let plan_bucket = up
        .throttle
        .and_then(|t| bucket(counters, used, subject.clone(), &t));
    let quota = up.quota.map(|spec| {
        let id = (key_id.clone(), up.id.clone());
        match counters.quotas.get(&id) {
            Some(q) if q.spec == spec => Arc::clone(q),
            // New, or the quota changed by a reload: a new counter, which the keeper starts
            // from the durable record (what was reserved counts as spent).
            _ => {
                let q = Arc::new(QuotaCounter::new(
                    Arc::clone(&entry.id),
                    Arc::from(up.id.as_str()),
                    spec,
                ));
                counters.quotas.insert(id, Arc::clone(&q));
                q
            }
        }
    });
    let usage_meter = meter(counters, format!("plan/{}/key/{key_id}", up.id));
    for s in &up.stages {
        if let Some(other) = entry
            .grants
            .iter()
            .find(|g| g.api == s.api && g.stage == s.stage)
        {
            return Err(Conflict::TwoPlansOneStage {
                key: key_id,
                first: plan.usage.plans[other.plan].id.clone(),
                second: up.id.clone(),
                api: plan.apis[s.api].id.clone(),
                stage: s.stage.clone(),
            });
        }
        let api = &plan.apis[s.api].id;
        // By route index (every instance of the route key in the stage), so the phase
        // compares numbers, not strings.
        let mut routes = Vec::new();
        for (route_key, t) in &s.routes {
            let id = format!("{subject}/route:{api}/{}/{route_key}", s.stage);
            let Some(b) = bucket(counters, used, id, t) else {
                continue;
            };
            for (r, route) in plan.routes.iter().enumerate() {
                if route.api == s.api && route.stage == s.stage && route.route_key == *route_key {
                    routes.push((r, b.clone()));
                }
            }
        }
        entry.grants.push(Grant {
            api: s.api,
            stage: s.stage.clone(),
            plan: p,
            bucket: plan_bucket.clone(),
            routes,
            quota: quota.clone(),
            meter: Arc::clone(&usage_meter),
        });
    }
    Ok(())
}
