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

* ``prune``: the conditional jumps whose direction the verifier *predicted* from
  their operands (``is_branch_taken``) are checks; used to decide which scalars state
  comparison must look at.  Which jumps get predicted is only known while verifying:
  the verifier starts assuming none is; a run that predicts jumps outside the set
  does not count, and verification starts over with them added (the set only grows,
  so this ends; in the last run every prediction is covered).  A jump explored both ways
  decides nothing: any value of an operand that reaches no other check will do, as
  for the kernel's imprecise scalars (but its operands are linked: each refines the
  other);
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
from typing import Any

from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import ATOMIC_OPS, BPF_LOAD_ACQ, BPF_STORE_REL, OPCODES
from netbpf.uapi import (
    BPF_ADD,
    BPF_ALU64,
    BPF_CMPXCHG,
    BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX,
    BPF_SUB,
)
from netbpf.verifier import kinds as K
from netbpf.verifier.cfg import successors

__all__ = [
    "ALL_SLOTS",
    "REGS",
    "SLOT0",
    "ZERO_SHIFT",
    "HelperUse",
    "Relevance",
    "analyse_relevance",
]

NSLOTS = 64  # 512 bytes / 8
REG_BYTES = 8
SLOT0 = 16  # bit of stack slot 0 (fp-8 .. fp-1)
ALL_SLOTS = ((1 << NSLOTS) - 1) << SLOT0
REGS = (1 << 10) - 1
ARGS = 0b111110
CALLER_SAVED = 0b111111
#: bits ZERO_SHIFT + i: only whether register ri is zero can matter (its value is
#: stored to the stack where it cannot be a spill: the bytes become STACK_ZERO or
#: STACK_MISC, nothing else of the value is kept)
ZERO_SHIFT = 80
ZERO_REGS = REGS << ZERO_SHIFT


class HelperUse:
    """What a helper call does with its arguments, for this analysis."""

    __slots__ = (
        "callback_arg",
        "checked_args",
        "reads_stack_for_checks",
        "returns_ptr",
        "returns_struct_ptr",
    )

    def __init__(
        self,
        checked_args: int,
        returns_ptr: bool,
        reads_stack_for_checks: bool,
        callback_arg: int,
        returns_struct_ptr: bool = False,
    ) -> None:
        #: argument registers whose (scalar) value the verifier checks (bitmask, r1=bit1)
        self.checked_args = checked_args
        self.returns_ptr = returns_ptr
        #: stack memory passed in decides something (array map keys: NULL elision)
        self.reads_stack_for_checks = reads_stack_for_checks
        #: for bpf_loop/for_each_map_elem: the register holding the callback (0: none)
        self.callback_arg = callback_arg
        #: the result may point to a kernel struct whose loads give pointers (a map
        #: pointer out of a map-in-map lookup)
        self.returns_struct_ptr = returns_struct_ptr


class Relevance:
    """Per-instruction bitmasks: bit i (0-9) = register ri, bit 16+k = stack slot k
    (fp-8k-8 .. fp-8k-1) of the function's own frame."""

    def __init__(self, prune: list[int], widen: list[int], stack_live: list[int]) -> None:
        self.prune = prune
        self.widen = widen
        #: per instruction, the function's own stack slots (bits 16+k) that some path
        #: from here may read before overwriting them whole: the others are dead
        self.stack_live = stack_live


def _slot_bit(off: int, size: int) -> int | None:
    """The bit of the slot an r10-relative access of ``size`` bytes at ``off`` lies
    in, or None when it spans two slots or leaves the frame."""
    if off >= 0 or off < -512 or off + size > 0:
        return None
    spi = (-off - 1) // 8
    if (-(off + size - 1) - 1) // 8 != spi:
        return None
    return 1 << (SLOT0 + spi)


