// SPDX-License-Identifier: Apache-2.0
/*
 * tc_mark: a direct-action tc classifier that marks and drops (MISSION hook 3).
 *
 *  - IPv4 TCP to port 22 (interactive SSH): set skb->mark = 0x22 and skb->priority = 6,
 *    rewrite the DSCP field of the IP header to EF (46), fixing the IPv4 header
 *    checksum incrementally (RFC 1624), and return TC_ACT_OK;
 *  - IPv4 UDP to port 7777: TC_ACT_SHOT (drop);
 *  - everything else: TC_ACT_OK, untouched.
 *
 * So one test run shows all three outputs: retval, data_out (the rewritten TOS byte
 * and checksum) and ctx_out (mark and priority in struct __sk_buff).
 * Self-contained (no maps, no global data) so the raw section runs without the ELF
 * loader.  Built by scripts/build_examples.sh.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define SSH_PORT 22
#define BLOCKED_PORT 7777
#define SSH_MARK 0x22
#define SSH_PRIORITY 6
#define DSCP_EF 46

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all in one's complement 16-bit words. */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32)new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 *l4_ports;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	if (ip->ihl < 5 || (ip->frag_off & bpf_htons(0x1fff)))
		return TC_ACT_OK;
	/* TCP and UDP both start with source port, destination port. */
	l4_ports = (void *)ip + ip->ihl * 4;
	if ((void *)(l4_ports + 2) > data_end)
		return TC_ACT_OK;

	if (ip->protocol == IPPROTO_UDP && l4_ports[1] == bpf_htons(BLOCKED_PORT))
		return TC_ACT_SHOT;

	if (ip->protocol == IPPROTO_TCP && l4_ports[1] == bpf_htons(SSH_PORT)) {
		/* The first 16-bit word of the header is version/IHL and TOS. */
		__u16 *word0 = (__u16 *)ip;
		__u16 old = *word0;
		__u8 tos = (ip->tos & 0x03) | (DSCP_EF << 2);

		ip->tos = tos;
		ip->check = csum_replace16(ip->check, old, *word0);
		skb->mark = SSH_MARK;
		skb->priority = SSH_PRIORITY;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
