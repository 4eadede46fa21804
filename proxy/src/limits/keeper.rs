//! The keeper: the one thread that owns durable limit state. It opens the state directory,
//! builds [`LimitsRuntime`]s (start-up, reload, admin changes), reserves quota in durable
//! chunks before workers spend it, rolls quota periods, writes usage, and evicts idle
//! per-client buckets. Workers never wait for it except when a key's reservation is empty.
//!
//! Quota durability: a worker may spend only what the keeper has reserved, and the keeper
//! raises a reservation only after the new total is committed (fsync) in `state.redb`. After a
//! crash the gateway counts every reserved request as spent, so it may under-serve by the
//! unspent part of the open reservations (at most `quota_chunk` + `quota_chunk / 2` per key
//! and plan), never over-serve. A clean stop writes back what was really spent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender};
use tollgate_config::period::day_number;
use tollgate_config::Plan;
use tracing::{info, warn};

use super::assemble::{assemble, Counters, Inputs, KeySource};
use super::quota::QuotaCounter;
use super::runtime::LimitsRuntime;
use crate::clock::{now_ns, now_secs};
use crate::state::{QuotaRecord, StateStore, StoredKey, UsageCounts, UsageDelta};
use crate::worker::messages::Command;

/// How often the keeper looks at reservations, periods and usage without being asked.
const TICK: Duration = Duration::from_millis(50);
/// Refill requests a worker may queue before it stops asking (it retries on its next spend).
const REFILL_QUEUE: usize = 4096;
/// How often idle per-client buckets are evicted.
const EVICT_EVERY: Duration = Duration::from_secs(5);

/// The keeper, shared by the control thread (reloads), the admin thread (changes) and its
/// own thread (refills, usage).
pub type SharedKeeper = Arc<Mutex<Keeper>>;

/// Locks the keeper, also after a panic elsewhere (its state stays consistent per call).
pub fn lock(keeper: &SharedKeeper) -> MutexGuard<'_, Keeper> {
    keeper.lock().unwrap_or_else(|p| p.into_inner())
}

/// Durable limit state and the counters that outlive runtimes.
#[derive(Debug)]
pub struct Keeper {
    /// The state directory's store (None without `[state]`).
    pub(crate) store: Option<StateStore>,
    pub(crate) counters: Counters,
    pub(crate) plan: Arc<Plan>,
    generation: u64,
    /// Keys made through the admin API.
    pub(crate) admin_keys: Vec<StoredKey>,
    /// (plan id, key id) attachments made through the admin API.
    pub(crate) attachments: Vec<(String, String)>,
    /// When each plan started counting (its quota offset's initial period).
    origins: HashMap<String, i64>,
    runtime: Arc<LimitsRuntime>,
    /// Runtimes built so far (their version numbers).
    builds: u64,
    refill_tx: Sender<Arc<QuotaCounter>>,
    last_flush: Instant,
    last_evict: Instant,
    /// Usage since start by subject (served, throttled, quota-rejected), for metrics.
    pub(crate) totals: HashMap<String, UsageCounts>,
    /// Set by a clean stop: nothing is reserved or written after the write-back.
    stopped: bool,
    /// Where to announce new reservations (see [`Keeper::set_workers`]).
    workers: Vec<(Sender<Command>, std::os::unix::net::UnixStream)>,
}

impl Keeper {
    /// Opens the state directory (if configured), loads admin-made keys and builds the first
    /// runtime. Returns the keeper and the queue its thread serves.
    pub fn open(
        plan: Arc<Plan>,
        generation: u64,
    ) -> anyhow::Result<(SharedKeeper, Receiver<Arc<QuotaCounter>>)> {
        let store =
            match &plan.usage.state {
                Some(s) => Some(StateStore::open(&s.dir).with_context(|| {
                    format!("cannot open the state directory {}", s.dir.display())
                })?),
                None => None,
            };
        let (admin_keys, attachments) = match &store {
            Some(s) => (s.keys()?, s.attachments()?),
            None => (Vec::new(), Vec::new()),
        };
        let (refill_tx, refill_rx) = crossbeam_channel::bounded(REFILL_QUEUE);
        let routes = plan.routes.len();
        let mut keeper = Keeper {
            store,
            counters: Counters::default(),
            plan: Arc::clone(&plan),
            generation,
            admin_keys,
            attachments,
            origins: HashMap::new(),
            runtime: Arc::new(LimitsRuntime::open(generation, routes)),
            builds: 0,
            refill_tx,
            last_flush: Instant::now(),
            last_evict: Instant::now(),
            totals: HashMap::new(),
            stopped: false,
            workers: Vec::new(),
        };
        keeper
            .rebuild(plan, generation)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(s) = &keeper.store {
            info!(
                dir = %s.dir().display(),
                admin_keys = keeper.admin_keys.len(),
                "state directory open"
            );
        }
        Ok((Arc::new(Mutex::new(keeper)), refill_rx))
    }

