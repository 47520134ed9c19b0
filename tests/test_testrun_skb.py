"""BPF_PROG_TEST_RUN for the skb family, simulator against kernel: every program type,
on every sample packet, with and without ctx_in, must give the same retval, data_out
and ctx_out byte for byte, and the same errno where the kernel refuses.

The programs read the context fields the type may read, touch packet data through
bounds-checked direct access (SCHED_CLS/ACT, LWT, CGROUP_SKB) or LD_ABS/LD_IND
(SOCKET_FILTER, SCHED_CLS/ACT), write the writable fields, and return values that
depend on what they saw.
"""

from __future__ import annotations

import struct

import pytest
from _testrun import (
    MAC_OTHER,
    PACKETS,
    SHORT_PACKETS,
    assert_same,
    assert_sim_golden,
    digest,
    kernel_golden,
    sim_programs,
)

from netbpf import ProgramFault, ProgramSpec
from netbpf.hooks.context import host_devices
from netbpf.uapi import CTX_LAYOUTS

_SKB = {name: (off, size) for name, off, size, _ in CTX_LAYOUTS["__sk_buff"][1]}


def ctx(**fields: int | bytes) -> bytes:
    """A 192-byte __sk_buff with the given fields set (cb as 20 bytes)."""
    buf = bytearray(192)
    for name, value in fields.items():
        off, size = _SKB[name]
        raw = value if isinstance(value, bytes) else value.to_bytes(size, "little")
        buf[off : off + size] = raw
    return bytes(buf)


CTX_VARIANTS: dict[str, bytes | None] = {
    "no_ctx": None,
    "zero_ctx": bytes(192),
    "ctx_fields": ctx(
        mark=0x11223344,
        priority=7,
        ingress_ifindex=3,
        ifindex=1,
        cb=bytes(range(1, 21)),
        tstamp=0x1122334455667788,
        wire_len=4000,
        gso_segs=3,
        gso_size=1400,
        hwtstamp=0x55,
    ),
    "ctx_short20": ctx(mark=5)[:20],
    "ctx_long_zero_tail": ctx(priority=9) + bytes(64),
}

# ---------------------------------------------------------------------------- programs

# L2 (tc, act): direct read/write of the Ethernet header, every kind of field.
TC_PROG = """
    r6 = r1
    r2 = *(u32 *)(r6 + 76)
    r3 = *(u32 *)(r6 + 80)
    r4 = *(u32 *)(r6 + 140)
    r9 = r2
    r9 -= r4
    r4 = r2
    r4 += 14
    if r4 > r3 goto short
    r5 = *(u8 *)(r2 + 6)
    r5 += 1
    *(u8 *)(r2 + 0) = r5
    r5 = *(u16 *)(r2 + 12)
    *(u32 *)(r6 + 8) = r5
short:
    r5 = *(u32 *)(r6 + 0)
    *(u32 *)(r6 + 32) = r5
    r5 = *(u32 *)(r6 + 16)
    *(u32 *)(r6 + 48) = r5
    r5 = *(u32 *)(r6 + 4)
    *(u32 *)(r6 + 52) = r5
    r5 = *(u32 *)(r6 + 160)
    *(u32 *)(r6 + 56) = r5
    r5 = *(u32 *)(r6 + 40)
    r7 = *(u32 *)(r6 + 36)
    r5 <<= 8
    r5 |= r7
    *(u32 *)(r6 + 60) = r5
    r5 = *(u64 *)(r6 + 152)
    r5 += 1000
    *(u64 *)(r6 + 152) = r5
    r5 = *(u64 *)(r6 + 184)
    r7 = *(u32 *)(r6 + 84)
    r5 += r7
    r5 += r9
    *(u32 *)(r6 + 64) = r5
    r5 = 0x1234
    *(u32 *)(r6 + 44) = r5
    *(u32 *)(r6 + 72) = r5
    *(u32 *)(r6 + 12) = r5
    r0 = *(u32 *)(r6 + 44)
    r5 = *(u32 *)(r6 + 72)
    r0 += r5
    r5 = *(u32 *)(r6 + 12)
    r0 += r5
    r5 = *(u32 *)(r6 + 164)
    r0 <<= 16
    r0 |= r5
    r5 = *(u32 *)(r6 + 176)
    r0 += r5
    r5 = *(u8 *)(r6 + 180)
    r0 += r5
    r5 = *(u64 *)(r6 + 168)
    if r5 == 0 goto nosk
    r7 = *(u32 *)(r5 + 4)
    r0 += r7
    r7 = *(u32 *)(r5 + 72)
    r0 += r7
nosk:
    exit
"""

