"""The kernel backend: ``bpf()`` through ctypes, feature probes, and ``KernelBackend``.

``KernelBackend().load(collection_spec)`` loads a whole object (BTF, maps, global
data, programs; see :mod:`netbpf.kernel.loader`) into a
:class:`~netbpf.collection.Collection`; ``KernelBackend().load_program(spec)`` loads
one program spec and
``KernelProgram.test_run(...)`` runs it with BPF_PROG_TEST_RUN, returning the same
``TestRunResult`` as the simulator.  ``KernelBackend().create_map(...)`` gives a
``KernelMap`` with raw-bytes element operations; ``KernelRingBuffer`` and
``KernelPerfBuffer`` read ring buffers and perf event arrays from Python (through a
collection: ``coll.ringbuf(name)``, ``coll.perf_buffer(name)``).  The probes in
:mod:`netbpf.kernel.probe` say, tri-state and cached, what this kernel supports.
The ctypes layer (:mod:`netbpf.kernel.syscall`) is private.
"""

from __future__ import annotations

from netbpf.kernel.backend import KernelBackend, KernelMap, KernelProgram
from netbpf.kernel.perf import KernelPerfBuffer
from netbpf.kernel.probe import (
    ProbeResult,
    Support,
    bpf_usable,
    map_type_supported,
    prog_type_supported,
    test_run_supported,
)
from netbpf.kernel.ringbuf import KernelRingBuffer

__all__ = [
    "KernelBackend",
    "KernelMap",
    "KernelPerfBuffer",
    "KernelProgram",
    "KernelRingBuffer",
    "ProbeResult",
    "Support",
    "bpf_usable",
    "map_type_supported",
    "prog_type_supported",
    "test_run_supported",
]
