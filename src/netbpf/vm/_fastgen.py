"""Code generator of the fast engine: a decoded program in, Python source out.

See :mod:`netbpf.vm.fast` for the overall design.  This module holds the parts that
make the generated code short:

* **Regions.** Basic blocks with one predecessor are inlined into it, so a region is
  a tree of blocks rooted at a *head* (a block with several predecessors, a function
  entry, or a block forced to be one to bound nesting).  Every leaf of the tree ends
  in ``return``, ``continue`` or ``break``, so a conditional branch is emitted as
  ``if cond: <one side>`` followed by the other side *unindented*.
* **Lazy masking.** Registers are unsigned 64-bit, but Python ints are unbounded; we
  track, per register and along the tree path, an interval of the Python value it
  holds.  Addition, subtraction, multiplication, negation, left shifts and the bitwise
  operations are correct modulo 2**64 whatever the operands hold, so their results
  stay *unnormalised* ("dirty": the Python value is congruent to the register's value
  modulo 2**64) until an operation needs the exact value (comparisons, right shifts,
  division, addresses, helper arguments, leaving the region).  The interval also
  proves many masks unnecessary (``r1 -= 1`` after ``if r1 != 0``), and a cap on its
  magnitude keeps Python ints small.
* **Fusion.** Consecutive ALU operations on one register become one expression:
  ``r0 = (r0 + r1) ^ 85``.
* **Static instruction counts.** Inside a region the number of instructions executed
  since the head is a compile-time constant at every point, so the generated code adds
  it to ``n`` only where control leaves the region (or calls out); a fault maps its
  line to (instruction index, count since the last update).
* **Guarded unrolling.** A small loop whose region has one back edge is unrolled
  ``U`` times under a guard ``n <= lim - U * longest_trip``: inside the guard no budget
  check can fail, so none is emitted, and copies 2..U start from the interval state
  the previous copy left (its branch conditions and dirty registers).  When the guard
  fails the checked single copy runs.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netbpf import uapi
from netbpf.vm.decode import Op
from netbpf.vm.runtime import (
    BPF_MAX_LOOPS,
    MAX_CALL_FRAMES,
    STACK_SIZE,
    missing_helper_message,
)

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.vm.engine import Executable

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF
SB64 = 1 << 63
SB32 = 1 << 31
TWO64 = 1 << 64
UNKNOWN = (0, M64)
#: a Python value this large is masked at once (keeps ints a few digits long)
CAP = 1 << 96
#: most ALU operations folded into one expression
FUSE_MAX = 6
#: deepest nesting planning allows (CPython refuses > 100 indentation levels)
MAX_NEST = 40
#: longest chain of inlined blocks (bounds the generator's recursion)
MAX_CHAIN = 150
#: largest loop region (in instructions) that is unrolled
UNROLL_MAX_OPS = 48

DEPTH_MSG = f"call stack too deep: more than {MAX_CALL_FRAMES} frames"
ENDS_BLOCK = frozenset(
    {"ja", "jmp", "jmp32", "exit", "call", "callx", "helper", "ld_abs", "ld_ind", "may_goto"}
)
_CALLISH = frozenset({"call", "callx", "helper", "ld_abs", "ld_ind", "may_goto"})

Rng = tuple[int, int]


def _clean(r: Rng) -> bool:
    return 0 <= r[0] and r[1] <= M64


def _norm(r: Rng) -> Rng:
    """The interval after ``& M64``."""
    lo, hi = r
    if 0 <= lo and hi <= M64:
        return r
    if lo >> 64 == hi >> 64:
        base = (lo >> 64) << 64
        return (lo - base, hi - base)
    return UNKNOWN


def _big(r: Rng) -> bool:
    return r[0] <= -CAP or r[1] >= CAP


@dataclass
class Block:
    start: int
    ops: list[Op]
    succs: list[int] = field(default_factory=list)


@dataclass
class Region:
    head: int
    members: set[int]
    looped: bool = False
    back_edges: int = 0
    #: member blocks on the path from the head to the single back edge
    spine: set[int] = field(default_factory=set)
    #: instructions on the longest root-to-leaf path
    max_trip: int = 0
    size: dict[int, int] = field(default_factory=dict)  # block -> ops in its subtree
    unroll: int = 0


class State:
    """What the generator knows at one point of one path."""

    __slots__ = ("acc", "bases", "copy", "pend", "rng")

    def __init__(self) -> None:
        self.rng: list[Rng] = [UNKNOWN] * 11
        #: registers whose region lookup is cached in locals ``_b{r}``/``_k{r}``/``_o{r}``
        #: (valid until the register is written or a call may remap regions)
        self.bases: set[int] = set()
        #: a pending assignment (register, expression, fused op count)
        self.pend: tuple[int, str, int] | None = None
        #: instructions executed since ``n`` was last updated on this path
        self.acc = 0
        #: which unrolled copy this path is in (0: not unrolling)
        self.copy = 0

    def fork(self) -> State:
        s = State()
        s.rng = list(self.rng)
        s.pend, s.acc, s.copy = self.pend, self.acc, self.copy
        s.bases = set(self.bases)
        return s


class Generator:
    """Translate one Executable's decoded program into Python source."""

    def __init__(self, exe: Executable, *, check_ranges: bool = False) -> None:
        self.exe = exe
        #: test aid: assert at run time that every register holds a value inside the
        #: interval the generator assumed (soundness of the mask elision)
        self.check_ranges = check_ranges
        self.ops = exe.program.ops
        #: (text, instruction index, count to add to n on a fault at this line)
        self.lines: list[tuple[str, int, int]] = []
        self.blocks = self._split_blocks()

    # ------------------------------------------------------------------ analysis

    def next_idx(self, op: Op) -> int:
        return op.idx + (2 if op.kind == "ld_imm64" else 1)

    def _split_blocks(self) -> dict[int, Block]:
        leaders = set(self.exe.program.entries)
        for op in self.ops:
            if op is None:
                continue
            if op.kind in ENDS_BLOCK:
                leaders.add(self.next_idx(op))
            if op.kind in ("ja", "jmp", "jmp32", "may_goto"):
                assert op.target is not None
                leaders.add(op.target)
        blocks: dict[int, Block] = {}
        cur: Block | None = None
        for op in self.ops:
            if op is None:
                continue
            if op.idx in leaders or cur is None:
                cur = blocks[op.idx] = Block(op.idx, [])
            cur.ops.append(op)
        for b in blocks.values():
            last = b.ops[-1]
            if last.kind == "exit":
                continue
            if last.kind == "ja":
                b.succs = [last.target]  # type: ignore[list-item]
            elif last.kind in ("jmp", "jmp32", "may_goto"):
                b.succs = [last.target, self.next_idx(last)]  # type: ignore[list-item]
            else:
                b.succs = [self.next_idx(last)]
        return blocks

    def _plan(self, entry: int) -> tuple[list[int], dict[int, Region]]:
        seen: set[int] = set()
        preds: dict[int, int] = {}
        todo = [entry]
        while todo:
            b = todo.pop()
            if b in seen:
                continue
            seen.add(b)
            for t in self.blocks[b].succs:
                preds[t] = preds.get(t, 0) + 1
                todo.append(t)
        heads = {entry} | {b for b in seen if preds.get(b, 0) >= 2}
        regions: dict[int, Region] = {}
        work = sorted(heads)
        while work:
            h = work.pop()
            reg = regions[h] = Region(h, set())
            stack = [(h, 0, 0)]
            while stack:
                b, nest, chain = stack.pop()
                reg.members.add(b)
                blk = self.blocks[b]
                cond = blk.ops[-1].kind in ("jmp", "jmp32", "may_goto")
                for t in blk.succs:
                    if t in heads:
                        continue
                    tn = nest + 1 if cond else nest
                    if tn > MAX_NEST or chain + 1 > MAX_CHAIN:
                        heads.add(t)
                        work.append(t)
                        continue
                    stack.append((t, tn, chain + 1))
        # a block forced into a head after an earlier region listed it as a member
        for reg in regions.values():
            reg.members = {m for m in reg.members if m == reg.head or m not in heads}
        for reg in regions.values():
            self._analyse(reg, heads)
        return sorted(heads), regions

    def _analyse(self, reg: Region, heads: set[int]) -> None:
        """Loop shape, subtree sizes, longest trip, unroll factor."""
        h = reg.head

        def kids(b: int) -> list[int]:
            return [t for t in self.blocks[b].succs if t not in heads]

        order: list[int] = []
        stack = [h]
        parent: dict[int, int] = {}
        while stack:
            b = stack.pop()
            order.append(b)
            for t in kids(b):
                parent[t] = b
                stack.append(t)
        back_src = [b for b in order if h in self.blocks[b].succs]
        reg.looped = bool(back_src)
        reg.back_edges = sum(self.blocks[b].succs.count(h) for b in back_src)
        if reg.back_edges == 1:
            b = back_src[0]
            while True:
                reg.spine.add(b)
                if b == h:
                    break
                b = parent[b]
        trip: dict[int, int] = {}
        for b in reversed(order):
            n = len(self.blocks[b].ops)
            sub = [reg.size[t] for t in kids(b)]
            reg.size[b] = n + sum(sub)
            trip[b] = n + max((trip[t] for t in kids(b)), default=0)
        reg.max_trip = trip[h]
        total = reg.size[h]
        simple = not any(op.kind in _CALLISH for b in reg.members for op in self.blocks[b].ops)
        if reg.looped and reg.back_edges == 1 and simple and total <= UNROLL_MAX_OPS:
            reg.unroll = max(2, min(16, 64 // max(reg.max_trip, 1)))
            if reg.unroll * len(reg.members) > 96:
                reg.unroll = 0

    # ------------------------------------------------------------------ output

    def emit(self, text: str, ind: int, idx: int = -1, extra: int = 0) -> None:
        self.lines.append(("    " * ind + text, idx, extra))

    def translate(self) -> str:
        self.lines.append(("# generated by netbpf.vm.fast -- do not edit", -1, 0))
        for entry in sorted(self.exe.program.entries):
            self._function(entry)
        return "\n".join(t for t, _, _ in self.lines) + "\n"

    def _function(self, entry: int) -> None:
        heads, regions = self._plan(entry)
        self.heads = set(heads)
        self.regions = regions
        self.used: set[str] = set()
        start = len(self.lines)
        if len(heads) == 1:
            self.dispatched = False
            self._region(regions[entry], 1)
        else:
            self.dispatched = True
            self.emit(f"pc = {entry}", 1)
            self.emit("while True:", 1)
            self._tree(heads, 2)
        body = self.lines[start:]
        del self.lines[start:]
        self.emit(f"def f_{entry}(st, r1, r2, r3, r4, r5, n, depth):", 0, entry)
        pro = ["env = st.env", "lim = st.limit", "_F = st.frame(depth)", "r10 = _F.fp"]
        pro.append("r0 = r6 = r7 = r8 = r9 = 0")
        for v in ("sb", "sh", "si", "sq"):
            if v in self.used:
                pro.append(f"{v} = _F.{v[1]}")
        acc = sorted(u for u in self.used if u[:2] in ("ld", "st") and u[2:].isdigit())
        if acc:
            pro.append("_A = st.accessors")
            pro.extend(f"{a} = _A[{a!r}]" for a in acc)
        if "helpers" in self.used:
            pro.append("helpers = env.helpers")
        if "skb_load" in self.used:
            pro.append("skb_load = env.skb_load")
        if "_get" in self.used:
            pro.append("_get = st.mem.slots.get")
        if "loops" in self.used:
            pro.append(f"loops = {BPF_MAX_LOOPS}")
        for reg in regions.values():
            if reg.unroll:
                pro.append(f"_g{reg.head} = lim - {reg.unroll * reg.max_trip}")
        for p in pro:
            self.emit(p, 1, entry)
        self.lines.extend(body)

    def _tree(self, heads: list[int], ind: int) -> None:
        if len(heads) == 1:
            self._region(self.regions[heads[0]], ind)
            return
        if len(heads) <= 3:
            for k, h in enumerate(heads[:-1]):
                self.emit(f"{'if' if k == 0 else 'elif'} pc == {h}:", ind)
                self._region(self.regions[h], ind + 1)
            self.emit("else:", ind)
            self._region(self.regions[heads[-1]], ind + 1)
            return
        mid = len(heads) // 2
        self.emit(f"if pc < {heads[mid]}:", ind)
        self._tree(heads[:mid], ind + 1)
        self.emit("else:", ind)
        self._tree(heads[mid:], ind + 1)

    def _region(self, reg: Region, ind: int) -> None:
        self.reg = reg
        self.guard = False
        if reg.looped:
            self.emit("while True:", ind, reg.head)
            ind += 1
        if reg.unroll:
            self.emit(f"if n <= _g{reg.head}:", ind, reg.head)
            self.guard = True
            s = State()
            s.copy = 1
            self._block(s, reg.head, ind + 1)
            self.guard = False
        self._block(State(), reg.head, ind)

    # ------------------------------------------------------------------ state helpers

    def cur(self, s: State, r: int) -> tuple[str, Rng]:
        if s.pend is not None and s.pend[0] == r:
            e = s.pend[1]
            return (e if e.isidentifier() or e.isdigit() else f"({e})"), s.rng[r]
        return f"r{r}", s.rng[r]

    def flush(self, s: State, ind: int, idx: int = -1) -> None:
        if s.pend is not None:
            r, expr, _ = s.pend
            s.pend = None
            self.emit(f"r{r} = {expr}", ind, idx, s.acc)

    def normalize(self, s: State, r: int, ind: int, idx: int = -1) -> None:
        """Make register ``r`` hold its exact value (0..2**64-1)."""
        rng = s.rng[r]
        if _clean(rng):
            return
        if s.pend is not None and s.pend[0] == r:
            s.pend = (r, f"({s.pend[1]}) & {M64}", s.pend[2])
        else:
            self.emit(f"r{r} &= {M64}", ind, idx, s.acc)
        s.rng[r] = _norm(rng)

    def leave(self, s: State, ind: int, idx: int) -> None:
        """Before control leaves the region: registers exact, ``n`` up to date."""
        self.flush(s, ind, idx)
        for r in range(10):
            self.normalize(s, r, ind, idx)
        if s.acc:
            self.emit(f"n += {s.acc}", ind, idx)
            s.acc = 0

    # ------------------------------------------------------------------ control flow

    def _check(self, s: State, ind: int, idx: int) -> None:
        for r in range(10):
            if s.pend is not None and s.pend[0] == r:
                continue
            lo, hi = s.rng[r]
            msg = f"range of r{r} at insn {idx}"
            self.emit(f"if not ({lo} <= r{r} <= {hi}): raise AssertionError({msg!r})", ind, idx)

    def _block(self, s: State, start: int, ind: int) -> None:
        blk = self.blocks[start]
        if self.check_ranges:
            self._check(s, ind, start)
        for op in blk.ops[:-1]:
            s.acc += 1
            self._op(s, op, ind)
            if self.check_ranges:
                self._check(s, ind, op.idx)
        last = blk.ops[-1]
        s.acc += 1
        k = last.kind
        if k == "exit":
            self.flush(s, ind, last.idx)
            r0 = "r0" if _clean(s.rng[0]) else f"r0 & {M64}"
            self.emit(f"return {r0}, n + {s.acc}", ind, last.idx)
        elif k == "ja":
            self._goto(s, last.target, last.idx, ind)  # type: ignore[arg-type]
        elif k in ("jmp", "jmp32"):
            self._branch(s, last, ind)
        elif k == "may_goto":
            self.flush(s, ind, last.idx)
            self.used.add("loops")
            nxt = self.next_idx(last)
            # fall through (and count down) while the budget lasts
            if self._nest_first(nxt, last.target):  # type: ignore[arg-type]
                self.emit("if loops:", ind, last.idx, s.acc)
                t = s.fork()
                self.emit("loops -= 1", ind + 1, last.idx, s.acc)
                self._goto(t, nxt, last.idx, ind + 1)
                self._goto(s, last.target, last.idx, ind)  # type: ignore[arg-type]
            else:
                self.emit("if not loops:", ind, last.idx, s.acc)
                self._goto(s.fork(), last.target, last.idx, ind + 1)  # type: ignore[arg-type]
                self.emit("loops -= 1", ind, last.idx, s.acc)
                self._goto(s, nxt, last.idx, ind)
        else:
            self._op(s, last, ind)
            self._goto(s, self.next_idx(last), last.idx, ind)

    def _goto(self, s: State, target: int, src: int, ind: int) -> None:
        """Transfer control from the jump (or fall-through) at ``src`` to ``target``.

        A backward jump (target <= src) is where the interpreter checks the budget, so
        it is checked here too -- whether the target is inlined or not -- except inside
        an unrolling guard, which proved no check there can fail.  (A loop's closing
        edge may be a forward fall-through into its head: that edge is not checked, by
        either engine; the cycle's backward jump is.)"""
        reg = self.reg
        backward = target <= src and not self.guard
        if target == reg.head and reg.looped:
            if self.guard and s.copy < reg.unroll:
                s.copy += 1
                self._block(s, target, ind)
                return
            self.leave(s, ind, src)
            if backward:
                self.emit("if n > lim: raise _limit_trap(lim)", ind, src)
            self.emit("continue", ind, src)
        elif target not in self.heads:
            if backward:
                if s.acc:
                    self.emit(f"n += {s.acc}", ind, src, 0)
                    s.acc = 0
                self.emit("if n > lim: raise _limit_trap(lim)", ind, src)
            self._block(s, target, ind)
        else:
            self.leave(s, ind, src)
            if backward:
                self.emit("if n > lim: raise _limit_trap(lim)", ind, src)
            self.emit(f"pc = {target}", ind, src)
            self.emit("break" if reg.looped else "continue", ind, src)

    def _weight(self, target: int) -> int:
        if target in self.heads:
            return 1
        return self.reg.size.get(target, 1)

    def _nest_first(self, a: int, b: int) -> bool:
        """Whether successor ``a`` should be the nested (``if``) side and ``b`` the flat
        one: the side that continues the loop spine stays flat (so unrolled copies do
        not nest), otherwise the smaller side is nested."""
        reg = self.reg
        on_a = a == reg.head or a in reg.spine
        on_b = b == reg.head or b in reg.spine
        if on_a != on_b:
            return on_b
        return self._weight(a) <= self._weight(b)

    def _branch(self, s: State, op: Op, ind: int) -> None:
        d = op.dst
        # a pending value of the compared register is assigned inside the condition:
        # ``if (r1 := r1 - 1) != 0:`` (every condition form reads dst exactly once)
        walrus = s.pend is not None and s.pend[0] == d and not (op.is_x and op.src == d)
        if not walrus:
            self.flush(s, ind, op.idx)
        cond, taken, fall = self._cond(s, op, ind)
        if walrus and s.pend is not None:
            pat = re.compile(rf"\br{d}\b")
            if pat.search(cond):
                cond = pat.sub(f"(r{d} := {s.pend[1]})", cond, count=1)
                s.pend = None
            else:  # a constant condition: assign first
                self.flush(s, ind, op.idx)
            taken.pend = fall.pend = None
        tgt, nxt = op.target, self.next_idx(op)
        assert tgt is not None
        if self._nest_first(tgt, nxt):
            self.emit(f"if {cond}:", ind, op.idx, s.acc)
            self._goto(taken, tgt, op.idx, ind + 1)
            self._goto(fall, nxt, op.idx, ind)
        else:
            self.emit(f"if not ({cond}):", ind, op.idx, s.acc)
            self._goto(fall, nxt, op.idx, ind + 1)
            self._goto(taken, tgt, op.idx, ind)

    # ------------------------------------------------------------------ conditions

    _REL = {
        uapi.BPF_JEQ: "==", uapi.BPF_JNE: "!=", uapi.BPF_JGT: ">", uapi.BPF_JGE: ">=",
        uapi.BPF_JLT: "<", uapi.BPF_JLE: "<=", uapi.BPF_JSGT: ">", uapi.BPF_JSGE: ">=",
        uapi.BPF_JSLT: "<", uapi.BPF_JSLE: "<=",
    }  # fmt: skip
    _NEG = {"==": "!=", "!=": "==", ">": "<=", ">=": "<", "<": ">=", "<=": ">"}
    _SIGNED = frozenset({uapi.BPF_JSGT, uapi.BPF_JSGE, uapi.BPF_JSLT, uapi.BPF_JSLE})

    def _cond(self, s: State, op: Op, ind: int) -> tuple[str, State, State]:
        """The condition of a conditional jump and the states on its two sides."""
        o, d = op.op, op.dst
        taken, fall = s.fork(), s.fork()
        if op.kind == "jmp32":  # the & M32 reads the low bits of any Python int
            d32 = f"(r{d} & {M32})"
            if op.is_x:
                s32 = f"(r{op.src} & {M32})"
                if o == uapi.BPF_JSET:
                    return f"r{d} & r{op.src} & {M32}", taken, fall
                if o in self._SIGNED:
                    return f"({d32} ^ {SB32}) {self._REL[o]} ({s32} ^ {SB32})", taken, fall
                return f"{d32} {self._REL[o]} {s32}", taken, fall
            k = op.imm & M32
            if o == uapi.BPF_JSET:
                return f"r{d} & {k}", taken, fall
            if o in self._SIGNED:
                return f"({d32} ^ {SB32}) {self._REL[o]} {k ^ SB32}", taken, fall
            return f"{d32} {self._REL[o]} {k}", taken, fall

        if not op.is_x:
            k = op.imm & M64
            rd = s.rng[d]
            if o == uapi.BPF_JSET:
                return f"r{d} & {k}", taken, fall  # the low 64 bits of any Python int
            nr = _norm(rd)
            useful = k in nr  # masking lets "!= k" narrow the interval (loop counters)
            if (
                o in (uapi.BPF_JEQ, uapi.BPF_JNE)
                and not _clean(rd)
                and rd[1] - rd[0] < TWO64
                and not useful
            ):
                # a dirty value spanning less than 2**64 holds at most one Python value
                # congruent to k: compare with that one, no mask needed
                rep = rd[0] + ((k - rd[0]) % TWO64)
                eq = taken if o == uapi.BPF_JEQ else fall
                if rep > rd[1]:
                    return ("False" if o == uapi.BPF_JEQ else "True"), taken, fall
                eq.rng[d] = (rep, rep)
                return f"r{d} {self._REL[o]} {rep}", taken, fall
            self.normalize(s, d, ind, op.idx)
            taken.rng[d] = fall.rng[d] = s.rng[d]
            rel = self._REL[o]
            if o in self._SIGNED:
                if s.rng[d][1] < SB64 and k < SB64:
                    self._refine(taken, fall, d, None, (k, k), rel)
                return f"(r{d} ^ {SB64}) {rel} {k ^ SB64}", taken, fall
            self._refine(taken, fall, d, None, (k, k), rel)
            return f"r{d} {rel} {k}", taken, fall

        src = op.src
        if o == uapi.BPF_JSET:
            return f"r{d} & r{src} & {M64}", taken, fall
        self.normalize(s, d, ind, op.idx)
        self.normalize(s, src, ind, op.idx)
        taken.rng[d] = fall.rng[d] = s.rng[d]
        taken.rng[src] = fall.rng[src] = s.rng[src]
        rel = self._REL[o]
        if o in self._SIGNED:
            if d != src and s.rng[d][1] < SB64 and s.rng[src][1] < SB64:
                self._refine(taken, fall, d, src, s.rng[src], rel)
            return f"(r{d} ^ {SB64}) {rel} (r{src} ^ {SB64})", taken, fall
        if d != src:
            self._refine(taken, fall, d, src, s.rng[src], rel)
        return f"r{d} {rel} r{src}", taken, fall

    def _refine(
        self, taken: State, fall: State, d: int, src: int | None, rb: Rng, rel: str
    ) -> None:
        """Narrow the intervals of both sides of ``r{d} rel b`` (clean operands)."""
        for st, r in ((taken, rel), (fall, self._NEG[rel])):
            a = st.rng[d]
            na, nb = _relate(a, rb, r)
            if na[0] <= na[1]:
                st.rng[d] = na
            if src is not None and nb[0] <= nb[1]:
                st.rng[src] = nb

    # ------------------------------------------------------------------ instructions

    @staticmethod
    def _writes(op: Op) -> tuple[int, ...] | None:
        """Registers ``op`` writes (None: anything may change, a call)."""
        k = op.kind
        if k in ("helper", "call", "callx"):
            return None
        if k in ("alu64", "alu", "end", "ld_imm64", "ldx", "ldxsx"):
            return (op.dst,)
        if k in ("ld_abs", "ld_ind"):
            return (0,)
        if k == "atomic":
            if op.op == 0x100:
                return (op.dst,)
            if op.op == uapi.BPF_CMPXCHG:
                return (0,)
            return (op.src,) if op.op & uapi.BPF_FETCH else ()
        return ()

    def _op(self, s: State, op: Op, ind: int) -> None:
        k = op.kind
        i = op.idx
        if s.bases:
            w = self._writes(op)
            if w is None:
                s.bases.clear()
            else:
                s.bases.difference_update(w)
        if k in ("alu64", "alu"):
            self._alu(s, op, ind)
            return
        self.flush(s, ind, i)
        emit = self.emit
        if k == "end":
            d = f"r{op.dst}"
            nb = op.imm // 8
            if op.opcode & 0x07 == uapi.BPF_ALU and not op.is_x:  # to_le: truncate
                if nb < 8:
                    emit(f"{d} &= {(1 << op.imm) - 1}", ind, i, s.acc)
                    s.rng[op.dst] = (0, (1 << op.imm) - 1)
                else:
                    self.normalize(s, op.dst, ind, i)
            elif nb == 2:
                emit(f"{d} = (({d} & 255) << 8) | (({d} >> 8) & 255)", ind, i, s.acc)
                s.rng[op.dst] = (0, 0xFFFF)
            else:
                emit(f"{d} = _bswap({d}, {nb})", ind, i, s.acc)
                s.rng[op.dst] = (0, (1 << op.imm) - 1)
        elif k == "ld_imm64":
            emit(f"r{op.dst} = {op.value}", ind, i, s.acc)
            s.rng[op.dst] = (op.value, op.value)
        elif k in ("ldx", "ldxsx"):
            d = f"r{op.dst}"
            val = self._stack_load(op.src, op.off, op.size)
            if val is not None:
                emit(f"{d} = {val}", ind, i, s.acc)
                s.rng[op.dst] = (0, (1 << (8 * op.size)) - 1)  # our own stack bytes
            else:
                self._inline_load(s, d, op.src, op.off, op.size, ind, i)
                # a computed region (the ctx) may answer a 4-byte load with a 64-bit
                # pointer, as the kernel's ctx rewrite does (xdp_md->data)
                s.rng[op.dst] = UNKNOWN
            if k == "ldxsx":
                bit = 1 << (8 * op.size - 1)
                emit(f"{d} = (({d} ^ {bit}) - {bit}) & {M64}", ind, i, s.acc)
                s.rng[op.dst] = UNKNOWN
        elif k in ("st", "stx"):
            if k == "st":
                val, src = str(op.imm & ((1 << (8 * op.size)) - 1)), None
            else:
                val, src = f"r{op.src}", op.src
            line = self._stack_store(s, op.dst, op.off, op.size, val, src, ind, i)
            if line is not None:
                emit(line, ind, i, s.acc)
            else:
                self._inline_store(s, op.dst, op.off, op.size, val, src, ind, i)
        elif k == "atomic":
            for line in self._atomic(s, op, ind):
                emit(line, ind, i, s.acc)
        elif k in ("ld_abs", "ld_ind"):
            self.used.add("skb_load")
            emit(
                "if skb_load is None: "
                "raise Trap('LD_ABS/LD_IND needs a socket buffer; this run has none')",
                ind, i, s.acc,
            )  # fmt: skip
            if k == "ld_abs":
                off = str(op.imm)
            else:
                off = f"((r{op.src} + {op.imm}) & {M32} ^ {SB32}) - {SB32}"
            emit(f"_v = skb_load({off}, {op.size})", ind, i, s.acc)
            emit(f"if _v is None: return 0, n + {s.acc}", ind, i, s.acc)
            emit(f"r0 = _v & {(1 << (8 * op.size)) - 1}", ind, i, s.acc)
            s.rng[0] = (0, (1 << (8 * op.size)) - 1)
        elif k == "helper":
            self.used.add("helpers")
            self._call_prep(s, ind, i)
            emit("st.n = n", ind, i)
            emit("st.depth = depth", ind, i)
            emit(f"_h = helpers.get({op.imm})", ind, i)
            msg = missing_helper_message(op.imm)
            emit(f"if _h is None: raise Trap({msg!r})", ind, i)
            emit("try:", ind, i)
            emit(f"r0 = int(_h(env, r1, r2, r3, r4, r5)) & {M64}", ind + 1, i)
            emit("except TailCall as _t:", ind, i)
            emit("if st.tail_call_allowed(): return _tail(st, _t.target, r1, depth)", ind + 1, i)
            emit(f"r0 = _t.fail_r0 & {M64}", ind + 1, i)
            emit("n = st.n", ind, i)
            s.rng[0] = UNKNOWN
        elif k == "call":
            self._call_prep(s, ind, i)
            emit(f"if depth >= {MAX_CALL_FRAMES}: raise Trap({DEPTH_MSG!r})", ind, i)
            emit("if n > lim: raise _limit_trap(lim)", ind, i)
            emit(f"r0, n = f_{op.target}(st, r1, r2, r3, r4, r5, n, depth + 1)", ind, i)
            s.rng[0] = UNKNOWN
        elif k == "callx":
            self.normalize(s, op.value, ind, i)
            self._call_prep(s, ind, i)
            emit("st.n = n", ind, i)
            emit(f"r0, n = _callx(st, r{op.value}, r1, r2, r3, r4, r5, depth)", ind, i)
            s.rng[0] = UNKNOWN
        else:  # pragma: no cover - terminators are handled by _block
            raise AssertionError(k)

    def _call_prep(self, s: State, ind: int, idx: int) -> None:
        """Arguments exact, ``n`` up to date (a callee or callback continues counting)."""
        for r in range(1, 6):
            self.normalize(s, r, ind, idx)
        if s.acc:
            self.emit(f"n += {s.acc}", ind, idx)
            s.acc = 0

    # ------------------------------------------------------------------ memory

    def _stack_slot(self, base: int, off: int, size: int) -> tuple[str, int] | None:
        """(view, index) for an aligned in-bounds r10-relative access, else None."""
        if base != 10:
            return None
        o = STACK_SIZE + off
        if o < 0 or o + size > STACK_SIZE:
            return None  # out of bounds: the generic path faults exactly like the interpreter
        if size == 1:
            self.used.add("sb")
            return "sb", o
        if o % size or sys.byteorder != "little":
            return None
        view = {2: "sh", 4: "si", 8: "sq"}[size]
        self.used.add(view)
        return view, o // size

    def _addr(self, s: State, base: int, off: int, ind: int, idx: int) -> str:
        rng = s.rng[base]
        lo, hi = rng[0] + off, rng[1] + off
        if 0 <= lo and hi <= M64:
            return f"r{base}" if off == 0 else f"r{base} + {off}"
        return f"(r{base} + {off}) & {M64}" if off else f"r{base} & {M64}"

    def _stack_load(self, base: int, off: int, size: int) -> str | None:
        """An in-bounds r10-relative load straight from the frame's views, else None."""
        slot = self._stack_slot(base, off, size)
        if slot is not None:
            return f"{slot[0]}[{slot[1]}]"
        if base == 10:
            o = STACK_SIZE + off
            if 0 <= o and o + size <= STACK_SIZE:  # misaligned, in bounds
                self.used.add("sb")
                return f"int.from_bytes(sb[{o}:{o + size}], 'little')"
        return None

    def _stack_store(
        self,
        s: State,
        base: int,
        off: int,
        size: int,
        val: str,
        src: int | None,
        ind: int,
        idx: int,
    ) -> str | None:
        mask = (1 << (8 * size)) - 1
        slot = self._stack_slot(base, off, size)
        if slot is not None:
            if src is None:
                v = val
            elif size == 8:
                self.normalize(s, src, ind, idx)
                v = val
            else:
                v = f"{val} & {mask}"
            return f"{slot[0]}[{slot[1]}] = {v}"
        if base == 10:
            o = STACK_SIZE + off
            if 0 <= o and o + size <= STACK_SIZE:
                self.used.add("sb")
                return f"sb[{o}:{o + size}] = ({val} & {mask}).to_bytes({size}, 'little')"
        return None

    def _base(self, s: State, base: int, ind: int, idx: int) -> None:
        """Look up (once per value of the register) the region ``r{base}`` points into."""
        if base in s.bases:
            return
        self.normalize(s, base, ind, idx)
        self.used.add("_get")
        a = s.acc
        self.emit(f"_b{base} = _get(r{base} >> 32)", ind, idx, a)
        self.emit(f"_k{base} = _b{base}.__class__ is _Region", ind, idx, a)
        self.emit(f"_o{base} = r{base} & {M32}", ind, idx, a)
        s.bases.add(base)

    def _inline_load(
        self, s: State, dst: str, base: int, off: int, size: int, ind: int, idx: int
    ) -> None:
        """A load through a pointer.  The region the pointer's slot names is looked up
        once per pointer value; plain Regions are then read inline with the bounds check
        the accessor would do (an offset that leaves the slot fails it); anything else
        -- the computed ctx, no region, out of bounds -- takes the accessor, which
        faults like the interpreter."""
        self._base(s, base, ind, idx)
        self.used.add(f"ld{size}")
        emit, a, b = self.emit, s.acc, base
        o = f"_o{b} + {off}" if off else f"_o{b}"
        emit(f"if _k{b} and _b{b}.lo <= {o} and _o{b} + {off + size} <= _b{b}.hi:", ind, idx, a)
        read = f"_b{b}.buf[{o}]" if size == 1 else f"_U{size}(_b{b}.buf, {o})[0]"
        emit(f"{dst} = {read}", ind + 1, idx, a)
        emit("else:", ind, idx, a)
        emit(f"{dst} = ld{size}({self._addr(s, base, off, ind, idx)})", ind + 1, idx, a)

    def _inline_store(
        self,
        s: State,
        base: int,
        off: int,
        size: int,
        val: str,
        src: int | None,
        ind: int,
        idx: int,
    ) -> None:
        mask = (1 << (8 * size)) - 1
        self._base(s, base, ind, idx)
        self.used.add(f"st{size}")
        emit, a, b = self.emit, s.acc, base
        if src is None or (0 <= s.rng[src][0] and s.rng[src][1] <= mask):
            v = val
        else:
            v = f"{val} & {mask}"
        o = f"_o{b} + {off}" if off else f"_o{b}"
        emit(
            f"if _k{b} and _b{b}.writable and _b{b}.lo <= {o} "
            f"and _o{b} + {off + size} <= _b{b}.hi:",
            ind, idx, a,
        )  # fmt: skip
        write = f"_b{b}.buf[{o}] = {v}" if size == 1 else f"_P{size}(_b{b}.buf, {o}, {v})"
        emit(write, ind + 1, idx, a)
        emit("else:", ind, idx, a)
        emit(f"st{size}({self._addr(s, base, off, ind, idx)}, {val})", ind + 1, idx, a)

    def _atomic(self, s: State, op: Op, ind: int) -> list[str]:
        size = op.size
        mask = (1 << (8 * size)) - 1
        a = op.op
        d, src = op.dst, op.src
        ld, sto = f"ld{size}", f"st{size}"
        self.used.update((ld, sto))
        i = op.idx
        if a == 0x100:  # load_acquire: dst = *(src + off)
            addr = self._addr(s, src, op.off, ind, i)
            s.rng[d] = UNKNOWN  # (a computed region may answer with any u64)
            return [f"r{d} = {ld}({addr})"]
        addr = self._addr(s, d, op.off, ind, i)
        if a == 0x110:  # store_release
            return [f"{sto}({addr}, r{src})"]
        out = [f"_a = {addr}", f"_o = {ld}(_a)"]
        base = a & ~uapi.BPF_FETCH
        sv = f"r{src}"
        if a == uapi.BPF_CMPXCHG:
            out.append(f"{sto}(_a, {sv} if _o == (r0 & {mask}) else _o)")
        elif a == uapi.BPF_XCHG:
            out.append(f"{sto}(_a, {sv})")
        elif base == uapi.BPF_ADD:
            out.append(f"{sto}(_a, _o + {sv})")
        elif base == uapi.BPF_OR:
            out.append(f"{sto}(_a, _o | {sv})")
        elif base == uapi.BPF_AND:
            out.append(f"{sto}(_a, _o & {sv})")
        elif base == uapi.BPF_XOR:
            out.append(f"{sto}(_a, _o ^ {sv})")
        if a == uapi.BPF_CMPXCHG:
            out.append("r0 = _o")
            s.rng[0] = UNKNOWN
        elif a & uapi.BPF_FETCH:
            out.append(f"r{src} = _o")
            s.rng[src] = UNKNOWN
        return out

    # ------------------------------------------------------------------ ALU

    def _alu(self, s: State, op: Op, ind: int) -> None:
        d, o, x, src = op.dst, op.op, op.is_x, op.src
        i = op.idx
        if s.pend is not None and s.pend[0] != d:
            self.flush(s, ind, i)
        if x and src == d and s.pend is not None:
            self.flush(s, ind, i)
        res = (
            self._alu64(s, op, d, o, x, src, ind)
            if op.kind == "alu64"
            else self._alu32(s, op, d, o, x, src, ind)
        )
        if res is None:
            return
        expr, rng = res
        if _big(rng):
            expr, rng = f"({expr}) & {M64}", _norm(rng)
        fused = s.pend[2] + 1 if s.pend is not None and s.pend[0] == d else 1
        s.pend = (d, expr, fused)
        s.rng[d] = rng
        if fused >= FUSE_MAX:
            self.flush(s, ind, i)

    def _src_clean(self, s: State, src: int, ind: int, idx: int) -> str:
        self.normalize(s, src, ind, idx)
        return f"r{src}"

    def _a_clean(self, s: State, d: int) -> tuple[str, Rng]:
        a, ra = self.cur(s, d)
        if not _clean(ra):
            return f"({a} & {M64})", _norm(ra)
        return a, ra

    def _alu64(
        self, s: State, op: Op, d: int, o: int, x: bool, src: int, ind: int
    ) -> tuple[str, Rng] | None:
        i = op.idx
        if o == uapi.BPF_MOV:
            if not x:
                k = op.imm & M64
                return str(k), (k, k)
            if op.off == 0:
                if src == d:
                    return None
                s.pend = None if s.pend is not None and s.pend[0] == d else s.pend
                return f"r{src}", s.rng[src]
            bits = op.off
            bit = 1 << (bits - 1)
            return f"(((r{src} & {(1 << bits) - 1}) ^ {bit}) - {bit}) & {M64}", UNKNOWN
        a, ra = self.cur(s, d)
        if x:
            b, rb = f"r{src}", s.rng[src]
        else:
            ks = op.imm
            b, rb = str(op.imm & M64), (op.imm & M64, op.imm & M64)
        if o == uapi.BPF_ADD:
            if x:
                return f"{a} + {b}", (ra[0] + rb[0], ra[1] + rb[1])
            return (f"{a} + {ks}" if ks >= 0 else f"{a} - {-ks}"), (ra[0] + ks, ra[1] + ks)
        if o == uapi.BPF_SUB:
            if x:
                return f"{a} - {b}", (ra[0] - rb[1], ra[1] - rb[0])
            return (f"{a} - {ks}" if ks >= 0 else f"{a} + {-ks}"), (ra[0] - ks, ra[1] - ks)
        if o == uapi.BPF_MUL:
            if not x:
                b, rb = str(ks), (ks, ks)
            c = [ra[0] * rb[0], ra[0] * rb[1], ra[1] * rb[0], ra[1] * rb[1]]
            return f"{a} * {b}", (min(c), max(c))
        if o == uapi.BPF_NEG:
            return f"-{a}", (-ra[1], -ra[0])
        if o == uapi.BPF_LSH:
            if x:
                return f"({a} << ({b} & 63)) & {M64}", UNKNOWN
            c = (op.imm & M64) & 63
            return f"{a} << {c}", (ra[0] << c, ra[1] << c)
        if o in (uapi.BPF_AND, uapi.BPF_OR, uapi.BPF_XOR):
            if o == uapi.BPF_AND and not x:
                k = op.imm & M64
                return f"{a} & {k}", ((0, min(ra[1], k)) if ra[0] >= 0 else (0, k))
            if ra[0] < 0:
                a, ra = self._a_clean(s, d)
            if rb[0] < 0:
                b, rb = f"({b} & {M64})", _norm(rb)
            if o == uapi.BPF_AND:
                return f"{a} & {b}", (0, min(ra[1], rb[1]))
            top = (1 << max(ra[1].bit_length(), rb[1].bit_length())) - 1
            return f"{a} {'|' if o == uapi.BPF_OR else '^'} {b}", (0, top)
        # the rest need exact operands
        if x and o in (uapi.BPF_DIV, uapi.BPF_MOD) and op.off == 0:
            # the operands appear twice: materialise them
            self.flush(s, ind, i)
            self.normalize(s, d, ind, i)
            b = self._src_clean(s, src, ind, i)
            a, ra, rb = f"r{d}", s.rng[d], s.rng[src]
        else:
            a, ra = self._a_clean(s, d)
            if x:
                b = self._src_clean(s, src, ind, i)
                rb = s.rng[src]
        if o == uapi.BPF_RSH:
            if x:
                return f"{a} >> ({b} & 63)", (0, ra[1])
            c = (op.imm & M64) & 63
            return f"{a} >> {c}", (ra[0] >> c, ra[1] >> c)
        if o == uapi.BPF_ARSH:
            sh = f"({b} & 63)" if x else str((op.imm & M64) & 63)
            return f"((({a} ^ {SB64}) - {SB64}) >> {sh}) & {M64}", UNKNOWN
        if o == uapi.BPF_DIV:
            if op.off:
                return f"_sdiv64({a}, {b})", UNKNOWN
            if x:
                return f"{a} // {b} if {b} else 0", (0, ra[1])
            k = op.imm & M64
            return (f"{a} // {k}", (ra[0] // k, ra[1] // k)) if k else ("0", (0, 0))
        if o == uapi.BPF_MOD:
            if op.off:
                return f"_smod64({a}, {b})", UNKNOWN
            if x:
                return f"{a} % {b} if {b} else {a}", (0, ra[1])
            k = op.imm & M64
            if not k:
                return a, ra
            return f"{a} % {k}", (ra if ra[1] < k else (0, min(ra[1], k - 1)))
        raise AssertionError(o)

    def _alu32(
        self, s: State, op: Op, d: int, o: int, x: bool, src: int, ind: int
    ) -> tuple[str, Rng] | None:
        """32-bit operations: every form below reads only the low 32 bits of dirty
        operands and produces a zero-extended result."""
        i = op.idx
        full = (0, M32)
        if o == uapi.BPF_MOV:
            if not x:
                k = op.imm & M32
                return str(k), (k, k)
            if s.pend is not None and s.pend[0] == d:
                s.pend = None
            if op.off == 0:
                rb = s.rng[src]
                if 0 <= rb[0] and rb[1] <= M32:
                    return None if src == d else (f"r{src}", rb)  # type: ignore[return-value]
                return f"r{src} & {M32}", full
            bit = 1 << (op.off - 1)
            return f"(((r{src} & {(1 << op.off) - 1}) ^ {bit}) - {bit}) & {M32}", full
        if x and o in (uapi.BPF_DIV, uapi.BPF_MOD):
            self.flush(s, ind, i)
        a, ra = self.cur(s, d)
        if x:
            b, rb = f"r{src}", s.rng[src]
        else:
            ks = op.imm
            k = ks & M32
        a32 = a if 0 <= ra[0] and ra[1] <= M32 else f"({a} & {M32})"
        if o in (uapi.BPF_ADD, uapi.BPF_SUB, uapi.BPF_MUL):
            sym = {uapi.BPF_ADD: "+", uapi.BPF_SUB: "-", uapi.BPF_MUL: "*"}[o]
            if x:
                expr = f"{a} {sym} {b}"
                if o == uapi.BPF_ADD:
                    raw = (ra[0] + rb[0], ra[1] + rb[1])
                elif o == uapi.BPF_SUB:
                    raw = (ra[0] - rb[1], ra[1] - rb[0])
                else:
                    c = [ra[0] * rb[0], ra[0] * rb[1], ra[1] * rb[0], ra[1] * rb[1]]
                    raw = (min(c), max(c))
            else:
                expr = f"{a} {sym} {ks}" if ks >= 0 else f"{a} {sym} ({ks})"
                if o == uapi.BPF_ADD:
                    raw = (ra[0] + ks, ra[1] + ks)
                elif o == uapi.BPF_SUB:
                    raw = (ra[0] - ks, ra[1] - ks)
                else:
                    raw = (min(ra[0] * ks, ra[1] * ks), max(ra[0] * ks, ra[1] * ks))
            if 0 <= raw[0] and raw[1] <= M32:
                return expr, raw
            return f"({expr}) & {M32}", full
        if o == uapi.BPF_DIV:
            if op.off:
                return f"_sdiv32({a}, {b if x else k})", full
            if x:
                return f"{a32} // ({b} & {M32}) if {b} & {M32} else 0", full
            return (f"{a32} // {k}", full) if k else ("0", (0, 0))
        if o == uapi.BPF_MOD:
            if op.off:
                return f"_smod32({a}, {b if x else k})", full
            if x:
                return f"{a32} % ({b} & {M32}) if {b} & {M32} else {a32}", full
            return (f"{a32} % {k}", (0, k - 1)) if k else (a32, full)
        if o == uapi.BPF_OR:
            return (f"({a} | {b}) & {M32}" if x else f"{a32} | {k}"), full
        if o == uapi.BPF_AND:
            return (f"{a} & {b} & {M32}", full) if x else (f"{a} & {k}", (0, k))
        if o == uapi.BPF_XOR:
            return f"({a} ^ {b if x else k}) & {M32}", full
        if o == uapi.BPF_LSH:
            sh = f"({b} & 31)" if x else str(k & 31)
            return f"({a} << {sh}) & {M32}", full
        if o == uapi.BPF_RSH:
            sh = f"({b} & 31)" if x else str(k & 31)
            return f"{a32} >> {sh}", full
        if o == uapi.BPF_ARSH:
            sh = f"({b} & 31)" if x else str(k & 31)
            return f"((({a32} ^ {SB32}) - {SB32}) >> {sh}) & {M32}", full
        if o == uapi.BPF_NEG:
            return f"-{a} & {M32}", full
        raise AssertionError(o)


def _relate(a: Rng, b: Rng, rel: str) -> tuple[Rng, Rng]:
    """Intervals of a and b given ``a rel b`` (unsigned, exact values)."""
    (al, ah), (bl, bh) = a, b
    if rel == "==":
        lo, hi = max(al, bl), min(ah, bh)
        return (lo, hi), (lo, hi)
    if rel == "!=":
        if bl == bh:
            if al == bl:
                al += 1
            if ah == bl:
                ah -= 1
        if al == ah:
            if bl == al:
                bl += 1
            if bh == al:
                bh -= 1
        return (al, ah), (bl, bh)
    if rel == ">":
        return (max(al, bl + 1), ah), (bl, min(bh, ah - 1))
    if rel == ">=":
        return (max(al, bl), ah), (bl, min(bh, ah))
    if rel == "<":
        return (al, min(ah, bh - 1)), (max(bl, al + 1), bh)
    if rel == "<=":
        return (al, min(ah, bh)), (max(bl, al), bh)
    raise AssertionError(rel)
