//! API keys, usage plans, throttles and quotas end to end, on the real binary with the test
//! clock (no sleeps): key required / missing / unknown / disabled / not in a plan; a plan
//! throttle's burst counted exactly and refilled by moving the clock; per-client and stage
//! throttles; quota exhaustion and reset at the UTC day boundary; quota kept across a clean
//! restart and across SIGKILL (never over the limit, never under it by more than the
//! documented 1.5 chunks); lower priority tiers shed first under overload. Both drivers.

use std::time::Duration;

use tollgate_tests::config::listener;
use tollgate_tests::usage::{advance_clock, clock_control, get_with_key, StateDir};
use tollgate_tests::{Behaviour, Client, Gate, Gateway, Options, Response, Upstream, DRIVERS};

const GOLD: &str = "gold-key-value-0123456789";
const DISABLED: &str = "disabled-key-value-0123456789";
const STRANGER: &str = "stranger-key-value-0123456789";

/// One API `api` requiring keys on `GET /hello` (not on `GET /open`), keys `gold` (in plan
/// `gold`), `off` (disabled, in the plan) and `stranger` (in no plan); `plan_extra` goes into
/// the plan's table, `top` at the top level.
fn config(state: &StateDir, top: &str, plan_extra: &str) -> String {
    format!(
        "{top}\n[state]\ndir = \"{dir}\"\nquota_chunk = 4\n\n\
         [[api_keys.keys]]\nid = \"gold\"\nvalue = \"{GOLD}\"\n\n\
         [[api_keys.keys]]\nid = \"off\"\nvalue = \"{DISABLED}\"\nenabled = false\n\n\
         [[api_keys.keys]]\nid = \"stranger\"\nvalue = \"{STRANGER}\"\n\n\
         [[usage_plans]]\nid = \"gold\"\nkeys = [\"gold\", \"off\"]\n{plan_extra}\n\n\
         [[usage_plans.stages]]\napi = \"api\"\n\n\
         {listener}[[apis]]\nid = \"api\"\napi_key_required = true\n\n\
         [[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
         [[apis.routes]]\nroute = \"GET /open\"\nintegration = \"hello\"\napi_key_required = false\n\n\
         [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n",
        dir = state.toml(),
        listener = listener("public"),
    )
}

fn status_and_message(r: &Response) -> (u16, String) {
    let message = if r.body.is_empty() {
        String::new()
    } else {
        r.json()["message"].as_str().unwrap_or("").to_string()
    };
    (r.status, message)
}

/// Sends GETs with `key` until one is not 200 (at most `max`); returns (200s, the other).
fn serve_until_refused(gw: &Gateway, key: &str, max: usize) -> (usize, Option<Response>) {
    for served in 0..max {
        let r = get_with_key(gw.addr("public"), "/hello", Some(key));
        if r.status != 200 {
            return (served, Some(r));
        }
    }
    (max, None)
}

#[test]
fn keys_are_required_checked_and_must_be_in_a_plan_for_the_stage() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let gw = Gateway::start(&config(&state, "", ""), driver);
        let addr = gw.addr("public");
        let forbidden = (403, "Forbidden".to_string());
        for key in [
            None,
            Some("no-such-key-0123456789abc"),
            Some(DISABLED),
            Some(STRANGER),
        ] {
            let r = get_with_key(addr, "/hello", key);
            assert_eq!(status_and_message(&r), forbidden, "{driver:?} key {key:?}");
            assert!(r.header("x-request-id").is_some());
        }
        let ok = get_with_key(addr, "/hello", Some(GOLD));
        assert_eq!(
            (ok.status, ok.text()),
            (200, "hello".to_string()),
            "{driver:?}"
        );
        let open = get_with_key(addr, "/open", None);
        assert_eq!(open.status, 200, "{driver:?}: a route may opt out");
    }
}

