"""BPF_PROG_TEST_RUN for XDP, simulator against kernel: packet sizes from the
minimum to the largest the kernel takes (linear area plus 17 page fragments),
metadata (``ctx_in->data``), a linear area shorter than the packet
(``ctx_in->data_end``), RX queue selection, repeat, and every refusal."""

from __future__ import annotations

import struct

import pytest
from _testrun import (
    PACKETS,
    SHORT_PACKETS,
    assert_same,
    assert_sim_golden,
    digest,
    kernel_golden,
    sim_programs,
)

from netbpf import ProgramSpec
from netbpf.hooks.context import host_devices

# Reads every xdp_md field, the metadata (incrementing its first word), and rewrites
# the first destination MAC byte; the result folds in what it saw.
XDP_PROG = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = *(u32 *)(r1 + 8)
    r0 = r3
    r0 -= r2
    r5 = r2
    r5 -= r4
    r0 <<= 8
    r0 |= r5
    r6 = *(u32 *)(r1 + 12)
    r0 <<= 4
    r0 |= r6
    r6 = *(u32 *)(r1 + 16)
    r0 <<= 4
    r0 |= r6
    r7 = r4
    r7 += 4
    if r7 > r2 goto nometa
    r6 = *(u32 *)(r4 + 0)
    r6 += 1
    *(u32 *)(r4 + 0) = r6
    r0 += r6
nometa:
    r7 = r2
    r7 += 14
    if r7 > r3 goto out
    r6 = *(u8 *)(r2 + 11)
    r6 ^= 0xff
    *(u8 *)(r2 + 0) = r6
    r6 = *(u16 *)(r2 + 12)
    r0 += r6
out:
    exit
