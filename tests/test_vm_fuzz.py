"""No instruction stream makes the VM raise anything but a NetbpfError.

Hypothesis throws arbitrary slots (any opcode byte, any registers up to 15, any offset
and immediate) at load_executable and runs whatever loads, with memory, helpers and an
skb around so every path is reachable.  Loading may refuse (InstructionError); running
may fault (ProgramFault); nothing else may escape -- in particular no Python exception
from inside an engine, which would surface as an "internal VM error" fault -- and both
engines must agree on the outcome.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbpf.errors import InstructionError, NetbpfError, ProgramFault
from netbpf.isa.instruction import Instruction, decode_program
from netbpf.vm.engine import ENGINES, load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, CallbackRegion, Region

# opcodes the VM knows, so that most generated slots decode (random bytes almost never do)
VALID = sorted(
    {c | s for c in (0x04, 0x07) for s in (0x00, 0x08) for _ in [0]}
    | {0x04 | op | s for op in range(0, 0xE0, 0x10) for s in (0, 8)}
    | {0x07 | op | s for op in range(0, 0xE0, 0x10) for s in (0, 8)}
    | {0x05 | op | s for op in range(0, 0xF0, 0x10) for s in (0, 8)}
    | {0x06 | op | s for op in range(0, 0xE0, 0x10) for s in (0, 8)}
    | {0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6A, 0x72, 0x7A}
    | {0x63, 0x6B, 0x73, 0x7B, 0xC3, 0xDB, 0xCB, 0xD3, 0x18, 0x00}
    | {0x20, 0x28, 0x30, 0x40, 0x48, 0x50}
)

anything = st.builds(
    Instruction,
    st.integers(0, 255),
    st.integers(0, 15),
    st.integers(0, 15),
    st.integers(-(1 << 15), (1 << 15) - 1),
    st.integers(-(1 << 31), (1 << 31) - 1),
)
small_off = st.sampled_from([0, 0, 0, 1, 2, -1, -2, -3, 4, 8, -8, 16, 32, 64, -512, 0x7FFF])
some_imm = st.one_of(
    st.sampled_from([0, 0, 1, -1, 8, 16, 32, 64, 0x100, 0x110, 0xE1, 0xF1, 0x41, 5, 6, 12, 181]),
    st.integers(-(1 << 31), (1 << 31) - 1),
)


@st.composite
def plausible(draw: st.DrawFn) -> list[Instruction]:
    """One instruction that is usually well-formed: a known opcode, registers r0-r10,
    the fields its class uses, zeros elsewhere, short jumps."""
    op = draw(st.sampled_from(VALID))
    reg = st.integers(0, 10)
    cls, code = op & 7, op & 0xF0
    dst, src = draw(reg if cls in (2, 3) else st.integers(0, 9)), draw(reg)
    off, imm = draw(small_off), draw(some_imm)
    if cls in (4, 7):
        if op & 8:
            imm = 0
        else:
            src = 0
        if code == 0xB0:
            off = draw(st.sampled_from([0, 0, 8, 16, 32]))
        elif code in (0x30, 0x90):
            off = draw(st.sampled_from([0, 1]))
        else:
            off = 0
        if code == 0x80:
            src = imm = 0
        if code == 0xD0:
            src, imm = 0, draw(st.sampled_from([16, 32, 64]))
    elif cls in (5, 6):
        off = draw(st.integers(-3, 6))
        if code in (0x00, 0x80, 0x90, 0xE0):  # ja, call, exit, may_goto
            dst = src = 0
            if code == 0x00 and cls == 6:
                imm, off = off, 0
            elif code == 0x80:
                off, src = 0, draw(st.sampled_from([0, 0, 1]))
                imm = (
                    draw(st.sampled_from([1, 5, 6, 181, 7]))
                    if src == 0
                    else draw(st.integers(-3, 6))
                )
                if op & 8:  # callx
                    src, imm = 0, 0
            else:
                imm = 0
        elif op & 8:
            imm = 0
        else:
            src = 0
    elif op == 0x18:
        return [Instruction(0x18, dst, draw(st.sampled_from([0, 0, 4])), 0, draw(st.integers(-3, 6))),
                Instruction(0, 0, 0, 0, imm)]  # fmt: skip
    elif cls == 0:  # LD_ABS / LD_IND
        dst = off = 0
        src = src if op & 0x40 else 0
        imm = draw(st.integers(-4, 44))
    elif op & 0xE0 == 0xC0:  # atomics
        imm = draw(
            st.sampled_from(
                [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1, 0x100, 0x110]
            )
        )
    elif cls == 1 or cls == 3:
        imm = 0
    elif cls == 2:
        src = 0
    return [Instruction(op, dst, src, off, imm)]


slot = st.one_of(*[plausible()] * 9, anything.map(lambda i: [i]))


def _env() -> tuple[RunEnv, int]:
    mem = AddressSpace()
    base = mem.map(Region("data", bytearray(range(64))))
    mem.map(Region("rodata", bytearray(16), writable=False))
    ctx = mem.map(CallbackRegion("ctx", 16, lambda o, s: o, lambda o, s, v: None))
    pkt = bytes(range(40))

    def skb_load(off: int, size: int) -> int | None:
        if off < 0 or off + size > len(pkt):
            return None
        return int.from_bytes(pkt[off : off + size], "big")

    helpers = {
        1: lambda env, *a: a[0] ^ a[1],
        5: lambda env, *a: 123,
        6: lambda env, *a: env.mem.load(a[0], 1),  # faults on bad pointers
        181: lambda env, n, fn, *a: sum(env.call_subprog(fn, i) for i in range(n & 3)),
    }
    env = RunEnv(mem, helpers=helpers, skb_load=skb_load, insn_limit=300)
    assert ctx
    return env, base


def _outcome(insns: list[Instruction], engine: str) -> object:
    try:
        exe = load_executable(insns, engine=engine, name="fuzz")
    except InstructionError as e:
        return ("refused", e.index)
    env, base = _env()
    try:
        r0 = exe.run(env, base, r2=base + 8)
    except ProgramFault as f:
        assert "internal" not in f.reason, f
        return (type(f).__name__, f.index, f.reason, env.insn_count)
    except NetbpfError as e:  # pragma: no cover - would be a finding
        raise AssertionError(f"unexpected {type(e).__name__}: {e}") from e
    return (r0, env.insn_count)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(slot, min_size=1, max_size=16), st.sampled_from([None, 0x95]))
def test_random_slots_only_raise_netbpf_errors(
    parts: list[list[Instruction]], tail: int | None
) -> None:
    insns = [i for p in parts for i in p]
    if tail is not None:
        insns = [*insns, Instruction(tail)]
    results = [_outcome(insns, engine) for engine in ENGINES]
    assert results[0] == results[1]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=160).filter(lambda b: len(b) % 8 == 0))
def test_random_bytes(raw: bytes) -> None:
    insns = decode_program(raw)
    results = [_outcome(insns, engine) for engine in ENGINES]
    assert results[0] == results[1]
