"""Run-time machinery shared by the engines: the per-run state, stack frames, tail calls,
callbacks, and the fast memory accessors.

Semantics both engines implement identically (and the reasons):

* **Registers** are unsigned 64-bit Python ints.
* **Stack.** Every frame (the program's, each bpf-to-bpf call's, each callback's, a
  tail-called program's) has its own 512-byte region, zero-filled when the frame is
  entered.  The kernel's stack is uninitialised, but the verifier refuses programs that
  read stack bytes they did not write, so zero-filling changes nothing for a verified
  program and makes unverified runs deterministic.  Frame ``d`` (1-based) always uses
  the same region, so ``r10`` of a frame is stable across runs on one environment.
* **Calls.** At most :data:`MAX_CALL_FRAMES` (8) frames; a bpf-to-bpf call, a ``callx``
  or a callback that would make a 9th faults.  The callee starts with r1-r5 = the
  caller's, r0 and r6-r9 = 0, r10 = its frame top; after it returns the caller has r0 =
  the callee's r0 and its own r1-r9 unchanged (the kernel's JIT leaves r1-r5 clobbered,
  but the verifier refuses reading them, so keeping them is indistinguishable).
* **Helpers** are called as ``fn(env, r1, r2, r3, r4, r5)``; r0 = result & 2**64-1;
  r1-r5 are left as they were (the kernel scrambles them; the verifier forbids reading
  them afterwards).  A helper reports a sandbox violation by raising MemoryFault (or any
  NetbpfError): the run faults at the call instruction.
* **LD_ABS / LD_IND** read the skb through ``env.skb_load(offset, size)`` (IND: offset
  = the signed 32-bit sum of the source register's low 32 bits and imm); a None answer
  ends the current frame with r0 = 0, as the kernel's rewrite (``r0 = 0; exit``) does.
  The kernel also requires the ctx in r6 and treats r1-r5 as clobbered afterwards (the
  verifier refuses reading them); we need neither (``env`` knows the skb) and leave
  r1-r5 as they were.
* **Instruction budget.** ``env.insn_count`` counts every executed instruction (an
  LD_IMM64 counts once).  The budget (``env.insn_limit``) is checked at every taken
  backward jump, every call (bpf-to-bpf, callx, callback) and every tail call: the run
  faults with InstructionLimitExceeded at the first such point where more than
  ``insn_limit`` instructions have executed.  Checking there (not after every
  instruction) keeps the fast engine fast and is still a hard bound: between two
  checks a program can only run forward, at most (frames x program length) slots.
* **may_goto** keeps a per-frame counter starting at BPF_MAX_LOOPS (8M); each execution
  falls through while the counter is non-zero (and decrements it) and jumps once it is
  exhausted, as the kernel's verifier-inserted countdown does on JITs without the timed
  variant.  (x86-64 and arm64 JITs since 6.14 use a *timed* may_goto: a 0xffff countdown
  refilled until the loop has run for about 250 ms.  A deterministic simulator cannot
  follow wall time, so the count is ours; only programs that exhaust the budget can
  tell, and those are about 8M iterations long.)
* **Tail calls.** A helper raises :class:`TailCall`; the engine replaces the running
  frame with the target program (same frame depth, fresh zeroed stack, r1 = the ctx the
  helper got as its first argument, every other register 0).  When the target exits,
  control returns to the frame's caller (as on the kernel's JIT).  After
  :data:`MAX_TAIL_CALL_CNT` (33) successful tail calls in one run, further tail calls
  fail: execution continues after the call with r0 = ``TailCall.fail_r0``.
"""

from __future__ import annotations

import struct
import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netbpf.errors import NetbpfError
from netbpf.uapi import MAX_BPF_STACK, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT
from netbpf.vm.decode import parse_func_value
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.vm.engine import Executable
    from netbpf.vm.env import RunEnv

__all__ = [
    "BPF_MAX_LOOPS",
    "MAX_CALL_FRAMES",
    "MAX_TAIL_CALL_CNT",
    "STACK_SIZE",
    "RunState",
    "StackFrame",
    "TailCall",
    "Trap",
]

M64 = 0xFFFF_FFFF_FFFF_FFFF
STACK_SIZE = MAX_BPF_STACK
#: kernel include/linux/bpf.h BPF_MAX_LOOPS: the may_goto budget of one frame
BPF_MAX_LOOPS = 8 * 1024 * 1024
_ZERO_STACK = bytes(STACK_SIZE)
_LITTLE = sys.byteorder == "little"


