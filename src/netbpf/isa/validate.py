"""Structural validation: is this a well-formed eBPF program at all?

This is the part of the kernel's ``bpf_check()`` that looks at instructions one by one
and at the jump graph's *shape*, before any abstract interpretation: unknown opcodes,
reserved fields that must be zero, registers out of range, writes to the read-only
frame pointer, half an LD_IMM64, jumps out of their function or into the middle of an
LD_IMM64, calls to nowhere, functions that fall off their end.  It does *not* track
types or values (that is :mod:`netbpf.verifier`'s job), so e.g. division by a zero
immediate, out-of-range shift immediates, unreachable code or loops pass here.

Messages are the running kernel's wording (checked against Linux 6.18 in
``tests/test_isa_validate.py``): ``unknown opcode 8e``, ``BPF_ALU uses reserved
fields``, ``jump out of range from insn 3 to 9``, ``R11 is invalid``...  Where the
kernel has no message (it accepts LLVM's ``callx`` nowhere, for one) ours says plainly
what is wrong.

One deliberate difference: ``callx`` (``JMP|CALL|X``, LLVM's indirect call) passes,
because RFC 9669-style runtimes and the bpf_conformance suite use it; Linux refuses it
with "unknown opcode 8d", which the kernel backend reports on its own.

Linux makes these checks in two places, and so do we (the split was probed rule by rule
on Linux 6.18: each violation placed on a branch a constant decides):

* **before walking any path** (bpf_check's add_subprog_and_kfunc, check_subprogs,
  resolve_pseudo_ldimm64, check_cfg): call destinations, jumps leaving their function,
  a function's last instruction, LDX reserved fields, both halves of an LD_IMM64 and its
  pseudo source, the opcode table (callx included), jumps into an LD_IMM64.
  :func:`validate_upfront` is exactly this, in the kernel's order and words;
* **only on the paths the verifier walks** (do_check): every other reserved field
  (:func:`field_error`), register numbers above r10 and writes to r10.  Linux accepts a
  program whose only such defect sits on a branch no path takes, and patches that dead
  code out; :mod:`netbpf.verifier` does the same (and the simulator traps the dead
  slots, see :mod:`netbpf.sim.verify`).

:func:`validate_program` makes all of them on every instruction: it guards the engines
when the verifier is skipped (``SimBackend(unsafe_skip_verifier=True)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from netbpf.errors import InstructionError
from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import (
    ADDR_SPACE_CAST_IMMS,
    ADDR_SPACE_CAST_OFF,
    ATOMIC_OPS,
    BPF_LOAD_ACQ,
    CALL_KFUNC,
    CALL_LOCAL,
    OPCODES,
    FieldUse,
    Kind,
    OpInfo,
)
from netbpf.uapi import (
    BPF_ALU64,
    BPF_CALL,
    BPF_CMPXCHG,
    BPF_EXIT,
    BPF_JA,
    BPF_JMP,
    BPF_JMP32,
    BPF_LDX,
    BPF_MEM,
    BPF_MEMSX,
    BPF_PSEUDO_FUNC,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX,
)

__all__ = [
    "field_error",
    "field_errors",
    "jump_target",
    "register_error",
    "reserved_cleared",
    "subprogram_starts",
    "validate_program",
    "validate_upfront",
]

MAX_BPF_REG = 11  # r0-r10
_Fail = Callable[[int, str], InstructionError]
FRAME_POINTER = 10

#: The kernel's wording for "a field that must be zero is not", by instruction kind.
_RESERVED_MSG: dict[Kind, str] = {
    Kind.ALU: "BPF_ALU uses reserved fields",
    Kind.NEG: "BPF_NEG uses reserved fields",
    Kind.MOV: "BPF_MOV uses reserved fields",
    Kind.END: "BPF_END uses reserved fields",
    Kind.LD_IMM64: "BPF_LD_IMM64 uses reserved fields",
    Kind.LD_ABS: "BPF_LD_[ABS|IND] uses reserved fields",
    Kind.LD_IND: "BPF_LD_[ABS|IND] uses reserved fields",
    Kind.LDX: "BPF_LDX uses reserved fields",
    Kind.ST: "BPF_ST uses reserved fields",
    Kind.STX: "BPF_STX uses reserved fields",
    Kind.ATOMIC: "BPF_STX uses reserved fields",
    Kind.JA: "BPF_JA uses reserved fields",
    Kind.JCC: "BPF_JMP/JMP32 uses reserved fields",
    Kind.CALL: "BPF_CALL uses reserved fields",
    Kind.CALLX: "BPF_CALL uses reserved fields",
    Kind.EXIT: "BPF_EXIT uses reserved fields",
}


def jump_target(insn: Instruction, index: int) -> int | None:
    """The slot a jump-like instruction at ``index`` can transfer control to, or None.

    Covers ``goto``/conditional jumps/``may_goto`` (pc + off + 1), ``gotol`` (pc + imm +
    1) and bpf-to-bpf calls (pc + imm + 1).  ``ld_imm64`` of a function address
    (``src == BPF_PSEUDO_FUNC``) also names code at pc + imm + 1 and is included."""
    info = OPCODES.get(insn.opcode)
    if info is None:
        return None
    kind = info.kind
    if kind is Kind.JA:
        return index + (insn.imm if info.cls == BPF_JMP32 else insn.off) + 1
    if kind in (Kind.JCC, Kind.MAY_GOTO):
        return index + insn.off + 1
    if kind is Kind.CALL and insn.src == CALL_LOCAL:
        return index + insn.imm + 1
    if kind is Kind.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC:
        return index + insn.imm + 1
    return None


def subprogram_starts(insns: Sequence[Instruction]) -> list[int]:
    """Sorted first slots of the program's functions: 0 plus every bpf-to-bpf call
    target and every ``func`` ld_imm64 target that lies inside the program."""
    starts = {0}
    for i, insn in enumerate(insns):
        info = OPCODES.get(insn.opcode)
        if info is None:
            continue
        if (info.kind is Kind.CALL and insn.src == CALL_LOCAL) or (
            info.kind is Kind.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC
        ):
            t = i + insn.imm + 1
            if 0 <= t < len(insns):
                starts.add(t)
    return sorted(starts)


def validate_program(insns: Sequence[Instruction], *, name: str | None = None) -> None:
    """Raise :class:`InstructionError` (slot index, reason) for the first structural
    problem in ``insns``; return None if the program is well formed."""

    def fail(index: int, reason: str) -> InstructionError:
        return InstructionError(index, reason, program=name)

    n = len(insns)
    if n == 0:
        raise fail(0, "empty program (no instructions)")

    # Pass 1: every slot on its own, pairing the two halves of each LD_IMM64.
    second_half: set[int] = set()
    i = 0
    while i < n:
        insn = insns[i]
        _check_encodable(insn, i, fail)
        info = OPCODES.get(insn.opcode)
        if info is None:
            raise fail(i, f"unknown opcode {insn.opcode:02x}")
        _check_fields(insn, info, i, fail)
        if info.kind is Kind.LD_IMM64:
            if i == n - 1:
                raise fail(i, "invalid bpf_ld_imm64 insn (the second half is missing)")
            nxt = insns[i + 1]
            _check_encodable(nxt, i + 1, fail)
            if nxt.opcode or nxt.dst or nxt.src or nxt.off:
                raise fail(
                    i, "invalid bpf_ld_imm64 insn (the second slot must be all zero but imm)"
                )
            if insn.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX) and nxt.imm != 0:
                raise fail(i, "unrecognized bpf_ld_imm64 insn")
            second_half.add(i + 1)
            i += 2
            continue
        i += 1

    # Pass 2: calls, jumps and function boundaries.
    for i, insn in enumerate(insns):
        if i in second_half:
            continue
        info = OPCODES[insn.opcode]
        calls = (info.kind is Kind.CALL and insn.src == CALL_LOCAL) or (
            info.kind is Kind.LD_IMM64 and insn.src == BPF_PSEUDO_FUNC
        )
        if calls:
            t = i + insn.imm + 1
            if not 0 <= t < n:
                raise fail(i, f"call to invalid destination (insn {t})")
            if t in second_half:
                raise fail(i, f"call into the middle of ldimm64 insn {t - 1}")

    starts = subprogram_starts(insns)
    bounds = list(zip(starts, [*starts[1:], n]))
    for start, end in bounds:
        for i in range(start, end):
            if i in second_half:
                continue
            insn = insns[i]
            info = OPCODES[insn.opcode]
            if info.kind in (Kind.JA, Kind.JCC, Kind.MAY_GOTO):
                t = jump_target(insn, i)
                assert t is not None
                if not start <= t < end:
                    raise fail(i, f"jump out of range from insn {i} to {t}")
                if t in second_half:
                    raise fail(i, f"jump into the middle of ldimm64 insn {t - 1}")
        last = end - 1
        last_info = OPCODES[insns[last].opcode] if last not in second_half else None
        if last_info is None or last_info.kind not in (Kind.EXIT, Kind.JA):
            raise fail(last, "last insn is not an exit or jmp")


def _check_encodable(insn: Instruction, i: int, fail: _Fail) -> None:
    """Fields a hand-built Instruction could hold but 8 bytes cannot."""
    if not (
        0 <= insn.opcode <= 0xFF
        and 0 <= insn.dst <= 0xF
        and 0 <= insn.src <= 0xF
        and -(1 << 15) <= insn.off < (1 << 15)
        and -(1 << 31) <= insn.imm < (1 << 31)
    ):
        raise fail(i, f"field out of range for the 8-byte encoding: {insn}")


def _check_fields(insn: Instruction, info: OpInfo, i: int, fail: _Fail) -> None:
    msg = field_error(insn, info) or register_error(insn, info)
    if msg is not None:
        raise fail(i, msg)


def field_error(insn: Instruction, info: OpInfo) -> str | None:
    """The kernel's message for a field of ``insn`` that must be zero, or one of a few
    values, and is not (``BPF_ALU uses reserved fields``, ``invalid may_goto imm 1``,
    ``BPF_ATOMIC uses invalid atomic opcode 02``...); None when every field is
    acceptable.  Register numbers are :func:`register_error`'s business.

    Linux makes these checks while walking paths (check_alu_op, check_atomic,
    check_cond_jmp_op...), except LDX's, which :func:`validate_upfront` makes."""
    kind = info.kind
    # Kind-specific rules whose messages the kernel words differently.
    if kind is Kind.MAY_GOTO:
        if insn.dst or insn.src or insn.imm:
            return f"invalid may_goto imm {insn.imm}"
    elif kind is Kind.ATOMIC and insn.imm not in ATOMIC_OPS:
        # the kernel prints the whole imm, as an unsigned 32-bit hex number
        return f"BPF_ATOMIC uses invalid atomic opcode {insn.imm & 0xFFFF_FFFF:02x}"
    elif kind is Kind.ATOMIC and not info.imm.allows(insn.imm):
        return "invalid atomic operand size"  # e.g. an 8-bit atomic add
    elif kind is Kind.LD_IMM64 and not info.src.allows(insn.src):
        return "unrecognized bpf_ld_imm64 insn"
    elif (
        kind is Kind.MOV
        and info.use_src_reg
        and info.cls == BPF_ALU64
        and insn.off == ADDR_SPACE_CAST_OFF
    ):
        # only ALU64|MOV|X has addr_space_cast (ALU|MOV|X off 1 is a reserved field)
        if insn.imm not in ADDR_SPACE_CAST_IMMS:
            return "addr_space_cast insn can only convert between address space 1 and 0"
    elif kind is Kind.MOV and insn.imm != 0 and info.use_src_reg:
        return _RESERVED_MSG[kind]
    elif kind is Kind.CALL and insn.off != 0 and insn.src != CALL_KFUNC:
        return _RESERVED_MSG[kind]
    elif kind is Kind.EXIT:
        # Linux 6.18 ignores exit's off (checked: "exit" with off 1 is accepted)
        if insn.dst or insn.src or insn.imm:
            return _RESERVED_MSG[kind]
        return None

    for value, rule in ((insn.dst, info.dst), (insn.src, info.src), (insn.off, info.off),
                        (insn.imm, info.imm)):  # fmt: skip
        if not rule.allows(value):
            return _RESERVED_MSG.get(kind, f"{info.name} uses reserved fields")
    return None


