/* XDP packet helpers, driven by parameters in the packet.
 *
 * Test frames carry a struct xparams right after the Ethernet header (offset 14);
 * the "op" programs read it first, call one helper with those arguments and report
 * the helper's result and the new geometry in the return value, so one program
 * covers every argument the tests choose (limits, errors, growth and shrinking).
 * The encap/decap programs work on real IPv4 frames (IP-in-IP), the checksum
 * program on arbitrary bytes.
 * Used by tests/test_helpers_xdp.py (simulator against the kernel, byte for byte). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct xparams {
	__s32 a;
	__s32 b;
	__u32 op;
	__u32 n;
};

static __always_inline int get_params(struct xdp_md *ctx, struct xparams *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + ETH_HLEN + sizeof(*p) > end)
		return -1;
	__builtin_memcpy(p, data + ETH_HLEN, sizeof(*p));
	return 0;
}

static __always_inline __u32 linear_len(struct xdp_md *ctx)
{
	return (__u32)(ctx->data_end - ctx->data);
}

static __always_inline __u32 meta_len(struct xdp_md *ctx)
{
	return (__u32)(ctx->data - ctx->data_meta);
}

/* rc in bits 0..7 (negated errno), linear length in 8..19, metadata length 20..27 */
static __always_inline __u32 report(struct xdp_md *ctx, long rc)
{
	return ((__u32)(-rc) & 0xff) | (linear_len(ctx) << 8) | (meta_len(ctx) << 20);
}

SEC("xdp")
int xdp_head(struct xdp_md *ctx)
{
	struct xparams p;
	long rc;

	if (get_params(ctx, &p))
		return 0xfffff;
	rc = bpf_xdp_adjust_head(ctx, p.a);
	if (rc == 0 && p.a < 0) {
		/* mark the new front: the old pointers are gone, reload them */
		void *data = (void *)(long)ctx->data;
		void *end = (void *)(long)ctx->data_end;

		if (data + 1 <= end)
			*(__u8 *)data = 0xc3;
	}
	return report(ctx, rc);
}

SEC("xdp")
int xdp_meta(struct xdp_md *ctx)
{
	struct xparams p;
	long rc;

	if (get_params(ctx, &p))
		return 0xfffff;
	rc = bpf_xdp_adjust_meta(ctx, p.a);
	if (rc == 0) {
		void *meta = (void *)(long)ctx->data_meta;
		void *data = (void *)(long)ctx->data;

		if (meta + 4 <= data)
			*(__u32 *)meta = 0xdeadbeef;
	}
	/* a second adjustment from the parameters, to chain head and meta moves */
	if (rc == 0 && p.b)
		rc = bpf_xdp_adjust_head(ctx, p.b) - 100;
	return report(ctx, rc);
}

static __always_inline __u32 tail_report(struct xdp_md *ctx, long rc)
{
	return ((__u32)(-rc) & 0xff) | ((__u32)bpf_xdp_get_buff_len(ctx) << 8);
}

static __always_inline int do_tail(struct xdp_md *ctx)
{
	struct xparams p;
	long rc;

	if (get_params(ctx, &p))
		return 0xfffff;
	rc = bpf_xdp_adjust_tail(ctx, p.a);
	if (rc == 0 && p.a > 0) {
		/* mark the last byte of the grown packet (maybe in a fragment) */
		__u8 mark = 0x5a;

		bpf_xdp_store_bytes(ctx, bpf_xdp_get_buff_len(ctx) - 1, &mark, 1);
	}
	if (rc == 0 && p.b)
		rc = bpf_xdp_adjust_tail(ctx, p.b) - 100;
	return tail_report(ctx, rc);
}

SEC("xdp")
int xdp_tail(struct xdp_md *ctx)
{
	return do_tail(ctx);
}

SEC("xdp.frags")
int xdp_tail_frags(struct xdp_md *ctx)
{
	return do_tail(ctx);
}

/* load n bytes (a size picked by p.n) at offset p.a; if p.op & 1, store them back
 * inverted at offset p.b.  rc of load in bits 0..7, of store in 8..15, a sum of the
 * loaded bytes in 16..31. */
#define LOAD_STORE(SZ)                                                            \
	do {                                                                      \
		rc1 = bpf_xdp_load_bytes(ctx, (__u32)p.a, buf, SZ);               \
		for (i = 0; i < SZ; i++) {                                        \
			sum += buf[i] * (i + 1);                                  \
			buf[i] ^= 0xff;                                           \
		}                                                                 \
		if (p.op & 1)                                                     \
			rc2 = bpf_xdp_store_bytes(ctx, (__u32)p.b, buf, SZ);      \
	} while (0)

