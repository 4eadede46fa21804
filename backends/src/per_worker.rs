//! What the integrations keep per worker for one plan generation: today the keep-alive pools
//! of upstream connections (later: load-balancer pool state, function workers' queues).
//!
//! Built when a worker applies a plan. State carries over from the previous generation by
//! stable key (the upstream's authority), never by position, so a reload keeps warm
//! connections.

use std::collections::HashMap;
use std::rc::Rc;

use tollgate_config::Plan;

use crate::conn_pool::HostPool;

/// The integrations' per-worker state for one plan.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    /// Upstream connection pools by `plan.upstreams` index.
    pub conn_pools: Vec<Rc<HostPool>>,
}

impl Backends {
    /// The state for `plan`, reusing what `old` has for the same upstreams.
    pub fn build(plan: &Plan, old: Option<&Backends>) -> Self {
        let mut old_pools: HashMap<&str, &Rc<HostPool>> = HashMap::new();
        for p in old.map_or(&[][..], |o| &o.conn_pools) {
            old_pools.insert(p.authority.as_str(), p);
        }
        let conn_pools = plan
            .upstreams
            .iter()
            .map(|u| {
                let key = u.pool_key();
                match old_pools.get(key.as_str()) {
                    Some(p) if p.matches(&u.addrs, &plan.upstream) => Rc::clone(p),
                    _ => Rc::new(HostPool::new(
                        &key,
                        u.addrs.clone(),
                        u.tls.clone(),
                        &plan.upstream,
                    )),
                }
            })
            .collect();
        Self { conn_pools }
    }

    /// Closes every idle upstream connection (drain).
    pub fn clear(&self) {
        for pool in &self.conn_pools {
            pool.clear();
        }
    }

    /// Upstream connections opened and reused, over all pools.
    pub fn connects_and_reuses(&self) -> (u64, u64) {
        self.conn_pools.iter().fold((0, 0), |(c, r), p| {
            (c + p.connected.get(), r + p.reused.get())
        })
    }
}
