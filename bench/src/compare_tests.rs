//! Unit tests of `compare`'s settings, load arguments, parsing of `load --json` output, the
//! ports of a run and the generated configs (base, rate-limit and TLS variants).

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
            seconds: 8.0,
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
    let t = settings(&["--scenarios", "tls-resume,tls,tls-newconn"])?;
    assert_eq!(t.scenarios, ["tls", "tls-newconn", "tls-resume"]);
    assert_eq!(setups_for(&t.scenarios), [Setup::Base, Setup::Tls]);
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
    let tls = joined("tls", None);
    assert!(
        tls.starts_with("load --url https://127.0.0.1:8090/plain/1k --json"),
        "{tls}"
    );
    assert!(
        tls.ends_with("--warmup 1s --sni bench.example.com"),
        "{tls}"
    );
    assert!(joined("tls-newconn", None)
        .ends_with("--warmup 1s --new-connection-per-request --sni bench.example.com"));
    assert!(joined("tls-resume", None).ends_with(
        "--warmup 1s --new-connection-per-request --tls-resume --sni bench.example.com"
    ));
    assert!(!joined("plain", None).contains("--sni") && !joined("plain", None).contains("https"));
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
    assert_eq!((r.handshakes, r.hs_per_cpu_s), (0, 0.0)); // no tls object: plain
    let v: Value = serde_json::from_str(
        r#"{"rps":500.0,"duration_s":2.0,"requests":1000,
            "errors":{"connect":0,"tls":2,"io":0},"status":{"200":1000},
            "latency_us":{"p50":700,"p99":1800,"p999":4000},
            "tls":{"handshakes":1000,"handshakes_resumed":990,"handshakes_per_s":500.0}}"#,
    )?;
    let r = run_from_load_json(&v, "tls-resume", 0.25, None);
    assert_eq!(
        (r.handshakes, r.handshakes_resumed, r.errors),
        (1000, 990, 2)
    );
    assert_eq!(r.load_cores, 0.0); // not in this output
    let with_cores: Value = serde_json::from_str(r#"{"rps":1.0,"load_cores":0.93}"#)?;
    assert_eq!(
        run_from_load_json(&with_cores, "plain", 1.0, None).load_cores,
        0.93
    );
    assert_eq!((r.req_per_cpu_s, r.hs_per_cpu_s), (2000.0, 2000.0));
    Ok(())
}

#[test]
fn resumption_is_checked() -> Result<()> {
    let v = |hs: u64, resumed: u64| -> Result<Value> {
        Ok(serde_json::from_str(&format!(
            r#"{{"rps":1.0,"duration_s":1.0,"tls":{{"handshakes":{hs},"handshakes_resumed":{resumed}}}}}"#
        ))?)
    };
    let run = |scenario, hs, resumed| -> Result<Run> {
        Ok(run_from_load_json(&v(hs, resumed)?, scenario, 1.0, None))
    };
    check_resumption(&run("tls-resume", 1000, 900)?)?;
    let e = check_resumption(&run("tls-resume", 1000, 899)?)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("only 899 of 1000 TLS handshakes resumed a session (89.9 %, at least 90 %"),
        "{e}"
    );
    for scenario in ["tls-resume", "tls-newconn"] {
        let e = check_resumption(&run(scenario, 0, 0)?).unwrap_err();
        assert!(e.to_string().contains("no TLS handshake completed"), "{e}");
    }
    check_resumption(&run("tls-newconn", 1000, 0)?)?;
    let e = check_resumption(&run("tls-newconn", 1000, 3)?).unwrap_err();
    assert!(e.to_string().contains("3 of 1000"), "{e}");
    // Keep-alive TLS makes its handshakes in the warm-up: none in the window is fine.
    check_resumption(&run("tls", 0, 0)?)?;
    check_resumption(&run("plain", 0, 0)?)?;
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
        (
            Setup::Tls,
            vec![
                p("nginx", 8443, 5),
                p("haproxy", 8444, 6),
                p("tollgate", 8445, 7),
            ],
        ),
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
    for tls in ["tls", "tls-newconn", "tls-resume"] {
        assert_eq!(
            show(tls),
            ["nginx 8443 5", "haproxy 8444 6", "tollgate 8445 7"],
            "{tls}"
        );
    }
}

