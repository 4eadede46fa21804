//! The limits phase (usage plans): reads the API key header and the clock, runs the pure
//! [`crate::limits::phase::check`] (per-client throttles, key, priority shedding, account /
//! route / plan throttles, quota), and turns a refusal into a [`Stop`]: 403 `INVALID_API_KEY`,
//! 429 `THROTTLED` / `QUOTA_EXCEEDED` with `Retry-After` and `RateLimit` lines. A key whose
//! quota reservation is momentarily empty waits for the keeper, briefly. It runs after
//! authorization, because an authorizer can supply the usage-plan key.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tollgate_backends::wire::buffers::IoBuf;
use tollgate_config::responses::ResponseType;

use super::client::Client;
use super::request::Facts;
use super::respond::{RefusalHeaders, Stop};
use crate::clock::now_ns;
use crate::limits::phase::{self, Asked, Refusal, Verdict};
use crate::worker::{Worker, WorkerPlan};

/// How long a request waits for the keeper to reserve quota before a 503.
const QUOTA_WAIT: Duration = Duration::from_millis(250);

/// One admitted request in [`Worker::in_flight`] until dropped (counted only when `[overload]`
/// is configured: priority shedding reads it).
pub struct InFlight(Rc<Worker>);

impl InFlight {
    fn enter(worker: &Rc<Worker>) -> Self {
        worker.in_flight.set(worker.in_flight.get() + 1);
        InFlight(Rc::clone(worker))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// Runs the limits of route `index`. Ok: admitted (holding its in-flight mark, when counted).
pub async fn check(
    client: &Client,
    wp: &WorkerPlan,
    index: usize,
    facts: &Facts,
    buf: &IoBuf,
) -> Result<Option<InFlight>, Stop> {
    let worker = &client.worker;
    let rt = &wp.limits;
    // Only admitted requests count in flight: refusals are quick and must not crowd out the
    // tiers that are still served.
    let admit = || {
        wp.plan
            .usage
            .overload
            .is_some()
            .then(|| InFlight::enter(worker))
    };
    let open = rt.routes.get(index).is_none_or(|r| r.is_open());
    if open && rt.account.is_none() && rt.overload.is_none() {
        return Ok(admit());
    }
    let route = &wp.plan.routes[index];
    let key = if rt.routes[index].key_required {
        let name = rt.key_header.as_bytes();
        buf.headers
            .iter()
            .find(|h| h.name.get(&buf.data).eq_ignore_ascii_case(name))
            .map(|h| h.value.get(&buf.data))
    } else {
        None
    };
    let asked = Asked {
        route: index,
        api: route.api,
        stage: &route.stage,
        key,
        // Per-client throttles count the client's prefix, not its exact address.
        client: wp.plan.client_address.keying.key(facts.client_ip()),
        now_ns: now_ns(),
        // Admitted requests only; this one is not counted yet.
        in_flight: worker.in_flight.get(),
    };
    // Taken before the attempt, so a signal between the attempt and the wait is not lost.
    let epoch = worker.quota_ready.epoch();
    let refusal = match phase::check(rt, &asked) {
        Verdict::Pass => return Ok(admit()),
        Verdict::Refuse(r) => r,
        Verdict::Wait(wait) => {
            let deadline = Instant::now() + QUOTA_WAIT;
            let mut seen = epoch;
            loop {
                let ready = worker.quota_ready.after(seen);
                let _ = monoio::time::timeout_at(deadline.into(), ready).await;
                seen = worker.quota_ready.epoch();
                match phase::retry_quota(rt, &wait, now_ns()) {
                    Some(Verdict::Pass) => return Ok(admit()),
                    Some(Verdict::Refuse(r)) => break r,
                    _ if Instant::now() >= deadline => {
                        break Refusal {
                            kind: ResponseType::ServiceUnavailable,
                            policy: None,
                            shed_tier: None,
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    if let Some(tier) = refusal.shed_tier {
        crate::counters::bump(&worker.counters.shed_by_tier[usize::from(tier.min(9))]);
    }
    let own = match (refusal.policy, refusal.kind) {
        (Some(note), _) => RefusalHeaders::Limit {
            note,
            rate_limit_headers: rt.rate_limit_headers,
        },
        (None, ResponseType::ServiceUnavailable) => RefusalHeaders::RetrySoon,
        _ => RefusalHeaders::None,
    };
    Err(Stop::Refuse {
        kind: refusal.kind,
        own,
    })
}