def reserved_cleared(insn: Instruction, info: OpInfo) -> Instruction:
    """``insn`` with every field that must be zero set to zero: how Linux's verifier
    log prints an instruction whose reserved fields are set (``r1 += 8`` for an add
    with off 5)."""
    zero = {f: 0 for f in ("dst", "src", "off", "imm") if getattr(info, f).use is FieldUse.ZERO}
    return replace(insn, **zero)


def register_error(insn: Instruction, info: OpInfo) -> str | None:
    """The kernel's message for a register field above r10 (``R11 is invalid``) or a
    write to the read-only frame pointer, or None.  (The verifier makes these checks
    in its own order, in ``check_reg_arg``.)"""
    for value, rule in ((insn.dst, info.dst), (insn.src, info.src)):
        if rule.use in (FieldUse.REG, FieldUse.REG_W) and value >= MAX_BPF_REG:
            return f"R{value} is invalid"
    if info.dst.use is FieldUse.REG_W and insn.dst == FRAME_POINTER:
        return "frame pointer is read only"
    if (
        info.kind is Kind.ATOMIC
        and ATOMIC_OPS[insn.imm].fetch
        and insn.imm != BPF_CMPXCHG
        and insn.src == FRAME_POINTER
    ):
        # The fetching forms write the old value back into src (cmpxchg: into r0).
        return "frame pointer is read only"
    if info.kind is Kind.ATOMIC and insn.imm == BPF_LOAD_ACQ and insn.dst == FRAME_POINTER:
        return "frame pointer is read only"  # load_acquire writes dst
    return None


