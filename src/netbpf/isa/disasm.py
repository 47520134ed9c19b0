"""Disassembler: instruction slots -> the C-like text people read.

Two styles, both accepted back by :func:`netbpf.isa.asm.assemble`:

``style="llvm"``
    What ``llvm-objdump-19 -d --no-show-raw-insn`` prints for ``-target bpf`` objects
    (``r0 = *(u32 *)(r1 + 0x4)``, ``if r2 > r3 goto +0x5``, ``call 0x1``), hex numbers,
    without the trailing ``<func+0x28>`` target annotation.  Plain ``llvm-objdump``
    decodes 32-bit atomics only with ``--mcpu=v3`` or later, so those follow the
    ``--mcpu=v4`` rendering (``w1 = atomic_fetch_add((u32 *)(r10 - 0x8), w1)``).

``style="verifier"``
    What the kernel's verifier log prints (``kernel/bpf/disasm.c``), without the
    ``12: (61)`` index and opcode columns: ``r0 = *(u32 *)(r1 +4)``,
    ``if r2 > r3 goto pc+5``, ``call bpf_map_lookup_elem#1``, decimal immediates.

Where either printer loses information, we print something that keeps it, so that
``assemble(disassemble(p)) == p`` for every valid instruction:

* ld_imm64: ``r1 = 0x1122334455667788 ll`` in both styles (the kernel omits ``ll``,
  which would make a small constant read back as a 32-bit ``mov``); pseudo sources as
  ``r1 = map_fd(3) ll``, ``map_value(3, 8)``, ``btf_id(..)``, ``func(..)``,
  ``map_idx(..)``, ``map_idx_value(..)`` (llvm prints ``ld_pseudo r1, 0x1, 0x3`` and drops
  the upper half);
* bpf-to-bpf calls: ``call pc+3`` / ``call pc+0x3`` (llvm prints these like helper
  calls); kfunc calls: ``call kfunc(0x10)`` (with the BTF fd index as a second
  argument when nonzero);
* ``r0 = *(u32 *)skb[r2 + 0x4]`` (llvm drops the immediate of LD_IND).

Anything that is not a valid instruction (unknown opcode, reserved fields set, a
lone half of an ld_imm64) is printed as ``.quad 0x...``, the slot's 64-bit
little-endian value, which the assembler reads back bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import (
    ADDR_SPACE_CAST_OFF,
    ALU_OPS,
    ATOMIC_OPS,
    BPF_LOAD_ACQ,
    BPF_STORE_REL,
    CALL_HELPER,
    CALL_KFUNC,
    CALL_LOCAL,
    JMP_OPS,
    LD_IMM64_SOURCES,
    OPCODES,
    FieldUse,
    Kind,
    OpInfo,
)
from netbpf.uapi import BPF_ALU, BPF_CMPXCHG, BPF_JMP32, BPF_XCHG, HELPER_NAMES

__all__ = ["Style", "disassemble", "format_insn"]

Style = Literal["llvm", "verifier"]


def _hex(v: int) -> str:
    """llvm's signed hex: ``0x7``, ``-0x7``."""
    return f"-{-v:#x}" if v < 0 else f"{v:#x}"


def _rel(v: int, style: Style) -> str:
    """A pc-relative target: ``+0x5`` / ``-0x3`` (llvm) or ``pc+5`` / ``pc-3`` (verifier)."""
    if style == "llvm":
        return f"+{v:#x}" if v >= 0 else f"-{-v:#x}"
    return f"pc{v:+d}"


def _num(v: int, style: Style) -> str:
    return _hex(v) if style == "llvm" else str(v)


def _mem(base: int, off: int, style: Style) -> str:
    """``(r1 + 0x4)`` / ``(r10 - 0x8)`` (llvm) or ``(r1 +4)`` / ``(r10 -8)`` (verifier)."""
    if style == "llvm":
        sign = "-" if off < 0 else "+"
        return f"(r{base} {sign} {abs(off):#x})"
    return f"(r{base} {off:+d})"


def _quad(insn: Instruction) -> str:
    return f".quad {int.from_bytes(insn.encode(), 'little'):#018x}"


def _canonical(insn: Instruction, info: OpInfo) -> bool:
    """True when the slot's fields are ones the pretty syntax can carry exactly: every
    reserved field zero, every choice field one of its values, registers 4-bit."""
    for value, rule in ((insn.dst, info.dst), (insn.src, info.src), (insn.off, info.off),
                        (insn.imm, info.imm)):  # fmt: skip
        if rule.use in (FieldUse.ZERO, FieldUse.CHOICE) and not rule.allows(value):
            return False
    if (
        info.kind is Kind.MOV
        and info.use_src_reg
        and (insn.off == ADDR_SPACE_CAST_OFF) != (insn.imm != 0)
    ):
        return False  # imm is meaningful only for addr_space_cast
    if info.kind is Kind.CALL and insn.off and insn.src != CALL_KFUNC:
        return False
    return True