class _Spills:
    """Where the program may store pointers on the stack (found by iterating the
    forward pass): fixed r10 offsets per function, with what the stored values may
    be; functions with pointers stored at unknown offsets of their own frame; and
    whether a pointer is ever stored through a pointer into another function's
    frame."""

    def __init__(self) -> None:
        #: (function, r10 offset) -> facts of the pointers stored there (a 4-bit
        #: mask: may-pointer, own stack, foreign stack, context-like)
        self.slots: dict[tuple[int, int], int] = {}
        self.own_any: set[int] = set()
        self.foreign = False
        #: function -> the functions whose frames its pointer arguments may reach
        #: (None: any)
        self.ancestors: dict[int, frozenset[int]] | None = None

    def key(self) -> tuple[frozenset[tuple[tuple[int, int], int]], frozenset[int], bool]:
        return frozenset(self.slots.items()), frozenset(self.own_any), self.foreign

    def in_frame(self, sub: int, off: int | None) -> bool:
        if self.foreign or sub in self.own_any:
            return True
        if off is None:
            return any(k == sub for k, _ in self.slots)
        return (sub, off) in self.slots

    def facts(self, sub: int, off: int) -> int:
        """What an 8-byte reload of fp+off may give (the 4-bit fact mask)."""
        if self.foreign or sub in self.own_any:
            return 0b1111
        return self.slots.get((sub, off), 0)

    def elsewhere(self, sub: int) -> bool:
        """A pointer may sit in a frame another function's pointer argument can
        reach: the frames of the functions that (transitively) call ``sub``."""
        if self.foreign:
            return True
        anc = self.ancestors.get(sub) if self.ancestors is not None else None
        if anc is None:
            return any(k != sub for k, _ in self.slots) or bool(self.own_any - {sub})
        return any(k in anc for k, _ in self.slots) or bool(self.own_any & anc)


#: forward facts per register, as bitmasks: may be a pointer, may point into this
#: function's frame, may point into another frame (a caller's, via arguments), may
#: be the context
Fwd = tuple[int, int, int, int]


def _forward(
    insns: Sequence[Instruction],
    order: list[int],
    preds: Mapping[int, list[int]],
    entry: Fwd,
    helpers: Mapping[int, HelperUse],
    sub: int,
    spills: _Spills,
) -> list[Fwd]:
    """Register facts before each instruction; records pointer spills into
    ``spills``."""
    n = len(insns)
    start = order[0]
    before: list[Fwd] = [(0, 0, 0, 0)] * n
    after: dict[int, Fwd] = {}
    # without back-edges one pass in order is the fixpoint
    loops = any(q >= i for i in order for q in preds.get(i, ()))
    changed = True
    none: Fwd = (0, 0, 0, 0)
    while changed:
        changed = False
        for i in order:
            ps = preds.get(i, ())
            cur: Fwd
            if i != start and len(ps) == 1:
                # straight-line code: the predecessor's facts as they are
                cur = after.get(ps[0], none)
            else:
                p0, p1, p2, p3 = entry if i == start else none
                for q in ps:
                    a = after.get(q)
                    if a is not None:
                        p0 |= a[0]
                        p1 |= a[1]
                        p2 |= a[2]
                        p3 |= a[3]
                cur = (p0, p1, p2, p3)
            before[i] = cur
            out = _fwd_transfer(insns[i], cur, helpers, sub, spills)
            if after.get(i) != out:
                after[i] = out
                changed = loops
    return before


