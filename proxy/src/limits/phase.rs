//! The limit phase: API key, throttles and quota, run after routing and before the
//! integration. Pure functions over a [`LimitsRuntime`] with time passed in; no allocation
//! and no lock on the way through (the only shared writes are the buckets' and counters'
//! atomics).
//!
//! Order: per client address (API, then route; tollgate's own level, first so a flood of bad
//! keys is throttled before it costs a hash), then as API Gateway: the key (missing, unknown,
//! disabled or not granted this API stage → `INVALID_API_KEY` 403), priority shedding, the
//! account, the route, the key's plan, the key's plan route — and the quota last, so a
//! throttled request never spends quota. The most restrictive bucket decides; buckets that
//! allowed a request a later one refused get it back.

use std::net::IpAddr;
use std::sync::Arc;

use tollgate_config::period::Period;
use tollgate_config::responses::ResponseType;

use super::gcra::{Decision, Rate};
use super::quota::{QuotaCounter, Spend};
use super::runtime::{Bucket, ClientScope, Grant, LimitsRuntime, Meter, Metered};

/// A policy named in the `RateLimit` headers of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyNote {
    /// Which limit refused (`account`, `route`, `client`, `plan`, `plan-route`, `quota`).
    pub name: &'static str,
    /// Requests per window.
    pub quota: u64,
    /// Window seconds.
    pub window_s: u64,
    /// Seconds until requests are allowed again.
    pub reset_s: u64,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The gateway response to answer with.
    pub kind: ResponseType,
    /// The limit that refused, for `Retry-After` and `RateLimit` headers (None for key errors).
    pub policy: Option<PolicyNote>,
    /// Shed under overload: the request's priority tier.
    pub shed_tier: Option<u8>,
}

/// The phase's verdict.
#[derive(Debug)]
pub enum Verdict {
    /// Go on to the integration.
    Pass,
    /// Answer with a gateway response.
    Refuse(Refusal),
    /// The key's quota is not reserved yet: wait for the keeper, then [`retry_quota`].
    Wait(QuotaWait),
}

/// What [`retry_quota`] needs after a wait.
#[derive(Debug)]
pub struct QuotaWait {
    /// The key's counter.
    pub counter: Arc<QuotaCounter>,
    /// The key's usage meter.
    pub key_meter: Arc<Meter>,
    /// The route's meter.
    pub route_meter: Option<Arc<Meter>>,
}

/// The request, as the phase sees it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// Route index.
    pub route: usize,
    /// API index and stage of the route.
    pub api: usize,
    /// Stage name.
    pub stage: &'a str,
    /// The key header's value, if sent (an authorizer phase will hand over its
    /// `usageIdentifierKey` here instead).
    pub key: Option<&'a [u8]>,
    /// The client: its resolved address keyed by prefix (`ClientKeying`).
    pub client: IpAddr,
    /// Gateway clock, nanoseconds since the epoch.
    pub now_ns: u64,
    /// Requests in flight on this worker before this one (for priority shedding).
    pub in_flight: u32,
}

/// One bucket that let the request through, to give back if a later one refuses.
#[derive(Clone, Copy)]
enum Taken<'a> {
    Shared(&'a Bucket),
    Client(ClientScope),
}

const NS: u64 = 1_000_000_000;

fn ceil_s(ns: u64) -> u64 {
    ns.div_ceil(NS).max(1)
}

fn throttle_note(name: &'static str, rate: &Rate, retry_in_ns: u64) -> PolicyNote {
    let window_ns = rate.emission_ns().saturating_mul(u64::from(rate.burst()));
    PolicyNote {
        name,
        quota: u64::from(rate.burst()),
        window_s: ceil_s(window_ns),
        reset_s: ceil_s(retry_in_ns),
    }
}

/// Gives back what `taken` holds (a later limit refused the request).
fn give_back(rt: &LimitsRuntime, asked: &Asked<'_>, taken: &[Option<Taken<'_>>]) {
    for t in taken.iter().flatten() {
        match t {
            Taken::Shared(b) => b.gcra.refund(&b.rate, asked.now_ns),
            Taken::Client(s) => rt
                .clients
                .refund(s.scope, asked.client, &s.rate, asked.now_ns),
        }
    }
}

