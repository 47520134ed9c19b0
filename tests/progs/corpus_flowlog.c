/* Flow event log in XDP with a QUEUE and a STACK.  Every IPv4 or IPv6 packet pushes
 * an event (addresses folded to 32 bits, length, protocol) onto a bounded queue
 * (BPF_ANY: a full queue refuses it, counted) and onto a "most recent" stack
 * (BPF_EXIST: a full stack drops its oldest).  bpf_map_peek_elem reads the newest
 * event back.  A control frame (EtherType 0x88B5, first payload byte N) makes the
 * program pop up to N events from the queue itself, summing their lengths.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct flow_event {
	__be32 src;
	__be32 dst;
	__u16 len;
	__u8 proto;
	__u8 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__uint(value_size, sizeof(struct flow_event));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__uint(value_size, sizeof(struct flow_event));
} recent SEC(".maps");

__u32 queue_full;
__u32 pushed;
__u32 popped;
__u64 popped_bytes;
__u16 peek_len;
__s32 last_pop_rc;

static __always_inline __be32 fold(const __be32 *a)
{
	return a[0] ^ a[1] ^ a[2] ^ a[3];
}


SEC("xdp")
int flowlog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct flow_event ev = {}, top;
	struct frame f;

	if (parse_frame(data, end, &f) < 0)
		return XDP_ABORTED;
	if (f.proto == 0x88B5) {
		__u8 *n = f.l3;

		if ((void *)(n + 1) > end)
			return XDP_DROP;
#pragma unroll
		for (int i = 0; i < 8; i++) {
			long rc;

			if (i >= *n)
				break;
			rc = bpf_map_pop_elem(&events, &ev);
			last_pop_rc = rc;
			if (rc)
				break;
			popped++;
			popped_bytes += ev.len;
		}
		return XDP_DROP;
	}
	if (!f.l3_ok)
		return XDP_PASS;
	ev.len = end - data;
	ev.proto = f.ip_proto;
	if (f.proto == ETH_P_IP) {
		struct iphdr *iph = f.l3;

		ev.src = iph->saddr;
		ev.dst = iph->daddr;
		ev.family = 4;
	} else {
		struct ipv6hdr *ip6 = f.l3;

		ev.src = fold(ip6->saddr.in6_u.u6_addr32);
		ev.dst = fold(ip6->daddr.in6_u.u6_addr32);
		ev.family = 6;
	}
	if (bpf_map_push_elem(&events, &ev, BPF_ANY))
		queue_full++;
	else
		pushed++;
	bpf_map_push_elem(&recent, &ev, BPF_EXIST);
	if (bpf_map_peek_elem(&recent, &top) == 0)
		peek_len = top.len;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
