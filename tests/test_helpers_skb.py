"""skb helpers (tests/progs/helpers_skb.c), simulator against kernel, parameters in
``__sk_buff->cb``: bpf_skb_load_bytes(_relative) from tc, socket filter, cgroup_skb
and LWT programs, bpf_skb_store_bytes with its flags, bpf_skb_change_tail/head
(tc and LWT), bpf_skb_pull_data, bpf_skb_change_type/proto, bpf_skb_adjust_room in
every mode with the encap/decap flags, VLAN push/pop (the hardware tag and tags in
the packet), bpf_skb_ecn_set_ce, tunnel keys, redirects, bpf_csum_level -- retval,
data_out and ctx_out (the cb results) byte for byte, errors included.

Values the simulator defines (flow hash, cgroup ids, socket cookie) are compared by
their rules, and the settable ones through the run state."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from _collection_cases import ipv4 as ipv4_tos
from _helpers_common import (
    Case,
    Loaded,
    assert_same,
    assert_sim_golden,
    cb_of,
    kernel_outcome,
    sim_outcomes,
    skb_ctx,
)
from _testrun import ETH_P_IP, ETH_P_IPV6, PACKETS, eth, ipv4, tcp, udp

from netbpf.helpers.csum import csum_fold, csum_partial, csum_update
from netbpf.helpers.skb import (
    BPF_F_RECOMPUTE_CSUM,
    CloneRedirect,
    TunnelInfo,
    flow_hash,
    skb_store_bytes,
)
from netbpf.hooks.skb import CHECKSUM_COMPLETE, MAX_PACKET_REMAPS, SkBuff
from netbpf.uapi import ProgramType, ctx_field
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

OBJ = "helpers_skb.c"
ETH_P_TEST = 0x88B5
E4, E6, GRE, UDP, NOCS, L2ETH, D4, D6, FIXED = 2, 4, 8, 16, 32, 64, 128, 256, 1

QINQ = eth(0x88A8, struct.pack("!HHHH", 0x0064, 0x8100, 0x00C8, ETH_P_IP) + ipv4(17, udp()))
PKTS = {
    "v4": PACKETS["ipv4_tcp"],
    "v6": PACKETS["ipv6_udp"],
    "vlan": PACKETS["vlan_ipv4_udp"],
    "qinq": QINQ,
    "arp": PACKETS["min14_arp"],
    "llc": PACKETS["llc_8023_raw"],
    "v4min": PACKETS["ipv4_min34"],
    "big": PACKETS["skb_max3712"],
}


def _cases() -> dict[str, Case]:
    c: dict[str, Case] = {}

    def add(name: str, prog: str, data: bytes, *cb: int) -> None:
        c[f"{prog}-{name}"] = Case(OBJ, prog, data, skb_ctx(*cb))

    for pn in ("v4", "v6", "vlan", "arp", "big"):
        pkt = PKTS[pn]
        n = len(pkt)
        for off, sz, mode, hdr in (
            (0, 0, 0, 0), (0, 63, 0, 0), (n - 64, 63, 0, 0), (n - 63, 63, 0, 0),
            (0x7FFFFFFF, 0, 0, 0), (0x80000000, 0, 0, 0), (0, 13, 1, 0), (n - 14, 13, 1, 0),
            (n - 13, 13, 1, 0), (0, 19, 2, 0), (n - 34, 19, 2, 0), (n - 33, 19, 2, 0),
            (0xFFFF, 0, 2, 0), (0x10000, 0, 2, 0), (0, 3, 3, 2),
        ):  # fmt: skip
            for prog in ("tc_load", "sock_load", "cg_load"):
                add(f"{pn}-{off}-{sz}-{mode}-{hdr}", prog, pkt, off, sz, mode, hdr)
        for off in (0, n - 30, n - 29):
            add(f"{pn}-{off}", "lwt_load", pkt, off)
        for off, sz, fl, h in (
            (0, 0, 0, 0), (0, 63, 0, 0), (n - 64, 63, 0, 0), (n - 63, 63, 0, 0),
            (0x7FFFFFFF, 0, 0, 0), (0x80000000, 0, 0, 0), (10, 3, 1, 0x55), (10, 3, 2, 0x55),
            (10, 3, 3, 0x55), (10, 3, 4, 0x55),
        ):  # fmt: skip
            add(f"{pn}-{off}-{sz}-{fl}-{h}", "tc_store", pkt, off, sz, fl, h)
        for off in (0, n - 18, n - 17):
            add(f"{pn}-{off}", "lwt_store", pkt, off)
        for nl, fl in (
            (n, 0), (n + 1, 0), (n + 100, 0), (n + 5000, 0), (16064, 0), (16065, 0),
            (14, 0), (13, 0), (0, 0), (n - 1, 0), (n, 1),
        ):  # fmt: skip
            add(f"{pn}-{nl}-{fl}", "tc_change_tail", pkt, nl, fl)
        for hr, fl in ((0, 0), (14, 0), (65, 0), (200, 0), (14, 1), (16064 - n, 0),
                       (16065 - n, 0), (0xFFFFFFFF, 0)):  # fmt: skip
            add(f"{pn}-{hr}-{fl}", "tc_change_head", pkt, hr, fl)
            add(f"{pn}-{hr}-{fl}", "lwt_change_head", pkt, hr, fl)
        for ln in (0, 1, n, n + 1, 0xFFFFFFFF):
            add(f"{pn}-{ln}", "tc_pull", pkt, ln)
    for t in (0, 1, 2, 3, 4, 0xFFFFFFFF):
        add(f"{t}", "tc_change_type", PKTS["v4"], t)

    for pn in ("v4", "v6", "vlan", "arp", "v4min"):
        pkt = PKTS[pn]
        n = len(pkt)
        for diff in (0, 4, 20, -4, -20, -40, 0xFFF, 0x1000, -(n - 34), -(n - 35), 16064):
            for mode in (0, 1, 2):
                for fl in (
                    0, FIXED, E4, E6, E4 | E6, E4 | GRE, E4 | UDP, E6 | UDP, E4 | GRE | UDP,
                    NOCS, L2ETH, E4 | L2ETH, D4, D6, D4 | D6, 1 << 9, E4 | L2ETH | (14 << 56),
                    E4 | (14 << 56), E6 | L2ETH | (13 << 56),
                ):  # fmt: skip
                    add(
                        f"{pn}-{diff}-{mode}-{fl:#x}", "tc_adjust_room", pkt,
                        diff, mode, fl & 0xFFFFFFFF, fl >> 32,
                    )  # fmt: skip
        for d1, d2, fl in ((20, 20, E4), (20, 20, 0), (20, -20, E4), (4, 4, E4 | UDP)):
            add(f"{pn}-{d1}-{d2}-{fl}", "tc_adjust_room2", pkt, d1, d2, fl)
        for proto, fl in ((0xDD86, 0), (0x0008, 0), (0x0081, 0), (0xDD86, 1), (0x86DD, 0)):
            add(f"{pn}-{proto:#x}-{fl}", "tc_change_proto", pkt, proto, fl)

    vshort = eth(0x8100, b"\x00\x01")
    for pn, pkt in (*PKTS.items(), ("vshort", vshort)):
        if pn == "big":
            continue
        for op in (
            0x01, 0x0101, 0x010101, 0x03, 0x0301, 0x030101, 0x03030101, 0x0303, 0x02,
            0x0102, 0x04, 0x0401, 0x030303, 0x01010101, 0x03010301, 0x05, 0x0501, 0x050101,
        ):  # fmt: skip
            add(f"{pn}-{op:#x}", "tc_vlan", pkt, op, 0x00C8_E064)
        add(pn, "tc_getters", pkt, 0)
        add(f"{pn}-deep", "tc_getters", pkt, 100)
        add(pn, "tc_ecn", pkt)
        add(pn, "cg_ecn", pkt)
    for tos in (0, 1, 2, 3, 0xFC, 0xFD, 0xFE, 0xFF):
        p4 = eth(ETH_P_IP, ipv4_tos(6, tcp(), tos=tos))
        p6 = bytearray(PACKETS["ipv6_udp"])
        p6[14] = 0x60 | (tos >> 4)
        p6[15] = (tos & 0xF) << 4
        pv = eth(0x8100, struct.pack("!HH", 5, ETH_P_IP) + ipv4_tos(17, udp(), tos=tos))
        for pn, pkt in (("v4", p4), ("v6", bytes(p6)), ("vlan", pv)):
            add(f"{pn}-tos{tos}", "tc_ecn", pkt)
            add(f"{pn}-tos{tos}", "cg_ecn", pkt)
            add(f"{pn}-tos{tos}", "tc_vlan", pkt, 0x050101, 0x00C8_E064)

    test = eth(ETH_P_TEST, bytes(50))
    for ifi, fl, mode, x in (
        (1, 0, 0, 0), (1, 1, 0, 0), (1, 2, 0, 0), (999, 0, 0, 0), (5, 0, 2, 0), (5, 1, 2, 0),
        (5, 0, 3, 0), (5, 0, 3, 1), (5, 1, 3, 0), (1, 0, 1, 0), (1, 1, 1, 0), (999, 0, 1, 0),
        (1, 2, 1, 0), (1, 8, 1, 0),
    ):  # fmt: skip
        add(f"{ifi}-{fl}-{mode}-{x}", "tc_redirect", test, ifi, fl, mode, x)
    tun = eth(ETH_P_TEST, bytes(80))
    for fs, fg, ss, sg, skip in (
        (0, 0, 44, 44, 0), (0, 0, 44, 44, 1), (1, 1, 44, 44, 0), (1, 0, 44, 44, 0),
        (0, 1, 44, 44, 0), (0, 16, 44, 44, 0), (1, 17, 44, 44, 0), (2, 0, 44, 44, 0),
        (4, 16, 44, 44, 0), (8, 16, 44, 44, 0), (16, 16, 44, 44, 0), (14, 16, 44, 44, 0),
        (32, 0, 44, 44, 0), (0, 2, 44, 44, 0), (0, 0, 28, 44, 0), (0, 0, 24, 44, 0),
        (0, 0, 22, 44, 0), (0, 0, 8, 44, 0), (0, 0, 40, 44, 0), (0, 0, 44, 24, 0),
        (0, 0, 44, 22, 0), (0, 0, 44, 28, 0), (0, 0, 44, 8, 0), (1, 1, 44, 8, 0),
        (0, 0, 44, 12, 0), (1, 1, 28, 44, 0), (1, 1, 24, 24, 0), (1, 1, 8, 44, 0),
    ):  # fmt: skip
        add(f"{fs}-{fg}-{ss}-{sg}-{skip}", "tc_tunnel", tun, fs, fg, ss, sg, skip)
    for lv, fl in (
        (0xFFFFFFFF, 0), (0x00, 0), (0x01FFFFFF, 0), (0x00010101, 0), (0x01010101, 0),
        (0x00010101, NOCS), (0x00030100, 0), (0x00020100, 0), (0x00000201, 0), (0x07, 0),
        (0x040100, 0),
    ):  # fmt: skip
        add(f"{lv:#x}-{fl}", "tc_csum_level", PKTS["v4"], lv, fl)
    # a GSO skb (ctx_in's gso_size, no GSO type): adjust_room refuses it,
    # change_tail resets it, clone_redirect refuses it
    gso_off = ctx_field("__sk_buff", "gso_size")[0]
    segs_off = ctx_field("__sk_buff", "gso_segs")[0]
    for prog, cb in (
        ("tc_adjust_room", (4, 1, 0)),
        ("tc_adjust_room", (-4, 0, 0)),
        ("tc_adjust_room", (4, 1, 1)),
        ("tc_change_head", (16064,)),
        ("tc_change_tail", (100,)),
        ("tc_redirect", (1, 0, 1, 0)),
        ("tc_change_proto", (0xDD86, 0)),
    ):
        ctx = bytearray(skb_ctx(*cb))
        ctx[gso_off : gso_off + 4] = struct.pack("<I", 100)
        ctx[segs_off : segs_off + 4] = struct.pack("<I", 2)
        c[f"{prog}-gso-{cb}"] = Case(OBJ, prog, PKTS["v4"], bytes(ctx))
    # repeated runs on the same skb (the cb results become the next run's arguments)
    for prog, cb in (
        ("tc_vlan", (0x0101, 0x00C8_E064)),
        ("tc_change_tail", (100,)),
        ("tc_change_head", (14,)),
        ("lwt_change_head", (14,)),
        ("tc_store", (20, 3, 2, 7)),
    ):
        c[f"{prog}-repeat4"] = Case(OBJ, prog, PKTS["v4"], skb_ctx(*cb), 4)
    return c


CASES = _cases()


@pytest.fixture(scope="module")
def loaded(compile_bpf):
    lo = Loaded(compile_bpf)
    yield lo
    lo.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_skb_helpers_vs_kernel(kernel, loaded, name: str) -> None:
    assert_same(loaded, kernel, CASES[name], name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_skb_helpers_sim_golden(loaded, name: str) -> None:
    assert_sim_golden(loaded, CASES[name], name)


# ---------------------------------------------------------------- hashes, by their rules

HASH_PKTS = {
    "v4": PACKETS["ipv4_tcp"],
    "v4_again": PACKETS["ipv4_tcp"],
    "v4_port": eth(ETH_P_IP, ipv4(6, tcp(sport=40001))),
    "v4_addr": eth(ETH_P_IP, ipv4(6, tcp(), src="10.0.0.9")),
    "v6": PACKETS["ipv6_udp"],
    "v6_port": eth(ETH_P_IPV6, PACKETS["ipv6_udp"][14:54] + udp(sport=1)),
    "arp": PACKETS["min14_arp"],
}


def _hashes(outcomes: dict[str, object]) -> dict[str, int]:
    return {k: o.retval for k, o in outcomes.items()}  # type: ignore[attr-defined]


def _check_hash_rules(hashes: dict[str, int]) -> None:
    assert all(h != 0 for h in hashes.values())
    assert hashes["v4"] == hashes["v4_again"]
    distinct = [hashes[k] for k in ("v4", "v4_port", "v4_addr", "v6", "v6_port", "arp")]
    assert len(set(distinct)) == len(distinct)


def test_hash_rules_sim(loaded) -> None:
    """bpf_get_hash_recalc: non-zero, stored in skb->hash, stable, kept after
    bpf_set_hash until bpf_set_hash_invalid; equal flows hash equal, different flows
    differently (the cb flags the program computes, see helpers_skb.c)."""
    outs = {}
    for name, pkt in HASH_PKTS.items():
        got = sim_outcomes(loaded, Case(OBJ, "tc_hash", pkt, skb_ctx(0xABCDEF)))
        assert got["fast"] == got["interpreter"]
        o = got["fast"]
        assert cb_of(o.ctx_out)[:3] == (0x1F, 0xABCDEF, 0)
        outs[name] = o
    _check_hash_rules(_hashes(outs))


def test_hash_rules_kernel(kernel, loaded) -> None:
    """The kernel's hash follows the same rules; everything but the hash value itself
    (a random per-boot secret) is equal byte for byte."""
    outs = {}
    for name, pkt in HASH_PKTS.items():
        case = Case(OBJ, "tc_hash", pkt, skb_ctx(0xABCDEF))
        want = kernel_outcome(loaded, kernel, case)
        got = sim_outcomes(loaded, case)["fast"]
        assert (want.data_out, want.ctx_out) == (got.data_out, got.ctx_out)
        outs[name] = want
    _check_hash_rules(_hashes(outs))


def test_flow_hash_seed_is_settable(loaded) -> None:
    pkt = PACKETS["ipv4_tcp"]
    a = loaded.run_with_state(OBJ, "tc_hash", pkt, skb_ctx(1), {"hash_seed": 1}).retval
    b = loaded.run_with_state(OBJ, "tc_hash", pkt, skb_ctx(1), {"hash_seed": 2}).retval
    c = loaded.run_with_state(OBJ, "tc_hash", pkt, skb_ctx(1), {"hash_seed": 1}).retval
    assert a == c != b


# ---------------------------------------------------------------- cgroup ids and cookies


def _own_cgroup() -> tuple[int, str] | None:
    """(cgroup v2 id, path) of this process: the inode of its cgroup directory."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            path = "/sys/fs/cgroup" + line[3:]
            try:
                return os.stat(path).st_ino, path
            except OSError:
                return None
    return None