#[test]
fn ports_of_a_run() -> Result<()> {
    let all = Setup::ALL;
    assert_eq!(Ports::needed(&all), 14); // origin + 3 + 3 + 3 + tollgate's plan + 3
    assert_eq!(Ports::needed(&[Setup::Base]), 4);
    let free: Vec<u16> = (40001..=40014).collect();
    let p = Ports::assign(&all, &free)?;
    assert_eq!(p.origin, 40001);
    assert_eq!(p.of(Setup::Base), [Some(40002), Some(40003), Some(40004)]);
    assert_eq!(p.of(Setup::Reject), [Some(40008), Some(40009), Some(40010)]);
    assert_eq!(p.of(Setup::Plan), [None, None, Some(40011)]);
    assert_eq!(p.of(Setup::Tls), [Some(40012), Some(40013), Some(40014)]);
    assert_eq!(
        p.describe(),
        "origin 40001, base 40002/40003/40004, ratelimit 40005/40006/40007, \
         reject 40008/40009/40010, plan -/-/40011, tls 40012/40013/40014"
    );
    let e = Ports::assign(&all, &free[..13]).unwrap_err().to_string();
    assert!(e.contains("13 ports for 14 listeners"), "{e}");
    let base = Ports::assign(&[Setup::Base], &free[..4])?;
    assert_eq!(base.of(Setup::Plan), [None; 3]); // not in this run

    // Chosen by the kernel: as many as needed, all different, none of the old fixed ones
    // (unless the kernel's range includes them by chance, so only distinctness is asserted).
    let chosen = Ports::choose(&all)?;
    let mut ports = vec![chosen.origin];
    ports.extend(all.iter().flat_map(|&s| chosen.of(s)).flatten());
    assert_eq!(ports.len(), 14);
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 14, "{}", chosen.describe());
    Ok(())
}

/// The ports `compare` used to bind, none of which a generated config may name now.
const OLD_FIXED_PORTS: [u16; 11] = [
    9000, 8080, 8081, 8082, 8083, 8084, 8085, 8090, 8091, 8092, 8093,
];

