"""Control-flow facts computed before the path-by-path analysis.

* subprogram boundaries (``func#N @start``);
* the depth-first walk of ``check_cfg``: every instruction must be reachable from
  the entry (bpf-to-bpf call targets and callbacks count as reached); privileged
  programs may loop (a back-edge is refused only for unprivileged loads, which netbpf
  does not model);
* prune points (where states are compared and checkpoints taken), as the kernel marks
  them: conditional jumps, jump targets, instructions after calls, calls that take
  callbacks, may_goto;
* live registers before each instruction (``compute_live_registers``): a register not
  read before being written on any path from an instruction does not matter there,
  so state comparison ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import ATOMIC_OPS, BPF_LOAD_ACQ, BPF_STORE_REL, OPCODES
from netbpf.isa.validate import subprogram_starts
from netbpf.uapi import BPF_CMPXCHG, BPF_JMP32, BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_X
from netbpf.verifier import kinds as K

__all__ = ["Cfg", "Subprog", "analyse"]

#: helpers that call a BPF callback synchronously (prune point + forced checkpoint)
CALLBACK_HELPERS = frozenset({164, 181})  # for_each_map_elem, loop

CALLER_SAVED = 0b111111  # r0-r5


@dataclass
class Subprog:
    start: int
    end: int  #: one past the last slot
    stack_depth: int = 0
    is_cb: bool = False
    has_tail_call: bool = False
    has_ld_abs: bool = False
    changes_pkt_data: bool = False
    calls: set[int] = field(default_factory=set)  #: subprog indices called


@dataclass
class Cfg:
    subprogs: list[Subprog]
    second_half: set[int]  #: second slots of ld_imm64
    prune: bytearray  #: 1 where is_state_visited runs
    jmp_point: bytearray
    force_checkpoint: bytearray
    calls_callback: bytearray
    live_before: list[int]  #: bit i = register ri is live before the instruction
    unreachable: int | None  #: the first unreachable instruction, if any

    def subprog_of(self, idx: int) -> int:
        lo, hi = 0, len(self.subprogs) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.subprogs[mid].start <= idx:
                lo = mid
            else:
                hi = mid - 1
        return lo


def successors(insns: Sequence[Instruction], i: int) -> list[int]:
    """Successors inside the function (calls continue at the next instruction)."""
    insn = insns[i]
    info = OPCODES[insn.opcode]
    k = info.kind
    if k is K.EXIT:
        return []
    if k is K.LD_IMM64:
        return [i + 2]
    if k is K.JA:
        return [i + (insn.imm if info.cls == BPF_JMP32 else insn.off) + 1]
    if k in (K.JCC, K.MAY_GOTO):
        return [i + 1, i + insn.off + 1]
    return [i + 1]


def _use_def(insn: Instruction, nargs: dict[int, int]) -> tuple[int, int]:
    info = OPCODES[insn.opcode]
    k = info.kind
    d, s = 1 << insn.dst, 1 << insn.src
    if k is K.MOV:
        return (s if info.use_src_reg else 0), d
    if k is K.ALU:
        return (d | s if info.use_src_reg else d), d
    if k in (K.NEG, K.END):
        return d, d
    if k is K.LD_IMM64:
        return 0, d
    if k is K.LD_ABS:
        return 1 << 6, CALLER_SAVED
    if k is K.LD_IND:
        return (1 << 6) | s, CALLER_SAVED
    if k is K.LDX:
        return s, d
    if k is K.ST:
        return d, 0
    if k is K.STX:
        return d | s, 0
    if k is K.ATOMIC:
        op = ATOMIC_OPS.get(insn.imm)  # None: refused if a path reaches it
        if insn.imm == BPF_LOAD_ACQ:
            return s, d
        if insn.imm == BPF_STORE_REL:
            return d | s, 0
        if insn.imm == BPF_CMPXCHG:
            return d | s | 1, 1
        return d | s, (s if op is not None and op.fetch else 0)
    if k is K.JCC:
        return (d | s if info.use_src_reg else d), 0
    if k is K.CALL:
        if insn.src == 0 and insn.imm in nargs:
            n = nargs[insn.imm]
            return ((1 << (n + 1)) - 2), CALLER_SAVED
        return 0b111110, CALLER_SAVED
    if k is K.EXIT:
        return 1, 0
    return 0, 0


def analyse(insns: Sequence[Instruction], nargs: dict[int, int]) -> Cfg:
    """``nargs``: helper id -> number of register arguments (for liveness)."""
    n = len(insns)
    second_half: set[int] = set()
    i = 0
    while i < n:
        if OPCODES[insns[i].opcode].kind is K.LD_IMM64:
            second_half.add(i + 1)
            i += 2
        else:
            i += 1
    starts = subprogram_starts(insns)
    subprogs = [Subprog(s, e) for s, e in zip(starts, [*starts[1:], n])]
    start_index = {s.start: k for k, s in enumerate(subprogs)}

    prune = bytearray(n + 1)
    jmp_point = bytearray(n + 1)
    force = bytearray(n + 1)
    calls_cb = bytearray(n + 1)

    # depth-first walk from the entry (check_cfg); callee starts are edges
    seen = bytearray(n)
    todo = [0]
    seen[0] = 1
    while todo:
        t = todo.pop()
        insn = insns[t]
        info = OPCODES[insn.opcode]
        k = info.kind
        edges: list[int] = []
        if k is K.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC:
            edges = [t + 2, t + insn.imm + 1]
            prune[t + 2] = jmp_point[t + 2] = 1
            prune[t] = 1
            prune[t + insn.imm + 1] = jmp_point[t + insn.imm + 1] = 1
            subprogs[start_index.get(t + insn.imm + 1, 0)].is_cb = True
        elif k is K.CALL:
            edges = [t + 1]
            prune[t + 1] = jmp_point[t + 1] = 1
            if insn.src == BPF_PSEUDO_CALL:
                edges.append(t + insn.imm + 1)
                prune[t] = 1
                prune[t + insn.imm + 1] = jmp_point[t + insn.imm + 1] = 1
            elif insn.src == 0 and insn.imm in CALLBACK_HELPERS:
                calls_cb[t] = force[t] = prune[t] = jmp_point[t] = 1
        elif k is K.JA:
            w = successors(insns, t)[0]
            edges = [w]
            prune[w] = jmp_point[w] = 1
        elif k in (K.JCC, K.MAY_GOTO):
            prune[t] = 1
            if k is K.MAY_GOTO:
                force[t] = 1
            w = t + insn.off + 1
            edges = [t + 1, w]
            prune[w] = jmp_point[w] = 1
        else:
            edges = successors(insns, t)
        for w in edges:
            if 0 <= w < n and not seen[w]:
                seen[w] = 1
                todo.append(w)
    unreachable = None
    for i in range(n):
        if i in second_half:
            continue
        if not seen[i]:
            unreachable = i
            break

    k = 0  # the function holding insn i (subprogs are sorted by start)
    for i, insn in enumerate(insns):
        while k + 1 < len(subprogs) and subprogs[k + 1].start <= i:
            k += 1
        if i in second_half:
            continue
        info = OPCODES[insn.opcode]
        sub = subprogs[k]
        if info.kind is K.CALL and insn.src == BPF_PSEUDO_CALL:
            sub.calls.add(start_index.get(i + insn.imm + 1, 0))
        if info.kind in (K.LD_ABS, K.LD_IND):
            sub.has_ld_abs = True
        if info.kind is K.CALL and insn.src == 0 and insn.imm == 12:
            sub.has_tail_call = True

    live = _liveness(insns, subprogs, second_half, nargs)
    return Cfg(subprogs, second_half, prune, jmp_point, force, calls_cb, live, unreachable)


def _liveness(
    insns: Sequence[Instruction],
    subprogs: list[Subprog],
    second_half: set[int],
    nargs: dict[int, int],
) -> list[int]:
    n = len(insns)
    live = [0] * n
    ud = [(0, 0)] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        if i in second_half:
            continue
        ud[i] = _use_def(insns[i], nargs)
        succs[i] = [w for w in successors(insns, i) if 0 <= w < n]
    for sub in subprogs:
        order = [i for i in range(sub.start, sub.end) if i not in second_half]
        # without back-edges one pass in reverse order is the fixpoint
        loops = any(w <= i for i in order for w in succs[i])
        changed = True
        while changed:
            changed = False
            for i in reversed(order):
                out = 0
                for w in succs[i]:
                    out |= live[w]
                use, dfn = ud[i]
                new = (use | (out & ~dfn)) & 0x3FF
                if new != live[i]:
                    live[i] = new
                    changed = loops
    return live


def live_str(mask: int) -> str:
    """The ``.1........`` column of the kernel's "Live regs before insn" table."""
    return "".join(str(i) if mask >> i & 1 else "." for i in range(10))


__all__ += ["BPF_X", "live_str"]
