/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maps.h — the BTF maps of the pre-filter. Names are the ABI with ebpf/src (the loader
 * takes each by name); key and value types come from structs.h, sizes from consts.h.
 */
#ifndef TOLLGATE_MAPS_H
#define TOLLGATE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "structs.h"

/* Gateway destination ports (host order) -> 1; other ports PASS untouched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

/* IPv4 source prefixes that always PASS, before deny and blocks (value: prefix length). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_ALLOW_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key_v4);
	__type(value, __u8);
} allow_v4 SEC(".maps");

/* IPv6 source prefixes that always PASS (value: prefix length). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_ALLOW_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key_v6);
	__type(value, __u8);
} allow_v6 SEC(".maps");

/* IPv4 source prefixes that DROP (value: prefix length, so userspace sees which matched). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_DENY_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key_v4);
	__type(value, __u8);
} deny_v4 SEC(".maps");

/* IPv6 source prefixes that DROP (value: prefix length). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_DENY_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key_v6);
	__type(value, __u8);
} deny_v6 SEC(".maps");

/* Timed blocks of IPv4 sources: DROP while present (userspace expires them). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BLOCK_ENTRIES);
	__type(key, struct addr_v4);
	__type(value, struct block_value);
} blocks_v4 SEC(".maps");

/* Timed blocks of IPv6 sources. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BLOCK_ENTRIES);
	__type(key, struct addr_v6);
	__type(value, struct block_value);
} blocks_v6 SEC(".maps");

/* SYN token bucket per IPv4 source. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TRACKED_SOURCES);
	__type(key, struct addr_v4);
	__type(value, struct bucket);
} syn_v4 SEC(".maps");

/* SYN token bucket per IPv6 source. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TRACKED_SOURCES);
	__type(key, struct addr_v6);
	__type(value, struct bucket);
} syn_v6 SEC(".maps");

/* Packet token bucket per IPv4 source. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TRACKED_SOURCES);
	__type(key, struct addr_v4);
	__type(value, struct bucket);
} pkt_v4 SEC(".maps");

/* Packet token bucket per IPv6 source. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TRACKED_SOURCES);
	__type(key, struct addr_v6);
	__type(value, struct bucket);
} pkt_v6 SEC(".maps");

/* The per-source limits, one entry; all zero (the initial state) means both buckets off. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct limits);
} limits SEC(".maps");

/* Packets per verdict reason (REASON_*), per CPU; userspace sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

#endif /* TOLLGATE_MAPS_H */
