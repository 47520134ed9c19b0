"""Loading a program for execution, and running it.

::

    exe = load_executable(insns, name="xdp_pass", engine="fast", imm64={3: map_addr})
    r0 = exe.run(env, ctx_addr)          # env: RunEnv; sets env.insn_count

Two engines give identical results (proven by a differential Hypothesis test):

* ``"interpreter"`` -- :mod:`netbpf.vm.interpreter`, the plain reference;
* ``"fast"`` -- :mod:`netbpf.vm.fast`, which translates the program once into Python
  source (basic blocks, registers as locals, folded immediates) and caches the compiled
  code on the Executable.

Whatever the instruction stream, :meth:`Executable.run` raises only NetbpfError
subclasses: :class:`~netbpf.errors.ProgramFault` (naming the instruction and the
program) for anything the sandbox forbids, :class:`~netbpf.errors.InstructionLimitExceeded`
when the budget runs out.  Malformed programs are refused earlier, by
:func:`load_executable`, with :class:`~netbpf.errors.InstructionError`.

The exact run-time semantics (stack frames, calls, budget, may_goto, tail calls,
helpers) are documented in :mod:`netbpf.vm.runtime`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from netbpf.errors import NotSupportedError
from netbpf.isa.instruction import Instruction
from netbpf.vm import interpreter
from netbpf.vm.decode import VmProgram, decode_for_vm, func_value
from netbpf.vm.env import RunEnv
from netbpf.vm.runtime import RunState, TailCall, register_executable

__all__ = ["ENGINES", "Executable", "TailCall", "load_executable"]

M64 = 0xFFFF_FFFF_FFFF_FFFF

#: engine names load_executable accepts
ENGINES = ("fast", "interpreter")


class Executable:
    """A program decoded (and, for the fast engine, translated) once, runnable many times.

    Attributes: ``name``, ``insns`` (the slots, as given), ``engine``, ``program`` (the
    decoded :class:`~netbpf.vm.decode.VmProgram`), ``uid`` (identifies the program in
    code addresses)."""

    def __init__(
        self,
        insns: Sequence[Instruction],
        *,
        name: str,
        engine: str,
        imm64: Mapping[int, int] | None,
    ) -> None:
        if engine not in ENGINES:
            raise NotSupportedError(f"engine {engine!r}", f"choose one of {', '.join(ENGINES)}")
        self.name = name
        self.insns = tuple(insns)
        self.engine = engine
        self.uid = register_executable(self)
        self.program: VmProgram = decode_for_vm(self.insns, name=name, uid=self.uid, imm64=imm64)
        self._fast: Any = None
        self._engine_mod: Any = interpreter
        if engine == "fast":
            from netbpf.vm import fast

            self._engine_mod = fast
            self._fast = fast.translate(self)

    def __repr__(self) -> str:
        return f"<Executable {self.name!r} {len(self.insns)} slots engine={self.engine}>"

    def func_address(self, index: int) -> int:
        """The code address of the BPF function starting at slot ``index`` (the value a
        ``BPF_PSEUDO_FUNC`` LD_IMM64 pointing there produces)."""
        return func_value(self.uid, index)

    @property
    def source(self) -> str | None:
        """The generated Python source (fast engine), for debugging."""
        return None if self._fast is None else self._fast.source

    def run(self, env: RunEnv, r1: int, *, r2: int = 0) -> int:
        """Run the program from slot 0 with r1 (the context pointer) and r2; return r0 as
        an unsigned 64-bit int.  Sets ``env.insn_count``; faults raise ProgramFault."""
        st = env.vm
        if (
            self._fast is not None
            and st.__class__ is RunState
            and not st.active
            and st.env is env
            and st.mem is env.mem
            and env.insn_limit >= 0
        ):
            # the common case, repeated runs on one environment, without the general
            # path's indirections (per-run overhead matters for small programs)
            st.active = True
            st.engine = self._engine_mod
            st.n = 0
            st.limit = env.insn_limit
            st.depth = 1
            st.tail_calls = 0
            try:
                r0, st.n = self._fast.funcs[0](st, r1 & M64, r2 & M64, 0, 0, 0, 0, 1)
            except Exception as exc:
                raise self._engine_mod.convert(exc, st, self, 0) from None
            finally:
                st.active = False
                env.insn_count = st.n
            return r0  # type: ignore[no-any-return]
        return self._run(env, r1, r2)

    def _run(self, env: RunEnv, r1: int, r2: int) -> int:
        prev = env.vm
        nested = isinstance(prev, RunState) and prev.active
        st = RunState.acquire(env, self._engine_mod)
        env.vm = st
        try:
            return self._engine_mod.enter(st, self, 0, (r1 & M64, r2 & M64, 0, 0, 0), 1)
        finally:
            st.active = False
            env.insn_count = st.n
            if nested:
                env.vm = prev


def load_executable(
    insns: Sequence[Instruction],
    *,
    name: str = "prog",
    engine: str = "fast",
    imm64: Mapping[int, int] | None = None,
) -> Executable:
    """Decode ``insns`` (8-byte slots, LD_IMM64 taking two) for execution.

    ``imm64`` maps the slot index of each LD_IMM64 with a loader pseudo source
    (BPF_PSEUDO_MAP_FD, _MAP_VALUE, _BTF_ID, _MAP_IDX, _MAP_IDX_VALUE) to the 64-bit
    value the loader resolved (a map address, a map value address...).  An LD_IMM64 with
    src 0 is a plain constant.  BPF_PSEUDO_FUNC is resolved here: the register gets the
    function's code address (see :meth:`Executable.func_address`), which helpers hand to
    ``env.call_subprog`` and ``callx`` calls.

    Raises InstructionError (naming the slot) for anything the VM cannot execute."""
    return Executable(insns, name=name, engine=engine, imm64=imm64)
