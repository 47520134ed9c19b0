"""Verifier states: the registers and stack of every active call frame, acquired
references and held locks, on one path through the program.

Mirrors the kernel's ``bpf_func_state`` / ``bpf_verifier_state``: the stack is kept per
8-byte slot with one type byte per byte (``STACK_INVALID``/``MISC``/``ZERO``/``SPILL``)
and the spilled register's full state, so a spilled pointer comes back as the same
pointer and a spilled bounded scalar keeps its bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from netbpf.verifier.fmt import STACK_INVALID, STACK_MISC, STACK_SPILL, STACK_ZERO
from netbpf.verifier.regs import Reg, T

__all__ = ["FuncState", "RefState", "StackSlot", "VState"]

MAX_BPF_STACK = 512
REG_SIZE = 8


class StackSlot:
    """8 bytes of stack: ``types[k]`` describes the byte at ``slot_top - k`` (index 0 is
    the highest address, as in the kernel) and ``spilled`` the register stored there
    when ``types[7] == STACK_SPILL``."""

    __slots__ = ("spilled", "types")

    def __init__(self) -> None:
        self.types = bytearray(REG_SIZE)
        self.spilled = Reg()

    def copy(self) -> StackSlot:
        s = StackSlot.__new__(StackSlot)
        s.types = bytearray(self.types)
        s.spilled = self.spilled.copy()
        return s

    def is_spill(self) -> bool:
        return self.types[7] == STACK_SPILL

    def is_spilled_scalar(self) -> bool:
        return self.types[7] == STACK_SPILL and self.spilled.type == T.SCALAR


class FuncState:
    """One call frame: r0-r10 and the frame's stack."""

    __slots__ = (
        "callback_depth",
        "callback_ret_range",
        "callsite",
        "frameno",
        "in_callback_fn",
        "regs",
        "stack",
        "subprogno",
    )

    def __init__(self, frameno: int, callsite: int, subprogno: int) -> None:
        self.regs = [Reg() for _ in range(11)]
        self.stack: list[StackSlot] = []
        self.frameno = frameno
        self.callsite = callsite  # insn index of the call that created the frame, -1
        self.subprogno = subprogno
        self.in_callback_fn = False
        self.callback_ret_range = (0, 1)
        self.callback_depth = 0

    @property
    def allocated_stack(self) -> int:
        return len(self.stack) * REG_SIZE

    def grow_stack(self, size: int) -> None:
        n = (size + REG_SIZE - 1) // REG_SIZE
        while len(self.stack) < n:
            self.stack.append(StackSlot())

    def copy(self) -> FuncState:
        f = FuncState.__new__(FuncState)
        # (map() over the unbound methods: states are copied at every branch and
        # checkpoint, and this is measurably faster than a comprehension)
        f.regs = list(map(Reg.copy, self.regs))
        f.stack = list(map(StackSlot.copy, self.stack))
        f.frameno = self.frameno
        f.callsite = self.callsite
        f.subprogno = self.subprogno
        f.in_callback_fn = self.in_callback_fn
        f.callback_ret_range = self.callback_ret_range
        f.callback_depth = self.callback_depth
        return f


@dataclass
class RefState:
    """An acquired reference (socket from sk_lookup_*, ringbuf record...) or a held
    spin lock: its id and the instruction that acquired it.  Never modified once
    created (states add and remove them): state copies share them."""

    id: int
    insn_idx: int
    kind: str = "ptr"  #: "ptr" or "lock"
    what: str = ""  #: the helper that acquired it, for explanations


class VState:
    """A whole verifier state: the frames (``frames[-1]`` is current), references,
    the path bookkeeping the search needs (parent checkpoint, branch count) and the
    log's scratch marks."""

    __slots__ = (
        "active_lock_id",
        "active_lock_ptr",
        "branches",
        "callback_unroll_depth",
        "dfs_depth",
        "frames",
        "insn_idx",
        "linked_ids",
        "may_goto_depth",
        "parent",
        "path",
        "refs",
        "scratch_regs",
        "scratch_slots",
    )

    def __init__(self) -> None:
        self.frames: list[FuncState] = []
        self.refs: list[RefState] = []
        self.active_lock_id = 0
        self.active_lock_ptr: object = None
        self.parent: VState | None = None
        self.branches = 1
        self.insn_idx = 0
        self.may_goto_depth = 0
        self.callback_unroll_depth = 0
        self.dfs_depth = 0
        self.scratch_regs: set[int] = set()
        self.scratch_slots: set[int] = set()
        #: recent (insn index, note) events on this path, for explanations
        self.path: tuple[tuple[int, str], ...] = ()
        #: for explored (read-only) states: (relevance mask, liveness mask, ids of the
        #: scalars state comparison looks at), cached by Verifier.states_equal
        self.linked_ids: tuple[int, int, frozenset[int]] | None = None

    @property
    def cur(self) -> FuncState:
        return self.frames[-1]

    @property
    def curframe(self) -> int:
        return len(self.frames) - 1

    def copy(self) -> VState:
        s = VState.__new__(VState)
        s.frames = list(map(FuncState.copy, self.frames))
        s.refs = list(self.refs)  # RefStates are never modified: shared
        s.active_lock_id = self.active_lock_id
        s.active_lock_ptr = self.active_lock_ptr
        s.parent = self.parent
        s.branches = self.branches
        s.insn_idx = self.insn_idx
        s.may_goto_depth = self.may_goto_depth
        s.callback_unroll_depth = self.callback_unroll_depth
        s.dfs_depth = self.dfs_depth
        s.scratch_regs = set(self.scratch_regs)
        s.scratch_slots = set(self.scratch_slots)
        s.path = self.path
        s.linked_ids = None
        return s

    def all_regs(self):  # -> Iterator[Reg]
        """Every register and spilled register of every frame
        (bpf_for_each_reg_in_vstate)."""
        for f in self.frames:
            yield from f.regs
            for slot in f.stack:
                if slot.types[7] == STACK_SPILL:
                    yield slot.spilled


__all__ += ["MAX_BPF_STACK", "REG_SIZE", "STACK_INVALID", "STACK_MISC", "STACK_SPILL", "STACK_ZERO"]