#[test]
fn plan_throttle_allows_the_burst_then_one_request_per_interval() {
    for driver in DRIVERS {
        let state = StateDir::new();
        // One request per 100 s, burst 3: the real time a test takes adds no token.
        let plan = "throttle = { rate_per_s = 0.01, burst = 3 }";
        let gw = Gateway::start_with(&config(&state, "", plan), Options::new(driver).test_clock());
        let clock = clock_control(&gw);
        let (served, refused) = serve_until_refused(&gw, GOLD, 10);
        assert_eq!(served, 3, "{driver:?}: the burst");
        let refused = refused.expect("a refusal");
        assert_eq!(
            status_and_message(&refused),
            (429, "Too Many Requests".to_string())
        );
        let retry: u64 = refused
            .header("retry-after")
            .expect("retry-after")
            .parse()
            .expect("seconds");
        assert!((99..=100).contains(&retry), "retry-after {retry}");
        assert_eq!(
            refused.header("ratelimit-policy"),
            Some("\"plan\";q=3;w=300")
        );
        assert_eq!(
            refused.header("ratelimit"),
            Some(format!("\"plan\";r=0;t={retry}").as_str())
        );
        advance_clock(clock, 100_000);
        let (served, refused) = serve_until_refused(&gw, GOLD, 10);
        assert_eq!(served, 1, "{driver:?}: one interval, one request");
        assert_eq!(refused.map(|r| r.status), Some(429));
        // Requests without a valid key never reach the bucket.
        assert_eq!(get_with_key(gw.addr("public"), "/hello", None).status, 403);
        // A reload that changes the rate starts a full bucket at the new rate.
        let faster = config(&state, "", "throttle = { rate_per_s = 0.02, burst = 3 }");
        assert_eq!(gw.reload(&faster), Ok(2), "{driver:?}");
        let (served, _) = serve_until_refused(&gw, GOLD, 10);
        assert_eq!(served, 3, "{driver:?}: a new rate, a full bucket");
    }
}

#[test]
fn per_client_and_stage_throttles_apply_and_the_strictest_wins() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let mut toml = config(
            &state,
            "[throttle]\nrate_limit_headers = false\n",
            "throttle = { rate_per_s = 100, burst = 100 }",
        );
        toml = toml.replace(
            "api_key_required = true\n",
            "api_key_required = true\nclient_throttle = { rate_per_s = 0.01, burst = 2 }\n",
        );
        let gw = Gateway::start_with(&toml, Options::new(driver).test_clock());
        let clock = clock_control(&gw);
        let addr = gw.addr("public");
        let (served, refused) = serve_until_refused(&gw, GOLD, 10);
        assert_eq!(served, 2, "{driver:?}: per-address burst across the API");
        let refused = refused.expect("refusal");
        assert_eq!(refused.status, 429);
        assert!(refused.header("retry-after").is_some());
        assert_eq!(refused.header("ratelimit"), None, "headers switched off");
        // The address's bucket is shared by the API's routes.
        assert_eq!(get_with_key(addr, "/open", None).status, 429);
        advance_clock(clock, 100_000);
        assert_eq!(get_with_key(addr, "/open", None).status, 200);
        assert_eq!(get_with_key(addr, "/open", None).status, 429);
    }
}

/// Milliseconds from `now_ms` to 01:00 UTC of the next day.
fn to_next_day_one_am(now_ms: u64) -> u64 {
    let day = 86_400_000;
    (now_ms / day + 1) * day + 3_600_000 - now_ms
}

#[test]
fn quota_is_exact_and_resets_at_the_utc_day_boundary() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let plan = "quota = { limit = 5, period = \"DAY\" }";
        let gw = Gateway::start_with(&config(&state, "", plan), Options::new(driver).test_clock());
        let clock = clock_control(&gw);
        // Start at 01:00 UTC so the whole test stays inside one day.
        let now = advance_clock(clock, 0);
        advance_clock(clock, to_next_day_one_am(now));
        let (served, refused) = serve_until_refused(&gw, GOLD, 20);
        assert_eq!(served, 5, "{driver:?}: exactly the limit");
        let refused = refused.expect("refusal");
        assert_eq!(
            status_and_message(&refused),
            (429, "Limit Exceeded".to_string())
        );
        let retry: u64 = refused
            .header("retry-after")
            .expect("retry-after")
            .parse()
            .expect("seconds");
        assert!(
            (82_700..=82_800).contains(&retry),
            "until midnight: {retry}"
        );
        assert_eq!(
            refused.header("ratelimit-policy"),
            Some("\"quota\";q=5;w=86400")
        );
        // Refused requests did not count: still refused, and the next day brings 5 more.
        assert_eq!(
            get_with_key(gw.addr("public"), "/hello", Some(GOLD)).status,
            429
        );
        advance_clock(clock, 23 * 3_600_000);
        let (served, _) = serve_until_refused(&gw, GOLD, 20);
        assert_eq!(served, 5, "{driver:?}: a new day");
    }
}

