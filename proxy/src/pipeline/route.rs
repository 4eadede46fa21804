//! The route phase: listener → host → path → method, in the plan's route tables (a segment
//! trie per host; path parameters are captured as byte ranges of the path into the buffer).
//! No match answers as the API kind does (HTTP API: 404 `Not Found`).
//!
//! Paths are matched raw (no percent-decoding), so a path that an upstream could decode or
//! normalize into a different one is refused with 400 (`BAD_REQUEST`) before the lookup
//! rather than normalized — it could match one route here and resolve to another upstream
//! (`/public/..%2Fadmin` matches `/public/{proxy+}`, an upstream may read `/admin`):
//! * an encoded slash `%2F` or encoded backslash `%5C` (either case) anywhere, as AWS API
//!   Gateway HTTP APIs do not route encoded slashes either; this also covers a dot segment
//!   ended by an encoded separator (`..%2f`, `.%5c`), and a literal route `/a/b` can never
//!   be reached as `/a%2Fb`;
//! * a literal backslash, which some servers take for a separator;
//! * a `.` or `..` segment, raw or encoded in any case mix (`%2e%2E`, `.%2E`), also with
//!   `;` parameters (`..;x`, which servlet containers read as `..`).
//!
//! Other percent-encodings (`%20`, `%25`, `%2D`, a truncated `%2`) pass untouched: they
//! decode to no separator and no dot segment.

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
    let Some(listener) = client.listener(plan) else {
        return Err(ResponseType::ResourceNotFound);
    };
    let mut host_buf = [0u8; 256];
    let host = facts
        .head
        .host
        .and_then(|h| lowercase_host(h.get(&buf.data), &mut host_buf));
    let method = std::str::from_utf8(facts.head.method_span.get(&buf.data))
        .map_err(|_| ResponseType::BadRequest)?;
    let path = routable_path(facts.head.path.get(&buf.data))?;
    listener
        .routes
        .lookup(host, method, path, &mut buf.captures)
        .ok_or(ResponseType::ResourceNotFound)
}

/// The raw path as text when it may be routed; `BAD_REQUEST` when [`unsafe_path`] refuses it
/// (or it is not text, which the codec's ASCII-only target rule already excludes).
fn routable_path(raw: &[u8]) -> Result<&str, ResponseType> {
    if unsafe_path(raw).is_some() {
        return Err(ResponseType::BadRequest);
    }
    std::str::from_utf8(raw).map_err(|_| ResponseType::BadRequest)
}

/// Why a raw path must not be routed (the module doc has the rule), or `None` when it may.
fn unsafe_path(path: &[u8]) -> Option<&'static str> {
    if path.contains(&b'\\') {
        return Some("backslash in path");
    }
    for escape in path.windows(3).filter(|w| w[0] == b'%') {
        match (escape[1], escape[2] | 0x20) {
            (b'2', b'f') => return Some("encoded slash in path"),
            (b'5', b'c') => return Some("encoded backslash in path"),
            _ => {}
        }
    }
    if path
        .split(|&b| b == b'/')
        .any(|segment| is_dot_segment(without_params(segment)))
    {
        return Some("dot segment in path");
    }
    None
}

/// A segment without its `;` parameters: servlet containers read `..;x` as `..`.
fn without_params(segment: &[u8]) -> &[u8] {
    segment.split(|&b| b == b';').next().unwrap_or(b"")
}

/// True for a `.` or `..` segment, each dot raw or encoded (`%2e`, `%2E`).
fn is_dot_segment(segment: &[u8]) -> bool {
    let mut dots = 0;
    let mut rest = segment;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', e, tail @ ..] if (e | 0x20) == b'e' => tail,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// `Example.COM:8080` → `example.com`, `[::1]:8080` → `[::1]`, into `out`. None when too
/// long or not text.
pub(super) fn lowercase_host<'a>(host: &[u8], out: &'a mut [u8; 256]) -> Option<&'a str> {
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
    fn encoded_separators_backslashes_and_dot_segments_are_refused() {
        let slash = Some("encoded slash in path");
        let backslash = Some("encoded backslash in path");
        let literal = Some("backslash in path");
        let dots = Some("dot segment in path");
        let table: &[(&str, Option<&str>)] = &[
            ("/a/%2Fb", slash),
            ("/a%2fb", slash),
            ("/public/..%2Fadmin", slash),
            ("/a/..%2f", slash),
            ("/a%2F", slash),
            ("/a/%5cb", backslash),
            ("/a/.%5C/b", backslash),
            ("/a%5Cb", backslash),
            ("/a\\b", literal),
            ("\\", literal),
            ("/a/../b", dots),
            ("/a/./b", dots),
            ("/..", dots),
            ("/a/%2e%2e/b", dots),
            ("/a/.%2E/b", dots),
            ("/%2E%2e", dots),
            ("/a/%2e", dots),
            ("/a/%2E./", dots),
            ("/public/..;/admin", dots),
            ("/a/.;x=1/b", dots),
            ("/a/b%20c", None),
            ("/a/b;v=1", None),
            ("/a/...;x", None),
            ("/a/%25", None),
            ("/a/%252F", None),
            ("/a/%2Dx", None),
            ("/a/%2", None),
            ("/a/%", None),
            ("/a/%5", None),
            ("/a/...", None),
            ("/a/.b", None),
            ("/a/b.", None),
            ("/a/%2e%2e%2e", None),
            ("/a/b", None),
            ("/", None),
        ];
        for (path, why) in table {
            assert_eq!(unsafe_path(path.as_bytes()), *why, "{path}");
            let routed = routable_path(path.as_bytes());
            if why.is_some() {
                assert_eq!(routed, Err(ResponseType::BadRequest), "{path}");
            } else {
                assert_eq!(routed, Ok(*path), "{path}");
            }
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
