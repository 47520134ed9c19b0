"""XDP packet helpers (tests/progs/helpers_xdp.c), simulator against kernel:
bpf_xdp_adjust_head (encap/decap, limits in both directions, with metadata),
bpf_xdp_adjust_meta, bpf_xdp_adjust_tail on linear and multi-buffer frames,
bpf_xdp_load_bytes/store_bytes across fragments, bpf_xdp_get_buff_len, bpf_redirect
and bpf_csum_diff -- retval, data_out and ctx_out byte for byte, errors included."""

from __future__ import annotations

import struct

import pytest
from _helpers_common import Case, Loaded, assert_same, assert_sim_golden, xdp_md
from _testrun import ETH_P_IP, PACKETS, eth, tcp, udp

from netbpf import ProgramSpec, SimBackend
from netbpf.errors import ProgramFault

OBJ = "helpers_xdp.c"
ETH_P_TEST = 0x88B5
LINEAR_MAX = 3520  # linear room of a test_run frame without metadata
FRAME_ROOM = 4096 - 320  # data_end may reach this offset from the frame start


def xframe(a: int = 0, b: int = 0, op: int = 0, n: int = 0, total: int = 64) -> bytes:
    """A test frame: Ethernet header, the program's parameters, a varied payload."""
    head = bytes(6) + bytes.fromhex("020000000002") + struct.pack("!H", ETH_P_TEST)
    params = struct.pack("<iiII", a, b, op, n)
    body = bytes((i * 7 + 0x11) & 0xFF for i in range(total - len(head) - len(params)))
    return head + params + body


def ipv4(proto: int, payload: bytes, *, src: bytes, dst: bytes) -> bytes:
    hdr = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, 0, 64, proto, 0, src, dst)
    )
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    hdr[10:12] = struct.pack("!H", ~s & 0xFFFF)
    return bytes(hdr) + payload


INNER = ipv4(6, tcp(payload=b"inner"), src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]))
IPIP = eth(ETH_P_IP, ipv4(4, INNER, src=bytes([192, 0, 2, 1]), dst=bytes([192, 0, 2, 2])))
META = bytes(range(0x40, 0x50))


def _cases() -> dict[str, Case]:
    c: dict[str, Case] = {}

    def add(name: str, prog: str, data: bytes, ctx: bytes | None = None) -> None:
        c[f"{prog}-{name}"] = Case(OBJ, prog, data, ctx)

    # adjust_head: grow up to the xdp_frame area (256 - 40 bytes), shrink down to 14
    for a in (0, -1, -14, -20, -216, -217, -256, 10, 36, 50, 51, 100, -(1 << 31)):
        add(f"a{a}", "xdp_head", xframe(a=a))
    for a in (0, -4, -200, -201, 4, 16):
        add(f"meta16-a{a}", "xdp_head", META + xframe(a=a), xdp_md(16, 16 + 64))
    # adjust_meta: multiples of 4, at most 255 bytes, not into the xdp_frame area
    for a in (0, -4, -8, -3, 4, -216, -220, -252, -256):
        add(f"a{a}", "xdp_meta", xframe(a=a))
    for a, b in ((-8, -20), (-8, -200), (-200, -20), (-40, -200), (-216, -4), (-4, 10)):
        add(f"a{a}-b{b}", "xdp_meta", xframe(a=a, b=b))
    for a, b in ((0, 0), (4, 0), (16, 0), (-4, 0), (0, -20), (0, -200), (0, 10)):
        add(f"meta16-a{a}-b{b}", "xdp_meta", META + xframe(a=a, b=b), xdp_md(16, 16 + 64))
    # adjust_tail on a linear frame: zero-filled growth to frame size - 320
    grow_max = FRAME_ROOM - 256 - 64
    for a, b in (
        (0, 0), (1, 0), (100, 0), (grow_max, 0), (grow_max + 1, 0), (-50, 0), (-51, 0),
        (50, -100), (-30, 20), (-(1 << 31), 0),
    ):  # fmt: skip
        add(f"a{a}-b{b}", "xdp_tail", xframe(a=a, b=b))
    # ... and on multi-buffer frames: growth inside the last fragment's page,
    # shrinking frees whole fragments, then eats into the linear part
    for total in (4000, LINEAR_MAX + 4096, LINEAR_MAX + 2 * 4096 + 7):
        last = (total - LINEAR_MAX) % 4096 or 4096
        frags = total - LINEAR_MAX
        for a, b in (
            (0, 0), (10, 0), (4096 - last, 0), (4096 - last + 1, 0), (-10, 0),
            (-last, 0), (-frags, 0), (-frags - 5, 0), (-(total - 14), 0),
            (-(total - 13), 0), (-frags, -10), (-100, 50),
        ):  # fmt: skip
            add(f"{total}-a{a}-b{b}", "xdp_tail_frags", xframe(a=a, b=b, total=total))
    # load/store bytes, across the linear part and the fragments
    for total in (64, 4000, LINEAR_MAX + 4096 + 100):
        for a, b, op, n in (
            (0, 0, 0, 1), (0, 0, 1, 4), (10, 20, 1, 14), (total - 64, 0, 1, 64),
            (total - 63, 0, 1, 64), (total - 128, 5, 1, 128), (3500, 3510, 1, 64),
            (LINEAR_MAX - 7, 0, 1, 14), (0xFFFF, 0, 0, 1), (0x10000, 0, 0, 1),
            (-1, 0, 0, 1), (5, total - 1, 1, 4),
        ):  # fmt: skip
            prog = "xdp_bytes_frags" if total > LINEAR_MAX else "xdp_bytes"
            add(f"{total}-a{a}-b{b}-op{op}-n{n}", prog, xframe(a=a, b=b, op=op, n=n, total=total))
    for a, b in ((1, 0), (5, 0), (1, 1), (0, 2)):
        add(f"a{a}-b{b}", "xdp_redirect", xframe(a=a, b=b))
    for op in range(11):
        for seed in (0, 1, -1, 0x12345678):
            add(f"op{op}-seed{seed}", "xdp_csum_diff", xframe(a=seed, op=op, total=700))
    # IP-in-IP encapsulation and decapsulation with real headers
    for name, pkt in (
        ("ipv4_tcp", PACKETS["ipv4_tcp"]),
        ("ipv6", PACKETS["ipv6_udp"]),
        ("ipip", IPIP),
        ("arp", PACKETS["min14_arp"]),
    ):
        add(name, "xdp_encap", pkt)
        add(name, "xdp_decap", pkt)
    add("meta8", "xdp_encap", META[:8] + PACKETS["ipv4_tcp"], xdp_md(8, 8 + 59))
    # repeated runs work on the same frame
    for prog, data in (
        ("xdp_head", xframe(a=-4)),
        ("xdp_tail", xframe(a=10)),
        ("xdp_meta", xframe(a=-4)),
        ("xdp_encap", PACKETS["ipv4_tcp"]),
        ("xdp_tail_frags", xframe(a=-100, total=4000)),
    ):
        c[f"{prog}-repeat5"] = Case(OBJ, prog, data, None, 5)
    # adjust_head on a multi-buffer frame moves only the linear part
    for a in (-20, 14, 3520 - 14, 3520 - 13):
        add(f"frags-a{a}", "xdp_head", xframe(a=a, total=4000))
    add("udp", "xdp_encap", eth(ETH_P_IP, INNER[:9] + b"\x11" + INNER[10:20] + udp()))
    return c


