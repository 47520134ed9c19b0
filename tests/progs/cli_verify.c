/* `netbpf verify` (tests/test_cli_verify.py): one program the verifier accepts and
 * one it rejects because a map lookup's result is used without a NULL check. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH); /* an array lookup with a constant key is never NULL */
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

SEC("xdp")
int good(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&hits, &zero);

	if (n)
		*n += 1;
	return XDP_PASS;
}

SEC("xdp")
int no_null_check(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&hits, &zero);

	*n += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
