/* skb helpers, driven by parameters in __sk_buff->cb (from the test's ctx_in).
 *
 * Each program reads its arguments from cb[0..4], calls the helper(s), and leaves
 * the results in cb[] (written back to ctx_out) and in the return value, so one
 * program covers every argument the tests choose, and the kernel's answers -- errno
 * values, packet bytes, header offsets seen through bpf_skb_load_bytes_relative --
 * can be compared byte for byte with the simulator's.
 * Used by tests/test_helpers_skb.py. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Linux 6.3 flags the installed UAPI headers may not have */
#define ADJ_DECAP_L3_IPV4 (1ULL << 7)
#define ADJ_DECAP_L3_IPV6 (1ULL << 8)

/* a size the verifier can bound: cb value (size - 1) & 63, plus 1 -> 1..64 */
#define SIZE(v) ((((__u32)(v)) & 63) + 1)

static __always_inline __u32 fold_buf(const __u8 *buf)
{
	__u32 s = 0;

	for (int i = 0; i < 64; i++)
		s = s * 31 + buf[i];
	return s;
}

/* cb[0] offset, cb[1] size - 1 (0..63), cb[2] mode: 0 skb_load_bytes, 1/2
 * load_bytes_relative from MAC/NET, 3 load_bytes_relative with header cb[3].
 * Out: cb[0] rc, cb[1..3] the first 12 bytes, cb[4] a hash of all 64. */
static __always_inline int do_load(struct __sk_buff *skb)
{
	__u8 buf[64];
	__u32 off = skb->cb[0], n = SIZE(skb->cb[1]), mode = skb->cb[2], hdr = skb->cb[3];
	long rc;

	__builtin_memset(buf, 0x77, sizeof(buf));
	if (mode == 0) {
		rc = bpf_skb_load_bytes(skb, off, buf, n);
	} else {
		if (mode == 1)
			hdr = BPF_HDR_START_MAC;
		else if (mode == 2)
			hdr = BPF_HDR_START_NET;
		rc = bpf_skb_load_bytes_relative(skb, off, buf, n, hdr);
	}
	skb->cb[0] = (__u32)rc;
	__builtin_memcpy((void *)&skb->cb[1], buf, 4);
	__builtin_memcpy((void *)&skb->cb[2], buf + 4, 4);
	__builtin_memcpy((void *)&skb->cb[3], buf + 8, 4);
	skb->cb[4] = fold_buf(buf);
	return 0;
}

SEC("tc")
int tc_load(struct __sk_buff *skb)
{
	return do_load(skb);
}

SEC("socket")
int sock_load(struct __sk_buff *skb)
{
	return do_load(skb);
}

SEC("cgroup_skb/ingress")
int cg_load(struct __sk_buff *skb)
{
	do_load(skb);
	return 1;
}

SEC("lwt_in")
int lwt_load(struct __sk_buff *skb)
{
	__u8 buf[16];
	long rc = bpf_skb_load_bytes(skb, skb->cb[0], buf, 16);

	skb->cb[0] = (__u32)rc;
	__builtin_memcpy((void *)&skb->cb[1], buf, 4);
	return 0;
}

/* cb[0] offset, cb[1] size - 1, cb[2] flags; the bytes written are 0xa0, 0xa1, ...
 * Out: retval rc, cb[0] skb->hash before (after bpf_set_hash(cb[3])), cb[1] after. */
static __always_inline int do_store(struct __sk_buff *skb)
{
	__u8 buf[64];
	__u32 off = skb->cb[0], n = SIZE(skb->cb[1]);
	__u64 flags = skb->cb[2];
	long rc;

	for (int i = 0; i < 64; i++)
		buf[i] = 0xa0 + i;
	if (skb->cb[3])
		bpf_set_hash(skb, skb->cb[3]);
	skb->cb[0] = skb->hash;
	rc = bpf_skb_store_bytes(skb, off, buf, n, flags);
	skb->cb[1] = skb->hash;
	return (int)rc;
}

SEC("tc")
int tc_store(struct __sk_buff *skb)
{
	return do_store(skb);
}

SEC("lwt_xmit")
int lwt_store(struct __sk_buff *skb)
{
	long rc = bpf_skb_store_bytes(skb, skb->cb[0], "LWT!", 4, 0);

	skb->cb[0] = (__u32)rc;
	return 0;
}

/* cb[0] new length, cb[1] flags.  Out: retval rc, cb[0] skb->len, cb[1] the rc of
 * writing 0xee into the last byte. */
