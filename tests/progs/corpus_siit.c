/* Stateless IPv4/IPv6 translation (SIIT, RFC 7915 in miniature) at tc for TCP and
 * UDP: IPv4 addresses map into 64:ff9b::/96 (RFC 6052).
 *
 * nat46: IPv4 (no options, not a fragment) -> IPv6: bpf_skb_change_proto grows the
 * network header by 20 bytes, the new header goes in with bpf_skb_store_bytes, and the
 * TCP/UDP checksum follows the pseudo-header change through bpf_csum_diff and
 * bpf_l4_csum_replace(BPF_F_PSEUDO_HDR).
 * nat64: the reverse, for IPv6 packets between two 64:ff9b:: addresses, with the
 * IPv4 header checksum from bpf_csum_diff.
 * The return codes of every helper go to cb[0..3] (ctx_out).
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4); /* 0: 4->6, 1: 6->4, 2: skipped, 3: helper errors */
	__type(key, __u32);
	__type(value, __u64);
} xlat_stats SEC(".maps");

static __always_inline int bump(__u32 k, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&xlat_stats, &k);

	if (c)
		*c += 1;
	return verdict;
}

static __always_inline int l4_csum_off(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return offsetof(struct tcphdr, check);
	if (proto == IPPROTO_UDP)
		return offsetof(struct udphdr, check);
	return -1;
}

static const __u8 wkp[12] = { 0x00, 0x64, 0xff, 0x9b };

static __always_inline int in_wkp(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == bpf_htonl(0x0064ff9b) && !a->in6_u.u6_addr32[1] &&
	       !a->in6_u.u6_addr32[2];
}

SEC("tc")
int nat46(struct __sk_buff *skb)
{
	struct iphdr ip4;
	struct ipv6hdr ip6 = {};
	__be32 v4addrs[2];
	__u32 diff;
	int off;
	long rc;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip4, sizeof(ip4)))
		return bump(2, TC_ACT_OK);
	off = l4_csum_off(ip4.protocol);
	if (ip4.ihl != 5 || off < 0 || (ip4.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return bump(2, TC_ACT_OK);

	ip6.version = 6;
	ip6.priority = ip4.tos >> 4;
	ip6.flow_lbl[0] = ip4.tos << 4;
	ip6.payload_len = bpf_htons(bpf_ntohs(ip4.tot_len) - sizeof(ip4));
	ip6.nexthdr = ip4.protocol;
	ip6.hop_limit = ip4.ttl;
	__builtin_memcpy(&ip6.saddr, wkp, 12);
	__builtin_memcpy(&ip6.daddr, wkp, 12);
	ip6.saddr.in6_u.u6_addr32[3] = ip4.saddr;
	ip6.daddr.in6_u.u6_addr32[3] = ip4.daddr;
	v4addrs[0] = ip4.saddr;
	v4addrs[1] = ip4.daddr;
	diff = bpf_csum_diff(v4addrs, 8, (__be32 *)&ip6.saddr, 32, 0);

	rc = bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0);
	skb->cb[0] = (__u32)rc;
	if (rc)
		return bump(3, TC_ACT_SHOT);
	rc = bpf_skb_store_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6), 0);
	skb->cb[1] = (__u32)rc;
	__be16 proto = bpf_htons(ETH_P_IPV6);
	rc |= bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, 2, 0);
	skb->cb[2] = (__u32)rc;
	rc = bpf_l4_csum_replace(skb, ETH_HLEN + sizeof(ip6) + off, 0, diff,
				 BPF_F_PSEUDO_HDR | (ip6.nexthdr == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0));
	skb->cb[3] = (__u32)rc;
	if (rc)
		return bump(3, TC_ACT_SHOT);
	return bump(0, TC_ACT_OK);
}

SEC("tc")
int nat64(struct __sk_buff *skb)
{
	struct ipv6hdr ip6;
	struct iphdr ip4 = {};
	__be32 v4addrs[2];
	__u32 diff;
	int off;
	long rc;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
		return bump(2, TC_ACT_OK);
	off = l4_csum_off(ip6.nexthdr);
	if (off < 0 || !in_wkp(&ip6.saddr) || !in_wkp(&ip6.daddr))
		return bump(2, TC_ACT_OK);

	ip4.version = 4;
	ip4.ihl = 5;
	ip4.tos = ip6.priority << 4 | ip6.flow_lbl[0] >> 4;
	ip4.tot_len = bpf_htons(bpf_ntohs(ip6.payload_len) + sizeof(ip4));
	ip4.frag_off = bpf_htons(0x4000);
	ip4.ttl = ip6.hop_limit;
	ip4.protocol = ip6.nexthdr;
	ip4.saddr = ip6.saddr.in6_u.u6_addr32[3];
	ip4.daddr = ip6.daddr.in6_u.u6_addr32[3];
	ip4.check = csum_fold32(bpf_csum_diff(0, 0, (__be32 *)&ip4, sizeof(ip4), 0));
	v4addrs[0] = ip4.saddr;
	v4addrs[1] = ip4.daddr;
	diff = bpf_csum_diff((__be32 *)&ip6.saddr, 32, v4addrs, 8, 0);

	rc = bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0);
	skb->cb[0] = (__u32)rc;
	if (rc)
		return bump(3, TC_ACT_SHOT);
	rc = bpf_skb_store_bytes(skb, ETH_HLEN, &ip4, sizeof(ip4), 0);
	skb->cb[1] = (__u32)rc;
	__be16 proto = bpf_htons(ETH_P_IP);
	rc |= bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &proto, 2, 0);
	skb->cb[2] = (__u32)rc;
	rc = bpf_l4_csum_replace(skb, ETH_HLEN + sizeof(ip4) + off, 0, diff,
				 BPF_F_PSEUDO_HDR | (ip4.protocol == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0));
	skb->cb[3] = (__u32)rc;
	if (rc)
		return bump(3, TC_ACT_SHOT);
	return bump(1, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "GPL";
