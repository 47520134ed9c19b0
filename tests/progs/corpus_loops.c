/* Callbacks: bpf_loop and bpf_for_each_map_elem.
 *
 * payload_sum (XDP): bpf_loop over the first (up to) 64 bytes after the Ethernet header,
 * each read with bpf_xdp_load_bytes inside the callback, which stops the loop at the
 * end of the packet; the sum and the iteration count go to .bss.
 * flow_aging (tc): bpf_for_each_map_elem over a flow hash ages every flow by one and
 * deletes flows older than max_age (const volatile) from inside the callback; over a
 * weight array it computes a weighted sum of the surviving flows' packets (slot =
 * flow id mod 4); over a per-CPU array it sums this CPU's values.  Then bpf_loop runs
 * skb->len mod 16 times, adding its index.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u32 max_age = 3;

struct flow {
	__u64 packets;
	__u64 bytes;
	__u32 age;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} weights SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_vals SEC(".maps");

__u32 last_sum;
__u32 last_iters;
__u32 visited;
__u32 aged_out;
__u64 weighted;
__u64 pcpu_sum;
__u64 loop_acc;

struct sum_ctx {
	struct xdp_md *xdp;
	__u32 len;
	__u32 sum;
	__u32 iters;
};

static long sum_byte(__u32 i, struct sum_ctx *c)
{
	__u8 b;

	if (ETH_HLEN + i >= c->len)
		return 1;
	if (bpf_xdp_load_bytes(c->xdp, ETH_HLEN + i, &b, 1))
		return 1;
	c->sum += b;
	c->iters++;
	return 0;
}

SEC("xdp")
int payload_sum(struct xdp_md *ctx)
{
	struct sum_ctx c = {
		.xdp = ctx,
		.len = ctx->data_end - ctx->data,
	};
	long n = bpf_loop(64, sum_byte, &c, 0);

	last_sum = c.sum;
	last_iters = c.iters;
	return n == c.iters + (c.len > ETH_HLEN + 63 ? 0 : 1) ? XDP_PASS : XDP_ABORTED;
}

struct scan_ctx {
	__u64 weighted;
	__u32 visited;
	__u32 deleted;
};

static long age_flow(void *map, __u32 *key, struct flow *f, struct scan_ctx *c)
{
	c->visited++;
	f->age++;
	if (f->age > max_age) {
		bpf_map_delete_elem(map, key);
		c->deleted++;
	}
	return 0;
}

static long weigh(void *map, __u32 *key, __u32 *w, struct scan_ctx *c)
{
	__u32 k = *key;
	__u64 total = 0;

	/* packets of the surviving flows whose id mod 4 is this slot */
#pragma unroll
	for (__u32 id = 0; id < 16; id++) {
		struct flow *f;
		__u32 fid = id;

		if (id % 4 != k)
			continue;
		f = bpf_map_lookup_elem(&flows, &fid);
		if (f)
			total += f->packets;
	}
	c->weighted += total * *w;
	return 0;
}

static long add_pcpu(void *map, __u32 *key, __u64 *v, __u64 *sum)
{
	*sum += *v;
	return 0;
}

static long add_index(__u32 i, __u64 *acc)
{
	*acc += i;
	return 0;
}

SEC("tc")
int flow_aging(struct __sk_buff *skb)
{
	struct scan_ctx c = {};
	__u64 sum = 0, acc = 0;

	bpf_for_each_map_elem(&flows, age_flow, &c, 0);
	bpf_for_each_map_elem(&weights, weigh, &c, 0);
	bpf_for_each_map_elem(&pcpu_vals, add_pcpu, &sum, 0);
	bpf_loop(skb->len % 16, add_index, &acc, 0);
	visited += c.visited;
	aged_out += c.deleted;
	weighted = c.weighted;
	pcpu_sum = sum;
	loop_acc += acc;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
