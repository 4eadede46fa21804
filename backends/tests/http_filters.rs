//! The `http` integration through the one interface, without the gateway: a real upstream on
//! loopback, a real client, the plan compiled from TOML. It checks what the phases rely on —
//! the response filters reach the relayed head and see the decoded body as it streams — and
//! what the integration reports for the access log.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_backends::exchange::{Report, ResponseObserver};
use tollgate_backends::wire::buffers::BufferPool;
use tollgate_backends::wire::http1::{parse_request, HeadLimits};
use tollgate_backends::wire::io::read_more;
use tollgate_backends::{integrate, After, Backends, Downstream, Finished, Request};
use tollgate_backends::{resolve::resolve_all, ResponseFilters};

/// An upstream that answers one request with a two-chunk body.
fn upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).expect("read request") == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let response = b"HTTP/1.1 200 OK\r\nx-upstream: yes\r\ntransfer-encoding: chunked\r\n\r\n\
                         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        stream.write_all(response).expect("write response");
        // Keep the connection open until the gateway side is done with it.
        let _ = stream.read(&mut byte);
    });
    addr
}

/// Writes what it is shown, in order.
#[derive(Default)]
struct Recorder {
    seen: RefCell<Vec<String>>,
}

impl ResponseObserver for Recorder {
    fn head(&self, status: u16, head: &[u8]) {
        let text = String::from_utf8_lossy(head);
        let added = text.contains("x-added: 1\r\n");
        self.seen
            .borrow_mut()
            .push(format!("head {status} added={added}"));
    }
    fn body(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        self.seen.borrow_mut().push(format!("body {text:?}"));
    }
    fn end(&self, complete: bool) {
        self.seen.borrow_mut().push(format!("end {complete}"));
    }
}

#[test]
fn the_http_relay_applies_the_response_filters_and_reports() {
    let up = upstream();
    let toml = format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"

[[apis]]
id = "shop"
kind = "http"
listeners = ["public"]

[[apis.routes]]
route = "GET /pets"
integration = "up"

[apis.integrations.up]
type = "http"
url = "http://{up}"
"#
    );
    let mut plan = tollgate_config::compile(Path::new("filters.toml"), &toml).expect("config");
    assert!(resolve_all(&mut plan.upstreams).is_empty());
    let backends = Backends::build(&plan, None);
    let route = plan
        .routes
        .iter()
        .find(|r| r.route_key == "GET /pets")
        .expect("route compiled");

    let recorder = Recorder::default();
    let report = Report::default();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    let (finished, response) = rt.block_on(async {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let client = std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            stream
                .write_all(b"GET /pets HTTP/1.1\r\nHost: shop\r\n\r\n")
                .expect("send");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut response = Vec::new();
            let mut chunk = [0u8; 4096];
            while !response.ends_with(b"0\r\n\r\n") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => response.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = stream.shutdown(Shutdown::Both);
            String::from_utf8(response).expect("text")
        });
        let (mut stream, peer) = listener.accept().await.expect("accept");
        let pool = BufferPool::new(16 * 1024, 4);
        let mut buf = pool.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        let head = loop {
            read_more(&mut stream, &mut buf.data, deadline)
                .await
                .expect("request head");
            let parsed = parse_request(&buf.data, &HeadLimits::default(), &mut buf.headers);
            if let Some(head) = parsed.expect("valid head") {
                break head;
            }
        };
        let filters = ResponseFilters {
            add_headers: b"x-added: 1\r\n",
            observer: Some(&recorder),
        };
        let req = Request {
            plan: &plan,
            route,
            head: &head,
            id: b"req-1",
            started: Instant::now(),
            date: *b"Sun, 06 Nov 1994 08:49:37 GMT",
            client: peer.ip(),
            peer,
            local_port: addr.port(),
            tls: None,
            report: &report,
            filters: &filters,
        };
        let draining = Cell::new(false);
        let mut down = Downstream {
            stream: &mut stream,
            buf: &mut buf,
            buffers: &pool,
            draining: &draining,
            write_timeout: Duration::from_secs(10),
        };
        let finished = integrate(&req, &mut down, &backends).await;
        drop(stream);
        (finished, client.join().expect("client"))
    });

    assert!(
        matches!(
            finished,
            Finished::Sent {
                status: 200,
                after: After::KeepAlive
            }
        ),
        "{finished:?}"
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("x-upstream: yes\r\n"), "{response}");
    assert!(response.contains("x-request-id: req-1\r\n"), "{response}");
    assert!(response.contains("x-added: 1\r\n"), "{response}");
    assert!(
        response.ends_with("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        "{response}"
    );
    assert_eq!(
        *recorder.seen.borrow(),
        [
            "head 200 added=true",
            "body \"hello\"",
            "body \" world\"",
            "end true"
        ]
    );
    assert_eq!(report.status.get(), Some(200));
    assert_eq!(report.response_length.get(), 11);
    assert!(report.latency.get().is_some());
}
