/* CO-RE in a networking program: a local flavour of struct xdp_md with its fields in
 * a different order (relocated against the kernel's BTF to the real offsets), a
 * field that does not exist, the type's size and an enum value. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct xdp_md___local {
	__u32 ingress_ifindex;
	__u32 data_end;
	__u32 data;
} __attribute__((preserve_access_index));

struct xdp_md___future {
	__u32 no_such_field;
} __attribute__((preserve_access_index));

enum xdp_action___local {
	XDP_TX___local = 77,
};

__u32 ifindex_seen;
__u32 future_exists = 99;
__u32 md_size;
__u32 tx_value;
__u32 pkt_len;

SEC("xdp")
int core_prog(struct xdp_md *ctx)
{
	struct xdp_md___local *l = (void *)ctx;
	void *data = (void *)(long)l->data;
	void *data_end = (void *)(long)l->data_end;

	if (data + 14 > data_end)
		return XDP_ABORTED;
	pkt_len = data_end - data;
	ifindex_seen = l->ingress_ifindex;
	future_exists = bpf_core_field_exists(((struct xdp_md___future *)0)->no_such_field);
	md_size = bpf_core_type_size(struct xdp_md___local);
	tx_value = bpf_core_enum_value(enum xdp_action___local, XDP_TX___local);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
