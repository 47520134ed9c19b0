/* Ring buffer producers for the consumer tests (tests/test_consumers_both.py,
 * tests/test_kernel_ringbuf.py): every way a program commits a record, read back
 * in Python through Collection.ringbuf() on both backends.
 *
 * XDP program rb_xdp: byte 14 of the packet is an opcode, byte 15 a parameter;
 * the helper's result is written back into bytes 16..19 (data_out).
 *   0  bpf_ringbuf_output of 1 + (param & 31) bytes (unaligned lengths), flags
 *      param >> 6 (0, BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP)
 *   1  reserve 40 bytes, fill (seq, packet length, Ethernet header), submit with
 *      flags param >> 6
 *   2  reserve 40 bytes, discard
 *   3  two reservations open at once: A (24 bytes) then B (16 bytes); B is submitted
 *      first, then A submitted (param & 1 == 0) or discarded
 *   4  reserve 1000 bytes (fills the 4 KiB ring fast: drops, wrap-around), every
 *      u64 i set to seq << 32 | i, submit
 *   5  bpf_ringbuf_output with flags 4 (invalid: -EINVAL)
 *   6  reserve 1000 bytes, set only the first and last u64, submit: the rest shows
 *      what the ring held there before (a record crossing the ring's end sees the
 *      start of the ring through the kernel's second mapping of the data pages)
 * The ring's positions after each run are kept in globals (bpf_ringbuf_query).
 *
 * tc program rb_tc: one record per packet with skb->len, skb->protocol and the
 * first 14 bytes (bpf_skb_load_bytes), output to the same ring. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct rec40 {
	__u32 seq;
	__u32 len;
	__u8 eth[14];
	__u8 tag[18];
};

struct rec_a {
	__u32 seq;
	__u32 which;
	__u64 x;
	__u64 y;
};

struct rec_b {
	__u32 seq;
	__u32 which;
	__u64 z;
};

struct rec_tc {
	__u32 len;
	__u32 protocol;
	__u8 eth[14];
	__u16 pad;
};

__u32 seq;
__u32 dropped;
__u64 prod_pos;
__u64 cons_pos;
__u64 avail;

static __always_inline void query(void)
{
	prod_pos = bpf_ringbuf_query(&events, BPF_RB_PROD_POS);
	cons_pos = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
}

SEC("xdp")
int rb_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u32 len = end - data;
	long rc = 0;

	if (data + 20 > end)
		return XDP_ABORTED;
	seq++;
	__u8 op = p[14], param = p[15];
	__u64 fl = param >> 6;

	if (op == 0) {
		__u8 buf[32];

		for (int i = 0; i < 32; i++)
			buf[i] = (__u8)(seq * 7 + i);
		rc = bpf_ringbuf_output(&events, buf, 1 + (param & 31), fl);
	} else if (op == 1 || op == 2) {
		struct rec40 *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

		if (!r) {
			rc = -1;
		} else {
			r->seq = seq;
			r->len = len;
			__builtin_memcpy(r->eth, data, 14);
			__builtin_memset(r->tag, op, sizeof(r->tag));
			if (op == 1)
				bpf_ringbuf_submit(r, fl);
			else
				bpf_ringbuf_discard(r, 0);
		}
	} else if (op == 3) {
		struct rec_a *a = bpf_ringbuf_reserve(&events, sizeof(*a), 0);

		if (!a) {
			rc = -1;
		} else {
			struct rec_b *b = bpf_ringbuf_reserve(&events, sizeof(*b), 0);

			if (!b) {
				bpf_ringbuf_discard(a, 0);
				rc = -2;
			} else {
				a->seq = seq;
				a->which = 0xa;
				a->x = 0x1111111111111111ULL * (seq & 0xf);
				a->y = len;
				b->seq = seq;
				b->which = 0xb;
				b->z = ~(__u64)seq;
				bpf_ringbuf_submit(b, 0);
				if (param & 1)
					bpf_ringbuf_discard(a, 0);
				else
					bpf_ringbuf_submit(a, 0);
			}
		}
	} else if (op == 4) {
		__u64 *r = bpf_ringbuf_reserve(&events, 1000, 0);

		if (!r) {
			rc = -1;
		} else {
			for (int i = 0; i < 125; i++)
				r[i] = ((__u64)seq << 32) | i;
			bpf_ringbuf_submit(r, 0);
		}
	} else if (op == 6) {
		__u64 *r = bpf_ringbuf_reserve(&events, 1000, 0);

		if (!r) {
			rc = -1;
		} else {
			r[0] = seq;
			r[124] = 0xfeedface00000000ULL | len;
			bpf_ringbuf_submit(r, 0);
		}
	} else if (op == 5) {
		__u64 v = seq;

		rc = bpf_ringbuf_output(&events, &v, sizeof(v), 4);
	}
	if (rc)
		dropped++;
	query();
	*(__s32 *)(p + 16) = (__s32)rc;
	return XDP_PASS;
}

SEC("tc")
int rb_tc(struct __sk_buff *skb)
{
	struct rec_tc r = {};

	seq++;
	r.len = skb->len;
	r.protocol = skb->protocol;
	if (bpf_skb_load_bytes(skb, 0, r.eth, 14))
		return 2; /* TC_ACT_SHOT */
	if (bpf_ringbuf_output(&events, &r, sizeof(r), 0))
		dropped++;
	query();
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "GPL";
