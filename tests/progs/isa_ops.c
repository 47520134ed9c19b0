// Instruction-set coverage for the disassembler test (tests/test_isa_disasm.py):
// compiled with -mcpu=v4 so clang uses sign-extending loads and moves, sdiv/smod,
// unconditional bswap, 32-bit atomics, callx and bpf-to-bpf calls.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* The legacy packet loads, as samples/bpf declares them: LLVM intrinsics. */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

__u64 g64;
__u32 g32;

static __attribute__((noinline)) int twice(int x) { return x * 2 + 1; }
static __attribute__((noinline)) int thrice(int x) { return x * 3 - 1; }

SEC("socket")
int isa_ops(struct __sk_buff *skb)
{
	__u32 key = 1;
	__u64 *v = bpf_map_lookup_elem(&counters, &key);
	long acc = 0;

	if (!v)
		return 0;
	/* atomics, 64 and 32 bit, with and without fetch */
	__sync_fetch_and_add(v, 1);
	acc += __sync_fetch_and_or(v, 2);
	acc += __sync_fetch_and_and(v, ~4ull);
	acc += __sync_fetch_and_xor(v, 8);
	acc += __sync_lock_test_and_set(v, 16);
	acc += __sync_val_compare_and_swap(v, 16, 32);
	__sync_fetch_and_add(&g32, 1);
	acc += __sync_fetch_and_or(&g32, 2);
	acc += __sync_val_compare_and_swap(&g32, 3, 4);
	acc += __sync_lock_test_and_set(&g32, 5);
	__sync_fetch_and_xor(&g64, 7);
	/* legacy packet loads */
	acc += load_byte(skb, 12);
	acc += load_half(skb, 12);
	acc += load_word(skb, skb->len & 7);
	/* sign extension, signed division, byte swaps */
	signed char c = (signed char)skb->mark;
	short s = (short)skb->priority;
	int i = (int)skb->hash;
	acc += c + s + (long)i;
	acc += (long)i / (long)(skb->len | 1);
	acc += (long)i % 7;
	acc += (int)skb->len / -3;
	acc += __builtin_bswap16((__u16)acc) + __builtin_bswap32((__u32)acc) + __builtin_bswap64(acc);
	/* calls: helper, bpf-to-bpf, indirect */
	int (*fn)(int) = skb->len & 1 ? twice : thrice;
	acc += fn((int)acc);
	acc += twice((int)acc);
	acc += bpf_ktime_get_ns() >> 3;
	acc ^= *(signed char *)&g32;
	return (int)acc;
}

char _license[] SEC("license") = "GPL";
