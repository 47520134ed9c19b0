/* Longest-prefix-match routing in XDP: IPv4 and IPv6 LPM tries filled from Python.
 * A match counts a hit in the route's value (a program write into an LPM value),
 * writes the next hop into the destination MAC and picks the action from it.
 * Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct route {
	__u32 nexthop;
	__u32 hits;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, struct route);
} routes4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u32);
} routes6 SEC(".maps");

__u64 misses;

SEC("xdp")
int route(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct lpm_v4 key = { .prefixlen = 32 };
		struct route *r;

		if ((void *)(ip + 1) > end)
			return XDP_ABORTED;
		__builtin_memcpy(key.addr, &ip->daddr, 4);
		r = bpf_map_lookup_elem(&routes4, &key);
		if (!r) {
			misses++;
			return XDP_DROP;
		}
		r->hits++;
		eth->h_dest[5] = r->nexthop;
		return r->nexthop & 1 ? XDP_TX : XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct lpm_v6 key = { .prefixlen = 128 };
		__u32 *nh;

		if ((void *)(ip6 + 1) > end)
			return XDP_ABORTED;
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
		nh = bpf_map_lookup_elem(&routes6, &key);
		if (!nh) {
			misses++;
			return XDP_DROP;
		}
		eth->h_dest[4] = *nh;
		return XDP_PASS;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