# L3 types: the packet starts at the network header; read-only unless lwt_xmit.
L3_PROG = """
    r6 = r1
    r2 = *(u32 *)(r6 + 76)
    r3 = *(u32 *)(r6 + 80)
    r0 = r3
    r0 -= r2
    *(u32 *)(r6 + 32) = r0
    r4 = r2
    r4 += 20
    if r4 > r3 goto short
    r5 = *(u8 *)(r2 + 0)
    *(u32 *)(r6 + 48) = r5
    r5 = *(u32 *)(r2 + 12)
    *(u32 *)(r6 + 52) = r5
{write}
short:
    r5 = *(u32 *)(r6 + 0)
    *(u32 *)(r6 + 56) = r5
    r5 = *(u32 *)(r6 + 16)
    r7 = *(u32 *)(r6 + 4)
    r5 <<= 8
    r5 |= r7
    *(u32 *)(r6 + 60) = r5
    r5 = *(u32 *)(r6 + 8)
    r5 += 1
    *(u32 *)(r6 + 8) = r5
    r5 = *(u32 *)(r6 + 164)
    r7 = *(u32 *)(r6 + 176)
    r5 <<= 16
    r5 |= r7
    *(u32 *)(r6 + 64) = r5
{extra}
    exit
"""
LWT_XMIT_WRITE = """
    r5 = *(u8 *)(r2 + 8)
    r5 += 1
    *(u8 *)(r2 + 8) = r5
"""
# cgroup_skb also sees the dummy socket's family/addresses/ports, tstamp, hwtstamp
CG_EXTRA = """
    r5 = *(u32 *)(r6 + 88)
    r7 = *(u32 *)(r6 + 92)
    r5 += r7
    r7 = *(u32 *)(r6 + 96)
    r5 += r7
    r7 = *(u32 *)(r6 + 112)
    r5 += r7
    r7 = *(u32 *)(r6 + 128)
    r5 += r7
    r7 = *(u32 *)(r6 + 132)
    r5 += r7
    r7 = *(u32 *)(r6 + 136)
    r5 += r7
    r7 = *(u64 *)(r6 + 184)
    r5 += r7
    r7 = *(u64 *)(r6 + 152)
    r5 += r7
    *(u64 *)(r6 + 152) = r5
    r0 &= 1
"""

# LD_ABS / LD_IND: plain, SKF_LL_OFF and SKF_NET_OFF relative, indirect through the
# IPv4 header length; a failing load ends the run with r0 = 0 (so a short packet
# returns 0), the values are folded into r0 and stored into cb[].  ``{far}`` is an
# extra load at the very end of the biggest packet, or just past it.
LDABS_PROG = """
    r6 = r1
    r0 = *(u16 *)skb[-2097140]
    r9 = r0
    *(u32 *)(r6 + 48) = r0
    r0 = *(u32 *)skb[-1048564]
    r9 ^= r0
    *(u32 *)(r6 + 52) = r0
    r0 = *(u8 *)skb[-1048576]
    r8 = r0
    r8 &= 15
    r8 <<= 2
    r0 = *(u8 *)skb[{first}]
    r9 += r0
    *(u32 *)(r6 + 56) = r0
    r0 = *(u16 *)skb[r8 + {l4}]
    r9 += r0
    *(u32 *)(r6 + 60) = r0
    r0 = *(u32 *)skb[r8 + {l4_end}]
    r9 += r0
    *(u32 *)(r6 + 64) = r0
    {far}
    r0 = r9
    exit
"""


