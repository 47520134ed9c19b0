/* Global data in every section flavour and const volatile knobs: a struct, an array
 * and a flag in .rodata (set before load), a string in .rodata, counters in a custom
 * .data.stats section, .bss.  The tc program copies the knobs into .bss, buckets the
 * packet by the thresholds and, when enabled, rewrites the destination MAC from the
 * configuration.  Used by tests/test_collection_both.py. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct cfg {
	__u32 mode;
	__u8 mac[6];
	__u16 port;
};

const volatile struct cfg cfg = { .mode = 1, .mac = { 2, 0, 0, 0, 0, 0x42 }, .port = 80 };
const volatile __u32 thresholds[4] = { 64, 128, 256, 1024 };
const volatile __u8 enable_rewrite = 0;
const char tag[8] = "netbpf!";

__u64 pkt_count SEC(".data.stats") = 1000;
__u64 byte_hist[5] SEC(".data.stats");

__u32 small_count;
struct cfg seen_cfg;
char seen_tag[8];

SEC("tc")
int data_prog(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 len = skb->len;
	int i;

	pkt_count++;
	for (i = 0; i < 4; i++) {
		if (len <= thresholds[i]) {
			byte_hist[i] += len;
			break;
		}
	}
	if (i == 4)
		byte_hist[4] += len;
	if (len < thresholds[0])
		small_count++;
	seen_cfg.mode = cfg.mode;
	seen_cfg.port = cfg.port;
	for (i = 0; i < 6; i++)
		seen_cfg.mac[i] = cfg.mac[i];
	__builtin_memcpy(seen_tag, tag, sizeof(seen_tag));
	if (enable_rewrite && (void *)(eth + 1) <= end) {
		for (i = 0; i < 6; i++)
			eth->h_dest[i] = cfg.mac[i];
	}
	return cfg.mode;
}

char LICENSE[] SEC("license") = "GPL";