CASES = _cases()


@pytest.fixture(scope="module")
def loaded(compile_bpf):
    lo = Loaded(compile_bpf)
    yield lo
    lo.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_xdp_helpers_vs_kernel(kernel, loaded, name: str) -> None:
    assert_same(loaded, kernel, CASES[name], name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_xdp_helpers_sim_golden(loaded, name: str) -> None:
    assert_sim_golden(loaded, CASES[name], name)


def test_encap_then_decap_restores_the_frame(loaded) -> None:
    """Semantics, not only equality: encapsulation adds a valid outer IPv4 header
    (bpf_csum_diff gave its checksum), decapsulation gives back the original frame."""
    pkt = PACKETS["ipv4_tcp"]
    enc = loaded.sim(OBJ, "fast").programs["xdp_encap"].test_run(pkt)
    assert enc.retval == 3  # XDP_TX
    outer = enc.data_out[14:34]
    assert len(enc.data_out) == len(pkt) + 20 and outer[9] == 4
    words = struct.unpack("!10H", outer)
    s = sum(words)
    assert (s & 0xFFFF) + (s >> 16) == 0xFFFF  # the header sums to all ones
    dec = loaded.sim(OBJ, "fast").programs["xdp_decap"].test_run(enc.data_out)
    assert dec.retval == 3 and dec.data_out == pkt


STALE = """
    r6 = r1
    r7 = *(u32 *)(r6 + 0)
    r8 = *(u32 *)(r6 + 4)
    r2 = r7
    r2 += 14
    if r2 > r8 goto out
    r1 = r6
    r2 = 0
    call xdp_adjust_head
    r0 = *(u8 *)(r7 + 0)
out:
    exit
"""


def test_stale_packet_pointer_faults_in_sim() -> None:
    """A packet pointer taken before bpf_xdp_adjust_head is dead afterwards (even
    when the helper moved nothing): the simulator faults at the access instead of
    reading moved memory.  (The kernel's verifier refuses the program; see below.)"""
    spec = ProgramSpec.from_asm(STALE, prog_type="xdp")
    for engine in ("fast", "interpreter"):
        # the kernel refuses it (test below): run it unverified to test the sandbox
        prog = SimBackend(engine=engine, unsafe_skip_verifier=True).load_program(spec)
        with pytest.raises(ProgramFault, match="no region"):
            prog.test_run(PACKETS["ipv4_tcp"])


def test_stale_packet_pointer_refused_by_kernel(kernel) -> None:
    from netbpf.errors import KernelError

    with pytest.raises(KernelError) as e:
        kernel.load_program(ProgramSpec.from_asm(STALE, prog_type="xdp"))
    assert "invalid mem access" in (e.value.log or "")


def test_reloaded_pointers_after_adjust_head_work(loaded) -> None:
    """After the call, ctx->data gives the new address and the new bytes."""
    res = loaded.sim(OBJ, "interpreter").programs["xdp_head"].test_run(xframe(a=-4))
    assert res.data_out[0] == 0xC3 and len(res.data_out) == 68
