/* Shared pieces of the differential corpus (tests/progs/corpus_*.c): headers, the
 * 802.1Q header the UAPI does not define, and a bounded Ethernet/VLAN/IP parser that
 * every packet program starts with.  Used by tests/test_corpus.py. */
#ifndef CORPUS_COMMON_H
#define CORPUS_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Where the headers of one packet are, found by parse_frame(). */
struct frame {
	void *l3;            /* network header (after up to two VLAN tags) */
	void *l4;            /* transport header, or NULL (truncated, non-first fragment) */
	__u16 proto;         /* host-order EtherType of l3 */
	__u16 vlan_id;       /* outermost VLAN id, 0 when untagged */
	__u8 ip_proto;       /* L4 protocol (IPv6: the first next header) */
	__u8 nvlans;
	__u8 fragment;       /* 1: a fragment (IPv4 MF/offset, IPv6 fragment header) */
	__u8 l3_ok;          /* 1: the network header is complete */
};

/* Parse Ethernet, up to two VLAN tags, IPv4 (options included) or IPv6 (one
 * fragment header recognised).  Returns -1 for a frame shorter than Ethernet. */
static __always_inline int parse_frame(void *data, void *end, struct frame *f)
{
	struct ethhdr *eth = data;
	void *p;
	__u16 proto;

	__builtin_memset(f, 0, sizeof(*f));
	if ((void *)(eth + 1) > end)
		return -1;
	proto = bpf_ntohs(eth->h_proto);
	p = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vh = p;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(vh + 1) > end)
			return 0;
		if (!f->nvlans)
			f->vlan_id = bpf_ntohs(vh->tci) & 0x0fff;
		f->nvlans++;
		proto = bpf_ntohs(vh->proto);
		p = vh + 1;
	}
	f->proto = proto;
	f->l3 = p;
	if (proto == ETH_P_IP) {
		struct iphdr *iph = p;
		__u32 ihl;

		if ((void *)(iph + 1) > end)
			return 0;
		ihl = iph->ihl * 4;
		if (ihl < sizeof(*iph) || p + ihl > end)
			return 0;
		f->l3_ok = 1;
		f->ip_proto = iph->protocol;
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			f->fragment = 1;
		if (iph->frag_off & bpf_htons(IP_OFFSET))
			return 0; /* no transport header in a later fragment */
		f->l4 = p + ihl;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = p;

		if ((void *)(ip6 + 1) > end)
			return 0;
		f->l3_ok = 1;
		f->ip_proto = ip6->nexthdr;
		f->l4 = ip6 + 1;
		if (ip6->nexthdr == IPPROTO_FRAGMENT) {
			__u8 *fh = (void *)(ip6 + 1);

			if ((void *)(fh + 8) > end) {
				f->l4 = 0;
				return 0;
			}
			f->fragment = 1;
			f->ip_proto = fh[0];
			/* offset (13 bits) in bytes 2..3, high bits */
			if ((fh[2] << 5 | fh[3] >> 3) != 0) {
				f->l4 = 0;
				return 0;
			}
			f->l4 = fh + 8;
		}
	}
	return 0;
}

/* The 16-bit one's complement fold of a 32-bit csum_diff() result. */
static __always_inline __u16 csum_fold32(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

#endif
