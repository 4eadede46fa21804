//! Upgrade pass-through on `http` routes: a WebSocket echo upstream behind a proxy route works
//! through the gateway, keeps working across a SIGHUP reload, closes in either direction, is
//! closed by the tunnel idle limit, and on SIGTERM is kept until the drain deadline and closed
//! last. A request asking for an upgrade that the upstream declines gets the upstream's normal
//! response. Both drivers.

use std::time::{Duration, Instant};

use std::net::TcpStream;
use std::sync::Arc;
use tollgate_tests::config::{mock_hello, proxy_all};
use tollgate_tests::gateway::EVENT_DEADLINE;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tollgate_tests::client::Transport;
use tollgate_tests::tls::{tls_listener, Pki, TlsOptions, PKCS_ECDSA_P256_SHA256};
use tollgate_tests::websocket::{connect, handshake_over, round_trip, wait_end, EchoServer};
use tollgate_tests::{is, Client, Driver, Gateway, Options, Upstream, DRIVERS};
use tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(10);

/// Asserts the gateway closes the client's side of the tunnel (end of stream or reset, after
/// the close handshake or not) within the harness's event deadline: a tunnel still open then,
/// or a data message, fails. The deadline is generous; it bounds a missing close, it does not
/// time one.
fn assert_ends<S: Transport>(ws: &mut tungstenite::WebSocket<S>, driver: Driver, what: &str) {
    if let Err(e) = wait_end(ws, EVENT_DEADLINE) {
        panic!("{driver:?}: {what}: expected the gateway to close the tunnel: {e}");
    }
}

#[test]
fn websocket_echo_through_a_proxy_route_survives_a_reload() {
    for driver in DRIVERS {
        let ws_up = EchoServer::start();
        let gw = Gateway::start(&proxy_all(&ws_up.url(), ""), driver);
        let addr = gw.addr("public");
        let mut ws = connect(addr, "chat.example", "/chat?room=1");
        assert_eq!(round_trip(&mut ws, "hello"), "hello", "{driver:?}");

        let handshakes = ws_up.handshakes();
        let (target, headers) = &handshakes[0];
        assert_eq!(target, "/chat?room=1");
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        assert_eq!(header("upgrade").as_deref(), Some("websocket"));
        assert_eq!(header("connection").as_deref(), Some("upgrade"));
        assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert!(header("sec-websocket-key").is_some());

        // A reload with different routes does not cut the tunnel.
        let extra = "[[apis.routes]]\nroute = \"GET /hello\"\nintegration = \"hello\"\n\n\
                     [apis.integrations.hello]\ntype = \"mock\"\nbody = \"hello\"\n";
        let mut reloaded = proxy_all(&ws_up.url(), "");
        reloaded.push_str(extra);
        gw.reload(&reloaded).expect("reload succeeds");
        assert_eq!(round_trip(&mut ws, "after reload"), "after reload");
        let big = "x".repeat(200_000);
        assert_eq!(round_trip(&mut ws, &big), big, "{driver:?}: large message");

        // The client closes: the close handshake passes through and the tunnel ends.
        ws.close(None).expect("send close");
        assert_ends(&mut ws, driver, "client closes");

        // The server closes.
        let mut ws = connect(addr, "chat.example", "/chat");
        ws.send(Message::text("bye")).expect("send bye");
        assert_ends(&mut ws, driver, "upstream closes");

        // Plain requests still work on the same listener.
        assert_eq!(tollgate_tests::get(addr, "/hello").text(), "hello");
    }
}