def _fwd_transfer(
    insn: Instruction, cur: Fwd, helpers: Mapping[int, HelperUse], sub: int, spills: _Spills
) -> Fwd:
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = insn.dst, insn.src
    bd = 1 << d
    p, own, far, cx = cur

    def clear(mask: int) -> Fwd:
        return p & ~mask, own & ~mask, far & ~mask, cx & ~mask

    # (the register cases below, the most frequent, are written out without helpers)
    if k is K.MOV:
        if info.use_src_reg and info.cls == BPF_ALU64 and insn.off == 0:
            if s == 10:
                return p | bd, own | bd, far & ~bd, cx & ~bd
            nd = ~bd
            return (
                (p & nd) | (((p >> s) & 1) << d),
                (own & nd) | (((own >> s) & 1) << d),
                (far & nd) | (((far >> s) & 1) << d),
                (cx & nd) | (((cx >> s) & 1) << d),
            )
        nd = ~bd
        return p & nd, own & nd, far & nd, cx & nd
    if k is K.ALU:
        if info.cls != BPF_ALU64 or info.op not in (BPF_ADD, BPF_SUB):
            # only 64-bit add/sub keep a pointer a pointer (anything else on a
            # pointer is refused, or yields a scalar)
            nd = ~bd
            return p & nd, own & nd, far & nd, cx & nd
        if info.use_src_reg:
            return (
                p | (((p >> s) & 1) << d),
                own | (((own >> s) & 1) << d),
                far | (((far >> s) & 1) << d),
                cx | (((cx >> s) & 1) << d),
            )
        return cur
    if k in (K.NEG, K.END):
        return clear(bd)
    if k is K.LD_IMM64:
        q, o, f, c = clear(bd)
        if insn.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX):
            # a map pointer: loads through it read the map's kernel struct, which
            # holds pointers (counted as "context" here: loads may give pointers)
            c |= bd
        return (q | bd if insn.src else q), o, f, c
    if k is K.LDX:
        base_ctx = bool(cx >> s & 1)
        if s == 10 and info.size == 8 and not base_ctx:
            # a reload of a fixed slot: what was spilled there
            fl = spills.facts(sub, insn.off)
            q, o, f, c = clear(bd)
            return (
                q | (bd if fl & 1 else 0),
                o | (bd if fl & 2 else 0),
                f | (bd if fl & 4 else 0),
                c | (bd if fl & 8 else 0),
            )
        if s == 10:
            spilled = spills.in_frame(sub, insn.off)
        else:
            spilled = (bool(own >> s & 1) and spills.in_frame(sub, None)) or (
                bool(far >> s & 1) and spills.elsewhere(sub)
            )
        q, o, f, c = clear(bd)
        if info.size == 8 and (spilled or base_ctx):
            return q | bd, o | bd, f | bd, c | bd
        if info.size >= 4 and base_ctx:
            return q | bd, o, f, c
        return q, o, f, c
    if k is K.STX:
        if p >> s & 1:
            if d == 10:
                fl = 1 | (own >> s & 1) << 1 | (far >> s & 1) << 2 | (cx >> s & 1) << 3
                key = (sub, insn.off)
                spills.slots[key] = spills.slots.get(key, 0) | fl
            else:
                if own >> d & 1:
                    spills.own_any.add(sub)
                if far >> d & 1:
                    spills.foreign = True
        return cur
    if k in (K.LD_ABS, K.LD_IND):
        return clear(CALLER_SAVED)
    if k is K.CALL:
        q, o, f, c = clear(CALLER_SAVED)
        if insn.src == 0:
            h = helpers.get(insn.imm)
            if h is None or h.returns_ptr:
                q |= 1
            if h is None or h.returns_struct_ptr:
                c |= 1
        else:
            q |= 1
        return q, o, f, c
    if k is K.ATOMIC:
        if insn.imm == BPF_LOAD_ACQ:
            return clear(bd)
        op = ATOMIC_OPS.get(insn.imm)
        if op is not None and op.fetch:
            return clear(1 if insn.imm == BPF_CMPXCHG else 1 << s)
    return cur