def format_insn(insns: Sequence[Instruction], index: int, *, style: Style = "llvm") -> str:
    """One instruction as text.  For an ld_imm64, reads the next slot too."""
    if style not in ("llvm", "verifier"):
        raise ValueError(f"style must be 'llvm' or 'verifier', not {style!r}")
    insn = insns[index]
    info = OPCODES.get(insn.opcode)
    if info is None or not _canonical(insn, info):
        return _quad(insn)
    if info.kind is Kind.LD_IMM64:
        if not _is_pair(insns, index):
            return _quad(insn)
        return _ld_imm64(insn, insns[index + 1], style)
    return _FORMATTERS[info.kind](insn, info, style)


def _is_pair(insns: Sequence[Instruction], index: int) -> bool:
    """True if slots ``index`` and ``index + 1`` form one well-formed ld_imm64."""
    insn = insns[index]
    info = OPCODES.get(insn.opcode)
    if info is None or info.kind is not Kind.LD_IMM64 or not _canonical(insn, info):
        return False
    if index + 1 >= len(insns):
        return False
    nxt = insns[index + 1]
    return not (nxt.opcode or nxt.dst or nxt.src or nxt.off)


def disassemble(
    insns: Sequence[Instruction], *, style: Style = "llvm", numbered: bool = False
) -> list[str]:
    """All instructions as text, one line per instruction (an ld_imm64 is one line
    for its two slots).  ``numbered=True`` prefixes the slot index like
    ``llvm-objdump`` (``   5:\\t``); the assembler skips it when reading back."""
    lines: list[str] = []
    i = 0
    while i < len(insns):
        text = format_insn(insns, i, style=style)
        if numbered:
            text = f"{i:>8}:\t{text}"
        lines.append(text)
        i += 2 if _is_pair(insns, i) else 1
    return lines


# --- per-kind formatters -------------------------------------------------------------


def _reg_prefix(info: OpInfo) -> str:
    return "w" if info.width == 32 and info.cls in (BPF_ALU, BPF_JMP32) else "r"


def _fmt_alu(insn: Instruction, info: OpInfo, style: Style) -> str:
    p = _reg_prefix(info)
    aop = ALU_OPS[info.op]
    sym = aop.signed_symbol if insn.off == 1 and aop.signed_symbol else aop.symbol
    rhs = f"{p}{insn.src}" if info.use_src_reg else _num(insn.imm, style)
    return f"{p}{insn.dst} {sym} {rhs}"


def _fmt_neg(insn: Instruction, info: OpInfo, style: Style) -> str:
    p = _reg_prefix(info)
    return f"{p}{insn.dst} = -{p}{insn.dst}"


def _fmt_mov(insn: Instruction, info: OpInfo, style: Style) -> str:
    p = _reg_prefix(info)
    if not info.use_src_reg:
        return f"{p}{insn.dst} = {_num(insn.imm, style)}"
    if insn.off == ADDR_SPACE_CAST_OFF:
        dst_as, src_as = (insn.imm >> 16) & 0xFFFF, insn.imm & 0xFFFF
        return f"r{insn.dst} = addr_space_cast(r{insn.src}, {_num(dst_as, style)}, {_num(src_as, style)})"
    if insn.off:
        return f"{p}{insn.dst} = (s{insn.off}){p}{insn.src}"
    return f"{p}{insn.dst} = {p}{insn.src}"