#[test]
fn every_generated_config_names_the_chosen_ports_only() -> Result<()> {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    let free: Vec<u16> = (41001..=41014).collect();
    let ports = Ports::assign(&Setup::ALL, &free)?;
    let mut pid_files = Vec::new();
    let mut written = 0;
    for setup in Setup::ALL {
        let configs = setup_configs(&peers, Path::new("/s"), setup, &ports)?;
        for ((text, port), contender) in configs.iter().zip(ports.of(setup)).zip(report::CONTENDERS)
        {
            assert_eq!(text.is_some(), port.is_some(), "{contender} {setup:?}");
            let (Some(text), Some(port)) = (text, port) else {
                continue;
            };
            written += 1;
            let what = format!("{contender} {setup:?}:\n{text}");
            // Listens on its own port, proxies to the origin's, and names no other port.
            let listen = match contender {
                "nginx" => format!("listen 127.0.0.1:{port} "),
                "haproxy" => format!("bind 127.0.0.1:{port} "),
                _ => format!("bind = \"127.0.0.1:{port}\""),
            };
            assert_eq!(text.matches(&listen).count(), 1, "{what}");
            assert_eq!(text.matches("127.0.0.1:41001").count(), 1, "{what}");
            assert_eq!(text.matches("127.0.0.1:").count(), 2, "{what}");
            for old in OLD_FIXED_PORTS {
                assert!(!text.contains(&format!(":{old}")), "{old} in {what}");
            }
            let placeholder = text
                .split('@')
                .skip(1)
                .any(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(!placeholder, "placeholder left in {what}");
            pid_files.extend(
                text.lines()
                    .filter(|l| l.trim_start().starts_with("pid"))
                    .map(str::to_string),
            );
        }
    }
    assert_eq!(written, 13);
    // Each nginx and HAProxy instance has its own pid file.
    assert_eq!(pid_files.len(), 8, "{pid_files:?}");
    let n = pid_files.len();
    pid_files.sort();
    pid_files.dedup();
    assert_eq!(pid_files.len(), n, "{pid_files:?}");
    Ok(())
}

#[test]
fn templates_without_port_placeholders_are_refused() -> Result<()> {
    let vars = [
        (configs::DIR, "/s".to_string()),
        (configs::ORIGIN_PORT, "41001".to_string()),
        (configs::NGINX_PORT, "41002".to_string()),
    ];
    let need = [configs::ORIGIN_PORT, configs::NGINX_PORT];
    assert_eq!(
        configs::render(
            "pid @DIR@/x.pid; listen 127.0.0.1:@NGINX_PORT@; server 127.0.0.1:@ORIGIN_PORT@; # a@b.c",
            "t",
            &vars,
            &need
        )?,
        "pid /s/x.pid; listen 127.0.0.1:41002; server 127.0.0.1:41001; # a@b.c"
    );
    // A template from before the placeholders: its fixed listen port is refused.
    let e = configs::render(
        "listen 127.0.0.1:8080; server 127.0.0.1:@ORIGIN_PORT@;",
        "old.conf.in",
        &vars,
        &need,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("old.conf.in has no @NGINX_PORT@"), "{e}");
    let e = configs::render(
        "listen @NGINX_PORT@ @ORIGIN_PORT@ @HAPROXY_PORT@",
        "t",
        &vars,
        &need,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown placeholder @HAPROXY_PORT@"), "{e}");

    // tollgate.toml keeps literal ports, each replaced exactly once.
    let toml = "bind = \"127.0.0.1:8090\"\nurl = \"http://127.0.0.1:9000/{proxy}\"\n";
    assert_eq!(
        configs::tollgate_ports(toml, 41004, 41001)?,
        "bind = \"127.0.0.1:41004\"\nurl = \"http://127.0.0.1:41001/{proxy}\"\n"
    );
    let e = configs::tollgate_ports("bind = \"127.0.0.1:8090\"\n", 1, 2).unwrap_err();
    assert!(e.to_string().contains("found it 0 times"), "{e}");
    Ok(())
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
    let got = configs::nginx(&base, "ratelimit", &configs::NEVER_REJECT)?;
    let want = base
        .replace("/s/nginx-proxy.pid", "/s/nginx-ratelimit.pid")
        .replace("/s/nginx-proxy.err", "/s/nginx-ratelimit.err")
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
                 server {\n    listen 127.0.0.1:@NGINX_PORT@ reuseport;\n    \
                 location /plain/ { proxy_pass http://origin/; }\n  }\n}\n";
    assert_eq!(
        configs::nginx(small, "reject", &configs::REJECT)?,
        "pid /s/nginx-reject.pid;\nerror_log /s/nginx-reject.err warn;\nhttp {\n  \
         limit_req_zone $binary_remote_addr zone=z:10m rate=1r/s;\n  \
         server {\n    listen 127.0.0.1:@NGINX_PORT@ reuseport;\n    \
         location /plain/ { limit_req zone=z; limit_req_status 429; limit_req_log_level info; \
         proxy_pass http://origin/; }\n  }\n}\n"
    );
    let e = configs::nginx("http {}", "x", &configs::REJECT).unwrap_err();
    assert!(e.to_string().contains("found it 0 times"), "{e}");
    Ok(())
}

#[test]
fn haproxy_variants() -> Result<()> {
    let base = peer("haproxy.cfg.in");
    let got = configs::haproxy(&base, "reject", &configs::REJECT)?;
    let want = base
        .replace("/s/haproxy.pid\n", "/s/haproxy-reject.pid\n")
        .replace(
            "  bind 127.0.0.1:@HAPROXY_PORT@ backlog 65535\n",
            "  bind 127.0.0.1:@HAPROXY_PORT@ backlog 65535\n\
             \x20 stick-table type ip size 100k expire 30s store http_req_rate(1s)\n\
             \x20 http-request track-sc0 src\n\
             \x20 http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1 }\n",
        );
    assert_eq!(got, want);
    assert_ne!(got, base);

    let small =
        "  pidfile /s/haproxy.pid\nfrontend fe\n  bind 127.0.0.1:@HAPROXY_PORT@ backlog 9\n  \
                 default_backend be\n";
    assert_eq!(
        configs::haproxy(small, "ratelimit", &configs::NEVER_REJECT)?,
        "  pidfile /s/haproxy-ratelimit.pid\nfrontend fe\n  bind 127.0.0.1:@HAPROXY_PORT@ backlog 9\n  \
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
    let got = configs::tollgate(&base, configs::NEVER_REJECT.tollgate_api, "")?;
    let want = base.replace(
        "[[apis]]\nid = \"bench\"\n",
        "[[apis]]\nid = \"bench\"\n\
         client_throttle = { rate_per_s = 1000000, burst = 1000000 }\n",
    );
    assert_eq!(got, want);
    assert_ne!(got, base);
    assert_eq!(
        configs::tollgate(
            "bind = \"127.0.0.1:8090\"\n[[apis]]\nid = \"bench\"\n[x]\n",
            configs::REJECT.tollgate_api,
            "[t]\n"
        )?,
        "bind = \"127.0.0.1:8090\"\n[[apis]]\nid = \"bench\"\n\
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

#[test]
fn tls_variants() -> Result<()> {
    let base = peer("nginx-proxy.conf.in");
    let got = configs::nginx_tls(&base)?;
    let want = base
        .replace("/s/nginx-proxy.pid", "/s/nginx-tls.pid")
        .replace("/s/nginx-proxy.err", "/s/nginx-tls.err")
        .replace(
            "listen 127.0.0.1:@NGINX_PORT@ backlog",
            "listen 127.0.0.1:@NGINX_PORT@ ssl backlog",
        )
        .replace(
            "\n  server {\n",
            "\n  ssl_certificate @DIR@/tls-cert.pem;\n  ssl_certificate_key @DIR@/tls-key.pem;\n  \
             ssl_protocols TLSv1.3;\n  ssl_conf_command Ciphersuites \
             TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;\n  \
             ssl_session_cache shared:tls:10m;\n  ssl_session_tickets on;\n  server {\n",
        );
    assert_eq!(got, want);
    assert_ne!(got, base);
    let e =
        configs::nginx_tls(&base.replace("listen 127.0.0.1:@NGINX_PORT@", "listen @NGINX_PORT@"))
            .unwrap_err();
    assert!(e.to_string().contains("found it 0 times"), "{e}");

    let base = peer("haproxy.cfg.in");
    let got = configs::haproxy_tls(&base)?;
    let want = base
        .replace("/s/haproxy.pid\n", "/s/haproxy-tls.pid\n")
        .replace(
            "  bind 127.0.0.1:@HAPROXY_PORT@ backlog 65535\n",
            "  bind 127.0.0.1:@HAPROXY_PORT@ backlog 65535 ssl crt @DIR@/tls-haproxy.pem \
             alpn http/1.1 ssl-min-ver TLSv1.3 ciphersuites \
             TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n",
        );
    assert_eq!(got, want);
    assert_ne!(got, base);

    let base = peer("tollgate.toml");
    let got = configs::tollgate_tls(&base, Path::new("/s"))?;
    let want = format!(
        "[[certificates]]\nid = \"bench\"\ncert = \"/s/tls-cert.pem\"\nkey = \"/s/tls-key.pem\"\n\n{}",
        base.replace(
            "[[listeners]]\nname = \"bench\"\n",
            "[[listeners]]\nname = \"bench\"\ntls = { certificates = [\"bench\"], \
             default_certificate = \"bench\", versions = [\"1.3\"] }\n",
        )
    );
    assert_eq!(got, want);
    assert_ne!(got, base);
    Ok(())
}

/// The generated configs as nginx (`-t`), HAProxy (`-c`) and tollgate (its config crate's
/// `load`, as `tollgate check`) read them, with the generated TLS certificate; none binds its
/// ports for that. nginx and HAProxy are skipped, saying so, where they are not installed.
#[test]
fn generated_configs_pass_the_peers_own_checks() -> Result<()> {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    let dir = std::env::temp_dir().join(format!("tb-configs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("state"))?;
    tls::write_certificate(&dir)?;
    let ports = Ports::choose(&Setup::ALL)?;
    for setup in Setup::ALL {
        let [_, _, tollgate] = setup_configs(&peers, &dir, setup, &ports)?;
        let toml = dir.join(format!("tollgate-{}.toml", setup.name()));
        std::fs::write(&toml, tollgate.context("no tollgate config")?)?;
        let plan = tollgate_config::load(&toml).map_err(|e| anyhow::anyhow!("{toml:?}: {e}"))?;
        let described = plan.describe();
        if setup == Setup::Tls {
            assert!(
                described.contains("bench") && described.contains("versions 1.3"),
                "{described}"
            );
        }
    }
    let path = std::env::var("PATH").unwrap_or_default();
    if !procs::missing_tools(&["nginx", "haproxy"], &path).is_empty() {
        eprintln!("nginx or haproxy not on PATH: generated configs not checked by them");
        std::fs::remove_dir_all(&dir)?;
        return Ok(());
    }
    let mut checked = 0;
    for setup in Setup::ALL {
        let [nginx, haproxy, _] = setup_configs(&peers, &dir, setup, &ports)?;
        if let Some(text) = nginx {
            let conf = dir.join(format!("nginx-{}.conf", setup.name()));
            std::fs::write(&conf, text)?;
            let prefix = format!("{}/", dir.display());
            let out = Command::new("nginx")
                .arg("-t")
                .arg("-c")
                .arg(&conf)
                .args(["-p", &prefix])
                .output()?;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "nginx -t {conf:?}: {err}");
            checked += 1;
        }
        if let Some(text) = haproxy {
            let cfg = dir.join(format!("haproxy-{}.cfg", setup.name()));
            std::fs::write(&cfg, text)?;
            let out = Command::new("haproxy")
                .arg("-c")
                .arg("-f")
                .arg(&cfg)
                .output()?;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "haproxy -c {cfg:?}: {err}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
