//! The log-and-usage phase, after the response: the route's (or the unmatched) counters, the
//! access log line (its request side was copied when the head parsed, [`capture`]), and
//! escalation of answers the pre-filter counts against the client. Usage per key is counted
//! by the limits phase when it admits a request.

use tollgate_config::plan::{IntegrationPlan, RoutePlan};
use tollgate_config::Plan;

use super::client::Client;
use super::request::Facts;
use crate::access_log::capture::{Answered, Captured};
use crate::counters::RouteCounters;

/// Copies what the access log line needs from the head, when the plan logs.
pub fn capture(
    client: &Client,
    plan: &Plan,
    facts: &Facts,
    buf: &tollgate_backends::wire::buffers::IoBuf,
) -> Option<Captured> {
    plan.access_log
        .as_ref()
        .map(|_| Captured::take(&client.worker, &buf.data, &facts.head, &buf.headers))
}

/// Records an answered request (status 0: closed without an answer, not logged or counted as
/// a response).
pub fn finish(
    client: &Client,
    plan: &Plan,
    counters: &RouteCounters,
    captured: Option<Captured>,
    facts: &Facts,
    status: u16,
    route: Option<&RoutePlan>,
) {
    if status != 0 {
        // A tunnel's latency is the time to its 101, not its whole life.
        let elapsed = match facts.outcome.integration.latency.get() {
            Some(to_101) if status == 101 => to_101,
            _ => facts.started.elapsed(),
        };
        counters.record(status, elapsed);
    }
    match (captured, &plan.access_log) {
        (Some(captured), Some(log)) if status != 0 => {
            let answered = Answered {
                request_id: facts.id.as_bytes(),
                ip: facts.client_ip(),
                started: facts.started,
                status,
                // The catch-all behind an API stage is no route of the API.
                route_key: route
                    .filter(|r| !matches!(r.integration, IntegrationPlan::NotFound))
                    .map_or("", |r| r.route_key.as_str()),
                api_id: route.map_or("", |r| plan.apis[r.api].id.as_str()),
                stage: route.map_or("", |r| r.stage.as_str()),
                outcome: &facts.outcome,
                tls: client.stream.tls().and_then(|s| s.session()).map(|s| &**s),
            };
            captured.log(&client.worker, &log.format, &answered);
        }
        (Some(captured), _) => captured.discard(&client.worker),
        (None, _) => {}
    }
    let kind = facts.outcome.gateway_kind.get();
    super::prefilter::escalate(client, plan, facts.client_ip(), status, kind);
}
