//! Request ids: unique per process run without allocation or shared state. Each worker mixes
//! its id and a start-time seed into a counter; the result is 32 hex digits.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// A formatted id: 32 lowercase hex digits on the stack.
#[derive(Debug, Clone, Copy)]
pub struct RequestId([u8; 32]);

impl RequestId {
    /// The id as text.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One worker's id generator.
#[derive(Debug)]
pub struct RequestIds {
    seed: u64,
    next: Cell<u64>,
}

impl RequestIds {
    /// A generator for worker `worker`.
    pub fn new(worker: usize) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            seed: nanos ^ ((worker as u64) << 56) ^ u64::from(std::process::id()) << 32,
            next: Cell::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> RequestId {
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        let hi = mix(self.seed.wrapping_add(n));
        let lo = mix(self.seed.rotate_left(32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut out = [0u8; 32];
        hex(hi, &mut out[..16]);
        hex(lo, &mut out[16..]);
        RequestId(out)
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finalizer: cheap and well spread.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hex(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_hex_and_unique_across_workers() {
        let mut seen = HashSet::new();
        for worker in 0..4 {
            let ids = RequestIds::new(worker);
            for _ in 0..1000 {
                let id = ids.next_id();
                assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
                assert!(seen.insert(id.as_bytes().to_vec()));
                assert_ne!(id.as_bytes()[..16], id.as_bytes()[16..], "halves differ");
            }
        }
    }
}
