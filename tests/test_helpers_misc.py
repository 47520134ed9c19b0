"""Helpers without a packet of their own (tests/progs/helpers_misc.c): bpf_snprintf
(integers with widths and flags, %s, %c, %%, IPv4/IPv6 addresses, truncation, size
0) and bpf_strncmp byte for byte with the kernel; the clocks and ids by their rules;
bpf_perf_event_output from tc and XDP with the packet-sample flags (every error the
kernel returns for an array without events, and the sample a consumer gets in the
simulator).  The format refusals the kernel's verifier makes at load time are
checked on the simulator's formatter directly."""

from __future__ import annotations

import errno
import struct

import pytest
from _helpers_common import Case, Loaded, assert_same, assert_sim_golden, sim_outcomes
from _testrun import eth

from netbpf.helpers.misc import (
    bprintf,
    get_current_pid_tgid,
    get_current_uid_gid,
    jiffies64,
    ktime_get_tai_ns,
    trace_vprintk,
)
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, Region

OBJ = "helpers_misc.c"
ETH_P_TEST = 0x88B5


def _cases() -> dict[str, Case]:
    c: dict[str, Case] = {}
    for sel in range(6):
        c[f"tc_snprintf-{sel}"] = Case(
            OBJ, "tc_snprintf", eth(ETH_P_TEST, bytes([sel]) + bytes(150))
        )
    for n, s in (
        (1, b"n"), (3, b"net"), (6, b"netbpf"), (8, b"netbpf\0x"), (8, b"netbpg\0\0"),
        (6, b"netbpa"), (8, b"netbpf12"), (3, b"\0\0\0"), (1, b"\xff"),
    ):  # fmt: skip
        pkt = eth(ETH_P_TEST, bytes([n]) + s.ljust(8, b"\0") + bytes(40))
        c[f"tc_strncmp-{n}-{s.hex()}"] = Case(OBJ, "tc_strncmp", pkt)
    c["xdp_clocks"] = Case(OBJ, "xdp_clocks", eth(ETH_P_TEST, bytes(60)))
    for fl in (
        0, 1, 3, 4, 5, 0xFFFFFFFF, 1 << 32, 64 << 32, 82 << 32, 83 << 32, 1 << 52,
        (0xFFFFF << 32) | 0xFFFFFFFF, 1 << 63,
    ):  # fmt: skip
        pkt = eth(ETH_P_TEST, struct.pack("<Q", fl) + bytes(60))
        for prog in ("tc_perf", "xdp_perf"):
            c[f"{prog}-{fl:#x}"] = Case(OBJ, prog, pkt)
    return c


CASES = _cases()


