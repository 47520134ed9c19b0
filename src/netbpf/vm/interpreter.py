"""The reference interpreter: one decoded instruction at a time, written to be read.

This engine is the definition the fast engine is tested against, so it favours the
obvious formulation of every instruction over speed.  Semantics that are not obvious
from RFC 9669 are documented in :mod:`netbpf.vm.runtime` (stack, calls, budget,
may_goto, tail calls) and next to the code below (division by zero, shifts, atomics,
legacy packet loads).

Frames: the interpreter keeps one register file and an explicit stack of the callers'
saved state, like the kernel's interpreter keeps a C stack of ``___bpf_prog_run`` calls.
Callbacks (``env.call_subprog`` from a helper) and tail calls start a fresh
:func:`enter` (a tail call continues in *this* engine, whatever engine the target was
loaded with).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netbpf import uapi
from netbpf.errors import InstructionLimitExceeded, NetbpfError, ProgramFault
from netbpf.vm.decode import Op, parse_func_value
from netbpf.vm.memory import MemoryFault
from netbpf.vm.runtime import (
    BPF_MAX_LOOPS,
    RunState,
    TailCall,
    Trap,
    helper_error,
    helper_name,
    missing_helper_message,
    resolve_func,
)

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.vm.engine import Executable

__all__ = ["enter"]

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF


def _s64(x: int) -> int:
    """Reinterpret an unsigned 64-bit value as signed."""
    return x - (1 << 64) if x >> 63 else x


def _s32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x >> 31 else x


def _sext(x: int, bits: int) -> int:
    """Sign-extend the low ``bits`` of ``x`` (result is a Python int, maybe negative)."""
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _tdiv(a: int, b: int) -> int:
    """C division: truncate toward zero."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _bswap(x: int, bits: int) -> int:
    return int.from_bytes((x & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


def alu(op: Op, dst: int, src: int) -> int:
    """The new value of dst for an ALU/ALU64 instruction; ``src`` is the second operand
    as an unsigned 64-bit value (a register, or imm sign-extended to 64 bits)."""
    o = op.op
    if op.kind == "alu64":
        if o == uapi.BPF_ADD:
            return (dst + src) & M64
        if o == uapi.BPF_SUB:
            return (dst - src) & M64
        if o == uapi.BPF_MUL:
            return (dst * src) & M64
        if o == uapi.BPF_DIV:
            # x / 0 = 0; signed INT_MIN / -1 wraps back to INT_MIN (the mask does it)
            if src == 0:
                return 0
            return dst // src if op.off == 0 else _tdiv(_s64(dst), _s64(src)) & M64
        if o == uapi.BPF_MOD:
            # x % 0 = x; signed INT_MIN % -1 = 0; the sign follows the dividend (C %)
            if src == 0:
                return dst
            if op.off == 0:
                return dst % src
            a, b = _s64(dst), _s64(src)
            return (a - b * _tdiv(a, b)) & M64
        if o == uapi.BPF_OR:
            return dst | src
        if o == uapi.BPF_AND:
            return dst & src
        if o == uapi.BPF_XOR:
            return dst ^ src
        if o == uapi.BPF_LSH:  # shift amounts are masked to 0..63
            return (dst << (src & 63)) & M64
        if o == uapi.BPF_RSH:
            return dst >> (src & 63)
        if o == uapi.BPF_ARSH:
            return (_s64(dst) >> (src & 63)) & M64
        if o == uapi.BPF_NEG:
            return -dst & M64
        if o == uapi.BPF_MOV:  # off 8/16/32: movsx, sign-extend the low bits of src
            return src if op.off == 0 else _sext(src, op.off) & M64
        raise Trap(f"unknown ALU64 operation {o:#x}")
    # 32-bit ALU: operate on the low 32 bits, zero-extend the result into 64 bits
    d, s = dst & M32, src & M32
    if o == uapi.BPF_ADD:
        return (d + s) & M32
    if o == uapi.BPF_SUB:
        return (d - s) & M32
    if o == uapi.BPF_MUL:
        return (d * s) & M32
    if o == uapi.BPF_DIV:
        if s == 0:
            return 0
        return d // s if op.off == 0 else _tdiv(_s32(d), _s32(s)) & M32
    if o == uapi.BPF_MOD:
        if s == 0:
            return d  # x % 0 = x, zero-extended from 32 bits
        if op.off == 0:
            return d % s
        a, b = _s32(d), _s32(s)
        return (a - b * _tdiv(a, b)) & M32
    if o == uapi.BPF_OR:
        return d | s
    if o == uapi.BPF_AND:
        return d & s
    if o == uapi.BPF_XOR:
        return d ^ s
    if o == uapi.BPF_LSH:  # shift amounts are masked to 0..31
        return (d << (s & 31)) & M32
    if o == uapi.BPF_RSH:
        return d >> (s & 31)
    if o == uapi.BPF_ARSH:
        return (_s32(d) >> (s & 31)) & M32
    if o == uapi.BPF_NEG:
        return -d & M32
    if o == uapi.BPF_MOV:
        return s if op.off == 0 else _sext(s, op.off) & M32
    raise Trap(f"unknown ALU operation {o:#x}")


def byteswap(op: Op, dst: int) -> int:
    """BPF_END.  ALU|TO_LE on a little-endian BPF target truncates to the width (a
    no-op for 64); ALU|TO_BE and ALU64 (bswap) reverse the bytes of the low ``imm`` bits.
    Both zero-extend into 64 bits."""
    bits = op.imm
    if op.opcode & 0x07 == uapi.BPF_ALU and not op.is_x:
        return dst & ((1 << bits) - 1)
    return _bswap(dst, bits)


def condition(op: Op, dst: int, src: int) -> bool:
    """Whether a conditional jump is taken.  JMP32 compares the low 32 bits only."""
    o = op.op
    if op.kind == "jmp32":
        dst, src = dst & M32, src & M32
        sd, ss = _s32(dst), _s32(src)
    else:
        sd, ss = _s64(dst), _s64(src)
    if o == uapi.BPF_JEQ:
        return dst == src
    if o == uapi.BPF_JNE:
        return dst != src
    if o == uapi.BPF_JGT:
        return dst > src
    if o == uapi.BPF_JGE:
        return dst >= src
    if o == uapi.BPF_JLT:
        return dst < src
    if o == uapi.BPF_JLE:
        return dst <= src
    if o == uapi.BPF_JSET:
        return dst & src != 0
    if o == uapi.BPF_JSGT:
        return sd > ss
    if o == uapi.BPF_JSGE:
        return sd >= ss
    if o == uapi.BPF_JSLT:
        return sd < ss
    if o == uapi.BPF_JSLE:
        return sd <= ss
    raise Trap(f"unknown jump operation {o:#x}")


@dataclass
class _Caller:
    """What a bpf-to-bpf call saves and the matching exit restores."""

    exe: Executable
    return_pc: int
    regs: list[int]  # r0..r10 at the call
    loops: int
    depth: int


def _fault(exc: BaseException, index: int, exe: Executable) -> NetbpfError:
    """Turn anything raised while executing slot ``index`` into a ProgramFault."""
    name = exe.name
    if isinstance(exc, ProgramFault):
        return exc  # already names its instruction (e.g. from inside a callback)
    if isinstance(exc, Trap):
        cls = InstructionLimitExceeded if exc.limit else ProgramFault
        return cls(index, exc.reason, program=name)
    if isinstance(exc, MemoryFault):
        return ProgramFault(index, exc.reason, program=name)
    if isinstance(exc, NetbpfError):
        return ProgramFault(index, str(exc), program=name)
    return ProgramFault(index, f"internal VM error: {exc.__class__.__name__}: {exc}", program=name)


def enter(
    st: RunState,
    exe: Executable,
    entry: int,
    args: tuple[int, int, int, int, int],
    depth: int,
    *,
    callback: bool = False,
) -> int:
    """Run ``exe`` from slot ``entry`` in a new frame at call depth ``depth`` with r1-r5 =
    ``args``; return r0 when that frame exits."""
    try:
        st.check_call(depth)
    except Trap as exc:
        raise _fault(exc, entry, exe) from None
    regs = [0] * 11
    regs[1:6] = args
    return _run(st, exe, entry, regs, depth)


def _run(st: RunState, exe: Executable, pc: int, regs: list[int], depth: int) -> int:
    env = st.env
    mem = env.mem
    ops = exe.program.ops
    regs[10] = st.frame(depth).fp
    loops = BPF_MAX_LOOPS  # this frame's may_goto budget
    callers: list[_Caller] = []
    op: Op | None = None
    try:
        while True:
            op = ops[pc]
            assert op is not None  # decode guarantees no jump lands on a 2nd LD_IMM64 slot
            st.n += 1
            kind = op.kind
            next_pc = pc + 1

            if kind == "alu64" or kind == "alu":
                src = regs[op.src] if op.is_x else op.imm & M64
                regs[op.dst] = alu(op, regs[op.dst], src)

            elif kind == "end":
                regs[op.dst] = byteswap(op, regs[op.dst])

            elif kind == "ld_imm64":
                regs[op.dst] = op.value
                next_pc = pc + 2

            elif kind == "ldx" or kind == "ldxsx":
                value = mem.load((regs[op.src] + op.off) & M64, op.size)
                if kind == "ldxsx":
                    value = _sext(value, op.size * 8) & M64
                regs[op.dst] = value

            elif kind == "st":
                # imm is sign-extended to 64 bits, then truncated to the store size
                mem.store((regs[op.dst] + op.off) & M64, op.size, op.imm & M64)

            elif kind == "stx":
                mem.store((regs[op.dst] + op.off) & M64, op.size, regs[op.src])

            elif kind == "atomic":
                _atomic(op, regs, mem)

            elif kind == "ja" or kind == "jmp" or kind == "jmp32" or kind == "may_goto":
                if kind == "ja":
                    taken = True
                elif kind == "may_goto":
                    # the kernel's countdown: fall through while budget remains
                    taken = loops == 0
                    if not taken:
                        loops -= 1
                else:
                    src = regs[op.src] if op.is_x else op.imm & M64
                    taken = condition(op, regs[op.dst], src)
                if taken:
                    next_pc = op.target
                    if next_pc <= pc and st.n > st.limit:
                        raise Trap(f"instruction limit of {st.limit} exceeded", limit=True)

            elif kind == "ld_abs" or kind == "ld_ind":
                if env.skb_load is None:
                    raise Trap("LD_ABS/LD_IND needs a socket buffer; this run has none")
                offset = op.imm if kind == "ld_abs" else _s32(regs[op.src] + op.imm)
                value = env.skb_load(offset, op.size)
                if value is None:
                    # out of bounds: the kernel's rewrite does "r0 = 0; exit"
                    regs[0] = 0
                    kind = "exit"
                else:
                    regs[0] = value & ((1 << (8 * op.size)) - 1)

            elif kind == "helper":
                r0 = _call_helper(st, op.imm, regs, depth)
                if isinstance(r0, TailCall):
                    if st.tail_call_allowed():
                        # replace this frame by the target program; callers stay
                        ctx = regs[1]
                        exe = r0.target
                        ops = exe.program.ops
                        regs = [0] * 11
                        regs[1] = ctx
                        regs[10] = st.frame(depth).fp
                        loops = BPF_MAX_LOOPS
                        pc = 0
                        continue
                    regs[0] = r0.fail_r0 & M64
                else:
                    regs[0] = r0

            elif kind == "call" or kind == "callx":
                if kind == "call":
                    target_exe, target = exe, op.target
                else:
                    value = regs[op.value]
                    if parse_func_value(value) is None:
                        # uBPF/bpf_conformance: callx through a register holding a helper id
                        r0 = _call_helper(st, value, regs, depth)
                        if isinstance(r0, TailCall):
                            raise Trap("bpf_tail_call through callx is not supported")
                        regs[0] = r0
                        pc = next_pc
                        continue
                    target_exe, target = resolve_func(value)
                st.check_call(depth + 1)
                callers.append(_Caller(exe, next_pc, regs, loops, depth))
                new = [0] * 11
                new[1:6] = regs[1:6]
                depth += 1
                new[10] = st.frame(depth).fp
                regs, loops, exe = new, BPF_MAX_LOOPS, target_exe
                ops = exe.program.ops
                pc = target
                continue

            if kind == "exit":
                if not callers:
                    return regs[0]
                r0 = regs[0]
                caller = callers.pop()
                exe, regs, loops, depth = caller.exe, caller.regs, caller.loops, caller.depth
                ops = exe.program.ops
                regs[0] = r0
                next_pc = caller.return_pc

            pc = next_pc
    except Exception as exc:
        if isinstance(exc, TailCall):  # pragma: no cover - handled at the call
            raise
        raise _fault(exc, pc, exe) from None


def _call_helper(st: RunState, helper_id: int, regs: list[int], depth: int) -> int | TailCall:
    """Call helper ``helper_id``; return r0, or the TailCall the helper requested."""
    env = st.env
    fn = env.helpers.get(helper_id)
    if fn is None:
        raise Trap(missing_helper_message(helper_id))
    st.depth = depth
    try:
        return int(fn(env, regs[1], regs[2], regs[3], regs[4], regs[5])) & M64
    except TailCall as tc:
        return tc
    except ProgramFault:
        raise
    except Exception as exc:
        raise Trap(helper_error(helper_name(helper_id), exc)) from None


def _atomic(op: Op, regs: list[int], mem: object) -> None:
    """BPF_ATOMIC.  The read-modify-write forms always store (so they fault on read-only
    memory even when cmpxchg does not match, like a locked x86 cmpxchg); the fetch forms
    and xchg put the old value, zero-extended from the operand size, in src; cmpxchg
    compares r0 (its low 32 bits for the 32-bit form) and puts the old value in r0."""
    from netbpf.vm.memory import AddressSpace

    assert isinstance(mem, AddressSpace)
    size = op.size
    mask = (1 << (8 * size)) - 1
    a = op.op
    if a == 0x100:  # load_acquire: dst = *(size *)(src + off)
        regs[op.dst] = mem.load((regs[op.src] + op.off) & M64, size)
        return
    addr = (regs[op.dst] + op.off) & M64
    if a == 0x110:  # store_release: *(size *)(dst + off) = src
        mem.store(addr, size, regs[op.src] & mask)
        return
    old = mem.load(addr, size)
    val = regs[op.src] & mask
    base = a & ~uapi.BPF_FETCH
    if a == uapi.BPF_CMPXCHG:
        new = val if old == regs[0] & mask else old
    elif a == uapi.BPF_XCHG:
        new = val
    elif base == uapi.BPF_ADD:
        new = (old + val) & mask
    elif base == uapi.BPF_OR:
        new = old | val
    elif base == uapi.BPF_AND:
        new = old & val
    elif base == uapi.BPF_XOR:
        new = old ^ val
    else:  # pragma: no cover - decode refuses anything else
        raise Trap(f"unknown atomic operation {a:#x}")
    mem.store(addr, size, new)
    if a == uapi.BPF_CMPXCHG:
        regs[0] = old
    elif a & uapi.BPF_FETCH:
        regs[op.src] = old
