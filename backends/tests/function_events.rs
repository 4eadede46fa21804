//! Lambda proxy events against recorded API Gateway events: for each fixture in
//! `tests/fixtures/apigw/` (copied from the `aws_lambda_events` crate, 1.2.1), the request it
//! describes is rebuilt as an [`EventInput`], the event is produced, and both are compared
//! field by field as JSON values (key order aside). What cannot match is normalized in the
//! open, fixture by fixture, with the reason. Then unit tests of the rules the fixtures do not
//! exercise (unicode, binary and empty bodies, duplicates, cookies, absent maps, mTLS).

use base64::Engine;
use serde_json::{json, Value};
use tollgate_backends::client_cert::ClientCertificate;
use tollgate_backends::function::{payload_v1, payload_v2, rest_proxy, EventInput};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/apigw/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("the event is JSON")
}

/// The path of the first difference between two values (`None`: equal), keys in sorted order.
fn first_difference(path: &str, ours: &Value, theirs: &Value) -> Option<String> {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => {
                        if let Some(d) = first_difference(&p, x, y) {
                            return Some(d);
                        }
                    }
                    (Some(x), None) => return Some(format!("{p}: only ours has it ({x})")),
                    (None, Some(y)) => return Some(format!("{p}: only AWS has it ({y})")),
                    (None, None) => {}
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path}: {} items, AWS {}", a.len(), b.len()));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y))
        }
        _ if ours == theirs => None,
        _ => Some(format!("{path}: ours {ours}, AWS {theirs}")),
    }
}

fn assert_same(ours: &Value, theirs: &Value) {
    if let Some(d) = first_difference("$", ours, theirs) {
        panic!(
            "first difference at {d}\nours: {}",
            serde_json::to_string_pretty(ours).expect("test data")
        );
    }
}

/// The value at a JSON pointer, which must exist.
fn at<'v>(v: &'v mut Value, pointer: &str) -> &'v mut Value {
    v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the value"))
}

/// Removes the key a JSON pointer names, which must exist.
fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("test data");
    let removed = at(v, parent)
        .as_object_mut()
        .expect("test data")
        .remove(key);
    assert!(removed.is_some(), "{pointer} is not in the value");
}

/// The fixtures' client certificate: its fields as the fixture gives them, and DER bytes whose
/// base64 starts like the fixture's PEM (which AWS's sample cut short with `...`).
fn fixture_cert() -> ClientCertificate {
    ClientCertificate {
        subject: "C=US,ST=Washington,L=Seattle,O=Amazon Web Services,OU=Security,CN=My Client"
            .into(),
        issuer: "C=US,ST=Washington,L=Seattle,O=Amazon Web Services,OU=Security,CN=My Private CA"
            .into(),
        serial: "1".into(),
        not_before: "Aug 29 00:28:21 2020 GMT".into(),
        not_after: "Aug  5 00:28:21 2120 GMT".into(),
        der: base64::engine::general_purpose::STANDARD
            .decode("MIIEZTCCAk0CAQEwDQAA")
            .expect("base64"),
    }
}

/// The fixtures' PEM is truncated (`-----BEGIN CERTIFICATE-----\nMIIEZTCCAk0CAQEwDQ...`): ours
/// must start with what it shows, and is then replaced by it.
fn normalize_truncated_pem(ours: &mut Value, theirs: &Value, pointer: &str) {
    let shown = theirs
        .pointer(pointer)
        .expect("test data")
        .as_str()
        .expect("test data");
    let prefix = shown.strip_suffix("...").expect("test data");
    let pem = at(ours, pointer);
    let text = pem.as_str().expect("test data");
    assert!(text.starts_with(prefix), "{text:?} vs {prefix:?}");
    assert!(text.ends_with("\n-----END CERTIFICATE-----\n"), "{text:?}");
    *pem = Value::String(shown.to_owned());
}

