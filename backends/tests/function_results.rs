//! What API Gateway makes of a function's result ([`map_result`]): the structured response of
//! each format, the 2.0 inference, `headers`/`multiValueHeaders` merging, cookies, base64, and
//! every error with the status AWS answers. The golden input
//! `tests/fixtures/apigw/example-apigw-response.json` is copied unchanged from the
//! `aws_lambda_events` crate, 1.2.1 (`src/fixtures/`, MIT: see `LICENSE-aws_lambda_events`).

use serde_json::{json, Value};
use tollgate_backends::function::result::INTERNAL_SERVER_ERROR_BODY;
use tollgate_backends::function::{
    map_result, FunctionResponse, Outcome, ResultError, ResultFormat,
};

const V2: ResultFormat = ResultFormat::HttpV2;
const V1: ResultFormat = ResultFormat::HttpV1;
const REST: ResultFormat = ResultFormat::RestProxy;
const ALL: [ResultFormat; 3] = [V2, V1, REST];
const STRUCTURED_ONLY: [ResultFormat; 2] = [V1, REST];

fn ok(format: ResultFormat, result: &str) -> FunctionResponse {
    map_result(format, Outcome::Returned(result.as_bytes()))
        .unwrap_or_else(|e| panic!("{format:?} {result}: {e}"))
}

fn ok_json(format: ResultFormat, result: &Value) -> FunctionResponse {
    ok(format, &result.to_string())
}

fn err(format: ResultFormat, result: &str) -> ResultError {
    match map_result(format, Outcome::Returned(result.as_bytes())) {
        Ok(r) => panic!("{format:?} {result}: accepted as {r:?}"),
        Err(e) => e,
    }
}

fn err_json(format: ResultFormat, result: &Value) -> ResultError {
    err(format, &result.to_string())
}

/// The status AWS answers a wrong-format result with.
fn wrong_status(format: ResultFormat) -> u16 {
    match format {
        ResultFormat::HttpV1 => 500,
        ResultFormat::HttpV2 | ResultFormat::RestProxy => 502,
    }
}

