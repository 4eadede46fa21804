//! The `function` integration: a route answered by a function, as Amazon API Gateway answers
//! with a Lambda proxy integration. This first slice builds the events a function receives.
//!
//! ## Key components
//! - [`event`]: [`EventInput`] (a plain description of the routed request) and the three
//!   event shapes API Gateway sends to a Lambda proxy integration, as JSON bytes:
//!   [`payload_v2`] (HTTP API, `payloadFormatVersion` 2.0), [`payload_v1`] (HTTP API, 1.0)
//!   and [`rest_proxy`] (REST API `AWS_PROXY`). They follow the AWS pages "Create AWS Lambda
//!   proxy integrations for HTTP APIs" and "Set up Lambda proxy integrations in API Gateway"
//!   (REST), and are tested field by field against recorded API Gateway events
//!   (`backends/tests/function_events.rs`).
//!
//! Invoking the function and mapping its response come next.

pub mod event;

pub use event::{payload_v1, payload_v2, rest_proxy, EventInput};