    /// The runtime workers should use now.
    pub fn runtime(&self) -> Arc<LimitsRuntime> {
        Arc::clone(&self.runtime)
    }

    /// Builds the runtime for a new plan (a reload). On a conflict between the file and
    /// admin-made objects, nothing changes and the error says what collides.
    pub fn rebuild(
        &mut self,
        plan: Arc<Plan>,
        generation: u64,
    ) -> Result<Arc<LimitsRuntime>, String> {
        if plan.usage.state.is_some() && self.store.is_none() {
            return Err("a `[state]` directory can only be added by a restart (none was configured at start-up)".to_string());
        }
        let previous = (Arc::clone(&self.plan), self.generation);
        self.plan = plan;
        self.generation = generation;
        match self.reassemble() {
            Ok(rt) => Ok(rt),
            Err(e) => {
                (self.plan, self.generation) = previous;
                Err(e)
            }
        }
    }

    /// Rebuilds the runtime from the current plan, keys and attachments.
    pub(crate) fn reassemble(&mut self) -> Result<Arc<LimitsRuntime>, String> {
        let plan = Arc::clone(&self.plan);
        let keys = self.key_sources();
        let inputs = Inputs {
            keys: &keys,
            attachments: &self.attachments,
        };
        let mut rt = assemble(&plan, self.generation, &inputs, &mut self.counters)
            .map_err(|e| e.to_string())?;
        self.builds += 1;
        rt.version = self.builds;
        rt.refill = Some(self.refill_tx.clone());
        rt.low_water = self.chunk() / 2;
        let now = now_secs();
        for up in &plan.usage.plans {
            if up.quota.is_some() && !self.origins.contains_key(&up.id) {
                let origin = match &self.store {
                    Some(s) => s.plan_origin(&up.id, now).map_err(|e| e.to_string())?,
                    None => now,
                };
                self.origins.insert(up.id.clone(), origin);
            }
        }
        let counters: Vec<Arc<QuotaCounter>> = self.counters.quotas.values().cloned().collect();
        if let Err(e) = self.refill(&counters, now) {
            warn!(error = %e, "cannot reserve quota");
        }
        self.runtime = Arc::new(rt);
        Ok(self.runtime())
    }

    fn key_sources(&self) -> Vec<KeySource> {
        let file = self.plan.usage.keys.iter().map(|k| KeySource {
            id: k.id.clone(),
            value_sha256: k.value_sha256,
            enabled: k.enabled,
            admin: false,
        });
        let admin = self.admin_keys.iter().filter_map(|k| {
            Some(KeySource {
                id: k.id.clone(),
                value_sha256: tollgate_config::usage::parse_sha256(&k.value_sha256)?,
                enabled: k.enabled,
                admin: true,
            })
        });
        file.chain(admin).collect()
    }

    pub(crate) fn chunk(&self) -> u64 {
        self.plan
            .usage
            .state
            .as_ref()
            .map_or(100, |s| s.quota_chunk)
    }

