//! What API Gateway makes of a function's result: the HTTP response it sends, or the error it
//! answers instead.
//!
//! Sources (AWS API Gateway developer guide unless said otherwise):
//! - HTTP APIs: "Create AWS Lambda proxy integrations for HTTP APIs in API Gateway", section
//!   "Lambda function response format" (1.0: `statusCode`, `headers`, `multiValueHeaders`,
//!   `body`, `isBase64Encoded`; 2.0: the same without `multiValueHeaders`, plus `cookies`, and
//!   the inference of a response when the result has no `statusCode`).
//! - REST APIs: "Set up Lambda proxy integrations in API Gateway", section "Output format of a
//!   Lambda function for proxy integration" (the 1.0 fields; "If you specify values for both
//!   `headers` and `multiValueHeaders`, API Gateway merges them into a single list. If the same
//!   key-value pair is specified in both, only the values from `multiValueHeaders` will appear
//!   in the merged list").
//! - Errors: AWS Lambda developer guide, "Handling Lambda errors with an API Gateway API", as
//!   summarised in `/work/shared/reference/aws-api-gateway.md` (§6, "Lambda errors seen
//!   by clients of API Gateway"): a function error or a result in the wrong format is **502**;
//!   HTTP APIs with payload 1.0 answer a wrong-format result with **500**; the body is
//!   `{"message":"Internal server error"}`, written as the REST default gateway-response
//!   template `{"message":$context.error.messageString}` renders it (no space after the colon).
//!   AWS logs a wrong-format result as "Malformed Lambda proxy response" (knowledge-center page
//!   "How do I resolve HTTP 502 'Malformed Lambda proxy response' errors from API Gateway REST
//!   APIs?"); [`ResultError::reason`] says which field is wrong.
//!
//! Files: `result.rs` (types and the entry point), `result/fields.rs` (reading and checking
//! the fields).

mod fields;

use serde_json::{Map, Value};

use fields::{body, cookies, headers, status_code};

/// The body API Gateway sends with every error of this module (see the module sources).
pub const INTERNAL_SERVER_ERROR_BODY: &[u8] = br#"{"message":"Internal server error"}"#;

/// How the result is to be read: the integration's API kind and payload format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// HTTP API, `payloadFormatVersion` 2.0.
    HttpV2,
    /// HTTP API, `payloadFormatVersion` 1.0.
    HttpV1,
    /// REST API, `AWS_PROXY` integration.
    RestProxy,
}

/// What came back from an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The function returned: the bytes of its result (Runtime API `…/response`).
    Returned(&'a [u8]),
    /// The function failed (Runtime API `…/error`, or `Lambda-Runtime-Function-Error-Type`).
    FunctionError {
        /// `errorType` (or the error-type header).
        error_type: &'a str,
        /// `errorMessage`.
        message: &'a str,
    },
}

/// The response to send to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionResponse {
    /// Status code, 100–599.
    pub status: u16,
    /// Header lines in the order to send them; a name may repeat (`multiValueHeaders`,
    /// several `Set-Cookie`). Names and values are valid HTTP field names and values.
    pub headers: Vec<(String, String)>,
    /// The body, base64-decoded when the result said `isBase64Encoded`.
    pub body: Vec<u8>,
}

/// Why a result cannot be sent; the gateway answers [`ResultError::status`] with
/// [`INTERNAL_SERVER_ERROR_BODY`] and logs [`ResultError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The function returned a result API Gateway cannot read ("Malformed Lambda proxy
    /// response").
    #[error("malformed function result: {reason}")]
    WrongFormat {
        /// The format the result was read as (it decides the status).
        format: ResultFormat,
        /// What is wrong with it.
        reason: String,
    },
    /// The function ran and failed.
    #[error("function error {error_type}: {message}")]
    FunctionError {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        message: String,
    },
}

impl ResultError {
    /// The status API Gateway answers: 500 for a wrong-format result of an HTTP API with
    /// payload 1.0, 502 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            ResultError::WrongFormat {
                format: ResultFormat::HttpV1,
                ..
            } => 500,
            ResultError::WrongFormat { .. } | ResultError::FunctionError { .. } => 502,
        }
    }

    /// A line for the log (never sent to the client).
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// The body to send: always [`INTERNAL_SERVER_ERROR_BODY`].
    pub fn body(&self) -> &'static [u8] {
        INTERNAL_SERVER_ERROR_BODY
    }
}

/// Maps what the function gave back to the response API Gateway would send, or the error it
/// would answer instead.
pub fn map_result(
    format: ResultFormat,
    outcome: Outcome<'_>,
) -> Result<FunctionResponse, ResultError> {
    let raw = match outcome {
        Outcome::Returned(raw) => raw,
        Outcome::FunctionError {
            error_type,
            message,
        } => {
            return Err(ResultError::FunctionError {
                error_type: error_type.to_owned(),
                message: message.to_owned(),
            })
        }
    };
    let wrong = |reason: String| ResultError::WrongFormat { format, reason };
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| wrong(format!("the result is not valid JSON: {e}")))?;
    match (format, value) {
        // 2.0 with `statusCode`: the structured response.
        (ResultFormat::HttpV2, Value::Object(obj)) if obj.contains_key("statusCode") => {
            structured(format, &obj).map_err(wrong)
        }
        // 2.0, valid JSON without `statusCode`: status 200, `content-type: application/json`,
        // the result as the body. The doc's table maps the result `"Hello from Lambda!"` to
        // `"body": "Hello from Lambda!"` (the string, not its JSON text) and the object
        // `{ "message": "Hello from Lambda!" }` to that object's text; anything else (number,
        // array, boolean, `null`) is sent as its JSON text, as returned.
        (ResultFormat::HttpV2, value) => Ok(FunctionResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: match value {
                Value::String(s) => s.into_bytes(),
                _ => raw.to_vec(),
            },
        }),
        (_, Value::Object(obj)) => structured(format, &obj).map_err(wrong),
        (_, other) => Err(wrong(format!(
            "the result is {}, not an object with statusCode",
            fields::kind(&other)
        ))),
    }
}

/// Reads a structured result (`statusCode` and the rest).
fn structured(format: ResultFormat, obj: &Map<String, Value>) -> Result<FunctionResponse, String> {
    let status = status_code(obj.get("statusCode"))?;
    let mut out = headers(format, obj)?;
    if format == ResultFormat::HttpV2 {
        out.extend(cookies(obj.get("cookies"))?);
    }
    let body = body(obj.get("body"), obj.get("isBase64Encoded"))?;
    Ok(FunctionResponse {
        status,
        headers: out,
        body,
    })
}
