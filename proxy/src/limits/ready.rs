//! "Quota was reserved": the event a request waits for when its key's reservation is empty
//! (the first request of a period, or a burst faster than the keeper's durable writes). The
//! keeper sends [`crate::worker::messages::Command::QuotaReady`] to every worker after it raised a
//! reservation someone asked for; each worker bumps its epoch and wakes its waiting requests,
//! which then try to spend again.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// One worker's signal (per-core: no lock, no atomic).
#[derive(Debug, Default)]
pub struct QuotaReady {
    epoch: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl QuotaReady {
    /// The current epoch: take it before trying to spend, so a signal that comes in between
    /// is not missed.
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// The keeper reserved more quota: wakes every waiting request.
    pub fn signal(&self) {
        self.epoch.set(self.epoch.get() + 1);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Completes once the epoch differs from `seen`.
    pub fn after(&self, seen: u64) -> After<'_> {
        After { ready: self, seen }
    }
}

/// The future of [`QuotaReady::after`].
#[derive(Debug)]
pub struct After<'a> {
    ready: &'a QuotaReady,
    seen: u64,
}

impl Future for After<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.ready.epoch.get() != self.seen {
            return Poll::Ready(());
        }
        self.ready.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}
