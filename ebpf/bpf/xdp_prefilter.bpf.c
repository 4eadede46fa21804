// SPDX-License-Identifier: Apache-2.0
/*
 * xdp_prefilter.bpf.c — tollgate's XDP pre-filter.
 *
 * Verdict order (default PASS, DROP only on a positive match), one stats counter per packet:
 *   1. unparsable (see parsing.h)                  -> PASS  pass_unparsed
 *   2. destination port not in `ports`             -> PASS  pass_other_port
 *   3. source in allow_v4/allow_v6                 -> PASS  pass_allow
 *   4. source in deny_v4/deny_v6                   -> DROP  drop_deny
 *   5. client in blocks_v4/blocks_v6               -> DROP  drop_block
 *   6. TCP SYN without ACK, SYN bucket empty       -> DROP  drop_syn_rate
 *   7. any packet, packet bucket empty             -> DROP  drop_pkt_rate
 *   8. otherwise                                   -> PASS  pass
 * The port check comes first so that the filter never touches traffic that is not the
 * gateway's (ssh, DNS answers, ...), whatever the lists say. Lists match the exact source;
 * blocks and buckets key the *client*: the source with the bits past `limits.v4_prefix` /
 * `v6_prefix` cleared, so a host rotating through its IPv6 /64 is one client.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/consts.h"
#include "include/structs.h"
#include "include/maps.h"
#include "include/parsing.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Counts the packet under reason and returns the XDP action. */
static __always_inline int verdict(__u32 reason, int action)
{
	__u64 *count = bpf_map_lookup_elem(&stats, &reason);

	if (count)
		*count += 1; /* per-CPU slot: no other writer */
	return action;
}

static __always_inline int is_gateway_port(__u16 port)
{
	return bpf_map_lookup_elem(&ports, &port) != NULL;
}

/* Longest-prefix lookup of the source in an IPv4 or IPv6 trie. */
static __always_inline int in_trie_v4(void *trie, const struct packet_info *p)
{
	struct lpm_key_v4 key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, p->saddr_v4, 4);
	return bpf_map_lookup_elem(trie, &key) != NULL;
}

static __always_inline int in_trie_v6(void *trie, const struct packet_info *p)
{
	struct lpm_key_v6 key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, p->saddr_v6, 16);
	return bpf_map_lookup_elem(trie, &key) != NULL;
}

static __always_inline int is_allowed(const struct packet_info *p)
{
	return p->is_v6 ? in_trie_v6(&allow_v6, p) : in_trie_v4(&allow_v4, p);
}

static __always_inline int is_denied(const struct packet_info *p)
{
	return p->is_v6 ? in_trie_v6(&deny_v6, p) : in_trie_v4(&deny_v4, p);
}

/*
 * The client a source belongs to: its address with the bits past the configured prefix
 * cleared, into key (16 bytes; an IPv4 client uses the first 4). No limits entry, a prefix
 * of 0 or the full length: the whole address.
 */
static __always_inline void client_key(const struct packet_info *p, const struct limits *l,
				       __u8 key[16])
{
	__u32 full = p->is_v6 ? 128 : 32;
	__u32 prefix = l ? (p->is_v6 ? l->v6_prefix : l->v4_prefix) : 0;
	int i;

	if (prefix == 0 || prefix > full)
		prefix = full;
#pragma unroll
	for (i = 0; i < 16; i++) {
		__u8 byte = p->is_v6 ? p->saddr_v6[i] : (i < 4 ? p->saddr_v4[i & 3] : 0);
		int keep = (int)prefix - 8 * i;

		if (keep <= 0)
			byte = 0;
		else if (keep < 8)
			byte &= (__u8)(0xff << (8 - keep));
		key[i] = byte;
	}
}

/* A block entry exists for the client; its expiry is userspace's business. */
static __always_inline int is_blocked(const struct packet_info *p, const __u8 key[16])
{
	if (p->is_v6)
		return bpf_map_lookup_elem(&blocks_v6, key) != NULL;
	return bpf_map_lookup_elem(&blocks_v4, key) != NULL;
}

