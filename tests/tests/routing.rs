//! Routing end to end: path parameters through URL templates, greedy `{proxy+}`, precedence
//! (literal > `{param}` > greedy, method > `ANY`), the `$default` route, stage prefixes and
//! stage variables, host-restricted APIs, custom domain base paths, the 404 JSON for unmatched
//! requests and `gateway_responses` overrides. Each test runs on both drivers.

use tollgate_tests::config::listener;
use tollgate_tests::{get, get_host, request, Gateway, Upstream, DRIVERS};

/// API `shop` with a `$default` stage (variables `flavour = dev`) and a `prod` stage, routes
/// covering every precedence level, and a `$default` route.
fn shop_config(up: &Upstream) -> String {
    let up = up.addr();
    format!(
        r#"{listener}
[[apis]]
id = "shop"

[apis.stages."$default"]
variables = {{ flavour = "dev", prefix = "backend-dev" }}

[apis.stages.prod]
variables = {{ flavour = "prod", prefix = "backend-prod" }}

[[apis.routes]]
route = "GET /pets/{{id}}"
integration = "pet"

[[apis.routes]]
route = "GET /pets/special"
integration = "special"

[[apis.routes]]
route = "ANY /pets/{{id}}"
integration = "any_pet"

[[apis.routes]]
route = "GET /files/{{proxy+}}"
integration = "files"

[[apis.routes]]
route = "ANY /x/{{rest+}}"
integration = "greedy"

[[apis.routes]]
route = "GET /x/{{id}}"
integration = "param"

[[apis.routes]]
route = "GET /x/literal"
integration = "literal"

[[apis.routes]]
route = "$default"
integration = "fallback"

[apis.integrations.pet]
type = "http"
url = "http://{up}/${{stageVariables.prefix}}/pet/{{id}}?flavour=${{stageVariables.flavour}}"
request_headers = {{ set = {{ "x-flavour" = "${{stageVariables.flavour}}" }} }}

[apis.integrations.files]
type = "http"
url = "http://{up}/store/{{proxy}}"

[apis.integrations.special]
type = "mock"
body = "special"

[apis.integrations.any_pet]
type = "mock"
body = "any-pet"

[apis.integrations.greedy]
type = "mock"
body = "greedy"

[apis.integrations.param]
type = "mock"
body = "param"

[apis.integrations.literal]
type = "mock"
body = "literal ${{stageVariables.flavour}}"

[apis.integrations.fallback]
type = "mock"
status = 299
headers = {{ "x-fallback" = "yes" }}
body = "fallback ${{stageVariables.flavour}}"
"#,
        listener = listener("public"),
    )
}

#[test]
fn path_params_go_through_the_url_template() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&shop_config(&up), driver);
        let addr = gw.addr("public");

        let r = get(addr, "/pets/42?color=brown");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let seen = up.requests();
        let last = seen.last().expect("upstream saw the request");
        // URL template path + template query, then the client's query appended.
        assert!(
            last.target.starts_with("/backend-dev/pet/42?"),
            "{driver:?}: {}",
            last.target
        );
        assert!(last.target.contains("flavour=dev"), "{}", last.target);
        assert!(last.target.contains("color=brown"), "{}", last.target);
        assert_eq!(last.header("x-flavour"), Some("dev"));
    }
}

#[test]
fn greedy_proxy_forwards_the_rest_of_the_path() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&shop_config(&up), driver);
        let addr = gw.addr("public");

        let r = get(addr, "/files/a/b/c.txt");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["target"], "/store/a/b/c.txt", "{driver:?}");
        // One segment is enough for a greedy parameter.
        let r = get(addr, "/files/one");
        assert_eq!(r.json()["target"], "/store/one", "{driver:?}");
    }
}

