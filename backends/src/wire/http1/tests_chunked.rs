//! Unit tests for the chunked decoder: every error, and split-point
//! invariance (every split position and byte-by-byte).

use super::chunked::{MAX_EXTENSION_BYTES, MAX_TRAILER_BYTES};
use super::*;

/// Feed `pieces` as a caller would (keeping only bytes the decoder did not
/// consume), returning the body, whether done, and the leftover bytes.
pub(super) fn drive(
    dec: &mut ChunkedDecoder,
    pieces: &[&[u8]],
) -> Result<(Vec<u8>, bool, Vec<u8>), ChunkError> {
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for piece in pieces {
        pending.extend_from_slice(piece);
        loop {
            let was_done = dec.is_done();
            let d = dec.decode(&pending)?;
            assert!(d.consumed <= pending.len());
            if was_done {
                assert_eq!(d.consumed, 0, "consumed after done");
            }
            if let Some(r) = d.data.clone() {
                assert!(r.end <= d.consumed && r.start < r.end, "bad range {r:?}");
                body.extend_from_slice(&pending[r]);
            }
            assert_eq!(d.done, dec.is_done());
            pending.drain(..d.consumed);
            if d.done || (d.data.is_none() && pending.is_empty()) {
                break;
            }
        }
        if !dec.is_done() {
            assert!(pending.is_empty(), "decoder left framing bytes unconsumed");
        }
    }
    Ok((body, dec.is_done(), pending))
}

fn decode_all(input: &[u8]) -> Result<(Vec<u8>, bool, Vec<u8>), ChunkError> {
    drive(&mut ChunkedDecoder::new(), &[input])
}

