//! Reading and checking the fields of a structured result.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::ResultFormat;

/// Standard alphabet; `=` padding optional (AWS does not document its decoder; Java's basic
/// decoder, which accepts a missing pad, is the likely one). Anything else, whitespace
/// included, is a bad body.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `a string`, `an array`…: for reasons.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `statusCode`: an integer from 100 to 599 (a string such as `"200"`, `200.0` or `null` is
/// a wrong-format result).
pub(super) fn status_code(v: Option<&Value>) -> Result<u16, String> {
    let Some(v) = v else {
        return Err("the result has no statusCode".to_owned());
    };
    match v.as_u64() {
        Some(n @ 100..=599) => Ok(n as u16),
        Some(n) => Err(format!("statusCode {n} is outside 100-599")),
        None if v.is_number() => Err(format!(
            "statusCode {v} is outside 100-599 or not an integer"
        )),
        None => Err(format!("statusCode is {}, not an integer", kind(v))),
    }
}

/// `headers`, and for 1.0 and REST `multiValueHeaders`, merged: a name present in both (ASCII
/// case-insensitively) takes only its `multiValueHeaders` values (the REST page: "only the
/// values from multiValueHeaders will appear"). Order: the `headers` entries not overridden,
/// then every `multiValueHeaders` value; within each map, the key order of the parsed JSON
/// object (AWS does not keep or document one). 2.0 has no `multiValueHeaders`: the field is
/// ignored there, like any other field the format does not define.
pub(super) fn headers(
    format: ResultFormat,
    obj: &Map<String, Value>,
) -> Result<Vec<(String, String)>, String> {
    let single = map_field(obj, "headers")?;
    let multi = match format {
        ResultFormat::HttpV2 => None,
        ResultFormat::HttpV1 | ResultFormat::RestProxy => map_field(obj, "multiValueHeaders")?,
    };
    let mut out = Vec::new();
    for (name, value) in single.into_iter().flatten() {
        let Value::String(value) = value else {
            return Err(format!("header {name:?} is {}, not a string", kind(value)));
        };
        // Checked even when overridden: a malformed header is never silently dropped.
        let line = checked(name, value)?;
        let overridden = multi.is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(name)));
        if !overridden {
            out.push(line);
        }
    }
    for (name, values) in multi.into_iter().flatten() {
        let values = match values {
            Value::Array(values) => values.as_slice(),
            Value::Null => &[],
            other => {
                return Err(format!(
                    "multiValueHeaders {name:?} is {}, not an array",
                    kind(other)
                ))
            }
        };
        for value in values {
            let Value::String(value) = value else {
                return Err(format!(
                    "a value of multiValueHeaders {name:?} is {}, not a string",
                    kind(value)
                ));
            };
            out.push(checked(name, value)?);
        }
    }
    Ok(out)
}

/// 2.0 `cookies`: each one a `set-cookie` header, in order.
pub(super) fn cookies(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let cookies = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(c)) => c,
        Some(other) => return Err(format!("cookies is {}, not an array", kind(other))),
    };
    cookies
        .iter()
        .map(|c| match c {
            Value::String(c) => checked("set-cookie", c),
            other => Err(format!("a cookie is {}, not a string", kind(other))),
        })
        .collect()
}

/// `body` (a string, or absent/`null` for none), base64-decoded when `isBase64Encoded` is
/// `true` (a boolean, or absent/`null` for `false`).
pub(super) fn body(body: Option<&Value>, base64: Option<&Value>) -> Result<Vec<u8>, String> {
    let encoded = match base64 {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("isBase64Encoded is {}, not a boolean", kind(other))),
    };
    let text = match body {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("body is {}, not a string", kind(other))),
    };
    if !encoded {
        return Ok(text.as_bytes().to_vec());
    }
    BASE64
        .decode(text)
        .map_err(|e| format!("isBase64Encoded is true but the body is not base64: {e}"))
}

/// A map-valued field: absent or `null` is none; anything but an object is wrong.
fn map_field<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(format!("{field} is {}, not an object", kind(other))),
    }
}

/// A header line, if it is valid HTTP. Our hardening choice (AWS does not document what it
/// does with such a header): a name that is not an RFC 9110 token, or a value holding a
/// control character other than HTAB (CR and LF above all: response splitting), makes the
/// whole result wrong-format rather than reach the client, dropped or altered.
fn checked(name: &str, value: &str) -> Result<(String, String), String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!(
            "header name {name:?} is not a valid HTTP field name"
        ));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "header {name:?} has a control character in its value {value:?}"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
