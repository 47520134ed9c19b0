/* XDP L4 load balancer: a packet to a virtual service (VIP address, port, protocol)
 * is sent back out (XDP_TX) to one of the service's backends: destination MAC and
 * IPv4 address rewritten, the IPv4 header checksum and the TCP/UDP checksum fixed up
 * incrementally with bpf_csum_diff (a UDP checksum of 0 stays 0).  The backend is
 * chosen by a hash of the flow and remembered in an LRU connection table, so a flow
 * sticks to its backend even when the service changes.  Per-backend packet and byte
 * counts are per CPU.  Fragments and non-VIP traffic pass.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct vip_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct vip_info {
	__u32 first;   /* first backend index */
	__u32 count;   /* number of backends */
};

struct backend {
	__be32 addr;
	__u8 mac[6];
	__u16 pad;
};

struct flow_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct be_stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, struct vip_key);
	__type(value, struct vip_info);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 128);
	__type(key, struct flow_key);
	__type(value, __u32);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct be_stats);
} be_stats SEC(".maps");

/* FNV-1a over the flow key's 16 bytes: the same in the Python model. */
static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	const __u8 *b = (const __u8 *)k;
	__u32 h = 2166136261u;

#pragma unroll
	for (int i = 0; i < 13; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

static __always_inline void csum_update4(__u16 *csum, __be32 from, __be32 to)
{
	__u32 d = bpf_csum_diff(&from, 4, &to, 4, ~((__u32)*csum) & 0xffff);

	*csum = csum_fold32(d);
}

SEC("xdp")
int lb_ingress(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct frame f;
	struct iphdr *iph;
	struct vip_key vk = {};
	struct flow_key fk = {};
	struct vip_info *vip;
	struct backend *be;
	struct be_stats *st;
	__u16 *l4csum;
	__u32 idx, *known;
	__be32 old;

	if (parse_frame(data, end, &f) < 0)
		return XDP_ABORTED;
	if (f.proto != ETH_P_IP || !f.l3_ok || f.fragment || !f.l4 || f.nvlans)
		return XDP_PASS;
	iph = f.l3;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = f.l4;

		if ((void *)(th + 1) > end)
			return XDP_PASS;
		fk.sport = th->source;
		fk.dport = th->dest;
		l4csum = &th->check;
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = f.l4;

		if ((void *)(uh + 1) > end)
			return XDP_PASS;
		fk.sport = uh->source;
		fk.dport = uh->dest;
		l4csum = &uh->check;
	} else {
		return XDP_PASS;
	}
	vk.addr = iph->daddr;
	vk.port = fk.dport;
	vk.proto = iph->protocol;
	vip = bpf_map_lookup_elem(&vips, &vk);
	if (!vip || !vip->count)
		return XDP_PASS;

	fk.saddr = iph->saddr;
	fk.daddr = iph->daddr;
	fk.proto = iph->protocol;
	known = bpf_map_lookup_elem(&conntrack, &fk);
	if (known) {
		idx = *known;
	} else {
		idx = vip->first + flow_hash(&fk) % vip->count;
		bpf_map_update_elem(&conntrack, &fk, &idx, BPF_ANY);
	}
	be = bpf_map_lookup_elem(&backends, &idx);
	if (!be || !be->addr)
		return XDP_DROP;

	old = iph->daddr;
	iph->daddr = be->addr;
	csum_update4(&iph->check, old, be->addr);
	if (iph->protocol == IPPROTO_TCP || *l4csum)
		csum_update4(l4csum, old, be->addr);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);

	st = bpf_map_lookup_elem(&be_stats, &idx);
	if (st) {
		st->packets++;
		st->bytes += end - data;
	}
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
