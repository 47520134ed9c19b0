"""The simulator backend: :class:`SimBackend` loads program specs and whole objects
(:meth:`SimBackend.load` -> :class:`~netbpf.collection.Collection`) into netbpf's own
VM and runs them with the kernel's BPF_PROG_TEST_RUN semantics
(:mod:`netbpf.hooks.testrun`).  Maps reach users as :class:`SimMapHandle`\\ s, the
same :class:`netbpf.backend.Map` protocol the kernel backend's maps follow."""

from __future__ import annotations

from netbpf.sim.backend import SimBackend, SimProgram, SimProgramInfo
from netbpf.sim.maps import SimMapHandle
from netbpf.sim.memory import SimAddressSpace

__all__ = ["SimAddressSpace", "SimBackend", "SimMapHandle", "SimProgram", "SimProgramInfo"]
