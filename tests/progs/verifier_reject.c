/* Programs the verifier must refuse, one mistake each, as people write them in C.
 * Used by tests/test_verifier_progs.py: netbpf and the kernel must both refuse with
 * the same message, and netbpf's error must name the C line (from BTF line info),
 * where the offending value came from, and the usual fix. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32[8]);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int no_null_check(struct xdp_md *ctx)
{
	__u32 key = ctx->ingress_ifindex;
	__u64 *v = bpf_map_lookup_elem(&hits, &key);

	*v += 1; /* MISSING NULL CHECK */
	return XDP_PASS;
}

SEC("xdp")
int no_bounds_check(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) /* MISSING BOUNDS CHECK */
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int short_bounds_check(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if (data + sizeof(*eth) > end)
		return XDP_PASS;
	if (ip->protocol == 17) /* CHECK TOO SHORT */
		return XDP_DROP;
	return XDP_PASS;
}

SEC("tc")
int index_unchecked(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u32 *arr = bpf_map_lookup_elem(&table, &zero);
	__u32 i = skb->mark;

	if (!arr)
		return TC_ACT_OK;
	arr[i] += 1; /* INDEX UNCHECKED */
	return TC_ACT_OK;
}

SEC("xdp")
int leaks_record(struct xdp_md *ctx)
{
	__u32 *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return XDP_PASS;
	*e = ctx->ingress_ifindex;
	if (*e == 7)
		return XDP_DROP; /* LEAKS RECORD */
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

SEC("cgroup_skb/ingress")
int bad_verdict(struct __sk_buff *skb)
{
	return 2; /* BAD VERDICT */
}

char LICENSE[] SEC("license") = "GPL";
