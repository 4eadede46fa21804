//! Unit tests for request-head size limits (414/431, header count, the
//! on-stack array cap) and split-point invariance.

use super::*;

#[test]
fn limits() {
    let lim = HeadLimits {
        header_bytes_max: 64,
        url_bytes_max: 16,
        headers_count_max: 2,
    };
    let p = |b: &[u8]| parse_request(b, &lim, &mut Vec::new());
    // Target exactly at the limit is fine; one more is 414, complete or not.
    assert!(p(b"GET /234567890123456 HTTP/1.1\r\nHost: h\r\n\r\n").is_ok_and(|h| h.is_some()));
    assert_eq!(
        p(b"GET /2345678901234567 HTTP/1.1\r\n"),
        Err(HeadError::UriTooLong)
    );
    assert_eq!(p(b"GET /2345678901234567"), Err(HeadError::UriTooLong));
    assert_eq!(p(b"GET /234567890123456"), Ok(None));
    // A target running past the head limit is still 414, not 431.
    let mut long = b"GET /".to_vec();
    long.resize(200, b'a');
    assert_eq!(p(&long), Err(HeadError::UriTooLong));
    // Head size: incomplete at the limit is 431; a complete head of exactly the limit is fine.
    let mut h = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
    h.resize(64, b'v');
    assert_eq!(p(&h), Err(HeadError::HeaderTooLarge));
    h.truncate(60);
    h.extend_from_slice(b"\r\n\r\n");
    assert_eq!(p(&h).map(|o| o.map(|r| r.head_len)), Ok(Some(64)));
    h.insert(30, b'v');
    assert_eq!(p(&h), Err(HeadError::HeaderTooLarge));
    // Header count.
    assert!(p(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n").is_ok_and(|h| h.is_some()));
    assert_eq!(
        p(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"),
        Err(HeadError::HeaderTooLarge)
    );
    assert_eq!(HeadError::HeaderTooLarge.status(), 431);
    assert_eq!(HeadError::UriTooLong.status(), 414);
}

#[test]
fn many_headers_use_stack_array_and_default_limit() {
    let mut b = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..99 {
        b.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    b.extend_from_slice(b"\r\n");
    let mut headers = Vec::with_capacity(100);
    let cap = headers.capacity();
    assert!(parse_request(&b, &HeadLimits::default(), &mut headers).is_ok_and(|h| h.is_some()));
    assert_eq!((headers.len(), headers.capacity()), (100, cap));
    b.truncate(b.len() - 2);
    b.extend_from_slice(b"X-last: v\r\n\r\n");
    assert_eq!(
        parse_request(&b, &HeadLimits::default(), &mut headers),
        Err(HeadError::HeaderTooLarge)
    );
    // A caller limit above the array size is capped at 128.
    let lim = HeadLimits {
        headers_count_max: 1000,
        header_bytes_max: 1 << 20,
        ..HeadLimits::default()
    };
    for i in 0..40 {
        b.truncate(b.len() - 2);
        b.extend_from_slice(format!("Y-{i}: v\r\n\r\n").as_bytes());
    }
    assert_eq!(
        parse_request(&b, &lim, &mut headers),
        Err(HeadError::HeaderTooLarge)
    );
}

#[test]
fn split_point_invariance() {
    let full: &[u8] = b"\r\nPOST /upload?id=7 HTTP/1.1\r\nHost: api.example\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello";
    let mut headers = Vec::new();
    let lim = HeadLimits::default();
    let want = parse_request(full, &lim, &mut headers).unwrap().unwrap();
    let want_headers = headers.clone();
    assert_eq!(want.framing, BodyFraming::Chunked);
    assert!(want.expect_continue);
    for k in 0..full.len() {
        let got = parse_request(&full[..k], &lim, &mut headers);
        if k < want.head_len {
            assert_eq!(got, Ok(None), "prefix {k}");
        } else {
            assert_eq!(got, Ok(Some(want)), "prefix {k}");
            assert_eq!(headers, want_headers);
        }
    }
}
