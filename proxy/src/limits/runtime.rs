//! What workers enforce: the limits of one plan generation combined with the keys and plan
//! attachments of the moment. Built by the keeper (see [`super::assemble`]) on every reload
//! and every admin change, shared read-only behind an `Arc`; the counters inside (buckets,
//! quota counters, meters) are shared atomics that outlive any one runtime, carried over by
//! stable ids.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::clients::ClientBuckets;
use super::gcra::{Gcra, Rate};
use super::quota::QuotaCounter;

/// A shared token bucket with its rate.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Rate and burst.
    pub rate: Rate,
    /// Shared state.
    pub gcra: Arc<Gcra>,
}

/// A per-client-address throttle scope.
#[derive(Debug, Clone, Copy)]
pub struct ClientScope {
    /// Rate and burst per address.
    pub rate: Rate,
    /// Scope id within [`LimitsRuntime::clients`].
    pub scope: u64,
}

/// Usage counts of one subject (a key in a plan, or a route), drained by the keeper.
#[derive(Debug, Default)]
pub struct Meter {
    /// Requests let through to the integration.
    pub served: AtomicU64,
    /// Requests refused by a throttle.
    pub throttled: AtomicU64,
    /// Requests refused by a quota.
    pub quota_rejected: AtomicU64,
}

impl Meter {
    /// Counts one request.
    pub fn count(&self, what: Metered) {
        let cell = match what {
            Metered::Served => &self.served,
            Metered::Throttled => &self.throttled,
            Metered::QuotaRejected => &self.quota_rejected,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts not yet taken (for metrics between flushes).
    pub fn peek(&self) -> [u64; 3] {
        [
            self.served.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
            self.quota_rejected.load(Ordering::Relaxed),
        ]
    }

    /// Puts counts back after a failed write.
    pub fn give_back(&self, served: u64, throttled: u64, quota_rejected: u64) {
        self.served.fetch_add(served, Ordering::Relaxed);
        self.throttled.fetch_add(throttled, Ordering::Relaxed);
        self.quota_rejected
            .fetch_add(quota_rejected, Ordering::Relaxed);
    }

    /// Takes the counts since the last call.
    pub fn take(&self) -> [u64; 3] {
        [
            self.served.swap(0, Ordering::Relaxed),
            self.throttled.swap(0, Ordering::Relaxed),
            self.quota_rejected.swap(0, Ordering::Relaxed),
        ]
    }
}

/// What became of a metered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metered {
    /// Let through.
    Served,
    /// Refused by a throttle.
    Throttled,
    /// Refused by a quota.
    QuotaRejected,
}

/// A key's access to one API stage through one usage plan.
#[derive(Debug)]
pub struct Grant {
    /// Index into the plan's APIs.
    pub api: usize,
    /// Stage name.
    pub stage: String,
    /// Index into [`LimitsRuntime::plans`].
    pub plan: usize,
    /// The plan's per-key throttle.
    pub bucket: Option<Bucket>,
    /// Per key per route throttles, by route index.
    pub routes: Vec<(usize, Bucket)>,
    /// The key's quota in the plan.
    pub quota: Option<Arc<QuotaCounter>>,
    /// Usage of the key in the plan.
    pub meter: Arc<Meter>,
}

/// An API key as the limit phase sees it.
#[derive(Debug)]
pub struct KeyEntry {
    /// Stable id.
    pub id: Arc<str>,
    /// Disabled keys are refused.
    pub enabled: bool,
    /// API stages it may call.
    pub grants: Vec<Grant>,
}

/// The limits of one route instance.
#[derive(Debug, Default)]
pub struct RouteLimiter {
    /// A key is required.
    pub key_required: bool,
    /// The route's own bucket.
    pub bucket: Option<Bucket>,
    /// Per client address, this route.
    pub client: Option<ClientScope>,
    /// Per client address, the whole API.
    pub api_client: Option<ClientScope>,
    /// Usage of the route (when it has any limit).
    pub meter: Option<Arc<Meter>>,
}

impl RouteLimiter {
    /// True when nothing is enforced on the route (beyond the account bucket).
    pub fn is_open(&self) -> bool {
        !self.key_required
            && self.bucket.is_none()
            && self.client.is_none()
            && self.api_client.is_none()
    }
}

/// A usage plan as the phase needs it.
#[derive(Debug)]
pub struct PlanInfo {
    /// Stable id.
    pub id: Arc<str>,
    /// Priority tier (0 is shed last).
    pub tier: u8,
}

/// Everything the limit phase enforces, for one plan generation.
#[derive(Debug)]
pub struct LimitsRuntime {
    /// The plan generation this was built for (route indices refer to it).
    pub generation: u64,
    /// Build number (the keeper counts up): of two runtimes for one generation, the higher
    /// one has the later admin changes.
    pub version: u64,
    /// Header carrying the key, lowercase.
    pub key_header: String,
    /// Send `RateLimit` headers on 429s.
    pub rate_limit_headers: bool,
    /// The account bucket.
    pub account: Option<Bucket>,
    /// By route index.
    pub routes: Vec<RouteLimiter>,
    /// By SHA-256 of the key value.
    pub keys: HashMap<[u8; 32], KeyEntry>,
    /// Usage plans by index.
    pub plans: Vec<PlanInfo>,
    /// Per-client buckets.
    pub clients: Arc<ClientBuckets>,
    /// Where workers ask the keeper for quota.
    pub refill: Option<Sender<Arc<QuotaCounter>>>,
    /// Reservation left at which a counter asks for more.
    pub low_water: u64,
    /// Priority shedding.
    pub overload: Option<tollgate_config::usage::OverloadPlan>,
}

impl LimitsRuntime {
    /// A runtime that enforces nothing (no keys, no throttles), for `routes` routes.
    pub fn open(generation: u64, routes: usize) -> Self {
        Self {
            generation,
            version: 0,
            key_header: "x-api-key".to_string(),
            rate_limit_headers: true,
            account: None,
            routes: (0..routes).map(|_| RouteLimiter::default()).collect(),
            keys: HashMap::new(),
            plans: Vec::new(),
            clients: Arc::new(ClientBuckets::default()),
            refill: None,
            low_water: 0,
            overload: None,
        }
    }

    /// The key's grant for route `route` (API index and stage), if any.
    pub fn grant<'a>(&self, key: &'a KeyEntry, api: usize, stage: &str) -> Option<&'a Grant> {
        key.grants.iter().find(|g| g.api == api && g.stage == stage)
    }

    /// Asks the keeper for more quota on `counter` (once until the keeper looks).
    pub fn ask_refill(&self, counter: &Arc<QuotaCounter>) {
        if let Some(tx) = &self.refill {
            if counter.ask() {
                let _ = tx.try_send(Arc::clone(counter));
            }
        }
    }
}

/// Client address type re-exported for the phase.
pub type ClientIp = IpAddr;
