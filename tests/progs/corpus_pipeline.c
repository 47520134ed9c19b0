/* A tail-call parser pipeline in XDP: the entry program parses Ethernet (and one VLAN
 * tag) and tail-calls the L3 stage for IPv4 or IPv6 through a PROG_ARRAY filled from
 * the .maps initialiser; the L3 stage tail-calls the L4 stage (TCP, UDP; the ICMP slot
 * is empty, so that call falls through).  State travels between stages in a per-CPU
 * scratch array.  UDP to port 7 (echo) enters a stage that tail-calls itself until
 * the kernel's limit of 33 tail calls per run stops it: the hop count shows where.
 * Every outcome is counted in a hash keyed by (EtherType, L4 protocol, verdict).
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

enum { S_V4, S_V6, S_TCP, S_UDP, S_ICMP, S_LOOP, S_MAX = 8 };

struct scratch {
	__u32 l3_off;
	__u32 l4_off;
	__u16 ethertype;
	__u8 l4proto;
	__u8 stage_count;
	__u32 hops;
};

struct result_key {
	__u16 ethertype;
	__u8 l4proto;
	__u8 verdict;
};

int stage_v4(struct xdp_md *ctx);
int stage_v6(struct xdp_md *ctx);
int stage_tcp(struct xdp_md *ctx);
int stage_udp(struct xdp_md *ctx);
int stage_loop(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, S_MAX);
	__type(key, __u32);
	__array(values, int(void *));
} stages SEC(".maps") = {
	.values = {
		[S_V4] = (void *)&stage_v4,
		[S_V6] = (void *)&stage_v6,
		[S_TCP] = (void *)&stage_tcp,
		[S_UDP] = (void *)&stage_udp,
		[S_LOOP] = (void *)&stage_loop,
	},
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct result_key);
	__type(value, __u64);
} results SEC(".maps");

__u32 tail_call_failed;
__u32 last_hops;

static __always_inline struct scratch *state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

static __noinline int finish(struct scratch *s, int verdict)
{
	struct result_key k = {};
	__u64 one = 1, *c;

	if (!s)
		return XDP_ABORTED;
	k.ethertype = s->ethertype;
	k.l4proto = s->l4proto;
	k.verdict = verdict;
	c = bpf_map_lookup_elem(&results, &k);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		bpf_map_update_elem(&results, &k, &one, BPF_NOEXIST);
	return verdict;
}

SEC("xdp")
int pipeline(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct scratch *s = state();
	__u16 proto;
	__u32 off = sizeof(*eth);

	if (!s)
		return XDP_ABORTED;
	__builtin_memset(s, 0, sizeof(*s));
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	proto = bpf_ntohs(eth->h_proto);
	if (proto == ETH_P_8021Q) {
		struct vlan_hdr *vh = (void *)(eth + 1);

		if ((void *)(vh + 1) > end)
			return XDP_DROP;
		proto = bpf_ntohs(vh->proto);
		off += sizeof(*vh);
	}
	s->ethertype = proto;
	s->l3_off = off;
	s->stage_count = 1;
	if (proto == ETH_P_IP)
		bpf_tail_call(ctx, &stages, S_V4);
	else if (proto == ETH_P_IPV6)
		bpf_tail_call(ctx, &stages, S_V6);
	else
		return finish(s, XDP_PASS);
	tail_call_failed++;
	return finish(s, XDP_ABORTED);
}

SEC("xdp")
int stage_v4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct scratch *s = state();
	struct iphdr *iph;
	__u32 off;

	if (!s)
		return XDP_ABORTED;
	s->stage_count++;
	off = s->l3_off & 0x1f;
	iph = data + off;
	if ((void *)(iph + 1) > end)
		return finish(s, XDP_DROP);
	s->l4proto = iph->protocol;
	if (iph->frag_off & bpf_htons(IP_OFFSET))
		return finish(s, XDP_PASS);
	s->l4_off = off + iph->ihl * 4;
	if (iph->protocol == IPPROTO_TCP)
		bpf_tail_call(ctx, &stages, S_TCP);
	else if (iph->protocol == IPPROTO_UDP)
		bpf_tail_call(ctx, &stages, S_UDP);
	else if (iph->protocol == IPPROTO_ICMP)
		bpf_tail_call(ctx, &stages, S_ICMP);
	return finish(s, XDP_PASS);
}

SEC("xdp")
int stage_v6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct scratch *s = state();
	struct ipv6hdr *ip6;
	__u32 off;

	if (!s)
		return XDP_ABORTED;
	s->stage_count++;
	off = s->l3_off & 0x1f;
	ip6 = data + off;
	if ((void *)(ip6 + 1) > end)
		return finish(s, XDP_DROP);
	s->l4proto = ip6->nexthdr;
	s->l4_off = off + sizeof(*ip6);
	if (ip6->nexthdr == IPPROTO_TCP)
		bpf_tail_call(ctx, &stages, S_TCP);
	else if (ip6->nexthdr == IPPROTO_UDP)
		bpf_tail_call(ctx, &stages, S_UDP);
	return finish(s, XDP_PASS);
}

SEC("xdp")
int stage_tcp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct scratch *s = state();
	struct tcphdr *th;

	if (!s)
		return XDP_ABORTED;
	s->stage_count++;
	th = data + (s->l4_off & 0x7f);
	if ((void *)(th + 1) > end)
		return finish(s, XDP_DROP);
	if (th->dest == bpf_htons(23)) /* telnet: no */
		return finish(s, XDP_DROP);
	return finish(s, XDP_PASS);
}

SEC("xdp")
int stage_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct scratch *s = state();
	struct udphdr *uh;

	if (!s)
		return XDP_ABORTED;
	s->stage_count++;
	uh = data + (s->l4_off & 0x7f);
	if ((void *)(uh + 1) > end)
		return finish(s, XDP_DROP);
	if (uh->dest == bpf_htons(7))
		bpf_tail_call(ctx, &stages, S_LOOP);
	return finish(s, XDP_PASS);
}

SEC("xdp")
int stage_loop(struct xdp_md *ctx)
{
	struct scratch *s = state();

	if (!s)
		return XDP_ABORTED;
	s->hops++;
	last_hops = s->hops;
	bpf_tail_call(ctx, &stages, S_LOOP);
	return finish(s, XDP_TX);
}

char LICENSE[] SEC("license") = "GPL";
