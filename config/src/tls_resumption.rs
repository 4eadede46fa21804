//! Session resumption state for TLS termination: the ticket keys and session-id cache every
//! server configuration shares (or, under a client-certificate policy, its own), and the age
//! limit rustls leaves to us ([`AgedTickets`], [`AgedCache`]).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};

use crate::tls::SESSION_CACHE_ENTRIES;

/// How long a session may be resumed after the full handshake that made it (tickets and cache
/// entries alike); the ticket lifetime hint sent to clients too.
pub const SESSION_LIFETIME_SECS: u32 = 6 * 3600;

/// The process's session resumption state, shared by every `ServerConfig` built here:
/// tickets, and a session-id cache for TLS 1.2 clients that take no tickets. Made once, at the
/// first load that has a TLS listener; later loads get the same two, so sessions outlive
/// reloads (and, since all workers share a plan's configs, resume on any worker).
///
/// - Tickets (TLS 1.3 always, TLS 1.2 when the client offers the extension): rustls'
///   *aws-lc-rs* `Ticketer` (RFC 5077's construction: AES-256-CBC and HMAC-SHA256) under a
///   random key, still decrypting with the previous one. rustls replaces the key only when it seals or opens a ticket after the 6-hour
///   interval has passed, one step at a time, and does not check a ticket's age (on a quiet
///   server an old key could live for days), so every ticket carries its issue time inside
///   the sealed part and is refused once older than [`SESSION_LIFETIME_SECS`]
///   ([`AgedTickets`]). The keys live in this process only: a restart forgets them.
/// - The cache ([`SESSION_CACHE_ENTRIES`] sessions, behind one mutex): a TLS 1.2 full
///   handshake stores its session under a session id (rustls gives one to ticket-taking
///   clients too), and a TLS 1.2 ClientHello that presents no ticket is looked up by its
///   session id; a presented ticket is never looked up there. TLS 1.3 never touches it
///   (with the ticketer enabled its tickets are stateless). rustls checks no age here either:
///   entries carry their store time and are refused past [`SESSION_LIFETIME_SECS`]
///   ([`AgedCache`]); they leave when the cache needs their room.
///
/// Why sharing across certificates and listeners is safe. rustls stores in every session
/// (ticket or cache entry) the SNI name of the handshake that made it and its cipher suite,
/// and resumes only when the new ClientHello asks for the same name (lowercased; no SNI
/// matches only no SNI, RFC 6066 §3) with the same suite (hence the same TLS version);
/// anything else gets a full handshake with a certificate. And the configuration — so whether
/// the handshake happens at all — is chosen by that name before rustls looks at a ticket
/// ([`TlsListenerPlan::select`]): a listener that refuses a name refuses its resumptions too.
/// Within a listener and a plan a name has one certificate, so a session resumes only for the
/// name its client verified a certificate for. What can still cross: after a reload that
/// replaced a name's certificate, sessions made under the old one resume (for as long as the
/// ticket key or cache entry lives: see above); and a session may resume on another listener
/// serving the same name with another certificate, or (no SNI, or a name it does not serve)
/// with its default certificate. Neither matters: it is the same process holding both keys,
/// and the name was verified when the session was made; a client ignoring the name check
/// reaches the same routes without resuming. Two things must stay true for this: no early
/// data (`max_early_data_size` stays 0: no 0-RTT replays), and no client authentication —
/// rustls warns that configs sharing tickets or a cache must verify clients alike (rustls does
/// not check, on resumption, that the session's client was authenticated the way the new
/// configuration asks). So configurations with a client-certificate policy get a ticketer and
/// cache of their own per policy and trust material (`scope`: the policy's id and
/// fingerprint), kept for the life of the process like the shared ones: a session made
/// without a client certificate, or verified against another CA bundle or CRL, never resumes
/// under a policy; one made under a policy resumes on any worker and across reloads that
/// leave the policy's trust unchanged.
pub(crate) fn resumption(scope: Option<(&str, u64)>) -> Result<Resumption, rustls::Error> {
    static TICKETER: OnceLock<Arc<dyn ProducesTickets>> = OnceLock::new();
    static CACHE: OnceLock<Arc<dyn StoresServerSessions>> = OnceLock::new();
    static SCOPED: Mutex<Vec<(String, u64, Resumption)>> = Mutex::new(Vec::new());
    if let Some((id, fingerprint)) = scope {
        let mut scoped = SCOPED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, r)) = scoped.iter().find(|(i, f, _)| i == id && *f == fingerprint) {
            return Ok(r.clone());
        }
        let made = Resumption {
            ticketer: AgedTickets::wrap(rustls::crypto::aws_lc_rs::Ticketer::new()?),
            cache: AgedCache::wrap(ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES)),
        };
        scoped.push((id.to_string(), fingerprint, made.clone()));
        return Ok(made);
    }
    let ticketer = match TICKETER.get() {
        Some(ticketer) => ticketer.clone(),
        // Made outside `get_or_init` so a failure (no randomness) is reported, not cached; if
        // two loads race, one ticketer is kept and both get it.
        None => {
            let made = AgedTickets::wrap(rustls::crypto::aws_lc_rs::Ticketer::new()?);
            TICKETER.get_or_init(|| made).clone()
        }
    };
    let cache = CACHE
        .get_or_init(|| AgedCache::wrap(ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES)))
        .clone();
    Ok(Resumption { ticketer, cache })
}

