/* A QUEUE and a STACK driven by a byte of the packet (offset 14, right after the
 * Ethernet header): 0 push the packet length, 1 push with BPF_EXIST (overwrite the
 * oldest when full), 2 pop both, 3 peek both.  Every helper's return code and every
 * popped value is written back into the packet, so data_out shows them.
 * Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, __u32);
} fifo SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u32);
} lifo SEC(".maps");

struct out {
	__s32 rc_fifo;
	__s32 rc_lifo;
	__u32 v_fifo;
	__u32 v_lifo;
};

SEC("xdp")
int qs(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *op = data + 14;
	struct out *o = data + 16;
	__u32 len = end - data, vf = 0, vl = 0;
	long rf, rl;

	if ((void *)(o + 1) > end)
		return XDP_ABORTED;
	switch (*op) {
	case 0:
	case 1:
		rf = bpf_map_push_elem(&fifo, &len, *op ? BPF_EXIST : BPF_ANY);
		rl = bpf_map_push_elem(&lifo, &len, *op ? BPF_EXIST : BPF_ANY);
		break;
	case 2:
		rf = bpf_map_pop_elem(&fifo, &vf);
		rl = bpf_map_pop_elem(&lifo, &vl);
		break;
	case 3:
		rf = bpf_map_peek_elem(&fifo, &vf);
		rl = bpf_map_peek_elem(&lifo, &vl);
		break;
	default:
		return XDP_DROP;
	}
	o->rc_fifo = rf;
	o->rc_lifo = rl;
	o->v_fifo = vf;
	o->v_lifo = vl;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