#[test]
fn v2_recorded_get_without_authorizer() {
    let theirs = fixture("example-apigw-v2-request-no-authorizer.json");
    let cert = fixture_cert();
    let headers: &[(&[u8], &[u8])] = &[
        (b"accept", b"*/*"),
        (b"content-length", b"0"),
        (b"host", b"aaaaaaaaaa.execute-api.us-west-2.amazonaws.com"),
        (b"user-agent", b"curl/7.58.0"),
        (
            b"x-amzn-trace-id",
            b"Root=1-5e9f0c65-1de4d666d4dd26aced652b6c",
        ),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-port", b"443"),
        (b"x-forwarded-proto", b"https"),
    ];
    let input = EventInput {
        method: "GET",
        raw_path: "/",
        path: "/",
        context_path: "/",
        raw_query: "",
        headers,
        route_key: "$default",
        resource: "$default",
        stage: "$default",
        api_id: "aaaaaaaaaa",
        account_id: "123456789012",
        domain_name: "aaaaaaaaaa.execute-api.us-west-2.amazonaws.com",
        request_id: "LV7fzho-PHcEJPw=",
        time_epoch_ms: 1_587_481_701_067,
        source_ip: "1.2.3.4",
        protocol: "HTTP/1.1",
        user_agent: "curl/7.58.0",
        client_cert: Some(&cert),
        ..EventInput::default()
    };
    let mut ours = parse(&payload_v2(&input));
    normalize_truncated_pem(
        &mut ours,
        &theirs,
        "/requestContext/authentication/clientCert/clientCertPem",
    );
    assert_same(&ours, &theirs);
}