def _bwd_transfer(
    insn: Instruction,
    out: int,
    fwd: Fwd,
    helpers: Mapping[int, HelperUse],
    callee_reads: Mapping[int, bool],
    idx: int,
    jcc_sink: bool | frozenset[int],
    exit_r0: bool,
    cb_reads: Mapping[int, bool],
    quiet: frozenset[int] = frozenset(),
) -> int:
    """relevant-before from relevant-after.  ``jcc_sink``: which conditional jumps are
    checks (True: all; a set: those instructions)."""
    zero = out >> ZERO_SHIFT & REGS
    if not zero:
        return _bwd_value(
            insn, out, fwd, helpers, callee_reads, idx, jcc_sink, exit_r0, cb_reads, quiet
        )
    # zero-ness relevance: kept through what neither writes nor narrows by another
    # register; a plain 64-bit copy hands it on to the source; anything else that
    # writes or links the register makes its whole value matter (as the kernel's
    # precision backtracking would, once the value proves zero)
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = insn.dst, insn.src
    bd, bs = 1 << d, 1 << s
    out &= ~ZERO_REGS
    handed = 0
    if k is K.MOV and info.use_src_reg and info.cls == BPF_ALU64 and insn.off == 0:
        if zero & bd and not out & bd:
            handed = bs
        zero &= ~bd
    elif k in (K.MOV, K.ALU, K.NEG, K.END, K.LDX, K.LD_IMM64):
        out |= zero & bd
        zero &= ~bd
    elif k in (K.CALL, K.LD_ABS, K.LD_IND, K.CALLX):
        out |= zero & CALLER_SAVED
        zero &= ~CALLER_SAVED
    elif k is K.ATOMIC:
        w = bd | bs | 1
        out |= zero & w
        zero &= ~w
    elif k is K.JCC and info.use_src_reg and zero & (bd | bs):
        out |= zero & (bd | bs)
        zero &= ~(bd | bs)
    elif k is K.EXIT:
        zero = 0
    res = _bwd_value(insn, out, fwd, helpers, callee_reads, idx, jcc_sink, exit_r0, cb_reads, quiet)
    return res | (zero | handed) << ZERO_SHIFT


def _bwd_value(
    insn: Instruction,
    out: int,
    fwd: Fwd,
    helpers: Mapping[int, HelperUse],
    callee_reads: Mapping[int, bool],
    idx: int,
    jcc_sink: bool | frozenset[int],
    exit_r0: bool,
    cb_reads: Mapping[int, bool],
    quiet: frozenset[int],
) -> int:
    """The value-relevance part of :func:`_bwd_transfer` (``out`` without zero-ness
    bits, except those it creates at misaligned stack stores)."""
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = insn.dst, insn.src
    bd, bs = 1 << d, 1 << s
    mayptr, own, far, _ = fwd
    maystack = own | far
    if k is K.MOV:
        res = out & ~bd
        if out & bd and info.use_src_reg:
            res |= bs
        return res
    if k is K.ALU:
        res = out
        if info.use_src_reg:
            ptr_arith = info.op in (BPF_ADD, BPF_SUB) and (
                (mayptr | maystack) >> d & 1 or (mayptr | maystack) >> s & 1
            )
            if out & bd or ptr_arith:
                res |= bd | bs
        return res
    if k in (K.NEG, K.END):
        return out
    if k is K.LD_IMM64:
        return out & ~bd
    if k in (K.LD_ABS, K.LD_IND):
        return out & ~CALLER_SAVED
    if k is K.LDX:
        res = out & ~bd
        if out & bd:
            if s == 10:
                bit = _slot_bit(insn.off, info.size)
                res |= bit if bit is not None else ALL_SLOTS
            elif maystack >> s & 1:
                res |= ALL_SLOTS
        return res
    if k in (K.ST, K.STX):
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
        if k is K.STX and val_rel:
            if d == 10 and insn.off % REG_BYTES and bit is not None:
                # not at the start of a slot: never a spill, the stored bytes become
                # STACK_ZERO when the register is 0, STACK_MISC otherwise
                res |= bs << ZERO_SHIFT
            else:
                res |= bs
        return res
    if k is K.ATOMIC:
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
    if k is K.JCC:
        res = out
        if jcc_sink is True or (jcc_sink is not False and idx in jcc_sink):
            # the branch's direction was decided by its operands
            res |= bd
            if info.use_src_reg:
                res |= bs
        elif info.use_src_reg and out & (bd | bs):
            # both directions are explored, but each refines one operand's bounds
            # with the other's: they matter together (the kernel's backtracking
            # links them the same way)
            res |= bd | bs
        return res
    if k is K.CALL:
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
        reads_stack = h.reads_stack_for_checks and idx not in quiet
        if maystack & ARGS and (reads_stack or cb_reads.get(idx, False)):
            res |= ALL_SLOTS
        return res
    if k is K.EXIT:
        return 1 if exit_r0 else 0
    return out