fn error_of(input: &[u8]) -> ChunkError {
    match decode_all(input) {
        Err(e) => e,
        Ok(r) => panic!(
            "expected error for {:?}, got {r:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

const BODY: &[u8] = b"5\r\nhello\r\n1;ext=1;q=\"a b\"\r\n \r\nA\r\n0123456789\r\n00B\r\n_0123456789\r\n0\r\nX-Trailer: yes\r\nX-Other:\tv\r\n\r\n";
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\n";
const WANT: &[u8] = b"hello 0123456789_0123456789";

#[test]
fn decodes_multi_chunk_body() {
    let mut input = BODY.to_vec();
    input.extend_from_slice(NEXT);
    let (body, done, rest) = decode_all(&input).unwrap();
    assert_eq!((body.as_slice(), done, rest.as_slice()), (WANT, true, NEXT));
}

#[test]
fn done_arrives_with_last_data_and_never_consumes_more() {
    let mut dec = ChunkedDecoder::new();
    let input = b"3\r\nabc\r\n0\r\n\r\nXYZ";
    let d = dec.decode(input).unwrap();
    assert_eq!(
        d,
        Decoded {
            consumed: 13,
            data: Some(3..6),
            done: true
        }
    );
    // Data split from its framing: the data call stops at the input end,
    // the next call finishes the body.
    let mut dec2 = ChunkedDecoder::new();
    assert_eq!(
        dec2.decode(&input[..6]).unwrap(),
        Decoded {
            consumed: 6,
            data: Some(3..6),
            done: false
        }
    );
    assert_eq!(
        dec2.decode(&input[6..]).unwrap(),
        Decoded {
            consumed: 7,
            data: None,
            done: true
        }
    );
    assert_eq!(
        dec.decode(b"XYZ").unwrap(),
        Decoded {
            consumed: 0,
            data: None,
            done: true
        }
    );
    let mut dec = ChunkedDecoder::default();
    assert_eq!(dec.decode(b"").unwrap(), Decoded::default());
}

#[test]
fn every_split_point() {
    let mut input = BODY.to_vec();
    input.extend_from_slice(NEXT);
    for k in 0..=input.len() {
        let (a, b) = input.split_at(k);
        let (body, done, rest) = drive(&mut ChunkedDecoder::new(), &[a, b]).unwrap();
        assert_eq!(
            (body.as_slice(), done, rest.as_slice()),
            (WANT, true, NEXT),
            "split {k}"
        );
    }
    // Two split points.
    for i in 0..=BODY.len() {
        for j in i..=BODY.len() {
            let r = drive(
                &mut ChunkedDecoder::new(),
                &[&BODY[..i], &BODY[i..j], &BODY[j..]],
            );
            assert_eq!(r, Ok((WANT.to_vec(), true, Vec::new())), "splits {i},{j}");
        }
    }
}

#[test]
fn byte_by_byte_done_exactly_at_end() {
    let mut dec = ChunkedDecoder::new();
    let mut body = Vec::new();
    for (i, b) in BODY.iter().enumerate() {
        assert!(!dec.is_done(), "done early at {i}");
        let d = dec.decode(std::slice::from_ref(b)).unwrap();
        assert_eq!(d.consumed, 1);
        if let Some(r) = d.data {
            body.extend_from_slice(&[*b][r]);
        }
    }
    assert!(dec.is_done());
    assert_eq!(body, WANT);
    assert_eq!(dec.decode(NEXT).unwrap().consumed, 0);
}

#[test]
fn incomplete_needs_more() {
    for k in 0..BODY.len() {
        let (body, done, rest) = decode_all(&BODY[..k]).unwrap();
        assert!(!done && rest.is_empty(), "prefix {k}");
        assert!(WANT.starts_with(&body));
    }
}

#[test]
fn size_errors() {
    assert_eq!(error_of(b"\r\n"), ChunkError::InvalidSize);
    assert_eq!(error_of(b";ext\r\n"), ChunkError::InvalidSize);
    assert_eq!(error_of(b"g\r\n"), ChunkError::InvalidSize);
    assert_eq!(error_of(b"-1\r\n"), ChunkError::InvalidSize);
    assert_eq!(error_of(b"0x5\r\n"), ChunkError::InvalidSize);
    assert_eq!(error_of(b" 5\r\n"), ChunkError::InvalidSize);
    // Whitespace before the line end is not BWS (extensions: `extension_grammar`).
    assert_eq!(error_of(b"5\t\r\nhello\r\n"), ChunkError::InvalidExtension);
    assert_eq!(error_of(b"5;a\x01\r\n"), ChunkError::InvalidExtension);
    assert_eq!(error_of(b"fffffffffffffffff\r\n"), ChunkError::SizeOverflow);
    assert_eq!(error_of(&[b'0'; 33]), ChunkError::SizeOverflow);
    assert_eq!(error_of(b"ffffffffff1\r\n"), ChunkError::ChunkTooLarge);
    let mut small = ChunkedDecoder::with_max_chunk_size(4);
    assert_eq!(
        drive(&mut small, &[b"5\r\n"]),
        Err(ChunkError::ChunkTooLarge)
    );
    // Leading zeros are fine.
    let (body, done, _) = decode_all(b"0003\r\nabc\r\n000\r\n\r\n").unwrap();
    assert_eq!((body.as_slice(), done), (&b"abc"[..], true));
    for e in [
        ChunkError::InvalidSize,
        ChunkError::SizeOverflow,
        ChunkError::ChunkTooLarge,
    ] {
        assert!(!e.message().is_empty());
    }
}

#[test]
fn line_ending_errors() {
    assert_eq!(error_of(b"5\nhello\r\n"), ChunkError::MissingCrlf);
    assert_eq!(error_of(b"5\rhello\r\n"), ChunkError::MissingCrlf);
    assert_eq!(error_of(b"5;e\nhello\r\n"), ChunkError::MissingCrlf);
    // Data longer than the declared size.
    assert_eq!(
        error_of(b"5\r\nhello!\r\n0\r\n\r\n"),
        ChunkError::MissingCrlf
    );
    assert_eq!(error_of(b"5\r\nhello\n0\r\n\r\n"), ChunkError::MissingCrlf);
    assert_eq!(
        error_of(b"5\r\nhello\r\r0\r\n\r\n"),
        ChunkError::MissingCrlf
    );
    assert_eq!(error_of(b"0\r\n\n"), ChunkError::MissingCrlf);
    assert_eq!(error_of(b"0\r\n\rx"), ChunkError::MissingCrlf);
    assert_eq!(error_of(b"0\r\nX: 1\n\r\n"), ChunkError::MissingCrlf);
    assert!(!ChunkError::MissingCrlf.message().is_empty());
}

#[test]
fn data_returned_before_later_framing_error() {
    let mut dec = ChunkedDecoder::new();
    let input = b"5\r\nhello!";
    let d = dec.decode(input).unwrap();
    assert_eq!((d.consumed, d.data), (8, Some(3..8)));
    assert_eq!(dec.decode(b"!"), Err(ChunkError::MissingCrlf));
    assert_eq!(
        dec.decode(b"!"),
        Err(ChunkError::MissingCrlf),
        "error repeats"
    );
}

#[test]
fn extension_limit() {
    let mut ok = b"1;".to_vec();
    ok.resize(1 + MAX_EXTENSION_BYTES, b'x');
    ok.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_eq!(decode_all(&ok).map(|r| r.1), Ok(true));
    let mut long = b"1;".to_vec();
    long.resize(2 + MAX_EXTENSION_BYTES, b'x');
    long.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_eq!(error_of(&long), ChunkError::ExtensionTooLong);
    // The limit applies per line, not per body.
    let mut many = Vec::new();
    for _ in 0..4 {
        many.extend_from_slice(b"1;");
        many.resize(many.len() + MAX_EXTENSION_BYTES - 1, b'y');
        many.extend_from_slice(b"\r\na\r\n");
    }
    many.extend_from_slice(b"0;last\r\n\r\n");
    assert_eq!(decode_all(&many).map(|r| (r.0.len(), r.1)), Ok((4, true)));
}

#[test]
fn trailer_rules() {
    assert_eq!(error_of(b"0\r\nX : 1\r\n\r\n"), ChunkError::InvalidTrailer);
    assert_eq!(error_of(b"0\r\nX 1\r\n\r\n"), ChunkError::InvalidTrailer);
    assert_eq!(error_of(b"0\r\n: 1\r\n\r\n"), ChunkError::InvalidTrailer);
    assert_eq!(
        error_of(b"0\r\nX: 1\r\n folded\r\n\r\n"),
        ChunkError::InvalidTrailer
    );
    assert_eq!(
        error_of(b"0\r\nX: a\x00b\r\n\r\n"),
        ChunkError::InvalidTrailer
    );
    assert_eq!(
        error_of(b"0\r\nX: a\x7fb\r\n\r\n"),
        ChunkError::InvalidTrailer
    );
    let mut big = b"0\r\nX: ".to_vec();
    big.resize(3 + MAX_TRAILER_BYTES, b'v');
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(error_of(&big), ChunkError::TrailersTooLarge);
    // Exactly at the limit (counting the final CRLF) is accepted.
    let mut fit = b"0\r\nX: ".to_vec();
    fit.resize(3 + MAX_TRAILER_BYTES - 4, b'v');
    fit.extend_from_slice(b"\r\n\r\n");
    assert_eq!(decode_all(&fit).map(|r| r.1), Ok(true));
    assert!(!ChunkError::TrailersTooLarge.message().is_empty());
    assert!(!ChunkError::InvalidTrailer.message().is_empty());
    assert!(!ChunkError::ExtensionTooLong.message().is_empty());
}

/// A chunk of `a` with the given size-line suffix, then the last chunk.
fn with_ext(ext: &[u8]) -> Vec<u8> {
    let mut b = b"1".to_vec();
    b.extend_from_slice(ext);
    b.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    b
}

/// RFC 9112 §7.1.1: `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[test]
fn extension_grammar() {
    for ext in [
        &b""[..],
        b";a",
        b";a=b",
        b" ;a",
        b"\t;a",
        b"  \t ;a=b",
        b"; a",
        b";a =b",
        b";a= b",
        b";a \t= \tb",
        b";a ;b",
        b";a=b ;c",
        b";a=\"\"",
        b";a=\"x y;z=\\\"q\\\\\"",
        b";a=\"\xff\t\"",
        b";a=\"x\" ;b=c;d",
        b";!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~",
    ] {
        let input = with_ext(ext);
        assert_eq!(
            decode_all(&input).map(|r| (r.0, r.1)),
            Ok((b"a".to_vec(), true)),
            "{:?}",
            String::from_utf8_lossy(ext)
        );
    }
    for ext in [
        &b";"[..],
        b";=",
        b";=b",
        b"; ",
        b";;a",
        b";a;",
        b";a=",
        b";a= ",
        b";a=;b",
        b";a=b=c",
        b";a b",
        b";a=b c",
        b";a=\"x",
        b";a=\"x\\\"",
        b";a=\"x\"y",
        b";a=x\"",
        b";a@b",
        b";a=b@",
        b";a=\"\x01\"",
        b";a=\"\x7f\"",
        b";a ",
        b";a=b ",
        b";a=\"x\" ",
        b" ",
        b" a",
        b";\xff",
    ] {
        assert_eq!(
            error_of(&with_ext(ext)),
            ChunkError::InvalidExtension,
            "{:?}",
            String::from_utf8_lossy(ext)
        );
    }
    // A value without a name right after the size is not an extension at all.
    assert_eq!(error_of(&with_ext(b"=a")), ChunkError::InvalidSize);
    // A size line is still a single line: LF inside a quoted value is a framing error.
    assert_eq!(error_of(b"1;a=\"x\ny\"\r\n"), ChunkError::MissingCrlf);
    assert!(!ChunkError::InvalidExtension.message().is_empty());
}

/// Extensions with BWS and quoted strings decode the same at every split point.
#[test]
fn extension_split_points() {
    let input = b"1 ;a = \"x;\\\"y\" ; b=c\r\na\r\n2;q\r\nbc\r\n0 ; z\r\n\r\n";
    for k in 0..=input.len() {
        let (a, b) = input.split_at(k);
        let r = drive(&mut ChunkedDecoder::new(), &[a, b]);
        assert_eq!(r, Ok((b"abc".to_vec(), true, Vec::new())), "split {k}");
    }
}

#[test]
fn whitespace_counts_towards_the_extension_limit() {
    let mut long = b"1".to_vec();
    long.resize(1 + MAX_EXTENSION_BYTES, b' ');
    long.extend_from_slice(b";a\r\na\r\n0\r\n\r\n");
    assert_eq!(error_of(&long), ChunkError::ExtensionTooLong);
    let mut fit = b"1".to_vec();
    fit.resize(1 + MAX_EXTENSION_BYTES - 2, b' ');
    fit.extend_from_slice(b";a\r\na\r\n0\r\n\r\n");
    assert_eq!(decode_all(&fit).map(|r| r.1), Ok(true));
}
