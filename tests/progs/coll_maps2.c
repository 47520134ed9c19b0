/* More map semantics from programs: a hash that fills up (-E2BIG once max_entries
 * elements exist, BPF_EXIST/NOEXIST refusals), a HASH_OF_MAPS looked up and written
 * through, bpf_map_lookup_percpu_elem, for_each_map_elem over a per-CPU array and an
 * LRU hash, and a value with a bpf_spin_lock taken by the program.  The first payload
 * byte (offset 14) is the key the run works on.  Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} small SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { &inner_a, &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

struct locked {
	struct bpf_spin_lock lock;
	__u32 count;
	__u64 total;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct locked);
} guarded SEC(".maps");

__s32 rc_any, rc_noexist, rc_exist, rc_delete;
__u64 inner_seen, percpu_cpu0, percpu_cpu1, percpu_nocpu;
__s64 fe_pcpu, fe_lru;
__u64 fe_pcpu_sum, fe_lru_sum;

static long sum_cb(struct bpf_map *map, __u32 *key, __u64 *val, void *data)
{
	*(__u64 *)data += *val + *key;
	return 0;
}

SEC("xdp")
int maps2(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data, key, zero = 0, one = 1, value;
	__u64 *v, sum;
	void *in;
	struct locked *g;

	if (data + 15 > end)
		return XDP_ABORTED;
	key = *(__u8 *)(data + 14);
	value = len;

	rc_any = bpf_map_update_elem(&small, &key, &value, BPF_ANY);
	rc_noexist = bpf_map_update_elem(&small, &key, &value, BPF_NOEXIST);
	value += 1000;
	rc_exist = bpf_map_update_elem(&small, &key, &value, BPF_EXIST);
	rc_delete = key & 8 ? bpf_map_delete_elem(&small, &key) : 0;

	in = bpf_map_lookup_elem(&outer, key & 1 ? &one : &zero);
	if (in) {
		__u32 k2 = key & 3;

		v = bpf_map_lookup_elem(in, &k2);
		if (v) {
			*v += len;
			inner_seen = *v;
		} else {
			__u64 first = len;

			bpf_map_update_elem(in, &k2, &first, BPF_NOEXIST);
			inner_seen = 0;
		}
	}

	key %= 3;
	v = bpf_map_lookup_elem(&pcpu, &key);
	if (v)
		*v += len;
	v = bpf_map_lookup_percpu_elem(&pcpu, &key, 0);
	percpu_cpu0 = v ? *v : 12345;
	v = bpf_map_lookup_percpu_elem(&pcpu, &key, 1);
	percpu_cpu1 = v ? *v : 12345;
	v = bpf_map_lookup_percpu_elem(&pcpu, &key, 4096);
	percpu_nocpu = v ? *v : 12345;

	key = len % 11;
	v = bpf_map_lookup_elem(&lru, &key);
	if (v) {
		*v += 1;
	} else {
		__u64 first = 1;

		bpf_map_update_elem(&lru, &key, &first, BPF_ANY);
	}

	sum = 0;
	fe_pcpu = bpf_for_each_map_elem(&pcpu, sum_cb, &sum, 0);
	fe_pcpu_sum = sum;
	sum = 0;
	fe_lru = bpf_for_each_map_elem(&lru, sum_cb, &sum, 0);
	fe_lru_sum = sum;

	g = bpf_map_lookup_elem(&guarded, &zero);
	if (g) {
		bpf_spin_lock(&g->lock);
		g->count++;
		g->total += len;
		bpf_spin_unlock(&g->lock);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
