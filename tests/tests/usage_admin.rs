//! The admin API over keys, usage plans, quotas and usage, end to end: the token rules, key
//! creation (value shown once) and use through a plan attachment, disabling, quota reads,
//! extension and reset, GetUsage-shaped JSON and CSV export, persistence across a restart,
//! and deletion. Both drivers.

use std::net::SocketAddr;

use serde_json::Value;
use tollgate_tests::admin::admin_addr;
use tollgate_tests::config::listener;
use tollgate_tests::usage::{get_with_key, StateDir};
use tollgate_tests::{Gateway, DRIVERS};

const TOKEN: &str = "admin-token-0123456789";
const GOLD: &str = "gold-key-value-0123456789";

fn config(state: &StateDir) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
         [state]\ndir = \"{dir}\"\n\n\
         [[api_keys.keys]]\nid = \"gold\"\nvalue = \"{GOLD}\"\n\n\
         [[usage_plans]]\nid = \"gold\"\nkeys = [\"gold\"]\nquota = {{ limit = 3, period = \"MONTH\" }}\n\n\
         [[usage_plans.stages]]\napi = \"api\"\n\n\
         {listener}[[apis]]\nid = \"api\"\napi_key_required = true\n\n\
         [[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
         [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n",
        dir = state.toml(),
        listener = listener("public"),
    )
}

/// One admin request with (or without) the token.
fn call(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Option<&str>,
    token: bool,
) -> (u16, String) {
    tollgate_tests::admin::call(addr, method, target, body, token.then_some(TOKEN))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    tollgate_config::period::format_day(secs.div_euclid(86_400))
}

