//! The worker's table of open downstream connections: counts them against
//! `connections_per_worker_max`, and lets a drain close the idle ones at once.
//!
//! A drain shuts down the read side of idle connections (`shutdown(SHUT_RD)`): their pending
//! readiness wait then completes with end-of-stream and the connection task exits through its
//! normal path, so no waker bookkeeping is needed per connection.

use std::os::fd::RawFd;

/// One connection's entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    fd: RawFd,
    idle: bool,
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
        let entry = Some(Entry { fd, idle: false });
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

    /// Marks a connection as waiting for its next request (or busy again).
    pub fn set_idle(&mut self, slot: usize, idle: bool) {
        if let Some(Some(entry)) = self.slots.get_mut(slot) {
            entry.idle = idle;
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.open
    }

    /// Connections waiting for a request, by file descriptor.
    pub fn idle_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.slots.iter().flatten().filter(|e| e.idle).map(|e| e.fd)
    }
}

/// Shuts down the read side of a socket the registry holds.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: `fd` belongs to a connection still registered, so it is open and owned by a
    // live task; shutdown(2) does not close or invalidate it, it only ends its input.
    #[allow(unsafe_code)]
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
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
        r.set_idle(b, true);
        assert_eq!(r.idle_fds().collect::<Vec<_>>(), vec![11]);
        r.remove(a);
        r.remove(a);
        assert_eq!(r.len(), 1);
        assert_eq!(r.insert(12), a);
        assert_eq!(r.len(), 2);
    }
}
