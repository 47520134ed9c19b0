"""The helper registry and the base helpers (time, prandom, CPU id, trace_printk),
called from programs through both engines."""

from __future__ import annotations

import errno

import pytest

from netbpf.errors import NetbpfError, ProgramFault
from netbpf.helpers import DEFAULT_REGISTRY, HelperRegistry
from netbpf.helpers.base import format_trace_printk
from netbpf.isa.asm import assemble
from netbpf.uapi import HELPER_IDS, ProgramType
from netbpf.vm.engine import ENGINES, load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace

M64 = (1 << 64) - 1


def _env(prog_type: ProgramType = ProgramType.XDP, **kw: object) -> RunEnv:
    return RunEnv(AddressSpace(), helpers=DEFAULT_REGISTRY.for_prog_type(prog_type), **kw)  # type: ignore[arg-type]


def test_registry_register_lookup_and_filter() -> None:
    reg = HelperRegistry()

    @reg.helper("bpf_ktime_get_ns")
    def now(env: RunEnv, *a: int) -> int:
        return 1

    reg.register(HELPER_IDS["skb_store_bytes"], now, prog_types=[ProgramType.SCHED_CLS])
    assert reg["ktime_get_ns"].id == 5 and reg[5].name == "ktime_get_ns"
    assert "skb_store_bytes" in reg and 9 in reg and "map_lookup_elem" not in reg
    assert set(reg.for_prog_type(ProgramType.SCHED_CLS)) == {5, 9}
    assert set(reg.for_prog_type(ProgramType.XDP)) == {5}
    with pytest.raises(NetbpfError, match="already registered"):
        reg.register("ktime_get_ns", now)
    reg.register("ktime_get_ns", now, replace=True)
    with pytest.raises(NetbpfError, match="unknown helper name"):
        reg.register("no_such_helper", now)
    copy = reg.copy()
    copy.register("get_prandom_u32", now)
    assert "get_prandom_u32" not in reg and len(copy) == 3
    assert [s.id for s in copy] == [5, 7, 9]


def test_default_registry_has_base_helpers() -> None:
    names = {s.name for s in DEFAULT_REGISTRY}
    assert {
        "ktime_get_ns",
        "ktime_get_boot_ns",
        "ktime_get_coarse_ns",
        "get_prandom_u32",
        "get_smp_processor_id",
        "trace_printk",
    } <= names


@pytest.mark.parametrize("engine", ENGINES)
def test_time_cpu_and_prandom(engine: str) -> None:
    text = """
        call ktime_get_ns
        r6 = r0
        call ktime_get_boot_ns
        r6 += r0
        call ktime_get_coarse_ns
        r6 += r0
        call get_smp_processor_id
        r6 += r0
        call get_prandom_u32
        r0 <<= 32
        r0 |= r6
        exit
    """
    exe = load_executable(assemble(text), engine=engine)
    env = _env(ktime_ns=1000, state={"cpu": 3, "prandom_seed": 42})
    first = exe.run(env, 0)
    assert first & 0xFFFF_FFFF == 3003
    env2 = _env(ktime_ns=1000, state={"cpu": 3, "prandom_seed": 42})
    assert exe.run(env2, 0) == first  # seeded: reproducible
    assert exe.run(env2, 0) != first  # the generator state persists in env.state


def _printk_program(fmt: bytes) -> str:
    """Put ``fmt`` at r10-64 and "ok" at r10-8, then call trace_printk(fmt, len, r3=-5,
    r4=-1, r5=pointer to "ok")."""
    padded = fmt + bytes(-len(fmt) % 8)
    lines = []
    for k in range(0, len(padded), 8):
        lines.append(f"r1 = {int.from_bytes(padded[k : k + 8], 'little')} ll")
        lines.append(f"*(u64 *)(r10 {-64 + k}) = r1")
    lines += [
        "r1 = 0x6b6f", "*(u64 *)(r10 - 8) = r1",
        "r1 = r10", "r1 += -64", f"r2 = {len(fmt)}", "r3 = -5", "r4 = -1",
        "r5 = r10", "r5 += -8", "call trace_printk", "exit",
    ]  # fmt: skip
    return "\n".join(lines)


@pytest.mark.parametrize("engine", ENGINES)
def test_trace_printk_from_program(engine: str) -> None:
    env = _env()
    exe = load_executable(assemble(_printk_program(b"n=%d u=%u s=%s\0")), engine=engine)
    assert exe.run(env, 0) == len("n=-5 u=4294967295 s=ok")
    assert env.trace == ["n=-5 u=4294967295 s=ok"]
    # a fourth conversion: the kernel accepts three arguments at most
    exe = load_executable(assemble(_printk_program(b"%d %d %d %d\0")), engine=engine)
    assert exe.run(env, 0) == (-errno.EINVAL) & M64
    assert len(env.trace) == 1


def test_trace_printk_formatting() -> None:
    env = RunEnv(AddressSpace())
    assert format_trace_printk(env, b"%x %X %lu", [255, 255, M64]) == b"ff FF 18446744073709551615"
    assert format_trace_printk(env, b"%lld %c %%", [M64, 0x41, 0]) == b"-1 A %"
    assert format_trace_printk(env, b"[%5d|%-3u|%05x]", [7, 1, 0xAB, 0]) == b"[    7|1  |000ab]"
    assert format_trace_printk(env, b"%p", [0xFFFF888000001234]) == b"ffff888000001234"
    assert format_trace_printk(env, b"%s", [0x1234]) == b""  # unreadable: empty string
    for bad in (b"%q", b"%ls", b"%d %d %d %d", b"tab\x01", b"%lc"):
        assert format_trace_printk(env, bad, [1, 2, 3]) == -errno.EINVAL, bad


@pytest.mark.parametrize("engine", ENGINES)
def test_trace_printk_needs_nul_and_valid_pointer(engine: str) -> None:
    env = _env()
    text = (
        "r1 = 0x41\n*(u64 *)(r10 - 8) = r1\nr1 = r10\nr1 += -8\nr2 = {n}\ncall trace_printk\nexit"
    )
    exe = load_executable(assemble(text.format(n=1)), engine=engine)
    assert exe.run(env, 0) == (-errno.EINVAL) & M64  # "A" without NUL in 1 byte
    exe = load_executable(assemble(text.format(n=2)), engine=engine)
    assert exe.run(env, 0) == 1 and env.trace == ["A"]
    exe = load_executable(assemble(text.format(n=16)), engine=engine)
    with pytest.raises(ProgramFault, match="helper bpf_trace_printk#6"):
        exe.run(env, 0)  # 16 bytes from r10-8 leave the stack