/// What `ServerConfig`s share for session resumption ([`resumption`]).
#[derive(Clone)]
pub(crate) struct Resumption {
    pub ticketer: Arc<dyn ProducesTickets>,
    pub cache: Arc<dyn StoresServerSessions>,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `issued` (seconds) is within the session lifetime of `now`; a time in the future beyond a
/// minute of clock step is refused too.
fn fresh(issued: u64, now: u64) -> bool {
    issued <= now + 60 && now.saturating_sub(issued) <= u64::from(SESSION_LIFETIME_SECS)
}

/// Prefixes `plain` with the time, big-endian seconds.
fn stamped(plain: &[u8], now: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + plain.len());
    out.extend_from_slice(&now.to_be_bytes());
    out.extend_from_slice(plain);
    out
}

/// The value behind a fresh stamp, or None.
fn unstamped(value: &[u8], now: u64) -> Option<Vec<u8>> {
    let (stamp, rest) = value.split_at_checked(8)?;
    let issued = u64::from_be_bytes(stamp.try_into().ok()?);
    fresh(issued, now).then(|| rest.to_vec())
}

/// Tickets that seal their issue time with the session and open only within
/// [`SESSION_LIFETIME_SECS`] of it.
#[derive(Debug)]
pub(crate) struct AgedTickets {
    inner: Arc<dyn ProducesTickets>,
}

impl AgedTickets {
    /// `inner`'s tickets, aged.
    pub(crate) fn wrap(inner: Arc<dyn ProducesTickets>) -> Arc<dyn ProducesTickets> {
        Arc::new(AgedTickets { inner })
    }
}

impl ProducesTickets for AgedTickets {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        SESSION_LIFETIME_SECS.min(self.inner.lifetime())
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&stamped(plain, now_secs()))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        unstamped(&self.inner.decrypt(cipher)?, now_secs())
    }
}

/// A session-id cache whose entries carry their store time and are found only within
/// [`SESSION_LIFETIME_SECS`] of it.
#[derive(Debug)]
pub(crate) struct AgedCache {
    inner: Arc<dyn StoresServerSessions>,
}

impl AgedCache {
    /// `inner`'s entries, aged.
    pub(crate) fn wrap(inner: Arc<dyn StoresServerSessions>) -> Arc<dyn StoresServerSessions> {
        Arc::new(AgedCache { inner })
    }
}

impl StoresServerSessions for AgedCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, stamped(&value, now_secs()))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamped(&self.inner.get(key)?, now_secs())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        unstamped(&self.inner.take(key)?, now_secs())
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_open_only_within_the_lifetime() {
        let now = 1_800_000_000;
        let value = stamped(b"session", now);
        assert_eq!(unstamped(&value, now).as_deref(), Some(&b"session"[..]));
        let lifetime = u64::from(SESSION_LIFETIME_SECS);
        assert!(unstamped(&value, now + lifetime).is_some());
        assert!(unstamped(&value, now + lifetime + 1).is_none());
        // Issued in the future (a clock stepped back): a minute of slack, no more.
        assert!(unstamped(&value, now - 60).is_some());
        assert!(unstamped(&value, now - 61).is_none());
        assert!(unstamped(b"short", now).is_none());
    }

    #[test]
    fn aged_tickets_round_trip_and_refuse_foreign_bytes() {
        let tickets = AgedTickets::wrap(rustls::crypto::aws_lc_rs::Ticketer::new().unwrap());
        let sealed = tickets.encrypt(b"state").unwrap();
        assert_eq!(tickets.decrypt(&sealed).as_deref(), Some(&b"state"[..]));
        assert!(tickets.decrypt(b"not a ticket").is_none());
        assert!(tickets.lifetime() <= SESSION_LIFETIME_SECS);
    }

    #[test]
    fn aged_cache_round_trips() {
        let cache = AgedCache::wrap(ServerSessionMemoryCache::new(4));
        assert!(cache.put(b"id".to_vec(), b"state".to_vec()));
        assert_eq!(cache.get(b"id").as_deref(), Some(&b"state"[..]));
        assert_eq!(cache.take(b"id").as_deref(), Some(&b"state"[..]));
        assert!(cache.get(b"id").is_none());
    }
}