/// A wrong-format result in every format that reads it as structured: the right status, the
/// AWS body, and a reason naming `needle`.
fn assert_wrong(formats: &[ResultFormat], result: &Value, needle: &str) {
    for &format in formats {
        let e = err_json(format, result);
        assert!(
            matches!(e, ResultError::WrongFormat { format: f, .. } if f == format),
            "{format:?} {result}: {e:?}"
        );
        assert_eq!(e.status(), wrong_status(format), "{format:?} {result}");
        assert_eq!(e.body(), INTERNAL_SERVER_ERROR_BODY);
        assert!(
            e.reason().contains(needle),
            "{format:?} {result}: reason {:?} lacks {needle:?}",
            e.reason()
        );
    }
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

// --- the structured response ---------------------------------------------------------------

#[test]
fn structured_response_in_every_format() {
    let result = json!({
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-Id": "7"},
        "body": "created",
        "isBase64Encoded": false
    });
    for format in ALL {
        let r = ok_json(format, &result);
        assert_eq!(r.status, 201, "{format:?}");
        assert_eq!(
            r.headers,
            h(&[("Content-Type", "text/plain"), ("X-Id", "7")]),
            "{format:?}"
        );
        assert_eq!(r.body, b"created", "{format:?}");
    }
}

#[test]
fn only_status_code_is_required() {
    for format in ALL {
        let r = ok(format, r#"{"statusCode":204}"#);
        assert_eq!((r.status, r.headers.len(), r.body.len()), (204, 0, 0));
        let r = ok(
            format,
            r#"{"statusCode":200,"headers":null,"multiValueHeaders":null,"body":null,"isBase64Encoded":null,"cookies":null}"#,
        );
        assert_eq!((r.status, r.headers.len(), r.body.len()), (200, 0, 0));
    }
}

#[test]
fn unknown_fields_are_ignored() {
    for format in ALL {
        let r = ok(format, r#"{"statusCode":200,"body":"x","extra":{"a":1}}"#);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
    }
}

#[test]
fn status_codes_at_the_bounds() {
    for format in ALL {
        for code in [100, 200, 302, 418, 599] {
            assert_eq!(ok_json(format, &json!({ "statusCode": code })).status, code);
        }
    }
}

#[test]
fn golden_rest_response_from_aws_lambda_events() {
    let path = format!(
        "{}/tests/fixtures/apigw/example-apigw-response.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let mv = fixture["multiValueHeaders"]
        .as_object()
        .expect("multiValueHeaders");
    for format in STRUCTURED_ONLY {
        let r = ok(format, &text);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"Hello World");
        // Every name is in both maps with the same value: each header appears once, from
        // multiValueHeaders.
        assert_eq!(r.headers.len(), mv.len(), "{format:?}");
        for (name, values) in mv {
            let ours: Vec<&str> = r
                .headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            let theirs: Vec<&str> = values
                .as_array()
                .expect("array")
                .iter()
                .map(|v| v.as_str().expect("string"))
                .collect();
            assert_eq!(ours, theirs, "{format:?} {name}");
        }
    }
    // 2.0 does not read multiValueHeaders: the single-value headers only, same values here.
    let r = ok(V2, &text);
    assert_eq!(
        r.headers.len(),
        fixture["headers"].as_object().map_or(0, |m| m.len())
    );
    assert_eq!(r.body, b"Hello World");
}

// --- 2.0 inference -------------------------------------------------------------------------

fn assert_inferred(result: &str, body: &[u8]) {
    let r = ok(V2, result);
    assert_eq!(r.status, 200, "{result}");
    assert_eq!(
        r.headers,
        h(&[("content-type", "application/json")]),
        "{result}"
    );
    assert_eq!(r.body, body, "{result}");
}

#[test]
fn v2_infers_from_an_object_without_status_code() {
    // The doc's example: `{ "message": "Hello from Lambda!" }` becomes the body, as returned.
    let result = r#"{ "message": "Hello from Lambda!" }"#;
    assert_inferred(result, result.as_bytes());
    // Fields of the structured format do not count without statusCode.
    let result = r#"{"body":"x","headers":{"a":"b"},"isBase64Encoded":true}"#;
    assert_inferred(result, result.as_bytes());
    assert_inferred("{}", b"{}");
}

#[test]
fn v2_infers_from_a_string_as_the_string_itself() {
    // The doc's table: the output "Hello from Lambda!" is interpreted as
    // `"body": "Hello from Lambda!"`.
    assert_inferred(r#""Hello from Lambda!""#, b"Hello from Lambda!");
    assert_inferred(r#""line\nbreak \u00e9""#, "line\nbreak \u{e9}".as_bytes());
    assert_inferred(r#""""#, b"");
}

#[test]
fn v2_infers_from_other_json_as_its_text() {
    for result in ["42", "-1.5e3", "[1,\"two\",null]", "true", "null", " [ ] "] {
        assert_inferred(result, result.as_bytes());
    }
}

#[test]
fn v1_and_rest_never_infer() {
    for result in [
        r#"{"message":"Hello"}"#,
        r#""Hello from Lambda!""#,
        "42",
        "[1]",
        "null",
        "true",
    ] {
        for format in STRUCTURED_ONLY {
            let e = err(format, result);
            assert_eq!(e.status(), wrong_status(format), "{format:?} {result}");
        }
    }
}

// --- headers and multiValueHeaders ---------------------------------------------------------

#[test]
fn multi_value_headers_repeat_the_name() {
    let result = json!({
        "statusCode": 200,
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Empty": [], "X-Null": null}
    });
    for format in STRUCTURED_ONLY {
        assert_eq!(
            ok_json(format, &result).headers,
            h(&[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        );
    }
}

#[test]
fn multi_value_headers_win_over_headers_for_the_same_name() {
    // REST "Output format": "If the same key-value pair is specified in both, only the values
    // from multiValueHeaders will appear in the merged list". Names compare case-insensitively.
    let result = json!({
        "statusCode": 200,
        "headers": {"X-A": "single", "x-b": "one", "X-Only-Single": "s"},
        "multiValueHeaders": {"X-A": ["m1", "m2"], "X-B": ["one"], "X-Only-Multi": ["m"]}
    });
    for format in STRUCTURED_ONLY {
        assert_eq!(
            ok_json(format, &result).headers,
            h(&[
                ("X-Only-Single", "s"),
                ("X-A", "m1"),
                ("X-A", "m2"),
                ("X-B", "one"),
                ("X-Only-Multi", "m"),
            ]),
            "{format:?}"
        );
    }
}

#[test]
fn v2_ignores_multi_value_headers() {
    let result = json!({
        "statusCode": 200,
        "headers": {"x-a": "single"},
        "multiValueHeaders": {"x-a": ["m1", "m2"], "x-b": ["b"]}
    });
    assert_eq!(ok_json(V2, &result).headers, h(&[("x-a", "single")]));
}

#[test]
fn header_values_may_hold_commas_tabs_and_non_ascii() {
    let result = json!({"statusCode": 200, "headers": {"x-list": "a, b,\tc", "x-u": "caf\u{e9}"}});
    for format in ALL {
        assert_eq!(
            ok_json(format, &result).headers,
            h(&[("x-list", "a, b,\tc"), ("x-u", "caf\u{e9}")])
        );
    }
}

// --- cookies ------------------------------------------------------------------------------

#[test]
fn v2_cookies_become_set_cookie_headers_after_headers() {
    let result = json!({
        "statusCode": 200,
        "headers": {"content-type": "text/html"},
        "cookies": ["id=1; Path=/; HttpOnly", "theme=dark; Max-Age=60"],
        "body": "<p>"
    });
    assert_eq!(
        ok_json(V2, &result).headers,
        h(&[
            ("content-type", "text/html"),
            ("set-cookie", "id=1; Path=/; HttpOnly"),
            ("set-cookie", "theme=dark; Max-Age=60"),
        ])
    );
}

#[test]
fn cookies_are_not_a_v1_or_rest_field() {
    let result = json!({"statusCode": 200, "cookies": ["id=1"]});
    for format in STRUCTURED_ONLY {
        assert!(ok_json(format, &result).headers.is_empty(), "{format:?}");
    }
}

// --- body and base64 ----------------------------------------------------------------------

#[test]
fn base64_bodies_are_decoded() {
    let bytes = [0u8, 1, 2, 254, 255, b'\n'];
    for format in ALL {
        let r = ok_json(
            format,
            &json!({"statusCode": 200, "body": "AAEC/v8K", "isBase64Encoded": true}),
        );
        assert_eq!(r.body, bytes, "{format:?}");
        // Padding optional.
        let r = ok_json(
            format,
            &json!({"statusCode": 200, "body": "aGk", "isBase64Encoded": true}),
        );
        assert_eq!(r.body, b"hi", "{format:?}");
        let r = ok_json(
            format,
            &json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}),
        );
        assert_eq!(r.body, b"hi", "{format:?}");
        // Not encoded: sent as is, even if it looks like base64.
        let r = ok_json(
            format,
            &json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": false}),
        );
        assert_eq!(r.body, b"aGk=", "{format:?}");
    }
}

#[test]
fn a_bad_base64_body_is_a_wrong_format_result() {
    for body in ["not base64!", "aGk=\n", "a", "aGk*", "aG k="] {
        let result = json!({"statusCode": 200, "body": body, "isBase64Encoded": true});
        assert_wrong(&ALL, &result, "base64");
    }
}

#[test]
fn unicode_bodies_are_utf8() {
    for format in ALL {
        let r = ok_json(
            format,
            &json!({"statusCode": 200, "body": "h\u{e9}llo \u{1f600}"}),
        );
        assert_eq!(r.body, "h\u{e9}llo \u{1f600}".as_bytes());
    }
}

// --- wrong-format results -----------------------------------------------------------------

#[test]
fn invalid_json_is_wrong_format_in_every_format() {
    for result in ["", "{", "{\"statusCode\":200", "Hello", "{'a':1}", "\u{0}"] {
        for format in ALL {
            let e = err(format, result);
            assert_eq!(e.status(), wrong_status(format), "{format:?} {result:?}");
            assert!(e.reason().contains("not valid JSON"), "{}", e.reason());
        }
    }
}

#[test]
fn missing_status_code_is_wrong_for_v1_and_rest() {
    assert_wrong(&STRUCTURED_ONLY, &json!({"body": "x"}), "no statusCode");
}

#[test]
fn bad_status_codes() {
    for code in [
        json!(99),
        json!(600),
        json!(0),
        json!(-200),
        json!(200.5),
        json!(200.0),
        json!(70000),
        json!(u64::MAX),
    ] {
        assert_wrong(&ALL, &json!({ "statusCode": code }), "statusCode");
    }
    for code in [
        json!("200"),
        json!(null),
        json!(true),
        json!([200]),
        json!({}),
    ] {
        assert_wrong(&ALL, &json!({ "statusCode": code }), "not an integer");
    }
}

#[test]
fn field_types_must_match() {
    let cases = [
        (json!({"statusCode": 200, "body": {"a": 1}}), "body"),
        (json!({"statusCode": 200, "body": 5}), "body"),
        (
            json!({"statusCode": 200, "isBase64Encoded": "true"}),
            "isBase64Encoded",
        ),
        (json!({"statusCode": 200, "headers": ["a"]}), "headers"),
        (
            json!({"statusCode": 200, "headers": {"x": 1}}),
            "header \"x\"",
        ),
        (
            json!({"statusCode": 200, "headers": {"x": ["a"]}}),
            "header \"x\"",
        ),
        (
            json!({"statusCode": 200, "headers": {"x": null}}),
            "header \"x\"",
        ),
    ];
    for (result, needle) in &cases {
        assert_wrong(&ALL, result, needle);
    }
    let v1_cases = [
        (
            json!({"statusCode": 200, "multiValueHeaders": {"x": "a"}}),
            "multiValueHeaders",
        ),
        (
            json!({"statusCode": 200, "multiValueHeaders": {"x": [1]}}),
            "multiValueHeaders",
        ),
        (
            json!({"statusCode": 200, "multiValueHeaders": []}),
            "multiValueHeaders",
        ),
    ];
    for (result, needle) in &v1_cases {
        assert_wrong(&STRUCTURED_ONLY, result, needle);
        ok_json(V2, result); // 2.0 ignores multiValueHeaders.
    }
    let v2_cases = [
        (json!({"statusCode": 200, "cookies": "a=1"}), "cookies"),
        (json!({"statusCode": 200, "cookies": [1]}), "cookie"),
    ];
    for (result, needle) in &v2_cases {
        assert_wrong(&[V2], result, needle);
        for format in STRUCTURED_ONLY {
            ok_json(format, result); // not a 1.0/REST field.
        }
    }
}

// --- header injection ---------------------------------------------------------------------

#[test]
fn header_injection_through_values_is_refused() {
    for value in [
        "a\r\nSet-Cookie: evil=1",
        "a\nX-Evil: 1",
        "a\rb",
        "a\u{0}b",
        "a\u{7f}",
        "\r\n\r\n<html>",
        "a\u{b}b",
    ] {
        assert_wrong(
            &ALL,
            &json!({"statusCode": 200, "headers": {"x-a": value}}),
            "control character",
        );
        assert_wrong(
            &STRUCTURED_ONLY,
            &json!({"statusCode": 200, "multiValueHeaders": {"x-a": ["ok", value]}}),
            "control character",
        );
        assert_wrong(
            &[V2],
            &json!({"statusCode": 200, "cookies": ["ok=1", format!("id=1{value}")]}),
            "control character",
        );
    }
}

#[test]
fn header_injection_through_names_is_refused() {
    for name in [
        "",
        "X-A\r\nX-Evil",
        "X A",
        "X-A:",
        "X-A: 1\r\nX-B",
        "caf\u{e9}",
        "(x)",
        "x/y",
        "\"x\"",
        "x\t",
    ] {
        assert_wrong(
            &ALL,
            &json!({"statusCode": 200, "headers": { name: "v" }}),
            "not a valid HTTP field name",
        );
        assert_wrong(
            &STRUCTURED_ONLY,
            &json!({"statusCode": 200, "multiValueHeaders": { name: ["v"] }}),
            "not a valid HTTP field name",
        );
    }
}

#[test]
fn token_names_are_accepted() {
    let name = "!#$%&'*+-.^_`|~0aZ";
    for format in ALL {
        let r = ok_json(
            format,
            &json!({"statusCode": 200, "headers": { name: "v" }}),
        );
        assert_eq!(r.headers, h(&[(name, "v")]));
    }
}

#[test]
fn an_overridden_bad_header_still_fails() {
    // The single-value entry is replaced by multiValueHeaders, but a bad header in either map
    // makes the result wrong-format: nothing malformed is silently dropped.
    let result = json!({
        "statusCode": 200,
        "headers": {"x-a": "bad\r\nvalue"},
        "multiValueHeaders": {"x-a": ["good"]}
    });
    for format in STRUCTURED_ONLY {
        let e = err_json(format, &result);
        assert_eq!(e.status(), wrong_status(format));
        assert!(e.reason().contains("control character"), "{}", e.reason());
    }
}

// --- function errors and the error surface ------------------------------------------------

#[test]
fn function_errors_are_502_in_every_format() {
    for format in ALL {
        let e = map_result(
            format,
            Outcome::FunctionError {
                error_type: "Runtime.HandlerNotFound",
                message: "index.handler is undefined",
            },
        )
        .expect_err("a function error");
        assert_eq!(e.status(), 502, "{format:?}");
        assert_eq!(e.body(), INTERNAL_SERVER_ERROR_BODY);
        assert_eq!(
            e,
            ResultError::FunctionError {
                error_type: "Runtime.HandlerNotFound".into(),
                message: "index.handler is undefined".into(),
            }
        );
        assert!(e.reason().contains("Runtime.HandlerNotFound"));
        assert!(e.reason().contains("index.handler is undefined"));
    }
}

#[test]
fn the_error_body_is_what_aws_sends() {
    assert_eq!(
        INTERNAL_SERVER_ERROR_BODY,
        br#"{"message":"Internal server error"}"#
    );
    let v: Value = serde_json::from_slice(INTERNAL_SERVER_ERROR_BODY).expect("JSON");
    assert_eq!(v, json!({"message": "Internal server error"}));
}

#[test]
fn wrong_format_statuses_per_format() {
    assert_eq!(err(V2, "{").status(), 502);
    assert_eq!(err(V1, "{").status(), 500);
    assert_eq!(err(REST, "{").status(), 502);
}
