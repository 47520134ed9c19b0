"""Scalar tracking: tnums, bounds through ALU operations and branches.

Two kinds of checks:

* soundness, in pure Python: for random abstract values and random concrete members,
  the abstract result of each operation contains the concrete result (an unsound
  tnum or bound would let the verifier accept an out-of-bounds access);
* equality with Linux 6.18, on the running kernel: random straight-line ALU programs
  and random branchy programs are verified by both, and every per-instruction
  register state line of the level-2 logs must be identical (bounds, tnums, ids,
  the kernel's decimal/hex rules).  The kernel's precision-backtracking lines are
  left out of the comparison (netbpf compares all scalars precisely instead).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbpf import ProgramSpec
from netbpf.errors import KernelError, VerifierError
from netbpf.verifier import regs as R
from netbpf.verifier import verify
from netbpf.verifier.log import VLog
from netbpf.verifier.tnum import (
    U64,
    tadd,
    tand,
    tarshift,
    tlshift,
    tmul,
    tneg,
    tnext_ge,
    tor,
    trange,
    trshift,
    tstep,
    tsub,
    txor,
)

# --- tnums --------------------------------------------------------------------------------

BITS = 8
FULL = (1 << BITS) - 1


def _members(v: int, m: int) -> list[int]:
    return [x for x in range(1 << BITS) if x & ~m & FULL == v]


tnums8 = st.tuples(st.integers(0, FULL), st.integers(0, FULL)).map(lambda p: (p[0] & ~p[1], p[1]))


def _contains(t: tuple[int, int], x: int) -> bool:
    return (x & ~t[1]) & U64 == t[0]


@settings(max_examples=300, deadline=None)
@given(tnums8, tnums8, st.data())
def test_tnum_binary_ops_are_sound(a, b, data) -> None:
    x = data.draw(st.sampled_from(_members(*a)))
    y = data.draw(st.sampled_from(_members(*b)))
    for f, op in (
        (tadd, lambda p, q: p + q),
        (tsub, lambda p, q: p - q),
        (tand, lambda p, q: p & q),
        (tor, lambda p, q: p | q),
        (txor, lambda p, q: p ^ q),
        (tmul, lambda p, q: p * q),
    ):
        assert _contains(f(a, b), op(x, y) & U64), (f.__name__, a, b, x, y)


@settings(max_examples=200, deadline=None)
@given(tnums8, st.integers(0, 7), st.data())
def test_tnum_shifts_and_neg_are_sound(a, s, data) -> None:
    x = data.draw(st.sampled_from(_members(*a)))
    assert _contains(tlshift(a, s), (x << s) & U64)
    assert _contains(trshift(a, s), x >> s)
    assert _contains(tneg(a), (-x) & U64)
    sx = R.s64(x)
    assert _contains(tarshift(a, s, 64), (sx >> s) & U64)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, FULL), st.integers(0, FULL))
def test_tnum_range_contains_range(lo, hi) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    t = trange(lo, hi)
    assert all(_contains(t, x) for x in range(lo, hi + 1))


@settings(max_examples=300, deadline=None)
@given(tnums8, st.integers(0, FULL))
def test_tnum_next_and_step(a, z) -> None:
    mem = _members(*a)
    ge = [x for x in mem if x >= z]
    assert tnext_ge(a, z, BITS) == (min(ge) if ge else None)
    gt = [x for x in mem if x > z]
    expect = min(gt) if gt else a[0] | a[1]
    if z < a[0]:
        expect = a[0]
    assert tstep(a, z) == expect


# --- registers: bounds through ALU ops ------------------------------------------------------

SMALL = st.integers(-(1 << 40), 1 << 40) | st.sampled_from(
    [0, 1, -1, 0x7FFF_FFFF, -0x8000_0000, 0xFFFF_FFFF, R.S64_MAX, R.S64_MIN, 0xFF, 0x100]
)


def _reg_from(values: list[int]) -> R.Reg:
    """A scalar whose bounds and tnum are derived from a set of concrete values, the
    way a branch or a mask would produce them."""
    r = R.Reg()
    r.mark_unknown()
    us = [v & U64 for v in values]
    r.umin, r.umax = min(us), max(us)
    r.smin, r.smax = min(R.s64(v) for v in us), max(R.s64(v) for v in us)
    r.u32_min, r.u32_max = min(v & 0xFFFFFFFF for v in us), max(v & 0xFFFFFFFF for v in us)
    r.s32_min, r.s32_max = min(R.s32(v) for v in us), max(R.s32(v) for v in us)
    v0 = us[0]
    known = U64
    for v in us:
        known &= ~(v ^ v0)
    r.value, r.mask = v0 & known, ~known & U64
    r.sync()
    return r


def _in_reg(r: R.Reg, x: int) -> bool:
    x &= U64
    return (
        _contains((r.value, r.mask), x)
        and r.umin <= x <= r.umax
        and r.smin <= R.s64(x) <= r.smax
        and r.u32_min <= (x & 0xFFFFFFFF) <= r.u32_max
        and r.s32_min <= R.s32(x) <= r.s32_max
    )


_U64S = st.integers(0, U64) | st.sampled_from(
    [0, 1, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32, R.S64_MAX, U64]
)
_U32S = st.integers(0, 0xFFFF_FFFF) | st.sampled_from([0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF])


@settings(max_examples=1500, deadline=None)
@given(st.tuples(_U64S, _U64S, _U64S, _U64S), st.tuples(_U32S, _U32S, _U32S, _U32S), _U64S, _U64S)
def test_fast_sync_equals_the_kernels_steps(b64, b32, value, mask) -> None:
    """Reg.sync (hand-inlined, the hot path) against sync_reference (the kernel's
    reg_bounds_sync step by step), on arbitrary bounds, contradictory ones included:
    a dead branch must reach the same REG INVARIANTS verdict as in the kernel."""
    r = R.Reg()
    r.mark_unknown()
    r.umin, r.umax = sorted(b64[:2]) if b64[0] % 3 else b64[:2]
    r.smin, r.smax = sorted(R.s64(x) for x in b64[2:])
    r.u32_min, r.u32_max = sorted(b32[:2]) if b32[0] % 3 else b32[:2]
    r.s32_min, r.s32_max = sorted(R.s32(x) for x in b32[2:])
    r.value, r.mask = value & ~mask & U64, mask
    a, b = r.copy(), r.copy()
    a.sync()
    b.sync_reference()
    fields = (
        "value",
        "mask",
        "umin",
        "umax",
        "smin",
        "smax",
        "u32_min",
        "u32_max",
        "s32_min",
        "s32_max",
    )
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert a.bounds_violation() == b.bounds_violation()
    for f in ("umin", "umax", "u32_min", "u32_max"):
        assert 0 <= getattr(b, f) <= U64


_CONCRETE = {
    R.ADD: lambda a, b, w: a + b,
    R.SUB: lambda a, b, w: a - b,
    R.MUL: lambda a, b, w: a * b,
    R.AND: lambda a, b, w: a & b,
    R.OR: lambda a, b, w: a | b,
    R.XOR: lambda a, b, w: a ^ b,
    R.LSH: lambda a, b, w: a << b,
    R.RSH: lambda a, b, w: (a & ((1 << w) - 1)) >> b,
    R.ARSH: lambda a, b, w: (R.s32(a) if w == 32 else R.s64(a)) >> b,
}


@settings(max_examples=400, deadline=None)
@given(
    st.lists(SMALL, min_size=1, max_size=4),
    st.lists(SMALL, min_size=1, max_size=4),
    st.sampled_from(sorted(_CONCRETE)),
    st.booleans(),
)
def test_scalar_alu_bounds_are_sound(dvals, svals, op, alu32) -> None:
    w = 32 if alu32 else 64
    if op in (R.LSH, R.RSH, R.ARSH):
        svals = [abs(v) % w for v in svals[:1]]
    d = _reg_from(dvals)
    s = _reg_from(svals)
    if not all(_in_reg(d, x) for x in dvals):
        pytest.skip("input not representable")
    R.scalar_alu(d, s, op, alu32)
    for x in dvals:
        for y in svals:
            res = _CONCRETE[op](x & U64, y & U64, w)
            res &= (1 << w) - 1
            assert _in_reg(d, res), (op, alu32, dvals, svals, res)


_JOPS = [R.JEQ, R.JNE, R.JGT, R.JGE, R.JLT, R.JLE, R.JSGT, R.JSGE, R.JSLT, R.JSLE, R.JSET]


def _holds(op: int, a: int, b: int, w: int) -> bool:
    m = (1 << w) - 1
    a, b = a & m, b & m
    sa, sb = (R.s32(a), R.s32(b)) if w == 32 else (R.s64(a), R.s64(b))
    return {
        R.JEQ: a == b,
        R.JNE: a != b,
        R.JGT: a > b,
        R.JGE: a >= b,
        R.JLT: a < b,
        R.JLE: a <= b,
        R.JSGT: sa > sb,
        R.JSGE: sa >= sb,
        R.JSLT: sa < sb,
        R.JSLE: sa <= sb,
        R.JSET: bool(a & b),
    }[op]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(SMALL, min_size=1, max_size=4),
    st.lists(SMALL, min_size=1, max_size=3),
    st.sampled_from(_JOPS),
    st.booleans(),
)
def test_branch_prediction_and_refinement_are_sound(dvals, svals, op, jmp32) -> None:
    w = 32 if jmp32 else 64
    d, s = _reg_from(dvals), _reg_from(svals)
    pred = R.is_branch_taken(d, s, op, jmp32)
    for x in dvals:
        for y in svals:
            if pred == 1:
                assert _holds(op, x, y, w)
            elif pred == 0:
                assert not _holds(op, x, y, w)
    if pred != -1:
        return
    for taken, rop in ((True, op), (False, R.REV[op])):
        a, b = d.copy(), s.copy()
        R.refine_cond_op(a, b, rop, jmp32)
        a.sync()
        b.sync()
        for x in dvals:
            for y in svals:
                if _holds(op, x, y, w) == taken:
                    assert _in_reg(a, x) and _in_reg(b, y), (op, taken, dvals, svals)


# --- the log against the running kernel -----------------------------------------------------


def _rnd_imm(r: random.Random) -> int:
    c = r.random()
    if c < 0.3:
        return r.randint(-4, 16)
    if c < 0.5:
        return r.choice([0x7F, 0xFF, 0x100, 0xFFFF, 0x7FFFFFFF, -0x80000000, -1, 0x80, 31, 32, 63])
    return r.randint(-(2**31), 2**31 - 1)


_PROLOGUE = [
    "r6 = r1",
    "call 7",  # bpf_get_prandom_u32: an unknown 64-bit value
    "r7 = r0",
    "r8 = *(u32 *)(r6 + 12)",  # xdp_md fields: unknown u32s
    "r9 = *(u32 *)(r6 + 16)",
]
_REGS = (7, 8, 9)


def alu_program(seed: int, n: int = 10) -> str:
    """Straight-line ALU on unknown values: every op, 32/64-bit, K/X, shifts, mul,
    div/mod, neg, movsx, byte swaps."""
    r = random.Random(seed)
    lines = list(_PROLOGUE)
    for _ in range(n):
        d = r.choice(_REGS)
        w = "w" if r.random() < 0.35 else "r"
        c = r.random()
        if c < 0.55:
            op = r.choice(["+=", "-=", "*=", "/=", "%=", "|=", "&=", "^=", "<<=", ">>=", "s>>="])
            if op in ("<<=", ">>=", "s>>="):
                lines.append(f"{w}{d} {op} {r.randint(0, 31 if w == 'w' else 63)}")
            elif op in ("/=", "%="):
                lines.append(f"{w}{d} {op} {r.choice([1, 2, 3, 7, 16, 1000, -1, -5])}")
            else:
                lines.append(f"{w}{d} {op} {_rnd_imm(r)}")
        elif c < 0.75:
            op = r.choice(["+=", "-=", "*=", "|=", "&=", "^=", "="])
            lines.append(f"{w}{d} {op} {w}{r.choice(_REGS)}")
        elif c < 0.82:
            lines.append(f"{w}{d} = -{w}{d}")
        elif c < 0.88:
            s = r.choice(_REGS)
            if w == "w":
                lines.append(f"w{d} = (s{r.choice([8, 16])})w{s}")
            else:
                lines.append(f"r{d} = (s{r.choice([8, 16, 32])})r{s}")
        elif c < 0.92:
            swap = r.choice(["be16", "be32", "be64", "le16", "le32", "le64", "bswap16", "bswap64"])
            lines.append(f"r{d} = {swap} r{d}")
        else:
            lines.append(f"{w}{d} = {_rnd_imm(r)}")
    return "\n".join([*lines, "r0 = 0", "exit"])


def branch_program(seed: int, n: int = 10) -> str:
    """Conditional jumps on unknown values (every condition, 32/64-bit, K/X, the same
    register on both sides), copies that link registers, ALU between them; each
    branch exits on its own so no two paths meet."""
    r = random.Random(seed)
    items: list[tuple[bool, str]] = []
    for _ in range(n):
        d = r.choice(_REGS)
        w = "w" if r.random() < 0.3 else "r"
        c = r.random()
        if c < 0.45:
            op = r.choice(["==", "!=", ">", ">=", "<", "<=", "s>", "s>=", "s<", "s<=", "&"])
            rhs = str(_rnd_imm(r)) if r.random() < 0.6 else f"{w}{r.choice(_REGS)}"
            items.append((True, f"if {w}{d} {op} {rhs} goto"))
        elif c < 0.6:
            items.append((False, f"r{d} = r{r.choice(_REGS)}"))
        elif c < 0.8:
            op = r.choice(["+=", "-=", "&=", "|=", "<<=", ">>="])
            imm = r.randint(0, 20) if op in ("<<=", ">>=") else _rnd_imm(r)
            items.append((False, f"{w}{d} {op} {imm}"))
        else:
            op = r.choice(["+=", "-=", "&=", "|="])
            items.append((False, f"{w}{d} {op} {w}{r.choice(_REGS)}"))
    nbr = sum(1 for b, _ in items if b)
    out = list(_PROLOGUE)
    trailer = len(_PROLOGUE) + len(items) + 2
    k = 0
    for pos, (is_br, text) in enumerate(items, start=len(_PROLOGUE)):
        if is_br:
            out.append(f"{text} {trailer + 2 * k - pos - 1:+d}")
            k += 1
        else:
            out.append(text)
    out += ["r0 = 0", "exit"]
    for i in range(nbr):
        out += [f"r0 = {i + 1}", "exit"]
    return "\n".join(out)


def normalise_log(log: str) -> list[str]:
    """The lines both verifiers print the same way: no liveness tables, stack
    liveness debug lines, precision backtracking, or statistics; and a state line
    that the kernel moved to its own line (after backtracking output) is joined back
    to its instruction line."""
    out: list[str] = []
    for ln in log.splitlines():
        if ln.startswith(("(0)", "mark_precise", "func#", "Live regs", "processed")):
            continue
        if re.match(r"^\s+\d+: [.0-9]{10} ", ln):
            continue
        ln = re.sub(r"=P(?=[-0-9s])", "=", ln)
        m = re.match(r"^(\d+): R", ln)
        if m and out and re.match(rf"^{m.group(1)}: \(", out[-1]) and ";" not in out[-1]:
            insn = out.pop()
            ln = insn + " " * VLog.alignment(len(insn) + 1) + ";" + ln[len(m.group(1)) + 1 :]
        out.append(ln)
    return out


def _both(kernel, src: str) -> tuple[tuple[bool, list[str]], tuple[bool, list[str]]]:
    spec = ProgramSpec.from_asm(src, prog_type="xdp")
    try:
        klog = kernel.load_program(spec, log_level=2).log
        kv = True
    except KernelError as e:
        klog, kv = e.log, False
    try:
        ulog = verify(spec, log_level=2).log
        uv = True
    except VerifierError as e:
        ulog, uv = e.log, False
    return (kv, normalise_log(klog)), (uv, normalise_log(ulog))


@pytest.mark.parametrize("seed", range(60))
def test_alu_states_match_kernel(kernel, seed: int) -> None:
    src = alu_program(1000 + seed)
    (kv, klog), (uv, ulog) = _both(kernel, src)
    assert uv == kv, src
    assert ulog == klog, src


@pytest.mark.parametrize("seed", range(60))
def test_branch_states_match_kernel(kernel, seed: int) -> None:
    src = branch_program(5000 + seed)
    (kv, klog), (uv, ulog) = _both(kernel, src)
    assert uv == kv, src
    assert ulog == klog, src


def test_alu_programs_verify_without_kernel() -> None:
    """The generators' programs are valid for netbpf alone (no kernel needed)."""
    for seed in range(20):
        verify(ProgramSpec.from_asm(alu_program(seed), prog_type="xdp"))
        verify(ProgramSpec.from_asm(branch_program(seed), prog_type="xdp"))