def _slots_touched(off: int, size: int) -> int:
    """The slot bits an r10-relative access of ``size`` bytes at ``off`` touches (all
    slots when it leaves the frame: it is refused anyway, or reads who knows what)."""
    if off >= 0 or off < -512 or off + size > 0:
        return ALL_SLOTS
    first = (-off - 1) // 8
    last = (-(off + size - 1) - 1) // 8
    bits = 0
    for spi in range(last, first + 1):
        bits |= 1 << (SLOT0 + spi)
    return bits


def _stack_live_transfer(insn: Instruction, out: int, fwd: Fwd) -> int:
    """Live slots before ``insn`` from those live after it.  A slot is read by a load
    or atomic at a fixed r10 offset, and -- conservatively, every slot -- by any access
    through another register that may point into this frame and by any call that may
    be passed such a pointer (a helper, a callback, a bpf-to-bpf callee may read it).
    Only a store covering the whole 8-byte slot at a fixed r10 offset kills it."""
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = insn.dst, insn.src
    own = fwd[1]
    if k is K.LDX:
        if s == 10:
            return out | _slots_touched(insn.off, info.size)
        return out | ALL_SLOTS if own >> s & 1 else out
    if k in (K.ST, K.STX):
        if d == 10:
            bit = _slot_bit(insn.off, info.size)
            if info.size == 8 and bit is not None:
                return out & ~bit
            return out
        # a store through a pointer into this frame at an unknown offset kills
        # nothing (and a partial overwrite of a spill is a read-modify of the slot)
        return out | ALL_SLOTS if own >> d & 1 else out
    if k is K.ATOMIC:
        if d == 10:
            return out | _slots_touched(insn.off, info.size)
        if own >> d & 1 or own >> s & 1:
            return out | ALL_SLOTS
        return out
    if k is K.CALL:
        # any call: a stack pointer may be among the arguments (helpers, callbacks
        # given a context, bpf-to-bpf callees)
        return out | ALL_SLOTS if own & ARGS else out
    if k is K.CALLX:
        return out | ALL_SLOTS
    if k is K.EXIT:
        # the frame is gone (a callee's), or the program ends
        return 0
    # ALU, MOV, jumps, LD_IMM64, LD_ABS/IND: no stack access (a pointer into the
    # frame moved between registers is followed by the forward facts)
    return out


def _stack_live(order: list[int], succs: Mapping[int, list[int]], insns: Sequence[Instruction],
                fwd: list[Fwd]) -> dict[int, int]:  # fmt: skip
    live: dict[int, int] = dict.fromkeys(order, 0)
    loops = any(w <= i for i in order for w in succs[i])
    changed = True
    while changed:
        changed = False
        for i in reversed(order):
            out = 0
            for w in succs[i]:
                out |= live.get(w, 0)
            new = _stack_live_transfer(insns[i], out, fwd[i])
            if new != live[i]:
                live[i] = new
                changed = loops
    return live


