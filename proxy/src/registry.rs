//! The worker's table of open downstream connections: counts them against
//! `connections_per_worker_max`, and lets a drain close the idle ones at once.
//!
//! It also enforces idle deadlines without a timer per connection: a monoio timer entry is
//! cache-padded and costs hundreds of bytes in every idle connection's future, so instead an
//! idle connection records its deadline here and a per-worker sweep closes the expired ones.
//!
//! Both a drain and the sweep shut down the read side of a connection (`shutdown(SHUT_RD)`):
//! its pending readiness wait then completes with end-of-stream and the connection task exits
//! through its normal path, so no waker bookkeeping is needed per connection.

use std::os::fd::RawFd;
use std::time::Instant;

use crate::sys::{shutdown_both, shutdown_read};

/// One connection's entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    /// Waiting for a request until this deadline.
    idle_until: Option<Instant>,
    /// Waiting briefly for a next request in the busy state (its own timer ends the wait;
    /// the sweep leaves it alone, only a drain closes it).
    lingering: bool,
    /// The sweep closed it for passing its deadline.
    expired: bool,
    /// Upgraded to a tunnel to this upstream socket (closed last by a drain).
    tunnel: Option<RawFd>,
}

/// A slab of open connections (slots are reused; no allocation once warm).
#[derive(Debug, Default)]
pub struct Registry {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    open: usize,
}

impl Registry {
    /// Registers a connection; returns its slot.
    pub fn insert(&mut self, fd: RawFd) -> usize {
        self.open += 1;
        let entry = Some(Entry {
            fd,
            idle_until: None,
            lingering: false,
            expired: false,
            tunnel: None,
        });
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        }
    }

    /// Forgets a closed connection.
    pub fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot) {
            if entry.take().is_some() {
                self.open -= 1;
                self.free.push(slot);
            }
        }
    }

    /// Marks a connection as waiting for a request until `deadline` (None: busy again).
    pub fn set_idle(&mut self, slot: usize, deadline: Option<Instant>) {
        if let Some(Some(entry)) = self.slots.get_mut(slot) {
            entry.idle_until = deadline;
        }
    }

    /// Marks a connection as lingering in its busy state (or not).
    pub fn set_lingering(&mut self, slot: usize, lingering: bool) {
        if let Some(Some(entry)) = self.slots.get_mut(slot) {
            entry.lingering = lingering;
        }
    }

    /// Marks a connection as a tunnel to `upstream` (None: the tunnel ended).
    pub fn set_tunnel(&mut self, slot: usize, upstream: Option<RawFd>) {
        if let Some(Some(entry)) = self.slots.get_mut(slot) {
            entry.tunnel = upstream;
        }
    }

    /// Connections waiting for a request.
    pub fn idle_count(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.idle_until.is_some())
            .count()
    }

    /// Open tunnels.
    pub fn tunnels(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.tunnel.is_some())
            .count()
    }

    /// Closes every tunnel, both its client and its upstream socket; returns how many.
    pub fn close_tunnels(&mut self) -> usize {
        let mut closed = 0;
        for entry in self.slots.iter_mut().flatten() {
            if let Some(upstream) = entry.tunnel {
                shutdown_both(entry.fd);
                shutdown_both(upstream);
                closed += 1;
            }
        }
        closed
    }

    /// True when the sweep closed this connection for idling past its deadline.
    pub fn expired(&self, slot: usize) -> bool {
        matches!(self.slots.get(slot), Some(Some(e)) if e.expired)
    }

    /// Closes the input of idle connections whose deadline has passed; returns how many.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut closed = 0;
        for entry in self.slots.iter_mut().flatten() {
            if entry.idle_until.is_some_and(|d| d <= now) && !entry.expired {
                entry.expired = true;
                shutdown_read(entry.fd);
                closed += 1;
            }
        }
        closed
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.open
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.open == 0
    }

    /// Connections waiting for a request, by file descriptor.
    pub fn idle_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.slots
            .iter()
            .flatten()
            .filter(|e| e.idle_until.is_some() || e.lingering)
            .map(|e| e.fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_counted() {
        let mut r = Registry::default();
        let a = r.insert(10);
        let b = r.insert(11);
        assert_eq!(r.len(), 2);
        let now = Instant::now();
        r.set_idle(b, Some(now + std::time::Duration::from_secs(5)));
        assert_eq!(r.idle_fds().collect::<Vec<_>>(), vec![11]);
        r.remove(a);
        r.remove(a);
        assert_eq!(r.len(), 1);
        assert_eq!(r.insert(12), a);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn sweep_expires_only_idle_connections_past_their_deadline() {
        // Sockets that exist, so shutdown(2) acts on real descriptors.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let b = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        use std::os::fd::AsRawFd;
        let mut r = Registry::default();
        let sa = r.insert(a.as_raw_fd());
        let sb = r.insert(b.as_raw_fd());
        let now = Instant::now();
        r.set_idle(sa, Some(now));
        r.set_idle(sb, Some(now + std::time::Duration::from_secs(60)));
        assert_eq!(r.sweep(now), 1);
        assert!(r.expired(sa) && !r.expired(sb));
        assert_eq!(r.sweep(now), 0, "an expired connection is closed once");
        let mut byte = [0u8; 1];
        use std::io::Read;
        assert_eq!((&a).read(&mut byte).unwrap(), 0, "input shut down");
    }
}
