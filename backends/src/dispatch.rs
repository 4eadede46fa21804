//! The integration dispatch: one arm per integration kind, a closed `match` (no boxed trait
//! object or boxed future per request). Adding a kind adds its arm here, its folder or file in
//! this crate, and its config section — nothing else (docs/architecture.md).

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use tollgate_config::plan::IntegrationPlan;
use tollgate_config::responses::ResponseType;

use crate::exchange::{Downstream, Finished, Request};
use crate::per_worker::Backends;

/// Runs the route's integration.
pub async fn integrate<S: AsyncReadRent + AsyncWriteRent>(
    req: &Request<'_>,
    down: &mut Downstream<'_, S>,
    backends: &Backends,
) -> Finished {
    match &req.route.integration {
        IntegrationPlan::NotFound => Finished::Refuse {
            kind: ResponseType::ResourceNotFound,
        },
        IntegrationPlan::Mock(m) => crate::mock::run(req, down, m).await,
        IntegrationPlan::Http(target) => {
            let pool = &backends.conn_pools[target.upstream];
            crate::http::run(req, down, target, pool).await
        }
    }
}