def _ldabs(l2: int, far: str) -> str:
    return LDABS_PROG.format(first=l2, l4=l2, l4_end=l2 + 4, far=far)


def _tc_prog() -> str:
    return TC_PROG


def _l3_prog(ptype: str) -> str:
    write = LWT_XMIT_WRITE if ptype == "lwt_xmit" else ""
    extra = CG_EXTRA if ptype.startswith("cgroup_skb") else ""
    return L3_PROG.format(write=write, extra=extra)


PROGRAMS: dict[str, tuple[str, str]] = {
    # id: (program type, assembly)
    "tc_rw": ("tc", _tc_prog()),
    "act_rw": ("action", _tc_prog()),
    "lwt_in_read": ("lwt_in", _l3_prog("lwt_in")),
    "lwt_out_read": ("lwt_out", _l3_prog("lwt_out")),
    "lwt_xmit_rw": ("lwt_xmit", _l3_prog("lwt_xmit")),
    "cgroup_skb_read": ("cgroup_skb/ingress", _l3_prog("cgroup_skb/ingress")),
    "socket_ldabs": ("socket", _ldabs(0, "")),
    "socket_ldabs_end": ("socket", _ldabs(0, "r0 = *(u32 *)skb[3694]")),
    "socket_ldabs_past_end": ("socket", _ldabs(0, "r0 = *(u16 *)skb[3697]")),
    "tc_ldabs": ("tc", _ldabs(14, "")),
    "tc_ldabs_end": ("tc", _ldabs(14, "r0 = *(u8 *)skb[3711]")),
    "tc_ldabs_past_end": ("tc", _ldabs(14, "r0 = *(u32 *)skb[3709]")),
    "act_ldabs_negative": ("action", _ldabs(14, "r0 = *(u8 *)skb[-1]")),
    "act_ldabs_below_ll": ("action", _ldabs(14, "r0 = *(u8 *)skb[-2097153]")),
}


@pytest.mark.parametrize("ctx_name", list(CTX_VARIANTS))
@pytest.mark.parametrize("pkt_name", list(PACKETS))
@pytest.mark.parametrize("prog_name", list(PROGRAMS))
def test_skb_program(kernel, prog_name: str, pkt_name: str, ctx_name: str) -> None:
    ptype, text = PROGRAMS[prog_name]
    spec = ProgramSpec.from_asm(text, prog_type=ptype, name=prog_name)
    want = assert_same(kernel, spec, PACKETS[pkt_name], CTX_VARIANTS[ctx_name])
    kernel_golden(f"skb/{prog_name}/{pkt_name}/{ctx_name}", digest(want))


@pytest.mark.parametrize("ctx_name", list(CTX_VARIANTS))
@pytest.mark.parametrize("pkt_name", list(PACKETS))
@pytest.mark.parametrize("prog_name", list(PROGRAMS))
def test_skb_program_sim(prog_name: str, pkt_name: str, ctx_name: str) -> None:
    ptype, text = PROGRAMS[prog_name]
    spec = ProgramSpec.from_asm(text, prog_type=ptype, name=prog_name)
    key = f"skb/{prog_name}/{pkt_name}/{ctx_name}"
    assert_sim_golden(key, spec, PACKETS[pkt_name], CTX_VARIANTS[ctx_name])


# ---------------------------------------------------------------------------- refusals

SKB_TYPES = ["socket", "tc", "action", "cgroup_skb/ingress", "lwt_in", "lwt_out", "lwt_xmit"]
RET1 = "r0 = 1\nexit\n"
IPV4 = PACKETS["ipv4_tcp"]

