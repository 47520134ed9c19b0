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
from netbpf.vm.engine import load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, Region

M64 = (1 << 64) - 1
DATA_SIZE = 64
OUT = DATA_SIZE  # r0..r8 are stored after the data bytes

INTERESTING = [0, 1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000,
               0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, (1 << 32) + 5, 1 << 63,
               (1 << 63) - 1, M64, M64 - 1]  # fmt: skip
IMMS = [0, 1, -1, 2, -2, 3, 5, 7, 8, 16, 31, 32, 63, 64, 0x7FFF_FFFF, -0x8000_0000, 0xFF, -8]

ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0]
JMP_OPS = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0]
ATOMIC_IMMS = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1]
SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}

regs = st.integers(0, 8)
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


@st.composite
def programs(draw: st.DrawFn) -> tuple[list[I], bytes]:
    init = [draw(values) for _ in range(9)]
    prologue: list[I] = [I(0xBF, 9, 2)]  # r9 = the data region (never written below)
    for r, v in enumerate(init):
        prologue += [I(0x18, r, 0, 0, _s32(v & 0xFFFF_FFFF)), I(0, 0, 0, 0, _s32(v >> 32))]
    body: list[Item] = draw(st.lists(items, min_size=1, max_size=40))
    # lay out: slot index of every item, epilogue after the body
    starts = []
    pos = len(prologue)
    for it in body:
        starts.append(pos)
        pos += 1 if isinstance(it, Jump) else len(it)
    epilogue_at = pos
    out = list(prologue)
    for k, it in enumerate(body):
        if isinstance(it, Jump):
            t = k + 1 + it.rel_items
            target = (
                starts[t] if 0 <= t < len(body) else (epilogue_at if t >= len(body) else starts[0])
            )
            rel = target - (starts[k] + 1)
            if it.wide:
                out.append(I(it.opcode, 0, 0, 0, rel))
            else:
                out.append(I(it.opcode, it.dst, it.src, rel, it.imm))
        else:
            out += it
    out += [I(0x7B, 9, r, OUT + 8 * r) for r in range(9)]  # *(u64 *)(r9 + ...) = rN
    out.append(I(0x95))
    data = draw(st.binary(min_size=DATA_SIZE, max_size=DATA_SIZE))
    return out, data


def _run(insns: list[I], engine: str, data: bytes) -> tuple[object, int, bytes, bytes]:
    mem = AddressSpace()
    buf = bytearray(data) + bytearray(8 * 9)
    base = mem.map(Region("data", buf))
    env = RunEnv(mem, insn_limit=600)
    exe = load_executable(insns, engine=engine, name="rand")
    try:
        outcome: object = exe.run(env, 0, r2=base)
    except ProgramFault as f:
        outcome = (type(f).__name__, f.index, f.reason)
        assert "internal" not in f.reason, f
    stack = bytes(env.vm.stacks[1].buf)
    return outcome, env.insn_count, bytes(buf), stack


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fast_engine_equals_interpreter(prog: tuple[list[I], bytes]) -> None:
    insns, data = prog
    try:
        ref = _run(insns, "interpreter", data)
    except InstructionError:
        # the generator never builds malformed programs; if it does, both must refuse
        try:
            load_executable(insns, engine="fast")
        except InstructionError:
            return
        raise
    assert _run(insns, "fast", data) == ref