#[test]
fn precedence_literal_param_greedy_and_method_over_any() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&shop_config(&up), driver);
        let addr = gw.addr("public");

        assert_eq!(get(addr, "/x/literal").text(), "literal dev", "{driver:?}");
        assert_eq!(get(addr, "/x/7").text(), "param", "{driver:?}");
        assert_eq!(get(addr, "/x/7/8").text(), "greedy", "{driver:?}");
        // POST /x/7: `GET /x/{id}` does not match the method; falls back to `ANY /x/{rest+}`.
        let r = request(
            addr,
            "POST /x/7 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(r.text(), "greedy", "{driver:?}");

        assert_eq!(get(addr, "/pets/special").text(), "special", "{driver:?}");
        // GET on the param route proxies; DELETE takes the ANY route.
        let r = request(addr, "DELETE /pets/5 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.text(), "any-pet", "{driver:?}");
        assert_eq!(up.requests().len(), 0, "{driver:?}: nothing proxied");
        assert_eq!(get(addr, "/pets/5").status, 200);
        assert_eq!(up.requests().len(), 1, "{driver:?}");
    }
}

#[test]
fn default_route_catches_the_rest() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&shop_config(&up), driver);
        let addr = gw.addr("public");

        for path in ["/", "/nothing/here", "/pets", "/pets/1/2"] {
            let r = get(addr, path);
            assert_eq!(r.status, 299, "{driver:?} {path}: {}", r.text());
            assert_eq!(r.header("x-fallback"), Some("yes"));
            assert_eq!(r.text(), "fallback dev", "{driver:?} {path}");
        }
    }
}

#[test]
fn stage_prefix_and_stage_variables() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&shop_config(&up), driver);
        let addr = gw.addr("public");

        let r = get(addr, "/prod/pets/9");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let seen = up.requests();
        let last = seen.last().expect("upstream saw the request");
        assert!(
            last.target.starts_with("/backend-prod/pet/9?"),
            "{driver:?}: {}",
            last.target
        );
        assert!(last.target.contains("flavour=prod"), "{}", last.target);
        assert_eq!(last.header("x-flavour"), Some("prod"));

        assert_eq!(get(addr, "/prod/x/literal").text(), "literal prod");
        // The prod stage's own `$default` route.
        let r = get(addr, "/prod/unknown");
        assert_eq!(r.status, 299);
        assert_eq!(r.text(), "fallback prod", "{driver:?}");
        // `$default` stage: no prefix.
        assert_eq!(get(addr, "/x/literal").text(), "literal dev");
    }
}

#[test]
fn api_without_stages_has_an_implicit_default_stage() {
    for driver in DRIVERS {
        let config = format!(
            "{}[[apis]]\nid = \"a\"\n[[apis.routes]]\nroute = \"GET /ping\"\nintegration = \"m\"\n\
             [apis.integrations.m]\ntype = \"mock\"\nbody = \"pong\"\n",
            listener("public")
        );
        let gw = Gateway::start(&config, driver);
        let r = get(gw.addr("public"), "/ping");
        assert_eq!((r.status, r.text().as_str()), (200, "pong"), "{driver:?}");
    }
}

/// No `$default` route anywhere: an API restricted to `internal.example`, an API on any host
/// with a custom domain mapping, and a `RESOURCE_NOT_FOUND` override on a third API.
fn hosts_config() -> String {
    format!(
        r#"{listener}
[[apis]]
id = "internal"
hosts = ["internal.example"]

[[apis.routes]]
route = "GET /whoami"
integration = "m"

[apis.integrations.m]
type = "mock"
body = "internal"

[[apis]]
id = "shop"

[apis.stages.prod]
variables = {{ who = "shop-prod" }}

[[apis.routes]]
route = "GET /items/{{id}}"
integration = "item"

[apis.integrations.item]
type = "mock"
body = "item of ${{stageVariables.who}}"

[[domains]]
host = "api.example.com"

[[domains.mappings]]
base_path = "v1"
api = "shop"
stage = "prod"
"#,
        listener = listener("public"),
    )
}

#[test]
fn host_restricted_api() {
    for driver in DRIVERS {
        let gw = Gateway::start(&hosts_config(), driver);
        let addr = gw.addr("public");

        let r = get_host(addr, "internal.example", "/whoami");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "internal"),
            "{driver:?}"
        );
        // Case-insensitive host, port ignored.
        let r = get_host(addr, "Internal.EXAMPLE:8080", "/whoami");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        let r = get_host(addr, "other.example", "/whoami");
        assert_eq!(r.status, 404, "{driver:?}: {}", r.text());
    }
}

