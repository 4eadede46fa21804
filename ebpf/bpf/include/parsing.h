/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parsing.h — bounds-checked header parsing for the pre-filter.
 *
 * Every read is preceded by a `ptr + size > data_end` check the verifier can see. Anything
 * the pre-filter cannot classify by source address and destination port returns -1 and
 * the packet PASSes (counted as pass_unparsed): truncated headers, a third VLAN tag,
 * non-IP ethertypes (ARP, ...), IPv4 with IHL < 5 or a version other than 4, IPv4
 * fragments after the first (no L4 header), IPv6 whose next header is not TCP or UDP
 * (extension headers are not walked), and protocols other than TCP and UDP.
 */
#ifndef TOLLGATE_PARSING_H
#define TOLLGATE_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"

/* An 802.1Q/802.1ad tag as it follows the MAC addresses' ethertype slot. */
struct vlan_tag {
	__be16 tci;
	__be16 next_proto;
};

/* What the checks need from a packet. */
struct packet_info {
	__u8 is_v6;       /* 0: IPv4 (saddr_v4), 1: IPv6 (saddr_v6) */
	__u8 l4_proto;    /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 tcp_flags;   /* TCP flag byte (CWR..FIN); 0 for UDP */
	__u8 pad;
	__u16 dport;      /* destination port, host order */
	__u16 pad2;
	__u8 saddr_v4[4];
	__u8 saddr_v6[16];
};

#define TCP_FLAG_SYN_BIT 0x02
#define TCP_FLAG_ACK_BIT 0x10

/* A cursor over the packet: next header starts at pos. */
struct cursor {
	void *pos;
	void *end;
};

/* Ethernet plus up to MAX_VLAN_TAGS tags; returns the inner ethertype (network order) or
 * -1. */
static __always_inline int parse_eth(struct cursor *c, __be16 *proto)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > c->end)
		return -1;
	c->pos = eth + 1;
	*proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag = c->pos;

		if (*proto != bpf_htons(ETH_P_8021Q) && *proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(tag + 1) > c->end)
			return -1;
		c->pos = tag + 1;
		*proto = tag->next_proto;
	}
	/* Still a tag after MAX_VLAN_TAGS: deeper stacking is not parsed. */
	if (*proto == bpf_htons(ETH_P_8021Q) || *proto == bpf_htons(ETH_P_8021AD))
		return -1;
	return 0;
}

/* IPv4 header including options (IHL); fills saddr_v4 and the L4 protocol. */
static __always_inline int parse_ipv4(struct cursor *c, struct packet_info *p)
{
	struct iphdr *iph = c->pos;
	__u32 hdr_len;

	if ((void *)(iph + 1) > c->end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	/* Not the first fragment: no L4 header to read a port from. */
	if (iph->frag_off & bpf_htons(0x1fff))
		return -1;
	hdr_len = iph->ihl * 4;
	if (c->pos + hdr_len > c->end)
		return -1;
	__builtin_memcpy(p->saddr_v4, &iph->saddr, 4);
	p->is_v6 = 0;
	p->l4_proto = iph->protocol;
	c->pos += hdr_len;
	return 0;
}

/* IPv6 fixed header only: a next header other than TCP/UDP (an extension header) is
 * unparsable. */
static __always_inline int parse_ipv6(struct cursor *c, struct packet_info *p)
{
	struct ipv6hdr *ip6h = c->pos;

	if ((void *)(ip6h + 1) > c->end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	__builtin_memcpy(p->saddr_v6, &ip6h->saddr, 16);
	p->is_v6 = 1;
	p->l4_proto = ip6h->nexthdr;
	c->pos = ip6h + 1;
	return 0;
}

/* TCP: destination port and flags. */
static __always_inline int parse_tcp(struct cursor *c, struct packet_info *p)
{
	struct tcphdr *th = c->pos;

	if ((void *)(th + 1) > c->end)
		return -1;
	p->dport = bpf_ntohs(th->dest);
	/* The flag byte is the 14th byte of the header (after data offset/reserved). */
	p->tcp_flags = ((__u8 *)th)[13];
	return 0;
}

/* UDP: destination port. */
static __always_inline int parse_udp(struct cursor *c, struct packet_info *p)
{
	struct udphdr *uh = c->pos;

	if ((void *)(uh + 1) > c->end)
		return -1;
	p->dport = bpf_ntohs(uh->dest);
	p->tcp_flags = 0;
	return 0;
}

/* The whole chain; 0 when p is filled, -1 when the packet is unparsable. */
static __always_inline int parse_packet(struct xdp_md *ctx, struct packet_info *p)
{
	struct cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	__be16 proto;

	if (parse_eth(&c, &proto) < 0)
		return -1;
	if (proto == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(&c, p) < 0)
			return -1;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6(&c, p) < 0)
			return -1;
	} else {
		return -1;
	}
	if (p->l4_proto == IPPROTO_TCP)
		return parse_tcp(&c, p);
	if (p->l4_proto == IPPROTO_UDP)
		return parse_udp(&c, p);
	return -1;
}

#endif /* TOLLGATE_PARSING_H */
