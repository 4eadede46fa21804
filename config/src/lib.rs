//! # tollgate-config
//!
//! The TOML schema, its validation, and the compiled [`Plan`] that tollgate's workers serve.
//!
//! ## Key components
//! - [`file`]: the file as written (serde, `deny_unknown_fields`, spans kept for messages).
//! - [`compile()`]: defaults, validation and compilation into a [`Plan`]: listeners, limits,
//!   APIs with stages, routes and integrations, and per-listener routing tables.
//! - [`router`]: a segment trie with Amazon API Gateway's precedence (literal > `{param}` >
//!   `{greedy+}`, method > `ANY`) whose matching cost grows with path segments, not routes.
//! - [`responses`]: the catalogue of gateway-made responses and per-API overrides.
//! - [`tls`]: `[[certificates]]` and listeners' TLS termination, compiled into rustls
//!   server configurations chosen by SNI; [`mtls`]: client-certificate policies.
//!
//! ## Error handling
//! Every error is a [`ConfigError`] that names the file, line, column and key, says what was
//! found and what is expected. This crate does no I/O besides reading the one file and the
//! certificate and key files it names ([`tls`]): upstream names are resolved by the caller
//! (the gateway's control thread) into [`plan::UpstreamPlan::addrs`].

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod access_log;
pub mod cidr_set;
mod compile;
mod compile_api;
mod compile_edge;
mod compile_usage;
mod error;
pub mod file;
mod file_usage;
pub mod mtls;
mod parse;
pub mod period;
pub mod plan;
pub mod prefilter;
pub mod responses;
pub mod router;
pub mod template;
pub mod tls;
pub mod tls_client;
mod tls_listener;
mod tls_resumption;
pub mod usage;

use std::path::Path;

pub use compile::{
    compile, DEFAULT_ACCOUNT_ID, DEFAULT_BODY_BYTES_MAX, DEFAULT_HEADER_BYTES_MAX,
    DEFAULT_INTEGRATION_TIMEOUT_MS, DEFAULT_REGION,
};
pub use compile_api::DEFAULT_KEY;
pub use error::{ConfigError, Located};
pub use plan::Plan;

/// Reads and compiles the file at `path`.
pub fn load(path: &Path) -> Result<Plan, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    compile(path, &text)
}