SEC("tc")
int tc_change_tail(struct __sk_buff *skb)
{
	long rc = bpf_skb_change_tail(skb, skb->cb[0], skb->cb[1]);
	__u8 mark = 0xee;

	skb->cb[0] = skb->len;
	skb->cb[1] = (__u32)bpf_skb_store_bytes(skb, skb->len - 1, &mark, 1, 0);
	return (int)rc;
}

/* cb[0] head room, cb[1] flags.  Out: retval rc, cb[0] skb->len, cb[1] the first
 * four bytes from the MAC header, cb[2] from the network header. */
static __always_inline int do_change_head(struct __sk_buff *skb)
{
	long rc = bpf_skb_change_head(skb, skb->cb[0], skb->cb[1]);
	__u32 v = 0x55555555;

	skb->cb[0] = skb->len;
	skb->cb[3] = (__u32)bpf_skb_load_bytes_relative(skb, 0, &v, 4, BPF_HDR_START_MAC);
	skb->cb[1] = v;
	v = 0x55555555;
	skb->cb[4] = (__u32)bpf_skb_load_bytes_relative(skb, 0, &v, 4, BPF_HDR_START_NET);
	skb->cb[2] = v;
	return (int)rc;
}

SEC("tc")
int tc_change_head(struct __sk_buff *skb)
{
	return do_change_head(skb);
}

SEC("lwt_xmit")
int lwt_change_head(struct __sk_buff *skb)
{
	long rc = bpf_skb_change_head(skb, skb->cb[0], skb->cb[1]);

	skb->cb[0] = skb->len;
	skb->cb[1] = (__u32)rc;
	return 0;
}

/* cb[0] len_diff, cb[1] mode, cb[2] flags (low word), cb[3] flags (high word).
 * Out: retval rc, cb[0] len, cb[1] protocol, cb[2] four bytes at the network header,
 * cb[3] rc of writing 0xee at the start of the new room (grow only), cb[4] rc of a
 * later bpf_skb_change_tail to the same length (-ENOTSUPP once encapsulated). */
SEC("tc")
int tc_adjust_room(struct __sk_buff *skb)
{
	__s32 diff = (__s32)skb->cb[0];
	__u32 mode = skb->cb[1];
	__u64 flags = (__u64)skb->cb[2] | ((__u64)skb->cb[3] << 32);
	__u32 v = 0x55555555, room;
	__u8 mark[4] = {0xee, 0xee, 0xee, 0xee};
	long rc;

	room = mode == BPF_ADJ_ROOM_MAC ? 14 : 14 + (skb->protocol == bpf_htons(ETH_P_IPV6) ? 40 : 20);
	rc = bpf_skb_adjust_room(skb, diff, mode, flags);
	skb->cb[0] = skb->len;
	skb->cb[1] = skb->protocol;
	skb->cb[3] = 0;
	if (rc == 0 && diff >= 4)
		skb->cb[3] = (__u32)bpf_skb_store_bytes(skb, room, mark, 4, 0);
	bpf_skb_load_bytes_relative(skb, 0, &v, 4, BPF_HDR_START_NET);
	skb->cb[2] = v;
	skb->cb[4] = (__u32)bpf_skb_change_tail(skb, skb->len, 0);
	return (int)rc;
}

/* Two adjust_room calls in a row (cb[0]/cb[1] len_diffs, cb[2] flags of both, mode
 * MAC): encapsulating twice is -EALREADY.  retval: rc1 | rc2 << 8 (negated). */
SEC("tc")
int tc_adjust_room2(struct __sk_buff *skb)
{
	__u64 flags = skb->cb[2];
	long rc1 = bpf_skb_adjust_room(skb, (__s32)skb->cb[0], BPF_ADJ_ROOM_MAC, flags);
	long rc2 = bpf_skb_adjust_room(skb, (__s32)skb->cb[1], BPF_ADJ_ROOM_MAC, flags);

	skb->cb[0] = skb->len;
	return ((__u32)(-rc1) & 0xff) | (((__u32)(-rc2) & 0xff) << 8);
}

/* cb[0] protocol (network order), cb[1] flags.  Out: retval rc, cb[0] len, cb[1]
 * protocol, cb[2] four bytes at the network header, cb[3] hash (set before). */
SEC("tc")
int tc_change_proto(struct __sk_buff *skb)
{
	__u32 v = 0x55555555;
	long rc;

	bpf_set_hash(skb, 0x1234);
	rc = bpf_skb_change_proto(skb, (__be16)skb->cb[0], skb->cb[1]);
	skb->cb[0] = skb->len;
	skb->cb[1] = skb->protocol;
	bpf_skb_load_bytes_relative(skb, 0, &v, 4, BPF_HDR_START_NET);
	skb->cb[2] = v;
	skb->cb[3] = skb->hash;
	return (int)rc;
}

