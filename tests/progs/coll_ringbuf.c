/* Ring buffer producers in XDP: bpf_ringbuf_output of a small record for even-length
 * packets; reserve + submit (or discard, for lengths divisible by 3) of a large one
 * for odd lengths.  Failures are counted; the ring's positions are read back with
 * bpf_ringbuf_query after every packet.  Python consumes the records.
 * Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct small_event {
	__u32 len;
	__u32 seq;
	__u8 head[8];
};

struct big_event {
	__u32 len;
	__u32 seq;
	__u8 head[14];
	__u8 fill[78];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

__u32 seq;
__u32 dropped;
__u64 avail;
__u64 prod_pos;
__u64 cons_pos;
__u64 ring_size;

SEC("xdp")
int rb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data;

	if (data + 14 > end)
		return XDP_ABORTED;
	seq++;
	if (len & 1) {
		struct big_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

		if (!e) {
			dropped++;
			return XDP_DROP;
		}
		e->len = len;
		e->seq = seq;
		__builtin_memcpy(e->head, data, 14);
		__builtin_memset(e->fill, seq & 0xff, sizeof(e->fill));
		if (len % 3 == 0)
			bpf_ringbuf_discard(e, 0);
		else
			bpf_ringbuf_submit(e, 0);
	} else {
		struct small_event ev = { .len = len, .seq = seq };

		__builtin_memcpy(ev.head, data, 8);
		if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0))
			dropped++;
	}
	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	prod_pos = bpf_ringbuf_query(&events, BPF_RB_PROD_POS);
	cons_pos = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
	ring_size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