/// A WebSocket on a TLS listener: the handshake and every frame go over TLS to the gateway
/// and plain to the upstream (which is told `https`); messages larger than a TLS record pass
/// both ways; either side's close ends the tunnel.
#[test]
fn websocket_over_a_tls_listener() {
    const HOST: &str = "chat.example.com";
    for driver in DRIVERS {
        let pki = Pki::new();
        let leaf = pki.issue("chat", &[HOST], &PKCS_ECDSA_P256_SHA256);
        let extra = format!(
            "{}{}",
            leaf.toml("chat", None),
            tls_listener("secure", r#"certificates = ["chat"]"#)
        );
        let ws_up = EchoServer::start();
        let gw = Gateway::start(&proxy_all(&ws_up.url(), &extra), driver);
        let open = || {
            let options = TlsOptions::new(pki.ca()).sni(HOST);
            let tcp = TcpStream::connect(gw.addr("secure")).expect("connect");
            tcp.set_read_timeout(Some(DEADLINE)).expect("read timeout");
            let name = ServerName::try_from(HOST).expect("a DNS name");
            let conn =
                ClientConnection::new(Arc::new(options.client_config()), name).expect("TLS client");
            handshake_over(StreamOwned::new(conn, tcp), HOST, "/chat?tls=1")
                .unwrap_or_else(|e| panic!("{driver:?}: WebSocket handshake over TLS: {e}"))
        };

        let mut ws = open();
        assert_eq!(round_trip(&mut ws, "hello"), "hello", "{driver:?}");
        let big = "y".repeat(200_000);
        assert_eq!(round_trip(&mut ws, &big), big, "{driver:?}: large message");
        let handshakes = ws_up.handshakes();
        let (target, headers) = handshakes.last().expect("the upstream saw the handshake");
        assert_eq!(target, "/chat?tls=1");
        let proto = headers.iter().find(|(n, _)| n == "x-forwarded-proto");
        assert_eq!(proto.map(|(_, v)| v.as_str()), Some("https"), "{driver:?}");

        // The client closes: the close handshake passes through and the tunnel ends.
        ws.close(None).expect("send close");
        assert_ends(&mut ws, driver, "client closes over TLS");

        // The upstream closes.
        let mut ws = open();
        ws.send(Message::text("bye")).expect("send bye");
        assert_ends(&mut ws, driver, "upstream closes over TLS");
    }
}

#[test]
fn idle_tunnel_is_closed_after_its_limit() {
    for driver in DRIVERS {
        let ws_up = EchoServer::start();
        // Far below the event deadline `assert_ends` waits for.
        let limits = "[limits]\ntunnel_idle_timeout_ms = 300\n";
        let options = Options::new(driver).log_filter("info,tollgate::conn=debug");
        let gw = Gateway::start_with(&proxy_all(&ws_up.url(), limits), options);
        let mut ws = connect(gw.addr("public"), "h", "/chat");
        assert_eq!(round_trip(&mut ws, "one"), "one");
        let mark = gw.mark();
        assert_ends(&mut ws, driver, "idle tunnel");
        // It was the idle limit that ended it (not a failure or a close from either side).
        let ended = gw
            .wait_for_since(mark, |e| is(e, "tunnel ended"), EVENT_DEADLINE)
            .unwrap_or_else(|e| panic!("{driver:?}: no `tunnel ended` event: {e}"));
        assert_eq!(ended["end"], "Idle", "{driver:?}: {ended}");
    }
}

#[test]
fn declined_upgrade_gets_the_upstream_response() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), ""), driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        let r = c.read_response();
        assert_eq!(r.status, 200, "{driver:?}");
        let seen = &up.requests()[0];
        assert_eq!(seen.header("upgrade"), Some("websocket"));
        assert_eq!(seen.header("connection"), Some("upgrade"));
        // The connection goes on as HTTP.
        c.send(tollgate_tests::get_request("/next"));
        assert_eq!(c.read_response().status, 200);
    }
}

#[test]
fn sigterm_keeps_tunnels_until_the_deadline_then_closes_them() {
    for driver in DRIVERS {
        let ws_up = EchoServer::start();
        let server = "[server]\nshutdown_timeout_ms = 1500\n";
        let mut gw = Gateway::start_with(&proxy_all(&ws_up.url(), server), Options::new(driver));
        let mut ws = connect(gw.addr("public"), "h", "/chat");
        assert_eq!(round_trip(&mut ws, "before"), "before");
        let mark = gw.mark();
        gw.signal(libc::SIGTERM);
        gw.wait_for_since(mark, |e| is(e, "drain started"), DEADLINE)
            .expect("drain starts");
        // Draining: the tunnel still carries messages.
        assert_eq!(round_trip(&mut ws, "during drain"), "during drain");
        gw.wait_for_since(mark, |e| is(e, "drain deadline: tunnels closed"), DEADLINE)
            .expect("tunnels closed at the deadline");
        assert_ends(&mut ws, driver, "drain deadline");
        assert!(gw.wait_exit(DEADLINE).success(), "{driver:?}: exit 0");
    }
}

#[test]
fn mock_routes_ignore_upgrade_requests() {
    for driver in DRIVERS {
        let gw = Gateway::start(&mock_hello(""), driver);
        let mut c = Client::connect(gw.addr("public"));
        c.send(
            "GET /hello HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        let r = c.read_response();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{driver:?}");
    }
}