def field_errors(insns: Sequence[Instruction]) -> dict[int, str]:
    """:func:`field_error` of every instruction of a program that passed
    :func:`validate_upfront`, by slot (only the instructions that have one): what the
    verifier refuses if a path reaches the slot."""
    out: dict[int, str] = {}
    i = 0
    while i < len(insns):
        insn = insns[i]
        info = OPCODES.get(insn.opcode)
        if info is not None:
            msg = field_error(insn, info)
            if msg is not None:
                out[i] = msg
        i += 2 if insn.opcode == _LD_IMM64 else 1
    return out


_LD_IMM64 = 0x18
_CALLX = 0x8D
#: the last instruction of a function must be one of these (check_subprogs)
_LAST_OK = frozenset({BPF_JMP | BPF_EXIT, BPF_JMP | BPF_JA, BPF_JMP32 | BPF_JA})


def validate_upfront(insns: Sequence[Instruction], *, name: str | None = None) -> None:
    """Raise :class:`InstructionError` for what Linux refuses before it walks any path,
    in its order and words: a call or ``func`` address outside the program ("call to
    invalid destination"); a jump leaving its function, or a function whose last
    instruction is neither exit nor goto (check_subprogs); an LDX with reserved fields,
    half an LD_IMM64 or an unknown pseudo source, an opcode Linux does not know --
    ``callx`` included (resolve_pseudo_ldimm64); a jump into the second half of an
    LD_IMM64 (check_cfg).  Everything else about a single instruction is checked only
    where a path reaches it (see the module docstring)."""

    def fail(index: int, reason: str) -> InstructionError:
        return InstructionError(index, reason, program=name)

    n = len(insns)
    if n == 0:
        raise fail(0, "empty program (no instructions)")
    for i, insn in enumerate(insns):
        _check_encodable(insn, i, fail)

    # add_subprog_and_kfunc: functions start at 0 and at every call / func target
    starts = {0}
    for i, insn in enumerate(insns):
        if (insn.opcode == BPF_JMP | BPF_CALL and insn.src == CALL_LOCAL) or (
            insn.opcode == _LD_IMM64 and insn.src == BPF_PSEUDO_FUNC
        ):
            t = i + insn.imm + 1
            if not 0 <= t < n:
                raise fail(i, "call to invalid destination")
            starts.add(t)

    # check_subprogs: every slot of a jump class (unknown opcodes too) but calls and
    # exits stays in its function; functions end with exit or goto
    bounds = sorted(starts)
    for start, end in zip(bounds, [*bounds[1:], n]):
        for i in range(start, end):
            code = insns[i].opcode
            if code & 0x07 not in (BPF_JMP, BPF_JMP32) or code & 0xF0 in (BPF_CALL, BPF_EXIT):
                continue
            off = insns[i].imm if code == BPF_JMP32 | BPF_JA else insns[i].off
            t = i + off + 1
            if not start <= t < end:
                raise fail(i, f"jump out of range from insn {i} to {t}")
        if insns[end - 1].opcode not in _LAST_OK:
            raise fail(end - 1, "last insn is not an exit or jmp")

    # resolve_pseudo_ldimm64: LDX fields, LD_IMM64 halves and sources, the opcode table
    second_half: set[int] = set()
    i = 0
    while i < n:
        insn = insns[i]
        code = insn.opcode
        if code & 0x07 == BPF_LDX and (code & 0xE0 not in (BPF_MEM, BPF_MEMSX) or insn.imm):
            raise fail(i, "BPF_LDX uses reserved fields")
        if code == _LD_IMM64:
            nxt = insns[i + 1] if i + 1 < n else None
            if nxt is None or nxt.opcode or nxt.dst or nxt.src or nxt.off:
                raise fail(i, "invalid bpf_ld_imm64 insn")
            if insn.src and (
                insn.src not in OPCODES[_LD_IMM64].src.values
                or (insn.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX) and nxt.imm != 0)
            ):
                raise fail(i, "unrecognized bpf_ld_imm64 insn")
            second_half.add(i + 1)
            i += 2
            continue
        if code not in OPCODES or code == _CALLX:
            raise fail(i, f"unknown opcode {code:02x}")
        i += 1

    # check_cfg: no jump into the middle of an LD_IMM64
    for i, insn in enumerate(insns):
        if i in second_half:
            continue
        t = jump_target(insn, i)
        if t is not None and t in second_half:
            what = (
                "jump"
                if OPCODES[insn.opcode].kind in (Kind.JA, Kind.JCC, Kind.MAY_GOTO)
                else "call"
            )
            raise fail(i, f"{what} into the middle of ldimm64 insn {t - 1}")
