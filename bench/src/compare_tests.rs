//! Unit tests of `compare`'s settings, load arguments, parsing of `load --json` output and the
//! generated configs of the rate-limit scenarios.

use clap::Parser as _;

use super::*;
use crate::cli::{Cli, Command as Cmd};

fn settings(args: &[&str]) -> Result<Settings> {
    let cli = Cli::try_parse_from([&["b", "compare"], args].concat())?;
    let Cmd::Compare(c) = cli.command else {
        bail!("not compare");
    };
    Settings::from_args(&c)
}

#[test]
fn defaults_quick_and_scenarios() -> Result<()> {
    let all: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        settings(&[])?,
        Settings {
            rounds: 5,
            seconds: 10.0,
            scenarios: all
        }
    );
    let q = settings(&["--quick", "--scenarios", "newconn,plain"])?;
    assert_eq!((q.rounds, q.seconds), (1, 3.0));
    assert_eq!(q.scenarios, ["plain", "newconn"]); // canonical order
    assert_eq!(settings(&["--quick", "--rounds", "2"])?.rounds, 2);
    let e = settings(&["--scenarios", "latency"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("add plain"), "{e}");
    assert!(settings(&["--scenarios", "bogus"]).is_err());
    let q = settings(&["--quick"])?;
    assert_eq!(q.scenarios, SCENARIOS); // --quick runs every scenario too
    let rl = settings(&["--scenarios", "plan,ratelimit-reject,ratelimit"])?;
    assert_eq!(rl.scenarios, ["ratelimit", "ratelimit-reject", "plan"]);
    assert_eq!(
        setups_for(&rl.scenarios),
        [Setup::Base, Setup::RateLimit, Setup::Reject, Setup::Plan]
    );
    assert_eq!(setups_for(&["newconn".into()]), [Setup::Base]);
    assert!(settings(&["--rounds", "0"]).is_err());
    Ok(())
}

#[test]
fn scenario_load_args() {
    let joined = |s, r| load_args(s, 8090, 3.0, r, Path::new("/d/keys.txt")).join(" ");
    let plain = joined("plain", None);
    assert!(
        plain.starts_with("load --url http://127.0.0.1:8090/plain/1k --json"),
        "{plain}"
    );
    assert!(
        plain.contains("--connections 64 --duration 3s --warmup 1s"),
        "{plain}"
    );
    assert!(joined("post16k", None).ends_with("--method POST --body-bytes 16384"));
    assert!(joined("newconn", None).ends_with("--new-connection-per-request"));
    assert!(joined("latency", Some(12345.4)).ends_with("--rate 12345"));
    assert!(!joined("plain", Some(5.0)).contains("--rate"));
    assert!(joined("ratelimit", None).ends_with("--warmup 1s --bind-count 50"));
    assert!(joined("ratelimit-reject", None).ends_with("--warmup 1s --bind-count 50"));
    assert!(joined("plan", None).ends_with("--warmup 1s --header-list x-api-key:/d/keys.txt"));
    assert!(!joined("plain", None).contains("--bind-count"));
    assert!(!joined("plain", None).contains("--header-list"));
}

