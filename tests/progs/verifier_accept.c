/* Programs the verifier must accept: the patterns clang emits for common networking
 * code (header parsing with variable offsets, bounded loops, spilled pointers,
 * static and global functions), callbacks (bpf_loop, bpf_for_each_map_elem), spin
 * locks on BTF-described map values, socket lookups released on every path,
 * ring buffer records, tail calls, read-only configuration.
 * Used by tests/test_verifier_progs.py (netbpf and the kernel must both accept). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counter {
	struct bpf_spin_lock lock;
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

const volatile __u32 max_ports = 4;
__u64 seen_tcp;

struct event {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

/* eth + ip (variable ihl) + tcp ports, with every bound the verifier needs */
SEC("xdp")
int parse_tcp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (ip->ihl < 5 || ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return XDP_PASS;
	if (bpf_ntohs(tcp->dest) < max_ports)
		return XDP_DROP;
	seen_tcp++;
	return XDP_PASS;
}

/* a bounded loop over packet bytes with a check per iteration */
SEC("xdp")
int sum_bytes(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *end = (void *)(long)ctx->data_end;
	__u32 sum = 0;

	for (int i = 0; i < 32; i++) {
		if (data + i + 1 > end)
			break;
		sum += data[i];
	}
	return sum & 1 ? XDP_DROP : XDP_PASS;
}

/* spin lock around a counter update in a BTF-described value */
SEC("tc")
int locked_count(struct __sk_buff *skb)
{
	__u32 key = skb->ifindex & 63;
	struct counter *c = bpf_map_lookup_elem(&counters, &key);

	if (!c) {
		struct counter zero = {};

		bpf_map_update_elem(&counters, &key, &zero, BPF_NOEXIST);
		return TC_ACT_OK;
	}
	bpf_spin_lock(&c->lock);
	c->packets++;
	c->bytes += skb->len;
	bpf_spin_unlock(&c->lock);
	return TC_ACT_OK;
}

struct loop_ctx {
	__u64 acc;
	__u32 n;
};

static long add_slot(__u32 index, void *data)
{
	struct loop_ctx *lc = data;
	__u32 key = index & 7;
	__u64 *v = bpf_map_lookup_elem(&slots, &key);

	if (v)
		lc->acc += *v;
	lc->n++;
	return 0;
}

SEC("tc")
int loop_sum(struct __sk_buff *skb)
{
	struct loop_ctx lc = {};

	bpf_loop(16, add_slot, &lc, 0);
	return lc.acc > 100 ? TC_ACT_SHOT : TC_ACT_OK;
}

static long visit(struct bpf_map *map, __u32 *key, __u64 *value, struct loop_ctx *lc)
{
	lc->acc += *value;
	return lc->acc > 1000;
}

SEC("tc")
int each_sum(struct __sk_buff *skb)
{
	struct loop_ctx lc = {};

	bpf_for_each_map_elem(&slots, visit, &lc, 0);
	return lc.acc ? TC_ACT_OK : TC_ACT_SHOT;
}

static __noinline __u32 mix(__u32 a, __u32 b)
{
	return (a * 31) ^ b;
}

SEC("tc")
int calls(struct __sk_buff *skb)
{
	__u32 h = mix(skb->len, skb->protocol);

	h = mix(h, skb->ifindex);
	return h & 1 ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("tc")
int lookup_sock(struct __sk_buff *skb)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;

	tuple.ipv4.daddr = bpf_htonl(0x7f000001);
	tuple.ipv4.dport = bpf_htons(80);
	sk = bpf_sk_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return TC_ACT_OK;
	if (sk->state == 10)
		skb->mark = 1;
	bpf_sk_release(sk);
	return TC_ACT_OK;
}

SEC("xdp")
int emit(struct xdp_md *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return XDP_PASS;
	e->saddr = ctx->ingress_ifindex;
	e->daddr = ctx->rx_queue_index;
	e->sport = 1;
	e->dport = 2;
	if (ctx->rx_queue_index & 1)
		bpf_ringbuf_discard(e, 0);
	else
		bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

SEC("tc")
int jump(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jumps, skb->mark & 3);
	return TC_ACT_OK;
}

SEC("cgroup_skb/ingress")
int allow_small(struct __sk_buff *skb)
{
	return skb->len < 1500;
}

char LICENSE[] SEC("license") = "GPL";