fn throttled(note: PolicyNote) -> Verdict {
    Verdict::Refuse(Refusal {
        kind: ResponseType::Throttled,
        policy: Some(note),
        shed_tier: None,
    })
}

/// Runs the phase for one request.
///
/// Per-client throttles run first (they are tollgate's own, and they keep a flood of bad keys
/// from costing a hash each), then the key, priority shedding, the shared buckets (account,
/// route, the key's plan, the key's plan route) and the quota.
pub fn check(rt: &LimitsRuntime, asked: &Asked<'_>) -> Verdict {
    let Some(limiter) = rt.routes.get(asked.route) else {
        return Verdict::Pass;
    };
    if limiter.is_open() && rt.account.is_none() && rt.overload.is_none() {
        return Verdict::Pass;
    }
    let route_meter = limiter.meter.as_deref();
    let mut taken: [Option<Taken<'_>>; 6] = [None; 6];
    let mut n = 0;
    for scope in [limiter.api_client, limiter.client].into_iter().flatten() {
        match rt
            .clients
            .acquire(scope.scope, asked.client, &scope.rate, asked.now_ns)
        {
            Decision::Allowed { .. } => {
                taken[n] = Some(Taken::Client(scope));
                n += 1;
            }
            Decision::Limited { retry_in_ns } => {
                give_back(rt, asked, &taken[..n]);
                route_meter.inspect(|m| m.count(Metered::Throttled));
                return throttled(throttle_note("client", &scope.rate, retry_in_ns));
            }
        }
    }
    let grant = if limiter.key_required {
        match find_grant(rt, asked) {
            Some(g) => Some(g),
            // The client buckets keep what a bad key took: probing keys costs the prober.
            None => {
                return Verdict::Refuse(Refusal {
                    kind: ResponseType::InvalidApiKey,
                    policy: None,
                    shed_tier: None,
                })
            }
        }
    } else {
        None
    };
    if let Some(overload) = &rt.overload {
        let tier = grant.map_or(overload.anonymous_tier, |g| rt.plans[g.plan].tier);
        if asked.in_flight >= overload.ceiling(tier) {
            give_back(rt, asked, &taken[..n]);
            return Verdict::Refuse(Refusal {
                kind: ResponseType::ServiceUnavailable,
                policy: None,
                shed_tier: Some(tier),
            });
        }
    }
    let key_meter = grant.map(|g| &*g.meter);
    let count = |what: Metered| {
        route_meter.inspect(|m| m.count(what));
        key_meter.inspect(|m| m.count(what));
    };
    let shared: [(Option<&Bucket>, &'static str); 4] = [
        (rt.account.as_ref(), "account"),
        (limiter.bucket.as_ref(), "route"),
        (grant.and_then(|g| g.bucket.as_ref()), "plan"),
        (
            grant.and_then(|g| {
                g.routes
                    .iter()
                    .find(|(r, _)| *r == asked.route)
                    .map(|(_, b)| b)
            }),
            "plan-route",
        ),
    ];
    for (bucket, name) in shared {
        let Some(bucket) = bucket else { continue };
        match bucket.gcra.acquire(&bucket.rate, asked.now_ns) {
            Decision::Allowed { .. } => {
                taken[n] = Some(Taken::Shared(bucket));
                n += 1;
            }
            Decision::Limited { retry_in_ns } => {
                give_back(rt, asked, &taken[..n]);
                count(Metered::Throttled);
                return throttled(throttle_note(name, &bucket.rate, retry_in_ns));
            }
        }
    }
    let Some((g, counter)) = grant.and_then(|g| g.quota.as_ref().map(|q| (g, q))) else {
        count(Metered::Served);
        return Verdict::Pass;
    };
    match spend(rt, counter, asked.now_ns) {
        Some(Verdict::Pass) => {
            count(Metered::Served);
            Verdict::Pass
        }
        Some(refusal) => {
            count(Metered::QuotaRejected);
            refusal
        }
        None => Verdict::Wait(QuotaWait {
            counter: Arc::clone(counter),
            key_meter: Arc::clone(&g.meter),
            route_meter: limiter.meter.clone(),
        }),
    }
}

/// Spends one request of quota: Pass, a QUOTA_EXCEEDED refusal, or None (pending; the keeper
/// has been asked).
fn spend(rt: &LimitsRuntime, counter: &Arc<QuotaCounter>, now_ns: u64) -> Option<Verdict> {
    let now_s = (now_ns / NS) as i64;
    match counter.spend(now_s, rt.low_water) {
        Spend::Granted { low, .. } => {
            if low {
                rt.ask_refill(counter);
            }
            Some(Verdict::Pass)
        }
        Spend::Exceeded => {
            let period = counter.spec.period;
            let snapshot = counter.snapshot();
            let next = period.next_start(snapshot.period_start);
            Some(Verdict::Refuse(Refusal {
                kind: ResponseType::QuotaExceeded,
                shed_tier: None,
                policy: Some(PolicyNote {
                    name: "quota",
                    quota: snapshot.allowance,
                    window_s: period_seconds(period, snapshot.period_start),
                    reset_s: (next - now_s).max(1) as u64,
                }),
            }))
        }
        Spend::Pending => {
            rt.ask_refill(counter);
            None
        }
    }
}

/// After a wait: Pass, a refusal, or None (still pending).
pub fn retry_quota(rt: &LimitsRuntime, wait: &QuotaWait, now_ns: u64) -> Option<Verdict> {
    let verdict = spend(rt, &wait.counter, now_ns)?;
    let what = match verdict {
        Verdict::Pass => Metered::Served,
        _ => Metered::QuotaRejected,
    };
    wait.key_meter.count(what);
    if let Some(m) = &wait.route_meter {
        m.count(what);
    }
    Some(verdict)
}

fn period_seconds(period: Period, start: i64) -> u64 {
    (period.next_start(start) - start).max(1) as u64
}

/// The key's grant for the route's API stage, when the key is valid and enabled.
fn find_grant<'r>(rt: &'r LimitsRuntime, asked: &Asked<'_>) -> Option<&'r Grant> {
    // No key is longer: a long header value is refused without hashing it.
    let value = asked
        .key
        .filter(|v| v.len() <= tollgate_config::usage::KEY_VALUE_LEN_MAX)?;
    let entry = rt.keys.get(&tollgate_config::usage::sha256(value))?;
    if !entry.enabled {
        return None;
    }
    rt.grant(entry, asked.api, asked.stage)
}

/// Renders `Retry-After` and, when enabled, `RateLimit-Policy` / `RateLimit` (IETF
/// draft-ietf-httpapi-ratelimit-headers structured fields) for a refusal into `out`; returns
/// the bytes written (the lines are cut short, never split, if `out` is too small).
pub fn refusal_headers(out: &mut [u8], note: &PolicyNote, rate_limit_headers: bool) -> usize {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(out);
    let _ = write!(cursor, "retry-after: {}\r\n", note.reset_s);
    if rate_limit_headers {
        let name = note.name;
        let _ = write!(
            cursor,
            "ratelimit-policy: \"{name}\";q={};w={}\r\nratelimit: \"{name}\";r=0;t={}\r\n",
            note.quota, note.window_s, note.reset_s
        );
    }
    cursor.position() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_headers_are_retry_after_and_ietf_fields() {
        let note = PolicyNote {
            name: "plan",
            quota: 20,
            window_s: 2,
            reset_s: 1,
        };
        let mut out = [0u8; 256];
        let n = refusal_headers(&mut out, &note, true);
        assert_eq!(
            std::str::from_utf8(&out[..n]).expect("ascii"),
            "retry-after: 1\r\nratelimit-policy: \"plan\";q=20;w=2\r\nratelimit: \"plan\";r=0;t=1\r\n"
        );
        let n = refusal_headers(&mut out, &note, false);
        assert_eq!(&out[..n], b"retry-after: 1\r\n");
    }
}
