//! The route phase: listener → host → path → method, in the plan's route tables (a segment
//! trie per host; path parameters are captured as byte ranges of the path into the buffer).
//! No match answers as the API kind does (HTTP API: 404 `Not Found`). A path with `.` or `..`
//! segments (also percent-encoded) is refused: it could match one route here and resolve to
//! another upstream.

use tollgate_backends::wire::buffers::IoBuf;
use tollgate_config::responses::ResponseType;
use tollgate_config::Plan;

use super::client::Client;
use super::request::Facts;
use super::respond::Stop;

/// Finds the request's route; its index in `plan.routes`.
pub fn find(client: &Client, plan: &Plan, facts: &Facts, buf: &mut IoBuf) -> Result<usize, Stop> {
    lookup(client, plan, facts, buf).map_err(Stop::refuse)
}

fn lookup(
    client: &Client,
    plan: &Plan,
    facts: &Facts,
    buf: &mut IoBuf,
) -> Result<usize, ResponseType> {
    let Some(listener) = plan.listeners.iter().find(|l| *l.name == *client.listener) else {
        return Err(ResponseType::ResourceNotFound);
    };
    let mut host_buf = [0u8; 256];
    let host = facts
        .head
        .host
        .and_then(|h| lowercase_host(h.get(&buf.data), &mut host_buf));
    let method = std::str::from_utf8(facts.head.method_span.get(&buf.data))
        .map_err(|_| ResponseType::BadRequest)?;
    let raw_path = facts.head.path.get(&buf.data);
    // `.` and `..` segments would let `/public/../admin` match a public route while the
    // upstream resolves it elsewhere: refused rather than normalized.
    if has_dot_segment(raw_path) {
        return Err(ResponseType::BadRequest);
    }
    let path = std::str::from_utf8(raw_path).map_err(|_| ResponseType::BadRequest)?;
    listener
        .routes
        .lookup(host, method, path, &mut buf.captures)
        .ok_or(ResponseType::ResourceNotFound)
}

/// True when a path has a `.` or `..` segment, also percent-encoded (`%2e`, `.%2E`, …).
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|segment| {
        let mut dots = 0;
        let mut rest = segment;
        while !rest.is_empty() {
            if rest[0] == b'.' {
                rest = &rest[1..];
            } else if rest.len() >= 3
                && rest[0] == b'%'
                && rest[1] == b'2'
                && (rest[2] | 0x20) == b'e'
            {
                rest = &rest[3..];
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

/// `Example.COM:8080` → `example.com`, `[::1]:8080` → `[::1]`, into `out`. None when too
/// long or not text.
fn lowercase_host<'a>(host: &[u8], out: &'a mut [u8; 256]) -> Option<&'a str> {
    let name = without_port(host);
    if name.len() > out.len() {
        return None;
    }
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(&out[..name.len()]).ok()
}

/// The host without a `:port` suffix (an IPv6 literal keeps its brackets).
fn without_port(host: &[u8]) -> &[u8] {
    let search_from = if host.first() == Some(&b'[') {
        match host.iter().position(|&b| b == b']') {
            Some(end) => end + 1,
            None => return host,
        }
    } else {
        0
    };
    match host[search_from..].iter().rposition(|&b| b == b':') {
        Some(i) if host[search_from + i + 1..].iter().all(u8::is_ascii_digit) => {
            &host[..search_from + i]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_raw_and_encoded() {
        for p in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/%2e/x",
        ] {
            assert!(has_dot_segment(p.as_bytes()), "{p}");
        }
        for p in ["/a/b", "/a/...", "/a/.b", "/a/b.", "/", "/a/%2f"] {
            assert!(!has_dot_segment(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn host_port_is_stripped_for_names_and_ipv6_literals() {
        let mut out = [0u8; 256];
        assert_eq!(
            lowercase_host(b"Example.COM:8080", &mut out),
            Some("example.com")
        );
        assert_eq!(lowercase_host(b"[::1]:8080", &mut out), Some("[::1]"));
        assert_eq!(lowercase_host(b"[::1]", &mut out), Some("[::1]"));
        assert_eq!(lowercase_host(b"a.b", &mut out), Some("a.b"));
    }
}
