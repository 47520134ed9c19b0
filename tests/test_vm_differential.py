"""The fast engine agrees with the reference interpreter, bit for bit.

Hypothesis generates programs -- straight-line and forward-branching code over every
ALU/ALU64 operation (incl. sdiv/smod, movsx, byte swaps), JMP/JMP32 conditions,
gotol, may_goto, LD_IMM64, loads/stores/atomics on the stack (through r10 and through
a computed pointer) and on a data region (in and out of bounds), and the occasional
backward jump under a small instruction budget -- and runs each in both engines.  An
epilogue stores r0-r8 into the data region; we compare the outcome (r0, or the fault's
class, index and reason), the instruction count, the data region and the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbpf.errors import InstructionError, ProgramFault
from netbpf.isa.instruction import Instruction as I
from netbpf.vm import fast
from netbpf.vm.engine import load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import FIRST_SLOT, AddressSpace, CallbackRegion, Region

M64 = (1 << 64) - 1
DATA_SIZE = 64
OUT = DATA_SIZE  # r0..r8 are stored after the data bytes
CTX_BASE = FIRST_SLOT << 32  # the first region mapped: the computed ctx

INTERESTING = [0, 1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000,
               0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, (1 << 32) + 5, 1 << 63,
               (1 << 63) - 1, M64, M64 - 1]  # fmt: skip
IMMS = [0, 1, -1, 2, -2, 3, 5, 7, 8, 16, 31, 32, 63, 64, 0x7FFF_FFFF, -0x8000_0000, 0xFF, -8]

ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0]
JMP_OPS = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0]
ATOMIC_IMMS = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1]
SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}

regs = st.one_of(st.integers(0, 2), st.integers(0, 8))  # dependencies are likelier in r0-r2
values = st.one_of(st.sampled_from(INTERESTING), st.integers(0, M64))
imms = st.one_of(st.sampled_from(IMMS), st.integers(-(1 << 31), (1 << 31) - 1))


@dataclass
class Jump:
    """A placeholder: a jump whose target is an item index (resolved to slots later)."""

    opcode: int
    dst: int
    src: int
    imm: int
    rel_items: int  # target item = this item + 1 + rel_items (clamped to the epilogue)
    wide: bool = False  # gotol (offset in imm)


Item = list[I] | Jump


@st.composite
def alu(draw: st.DrawFn) -> Item:
    cls = draw(st.sampled_from([0x04, 0x07]))
    op = draw(st.sampled_from([*ALU_OPS, 0xD0]))
    dst, src = draw(regs), draw(regs)
    if op == 0xD0:  # END / BSWAP
        width = draw(st.sampled_from([16, 32, 64]))
        x = draw(st.booleans()) if cls == 0x04 else False
        return [I(cls | op | (0x08 if x else 0), dst, 0, 0, width)]
    if op == 0x80:  # NEG
        return [I(cls | op, dst)]
    x = draw(st.booleans())
    off = 0
    if op in (0x30, 0x90):  # DIV / MOD: unsigned or signed
        off = draw(st.sampled_from([0, 1]))
    if op == 0xB0 and x:  # MOV / MOVSX
        off = draw(st.sampled_from([0, 8, 16, 32] if cls == 0x07 else [0, 8, 16]))
    if x:
        return [I(cls | op | 0x08, dst, src, off, 0)]
    return [I(cls | op, dst, 0, off, draw(imms))]


@st.composite
def cond_jump(draw: st.DrawFn) -> Item:
    cls = draw(st.sampled_from([0x05, 0x06]))
    op = draw(st.sampled_from(JMP_OPS))
    x = draw(st.booleans())
    rel = draw(st.integers(0, 6))
    if x:
        return Jump(cls | op | 0x08, draw(regs), draw(regs), 0, rel)
    return Jump(cls | op, draw(regs), 0, draw(imms), rel)


@st.composite
def other_jump(draw: st.DrawFn) -> Item:
    kind = draw(st.sampled_from(["ja", "gotol", "may_goto", "back"]))
    if kind == "back":
        return Jump(0x05, 0, 0, 0, -draw(st.integers(1, 5)))
    rel = draw(st.integers(0, 5))
    if kind == "ja":
        return Jump(0x05, 0, 0, 0, rel)
    if kind == "gotol":
        return Jump(0x06, 0, 0, 0, rel, wide=True)
    return Jump(0xE5, 0, 0, 0, rel)


@st.composite
def memory(draw: st.DrawFn) -> Item:
    size = draw(st.sampled_from([1, 2, 4, 8]))
    where = draw(st.sampled_from(["stack", "stack_ptr", "data", "data_oob"]))
    if where in ("stack", "stack_ptr"):
        off = -draw(st.integers(size, 512))
        base = 10
    else:
        hi = DATA_SIZE - size if where == "data" else DATA_SIZE + 16
        off = draw(st.integers(-8 if where == "data_oob" else 0, hi))
        base = 9
    pre: list[I] = []
    if where == "stack_ptr":
        ptr = draw(regs)
        split = draw(st.integers(-64, 64))
        pre = [I(0xBF, ptr, 10), I(0x07, ptr, 0, 0, off - split)]
        base, off = ptr, split
    if draw(st.integers(0, 3)) == 0:
        # the computed ctx region: a 4-byte field that reads as a 64-bit pointer (as
        # xdp_md->data does); engines must not assume a load fits its size
        reg = draw(regs)
        return [
            I(0x18, reg, 0, 0, _s32(CTX_BASE & 0xFFFF_FFFF)),
            I(0, 0, 0, 0, _s32(CTX_BASE >> 32)),
            I(0x61, draw(regs), reg, 4 * draw(st.integers(0, 3))),
        ]
    kind = draw(st.sampled_from(["ldx", "ldxsx", "st", "stx", "atomic"]))
    sz = SIZES[size]
    if kind == "ldx":
        return [*pre, I(0x61 | sz, draw(regs), base, off)]
    if kind == "ldxsx" and size != 8:
        return [*pre, I(0x81 | sz, draw(regs), base, off)]
    if kind == "st":
        return [*pre, I(0x62 | sz, base, 0, off, draw(imms))]
    if kind == "atomic" and size in (4, 8):
        return [*pre, I(0xC3 | sz, base, draw(regs), off, draw(st.sampled_from(ATOMIC_IMMS)))]
    return [*pre, I(0x63 | sz, base, draw(regs), off)]


@st.composite
def ld_imm64(draw: st.DrawFn) -> Item:
    v = draw(values)
    return [I(0x18, draw(regs), 0, 0, _s32(v & 0xFFFF_FFFF)), I(0, 0, 0, 0, _s32(v >> 32))]


def _s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


items = st.one_of(
    alu(), alu(), alu(), cond_jump(), cond_jump(), other_jump(), memory(), memory(), ld_imm64()
)


def _layout(
    prologue: list[I], body: list[Item], latch: list[I] | None, latch_jump: Jump | None
) -> list[I]:
    """Resolve the body's jumps (item-relative; past the end = the latch or the
    epilogue; before the start = the first item) and append the epilogue."""
    starts = []
    pos = len(prologue)
    for it in body:
        starts.append(pos)
        pos += 1 if isinstance(it, Jump) else len(it)
    end_at = pos  # the latch, or the epilogue when there is no loop
    out = list(prologue)
    for k, it in enumerate(body):
        if isinstance(it, Jump):
            t = k + 1 + it.rel_items
            target = starts[t] if 0 <= t < len(body) else (end_at if t >= len(body) else starts[0])
            rel = target - (starts[k] + 1)
            if it.wide:
                out.append(I(it.opcode, 0, 0, 0, rel))
            else:
                out.append(I(it.opcode, it.dst, it.src, rel, it.imm))
        else:
            out += it
    if latch is not None and latch_jump is not None:
        out += latch
        rel = len(prologue) - (len(out) + 1)  # back to the first body item
        out.append(I(latch_jump.opcode, latch_jump.dst, latch_jump.src, rel, latch_jump.imm))
    out += [I(0x7B, 9, r, OUT + 8 * r) for r in range(9)]  # *(u64 *)(r9 + ...) = rN
    out.append(I(0x95))
    return out


def _prologue(init: list[int]) -> list[I]:
    prologue: list[I] = [I(0xBF, 9, 2)]  # r9 = the data region (never written below)
    for r, v in enumerate(init):
        prologue += [I(0x18, r, 0, 0, _s32(v & 0xFFFF_FFFF)), I(0, 0, 0, 0, _s32(v >> 32))]
    return prologue


@st.composite
def programs(draw: st.DrawFn) -> tuple[list[I], bytes, int]:
    init = [draw(values) for _ in range(9)]
    body: list[Item] = draw(st.lists(items, min_size=1, max_size=40))
    data = draw(st.binary(min_size=DATA_SIZE, max_size=DATA_SIZE))
    return _layout(_prologue(init), body, None, None), data, 600


@st.composite
def loop_programs(draw: st.DrawFn) -> tuple[list[I], bytes, int]:
    """A loop around a random body: r8 counts down from a small number (the body may
    clobber it too, then the budget ends the run); the latch test varies."""
    init = [draw(values) for _ in range(9)]
    init[8] = draw(st.integers(0, 40))
    body: list[Item] = draw(st.lists(items, min_size=1, max_size=12))
    latch = [I(0x17, 8, 0, 0, draw(st.sampled_from([1, 1, 2, 3, 5, -1])))]  # r8 -= k
    k = draw(st.integers(0, 6))
    cond = draw(
        st.sampled_from(
            [
                Jump(0x55, 8, 0, k, 0),  # if r8 != k
                Jump(0x25, 8, 0, k, 0),  # if r8 > k
                Jump(0x35, 8, 0, k, 0),  # if r8 >= k
                Jump(0x65, 8, 0, k, 0),  # if r8 s> k
                Jump(0x56, 8, 0, k, 0),  # if w8 != k
                Jump(0xAD, 8, 7, 0, 0),  # if r8 < r7
                Jump(0x2D, 8, 7, 0, 0),  # if r8 > r7
            ]
        )
    )
    data = draw(st.binary(min_size=DATA_SIZE, max_size=DATA_SIZE))
    limit = draw(st.sampled_from([40, 300, 2000, 20000]))
    return _layout(_prologue(init), body, latch, cond), data, limit


def _ctx_load(off: int, size: int) -> int:
    return (0xFFFF_8880_0000_0000 | (off + 1) * 0x0101_0101) & M64


def _run(insns: list[I], engine: str, data: bytes, limit: int) -> tuple[object, int, bytes, bytes]:
    mem = AddressSpace()
    assert mem.map(CallbackRegion("ctx", 16, _ctx_load)) == CTX_BASE
    buf = bytearray(data) + bytearray(8 * 9)
    base = mem.map(Region("data", buf))
    env = RunEnv(mem, insn_limit=limit)
    exe = load_executable(insns, engine=engine, name="rand")
    if engine == "fast":
        # also assert, at run time, every value interval the translation relied on
        exe._fast = fast.translate(exe, check_ranges=True)
    try:
        outcome: object = exe.run(env, 0, r2=base)
    except ProgramFault as f:
        outcome = (type(f).__name__, f.index, f.reason)
        assert "internal" not in f.reason, f
    stack = bytes(env.vm.stacks[1].buf)
    return outcome, env.insn_count, bytes(buf), stack


def _compare(prog: tuple[list[I], bytes, int]) -> None:
    insns, data, limit = prog
    try:
        ref = _run(insns, "interpreter", data, limit)
    except InstructionError:
        # the generator never builds malformed programs; if it does, both must refuse
        try:
            load_executable(insns, engine="fast")
        except InstructionError:
            return
        raise
    assert _run(insns, "fast", data, limit) == ref


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fast_engine_equals_interpreter(prog: tuple[list[I], bytes, int]) -> None:
    _compare(prog)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(loop_programs())
def test_fast_engine_equals_interpreter_on_loops(prog: tuple[list[I], bytes, int]) -> None:
    """Loops exercise the fast engine's unrolling, its budget guard and the interval
    state carried from one unrolled copy to the next."""
    _compare(prog)