#[test]
fn quota_survives_a_clean_restart_exactly() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let toml = config(&state, "", "quota = { limit = 7, period = \"MONTH\" }");
        let gw = Gateway::start(&toml, driver);
        for _ in 0..3 {
            assert_eq!(
                get_with_key(gw.addr("public"), "/hello", Some(GOLD)).status,
                200
            );
        }
        assert!(gw.terminate().success());
        let gw = Gateway::start(&toml, driver);
        let (served, refused) = serve_until_refused(&gw, GOLD, 20);
        assert_eq!(served, 4, "{driver:?}: 7 - 3 after a clean stop");
        assert_eq!(refused.map(|r| r.status), Some(429));
    }
}

#[test]
fn quota_after_sigkill_is_never_over_and_at_most_one_and_a_half_chunks_under() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let toml = config(&state, "", "quota = { limit = 20, period = \"MONTH\" }");
        let mut gw = Gateway::start(&toml, driver);
        for _ in 0..5 {
            assert_eq!(
                get_with_key(gw.addr("public"), "/hello", Some(GOLD)).status,
                200
            );
        }
        gw.signal(libc::SIGKILL);
        gw.wait_exit(Duration::from_secs(10));
        drop(gw);
        let gw = Gateway::start(&toml, driver);
        let (served, refused) = serve_until_refused(&gw, GOLD, 40);
        assert_eq!(refused.map(|r| r.status), Some(429), "{driver:?}");
        // quota_chunk = 4: at most 4 + 2 reserved but unspent at the kill.
        assert!(
            served <= 15,
            "{driver:?}: over-served: {served} after 5 of 20"
        );
        assert!(
            served >= 15 - 6,
            "{driver:?}: under-served past the bound: {served}"
        );
    }
}

#[test]
fn under_overload_lower_tiers_are_shed_first_and_counted() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let gate = Gate::new();
        let up = Upstream::start(Behaviour::echo().gate(gate.clone()));
        // Tier ceilings with in_flight_max = 10: gold (0) 10, bronze (5) 5, anonymous (9) 1.
        let toml = format!(
            "[admin]\nbind = \"127.0.0.1:0\"\n\n[overload]\nin_flight_max = 10\n\n\
             [state]\ndir = \"{dir}\"\n\n\
             [[api_keys.keys]]\nid = \"gold\"\nvalue = \"{GOLD}\"\n\n\
             [[api_keys.keys]]\nid = \"bronze\"\nvalue = \"{STRANGER}\"\n\n\
             [[usage_plans]]\nid = \"gold\"\nkeys = [\"gold\"]\n\n[[usage_plans.stages]]\napi = \"api\"\n\n\
             [[usage_plans]]\nid = \"bronze\"\ntier = 5\nkeys = [\"bronze\"]\n\n[[usage_plans.stages]]\napi = \"api\"\n\n\
             {listener}[[apis]]\nid = \"api\"\napi_key_required = true\n\n\
             [[apis.routes]]\nroute = \"GET /slow\"\nintegration = \"up\"\n\n\
             [[apis.routes]]\nroute = \"GET /anonymous\"\nintegration = \"up\"\napi_key_required = false\n\n\
             [apis.integrations.up]\ntype = \"http\"\nurl = \"{url}\"\n",
            dir = state.toml(),
            listener = listener("public"),
            url = up.url(),
        );
        let gw = Gateway::start_with(&toml, Options::new(driver).workers(1));
        let addr = gw.addr("public");
        let slow = |key: &str| {
            let mut c = Client::connect(addr);
            c.send(format!(
                "GET /slow HTTP/1.1\r\nHost: test\r\nx-api-key: {key}\r\n\r\n"
            ));
            c
        };
        let mut waiting: Vec<Client> = (0..5).map(|_| slow(GOLD)).collect();
        assert!(gate.wait_arrivals(5, Duration::from_secs(5)), "{driver:?}");
        let shed = get_with_key(addr, "/slow", Some(STRANGER));
        assert_eq!(
            status_and_message(&shed),
            (503, "Service Unavailable".to_string()),
            "{driver:?}: bronze at its ceiling"
        );
        assert_eq!(shed.header("retry-after"), Some("1"));
        assert_eq!(
            get_with_key(addr, "/anonymous", None).status,
            503,
            "anonymous is shed first"
        );
        waiting.push(slow(GOLD));
        assert!(
            gate.wait_arrivals(6, Duration::from_secs(5)),
            "{driver:?}: gold still admitted"
        );
        gate.open();
        for c in &mut waiting {
            assert_eq!(c.read_response().status, 200);
        }
        assert_eq!(
            get_with_key(addr, "/slow", Some(STRANGER)).status,
            200,
            "{driver:?}"
        );
        assert_eq!(get_with_key(addr, "/anonymous", None).status, 200);
        let metrics = admin_get(&gw, "/metrics");
        assert!(
            metrics.contains("tollgate_requests_shed_total{tier=\"5\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tollgate_requests_shed_total{tier=\"9\"} 1\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("tollgate_requests_shed_total{tier=\"0\"} 0\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains(
                "tollgate_usage_plan_requests_total{plan=\"gold\",result=\"served\"} 6\n"
            ),
            "{metrics}"
        );
        assert!(
            !metrics.contains("tollgate_api_key_requests_total"),
            "per-key series are off by default"
        );
    }
}

