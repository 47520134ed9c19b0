"""Decoding and structural checks shared by both engines.

Both engines run the same *decoded* program: every slot becomes an :class:`Op` with the
fields an engine needs already computed (operand size in bytes, absolute jump target,
the 64-bit value of an LD_IMM64, the register ``callx`` reads).  Doing this once, at
load time, is also where an instruction stream the VM cannot execute is refused with
:class:`~netbpf.errors.InstructionError` naming the slot -- so the engines themselves
never meet an opcode they do not know, a register above r10, a jump out of the program,
or half an LD_IMM64.

This is deliberately *not* the verifier and not the full ISA validator
(:mod:`netbpf.isa.validate`): it refuses exactly what would make execution undefined,
and leaves type safety to the sandbox (every memory access is bounds-checked at run
time anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from netbpf import uapi
from netbpf.errors import InstructionError
from netbpf.isa.instruction import Instruction

__all__ = [
    "ATOMIC_OPS",
    "CALLX",
    "SIZE_BYTES",
    "Op",
    "VmProgram",
    "decode_for_vm",
    "func_value",
    "parse_func_value",
]

M64 = 0xFFFF_FFFF_FFFF_FFFF

#: BPF_W/H/B/DW -> bytes
SIZE_BYTES = {uapi.BPF_W: 4, uapi.BPF_H: 2, uapi.BPF_B: 1, uapi.BPF_DW: 8}

#: opcode of ``callx``: BPF_JMP | BPF_CALL | BPF_X (LLVM >= 17 emits it; the kernel does not
#: accept it yet, bpf_conformance and uBPF do).
CALLX = uapi.BPF_JMP | uapi.BPF_CALL | uapi.BPF_X

_LOAD_ACQ = uapi.DEFINES.get("BPF_LOAD_ACQ", 0x100)
_STORE_REL = uapi.DEFINES.get("BPF_STORE_REL", 0x110)

#: atomic ``imm`` -> (name, sizes allowed)
ATOMIC_OPS: dict[int, tuple[str, frozenset[int]]] = {
    uapi.BPF_ADD: ("add", frozenset({4, 8})),
    uapi.BPF_OR: ("or", frozenset({4, 8})),
    uapi.BPF_AND: ("and", frozenset({4, 8})),
    uapi.BPF_XOR: ("xor", frozenset({4, 8})),
    uapi.BPF_ADD | uapi.BPF_FETCH: ("fetch_add", frozenset({4, 8})),
    uapi.BPF_OR | uapi.BPF_FETCH: ("fetch_or", frozenset({4, 8})),
    uapi.BPF_AND | uapi.BPF_FETCH: ("fetch_and", frozenset({4, 8})),
    uapi.BPF_XOR | uapi.BPF_FETCH: ("fetch_xor", frozenset({4, 8})),
    uapi.BPF_XCHG: ("xchg", frozenset({4, 8})),
    uapi.BPF_CMPXCHG: ("cmpxchg", frozenset({4, 8})),
    _LOAD_ACQ: ("load_acquire", frozenset({1, 2, 4, 8})),
    _STORE_REL: ("store_release", frozenset({1, 2, 4, 8})),
}

_ALU_OPS = {
    uapi.BPF_ADD, uapi.BPF_SUB, uapi.BPF_MUL, uapi.BPF_DIV, uapi.BPF_OR, uapi.BPF_AND,
    uapi.BPF_LSH, uapi.BPF_RSH, uapi.BPF_NEG, uapi.BPF_MOD, uapi.BPF_XOR, uapi.BPF_MOV,
    uapi.BPF_ARSH, uapi.BPF_END,
}  # fmt: skip
_JMP_CONDS = {
    uapi.BPF_JEQ, uapi.BPF_JGT, uapi.BPF_JGE, uapi.BPF_JSET, uapi.BPF_JNE, uapi.BPF_JSGT,
    uapi.BPF_JSGE, uapi.BPF_JLT, uapi.BPF_JLE, uapi.BPF_JSLT, uapi.BPF_JSLE,
}  # fmt: skip

#: LD_IMM64 pseudo sources whose value only the loader can compute (map fds, map values,
#: BTF ids); BPF_PSEUDO_FUNC is resolved by the engine itself.
LOADER_PSEUDO_SRCS = {
    uapi.BPF_PSEUDO_MAP_FD: "BPF_PSEUDO_MAP_FD",
    uapi.BPF_PSEUDO_MAP_VALUE: "BPF_PSEUDO_MAP_VALUE",
    uapi.BPF_PSEUDO_BTF_ID: "BPF_PSEUDO_BTF_ID",
    uapi.BPF_PSEUDO_MAP_IDX: "BPF_PSEUDO_MAP_IDX",
    uapi.BPF_PSEUDO_MAP_IDX_VALUE: "BPF_PSEUDO_MAP_IDX_VALUE",
}

# -- code addresses ---------------------------------------------------------------------
#
# A BPF_PSEUDO_FUNC load puts the *address* of a subprogram in a register; a helper such
# as bpf_loop hands it back through env.call_subprog().  We make such addresses look like
# kernel text addresses that no memory region can ever occupy (memory slots start at
# 0xffff8880_00000000 and grow upwards), and encode which loaded program and which slot:
#     0xfffe_UUUU_UUII_IIII   (U: executable uid, 24 bits; I: slot index, 24 bits)
FUNC_TAG = 0xFFFE << 48
_FIELD = (1 << 24) - 1


def func_value(uid: int, index: int) -> int:
    """The register value of ``ld_imm64 rX, <func at slot index>`` in executable ``uid``."""
    return FUNC_TAG | ((uid & _FIELD) << 24) | index


def parse_func_value(value: int) -> tuple[int, int] | None:
    """(uid, slot index) of a code address, or None when ``value`` is not one."""
    value &= M64
    if value >> 48 != FUNC_TAG >> 48:
        return None
    return (value >> 24) & _FIELD, value & _FIELD


@dataclass(slots=True)
class Op:
    """One decoded slot.  ``kind`` selects the engine's handler; the other fields are the
    raw ones plus what is cheaper to compute once than per execution."""

    idx: int
    kind: str
    opcode: int
    dst: int
    src: int
    off: int
    imm: int
    #: ALU/JMP operation bits (opcode & 0xf0) or atomic imm
    op: int = 0
    #: True when the second operand is a register (BPF_X)
    is_x: bool = False
    #: memory access size in bytes
    size: int = 0
    #: absolute slot index of a jump/call/func target (None: not a control transfer)
    target: int | None = None
    #: 64-bit value of LD_IMM64 (already resolved)
    value: int = 0


@dataclass(slots=True)
class VmProgram:
    """A decoded program: ``ops[i]`` is slot ``i`` (None for the second LD_IMM64 slot)."""

    name: str
    ops: list[Op | None]
    #: slot indices where a frame can start: 0, every PSEUDO_CALL target, every
    #: PSEUDO_FUNC target
    entries: set[int] = field(default_factory=set)
    #: PSEUDO_FUNC targets (callable back through env.call_subprog or callx)
    func_entries: set[int] = field(default_factory=set)


def _fail(i: int, reason: str, name: str) -> InstructionError:
    return InstructionError(i, reason, program=name)


def decode_for_vm(
    insns: Sequence[Instruction],
    *,
    name: str = "prog",
    uid: int = 0,
    imm64: Mapping[int, int] | None = None,
) -> VmProgram:
    """Decode and structurally check ``insns`` for execution.

    Raises InstructionError for: an empty program; unknown opcodes; registers above r10;
    writes to r10; reserved or invalid field values the engines would have to guess
    about; jumps and calls out of the program or into the middle of an LD_IMM64; half an
    LD_IMM64; an LD_IMM64 with a loader pseudo source but no value in ``imm64``; a last
    instruction that is neither ``exit`` nor an unconditional jump (execution would run
    off the end, which the kernel refuses the same way)."""
    imm64 = imm64 or {}
    n = len(insns)
    if n == 0:
        raise _fail(0, "program has no instructions", name)
    ops: list[Op | None] = [None] * n
    second: set[int] = set()  # second slots of LD_IMM64
    prog = VmProgram(name, ops)
    prog.entries.add(0)
    i = 0
    while i < n:
        ins = insns[i]
        ops[i] = _decode_one(i, ins, insns, imm64, uid, name, second)
        i += 2 if ops[i].kind == "ld_imm64" else 1  # type: ignore[union-attr]

    for op in ops:
        if op is None or op.target is None:
            continue
        t = op.target
        what = "function" if op.kind in ("call", "ld_imm64") else "jump"
        if not 0 <= t < n:
            raise _fail(op.idx, f"{what} target {t} is outside the program (0..{n - 1})", name)
        if t in second:
            raise _fail(
                op.idx, f"{what} target {t} is the second half of an LD_IMM64 instruction", name
            )
        if op.kind == "call":
            prog.entries.add(t)
        elif op.kind == "ld_imm64":
            prog.entries.add(t)
            prog.func_entries.add(t)
    last = ops[n - 1] if (n - 1) not in second else ops[n - 2]
    assert last is not None
    if last.kind not in ("exit", "ja"):
        raise _fail(
            n - 1,
            "last instruction is neither exit nor an unconditional jump (falls off the end)",
            name,
        )
    return prog


def _decode_one(
    i: int,
    ins: Instruction,
    insns: Sequence[Instruction],
    imm64: Mapping[int, int],
    uid: int,
    name: str,
    second: set[int],
) -> Op:
    code, dst, src, off, imm = ins.opcode, ins.dst, ins.src, ins.off, ins.imm
    if not (0 <= code <= 0xFF and 0 <= dst <= 15 and 0 <= src <= 15):
        raise _fail(i, f"malformed instruction {ins!r}", name)
    if not (-0x8000 <= off <= 0x7FFF and -0x8000_0000 <= imm <= 0x7FFF_FFFF):
        raise _fail(i, f"offset or immediate out of range in {ins!r}", name)
    if dst > 10:
        raise _fail(i, f"invalid register r{dst} (dst)", name)
    if src > 10:
        raise _fail(i, f"invalid register r{src} (src)", name)
    cls = code & 0x07
    mk = Op  # shorthand

    def no_write_r10(reg: int) -> None:
        if reg == 10:
            raise _fail(i, "frame pointer r10 is read only", name)

    if cls in (uapi.BPF_ALU, uapi.BPF_ALU64):
        op = code & 0xF0
        is_x = bool(code & uapi.BPF_X)
        if op not in _ALU_OPS:
            raise _fail(i, f"unknown ALU opcode {code:#04x}", name)
        no_write_r10(dst)
        alu64 = cls == uapi.BPF_ALU64
        kind = "alu64" if alu64 else "alu"
        if op == uapi.BPF_END:
            # BPF_ALU|END: to_le (X bit clear) / to_be (X bit set); BPF_ALU64|END: bswap
            # (only with the X bit clear).
            if alu64 and is_x:
                raise _fail(i, f"unknown opcode {code:#04x}", name)
            if imm not in (16, 32, 64) or src or off:
                raise _fail(i, f"invalid byte swap (imm {imm}, must be 16, 32 or 64)", name)
            return mk(i, "end", code, dst, src, off, imm, op=op, is_x=is_x)
        if op == uapi.BPF_NEG:
            if is_x or src or off or imm:
                raise _fail(i, "BPF_NEG uses reserved fields", name)
            return mk(i, kind, code, dst, src, off, imm, op=op)
        if op in (uapi.BPF_DIV, uapi.BPF_MOD):
            if off not in (0, 1):
                raise _fail(i, f"invalid offset {off} for div/mod (0 unsigned, 1 signed)", name)
        elif op == uapi.BPF_MOV:
            valid = (0, 8, 16, 32) if alu64 else (0, 8, 16)
            if off not in valid or (off and not is_x):
                raise _fail(i, f"invalid offset {off} for mov (sign-extension width)", name)
        elif off:
            raise _fail(i, f"BPF_ALU uses reserved fields (off={off})", name)
        if is_x and imm:
            raise _fail(i, "BPF_ALU uses reserved fields (imm set with a register source)", name)
        if not is_x and src:
            raise _fail(i, "BPF_ALU uses reserved fields (src set with an immediate source)", name)
        return mk(i, kind, code, dst, src, off, imm, op=op, is_x=is_x)

    if cls in (uapi.BPF_JMP, uapi.BPF_JMP32):
        op = code & 0xF0
        is_x = bool(code & uapi.BPF_X)
        if op == uapi.BPF_JA:
            if is_x or dst or src:
                raise _fail(i, "BPF_JA uses reserved fields", name)
            if cls == uapi.BPF_JMP:
                if imm:
                    raise _fail(i, "BPF_JA uses reserved fields (imm)", name)
                return mk(i, "ja", code, dst, src, off, imm, op=op, target=i + 1 + off)
            if off:
                raise _fail(i, "gotol uses reserved fields (off)", name)
            return mk(i, "ja", code, dst, src, off, imm, op=op, target=i + 1 + imm)
        if cls == uapi.BPF_JMP and op == uapi.BPF_CALL:
            if is_x:
                # callx: the register holding the target is dst (LLVM) or, in the older
                # uBPF/bpf_conformance encoding, imm.
                reg = dst
                if imm:
                    if dst or not 0 <= imm <= 10:
                        raise _fail(i, "callx uses reserved fields", name)
                    reg = imm
                if src or off:
                    raise _fail(i, "callx uses reserved fields", name)
                return mk(i, "callx", code, dst, src, off, imm, op=op, is_x=True, value=reg)
            if dst or off:
                raise _fail(i, "BPF_CALL uses reserved fields", name)
            if src == 0:
                return mk(i, "helper", code, dst, src, off, imm, op=op)
            if src == uapi.BPF_PSEUDO_CALL:
                return mk(i, "call", code, dst, src, off, imm, op=op, target=i + 1 + imm)
            if src == uapi.BPF_PSEUDO_KFUNC_CALL:
                raise _fail(
                    i, "kfunc calls (BPF_PSEUDO_KFUNC_CALL) are not supported by the VM", name
                )
            raise _fail(i, f"invalid BPF_CALL source {src}", name)
        if cls == uapi.BPF_JMP and op == uapi.BPF_EXIT:
            if is_x or dst or src or off or imm:
                raise _fail(i, "BPF_EXIT uses reserved fields", name)
            return mk(i, "exit", code, dst, src, off, imm, op=op)
        if cls == uapi.BPF_JMP and op == uapi.BPF_JCOND:
            if is_x or dst or src or imm:
                # src 0 is BPF_MAY_GOTO, the only JCOND defined
                raise _fail(i, "BPF_JCOND uses reserved fields (only may_goto is defined)", name)
            return mk(i, "may_goto", code, dst, src, off, imm, op=op, target=i + 1 + off)
        if op not in _JMP_CONDS:
            raise _fail(i, f"unknown jump opcode {code:#04x}", name)
        if is_x and imm:
            raise _fail(i, "conditional jump uses reserved fields (imm)", name)
        if not is_x and src:
            raise _fail(i, "conditional jump uses reserved fields (src)", name)
        kind = "jmp" if cls == uapi.BPF_JMP else "jmp32"
        return mk(i, kind, code, dst, src, off, imm, op=op, is_x=is_x, target=i + 1 + off)

    mode = code & 0xE0
    size = SIZE_BYTES[code & 0x18]
    if cls == uapi.BPF_LDX:
        no_write_r10(dst)
        if imm:
            raise _fail(i, "BPF_LDX uses reserved fields (imm)", name)
        if mode == uapi.BPF_MEM:
            return mk(i, "ldx", code, dst, src, off, imm, size=size)
        if mode == uapi.BPF_MEMSX and size != 8:
            return mk(i, "ldxsx", code, dst, src, off, imm, size=size)
        raise _fail(i, f"unknown load opcode {code:#04x}", name)
    if cls == uapi.BPF_ST:
        if mode != uapi.BPF_MEM or src:
            raise _fail(i, f"unknown store opcode {code:#04x} or reserved src", name)
        return mk(i, "st", code, dst, src, off, imm, size=size)
    if cls == uapi.BPF_STX:
        if mode == uapi.BPF_MEM:
            if imm:
                raise _fail(i, "BPF_STX uses reserved fields (imm)", name)
            return mk(i, "stx", code, dst, src, off, imm, size=size)
        if mode == uapi.BPF_ATOMIC:
            known = ATOMIC_OPS.get(imm)
            if known is None:
                raise _fail(i, f"unknown atomic operation {imm:#x}", name)
            aname, sizes = known
            if size not in sizes:
                raise _fail(i, f"atomic {aname} does not exist for {size}-byte operands", name)
            if aname == "load_acquire" or aname.startswith("fetch") or aname == "xchg":
                # these write a register: dst for load_acquire, src for the fetch forms
                no_write_r10(dst if aname == "load_acquire" else src)
            return mk(i, "atomic", code, dst, src, off, imm, op=imm, size=size)
        raise _fail(i, f"unknown store opcode {code:#04x}", name)
    # cls == BPF_LD
    if code == uapi.BPF_LD | uapi.BPF_IMM | uapi.BPF_DW:
        no_write_r10(dst)
        if i + 1 >= len(insns):
            raise _fail(i, "LD_IMM64 is missing its second slot (last instruction)", name)
        nxt = insns[i + 1]
        if nxt.opcode or nxt.dst or nxt.src or nxt.off:
            raise _fail(
                i + 1, "second slot of LD_IMM64 must have opcode, registers and offset 0", name
            )
        if off:
            raise _fail(i, "LD_IMM64 uses reserved fields (off)", name)
        second.add(i + 1)
        if src == 0:
            value = ((nxt.imm & 0xFFFF_FFFF) << 32) | (imm & 0xFFFF_FFFF)
            return mk(i, "ld_imm64", code, dst, src, off, imm, value=value)
        if src == uapi.BPF_PSEUDO_FUNC:
            if nxt.imm:
                raise _fail(i, "BPF_PSEUDO_FUNC LD_IMM64 must have 0 in the upper half", name)
            t = i + 1 + imm
            return mk(i, "ld_imm64", code, dst, src, off, imm, target=t, value=func_value(uid, t))
        if src in LOADER_PSEUDO_SRCS:
            if i not in imm64:
                raise _fail(
                    i,
                    f"LD_IMM64 with {LOADER_PSEUDO_SRCS[src]} (src {src}) has no resolved value "
                    "(the loader must supply it)",
                    name,
                )
            return mk(i, "ld_imm64", code, dst, src, off, imm, value=imm64[i] & M64)
        raise _fail(i, f"LD_IMM64 with unknown pseudo source {src}", name)
    if mode in (uapi.BPF_ABS, uapi.BPF_IND) and size != 8:
        # legacy packet access: result in r0, implicit skb (the ctx in r6)
        if dst or off or (mode == uapi.BPF_ABS and src):
            raise _fail(i, "BPF_LD_[ABS|IND] uses reserved fields", name)
        kind = "ld_abs" if mode == uapi.BPF_ABS else "ld_ind"
        return mk(i, kind, code, dst, src, off, imm, size=size)
    raise _fail(i, f"unknown opcode {code:#04x}", name)
