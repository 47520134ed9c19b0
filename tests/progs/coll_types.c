/* One initialised global of every BTF shape the typed-value codec handles; the test
 * decodes clang's bytes through clang's BTF and compares with the C initialisers.
 * Never loaded: the program only keeps the variables referenced. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum color { RED = 1, GREEN = 2, BLUE = 40 };
enum temp { COLD = -5, WARM = 5 };
enum wide { WIDE_BIG = 0x100000000ULL, WIDE_SMALL = 1 };

struct bits {
	unsigned int a : 3;
	int b : 5;
	unsigned int c : 20;
	enum color col : 8;
	_Bool flag : 1;
	unsigned int : 3; /* unnamed padding */
	int neg : 4;
};

union word {
	__u32 all;
	__u8 bytes[4];
	struct {
		__u16 lo;
		__u16 hi;
	};
};

struct point {
	__u16 x;
	__s16 y;
};

typedef struct point point_t;

struct every {
	__u8 u8;
	__s8 s8;
	__u16 u16;
	__s16 s16;
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	_Bool yes;
	char name[8];
	unsigned char mac[6];
	int arr[3];
	point_t pts[2];
	int grid[2][3];
	enum color color;
	enum temp temp;
	enum wide wide;
	struct bits bits;
	union word word;
	void *ptr;
	float f;
	double d;
	unsigned __int128 u128;
	struct {
		int anon_a;
		short anon_b;
	};
	const volatile int cv;
};

struct every every = {
	.u8 = 250,
	.s8 = -100,
	.u16 = 65000,
	.s16 = -30000,
	.u32 = 4000000000u,
	.s32 = -2000000000,
	.u64 = 18000000000000000000ull,
	.s64 = -9000000000000000000ll,
	.yes = 1,
	.name = "abc",
	.mac = { 0x02, 0x00, 0x5e, 0x10, 0x20, 0xff },
	.arr = { 1, -2, 3 },
	.pts = { { 1, -1 }, { 65535, -32768 } },
	.grid = { { 1, 2, 3 }, { 4, 5, 6 } },
	.color = BLUE,
	.temp = COLD,
	.wide = WIDE_BIG,
	.bits = { .a = 5, .b = -7, .c = 1000000, .col = GREEN, .flag = 1, .neg = -8 },
	.word = { .all = 0x11223344 },
	.ptr = 0,
	.f = 1.5f,
	.d = -2.25,
	.u128 = ((unsigned __int128)1 << 100) + 7,
	.anon_a = -1,
	.anon_b = 300,
	.cv = 42,
};

enum color odd_color = (enum color)7; /* not an enumerator */

SEC("xdp")
int keep(struct xdp_md *ctx)
{
	return every.u8 + odd_color;
}

char LICENSE[] SEC("license") = "GPL";
