/* IPIP tunnel endpoints.
 *
 * ipip_encap (tc): an IPv4 packet whose destination has a tunnel (hash: inner
 * destination -> outer local/remote/ttl) gets an outer IPv4 header: room made with
 * bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC, ENCAP_L3_IPV4), the header checksum computed
 * with bpf_csum_diff and the header written with bpf_skb_store_bytes.
 * ipip_decap (tc): an IPIP packet to our const volatile local address loses its outer
 * header (bpf_skb_adjust_room by -20); the inner source is then read relative to the
 * new network header (bpf_skb_load_bytes_relative) into cb[1].
 * ipip_xdp_decap: the same in XDP with bpf_xdp_adjust_head.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __be32 local_addr = 0; /* set before load (network order) */

struct tunnel {
	__be32 local;
	__be32 remote;
	__u8 ttl;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __be32);
	__type(value, struct tunnel);
} tunnels SEC(".maps");

/* 0 encap, 1 decap, 2 xdp decap, 3 errors */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} tun_stats SEC(".maps");

static __always_inline void bump(__u32 k)
{
	__u64 *c = bpf_map_lookup_elem(&tun_stats, &k);

	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("tc")
int ipip_encap(struct __sk_buff *skb)
{
	struct iphdr inner, outer = {};
	struct tunnel *t;
	long rc;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &inner, sizeof(inner)))
		return TC_ACT_OK;
	t = bpf_map_lookup_elem(&tunnels, &inner.daddr);
	if (!t)
		return TC_ACT_OK;
	rc = bpf_skb_adjust_room(skb, sizeof(outer), BPF_ADJ_ROOM_MAC,
				 BPF_F_ADJ_ROOM_ENCAP_L3_IPV4);
	skb->cb[0] = (__u32)rc;
	if (rc) {
		bump(3);
		return TC_ACT_SHOT;
	}
	outer.version = 4;
	outer.ihl = 5;
	outer.tos = inner.tos;
	outer.tot_len = bpf_htons(skb->len - ETH_HLEN);
	outer.frag_off = bpf_htons(0x4000);
	outer.ttl = t->ttl;
	outer.protocol = IPPROTO_IPIP;
	outer.saddr = t->local;
	outer.daddr = t->remote;
	outer.check = csum_fold32(bpf_csum_diff(0, 0, (__be32 *)&outer, sizeof(outer), 0));
	rc = bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0);
	skb->cb[1] = (__u32)rc;
	if (rc) {
		bump(3);
		return TC_ACT_SHOT;
	}
	bump(0);
	return TC_ACT_OK;
}

SEC("tc")
int ipip_decap(struct __sk_buff *skb)
{
	struct iphdr outer;
	__be32 saddr = 0;
	long rc;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &outer, sizeof(outer)))
		return TC_ACT_OK;
	if (outer.protocol != IPPROTO_IPIP || outer.ihl != 5 || outer.daddr != local_addr)
		return TC_ACT_OK;
	rc = bpf_skb_adjust_room(skb, -(int)sizeof(outer), BPF_ADJ_ROOM_MAC, 0);
	skb->cb[0] = (__u32)rc;
	if (rc) {
		bump(3);
		return TC_ACT_SHOT;
	}
	rc = bpf_skb_load_bytes_relative(skb, offsetof(struct iphdr, saddr), &saddr, 4,
					 BPF_HDR_START_NET);
	skb->cb[1] = saddr;
	skb->cb[2] = (__u32)rc;
	bump(1);
	return TC_ACT_OK;
}

SEC("xdp")
int ipip_xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer = (void *)(eth + 1);
	struct ethhdr copy;

	if ((void *)(outer + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || outer->protocol != IPPROTO_IPIP ||
	    outer->ihl != 5 || outer->daddr != local_addr)
		return XDP_PASS;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, sizeof(*outer))) {
		bump(3);
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(eth, &copy, sizeof(copy));
	bump(2);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
