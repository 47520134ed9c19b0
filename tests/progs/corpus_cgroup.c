/* cgroup_skb ingress filter (and an egress twin): TCP/UDP packets to a blocked port
 * (hash: port -> 1) are refused (return 0), IPv4 fragments are refused when the const
 * volatile knob says so, everything else is allowed (return 1).  The packet starts at
 * the network header: IPv4 is read with direct packet access, IPv6 through
 * bpf_skb_load_bytes_relative(BPF_HDR_START_NET).  Counts per direction and verdict
 * per CPU.  Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u8 drop_fragments = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__type(key, __u16);
	__type(value, __u8);
} blocked_ports SEC(".maps");

/* index: direction * 4 + reason (0 allowed, 1 blocked port, 2 fragment, 3 not IP) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} cg_stats SEC(".maps");

static __always_inline int verdict(__u32 dir, __u32 reason)
{
	__u32 k = dir * 4 + reason;
	__u64 *c = bpf_map_lookup_elem(&cg_stats, &k);

	if (c)
		*c += 1;
	return reason == 0 || reason == 3;
}

static __always_inline int filter(struct __sk_buff *skb, __u32 dir)
{
	__u16 dport;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		struct iphdr *iph = data;
		struct udphdr *uh;

		if ((void *)(iph + 1) > end)
			return verdict(dir, 3);
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
			if (drop_fragments)
				return verdict(dir, 2);
			return verdict(dir, 0);
		}
		if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
			return verdict(dir, 0);
		uh = (void *)iph + iph->ihl * 4;
		if ((void *)(uh + 1) > end)
			return verdict(dir, 0);
		dport = bpf_ntohs(uh->dest);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u8 nh;
		__be16 port;

		if (bpf_skb_load_bytes_relative(skb, offsetof(struct ipv6hdr, nexthdr), &nh, 1,
						BPF_HDR_START_NET))
			return verdict(dir, 3);
		if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
			return verdict(dir, 0);
		if (bpf_skb_load_bytes_relative(skb, sizeof(struct ipv6hdr) + 2, &port, 2,
						BPF_HDR_START_NET))
			return verdict(dir, 0);
		dport = bpf_ntohs(port);
	} else {
		return verdict(dir, 3);
	}
	if (bpf_map_lookup_elem(&blocked_ports, &dport))
		return verdict(dir, 1);
	return verdict(dir, 0);
}

SEC("cgroup_skb/ingress")
int cg_ingress(struct __sk_buff *skb)
{
	return filter(skb, 0);
}

SEC("cgroup_skb/egress")
int cg_egress(struct __sk_buff *skb)
{
	return filter(skb, 1);
}

char LICENSE[] SEC("license") = "GPL";
