"""The seam between the object model and where programs run.

``SimBackend`` (the simulator) and ``KernelBackend`` (the running kernel, through
``bpf()``) implement the same protocol, so a behaviour test is written once and run on
both (httpx's transport seam, cilium/ebpf's Collection API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from netbpf.obj.spec import ProgramSpec

__all__ = ["Backend", "Program", "TestRunResult"]


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returns: the program's return value, the packet after the
    run, the context after the run (None when the type has no ctx_out), and the mean
    duration of one run in nanoseconds."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes
    ctx_out: bytes | None
    duration_ns: int


@runtime_checkable
class Program(Protocol):
    """A loaded program."""

    name: str

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> TestRunResult: ...

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """Turns specs into live objects."""

    name: str

    def load_program(self, spec: ProgramSpec) -> Program: ...