def test_cgroup_ids_kernel(kernel, loaded) -> None:
    """bpf_skb_cgroup_id is the test_run socket's cgroup: the calling process's; the
    root (level 0) is cgroup 1; a level deeper than the hierarchy gives 0."""
    own = _own_cgroup()
    if own is None:
        pytest.skip("no cgroup v2 hierarchy to compare with")
    out = kernel_outcome(loaded, kernel, Case(OBJ, "tc_cgroup_ids", PKTS["v4"], skb_ctx()))
    cb = cb_of(out.ctx_out)
    assert cb[0] | (cb[1] << 32) == own[0], own[1]
    assert cb[2:4] == (1, 0)


def test_cgroup_ids_sim_state(loaded) -> None:
    """The simulator's cgroup path is settable; by default the socket sits in the
    root cgroup (id 1)."""
    pkt = PKTS["v4"]
    res = loaded.run_with_state(OBJ, "tc_cgroup_ids", pkt, skb_ctx(), {})
    assert cb_of(res.ctx_out)[:4] == (1, 0, 1, 0)
    res = loaded.run_with_state(
        OBJ, "tc_cgroup_ids", pkt, skb_ctx(), {"cgroup_path": (1, 77, 0x1_0000_0005)}
    )
    assert cb_of(res.ctx_out)[:4] == (5, 1, 1, 0)
    for level, want in ((0, 1), (1, 77), (2, 5), (3, 0)):
        res = loaded.run_with_state(
            OBJ, "tc_getters", pkt, skb_ctx(level), {"cgroup_path": (1, 77, 0x1_0000_0005)}
        )
        assert res.retval == want


