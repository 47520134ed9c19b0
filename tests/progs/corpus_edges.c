/* Hardening checks: a tc and an XDP program that call helpers with arguments the
 * kernel rejects at run time (bad flags, sizes, offsets, indexes, full maps) and keep
 * every return code in .bss, as a defensive program logs what failed.  The verdict
 * is always "pass"; the codes are what is compared.  Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} e_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} e_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 2);
	__uint(value_size, sizeof(__u64));
} e_queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} e_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(max_entries, 8);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} e_perf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} e_jump SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} e_devs SEC(".maps");

__s64 tc_rc[24];
__s64 xdp_rc[12];

static long nop(__u32 i, void *ctx)
{
	return 0;
}

SEC("tc")
int edges_tc(struct __sk_buff *skb)
{
	__u8 buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	__u32 k = 0, big = 99;
	__u64 v = 7;

	tc_rc[0] = bpf_skb_change_tail(skb, skb->len, 1);
	tc_rc[1] = bpf_skb_vlan_push(skb, bpf_htons(0x1234), 5);
	tc_rc[2] = bpf_csum_diff((__be32 *)buf, 3, 0, 0, 0);
	tc_rc[3] = bpf_skb_load_bytes(skb, skb->len - 2, buf, 4);
	tc_rc[4] = bpf_skb_store_bytes(skb, 0, buf, 4, 1 << 7);
	tc_rc[5] = bpf_l3_csum_replace(skb, 1, 0, 0, 2);
	tc_rc[6] = bpf_l4_csum_replace(skb, 14, 0, 0, 3);
	tc_rc[7] = bpf_skb_adjust_room(skb, -4000, BPF_ADJ_ROOM_NET, 0);
	tc_rc[8] = bpf_skb_change_head(skb, 14, 1);
	tc_rc[9] = bpf_map_update_elem(&e_hash, &k, &v, BPF_NOEXIST);
	tc_rc[10] = bpf_map_update_elem(&e_hash, &k, &v, BPF_NOEXIST);
	tc_rc[11] = bpf_map_update_elem(&e_array, &big, &v, BPF_ANY);
	tc_rc[12] = bpf_map_delete_elem(&e_array, &k);
	tc_rc[13] = bpf_map_update_elem(&e_array, &k, &v, BPF_NOEXIST);
	bpf_map_push_elem(&e_queue, &v, 0);
	bpf_map_push_elem(&e_queue, &v, 0);
	tc_rc[14] = bpf_map_push_elem(&e_queue, &v, 0);
	tc_rc[15] = bpf_loop(1 << 24, nop, 0, 0);
	tc_rc[16] = bpf_loop(1, nop, 0, 1);
	tc_rc[17] = bpf_ringbuf_output(&e_ring, &v, sizeof(v), 8);
	tc_rc[18] = bpf_perf_event_output(skb, &e_perf, 5, &v, sizeof(v));
	tc_rc[19] = bpf_skb_pull_data(skb, skb->len + 1);
	tc_rc[20] = bpf_skb_change_proto(skb, bpf_htons(0x1234), 0);
	tc_rc[21] = bpf_skb_vlan_pop(skb);
	tc_rc[22] = bpf_map_pop_elem(&e_queue, &v) + bpf_map_pop_elem(&e_queue, &v) * 10 +
		    bpf_map_pop_elem(&e_queue, &v) * 100;
	bpf_tail_call(skb, &e_jump, 100);
	tc_rc[23] = 1; /* the tail call fell through */
	return TC_ACT_OK;
}

SEC("xdp")
int edges_xdp(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u8 buf[4] = {};
	void *r;

	xdp_rc[0] = bpf_xdp_adjust_head(ctx, -300);
	xdp_rc[1] = bpf_xdp_adjust_head(ctx, len);
	xdp_rc[2] = bpf_xdp_adjust_tail(ctx, 4000);
	xdp_rc[3] = bpf_xdp_adjust_tail(ctx, -(int)len + 10);
	xdp_rc[4] = bpf_xdp_adjust_meta(ctx, -3);
	xdp_rc[5] = bpf_xdp_adjust_meta(ctx, -40);
	xdp_rc[6] = bpf_xdp_load_bytes(ctx, len - 1, buf, 4);
	xdp_rc[7] = bpf_xdp_store_bytes(ctx, len - 1, buf, 4);
	xdp_rc[8] = bpf_redirect_map(&e_devs, 7, XDP_PASS);
	xdp_rc[9] = bpf_redirect_map(&e_devs, 0, XDP_TX | 8);
	r = bpf_ringbuf_reserve(&e_ring, 5000, 0);
	xdp_rc[10] = r != 0;
	if (r)
		bpf_ringbuf_discard(r, 0);
	xdp_rc[11] = bpf_ringbuf_query(&e_ring, 99);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
