//! The integration phase: hands the request to its backend through the one interface of
//! `tollgate_backends` — the protocol-neutral [`Request`] view and the [`Downstream`] to answer
//! on — and turns what the backend did ([`Finished`]) into the request's status, the
//! connection's fate, or an answer for the respond phase.

use std::time::Duration;

use tollgate_backends::wire::buffers::IoBuf;
use tollgate_backends::{After, Downstream, Finished, Request, ResponseFilters};

use super::client::Client;
use super::request::Facts;
use super::respond::Stop;
use crate::tunnel::PendingTunnel;
use crate::worker::WorkerPlan;

/// What the integration did, for the pipeline.
pub enum Integrated {
    /// It answered: the status, what becomes of the connection, and an upgraded upstream to
    /// tunnel to once the request is logged.
    Answered(u16, After, Option<PendingTunnel>),
    /// The gateway answers instead.
    Stopped(Stop),
}

/// Runs route `index`'s integration with the response filters the phases set up.
pub async fn run(
    client: &mut Client,
    wp: &WorkerPlan,
    index: usize,
    facts: &Facts,
    buf: &mut IoBuf,
    filters: &ResponseFilters<'_>,
) -> Integrated {
    let limits = &wp.plan.limits;
    // Shared, not borrowed: the stream is lent to the integration below.
    let tls = client.stream.tls().and_then(|s| s.session()).cloned();
    let req = Request {
        plan: &wp.plan,
        route: &wp.plan.routes[index],
        head: &facts.head,
        id: facts.id.as_bytes(),
        started: facts.started,
        date: facts.date,
        client: facts.client_ip(),
        peer: client.peer,
        local_port: client.local_port,
        tls: tls.as_deref(),
        report: &facts.outcome.integration,
        filters,
    };
    let mut down = Downstream {
        stream: &mut client.stream,
        buf,
        buffers: &client.worker.buffers,
        draining: &client.worker.draining,
        write_timeout: Duration::from_millis(limits.response_write_timeout_ms),
    };
    match tollgate_backends::integrate(&req, &mut down, &wp.backends).await {
        Finished::Sent { status, after } => Integrated::Answered(status, after, None),
        Finished::Broken { status } => Integrated::Answered(status, After::Close, None),
        Finished::Answer { kind, detail } => Integrated::Stopped(Stop::Fail { kind, detail }),
        Finished::Refuse { kind } => Integrated::Stopped(Stop::refuse(kind)),
        Finished::Upgraded(upstream) => {
            let tunnel = PendingTunnel::new(*upstream, limits);
            Integrated::Answered(101, After::Close, Some(tunnel))
        }
    }
}
