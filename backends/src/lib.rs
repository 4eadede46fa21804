//! # tollgate-backends
//!
//! Everything behind the route decision: the integrations, the one interface they share, and
//! the HTTP/1 wire that both the gateway's server side and the integrations' client side use.
//!
//! ## Key components
//! - [`exchange`]: the interface — a backend gets a [`Request`] (the protocol-neutral view
//!   of the routed request) and a [`Downstream`] (the client it answers on), and returns
//!   [`Finished`]. Phases shape its response through [`ResponseFilters`].
//! - [`dispatch`]: the closed `match` from a route's integration to its backend.
//! - Integrations, one file or folder per kind: [`http`] (an HTTP endpoint over pooled
//!   keep-alive connections, streamed bodies, WebSocket upgrades) and [`mock`] (a fixed
//!   response). `function`, `pool`, `aws` and `queue` go beside them.
//! - [`function`]: function integrations; so far the Lambda proxy events (HTTP API 2.0/1.0, REST).
//! - [`per_worker`]: the integrations' per-worker state for a plan generation, carried over
//!   across reloads by stable key; [`conn_pool`]: keep-alive pools of upstream connections.
//! - [`wire`]: the HTTP/1.1 codec, buffer pool, deadline-bound I/O and body framing.
//! - [`client_cert`]: what a client connection's TLS handshake established (version, cipher,
//!   the verified client certificate), as requests see it.
//! - [`resolve`]: upstream name resolution. It blocks, so only the control thread calls it;
//!   workers connect to the socket addresses it leaves in the plan.
//!
//! ## Architecture
//! Per-worker state is `Rc` + `Cell`/`RefCell` (thread-per-core: no locks, no atomics). The
//! backends are generic over the downstream's stream type and instantiated by the gateway, so
//! nothing is boxed per request and a TLS stream can stand where the TCP stream stands.

#![warn(missing_docs)]

pub mod client_cert;
pub mod conn_pool;
pub mod dispatch;
pub mod exchange;
pub mod function;
pub mod http;
pub mod mock;
pub mod per_worker;
pub mod resolve;
pub mod sys;
pub mod wire;

pub use dispatch::integrate;
pub use exchange::{After, Downstream, Finished, Request, ResponseFilters};
pub use per_worker::Backends;
