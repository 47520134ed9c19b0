/* VXLAN tunnel endpoint: IPv4 frames leaving through tc are wrapped in outer
 * IPv4/UDP/VXLAN headers (bpf_skb_adjust_room with the ENCAP_L3_IPV4, ENCAP_L4_UDP and
 * ENCAP_L2(14) flags makes 50 bytes of room after the MAC header; the outer headers
 * and the inner Ethernet header, a copy of the original, are written with one
 * bpf_skb_store_bytes; the outer IPv4 checksum comes from bpf_csum_diff, the UDP
 * checksum is 0 as RFC 7348 allows).  XDP strips the outer headers of VXLAN frames
 * for our VNI with bpf_xdp_adjust_head.  VNI and tunnel addresses are const volatile
 * knobs.  Used by tests/test_corpus.py. */
#include "corpus_common.h"

#define VXLAN_PORT 4789

const volatile __u32 vni = 1;
const volatile __be32 vtep_local = 0;
const volatile __be32 vtep_remote = 0;

struct vxlanhdr {
	__be32 flags;
	__be32 vni;
};

struct encap {
	struct iphdr ip;
	struct udphdr udp;
	struct vxlanhdr vx;
	struct ethhdr inner;
} __attribute__((packed));

/* 0 encapsulated, 1 decapsulated, 2 other VNI, 3 helper errors */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vx_stats SEC(".maps");

static __always_inline void bump(__u32 k)
{
	__u64 *c = bpf_map_lookup_elem(&vx_stats, &k);

	if (c)
		*c += 1;
}

SEC("tc")
int vxlan_encap(struct __sk_buff *skb)
{
	struct encap h = {};
	struct iphdr ip = {};
	__u32 len = skb->len;
	long rc;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, 0, &h.inner, sizeof(h.inner)))
		return TC_ACT_OK;
	rc = bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC,
				 BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
					 BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN));
	skb->cb[0] = (__u32)rc;
	if (rc) {
		bump(3);
		return TC_ACT_SHOT;
	}
	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(len - ETH_HLEN + sizeof(h));
	ip.frag_off = bpf_htons(0x4000);
	ip.ttl = 64;
	ip.protocol = IPPROTO_UDP;
	ip.saddr = vtep_local;
	ip.daddr = vtep_remote;
	ip.check = csum_fold32(bpf_csum_diff(0, 0, (__be32 *)&ip, sizeof(ip), 0));
	__builtin_memcpy(&h.ip, &ip, sizeof(ip));
	h.udp.source = bpf_htons(49152 | (len & 0x3fff));
	h.udp.dest = bpf_htons(VXLAN_PORT);
	h.udp.len = bpf_htons(sizeof(h.udp) + sizeof(h.vx) + len);
	h.vx.flags = bpf_htonl(0x08000000);
	h.vx.vni = bpf_htonl(vni << 8);
	rc = bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0);
	skb->cb[1] = (__u32)rc;
	if (rc) {
		bump(3);
		return TC_ACT_SHOT;
	}
	bump(0);
	return TC_ACT_OK;
}

SEC("xdp")
int vxlan_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct encap *h = (void *)(eth + 1);

	if ((void *)(h + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || h->ip.ihl != 5 || h->ip.protocol != IPPROTO_UDP ||
	    h->udp.dest != bpf_htons(VXLAN_PORT) || h->ip.daddr != vtep_local)
		return XDP_PASS;
	if (h->vx.vni != bpf_htonl(vni << 8)) {
		bump(2);
		return XDP_DROP;
	}
	if (bpf_xdp_adjust_head(ctx, ETH_HLEN + offsetof(struct encap, inner))) {
		bump(3);
		return XDP_ABORTED;
	}
	bump(1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
