/* Helpers without a packet of their own: bpf_snprintf and bpf_strncmp (results
 * written into the packet), the clocks and ids (checked by their rules), and
 * bpf_perf_event_output with the skb/XDP packet sample (BPF_F_CTXLEN_MASK).
 * Used by tests/test_helpers_misc.py. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 4);
} events SEC(".maps");

static const char fmt_ints[] = "d=%d u=%u x=%x X=%X ld=%ld lu=%lu llx=%llx";
static const char fmt_width[] = "[%5d][%-5d][%05d][%+d][% d][%3u][%08x][%-4x|]";
static const char fmt_str[] = "s=%s c=%c pct=%% end";
static const char fmt_ip[] = "%pI4 %pi4 %pI6 %pi6 %pI6c";
static const char name[] = "netbpf";

/* (Formats the kernel refuses never get past its verifier, which checks constant
 * formats at load time: the simulator's refusals are tested without the kernel.)
 * The first byte after the Ethernet header picks a format; the result (length
 * returned, then the formatted text) goes into the packet from offset 16.  The
 * return value is the helper's result. */
SEC("tc")
int tc_snprintf(struct __sk_buff *skb)
{
	__u8 sel = 0;
	__u64 args[12] = {};
	char out[128];
	long n;
	__u8 addr6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	__u8 addr4[4] = {10, 1, 2, 3};

	__builtin_memset(out, '.', sizeof(out));
	bpf_skb_load_bytes(skb, 14, &sel, 1);
	args[0] = -42;
	args[1] = 0xfffffffe;
	args[2] = 0xbeef;
	args[3] = 0xbeef;
	args[4] = -1234567890123LL;
	args[5] = 0xffffffffffffffffULL;
	args[6] = 0x123456789abcdefULL;
	switch (sel) {
	case 0:
		n = bpf_snprintf(out, sizeof(out), fmt_ints, args, 7 * 8);
		break;
	case 1:
		args[0] = 42;
		args[1] = -42;
		args[2] = 7;
		args[3] = 9;
		args[4] = 9;
		args[5] = 1;
		args[6] = 0xabc;
		args[7] = 0xd;
		n = bpf_snprintf(out, sizeof(out), fmt_width, args, 8 * 8);
		break;
	case 2:
		args[0] = (__u64)(long)name;
		args[1] = 'Z';
		n = bpf_snprintf(out, sizeof(out), fmt_str, args, 2 * 8);
		break;
	case 3:
		args[0] = (__u64)(long)addr4;
		args[1] = (__u64)(long)addr4;
		args[2] = (__u64)(long)addr6;
		args[3] = (__u64)(long)addr6;
		args[4] = (__u64)(long)addr6;
		n = bpf_snprintf(out, sizeof(out), fmt_ip, args, 5 * 8);
		break;
	case 4:
		n = bpf_snprintf(out, 8, fmt_ints, args, 7 * 8);
		break;
	default:
		n = bpf_snprintf(out, 0, fmt_ints, args, 7 * 8);
		break;
	}
	bpf_skb_store_bytes(skb, 16, out, sizeof(out), 0);
	return (int)n;
}

static const char word[] = "netbpf";

/* bpf_strncmp of the packet bytes from offset 15 against "netbpf", over a length
 * picked by byte 14.  retval: the result. */
SEC("tc")
int tc_strncmp(struct __sk_buff *skb)
{
	char buf[8] = {};
	__u8 n = 0;

	bpf_skb_load_bytes(skb, 14, &n, 1);
	bpf_skb_load_bytes(skb, 15, buf, 8);
	if (n == 1)
		return bpf_strncmp(buf, 1, word);
	if (n == 3)
		return bpf_strncmp(buf, 3, word);
	if (n == 6)
		return bpf_strncmp(buf, 6, word);
	return bpf_strncmp(buf, 8, word);
}

/* The clocks and ids by their rules: bit 0 jiffies never go back, bit 1 TAI is
 * ahead of CLOCK_MONOTONIC... (see the test).  retval: the flags. */
SEC("xdp")
int xdp_clocks(struct xdp_md *ctx)
{
	__u64 j1 = bpf_jiffies64();
	__u64 m = bpf_ktime_get_ns();
	__u64 t = bpf_ktime_get_tai_ns();
	__u64 j2 = bpf_jiffies64();
	__u64 b = bpf_ktime_get_boot_ns();

	return (j2 >= j1) | ((t != 0) << 1) | ((b >= m) << 2) | ((j1 != 0) << 3) |
	       ((bpf_get_numa_node_id() == 0) << 4) |
	       ((bpf_get_smp_processor_id() < 4096) << 5);
}

/* bpf_perf_event_output(ctx, &events, flags, data, size): flags from the packet
 * (bytes 14..21, little endian); 8 bytes of data.  retval: the result. */
SEC("tc")
int tc_perf(struct __sk_buff *skb)
{
	__u64 flags = 0, data = 0x1122334455667788ULL;

	bpf_skb_load_bytes(skb, 14, &flags, 8);
	return (int)bpf_perf_event_output(skb, &events, flags, &data, sizeof(data));
}

SEC("xdp")
int xdp_perf(struct xdp_md *ctx)
{
	void *pkt = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 flags, data = 0x1122334455667788ULL;

	if (pkt + 22 > end)
		return 0xffff;
	flags = *(__u64 *)(pkt + 14);
	return (int)bpf_perf_event_output(ctx, &events, flags, &data, sizeof(data));
}

char _license[] SEC("license") = "GPL";
