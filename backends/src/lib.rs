//! # tollgate-backends
//!
//! Everything behind the route decision that does not depend on the downstream protocol.
//!
//! ## Key components
//! - [`conn_pool`]: per-worker keep-alive pools of upstream connections, keyed by the upstream's
//!   stable authority so they carry over across reloads (idle cap, idle timeout, lifetime).
//! - [`resolve`]: upstream name resolution. It blocks, so only the control thread calls it;
//!   workers connect to the socket addresses it leaves in the plan.
//! - [`mock`]: the `mock` integration's fixed response.
//!
//! ## Architecture
//! Pools are `Rc` + `RefCell` per worker (thread-per-core: no locks, no atomics). A worker
//! builds a fresh pool index for each plan it applies and reuses the pools whose authority
//! and addresses did not change.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod conn_pool;
pub mod mock;
pub mod resolve;
pub mod wire;
