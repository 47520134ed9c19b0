/* XDP mirror truncator: the packet gets 8 bytes of metadata in front
 * (bpf_xdp_adjust_meta: a magic and the original length, read back through data_meta),
 * is cut to snaplen (const volatile) with bpf_xdp_adjust_tail, or padded to 64 bytes
 * (the new bytes are zero) with a "PAD!" trailer written by bpf_xdp_store_bytes.
 * bpf_xdp_load_bytes reads the last 4 bytes (and 4 past the end, which fails);
 * bpf_xdp_get_buff_len gives the final length.  trim_frags is the same cut for
 * multi-buffer frames (xdp.frags), where the packet may continue in fragments.
 * Used by tests/test_corpus.py. */
#include "corpus_common.h"

const volatile __u32 snaplen = 128;

struct meta {
	__u32 magic;
	__u32 orig_len;
};

__u32 meta_ok;
__s32 meta_rc;
__s32 tail_rc;
__s32 store_rc;
__s32 load_rc;
__s32 past_end_rc;
__u32 last_tail;
__u64 final_len;

SEC("xdp")
int trim(struct xdp_md *ctx)
{
	void *data, *end, *mdata;
	struct meta *m;
	__u32 len = ctx->data_end - ctx->data;
	int delta = 0;

	meta_rc = bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m));
	if (!meta_rc) {
		data = (void *)(long)ctx->data;
		mdata = (void *)(long)ctx->data_meta;
		m = mdata;
		if ((void *)(m + 1) <= data) {
			m->magic = 0x4d455441;
			m->orig_len = len;
		}
	}
	if (len > snaplen)
		delta = (int)snaplen - (int)len;
	else if (len < 64)
		delta = 64 - len;
	tail_rc = bpf_xdp_adjust_tail(ctx, delta);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	len = end - data;
	if (!tail_rc && delta > 0 && len >= 4)
		store_rc = bpf_xdp_store_bytes(ctx, len - 4, "PAD!", 4);
	if (len >= 4)
		load_rc = bpf_xdp_load_bytes(ctx, len - 4, &last_tail, 4);
	past_end_rc = bpf_xdp_load_bytes(ctx, len, &last_tail, 4);
	mdata = (void *)(long)ctx->data_meta;
	m = mdata;
	if ((void *)(m + 1) <= data && m->magic == 0x4d455441 && m->orig_len >= len)
		meta_ok++;
	final_len = bpf_xdp_get_buff_len(ctx);
	return XDP_PASS;
}

SEC("xdp.frags")
int trim_frags(struct xdp_md *ctx)
{
	__u64 len = bpf_xdp_get_buff_len(ctx);
	__u32 word = 0;

	if (len > snaplen)
		tail_rc = bpf_xdp_adjust_tail(ctx, (int)snaplen - (int)len);
	final_len = bpf_xdp_get_buff_len(ctx);
	load_rc = bpf_xdp_load_bytes(ctx, (final_len - 4) & 0xffff, &word, 4);
	last_tail = word;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