def test_getters_sim_state(loaded) -> None:
    state = {"cgroup_classid": 0x10002, "route_realm": 9, "socket_cookie": 0x55, "numa_node": 1}
    res = loaded.run_with_state(OBJ, "tc_getters", PKTS["v4"], skb_ctx(), state)
    assert cb_of(res.ctx_out) == (0x10002, 9, 0, 3, 1)


# ---------------------------------------------------------------- what the run records


def test_redirects_are_recorded(loaded) -> None:
    test = eth(ETH_P_TEST, bytes(50))
    state: dict[str, object] = {}
    res = loaded.run_with_state(OBJ, "tc_redirect", test, skb_ctx(1, 1, 0), state)
    assert res.retval == 7  # TC_ACT_REDIRECT
    red = state["redirect"]
    assert (red.ifindex, red.ingress, red.peer, red.neigh) == (1, True, False, False)
    state = {}
    loaded.run_with_state(OBJ, "tc_redirect", test, skb_ctx(5, 0, 3, 1), state)
    red = state["redirect"]
    # struct bpf_redir_neigh: nh_family, then the next hop
    assert red.neigh and red.nexthop[:8] == struct.pack("<I", 2) + bytes([10, 0, 0, 1])
    state = {}
    res = loaded.run_with_state(OBJ, "tc_redirect", test, skb_ctx(1, 1, 1), state)
    assert cb_of(res.ctx_out)[0] == 0
    assert state["clone_redirects"] == [CloneRedirect(1, True, test)]


