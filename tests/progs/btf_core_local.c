// SPDX-License-Identifier: Apache-2.0
/* CO-RE relocations against a differently laid out target (btf_core_target.c).
 *
 * Local ("compiled against") types carry ___v1 flavors; the target object defines
 * the same names without flavor and with other layouts.  Every relocation kind
 * appears at least once; the comments say what the target makes of it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct inner___v1 {
	int x;
	int y;
} __attribute__((preserve_access_index));

struct foo___v1 {
	int a;                    /* target: moved to offset 8 */
	struct inner___v1 in;     /* target: inside an anonymous struct */
	unsigned int bf1 : 3;     /* target: bitfields moved/resized */
	unsigned int bf2 : 7;
	int bf3 : 5;              /* signed bitfield */
	int arr[4];               /* target: arr[8] at another offset */
	char removed;             /* target: absent */
	union {
		int u1;
		long u2;              /* target: same anonymous union, other offset */
	};
	unsigned short narrowed;  /* target: unsigned int (load widened) */
	short sgn;                /* target: int (signed, size change: poisoned load) */
	struct inner___v1 *ptr;   /* target: pointer, same size */
	int flex[];               /* flexible array */
} __attribute__((preserve_access_index));

typedef struct foo___v1 foo_t;

enum color___v1 { RED = 1, GREEN = 2, BLUE_ONLY_LOCAL = 3 };
enum big___v1 { HUGE = 0x100000000ULL, NEG = -2LL };

struct missing_type { int z; } __attribute__((preserve_access_index));
struct matches___a { int a; } __attribute__((preserve_access_index));
struct nomatch___a { long a; } __attribute__((preserve_access_index));

__u64 out[48];

SEC("xdp")
int core_prog(struct xdp_md *ctx)
{
	struct foo___v1 *f = (void *)(long)ctx->data;
	struct missing_type *m = (void *)(long)ctx->data;
	int i = 0;

	/* LDX offsets (FIELD_BYTE_OFFSET on loads) */
	out[i++] = f->a;
	out[i++] = f->in.y;
	out[i++] = f->arr[2];
	out[i++] = f->u2;
	out[i++] = f->narrowed;
	out[i++] = f->sgn;
	out[i++] = (long)f->ptr;
	out[i++] = f->flex[1];
	/* explicit field info */
	out[i++] = bpf_core_field_exists(f->removed);
	out[i++] = bpf_core_field_exists(f->a);
	out[i++] = bpf_core_field_size(f->arr);
	out[i++] = bpf_core_field_size(f->in);
	out[i++] = bpf_core_field_offset(f->in.x);
	out[i++] = bpf_core_field_offset(f->arr[3]);
	out[i++] = __builtin_preserve_field_info(f->sgn, BPF_FIELD_SIGNED);
	out[i++] = __builtin_preserve_field_info(f->narrowed, BPF_FIELD_SIGNED);
	/* bitfields: byte offset/size, shifts, signedness */
	out[i++] = BPF_CORE_READ_BITFIELD(f, bf1);
	out[i++] = BPF_CORE_READ_BITFIELD(f, bf2);
	out[i++] = BPF_CORE_READ_BITFIELD(f, bf3);
	/* missing field: poisoned, guarded by field_exists */
	if (bpf_core_field_exists(f->removed))
		out[i++] = f->removed;
	/* missing type: its field read is poisoned */
	if (bpf_core_type_exists(struct missing_type))
		out[i++] = m->z;
	/* type based */
	out[i++] = bpf_core_type_exists(struct foo___v1);
	out[i++] = bpf_core_type_exists(struct missing_type);
	out[i++] = bpf_core_type_size(struct foo___v1);
	out[i++] = bpf_core_type_size(foo_t);
	out[i++] = bpf_core_type_id_local(struct foo___v1);
	out[i++] = bpf_core_type_id_kernel(struct foo___v1);
	out[i++] = bpf_core_type_matches(struct matches___a);
	out[i++] = bpf_core_type_matches(struct nomatch___a);
	/* enum values */
	out[i++] = bpf_core_enum_value_exists(enum color___v1, RED);
	out[i++] = bpf_core_enum_value_exists(enum color___v1, BLUE_ONLY_LOCAL);
	out[i++] = bpf_core_enum_value(enum color___v1, GREEN);
	out[i++] = bpf_core_enum_value(enum big___v1, HUGE);
	out[i++] = bpf_core_enum_value(enum big___v1, NEG);
	if (bpf_core_enum_value_exists(enum color___v1, BLUE_ONLY_LOCAL))
		out[i++] = bpf_core_enum_value(enum color___v1, BLUE_ONLY_LOCAL);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
