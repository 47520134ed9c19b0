#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64);} counts SEC(".maps");
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32);} inner1 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, __u32); __array(values, struct inner);} outer SEC(".maps") = { .values = { [1] = &inner1 } };
int xdp_b(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u32); __array(values, int (void *));} jmp SEC(".maps") = { .values = { [0] = (void*)&xdp_b } };
volatile const __u32 cfg = 7;
__u64 total = 3;
__u32 zero;
char fmt[] = "hi %d";
static __attribute__((noinline)) int helper(int x) { return x * 3 + cfg; }
__attribute__((noinline)) int gfunc(int x) { return x + total; }
static long cb(__u32 i, void *c) { zero += i; return 0; }
SEC("xdp") int xdp_a(struct xdp_md *ctx) {
  __u32 k = 1; __u64 *v = bpf_map_lookup_elem(&counts, &k);
  if (v) *v += 1;
  bpf_loop(4, cb, 0, 0);
  bpf_tail_call(ctx, &jmp, 0);
  bpf_printk("x %d", k);
  return helper(ctx->ingress_ifindex) + gfunc(2);
}
SEC("xdp") int xdp_b(struct xdp_md *ctx) { total++; return XDP_PASS; }
SEC("tc") int tc_a(struct __sk_buff *skb) { return helper(skb->len); }
char LICENSE[] SEC("license") = "GPL";