REFUSALS: dict[str, tuple[bytes, bytes | None]] = {
    # id: (data_in, ctx_in)
    **{name: (pkt, None) for name, pkt in SHORT_PACKETS.items()},
    "empty": (b"", None),
    "short13_with_ctx": (SHORT_PACKETS["short13"], bytes(192)),
    "ctx_len_set": (IPV4, ctx(len=1)),
    "ctx_pkt_type_set": (IPV4, ctx(pkt_type=1)),
    "ctx_queue_mapping_set": (IPV4, ctx(queue_mapping=1)),
    "ctx_protocol_set": (IPV4, ctx(protocol=8)),
    "ctx_tc_index_set": (IPV4, ctx(tc_index=1)),
    "ctx_hash_set": (IPV4, ctx(hash=1)),
    "ctx_tc_classid_set": (IPV4, ctx(tc_classid=1)),
    "ctx_data_set": (IPV4, ctx(data=1)),
    "ctx_data_end_set": (IPV4, ctx(data_end=1)),
    "ctx_family_set": (IPV4, ctx(family=2)),
    "ctx_remote_ip6_set": (IPV4, ctx(remote_ip6=b"\x01" * 16)),
    "ctx_flow_keys_set": (IPV4, ctx(flow_keys=1)),
    "ctx_sk_set": (IPV4, ctx(sk=1)),
    "ctx_tstamp_type_set": (IPV4, ctx(tstamp_type=1)),
    "ctx_padding_set": (IPV4, ctx()[:181] + b"\x01" + bytes(10)),
    "ctx_wire_len_too_small": (IPV4, ctx(wire_len=10)),
    "ctx_wire_len_exact_l2": (IPV4, ctx(wire_len=len(IPV4))),
    "ctx_wire_len_exact_l3": (IPV4, ctx(wire_len=len(IPV4) - 14)),
    "ctx_wire_len_65536": (IPV4, ctx(wire_len=65536)),
    "ctx_wire_len_65537": (IPV4, ctx(wire_len=65537)),
    "ctx_gso_segs_65535": (IPV4, ctx(gso_segs=65535)),
    "ctx_gso_segs_65536": (IPV4, ctx(gso_segs=65536)),
    "ctx_ifindex_lo": (IPV4, ctx(ifindex=1)),
    "ctx_ifindex_missing": (IPV4, ctx(ifindex=0x7FFF_FFF0)),
    "ctx_ifindex_missing_short_pkt": (SHORT_PACKETS["ipv4_trunc33"], ctx(ifindex=0x7FFF_FFF0)),
    "ctx_trailing_nonzero": (IPV4, ctx() + b"\x00\x01"),
    "ctx_over_a_page": (IPV4, bytes(4097)),
    "ctx_empty": (IPV4, b""),
}


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("ptype", SKB_TYPES)
def test_skb_refusals(kernel, ptype: str, case: str) -> None:
    data_in, ctx_in = REFUSALS[case]
    spec = ProgramSpec.from_asm(RET1, prog_type=ptype)
    want = assert_same(kernel, spec, data_in, ctx_in)
    kernel_golden(f"skb_refusal/{ptype}/{case}", digest(want))


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("ptype", SKB_TYPES)
def test_skb_refusals_sim(ptype: str, case: str) -> None:
    data_in, ctx_in = REFUSALS[case]
    spec = ProgramSpec.from_asm(RET1, prog_type=ptype)
    assert_sim_golden(f"skb_refusal/{ptype}/{case}", spec, data_in, ctx_in)


# ---------------------------------------------------------------------------- repeat

# Every run increments cb[0], mark and (tc) the first packet byte: state persists
# from run to run, and retval is the last run's.
REPEAT_TC = """
    r2 = *(u32 *)(r1 + 76)
    r3 = *(u32 *)(r1 + 80)
    r4 = r2
    r4 += 1
    if r4 > r3 goto +3
    r5 = *(u8 *)(r2 + 0)
    r5 += 1
    *(u8 *)(r2 + 0) = r5
    r0 = *(u32 *)(r1 + 48)
    r0 += 1
    *(u32 *)(r1 + 48) = r0
    r5 = *(u32 *)(r1 + 8)
    r5 += 3
    *(u32 *)(r1 + 8) = r5
    exit
"""
REPEAT_SOCKET = """
    r0 = *(u32 *)(r1 + 48)
    r0 += 1
    *(u32 *)(r1 + 48) = r0
    exit
"""