    /// Brings counters to the current period and tops up reservations that run low, with
    /// one durable write for all of them. Returns how many reservations were raised.
    pub fn refill(&mut self, counters: &[Arc<QuotaCounter>], now: i64) -> anyhow::Result<usize> {
        // After a clean stop's write-back, a late refill would overwrite it with a larger
        // reservation (and the next start would count that as spent).
        if self.stopped {
            return Ok(0);
        }
        let chunk = self.chunk();
        let low_water = chunk / 2;
        let mut raises = Vec::new();
        let mut records = Vec::new();
        for q in counters {
            // Cleared before looking, so a worker that asks meanwhile asks again.
            q.asked_done();
            let start = q.spec.period.start(now);
            let current = q.snapshot().period_start;
            // A clock stepped back never returns a counter to an earlier period.
            if start < current {
                continue;
            }
            if current != start {
                self.begin_period(q, start)?;
            }
            let snap = q.snapshot();
            if snap.reserved - snap.used.min(snap.reserved) > low_water
                || snap.reserved >= snap.allowance
            {
                continue;
            }
            let target = snap.allowance.min(snap.reserved + chunk);
            let extra = self.extra(q, start)?;
            records.push((
                q.key_id.to_string(),
                q.plan_id.to_string(),
                QuotaRecord {
                    period_start: start,
                    reserved: target,
                    extra,
                },
            ));
            raises.push((Arc::clone(q), snap.reserved, target));
        }
        if raises.is_empty() {
            return Ok(0);
        }
        let Some(store) = &self.store else {
            anyhow::bail!("quota needs a state directory");
        };
        store.set_quotas(&records)?;
        let raised = raises.len();
        for (q, from, to) in raises {
            q.raise_reserved(from, to);
        }
        Ok(raised)
    }

    /// The workers to tell when quota was reserved (their command channels and wake-up
    /// sockets), set once they run.
    pub fn set_workers(&mut self, workers: Vec<(Sender<Command>, std::os::unix::net::UnixStream)>) {
        self.workers = workers;
    }

    /// Wakes requests waiting for a reservation on every worker.
    fn announce_quota(&self) {
        for (commands, wake) in &self.workers {
            if commands.send(Command::QuotaReady).is_ok() {
                let _ = std::io::Write::write_all(&mut &*wake, &[1]);
            }
        }
    }

