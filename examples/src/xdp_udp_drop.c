// SPDX-License-Identifier: Apache-2.0
/*
 * xdp_udp_drop: drop UDP datagrams sent to one port, pass everything else.
 *
 * The classic XDP fast-drop filter (MISSION hook 1): it parses Ethernet, then IPv4
 * (honouring the IHL, skipping non-first fragments) or IPv6 (UDP as the first next
 * header), and returns XDP_DROP for UDP with destination port BLOCKED_PORT; every
 * other frame gets XDP_PASS.  Truncated frames are passed too: a filter must not
 * drop what it cannot parse.
 *
 * Self-contained on purpose (no maps, no global data, no subprograms), so that the
 * raw section bytes in examples/xdp_udp_drop.bin run before the ELF loader exists.
 * Built by scripts/build_examples.sh.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define BLOCKED_PORT 7777

SEC("xdp")
int xdp_udp_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_PASS;
		if (ip->protocol != IPPROTO_UDP || ip->ihl < 5)
			return XDP_PASS;
		/* Only the first fragment carries the UDP header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return XDP_PASS;
		udp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		if (ip6->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		udp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (udp->dest == bpf_htons(BLOCKED_PORT))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
