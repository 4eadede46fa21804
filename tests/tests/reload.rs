//! SIGHUP reloads and SIGTERM drains: a keep-alive connection sees routes added by a reload
//! on the same socket, a request in flight across a reload completes, an invalid file is
//! refused while the old plan keeps serving, a reload can add a listener, and SIGTERM lets an
//! in-flight request finish, closes idle connections and exits 0. Both drivers.

use std::time::Duration;

use tollgate_tests::config::listener;
use tollgate_tests::gateway::is_reload_failed;
use tollgate_tests::{
    get, get_request, is, Behaviour, Client, Closed, Gate, Gateway, Upstream, DRIVERS,
};

/// Listeners `public` (+ `extra` when asked), mock `GET /old`, optional mock `GET /new`, and
/// `GET /slow/{proxy+}` proxied to `slow_url`.
fn config(slow_url: &str, with_new: bool, with_extra: bool) -> String {
    let mut s = listener("public");
    if with_extra {
        s.push_str(&listener("extra"));
    }
    s.push_str(&format!(
        "[[apis]]\nid = \"api\"\n\n\
         [[apis.routes]]\nroute = \"GET /old\"\nintegration = \"old\"\n\n\
         [[apis.routes]]\nroute = \"GET /slow/{{proxy+}}\"\nintegration = \"slow\"\n\n\
         [apis.integrations.old]\ntype = \"mock\"\nbody = \"old\"\n\n\
         [apis.integrations.slow]\ntype = \"http\"\nurl = \"{slow_url}\"\n\n"
    ));
    if with_new {
        s.push_str(
            "[[apis.routes]]\nroute = \"GET /new\"\nintegration = \"new\"\n\n\
             [apis.integrations.new]\ntype = \"mock\"\nbody = \"new\"\n",
        );
    }
    s
}

#[test]
fn keep_alive_connection_sees_new_route_after_reload() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&config(&up.url(), false, false), driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/old"));
        assert_eq!(c.read_response().text(), "old");
        c.send(get_request("/new"));
        let r = c.read_response();
        assert_eq!(r.status, 404, "{driver:?}");
        assert!(
            !r.closes(),
            "{driver:?}: a 404 on a bodiless request keeps the connection"
        );

        let generation = gw
            .reload(&config(&up.url(), true, false))
            .expect("reload succeeds");
        assert_eq!(generation, 2);

        // Same socket, new plan.
        c.send(get_request("/new"));
        let r = c.read_response();
        assert_eq!((r.status, r.text().as_str()), (200, "new"), "{driver:?}");
        c.send(get_request("/old"));
        assert_eq!(c.read_response().text(), "old");
    }
}

#[test]
fn request_in_flight_across_reload_completes() {
    for driver in DRIVERS {
        let gate = Gate::new();
        let up = Upstream::start(Behaviour::echo().gate(gate.clone()));
        let gw = Gateway::start(&config(&up.url(), false, false), driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(get_request("/slow/one"));
        assert!(
            gate.wait_arrivals(1, Duration::from_secs(5)),
            "{driver:?}: request never reached the upstream"
        );
        assert_eq!(gw.reload(&config(&up.url(), true, false)), Ok(2));
        gate.open();
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["target"], "/slow/one");
        // The connection carries on under the new plan.
        c.send(get_request("/new"));
        assert_eq!(c.read_response().text(), "new", "{driver:?}");
    }
}

#[test]
fn invalid_reload_keeps_the_old_plan() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&config(&up.url(), false, false), driver);
        let addr = gw.addr("public");
        let mut c = Client::connect(addr);

        let err = gw
            .reload("this is = = not toml [")
            .expect_err("bad TOML must be refused");
        assert!(
            !err.is_empty(),
            "{driver:?}: reload failed without an error"
        );
        let failed = gw
            .wait_for(is_reload_failed, Duration::from_secs(1))
            .expect("reload failed event");
        assert_eq!(failed["generation"], 1, "{driver:?}: {failed}");

        // A semantically invalid file is refused too.
        let err = gw
            .reload("[limits]\nheader_bytes_max = 5\n")
            .expect_err("out-of-range limit must be refused");
        assert!(err.contains("header_bytes_max"), "{driver:?}: {err}");

        // The open connection and new ones still get the old plan.
        c.send(get_request("/old"));
        assert_eq!(c.read_response().text(), "old", "{driver:?}");
        assert_eq!(get(addr, "/old").text(), "old");
        assert_eq!(get(addr, "/new").status, 404);
        // And a good reload afterwards works and takes the next generation.
        assert_eq!(gw.reload(&config(&up.url(), true, false)), Ok(2));
        assert_eq!(get(addr, "/new").text(), "new");
    }
}