#[test]
fn v2_duplicates_cookies_proxy_path_and_stage_variables() {
    let mut theirs = fixture("example-apigw-v2-request-multi-value-parameters.json");
    let cert = fixture_cert();
    let headers: &[(&[u8], &[u8])] = &[
        (b"Cookie", b"cookie1; cookie2"),
        (b"Header2", b"value1"),
        (b"Header2", b"value2"),
    ];
    let input = EventInput {
        method: "GET",
        raw_path: "/my/path",
        raw_query: "Parameter1=value1&Parameter1=value2",
        headers,
        path_parameters: &[("proxy", "hello/world")],
        stage_variables: &[("stageVariable1", "value1"), ("stageVariable2", "value2")],
        body: b"{\r\n\t\"a\": 1\r\n}",
        route_key: "$default",
        stage: "$default",
        api_id: "api-id",
        account_id: "123456789012",
        domain_name: "id.execute-api.us-east-1.amazonaws.com",
        request_id: "id",
        time_epoch_ms: 1_583_348_638_390,
        source_ip: "IP",
        protocol: "HTTP/1.1",
        user_agent: "agent",
        client_cert: Some(&cert),
        ..EventInput::default()
    };
    let mut ours = parse(&payload_v2(&input));
    normalize_truncated_pem(
        &mut ours,
        &theirs,
        "/requestContext/authentication/clientCert/clientCertPem",
    );
    // This sample is hand-written (it copies the AWS doc page's example), and three of its
    // fields contradict AWS's own rules:
    // - `Header2`: 2.0 lower-cases header names ("All header names are lowercase", doc page);
    assert_eq!(theirs["headers"]["Header2"], "value1,value2");
    let value = at(&mut theirs, "/headers")
        .as_object_mut()
        .unwrap()
        .remove("Header2");
    at(&mut theirs, "/headers")
        .as_object_mut()
        .unwrap()
        .insert("header2".into(), value.unwrap());
    // - `time` `12/Mar/2020:19:03:58+0000` has no space before the offset and is not the
    //   instant of its own `timeEpoch` (1583348638390 is 04/Mar/2020:19:03:58 UTC);
    assert_eq!(ours["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
    *at(&mut theirs, "/requestContext/time") = json!("04/Mar/2020:19:03:58 +0000");
    // - `authorizer.lambda`: the sample has a Lambda authorizer; tollgate has none yet.
    remove(&mut theirs, "/requestContext/authorizer");
    assert_same(&ours, &theirs);
}

/// The REST request both REST fixtures describe.
fn rest_input<'a>(headers: &'a [(&'a [u8], &'a [u8])], raw_query: &'a str) -> EventInput<'a> {
    EventInput {
        method: "POST",
        raw_path: "/testStage/hello/world",
        path: "/hello/world",
        context_path: "/hello/world",
        raw_query,
        headers,
        path_parameters: &[("proxy", "hello/world")],
        stage_variables: &[("stageVariableName", "stageVariableValue")],
        body: b"{\r\n\t\"a\": 1\r\n}",
        content_type: Some("application/json"),
        route_key: "ANY /{proxy+}",
        resource: "/{proxy+}",
        resource_id: Some("roq9wj"),
        stage: "testStage",
        api_id: "gy415nuibc",
        account_id: "12345678912",
        domain_name: "gy415nuibc.execute-api.us-east-2.amazonaws.com",
        request_id: "deef4878-7910-11e6-8f14-25afc3e9ae33",
        time_epoch_ms: 1_589_522_469_693,
        source_ip: "192.168.196.186",
        protocol: "HTTP/1.1",
        user_agent: "PostmanRuntime/2.4.5",
        api_key: Some("theApiKey"),
        api_key_id: Some("theApiKeyId"),
        ..EventInput::default()
    }
}

const REST_HEADERS: &[(&[u8], &[u8])] = &[
    (b"Accept", b"*/*"),
    (b"Accept-Encoding", b"gzip, deflate"),
    (b"cache-control", b"no-cache"),
    (b"CloudFront-Forwarded-Proto", b"https"),
    (b"CloudFront-Is-Desktop-Viewer", b"true"),
    (b"CloudFront-Is-Mobile-Viewer", b"false"),
    (b"CloudFront-Is-SmartTV-Viewer", b"false"),
    (b"CloudFront-Is-Tablet-Viewer", b"false"),
    (b"CloudFront-Viewer-Country", b"US"),
    (b"Content-Type", b"application/json"),
    (b"headerName", b"headerValue"),
    (b"Host", b"gy415nuibc.execute-api.us-east-1.amazonaws.com"),
    (b"Postman-Token", b"9f583ef0-ed83-4a38-aef3-eb9ce3f7a57f"),
    (b"User-Agent", b"PostmanRuntime/2.4.5"),
    (
        b"Via",
        b"1.1 d98420743a69852491bbdea73f7680bd.cloudfront.net (CloudFront)",
    ),
    (
        b"X-Amz-Cf-Id",
        b"pn-PWIJc6thYnZm5P0NMgOUglL1DYtl0gdeJky8tqsg8iS_sgsKD1A==",
    ),
    (b"X-Forwarded-For", b"54.240.196.186, 54.182.214.83"),
    (b"X-Forwarded-Port", b"443"),
    (b"X-Forwarded-Proto", b"https"),
];

/// What the REST fixtures (a 2016-era sample) cannot match, whatever the request:
/// - `requestContext.authorizer` (a custom authorizer's context): tollgate has no authorizers;
/// - the IAM/Cognito fields of `identity` carry placeholder values; without IAM or Cognito
///   authorization (tollgate has neither) AWS sends them as `null`;
/// - `domainPrefix` `y0ne18dixk` is not the first label of the sample's own `domainName`
///   (`gy415nuibc…`): the sample was edited by hand;
/// - the sample predates `isBase64Encoded`, `identity.principalOrgId` and
///   `identity.clientCert`, which current events carry (REST doc page, "Input format"): they
///   are removed from ours.
fn normalize_rest(ours: &mut Value, theirs: &mut Value) {
    remove(theirs, "/requestContext/authorizer");
    for key in [
        "cognitoIdentityPoolId",
        "accountId",
        "cognitoIdentityId",
        "caller",
        "accessKey",
        "cognitoAuthenticationType",
        "cognitoAuthenticationProvider",
        "userArn",
        "user",
    ] {
        *at(theirs, &format!("/requestContext/identity/{key}")) = Value::Null;
    }
    assert_eq!(ours["requestContext"]["domainPrefix"], "gy415nuibc");
    *at(theirs, "/requestContext/domainPrefix") = json!("gy415nuibc");
    assert_eq!(ours["isBase64Encoded"], false);
    remove(ours, "/isBase64Encoded");
    remove(ours, "/requestContext/identity/principalOrgId");
    remove(ours, "/requestContext/identity/clientCert");
}

#[test]
fn rest_proxy_recorded_post() {
    let mut theirs = fixture("example-apigw-request.json");
    let mut ours = parse(&rest_proxy(&rest_input(REST_HEADERS, "name=me")));
    normalize_rest(&mut ours, &mut theirs);
    assert_same(&ours, &theirs);
}

#[test]
fn rest_proxy_multi_value_headers_and_query() {
    let mut theirs = fixture("example-apigw-request-multi-value-parameters.json");
    let mut headers = REST_HEADERS.to_vec();
    let at_name = headers
        .iter()
        .position(|(n, _)| *n == b"headerName")
        .unwrap();
    headers.insert(at_name + 1, (b"headerName", b"headerValue2"));
    let mut ours = parse(&rest_proxy(&rest_input(&headers, "name=me&name=me2")));
    normalize_rest(&mut ours, &mut theirs);
    // The sample gives the last value of the duplicate header (`headerValue2`) but the first
    // of the duplicate query parameter (`me`); ours takes the last of both, as the HTTP-API
    // doc page's 1.0 example does for headers.
    assert_eq!(theirs["queryStringParameters"]["name"], "me");
    *at(&mut theirs, "/queryStringParameters/name") = json!("me2");
    assert_same(&ours, &theirs);
}

// ---- unit tests of single rules ----

fn base() -> EventInput<'static> {
    EventInput {
        method: "GET",
        raw_path: "/pets",
        path: "/pets",
        context_path: "/prod/pets",
        route_key: "GET /pets",
        resource: "/pets",
        stage: "prod",
        api_id: "api1",
        account_id: "000000000000",
        domain_name: "api.example.com",
        request_id: "req-1",
        time_epoch_ms: 1_583_348_638_390,
        source_ip: "192.0.2.1",
        protocol: "HTTP/1.1",
        user_agent: "test",
        ..EventInput::default()
    }
}

fn all(input: &EventInput<'_>) -> [Value; 3] {
    [
        parse(&payload_v2(input)),
        parse(&payload_v1(input)),
        parse(&rest_proxy(input)),
    ]
}

#[test]
fn versions_and_context_fields() {
    let [v2, v1, rest] = all(&base());
    assert_eq!(v2["version"], "2.0");
    assert_eq!(v1["version"], "1.0");
    assert!(rest.get("version").is_none());
    assert_eq!(v2["requestContext"]["domainPrefix"], "api");
    assert_eq!(v2["requestContext"]["time"], "04/Mar/2020:19:03:58 +0000");
    assert_eq!(v2["requestContext"]["timeEpoch"], 1_583_348_638_390_i64);
    assert_eq!(
        v1["requestContext"]["requestTime"],
        "04/Mar/2020:19:03:58 +0000"
    );
    assert_eq!(
        rest["requestContext"]["requestTimeEpoch"],
        1_583_348_638_390_i64
    );
    assert_eq!(rest["requestContext"]["path"], "/prod/pets");
    assert_eq!(rest["path"], "/pets");
    assert_eq!(rest["requestContext"]["resourceId"], Value::Null);
    // `identity.apiKey` is REST only.
    assert_eq!(rest["requestContext"]["identity"]["apiKey"], Value::Null);
    assert!(v1["requestContext"]["identity"].get("apiKey").is_none());
}

#[test]
fn unicode_path_and_query() {
    let input = EventInput {
        raw_path: "/caf%C3%A9/%E2%82%AC",
        path: "/caf%C3%A9/%E2%82%AC",
        raw_query: "q=%E2%82%AC&name=caf%C3%A9+au+lait&bad=%zz",
        path_parameters: &[("name", "caf\u{e9}")],
        headers: &[(b"X-Note", "d\u{e9}j\u{e0} vu".as_bytes())],
        ..base()
    };
    let [v2, v1, rest] = all(&input);
    assert_eq!(v2["rawPath"], "/caf%C3%A9/%E2%82%AC");
    assert_eq!(v2["requestContext"]["http"]["path"], "/caf%C3%A9/%E2%82%AC");
    assert_eq!(v2["rawQueryString"], input.raw_query);
    assert_eq!(v2["queryStringParameters"]["q"], "\u{20ac}");
    assert_eq!(v2["queryStringParameters"]["name"], "caf\u{e9}+au+lait");
    assert_eq!(v2["queryStringParameters"]["bad"], "%zz");
    assert_eq!(v2["pathParameters"]["name"], "caf\u{e9}");
    assert_eq!(v2["headers"]["x-note"], "d\u{e9}j\u{e0} vu");
    assert_eq!(
        v1["multiValueQueryStringParameters"]["q"],
        json!(["\u{20ac}"])
    );
    assert_eq!(rest["headers"]["X-Note"], "d\u{e9}j\u{e0} vu");
    assert_eq!(rest["path"], "/caf%C3%A9/%E2%82%AC");
}

#[test]
fn empty_body() {
    let [v2, v1, rest] = all(&base());
    assert!(v2.get("body").is_none());
    assert_eq!(v2["isBase64Encoded"], false);
    assert_eq!(v1["body"], Value::Null);
    assert_eq!(v1["isBase64Encoded"], false);
    assert_eq!(rest["body"], Value::Null);
    assert_eq!(rest["isBase64Encoded"], false);
}

#[test]
fn binary_body_is_base64() {
    let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];
    let input = EventInput {
        method: "POST",
        body: &png,
        content_type: Some("image/png"),
        binary_media_types: &["image/*"],
        ..base()
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    for event in all(&input) {
        assert_eq!(event["body"], b64.as_str());
        assert_eq!(event["isBase64Encoded"], true);
    }
    // A non-text type is base64 in HTTP APIs even when the bytes are UTF-8 …
    let input = EventInput {
        body: b"plain bytes",
        content_type: Some("application/octet-stream"),
        binary_media_types: &[],
        ..input
    };
    let [v2, v1, rest] = all(&input);
    assert_eq!(v2["body"], "cGxhaW4gYnl0ZXM=");
    assert_eq!(v2["isBase64Encoded"], true);
    assert_eq!(v1["isBase64Encoded"], true);
    // … while REST sends text unless the type is one of the API's binary media types.
    assert_eq!(rest["body"], "plain bytes");
    assert_eq!(rest["isBase64Encoded"], false);
    // Text types stay text.
    let input = EventInput {
        body: b"a=1&b=2",
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
        ..input
    };
    for event in all(&input) {
        assert_eq!(event["body"], "a=1&b=2");
        assert_eq!(event["isBase64Encoded"], false);
    }
}

#[test]
fn duplicate_headers_and_query_parameters() {
    let headers: &[(&[u8], &[u8])] = &[
        (b"X-Tag", b"one"),
        (b"x-tag", b"two, three"),
        (b"Accept", b"*/*"),
    ];
    let input = EventInput {
        headers,
        raw_query: "a=1&b=x&a=2&flag&&a=3",
        ..base()
    };
    let [v2, v1, rest] = all(&input);
    assert_eq!(
        v2["headers"],
        json!({"x-tag": "one,two, three", "accept": "*/*"})
    );
    assert_eq!(
        v2["queryStringParameters"],
        json!({"a": "1,2,3", "b": "x", "flag": ""})
    );
    for event in [v1, rest] {
        // The first spelling names the header; `headers` holds the last value.
        assert_eq!(
            event["headers"],
            json!({"X-Tag": "two, three", "Accept": "*/*"})
        );
        assert_eq!(
            event["multiValueHeaders"],
            json!({"X-Tag": ["one", "two, three"], "Accept": ["*/*"]})
        );
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "3", "b": "x", "flag": ""})
        );
        assert_eq!(
            event["multiValueQueryStringParameters"],
            json!({"a": ["1", "2", "3"], "b": ["x"], "flag": [""]})
        );
    }
}

