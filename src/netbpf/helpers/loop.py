"""``bpf_loop``: call a BPF callback a bounded number of times.

Kernel semantics (``kernel/bpf/bpf_iter.c``, Linux 6.18):
``bpf_loop(nr_loops, callback_fn, callback_ctx, flags)`` calls
``callback_fn(i, callback_ctx)`` for ``i = 0 .. nr_loops - 1`` until a call returns
non-zero; it returns the number of calls made (``i + 1`` when the callback stopped
it, ``nr_loops`` otherwise), ``-EINVAL`` for non-zero flags and ``-E2BIG`` for more
than BPF_MAX_LOOPS (8M) iterations.  Every program type may call it
(``bpf_base_func_proto``).

Two flavours, as in the kernel.  When ``flags`` is 0 the verifier *inlines* the loop
(``inline_bpf_loop``; it does so when flags is the constant 0 and the callback is
always the same, which is how C code calls it), and the inlined code differs from
the helper in two measurable ways that the simulator reproduces:

* ``nr_loops`` is compared as the full 64-bit register, not truncated to a u32;
* too many iterations set ``w0 = -E2BIG``: r0 is 0xFFFFFFF9 (zero-extended), not
  -7 -- measured on Linux 6.18 (tests/test_collection_both.py, ``calls``).

With non-zero flags the helper itself runs: -EINVAL as a 64-bit value.  (A flags
register that is 0 at run time but not a verifier-known constant would reach the
helper too; the simulator cannot tell it apart and takes the inlined path.)

The callback runs through :meth:`netbpf.vm.env.RunEnv.call_subprog` in a new frame;
each call counts against the run's instruction budget like a bpf-to-bpf call, so a
callback can make the run fail with InstructionLimitExceeded long before 8M calls.
"""

from __future__ import annotations

import errno as _errno

from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.vm.env import RunEnv
from netbpf.vm.runtime import BPF_MAX_LOOPS

__all__ = ["loop"]

_M32 = 0xFFFF_FFFF
_M64 = 0xFFFF_FFFF_FFFF_FFFF


def loop(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_loop(nr_loops = r1, callback_fn = r2, callback_ctx = r3, flags = r4)."""
    if r4:
        return -_errno.EINVAL & _M64  # the helper proper
    n = r1 & _M64  # inlined: the whole register
    if n > BPF_MAX_LOOPS:
        return -_errno.E2BIG & _M32  # inlined: BPF_MOV32_IMM(r0, -E2BIG)
    for i in range(n):
        if env.call_subprog(r2, i, r3, 0, 0, 0) & _M64:
            return i + 1
    return n


# Registered only if no other module provides it (so a later, fuller helper module
# may take the id without an import-order fight).
if "loop" not in DEFAULT_REGISTRY:
    DEFAULT_REGISTRY.register("loop", loop)
