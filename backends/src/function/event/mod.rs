//! The events API Gateway sends to a Lambda proxy integration, built from an [`EventInput`].
//!
//! Three shapes (sources, AWS API Gateway developer guide):
//! - [`payload_v2`]: HTTP API, payload format 2.0 ("Create AWS Lambda proxy integrations for
//!   HTTP APIs in API Gateway", section "Payload format version").
//! - [`payload_v1`]: HTTP API, payload format 1.0 (same page): the REST shape plus
//!   `"version": "1.0"`, with no `identity.apiKey`/`apiKeyId`.
//! - [`rest_proxy`]: REST API `AWS_PROXY` ("Set up Lambda proxy integrations in API Gateway",
//!   "Input format of a Lambda function for proxy integration"): no `version` key.
//!
//! Rules shared by the shapes, and where they come from:
//! - 2.0 lower-cases header names and joins duplicate headers and duplicate query parameters
//!   with `,`; it has no `multiValue*` fields; the `Cookie` headers become `cookies` (HTTP-API
//!   page, "Payload format differences"). Empty maps, `cookies` and an empty body are omitted
//!   (aws-lambda-go `events/apigw.go` marks them `omitempty`; the recorded 2.0 event of a GET
//!   has no `body` key).
//! - 1.0 and REST keep the header names as the client sent them; `headers` and
//!   `queryStringParameters` hold the last value, `multiValueHeaders` and
//!   `multiValueQueryStringParameters` all of them; absent maps and an absent body are
//!   `null`, not omitted (REST page, "Input format"; the 1.0 example on the HTTP-API page).
//! - Query values are percent-decoded (`%XX`; a `+` is left as is); `rawQueryString` is not.
//! - `requestTime`/`time` is `dd/MMM/yyyy:HH:mm:ss +0000` (UTC) and `…Epoch` milliseconds;
//!   `domainPrefix` is the first label of the domain name (`$context.domainPrefix`, "Variables
//!   for access logging for HTTP APIs").
//! - Bodies: see [`is_text`] (HTTP APIs) and [`EventInput::binary_media_types`] (REST).
//!
//! Files: `v2.rs` (2.0), `v1.rs` (1.0 and REST), `parts.rs` (what they share).

mod parts;
mod v1;
mod v2;

use serde_json::Value;

use crate::client_cert::ClientCertificate;
pub use parts::{is_text, request_time};

/// The request an event describes. Plain data: the integration fills it from the routed
/// request, tests fill it by hand.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventInput<'a> {
    /// Request method (`GET`).
    pub method: &'a str,
    /// The path as the client sent it, percent-encoding kept: 2.0 `rawPath` and
    /// `requestContext.http.path`. It includes a named stage (`/prod/pets`) but not a
    /// custom-domain mapping prefix.
    pub raw_path: &'a str,
    /// 1.0/REST `path`: the path under the API (without the stage).
    pub path: &'a str,
    /// 1.0/REST `requestContext.path`: the path including the stage or the custom-domain
    /// base path.
    pub context_path: &'a str,
    /// The query string without `?`, as sent.
    pub raw_query: &'a str,
    /// Header lines in order: name and value bytes as sent (case and duplicates kept).
    pub headers: &'a [(&'a [u8], &'a [u8])],
    /// Path parameters (`{id}`, `{proxy+}`), decoded.
    pub path_parameters: &'a [(&'a str, &'a str)],
    /// The stage's variables.
    pub stage_variables: &'a [(&'a str, &'a str)],
    /// The request body.
    pub body: &'a [u8],
    /// The `Content-Type` value, when the request has one.
    pub content_type: Option<&'a str>,
    /// REST: media types sent base64-encoded (the API's `binaryMediaTypes`; `*/*` and
    /// `type/*` wildcards). HTTP APIs ignore it (see [`is_text`]).
    pub binary_media_types: &'a [&'a str],
    /// Route key (`GET /pets/{id}`, `$default`).
    pub route_key: &'a str,
    /// Resource or route template (`/pets/{id}`, `/{proxy+}`): 1.0/REST `resource` and
    /// `requestContext.resourcePath`.
    pub resource: &'a str,
    /// REST `requestContext.resourceId` (None: `null`).
    pub resource_id: Option<&'a str>,
    /// Stage name (`$default`, `prod`).
    pub stage: &'a str,
    /// API id.
    pub api_id: &'a str,
    /// Account id.
    pub account_id: &'a str,
    /// The host name the request was sent to.
    pub domain_name: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// 1.0/REST `requestContext.extendedRequestId` (None: omitted).
    pub extended_request_id: Option<&'a str>,
    /// When the request arrived, milliseconds since the Unix epoch.
    pub time_epoch_ms: i64,
    /// The client's address, resolved (PROXY protocol, trusted forwarding headers).
    pub source_ip: &'a str,
    /// `HTTP/1.1`.
    pub protocol: &'a str,
    /// The `User-Agent` value.
    pub user_agent: &'a str,
    /// REST `identity.apiKey`: the API key the request used.
    pub api_key: Option<&'a str>,
    /// REST `identity.apiKeyId`.
    pub api_key_id: Option<&'a str>,
    /// The verified client certificate (mutual TLS).
    pub client_cert: Option<&'a ClientCertificate>,
}

/// The HTTP API payload format 2.0 event, JSON.
pub fn payload_v2(input: &EventInput<'_>) -> Vec<u8> {
    to_bytes(&v2::event(input))
}

/// The HTTP API payload format 1.0 event, JSON.
pub fn payload_v1(input: &EventInput<'_>) -> Vec<u8> {
    to_bytes(&v1::event(input, v1::Shape::HttpV1))
}

/// The REST API proxy (`AWS_PROXY`) event, JSON.
pub fn rest_proxy(input: &EventInput<'_>) -> Vec<u8> {
    to_bytes(&v1::event(input, v1::Shape::Rest))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serializing a `Value` to memory cannot fail (its keys are strings).
    serde_json::to_vec(v).unwrap_or_default()
}
