"""The per-run environment an engine executes a program in.

An engine (the reference interpreter or the fast engine) only knows instructions,
registers and an :class:`AddressSpace`.  Everything that depends on *where* the program
runs (which helpers the program type may call, how LD_ABS reads the skb, the virtual
clock, the trace buffer) comes in through a :class:`RunEnv`, built by the hook that
runs the program (test_run today, the simulated stack's hooks later).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netbpf.vm.memory import AddressSpace

if TYPE_CHECKING:  # pragma: no cover
    pass

__all__ = ["DEFAULT_INSN_LIMIT", "HelperFn", "RunEnv"]

#: A helper implementation: ``fn(env, r1, r2, r3, r4, r5) -> r0``.  Arguments arrive as
#: unsigned 64-bit ints; the return value is masked to 64 bits by the engine.  A helper
#: signals a sandbox violation by raising MemoryFault (or ProgramFault).
HelperFn = Callable[["RunEnv", int, int, int, int, int], int]

#: Runaway programs stop after this many executed instructions (a budget, not the
#: verifier's 1M processed-instruction limit, which is static).
DEFAULT_INSN_LIMIT = 10_000_000


@dataclass
class RunEnv:
    """Everything one run may touch besides registers.

    ``skb_load(offset, size)`` implements LD_ABS/LD_IND for skb program types: it
    returns the big-endian value read at ``offset`` from the skb's data (kernel
    ``bpf_skb_load_helper_*`` semantics incl. SKF_NET_OFF / SKF_LL_OFF), or None when
    the read is out of bounds, in which case the program exits with r0 = 0."""

    mem: AddressSpace
    helpers: Mapping[int, HelperFn] = field(default_factory=dict)
    skb_load: Callable[[int, int], int | None] | None = None
    insn_limit: int = DEFAULT_INSN_LIMIT
    #: executed-instruction count of the last run (engines update it)
    insn_count: int = 0
    #: virtual clock for bpf_ktime_get_*_ns, set by the caller
    ktime_ns: int = 0
    #: lines written by bpf_trace_printk
    trace: list[str] = field(default_factory=list)
    #: hook-specific state (the skb or xdp_buff model, maps by address...)
    state: dict[str, Any] = field(default_factory=dict)
    #: the engine's per-run state (netbpf.vm.runtime.RunState), set by the engines and
    #: kept between runs so repeated runs reuse their stack frames
    vm: Any = field(default=None, repr=False, compare=False)

    def call_subprog(
        self, func: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0
    ) -> int:
        """Call the BPF function whose code address ``func`` is (the value a
        ``BPF_PSEUDO_FUNC`` LD_IMM64 produced) in a new frame and return its r0: what
        ``bpf_loop``-style helpers use to run their callback.  Only valid while a program
        runs on this environment; faults inside propagate as ProgramFault."""
        from netbpf.errors import NotSupportedError

        if self.vm is None or not self.vm.active:
            raise NotSupportedError("call_subprog", "no program is running on this environment")
        return int(self.vm.call_subprog(func, r1, r2, r3, r4, r5))