@pytest.mark.parametrize("repeat", [0, 1, 2, 7])
@pytest.mark.parametrize("ptype", ["tc", "socket"])
def test_skb_repeat(kernel, ptype: str, repeat: int) -> None:
    text = REPEAT_TC if ptype == "tc" else REPEAT_SOCKET
    spec = ProgramSpec.from_asm(text, prog_type=ptype)
    for ctx_in in (None, bytes(192)):
        got = assert_same(kernel, spec, IPV4, ctx_in, repeat)
        assert got.retval == max(repeat, 1)
        kernel_golden(f"skb_repeat/{ptype}/{repeat}/{ctx_in is not None}", digest(got))


@pytest.mark.parametrize("repeat", [0, 1, 2, 7])
@pytest.mark.parametrize("ptype", ["tc", "socket"])
def test_skb_repeat_sim(ptype: str, repeat: int) -> None:
    text = REPEAT_TC if ptype == "tc" else REPEAT_SOCKET
    spec = ProgramSpec.from_asm(text, prog_type=ptype)
    for ctx_in in (None, bytes(192)):
        key = f"skb_repeat/{ptype}/{repeat}/{ctx_in is not None}"
        assert_sim_golden(key, spec, IPV4, ctx_in, repeat)


# ---------------------------------------------------------------------------- sim only


def test_read_only_packet_faults() -> None:
    """LWT_IN may not write packet data (the verifier refuses it; the sandbox faults)."""
    text = """
        r2 = *(u32 *)(r1 + 76)
        r3 = *(u32 *)(r1 + 80)
        r4 = r2
        r4 += 1
        if r4 > r3 goto +1
        *(u8 *)(r2 + 0) = r4
        r0 = 0
        exit
    """
    spec = ProgramSpec.from_asm(text, prog_type="lwt_in")
    # the kernel refuses it (cannot write into packet): run it unverified
    for prog in sim_programs(spec, unsafe_skip_verifier=True).values():
        with pytest.raises(ProgramFault, match="read-only"):
            prog.test_run(IPV4)


def test_out_of_bounds_packet_read_faults() -> None:
    """A packet read past data_end (the verifier would refuse it) faults with the
    accessible window in the message."""
    text = """
        r2 = *(u32 *)(r1 + 76)
        r0 = *(u32 *)(r2 + 100)
        exit
    """
    spec = ProgramSpec.from_asm(text, prog_type="tc")
    # the kernel refuses it (invalid access to packet): run it unverified
    for prog in sim_programs(spec, unsafe_skip_verifier=True).values():
        with pytest.raises(ProgramFault, match="accessible range"):
            prog.test_run(IPV4)


def test_ld_abs_only_where_allowed() -> None:
    """LD_ABS needs an skb type that may use it (SOCKET_FILTER, SCHED_CLS/ACT)."""
    spec = ProgramSpec.from_asm("r6 = r1\nr0 = *(u8 *)skb[0]\nexit\n", prog_type="lwt_in")
    # the kernel's verifier refuses it too (BPF_LD_[ABS|IND] ... not allowed): run unverified
    for prog in sim_programs(spec, unsafe_skip_verifier=True).values():
        with pytest.raises(ProgramFault, match="LD_ABS"):
            prog.test_run(IPV4)


def test_l3_data_out_has_a_zeroed_ethernet_header() -> None:
    spec = ProgramSpec.from_asm(RET1, prog_type="socket")
    for prog in sim_programs(spec).values():
        r = prog.test_run(IPV4)
        assert r.data_out == bytes(14) + IPV4[14:]
        assert r.ctx_out is None


def test_ctx_out_reports_the_device_and_echoes_gso_size() -> None:
    spec = ProgramSpec.from_asm(RET1, prog_type="tc")
    for prog in sim_programs(spec).values():
        r = prog.test_run(IPV4, ctx(gso_size=1234))
        assert r.ctx_out is not None
        assert struct.unpack_from("<I", r.ctx_out, _SKB["ifindex"][0])[0] == 1
        assert struct.unpack_from("<I", r.ctx_out, _SKB["gso_size"][0])[0] == 1234
        assert struct.unpack_from("<I", r.ctx_out, _SKB["wire_len"][0])[0] == len(IPV4)


