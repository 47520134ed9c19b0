// SPDX-License-Identifier: Apache-2.0
/* The "kernel" that btf_core_local.c is relocated against: same type names without
 * flavors, other layouts.  Only its BTF is used. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	long pad;
	int y;
	int x;
};

struct foo {
	long pad0;
	int a;
	struct {
		short pad1;
		struct inner in;
	};
	unsigned int pad2 : 2;
	unsigned int bf1 : 4;
	unsigned long long bf2 : 40;
	int bf3 : 9;
	char pad3[3];
	int arr[8];
	union {
		int u1;
		long u2;
	};
	unsigned int narrowed;
	int sgn;
	struct inner *ptr;
	int flex[];
};

enum color { GREEN = 20, RED = 10 };
enum big { NEG = -7LL, HUGE = 0x200000000ULL };

struct matches { long b; int a; };
struct nomatch { int a; };

struct foo f;
enum color c;
enum big b;
struct matches mt;
struct nomatch nm;

SEC("xdp")
int target_prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