def test_tunnel_info_is_recorded(loaded) -> None:
    state: dict[str, object] = {}
    loaded.run_with_state(
        OBJ, "tc_tunnel", eth(ETH_P_TEST, bytes(80)), skb_ctx(0, 0, 44, 44), state
    )
    info = state["skb"].tun_info
    assert isinstance(info, TunnelInfo)
    assert (info.tun_id, info.tos, info.ttl, info.ipv6) == (0x11223344, 0x28, 17, False)
    assert (info.dst, info.src) == (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))


# ---------------------------------------------------------------- model details


def test_packet_remap_is_bounded() -> None:
    """Invalidating packet pointers takes an address slot per call; past
    MAX_PACKET_REMAPS the packet keeps its address (and stays bounded)."""
    mem = AddressSpace()
    skb = SkBuff.for_test_run(bytes(64))
    skb.map(mem, writable=True)
    bases = set()
    for _ in range(MAX_PACKET_REMAPS + 50):
        skb.remap()
        bases.add(skb.region.base)
    assert len(bases) == MAX_PACKET_REMAPS
    skb.trim(10)
    skb.remap()
    with pytest.raises(MemoryFault):
        mem.load(skb.addr(skb.data + 10), 1)


def test_flow_hash_keys() -> None:
    """The simulator's flow hash covers the ports of TCP (l4) and not of a fragment."""
    skb = SkBuff.for_test_run(PACKETS["ipv4_tcp"])
    skb.protocol = ETH_P_IP
    skb.network_header = skb.data + 14
    h, l4 = flow_hash(skb)
    assert h and l4
    skb.head[skb.data + 14 + 6] = 0x20  # more fragments
    h2, l4 = flow_hash(skb)
    assert h2 != h and not l4


