/* Global data, a const volatile knob, a hash counter, an array of structs, a per-CPU
 * array, static and global subprograms and a bpf_loop callback, in one XDP program.
 * Used by tests/test_kernel_collection.py (and the simulator's collection tests). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u16 last_len;
	__u8 bucket;
	__u8 parity : 1;
	__u8 small : 1;
	__u8 runs_mod8 : 3;
	char tag[6];
};

struct loop_ctx {
	__u64 sum;
	__u32 steps;
};

/* .rodata: configuration, settable before load, frozen after */
const volatile __u32 verdict = XDP_PASS;
const volatile __u8 loop_mult = 1;

/* .data */
__u64 total_bytes = 100;
char banner[8] = "netbpf";

/* .bss */
__u32 runs;
__s32 last_neg;
__u64 loop_sum;
struct flow_stats last;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct flow_stats);
} stats SEC(".maps");

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

/* A global function: the kernel verifies it on its own, from its BTF signature. */
__attribute__((noinline)) int account(struct flow_stats *s, __u32 len, __u32 bucket)
{
	if (!s)
		return 0;
	s->packets += 1;
	s->bytes += len;
	s->last_len = len;
	s->bucket = bucket;
	s->parity = len & 1;
	s->small = len < 100;
	s->runs_mod8 = s->packets & 7;
	__builtin_memcpy(s->tag, "flow", 5);
	return 1;
}

static long loop_step(__u32 i, void *data)
{
	struct loop_ctx *c = data;

	c->sum += (__u64)i * loop_mult;
	c->steps++;
	return 0;
}

SEC("xdp")
int globals_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	__u32 bucket = bucket_of(len);
	__u32 zero = 0;
	struct loop_ctx lc = {};
	__u64 *cnt, *pc;

	cnt = bpf_map_lookup_elem(&counts, &bucket);
	if (cnt) {
		__sync_fetch_and_add(cnt, 1);
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&counts, &bucket, &one, BPF_NOEXIST);
	}
	account(bpf_map_lookup_elem(&stats, &bucket), len, bucket);
	pc = bpf_map_lookup_elem(&pcpu_bytes, &zero);
	if (pc)
		*pc += len;

	bpf_loop(len % 8 + 1, loop_step, &lc, 0);
	loop_sum = lc.sum;
	runs++;
	total_bytes += len;
	last_neg = -(__s32)len;
	account(&last, len, bucket);
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
