"""Which scalars can matter for safety: a static stand-in for the kernel's precision.

The kernel marks a scalar *precise* when its value decided something the verifier
checked (a memory access through ``ptr + scalar``, a helper's size argument, a
predicted branch, a return code), by backtracking from that check along the path.
State pruning then ignores imprecise scalars, and loops driven by ``may_goto`` or
callbacks converge because imprecise scalars are widened to "unknown".

netbpf computes, per instruction, the set of registers and fp-relative stack slots
whose current value may *flow* (through ALU operations, copies, spills and fills)
into such a check before being overwritten: a backward dataflow over each function.
That set contains every scalar the kernel could ever mark precise there, so treating
the rest as imprecise is sound: they cannot influence any check on any path.

Two variants:

* ``prune``: conditional jumps are checks (a branch's direction may be decided by
  its operands); used to decide which scalars state comparison must look at;
* ``widen``: conditional jumps are not checks; used to decide which scalars may be
  widened at loop heads.  Widening is always sound; keeping a counter that only
  feeds a comparison with another unknown value would stop a ``may_goto`` loop from
  converging, where the kernel's lazily computed precision lets it converge.

A forward pass first finds registers that may hold pointers (``ptr += scalar`` makes
the scalar matter) and pointers into the stack (their loads and stores touch stack
slots the backward pass cannot name: every slot then counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import ATOMIC_OPS, BPF_LOAD_ACQ, BPF_STORE_REL, OPCODES, Kind
from netbpf.uapi import (
    BPF_ADD,
    BPF_ALU64,
    BPF_CMPXCHG,
    BPF_JMP32,
    BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC,
    BPF_SUB,
)

__all__ = ["ALL_SLOTS", "REGS", "SLOT0", "HelperUse", "Relevance", "analyse_relevance"]

NSLOTS = 64  # 512 bytes / 8
SLOT0 = 16  # bit of stack slot 0 (fp-8 .. fp-1)
ALL_SLOTS = ((1 << NSLOTS) - 1) << SLOT0
REGS = (1 << 10) - 1
ARGS = 0b111110
CALLER_SAVED = 0b111111


class HelperUse:
    """What a helper call does with its arguments, for this analysis."""

    __slots__ = ("callback_arg", "checked_args", "reads_stack_for_checks", "returns_ptr")

    def __init__(
        self, checked_args: int, returns_ptr: bool, reads_stack_for_checks: bool, callback_arg: int
    ) -> None:
        #: argument registers whose (scalar) value the verifier checks (bitmask, r1=bit1)
        self.checked_args = checked_args
        self.returns_ptr = returns_ptr
        #: stack memory passed in decides something (array map keys: NULL elision)
        self.reads_stack_for_checks = reads_stack_for_checks
        #: for bpf_loop/for_each_map_elem: the register holding the callback (0: none)
        self.callback_arg = callback_arg


class Relevance:
    """Per-instruction bitmasks: bit i (0-9) = register ri, bit 16+k = stack slot k
    (fp-8k-8 .. fp-8k-1) of the function's own frame."""

    def __init__(self, prune: list[int], widen: list[int]) -> None:
        self.prune = prune
        self.widen = widen


def _slot_bit(off: int, size: int) -> int | None:
    """The bit of the slot an r10-relative access of ``size`` bytes at ``off`` lies
    in, or None when it spans two slots or leaves the frame."""
    if off >= 0 or off < -512 or off + size > 0:
        return None
    spi = (-off - 1) // 8
    if (-(off + size - 1) - 1) // 8 != spi:
        return None
    return 1 << (SLOT0 + spi)


def _succ(insns: Sequence[Instruction], i: int) -> list[int]:
    insn = insns[i]
    info = OPCODES[insn.opcode]
    k = info.kind
    if k is Kind.EXIT:
        return []
    if k is Kind.LD_IMM64:
        return [i + 2]
    if k is Kind.JA:
        return [i + (insn.imm if info.cls == BPF_JMP32 else insn.off) + 1]
    if k in (Kind.JCC, Kind.MAY_GOTO):
        return [i + 1, i + insn.off + 1]
    return [i + 1]


