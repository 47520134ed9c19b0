/* The CLI's main test object (tests/test_cli_obj.py): global data of every kind, a
 * const volatile knob, a hash of structs, an array the test pre-populates with
 * --map, a per-CPU array, a static and a global subprogram, and two program types. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u16 last_len;
	char tag[6];
};

/* .rodata: settable before load with --set */
const volatile __u32 verdict = XDP_PASS;
const volatile __u16 min_len = 0;

/* .data */
__u64 total_bytes = 100;
char banner[8] = "netbpf";

/* .bss */
__u32 runs;
__s32 last_neg;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct flow_stats);
} flows SEC(".maps");

/* len limit per bucket: a packet longer than limits[bucket] (when nonzero) is dropped */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_bytes SEC(".maps");

static __attribute__((noinline)) __u32 bucket_of(__u32 len)
{
	return len % 4;
}

__attribute__((noinline)) int account(struct flow_stats *s, __u32 len)
{
	if (!s)
		return 0;
	s->packets += 1;
	s->bytes += len;
	s->last_len = len;
	__builtin_memcpy(s->tag, "seen", 5);
	return 1;
}

SEC("xdp")
int flow_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	__u32 bucket = bucket_of(len);
	__u32 zero = 0;
	struct flow_stats *s;
	__u64 *limit, *pc;

	runs++;
	if (len < min_len)
		return XDP_DROP;
	limit = bpf_map_lookup_elem(&limits, &bucket);
	if (limit && *limit && len > *limit)
		return XDP_DROP;
	s = bpf_map_lookup_elem(&flows, &bucket);
	if (!s) {
		struct flow_stats fresh = {};

		bpf_map_update_elem(&flows, &bucket, &fresh, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&flows, &bucket);
	}
	account(s, len);
	pc = bpf_map_lookup_elem(&pcpu_bytes, &zero);
	if (pc)
		*pc += len;
	total_bytes += len;
	last_neg = -(__s32)len;
	return verdict;
}

SEC("tc")
int flow_tc(struct __sk_buff *skb)
{
	skb->mark = 0x2a;
	runs++;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
