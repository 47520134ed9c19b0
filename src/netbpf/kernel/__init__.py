"""The kernel backend: ``bpf()`` through ctypes, feature probes, and ``KernelBackend``.

``KernelBackend().load_program(spec)`` loads a spec into the running kernel and
``KernelProgram.test_run(...)`` runs it with BPF_PROG_TEST_RUN, returning the same
``TestRunResult`` as the simulator.  ``KernelBackend().create_map(...)`` gives a
``KernelMap`` with raw-bytes element operations.  The probes in
:mod:`netbpf.kernel.probe` say, tri-state and cached, what this kernel supports.
The ctypes layer (:mod:`netbpf.kernel.syscall`) is private.
"""

from __future__ import annotations

from netbpf.kernel.backend import KernelBackend, KernelMap, KernelProgram
from netbpf.kernel.probe import (
    ProbeResult,
    Support,
    bpf_usable,
    map_type_supported,
    prog_type_supported,
    test_run_supported,
)

__all__ = [
    "KernelBackend",
    "KernelMap",
    "KernelProgram",
    "ProbeResult",
    "Support",
    "bpf_usable",
    "map_type_supported",
    "prog_type_supported",
    "test_run_supported",
]
