/* XDP packet sampler: 1 in sample_rate packets (bpf_get_prandom_u32; the const
 * volatile rate is 1 in the tests, so the choice is deterministic) goes into a ring
 * buffer as a header (sequence, length, EtherType, CPU, bpf_ktime_get_ns timestamp)
 * plus the first 64 bytes, reserved and submitted; runts (< 60 bytes) are reserved
 * then discarded.  Every packet also leaves a small note with bpf_ringbuf_output in a
 * second ring, and its metadata plus up to 128 packet bytes in a perf event array
 * (BPF_F_CURRENT_CPU).  Ring positions (bpf_ringbuf_query) and helper results go to
 * .bss.  Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u32 sample_rate = 1;

struct sample {
	__u32 seq;
	__u32 pkt_len;
	__u16 proto;
	__u16 head_len;
	__u32 cpu;
	__u64 ts_ns;
	__u8 head[64];
};

struct note {
	__u32 seq;
	__u16 pkt_len;
	__u8 sampled;
	__u8 pad;
};

struct perf_meta {
	__u32 seq;
	__u32 pkt_len;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} notes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_samples SEC(".maps");

__u32 seq;
__u32 sampled;
__u32 discarded;
__u32 reserve_failed;
__u32 note_failed;
__u32 perf_ok;
__s32 perf_last_rc;
__u64 avail_data;
__u64 prod_pos;
__u64 cons_pos;
__u64 ring_size;

SEC("xdp")
int sample_pkt(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct note n = {};
	struct perf_meta pm;
	struct sample *s;
	__u32 len = end - data, copy;
	__u64 flags;
	long rc;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	n.seq = ++seq;
	n.pkt_len = len;
	if (bpf_get_prandom_u32() % sample_rate == 0) {
		s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
		if (!s) {
			reserve_failed++;
		} else if (len < 60) {
			bpf_ringbuf_discard(s, 0);
			discarded++;
		} else {
			s->seq = n.seq;
			s->pkt_len = len;
			s->proto = bpf_ntohs(eth->h_proto);
			s->head_len = 64;
			s->cpu = bpf_get_smp_processor_id();
			s->ts_ns = bpf_ktime_get_ns();
			if (len >= 64)
				bpf_xdp_load_bytes(ctx, 0, s->head, 64);
			else
				bpf_xdp_load_bytes(ctx, 0, s->head, 60);
			if (len < 64)
				s->head_len = 60;
			bpf_ringbuf_submit(s, 0);
			n.sampled = 1;
			sampled++;
		}
	}
	if (bpf_ringbuf_output(&notes, &n, sizeof(n), 0))
		note_failed++;

	pm.seq = n.seq;
	pm.pkt_len = len;
	copy = len > 128 ? 128 : len;
	flags = BPF_F_CURRENT_CPU | ((__u64)copy << 32);
	rc = bpf_perf_event_output(ctx, &perf_samples, flags, &pm, sizeof(pm));
	perf_last_rc = rc;
	if (!rc)
		perf_ok++;

	avail_data = bpf_ringbuf_query(&samples, BPF_RB_AVAIL_DATA);
	prod_pos = bpf_ringbuf_query(&samples, BPF_RB_PROD_POS);
	cons_pos = bpf_ringbuf_query(&samples, BPF_RB_CONS_POS);
	ring_size = bpf_ringbuf_query(&samples, BPF_RB_RING_SIZE);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