class TailCall(Exception):
    """Raised by a helper (``bpf_tail_call``) to replace the running program with
    ``target`` (an :class:`~netbpf.vm.engine.Executable`).

    The helper decides whether there *is* a target (prog array slot filled); the engine
    owns the per-run count: past :data:`MAX_TAIL_CALL_CNT` tail calls the call fails and
    the program continues after it with ``r0 = fail_r0`` (the kernel's interpreter leaves
    r0 as it was and the verifier treats it as unknown; any value is faithful)."""

    def __init__(self, target: Executable, *, fail_r0: int = 0) -> None:
        super().__init__(target)
        self.target = target
        self.fail_r0 = fail_r0


class Trap(Exception):
    """A fault detected by engine code itself (not by memory or a helper); the boundary
    turns it into ProgramFault (or InstructionLimitExceeded) with the instruction index."""

    def __init__(self, reason: str, *, limit: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.limit = limit


class StackFrame:
    """The 512-byte stack region of one call depth, with typed views for the fast
    engine's r10-relative accesses (aligned ``*(u64 *)(r10 - 8)`` becomes ``q[63]``)."""

    __slots__ = ("b", "buf", "fp", "h", "i", "q", "region")

    def __init__(self, mem: AddressSpace, depth: int) -> None:
        self.buf = bytearray(STACK_SIZE)
        self.region = Region(f"stack[{depth}]", self.buf, kind="stack")
        self.fp = mem.map(self.region) + STACK_SIZE
        view = memoryview(self.buf)
        self.b = self.buf
        # Native-endian casts are only the kernel's byte order on little-endian hosts;
        # elsewhere the fast engine uses int.from_bytes (see fast.py).
        self.h = view.cast("H") if _LITTLE else None
        self.i = view.cast("I") if _LITTLE else None
        self.q = view.cast("Q") if _LITTLE else None

    def zero(self) -> StackFrame:
        self.buf[:] = _ZERO_STACK
        return self


# -- executables by uid (for code addresses) --------------------------------------------

_EXECUTABLES: weakref.WeakValueDictionary[int, Executable] = weakref.WeakValueDictionary()
_next_uid = 1


def register_executable(exe: Executable) -> int:
    """Give ``exe`` a uid for its code addresses (BPF_PSEUDO_FUNC values)."""
    global _next_uid
    uid = _next_uid
    _next_uid = (_next_uid + 1) & 0xFF_FFFF or 1
    _EXECUTABLES[uid] = exe
    return uid


def resolve_func(value: int) -> tuple[Executable, int]:
    """The (executable, entry slot) a code address names; MemoryFault when it names none."""
    parsed = parse_func_value(value)
    if parsed is not None:
        exe = _EXECUTABLES.get(parsed[0])
        if exe is not None and parsed[1] in exe.program.func_entries:
            return exe, parsed[1]
    raise MemoryFault(f"{value & M64:#x} is not the address of a BPF function")


# -- fast accessors -----------------------------------------------------------------------

_U = {
    1: struct.Struct("<B"),
    2: struct.Struct("<H"),
    4: struct.Struct("<I"),
    8: struct.Struct("<Q"),
}


def make_accessors(mem: AddressSpace) -> dict[str, Callable[..., Any]]:
    """Load/store functions over ``mem`` specialised per size: plain :class:`Region`\\ s are
    accessed inline with the same bounds and permission checks as Region.load/store;
    anything else (the computed ctx, subclasses) goes through the region's own methods."""
    get = mem.slots.get
    out: dict[str, Callable[..., Any]] = {}
    for size, st in _U.items():
        unpack, pack = st.unpack_from, st.pack_into
        mask = (1 << (8 * size)) - 1

        def ld(a: int, _size: int = size, _unpack: Any = unpack) -> int:
            r = get(a >> 32)
            if r.__class__ is Region:
                o = a & 0xFFFF_FFFF
                if r.lo <= o and o + _size <= r.hi:  # type: ignore[union-attr]
                    return _unpack(r.buf, o)[0]  # type: ignore[union-attr]
            return mem.load(a, _size)

        def sto(a: int, v: int, _size: int = size, _pack: Any = pack, _mask: int = mask) -> None:
            r = get(a >> 32)
            if r.__class__ is Region and r.writable:  # type: ignore[union-attr]
                o = a & 0xFFFF_FFFF
                if r.lo <= o and o + _size <= r.hi:  # type: ignore[union-attr]
                    _pack(r.buf, o, v & _mask)  # type: ignore[union-attr]
                    return
            mem.store(a, _size, v & _mask)

        out[f"ld{size}"] = ld
        out[f"st{size}"] = sto
    return out


# -- per-run state ------------------------------------------------------------------------


class RunState:
    """What one run (and the callbacks and tail calls inside it) shares.

    Cached on the :class:`RunEnv` (``env.vm``) between runs so repeated runs do not
    reallocate stacks or accessors; a nested run on the same env while one is active
    gets a fresh state."""

    __slots__ = (
        "accessors",
        "active",
        "depth",
        "engine",
        "env",
        "limit",
        "mem",
        "n",
        "stacks",
        "tail_calls",
    )

    def __init__(self, env: RunEnv) -> None:
        self.env = env
        self.mem = env.mem
        self.stacks: list[StackFrame | None] = [None] * (MAX_CALL_FRAMES + 1)
        self.accessors = make_accessors(env.mem)
        self.active = False
        self.n = 0
        self.limit = 0
        self.depth = 1
        self.tail_calls = 0
        self.engine: Any = None

    @classmethod
    def acquire(cls, env: RunEnv, engine: Any) -> RunState:
        """The state for a new run on ``env``: the cached one when it is idle and still
        matches the env's address space, else a fresh one."""
        st = env.vm
        if not isinstance(st, RunState) or st.active or st.env is not env or st.mem is not env.mem:
            st = cls(env)
        st.active = True
        st.engine = engine
        st.n = 0
        st.limit = env.insn_limit
        st.depth = 1
        st.tail_calls = 0
        return st

    def frame(self, depth: int) -> StackFrame:
        """The zero-filled stack frame for call depth ``depth`` (1-based)."""
        f = self.stacks[depth]
        if f is None or self.mem.slots.get(f.region.base >> 32) is not f.region:
            # first use, or the owner of the address space unmapped our frame between
            # runs (a SimAddressSpace run scope): map a fresh one
            f = self.stacks[depth] = StackFrame(self.mem, depth)
            return f
        f.buf[:] = _ZERO_STACK
        return f

    def check_call(self, depth: int) -> None:
        """The checks every new frame passes: depth and budget."""
        if depth > MAX_CALL_FRAMES:
            raise Trap(f"call stack too deep: more than {MAX_CALL_FRAMES} frames")
        if self.n > self.limit:
            raise Trap(f"instruction limit of {self.limit} exceeded", limit=True)

    def tail_call_allowed(self) -> bool:
        if self.tail_calls >= MAX_TAIL_CALL_CNT:
            return False
        if self.n > self.limit:
            raise Trap(f"instruction limit of {self.limit} exceeded", limit=True)
        self.tail_calls += 1
        return True

    def call_subprog(self, value: int, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """Run the BPF function at code address ``value`` in a new frame (one deeper than
        the helper's caller) and return its r0.  Faults inside it propagate as
        ProgramFault naming the callback's instruction."""
        exe, entry = resolve_func(value)
        depth = self.depth + 1
        saved = self.depth
        try:
            return self.engine.enter(self, exe, entry, (r1, r2, r3, r4, r5), depth, callback=True)
        finally:
            self.depth = saved


def helper_error(name: str, exc: BaseException) -> str:
    """The fault reason for an exception a helper raised."""
    if isinstance(exc, MemoryFault):
        return f"helper {name}: {exc.reason}"
    if isinstance(exc, NetbpfError):
        return f"helper {name}: {exc}"
    return f"internal error in helper {name}: {exc.__class__.__name__}: {exc}"


#: the helper id of the trap netbpf's loader puts where the verifier found no path
#: (netbpf.sim.verify.sanitize_dead_code; Linux patches such code out the same way):
#: no program type has this helper, so reaching it faults with its own message
DEAD_CODE_HELPER_ID = -1


def missing_helper_message(helper_id: int) -> str:
    """The fault of a call to a helper the program's environment does not have."""
    if helper_id == DEAD_CODE_HELPER_ID:
        return "dead code reached (the verifier found no path to this instruction)"
    return f"unknown helper {helper_name(helper_id)} (not available to this program)"


def helper_name(helper_id: int) -> str:
    from netbpf.uapi import HELPER_NAMES

    n = HELPER_NAMES.get(helper_id)
    return f"bpf_{n}#{helper_id}" if n else f"#{helper_id}"
