//! Property tests: no panics on arbitrary input, and split-point
//! invariance for heads and chunked bodies built from random parts.

use proptest::prelude::*;

use super::tests_chunked::drive;
use super::*;

/// A valid chunked body from chunk payloads, plus the payloads joined.
fn encode_chunked(chunks: &[Vec<u8>], ext: bool) -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut body = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        wire.extend_from_slice(format!("{:x}", c.len()).as_bytes());
        if ext {
            wire.extend_from_slice(b";a=b");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(c);
        wire.extend_from_slice(b"\r\n");
        body.extend_from_slice(c);
    }
    wire.extend_from_slice(b"0\r\nT: 1\r\n\r\n");
    (wire, body)
}

proptest! {
    #[test]
    fn parse_request_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut headers = Vec::new();
        let _ = parse_request(&buf, &HeadLimits::default(), &mut headers);
        let _ = parse_response(&buf, &HeadLimits::default(), &mut headers, false);
    }

    #[test]
    fn parse_request_never_panics_near_valid(
        prefix in "(GET|POST) /[a-z?=&%]{0,10} HTTP/1\\.[01]\r\n",
        lines in proptest::collection::vec("[ -~\t\r\n]{0,20}", 0..6),
    ) {
        let mut buf = prefix.into_bytes();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        let mut headers = Vec::new();
        if let Ok(Some(h)) = parse_request(&buf, &HeadLimits::default(), &mut headers) {
            prop_assert!(h.head_len <= buf.len());
            for hs in &headers {
                prop_assert!(hs.value.end as usize <= h.head_len);
            }
        }
    }

    #[test]
    fn chunked_never_panics(
        buf in proptest::collection::vec(any::<u8>(), 0..400),
        split in 0usize..400,
    ) {
        let mut dec = ChunkedDecoder::new();
        let k = split.min(buf.len());
        let mut off = 0;
        for piece in [&buf[..k], &buf[k..]] {
            let mut p = piece;
            while let Ok(d) = dec.decode(p) {
                prop_assert!(d.consumed <= p.len());
                if let Some(r) = &d.data {
                    prop_assert!(r.start < r.end && r.end <= d.consumed);
                }
                p = &p[d.consumed..];
                off += d.consumed;
                if d.done || d.data.is_none() {
                    break;
                }
            }
        }
        prop_assert!(off <= buf.len());
    }

    #[test]
    fn chunked_split_invariance(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
        ext in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let (mut wire, body) = encode_chunked(&chunks, ext);
        let body_len = wire.len();
        wire.extend_from_slice(b"NEXT");
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut last = 0;
        for p in points {
            pieces.push(&wire[last..p]);
            last = p;
        }
        pieces.push(&wire[last..]);
        let (got, done, rest) = drive(&mut ChunkedDecoder::new(), &pieces).map_err(|e| TestCaseError::fail(e.message()))?;
        prop_assert_eq!(got, body);
        prop_assert!(done);
        prop_assert_eq!(rest, &wire[body_len..]);
    }

    #[test]
    fn request_split_invariance(
        path in "/[a-zA-Z0-9/%._~-]{0,30}(\\?[a-z=&]{0,10})?",
        names in proptest::collection::vec("[A-Za-z][A-Za-z0-9-]{0,10}", 0..8),
        value in "[ -~]{0,20}",
        split in any::<prop::sample::Index>(),
    ) {
        let mut s = format!("GET {path} HTTP/1.1\r\nHost: example.org\r\n");
        for n in &names {
            if n.eq_ignore_ascii_case("host") || n.eq_ignore_ascii_case("expect")
                || n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            s.push_str(&format!("X-{n}: {value}\r\n"));
        }
        s.push_str("\r\n");
        let buf = s.into_bytes();
        let lim = HeadLimits::default();
        let mut headers = Vec::new();
        let want = parse_request(&buf, &lim, &mut headers);
        let want = match want {
            Ok(Some(h)) => h,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(want.head_len, buf.len());
        prop_assert_eq!(want.target.get(&buf), path.as_bytes());
        let k = split.index(buf.len());
        prop_assert_eq!(parse_request(&buf[..k], &lim, &mut headers), Ok(None));
    }
}