#[test]
fn cookies() {
    let headers: &[(&[u8], &[u8])] = &[
        (b"Cookie", b"a=1; b=2"),
        (b"Host", b"api.example.com"),
        (b"cookie", b"c=3;"),
    ];
    let input = EventInput { headers, ..base() };
    let [v2, v1, rest] = all(&input);
    assert_eq!(v2["cookies"], json!(["a=1", "b=2", "c=3"]));
    assert_eq!(v2["headers"], json!({"host": "api.example.com"}));
    // 1.0 and REST leave them in the headers.
    for event in [v1, rest] {
        assert_eq!(event["headers"]["cookie"], Value::Null);
        assert_eq!(event["headers"]["Cookie"], "c=3;");
        assert_eq!(
            event["multiValueHeaders"]["Cookie"],
            json!(["a=1; b=2", "c=3;"])
        );
        assert!(event.get("cookies").is_none());
    }
}

#[test]
fn absent_maps() {
    let [v2, v1, rest] = all(&base());
    for key in [
        "cookies",
        "queryStringParameters",
        "pathParameters",
        "stageVariables",
        "body",
    ] {
        assert!(v2.get(key).is_none(), "2.0 {key}");
    }
    assert_eq!(v2["headers"], json!({}));
    for event in [v1, rest] {
        for key in [
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "body",
        ] {
            assert_eq!(event.get(key), Some(&Value::Null), "{key}");
        }
    }
}