#[test]
fn custom_domain_base_path_mapping() {
    for driver in DRIVERS {
        let gw = Gateway::start(&hosts_config(), driver);
        let addr = gw.addr("public");

        let r = get_host(addr, "api.example.com", "/v1/items/3");
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.text(), "item of shop-prod");
        // The stage stays reachable by its own prefix on any host.
        let r = get_host(addr, "whatever", "/prod/items/3");
        assert_eq!(r.text(), "item of shop-prod", "{driver:?}");
        // The mapping is per host and per base path.
        assert_eq!(get_host(addr, "api.example.com", "/v2/items/3").status, 404);
        assert_eq!(get_host(addr, "whatever", "/v1/items/3").status, 404);
    }
}

#[test]
fn unmatched_is_a_404_json_with_a_request_id() {
    for driver in DRIVERS {
        let gw = Gateway::start(&hosts_config(), driver);
        let addr = gw.addr("public");

        let r = get(addr, "/no/such/route");
        assert_eq!(r.status, 404, "{driver:?}");
        assert_eq!(r.json(), serde_json::json!({"message": "Not Found"}));
        assert!(
            r.header("content-type")
                .is_some_and(|v| v.contains("application/json")),
            "{:?}",
            r.headers
        );
        let id = r.header("x-request-id").expect("x-request-id");
        assert!(!id.is_empty());
        // A client-sent id is echoed.
        let r = request(
            addr,
            "GET /nope HTTP/1.1\r\nHost: h\r\nx-request-id: my-id-123\r\n\r\n",
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.header("x-request-id"), Some("my-id-123"), "{driver:?}");
        // Two generated ids differ.
        let a = get(addr, "/a").header("x-request-id").map(str::to_string);
        let b = get(addr, "/b").header("x-request-id").map(str::to_string);
        assert_ne!(a, b);
    }
}

fn overrides_config(up_url: &str) -> String {
    format!(
        r#"{listener}
[[apis]]
id = "custom"

[apis.stages.prod]

[[apis.routes]]
route = "GET /ok"
integration = "ok"

[[apis.routes]]
route = "GET /down"
integration = "down"

[apis.integrations.ok]
type = "mock"
body = "ok"

[apis.integrations.down]
type = "http"
url = "{up_url}"

[apis.gateway_responses.RESOURCE_NOT_FOUND]
status = 410
headers = {{ "x-custom" = "nf" }}
body = '{{"error":"$context.error.message","id":"$context.requestId"}}'

[apis.gateway_responses.INTEGRATION_FAILURE]
status = 503
headers = {{ "x-custom" = "down" }}
body = '{{"error":"upstream is down"}}'
"#,
        listener = listener("public"),
    )
}

/// An address nothing listens on (bound then released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

#[test]
fn gateway_response_override_for_integration_failure() {
    for driver in DRIVERS {
        let gw = Gateway::start(&overrides_config(&dead_url()), driver);
        let addr = gw.addr("public");
        let r = get(addr, "/prod/down");
        assert_eq!(r.status, 503, "{driver:?}: {}", r.text());
        assert_eq!(r.header("x-custom"), Some("down"));
        assert_eq!(r.json()["error"], "upstream is down");
        assert!(r.header("x-request-id").is_some());
    }
}

/// An API's `RESOURCE_NOT_FOUND` override applies to unmatched paths under its stage prefix
/// (the only API on the listener, so the 404 is unambiguously its own).
#[test]
fn gateway_response_override_for_resource_not_found() {
    for driver in DRIVERS {
        let gw = Gateway::start(&overrides_config(&dead_url()), driver);
        let addr = gw.addr("public");
        assert_eq!(get(addr, "/prod/ok").text(), "ok");
        let r = get(addr, "/prod/missing");
        assert_eq!(r.status, 410, "{driver:?}: {} {:?}", r.text(), r.headers);
        assert_eq!(r.header("x-custom"), Some("nf"));
        let body = r.json();
        assert_eq!(body["error"], "Not Found");
        assert_eq!(
            body["id"].as_str(),
            r.header("x-request-id"),
            "$context.requestId is the response's request id"
        );
    }
}
