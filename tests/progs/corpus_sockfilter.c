/* Socket filter counting by protocol: the IP protocol (IPv4 or IPv6 next header) is
 * read with the classic LD_ABS loads (llvm.bpf.load.*), packets and bytes go to an
 * array indexed by protocol, and the filter keeps at most snaplen bytes (a const
 * volatile knob) of TCP and UDP, all of ICMP, and nothing else.  The first address
 * byte comes through bpf_skb_load_bytes into a per-CPU histogram.
 * A socket filter sees the packet from its network header (the Ethernet header is
 * already pulled).  Used by tests/test_corpus.py. */
#include "corpus_common.h"

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

const volatile __u32 snaplen = 96;

struct proto_count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct proto_count);
} by_proto SEC(".maps");

/* first byte of the source address -> packets */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} src_first_byte SEC(".maps");

__u32 last_word;

SEC("socket")
int count_proto(struct __sk_buff *skb)
{
	struct proto_count *pc;
	__u32 proto, ver, first = 0;
	__u8 b;
	__u64 *h;

	if (skb->len < 1)
		return 0;
	ver = load_byte(skb, 0) >> 4;
	if (ver == 4 && skb->protocol == bpf_htons(ETH_P_IP)) {
		if (skb->len < 20)
			return 0;
		proto = load_byte(skb, 9);
		last_word = load_word(skb, 12); /* source address, host order */
		if (bpf_skb_load_bytes(skb, 12, &b, 1) == 0)
			first = b;
	} else if (ver == 6 && skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (skb->len < 40)
			return 0;
		proto = load_byte(skb, 6);
		last_word = load_half(skb, 4); /* payload length */
		if (bpf_skb_load_bytes(skb, 8, &b, 1) == 0)
			first = b;
	} else {
		return 0;
	}
	pc = bpf_map_lookup_elem(&by_proto, &proto);
	if (pc) {
		__sync_fetch_and_add(&pc->packets, 1);
		__sync_fetch_and_add(&pc->bytes, skb->len);
	}
	h = bpf_map_lookup_elem(&src_first_byte, &first);
	if (h)
		*h += 1;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
		return skb->len < snaplen ? skb->len : snaplen;
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		return skb->len;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