/* cb[0] packet type.  Out: retval rc, cb[0] pkt_type after. */
SEC("tc")
int tc_change_type(struct __sk_buff *skb)
{
	long rc = bpf_skb_change_type(skb, skb->cb[0]);

	skb->cb[0] = skb->pkt_type;
	return (int)rc;
}

/* Up to four VLAN operations, one per byte of cb[0] (0 none, 1 push 802.1Q with TCI
 * cb[1] & 0xffff, 2 push 802.1ad with TCI cb[1] >> 16, 3 pop, 4 push with a bogus
 * protocol, 5 bpf_skb_ecn_set_ce, its result negated).  Out: retval the rcs (negated, a byte each), cb[0] vlan_present |
 * vlan_tci << 16, cb[1] vlan_proto | protocol << 16, cb[2] len, cb[3] four bytes at
 * the network header. */
SEC("tc")
int tc_vlan(struct __sk_buff *skb)
{
	__u32 ops = skb->cb[0], tcis = skb->cb[1], out = 0, v = 0x55555555;

	for (int i = 0; i < 4; i++) {
		__u32 op = (ops >> (8 * i)) & 0xff;
		long rc = 0;

		if (op == 1)
			rc = bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), tcis & 0xffff);
		else if (op == 2)
			rc = bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021AD), tcis >> 16);
		else if (op == 3)
			rc = bpf_skb_vlan_pop(skb);
		else if (op == 4)
			rc = bpf_skb_vlan_push(skb, bpf_htons(0x1234), 7);
		else if (op == 5)
			rc = -bpf_skb_ecn_set_ce(skb);
		out |= ((__u32)(-rc) & 0xff) << (8 * i);
	}
	skb->cb[0] = skb->vlan_present | (skb->vlan_tci << 16);
	skb->cb[1] = skb->vlan_proto | (skb->protocol << 16);
	skb->cb[2] = skb->len;
	bpf_skb_load_bytes_relative(skb, 0, &v, 4, BPF_HDR_START_NET);
	skb->cb[3] = v;
	return out;
}

/* The hash helpers' rules, which hold whatever the hash function: cb[0] = bit
 * flags of the checks, cb[1] the hash after bpf_set_hash(cb[0]), cb[2] skb->hash
 * after bpf_set_hash_invalid.  retval: the recomputed flow hash (compared by its
 * properties only). */
SEC("tc")
int tc_hash(struct __sk_buff *skb)
{
	__u32 set = skb->cb[0];
	__u32 h0 = skb->hash;
	__u32 h1 = bpf_get_hash_recalc(skb);
	__u32 h1b = skb->hash;
	__u32 h2 = bpf_get_hash_recalc(skb);
	__u32 h3, h4, h5, flags;

	bpf_set_hash(skb, set);
	h3 = bpf_get_hash_recalc(skb);
	bpf_set_hash_invalid(skb);
	h4 = skb->hash;
	h5 = bpf_get_hash_recalc(skb);
	flags = (h0 == 0) | ((h1 == h1b) << 1) | ((h1 == h2) << 2) | ((h1 != 0) << 3) |
		((h5 == h1) << 4);
	skb->cb[0] = flags;
	skb->cb[1] = h3;
	skb->cb[2] = h4;
	return h1;
}

/* Getters whose values the packet or test_run defines.  cb[0] classid, cb[1] route
 * realm, cb[2] socket uid, cb[3] cookie rules (non-zero, stable), cb[4] NUMA node.
 * retval: ancestor cgroup id at level cb[0] (low 32 bits). */
SEC("tc")
int tc_getters(struct __sk_buff *skb)
{
	__u32 level = skb->cb[0];
	__u64 c1 = bpf_get_socket_cookie(skb);
	__u64 c2 = bpf_get_socket_cookie(skb);

	skb->cb[0] = bpf_get_cgroup_classid(skb);
	skb->cb[1] = bpf_get_route_realm(skb);
	skb->cb[2] = bpf_get_socket_uid(skb);
	skb->cb[3] = (c1 != 0) | ((c1 == c2) << 1);
	skb->cb[4] = bpf_get_numa_node_id();
	return (__u32)bpf_skb_ancestor_cgroup_id(skb, level);
}

/* bpf_skb_cgroup_id and the ancestors at levels 0 and 1, into cb[0..3] (u64s). */
SEC("tc")
int tc_cgroup_ids(struct __sk_buff *skb)
{
	__u64 id = bpf_skb_cgroup_id(skb);
	__u64 root = bpf_skb_ancestor_cgroup_id(skb, 0);

	skb->cb[0] = (__u32)id;
	skb->cb[1] = (__u32)(id >> 32);
	skb->cb[2] = (__u32)root;
	skb->cb[3] = (__u32)bpf_skb_ancestor_cgroup_id(skb, 1000);
	return 0;
}

