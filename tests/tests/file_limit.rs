//! At the open-files limit the gateway refuses new connections at once (accepted and closed,
//! not left waiting in the backlog), keeps serving the connections it has, logs its ceiling,
//! and does not spin: sitting at the ceiling with idle connections costs next to no CPU.
//! Both drivers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tollgate_tests::config::mock_hello;
use tollgate_tests::{is, Gateway, Options, DRIVERS};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Served,
    /// Closed (or reset) by the gateway without an answer.
    Refused,
    /// Neither answered nor closed within the read timeout: left waiting.
    Stranded,
}

/// Sends GET /hello and says what became of it.
fn hello(stream: &mut TcpStream) -> Outcome {
    if stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        .is_err()
    {
        return Outcome::Refused;
    }
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Outcome::Refused,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::Stranded
            }
            Err(_) => return Outcome::Refused,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.ends_with(b"hello") {
            return if got.starts_with(b"HTTP/1.1 200") {
                Outcome::Served
            } else {
                Outcome::Refused
            };
        }
    }
}

#[test]
fn at_the_file_limit_new_connections_are_refused_and_old_ones_served() {
    for driver in DRIVERS {
        let gw = Gateway::start_with(&mock_hello(""), Options::new(driver).workers(1).nofile(64));
        let event = gw
            .wait_for(|e| is(e, "file descriptor limit"), Duration::from_secs(5))
            .expect("the ceiling is logged");
        assert_eq!(event["nofile"], 64, "{driver:?}");
        let addr = gw.addr("public");
        let mut served = Vec::new();
        let mut refused = 0;
        for _ in 0..90 {
            let mut s = TcpStream::connect(addr).expect("the kernel still completes the handshake");
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            match hello(&mut s) {
                Outcome::Served => served.push(s),
                Outcome::Refused => refused += 1,
                Outcome::Stranded => {
                    panic!("{driver:?}: a connection was left waiting at the limit")
                }
            }
        }
        assert!(served.len() >= 30, "{driver:?}: served {}", served.len());
        assert!(
            refused >= 1,
            "{driver:?}: nothing refused with {} served",
            served.len()
        );
        // Idle at the ceiling: no busy loop (a spinning worker would burn ~100 ticks/s).
        let before = gw.cpu_ticks();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            std::thread::park_timeout(Duration::from_millis(100));
        }
        let spent = gw.cpu_ticks() - before;
        assert!(
            spent <= 20,
            "{driver:?}: {spent} ticks in 1 s at the ceiling"
        );
        // The connections it holds still work.
        for s in served.iter_mut().take(5) {
            assert_eq!(
                hello(s),
                Outcome::Served,
                "{driver:?}: an existing connection stopped working"
            );
        }
    }
}
