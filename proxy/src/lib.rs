//! # tollgate
//!
//! A thread-per-core API gateway on io_uring (monoio): one worker per core, each with its
//! own SO_REUSEPORT listeners, connections, upstream pools, buffers and counters.
//!
//! ## Key components
//! - [`control`]: the control thread — load, bind, start workers, SIGHUP reload, SIGTERM drain.
//! - [`worker`]: a worker's state and its plan swap (an `Rc` cloned per request).
//! - [`conn`]: one downstream HTTP/1.1 connection and the request phases.
//! - [`http1`]: the sans-IO HTTP/1.1 codec (heads as offsets into the read buffer, chunked
//!   decoding, strict request-smuggling defenses).
//! - [`forward`]: the `http` integration (pooled upstream connections, streaming bodies).
//! - [`respond`]: the gateway response catalogue and `mock` responses.
//!
//! ## Request pipeline
//! accept → parse head → route match (listener, host, stage, route) → integration (http or
//! mock) → respond → counters. Later phases (CORS, authorizers, usage plans, validation,
//! cache) slot in between route match and integration in `conn::Conn::dispatch`.
//!
//! ## Performance considerations
//! No lock, no atomic and no allocation per request on the hot path: buffers come from a
//! per-worker pool and go back when a connection is idle; heads are parsed into spans; routes
//! are a segment trie; counters are plain cells.

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
