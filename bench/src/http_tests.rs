//! Sans-IO tests for the HTTP framing: every stream is fed split at every byte boundary (and
//! byte by byte) because real reads split messages anywhere.

use super::*;
use crate::recv::RecvBuf;

/// Feeds `chunks` one after another, collecting every message the parser completes, then
/// signals EOF.
fn run(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<Message> {
    let mut buf = RecvBuf::with_capacity(64 * 1024);
    let mut out = Vec::new();
    for chunk in chunks {
        buf.feed(chunk);
        while let Some(m) = buf.next_message(parser).expect("parse") {
            out.push(m);
        }
    }
    out.extend(parser.eof());
    out
}

/// Checks that every two-way split and the byte-by-byte feed give the same messages.
fn check_splits(make: impl Fn() -> Parser, stream: &[u8], expected: &[Message]) {
    assert_eq!(run(&mut make(), &[stream]), expected, "whole stream");
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(run(&mut make(), &[a, b]), expected, "split at {i}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(&mut make(), &bytes), expected, "byte by byte");
}

fn msg(status: u16, keep_alive: bool, bytes: &[u8]) -> Message {
    Message {
        status,
        keep_alive,
        bytes: bytes.len() as u64,
    }
}

#[test]
fn pipelined_responses_with_every_framing() {
    let r1: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let r2: &[u8] = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n";
    let r3: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
    let r4: &[u8] = b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let stream = [r1, r2, r3, r4].concat();
    let expected = [
        msg(200, true, r1),
        msg(404, true, r2),
        msg(204, true, r3),
        msg(503, false, r4),
    ];
    check_splits(|| Parser::response(false), &stream, &expected);
}

#[test]
fn read_until_close_completes_at_eof() {
    let r: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nbody until the end";
    check_splits(|| Parser::response(false), r, &[msg(200, false, r)]);
}

#[test]
fn head_responses_have_no_body() {
    let r: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
    let stream = [r, r].concat();
    check_splits(|| Parser::response(true), &stream, &[msg(200, true, r); 2]);
}

#[test]
fn truncated_body_is_not_a_message() {
    let mut p = Parser::response(false);
    let got = run(
        &mut p,
        &[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"],
    );
    assert!(got.is_empty());
}

#[test]
fn pipelined_requests_with_bodies() {
    let q1: &[u8] = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
    let q2: &[u8] = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\n\r\nGET ";
    let q3: &[u8] =
        b"PUT /y HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let q4: &[u8] = b"GET /z HTTP/1.0\r\n\r\n";
    let stream = [q1, q2, q3, q4].concat();
    let expected = [
        msg(0, true, q1),
        msg(0, true, q2),
        msg(0, true, q3),
        msg(0, false, q4),
    ];
    check_splits(Parser::request, &stream, &expected);
}

#[test]
fn malformed_input_is_an_error() {
    let mut buf = RecvBuf::with_capacity(1024);
    buf.feed(b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n");
    assert!(buf.next_message(&mut Parser::response(false)).is_err());
    let mut buf = RecvBuf::with_capacity(1024);
    buf.feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n");
    assert!(buf.next_message(&mut Parser::response(false)).is_err());
}

#[test]
fn built_messages_parse_back() {
    for chunked in [false, true] {
        for body in [0, 1, 1024] {
            let resp = build_response(body, chunked, false);
            let got = run(&mut Parser::response(false), &[&resp]);
            assert_eq!(
                got,
                [msg(200, true, &resp)],
                "chunked={chunked} body={body}"
            );
        }
    }
    let close = build_response(3, false, true);
    assert_eq!(
        run(&mut Parser::response(false), &[&close]),
        [msg(200, false, &close)]
    );
    let headers = vec!["x-a: 1".to_string()];
    let req = build_request("POST", "/p", "h:1", &headers, 7, false);
    assert_eq!(run(&mut Parser::request(), &[&req]), [msg(0, true, &req)]);
}