/*
 * Takes one token from the source's bucket in `map`; returns 1 when there was one.
 *
 * Refill is elapsed_ns * rate_per_s nano-tokens, capped at burst tokens; a new source
 * starts with a full bucket. When elapsed_ns >= cap / rate the bucket is full anyway,
 * which also keeps elapsed_ns * rate from overflowing after a long idle time.
 *
 * Concurrency: the read-modify-write of one source's bucket is not atomic. Packets of the
 * same source handled at the same moment on several CPUs can each read the same token
 * count, so the limit is approximate: a source may get slightly more than burst + rate.
 * It never goes the other way by more than a token per racing CPU, so a source that
 * stays well under its rate is not dropped. Exact accounting would need a spin lock per
 * bucket, which costs more than the precision is worth at line rate.
 */
static __always_inline int take_token(void *map, const void *key, __u32 rate, __u32 burst)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 cap, tokens, elapsed;
	struct bucket *b;

	if (burst == 0)
		burst = 1;
	cap = (__u64)burst * TOKEN_SCALE;
	b = bpf_map_lookup_elem(map, key);
	if (!b) {
		struct bucket fresh = { .tokens_scaled = cap - TOKEN_SCALE, .last_ns = now };

		/* On failure the source is simply not tracked yet: PASS. */
		bpf_map_update_elem(map, key, &fresh, BPF_ANY);
		return 1;
	}
	tokens = b->tokens_scaled;
	elapsed = now > b->last_ns ? now - b->last_ns : 0;
	if (elapsed >= cap / rate) {
		tokens = cap;
	} else {
		tokens += elapsed * rate;
		if (tokens > cap)
			tokens = cap; /* also after limits were lowered */
	}
	b->last_ns = now;
	if (tokens < TOKEN_SCALE) {
		b->tokens_scaled = tokens;
		return 0;
	}
	b->tokens_scaled = tokens - TOKEN_SCALE;
	return 1;
}

static __always_inline int is_syn(const struct packet_info *p)
{
	return p->l4_proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT)) == TCP_FLAG_SYN_BIT;
}

/* SYN bucket; 1 when the SYN may pass (or the SYN limit is off). */
static __always_inline int syn_within_rate(const struct packet_info *p, const struct limits *l,
					   const __u8 key[16])
{
	if (l->syn_rate_per_s == 0)
		return 1;
	if (p->is_v6)
		return take_token(&syn_v6, key, l->syn_rate_per_s, l->syn_burst);
	return take_token(&syn_v4, key, l->syn_rate_per_s, l->syn_burst);
}

/* Packet bucket; 1 when the packet may pass (or the packet limit is off). */
static __always_inline int pkt_within_rate(const struct packet_info *p, const struct limits *l,
					   const __u8 key[16])
{
	if (l->pkt_rate_per_s == 0)
		return 1;
	if (p->is_v6)
		return take_token(&pkt_v6, key, l->pkt_rate_per_s, l->pkt_burst);
	return take_token(&pkt_v4, key, l->pkt_rate_per_s, l->pkt_burst);
}

SEC("xdp")
int xdp_prefilter(struct xdp_md *ctx)
{
	struct packet_info p = {};
	const struct limits *l;
	__u8 key[16];
	__u32 zero = 0;

	if (parse_packet(ctx, &p) < 0)
		return verdict(REASON_PASS_UNPARSED, XDP_PASS);
	if (!is_gateway_port(p.dport))
		return verdict(REASON_PASS_OTHER_PORT, XDP_PASS);
	if (is_allowed(&p))
		return verdict(REASON_PASS_ALLOW, XDP_PASS);
	if (is_denied(&p))
		return verdict(REASON_DROP_DENY, XDP_DROP);

	l = bpf_map_lookup_elem(&limits, &zero);
	client_key(&p, l, key);
	if (is_blocked(&p, key))
		return verdict(REASON_DROP_BLOCK, XDP_DROP);
	if (l) {
		if (is_syn(&p) && !syn_within_rate(&p, l, key))
			return verdict(REASON_DROP_SYN_RATE, XDP_DROP);
		if (!pkt_within_rate(&p, l, key))
			return verdict(REASON_DROP_PKT_RATE, XDP_DROP);
	}
	return verdict(REASON_PASS, XDP_PASS);
}
