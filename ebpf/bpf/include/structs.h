/* SPDX-License-Identifier: Apache-2.0 */
/*
 * structs.h — keys and values shared with Rust (ebpf/src/structs.rs mirrors each one with
 * size and offset asserts). Fixed-width types and explicit padding only, so the layout is
 * the same for clang -target bpf and rustc x86_64. Addresses are kept as bytes in network
 * order, exactly as they appear in the packet.
 */
#ifndef TOLLGATE_STRUCTS_H
#define TOLLGATE_STRUCTS_H

#include <linux/types.h>

/* An IPv4 address, network order (hash key of blocks_v4, syn_v4, pkt_v4). 4 bytes. */
struct addr_v4 {
	__u8 bytes[4];
};

/* An IPv6 address, network order (hash key of blocks_v6, syn_v6, pkt_v6). 16 bytes. */
struct addr_v6 {
	__u8 bytes[16];
};

/* LPM-trie key for allow_v4/deny_v4: prefix length in bits, then the address. 8 bytes. */
struct lpm_key_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

/* LPM-trie key for allow_v6/deny_v6. 20 bytes. */
struct lpm_key_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/*
 * A timed block. The program drops while the entry exists and never reads expiry_ns,
 * whose clock is userspace's (the gateway writes epoch ns of its own clock and deletes
 * expired entries itself). reason is opaque to the kernel. 16 bytes.
 */
struct block_value {
	__u64 expiry_ns;
	__u32 reason;
	__u32 pad;
};

/* Token bucket of one source: tokens in nano-tokens (TOKEN_SCALE per token), last refill
 * time from bpf_ktime_get_ns. 16 bytes. */
struct bucket {
	__u64 tokens_scaled;
	__u64 last_ns;
};

/* Per-source limits (limits[0]); a rate of 0 turns that bucket off, a burst of 0 counts
 * as 1. 16 bytes. */
struct limits {
	__u32 syn_rate_per_s;
	__u32 syn_burst;
	__u32 pkt_rate_per_s;
	__u32 pkt_burst;
	/* Sources are keyed by these prefix lengths in blocks and buckets (one client per
	 * prefix, as userspace keys them); 0 or the full length: the whole address. */
	__u32 v4_prefix;
	__u32 v6_prefix;
};

#endif /* TOLLGATE_STRUCTS_H */
