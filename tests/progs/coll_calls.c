/* Calls and callbacks in XDP: bpf_loop (stopping early when the callback says so, and
 * its -EINVAL / -E2BIG refusals), bpf_for_each_map_elem over an array (the callback
 * changes values and stops at a chosen key) and over a hash with BPF_F_ZERO_SEED (the
 * visiting order is recorded: with a fixed seed it is the kernel's bucket order), and
 * a global function with five arguments.  The first payload byte (offset 14) chooses
 * where the callbacks stop.  Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__uint(map_flags, BPF_F_ZERO_SEED);
	__type(key, __u32);
	__type(value, __u64);
} h SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u32);
} visit_order SEC(".maps");

struct cb_ctx {
	__u64 sum;
	__u32 stop_at;
	__u32 n;
};

__s64 loop_ret, loop_einval, loop_e2big;
__u64 loop_sum;
__s64 fe_arr_ret, fe_hash_ret;
__u64 fe_arr_sum, fe_hash_sum;
__u32 mixed;

static long loop_cb(__u32 i, void *data)
{
	struct cb_ctx *c = data;

	c->sum += (__u64)i * i;
	c->n++;
	return i == c->stop_at;
}

static long arr_cb(struct bpf_map *map, __u32 *key, __u64 *val, void *data)
{
	struct cb_ctx *c = data;

	c->sum += *val;
	*val += *key + 1;
	c->n++;
	return *key == c->stop_at;
}

static long hash_cb(struct bpf_map *map, __u32 *key, __u64 *val, void *data)
{
	struct cb_ctx *c = data;
	__u32 i = c->n;

	if (i < 32)
		bpf_map_update_elem(&visit_order, &i, key, BPF_ANY);
	c->n++;
	c->sum += *val * (*key + 1);
	return 0;
}

__attribute__((noinline)) int mix5(int a, int b, int c, int d, int e)
{
	return a * 10000 + b * 1000 + c * 100 + d * 10 + e;
}

SEC("xdp")
int calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data, key;
	struct cb_ctx c = {};
	__u64 *v;
	__u8 sel;

	if (data + 15 > end)
		return XDP_ABORTED;
	sel = *(__u8 *)(data + 14);

	c.stop_at = sel;
	loop_ret = bpf_loop(len % 16, loop_cb, &c, 0);
	loop_sum = c.sum;
	loop_einval = bpf_loop(1, loop_cb, &c, 1);
	loop_e2big = bpf_loop((1 << 23) + 1, loop_cb, &c, 0);

	key = len % 29;
	v = bpf_map_lookup_elem(&h, &key);
	if (v) {
		*v += len;
	} else {
		__u64 first = len;

		bpf_map_update_elem(&h, &key, &first, BPF_NOEXIST);
	}

	c = (struct cb_ctx){ .stop_at = sel % 8 };
	fe_arr_ret = bpf_for_each_map_elem(&arr, arr_cb, &c, 0);
	fe_arr_sum = c.sum;

	c = (struct cb_ctx){};
	fe_hash_ret = bpf_for_each_map_elem(&h, hash_cb, &c, 0);
	fe_hash_sum = c.sum;

	mixed = mix5(sel % 10, len % 10, c.n % 10, 7, 9);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
