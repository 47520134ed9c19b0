/* tc frame normaliser: runts are padded to 60 bytes and frames over the const
 * volatile mtu (plus the Ethernet header) trimmed to it with bpf_skb_change_tail;
 * frames of the local experimental EtherType 0x88B5 get an outer Ethernet header
 * pushed in front with bpf_skb_change_head (MAC-in-MAC style).  cb[0] the helper's
 * result, cb[1] skb->len afterwards (ctx_out).  Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u32 mtu = 1500;
const volatile __u8 outer_src[6] = { 0x02, 0, 0, 0, 0, 0xaa };
const volatile __u8 outer_dst[6] = { 0x02, 0, 0, 0, 0, 0xbb };

__u32 padded;
__u32 trimmed;
__u32 pushed;

SEC("tc")
int normalise(struct __sk_buff *skb)
{
	__u32 len = skb->len;
	long rc = 0;

	if (len < 60) {
		rc = bpf_skb_change_tail(skb, 60, 0);
		if (!rc)
			padded++;
	} else if (len > mtu + ETH_HLEN) {
		rc = bpf_skb_change_tail(skb, mtu + ETH_HLEN, 0);
		if (!rc)
			trimmed++;
	}
	skb->cb[0] = (__u32)rc;
	skb->cb[1] = skb->len;
	return rc ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int push_outer(struct __sk_buff *skb)
{
	struct ethhdr outer;
	long rc;

	if (skb->protocol != bpf_htons(0x88B5))
		return TC_ACT_OK;
	rc = bpf_skb_change_head(skb, sizeof(outer), 0);
	skb->cb[0] = (__u32)rc;
	if (rc)
		return TC_ACT_SHOT;
	__builtin_memcpy(outer.h_dest, (const void *)outer_dst, 6);
	__builtin_memcpy(outer.h_source, (const void *)outer_src, 6);
	outer.h_proto = bpf_htons(0x88B5);
	rc = bpf_skb_store_bytes(skb, 0, &outer, sizeof(outer), 0);
	skb->cb[1] = skb->len;
	skb->cb[2] = (__u32)rc;
	if (!rc)
		pushed++;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