#[test]
fn client_certificate_fields() {
    let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client one");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
    params.not_before = rcgen::date_time_ymd(2026, 8, 3);
    params.not_after = rcgen::date_time_ymd(2027, 8, 3);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let parsed = ClientCertificate::parse(cert.der()).unwrap();
    let input = EventInput {
        client_cert: Some(&parsed),
        ..base()
    };
    let [v2, v1, rest] = all(&input);
    let expect = |c: &Value| {
        assert_eq!(c["subjectDN"], "CN=client one");
        assert_eq!(c["issuerDN"], "CN=client one");
        assert_eq!(c["serialNumber"], "0a:bc");
        assert_eq!(c["validity"]["notBefore"], "Aug  3 00:00:00 2026 GMT");
        assert_eq!(c["validity"]["notAfter"], "Aug  3 00:00:00 2027 GMT");
        let pem = c["clientCertPem"].as_str().unwrap();
        let body: String = pem
            .strip_prefix("-----BEGIN CERTIFICATE-----\n")
            .and_then(|p| p.strip_suffix("-----END CERTIFICATE-----\n"))
            .unwrap()
            .lines()
            .inspect(|l| assert!(l.len() <= 64))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(der, cert.der().to_vec());
    };
    expect(&v2["requestContext"]["authentication"]["clientCert"]);
    expect(&v1["requestContext"]["identity"]["clientCert"]);
    expect(&rest["requestContext"]["identity"]["clientCert"]);

    // Without one: no `authentication` in 2.0, `null` in 1.0 and REST.
    let [v2, v1, rest] = all(&base());
    assert!(v2["requestContext"].get("authentication").is_none());
    assert_eq!(v1["requestContext"]["identity"]["clientCert"], Value::Null);
    assert_eq!(
        rest["requestContext"]["identity"]["clientCert"],
        Value::Null
    );
}

#[test]
fn the_comparison_reports_the_first_difference() {
    let theirs = fixture("example-apigw-v2-request-no-authorizer.json");
    let mut ours = theirs.clone();
    assert_eq!(first_difference("$", &ours, &theirs), None);
    *at(&mut ours, "/requestContext/http/sourceIp") = json!("1.2.3.5");
    assert_eq!(
        first_difference("$", &ours, &theirs).unwrap(),
        "$.requestContext.http.sourceIp: ours \"1.2.3.5\", AWS \"1.2.3.4\""
    );
    let mut ours = theirs.clone();
    remove(&mut ours, "/isBase64Encoded");
    assert!(first_difference("$", &ours, &theirs)
        .unwrap()
        .starts_with("$.isBase64Encoded: only AWS has it"));
}