#[test]
fn keys_plans_quotas_and_usage_through_the_admin_api() {
    for driver in DRIVERS {
        let state = StateDir::new();
        let toml = config(&state);
        let gw = Gateway::start(&toml, driver);
        let admin = admin_addr(&gw);
        let public = gw.addr("public");

        // Changes need the token; reads too when one is configured.
        let (status, _) = call(
            admin,
            "POST",
            "/apikeys",
            Some("{\"name\":\"acme\"}"),
            false,
        );
        assert_eq!(status, 401, "{driver:?}");
        let (status, body) = call(
            admin,
            "POST",
            "/apikeys",
            Some("{\"name\":\"acme\",\"id\":\"acme\"}"),
            true,
        );
        assert_eq!(status, 201, "{driver:?}: {body}");
        let created = json(&body);
        let value = created["value"]
            .as_str()
            .expect("value shown once")
            .to_string();
        assert_eq!(value.len(), 40);
        let (status, body) = call(admin, "POST", "/apikeys", Some("{\"id\":\"acme\"}"), true);
        assert_eq!(status, 409, "duplicate id: {body}");
        // The value of a file key is refused, and leaves nothing behind.
        let same = format!("{{\"id\":\"copy\",\"value\":\"{GOLD}\"}}");
        let (status, body) = call(admin, "POST", "/apikeys", Some(&same), true);
        assert_eq!(status, 409, "duplicate value: {body}");
        let (status, _) = call(admin, "GET", "/apikeys/copy", None, true);
        assert_eq!(status, 404, "a refused key is not kept");
        let (status, body) = call(
            admin,
            "POST",
            "/apikeys",
            Some("{\"value\":\"short\"}"),
            true,
        );
        assert_eq!(status, 400, "{body}");

        // Not in a plan yet: refused; attached: served.
        assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 403);
        let (status, body) = call(
            admin,
            "POST",
            "/usageplans/gold/keys",
            Some("{\"keyId\":\"acme\"}"),
            true,
        );
        assert_eq!(status, 201, "{body}");
        assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 200);

        // Listing shows both sources and never a value.
        let (status, body) = call(admin, "GET", "/apikeys", None, true);
        assert_eq!(status, 200);
        let list = json(&body);
        let ids: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|k| k["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["gold", "acme"]);
        assert!(!body.contains(&value), "a listing leaks the value");

        // Disabled keys are refused, enabled again served.
        let (status, _) = call(
            admin,
            "PATCH",
            "/apikeys/acme",
            Some("{\"enabled\":false}"),
            true,
        );
        assert_eq!(status, 200);
        assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 403);
        let (status, _) = call(
            admin,
            "PATCH",
            "/apikeys/acme",
            Some("{\"enabled\":true}"),
            true,
        );
        assert_eq!(status, 200);

        // Quota: 1 of 3 used; extend by 2; use up; reset.
        let (status, body) = call(admin, "GET", "/usageplans/gold/keys/acme/quota", None, true);
        assert_eq!(status, 200, "{body}");
        let q = json(&body);
        assert_eq!(
            (
                q["limit"].as_u64(),
                q["used"].as_u64(),
                q["remaining"].as_u64()
            ),
            (Some(3), Some(1), Some(2))
        );
        let (_, body) = call(
            admin,
            "POST",
            "/usageplans/gold/keys/acme/quota",
            Some("{\"extend\":2}"),
            true,
        );
        assert_eq!(json(&body)["remaining"].as_u64(), Some(4), "{body}");
        for _ in 0..4 {
            assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 200);
        }
        assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 429);
        let (_, body) = call(
            admin,
            "POST",
            "/usageplans/gold/keys/acme/quota",
            Some("{\"reset\":true}"),
            true,
        );
        assert_eq!(json(&body)["used"].as_u64(), Some(0), "{body}");
        assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 200);

        // Usage in GetUsage's shape: 6 served today (1 + 4 + 1), 1 quota-rejected.
        let day = today();
        let target = format!("/usageplans/gold/usage?startDate={day}&endDate={day}");
        let (status, body) = call(admin, "GET", &target, None, true);
        assert_eq!(status, 200, "{body}");
        let usage = json(&body);
        assert_eq!(usage["usagePlanId"], "gold");
        assert_eq!(usage["startDate"], day.as_str());
        assert_eq!(usage["items"]["acme"][0][0].as_u64(), Some(6), "{body}");
        let (status, csv) = call(
            admin,
            "GET",
            &format!("{target}&format=csv&keyId=acme"),
            None,
            true,
        );
        assert_eq!(status, 200);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("keyId,date,served,throttled,quotaRejected,remaining")
        );
        let row = lines.next().expect("one row");
        assert!(row.starts_with(&format!("acme,{day},6,0,1,")), "{row}");
        let target = format!("/usage/routes?startDate={day}&endDate={day}");
        let (status, body) = call(admin, "GET", &target, None, true);
        assert_eq!(status, 200, "{body}");
        let route = &json(&body)["items"]["api/$default/GET /hello"][0];
        assert_eq!(
            (route["served"].as_u64(), route["quotaRejected"].as_u64()),
            (Some(6), Some(1)),
            "{body}"
        );
        let (status, body) = call(
            admin,
            "GET",
            "/usageplans/gold/usage?startDate=2026-02-30&endDate=x",
            None,
            true,
        );
        assert_eq!(status, 400, "{body}");

        // Admin-made keys and attachments survive a restart.
        assert!(gw.terminate().success());
        let gw = Gateway::start(&toml, driver);
        let admin = admin_addr(&gw);
        let public = gw.addr("public");
        assert_eq!(
            get_with_key(public, "/hello", Some(&value)).status,
            200,
            "{driver:?}"
        );
        let (status, _) = call(admin, "DELETE", "/apikeys/gold", None, true);
        assert_eq!(status, 409, "file keys are changed in the file");
        let (status, _) = call(admin, "DELETE", "/apikeys/acme", None, true);
        assert_eq!(status, 200);
        assert_eq!(get_with_key(public, "/hello", Some(&value)).status, 403);
        assert_eq!(get_with_key(public, "/hello", Some(GOLD)).status, 200);
        // A key made again with the same id starts with a fresh quota.
        let (status, body) = call(admin, "POST", "/apikeys", Some("{\"id\":\"acme\"}"), true);
        assert_eq!(status, 201, "{body}");
        let again = json(&body)["value"].as_str().expect("value").to_string();
        let (status, _) = call(
            admin,
            "POST",
            "/usageplans/gold/keys",
            Some("{\"keyId\":\"acme\"}"),
            true,
        );
        assert_eq!(status, 201);
        assert_eq!(get_with_key(public, "/hello", Some(&again)).status, 200);
        let (_, body) = call(admin, "GET", "/usageplans/gold/keys/acme/quota", None, true);
        assert_eq!(json(&body)["used"].as_u64(), Some(1), "{driver:?}: {body}");
        // A reload still works after all these changes.
        assert!(gw.reload(&toml).is_ok(), "{driver:?}");
    }
}
