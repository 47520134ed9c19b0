"""Register and state text exactly as Linux 6.18's verifier log prints them.

``R1=ctx() R2=pkt(off=8,r=8) R0=scalar(smin=smin32=0,smax=umax=smax32=umax32=255,
var_off=(0x0; 0xff)) fp-8=mmmmmmmm``: the kernel's print_reg_state /
print_verifier_state (kernel/bpf/log.c), including its merging of equal bounds
(``smax=umax=255``) and its decimal-or-hex rule for numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netbpf.verifier.regs import (
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    Reg,
    T,
    s64,
    type_str,
)
from netbpf.verifier.tnum import U32, U64, tstr

if TYPE_CHECKING:
    from netbpf.verifier.state import FuncState, StackSlot, VState

__all__ = ["reg_str", "slot_str", "snum", "state_str", "unum"]

#: slot type codes (the kernel's STACK_*, in its enum order) and the character the log
#: prints for each byte of that type; netbpf creates only the first four (dynptrs,
#: iterators and IRQ flags are not modelled) but keeps the kernel's full table
STACK_INVALID, STACK_SPILL, STACK_MISC, STACK_ZERO, STACK_DYNPTR, STACK_ITER, STACK_IRQ_FLAG = (
    range(7)
)
SLOT_CHARS = "?rm0dif"


def snum(v: int) -> str:
    """verbose_snum: decimal within the s16 range, else ``%#llx`` of the u64."""
    v = s64(v)
    if -32768 <= v <= 32767:
        return str(v)
    return f"{v & U64:#x}"


def unum(v: int) -> str:
    """verbose_unum: decimal up to 65535, else hex."""
    v &= U64
    if v <= 0xFFFF:
        return str(v)
    return f"{v:#x}"


def _s32_val(v: int) -> int:
    """How the log stores a signed 32-bit bound: as s64 when printed in decimal,
    else as the u32 bit pattern (so it prints, and merges with umin32/umax32, as a
    32-bit hex number)."""
    return v & U64 if -32768 <= v <= 32767 else v & U32


def _ranges(r: Reg) -> list[str]:
    items = [
        ["smin", r.smin & U64, r.smin == S64_MIN],
        ["smax", r.smax & U64, r.smax == S64_MAX],
        ["umin", r.umin, r.umin == 0],
        ["umax", r.umax, r.umax == U64],
        ["smin32", _s32_val(r.s32_min), r.s32_min == S32_MIN],
        ["smax32", _s32_val(r.s32_max), r.s32_max == S32_MAX],
        ["umin32", r.u32_min, r.u32_min == 0],
        ["umax32", r.u32_max, r.u32_max == U32],
    ]
    out = []
    n = len(items)
    for i in range(n):
        name1, val1, omit1 = items[i]
        if omit1:
            continue
        neg1 = name1[0] == "s" and s64(val1) < 0
        names = [name1]
        for j in range(i + 2, n, 2):
            name2, val2, omit2 = items[j]
            if omit2 or val2 != val1:
                continue
            neg2 = name2[0] == "s" and s64(val2) < 0
            if neg2 != neg1:
                continue
            items[j][2] = True
            names.append(name2)
        num = snum(val1) if name1[0] == "s" else unum(val1)
        out.append("=".join(names) + "=" + num)
    return out


