/* tc destination NAT: TCP/UDP packets to a translated (address, port, protocol) are
 * rewritten to the internal address and port with bpf_skb_store_bytes, the IPv4
 * header checksum fixed with bpf_l3_csum_replace and the TCP/UDP checksum with
 * bpf_l4_csum_replace (the address through the pseudo header, BPF_F_PSEUDO_HDR; a UDP
 * checksum of 0 stays 0 with BPF_F_MARK_MANGLED_0).  The flow hash is then
 * recomputed twice with bpf_get_hash_recalc (its value is seeded at random by the
 * kernel, so only "twice the same, and non-zero" is compared) and replaced with
 * bpf_set_hash; rewriting the port once more with BPF_F_INVALIDATE_HASH clears it
 * again.  cb[0..4] (ctx_out) hold the helper results.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct nat_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct nat_val {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct nat_key);
	__type(value, struct nat_val);
} dnat SEC(".maps");

/* 0 translated, 1 not for us, 2 helper error */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} nat_stats SEC(".maps");

static __always_inline int bump(__u32 k, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&nat_stats, &k);

	if (c)
		*c += 1;
	return verdict;
}

SEC("tc")
int dnat_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct nat_key k = {};
	struct nat_val *v;
	struct frame f;
	struct iphdr *iph;
	struct udphdr *uh;
	__u32 ip_off, l4_off, csum_off, mangled = 0;
	__be32 old_addr, new_addr;
	__be16 old_port, new_port;
	__u32 h1, h2;
	long rc;

	if (parse_frame(data, end, &f) < 0)
		return TC_ACT_SHOT;
	if (f.proto != ETH_P_IP || !f.l4 || f.fragment)
		return bump(1, TC_ACT_OK);
	if (f.ip_proto != IPPROTO_TCP && f.ip_proto != IPPROTO_UDP)
		return bump(1, TC_ACT_OK);
	iph = f.l3;
	uh = f.l4;
	if ((void *)(uh + 1) > end)
		return bump(1, TC_ACT_OK);
	k.addr = iph->daddr;
	k.port = uh->dest;
	k.proto = iph->protocol;
	v = bpf_map_lookup_elem(&dnat, &k);
	if (!v)
		return bump(1, TC_ACT_OK);

	ip_off = (void *)iph - data;
	l4_off = (void *)uh - data;
	old_addr = iph->daddr;
	old_port = uh->dest;
	new_addr = v->addr;
	new_port = v->port;
	if (f.ip_proto == IPPROTO_TCP) {
		csum_off = l4_off + offsetof(struct tcphdr, check);
	} else {
		csum_off = l4_off + offsetof(struct udphdr, check);
		mangled = BPF_F_MARK_MANGLED_0;
	}
	rc = bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
				 BPF_F_PSEUDO_HDR | mangled | sizeof(new_addr));
	rc |= bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port));
	rc |= bpf_l3_csum_replace(skb, ip_off + offsetof(struct iphdr, check), old_addr,
				  new_addr, sizeof(new_addr));
	rc |= bpf_skb_store_bytes(skb, ip_off + offsetof(struct iphdr, daddr), &new_addr, 4, 0);
	rc |= bpf_skb_store_bytes(skb, l4_off + offsetof(struct udphdr, dest), &new_port, 2, 0);
	skb->cb[0] = (__u32)rc;
	if (rc)
		return bump(2, TC_ACT_SHOT);

	h1 = bpf_get_hash_recalc(skb);
	h2 = bpf_get_hash_recalc(skb);
	skb->cb[1] = h1 == h2 && h1 != 0;
	bpf_set_hash(skb, 0x5eed0000 | bpf_ntohs(new_port));
	skb->cb[2] = skb->hash;
	skb->cb[3] = bpf_get_hash_recalc(skb) == skb->hash;
	rc = bpf_skb_store_bytes(skb, l4_off + offsetof(struct udphdr, dest), &new_port, 2,
				 BPF_F_INVALIDATE_HASH);
	skb->cb[4] = rc ? 0xdead : skb->hash;
	return bump(0, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "GPL";
