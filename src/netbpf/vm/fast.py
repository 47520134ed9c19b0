"""The fast engine: each program is translated once into Python source and compiled.

Why this shape (CPython executes *its* bytecode ~50x faster than it can decode ours):

* **Registers are locals** of a generated function (one per BPF function: the main
  program, every bpf-to-bpf callee, every callback), so ``r0 += r1`` is a handful of
  bytecodes: ``r0 = (r0 + r1) & 0xffffffffffffffff``.  Immediates are folded into
  constants, signed comparisons become unsigned ones on sign-flipped constants.
* **Basic blocks are inlined into their only predecessor**, so straight and
  forward-branching code becomes nested ``if``/``else`` with no dispatch at all.
  Blocks with several predecessors are *region heads*; a loop whose back edge returns
  to its region head becomes a Python ``while True`` with ``continue``.  Control only
  goes back to the dispatcher (a binary search on ``pc`` over region heads) when it
  jumps between regions.
* **The instruction count** is a local incremented once per block; the budget is
  checked only on backward jumps and calls (see :mod:`netbpf.vm.runtime`).
* **Stack accesses through r10** with a constant in-bounds offset (the vast majority
  of stack traffic) index typed memoryviews of the frame's bytearray directly; every
  other access goes through the size-specialised accessors of
  :func:`netbpf.vm.runtime.make_accessors`, which keep Region's bounds and permission
  checks.
* **Faults cost nothing until they happen.**  Generated code raises (MemoryFault, Trap,
  or whatever a helper raised); :func:`enter` finds the deepest generated frame in the
  traceback, maps its line number back to the instruction index and reads the
  instruction count from the frame's locals.  So no "current pc" bookkeeping runs on
  the fast path.

Results are identical to :mod:`netbpf.vm.interpreter` (tested differentially).
"""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netbpf import uapi
from netbpf.errors import InstructionLimitExceeded, NetbpfError, ProgramFault
from netbpf.vm.decode import Op, parse_func_value
from netbpf.vm.memory import MemoryFault
from netbpf.vm.runtime import (
    BPF_MAX_LOOPS,
    MAX_CALL_FRAMES,
    STACK_SIZE,
    RunState,
    TailCall,
    Trap,
    helper_error,
    helper_name,
    resolve_func,
)

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.vm.engine import Executable

__all__ = ["FastCode", "enter", "translate"]

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF
SB64 = 1 << 63
SB32 = 1 << 31
_LITTLE = sys.byteorder == "little"

#: deepest if/else nesting inlining may create (CPython refuses > 100 indentation levels)
_MAX_NEST = 40
#: longest chain of blocks inlined one after another (keeps the generator's recursion low)
_MAX_CHAIN = 200

_DEPTH_MSG = f"call stack too deep: more than {MAX_CALL_FRAMES} frames"

_ENDS_BLOCK = {
    "ja",
    "jmp",
    "jmp32",
    "exit",
    "call",
    "callx",
    "helper",
    "ld_abs",
    "ld_ind",
    "may_goto",
}


def _limit_trap(limit: int) -> Trap:
    return Trap(f"instruction limit of {limit} exceeded", limit=True)


def _sdiv64(a: int, b: int) -> int:
    if not b:
        return 0
    a = a - (1 << 64) if a >> 63 else a
    b = b - (1 << 64) if b >> 63 else b
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M64


def _smod64(a: int, b: int) -> int:
    if not b:
        return a
    sa = a - (1 << 64) if a >> 63 else a
    sb = b - (1 << 64) if b >> 63 else b
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return (sa - sb * q) & M64


def _sdiv32(a: int, b: int) -> int:
    a &= M32
    b &= M32
    if not b:
        return 0
    a = a - (1 << 32) if a >> 31 else a
    b = b - (1 << 32) if b >> 31 else b
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M32


def _smod32(a: int, b: int) -> int:
    a &= M32
    b &= M32
    if not b:
        return a
    sa = a - (1 << 32) if a >> 31 else a
    sb = b - (1 << 32) if b >> 31 else b
    q = abs(sa) // abs(sb)
    if (sa < 0) != (sb < 0):
        q = -q
    return (sa - sb * q) & M32


