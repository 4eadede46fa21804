//! The 1.0-shaped events: HTTP API payload format 1.0 ("Create AWS Lambda proxy integrations
//! for HTTP APIs in API Gateway") and the REST proxy event ("Set up Lambda proxy integrations
//! in API Gateway", "Input format of a Lambda function for proxy integration").

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::parts::{body, client_cert, domain_prefix, is_binary_media_type, is_text, lossy};
use super::parts::{opt, pairs, query_pairs, request_time, s};
use super::EventInput;

/// Which of the two 1.0-shaped events.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// HTTP API, payload format 1.0: `"version": "1.0"`, no `identity.apiKey`.
    HttpV1,
    /// REST API proxy: no `version`.
    Rest,
}

/// The 1.0 or REST event as a JSON value.
pub(super) fn event(input: &EventInput<'_>, shape: Shape) -> Value {
    let mut ev = Map::new();
    if shape == Shape::HttpV1 {
        ev.insert("version".into(), s("1.0"));
    }
    ev.insert("resource".into(), s(input.resource));
    ev.insert("path".into(), s(input.path));
    ev.insert("httpMethod".into(), s(input.method));

    // Names as sent; the first spelling of a name (compared case-insensitively) names it.
    let (headers, multi_headers) = last_and_all(
        input
            .headers
            .iter()
            .map(|(n, v)| (lossy(n), lossy(v)))
            .collect(),
        true,
    );
    ev.insert("headers".into(), headers);
    ev.insert("multiValueHeaders".into(), multi_headers);
    let (query, multi_query) = last_and_all(query_pairs(input.raw_query), false);
    ev.insert("queryStringParameters".into(), query);
    ev.insert("multiValueQueryStringParameters".into(), multi_query);
    ev.insert(
        "pathParameters".into(),
        pairs(input.path_parameters).unwrap_or(Value::Null),
    );
    ev.insert(
        "stageVariables".into(),
        pairs(input.stage_variables).unwrap_or(Value::Null),
    );

    let mut ctx = Map::new();
    ctx.insert("accountId".into(), s(input.account_id));
    ctx.insert("apiId".into(), s(input.api_id));
    ctx.insert("domainName".into(), s(input.domain_name));
    ctx.insert("domainPrefix".into(), s(domain_prefix(input.domain_name)));
    if let Some(id) = input.extended_request_id {
        ctx.insert("extendedRequestId".into(), s(id));
    }
    ctx.insert("httpMethod".into(), s(input.method));
    let mut identity = Map::new();
    for key in [
        "accessKey",
        "accountId",
        "caller",
        "cognitoAuthenticationProvider",
        "cognitoAuthenticationType",
        "cognitoIdentityId",
        "cognitoIdentityPoolId",
        "principalOrgId",
        "user",
        "userArn",
    ] {
        // Filled by IAM and Cognito authorization, which tollgate does not have.
        identity.insert(key.into(), Value::Null);
    }
    if shape == Shape::Rest {
        identity.insert("apiKey".into(), opt(input.api_key));
        identity.insert("apiKeyId".into(), opt(input.api_key_id));
    }
    identity.insert("sourceIp".into(), s(input.source_ip));
    identity.insert("userAgent".into(), s(input.user_agent));
    identity.insert(
        "clientCert".into(),
        input.client_cert.map_or(Value::Null, client_cert),
    );
    ctx.insert("identity".into(), Value::Object(identity));
    ctx.insert("path".into(), s(input.context_path));
    ctx.insert("protocol".into(), s(input.protocol));
    ctx.insert("requestId".into(), s(input.request_id));
    ctx.insert(
        "requestTime".into(),
        Value::String(request_time(input.time_epoch_ms)),
    );
    ctx.insert("requestTimeEpoch".into(), Value::from(input.time_epoch_ms));
    ctx.insert("resourceId".into(), opt(input.resource_id));
    ctx.insert("resourcePath".into(), s(input.resource));
    ctx.insert("stage".into(), s(input.stage));
    ev.insert("requestContext".into(), Value::Object(ctx));

    if input.body.is_empty() {
        ev.insert("body".into(), Value::Null);
        ev.insert("isBase64Encoded".into(), Value::Bool(false));
    } else {
        let text = match shape {
            Shape::HttpV1 => is_text(input.content_type),
            Shape::Rest => !is_binary_media_type(input.content_type, input.binary_media_types),
        };
        let (body, b64) = body(input, text);
        ev.insert("body".into(), Value::String(body));
        ev.insert("isBase64Encoded".into(), Value::Bool(b64));
    }
    Value::Object(ev)
}

/// The 1.0/REST pair of maps: the last value of each name, and all of them in order.
/// Both `null` when there are no pairs.
fn last_and_all(list: Vec<(String, String)>, fold_case: bool) -> (Value, Value) {
    if list.is_empty() {
        return (Value::Null, Value::Null);
    }
    let mut spelling: HashMap<String, String> = HashMap::new();
    let mut last = Map::new();
    let mut all = Map::new();
    for (name, value) in list {
        let key = if fold_case {
            spelling
                .entry(name.to_ascii_lowercase())
                .or_insert(name)
                .clone()
        } else {
            name
        };
        last.insert(key.clone(), s(&value));
        match all.get_mut(&key) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            _ => {
                all.insert(key, Value::Array(vec![Value::String(value)]));
            }
        }
    }
    (Value::Object(last), Value::Object(all))
}