def _backward(
    insns: Sequence[Instruction],
    order: list[int],
    succs: Mapping[int, list[int]],
    fwd: list[Fwd],
    helpers: Mapping[int, HelperUse],
    callee_reads: Mapping[int, bool],
    cb_reads: Mapping[int, bool],
    jcc_sink: bool | frozenset[int],
    exit_r0: bool,
    quiet: frozenset[int] = frozenset(),
) -> dict[int, int]:
    rel: dict[int, int] = dict.fromkeys(order, 0)
    loops = any(w <= i for i in order for w in succs[i])
    #: the relevant-after each instruction's transfer last ran with: with loops, a
    #: pass repeats the transfer only where it changed (the transfer is a function
    #: of it, everything else being fixed during this call)
    last_out: dict[int, int] = {}
    changed = True
    while changed:
        changed = False
        for i in reversed(order):
            out = 0
            for w in succs[i]:
                out |= rel.get(w, 0)
            if last_out.get(i) == out:
                continue
            last_out[i] = out
            new = _bwd_transfer(
                insns[i], out, fwd[i], helpers, callee_reads, i, jcc_sink, exit_r0, cb_reads, quiet
            )
            if new != rel[i]:
                rel[i] = new
                changed = loops
    return rel


def _ancestors(
    insns: Sequence[Instruction],
    subprog_bounds: list[tuple[int, int]],
    starts: Mapping[int, int],
    second_half: set[int],
    cb_of: Mapping[int, int | None],
) -> dict[int, frozenset[int]] | None:
    """For each function, the functions that call it, directly or not (bpf-to-bpf
    calls and callbacks); None if some callback cannot be attributed to its caller."""
    if any(cb is None for cb in cb_of.values()):
        return None
    owner = {}
    for k, (a, b) in enumerate(subprog_bounds):
        for i in range(a, b):
            owner[i] = k
    callers: dict[int, set[int]] = {k: set() for k in range(len(subprog_bounds))}
    for i, insn in enumerate(insns):
        if i in second_half:
            continue
        info = OPCODES.get(insn.opcode)
        if info is None:
            continue
        if info.kind is K.CALL and insn.src == BPF_PSEUDO_CALL:
            callee = starts.get(i + insn.imm + 1)
            if callee is None:
                return None
            callers[callee].add(owner[i])
        elif info.kind is K.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC:
            cb = starts.get(i + insn.imm + 1)
            if cb is None:
                return None
            callers[cb].add(owner[i])
    out: dict[int, frozenset[int]] = {}
    for k in callers:
        seen: set[int] = set()
        todo = list(callers[k])
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(callers[c])
        out[k] = frozenset(seen)
    return out


def _callback_loaded(
    insns: Sequence[Instruction],
    call: int,
    reg: int,
    starts: Mapping[int, int],
    joins: set[int],
    second_half: set[int],
) -> int | None:
    """The subprogram whose address ``ld_imm64 reg = func`` put in ``reg`` before
    ``call``, looking back inside the straight-line block; None if not found."""
    i = call
    while i > 0 and i not in joins:
        i -= 1
        if i in second_half:
            continue
        insn = insns[i]
        info = OPCODES.get(insn.opcode)
        if info is None:
            return None
        if info.kind in (
            K.JA, K.JCC, K.EXIT, K.MAY_GOTO, K.CALL, K.CALLX,
            K.ATOMIC, K.LD_ABS, K.LD_IND,
        ):  # fmt: skip
            return None
        if info.kind is K.LD_IMM64 and insn.dst == reg:
            if insn.src == BPF_PSEUDO_FUNC:
                return starts.get(i + insn.imm + 1)
            return None
        if insn.dst == reg and info.kind not in (K.ST, K.STX, K.JA):
            return None
    return None


