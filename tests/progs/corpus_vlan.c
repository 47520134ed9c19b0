/* VLAN tagging at tc and in XDP.
 *
 * vlan_tag (tc): an untagged IPv4/IPv6 packet gets the VLAN of its destination port
 * (a hash: port -> VLAN id, default: the const volatile default_vid; 0 = leave
 * untagged) with bpf_skb_vlan_push; what the skb then says (vlan_present, vlan_tci,
 * vlan_proto, protocol) goes to cb[0..3], readable in ctx_out.
 * vlan_untag (tc): bpf_skb_vlan_pop, twice for QinQ; the tags removed are counted.
 * xdp_vlan_push / xdp_vlan_pop: the same in the packet itself, moving the MAC
 * addresses with bpf_xdp_adjust_head.  Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u16 default_vid = 100;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u16);
	__type(value, __u16);
} vid_by_port SEC(".maps");

/* 0: tagged, 1: left untagged, 2: already tagged, 3: push failed,
 * 4: tags popped, 5: pop failed, 6: xdp pushed, 7: xdp popped */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} vlan_stats SEC(".maps");

static __always_inline void bump(__u32 k, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&vlan_stats, &k);

	if (c)
		*c += n;
}

static __always_inline __u16 dport_of(struct frame *f, void *end)
{
	struct udphdr *uh = f->l4;

	if (!uh || (void *)(uh + 1) > end)
		return 0;
	if (f->ip_proto != IPPROTO_TCP && f->ip_proto != IPPROTO_UDP)
		return 0;
	return bpf_ntohs(uh->dest); /* same offset in TCP */
}

SEC("tc")
int vlan_tag(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct frame f;
	__u16 port, vid, *v;
	long rc;

	if (parse_frame(data, end, &f) < 0)
		return TC_ACT_SHOT;
	if (f.nvlans || skb->vlan_present) {
		bump(2, 1);
		return TC_ACT_OK;
	}
	if (!f.l3_ok)
		return TC_ACT_OK;
	port = dport_of(&f, end);
	v = bpf_map_lookup_elem(&vid_by_port, &port);
	vid = v ? *v : default_vid;
	if (!vid) {
		bump(1, 1);
		return TC_ACT_OK;
	}
	rc = bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), vid | (3 << 13));
	if (rc) {
		bump(3, 1);
		skb->cb[4] = (__u32)rc;
		return TC_ACT_SHOT;
	}
	bump(0, 1);
	skb->cb[0] = skb->vlan_present;
	skb->cb[1] = skb->vlan_tci;
	skb->cb[2] = bpf_ntohs(skb->vlan_proto);
	skb->cb[3] = bpf_ntohs(skb->protocol);
	return TC_ACT_OK;
}

SEC("tc")
int vlan_untag(struct __sk_buff *skb)
{
	__u32 popped = 0;

#pragma unroll
	for (int i = 0; i < 2; i++) {
		__u16 proto = bpf_ntohs(skb->protocol);
		long rc;

		if (!skb->vlan_present && proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		rc = bpf_skb_vlan_pop(skb);
		if (rc) {
			bump(5, 1);
			skb->cb[4] = (__u32)rc;
			return TC_ACT_SHOT;
		}
		popped++;
	}
	bump(4, popped);
	skb->cb[0] = popped;
	skb->cb[1] = skb->vlan_present;
	skb->cb[2] = skb->vlan_tci;
	skb->cb[3] = bpf_ntohs(skb->protocol);
	return TC_ACT_OK;
}

SEC("xdp")
int xdp_vlan_push(struct xdp_md *ctx)
{
	void *data, *end;
	struct ethhdr *eth;
	struct vlan_hdr *vh;
	struct frame f;
	__u16 port, vid, *v;
	__u8 macs[2 * ETH_ALEN];
	__be16 inner;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (parse_frame(data, end, &f) < 0)
		return XDP_ABORTED;
	if (f.nvlans || !f.l3_ok)
		return XDP_PASS;
	port = dport_of(&f, end);
	v = bpf_map_lookup_elem(&vid_by_port, &port);
	vid = v ? *v : default_vid;
	if (!vid)
		return XDP_PASS;
	inner = ((struct ethhdr *)data)->h_proto;
	__builtin_memcpy(macs, data, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct vlan_hdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	vh = data + sizeof(*eth);
	if ((void *)(vh + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = bpf_htons(ETH_P_8021Q);
	vh->tci = bpf_htons(vid);
	vh->proto = inner;
	bump(6, 1);
	return XDP_PASS;
}

SEC("xdp")
int xdp_vlan_pop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_hdr *vh = data + sizeof(*eth);
	__u8 macs[2 * ETH_ALEN];
	__be16 inner;

	if ((void *)(vh + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_8021Q) && eth->h_proto != bpf_htons(ETH_P_8021AD))
		return XDP_PASS;
	inner = vh->proto;
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*vh)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = inner;
	bump(7, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
