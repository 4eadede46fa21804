//! Requests to the gateway's admin listener.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::gateway::{is, Gateway};

/// The admin listener's address, from its `admin listening` event.
pub fn admin_addr(gw: &Gateway) -> SocketAddr {
    let event = gw
        .wait_for(|e| is(e, "admin listening"), Duration::from_secs(5))
        .expect("admin listening event");
    event["addr"]
        .as_str()
        .expect("addr")
        .parse()
        .expect("address")
}

/// One admin request (`Connection: close`), with a bearer token if given; returns (status,
/// body).
pub fn call(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `GET /metrics` on the admin listener, parsed.
pub fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = call(addr, "GET", "/metrics", None, None);
    assert_eq!(status, 200, "/metrics: {body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

/// The sum of the counter or gauge samples `name` whose labels include `labels` (over
/// workers, say); None when there is none.
pub fn value(
    scrape: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .reduce(|a, b| a + b)
}

/// [`value`], 0 when there is no such sample.
pub fn sum(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or(0.0)
}