    /// The admin extension stored for a counter's period.
    fn extra(&self, q: &QuotaCounter, start: i64) -> anyhow::Result<i64> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        Ok(store
            .quota(&q.key_id, &q.plan_id)?
            .filter(|r| r.period_start == start)
            .map_or(0, |r| r.extra))
    }

    /// Starts a counter's period `start`: from its durable record after a restart (what was
    /// reserved counts as spent), else empty.
    fn begin_period(&mut self, q: &QuotaCounter, start: i64) -> anyhow::Result<()> {
        let origin = self.origins.get(&*q.plan_id).copied().unwrap_or(start);
        let base = q.spec.allowance(start, origin);
        let record = match &self.store {
            Some(s) => s.quota(&q.key_id, &q.plan_id)?,
            None => None,
        };
        match record.filter(|r| r.period_start == start) {
            // After a restart, a quota changed by a reload, or a clock step: what was
            // reserved for the period counts as spent.
            Some(r) => {
                let allowance = base.saturating_add_signed(r.extra);
                q.restore(start, allowance, r.reserved.min(allowance));
            }
            None => q.begin_period(start, base),
        }
        Ok(())
    }

    /// Usage since start by subject, including counts not flushed yet (for `/metrics`,
    /// without a disk write).
    pub fn usage_totals(&self) -> HashMap<String, UsageCounts> {
        let mut out = self.totals.clone();
        for (subject, meter) in &self.counters.meters {
            let [served, throttled, quota_rejected] = meter.peek();
            let pending = UsageCounts {
                served,
                throttled,
                quota_rejected,
            };
            let entry = out.entry(subject.clone()).or_default();
            *entry = entry.saturating_add(pending);
        }
        out
    }

    /// Forgets a deleted key's counters (its usage is written first), so a key made later
    /// with the same id starts afresh.
    pub fn forget_key(&mut self, key_id: &str) {
        self.flush_usage(now_secs());
        self.counters.quotas.retain(|(key, _), _| key != key_id);
        // Bucket ids: `plan:P/key:K@RATE` and `plan:P/key:K/route:…@RATE`.
        let (alone, within) = (format!("/key:{key_id}@"), format!("/key:{key_id}/"));
        self.counters
            .buckets
            .retain(|id, _| !(id.contains(&alone) || id.contains(&within)));
        let suffix = format!("/key/{key_id}");
        self.counters
            .meters
            .retain(|subject, _| !subject.ends_with(&suffix));
    }

    /// Periodic work: refills, usage, eviction.
    pub fn tick(&mut self) {
        if self.stopped {
            return;
        }
        let now = now_secs();
        let low_water = self.chunk() / 2;
        // Only counters that need the keeper (most ticks: none, and nothing is allocated).
        let due: Vec<Arc<QuotaCounter>> = self
            .counters
            .quotas
            .values()
            .filter(|q| {
                let s = q.snapshot();
                s.period_start != q.spec.period.start(now)
                    || (s.reserved < s.allowance
                        && s.reserved - s.used.min(s.reserved) <= low_water)
            })
            .cloned()
            .collect();
        if !due.is_empty() {
            match self.refill(&due, now) {
                Ok(0) => {}
                Ok(_) => self.announce_quota(),
                Err(e) => warn!(error = %e, "cannot reserve quota"),
            }
        }
        let flush = self
            .plan
            .usage
            .state
            .as_ref()
            .map_or(Duration::from_secs(1), |s| {
                Duration::from_millis(s.usage_flush_ms)
            });
        if self.last_flush.elapsed() >= flush {
            self.flush_usage(now);
        }
        if self.last_evict.elapsed() >= EVICT_EVERY {
            self.last_evict = Instant::now();
            self.counters.clients.evict_idle(now_ns());
        }
    }

    /// Writes usage counted since the last flush, attributed to today's UTC date.
    pub fn flush_usage(&mut self, now: i64) {
        self.last_flush = Instant::now();
        let day = day_number(now);
        let mut batch = Vec::new();
        for (subject, meter) in &self.counters.meters {
            let [served, throttled, quota_rejected] = meter.take();
            if served + throttled + quota_rejected == 0 {
                continue;
            }
            let counts = UsageCounts {
                served,
                throttled,
                quota_rejected,
            };
            let total = self.totals.entry(subject.clone()).or_default();
            total.served += served;
            total.throttled += throttled;
            total.quota_rejected += quota_rejected;
            batch.push(UsageDelta {
                subject: subject.clone(),
                day,
                counts,
            });
        }
        if let (Some(store), false) = (&self.store, batch.is_empty()) {
            if let Err(e) = store.add_usage(&batch) {
                warn!(error = %e, lines = batch.len(), "cannot write usage; kept for the next flush");
                // The counts go back, so the next flush writes them.
                for d in &batch {
                    let c = d.counts;
                    if let Some(meter) = self.counters.meters.get(&d.subject) {
                        meter.give_back(c.served, c.throttled, c.quota_rejected);
                    }
                    if let Some(total) = self.totals.get_mut(&d.subject) {
                        total.served -= c.served;
                        total.throttled -= c.throttled;
                        total.quota_rejected -= c.quota_rejected;
                    }
                }
            }
        }
    }

    /// A clean stop: writes usage, and gives back reserved but unspent quota.
    pub fn shutdown(&mut self) {
        self.flush_usage(now_secs());
        self.stopped = true;
        let Some(store) = &self.store else { return };
        let mut records = Vec::new();
        for q in self.counters.quotas.values() {
            let snap = q.snapshot();
            if snap.period_start == i64::MIN {
                continue;
            }
            let extra = match store.quota(&q.key_id, &q.plan_id) {
                Ok(Some(r)) if r.period_start == snap.period_start => r.extra,
                _ => 0,
            };
            records.push((
                q.key_id.to_string(),
                q.plan_id.to_string(),
                QuotaRecord {
                    period_start: snap.period_start,
                    reserved: snap.used,
                    extra,
                },
            ));
        }
        match store.set_quotas(&records) {
            Ok(()) => info!(counters = records.len(), "quota reservations written back"),
            Err(e) => warn!(error = %e, "cannot write quota reservations back"),
        }
    }
}

/// Runs the keeper's thread: refill requests as they come, periodic work every tick.
pub fn spawn(keeper: SharedKeeper, requests: Receiver<Arc<QuotaCounter>>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("tollgate-keeper".to_string())
        .spawn(move || {
            let mut last_tick = Instant::now();
            loop {
                let first = match requests.recv_timeout(TICK) {
                    Ok(q) => Some(q),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                };
                let mut k = lock(&keeper);
                if let Some(first) = first {
                    let mut asked = vec![first];
                    asked.extend(requests.try_iter());
                    if let Err(e) = k.refill(&asked, now_secs()) {
                        warn!(error = %e, "cannot reserve quota");
                    }
                    // Someone asked: whatever came of it, let waiting requests look again.
                    k.announce_quota();
                }
                if last_tick.elapsed() >= TICK {
                    last_tick = Instant::now();
                    k.tick();
                }
            }
        })
        .context("cannot start the keeper thread")?;
    Ok(())
}

/// Milliseconds since the epoch on the system clock (creation times).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
