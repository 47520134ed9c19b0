/* XDP DDoS dropper: counts packets per IPv4 source in an LRU hash and per IPv6 /64
 * in an LRU per-CPU hash; a source over its limit (const volatile knobs, set before
 * load) is dropped, allow-listed sources always pass.  Verdicts are counted per CPU.
 * The per-source record keeps first/last-seen times from bpf_ktime_get_ns: their
 * values differ by nature between backends, but time never runs backwards
 * (clock_backwards stays 0).  Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u64 v4_limit = 3;
const volatile __u64 v6_limit = 2;

struct src_stat {
	__u64 packets;
	__u64 bytes;
	__u64 first_seen_ns;
	__u64 last_seen_ns;
};

struct v6_prefix {
	__u8 bytes[8];
};

enum verdict { V_PASS_NEW, V_PASS, V_DROP, V_ALLOW, V_NOT_IP, V_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct src_stat);
} v4_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 32);
	__type(key, struct v6_prefix);
	__type(value, __u64);
} v6_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u8);
} allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, V_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

__u64 clock_backwards;

static __always_inline int count(enum verdict v, int action)
{
	__u32 k = v;
	__u64 *c = bpf_map_lookup_elem(&verdicts, &k);

	if (c)
		*c += 1;
	return action;
}

static __always_inline int v4(struct iphdr *iph, __u32 len)
{
	__u32 saddr = iph->saddr;
	__u64 now = bpf_ktime_get_ns();
	struct src_stat *st;

	if (bpf_map_lookup_elem(&allow, &saddr))
		return count(V_ALLOW, XDP_PASS);
	st = bpf_map_lookup_elem(&v4_src, &saddr);
	if (!st) {
		struct src_stat init = {
			.packets = 1, .bytes = len, .first_seen_ns = now, .last_seen_ns = now,
		};

		bpf_map_update_elem(&v4_src, &saddr, &init, BPF_NOEXIST);
		return count(V_PASS_NEW, XDP_PASS);
	}
	__sync_fetch_and_add(&st->packets, 1);
	__sync_fetch_and_add(&st->bytes, len);
	if (now < st->last_seen_ns)
		clock_backwards++;
	st->last_seen_ns = now;
	if (st->packets > v4_limit)
		return count(V_DROP, XDP_DROP);
	return count(V_PASS, XDP_PASS);
}

static __always_inline int v6(struct ipv6hdr *ip6)
{
	struct v6_prefix key;
	__u64 one = 1, *n;

	__builtin_memcpy(key.bytes, &ip6->saddr, 8);
	n = bpf_map_lookup_elem(&v6_src, &key);
	if (!n) {
		bpf_map_update_elem(&v6_src, &key, &one, BPF_ANY);
		return count(V_PASS_NEW, XDP_PASS);
	}
	*n += 1;
	if (*n > v6_limit)
		return count(V_DROP, XDP_DROP);
	return count(V_PASS, XDP_PASS);
}

SEC("xdp")
int ddos_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct frame f;

	if (parse_frame(data, end, &f) < 0)
		return XDP_ABORTED;
	if (!f.l3_ok)
		return count(V_NOT_IP, XDP_PASS);
	if (f.proto == ETH_P_IP)
		return v4(f.l3, end - data);
	return v6(f.l3);
}

char LICENSE[] SEC("license") = "GPL";
