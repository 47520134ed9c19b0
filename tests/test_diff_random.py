"""Random differential testing: Hypothesis writes programs, netbpf and the kernel run them.

Each generated program is straight-line code with forward branches over every ALU /
ALU64 operation (K and X forms, signed div/mod, movsx, neg, le/be/bswap), LD_IMM64,
every JMP / JMP32 condition, ja and gotol, loads (plain and sign-extending), ST and STX
of every size on the stack and in the packet, and every atomic (add/or/and/xor with
and without fetch, xchg, cmpxchg; 32 and 64 bit) on the stack.  It runs

* in every netbpf engine (:func:`netbpf.cli.conformance_plugin.run_vm`), and
* in the kernel as an XDP program through BPF_PROG_TEST_RUN
  (:func:`netbpf.cli.conformance_plugin.run_kernel`: the program is a subprogram of
  a wrapper that bounds-checks the packet and hands it over in r1),

and at its end it copies every register r0-r9 and its stack data into the packet, so
``data_out`` carries them; the whole packet (data, registers, stack) must be equal.

The programs are built to pass the kernel verifier: every register is initialised,
the packet pointer lives in a stack slot and is reloaded for each packet access (and
the register holding it is overwritten right after), stack accesses are aligned and
inside an initialised area, no division by a constant zero, no immediate shift out of
range, no atomics on the packet, and every instruction is reachable (an unconditional
jump always follows a conditional one that targets the instruction after it).  The
kernel rejections that remain are counted and must stay rare.

Budget: ``NETBPF_DIFF_EXAMPLES`` examples (default 200), no deadline, derandomized
when ``CI`` is set, so the run takes a few seconds and CI is reproducible.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbpf.cli.conformance_plugin import Outcome, run_kernel, run_vm
from netbpf.errors import KernelError
from netbpf.isa.asm import assemble
from netbpf.isa.instruction import Instruction
from netbpf.kernel import KernelBackend
from netbpf.vm.engine import ENGINES

#: bytes of packet data the program may touch (r1 of the body points at them)
PKT = 64
#: the stack data area: [r10 - STACK_LO, r10 - 8); r10 - 8 keeps the packet pointer
STACK_LO = 72
#: where the epilogue parks r0-r9 on the stack before copying them to the packet
REG_SAVE = 160
#: the memory handed to the program: data, then r0-r9, then a copy of the stack area
MEM_LEN = PKT + 10 * 8 + (STACK_LO - 8)

EXAMPLES = int(os.environ.get("NETBPF_DIFF_EXAMPLES", "200"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    database=None if os.environ.get("CI") else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

REGS = [f"r{i}" for i in range(10)]
ALU_SYMBOLS = ["+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "%=", "^=", "=", "s>>="]
SIGNED_DIVMOD = ["s/=", "s%="]
JMP_SYMBOLS = ["==", "!=", ">", ">=", "<", "<=", "&", "s>", "s>=", "s<", "s<="]
SIZES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
SIGNED_SIZES = {1: "s8", 2: "s16", 4: "s32"}

_SPECIAL32 = [0, 1, -1, 2, 7, 8, 16, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000,
              0xFFFF, 0x7FFFFFFF, -0x80000000, -0x7FFFFFFF, 0x12345678]  # fmt: skip
_SPECIAL64 = [0, 1, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 0x80000000,
              0x100000000, 0x7FFFFFFF, 0xFFFFFFFF00000000, 0x8000000080000000]  # fmt: skip

imm32 = st.one_of(st.sampled_from(_SPECIAL32), st.integers(-(1 << 31), (1 << 31) - 1))
imm64 = st.one_of(st.sampled_from(_SPECIAL64), st.integers(0, (1 << 64) - 1))
reg = st.sampled_from(REGS)


def _w(r: str, width: int) -> str:
    """The register's name in the instruction's width: r3 or w3."""
    return r if width == 64 else "w" + r[1:]


@st.composite
def alu(draw: st.DrawFn) -> list[str]:
    width = draw(st.sampled_from([64, 32]))
    op = draw(st.sampled_from(ALU_SYMBOLS + SIGNED_DIVMOD))
    dst = _w(draw(reg), width)
    if draw(st.booleans()):
        return [f"{dst} {op} {_w(draw(reg), width)}"]
    if op in ("<<=", ">>=", "s>>="):
        imm = draw(st.integers(0, width - 1))  # the kernel refuses other immediates
    elif op in ("/=", "%=", "s/=", "s%="):
        imm = draw(imm32.filter(lambda v: v != 0))  # ... and a constant zero divisor
    else:
        imm = draw(imm32)
    return [f"{dst} {op} {imm}"]


@st.composite
def unary(draw: st.DrawFn) -> list[str]:
    r = draw(reg)
    kind = draw(st.sampled_from(["neg64", "neg32", "movsx64", "movsx32", "end", "ld_imm64"]))
    if kind == "neg64":
        return [f"{r} = -{r}"]
    if kind == "neg32":
        w = _w(r, 32)
        return [f"{w} = -{w}"]
    if kind == "movsx64":
        bits = draw(st.sampled_from([8, 16, 32]))
        return [f"{r} = (s{bits}){draw(reg)}"]
    if kind == "movsx32":
        bits = draw(st.sampled_from([8, 16]))
        return [f"{_w(r, 32)} = (s{bits}){_w(draw(reg), 32)}"]
    if kind == "end":
        what = draw(st.sampled_from(["le", "be", "bswap"]))
        bits = draw(st.sampled_from([16, 32, 64]))
        return [f"{r} = {what}{bits} {r}"]
    return [f"{r} = {draw(imm64):#x} ll"]


def _stack_off(draw: st.DrawFn, size: int) -> int:
    """An aligned offset (the kernel insists) of an access inside the stack data area
    [r10 - STACK_LO, r10 - 8)."""
    return -draw(st.sampled_from([v for v in range(8 + size, STACK_LO + 1) if v % size == 0]))


@st.composite
def stack_access(draw: st.DrawFn) -> list[str]:
    size = draw(st.sampled_from([1, 2, 4, 8]))
    off = _stack_off(draw, size)
    kind = draw(st.sampled_from(["ldx", "ldxsx", "stx", "st"]))
    if kind == "ldx" or (kind == "ldxsx" and size == 8):
        return [f"{draw(reg)} = *({SIZES[size]} *)(r10 {off})"]
    if kind == "ldxsx":
        return [f"{draw(reg)} = *({SIGNED_SIZES[size]} *)(r10 {off})"]
    if kind == "stx":
        return [f"*({SIZES[size]} *)(r10 {off}) = {draw(reg)}"]
    return [f"*({SIZES[size]} *)(r10 {off}) = {draw(imm32)}"]


@st.composite
def packet_access(draw: st.DrawFn) -> list[str]:
    """Reload the packet pointer from r10 - 8 into a register, use it once, and leave no
    pointer behind (a load overwrites it; after a store it gets a constant)."""
    size = draw(st.sampled_from([1, 2, 4, 8]))
    off = draw(st.integers(0, PKT - size))
    ptr = draw(reg)
    load_ptr = f"{ptr} = *(u64 *)(r10 - 8)"
    kind = draw(st.sampled_from(["ldx", "ldxsx", "stx", "st"]))
    if kind == "ldx" or (kind == "ldxsx" and size == 8):
        return [load_ptr, f"{ptr} = *({SIZES[size]} *)({ptr} + {off})"]
    if kind == "ldxsx":
        return [load_ptr, f"{ptr} = *({SIGNED_SIZES[size]} *)({ptr} + {off})"]
    after = f"{ptr} = {draw(imm32)}"
    if kind == "stx":
        src = draw(reg.filter(lambda r: r != ptr))
        return [load_ptr, f"*({SIZES[size]} *)({ptr} + {off}) = {src}", after]
    return [load_ptr, f"*({SIZES[size]} *)({ptr} + {off}) = {draw(imm32)}", after]


@st.composite
def atomic(draw: st.DrawFn) -> list[str]:
    width = draw(st.sampled_from([64, 32]))
    size = width // 8
    t = SIZES[size]
    off = _stack_off(draw, size)
    src = _w(draw(reg), width)
    op = draw(st.sampled_from(["add", "or", "and", "xor", "xchg", "cmpxchg"]))
    if op == "cmpxchg":
        fn = "cmpxchg_64" if width == 64 else "cmpxchg32_32"
        r0 = _w("r0", width)
        return [f"{r0} = {fn}(r10 {off}, {r0}, {src})"]
    if op == "xchg":
        fn = "xchg_64" if width == 64 else "xchg32_32"
        return [f"{src} = {fn}(r10 {off}, {src})"]
    if draw(st.booleans()):
        return [f"{src} = atomic_fetch_{op}(({t} *)(r10 {off}), {src})"]
    sym = {"add": "+=", "or": "|=", "and": "&=", "xor": "^="}[op]
    return [f"lock *({t} *)(r10 {off}) {sym} {src}"]


@dataclass(frozen=True)
class Jump:
    """A forward jump to the label placed ``distance`` items later."""

    width: int  # 64 (JMP) or 32 (JMP32); 0 for the ja/gotol pair
    cond: str
    dst: str
    src: str | int
    distance: int
    long: bool = False  # gotol instead of goto


@st.composite
def jump(draw: st.DrawFn) -> Jump:
    distance = draw(st.integers(1, 6))
    width = draw(st.sampled_from([64, 32, 0]))
    dst = draw(reg)
    src: str | int = draw(reg) if draw(st.booleans()) else draw(imm32)
    return Jump(width, draw(st.sampled_from(JMP_SYMBOLS)), dst, src, distance, draw(st.booleans()))


item = st.one_of(alu(), alu(), unary(), stack_access(), packet_access(), atomic(), jump())


def prologue(values: list[int]) -> list[str]:
    """Park the packet pointer (r1) at r10 - 8, give r0-r9 the ``values`` and fill the
    stack data area from them: the verifier wants everything initialised, and netbpf
    must not get away with zero-filled state where the kernel has other bytes."""
    lines = ["*(u64 *)(r10 - 8) = r1"]
    lines += [f"{r} = {v:#x} ll" for r, v in zip(REGS, values)]
    lines += [f"*(u64 *)(r10 {off}) = r{i % 10}" for i, off in enumerate(range(-STACK_LO, -8, 8))]
    return lines


def epilogue() -> list[str]:
    """Copy r0-r9, then the stack data area, into the packet after its first PKT bytes;
    return the original r0."""
    lines = [f"*(u64 *)(r10 - {REG_SAVE - 8 * i}) = {r}" for i, r in enumerate(REGS)]
    lines.append("r1 = *(u64 *)(r10 - 8)")
    for i in range(10):
        lines.append(f"r2 = *(u64 *)(r10 - {REG_SAVE - 8 * i})")
        lines.append(f"*(u64 *)(r1 + {PKT + 8 * i}) = r2")
    for j, off in enumerate(range(-STACK_LO, -8, 8)):
        lines.append(f"r2 = *(u64 *)(r10 {off})")
        lines.append(f"*(u64 *)(r1 + {PKT + 80 + 8 * j}) = r2")
    lines.append(f"r0 = *(u64 *)(r10 - {REG_SAVE})")
    lines.append("exit")
    return lines


@dataclass(frozen=True)
class Generated:
    """A generated program: its random body, the whole text, and the packet data."""

    body: str
    text: str
    data: bytes


def body_lines(items: list[list[str] | Jump]) -> list[str]:
    """Lay out the items, turning jumps into labelled forward branches."""
    lines: list[str] = []
    labels: dict[int, list[str]] = {}
    for n, it in enumerate(items):
        lines += [f"{lab}:" for lab in labels.pop(n, [])]
        if not isinstance(it, Jump):
            lines.extend(it)
            continue
        target = f"L{n}"
        labels.setdefault(min(n + it.distance, len(items)), []).append(target)
        src = _w(it.src, it.width or 64) if isinstance(it.src, str) else it.src
        if it.width:
            lines.append(f"if {_w(it.dst, it.width)} {it.cond} {src} goto {target}")
        else:
            # ja/gotol after a conditional jump over it, so the skipped code stays
            # reachable (the kernel refuses unreachable instructions)
            lines.append(f"if {it.dst} {it.cond} {src} goto A{n}")
            lines.append(f"{'gotol' if it.long else 'goto'} {target}")
            lines.append(f"A{n}:")
    lines += [f"{lab}:" for lab in labels.pop(len(items), [])]
    return lines


@st.composite
def programs(draw: st.DrawFn) -> Generated:
    items = draw(st.lists(item, min_size=1, max_size=30))
    body = body_lines(items)
    values = [draw(imm64) for _ in REGS]
    text = "\n".join([*prologue(values), *body, *epilogue()])
    data = draw(st.binary(min_size=PKT, max_size=PKT)) + bytes(MEM_LEN - PKT)
    return Generated("\n".join(body), text, data)


def _describe(out: Outcome) -> str:
    regs = [int.from_bytes(out.memory[PKT + 8 * i : PKT + 8 * i + 8], "little") for i in range(10)]
    return " ".join(f"r{i}={v:#x}" for i, v in enumerate(regs))


def _vm(insns: list[Instruction], data: bytes, engine: str) -> Outcome:
    return run_vm(insns, data, engine=engine, name="random")


@PROFILE
@given(prog=programs())
def test_random_programs_run_alike_in_every_engine(prog: Generated) -> None:
    """Without the kernel: the generated programs are valid, never fault, and every
    netbpf engine gives the same r0, registers, packet and stack."""
    insns = assemble(prog.text)
    ref = _vm(insns, prog.data, ENGINES[0])
    assert ref.r0 == int.from_bytes(ref.memory[PKT : PKT + 8], "little")
    for engine in ENGINES[1:]:
        got = _vm(insns, prog.data, engine)
        assert got == ref, f"{engine} differs from {ENGINES[0]} on:\n{prog.body}"


def test_random_programs_agree_with_the_kernel(kernel: KernelBackend) -> None:
    """The kernel and every netbpf engine: same r0-r9, packet and stack data."""
    stats: Counter[str] = Counter()
    rejections: list[str] = []

    @PROFILE
    @given(prog=programs())
    def check(prog: Generated) -> None:
        insns = assemble(prog.text)
        stats["programs"] += 1
        stats["slots"] += len(insns)
        try:
            want = run_kernel(kernel, insns, prog.data, name="random")
        except KernelError as e:
            stats["kernel rejected"] += 1
            rejections.append(f"{e}\n{prog.body}")
            return
        for engine in ENGINES:
            got = _vm(insns, prog.data, engine)
            assert got.r0 == want.r0 and got.memory == want.memory, (
                f"netbpf ({engine}) and the kernel disagree on\n{prog.body}\n"
                f"kernel: {_describe(want)}\nnetbpf: {_describe(got)}\n"
                f"packet equal: {got.memory[:PKT] == want.memory[:PKT]}, "
                f"stack equal: {got.memory[PKT + 80 :] == want.memory[PKT + 80 :]}"
            )

    check()
    print(f"random differential: {dict(stats)}")
    assert stats["programs"] >= min(EXAMPLES, 50)
    # Built to pass the verifier: a few percent of rejections at most.
    assert stats["kernel rejected"] * 20 <= stats["programs"], "\n\n".join(rejections[:5])


def test_prologue_and_epilogue_export_every_register() -> None:
    """The fixed parts of a generated program hand r0-r9 and the stack over as claimed
    (with a hand-written body), so a disagreement cannot hide in them."""
    body = ["r0 = 1", "r0 s/= -1", "*(u64 *)(r10 - 16) = r9"]
    text = "\n".join([*prologue(list(range(10))), *body, *epilogue()])
    out = _vm(assemble(text), bytes(MEM_LEN), ENGINES[0])
    regs = [int.from_bytes(out.memory[PKT + 8 * i : PKT + 8 * i + 8], "little") for i in range(10)]
    assert regs == [(1 << 64) - 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert out.r0 == (1 << 64) - 1
    stack = [
        int.from_bytes(out.memory[PKT + 80 + 8 * j : PKT + 88 + 8 * j], "little") for j in range(8)
    ]
    assert stack == [0, 1, 2, 3, 4, 5, 6, 9]  # r10 - 72 ... r10 - 16
