/* XDP forwarding through the redirect maps.
 *
 * - VLAN-tagged frames: bpf_redirect_map into a DEVMAP_HASH keyed by VLAN id
 *   (fallback XDP_DROP for unknown VLANs);
 * - IPv6: spread over CPUs through a CPUMAP by the source's last byte (fallback
 *   XDP_PASS);
 * - UDP to port 4791: to the AF_XDP socket of the receive queue if the XSKMAP has one
 *   (looked up first, as AF_XDP programs do), else XDP_PASS;
 * - other IPv4: the egress port is the destination's last byte mod 4 in a DEVMAP; the
 *   program looks the entry up first (its ifindex goes to .bss) and redirects.
 * test_run returns the action without sending anything (no live frames).
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_by_vlan SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* per XDP action */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} actions SEC(".maps");

__u32 last_ifindex;
__u32 xsk_found;
__u32 xsk_missing;

static __always_inline int done(int action)
{
	__u32 k = action;
	__u64 *c = bpf_map_lookup_elem(&actions, &k);

	if (c)
		*c += 1;
	return action;
}

SEC("xdp")
int forward(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct bpf_devmap_val *dev;
	struct frame f;
	__u32 key;

	if (parse_frame(data, end, &f) < 0)
		return done(XDP_ABORTED);
	if (f.nvlans)
		return done(bpf_redirect_map(&tx_by_vlan, f.vlan_id, XDP_DROP));
	if (!f.l3_ok)
		return done(XDP_PASS);
	if (f.proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = f.l3;

		key = ip6->saddr.in6_u.u6_addr8[15] & 1;
		return done(bpf_redirect_map(&cpus, key, XDP_PASS));
	}
	if (f.ip_proto == IPPROTO_UDP && f.l4) {
		struct udphdr *uh = f.l4;

		if ((void *)(uh + 1) <= end && uh->dest == bpf_htons(4791)) {
			key = ctx->rx_queue_index;
			if (bpf_map_lookup_elem(&xsks, &key))
				xsk_found++;
			else
				xsk_missing++;
			return done(bpf_redirect_map(&xsks, key, XDP_PASS));
		}
	}
	key = (bpf_ntohl(((struct iphdr *)f.l3)->daddr) & 0xff) % 4;
	dev = bpf_map_lookup_elem(&tx_ports, &key);
	if (!dev)
		return done(XDP_PASS);
	last_ifindex = dev->ifindex;
	return done(bpf_redirect_map(&tx_ports, key, 0));
}

char LICENSE[] SEC("license") = "GPL";
