"""Every valid eBPF opcode, described once, as data.

The validator, the assembler, the disassembler and the engines all read this table,
so a new instruction is added in one place.  Numbers come from :mod:`netbpf.uapi`
(generated from the UAPI headers); this module only says which combinations exist
and what their fields mean.

Shape::

    OPCODES: dict[int, OpInfo]      # opcode byte -> description

An :class:`OpInfo` tells an engine *what* the instruction does (``kind``, ``op``,
``width``, ``size``, ``signed``, ``use_src_reg``) and tells the validator *which fields
are meaningful* (``dst``, ``src``, ``off``, ``imm``: each a :class:`Field`).  A few
constraints depend on another field's value (``call``'s ``off`` is only meaningful for
kfunc calls, an atomic's ``src`` is written only by the fetching forms, ``mov``'s ``imm``
only by ``addr_space_cast``); they are spelled out in :mod:`netbpf.isa.validate`.

Sources: RFC 9669 (sections 3-5 and its conformance groups), the Linux UAPI headers,
and, for the Linux-only additions the RFC does not list (``may_goto``,
``addr_space_cast``, ``callx``), the running kernel and LLVM 19's encodings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from netbpf.uapi import (
    BPF_ABS,
    BPF_ADD,
    BPF_ALU,
    BPF_ALU64,
    BPF_AND,
    BPF_ARSH,
    BPF_ATOMIC,
    BPF_B,
    BPF_CALL,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_DW,
    BPF_END,
    BPF_EXIT,
    BPF_FETCH,
    BPF_H,
    BPF_IMM,
    BPF_IND,
    BPF_JA,
    BPF_JCOND,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JLE,
    BPF_JLT,
    BPF_JMP,
    BPF_JMP32,
    BPF_JNE,
    BPF_JSET,
    BPF_JSGE,
    BPF_JSGT,
    BPF_JSLE,
    BPF_JSLT,
    BPF_K,
    BPF_LD,
    BPF_LDX,
    BPF_LSH,
    BPF_MEM,
    BPF_MEMSX,
    BPF_MOD,
    BPF_MOV,
    BPF_MUL,
    BPF_NEG,
    BPF_OR,
    BPF_PSEUDO_BTF_ID,
    BPF_PSEUDO_CALL,
    BPF_PSEUDO_FUNC,
    BPF_PSEUDO_KFUNC_CALL,
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_IDX,
    BPF_PSEUDO_MAP_IDX_VALUE,
    BPF_PSEUDO_MAP_VALUE,
    BPF_RSH,
    BPF_ST,
    BPF_STX,
    BPF_SUB,
    BPF_TO_BE,
    BPF_TO_LE,
    BPF_W,
    BPF_X,
    BPF_XCHG,
    BPF_XOR,
    DEFINES,
)

__all__ = [
    "ACQ_REL_OPS",
    "ADDR_SPACE_CAST_IMMS",
    "ADDR_SPACE_CAST_OFF",
    "ALU_OPS",
    "ATOMIC_OPS",
    "BPF_LOAD_ACQ",
    "BPF_STORE_REL",
    "CALL_HELPER",
    "CALL_KFUNC",
    "CALL_LOCAL",
    "CALL_SOURCES",
    "JMP_OPS",
    "LD_IMM64_SOURCES",
    "MAY_GOTO",
    "MOVSX_OFFSETS",
    "OPCODES",
    "OPCODE_BY_NAME",
    "SIZE_BYTES",
    "AluOp",
    "AtomicOp",
    "Field",
    "FieldUse",
    "Group",
    "JmpOp",
    "Kind",
    "OpInfo",
    "lookup",
]

BPF_LOAD_ACQ: int = DEFINES["BPF_LOAD_ACQ"]  # 0x100
BPF_STORE_REL: int = DEFINES["BPF_STORE_REL"]  # 0x110

#: ``off`` of ``ALU64|MOV|X`` that means "addr_space_cast" (arena pointers, Linux 6.9+).
ADDR_SPACE_CAST_OFF = 1
#: ``src`` of ``JMP|JCOND`` that means "may_goto" (the only JCOND defined, Linux 6.9+).
MAY_GOTO = 0
#: ``imm`` values of addr_space_cast: (dst address space << 16) | src address space;
#: Linux only converts between 0 (kernel) and 1 (arena).
ADDR_SPACE_CAST_IMMS = (1, 1 << 16)


class Kind(StrEnum):
    """What an instruction does, at the granularity an engine dispatches on."""

    ALU = "alu"  #: dst = dst OP src|imm (add, sub, ..., arsh; div/mod signed when off=1)
    NEG = "neg"  #: dst = -dst
    MOV = "mov"  #: dst = src|imm; off 8/16/32 = movsx; off 1 on ALU64|X = addr_space_cast
    END = "end"  #: byte swap: le/be (ALU) or bswap (ALU64), width in imm
    LD_IMM64 = "ld_imm64"  #: dst = 64-bit immediate (two slots); src picks a pseudo source
    LD_ABS = "ld_abs"  #: r0 = ntoh(*(size *)(skb->data + imm)), legacy packet access
    LD_IND = "ld_ind"  #: r0 = ntoh(*(size *)(skb->data + src + imm))
    LDX = "ldx"  #: dst = *(size *)(src + off); sign-extending when ``signed``
    ST = "st"  #: *(size *)(dst + off) = imm
    STX = "stx"  #: *(size *)(dst + off) = src
    ATOMIC = "atomic"  #: atomic op on dst + off, op in imm (load_acquire reads src + off)
    JA = "ja"  #: pc += off (JMP) or pc += imm (JMP32, "gotol")
    JCC = "jcc"  #: conditional jump: if dst OP src|imm: pc += off
    CALL = "call"  #: helper (src 0), bpf-to-bpf (src 1, pc += imm), kfunc (src 2)
    CALLX = "callx"  #: indirect call through the register in dst (LLVM; Linux refuses it)
    EXIT = "exit"  #: return r0 (to the caller frame, or from the program)
    MAY_GOTO = "may_goto"  #: JMP|JCOND src 0: pc += off once a loop budget runs out


class Group(StrEnum):
    """RFC 9669 conformance groups, plus ``LINUX`` for kernel-only additions."""

    BASE32 = "base32"
    BASE64 = "base64"
    ATOMIC32 = "atomic32"
    ATOMIC64 = "atomic64"
    DIVMUL32 = "divmul32"
    DIVMUL64 = "divmul64"
    PACKET = "packet"
    LINUX = "linux"  #: not in RFC 9669: may_goto, callx, addr_space_cast


class FieldUse(StrEnum):
    """How an instruction uses one of its fields."""

    ZERO = "zero"  #: reserved: must be 0
    REG = "reg"  #: a register that is read (r0-r10)
    REG_W = "reg_w"  #: a register that is written (r0-r9; r10 is the read-only frame pointer)
    ANY = "any"  #: a free number (offset, immediate)
    CHOICE = "choice"  #: one of ``Field.values``


@dataclass(frozen=True, slots=True)
class Field:
    """The rule for one instruction field (dst, src, off or imm)."""

    use: FieldUse
    values: frozenset[int] = frozenset()

    def allows(self, value: int) -> bool:
        """True if ``value`` is structurally acceptable (register *range* is the
        validator's business, so REG/REG_W accept any 4-bit value here)."""
        if self.use is FieldUse.ZERO:
            return value == 0
        if self.use is FieldUse.CHOICE:
            return value in self.values
        return True


ZERO = Field(FieldUse.ZERO)
REG = Field(FieldUse.REG)
REG_W = Field(FieldUse.REG_W)
ANY = Field(FieldUse.ANY)


def _choice(*values: int) -> Field:
    return Field(FieldUse.CHOICE, frozenset(values))


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One valid opcode byte.

    ``op`` is the 4-bit operation code for ALU/JMP classes (``BPF_ADD``, ``BPF_JEQ``...,
    already shifted, i.e. ``opcode & 0xf0``) and the mode for load/store classes
    (``BPF_MEM``, ``BPF_MEMSX``, ``BPF_ATOMIC``, ``BPF_ABS``...).  ``width`` is the
    operand width in bits for ALU/JMP (32 or 64) and the access width for memory
    instructions.  ``size`` is the access size in bytes (memory instructions only).
    """

    opcode: int
    name: str  #: unique mnemonic, bpf_conformance-like: "add32", "ldxw", "jeq", "lock64"
    cls: int  #: BPF_LD ... BPF_ALU64
    kind: Kind
    op: int
    width: int  #: 32 or 64 for ALU/JMP; 8*size for memory
    size: int  #: bytes accessed (1, 2, 4, 8); 0 for non-memory instructions
    use_src_reg: bool  #: BPF_X: the second operand is the src register, not imm
    signed: bool  #: sign-extending load (MEMSX)
    group: Group
    dst: Field
    src: Field
    off: Field
    imm: Field
    slots: int = 1  #: 2 for LD_IMM64


@dataclass(frozen=True, slots=True)
class AluOp:
    name: str  #: conformance mnemonic stem: "add", "sub", ...
    symbol: str  #: C-like operator as llvm-objdump prints it: "+=", "s/="...
    signed_symbol: str | None = None  #: for div/mod with off=1


@dataclass(frozen=True, slots=True)
class JmpOp:
    name: str  #: "jeq", ...
    symbol: str  #: "==", "s>", "&"...


@dataclass(frozen=True, slots=True)
class AtomicOp:
    """An atomic operation, keyed by the instruction's ``imm``."""

    imm: int
    name: str  #: "add", "fetch_add", "xchg", "cmpxchg"...
    alu_op: int | None  #: BPF_ADD/AND/OR/XOR for the arithmetic forms, else None
    fetch: bool  #: writes the old value back (into src, or r0 for cmpxchg)
    symbol: str | None = None  #: "+=" etc for the non-fetch forms


ALU_OPS: dict[int, AluOp] = {
    BPF_ADD: AluOp("add", "+="),
    BPF_SUB: AluOp("sub", "-="),
    BPF_MUL: AluOp("mul", "*="),
    BPF_DIV: AluOp("div", "/=", "s/="),
    BPF_OR: AluOp("or", "|="),
    BPF_AND: AluOp("and", "&="),
    BPF_LSH: AluOp("lsh", "<<="),
    BPF_RSH: AluOp("rsh", ">>="),
    BPF_NEG: AluOp("neg", "= -"),
    BPF_MOD: AluOp("mod", "%=", "s%="),
    BPF_XOR: AluOp("xor", "^="),
    BPF_MOV: AluOp("mov", "="),
    BPF_ARSH: AluOp("arsh", "s>>="),
    BPF_END: AluOp("end", "="),
}

JMP_OPS: dict[int, JmpOp] = {
    BPF_JEQ: JmpOp("jeq", "=="),
    BPF_JGT: JmpOp("jgt", ">"),
    BPF_JGE: JmpOp("jge", ">="),
    BPF_JSET: JmpOp("jset", "&"),
    BPF_JNE: JmpOp("jne", "!="),
    BPF_JSGT: JmpOp("jsgt", "s>"),
    BPF_JSGE: JmpOp("jsge", "s>="),
    BPF_JLT: JmpOp("jlt", "<"),
    BPF_JLE: JmpOp("jle", "<="),
    BPF_JSLT: JmpOp("jslt", "s<"),
    BPF_JSLE: JmpOp("jsle", "s<="),
}

ATOMIC_OPS: dict[int, AtomicOp] = {
    a.imm: a
    for a in (
        AtomicOp(BPF_ADD, "add", BPF_ADD, False, "+="),
        AtomicOp(BPF_AND, "and", BPF_AND, False, "&="),
        AtomicOp(BPF_OR, "or", BPF_OR, False, "|="),
        AtomicOp(BPF_XOR, "xor", BPF_XOR, False, "^="),
        AtomicOp(BPF_ADD | BPF_FETCH, "fetch_add", BPF_ADD, True),
        AtomicOp(BPF_AND | BPF_FETCH, "fetch_and", BPF_AND, True),
        AtomicOp(BPF_OR | BPF_FETCH, "fetch_or", BPF_OR, True),
        AtomicOp(BPF_XOR | BPF_FETCH, "fetch_xor", BPF_XOR, True),
        AtomicOp(BPF_XCHG, "xchg", None, True),
        AtomicOp(BPF_CMPXCHG, "cmpxchg", None, True),
        # Linux 6.15+: dst = load_acquire((size *)(src + off)), and
        # store_release((size *)(dst + off), src).  Also defined for 8 and 16 bits.
        AtomicOp(BPF_LOAD_ACQ, "load_acquire", None, False),
        AtomicOp(BPF_STORE_REL, "store_release", None, False),
    )
}
#: The atomic operations also defined for 8- and 16-bit accesses.
ACQ_REL_OPS = frozenset({BPF_LOAD_ACQ, BPF_STORE_REL})

#: LD_IMM64 ``src`` values (pseudo sources) -> the name the (dis)assembler uses.
#: ``r1 = map_fd(3) ll`` etc.; 0 is a plain 64-bit constant.
LD_IMM64_SOURCES: dict[int, str] = {
    0: "imm",
    BPF_PSEUDO_MAP_FD: "map_fd",
    BPF_PSEUDO_MAP_VALUE: "map_value",
    BPF_PSEUDO_BTF_ID: "btf_id",
    BPF_PSEUDO_FUNC: "func",
    BPF_PSEUDO_MAP_IDX: "map_idx",
    BPF_PSEUDO_MAP_IDX_VALUE: "map_idx_value",
}

CALL_HELPER = 0
CALL_LOCAL = BPF_PSEUDO_CALL
CALL_KFUNC = BPF_PSEUDO_KFUNC_CALL
#: CALL ``src`` values: 0 = helper by id, 1 = bpf-to-bpf (imm = relative slot offset),
#: 2 = kfunc by BTF id (off = index of the module BTF fd, 0 for vmlinux).
CALL_SOURCES: dict[int, str] = {CALL_HELPER: "helper", CALL_LOCAL: "local", CALL_KFUNC: "kfunc"}

#: Size field -> bytes, and the u8..u64 spelling.
SIZE_BYTES: dict[int, int] = {BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8}
_SIZE_SUFFIX: dict[int, str] = {BPF_B: "b", BPF_H: "h", BPF_W: "w", BPF_DW: "dw"}

#: MOV|X ``off`` values meaning "sign-extend from this many bits", per class.
MOVSX_OFFSETS: dict[int, frozenset[int]] = {
    BPF_ALU: frozenset({8, 16}),
    BPF_ALU64: frozenset({8, 16, 32}),
}


def _build() -> dict[int, OpInfo]:
    table: dict[int, OpInfo] = {}

    def add(
        opcode: int,
        name: str,
        kind: Kind,
        op: int,
        width: int,
        group: Group,
        fields: tuple[Field, Field, Field, Field],  # dst, src, off, imm
        *,
        size: int = 0,
        x: bool = False,
        signed: bool = False,
        slots: int = 1,
    ) -> None:
        assert opcode not in table, hex(opcode)
        dst, src, off, imm = fields
        table[opcode] = OpInfo(
            opcode, name, opcode & 0x07, kind, op, width, size, x, signed, group,
            dst, src, off, imm, slots,
        )  # fmt: skip

    # --- ALU / ALU64 -------------------------------------------------------------
    for cls, width in ((BPF_ALU, 32), (BPF_ALU64, 64)):
        sfx = "32" if cls == BPF_ALU else ""
        divmul = Group.DIVMUL32 if cls == BPF_ALU else Group.DIVMUL64
        base = Group.BASE32 if cls == BPF_ALU else Group.BASE64
        for op, aop in ALU_OPS.items():
            if op == BPF_END:
                continue
            if op == BPF_NEG:  # RFC 9669: NEG is only defined for K; Linux refuses X
                add(cls | op, "neg" + sfx, Kind.NEG, op, width, base, (REG_W, ZERO, ZERO, ZERO))
                continue
            for source in (BPF_K, BPF_X):
                x = source == BPF_X
                name = aop.name + sfx + ("_reg" if x else "")
                if op == BPF_MOV:
                    if not x:
                        fields = (REG_W, ZERO, ZERO, ANY)
                    elif cls == BPF_ALU:
                        fields = (REG_W, REG, _choice(0, *MOVSX_OFFSETS[cls]), ZERO)
                    else:
                        # imm is nonzero only for addr_space_cast (off 1); see validate.py
                        off = _choice(0, ADDR_SPACE_CAST_OFF, *MOVSX_OFFSETS[cls])
                        fields = (REG_W, REG, off, _choice(0, *ADDR_SPACE_CAST_IMMS))
                    add(cls | op | source, name, Kind.MOV, op, width, base, fields, x=x)
                    continue
                group = divmul if op in (BPF_MUL, BPF_DIV, BPF_MOD) else base
                off = _choice(0, 1) if op in (BPF_DIV, BPF_MOD) else ZERO  # 1 = signed
                fields = (REG_W, REG, off, ZERO) if x else (REG_W, ZERO, off, ANY)
                add(cls | op | source, name, Kind.ALU, op, width, group, fields, x=x)
    # Byte swaps: ALU|END|TO_LE / TO_BE convert to that byte order; ALU64|END|TO_LE (=0)
    # swaps unconditionally.  The width is in imm.  (ALU64|END|X is reserved.)
    swap = (REG_W, ZERO, ZERO, _choice(16, 32, 64))
    add(BPF_ALU | BPF_END | BPF_TO_LE, "le", Kind.END, BPF_END, 32, Group.BASE32, swap)
    add(BPF_ALU | BPF_END | BPF_TO_BE, "be", Kind.END, BPF_END, 32, Group.BASE32, swap)
    add(BPF_ALU64 | BPF_END | BPF_TO_LE, "bswap", Kind.END, BPF_END, 64, Group.BASE64, swap)

    # --- JMP / JMP32 -------------------------------------------------------------
    add(BPF_JMP | BPF_JA, "ja", Kind.JA, BPF_JA, 64, Group.BASE32, (ZERO, ZERO, ANY, ZERO))
    add(BPF_JMP32 | BPF_JA, "ja32", Kind.JA, BPF_JA, 32, Group.BASE32, (ZERO, ZERO, ZERO, ANY))
    for cls, width in ((BPF_JMP, 64), (BPF_JMP32, 32)):
        sfx = "32" if cls == BPF_JMP32 else ""
        group = Group.BASE32 if cls == BPF_JMP32 else Group.BASE64
        for op, jop in JMP_OPS.items():
            name = jop.name + sfx
            add(cls | op | BPF_K, name, Kind.JCC, op, width, group, (REG, ZERO, ANY, ANY))
            add(cls | op | BPF_X, name + "_reg", Kind.JCC, op, width, group,
                (REG, REG, ANY, ZERO), x=True)  # fmt: skip
    # call: src 0 helper id / 1 local (imm = pc-relative) / 2 kfunc (off = BTF fd index;
    # validate.py insists on off == 0 for the other two).
    add(BPF_JMP | BPF_CALL, "call", Kind.CALL, BPF_CALL, 64, Group.BASE32,
        (ZERO, _choice(*CALL_SOURCES), ANY, ANY))  # fmt: skip
    # callx: LLVM puts the target register in dst (checked with llvm-objdump-19).
    add(BPF_JMP | BPF_CALL | BPF_X, "callx", Kind.CALLX, BPF_CALL, 64, Group.LINUX,
        (REG, ZERO, ZERO, ZERO), x=True)  # fmt: skip
    add(BPF_JMP | BPF_EXIT, "exit", Kind.EXIT, BPF_EXIT, 64, Group.BASE32, (ZERO,) * 4)
    add(BPF_JMP | BPF_JCOND, "may_goto", Kind.MAY_GOTO, BPF_JCOND, 64, Group.LINUX,
        (ZERO, _choice(MAY_GOTO), ANY, ZERO))  # fmt: skip

    # --- loads and stores --------------------------------------------------------
    add(BPF_LD | BPF_IMM | BPF_DW, "lddw", Kind.LD_IMM64, BPF_IMM, 64, Group.BASE64,
        (REG_W, _choice(*LD_IMM64_SOURCES), ZERO, ANY), size=8, slots=2)  # fmt: skip
    for size in (BPF_W, BPF_H, BPF_B):
        n, sfx = SIZE_BYTES[size], _SIZE_SUFFIX[size]
        # Legacy packet access: dst and off reserved, r0 is the implicit destination.
        add(BPF_LD | BPF_ABS | size, "ldabs" + sfx, Kind.LD_ABS, BPF_ABS, 8 * n, Group.PACKET,
            (ZERO, ZERO, ZERO, ANY), size=n)  # fmt: skip
        add(BPF_LD | BPF_IND | size, "ldind" + sfx, Kind.LD_IND, BPF_IND, 8 * n, Group.PACKET,
            (ZERO, REG, ZERO, ANY), size=n, x=True)  # fmt: skip
        add(BPF_LDX | BPF_MEMSX | size, "ldxs" + sfx, Kind.LDX, BPF_MEMSX, 8 * n, Group.BASE32,
            (REG_W, REG, ANY, ZERO), size=n, x=True, signed=True)  # fmt: skip
    for size in (BPF_W, BPF_H, BPF_B, BPF_DW):
        n, sfx = SIZE_BYTES[size], _SIZE_SUFFIX[size]
        group = Group.BASE64 if size == BPF_DW else Group.BASE32
        add(BPF_LDX | BPF_MEM | size, "ldx" + sfx, Kind.LDX, BPF_MEM, 8 * n, group,
            (REG_W, REG, ANY, ZERO), size=n, x=True)  # fmt: skip
        add(BPF_ST | BPF_MEM | size, "st" + sfx, Kind.ST, BPF_MEM, 8 * n, group,
            (REG, ZERO, ANY, ANY), size=n)  # fmt: skip
        add(BPF_STX | BPF_MEM | size, "stx" + sfx, Kind.STX, BPF_MEM, 8 * n, group,
            (REG, REG, ANY, ZERO), size=n, x=True)  # fmt: skip
    # Atomics: the operation is in imm.  RFC 9669 defines 32 and 64 bit; Linux adds
    # load-acquire / store-release, also for 8 and 16 bit.  ``dst`` is the address
    # register except for load_acquire, where it is the destination (validate.py).
    for size, group in ((BPF_B, Group.LINUX), (BPF_H, Group.LINUX), (BPF_W, Group.ATOMIC32),
                        (BPF_DW, Group.ATOMIC64)):  # fmt: skip
        n = SIZE_BYTES[size]
        imms = _choice(*ATOMIC_OPS) if size in (BPF_W, BPF_DW) else _choice(*ACQ_REL_OPS)
        add(BPF_STX | BPF_ATOMIC | size, f"lock{8 * n}", Kind.ATOMIC, BPF_ATOMIC, 8 * n, group,
            (REG, REG, ANY, imms), size=n, x=True)  # fmt: skip
    return table


#: Every valid opcode byte -> its description.  Opcodes absent from this table are
#: refused by the validator ("unknown opcode").
OPCODES: dict[int, OpInfo] = _build()

#: Mnemonic -> opcode, the reverse of ``OpInfo.name``.
OPCODE_BY_NAME: dict[str, int] = {info.name: code for code, info in OPCODES.items()}


def lookup(opcode: int) -> OpInfo | None:
    """The description of ``opcode``, or None if no valid instruction has it."""
    return OPCODES.get(opcode)
