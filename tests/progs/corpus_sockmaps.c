/* The socket maps, used the ways each program type can.
 *
 * sock_evict (tc): a TCP/UDP packet evicts the socket registered for its destination
 * port: bpf_map_delete_elem on a SOCKHASH (key: port) and on a SOCKMAP (index: port
 * mod 4); the return codes go to cb[0] and cb[1] and are counted by errno.
 * sock_peek (tc): bpf_map_lookup_elem on the SOCKMAP returns the socket itself
 * (released with bpf_sk_release); its family and type go to cb[0..1].
 * pick_reuseport (sk_reuseport): bpf_sk_select_reuseport from a REUSEPORT_SOCKARRAY by
 * the flow hash.
 * steer_stream (sk_skb/stream_verdict), steer_msg (sk_msg): redirects into the SOCKMAP
 * and SOCKHASH.  The kernel runs none of the last three under BPF_PROG_TEST_RUN.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} sock_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} sock_by_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} reuse_group SEC(".maps");

/* return codes seen: 0 ok, 1 -ENOENT, 2 -EINVAL, 3 other */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} delete_rcs SEC(".maps");

static __always_inline void note_rc(long rc)
{
	__u32 k = rc == 0 ? 0 : rc == -2 ? 1 : rc == -22 ? 2 : 3;
	__u64 *c = bpf_map_lookup_elem(&delete_rcs, &k);

	if (c)
		*c += 1;
}

SEC("tc")
int sock_evict(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct frame f;
	__u32 port, idx;
	long rc;

	if (parse_frame(data, end, &f) < 0 || !f.l4)
		return TC_ACT_OK;
	if (f.ip_proto != IPPROTO_TCP && f.ip_proto != IPPROTO_UDP)
		return TC_ACT_OK;
	if ((void *)((struct udphdr *)f.l4 + 1) > end)
		return TC_ACT_OK;
	port = bpf_ntohs(((struct udphdr *)f.l4)->dest);
	rc = bpf_map_delete_elem(&sock_by_port, &port);
	skb->cb[0] = (__u32)rc;
	note_rc(rc);
	idx = port % 4;
	rc = bpf_map_delete_elem(&sock_map, &idx);
	skb->cb[1] = (__u32)rc;
	note_rc(rc);
	return TC_ACT_OK;
}

SEC("tc")
int sock_peek(struct __sk_buff *skb)
{
	__u32 idx = skb->len % 4;
	struct bpf_sock *sk = bpf_map_lookup_elem(&sock_map, &idx);

	if (!sk) {
		skb->cb[0] = 0xffffffff;
		return TC_ACT_OK;
	}
	skb->cb[0] = sk->family;
	skb->cb[1] = sk->type;
	bpf_sk_release(sk);
	return TC_ACT_OK;
}

SEC("sk_reuseport")
int pick_reuseport(struct sk_reuseport_md *reuse)
{
	__u32 idx = reuse->hash & 1;

	if (bpf_sk_select_reuseport(reuse, &reuse_group, &idx, 0))
		return SK_DROP;
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int steer_stream(struct __sk_buff *skb)
{
	return bpf_sk_redirect_map(skb, &sock_map, skb->len % 4, 0);
}

SEC("sk_msg")
int steer_msg(struct sk_msg_md *msg)
{
	__u32 port = msg->local_port;

	return bpf_msg_redirect_hash(msg, &sock_by_port, &port, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
