/* perf event output for the consumer tests (tests/test_consumers_both.py,
 * tests/test_kernel_ringbuf.py): bpf_perf_event_output from XDP and tc, read back in
 * Python through Collection.perf_buffer() on both backends.
 *
 * Both programs read an opcode from packet byte 14 and a parameter from byte 15 and
 * write the helper's result into bytes 16..19 (data_out).  A sample starts with
 * struct hdr (seq, opcode, parameter).
 *   0  BPF_F_CURRENT_CPU, 8 + 1 + (param & 31) bytes from the stack (the kernel pads
 *      the raw data to a multiple of 8 with its 4-byte size)
 *   1  BPF_F_CURRENT_CPU with a context length of param: the header, then the first
 *      param bytes of the packet (the skb/xdp flavour's ctxlen in flags bits 32..51)
 *   2  explicit index param (0: CPU 0's event; 1: another CPU's: -EOPNOTSUPP; beyond
 *      the map: -E2BIG)
 *   3  a flag bit above the context length (bit 52): -EINVAL
 *   4  a context length longer than the packet: -EFAULT
 *   5  into map "lossy": header plus the whole packet as context (big samples that
 *      fill a small ring: lost samples)
 *   6  into map "unused" (no event installed at any index): -ENOENT */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} lossy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
	__uint(max_entries, 4);
} unused SEC(".maps");

struct hdr {
	__u32 seq;
	__u8 op;
	__u8 param;
	__u16 from_tc;
};

__u32 seq;
__u32 failures;

static __always_inline long emit(void *ctx, __u8 op, __u8 param, __u32 pkt_len, __u16 from_tc)
{
	struct {
		struct hdr h;
		__u8 tail[32];
	} ev;
	__u64 flags;

	seq++;
	ev.h.seq = seq;
	ev.h.op = op;
	ev.h.param = param;
	ev.h.from_tc = from_tc;
	for (int i = 0; i < 32; i++)
		ev.tail[i] = (__u8)(seq + i * 3);

	switch (op) {
	case 0:
		return bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, &ev,
					     sizeof(ev.h) + 1 + (param & 31));
	case 1:
		flags = BPF_F_CURRENT_CPU | ((__u64)param << 32);
		return bpf_perf_event_output(ctx, &samples, flags, &ev.h, sizeof(ev.h));
	case 2:
		return bpf_perf_event_output(ctx, &samples, param, &ev.h, sizeof(ev.h));
	case 3:
		flags = BPF_F_CURRENT_CPU | (1ULL << 52);
		return bpf_perf_event_output(ctx, &samples, flags, &ev.h, sizeof(ev.h));
	case 4:
		flags = BPF_F_CURRENT_CPU | ((__u64)(pkt_len + 1) << 32);
		return bpf_perf_event_output(ctx, &samples, flags, &ev.h, sizeof(ev.h));
	case 5:
		flags = BPF_F_CURRENT_CPU | ((__u64)pkt_len << 32);
		return bpf_perf_event_output(ctx, &lossy, flags, &ev.h, sizeof(ev.h));
	case 6:
		return bpf_perf_event_output(ctx, &unused, 0, &ev.h, sizeof(ev.h));
	}
	return 0;
}

SEC("xdp")
int perf_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	long rc;

	if (data + 20 > end)
		return XDP_ABORTED;
	rc = emit(ctx, p[14], p[15], (__u32)(end - data), 0);
	if (rc)
		failures++;
	/* the helper may not move the packet, but the verifier forgets the check */
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	p = data;
	if (data + 20 > end)
		return XDP_ABORTED;
	*(__s32 *)(p + 16) = (__s32)rc;
	return XDP_PASS;
}

SEC("tc")
int perf_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *p = data;
	long rc;

	if (data + 20 > end)
		return 2; /* TC_ACT_SHOT */
	rc = emit(skb, p[14], p[15], skb->len, 1);
	if (rc)
		failures++;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	p = data;
	if (data + 20 > end)
		return 2;
	*(__s32 *)(p + 16) = (__s32)rc;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