"""


def xdp_md(
    data: int = 0,
    data_end: int = 0,
    data_meta: int = 0,
    ingress_ifindex: int = 0,
    rx_queue_index: int = 0,
    egress_ifindex: int = 0,
) -> bytes:
    return struct.pack(
        "<6I", data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    )


def big(n: int) -> bytes:
    """An IPv4/UDP frame of exactly n bytes with a varied payload."""
    head = PACKETS["ipv4_tcp"][:14]
    body = bytes((i * 7 + 3) & 0xFF for i in range(n - 14))
    return head + body


PKT = PACKETS["ipv4_tcp"]
N = len(PKT)
META = bytes(range(0xA0, 0xA0 + 32))  # metadata placed in front of the frame

CASES: dict[str, tuple[bytes, bytes | None]] = {
    # id: (data_in, ctx_in)
    **{name: (pkt, None) for name, pkt in PACKETS.items()},
    **{name: (pkt, None) for name, pkt in SHORT_PACKETS.items()},
    "empty": (b"", None),
    "linear_max3520": (big(3520), None),
    "frag_1byte3521": (big(3521), None),
    "frags_4000": (big(4000), None),
    "frags_max73152": (big(3520 + 17 * 4096), None),
    "frags_too_many73153": (big(3521 + 17 * 4096), None),
    "ctx_exact": (PKT, xdp_md(0, N)),
    "ctx_zero": (PKT, xdp_md()),
    "ctx_empty_bytes": (PKT, b""),
    "ctx_short8": (PKT, xdp_md(0, N)[:8]),
    "ctx_short4": (PKT, xdp_md(0, N)[:4]),
    "ctx_zero_tail": (PKT, xdp_md(0, N) + bytes(40)),
    "ctx_nonzero_tail": (PKT, xdp_md(0, N) + b"\x00\x01"),
    "meta4": (META[:4] + PKT, xdp_md(4, N + 4)),
    "meta32": (META + PKT, xdp_md(32, N + 32)),
    "meta216": (bytes(184) + META + PKT, xdp_md(216, N + 216)),
    "meta220": (bytes(188) + META + PKT, xdp_md(220, N + 220)),
    "meta3": (META[:3] + PKT, xdp_md(3, N + 3)),
    "meta_leaves_13": (META[:4] + PKT[:13], xdp_md(4, 17)),
    "meta_leaves_14": (META[:4] + PKT[:14], xdp_md(4, 18)),
    "meta_past_end": (PKT, xdp_md(N + 4, N)),
    "linear_short20": (PKT, xdp_md(0, 20)),
    "linear_short_meta": (META[:8] + PKT, xdp_md(8, 30)),
    "linear_none_with_meta": (META[:8] + PKT, xdp_md(8, 8)),
    "data_end_past_len": (PKT, xdp_md(0, N + 1)),
    "data_meta_set": (PKT, xdp_md(0, N, 4)),
    "linear_capped_4000": (big(4000), xdp_md(0, 4000)),
    "linear_capped_meta": (META + big(4000), xdp_md(32, 4032)),
    "frags_after_short_linear": (big(10 + 17 * 4096), xdp_md(0, 10)),
    "frags_too_many_short_linear": (big(11 + 17 * 4096), xdp_md(0, 10)),
    "ifindex_lo": (PKT, xdp_md(0, N, 0, 1)),
    "ifindex_lo_queue1": (PKT, xdp_md(0, N, 0, 1, 1)),
    "queue_without_ifindex": (PKT, xdp_md(0, N, 0, 0, 1)),
    "ifindex_missing": (PKT, xdp_md(0, N, 0, 0x7FFF_FFF0)),
    "egress_ifindex_set": (PKT, xdp_md(0, N, 0, 0, 0, 1)),
    "ctx_over_a_page": (PKT, bytes(4097)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("section", ["xdp", "xdp.frags"])
def test_xdp_program(kernel, section: str, case: str) -> None:
    data_in, ctx_in = CASES[case]
    spec = ProgramSpec.from_asm(XDP_PROG, prog_type=section)
    want = assert_same(kernel, spec, data_in, ctx_in)
    kernel_golden(f"xdp/{section}/{case}", digest(want))


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("section", ["xdp", "xdp.frags"])
def test_xdp_program_sim(section: str, case: str) -> None:
    data_in, ctx_in = CASES[case]
    spec = ProgramSpec.from_asm(XDP_PROG, prog_type=section)
    assert_sim_golden(f"xdp/{section}/{case}", spec, data_in, ctx_in)


@pytest.mark.parametrize("repeat", [0, 1, 3])
@pytest.mark.parametrize("case", ["ipv4_tcp", "meta4", "ctx_exact"])
def test_xdp_repeat(kernel, case: str, repeat: int) -> None:
    """The same frame is reused: the metadata word and the MAC byte change on every run."""
    data_in, ctx_in = CASES[case]
    spec = ProgramSpec.from_asm(XDP_PROG, prog_type="xdp")
    want = assert_same(kernel, spec, data_in, ctx_in, repeat)
    kernel_golden(f"xdp_repeat/{case}/{repeat}", digest(want))


@pytest.mark.parametrize("repeat", [0, 1, 3])
@pytest.mark.parametrize("case", ["ipv4_tcp", "meta4", "ctx_exact"])
def test_xdp_repeat_sim(case: str, repeat: int) -> None:
    data_in, ctx_in = CASES[case]
    spec = ProgramSpec.from_asm(XDP_PROG, prog_type="xdp")
    assert_sim_golden(f"xdp_repeat/{case}/{repeat}", spec, data_in, ctx_in, repeat)


@pytest.mark.parametrize("section", ["xdp/devmap", "xdp/cpumap", "xdp.frags/devmap"])
def test_xdp_map_programs_cannot_be_test_run(kernel, section: str) -> None:
    spec = ProgramSpec.from_asm("r0 = 2\nexit\n", prog_type=section)
    got = assert_same(kernel, spec, PKT)
    assert got.kind == "refused"
    kernel_golden(f"xdp_map/{section}", digest(got))


@pytest.mark.parametrize("section", ["xdp/devmap", "xdp/cpumap", "xdp.frags/devmap"])
def test_xdp_map_programs_cannot_be_test_run_sim(section: str) -> None:
    spec = ProgramSpec.from_asm("r0 = 2\nexit\n", prog_type=section)
    assert_sim_golden(f"xdp_map/{section}", spec, PKT)


@pytest.mark.parametrize("retval", [0, 1, 2, 3, 4, 5, 0x7FFFFFFF, -1])
def test_xdp_return_values(kernel, retval: int) -> None:
    """Any r0 comes back as its low 32 bits (test_run does not police XDP actions)."""
    spec = ProgramSpec.from_asm(f"r0 = {retval}\nexit\n", prog_type="xdp")
    got = assert_same(kernel, spec, PKT)
    assert got.retval == retval & 0xFFFFFFFF


def test_xdp_frame_layout_in_sim() -> None:
    """data sits 256 bytes into the 4096-byte frame whatever the metadata length; the
    fragments hold what the linear area does not."""
    from netbpf.hooks.testrun import prog_test_run_xdp
    from netbpf.vm.engine import load_executable

    captured = {}

    def grab(env, *args: int) -> int:
        captured["xdp"] = env.state["xdp"]
        return 0

    exe = load_executable(
        ProgramSpec.from_asm("call 5\nr0 = 2\nexit\n").insns, engine="interpreter"
    )
    r = prog_test_run_xdp(
        exe, data_in=META[:8] + big(5000), ctx_in=xdp_md(8, 5008), helpers={5: grab}
    )
    xdp = captured["xdp"]
    assert (xdp.data_meta, xdp.data) == (248, 256)
    assert xdp.data_end == 248 + 3520 + 8
    assert [len(f) for f in xdp.frags] == [5008 - 3528]
    assert r.data_out == META[:8] + big(5000)
    assert r.ctx_out == xdp_md(8, 3528)
    for prog in sim_programs(ProgramSpec.from_asm("r0 = 2\nexit\n", prog_type="xdp")).values():
        assert prog.test_run(PKT).ctx_out is None


HOST_DEVICES = host_devices()


@pytest.mark.parametrize("ifindex", sorted(HOST_DEVICES))
def test_xdp_rx_queue_of_host_devices(kernel, ifindex: int) -> None:
    """ingress_ifindex/rx_queue_index name an RX queue of a real device (the simulator
    given the host's devices): the last queue works, one past it is EINVAL."""
    dev = HOST_DEVICES[ifindex]
    spec = ProgramSpec.from_asm(XDP_PROG, prog_type="xdp")
    for queue in (0, dev.num_rx_queues - 1, dev.num_rx_queues):
        assert_same(kernel, spec, PKT, xdp_md(0, N, 0, ifindex, queue), devices=HOST_DEVICES)
