//! The pre-filter end to end with a client in a network namespace made by the test (a veth
//! pair, 10.201.N.0/24): the client is served, then refused by a deny-list entry, then
//! blocked by escalation after repeated 404s, then served again after the block expires (the
//! test clock moves it) — once with the XDP program attached to the host's end of the veth
//! and once in userspace mode. The outcomes are the same; only how the client is refused
//! differs: with XDP its SYN is dropped (the connect times out), in userspace the connection
//! is accepted and closed without an answer. XDP's own counters prove it dropped.
//!
//! Needs root (namespaces, XDP): without it the test says so and passes, unless
//! `TOLLGATE_REQUIRE_BPF=1` (set by scripts/test.sh as root), where it fails.

use std::net::SocketAddr;
use std::time::Duration;

use tollgate_tests::netns::{root_or_skip, Netns};
use tollgate_tests::usage::{advance_clock, clock_control};
use tollgate_tests::{is, Gateway, Options, DRIVERS};

const DEADLINE: Duration = Duration::from_secs(10);

fn config(ns: &Netns, mode: &str, deny: &str) -> String {
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\n\
         [prefilter]\nmode = \"{mode}\"\ninterfaces = [\"{iface}\"]\ndeny = [{deny}]\n\n\
         [[prefilter.escalation]]\nresponses = [\"not_found\"]\ncount = 3\nwindow_ms = 60000\nblock_ms = 300000\n\n\
         [[listeners]]\nname = \"public\"\nbind = \"{ip}:0\"\n\n\
         [[apis]]\nid = \"api\"\n\n[[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
         [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n",
        iface = ns.host_if,
        ip = ns.host_ip,
    )
}

fn xdp_stats(gw: &Gateway) -> serde_json::Value {
    let event = gw
        .wait_for(|e| is(e, "admin listening"), DEADLINE)
        .expect("admin");
    let admin: SocketAddr = event["addr"].as_str().expect("addr").parse().expect("addr");
    let r = tollgate_tests::request(admin, "GET /prefilter HTTP/1.1\r\nHost: a\r\n\r\n");
    let v: serde_json::Value = serde_json::from_str(&r.text()).expect("json");
    v
}

/// Served → denied → served → blocked by escalation → served after expiry; returns how a
/// refused client saw the refusal.
fn scenario(gw: &Gateway, ns: &Netns, mode: &str, xdp: bool) {
    let addr = gw.addr("public");
    let clock = clock_control(gw);
    let refused = if xdp { "timeout" } else { "closed" };
    assert_eq!(
        ns.get(addr, "/hello"),
        "status 200",
        "{mode}: served at first"
    );
    // Reloads with `denied` as the deny list and waits until the kernel maps have it.
    let reload_deny_list = |denied: &str| {
        let mark = gw.mark();
        assert!(gw.reload(&config(ns, mode, denied)).is_ok());
        if xdp {
            gw.wait_for_since(mark, |e| is(e, "XDP maps updated"), DEADLINE)
                .expect("XDP maps updated");
        }
    };
    // A deny-list entry by reload.
    reload_deny_list(&format!("\"{}/32\"", ns.client_ip));
    assert_eq!(ns.get(addr, "/hello"), refused, "{mode}: denied");
    reload_deny_list("");
    assert_eq!(
        ns.get(addr, "/hello"),
        "status 200",
        "{mode}: the entry is gone"
    );
    // Escalation: three 404s block the client. Offenses count in fixed windows of 60 s of the
    // gateway clock: the clock first moves to the start of a window, so the three can never
    // straddle a window boundary (which would reset the count).
    let now = advance_clock(clock, 0);
    advance_clock(clock, 60_000 - now % 60_000 + 1);
    let mark = gw.mark();
    for _ in 0..3 {
        assert_eq!(ns.get(addr, "/nope"), "status 404");
    }
    gw.wait_for_since(
        mark,
        |e| is(e, "source blocked") && e["ip"] == ns.client_ip.as_str(),
        DEADLINE,
    )
    .expect("source blocked");
    if xdp {
        gw.wait_for_since(mark, |e| is(e, "XDP blocks updated"), DEADLINE)
            .expect("XDP blocks updated");
    }
    assert_eq!(ns.get(addr, "/hello"), refused, "{mode}: blocked");
    // Expiry by the gateway clock.
    let mark = gw.mark();
    advance_clock(clock, 300_000);
    gw.wait_for_since(mark, |e| is(e, "block expired"), DEADLINE)
        .expect("block expired");
    if xdp {
        gw.wait_for_since(mark, |e| is(e, "XDP blocks updated"), DEADLINE)
            .expect("XDP blocks updated");
    }
    assert_eq!(
        ns.get(addr, "/hello"),
        "status 200",
        "{mode}: served after expiry"
    );
    let v = xdp_stats(gw);
    if xdp {
        let stats = &v["xdpStats"];
        assert!(stats["dropDeny"].as_u64() >= Some(1), "{v}");
        assert!(stats["dropBlock"].as_u64() >= Some(1), "{v}");
        assert!(stats["pass"].as_u64() >= Some(1), "{v}");
    } else {
        assert_eq!(v["mode"], "userspace", "{v}");
    }
}

#[test]
fn a_client_in_a_namespace_is_refused_alike_with_xdp_and_in_userspace() {
    if !root_or_skip() {
        return;
    }
    for driver in DRIVERS {
        for (mode, xdp) in [("auto", true), ("userspace", false)] {
            let ns = Netns::new();
            let gw = Gateway::start_with(&config(&ns, mode, ""), Options::new(driver).test_clock());
            if xdp {
                let attached = gw
                    .wait_for(|e| is(e, "XDP attached"), DEADLINE)
                    .unwrap_or_else(|e| panic!("XDP not attached: {e}\n{}", gw.log_text()));
                assert_eq!(attached["iface"], ns.host_if.as_str());
            }
            scenario(&gw, &ns, mode, xdp);
        }
    }
}