# ---------------------------------------------------------------- CHECKSUM_COMPLETE skbs


def _complete_skb(data: bytes) -> tuple[RunEnv, SkBuff, int]:
    """An skb with CHECKSUM_COMPLETE (what a NIC hands the stack; test_run never
    builds one): skb->csum is the sum of the data; plus a scratch region."""
    mem = AddressSpace()
    skb = SkBuff.for_test_run(data)
    skb.map(mem, writable=True)
    skb.ip_summed = CHECKSUM_COMPLETE
    skb.csum = csum_partial(data, 0)
    scratch = mem.map(Region("scratch", bytearray(64)))
    env = RunEnv(mem, state={"skb": skb, "prog_type": ProgramType.SCHED_CLS})
    return env, skb, scratch


@pytest.mark.parametrize("offset", [0, 1, 2, 7, 20, 57])
def test_store_bytes_recompute_csum_keeps_skb_csum(offset: int) -> None:
    """BPF_F_RECOMPUTE_CSUM: after the write skb->csum still sums the packet (odd
    offsets rotate the block sums, as csum_block_add/sub do)."""
    data = bytes((i * 13 + 5) & 0xFF for i in range(64))
    env, skb, scratch = _complete_skb(data)
    env.mem.write(scratch, b"\xde\xad\xbe\xef\x01")
    assert skb_store_bytes(env, 0, offset, scratch, 5, BPF_F_RECOMPUTE_CSUM) == 0
    assert csum_fold(skb.csum) == csum_fold(csum_partial(skb.bytes(), 0))
    # without the flag the sum goes stale
    env.mem.write(scratch, b"\x00\x11\x22\x33\x44")
    skb_store_bytes(env, 0, offset, scratch, 5, 0)
    assert csum_fold(skb.csum) != csum_fold(csum_partial(skb.bytes(), 0))


def test_csum_update_on_complete_skb() -> None:
    env, skb, _ = _complete_skb(bytes(64))
    skb.csum = 0xFFFF_FFF0
    assert csum_update(env, 0, 0x20, 0, 0, 0) == 0x11  # end-around carry
    assert skb.csum == 0x11
