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
//! - [`result`]: [`map_result`]: a function's result to the response API Gateway sends, or the
//!   [`ResultError`] (500/502) it answers instead (`backends/tests/function_results.rs`).
//! - [`sigv4`]: AWS Signature Version 4 signing ([`sigv4::sign`]) for the remote Lambda invoke
//!   (`POST /2015-03-31/functions/{name}/invocations`), tested against the AWS signing test
//!   suite (`backends/tests/function_sigv4.rs`).
//!
//! Invoking a function (local workers over the Lambda Runtime API, remote invoke) and the
//! `function` kind in dispatch come next.

pub mod event;
pub mod result;
pub mod sigv4;

pub use event::{payload_v1, payload_v2, rest_proxy, EventInput};
pub use result::{map_result, FunctionResponse, Outcome, ResultError, ResultFormat};
