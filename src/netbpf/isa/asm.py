"""Assembler: text -> instruction slots.

Two syntaxes are accepted, line by line, and may be mixed:

* the C-like syntax that ``llvm-objdump -d`` prints for ``-target bpf`` and that the
  kernel verifier log prints (``r0 = *(u32 *)(r1 + 0x4)``, ``if r2 > r3 goto +5``,
  ``lock *(u64 *)(r10 - 8) += r1``, ``r1 = 0x1122334455667788 ll``...), including
  what :func:`netbpf.isa.disasm.disassemble` prints in either style;
* the bpf_conformance suite's syntax (``mov %r0, 1``, ``ldxw %r0, [%r1+4]``,
  ``jeq %r1, 0x10, +2``, ``lock fetch add [%r10-8], %r1``, ``call local func``...).

Around the instruction a line may carry what disassemblers print: a leading ``12:``
index, the raw byte columns of ``llvm-objdump``, the ``(bf)`` opcode column of the
verifier log, a trailing ``<LBB0_2>`` target annotation, and comments (``//``, ``;``,
and ``#`` at the start of the line or after a space; ``call foo#1`` keeps its ``#``).
``name:`` defines a label; jump and call targets are ``+N``, ``-N``, ``pc+N`` or a label.
As in the bpf_conformance assembler, the label ``exit`` names the first ``exit``
instruction unless the program defines it.

Registers r0-r15 are accepted (all are encodable; the validator refuses r11-r15), so
negative tests can be written in assembly.  Every failure is an :class:`AssemblerError`
naming the 1-based line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from netbpf.errors import AssemblerError
from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import (
    ALU_OPS,
    ATOMIC_OPS,
    BPF_LOAD_ACQ,
    BPF_STORE_REL,
    CALL_HELPER,
    CALL_KFUNC,
    CALL_LOCAL,
    JMP_OPS,
    LD_IMM64_SOURCES,
)
from netbpf.uapi import (
    BPF_ABS,
    BPF_ALU,
    BPF_ALU64,
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
    BPF_JMP,
    BPF_JMP32,
    BPF_K,
    BPF_LD,
    BPF_LDX,
    BPF_MEM,
    BPF_MEMSX,
    BPF_MOD,
    BPF_MOV,
    BPF_NEG,
    BPF_PSEUDO_FUNC,
    BPF_ST,
    BPF_STX,
    BPF_TO_BE,
    BPF_TO_LE,
    BPF_W,
    BPF_X,
    BPF_XCHG,
    HELPER_IDS,
)

__all__ = ["assemble"]

_SIZE_BY_BITS = {8: BPF_B, 16: BPF_H, 32: BPF_W, 64: BPF_DW}
_SIZE_BY_SUFFIX = {"b": BPF_B, "h": BPF_H, "w": BPF_W, "dw": BPF_DW}
_ALU_BY_SYMBOL = {
    a.symbol: op for op, a in ALU_OPS.items() if op not in (BPF_NEG, BPF_END, BPF_MOV)
}
_ALU_BY_SYMBOL.update({"s/=": BPF_DIV, "s%=": BPF_MOD})
_SIGNED_SYMBOLS = {"s/=", "s%="}
_ALU_BY_NAME = {a.name: op for op, a in ALU_OPS.items() if op != BPF_END}
_JMP_BY_SYMBOL = {j.symbol: op for op, j in JMP_OPS.items()}
_JMP_BY_NAME = {j.name: op for op, j in JMP_OPS.items()}
_ATOMIC_BY_SYMBOL = {a.symbol: a.imm for a in ATOMIC_OPS.values() if a.symbol}
_ATOMIC_BY_NAME = {a.name: a.imm for a in ATOMIC_OPS.values()}
_PSEUDO_BY_NAME = {name: src for src, name in LD_IMM64_SOURCES.items() if src}

# --- lexical pieces ---------------------------------------------------------------
_NUM = r"[-+]?\s*(?:0[xX][0-9a-fA-F]+|\d+)"
_REG = r"%?([rw])(\d+)"
_OFF = rf"(?:\s*([-+])\s*({_NUM}))?"
_MEM = rf"\*\s*\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*\(\s*%?r(\d+){_OFF}\s*\)"
_TARGET = (
    r"(pc\s*[-+]\s*(?:0[xX][0-9a-fA-F]+|\d+)|[-+]\s*(?:0[xX][0-9a-fA-F]+|\d+)|[A-Za-z_.$][\w.$]*)"
)

_RE_INDEX = re.compile(r"^\s*\d+\s*:\s*")
_RE_RAW = re.compile(
    r"^(?:[0-9a-fA-F]{2}\s){7}[0-9a-fA-F]{2}(?:\s(?:[0-9a-fA-F]{2}\s){7}[0-9a-fA-F]{2})?(?:\s+|$)"
)
_RE_OPCOL = re.compile(r"^\(([0-9a-fA-F]{2})\)\s+")
_RE_ANNOT = re.compile(r"\s*<[^<>]*>\s*$")
_RE_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*)\s*:(?:\s+|$)")
_RE_FUNC_HEADER = re.compile(r"^[0-9a-fA-F]+\s+<([^<>]+)>\s*:$")
_RE_NOISE = re.compile(
    r"^(?:Disassembly of section .*:|.*:\s+file format .*|[0-9a-fA-F]+:\s+R_BPF_\S+.*)$"
)


@dataclass
class _Fixup:
    """A jump or call whose target is a label, resolved once all labels are known."""

    slot: int
    label: str
    field: str  # "off" or "imm"
    line: int
    text: str


class _Line(Exception):
    """Internal: a parse failure on the current line (turned into AssemblerError)."""


def _int(text: str) -> int:
    t = text.replace(" ", "").replace("\t", "")
    neg = t.startswith("-")
    t = t.lstrip("+-")
    try:
        v = int(t, 16) if t[:2].lower() == "0x" else int(t, 10)
    except ValueError:
        raise _Line(f"bad number {text!r}") from None
    return -v if neg else v


def _fit(value: int, bits: int, what: str) -> int:
    """Wrap a value into a signed field of ``bits`` bits; accept the signed and the
    unsigned range (``0xffffffff`` and ``-1`` are the same 32-bit immediate)."""
    lo, hi = -(1 << (bits - 1)), (1 << bits) - 1
    if not lo <= value <= hi:
        raise _Line(f"{what} {value} does not fit in {bits} bits")
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _pc_rel(value: int, field: str) -> int:
    """A pc-relative distance must fit the *signed* field (no unsigned wrap-around:
    ``goto +40000`` is an error, not a backward jump)."""
    bits = 16 if field == "off" else 32
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise _Line(f"jump distance {value:+d} does not fit in the signed {bits}-bit {field} field")
    return value


def _reg(num: str) -> int:
    n = int(num)
    if n > 15:
        raise _Line(f"register r{n} does not exist (the encoding holds r0-r15)")
    return n


class _Assembler:
    def __init__(self) -> None:
        self.out: list[Instruction] = []
        self.labels: dict[str, int] = {}
        self.fixups: list[_Fixup] = []
        self.first_exit: int | None = None
        self.line = 0
        self.text = ""

    # --- emit helpers -----------------------------------------------------------
    def emit(self, opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.out.append(
            Instruction(opcode, dst, src, _fit(off, 16, "offset"), _fit(imm, 32, "immediate"))
        )

    def emit_ld_imm64(self, dst: int, src: int, value: int) -> None:
        value = _fit(value, 64, "64-bit immediate") & 0xFFFF_FFFF_FFFF_FFFF
        lo, hi = value & 0xFFFF_FFFF, value >> 32
        self.emit(BPF_LD | BPF_IMM | BPF_DW, dst, src, 0, lo)
        self.emit(0, 0, 0, 0, hi)

    def target(self, text: str, field: str) -> int:
        """The relative offset for a jump/call target, or 0 plus a fixup for a label."""
        t = text.replace(" ", "")
        if t.startswith("pc"):
            t = t[2:]
        if t[:1] in "+-":
            return _pc_rel(_int(t), field)
        self.fixups.append(_Fixup(len(self.out), t, field, self.line, self.text))
        return 0

    # --- line handling ----------------------------------------------------------
    def feed(self, lineno: int, raw: str) -> None:
        self.line, self.text = lineno, raw
        s = _strip_comment(raw).strip()
        if not s or _RE_NOISE.match(s):
            return
        m = _RE_FUNC_HEADER.match(s)
        if m:
            self.define(m.group(1).split("+")[0])
            return
        s = _RE_INDEX.sub("", s, count=1)
        s = _RE_RAW.sub("", s, count=1)
        s = _RE_OPCOL.sub("", s, count=1)
        while True:
            m = _RE_LABEL.match(s)
            if not m:
                break
            self.define(m.group(1))
            s = s[m.end() :]
        s = _RE_ANNOT.sub("", s).strip()
        if not s:
            return
        if s == "exit" and self.first_exit is None:
            self.first_exit = len(self.out)
        first = re.match(r"[A-Za-z_.][\w.]*", s)
        word = first.group(0) if first else ""
        if word in _CONFORMANCE and not (word in ("lock", "call") and not _looks_conformance(s)):
            _CONFORMANCE[word](self, word, s[len(word) :].strip())
        else:
            self.c_like(s)

    def define(self, name: str) -> None:
        if name in self.labels:
            raise _Line(f"label {name!r} defined twice")
        self.labels[name] = len(self.out)

    def finish(self) -> list[Instruction]:
        for fx in self.fixups:
            if fx.label in self.labels:
                dest = self.labels[fx.label]
            elif fx.label == "exit" and self.first_exit is not None:
                dest = self.first_exit
            else:
                raise AssemblerError(fx.line, f"undefined label {fx.label!r}", fx.text)
            rel = dest - fx.slot - 1
            old = self.out[fx.slot]
            try:
                if fx.field == "off":
                    new = Instruction(old.opcode, old.dst, old.src, _pc_rel(rel, "off"), old.imm)
                else:
                    new = Instruction(old.opcode, old.dst, old.src, old.off, _pc_rel(rel, "imm"))
            except _Line as e:
                raise AssemblerError(fx.line, str(e), fx.text) from None
            self.out[fx.slot] = new
        return self.out

    # --- C-like syntax (llvm-objdump / verifier log) -----------------------------
    def c_like(self, s: str) -> None:
        for pattern, handler in _C_FORMS:
            m = pattern.fullmatch(s)
            if m:
                handler(self, m)
                return
        raise _Line("unrecognised instruction")


def _strip_comment(line: str) -> str:
    """Drop ``//`` and ``;`` comments, and ``#`` comments that start the line or follow
    whitespace (so ``call bpf_map_lookup_elem#1`` keeps its helper id)."""
    cut = len(line)
    for marker in ("//", ";"):
        i = line.find(marker)
        if i >= 0:
            cut = min(cut, i)
    m = re.search(r"(?:^|\s)#", line)
    if m:
        cut = min(cut, m.start())
    return line[:cut]


def _looks_conformance(s: str) -> bool:
    """``lock`` and ``call`` start both syntaxes; tell them apart."""
    if s.startswith("lock"):
        return not s[4:].lstrip().startswith("*")
    rest = s[4:].strip()
    return bool(re.fullmatch(r"(?:helper|local|runtime)\s+\S+|%r\d+", rest))


# ----------------------------------------------------------------------------------
# C-like forms.  Each is a full-line regex and a handler; order matters where one
# pattern is a prefix of another (``r1 = -r1`` before ``r1 = -1``).
# ----------------------------------------------------------------------------------


def _c_jcc(a: _Assembler, m: re.Match[str]) -> None:
    dk, dn, sym, rhs, target = m.groups()
    op = _JMP_BY_SYMBOL[sym]
    cls = BPF_JMP32 if dk == "w" else BPF_JMP
    rm = re.fullmatch(_REG, rhs)
    off = a.target(target, "off")
    if rm:
        a.emit(cls | op | BPF_X, _reg(dn), _reg(rm.group(2)), off, 0)
    else:
        a.emit(cls | op | BPF_K, _reg(dn), 0, off, _int(rhs))


def _c_goto(a: _Assembler, m: re.Match[str]) -> None:
    kw, target = m.groups()
    if kw == "goto":
        a.emit(BPF_JMP | BPF_JA, off=a.target(target, "off"))
    elif kw == "gotol":
        a.emit(BPF_JMP32 | BPF_JA, imm=a.target(target, "imm"))
    else:  # may_goto
        a.emit(BPF_JMP | BPF_JCOND, off=a.target(target, "off"))


def _c_call(a: _Assembler, m: re.Match[str]) -> None:
    arg = m.group(1).strip()
    km = re.fullmatch(rf"kfunc\s*\(\s*({_NUM})\s*(?:,\s*({_NUM})\s*)?\)", arg)
    if km:
        a.emit(BPF_JMP | BPF_CALL, 0, CALL_KFUNC, _int(km.group(2) or "0"), _int(km.group(1)))
        return
    if re.fullmatch(r"pc\s*[-+]\s*\S+", arg) or arg == "pc":
        a.emit(BPF_JMP | BPF_CALL, 0, CALL_LOCAL, 0, a.target(arg, "imm"))
        return
    if re.fullmatch(_NUM, arg):
        a.emit(BPF_JMP | BPF_CALL, 0, CALL_HELPER, 0, _int(arg))
        return
    hm = re.fullmatch(r"([A-Za-z_][\w]*)?#(-?\d+)", arg)  # verifier log: bpf_map_lookup_elem#1
    if hm:
        a.emit(BPF_JMP | BPF_CALL, 0, CALL_HELPER, 0, _int(hm.group(2)))
        return
    if re.fullmatch(r"[A-Za-z_.$][\w.$]*", arg):
        helper = HELPER_IDS.get(arg.removeprefix("bpf_")) if arg.startswith("bpf_") else None
        if helper is None and arg not in a.labels and arg in HELPER_IDS:
            helper = HELPER_IDS[arg]
        if helper is not None:
            a.emit(BPF_JMP | BPF_CALL, 0, CALL_HELPER, 0, helper)
        else:  # a local function: bpf-to-bpf call to a label
            a.emit(BPF_JMP | BPF_CALL, 0, CALL_LOCAL, 0, a.target(arg, "imm"))
        return
    raise _Line("bad call target")


def _c_callx(a: _Assembler, m: re.Match[str]) -> None:
    a.emit(BPF_JMP | BPF_CALL | BPF_X, _reg(m.group(2)))


def _c_exit(a: _Assembler, m: re.Match[str]) -> None:
    a.emit(BPF_JMP | BPF_EXIT)


def _mem(m: re.Match[str], i: int) -> tuple[str, int, int, int]:
    """(sign 'u'/'s', size bits, base register, offset) from a _MEM match at group i."""
    sign, bits, base, pm, num = m.group(i, i + 1, i + 2, i + 3, i + 4)
    off = 0
    if num is not None:
        off = _int(num) * (-1 if pm == "-" else 1)
    return sign, int(bits), _reg(base), off


def _size(bits: int, *, atomic: bool = False) -> int:
    if atomic and bits not in (32, 64):
        raise _Line(f"atomic operations are 32 or 64 bit, not {bits}")
    return _SIZE_BY_BITS[bits]


def _c_lock(a: _Assembler, m: re.Match[str]) -> None:
    sign, bits, base, off = _mem(m, 1)
    sym, _k, src = m.group(6, 7, 8)
    if sign != "u":
        raise _Line("atomic operations take (u32 *) or (u64 *)")
    a.emit(
        BPF_STX | BPF_ATOMIC | _size(bits, atomic=True),
        base,
        _reg(src),
        off,
        _ATOMIC_BY_SYMBOL[sym],
    )


def _c_store(a: _Assembler, m: re.Match[str]) -> None:
    sign, bits, base, off = _mem(m, 1)
    rhs = m.group(6).strip()
    if sign != "u":
        raise _Line("stores take unsigned sizes (u8 .. u64)")
    size = _size(bits)
    rm = re.fullmatch(_REG, rhs)
    if rm:
        a.emit(BPF_STX | BPF_MEM | size, base, _reg(rm.group(2)), off, 0)
    elif re.fullmatch(_NUM, rhs):
        a.emit(BPF_ST | BPF_MEM | size, base, 0, off, _int(rhs))
    else:
        raise _Line("store of what?")


def _c_load(a: _Assembler, m: re.Match[str]) -> None:
    _dk, dn = m.group(1, 2)
    sign, bits, base, off = _mem(m, 3)
    if sign == "s":
        if bits == 64:
            raise _Line("there is no sign-extending 64-bit load")
        a.emit(BPF_LDX | BPF_MEMSX | _size(bits), _reg(dn), base, off, 0)
    else:
        a.emit(BPF_LDX | BPF_MEM | _size(bits), _reg(dn), base, off, 0)


def _c_ld_skb(a: _Assembler, m: re.Match[str]) -> None:
    _dk, dn, sign, bits, inside = m.groups()
    if _reg(dn) != 0 or sign != "u" or bits == "64":
        raise _Line("legacy packet loads are r0 = *(u8|u16|u32 *)skb[...]")
    size = _size(int(bits))
    inside = inside.strip()
    im = re.fullmatch(rf"%?r(\d+)\s*(?:([-+])\s*({_NUM}))?", inside)
    if im:
        imm = _int(im.group(3)) * (-1 if im.group(2) == "-" else 1) if im.group(3) else 0
        a.emit(BPF_LD | BPF_IND | size, 0, _reg(im.group(1)), 0, imm)
    elif re.fullmatch(_NUM, inside):
        a.emit(BPF_LD | BPF_ABS | size, 0, 0, 0, _int(inside))
    else:
        raise _Line("bad skb[] operand")


def _c_ld_imm64(a: _Assembler, m: re.Match[str]) -> None:
    _dk, dn, value = m.groups()
    a.emit_ld_imm64(_reg(dn), 0, _int(value))


def _c_ld_pseudo(a: _Assembler, m: re.Match[str]) -> None:
    # r1 = map_fd(3) ll / r1 = map_value(3, 8) ll
    _dk, dn, name, lo, hi = m.groups()
    if name not in _PSEUDO_BY_NAME:
        raise _Line(f"unknown ld_imm64 source {name!r}")
    lo_v = _fit(_int(lo), 32, "immediate") & 0xFFFF_FFFF
    hi_v = _fit(_int(hi), 32, "immediate") & 0xFFFF_FFFF if hi else 0
    a.emit_ld_imm64(_reg(dn), _PSEUDO_BY_NAME[name], (hi_v << 32) | lo_v)


def _c_ld_func_label(a: _Assembler, m: re.Match[str]) -> None:
    # r1 = func(label) ll: the address of a function, pc-relative like a local call
    _dk, dn, label = m.groups()
    rel = a.target(label, "imm")
    a.emit_ld_imm64(_reg(dn), BPF_PSEUDO_FUNC, rel & 0xFFFF_FFFF)


def _c_llvm_ld_pseudo(a: _Assembler, m: re.Match[str]) -> None:
    # llvm-objdump: ld_pseudo r1, 0x1, 0x3  (src, imm; the upper half is not printed)
    dn, src, imm = m.groups()
    s = _int(src)
    if not 0 <= s <= 15:
        raise _Line("ld_pseudo source out of range")
    a.emit_ld_imm64(_reg(dn), s, _fit(_int(imm), 32, "immediate") & 0xFFFF_FFFF)


def _c_end(a: _Assembler, m: re.Match[str]) -> None:
    _dk, dn, kind, width, _sk, sn = m.groups()
    if dn != sn:
        raise _Line("byte swaps work in place (rX = be16 rX)")
    opcode = {
        "le": BPF_ALU | BPF_END | BPF_TO_LE,
        "be": BPF_ALU | BPF_END | BPF_TO_BE,
        "bswap": BPF_ALU64 | BPF_END | BPF_TO_LE,
    }[kind]
    a.emit(opcode, _reg(dn), 0, 0, int(width))


def _c_neg(a: _Assembler, m: re.Match[str]) -> None:
    dk, dn, sk, sn = m.groups()
    if dn != sn or dk != sk:
        raise _Line("neg works in place (r1 = -r1)")
    a.emit((BPF_ALU if dk == "w" else BPF_ALU64) | BPF_NEG | BPF_K, _reg(dn))


def _c_movsx(a: _Assembler, m: re.Match[str]) -> None:
    dk, dn, bits, _sk, sn = m.groups()
    cls = BPF_ALU if dk == "w" else BPF_ALU64
    a.emit(cls | BPF_MOV | BPF_X, _reg(dn), _reg(sn), int(bits), 0)


def _c_addr_space_cast(a: _Assembler, m: re.Match[str]) -> None:
    dn, sn, dst_as, src_as = m.groups()
    imm = (_fit(_int(dst_as), 16, "address space") & 0xFFFF) << 16 | (
        _fit(_int(src_as), 16, "address space") & 0xFFFF
    )
    a.emit(BPF_ALU64 | BPF_MOV | BPF_X, _reg(dn), _reg(sn), 1, _fit(imm, 32, "immediate"))


def _c_alu(a: _Assembler, m: re.Match[str]) -> None:
    dk, dn, sym, rhs = m.groups()
    rhs = rhs.strip()
    cls = BPF_ALU if dk == "w" else BPF_ALU64
    op = BPF_MOV if sym == "=" else _ALU_BY_SYMBOL[sym]
    off = 1 if sym in _SIGNED_SYMBOLS else 0
    rm = re.fullmatch(_REG, rhs)
    if rm:
        a.emit(cls | op | BPF_X, _reg(dn), _reg(rm.group(2)), off, 0)
        return
    if not re.fullmatch(_NUM, rhs):
        raise _Line("unrecognised instruction")
    value = _int(rhs)
    if op == BPF_MOV and dk == "r" and not -(1 << 31) <= value < (1 << 31):
        # The verifier log prints ld_imm64 without "ll": r1 = 0x1122334455667788.
        a.emit_ld_imm64(_reg(dn), 0, value)
        return
    a.emit(cls | op | BPF_K, _reg(dn), 0, off, value)


def _c_atomic_fetch_v(a: _Assembler, m: re.Match[str]) -> None:
    # groups: 1 dk, 2 dn, 3 name, 4 sign, 5 bits, 6 base, 7 pm, 8 num, 9 sk, 10 sn
    dn, name = m.group(2), m.group(3)
    sign, bits, base, off = _mem(m, 4)
    if sign != "u":
        raise _Line("atomic operations take (u32 *) or (u64 *)")
    src = _reg(m.group(10))
    if name == "cmpxchg":
        raise _Line("cmpxchg is r0 = atomic_cmpxchg(ptr, r0, src)")
    if _reg(dn) != src:
        raise _Line(f"the fetched value lands in the source register: r{dn} != r{src}")
    a.emit(BPF_STX | BPF_ATOMIC | _size(bits, atomic=True), base, src, off, _ATOMIC_BY_NAME[name])


def _c_atomic_cmpxchg_v(a: _Assembler, m: re.Match[str]) -> None:
    # groups: 1 dk, 2 dn, 3 sign, 4 bits, 5 base, 6 pm, 7 num, 8 ck, 9 cn, 10 sk, 11 sn
    sign, bits, base, off = _mem(m, 3)
    if sign != "u":
        raise _Line("atomic operations take (u32 *) or (u64 *)")
    if _reg(m.group(2)) != 0 or _reg(m.group(9)) != 0:
        raise _Line("cmpxchg compares with and loads into r0")
    size = _size(bits, atomic=True)
    a.emit(BPF_STX | BPF_ATOMIC | size, base, _reg(m.group(11)), off, BPF_CMPXCHG)


def _c_llvm_xchg(a: _Assembler, m: re.Match[str]) -> None:
    # groups: 1 dk, 2 dn, 3 name, 4 width, 5 base, 6 pm, 7 num, 8 rest
    _dk, dn, name, width, base, pm, num, rest = m.groups()
    off = _int(num) * (-1 if pm == "-" else 1) if num is not None else 0
    size = BPF_W if width == "32_32" else BPF_DW
    rr = [_reg(r[1:]) for r in re.findall(r"[rw]\d+", rest)]
    if name == "cmpxchg":
        if len(rr) != 2 or rr[0] != 0 or _reg(dn) != 0:
            raise _Line("cmpxchg is r0 = cmpxchg_64(ptr, r0, src)")
        a.emit(BPF_STX | BPF_ATOMIC | size, _reg(base), rr[1], off, BPF_CMPXCHG)
    else:
        if len(rr) != 1 or rr[0] != _reg(dn):
            raise _Line("xchg is rS = xchg_64(ptr, rS)")
        a.emit(BPF_STX | BPF_ATOMIC | size, _reg(base), rr[0], off, BPF_XCHG)


def _c_quad(a: _Assembler, m: re.Match[str]) -> None:
    # .quad 0x...: one raw slot, its 64-bit little-endian value (the disassembler's
    # spelling for anything that is not a valid instruction)
    value = _int(m.group(1))
    if not 0 <= value < (1 << 64):
        raise _Line(".quad takes a 64-bit unsigned value")
    a.out.append(Instruction.decode(value.to_bytes(8, "little")))


def _c_load_acquire(a: _Assembler, m: re.Match[str]) -> None:
    # rD = load_acquire((u64 *)(rS + off)): here dst is the destination, src the address
    sign, bits, base, off = _mem(m, 3)
    if sign != "u":
        raise _Line("load_acquire takes (u8|u16|u32|u64 *)")
    a.emit(BPF_STX | BPF_ATOMIC | _size(bits), _reg(m.group(2)), base, off, BPF_LOAD_ACQ)


def _c_store_release(a: _Assembler, m: re.Match[str]) -> None:
    # store_release((u64 *)(rD + off), rS)
    sign, bits, base, off = _mem(m, 1)
    if sign != "u":
        raise _Line("store_release takes (u8|u16|u32|u64 *)")
    a.emit(BPF_STX | BPF_ATOMIC | _size(bits), base, _reg(m.group(7)), off, BPF_STORE_REL)


_PTR = rf"\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*\(\s*r(\d+){_OFF}\s*\)"
_R = r"([rw])(\d+)"
_C_FORMS: list[tuple[re.Pattern[str], Callable[[_Assembler, re.Match[str]], None]]] = [
    (
        re.compile(rf"if\s+{_R}\s*(==|!=|s>=|s<=|s>|s<|>=|<=|>|<|&)\s*(\S+?)\s+goto\s+{_TARGET}"),
        _c_jcc,
    ),
    (re.compile(rf"(goto|gotol|may_goto)\s+{_TARGET}"), _c_goto),
    (re.compile(r"callx\s+([rw])(\d+)"), _c_callx),
    (re.compile(r"call\s+(.+)"), _c_call),
    (re.compile(r"exit"), _c_exit),
    (re.compile(rf"lock\s+{_MEM}\s*(\+=|&=|\|=|\^=)\s*(%?[rw])(\d+)"), _c_lock),
    (
        re.compile(
            rf"{_R}\s*=\s*atomic(?:64)?_(fetch_add|fetch_and|fetch_or|fetch_xor|xchg|cmpxchg)"
            rf"\s*\(\s*\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*\(\s*r(\d+){_OFF}\s*\)\s*,\s*([rw])(\d+)\s*\)"
        ),
        _c_atomic_fetch_v,
    ),
    (
        re.compile(
            rf"{_R}\s*=\s*atomic(?:64)?_cmpxchg"
            rf"\s*\(\s*\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*\(\s*r(\d+){_OFF}\s*\)\s*,\s*([rw])(\d+)\s*,\s*([rw])(\d+)\s*\)"
        ),
        _c_atomic_cmpxchg_v,
    ),
    (
        re.compile(
            rf"{_R}\s*=\s*(xchg|cmpxchg)(32_32|_64)\s*\(\s*r(\d+){_OFF}\s*((?:,\s*[rw]\d+\s*)*)\)"
        ),
        _c_llvm_xchg,
    ),
    (re.compile(rf"{_R}\s*=\s*load_acquire\s*\(\s*{_PTR}\s*\)"), _c_load_acquire),
    (re.compile(rf"store_release\s*\(\s*{_PTR}\s*,\s*([rw])(\d+)\s*\)"), _c_store_release),
    (re.compile(rf"\.quad\s+({_NUM})"), _c_quad),
    (re.compile(rf"{_MEM}\s*=\s*(.+)"), _c_store),
    (re.compile(rf"{_R}\s*=\s*{_MEM}"), _c_load),
    (re.compile(rf"{_R}\s*=\s*\*\s*\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*skb\s*\[(.+)\]"), _c_ld_skb),
    (re.compile(rf"{_R}\s*=\s*({_NUM})\s*ll"), _c_ld_imm64),
    (
        re.compile(rf"{_R}\s*=\s*([a-z_]+)\s*\(\s*({_NUM})\s*(?:,\s*({_NUM})\s*)?\)\s*(?:ll)?"),
        _c_ld_pseudo,
    ),
    (re.compile(rf"{_R}\s*=\s*func\s*\(\s*([A-Za-z_.$][\w.$]*)\s*\)\s*(?:ll)?"), _c_ld_func_label),
    (re.compile(rf"ld_pseudo\s+r(\d+)\s*,\s*({_NUM})\s*,\s*({_NUM})"), _c_llvm_ld_pseudo),
    (re.compile(rf"{_R}\s*=\s*(le|be|bswap)(16|32|64)\s+{_R}"), _c_end),
    (re.compile(rf"{_R}\s*=\s*-\s*{_R}"), _c_neg),
    (re.compile(rf"{_R}\s*=\s*\(\s*s(8|16|32)\s*\)\s*{_R}"), _c_movsx),
    (
        re.compile(
            rf"r(\d+)\s*=\s*addr_space_cast\s*\(\s*r(\d+)\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\)"
        ),
        _c_addr_space_cast,
    ),
    (re.compile(rf"{_R}\s*(s/=|s%=|s>>=|<<=|>>=|\+=|-=|\*=|/=|%=|\|=|&=|\^=|=)\s*(.+)"), _c_alu),
]


# ----------------------------------------------------------------------------------
# bpf_conformance syntax: "mnemonic operand, operand, ..." with %rN registers.
# ----------------------------------------------------------------------------------

_CREG = r"%?r(\d+)"
_CMEM = rf"\[\s*{_CREG}\s*(?:([-+])\s*({_NUM}))?\s*\]"


def _ops(rest: str, count: int, word: str) -> list[str]:
    ops = [o.strip() for o in rest.split(",")] if rest.strip() else []
    if len(ops) != count or any(not o for o in ops):
        raise _Line(f"{word} takes {count} operand{'s' if count != 1 else ''}")
    return ops


def _creg(text: str) -> int:
    m = re.fullmatch(_CREG, text)
    if not m:
        raise _Line(f"expected a register, got {text!r}")
    return _reg(m.group(1))


def _cmem(text: str) -> tuple[int, int]:
    m = re.fullmatch(_CMEM, text)
    if not m:
        raise _Line(f"expected [%rN+off], got {text!r}")
    off = _int(m.group(3)) * (-1 if m.group(2) == "-" else 1) if m.group(3) else 0
    return _reg(m.group(1)), off


def _cimm(text: str) -> int:
    if not re.fullmatch(_NUM, text):
        raise _Line(f"expected a number, got {text!r}")
    return _int(text)


def _is_creg(text: str) -> bool:
    return re.fullmatch(_CREG, text) is not None


def _k_alu(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"(s?div|s?mod|add|sub|mul|or|and|lsh|rsh|xor|mov|arsh|neg)(32|64)?", word)
    assert m is not None
    name, width = m.groups()
    cls = BPF_ALU if width == "32" else BPF_ALU64
    off = 1 if name in ("sdiv", "smod") else 0
    op = _ALU_BY_NAME[name.removeprefix("s") if off else name]
    if op == BPF_NEG:
        (dst,) = _ops(rest, 1, word)
        a.emit(cls | BPF_NEG | BPF_K, _creg(dst))
        return
    dst, src = _ops(rest, 2, word)
    if _is_creg(src):
        a.emit(cls | op | BPF_X, _creg(dst), _creg(src), off, 0)
    else:
        a.emit(cls | op | BPF_K, _creg(dst), 0, off, _cimm(src))


def _k_movsx(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"movsx(8|16|32)(32|64)", word)
    assert m is not None
    dst, src = _ops(rest, 2, word)
    cls = BPF_ALU if m.group(2) == "32" else BPF_ALU64
    a.emit(cls | BPF_MOV | BPF_X, _creg(dst), _creg(src), int(m.group(1)), 0)


def _k_end(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"(le|be|b?swap)(16|32|64)", word)
    assert m is not None
    (dst,) = _ops(rest, 1, word)
    opcode = {"le": BPF_ALU | BPF_END | BPF_TO_LE, "be": BPF_ALU | BPF_END | BPF_TO_BE}.get(
        m.group(1), BPF_ALU64 | BPF_END | BPF_TO_LE
    )
    a.emit(opcode, _creg(dst), 0, 0, int(m.group(2)))


def _k_lddw(a: _Assembler, word: str, rest: str) -> None:
    dst, value = _ops(rest, 2, word)
    a.emit_ld_imm64(_creg(dst), 0, _cimm(value))


def _k_ldx(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"ldx(s?)(b|h|w|dw)", word)
    assert m is not None
    if m.group(1) and m.group(2) == "dw":
        raise _Line("there is no sign-extending 64-bit load")
    dst, mem = _ops(rest, 2, word)
    base, off = _cmem(mem)
    mode = BPF_MEMSX if m.group(1) else BPF_MEM
    a.emit(BPF_LDX | mode | _SIZE_BY_SUFFIX[m.group(2)], _creg(dst), base, off, 0)


def _k_st(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"st(x?)(b|h|w|dw)", word)
    assert m is not None
    mem, src = _ops(rest, 2, word)
    base, off = _cmem(mem)
    size = _SIZE_BY_SUFFIX[m.group(2)]
    if m.group(1):
        a.emit(BPF_STX | BPF_MEM | size, base, _creg(src), off, 0)
    else:
        a.emit(BPF_ST | BPF_MEM | size, base, 0, off, _cimm(src))


def _k_ldpkt(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"ld(abs|ind)(b|h|w)", word)
    assert m is not None
    size = _SIZE_BY_SUFFIX[m.group(2)]
    if m.group(1) == "abs":
        (imm,) = _ops(rest, 1, word)
        a.emit(BPF_LD | BPF_ABS | size, 0, 0, 0, _cimm(imm))
    else:
        src, imm = _ops(rest, 2, word)
        a.emit(BPF_LD | BPF_IND | size, 0, _creg(src), 0, _cimm(imm))


def _k_ja(a: _Assembler, word: str, rest: str) -> None:
    (target,) = _ops(rest, 1, word)
    if word == "ja":
        a.emit(BPF_JMP | BPF_JA, off=a.target(target, "off"))
    else:
        a.emit(BPF_JMP32 | BPF_JA, imm=a.target(target, "imm"))


def _k_jcc(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(r"(j[a-z]+?)(32)?", word)
    assert m is not None
    cls = BPF_JMP32 if m.group(2) else BPF_JMP
    op = _JMP_BY_NAME[m.group(1)]
    dst, src, target = _ops(rest, 3, word)
    off = a.target(target, "off")
    if _is_creg(src):
        a.emit(cls | op | BPF_X, _creg(dst), _creg(src), off, 0)
    else:
        a.emit(cls | op | BPF_K, _creg(dst), 0, off, _cimm(src))


def _k_exit(a: _Assembler, word: str, rest: str) -> None:
    _ops(rest, 0, word)
    a.emit(BPF_JMP | BPF_EXIT)


def _k_call(a: _Assembler, word: str, rest: str) -> None:
    parts = rest.split()
    if len(parts) == 1 and _is_creg(parts[0]):  # call %r2: callx, register in dst
        a.emit(BPF_JMP | BPF_CALL | BPF_X, _creg(parts[0]))
        return
    if len(parts) != 2:
        raise _Line("call takes a helper id, 'local <label>', 'runtime <id>' or a register")
    mode, target = parts
    if mode == "helper":
        if _is_creg(target):
            a.emit(BPF_JMP | BPF_CALL | BPF_X, _creg(target))
        else:
            a.emit(BPF_JMP | BPF_CALL, 0, CALL_HELPER, 0, _cimm(target))
    elif mode == "local":
        a.emit(BPF_JMP | BPF_CALL, 0, CALL_LOCAL, 0, a.target(target, "imm"))
    else:  # runtime: a kfunc / BTF-id call
        a.emit(BPF_JMP | BPF_CALL, 0, CALL_KFUNC, 0, _cimm(target))


def _k_callx(a: _Assembler, word: str, rest: str) -> None:
    (reg,) = _ops(rest, 1, word)
    a.emit(BPF_JMP | BPF_CALL | BPF_X, _creg(reg))


def _k_lock(a: _Assembler, word: str, rest: str) -> None:
    m = re.fullmatch(
        rf"(fetch\s+)?(add|and|or|xor|xchg|cmpxchg)(32|64)?\s+({_CMEM})\s*,\s*({_CREG})", rest
    )
    if not m:
        raise _Line("lock takes [fetch] add|and|or|xor|xchg|cmpxchg[32] [%rN+off], %rM")
    fetch, name, width, mem = m.group(1, 2, 3, 4)
    base, off = _cmem(mem)
    src = _creg(m.group(8))
    size = BPF_W if width == "32" else BPF_DW
    if name == "xchg":
        imm = BPF_XCHG
    elif name == "cmpxchg":
        imm = BPF_CMPXCHG
    else:
        imm = _ATOMIC_BY_NAME[name] | (BPF_FETCH if fetch else 0)
    a.emit(BPF_STX | BPF_ATOMIC | size, base, src, off, imm)


def _conformance_table() -> dict[str, Callable[[_Assembler, str, str], None]]:
    t: dict[str, Callable[[_Assembler, str, str], None]] = {}
    for stem in (
        "add",
        "sub",
        "mul",
        "div",
        "sdiv",
        "or",
        "and",
        "lsh",
        "rsh",
        "neg",
        "mod",
        "smod",
        "xor",
        "mov",
        "arsh",
    ):
        for sfx in ("", "32", "64"):
            t[stem + sfx] = _k_alu
    for frm in ("8", "16", "32"):
        for to in ("32", "64"):
            t[f"movsx{frm}{to}"] = _k_movsx
    for stem in ("le", "be", "swap", "bswap"):
        for w in ("16", "32", "64"):
            t[stem + w] = _k_end
    t["lddw"] = _k_lddw
    for sfx in ("b", "h", "w", "dw"):
        t["ldx" + sfx] = _k_ldx
        t["st" + sfx] = _k_st
        t["stx" + sfx] = _k_st
    for sfx in ("b", "h", "w"):
        t["ldxs" + sfx] = _k_ldx
        t["ldabs" + sfx] = _k_ldpkt
        t["ldind" + sfx] = _k_ldpkt
    t["ja"] = t["ja32"] = _k_ja
    for name in _JMP_BY_NAME:
        t[name] = t[name + "32"] = _k_jcc
    t["exit"] = _k_exit
    t["call"] = _k_call
    t["lock"] = _k_lock
    return t


_CONFORMANCE = _conformance_table()


def assemble(text: str) -> list[Instruction]:
    """Assemble ``text`` into instruction slots (an LD_IMM64 gives two).

    Raises :class:`AssemblerError` (1-based line, reason, the line's text) for anything
    it cannot assemble; never another exception.  The result is *encoded*, not
    *validated*: run :func:`netbpf.isa.validate.validate_program` for that.
    """
    if not isinstance(text, str):
        raise AssemblerError(0, f"expected assembly text (str), got {type(text).__name__}")
    a = _Assembler()
    for lineno, raw in enumerate(text.splitlines(), 1):
        try:
            a.feed(lineno, raw)
        except _Line as e:
            raise AssemblerError(lineno, str(e), raw) from None
        except (ValueError, KeyError, IndexError, OverflowError, AssertionError) as e:
            # Defensive: a pattern this assembler failed to anticipate.  Still an
            # AssemblerError naming the line, never a bare Python exception.
            raise AssemblerError(
                lineno, f"cannot assemble ({type(e).__name__}: {e})", raw
            ) from None
    return a.finish()
