/* Global data and subprograms, with trace_printk and the CPU id.
 *
 * .rodata: const volatile knobs (set before load) and a static const verdict table;
 * .rodata.limits: a const volatile array in its own section; .data: an initialised
 * counter; .data.cfg: a struct in its own section; .bss: a histogram and the results.
 * Calls: a static __noinline subprogram (mix), global functions verified on their own
 * (len_class with a scalar, skb_class with the context).
 * globals_xdp: counter += len * mult; histogram by len_class; the verdict from the
 * table; bpf_trace_printk's return (the formatted length) and the CPU go to .bss.
 * globals_tc: skb_class (a global function on __sk_buff) picks the tc verdict and
 * the mark (ctx_out).  Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u32 mult = 1;
const volatile char tag[8] = "corpus";
const volatile __u32 limits[2] SEC(".rodata.limits") = { 100, 1000 };
static const __u8 verdict_of[8] = { XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS,
				    XDP_TX, XDP_PASS, XDP_DROP, XDP_PASS };

__u64 counter = 5;

struct cfg {
	__u32 seen;
	__u16 last_len;
	__u8 last_class;
	__u8 flags;
	__u64 mixed;
};

struct cfg cfg SEC(".data.cfg") = { .flags = 0xa5 };

__u32 hist[4];
__u32 last_cpu = 77;
__s64 printk_rc;
__u32 tc_marks;

static __noinline __u32 mix(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352d;
	x ^= x >> 15;
	return x;
}

__noinline int len_class(__u32 len)
{
	if (len < limits[0])
		return 0;
	if (len < limits[1])
		return 1;
	if (len < 2 * limits[1])
		return 2;
	return 3;
}

__noinline int skb_class(struct __sk_buff *skb)
{
	if (!skb)
		return 0;
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return 6;
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return skb->len > limits[0] ? 4 : 5;
	return 1;
}

SEC("xdp")
int globals_xdp(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	int cls = len_class(len);

	counter += (__u64)len * mult;
	asm volatile("" : "+r"(cls)); /* keep the mask: the verifier cannot see len_class */
	hist[cls & 3]++;
	cfg.seen++;
	cfg.last_len = len;
	cfg.last_class = cls;
	cfg.mixed ^= mix(len + tag[0]);
	last_cpu = bpf_get_smp_processor_id();
	printk_rc = bpf_printk("corpus len %u class %d", len, cls);
	return verdict_of[len & 7];
}

SEC("tc")
int globals_tc(struct __sk_buff *skb)
{
	int cls = skb_class(skb);

	skb->mark = cls * 1000 + mult;
	tc_marks++;
	return cls == 1 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