def _forward(
    insns: Sequence[Instruction],
    order: list[int],
    preds: Mapping[int, list[int]],
    entry: tuple[int, int, int],
    helpers: Mapping[int, HelperUse],
) -> list[tuple[int, int, int]]:
    """(may-pointer, may-stack-pointer, may-ctx-pointer) register masks before each
    instruction."""
    n = len(insns)
    start = order[0]
    before: list[tuple[int, int, int]] = [(0, 0, 0)] * n
    after: dict[int, tuple[int, int, int]] = {}
    changed = True
    while changed:
        changed = False
        for i in order:
            p = st = cx = 0
            if i == start:
                p, st, cx = entry
            for q in preds.get(i, ()):
                a = after.get(q)
                if a is not None:
                    p |= a[0]
                    st |= a[1]
                    cx |= a[2]
            before[i] = (p, st, cx)
            out = _fwd_transfer(insns[i], p, st, cx, helpers)
            if after.get(i) != out:
                after[i] = out
                changed = True
    return before


def _fwd_transfer(
    insn: Instruction, p: int, st: int, cx: int, helpers: Mapping[int, HelperUse]
) -> tuple[int, int, int]:
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = insn.dst, insn.src
    bd = 1 << d

    def clear(mask: int) -> tuple[int, int, int]:
        return p & ~mask, st & ~mask, cx & ~mask

    if k is Kind.MOV:
        if info.use_src_reg and info.cls == BPF_ALU64:
            return tuple(((x & ~bd) | (((x >> s) & 1) << d)) for x in (p, st, cx))  # type: ignore[return-value]
        return clear(bd)
    if k is Kind.ALU:
        if info.cls != BPF_ALU64:
            return clear(bd)
        if info.use_src_reg and info.op in (BPF_ADD, BPF_SUB):
            return tuple((x | (((x >> s) & 1) << d)) for x in (p, st, cx))  # type: ignore[return-value]
        return p, st, cx
    if k in (Kind.NEG, Kind.END):
        return clear(bd)
    if k is Kind.LD_IMM64:
        p, st, cx = clear(bd)
        return (p | bd if insn.src else p), st, cx
    if k is Kind.LDX:
        base_stack = bool(st >> s & 1) or s == 10
        base_ctx = bool(cx >> s & 1)
        p, st, cx = clear(bd)
        if info.size == 8 and (base_stack or base_ctx):
            return p | bd, st | bd, cx | bd
        if info.size >= 4 and base_ctx:
            return p | bd, st, cx
        if info.size == 8:
            # 8-byte loads from other memory: sockets' fields are scalars, map
            # values hold no pointers; packet data neither
            return p, st, cx
        return p, st, cx
    if k in (Kind.LD_ABS, Kind.LD_IND):
        return clear(CALLER_SAVED)
    if k is Kind.CALL:
        p, st, cx = clear(CALLER_SAVED)
        if insn.src == 0:
            h = helpers.get(insn.imm)
            if h is None or h.returns_ptr:
                p |= 1
        else:
            p |= 1
        return p, st, cx
    if k is Kind.ATOMIC:
        if insn.imm == BPF_LOAD_ACQ:
            return clear(bd)
        op = ATOMIC_OPS.get(insn.imm)
        if op is not None and op.fetch:
            return clear(1 if insn.imm == BPF_CMPXCHG else 1 << s)
    return p, st, cx


