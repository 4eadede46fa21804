//! The worker's side of a metrics scrape: it copies its counters into a [`Snapshot`] (plain
//! data) and sends that to the admin thread, which renders it ([`crate::metrics`]). The
//! counters themselves are per-core cells, never shared.

use crate::counters::RouteCounters;
use crate::metrics::{PoolSnapshot, RouteSnapshot, Snapshot, TlsSnapshot};

use super::Worker;

impl Worker {
    /// Copies the worker's counters for a metrics scrape.
    pub fn snapshot(&self) -> Snapshot {
        let worker = self;
        let wp = worker.plan();
        let plan = &wp.plan;
        let route = |api: &str, stage: &str, key: &str, c: &RouteCounters| RouteSnapshot {
            api: api.to_string(),
            stage: stage.to_string(),
            route: key.to_string(),
            by_class: std::array::from_fn(|i| c.by_class[i].get()),
            buckets: c.latency.buckets().collect(),
            sum_us: c.latency.sum_us(),
        };
        let mut routes: Vec<RouteSnapshot> = plan
            .routes
            .iter()
            .zip(&wp.routes)
            .map(|(r, c)| route(&plan.apis[r.api].id, &r.stage, &r.route_key, c))
            .collect();
        routes.push(route("", "", "(unmatched)", &wp.unmatched));
        let pools = wp
            .backends
            .conn_pools
            .iter()
            .map(|p| PoolSnapshot {
                upstream: p.authority.clone(),
                idle: p.idle_len() as u64,
                connects: p.connected.get(),
                reuses: p.reused.get(),
                connect_failures: p.connect_failures.get(),
            })
            .collect();
        let c = &worker.counters;
        let registry = worker.registry.borrow();
        Snapshot {
            worker: worker.id,
            driver: worker.driver.name(),
            generation: wp.generation,
            open: registry.len() as u64,
            idle: registry.idle_count() as u64,
            tunnels: registry.tunnels() as u64,
            rejected_proxy_protocol: c.rejected_proxy_protocol.get(),
            log_dropped: worker.access_log.dropped(),
            shed: std::array::from_fn(|i| c.shed_by_tier[i].get()),
            prefilter_refused: std::array::from_fn(|i| c.prefilter_refused[i].get()),
            accepted: c.accepted.get(),
            rejected_at_limit: c.rejected_at_limit.get(),
            rejected_at_file_limit: c.rejected_at_file_limit.get(),
            malformed: c.malformed.get(),
            tls: c
                .tls
                .borrow()
                .iter()
                .map(|t| TlsSnapshot {
                    listener: t.listener.to_string(),
                    handshakes: t.handshakes.get(),
                    resumptions: t.resumptions.get(),
                    failed: std::array::from_fn(|i| t.failed[i].get()),
                })
                .collect(),
            routes,
            pools,
        }
    }
}