#[test]
fn only_websocket_upgrades_pass() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(&proxy_all(&up.url(), ""), driver);
        // h2c would let the client speak HTTP/2 to the upstream past routing: not passed on.
        let r = tollgate_tests::request(
            gw.addr("public"),
            "GET /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{driver:?}");
        // A WebSocket upgrade without its handshake headers is not passed on either.
        let r = tollgate_tests::request(
            gw.addr("public"),
            "GET /b HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(r.status, 200);
        for seen in up.requests() {
            assert_eq!(seen.header("upgrade"), None, "{}", seen.target);
            assert_eq!(seen.header("http2-settings"), None);
            assert_ne!(seen.header("connection"), Some("upgrade"));
        }

        // An upstream switching to anything but WebSocket is a bad gateway.
        let h2c = Upstream::start(tollgate_tests::Behaviour::reply(
            tollgate_tests::Reply::Fixed {
                status: 101,
                headers: vec![
                    ("Upgrade".into(), "h2c".into()),
                    ("Connection".into(), "upgrade".into()),
                ],
                body: Vec::new(),
            },
        ));
        let gw = Gateway::start(&proxy_all(&h2c.url(), ""), driver);
        let r = tollgate_tests::request(
            gw.addr("public"),
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert_eq!(r.status, 502, "{driver:?}");
    }
}

/// An upgraded upstream that answers the handshake, then only writes `bytes` and never reads;
/// it keeps the connection until `done` says the test is over.
fn deaf_upstream(
    bytes: usize,
    done: std::sync::mpsc::Receiver<()>,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).expect("read head") == 0 {
                return;
            }
            head.push(byte[0]);
        }
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        .expect("101");
        let chunk = vec![b'd'; 64 * 1024];
        let mut sent = 0;
        while sent < bytes {
            if s.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len();
        }
        // Keep the socket open (and unread) until the test is done.
        let _ = done.recv_timeout(DEADLINE);
        drop(s);
    });
    (addr, handle)
}

#[test]
fn a_flood_towards_a_peer_that_does_not_read_leaves_the_other_direction_flowing() {
    use std::io::{Read, Write};
    for driver in DRIVERS {
        const DOWN: usize = 4 * 1024 * 1024;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (up, upstream) = deaf_upstream(DOWN, done_rx);
        let options = Options::new(driver).log_filter("info,tollgate::forward=debug");
        let gw = Gateway::start_with(&proxy_all(&format!("http://{up}"), ""), options);
        let mut client = std::net::TcpStream::connect(gw.addr("public")).expect("connect");
        client
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            )
            .expect("handshake");
        client.set_read_timeout(Some(DEADLINE)).expect("timeout");
        // The client floods the direction the upstream never reads, from its own thread (its
        // writes block once every buffer on the way is full).
        let mut writer = client.try_clone().expect("clone");
        let flood = std::thread::spawn(move || {
            let chunk = vec![b'u'; 64 * 1024];
            for _ in 0..256 {
                if writer.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        // Meanwhile the other direction keeps flowing: all of the upstream's bytes arrive.
        let mut received = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let started = Instant::now();
        while received < DOWN + 100 {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
        assert!(
            received >= DOWN,
            "{driver:?}: only {received} of {DOWN} bytes reached the client in {:?}",
            started.elapsed()
        );
        let _ = client.shutdown(std::net::Shutdown::Both);
        let _ = flood.join();
        let _ = done_tx.send(());
        let _ = upstream.join();
    }
}

#[test]
fn the_access_log_line_of_an_upgrade_is_written_at_the_101_while_the_tunnel_runs() {
    use tollgate_tests::access_log::{options, temp_log_path, wait_lines};
    for driver in DRIVERS {
        let ws_up = EchoServer::start();
        let log = temp_log_path();
        let extra = format!("[access_log]\npath = \"{}\"\n", log.display());
        let gw = Gateway::start_with(&proxy_all(&ws_up.url(), &extra), options(driver));
        let mut ws = connect(gw.addr("public"), "chat.example", "/chat");
        assert_eq!(round_trip(&mut ws, "hello"), "hello", "{driver:?}");
        // The tunnel is still open: its request's line is already out (the request let go of
        // its capture buffer and plan at the 101).
        let lines = wait_lines(&gw, &log, 1, DEADLINE);
        assert_eq!(lines[0]["status"], 101, "{driver:?}: {:?}", lines[0]);
        assert_eq!(round_trip(&mut ws, "still here"), "still here");
        let _ = std::fs::remove_file(&log);
    }
}