def _bwd_transfer(
    insn: Instruction,
    out: int,
    fwd: tuple[int, int, int],
    helpers: Mapping[int, HelperUse],
    callee_reads: Mapping[int, bool],
    idx: int,
    jcc_sink: bool,
    exit_r0: bool,
    cb_reads: Mapping[int, bool],
) -> int:
    """relevant-before from relevant-after."""
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = insn.dst, insn.src
    bd, bs = 1 << d, 1 << s
    mayptr, maystack, _ = fwd
    if k is Kind.MOV:
        res = out & ~bd
        if out & bd and info.use_src_reg:
            res |= bs
        return res
    if k is Kind.ALU:
        res = out
        if info.use_src_reg:
            ptr_arith = info.op in (BPF_ADD, BPF_SUB) and (
                (mayptr | maystack) >> d & 1 or (mayptr | maystack) >> s & 1
            )
            if out & bd or ptr_arith:
                res |= bd | bs
        return res
    if k in (Kind.NEG, Kind.END):
        return out
    if k is Kind.LD_IMM64:
        return out & ~bd
    if k in (Kind.LD_ABS, Kind.LD_IND):
        return out & ~CALLER_SAVED
    if k is Kind.LDX:
        res = out & ~bd
        if out & bd:
            if s == 10:
                bit = _slot_bit(insn.off, info.size)
                res |= bit if bit is not None else ALL_SLOTS
            elif maystack >> s & 1:
                res |= ALL_SLOTS
        return res
    if k in (Kind.ST, Kind.STX):
        res = out
        if d == 10:
            bit = _slot_bit(insn.off, info.size)
            if bit is None:
                val_rel = bool(out & ALL_SLOTS)
            else:
                val_rel = bool(out & bit)
                if info.size == 8:
                    res &= ~bit  # the whole slot is overwritten
        elif maystack >> d & 1:
            val_rel = bool(out & ALL_SLOTS)
        else:
            val_rel = False
        if k is Kind.STX and val_rel:
            res |= bs
        return res
    if k is Kind.ATOMIC:
        res = out
        if insn.imm == BPF_LOAD_ACQ:
            res &= ~bd
            if out & bd and (s == 10 or maystack >> s & 1):
                res |= ALL_SLOTS
            return res
        if d == 10 or maystack >> d & 1:
            if out & ALL_SLOTS:
                res |= bs
            op = ATOMIC_OPS.get(insn.imm)
            fetched = (1 if insn.imm == BPF_CMPXCHG else bs) if op is not None and op.fetch else 0
            if out & fetched:
                res |= ALL_SLOTS
            if insn.imm == BPF_CMPXCHG:
                res |= 1
        _ = BPF_STORE_REL
        return res
    if k is Kind.JCC:
        res = out
        if jcc_sink:
            res |= bd
            if info.use_src_reg:
                res |= bs
        return res
    if k is Kind.CALL:
        res = out & ~CALLER_SAVED
        if insn.src == BPF_PSEUDO_CALL:
            res |= ARGS
            if maystack & ARGS and callee_reads.get(idx, True):
                res |= ALL_SLOTS
            return res
        if insn.src != 0:
            return res | ARGS | (ALL_SLOTS if maystack & ARGS else 0)
        h = helpers.get(insn.imm)
        if h is None:
            return res | ARGS | (ALL_SLOTS if maystack & ARGS else 0)
        res |= h.checked_args
        if maystack & ARGS and (h.reads_stack_for_checks or cb_reads.get(idx, False)):
            res |= ALL_SLOTS
        return res
    if k is Kind.EXIT:
        return 1 if exit_r0 else 0
    return out


def _backward(
    insns: Sequence[Instruction],
    order: list[int],
    succs: Mapping[int, list[int]],
    fwd: list[tuple[int, int, int]],
    helpers: Mapping[int, HelperUse],
    callee_reads: Mapping[int, bool],
    cb_reads: Mapping[int, bool],
    jcc_sink: bool,
    exit_r0: bool,
) -> dict[int, int]:
    rel: dict[int, int] = dict.fromkeys(order, 0)
    changed = True
    while changed:
        changed = False
        for i in reversed(order):
            out = 0
            for w in succs[i]:
                out |= rel.get(w, 0)
            new = _bwd_transfer(
                insns[i], out, fwd[i], helpers, callee_reads, i, jcc_sink, exit_r0, cb_reads
            )
            if new != rel[i]:
                rel[i] = new
                changed = True
    return rel


