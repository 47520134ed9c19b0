"""Checksum helpers (tests/progs/helpers_csum.c), simulator against kernel:
destination NAT of IPv4 TCP/UDP packets with bpf_l3_csum_replace and
bpf_l4_csum_replace (sizes 2 and 4 with BPF_F_PSEUDO_HDR, and the bpf_csum_diff
difference form), every rewritten packet's checksums recomputed in Python; the UDP
"no checksum" zero kept by BPF_F_MARK_MANGLED_0; and random calls of either helper
(field values around 0x0000/0xffff, every flag, odd and out-of-range offsets)
compared byte for byte.  bpf_csum_diff itself is covered by test_helpers_xdp.py."""

from __future__ import annotations

import random
import struct

import pytest
from _helpers_common import Case, Loaded, assert_same, assert_sim_golden, sim_outcomes, skb_ctx
from _testrun import ETH_P_IP, eth, tcp, udp

from netbpf.helpers.csum import (
    csum_fold,
    csum_from32to16,
    csum_partial,
    csum_replace2,
    csum_replace4,
)

OBJ = "helpers_csum.c"


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_ok(pkt: bytes) -> bool:
    return _sum16(pkt[14:34]) == 0xFFFF


def l4_ok(pkt: bytes) -> bool:
    ip, l4 = pkt[14:34], pkt[34:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, ip[9], len(l4))
    return _sum16(pseudo + l4) == 0xFFFF


def with_checksums(pkt: bytes) -> bytes:
    b = bytearray(pkt)
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", ~_sum16(bytes(b[14:34])) & 0xFFFF)
    off = 34 + (16 if b[23] == 6 else 6)
    b[off : off + 2] = b"\0\0"
    ip, l4 = bytes(b[14:34]), bytes(b[34:])
    cs = ~_sum16(ip[12:20] + struct.pack("!BBH", 0, ip[9], len(l4)) + l4) & 0xFFFF
    if b[23] == 17 and cs == 0:
        cs = 0xFFFF
    b[off : off + 2] = struct.pack("!H", cs)
    return bytes(b)


def ipv4(proto: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst
    ) + (payload)


def _nat_cases() -> dict[str, Case]:
    rng = random.Random(1)
    c: dict[str, Case] = {}
    for i in range(40):
        proto = rng.choice([6, 17])
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        ports = (rng.randrange(65536), rng.randrange(65536))
        l4 = tcp(*ports, payload) if proto == 6 else udp(*ports, payload)
        src, dst = rng.randbytes(4), rng.randbytes(4)
        pkt = with_checksums(eth(ETH_P_IP, ipv4(proto, l4, src, dst)))
        new_ip, new_port = rng.randrange(1 << 32), rng.randrange(1, 65536)
        for prog in ("tc_nat", "tc_nat_diff"):
            c[f"{prog}-{i}"] = Case(OBJ, prog, pkt, skb_ctx(new_ip, new_port))
    # a UDP packet without checksum (0): BPF_F_MARK_MANGLED_0 leaves it alone
    zero = bytearray(
        with_checksums(eth(ETH_P_IP, ipv4(17, udp(1, 2, b"abc"), b"\1" * 4, b"\2" * 4)))
    )
    zero[40:42] = b"\0\0"
    for prog in ("tc_nat", "tc_nat_diff"):
        c[f"{prog}-udp0"] = Case(OBJ, prog, bytes(zero), skb_ctx(0, 0))
    c["lwt_nat"] = Case(OBJ, "lwt_nat", c["tc_nat-0"].data_in, skb_ctx())
    return c


def _op_cases() -> dict[str, Case]:
    rng = random.Random(7)
    base = eth(0x88B5, bytes(range(60)))
    c: dict[str, Case] = {}
    for i in range(300):
        b = bytearray(base)
        field = rng.choice([0, 0xFFFF, rng.randrange(65536), 0xFFFE, 1])
        b[20:22] = field.to_bytes(2, "little")
        frm = rng.choice([0, 0xFFFFFFFF, 0xFFFF, rng.randrange(1 << 32), field, 0x10000])
        to = rng.choice([0, 0xFFFFFFFF, 0xFFFF, rng.randrange(1 << 32), 1])
        size = rng.choice([0, 2, 4, 4, 2, 1, 3, 8])
        extra = rng.choice([0, 0x10, 0x20, 0x30, 0x40, 0x60, 0x70, 0x80, 0x100])
        off = rng.choice([20, 20, 20, 21, 0xFFFF, 0x10000, len(b) - 1, len(b) - 2])
        which = rng.choice([0, 1])
        c[f"tc_csum_op-{i}"] = Case(
            OBJ, "tc_csum_op", bytes(b), skb_ctx(off, frm, to, size | extra, which)
        )
    return c


NAT = _nat_cases()
CASES = {**NAT, **_op_cases()}


@pytest.fixture(scope="module")
def loaded(compile_bpf):
    lo = Loaded(compile_bpf)
    yield lo
    lo.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_csum_helpers_vs_kernel(kernel, loaded, name: str) -> None:
    assert_same(loaded, kernel, CASES[name], name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_csum_helpers_sim_golden(loaded, name: str) -> None:
    assert_sim_golden(loaded, CASES[name], name)


@pytest.mark.parametrize("name", sorted(NAT))
def test_nat_leaves_valid_checksums(loaded, name: str) -> None:
    """After the rewrite the IPv4 header and the TCP/UDP checksums verify, and the
    destination address and port are the new ones."""
    case = NAT[name]
    for engine, o in sim_outcomes(loaded, case).items():
        assert o.kind == "ok", f"{engine}: {o.brief()}"
        out = o.data_out
        if name.startswith("lwt"):
            assert o.retval == 0 and ip_ok(out) and out[30:34] == bytes([192, 168, 1, 1])
            continue
        assert o.retval == 0, f"{engine}: rc {o.retval}"
        assert ip_ok(out), engine
        if name.endswith("udp0"):
            assert out[40:42] == b"\0\0"
            continue
        assert l4_ok(out), engine
        new_ip, new_port = struct.unpack_from("<2I", case.ctx_in, 48)
        assert out[30:34] == struct.pack("<I", new_ip)
        assert out[36:38] == struct.pack("<H", new_port & 0xFFFF)


def test_csum_arithmetic() -> None:
    """Values the running kernel gave for bpf_csum_diff-style folding, and RFC 1624's
    incremental update example (0xdd2f with 0x5555 -> 0x3285 gives 0x0000)."""
    assert csum_from32to16(0xABCDEF01) == 0x9ACF
    assert csum_from32to16(0xFFFFFFFF) == 0xFFFF
    assert csum_from32to16(csum_partial(struct.pack("<I", 0x12345678), 0)) == 0x68AC
    # RFC 1624 section 4: the header checksum 0xdd2f after a 16-bit field changes
    # from 0x5555 to 0x3285 (all values as they sit in memory on a little-endian host)
    sw = lambda v: int.from_bytes(v.to_bytes(2, "big"), "little")  # noqa: E731
    assert sw(csum_replace2(sw(0xDD2F), sw(0x5555), sw(0x3285))) == 0x0000
    assert csum_replace4(0, 0, 0) == csum_fold(0xFFFFFFFF)