@pytest.fixture(scope="module")
def loaded(compile_bpf):
    lo = Loaded(compile_bpf)
    yield lo
    lo.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_misc_helpers_vs_kernel(kernel, loaded, name: str) -> None:
    assert_same(loaded, kernel, CASES[name], name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_misc_helpers_sim_golden(loaded, name: str) -> None:
    assert_sim_golden(loaded, CASES[name], name)


def test_snprintf_text(loaded) -> None:
    """What the formats produce (the kernel gives the same bytes, see above)."""
    want = {
        0: b"d=-42 u=4294967294 x=beef X=BEEF ld=-1234567890123 lu=18446744073709551615 "
        b"llx=123456789abcdef",
        1: b"[   42][-42  ][00007][+9][ 9][  1][00000abc][d   |]",
        2: b"s=netbpf c=Z pct=% end",
        3: b"10.1.2.3 010.001.002.003 2001:0db8:0000:0000:0000:0000:0000:0001 "
        b"20010db8000000000000000000000001 2001:0db8:0000:0000:0000:0000",
        4: b"d=-42 u",
    }
    for sel, text in want.items():
        o = sim_outcomes(loaded, CASES[f"tc_snprintf-{sel}"])["fast"]
        assert o.data_out[16 : 16 + 128].split(b"\0")[0] == text
    assert sim_outcomes(loaded, CASES["tc_snprintf-0"])["fast"].retval == len(want[0]) + 1


def _fmt_env() -> tuple[RunEnv, int]:
    mem = AddressSpace()
    base = mem.map(Region("strings", bytearray(b"hello\0" + bytes(58))))
    return RunEnv(mem), base


@pytest.mark.parametrize(
    ("fmt", "args", "want"),
    [
        (b"%d %d", [1], -errno.EINVAL),  # more conversions than arguments
        (b"%q", [1], -errno.EINVAL),
        (b"%sx", [0], -errno.EINVAL),  # %s must end the token
        (b"%px", [0x1234], b"0000000000001234"),
        (b"%pK", [0x1234], b"0000000000001234"),
        (b"%pZ", [0], -errno.EINVAL),
        (b"%ld", [1], b"1"),
        (b"%hd", [1], -errno.EINVAL),
        (b"%lld|%llu", [-1 & (2**64 - 1), -1 & (2**64 - 1)], b"-1|18446744073709551615"),
        (b"%5s|%-3c|", [0, 0x41], None),
        (b"tab\there", [], b"tab\there"),
        (b"bell\x07", [], -errno.EINVAL),
        (b"100%%", [], b"100%"),
        (b"%d", [1, 2, 3], b"1"),  # extra arguments are fine
    ],
)
def test_bprintf_rules(fmt: bytes, args: list[int], want: bytes | int | None) -> None:
    env, base = _fmt_env()
    args = [base if (fmt.startswith(b"%5s") and i == 0) else a for i, a in enumerate(args)]
    got = bprintf(env, fmt, args)
    if want is None:
        assert got == b"hello|A  |"
    else:
        assert got == want


def test_clock_state() -> None:
    """jiffies64 follows the virtual clock from the kernel's INITIAL_JIFFIES (300 s
    before the 32-bit wrap) at env.state['hz'], or is set outright; TAI is the clock
    plus a settable offset."""
    env = RunEnv(AddressSpace(), ktime_ns=2_000_000_000)
    assert jiffies64(env, 0, 0, 0, 0, 0) == (2**32 - 300_000) + 2000
    env.state["hz"] = 250
    assert jiffies64(env, 0, 0, 0, 0, 0) == (2**32 - 75_000) + 500
    env.state["jiffies64"] = 7
    assert jiffies64(env, 0, 0, 0, 0, 0) == 7
    env.state["tai_offset_ns"] = 37_000_000_000
    assert ktime_get_tai_ns(env, 0, 0, 0, 0, 0) == 39_000_000_000


def test_perf_event_output_sample(loaded) -> None:
    """With a consumer on the simulated array, the sample is the 8 bytes of data
    followed by the first ``flags >> 32`` bytes of the packet (padded to 8 bytes as
    the kernel stores samples)."""
    coll = loaded.sim(OBJ, "fast")
    events = coll.maps["events"].map
    buf = events.open_buffer()
    try:
        for prog in ("tc_perf", "xdp_perf"):
            flags = (20 << 32) | 0xFFFFFFFF  # 20 packet bytes, the current CPU
            pkt = eth(ETH_P_TEST, struct.pack("<Q", flags) + bytes(range(60)))
            res = coll.programs[prog].test_run(pkt)
            assert res.retval == 0
            (sample,) = buf.consume()
            want = struct.pack("<Q", 0x1122334455667788) + pkt[:20]
            assert sample.data[: len(want)] == want
    finally:
        buf.close()


def test_trace_vprintk_and_task_ids() -> None:
    """bpf_trace_vprintk formats up to 12 array arguments into env.trace and returns
    the length; the task ids come from env.state."""
    env, base = _fmt_env()
    env.mem.write(base + 8, b"v=%d %s\0")
    env.mem.write(base + 32, struct.pack("<QQ", -5 & (2**64 - 1), base))
    assert trace_vprintk(env, base + 8, 9, base + 32, 16, 0) == len(b"v=-5 hello")
    assert env.trace == ["v=-5 hello"]
    assert trace_vprintk(env, base + 8, 9, base + 32, 12, 0) == -errno.EINVAL & (2**64 - 1)
    assert trace_vprintk(env, base + 8, 9, base + 32, 13 * 8, 0) == -errno.EINVAL & (2**64 - 1)
    env.state.update(pid=10, tgid=20, uid=1000, gid=100)
    assert get_current_pid_tgid(env, 0, 0, 0, 0, 0) == (20 << 32) | 10
    assert get_current_uid_gid(env, 0, 0, 0, 0, 0) == (100 << 32) | 1000


_MINE = {f"netbpf.helpers.{m}" for m in ("csum", "misc", "packet", "skb", "xdp")}
_PROBE_TYPES = (
    "SOCKET_FILTER", "SCHED_CLS", "SCHED_ACT", "CGROUP_SKB", "LWT_IN", "LWT_OUT",
    "LWT_XMIT", "XDP", "SK_SKB",
)  # fmt: skip


def test_helper_availability_matches_kernel(kernel) -> None:
    """Each packet/misc helper is registered for exactly the networking program types
    the kernel offers it to: the verifier refuses a call with "unknown func" (or
    "cannot use helper") for the others."""
    from netbpf import ProgramSpec
    from netbpf.errors import KernelError
    from netbpf.helpers import DEFAULT_REGISTRY
    from netbpf.uapi import ProgramType

    wrong = []
    for spec in DEFAULT_REGISTRY:
        if spec.fn.__module__ not in _MINE:
            continue
        for tname in _PROBE_TYPES:
            ptype = ProgramType[tname]
            prog = ProgramSpec.from_asm(f"call {spec.id}\nr0 = 0\nexit", prog_type=tname.lower())
            try:
                kernel.load_program(prog).close()
                offered = True
            except KernelError as e:
                log = e.log or ""
                offered = not ("unknown func" in log or "cannot use helper" in log)
            if offered != spec.allowed(ptype):
                wrong.append(f"{spec.name} on {tname}: kernel {offered}, sim {not offered}")
    assert not wrong, "\n".join(wrong)


def test_docs_list_every_helper() -> None:
    """docs/helpers.md names every helper these modules register."""
    from pathlib import Path

    from netbpf.helpers import DEFAULT_REGISTRY

    doc = (Path(__file__).parent.parent / "docs" / "helpers.md").read_text()
    missing = [
        s.name
        for s in DEFAULT_REGISTRY
        if s.fn.__module__ in _MINE and f"`bpf_{s.name}`" not in doc
    ]
    assert not missing
