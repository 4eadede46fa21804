//! The pre-filter phase for each request: the connection's source was checked at accept (or
//! after its PROXY header, [`crate::conn`]); a client behind trusted proxies is known only once
//! the head has parsed, and a direct client may have been blocked (or denied by a reload) since
//! its connection opened — so every request's resolved client is checked again here.
//!
//! A refused client on its own connection is closed without an answer; a refused client behind
//! a balancer gets a 403 and the balancer's connection stays usable (closing it would look like
//! a failure of this gateway to the balancer). Afterwards, [`escalate`] counts refusals that
//! the plan escalates (throttling, auth failures, …) toward a timed block.

use std::net::IpAddr;

use tollgate_config::responses::ResponseType;
use tollgate_config::Plan;
use tracing::debug;

use super::client::Client;
use super::request::Facts;
use super::respond::Stop;
use crate::counters::bump;
use crate::prefilter::Refused;

/// Checks the request's resolved client against the lists and blocks.
pub fn check(client: &Client, plan: &Plan, facts: &Facts) -> Result<(), Stop> {
    let Some(p) = &plan.prefilter else {
        return Ok(());
    };
    let ip = facts.client_ip();
    match crate::prefilter::check_source(p, &client.worker.prefilter, ip) {
        Ok(()) => Ok(()),
        Err(why) => {
            count_refused(client, why, ip);
            if ip == client.peer.ip() {
                Err(Stop::Close)
            } else {
                Err(Stop::refuse(ResponseType::AccessDenied))
            }
        }
    }
}

/// Counts a refusal by reason (and logs it at debug level).
pub fn count_refused(client: &Client, why: Refused, ip: IpAddr) {
    debug!(ip = %ip, reason = why.label(), "pre-filter refused");
    bump(&client.worker.counters.prefilter_refused[why as usize]);
}

/// Counts an answer that the plan escalates (throttled, quota, auth failures) against `ip`.
pub fn escalate(client: &Client, plan: &Plan, ip: IpAddr, status: u16, kind: Option<ResponseType>) {
    let Some(p) = plan.prefilter.as_ref().filter(|p| !p.escalation.is_empty()) else {
        return;
    };
    if let Some(offense) = crate::prefilter::offense_of(status, kind) {
        let now = crate::clock::now_ms();
        crate::prefilter::offend(p, &client.worker.prefilter, ip, offense, now);
    }
}
