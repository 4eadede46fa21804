//! API keys, usage plans, throttling and quotas.
//!
//! - [`gcra`]: the lock-free token bucket every throttle level uses (exact across workers).
//! - [`clients`]: per-client-address buckets in one lock-free map.
//! - [`quota`]: a key's quota counter, spent by workers from durable reservations.
//! - [`runtime`]: what workers enforce for one plan generation; [`assemble`] builds it.
//! - [`phase`]: the per-request limit phase (key, throttles, quota).
//! - [`keeper`]: the thread that owns the state directory, reserves quota, writes usage.
//! - [`admin`]: the admin API over keys, plans, quotas and usage.
//!
//! Counters sit behind the runtime's types (buckets, quota counters, meters), so a shared
//! store (Redis) can later feed the same phase without touching it.

pub mod admin;
pub mod assemble;
pub mod clients;
pub mod gcra;
pub mod keeper;
pub mod phase;
pub mod quota;
pub mod ready;
pub mod runtime;
