/* Checksum helpers: destination NAT of IPv4 TCP/UDP packets with
 * bpf_l3_csum_replace / bpf_l4_csum_replace (the address and port changes given
 * directly, or as a bpf_csum_diff difference), and a parametrised program that calls
 * either helper with the arguments in __sk_buff->cb (errors, odd offsets, zero
 * fields, every flag).
 * Used by tests/test_helpers_csum.py, which also recomputes every checksum of the
 * rewritten packets in Python. */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_DST_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define L4_OFF (IP_OFF + sizeof(struct iphdr))

/* cb[0]: new destination address (network order; 0 = 192.168.1.1), cb[1]: new
 * destination port (0 = 8080).  Returns the first failing rc, or TC_ACT_OK. */
static __always_inline int nat(struct __sk_buff *skb, int use_diff)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + IP_OFF;
	__be32 new_ip = skb->cb[0] ? skb->cb[0] : bpf_htonl(0xc0a80101);
	__be16 new_port = skb->cb[1] ? (__be16)skb->cb[1] : bpf_htons(8080);
	__be32 old_ip;
	__be16 old_port;
	__u32 l4_csum_off, port_off;
	__u64 l4_flags;
	long rc;

	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return TC_ACT_UNSPEC;
	if (ip->protocol == IPPROTO_TCP) {
		l4_csum_off = L4_OFF + offsetof(struct tcphdr, check);
		port_off = L4_OFF + offsetof(struct tcphdr, dest);
		l4_flags = 0;
	} else if (ip->protocol == IPPROTO_UDP) {
		l4_csum_off = L4_OFF + offsetof(struct udphdr, check);
		port_off = L4_OFF + offsetof(struct udphdr, dest);
		l4_flags = BPF_F_MARK_MANGLED_0;
	} else {
		return TC_ACT_UNSPEC;
	}
	old_ip = ip->daddr;
	if (bpf_skb_load_bytes(skb, port_off, &old_port, 2))
		return 100;

	if (use_diff) {
		__s64 diff = bpf_csum_diff(&old_ip, 4, &new_ip, 4, 0);

		rc = bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, diff, 0);
		if (rc)
			return 101;
		rc = bpf_l4_csum_replace(skb, l4_csum_off, 0, diff, l4_flags | BPF_F_PSEUDO_HDR);
		if (rc)
			return 102;
	} else {
		rc = bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, 4);
		if (rc)
			return 101;
		rc = bpf_l4_csum_replace(skb, l4_csum_off, old_ip, new_ip,
					 l4_flags | BPF_F_PSEUDO_HDR | 4);
		if (rc)
			return 102;
	}
	rc = bpf_skb_store_bytes(skb, IP_DST_OFF, &new_ip, 4, 0);
	if (rc)
		return 103;
	rc = bpf_l4_csum_replace(skb, l4_csum_off, old_port, new_port, l4_flags | 2);
	if (rc)
		return 104;
	rc = bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0);
	if (rc)
		return 105;
	return TC_ACT_OK;
}

SEC("tc")
int tc_nat(struct __sk_buff *skb)
{
	return nat(skb, 0);
}

SEC("tc")
int tc_nat_diff(struct __sk_buff *skb)
{
	return nat(skb, 1);
}

SEC("lwt_xmit")
int lwt_nat(struct __sk_buff *skb)
{
	/* LWT sees the packet from the IP header: the same rewrite 14 bytes earlier */
	__be32 new_ip = bpf_htonl(0xc0a80101), old_ip;
	long rc;

	if (bpf_skb_load_bytes(skb, offsetof(struct iphdr, daddr), &old_ip, 4))
		return BPF_DROP;
	rc = bpf_l3_csum_replace(skb, offsetof(struct iphdr, check), old_ip, new_ip, 4);
	rc |= bpf_skb_store_bytes(skb, offsetof(struct iphdr, daddr), &new_ip, 4, 0);
	return rc ? BPF_DROP : BPF_OK;
}

/* cb[0] offset, cb[1] from, cb[2] to, cb[3] flags, cb[4] 0: l3, 1: l4.  retval rc. */
SEC("tc")
int tc_csum_op(struct __sk_buff *skb)
{
	__u32 off = skb->cb[0];
	__u64 from = skb->cb[1], to = skb->cb[2], flags = skb->cb[3];

	if (skb->cb[4])
		return (int)bpf_l4_csum_replace(skb, off, from, to, flags);
	return (int)bpf_l3_csum_replace(skb, off, from, to, flags);
}

char _license[] SEC("license") = "GPL";
