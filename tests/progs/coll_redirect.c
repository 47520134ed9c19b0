/* bpf_redirect_map in XDP test runs: a DEVMAP, a DEVMAP_HASH and a CPUMAP filled from
 * Python.  The first payload byte (offset 14) picks the map (low two bits) and the key
 * (the rest); the second the flags' action bits (what a miss returns).  Test runs do
 * not forward anything: the verdict is the observable result.
 * Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} devs_h SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

SEC("xdp")
int redir(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 sel, miss;

	if (data + 16 > end)
		return XDP_ABORTED;
	sel = *(__u8 *)(data + 14);
	miss = *(__u8 *)(data + 15) & 3;
	switch (sel & 3) {
	case 0:
		return bpf_redirect_map(&devs, sel >> 2, miss);
	case 1:
		return bpf_redirect_map(&devs_h, sel >> 2, miss);
	case 2:
		return bpf_redirect_map(&cpus, sel >> 2, miss);
	default:
		return bpf_redirect_map(&devs, sel >> 2, miss | 0x10); /* unknown flag */
	}
}

char LICENSE[] SEC("license") = "GPL";
