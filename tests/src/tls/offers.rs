//! A client session store that counts the sessions it hands to the client to offer
//! ([`OfferCounter`]): a test that expects the gateway to decline a session (a full handshake
//! instead of a resumption) can then show that one was offered at all — a full handshake
//! proves nothing when the client had no session to offer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

/// rustls' in-memory session store, counting the sessions it hands out (for
/// [`super::TlsOptions::resume_with_store`]). rustls asks the store only when it means to
/// offer what it gets (a TLS 1.3 ticket first, else a TLS 1.2 session), and offers it when
/// the client configuration is the one that made it — always so with one resuming
/// [`super::TlsOptions`].
#[derive(Debug)]
pub struct OfferCounter {
    store: ClientSessionMemoryCache,
    offered: AtomicUsize,
}

impl OfferCounter {
    /// An empty store.
    pub fn new() -> Arc<OfferCounter> {
        Arc::new(OfferCounter {
            store: ClientSessionMemoryCache::new(64),
            offered: AtomicUsize::new(0),
        })
    }

    /// Sessions handed out so far.
    pub fn offered(&self) -> usize {
        self.offered.load(Ordering::Relaxed)
    }

    fn count<T>(&self, found: Option<T>) -> Option<T> {
        if found.is_some() {
            self.offered.fetch_add(1, Ordering::Relaxed);
        }
        found
    }
}

impl ClientSessionStore for OfferCounter {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.store.set_kx_hint(name, group);
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.store.kx_hint(name)
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.store.set_tls12_session(name, value);
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.count(self.store.tls12_session(name))
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.store.remove_tls12_session(name);
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.store.insert_tls13_ticket(name, value);
    }

    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.count(self.store.take_tls13_ticket(name))
    }
}