def reg_str(r: Reg, frameno: int) -> str:
    """print_reg_state: the text after ``R1=``."""
    t = r.type
    if t == T.SCALAR and r.mask == 0:
        return snum(r.value)
    s = type_str(t)
    base = t & T.BASE_MASK
    if base == T.PTR_TO_ARENA:
        return s
    if base == T.PTR_TO_STACK:
        if frameno != r.frameno:
            s += f"[{r.frameno}]"
        if r.mask == 0:
            return s + snum(r.value + r.off)
    if base == T.PTR_TO_BTF_ID:
        s += r.btf_name
    parts: list[str] = []
    if r.id:
        rid = r.id & ~(3 << 30)
        parts.append(f"id={rid}{r.off:+d}" if r.id >> 31 else f"id={rid}")
    if r.ref_obj_id and base in _REFCOUNTED:
        parts.append(f"ref_obj_id={r.ref_obj_id}")
    if base in (T.CONST_PTR_TO_MAP, T.PTR_TO_MAP_VALUE, T.PTR_TO_MAP_KEY) and r.map is not None:
        if r.map.name:
            parts.append(f"map={r.map.name}")
        parts.append(f"ks={r.map.key_size},vs={r.map.value_size}")
    if t != T.SCALAR and r.off:
        parts.append("off=" + snum(r.off))
    if base in (T.PTR_TO_PACKET, T.PTR_TO_PACKET_META):
        parts.append("r=" + unum(r.range))
    if base == T.PTR_TO_MEM:
        parts.append("sz=" + unum(r.mem_size))
    if r.mask == 0:
        if r.value:
            parts.append("imm=" + snum(r.value))
    else:
        parts.extend(_ranges(r))
        if r.mask != U64 or r.value:
            parts.append("var_off=" + tstr((r.value, r.mask)))
    return s + "(" + ",".join(parts) + ")"


#: types whose ref_obj_id is printed (reg_type_may_be_refcounted_or_null + mem)
_REFCOUNTED = frozenset(
    {T.PTR_TO_SOCKET, T.PTR_TO_TCP_SOCK, T.PTR_TO_MEM, T.PTR_TO_BTF_ID, T.PTR_TO_SOCK_COMMON}
)


def slot_str(slot: StackSlot, frameno: int) -> str:
    """One stack slot as print_verifier_state prints it after ``fp-N=``.

    Byte by byte (``types[0]``, the highest address, first) unless the slot's lowest
    byte holds a spill: then the bytes above the spilled part, followed by the spilled
    register, so a 4-byte spill of 0 into a fresh slot is ``????0`` and a 2-byte
    spill above misc bytes ``mmmmmmscalar(...)``; a full 8-byte spill is just the
    register. Any other slot prints only its byte characters (``????00??``; a store
    over part of a spill has already turned the spilled bytes into misc ones).
    """
    types = slot.types
    if types[7] == STACK_SPILL:
        top = types.index(STACK_SPILL)
        return "".join(SLOT_CHARS[t] for t in types[:top]) + reg_str(slot.spilled, frameno)
    return "".join(SLOT_CHARS[t] for t in types)


def frame_str(
    f: FuncState,
    *,
    regs: set[int] | None = None,
    slots: set[int] | None = None,
    refs: list[int] | None = None,
) -> str:
    """print_verifier_state for one frame: `` R1=ctx() R10=fp0 fp-8=mmmmmmmm``; only
    the registers/slots named in ``regs``/``slots`` when given (the "scratched" ones).
    A callee's frame starts with `` frame1:`` (its number), as the kernel marks every
    frame but the main one."""
    out: list[str] = [f" frame{f.frameno}:"] if f.frameno else []
    for i, r in enumerate(f.regs):
        if r.type == T.NOT_INIT:
            continue
        if regs is not None and i not in regs:
            continue
        out.append(f" R{i}={reg_str(r, f.frameno)}")
    for spi, slot in enumerate(f.stack):
        types = slot.types
        if not any(types):
            continue
        if slots is not None and spi not in slots:
            continue
        out.append(f" fp{-(spi + 1) * 8}=" + slot_str(slot, f.frameno))
    if refs:
        out.append(" refs=" + ",".join(str(i) for i in refs))
    if f.in_callback_fn:
        out.append(" cb")
    return "".join(out)


def state_str(st: VState, *, scratched: bool = False) -> str:
    f = st.frames[-1]
    refs = [r.id for r in st.refs] if st.refs else None
    if scratched:
        return frame_str(f, regs=st.scratch_regs, slots=st.scratch_slots, refs=refs)
    return frame_str(f, refs=refs)
