/* SPDX-License-Identifier: Apache-2.0 */
/*
 * consts.h — every limit and enumerated value of the XDP pre-filter.
 *
 * Each limit can be overridden at compile time (-DMAX_...=N); the Rust side reads map
 * sizes from the loaded object, so only the stats reasons below must stay in step with
 * ebpf/src/structs.rs (a test there checks the count).
 */
#ifndef TOLLGATE_CONSTS_H
#define TOLLGATE_CONSTS_H

/* Gateway ports (destination ports the filter applies to); a gateway listens on a few. */
#ifndef MAX_PORTS
#define MAX_PORTS 64
#endif

/* CIDR entries per allow list and family (LPM trie, allocated on insert). */
#ifndef MAX_ALLOW_ENTRIES
#define MAX_ALLOW_ENTRIES 16384
#endif

/* CIDR entries per deny list and family (LPM trie, allocated on insert). */
#ifndef MAX_DENY_ENTRIES
#define MAX_DENY_ENTRIES 65536
#endif

/* Timed blocks per family (hash); userspace escalation fills it and removes expired entries. */
#ifndef MAX_BLOCK_ENTRIES
#define MAX_BLOCK_ENTRIES 65536
#endif

/*
 * Sources tracked per token-bucket map and family (LRU hash, preallocated: about 80 bytes
 * per entry). When full, the least recently seen source is forgotten and starts again
 * with a full bucket, which errs towards PASS.
 */
#ifndef MAX_TRACKED_SOURCES
#define MAX_TRACKED_SOURCES 65536
#endif

/* 802.1Q / 802.1ad tags parsed before the network header; a third tag is unparsable. */
#ifndef MAX_VLAN_TAGS
#define MAX_VLAN_TAGS 2
#endif

/* One token in bucket units: tokens are kept in nano-tokens so that refill is exact
 * integer arithmetic (elapsed_ns * rate_per_s nano-tokens). */
#define TOKEN_SCALE 1000000000ULL

/* Verdict reasons: indexes of the `stats` per-CPU array (mirrored in structs.rs). */
#define REASON_PASS 0            /* parsed, checked, nothing matched */
#define REASON_PASS_UNPARSED 1   /* not Ethernet/VLAN + IPv4/IPv6 + TCP/UDP, or truncated */
#define REASON_PASS_OTHER_PORT 2 /* destination port is not a gateway port */
#define REASON_PASS_ALLOW 3      /* source in allow_v4/allow_v6 */
#define REASON_DROP_DENY 4       /* source in deny_v4/deny_v6 */
#define REASON_DROP_BLOCK 5      /* source in blocks_v4/blocks_v6 */
#define REASON_DROP_SYN_RATE 6   /* per-source SYN bucket empty */
#define REASON_DROP_PKT_RATE 7   /* per-source packet bucket empty */
#define REASON_COUNT 8           /* size of the stats array */

#endif /* TOLLGATE_CONSTS_H */
