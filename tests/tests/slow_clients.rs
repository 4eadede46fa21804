//! Slow clients must not starve others: many connections trickling a head or a body, and a
//! client that never reads a large response, while a normal client is served within a bound.
//! The slow connections are closed once their (short, configured) timeouts pass. Both drivers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tollgate_tests::config::proxy_all;
use tollgate_tests::{
    get, get_request, Behaviour, Client, Closed, Gateway, Reply, Upstream, DRIVERS,
};

const SLOW: usize = 200;
/// Pause between two trickled bytes (the load shape, not synchronisation).
const TRICKLE_PAUSE: Duration = Duration::from_millis(20);
/// Longest a normal request may take while the slow ones are active.
const FAST_BOUND: Duration = Duration::from_secs(2);

/// Writes one byte of `prefix` (then of `filler`) to every client per round until `stop`,
/// for at most `rounds` rounds. Returns the clients.
fn trickle(
    mut clients: Vec<Client>,
    prefix: Vec<u8>,
    filler: u8,
    stop: Arc<AtomicBool>,
    rounds: usize,
) -> JoinHandle<Vec<Client>> {
    std::thread::spawn(move || {
        for round in 0..rounds {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let byte = prefix.get(round).copied().unwrap_or(filler);
            for c in clients.iter_mut() {
                let _ = c.try_send([byte]);
            }
            std::thread::sleep(TRICKLE_PAUSE);
        }
        clients
    })
}

/// Normal requests on fresh connections, each within [`FAST_BOUND`].
fn legit_requests(addr: std::net::SocketAddr, n: usize, what: &str) {
    for i in 0..n {
        let started = Instant::now();
        let r = get(addr, &format!("/legit/{i}"));
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{what}: legit request {i}");
        assert!(took < FAST_BOUND, "{what}: legit request {i} took {took:?}");
    }
}

fn connect_many(addr: std::net::SocketAddr, n: usize) -> Vec<Client> {
    (0..n).map(|_| Client::connect(addr)).collect()
}

/// Every client is closed by the server within `bound` (overall).
fn assert_all_closed(clients: &mut [Client], bound: Duration, what: &str) {
    let end = Instant::now() + bound;
    let mut open = 0;
    for c in clients.iter_mut() {
        let left = end.saturating_duration_since(Instant::now());
        if let Closed::No(_) = c.wait_closed(left.max(Duration::from_millis(10))) {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "{what}: {open} slow connections still open after {bound:?}"
    );
}

#[test]
fn trickled_heads_do_not_block_others_and_are_closed() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(
            &proxy_all(&up.url(), "[limits]\nheader_read_timeout_ms = 1500\n"),
            driver,
        );
        let addr = gw.addr("public");
        let stop = Arc::new(AtomicBool::new(false));
        let slow = trickle(
            connect_many(addr, SLOW),
            b"GET /slow HTTP/1.1\r\nHost: h\r\nX-Pad: ".to_vec(),
            b'a',
            Arc::clone(&stop),
            500,
        );
        legit_requests(addr, 10, &format!("{driver:?}"));
        stop.store(true, Ordering::SeqCst);
        let mut clients = slow.join().expect("trickle thread");
        assert_all_closed(&mut clients, Duration::from_secs(5), &format!("{driver:?}"));
        assert!(up
            .requests()
            .iter()
            .all(|r| r.target.starts_with("/legit/")));
    }
}

#[test]
fn trickled_bodies_do_not_block_others_and_are_closed() {
    for driver in DRIVERS {
        let up = Upstream::echo();
        let gw = Gateway::start(
            &proxy_all(&up.url(), "[limits]\nbody_read_timeout_ms = 500\n"),
            driver,
        );
        let addr = gw.addr("public");
        let mut clients = connect_many(addr, SLOW);
        for c in clients.iter_mut() {
            c.send("POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let slow = trickle(clients, Vec::new(), b'z', Arc::clone(&stop), 500);
        legit_requests(addr, 10, &format!("{driver:?}"));
        stop.store(true, Ordering::SeqCst);
        let mut clients = slow.join().expect("trickle thread");
        // Trickling stopped: each body read now pauses past body_read_timeout_ms.
        assert_all_closed(&mut clients, Duration::from_secs(5), &format!("{driver:?}"));
    }
}

#[test]
fn a_client_that_never_reads_does_not_block_others() {
    for driver in DRIVERS {
        let big = 16 * 1024 * 1024;
        let large = Upstream::start(Behaviour::reply(Reply::Large(big)));
        let echo = Upstream::echo();
        let config = format!(
            "[limits]\nresponse_write_timeout_ms = 500\n\n{}\
             [[apis.routes]]\nroute = \"GET /large\"\nintegration = \"large\"\n\n\
             [apis.integrations.large]\ntype = \"http\"\nurl = \"{}/large\"\n",
            proxy_all(&echo.url(), "").trim_start(),
            large.url()
        );
        let gw = Gateway::start(&config, driver);
        let addr = gw.addr("public");

        let mut sluggard = Client::connect(addr);
        sluggard.send(get_request("/large"));
        // The gateway has the response in hand once the upstream got the request.
        assert!(
            large.wait_requests(1, Duration::from_secs(5)),
            "{driver:?}: /large never reached the upstream"
        );
        legit_requests(addr, 10, &format!("{driver:?}"));

        // Writing to the sluggard stalls past response_write_timeout_ms: the gateway gives
        // up, which the large upstream sees as its connection ending.
        assert!(
            large.wait_connections_ended(1, Duration::from_secs(10)),
            "{driver:?}: the stalled response was never abandoned"
        );
        let mut received = 0usize;
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < end, "{driver:?}: sluggard not closed");
            match sluggard.wait_closed(Duration::from_secs(2)) {
                Closed::Yes(b) => {
                    received += b.len();
                    break;
                }
                Closed::No(b) => received += b.len(),
            }
        }
        assert!(
            received < big,
            "{driver:?}: the whole response ({received} bytes) was delivered"
        );
        legit_requests(addr, 2, &format!("{driver:?} after"));
    }
}