static __always_inline int do_bytes(struct xdp_md *ctx)
{
	struct xparams p;
	__u8 buf[128] = {};
	long rc1 = 0, rc2 = 0;
	__u32 sum = 0;
	int i;

	if (get_params(ctx, &p))
		return 0xfffff;
	switch (p.n) {
	case 1:
		LOAD_STORE(1);
		break;
	case 4:
		LOAD_STORE(4);
		break;
	case 14:
		LOAD_STORE(14);
		break;
	case 64:
		LOAD_STORE(64);
		break;
	default:
		LOAD_STORE(128);
		break;
	}
	return ((__u32)(-rc1) & 0xff) | (((__u32)(-rc2) & 0xff) << 8) | (sum << 16);
}

SEC("xdp")
int xdp_bytes(struct xdp_md *ctx)
{
	return do_bytes(ctx);
}

SEC("xdp.frags")
int xdp_bytes_frags(struct xdp_md *ctx)
{
	return do_bytes(ctx);
}

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	struct xparams p;

	if (get_params(ctx, &p))
		return 0xfffff;
	return bpf_redirect((__u32)p.a, (__u64)(__u32)p.b);
}

/* bpf_csum_diff over the frame's bytes: from = bytes 30.., to = bytes 94..; sizes
 * chosen by p.op, seed p.a.  Packet memory is fine for the helper. */
SEC("xdp")
int xdp_csum_diff(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct xparams p;
	__be32 *from, *to;
	__u32 seed;

	if (get_params(ctx, &p))
		return 0xfffff;
	if (data + 30 + 128 > end)
		return 0xffffe;
	from = data + 30;
	to = data + 94;
	seed = (__u32)p.a;
	switch (p.op) {
	case 0:
		return bpf_csum_diff(0, 0, from, 4, seed);
	case 1:
		return bpf_csum_diff(from, 4, 0, 0, seed);
	case 2:
		return bpf_csum_diff(from, 4, to, 4, seed);
	case 3:
		return bpf_csum_diff(from, 64, to, 64, seed);
	case 4:
		return bpf_csum_diff(from, 20, to, 8, seed);
	case 5:
		return bpf_csum_diff(0, 0, 0, 0, seed);
	case 6:
		return bpf_csum_diff(from, 6, 0, 0, seed);
	case 7:
		return bpf_csum_diff(0, 0, from, 128, seed);
	case 8:
		return bpf_csum_diff(from, 3, to, 5, seed);
	case 9:
		return bpf_csum_diff(0, 0, from, 1, seed);
	default:
		/* 516 bytes (more than the old 512-byte scratch limit) */
		if (data + 600 > end)
			return 0xffffd;
		return bpf_csum_diff(0, 0, data + 40, 516, seed);
	}
}

/* IP-in-IP encapsulation of an IPv4 frame: 20 bytes of headroom, the Ethernet header
 * moved to the front, an outer header whose checksum comes from bpf_csum_diff. */
SEC("xdp")
int xdp_encap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *inner, *outer;
	struct ethhdr copy;
	__u32 csum;

	if (data + sizeof(*eth) + sizeof(*inner) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	inner = data + sizeof(*eth);
	copy = *eth;
	__u16 inner_len = bpf_ntohs(inner->tot_len);

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	outer = data + sizeof(*eth);
	if ((void *)(outer + 1) > end)
		return XDP_ABORTED;
	*eth = copy;
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
	outer->id = bpf_htons(0x4242);
	outer->frag_off = 0;
	outer->ttl = 32;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = bpf_htonl(0xc0000201);
	outer->daddr = bpf_htonl(0xc0000202);
	csum = bpf_csum_diff(0, 0, (__be32 *)outer, sizeof(*outer), 0);
	outer->check = ~((csum & 0xffff) + (csum >> 16));
	return XDP_TX;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *outer;
	struct ethhdr copy;

	if (data + sizeof(*eth) + sizeof(*outer) > end)
		return XDP_PASS;
	outer = data + sizeof(*eth);
	if (eth->h_proto != bpf_htons(ETH_P_IP) || outer->protocol != IPPROTO_IPIP ||
	    outer->ihl != 5)
		return XDP_PASS;
	copy = *eth;
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	*eth = copy;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