def _prepare(
    insns: Sequence[Instruction],
    subprog_bounds: list[tuple[int, int]],
    second_half: set[int],
    helpers: Mapping[int, HelperUse],
    callbacks: frozenset[int],
) -> tuple[Any, Any, Any]:
    """The forward facts of every function and the call-site maps the backward
    passes need (independent of which jumps are predicted)."""
    starts = {s: k for k, (s, _) in enumerate(subprog_bounds)}
    shapes = []
    for start, end in subprog_bounds:
        order = [i for i in range(start, end) if i not in second_half]
        succs = {i: [w for w in successors(insns, i) if start <= w < end] for i in order}
        preds: dict[int, list[int]] = {}
        for i, ws in succs.items():
            for w in ws:
                preds.setdefault(w, []).append(i)
        shapes.append((order, succs, preds))
    # the callback each callback-calling helper call passes, when it is loaded into
    # the callback register in the same straight-line block (else None: any)
    joins = {
        w
        for _, _, preds in shapes
        for w, ps in preds.items()
        if ps != [w - 2 if w - 1 in second_half else w - 1]
    }
    cb_of: dict[int, int | None] = {}
    for j, other in enumerate(insns):
        oi = OPCODES.get(other.opcode)
        if j in second_half or oi is None or oi.kind is not K.CALL or other.src != 0:
            continue
        h = helpers.get(other.imm)
        if h is None or not h.callback_arg:
            continue
        cb_of[j] = _callback_loaded(insns, j, h.callback_arg, starts, joins, second_half)

    # what a callback's arguments may be, from the helpers that call it:
    # bpf_loop (u32 index, void *ctx), bpf_for_each_map_elem (map, key, value, ctx),
    # ctx pointing to the caller's stack, the map pointer's loads giving pointers
    cb_entry: dict[int, list[int]] = {}
    unknown_cb = False
    for j, cb in cb_of.items():
        hid = insns[j].imm
        e = [1 << 2 | 1 << 10, 1 << 10, 1 << 2, 0] if hid == 181 else None
        if hid == 164:
            e = [0b11110 | 1 << 10, 1 << 10, 1 << 4, 1 << 1]
        if cb is None or e is None:
            unknown_cb = True
            continue
        acc = cb_entry.setdefault(cb, [0, 0, 0, 0])
        for x in range(4):
            acc[x] |= e[x]
    spills = _Spills()
    spills.ancestors = _ancestors(insns, subprog_bounds, starts, second_half, cb_of)
    while True:
        seen = spills.key()
        subs = []
        for k, (order, succs, preds) in enumerate(shapes):
            entry: Fwd
            if k == 0:
                entry = (1 << 1 | 1 << 10, 1 << 10, 0, 1 << 1)
            elif k in callbacks and k in cb_entry and not unknown_cb:
                ce = cb_entry[k]
                entry = (ce[0], ce[1], ce[2], ce[3])
            elif k in callbacks:
                # callbacks never get the context (but a map pointer, maybe)
                entry = (ARGS | 1 << 10, 1 << 10, ARGS, ARGS)
            else:
                entry = (ARGS | 1 << 10, 1 << 10, ARGS, ARGS)
            fwd = _forward(insns, order, preds, entry, helpers, k, spills)
            subs.append((order, succs, fwd))
        if spills.key() == seen:
            break

    # which functions read the memory their pointer arguments point to into a check
    # (then a call passing a stack pointer makes every caller slot matter); for the
    # widening variant an 8-byte load that may bring back a spilled pointer does not
    # count (widening touches scalars only, and is sound whatever it widens)
    # the bpf-to-bpf call sites (insn -> callee) and the functions whose address is
    # loaded, found once (call_maps runs once per round of the analysis)
    local_calls: list[tuple[int, int]] = []
    func_refs: list[int | None] = []
    for i, insn in enumerate(insns):
        if i in second_half:
            continue
        info = OPCODES.get(insn.opcode)
        if info is None:
            continue
        if info.kind is K.CALL and insn.src == BPF_PSEUDO_CALL:
            local_calls.append((i, starts.get(i + insn.imm + 1, 0)))
        if info.kind is K.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC:
            func_refs.append(starts.get(i + insn.imm + 1))

    def call_maps(reads: list[bool]) -> tuple[dict[int, bool], dict[int, bool]]:
        callee: dict[int, bool] = {i: reads[k] for i, k in local_calls}
        cbs: dict[int, bool] = {}
        cb_any = any(cb is not None and reads[cb] for cb in func_refs)
        for j, cb in cb_of.items():
            if cb is None:
                if cb_any:
                    cbs[j] = True
            elif reads[cb]:
                cbs[j] = True
        return callee, cbs

    # per function: its loads through pointers that may point into a stack frame,
    # as (insn, dst register, "may bring back a spilled pointer")
    stack_loads: list[list[tuple[int, int, bool]]] = []
    for order, _, fwd in subs:
        sites = []
        for i in order:
            ins = insns[i]
            inf = OPCODES[ins.opcode]
            if inf.kind is K.LDX and ins.src != 10 and (fwd[i][1] | fwd[i][2]) >> ins.src & 1:
                sites.append((i, ins.dst, inf.size == 8 and bool(fwd[i][0] >> ins.src & 1)))
        stack_loads.append(sites)

    def reads_of(k: int, rel: dict[int, int], liberal: bool) -> bool:
        succs = subs[k][1]
        for i, dst, may_be_ptr in stack_loads[k]:
            if liberal and may_be_ptr:
                continue
            out = 0
            for x in succs[i]:
                out |= rel.get(x, 0)
            if out >> dst & 1:
                return True
        return False

    return subs, call_maps, reads_of


