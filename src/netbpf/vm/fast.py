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

import struct
import sys
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netbpf.errors import InstructionLimitExceeded, NetbpfError, ProgramFault
from netbpf.vm._fastgen import Generator
from netbpf.vm.decode import parse_func_value
from netbpf.vm.memory import MemoryFault, Region
from netbpf.vm.runtime import (
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

__all__ = ["FastCode", "convert", "enter", "translate"]

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF
SB64 = 1 << 63
SB32 = 1 << 31


_STRUCTS = {n: struct.Struct(f"<{c}") for n, c in ((2, "H"), (4, "I"), (8, "Q"))}


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
class FastCode:
    """The translation of one Executable."""

    source: str
    filename: str
    funcs: dict[int, Any]
    #: generated line number -> (instruction index or -1, instructions executed since
    #: ``n`` was last updated at that line: added to ``n`` when a fault happens there)
    line_map: list[tuple[int, int]]
    exe: Any  # weak proxy of the Executable
    #: the compiled namespace (keeps the functions' globals alive)
    namespace: dict[str, Any]


_CODES: weakref.WeakValueDictionary[str, FastCode] = weakref.WeakValueDictionary()


def translate(exe: Executable, *, check_ranges: bool = False) -> FastCode:
    """Translate ``exe`` into Python and compile it (once; the result is cached on the
    Executable by the engine).  ``check_ranges`` (tests only) makes the code assert the
    value intervals the generator relied on."""
    gen = Generator(exe, check_ranges=check_ranges)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # deep inlining recurses per block
    try:
        source = gen.translate()
    finally:
        sys.setrecursionlimit(limit)
    filename = f"<netbpf-fast {exe.uid} {exe.name}>"
    line_map = [(-1, 0)] + [(idx, extra) for _, idx, extra in gen.lines]  # 1-based lines
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
        "_Region": Region,
        **{f"_U{n}": st.unpack_from for n, st in _STRUCTS.items()},
        **{f"_P{n}": st.pack_into for n, st in _STRUCTS.items()},
        "__builtins__": {"int": int, "AssertionError": AssertionError},
    }
    exec(compile(source, filename, "exec"), ns)
    funcs = {e: ns[f"f_{e}"] for e in exe.program.entries}
    code = FastCode(source, filename, funcs, line_map, weakref.proxy(exe), ns)
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
            raise Trap(missing_helper_message(value))
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
        raise convert(exc, st, exe, entry) from None
    st.n = n
    return r0  # type: ignore[no-any-return]


def convert(exc: Exception, st: RunState, exe: Executable, entry: int) -> NetbpfError:
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
    lineno = last.tb_lineno
    idx, extra = code.line_map[lineno] if 0 <= lineno < len(code.line_map) else (-1, 0)
    name = code.exe.name
    op = code.exe.program.ops[idx] if idx >= 0 else None
    if op is not None and op.kind not in ("helper", "callx"):
        # helpers and callx synchronised st.n themselves (callbacks may have counted)
        n_local = last.tb_frame.f_locals.get("n")
        if isinstance(n_local, int):
            st.n = n_local + extra
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