#[test]
fn parses_load_json() -> Result<()> {
    let v: Value = serde_json::from_str(
        r#"{"mode":"open","rps":2000.0,"target_rps":2000.0,
            "errors":{"connect":1,"timeout":2,"io":0,"status_4xx":0,"status_5xx":3,"status_other":0},
            "latency_us":{"p50":70,"p90":90,"p99":180,"p999":400,"max":900}}"#,
    )?;
    let r = run_from_load_json(&v, "latency", 0.25, Some(2000.0));
    assert_eq!((r.rps, r.req_per_cpu_s), (2000.0, 8000.0));
    assert_eq!((r.p50_us, r.p99_us, r.p999_us, r.errors), (70, 180, 400, 6));
    assert_eq!(r.target_rps, Some(2000.0));
    assert_eq!((r.status_429, r.r429_per_cpu_s), (0, 0.0));
    let v: Value = serde_json::from_str(
        r#"{"rps":1000.0,"duration_s":2.0,"requests":2000,
            "errors":{"connect":1,"status_4xx":1500,"status_5xx":0},
            "status":{"200":500,"429":1500},
            "latency_us":{"p50":70,"p99":180,"p999":400}}"#,
    )?;
    let r = run_from_load_json(&v, "ratelimit-reject", 0.5, None);
    assert_eq!((r.status_429, r.errors), (1500, 1)); // 429s apart from errors
    assert_eq!((r.req_per_cpu_s, r.r429_per_cpu_s), (2000.0, 1500.0));
    assert!(run_from_load_json(&v, "plain", 0.0, None)
        .req_per_cpu_s
        .is_nan());
    Ok(())
}

#[test]
fn targets_of_scenarios() {
    let p = |contender, port, pid| Proxy {
        contender,
        port,
        pid,
    };
    let started = vec![
        (
            Setup::Base,
            vec![
                p("nginx", 8080, 1),
                p("haproxy", 8081, 2),
                p("tollgate", 8090, 3),
            ],
        ),
        (Setup::Plan, vec![p("tollgate", 8093, 4)]),
    ];
    let show = |s| {
        targets(s, &started)
            .iter()
            .map(|t| format!("{} {} {}", t.contender, t.port, t.pid))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        show("plain"),
        ["nginx 8080 1", "haproxy 8081 2", "tollgate 8090 3"]
    );
    assert_eq!(show("plan"), ["tollgate-plain 8090 3", "tollgate 8093 4"]);
    assert!(show("ratelimit").is_empty());
    // Every port differs.
    let mut ports: Vec<u16> = Setup::ALL
        .iter()
        .flat_map(|s| s.ports())
        .flatten()
        .collect();
    ports.push(ORIGIN_PORT);
    let n = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), n);
}

fn peer(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("@DIR@", "/s")
}

#[test]
fn nginx_variants() -> Result<()> {
    let base = peer("nginx-proxy.conf.in");
    let got = configs::nginx(&base, "ratelimit", 8082, &configs::NEVER_REJECT)?;
    let want = base
        .replace("/s/nginx-proxy.pid", "/s/nginx-ratelimit.pid")
        .replace("/s/nginx-proxy.err", "/s/nginx-ratelimit.err")
        .replace("listen 127.0.0.1:8080 ", "listen 127.0.0.1:8082 ")
        .replace(
            "\n  server {\n",
            "\n  limit_req_zone $binary_remote_addr zone=z:10m rate=1000000r/s;\n  server {\n",
        )
        .replace(
            "    location /plain/ { proxy_pass",
            "    location /plain/ { limit_req zone=z burst=1000000 nodelay; \
             limit_req_log_level info; proxy_pass",
        );
    assert_eq!(got, want);
    assert_ne!(got, base);

    let small = "pid /s/nginx-proxy.pid;\nerror_log /s/nginx-proxy.err warn;\nhttp {\n  \
                 server {\n    listen 127.0.0.1:8080 reuseport;\n    \
                 location /plain/ { proxy_pass http://origin/; }\n  }\n}\n";
    assert_eq!(
        configs::nginx(small, "reject", 8084, &configs::REJECT)?,
        "pid /s/nginx-reject.pid;\nerror_log /s/nginx-reject.err warn;\nhttp {\n  \
         limit_req_zone $binary_remote_addr zone=z:10m rate=1r/s;\n  \
         server {\n    listen 127.0.0.1:8084 reuseport;\n    \
         location /plain/ { limit_req zone=z; limit_req_status 429; limit_req_log_level info; \
         proxy_pass http://origin/; }\n  }\n}\n"
    );
    let e = configs::nginx("http {}", "x", 1, &configs::REJECT).unwrap_err();
    assert!(e.to_string().contains("found it 0 times"), "{e}");
    Ok(())
}

