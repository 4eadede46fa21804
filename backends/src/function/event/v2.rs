//! The HTTP API payload format 2.0 event ("Create AWS Lambda proxy integrations for HTTP APIs
//! in API Gateway", "Payload format version").

use serde_json::{Map, Value};

use super::parts::{body, client_cert, domain_prefix, is_text, lossy, pairs, query_pairs};
use super::parts::{request_time, s};
use super::EventInput;

/// The 2.0 event as a JSON value.
pub(super) fn event(input: &EventInput<'_>) -> Value {
    let mut ev = Map::new();
    ev.insert("version".into(), s("2.0"));
    ev.insert("routeKey".into(), s(input.route_key));
    ev.insert("rawPath".into(), s(input.raw_path));
    ev.insert("rawQueryString".into(), s(input.raw_query));

    // Headers lower-cased, duplicates joined with `,`; Cookie headers go to `cookies`.
    let mut cookies = Vec::new();
    let mut headers = Map::new();
    for (name, value) in input.headers {
        let name = lossy(name).to_ascii_lowercase();
        let value = lossy(value);
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(s),
            );
            continue;
        }
        match headers.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name, Value::String(value));
            }
        }
    }
    if !cookies.is_empty() {
        ev.insert("cookies".into(), Value::Array(cookies));
    }
    ev.insert("headers".into(), Value::Object(headers));

    let mut query = Map::new();
    for (k, v) in query_pairs(input.raw_query) {
        match query.get_mut(&k) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }
    if !query.is_empty() {
        ev.insert("queryStringParameters".into(), Value::Object(query));
    }
    if let Some(p) = pairs(input.path_parameters) {
        ev.insert("pathParameters".into(), p);
    }
    if let Some(v) = pairs(input.stage_variables) {
        ev.insert("stageVariables".into(), v);
    }

    let mut ctx = Map::new();
    ctx.insert("accountId".into(), s(input.account_id));
    ctx.insert("apiId".into(), s(input.api_id));
    if let Some(cert) = input.client_cert {
        let mut auth = Map::new();
        auth.insert("clientCert".into(), client_cert(cert));
        ctx.insert("authentication".into(), Value::Object(auth));
    }
    ctx.insert("domainName".into(), s(input.domain_name));
    ctx.insert("domainPrefix".into(), s(domain_prefix(input.domain_name)));
    let mut http = Map::new();
    http.insert("method".into(), s(input.method));
    http.insert("path".into(), s(input.raw_path));
    http.insert("protocol".into(), s(input.protocol));
    http.insert("sourceIp".into(), s(input.source_ip));
    http.insert("userAgent".into(), s(input.user_agent));
    ctx.insert("http".into(), Value::Object(http));
    ctx.insert("requestId".into(), s(input.request_id));
    ctx.insert("routeKey".into(), s(input.route_key));
    ctx.insert("stage".into(), s(input.stage));
    ctx.insert(
        "time".into(),
        Value::String(request_time(input.time_epoch_ms)),
    );
    ctx.insert("timeEpoch".into(), Value::from(input.time_epoch_ms));
    ev.insert("requestContext".into(), Value::Object(ctx));

    if !input.body.is_empty() {
        let (body, b64) = body(input, is_text(input.content_type));
        ev.insert("body".into(), Value::String(body));
        ev.insert("isBase64Encoded".into(), Value::Bool(b64));
    } else {
        ev.insert("isBase64Encoded".into(), Value::Bool(false));
    }
    Value::Object(ev)
}
