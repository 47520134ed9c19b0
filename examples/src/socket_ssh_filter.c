// SPDX-License-Identifier: Apache-2.0
/*
 * socket_ssh_filter: the eBPF twin of `tcpdump 'ip and tcp dst port 22'`
 * (MISSION hook 4, socket filters).
 *
 * Written the way classic BPF filters work: with the legacy packet loads LD_ABS and
 * LD_IND (clang's llvm.bpf.load.* intrinsics), which read big-endian values from the
 * skb and end the program with 0 when the packet is too short.  Offsets are relative
 * to the network header (SKF_NET_OFF), so the filter reads the same bytes whether the
 * socket sees the link-layer header or not.  Returns the number of bytes to keep:
 * the whole packet (skb->len) for IPv4 TCP to port 22, 0 (drop) for everything else.
 *
 * Self-contained (no maps, no global data) so the raw section runs without the ELF
 * loader.  Built by scripts/build_examples.sh.
 */
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define SSH_PORT 22

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int socket_ssh_filter(struct __sk_buff *skb)
{
	__u32 ihl;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	if (load_byte(skb, SKF_NET_OFF + 9) != IPPROTO_TCP)
		return 0;
	/* Non-first fragments carry no TCP header. */
	if (load_half(skb, SKF_NET_OFF + 6) & 0x1fff)
		return 0;
	ihl = (load_byte(skb, SKF_NET_OFF + 0) & 0x0f) * 4;
	if (load_half(skb, SKF_NET_OFF + ihl + 2) != SSH_PORT)
		return 0;
	return skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
