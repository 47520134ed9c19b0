// SPDX-License-Identifier: Apache-2.0
/* Every BTF kind clang emits, for the parser/encoder tests (test_btf*.py):
 * INT (signed, unsigned, char, bool, 128-bit), PTR, ARRAY (multi-dimensional,
 * flexible), STRUCT/UNION (bitfields -> kind_flag, anonymous and nested members),
 * ENUM (signed and unsigned, packed), ENUM64 (signed and unsigned), FWD (struct and
 * union), TYPEDEF chains, VOLATILE, CONST, RESTRICT, FUNC (static and global),
 * FUNC_PROTO (variadic, void, function pointers), VAR (global and static) in
 * DATASECs .data/.bss/.rodata/.data.custom/.maps/license, FLOAT, DECL_TAG
 * (on a struct, a member, a function, a parameter, a variable), TYPE_TAG.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))

struct bits {
	unsigned int a : 3;
	int b : 5;
	unsigned long long c : 40;
	_Bool flag : 1;
	char d[16];
	unsigned long long tail;
} __tag("struct_tag");

union num {
	int i;
	float f;
	double d;
	unsigned char raw[8];
};

enum small { S_NEG = -1, S_POS = 2 };
enum uns { U_ONE = 1, U_MAX = 0xffffffff };
enum __attribute__((packed)) tiny { T_A, T_B = 200 };
enum big { B_HIGH = 0x100000000ULL, B_NEG = -5LL };
enum bigu { BU_MAX = 0xffffffffffffffffULL };

typedef unsigned int u32_t;
typedef u32_t u32_alias;
typedef const volatile u32_alias cv_u32;
typedef int (*callback_t)(void *ctx, unsigned long flags);

struct fwd_s;
union fwd_u;

struct holder {
	struct fwd_s *fs;
	union fwd_u *fu;
	int __ttag("user") *tagged;
	int *__restrict rp;
	void (*variadic)(int, ...);
	callback_t cb;
	char (*(*fnret)(int))[8];
	cv_u32 cv;
	double dbl;
	long double ldbl;
	unsigned __int128 wide;
	int matrix[2][3];
	struct {
		int x;
		union {
			int y;
			short z;
		};
	};
	union num n;
	enum tiny t __tag("member_tag");
	int flex[];
};

int g_data = 1;
int g_bss;
const volatile int g_rodata = 5;
static volatile int s_data = 3;
int g_custom __attribute__((section(".data.custom"))) = 7;
int g_tagged __tag("var_tag") = 9;
struct holder g_holder;
struct bits g_bits;
enum small g_es;
enum uns g_eu;
enum big g_eb;
enum bigu g_ebu;
union num g_num;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bits);
} kinds_map SEC(".maps");

static __attribute__((noinline)) int helper(int x __tag("param_tag"), struct bits *b) __tag("func_tag")
{
	return x + b->a + s_data;
}

__attribute__((noinline)) int global_fn(struct holder *h)
{
	return h ? h->x : 0;
}

SEC("xdp")
int kinds_prog(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct bits *b = bpf_map_lookup_elem(&kinds_map, &k);

	g_bss++;
	s_data++;
	if (!b)
		return XDP_PASS;
	return helper(g_data + g_rodata + g_custom + g_tagged, b) + global_fn(0) + (int)g_holder.cv;
}

char LICENSE[] SEC("license") = "GPL";
