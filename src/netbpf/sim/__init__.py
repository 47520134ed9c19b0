"""The simulator backend: :class:`SimBackend` loads program specs into netbpf's own VM
and runs them with the kernel's BPF_PROG_TEST_RUN semantics (:mod:`netbpf.hooks.testrun`)."""

from __future__ import annotations

from netbpf.sim.backend import SimBackend, SimProgram

__all__ = ["SimBackend", "SimProgram"]
