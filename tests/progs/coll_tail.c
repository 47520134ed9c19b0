/* Tail calls through a PROG_ARRAY and a map-in-map, both initialised from the .maps
 * section (libbpf's __array(values, ...) initialisers). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner_even SEC(".maps"), inner_odd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_map);
} by_parity SEC(".maps") = {
	.values = { &inner_even, &inner_odd },
};

int tail_drop(struct xdp_md *ctx);
int tail_tx(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int(void *));
} jump SEC(".maps") = {
	.values = { [0] = (void *)&tail_drop, [2] = (void *)&tail_tx },
};

__u32 tail_hits;

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 parity = len & 1;
	__u32 zero = 0;
	void *inner = bpf_map_lookup_elem(&by_parity, &parity);

	if (inner) {
		__u64 *v = bpf_map_lookup_elem(inner, &zero);

		if (v)
			*v += len;
	}
	/* 64..99 bytes: slot 0, 100..149: slot 1 (empty), 150+: slot 2 */
	bpf_tail_call(ctx, &jump, len < 100 ? 0 : len < 150 ? 1 : 2);
	return XDP_PASS; /* the tail call failed: empty slot */
}

SEC("xdp")
int tail_drop(struct xdp_md *ctx)
{
	tail_hits++;
	return XDP_DROP;
}

SEC("xdp")
int tail_tx(struct xdp_md *ctx)
{
	tail_hits += 100;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