def _bswap(x: int, nbytes: int) -> int:
    return int.from_bytes((x & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"), "big")


# -- the translation ----------------------------------------------------------------------


@dataclass
class _Block:
    start: int
    ops: list[Op]
    #: successors in emission order: ("fall"|"jump"|"then"|"else", target)
    succs: list[int] = field(default_factory=list)


@dataclass
class FastCode:
    """The translation of one Executable."""

    source: str
    filename: str
    funcs: dict[int, Any]
    #: generated line number -> instruction index (-1: dispatcher)
    line_idx: list[int]
    #: instruction index -> ops executed after it in its block (for exact counts on faults)
    tail: dict[int, int]
    exe: Any  # weak proxy of the Executable
    #: strong references to the compiled namespace (keeps functions alive)
    namespace: dict[str, Any]


_CODES: weakref.WeakValueDictionary[str, FastCode] = weakref.WeakValueDictionary()


class _Emitter:
    def __init__(self, exe: Executable) -> None:
        self.exe = exe
        self.ops = exe.program.ops
        self.lines: list[tuple[str, int]] = []
        self.tail: dict[int, int] = {}
        self.blocks = self._split_blocks()

    # -- analysis -------------------------------------------------------------------------

    def _next(self, op: Op) -> int:
        return op.idx + (2 if op.kind == "ld_imm64" else 1)

    def _split_blocks(self) -> dict[int, _Block]:
        ops = self.ops
        leaders = set(self.exe.program.entries)
        for op in ops:
            if op is None:
                continue
            if op.kind in _ENDS_BLOCK:
                leaders.add(self._next(op))
            if op.kind in ("ja", "jmp", "jmp32", "may_goto"):
                leaders.add(op.target)
        blocks: dict[int, _Block] = {}
        cur: _Block | None = None
        for op in ops:
            if op is None:
                continue
            if op.idx in leaders or cur is None:
                cur = blocks[op.idx] = _Block(op.idx, [])
            cur.ops.append(op)
        for b in blocks.values():
            last = b.ops[-1]
            k = last.kind
            for pos, op in enumerate(b.ops):
                self.tail[op.idx] = len(b.ops) - 1 - pos
            if k == "exit":
                continue
            if k == "ja":
                b.succs = [last.target]
            elif k in ("jmp", "jmp32", "may_goto"):
                b.succs = [last.target, self._next(last)]
            else:  # falls through (calls, helpers, ld_abs, or the next op is a leader)
                b.succs = [self._next(last)]
        return blocks

    def _plan(self, entry: int) -> tuple[list[int], dict[int, set[int]]]:
        """Region heads of the function at ``entry`` and, per head, the blocks inlined
        into its region."""
        seen: set[int] = set()
        preds: dict[int, int] = {}
        stack = [entry]
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            for t in self.blocks[s].succs:
                preds[t] = preds.get(t, 0) + 1
                stack.append(t)
        heads = {entry} | {s for s in seen if preds.get(s, 0) >= 2}
        members: dict[int, set[int]] = {}
        work = sorted(heads)
        while work:
            h = work.pop()
            mem = members[h] = set()
            todo = [(h, 0, 0)]
            while todo:
                b, nest, chain = todo.pop()
                mem.add(b)
                blk = self.blocks[b]
                cond = blk.ops[-1].kind in ("jmp", "jmp32", "may_goto")
                for t in blk.succs:
                    if t in heads:
                        continue
                    tn = nest + 1 if cond else nest
                    if tn > _MAX_NEST or chain + 1 > _MAX_CHAIN:
                        heads.add(t)
                        work.append(t)
                        continue
                    todo.append((t, tn, chain + 1))
        return sorted(heads), members

    # -- emission -------------------------------------------------------------------------

    def emit(self, text: str, idx: int, ind: int) -> None:
        self.lines.append(("    " * ind + text, idx))

    def translate(self) -> str:
        self.lines.append(("# generated by netbpf.vm.fast -- do not edit", -1))
        for entry in sorted(self.exe.program.entries):
            self._function(entry)
        return "\n".join(t for t, _ in self.lines) + "\n"

    def _function(self, entry: int) -> None:
        heads, members = self._plan(entry)
        self.heads = set(heads)
        self.members = members
        used: set[str] = set()
        body_start = len(self.lines)
        self.used = used
        # body first (we learn which locals the prologue must set up), prologue after
        if len(heads) == 1:
            self._region(entry, 1, dispatched=False)
        else:
            self.emit(f"pc = {entry}", -1, 1)
            self.emit("while True:", -1, 1)
            self._tree(heads, 2)
        body = self.lines[body_start:]
        del self.lines[body_start:]
        self.emit(f"def f_{entry}(st, r1, r2, r3, r4, r5, n, depth):", entry, 0)
        pro = [
            "env = st.env",
            "lim = st.limit",
            "_F = st.frame(depth)",
            "r10 = _F.fp",
            "r0 = r6 = r7 = r8 = r9 = 0",
        ]
        for v in ("sb", "sh", "si", "sq"):
            if v in used:
                pro.append(f"{v} = _F.{v[1]}")
        acc = sorted(u for u in used if u[:2] in ("ld", "st") and u[2:].isdigit())
        if acc:
            pro.append("_A = st.accessors")
            pro.extend(f"{a} = _A[{a!r}]" for a in acc)
        if "helpers" in used:
            pro.append("helpers = env.helpers")
        if "skb_load" in used:
            pro.append("skb_load = env.skb_load")
        if "loops" in used:
            pro.append(f"loops = {BPF_MAX_LOOPS}")
        for p in pro:
            self.emit(p, entry, 1)
        self.lines.extend(body)

    def _tree(self, heads: list[int], ind: int) -> None:
        if len(heads) == 1:
            self._region(heads[0], ind, dispatched=True)
            return
        if len(heads) <= 3:
            for k, h in enumerate(heads[:-1]):
                self.emit(f"{'if' if k == 0 else 'elif'} pc == {h}:", -1, ind)
                self._region(h, ind + 1, dispatched=True)
            self.emit("else:", -1, ind)
            self._region(heads[-1], ind + 1, dispatched=True)
            return
        mid = len(heads) // 2
        self.emit(f"if pc < {heads[mid]}:", -1, ind)
        self._tree(heads[:mid], ind + 1)
        self.emit("else:", -1, ind)
        self._tree(heads[mid:], ind + 1)

    def _region(self, head: int, ind: int, *, dispatched: bool) -> None:
        mem = self.members[head]
        looped = any(head in self.blocks[b].succs for b in mem)
        self.region_head = head
        self.looped = looped
        if looped:
            self.emit("while True:", head, ind)
            ind += 1
        self._block(head, ind, 0)

    def _goto(self, target: int, src: int, ind: int, chain: int) -> None:
        """Transfer control from the jump (or fall-through) at ``src`` to ``target``."""
        if target <= src:
            self.emit("if n > lim: raise _limit_trap(lim)", src, ind)
        if target == self.region_head and self.looped:
            self.emit("continue", src, ind)
        elif target not in self.heads:
            self._block(target, ind, chain + 1)
        else:
            self.emit(f"pc = {target}", src, ind)
            if self.looped:
                self.emit("break", src, ind)

    def _block(self, start: int, ind: int, chain: int) -> None:
        blk = self.blocks[start]
        self.emit(f"n += {len(blk.ops)}", start, ind)
        for op in blk.ops[:-1]:
            self._op(op, ind)
        last = blk.ops[-1]
        k = last.kind
        if k == "exit":
            self.emit("return r0, n", last.idx, ind)
        elif k == "ja":
            self._goto(last.target, last.idx, ind, chain)
        elif k in ("jmp", "jmp32"):
            self.emit(f"if {self._cond(last)}:", last.idx, ind)
            self._goto(last.target, last.idx, ind + 1, chain)
            self.emit("else:", last.idx, ind)
            self._goto(self._next(last), last.idx, ind + 1, chain)
        elif k == "may_goto":
            self.used.add("loops")
            self.emit("if loops:", last.idx, ind)
            self.emit("loops -= 1", last.idx, ind + 1)
            self._goto(self._next(last), last.idx, ind + 1, chain)
            self.emit("else:", last.idx, ind)
            self._goto(last.target, last.idx, ind + 1, chain)
        else:
            self._op(last, ind)
            self._goto(self._next(last), last.idx, ind, chain)

    # -- single instructions --------------------------------------------------------------

    def _cond(self, op: Op) -> str:
        d = f"r{op.dst}"
        o = op.op
        signed = o in (uapi.BPF_JSGT, uapi.BPF_JSGE, uapi.BPF_JSLT, uapi.BPF_JSLE)
        rel = {
            uapi.BPF_JEQ: "==", uapi.BPF_JNE: "!=", uapi.BPF_JGT: ">", uapi.BPF_JGE: ">=",
            uapi.BPF_JLT: "<", uapi.BPF_JLE: "<=", uapi.BPF_JSGT: ">", uapi.BPF_JSGE: ">=",
            uapi.BPF_JSLT: "<", uapi.BPF_JSLE: "<=",
        }  # fmt: skip
        if op.kind == "jmp":
            if op.is_x:
                s = f"r{op.src}"
                if o == uapi.BPF_JSET:
                    return f"{d} & {s}"
                if signed:
                    return f"({d} ^ {SB64}) {rel[o]} ({s} ^ {SB64})"
                return f"{d} {rel[o]} {s}"
            k = op.imm & M64
            if o == uapi.BPF_JSET:
                return f"{d} & {k}"
            if signed:
                return f"({d} ^ {SB64}) {rel[o]} {k ^ SB64}"
            return f"{d} {rel[o]} {k}"
        d32 = f"({d} & {M32})"
        if op.is_x:
            s32 = f"(r{op.src} & {M32})"
            if o == uapi.BPF_JSET:
                return f"{d} & r{op.src} & {M32}"
            if signed:
                return f"({d32} ^ {SB32}) {rel[o]} ({s32} ^ {SB32})"
            return f"{d32} {rel[o]} {s32}"
        k = op.imm & M32
        if o == uapi.BPF_JSET:
            return f"{d} & {k}"
        if signed:
            return f"({d32} ^ {SB32}) {rel[o]} {k ^ SB32}"
        return f"{d32} {rel[o]} {k}"

    def _op(self, op: Op, ind: int) -> None:
        k = op.kind
        emit = self.emit
        i = op.idx
        if k in ("alu64", "alu"):
            for line in self._alu(op):
                emit(line, i, ind)
        elif k == "end":
            d = f"r{op.dst}"
            nb = op.imm // 8
            if op.opcode & 0x07 == uapi.BPF_ALU and not op.is_x:  # to_le: truncate
                if nb < 8:
                    emit(f"{d} &= {(1 << op.imm) - 1}", i, ind)
                else:
                    emit("pass", i, ind)
            elif nb == 2:
                emit(f"{d} = (({d} & 255) << 8) | (({d} >> 8) & 255)", i, ind)
            else:
                emit(f"{d} = _bswap({d}, {nb})", i, ind)
        elif k == "ld_imm64":
            emit(f"r{op.dst} = {op.value}", i, ind)
        elif k in ("ldx", "ldxsx"):
            val = self._load(f"r{op.src}", op.off, op.size)
            if k == "ldxsx":
                bit = 1 << (8 * op.size - 1)
                val = f"(({val} ^ {bit}) - {bit}) & {M64}"
            emit(f"r{op.dst} = {val}", i, ind)
        elif k == "st":
            emit(
                self._store(
                    f"r{op.dst}", op.off, op.size, str(op.imm & ((1 << (8 * op.size)) - 1)), True
                ),
                i,
                ind,
            )
        elif k == "stx":
            emit(self._store(f"r{op.dst}", op.off, op.size, f"r{op.src}", False), i, ind)
        elif k == "atomic":
            for line in self._atomic(op):
                emit(line, i, ind)
        elif k in ("ld_abs", "ld_ind"):
            self.used.add("skb_load")
            emit(
                "if skb_load is None: raise Trap('LD_ABS/LD_IND needs a socket buffer; this run has none')",
                i,
                ind,
            )
            if k == "ld_abs":
                off = str(op.imm)
            else:
                off = f"((r{op.src} + {op.imm}) & {M32} ^ {SB32}) - {SB32}"
            emit(f"_v = skb_load({off}, {op.size})", i, ind)
            emit("if _v is None: return 0, n", i, ind)
            emit(f"r0 = _v & {(1 << (8 * op.size)) - 1}", i, ind)
        elif k == "helper":
            self.used.add("helpers")
            emit("st.n = n", i, ind)
            emit("st.depth = depth", i, ind)
            emit(f"_h = helpers.get({op.imm})", i, ind)
            emit(f"if _h is None: raise Trap({self._unknown_helper(op.imm)!r})", i, ind)
            emit("try:", i, ind)
            emit(f"r0 = int(_h(env, r1, r2, r3, r4, r5)) & {M64}", i, ind + 1)
            emit("except TailCall as _t:", i, ind)
            emit("if st.tail_call_allowed(): return _tail(st, _t.target, r1, depth)", i, ind + 1)
            emit(f"r0 = _t.fail_r0 & {M64}", i, ind + 1)
            emit("n = st.n", i, ind)
        elif k == "call":
            emit(f"if depth >= {MAX_CALL_FRAMES}: raise Trap({_DEPTH_MSG!r})", i, ind)
            emit("if n > lim: raise _limit_trap(lim)", i, ind)
            emit(f"r0, n = f_{op.target}(st, r1, r2, r3, r4, r5, n, depth + 1)", i, ind)
        elif k == "callx":
            emit("st.n = n", i, ind)
            emit(f"r0, n = _callx(st, r{op.value}, r1, r2, r3, r4, r5, depth)", i, ind)
        else:  # pragma: no cover - terminators are handled by _block
            raise AssertionError(k)

    @staticmethod
    def _unknown_helper(helper_id: int) -> str:
        return f"unknown helper {helper_name(helper_id)} (not available to this program)"

    def _stack_slot(self, base: str, off: int, size: int) -> tuple[str, int] | None:
        """(view, index) for an in-bounds r10-relative access, else None."""
        if base != "r10":
            return None
        o = STACK_SIZE + off
        if o < 0 or o + size > STACK_SIZE:
            return None  # out of bounds: the generic path faults exactly like the interpreter
        if size == 1:
            self.used.add("sb")
            return "sb", o
        if o % size or not _LITTLE:
            return None
        view = {2: "sh", 4: "si", 8: "sq"}[size]
        self.used.add(view)
        return view, o // size

    def _addr(self, base: str, off: int) -> str:
        return base if off == 0 else f"({base} + {off}) & {M64}"

    def _load(self, base: str, off: int, size: int) -> str:
        slot = self._stack_slot(base, off, size)
        if slot is not None:
            return f"{slot[0]}[{slot[1]}]"
        if base == "r10":
            o = STACK_SIZE + off
            if 0 <= o and o + size <= STACK_SIZE:  # misaligned, in bounds
                self.used.add("sb")
                return f"int.from_bytes(sb[{o}:{o + size}], 'little')"
        self.used.add(f"ld{size}")
        return f"ld{size}({self._addr(base, off)})"

    def _store(self, base: str, off: int, size: int, val: str, const: bool) -> str:
        mask = (1 << (8 * size)) - 1
        slot = self._stack_slot(base, off, size)
        if slot is not None:
            v = val if const or size == 8 else f"{val} & {mask}"
            return f"{slot[0]}[{slot[1]}] = {v}"
        if base == "r10":
            o = STACK_SIZE + off
            if 0 <= o and o + size <= STACK_SIZE:
                self.used.add("sb")
                return f"sb[{o}:{o + size}] = ({val} & {mask}).to_bytes({size}, 'little')"
        self.used.add(f"st{size}")
        return f"st{size}({self._addr(base, off)}, {val})"

    def _atomic(self, op: Op) -> list[str]:
        size = op.size
        mask = (1 << (8 * size)) - 1
        a = op.op
        d, s = f"r{op.dst}", f"r{op.src}"
        ld, sto = f"ld{size}", f"st{size}"
        self.used.update((ld, sto))
        if a == 0x100:  # load_acquire
            return [f"{d} = {ld}({self._addr(s, op.off)})"]
        if a == 0x110:  # store_release
            return [f"{sto}({self._addr(d, op.off)}, {s})"]
        out = [f"_a = {self._addr(d, op.off)}", f"_o = {ld}(_a)"]
        base = a & ~uapi.BPF_FETCH
        if a == uapi.BPF_CMPXCHG:
            out.append(f"{sto}(_a, {s} if _o == (r0 & {mask}) else _o)")
        elif a == uapi.BPF_XCHG:
            out.append(f"{sto}(_a, {s})")
        elif base == uapi.BPF_ADD:
            out.append(f"{sto}(_a, _o + {s})")
        elif base == uapi.BPF_OR:
            out.append(f"{sto}(_a, _o | {s})")
        elif base == uapi.BPF_AND:
            out.append(f"{sto}(_a, _o & {s})")
        elif base == uapi.BPF_XOR:
            out.append(f"{sto}(_a, _o ^ {s})")
        if a == uapi.BPF_CMPXCHG:
            out.append("r0 = _o")
        elif a & uapi.BPF_FETCH:
            out.append(f"{s} = _o")
        return out

    def _alu(self, op: Op) -> list[str]:
        d = f"r{op.dst}"
        o = op.op
        x = op.is_x
        s = f"r{op.src}"
        if op.kind == "alu64":
            k = op.imm & M64  # unsigned view of the sign-extended immediate
            ks = op.imm  # signed view (fine for + - *: the mask fixes the sign)
            if o == uapi.BPF_ADD:
                if x:
                    return [f"{d} = ({d} + {s}) & {M64}"]
                return [
                    f"{d} = ({d} + {ks}) & {M64}" if ks >= 0 else f"{d} = ({d} - {-ks}) & {M64}"
                ]
            if o == uapi.BPF_SUB:
                if x:
                    return [f"{d} = ({d} - {s}) & {M64}"]
                return [
                    f"{d} = ({d} - {ks}) & {M64}" if ks >= 0 else f"{d} = ({d} + {-ks}) & {M64}"
                ]
            if o == uapi.BPF_MUL:
                return [f"{d} = ({d} * {s if x else ks}) & {M64}"]
            if o == uapi.BPF_DIV:
                if op.off:
                    return [f"{d} = _sdiv64({d}, {s if x else k})"]
                if x:
                    return [f"{d} = {d} // {s} if {s} else 0"]
                return [f"{d} = {d} // {k}" if k else f"{d} = 0"]
            if o == uapi.BPF_MOD:
                if op.off:
                    return [f"{d} = _smod64({d}, {s if x else k})"]
                if x:
                    return [f"if {s}: {d} = {d} % {s}"]
                return [f"{d} = {d} % {k}" if k else "pass"]
            if o in (uapi.BPF_OR, uapi.BPF_AND, uapi.BPF_XOR):
                sym = {uapi.BPF_OR: "|", uapi.BPF_AND: "&", uapi.BPF_XOR: "^"}[o]
                return [f"{d} = {d} {sym} {s if x else k}"]
            if o == uapi.BPF_LSH:
                return [
                    f"{d} = ({d} << ({s} & 63)) & {M64}"
                    if x
                    else f"{d} = ({d} << {k & 63}) & {M64}"
                ]
            if o == uapi.BPF_RSH:
                return [f"{d} = {d} >> ({s} & 63)" if x else f"{d} = {d} >> {k & 63}"]
            if o == uapi.BPF_ARSH:
                sh = f"({s} & 63)" if x else str(k & 63)
                return [f"{d} = ((({d} ^ {SB64}) - {SB64}) >> {sh}) & {M64}"]
            if o == uapi.BPF_NEG:
                return [f"{d} = -{d} & {M64}"]
            if o == uapi.BPF_MOV:
                if not x:
                    return [f"{d} = {k}"]
                if op.off == 0:
                    return [f"{d} = {s}" if d != s else "pass"]
                bit = 1 << (op.off - 1)
                return [f"{d} = ((({s} & {(1 << op.off) - 1}) ^ {bit}) - {bit}) & {M64}"]
            raise AssertionError(o)
        # 32-bit
        k = op.imm & M32
        ks = op.imm
        d32 = f"({d} & {M32})"
        s32 = f"({s} & {M32})"
        if o == uapi.BPF_ADD:
            return [f"{d} = ({d} + {s if x else ks}) & {M32}"]
        if o == uapi.BPF_SUB:
            return [f"{d} = ({d} - {s if x else ks}) & {M32}"]
        if o == uapi.BPF_MUL:
            return [f"{d} = ({d} * {s if x else ks}) & {M32}"]
        if o == uapi.BPF_DIV:
            if op.off:
                return [f"{d} = _sdiv32({d}, {s if x else k})"]
            if x:
                return [f"{d} = {d32} // {s32} if {s} & {M32} else 0"]
            return [f"{d} = {d32} // {k}" if k else f"{d} = 0"]
        if o == uapi.BPF_MOD:
            if op.off:
                return [f"{d} = _smod32({d}, {s if x else k})"]
            if x:
                return [f"{d} = {d32} % {s32} if {s} & {M32} else {d32}"]
            return [f"{d} = {d32} % {k}" if k else f"{d} &= {M32}"]
        if o == uapi.BPF_OR:
            return [f"{d} = ({d} | {s}) & {M32}" if x else f"{d} = {d32} | {k}"]
        if o == uapi.BPF_AND:
            return [f"{d} = {d} & {s} & {M32}" if x else f"{d} = {d} & {k}"]
        if o == uapi.BPF_XOR:
            return [f"{d} = ({d} ^ {s if x else k}) & {M32}"]
        if o == uapi.BPF_LSH:
            return [
                f"{d} = ({d} << ({s} & 31)) & {M32}" if x else f"{d} = ({d} << {k & 31}) & {M32}"
            ]
        if o == uapi.BPF_RSH:
            return [f"{d} = {d32} >> ({s} & 31)" if x else f"{d} = {d32} >> {k & 31}"]
        if o == uapi.BPF_ARSH:
            sh = f"({s} & 31)" if x else str(k & 31)
            return [f"{d} = ((({d32} ^ {SB32}) - {SB32}) >> {sh}) & {M32}"]
        if o == uapi.BPF_NEG:
            return [f"{d} = -{d} & {M32}"]
        if o == uapi.BPF_MOV:
            if not x:
                return [f"{d} = {k}"]
            if op.off == 0:
                return [f"{d} = {s32}"]
            bit = 1 << (op.off - 1)
            return [f"{d} = ((({s} & {(1 << op.off) - 1}) ^ {bit}) - {bit}) & {M32}"]
        raise AssertionError(o)


def translate(exe: Executable) -> FastCode:
    """Translate ``exe`` into Python and compile it (once; the result is cached on the
    Executable by the engine)."""
    em = _Emitter(exe)
    source = em.translate()
    filename = f"<netbpf-fast {exe.uid} {exe.name}>"
    line_idx = [-1] + [idx for _, idx in em.lines]  # line numbers are 1-based
    ns: dict[str, Any] = {
        "Trap": Trap,
        "TailCall": TailCall,
        "_limit_trap": _limit_trap,
        "_tail": _tail,
        "_callx": _callx,
        "_sdiv64": _sdiv64,
        "_smod64": _smod64,
        "_sdiv32": _sdiv32,
        "_smod32": _smod32,
        "_bswap": _bswap,
        "__builtins__": {"int": int},
    }
    exec(compile(source, filename, "exec"), ns)
    funcs = {e: ns[f"f_{e}"] for e in exe.program.entries}
    code = FastCode(source, filename, funcs, line_idx, em.tail, weakref.proxy(exe), ns)
    _CODES[filename] = code
    return code


def _code_of(exe: Executable) -> FastCode:
    code = exe._fast
    if code is None:  # loaded for the interpreter, reached by a tail call or callback
        code = exe._fast = translate(exe)
    return code  # type: ignore[no-any-return]


# -- run time -----------------------------------------------------------------------------


def _tail(st: RunState, target: Executable, ctx: int, depth: int) -> tuple[int, int]:
    """Run ``target`` in place of the current frame (a successful tail call)."""
    return _code_of(target).funcs[0](st, ctx, 0, 0, 0, 0, st.n, depth)  # type: ignore[no-any-return]


def _callx(
    st: RunState, value: int, r1: int, r2: int, r3: int, r4: int, r5: int, depth: int
) -> tuple[int, int]:
    """``callx``: a BPF function by code address, or (uBPF convention) a helper by id."""
    if parse_func_value(value) is None:
        env = st.env
        fn = env.helpers.get(value)
        if fn is None:
            raise Trap(f"unknown helper {helper_name(value)} (not available to this program)")
        st.depth = depth
        try:
            r0 = int(fn(env, r1, r2, r3, r4, r5)) & M64
        except TailCall:
            raise Trap("bpf_tail_call through callx is not supported") from None
        except ProgramFault:
            raise
        except Exception as exc:
            raise Trap(helper_error(helper_name(value), exc)) from None
        return r0, st.n
    exe, entry = resolve_func(value)
    st.check_call(depth + 1)
    return _code_of(exe).funcs[entry](st, r1, r2, r3, r4, r5, st.n, depth + 1)  # type: ignore[no-any-return]


def enter(
    st: RunState,
    exe: Executable,
    entry: int,
    args: tuple[int, int, int, int, int],
    depth: int,
    *,
    callback: bool = False,
) -> int:
    """Run ``exe``'s function at ``entry`` in a new frame; return r0 (see the interpreter's
    :func:`~netbpf.vm.interpreter.enter`, which this mirrors)."""
    code = _code_of(exe)
    try:
        st.check_call(depth)
        r0, n = code.funcs[entry](st, *args, st.n, depth)
    except Exception as exc:
        raise _convert(exc, st, exe, entry) from None
    st.n = n
    return r0  # type: ignore[no-any-return]


def _convert(exc: Exception, st: RunState, exe: Executable, entry: int) -> NetbpfError:
    """Find where generated code raised ``exc`` and build the ProgramFault; also fix
    ``st.n`` to the exact number of executed instructions."""
    if isinstance(exc, ProgramFault):
        return exc  # raised (and counted) by a nested run: a callback
    tb = exc.__traceback__
    last = None
    code: FastCode | None = None
    while tb is not None:
        c = _CODES.get(tb.tb_frame.f_code.co_filename)
        if c is not None:
            last, code = tb, c
        tb = tb.tb_next
    if last is None or code is None:
        # raised before any generated code ran: the frame checks at entry
        if isinstance(exc, Trap):
            cls = InstructionLimitExceeded if exc.limit else ProgramFault
            return cls(entry, exc.reason, program=exe.name)
        return ProgramFault(
            entry, f"internal VM error: {exc.__class__.__name__}: {exc}", program=exe.name
        )
    idx = code.line_idx[last.tb_lineno] if last.tb_lineno < len(code.line_idx) else -1
    name = code.exe.name
    op = code.exe.program.ops[idx] if idx >= 0 else None
    if op is not None and op.kind not in ("helper", "callx"):
        n_local = last.tb_frame.f_locals.get("n")
        if isinstance(n_local, int):
            st.n = n_local - code.tail[idx]
    if isinstance(exc, Trap):
        cls = InstructionLimitExceeded if exc.limit else ProgramFault
        return cls(idx, exc.reason, program=name)
    if op is not None and op.kind == "helper":
        return ProgramFault(idx, helper_error(helper_name(op.imm), exc), program=name)
    if isinstance(exc, MemoryFault):
        return ProgramFault(idx, exc.reason, program=name)
    if isinstance(exc, NetbpfError):
        return ProgramFault(idx, str(exc), program=name)
    return ProgramFault(idx, f"internal VM error: {exc.__class__.__name__}: {exc}", program=name)
