//! The limit phase on a connection: reads the key header and the clock, runs
//! [`crate::limits::phase::check`], and answers refusals (403 `INVALID_API_KEY`, 429
//! `THROTTLED` / `QUOTA_EXCEEDED` with `Retry-After` and `RateLimit` headers). A key whose
//! quota reservation is momentarily empty waits for the keeper, briefly.

use std::time::Duration;

use tollgate_config::responses::{ResponseCatalogue, ResponseType};

use super::{After, Conn, Facts};
use crate::limits::keeper::now_ns;
use crate::limits::phase::{self, Asked, Refusal, Verdict};
use crate::worker::WorkerPlan;
use tollgate_backends::wire::buffers::IoBuf;

/// How long a request waits for the keeper to reserve quota before a 503.
const QUOTA_WAIT: Duration = Duration::from_millis(250);

impl Conn {
    /// Runs the limit phase; Ok hands the buffer back to go on, Err is the answered refusal.
    pub(super) async fn limit(
        &mut self,
        wp: &WorkerPlan,
        index: usize,
        facts: &Facts,
        buf: IoBuf,
        catalogue: &ResponseCatalogue,
    ) -> Result<IoBuf, (u16, After, IoBuf)> {
        let rt = &wp.limits;
        let open = rt.routes.get(index).is_none_or(|r| r.is_open());
        if open && rt.account.is_none() && rt.overload.is_none() {
            return Ok(buf);
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
            client: facts.client_ip(),
            now_ns: now_ns(),
            // Admitted requests only; this one is not counted yet.
            in_flight: self.worker.in_flight.get(),
        };
        // Taken before the attempt, so a signal between the attempt and the wait is not lost.
        let epoch = self.worker.quota_ready.epoch();
        let refusal = match phase::check(rt, &asked) {
            Verdict::Pass => return Ok(buf),
            Verdict::Refuse(r) => r,
            Verdict::Wait(wait) => {
                let deadline = std::time::Instant::now() + QUOTA_WAIT;
                let mut seen = epoch;
                loop {
                    let ready = self.worker.quota_ready.after(seen);
                    let _ = monoio::time::timeout_at(deadline.into(), ready).await;
                    seen = self.worker.quota_ready.epoch();
                    match phase::retry_quota(rt, &wait, now_ns()) {
                        Some(Verdict::Pass) => return Ok(buf),
                        Some(Verdict::Refuse(r)) => break r,
                        _ if std::time::Instant::now() >= deadline => {
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
            crate::counters::bump(&self.worker.counters.shed_by_tier[usize::from(tier.min(9))]);
        }
        let mut extra = [0u8; 256];
        let extra = render_extra(&refusal, rt.rate_limit_headers, &mut extra);
        Err(self
            .refuse_with(wp, catalogue, refusal.kind, facts, buf, extra)
            .await)
    }
}

/// The refusal's header lines, rendered on the stack.
fn render_extra<'a>(
    refusal: &Refusal,
    rate_limit_headers: bool,
    out: &'a mut [u8; 256],
) -> &'a [u8] {
    let n = match (&refusal.policy, refusal.kind) {
        (Some(note), _) => phase::refusal_headers(out, note, rate_limit_headers),
        (None, ResponseType::ServiceUnavailable) => {
            let line = b"retry-after: 1\r\n";
            out[..line.len()].copy_from_slice(line);
            line.len()
        }
        _ => 0,
    };
    &out[..n]
}
