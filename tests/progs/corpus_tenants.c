/* Per-tenant accounting through maps of maps, in XDP.  The tenant is the last byte of
 * the IPv4 destination modulo 4; an ARRAY_OF_MAPS (slots 0..2 filled from .maps, slot 3
 * empty) gives the tenant's counter array: [0] TCP, [1] UDP, [2] other packets, [3]
 * bytes.  A HASH_OF_MAPS keyed by u32 destination port adds a packet to slot 2 of a
 * per-service array.  Packets of tenants without a map pass uncounted (no_tenant).
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct counters {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} tenant_a SEC(".maps"), tenant_b SEC(".maps"), tenant_c SEC(".maps"),
  svc_web SEC(".maps"), svc_dns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct counters);
} tenants SEC(".maps") = {
	.values = { [0] = &tenant_a, [1] = &tenant_b, [2] = &tenant_c },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct counters);
} services SEC(".maps") = {
	/* libbpf's initialiser: the key is the slot index */
	.values = { [0] = &svc_dns, [1] = &svc_web },
};

__u64 no_tenant;
__u64 no_service;

static __always_inline void add(void *inner, __u32 k, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(inner, &k);

	if (c)
		__sync_fetch_and_add(c, n);
}

SEC("xdp")
int account(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct frame f;
	struct iphdr *iph;
	__u32 tenant, port = 0;
	void *inner;

	if (parse_frame(data, end, &f) < 0)
		return XDP_ABORTED;
	if (f.proto != ETH_P_IP || !f.l3_ok)
		return XDP_PASS;
	iph = f.l3;
	tenant = (bpf_ntohl(iph->daddr) & 0xff) % 4;
	inner = bpf_map_lookup_elem(&tenants, &tenant);
	if (!inner) {
		no_tenant++;
		return XDP_PASS;
	}
	add(inner, f.ip_proto == IPPROTO_TCP ? 0 : f.ip_proto == IPPROTO_UDP ? 1 : 2, 1);
	add(inner, 3, end - data);

	if (f.l4 && (f.ip_proto == IPPROTO_TCP || f.ip_proto == IPPROTO_UDP)) {
		struct udphdr *uh = f.l4;

		if ((void *)(uh + 1) <= end)
			port = bpf_ntohs(uh->dest);
	}
	/* service index: 53 -> 0, 80 -> 1, others: absent key */
	port = port == 53 ? 0 : port == 80 ? 1 : port;
	inner = bpf_map_lookup_elem(&services, &port);
	if (!inner) {
		no_service++;
		return XDP_PASS;
	}
	add(inner, 2, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