SEC("tc")
int tc_ecn(struct __sk_buff *skb)
{
	return (int)bpf_skb_ecn_set_ce(skb);
}

SEC("cgroup_skb/egress")
int cg_ecn(struct __sk_buff *skb)
{
	skb->cb[0] = (__u32)bpf_skb_ecn_set_ce(skb);
	return 1;
}

/* cb[2] selects: 0 bpf_redirect(cb[0], cb[1]); 1 bpf_clone_redirect(skb, cb[0],
 * cb[1]) (rc in cb[0], retval TC_ACT_OK); 2 bpf_redirect_peer; 3 bpf_redirect_neigh
 * with plen cb[3]. */
SEC("tc")
int tc_redirect(struct __sk_buff *skb)
{
	__u32 ifindex = skb->cb[0];
	__u64 flags = skb->cb[1];
	struct bpf_redir_neigh nh = {.nh_family = 2, .ipv4_nh = bpf_htonl(0x0a000001)};

	switch (skb->cb[2]) {
	case 0:
		return (int)bpf_redirect(ifindex, flags);
	case 1:
		skb->cb[0] = (__u32)bpf_clone_redirect(skb, ifindex, flags);
		return TC_ACT_OK;
	case 2:
		return (int)bpf_redirect_peer(ifindex, flags);
	default:
		if (skb->cb[3])
			return (int)bpf_redirect_neigh(ifindex, &nh, sizeof(nh), flags);
		return (int)bpf_redirect_neigh(ifindex, 0, 0, flags);
	}
}

/* cb[0] set flags, cb[1] get flags, cb[2] set size, cb[3] get size (both at most
 * 44), cb[4] & 1: skip the set.  The key read back is written into the packet at
 * offset 14.  retval: set rc | get rc << 8 (negated). */
SEC("tc")
int tc_tunnel(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {}, out;
	__u32 sset = skb->cb[2], sget = skb->cb[3];
	long rc1 = 0, rc2;

	key.tunnel_id = 0x11223344;
	key.tunnel_tos = 0x28;
	key.tunnel_ttl = 17;
	if (skb->cb[0] & BPF_F_TUNINFO_IPV6) {
		key.remote_ipv6[0] = bpf_htonl(0x20010db8);
		key.remote_ipv6[3] = bpf_htonl(1);
		key.local_ipv6[0] = bpf_htonl(0x20010db8);
		key.local_ipv6[3] = bpf_htonl(2);
		key.tunnel_label = 0xabcdef12;
	} else {
		key.remote_ipv4 = 0x0a000001;
		key.local_ipv4 = 0x0a000002;
	}
	__builtin_memset(&out, 0x77, sizeof(out));
	sset = SIZE(sset - 1);
	if (sset > 44)
		sset = 44;
	sget = SIZE(sget - 1);
	if (sget > 44)
		sget = 44;
	if (!(skb->cb[4] & 1))
		rc1 = bpf_skb_set_tunnel_key(skb, &key, sset, skb->cb[0]);
	rc2 = bpf_skb_get_tunnel_key(skb, &out, sget, skb->cb[1]);
	bpf_skb_store_bytes(skb, 14, &out, sizeof(out), 0);
	return ((__u32)(-rc1) & 0xff) | (((__u32)(-rc2) & 0xff) << 8);
}

/* Up to five bpf_csum_level calls, one level per byte of cb[0] (0xff: none), and a
 * bpf_skb_adjust_room(+4, MAC, cb[1]) after the third.  retval: the results (a byte
 * each, as returned); cb[0] bpf_csum_update(skb, 1). */
SEC("tc")
int tc_csum_level(struct __sk_buff *skb)
{
	__u32 levels = skb->cb[0], out = 0;
	__u64 adj_flags = skb->cb[1];

	for (int i = 0; i < 4; i++) {
		__u32 lvl = (levels >> (8 * i)) & 0xff;

		if (lvl == 0xff)
			continue;
		if (i == 3)
			bpf_skb_adjust_room(skb, 4, BPF_ADJ_ROOM_MAC, adj_flags);
		out |= ((__u32)bpf_csum_level(skb, lvl) & 0xff) << (8 * i);
	}
	skb->cb[0] = (__u32)bpf_csum_update(skb, 1);
	return out;
}

/* cb[0] len.  retval: rc; cb[0] the length of the direct-access window after. */
SEC("tc")
int tc_pull(struct __sk_buff *skb)
{
	long rc = bpf_skb_pull_data(skb, skb->cb[0]);

	skb->cb[0] = skb->data_end - skb->data;
	return (int)rc;
}

char _license[] SEC("license") = "GPL";
