"""``SimBackend``: the :class:`~netbpf.backend.Backend` contract, answered by netbpf's
own VM instead of the kernel.

Loading validates the instructions structurally (:func:`netbpf.isa.validate.
validate_program`, the kernel's instruction-by-instruction checks) and decodes them
for the chosen engine.  There is no verifier yet (a later issue adds
``netbpf.verifier``): a program the kernel would refuse may load here, and its unsafe
accesses fault at run time instead (:class:`~netbpf.errors.ProgramFault`).

``SimProgram.test_run`` has the semantics of Linux 6.18's BPF_PROG_TEST_RUN (see
:mod:`netbpf.hooks.testrun`), byte for byte: retval, data_out, ctx_out and the errno of
every refusal match :class:`netbpf.KernelBackend`'s; ``duration_ns`` is the measured
mean time of one run in the simulator.

Example::

    from netbpf import ProgramSpec, SimBackend

    spec = ProgramSpec.from_asm("r0 = 2\\nexit", prog_type="xdp")
    with SimBackend() as sim:
        prog = sim.load_program(spec)
        assert prog.test_run(bytes(64)).retval == 2   # XDP_PASS
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping

from netbpf.backend import TestRunResult
from netbpf.errors import TestRunError
from netbpf.hooks.context import NetDevice, default_devices
from netbpf.hooks.testrun import prog_test_run
from netbpf.isa.validate import validate_program
from netbpf.obj.spec import ProgramSpec
from netbpf.vm.engine import ENGINES, Executable, load_executable

__all__ = ["SimBackend", "SimProgram"]


class SimProgram:
    """A program loaded into the simulator.  ``close()`` (or ``with``) releases it;
    a closed program refuses to run (EBADF, as a closed kernel fd would)."""

    def __init__(
        self, spec: ProgramSpec, executable: Executable, devices: Mapping[int, NetDevice]
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.prog_type = spec.prog_type
        self.attach_type = spec.attach_type
        self.executable = executable
        self._devices = devices
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> TestRunResult:
        """BPF_PROG_TEST_RUN in the simulator.  ``ctx_out`` is the context after the
        run (``__sk_buff`` for the skb family, ``xdp_md`` for XDP) when ``ctx_in`` was
        given, else None.  Raises TestRunError with the kernel's errno where the
        kernel refuses the run, ProgramFault where the program breaks the sandbox."""
        if self._closed:
            raise TestRunError(f"{self._what()} is closed", errno=_errno.EBADF)
        try:
            return prog_test_run(
                self.executable,
                self.prog_type,
                attach_type=self.attach_type,
                data_in=data_in,
                ctx_in=ctx_in,
                repeat=repeat,
                devices=self._devices,
            )
        except TestRunError as e:
            raise TestRunError(f"{self._what()}: {e.reason}", errno=e.errno) from None

    def _what(self) -> str:
        return f"{self.prog_type.name} program '{self.name}'"

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> SimProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SimProgram {self.name!r} {self.prog_type.name} engine={self.executable.engine}{state}>"


class SimBackend:
    """Loads specs into the simulator.

    ``engine`` picks the VM engine (``"fast"``: programs translated to Python once;
    ``"interpreter"``: the plain reference).  ``devices`` is the simulated network
    namespace test runs see (ifindex -> :class:`~netbpf.hooks.context.NetDevice`);
    by default only ``lo``."""

    name = "sim"

    def __init__(
        self, *, engine: str = "fast", devices: Mapping[int, NetDevice] | None = None
    ) -> None:
        if engine not in ENGINES:
            from netbpf.errors import NotSupportedError

            raise NotSupportedError(f"engine {engine!r}", f"choose one of {', '.join(ENGINES)}")
        self.engine = engine
        self.devices: Mapping[int, NetDevice] = (
            dict(devices) if devices is not None else default_devices()
        )
        self._programs: list[SimProgram] = []

    def load_program(self, spec: ProgramSpec) -> SimProgram:
        """Validate and decode ``spec``'s instructions; raises InstructionError naming
        the slot for a malformed program.  The spec is not modified."""
        validate_program(spec.insns, name=spec.name)
        exe = load_executable(spec.insns, name=spec.name, engine=self.engine)
        prog = SimProgram(spec, exe, self.devices)
        self._programs.append(prog)
        return prog

    def close(self) -> None:
        """Close every program this backend loaded (idempotent)."""
        for p in self._programs:
            p.close()
        self._programs.clear()

    def __enter__(self) -> SimBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SimBackend engine={self.engine}>"