#[test]
fn haproxy_variants() -> Result<()> {
    let base = peer("haproxy.cfg.in");
    let got = configs::haproxy(&base, "reject", 8085, &configs::REJECT)?;
    let want = base
        .replace("/s/haproxy.pid\n", "/s/haproxy-reject.pid\n")
        .replace(
            "  bind 127.0.0.1:8081 backlog 65535\n",
            "  bind 127.0.0.1:8085 backlog 65535\n\
             \x20 stick-table type ip size 100k expire 30s store http_req_rate(1s)\n\
             \x20 http-request track-sc0 src\n\
             \x20 http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1 }\n",
        );
    assert_eq!(got, want);
    assert_ne!(got, base);

    let small = "  pidfile /s/haproxy.pid\nfrontend fe\n  bind 127.0.0.1:8081 backlog 9\n  \
                 default_backend be\n";
    assert_eq!(
        configs::haproxy(small, "ratelimit", 8083, &configs::NEVER_REJECT)?,
        "  pidfile /s/haproxy-ratelimit.pid\nfrontend fe\n  bind 127.0.0.1:8083 backlog 9\n  \
         stick-table type ip size 100k expire 30s store http_req_rate(1s)\n  \
         http-request track-sc0 src\n  \
         http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100000000 }\n  \
         default_backend be\n"
    );
    Ok(())
}

#[test]
fn tollgate_variants() -> Result<()> {
    let base = peer("tollgate.toml");
    let got = configs::tollgate(&base, 8091, configs::NEVER_REJECT.tollgate_api, "")?;
    let want = base
        .replace("\"127.0.0.1:8090\"", "\"127.0.0.1:8091\"")
        .replace(
            "[[apis]]\nid = \"bench\"\n",
            "[[apis]]\nid = \"bench\"\n\
         client_throttle = { rate_per_s = 1000000, burst = 1000000 }\n",
        );
    assert_eq!(got, want);
    assert_ne!(got, base);
    assert_eq!(
        configs::tollgate(
            "bind = \"127.0.0.1:8090\"\n[[apis]]\nid = \"bench\"\n[x]\n",
            8092,
            configs::REJECT.tollgate_api,
            "[t]\n"
        )?,
        "bind = \"127.0.0.1:8092\"\n[[apis]]\nid = \"bench\"\n\
         client_throttle = { rate_per_s = 1, burst = 1 }\n[x]\n\n[t]\n"
    );

    let keys = configs::plan_keys();
    assert_eq!(keys.len(), 100);
    assert_eq!(keys[0], "bench-key-00000000000000000000");
    assert_eq!(keys[99], "bench-key-00000000000000000099");
    let tail = configs::plan_tail(Path::new("/s/state"));
    assert!(tail.starts_with(
        "[state]\ndir = \"/s/state\"\n\n\
         [[api_keys.keys]]\nid = \"k0\"\nvalue = \"bench-key-00000000000000000000\"\n\n\
         [[api_keys.keys]]\nid = \"k1\"\nvalue = \"bench-key-00000000000000000001\"\n\n"
    ));
    assert!(tail.contains(
        "[[api_keys.keys]]\nid = \"k99\"\nvalue = \"bench-key-00000000000000000099\"\n\n\
         [[usage_plans]]\nid = \"bench\"\nkeys = [\"k0\", \"k1\", \"k2\", "
    ));
    assert!(tail.ends_with(
        ", \"k98\", \"k99\"]\n\
         throttle = { rate_per_s = 1000000, burst = 1000000 }\n\
         quota = { limit = 4000000000, period = \"MONTH\" }\n\
         [[usage_plans.stages]]\napi = \"bench\"\n"
    ));
    assert_eq!(tail.matches("[[api_keys.keys]]").count(), 100);
    Ok(())
}
