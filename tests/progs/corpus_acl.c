/* LPM-based source-address ACL, for tc and XDP sharing the same tries: the longest
 * matching IPv4 or IPv6 prefix decides (allow or deny) and its rule id is counted per
 * CPU; no match takes the default (const volatile default_deny).  The tc program also
 * marks the skb with the rule id (read back in ctx_out) and reads the addresses with
 * bpf_skb_load_bytes, so truncated headers are handled by the helper's bounds.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u32 default_deny = 0;

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

enum { ACT_ALLOW = 0, ACT_DENY = 1 };

struct rule {
	__u32 id;
	__u32 action;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4);
	__type(value, struct rule);
} acl_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, struct rule);
} acl_v6 SEC(".maps");

/* rule id -> hits; slot 0 counts misses */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline struct rule *match(__u16 proto, const __u8 *addr)
{
	if (proto == ETH_P_IP) {
		struct lpm_v4 k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, addr, 4);
		return bpf_map_lookup_elem(&acl_v4, &k);
	} else {
		struct lpm_v6 k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, addr, 16);
		return bpf_map_lookup_elem(&acl_v6, &k);
	}
}

/* 1: deny.  *id: the rule id, 0 for no match. */
static __always_inline int decide(__u16 proto, const __u8 *addr, __u32 *id)
{
	struct rule *r = match(proto, addr);
	__u32 k = r ? r->id & 15 : 0;
	__u64 *c = bpf_map_lookup_elem(&hits, &k);

	if (c)
		*c += 1;
	*id = r ? r->id : 0;
	if (!r)
		return default_deny != 0;
	return r->action == ACT_DENY;
}

SEC("tc")
int acl_tc(struct __sk_buff *skb)
{
	__u8 addr[16];
	__u32 id = 0;
	__u16 proto = bpf_ntohs(skb->protocol);
	int deny;

	if (proto == ETH_P_IP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, saddr), addr, 4))
			return TC_ACT_OK;
	} else if (proto == ETH_P_IPV6) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct ipv6hdr, saddr), addr, 16))
			return TC_ACT_OK;
	} else {
		return TC_ACT_OK;
	}
	deny = decide(proto, addr, &id);
	skb->mark = id;
	return deny ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("xdp")
int acl_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct frame f;
	__u32 id;

	if (parse_frame(data, end, &f) < 0)
		return XDP_ABORTED;
	if (!f.l3_ok)
		return XDP_PASS;
	if (f.proto == ETH_P_IP) {
		struct iphdr *iph = f.l3;

		return decide(ETH_P_IP, (__u8 *)&iph->saddr, &id) ? XDP_DROP : XDP_PASS;
	} else {
		struct ipv6hdr *ip6 = f.l3;

		return decide(ETH_P_IPV6, (__u8 *)&ip6->saddr, &id) ? XDP_DROP : XDP_PASS;
	}
}

char LICENSE[] SEC("license") = "GPL";
