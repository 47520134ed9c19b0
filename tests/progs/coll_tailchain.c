/* Tail calls through a PROG_ARRAY filled from .maps: a program that tail-calls itself
 * until the kernel's limit of 33 tail calls stops it (each hop counted and written
 * into the packet), and a tail call made from inside a subprogram (the target's
 * return value goes to the subprogram's caller).
 * Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int chain(struct xdp_md *ctx);
int leaf(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int(void *));
} progs SEC(".maps") = {
	.values = { [0] = (void *)&chain, [1] = (void *)&leaf },
};

__u32 hops;
__u32 leaf_hits;
__s32 sub_ret;

SEC("xdp")
int chain(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data + 14;

	hops++;
	if ((void *)(p + 1) > end)
		return XDP_ABORTED;
	*p += 1;
	bpf_tail_call(ctx, &progs, 0);
	return XDP_TX; /* the 34th entry: the tail call failed */
}

SEC("xdp")
int leaf(struct xdp_md *ctx)
{
	leaf_hits++;
	return XDP_DROP;
}

static __attribute__((noinline)) int via_sub(struct xdp_md *ctx, __u32 slot)
{
	bpf_tail_call(ctx, &progs, slot);
	return ctx->rx_queue_index + 7; /* 7 in a test run; opaque to the compiler */
}

SEC("xdp")
int entry_sub(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 slot = 3;

	if (data + 15 <= end)
		slot = *(__u8 *)(data + 14) & 3;
	sub_ret = via_sub(ctx, slot == 0 ? 3 : slot);
	return sub_ret == 7 ? XDP_PASS : XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
