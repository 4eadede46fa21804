//! The gateway's clock: the one source of "now" for everything computed from wall time
//! (today the `date` header of gateway-made responses; later token buckets, quota periods,
//! TTLs and block expiry).
//!
//! In production it is the system clock. `tollgate run --test-clock` lets end-to-end tests move
//! it forward without sleeping: the control thread then opens a loopback control socket (see
//! [`serve_test_control`]) and logs loudly that the switch is on. I/O timeouts are not driven
//! by this clock: monoio's timers run on the real clock.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds added to the system clock (only ever non-zero with `--test-clock`).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Now, by the gateway's clock.
pub fn now() -> SystemTime {
    let offset = OFFSET_MS.load(Ordering::Relaxed);
    let real = SystemTime::now();
    if offset >= 0 {
        real + Duration::from_millis(offset as u64)
    } else {
        real - Duration::from_millis(offset.unsigned_abs())
    }
}

/// Nanoseconds since the epoch on the gateway clock (token buckets, quota periods).
pub fn now_ns() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Milliseconds since the epoch on the gateway clock (block expiry).
pub fn now_ms() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the epoch on the gateway clock (quota periods, usage days).
pub fn now_secs() -> i64 {
    now_ns().div_euclid(1_000_000_000) as i64
}

/// Moves the clock forward by `ms` (test clock only).
fn advance(ms: i64) -> SystemTime {
    OFFSET_MS.fetch_add(ms, Ordering::Relaxed);
    now()
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the `date` header's format.
pub fn http_date(t: SystemTime) -> [u8; 29] {
    let mut out = [b' '; 29];
    // Formatted straight into the array: the workers refresh it periodically and must not
    // allocate for it.
    let _ = write!(&mut out[..], "{}", httpdate::HttpDate::from(t));
    out
}

/// Serves the test clock's control socket on `listener` until the process exits.
/// One request per connection: `POST /clock?advance_ms=N` moves the clock and answers
/// `{"now_ms":...}`; `GET /clock` only answers.
pub fn serve_test_control(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("");
        let advance_ms = target
            .split_once("advance_ms=")
            .and_then(|(_, v)| v.split('&').next())
            .and_then(|v| v.parse::<i64>().ok());
        let t = match advance_ms {
            Some(ms) => advance(ms),
            None => now(),
        };
        let ms = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let body = format!("{{\"now_ms\":{ms}}}");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = (&stream).write_all(response.as_bytes());
    }
}

/// Binds the test clock's control socket on loopback; returns it and its address.
pub fn bind_test_control() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_is_imf_fixdate() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&http_date(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