/// `GET path` on the admin listener; returns the body.
fn admin_get(gw: &Gateway, path: &str) -> String {
    let event = gw
        .wait_for(
            |e| tollgate_tests::is(e, "admin listening"),
            Duration::from_secs(5),
        )
        .expect("admin listening");
    let addr: std::net::SocketAddr = event["addr"].as_str().expect("addr").parse().expect("addr");
    let r = tollgate_tests::request(addr, format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n"));
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn a_reload_that_lowers_a_quota_applies_at_once() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let before = config(
            &state,
            "",
            "throttle = { rate_per_s = 0.01, burst = 5 }\nquota = { limit = 10, period = \"MONTH\" }",
        );
        let gw = Gateway::start(&before, driver);
        for _ in 0..3 {
            assert_eq!(
                get_with_key(gw.addr("public"), "/hello", Some(GOLD)).status,
                200
            );
        }
        // Quota 10 → 4 with 3 spent: at most 1 more (what was reserved may count as spent),
        // never more.
        let after = config(
            &state,
            "",
            "throttle = { rate_per_s = 0.02, burst = 5 }\nquota = { limit = 4, period = \"MONTH\" }",
        );
        assert_eq!(gw.reload(&after), Ok(2), "{driver:?}");
        let (served, refused) = serve_until_refused(&gw, GOLD, 10);
        assert!(served <= 1, "{driver:?}: over the lowered quota: {served}");
        let refused = refused.expect("refusal");
        assert_eq!(
            status_and_message(&refused),
            (429, "Limit Exceeded".to_string())
        );
    }
}

#[test]
fn a_state_directory_cannot_be_added_by_a_reload() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let with_state = config(&state, "", "quota = { limit = 10, period = \"MONTH\" }");
        let without = with_state
            .replace(
                &format!("[state]\ndir = \"{}\"\nquota_chunk = 4\n", state.toml()),
                "",
            )
            .replace("quota = { limit = 10, period = \"MONTH\" }", "");
        assert!(!without.contains("[state]"));
        let gw = Gateway::start(&without, driver);
        let err = gw.reload(&with_state).expect_err("refused");
        assert!(
            err.contains("can only be added by a restart"),
            "{driver:?}: {err}"
        );
        assert_eq!(
            get_with_key(gw.addr("public"), "/hello", Some(GOLD)).status,
            200
        );
    }
}
