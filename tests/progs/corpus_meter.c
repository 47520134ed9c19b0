/* tc rate meter: bytes and packets per (IPv4 source, protocol) in a per-CPU hash; a
 * flow past its byte budget (const volatile) is dropped and counted, and marked with
 * priority 7 (ctx_out).  Headers are pulled into the linear area first
 * (bpf_skb_pull_data: its result in cb[0]); CPU 0's copy of the meter is read back
 * with bpf_map_lookup_percpu_elem into cb[1].  The meter's last-seen time
 * (bpf_ktime_get_ns) differs between backends by nature.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u64 byte_budget = 400;

struct meter_key {
	__be32 saddr;
	__u8 proto;
	__u8 pad[3];
};

struct meter {
	__u64 packets;
	__u64 bytes;
	__u64 dropped;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, struct meter_key);
	__type(value, struct meter);
} meters SEC(".maps");

SEC("tc")
int rate_meter(struct __sk_buff *skb)
{
	struct meter_key key = {};
	struct meter *m, *cpu0;
	void *data, *end;
	struct iphdr *iph;
	long rc;

	rc = bpf_skb_pull_data(skb, ETH_HLEN + sizeof(struct iphdr));
	skb->cb[0] = (__u32)rc;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	iph = data + ETH_HLEN;
	if (skb->protocol == bpf_htons(ETH_P_IP) && (void *)(iph + 1) <= end) {
		key.saddr = iph->saddr;
		key.proto = iph->protocol;
	}
	m = bpf_map_lookup_elem(&meters, &key);
	if (!m) {
		struct meter init = {};

		bpf_map_update_elem(&meters, &key, &init, BPF_NOEXIST);
		m = bpf_map_lookup_elem(&meters, &key);
		if (!m)
			return TC_ACT_SHOT;
	}
	m->packets++;
	m->bytes += skb->len;
	m->last_ns = bpf_ktime_get_ns();
	cpu0 = bpf_map_lookup_percpu_elem(&meters, &key, 0);
	skb->cb[1] = cpu0 ? (__u32)cpu0->packets : 0xffffffff;
	if (m->bytes > byte_budget) {
		m->dropped++;
		skb->priority = 7;
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
