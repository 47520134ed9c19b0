/* Counters in every hash/array flavour, updated by a tc program: a hash keyed by
 * EtherType (struct values, atomic adds), an array of length buckets, per-CPU array
 * and hash, and two small LRU maps (plain and per-CPU) that must evict.  The program
 * also writes into the packet (the last byte of the source MAC: this EtherType's
 * packet count), so data_out depends on map state.
 * Used by tests/test_collection_both.py (both backends, compared map for map). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct proto_stats {
	__u64 packets;
	__u64 bytes;
};

struct src_seen {
	__u64 seen;
	__u32 last_len;
	__u8 last_ttl;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u16);
	__type(value, struct proto_stats);
} by_ethertype SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} by_len SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pcpu_pkts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, __u8);
	__type(value, __u32);
} pcpu_by_ipproto SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct src_seen);
} recent_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 4);
	__type(key, __u16);
	__type(value, __u64);
} recent_len SEC(".maps");

__u32 evicted_hint; /* packets whose source was not (or no longer) in recent_src */

SEC("tc")
int count_pkts(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct proto_stats *ps;
	__u64 *c, one = 1;
	__u32 len = skb->len, k, b;
	__u16 proto, l16;

	if ((void *)(eth + 1) > end)
		return TC_ACT_SHOT;
	proto = bpf_ntohs(eth->h_proto);

	ps = bpf_map_lookup_elem(&by_ethertype, &proto);
	if (ps) {
		__sync_fetch_and_add(&ps->packets, 1);
		__sync_fetch_and_add(&ps->bytes, len);
		eth->h_source[5] = ps->packets;
	} else {
		struct proto_stats n = { .packets = 1, .bytes = len };

		bpf_map_update_elem(&by_ethertype, &proto, &n, BPF_NOEXIST);
		eth->h_source[5] = 1;
	}

	b = len / 64;
	if (b > 7)
		b = 7;
	c = bpf_map_lookup_elem(&by_len, &b);
	if (c)
		__sync_fetch_and_add(c, 1);

	k = 0;
	c = bpf_map_lookup_elem(&pcpu_pkts, &k);
	if (c)
		*c += 1;
	k = 1;
	c = bpf_map_lookup_elem(&pcpu_pkts, &k);
	if (c)
		*c += len;

	l16 = len;
	c = bpf_map_lookup_elem(&recent_len, &l16);
	if (c)
		*c += 1;
	else
		bpf_map_update_elem(&recent_len, &l16, &one, BPF_ANY);

	if (proto == ETH_P_IP) {
		struct iphdr *ip = (void *)(eth + 1);
		struct src_seen *s;
		__u32 *pc, saddr;
		__u8 p;

		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		p = ip->protocol;
		pc = bpf_map_lookup_elem(&pcpu_by_ipproto, &p);
		if (pc) {
			*pc += 1;
		} else {
			__u32 first = 1;

			bpf_map_update_elem(&pcpu_by_ipproto, &p, &first, BPF_NOEXIST);
		}
		saddr = ip->saddr;
		s = bpf_map_lookup_elem(&recent_src, &saddr);
		if (s) {
			s->seen++;
			s->last_len = len;
			s->last_ttl = ip->ttl;
		} else {
			struct src_seen n = { .seen = 1, .last_len = len, .last_ttl = ip->ttl };

			evicted_hint++;
			bpf_map_update_elem(&recent_src, &saddr, &n, BPF_ANY);
		}
		if (ip->tos == 0x10) /* "forget me" */
			return bpf_map_delete_elem(&recent_src, &saddr) == 0 ? 10 : 11;
		return s ? 2 : 3;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
