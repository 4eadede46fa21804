//! # The request pipeline
//!
//! Every phase a request goes through, in order — this file is the request path. Each phase
//! is a small module with a pure core where it can have one; a phase may stop the request
//! with a gateway answer ([`respond::Stop`]: 403, 404, 413, 429, …), written by the respond
//! phase from the API's catalogue of gateway responses.
//!
//! ```text
//! accept ─ pre-filter: XDP in the kernel, then the connection's source (conn::prefilter)
//!   ─ [TLS: room]                                   ─ PROXY header (conn::proxy_header)
//!   ─ parse head (conn::Conn::read_head, backends::wire::http1)
//! per request, here:
//!   1. request facts  (request)    request id, start, resolved client address
//!   2. pre-filter     (prefilter)  the resolved client against lists and blocks
//!   3. route          (misdirected, route)  a TLS client's Host must name the certificate
//!                                  its handshake chose (421); listener → host → stage →
//!                                  route; path parameters
//!   4. [CORS preflight: room]      answers OPTIONS preflights of an API with CORS
//!   5. [authorize: room]           API key / JWT / custom authorizer / mTLS
//!   6. request size   (size)       declared body over `body_bytes_max` → 413
//!   7. limits         (limits)     usage plan: throttles, key, shedding, quota
//!   8. [validate: room]            parameters, JSON Schema body
//!   9. [cache lookup: room]        a hit answers here
//!  10. integrate      (integrate)  the route's backend (tollgate_backends), through
//!                                  ResponseFilters: phases add header lines / observe the body
//!  11. [cache store: room]         an observer on the response body
//!  12. respond        (respond)    gateway answers for phases that stopped the request
//!  13. log and usage  (log)        counters, access log line, escalation
//! ```
//!
//! Phases up to the route decision answer from the gateway's default responses (no API is
//! known yet); later ones from the route's API.

pub mod client;
pub mod integrate;
pub mod limits;
pub mod log;
pub mod misdirected;
pub mod prefilter;
pub mod request;
pub mod respond;
pub mod route;
pub mod size;

use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::wire::http1::RequestHead;
use tollgate_backends::{After, ResponseFilters};

use client::Client;
use integrate::Integrated;
use request::Facts;

use crate::tunnel::PendingTunnel;

/// How a request ended for its connection.
pub struct Handled {
    /// What becomes of the connection.
    pub after: After,
    /// The read buffer, holding any pipelined bytes at its front.
    pub buf: IoBuf,
    /// The status sent (0: closed without an answer).
    pub status: u16,
    /// An upgraded upstream: the connection runs the tunnel next.
    pub tunnel: Option<PendingTunnel>,
}

/// Runs one request through the phases. `served`: requests this connection carried before.
pub async fn handle(
    client: &mut Client,
    served: u64,
    mut head: RequestHead,
    mut buf: IoBuf,
) -> Handled {
    let wp = client.worker.plan();
    let plan = &wp.plan;
    // The last request a connection may carry (cap or drain) says so in its response.
    let cap = plan.limits.requests_per_connection_max;
    if client.worker.draining.get() || (cap > 0 && served + 1 >= cap) {
        head.keep_alive = false;
    }

    // 1. Request facts, and the access log's copy of the head (the body may overwrite it).
    let facts = Facts::new(client, plan, head, &buf);
    let captured = log::capture(client, plan, &facts, &buf);

    // 2–3. Pre-filter, route.
    let found = prefilter::check(client, plan, &facts)
        .and_then(|()| misdirected::check(client, plan, &facts, &buf))
        .and_then(|()| route::find(client, plan, &facts, &mut buf));
    let index = match found {
        Ok(index) => index,
        Err(stop) => {
            let catalogue = &plan.default_responses;
            let (status, after, buf) =
                respond::stop(client, &wp, catalogue, &facts, buf, stop, b"").await;
            log::finish(client, plan, &wp.unmatched, captured, &facts, status, None);
            return Handled {
                after,
                buf,
                status,
                tunnel: None,
            };
        }
    };
    let route = &plan.routes[index];
    let catalogue = &plan.apis[route.api].responses;
    // What the phases add to the route's responses, the integration's and the gateway's own
    // (CORS headers, cache status); nothing yet.
    let filters = ResponseFilters::NONE;

    // 4–5. (CORS preflight, authorize: not yet.)
    // 6–7. Request size, limits. The in-flight mark lives until the request is logged.
    let admitted = match size::check(&facts, &plan.limits) {
        Ok(()) => limits::check(client, &wp, index, &facts, &buf).await,
        Err(stop) => Err(stop),
    };
    // 8–9. (Validate, cache lookup: not yet.)
    // 10. Integrate.
    let (integrated, in_flight) = match admitted {
        Ok(in_flight) => {
            let done = integrate::run(client, &wp, index, &facts, &mut buf, &filters).await;
            (done, in_flight)
        }
        Err(stop) => (Integrated::Stopped(stop), None),
    };
    // 11. (Cache store: not yet.) 12. Respond, when a phase stopped the request.
    let (status, after, buf, tunnel) = match integrated {
        Integrated::Answered(status, after, tunnel) => (status, after, buf, tunnel),
        Integrated::Stopped(stop) => {
            let added = filters.add_headers;
            let (status, after, buf) =
                respond::stop(client, &wp, catalogue, &facts, buf, stop, added).await;
            (status, after, buf, None)
        }
    };
    // 13. Log and usage.
    log::finish(
        client,
        plan,
        &wp.routes[index],
        captured,
        &facts,
        status,
        Some(route),
    );
    drop(in_flight);
    Handled {
        after,
        buf,
        status,
        tunnel,
    }
}