def _fmt_end(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"r{insn.dst} = {info.name}{insn.imm} r{insn.dst}"


def _ld_imm64(insn: Instruction, nxt: Instruction, style: Style) -> str:
    lo, hi = insn.imm & 0xFFFF_FFFF, nxt.imm & 0xFFFF_FFFF
    if insn.src == 0:
        value = (hi << 32) | lo
        if style == "llvm":
            if value >> 63:
                value -= 1 << 64
            return f"r{insn.dst} = {_hex(value)} ll"
        return f"r{insn.dst} = {value:#x} ll"
    name = LD_IMM64_SOURCES[insn.src]
    args = _num(insn.imm, style)
    if nxt.imm:
        args += f", {_num(nxt.imm, style)}"
    return f"r{insn.dst} = {name}({args}) ll"


def _size_name(info: OpInfo) -> str:
    return f"{'s' if info.signed else 'u'}{8 * info.size}"


def _fmt_ld_abs(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"r0 = *({_size_name(info)} *)skb[{_num(insn.imm, style)}]"


def _fmt_ld_ind(insn: Instruction, info: OpInfo, style: Style) -> str:
    inner = f"r{insn.src}"
    if style == "verifier":
        inner += f" + {insn.imm}"
    elif insn.imm:
        inner += f" {'-' if insn.imm < 0 else '+'} {abs(insn.imm):#x}"
    return f"r0 = *({_size_name(info)} *)skb[{inner}]"


def _fmt_ldx(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"r{insn.dst} = *({_size_name(info)} *){_mem(insn.src, insn.off, style)}"


def _fmt_st(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"*({_size_name(info)} *){_mem(insn.dst, insn.off, style)} = {_num(insn.imm, style)}"


def _fmt_stx(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"*({_size_name(info)} *){_mem(insn.dst, insn.off, style)} = r{insn.src}"


def _fmt_atomic(insn: Instruction, info: OpInfo, style: Style) -> str:
    a = ATOMIC_OPS[insn.imm]
    ptr = f"({_size_name(info)} *){_mem(insn.dst, insn.off, style)}"
    if insn.imm == BPF_LOAD_ACQ:
        return (
            f"r{insn.dst} = load_acquire(({_size_name(info)} *){_mem(insn.src, insn.off, style)})"
        )
    if insn.imm == BPF_STORE_REL:
        return f"store_release({ptr}, r{insn.src})"
    if style == "llvm":
        w = "w" if info.size == 4 else "r"
        if not a.fetch:
            return f"lock *{ptr} {a.symbol} {w}{insn.src}"
        addr = _mem(insn.dst, insn.off, style)[1:-1]
        sfx = "32_32" if info.size == 4 else "_64"
        if insn.imm == BPF_XCHG:
            return f"{w}{insn.src} = xchg{sfx}({addr}, {w}{insn.src})"
        if insn.imm == BPF_CMPXCHG:
            return f"{w}0 = cmpxchg{sfx}({addr}, {w}0, {w}{insn.src})"
        return f"{w}{insn.src} = atomic_{a.name}({ptr}, {w}{insn.src})"
    width = "64" if info.size == 8 else ""
    if not a.fetch:
        return f"lock *{ptr} {a.symbol} r{insn.src}"
    if insn.imm == BPF_CMPXCHG:
        return f"r0 = atomic{width}_cmpxchg({ptr}, r0, r{insn.src})"
    return f"r{insn.src} = atomic{width}_{a.name}({ptr}, r{insn.src})"


def _fmt_ja(insn: Instruction, info: OpInfo, style: Style) -> str:
    if info.cls == BPF_JMP32:
        return f"gotol {_rel(insn.imm, style)}"
    return f"goto {_rel(insn.off, style)}"


def _fmt_jcc(insn: Instruction, info: OpInfo, style: Style) -> str:
    p = _reg_prefix(info)
    sym = JMP_OPS[info.op].symbol
    if info.use_src_reg:
        rhs = f"{p}{insn.src}"
    elif style == "llvm":
        rhs = _hex(insn.imm)
    else:
        rhs = f"{insn.imm & 0xFFFF_FFFF:#x}"
    return f"if {p}{insn.dst} {sym} {rhs} goto {_rel(insn.off, style)}"


def _fmt_call(insn: Instruction, info: OpInfo, style: Style) -> str:
    if insn.src == CALL_LOCAL:  # pc-relative in both styles, unlike llvm's plain number
        rel = _rel(insn.imm, style)
        return f"call {rel if rel.startswith('pc') else 'pc' + rel}"
    if insn.src == CALL_KFUNC:
        args = _num(insn.imm, style) + (f", {_num(insn.off, style)}" if insn.off else "")
        return f"call kfunc({args})"
    assert insn.src == CALL_HELPER
    if style == "llvm":
        return f"call {_hex(insn.imm)}"
    name = HELPER_NAMES.get(insn.imm) if insn.imm > 0 else None
    return f"call {'bpf_' + name if name else 'unknown'}#{insn.imm}"


def _fmt_callx(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"callx r{insn.dst}"


def _fmt_exit(insn: Instruction, info: OpInfo, style: Style) -> str:
    return "exit"


def _fmt_may_goto(insn: Instruction, info: OpInfo, style: Style) -> str:
    return f"may_goto {_rel(insn.off, style)}"


_FORMATTERS = {
    Kind.ALU: _fmt_alu,
    Kind.NEG: _fmt_neg,
    Kind.MOV: _fmt_mov,
    Kind.END: _fmt_end,
    Kind.LD_ABS: _fmt_ld_abs,
    Kind.LD_IND: _fmt_ld_ind,
    Kind.LDX: _fmt_ldx,
    Kind.ST: _fmt_st,
    Kind.STX: _fmt_stx,
    Kind.ATOMIC: _fmt_atomic,
    Kind.JA: _fmt_ja,
    Kind.JCC: _fmt_jcc,
    Kind.CALL: _fmt_call,
    Kind.CALLX: _fmt_callx,
    Kind.EXIT: _fmt_exit,
    Kind.MAY_GOTO: _fmt_may_goto,
}
