//! End-to-end test support for tollgate: a harness that runs the real binary
//! ([`gateway::Gateway`]), an in-process mock upstream ([`upstream::Upstream`]), a raw HTTP/1.1
//! client ([`client::Client`]), configuration builders ([`config`]), TLS certificates and
//! a TLS client ([`tls`]), and a TLS mock upstream ([`tls_upstream`]).
//!
//! The tests themselves live in `tests/*.rs`; each runs against both io drivers
//! ([`gateway::DRIVERS`]). Build the binary of the profile the tests run in first:
//! `cargo build -p tollgate` for `cargo test`, `cargo build --release -p tollgate` for
//! `cargo test --release` (or point `TOLLGATE_BIN` at one; see [`gateway::binary`]).

pub mod access_log;
pub mod admin;
pub mod client;
pub mod config;
pub mod gateway;
pub mod netns;
pub mod tls;
pub mod tls_upstream;
pub mod upstream;
pub mod usage;
pub mod websocket;

pub use client::{get, get_host, get_request, request, Client, Closed, Response};
pub use gateway::{is, Driver, Gateway, Options, DRIVERS};
pub use upstream::{Behaviour, Gate, Received, Reply, Upstream};