def analyse_relevance(
    insns: Sequence[Instruction],
    subprog_bounds: list[tuple[int, int]],
    second_half: set[int],
    helpers: Mapping[int, HelperUse],
    *,
    main_exit_r0: bool,
) -> Relevance:
    """``helpers``: helper id -> :class:`HelperUse`; ``main_exit_r0``: the program's
    return value is range-checked (so R0 at exit matters)."""
    n = len(insns)
    starts = {s: k for k, (s, _) in enumerate(subprog_bounds)}
    subs = []
    for k, (start, end) in enumerate(subprog_bounds):
        order = [i for i in range(start, end) if i not in second_half]
        succs = {i: [w for w in _succ(insns, i) if start <= w < end] for i in order}
        preds: dict[int, list[int]] = {}
        for i, ws in succs.items():
            for w in ws:
                preds.setdefault(w, []).append(i)
        entry = (
            (1 << 1 | 1 << 10, 1 << 10, 1 << 1)
            if k == 0
            else (ARGS | 1 << 10, ARGS | 1 << 10, ARGS)
        )
        fwd = _forward(insns, order, preds, entry, helpers)
        subs.append((order, succs, fwd))

    # which functions read the memory their pointer arguments point to into a check
    # (then a call passing a stack pointer makes every caller slot matter)
    reads = [False] * len(subprog_bounds)
    results: list[tuple[dict[int, int], dict[int, int]]] = []
    for _ in range(len(subprog_bounds) + 2):
        callee_reads: dict[int, bool] = {}
        cb_reads: dict[int, bool] = {}
        for i, insn in enumerate(insns):
            if i in second_half:
                continue
            info = OPCODES.get(insn.opcode)
            if info is None:
                continue
            if info.kind is Kind.CALL and insn.src == BPF_PSEUDO_CALL:
                callee_reads[i] = reads[starts.get(i + insn.imm + 1, 0)]
        # callback helpers: the callback is the function whose address was loaded
        for i, insn in enumerate(insns):
            info = OPCODES.get(insn.opcode)
            if info is not None and info.kind is Kind.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC:
                cb = starts.get(i + insn.imm + 1)
                if cb is not None and reads[cb]:
                    for j, other in enumerate(insns):
                        oi = OPCODES.get(other.opcode)
                        if oi is not None and oi.kind is Kind.CALL and other.src == 0:
                            h = helpers.get(other.imm)
                            if h is not None and h.callback_arg:
                                cb_reads[j] = True
        results = []
        new_reads = list(reads)
        for k, (order, succs, fwd) in enumerate(subs):
            exit_r0 = main_exit_r0 if k == 0 else True
            p = _backward(insns, order, succs, fwd, helpers, callee_reads, cb_reads, True, exit_r0)
            w = _backward(insns, order, succs, fwd, helpers, callee_reads, cb_reads, False, exit_r0)
            results.append((p, w))
            for i in order:
                ins = insns[i]
                inf = OPCODES[ins.opcode]
                if inf.kind is Kind.LDX and ins.src != 10 and fwd[i][1] >> ins.src & 1:
                    out = 0
                    for x in succs[i]:
                        out |= p.get(x, 0)
                    if out >> ins.dst & 1:
                        new_reads[k] = True
        if new_reads == reads:
            break
        reads = new_reads
    prune = [REGS | ALL_SLOTS] * n
    widen = [REGS | ALL_SLOTS] * n
    for (order, _, _), (p, w) in zip(subs, results):
        for i in order:
            prune[i] = p[i]
            widen[i] = w[i]
    return Relevance(prune, widen)