# ---------------------------------------------------------------------------- devices

HOST_DEVICES = host_devices()
DEVICE_PROG = """
    r0 = *(u32 *)(r1 + 4)
    r2 = *(u32 *)(r1 + 40)
    r2 <<= 8
    r0 |= r2
    r2 = *(u32 *)(r1 + 16)
    r2 <<= 16
    r0 |= r2
    exit
"""


@pytest.mark.parametrize("ifindex", sorted(HOST_DEVICES))
@pytest.mark.parametrize("ptype", ["tc", "socket", "lwt_out"])
def test_skb_on_host_devices(kernel, ptype: str, ifindex: int) -> None:
    """ctx_in->ifindex picks the device eth_type_trans compares the destination MAC
    with: the simulator, given the host's devices, classifies frames the same way."""
    dev = HOST_DEVICES[ifindex]
    spec = ProgramSpec.from_asm(DEVICE_PROG, prog_type=ptype)
    for dst in (dev.addr, dev.broadcast, b"\xff" * 6, bytes.fromhex("333300000001"), MAC_OTHER):
        frame = dst + IPV4[6:]
        assert_same(kernel, spec, frame, ctx(ifindex=ifindex), devices=HOST_DEVICES)


# ---------------------------------------------------------------------------- SkBuff


def test_skbuff_geometry_and_expand_head() -> None:
    """The operations packet helpers build on keep the packet region's window and
    the header offsets in step; expand_head moves the packet to a new region (stale
    pointers fault, as the verifier would have invalidated them)."""
    from netbpf.hooks.skb import SKB_HEADROOM, SkBuff
    from netbpf.vm.memory import AddressSpace, MemoryFault

    skb = SkBuff.for_test_run(IPV4)
    assert (skb.data, skb.len, skb.headroom) == (SKB_HEADROOM, len(IPV4), SKB_HEADROOM)
    mem = AddressSpace()
    skb.map(mem, writable=True)
    old_base = skb.region.base
    skb.mac_header = skb.data
    skb.pull(14)
    skb.network_header = skb.data
    assert (skb.region.lo, skb.region.hi) == (skb.data, skb.tail)
    assert mem.load(skb.addr(skb.data), 1) == 0x45
    with pytest.raises(MemoryFault):
        mem.load(skb.addr(skb.data - 1), 1)
    skb.trim(20)
    skb.put(4)
    assert skb.len == 24
    with pytest.raises(MemoryFault):
        skb.push(skb.headroom + 1)
    skb.expand_head(64)
    assert skb.headroom == SKB_HEADROOM + 14 + 64
    assert skb.region.base != old_base
    assert skb.bytes()[:20] == IPV4[14:34]
    assert skb.head[skb.mac_header : skb.mac_header + 14] == IPV4[:14]
    with pytest.raises(MemoryFault):
        mem.load(old_base + SKB_HEADROOM + 14, 1)
    assert mem.load(skb.addr(skb.data), 1) == 0x45


def test_l3_reprefix_grows_the_head_when_a_helper_used_the_headroom() -> None:
    """If the program left less than 14 bytes of headroom, test_run grows the head
    before pushing the zeroed Ethernet header (pskb_expand_head)."""
    from netbpf.hooks.testrun import prog_test_run_skb
    from netbpf.uapi import ProgramType
    from netbpf.vm.engine import load_executable

    def eat_headroom(env, *args: int) -> int:
        skb = env.state["skb"]
        skb.push(skb.headroom)
        skb.head[skb.data : skb.data + 4] = b"\xaa\xbb\xcc\xdd"
        return 0

    exe = load_executable(ProgramSpec.from_asm("call 5\nr0 = 1\nexit\n").insns)
    r = prog_test_run_skb(exe, ProgramType.SOCKET_FILTER, data_in=IPV4, helpers={5: eat_headroom})
    assert r.data_out[:14] == bytes(14)
    assert r.data_out[14:18] == b"\xaa\xbb\xcc\xdd"
    assert r.data_out[-(len(IPV4) - 14) :] == IPV4[14:]
