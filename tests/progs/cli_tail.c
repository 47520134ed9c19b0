/* Maps whose contents come from the object itself (tests/test_cli_obj.py): a
 * PROG_ARRAY and an ARRAY_OF_MAPS with initialised slots, a map pinned by name, and
 * an LRU hash with flags, a queue; `netbpf obj show` summarises them. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner inner_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [1] = &inner_a },
};

/* survives the process on the kernel backend with --pin-path */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u64);
	__type(value, __u32);
} recent SEC(".maps");

/* every entry run pushes the packet length; --map pending='[...]' pushes first */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 8);
	__type(value, __u32);
} pending SEC(".maps");

SEC("xdp")
int tail_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

int tail_entry(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int(void *));
} jump SEC(".maps") = {
	.values = { [2] = (void *)&tail_pass },
};

SEC("xdp")
int tail_entry(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex;
	__u32 len = ctx->data_end - ctx->data;
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&hits, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&hits, &key, &one, BPF_ANY);
	bpf_map_push_elem(&pending, &len, BPF_ANY);
	bpf_tail_call(ctx, &jump, 2);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