def analyse_relevance(
    insns: Sequence[Instruction],
    subprog_bounds: list[tuple[int, int]],
    second_half: set[int],
    helpers: Mapping[int, HelperUse],
    *,
    main_exit_r0: bool,
    callbacks: frozenset[int] = frozenset(),
    quiet_key_sites: frozenset[int] = frozenset(),
    predicted: bool | frozenset[int] = True,
    cache: dict[str, Any] | None = None,
) -> Relevance:
    """``helpers``: helper id -> :class:`HelperUse`; ``main_exit_r0``: the program's
    return value is range-checked (so R0 at exit matters); ``predicted``: the
    conditional jumps whose direction the verifier decided from their operands (True:
    assume any may be); ``cache``: a dict kept between runs over the same program
    (everything but the pruning variant is computed once)."""
    n = len(insns)
    if cache is not None and "pre" in cache:
        subs, call_maps, reads_of = cache["pre"]
    else:
        subs, call_maps, reads_of = _prepare(insns, subprog_bounds, second_half, helpers, callbacks)
        if cache is not None:
            cache["pre"] = (subs, call_maps, reads_of)
    nsub = len(subprog_bounds)
    results: list[list[dict[int, int]]] = [[], []]
    variants: tuple[tuple[bool | frozenset[int], bool], ...] = ((predicted, False), (False, True))
    for variant, (jcc, liberal) in enumerate(variants):
        if variant == 1 and cache is not None and "widen" in cache:
            results[1] = cache["widen"]
            continue
        reads = [False] * nsub
        for _ in range(nsub + 2):
            callee, cbs = call_maps(reads)
            rels = [
                _backward(
                    insns, order, succs, fwd, helpers, callee, cbs, jcc,
                    main_exit_r0 if k == 0 else True, quiet_key_sites,
                )
                for k, (order, succs, fwd) in enumerate(subs)
            ]  # fmt: skip
            new_reads = [reads_of(k, rels[k], liberal) for k in range(nsub)]
            results[variant] = rels
            if new_reads == reads:
                break
            reads = new_reads
    if cache is not None:
        cache["widen"] = results[1]
    if cache is not None and "stack_live" in cache:
        stack_live = cache["stack_live"]
    else:
        stack_live = [ALL_SLOTS] * n
        for order, succs, fwd in subs:
            sl = _stack_live(order, succs, insns, fwd)
            for i in order:
                stack_live[i] = sl[i]
        if cache is not None:
            cache["stack_live"] = stack_live
    prune = [REGS | ALL_SLOTS] * n
    widen = [REGS | ALL_SLOTS] * n
    for (order, _, _), p, w in zip(subs, results[0], results[1]):
        for i in order:
            prune[i] = p[i]
            widen[i] = w[i]
    return Relevance(prune, widen, stack_live)
