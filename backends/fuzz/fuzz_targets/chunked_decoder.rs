//! The chunked decoder never panics, never reports data outside what it consumed, and gives
//! the same body whether its input arrives whole or split in two at any point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_backends::wire::http1::ChunkedDecoder;

fn decode_all(parts: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), ()> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut consumed_total = 0;
    for part in parts {
        let mut input = *part;
        loop {
            let step = decoder.decode(input).map_err(|_| ())?;
            assert!(step.consumed <= input.len());
            if let Some(r) = &step.data {
                assert!(r.end <= step.consumed);
                body.extend_from_slice(&input[r.clone()]);
            }
            input = &input[step.consumed..];
            consumed_total += step.consumed;
            if step.done || (step.consumed == 0 && step.data.is_none()) || input.is_empty() {
                if step.done {
                    return Ok((body, true, consumed_total));
                }
                if input.is_empty() {
                    break;
                }
                if step.consumed == 0 && step.data.is_none() {
                    break;
                }
            }
        }
    }
    Ok((body, decoder.is_done(), consumed_total))
}

fuzz_target!(|data: &[u8]| {
    let whole = decode_all(&[data]);
    if data.len() > 1 {
        let split = data[0] as usize % data.len();
        let parts = decode_all(&[&data[..split], &data[split..]]);
        if let (Ok(a), Ok(b)) = (&whole, &parts) {
            if a.1 && b.1 {
                assert_eq!(a, b);
            }
        }
    }
});