#[test]
fn reload_can_add_a_listener() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&config(&up.url(), false, false), driver);
        assert!(gw.try_addr("extra").is_none());
        let mark = gw.mark();
        assert_eq!(gw.reload(&config(&up.url(), false, true)), Ok(2));
        gw.wait_for_since(
            mark,
            |e| is(e, "listening") && e["listener"] == "extra",
            Duration::from_secs(5),
        )
        .expect("listening event for the new listener");
        let extra = gw.addr("extra");
        assert_ne!(extra, gw.addr("public"));
        assert_eq!(get(extra, "/old").text(), "old", "{driver:?}");
        assert_eq!(get(gw.addr("public"), "/old").text(), "old");
    }
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    for driver in DRIVERS {
        let gate = Gate::new();
        let up = Upstream::start(Behaviour::echo().gate(gate.clone()));
        let mut gw = Gateway::start(&config(&up.url(), false, false), driver);
        let addr = gw.addr("public");

        let mut busy = Client::connect(addr);
        busy.send(get_request("/slow/drain"));
        assert!(gate.wait_arrivals(1, Duration::from_secs(5)), "{driver:?}");

        let mark = gw.mark();
        gw.signal(libc::SIGTERM);
        gw.wait_for_since(mark, |e| is(e, "draining"), Duration::from_secs(5))
            .expect("draining event");
        // Every worker has switched to draining before the response is released.
        for worker in 0..2 {
            gw.wait_for_since(
                mark,
                |e| is(e, "drain started") && e["worker"] == worker,
                Duration::from_secs(5),
            )
            .expect("drain started event");
        }
        // The in-flight request completes, telling the client the connection ends.
        gate.open();
        let r = busy.read_response();
        assert_eq!(r.status, 200, "{driver:?}: {}", r.text());
        assert_eq!(r.json()["target"], "/slow/drain");
        assert!(r.closes(), "{driver:?}: {:?}", r.headers);
        busy.assert_closed(Duration::from_secs(5));

        let status = gw.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "{driver:?}: exit status {status}");
        gw.wait_for(|e| is(e, "shutdown complete"), Duration::from_secs(1))
            .expect("shutdown complete event");
    }
}

/// While a slow request keeps the process draining, idle keep-alive connections are closed
/// at once rather than left open until the drain ends.
#[test]
fn sigterm_closes_idle_keep_alive_connections() {
    for driver in DRIVERS {
        let gate = Gate::new();
        let up = Upstream::start(Behaviour::echo().gate(gate.clone()));
        let mut gw = Gateway::start(&config(&up.url(), false, false), driver);
        let addr = gw.addr("public");

        let mut idle = Client::connect(addr);
        idle.send(get_request("/old"));
        assert_eq!(idle.read_response().status, 200);
        let mut busy = Client::connect(addr);
        busy.send(get_request("/slow/drain"));
        assert!(gate.wait_arrivals(1, Duration::from_secs(5)), "{driver:?}");

        let mark = gw.mark();
        gw.signal(libc::SIGTERM);
        gw.wait_for_since(mark, |e| is(e, "draining"), Duration::from_secs(5))
            .expect("draining event");
        let closed = idle.wait_closed(Duration::from_secs(3));
        gate.open();
        match closed {
            Closed::Yes(rest) => {
                assert!(
                    rest.is_empty(),
                    "{driver:?}: {:?}",
                    String::from_utf8_lossy(&rest)
                )
            }
            Closed::No(_) => panic!("{driver:?}: idle connection still open 3 s into the drain"),
        }
        assert_eq!(busy.read_response().status, 200);
        assert!(gw.wait_exit(Duration::from_secs(10)).success());
    }
}

/// Signals sent as soon as `ready` is logged must be handled (not kill the process).
#[test]
fn sighup_right_after_ready_is_a_reload() {
    for driver in DRIVERS {
        for attempt in 0..5 {
            let up = Upstream::echo();
            let gw = Gateway::start(&config(&up.url(), false, false), driver);
            // No request first: the SIGHUP follows the `ready` line immediately.
            let result = gw.reload(&config(&up.url(), true, false));
            assert_eq!(result, Ok(2), "{driver:?} attempt {attempt}");
            assert_eq!(get(gw.addr("public"), "/new").text(), "new");
        }
    }
}

/// Upstream keep-alive pools survive a reload that does not change the upstream: requests
/// after the reload reuse the connections opened before it.
#[test]
fn reload_keeps_upstream_pools_of_unchanged_upstreams() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        // One worker, so every request goes through the same pool.
        let gw = Gateway::start_with(
            &config(&up.url(), false, false),
            tollgate_tests::Options::new(driver).workers(1),
        );
        for _ in 0..5 {
            assert_eq!(get(gw.addr("public"), "/slow/a").status, 200);
        }
        let before = up.connections();
        assert_eq!(
            before, 1,
            "{driver:?}: sequential requests share one upstream connection"
        );
        assert_eq!(gw.reload(&config(&up.url(), true, false)), Ok(2));
        for _ in 0..5 {
            assert_eq!(get(gw.addr("public"), "/slow/b").status, 200);
        }
        assert_eq!(
            up.connections(),
            before,
            "{driver:?}: the pool carried over"
        );
    }
}
