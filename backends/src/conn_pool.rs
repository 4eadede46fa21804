//! Keep-alive pools of upstream connections, one per upstream authority per worker.
//!
//! Connections are reused last-in first-out (the warmest socket first); a connection idle past
//! `idle_timeout_ms` or older than `lifetime_ms` is closed instead of reused. A pooled
//! connection the upstream closed meanwhile is only discovered on use: the caller retries an
//! idempotent request once on a fresh connection (see the gateway's forwarding code).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tollgate_config::plan::UpstreamSettings;
use tollgate_config::tls_client::UpstreamTls;

use crate::wire::stream::UpstreamStream;

/// An idle connection and its age.
#[derive(Debug)]
pub struct Pooled {
    /// The connection, plain or TLS.
    pub stream: UpstreamStream,
    /// When it was connected.
    pub created: Instant,
    /// Which of the upstream's addresses it goes to.
    pub addr: SocketAddr,
    /// When it went back to the pool (set by [`HostPool::put`]).
    pub idle_since: Instant,
    /// Its last response had no body (HEAD, 204, 304): a broken upstream may still send one,
    /// so it must be checked for stray bytes before reuse.
    pub check_before_reuse: bool,
}

impl Pooled {
    /// A freshly connected connection.
    pub fn new(stream: UpstreamStream, addr: SocketAddr, now: Instant) -> Self {
        Self {
            stream,
            created: now,
            addr,
            idle_since: now,
            check_before_reuse: false,
        }
    }
}

/// One upstream's idle connections on one worker.
#[derive(Debug)]
pub struct HostPool {
    /// Stable key: `host:port`, and the TLS settings of an https upstream
    /// (`UpstreamPlan::pool_key`).
    pub authority: String,
    /// How to speak TLS to it (an https upstream).
    pub tls: Option<UpstreamTls>,
    /// Addresses resolved by the control thread.
    pub addrs: Vec<SocketAddr>,
    idle: RefCell<VecDeque<(Pooled, Instant)>>,
    idle_max: usize,
    idle_timeout: Duration,
    lifetime: Duration,
    next_addr: Cell<usize>,
    /// Connections reused from the pool (counted by the caller once it accepts one).
    pub reused: Cell<u64>,
    /// Connections opened.
    pub connected: Cell<u64>,
    /// Failed connection attempts.
    pub connect_failures: Cell<u64>,
}

impl HostPool {
    /// An empty pool.
    pub fn new(
        authority: &str,
        addrs: Vec<SocketAddr>,
        tls: Option<UpstreamTls>,
        settings: &UpstreamSettings,
    ) -> Self {
        Self {
            authority: authority.to_string(),
            tls,
            addrs,
            idle: RefCell::new(VecDeque::with_capacity(
                settings.idle_per_upstream_max.min(64),
            )),
            idle_max: settings.idle_per_upstream_max,
            idle_timeout: Duration::from_millis(settings.idle_timeout_ms),
            lifetime: Duration::from_millis(settings.lifetime_ms),
            next_addr: Cell::new(0),
            reused: Cell::new(0),
            connected: Cell::new(0),
            connect_failures: Cell::new(0),
        }
    }

    /// True when this pool can serve `addrs` under `settings` (so a reload may keep it).
    pub fn matches(&self, addrs: &[SocketAddr], settings: &UpstreamSettings) -> bool {
        self.addrs == addrs
            && self.idle_max == settings.idle_per_upstream_max
            && self.idle_timeout == Duration::from_millis(settings.idle_timeout_ms)
            && self.lifetime == Duration::from_millis(settings.lifetime_ms)
    }

    /// Takes the most recently used live connection, closing expired ones on the way.
    pub fn take(&self, now: Instant) -> Option<Pooled> {
        let mut idle = self.idle.borrow_mut();
        while let Some((conn, since)) = idle.pop_back() {
            if now.duration_since(since) < self.idle_timeout
                && now.duration_since(conn.created) < self.lifetime
            {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection for reuse; closes it when the pool is full or it is too old.
    pub fn put(&self, mut conn: Pooled, now: Instant) {
        conn.idle_since = now;
        if now.duration_since(conn.created) >= self.lifetime {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        // Oldest idle connections are the likeliest to have been closed by the upstream.
        while let Some((_, since)) = idle.front() {
            if now.duration_since(*since) < self.idle_timeout {
                break;
            }
            idle.pop_front();
        }
        if idle.len() < self.idle_max {
            idle.push_back((conn, now));
        }
    }

    /// Idle connections currently held.
    pub fn idle_len(&self) -> usize {
        self.idle.borrow().len()
    }

    /// Closes every idle connection (drain).
    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }

    /// The address for the next new connection (round robin over resolved addresses).
    pub fn next_addr(&self) -> Option<SocketAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next_addr.get();
        self.next_addr.set(i.wrapping_add(1));
        Some(self.addrs[i % self.addrs.len()])
    }
}
