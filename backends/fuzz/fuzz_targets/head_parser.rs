//! Request and response head parsing never panics, and an accepted head is self-consistent:
//! spans lie inside the input and the head length covers them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_backends::wire::http1::{parse_request, parse_response, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits::default();
    let mut headers = Vec::with_capacity(128);
    if let Ok(Some(head)) = parse_request(data, &limits, &mut headers) {
        assert!(head.head_len <= data.len());
        for h in &headers {
            assert!(h.name.end as usize <= head.head_len && h.value.end as usize <= head.head_len);
            assert!(!h.name.is_empty());
        }
        assert!(head.path.end as usize <= head.head_len);
        // Parsing is prefix-stable: the head alone parses to the same result.
        let again = parse_request(&data[..head.head_len], &limits, &mut headers);
        assert_eq!(again, Ok(Some(head)));
    }
    let _ = parse_response(data, &limits, &mut headers, false);
});
