//! # tollgate
//!
//! A thread-per-core API gateway on io_uring (monoio): one worker per core, each with its
//! own SO_REUSEPORT listeners, connections, upstream pools, buffers and counters.
//!
//! ## Key components
//! - [`control`]: the control thread — load, bind, start workers, SIGHUP reload, SIGTERM drain.
//! - [`worker`]: a worker's state and its plan swap (an `Rc` cloned per request); its thread
//!   loops in [`worker::thread`], the control protocol in [`worker::messages`].
//! - [`conn`]: one downstream connection — idle wait without a buffer, head parsing, the
//!   keep-alive loop, PROXY header, tunnels.
//! - [`pipeline`]: the request path, phase by phase, in one file; each phase its own module.
//! - [`limits`], [`prefilter`], [`access_log`], [`state`]: what the phases use (usage-plan
//!   counters and the keeper, the pre-filter's userspace side, the log writer, the durable
//!   store).
//! - Integrations, the HTTP/1 codec and the buffer pool are in `tollgate_backends`.
//!
//! ## Request pipeline
//! accept → pre-filter → parse head → request facts → pre-filter (resolved client) → route →
//! (CORS preflight, authorize: to come) → request size → limits → (validate, cache: to come) →
//! integrate → respond → log and usage. See [`pipeline`] and docs/architecture.md.
//!
//! ## Performance considerations
//! No allocation per request on the hot path: buffers come from a per-worker pool and go back
//! when a connection is idle; heads are parsed into spans; routes are a segment trie; counters
//! are plain cells. No lock and no atomic either with limits and the pre-filter off; with them
//! on, the cross-core counters are lock-free (a compare-and-swap per GCRA bucket, papaya map
//! guards, relaxed atomics for quota and usage) — see docs/usage-plans.md.

pub mod access_log;
pub mod admin;
pub mod admin_config;
pub mod client_addr;
pub mod clock;
pub mod conn;
pub mod control;
pub mod counters;
pub mod driver;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod pipeline;
pub mod prefilter;
pub mod registry;
pub mod request_id;
pub mod state;
pub(crate) mod sys;
pub mod tunnel;
pub mod worker;
