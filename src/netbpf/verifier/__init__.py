"""netbpf's verifier: prove a program safe before it runs, as strictly as the kernel.

::

    from netbpf import ProgramSpec
    from netbpf.verifier import verify

    spec = ProgramSpec.from_asm("r0 = *(u32 *)(r1 + 0)\\nexit", prog_type="xdp")
    result = verify(spec)            # raises VerifierError when refused
    print(result.processed_insns)

:func:`verify` is a Python re-implementation of the Linux 6.18 verifier for the
networking program types (kernel/bpf/verifier.c), with the privileges of root:
register types and tracked bounds (tnums, signed/unsigned 64/32-bit ranges), packet
ranges from comparisons with ``data_end``, NULL checks, stack slots, context access
per program type, helper prototypes and which program type may call which helper,
references (sockets, ringbuf records), spin locks, bpf-to-bpf calls and callbacks,
bounded loops with state pruning and the 1,000,000-instruction complexity limit.
Messages are the kernel's (``R1 invalid mem access 'scalar'``, ``invalid access to
packet, off=1 size=8, R2(id=0,off=1,r=8)``...); the log levels print per-instruction
state the way the kernel's log does.

A refusal is a :class:`VerifierRejection` (a :class:`~netbpf.errors.VerifierError`)
that also carries the C source line of the failing instruction (BTF line info), where
the offending value came from on the failing path, and the usual fix.

What is not modelled (refused with a message saying so, never guessed): kfuncs,
loads through BTF-typed kernel pointers other than the structs netbpf carries (the
map structs behind a map pointer and what they point to, the socket structs of
``bpf_skc_to_tcp_sock`` and friends), dynptrs, kptrs, timers, arenas, and
unprivileged mode.  See docs/verifier.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any

from netbpf.errors import InstructionError, NotSupportedError, VerifierError
from netbpf.isa.instruction import Instruction
from netbpf.isa.validate import validate_upfront
from netbpf.obj.spec import LineInfo, ProgramSpec
from netbpf.uapi import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE
from netbpf.uapi.sections import NON_NETWORKING
from netbpf.verifier.core import Abandon, InsnAux, Reject, Verifier
from netbpf.verifier.explain import explain
from netbpf.verifier.maps import MapInfo, map_info
from netbpf.verifier.regs import clear_sync_memo

__all__ = [
    "InsnAux",
    "MapInfo",
    "VerifierRejection",
    "VerifierResult",
    "verify",
]

INSN_LIMIT = 1_000_000


@dataclass(frozen=True)
class VerifierResult:
    """An accepted program: the kernel's statistics line, the log, and per-instruction
    facts gathered over every path (``insn_aux``)."""

    accepted: bool
    processed_insns: int
    max_states_per_insn: int
    total_states: int
    peak_states: int
    log: str
    #: stack bytes each function uses (index = subprogram number)
    stack_depth: tuple[int, ...]
    #: first slot of each function
    subprog_starts: tuple[int, ...]
    insn_aux: tuple[InsnAux, ...]
    #: the processed-instruction limit verification ran with
    insn_limit: int = INSN_LIMIT

    @property
    def stats(self) -> str:
        return (
            f"processed {self.processed_insns} insns (limit {self.insn_limit}) "
            f"max_states_per_insn {self.max_states_per_insn} total_states "
            f"{self.total_states} peak_states {self.peak_states} mark_read 0"
        )


class VerifierRejection(VerifierError):
    """A refusal with netbpf's extras.  ``summary`` is the first line of the kernel's
    message for the error, ``lines`` all of them (the kernel's last log line before
    the statistics is ``lines[-1]``), ``source`` the C line (or None), ``origin`` where
    the offending value came from on the failing path, ``hint`` the usual fix."""

    def __init__(
        self,
        summary: str,
        *,
        index: int | None,
        log: str,
        program: str | None,
        lines: tuple[str, ...],
        kind: str,
        source: LineInfo | None,
        origin: str,
        hint: str,
        processed_insns: int,
    ) -> None:
        #: a callable that computes the log when it is first read (see ``log``)
        self._log_later: Callable[[], str] | None = None
        super().__init__(summary, index=index, log=log, program=program)
        self.lines = lines
        self.kind = kind
        self.source = source
        self.origin = origin
        self.hint = hint
        self.processed_insns = processed_insns

    @property
    def log(self) -> str:  # type: ignore[override]
        """The verifier log (at level 1 when verification ran at level 0).

        At level 0 the log of a refusal comes from verifying the program once more at
        level 1, which costs more than the refusal itself (every instruction of the
        path to the error is formatted); most callers only want ``summary``, so
        that run happens here, the first time the log is read."""
        if self._log_later is not None:
            self._log = self._log_later()
            self._log_later = None
        return self._log

    @log.setter
    def log(self, value: str) -> None:
        self._log = value
        self._log_later = None

    def describe(self) -> str:
        """A multi-line report: the error, the C line, the origin, the fix."""
        out = [str(self)]
        out.extend(f"  {ln}" for ln in self.lines[1:])
        if self.source is not None:
            text = self.source.text.strip()
            out.append(f"  at {self.source.file}:{self.source.line}: {text}")
        if self.origin:
            out.append(f"  why: {self.origin}")
        if self.hint:
            out.append(f"  fix: {self.hint}")
        return "\n".join(out)


def _maps_by_slot(
    spec: ProgramSpec, maps: Mapping[str, Any] | None
) -> dict[int, tuple[MapInfo, int | None]]:
    out: dict[int, tuple[MapInfo, int | None]] = {}
    infos: dict[str, MapInfo] = {}
    for r in spec.map_relocs:
        if maps is None or r.map not in maps:
            raise VerifierError(
                f"map '{r.map}' referenced at insn {r.slot} has no MapSpec (pass maps=...)",
                index=r.slot,
                program=spec.name,
            )
        m = infos.get(r.map)
        if m is None:
            m = infos[r.map] = map_info(maps[r.map])
        out[r.slot] = (m, r.offset)
    return out


def _patched(spec: ProgramSpec) -> list[Instruction]:
    """The instructions as the kernel receives them: each map relocation's LD_IMM64
    becomes a BPF_PSEUDO_MAP_FD (or _MAP_VALUE with the offset in the second half)."""
    insns = list(spec.insns)
    for r in spec.map_relocs:
        if not (0 <= r.slot < len(insns) - 1) or insns[r.slot].opcode != 0x18:
            raise VerifierError(
                f"map relocation at insn {r.slot} is not on an LD_IMM64 instruction",
                index=r.slot,
                program=spec.name,
            )
        if r.offset is None:
            insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_FD, imm=0)
            insns[r.slot + 1] = replace(insns[r.slot + 1], imm=0)
        else:
            insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_VALUE, imm=0)
            insns[r.slot + 1] = replace(insns[r.slot + 1], imm=r.offset)
    return insns


def _run(
    spec: ProgramSpec,
    slots: dict[int, tuple[MapInfo, int | None]],
    log_level: int,
    limit: int,
    predicted: frozenset[int],
    cache: dict[str, Any] | None = None,
) -> Verifier:
    v = Verifier(
        _patched(spec),
        spec.prog_type,
        spec.attach_type,
        maps_by_slot=slots,
        log_level=log_level,
        insn_limit=limit,
        gpl=_gpl_compatible(spec.license),
        has_func_info=bool(spec.func_info),
        btf=spec.btf,
        func_info=spec.func_info,
        predicted=predicted,
        cache=cache,
    )
    return v


def _run_to_end(
    spec: ProgramSpec,
    slots: dict[int, tuple[MapInfo, int | None]],
    log_level: int,
    limit: int,
    predicted: frozenset[int] = frozenset(),
) -> tuple[Verifier, frozenset[int]]:
    """Run the verifier, starting over each time it predicts a conditional jump its
    pruning did not treat as a check (see precision.py); the last run is the answer.
    Raises Reject from that run."""
    cache: dict[str, Any] = {}
    while True:
        v = _run(spec, slots, log_level, limit, predicted, cache)
        try:
            v.run()
        except Abandon:
            predicted = predicted | v.new_predicted
            continue
        except Reject as rej:
            if v.new_predicted:
                predicted = predicted | v.new_predicted
                continue
            rej.verifier = v  # type: ignore[attr-defined]
            rej.predicted = predicted  # type: ignore[attr-defined]
            raise
        if v.new_predicted:
            predicted = predicted | v.new_predicted
            continue
        return v, predicted


def _level1_log(
    spec: ProgramSpec,
    slots: dict[int, tuple[MapInfo, int | None]],
    insn_limit: int,
    predicted: frozenset[int],
) -> str:
    """The level-1 log of a refused program: its last run again, logging."""
    try:
        _run_to_end(spec, slots, 1, insn_limit, predicted)
    except Reject as rej:
        again = rej.verifier  # type: ignore[attr-defined]
        return again.log.text() + again.stats_line() + "\n"
    return ""  # pragma: no cover - the same run refused the program at level 0


def _gpl_compatible(lic: str) -> bool:
    return lic in (
        "GPL",
        "GPL v2",
        "GPL and additional rights",
        "Dual BSD/GPL",
        "Dual MIT/GPL",
        "Dual MPL/GPL",
    )


def verify(
    spec: ProgramSpec,
    *,
    maps: Mapping[str, Any] | None = None,
    log_level: int = 0,
    insn_limit: int = INSN_LIMIT,
) -> VerifierResult:
    """Verify ``spec`` the way Linux 6.18 does for root; return the statistics or raise
    :class:`VerifierRejection`.

    ``maps`` maps each name in ``spec.map_relocs`` to its MapSpec (a map reference
    becomes CONST_PTR_TO_MAP; a global-data reference PTR_TO_MAP_VALUE at its offset,
    read-only and constant-folded for frozen BPF_F_RDONLY_PROG maps such as
    ``.rodata``).  ``log_level`` 1 keeps the path to the error (empty but for the
    statistics on success), 2 every instruction's state, as the kernel's log levels.
    ``insn_limit`` is the complexity limit (the kernel's is 1,000,000).

    Program types outside networking (tracing, LSM, ...: ``NON_NETWORKING`` of
    :mod:`netbpf.uapi.sections`) raise :class:`~netbpf.errors.NotSupportedError`: their
    contexts and helpers are not modelled, and a guessed verdict would mislead."""
    if spec.prog_type in NON_NETWORKING:
        raise NotSupportedError(
            f"verifying program {spec.name!r} of type {spec.prog_type.name}",
            "netbpf models the networking program types; load it with KernelBackend",
        )
    # each verification starts with an empty bounds memo: its cost (and the time a
    # benchmark measures) does not depend on what was verified before
    clear_sync_memo()
    try:
        # what Linux refuses before it walks any path; the rest of each instruction's
        # checks run where a path reaches it (netbpf.isa.validate's module docstring)
        validate_upfront(spec.insns, name=spec.name)
    except InstructionError as e:
        raise VerifierRejection(
            e.reason,
            index=e.index,
            log=e.reason + "\n",
            program=spec.name,
            lines=(e.reason,),
            kind="insn",
            source=spec.source_line(e.index),
            origin="",
            hint="the instruction is malformed; reassemble it",
            processed_insns=0,
        ) from None
    slots = _maps_by_slot(spec, maps)
    try:
        v, _ = _run_to_end(spec, slots, log_level, insn_limit)
    except Reject as rej:
        v = rej.verifier  # type: ignore[attr-defined]
        predicted = rej.predicted  # type: ignore[attr-defined]
        idx = v.insn_idx
        reg = rej.reg
        origin = None
        if reg is not None and v.cur.frames:
            origin = v.cur.frames[-1].regs[reg].origin
        why, hint = explain(rej.kind, reg, origin)
        if rej.why:
            why = rej.why
        log = v.log.text()
        if log_level:
            log += v.stats_line() + "\n"
        lines = tuple(v.err_lines) or ("rejected",)
        err = VerifierRejection(
            lines[0],
            index=idx,
            log=log,
            program=spec.name,
            lines=lines,
            kind=rej.kind,
            source=spec.source_line(idx),
            origin=why,
            hint=hint,
            processed_insns=v.insn_processed,
        )
        if not log_level:
            # cache(): copies of this refusal (the simulator's outcome cache hands out
            # copies) share the one computation
            err._log_later = cache(partial(_level1_log, spec, slots, insn_limit, predicted))
        raise err from None
    log = v.log.text() if log_level >= 2 else ""
    log += v.stats_line() + "\n"
    cfg = v.cfg
    assert cfg is not None
    return VerifierResult(
        accepted=True,
        processed_insns=v.insn_processed,
        max_states_per_insn=v.max_states_per_insn,
        total_states=v.total_states,
        peak_states=v.peak_states,
        log=log,
        stack_depth=tuple(s.stack_depth for s in cfg.subprogs),
        subprog_starts=tuple(s.start for s in cfg.subprogs),
        insn_aux=tuple(v.aux),
        insn_limit=insn_limit,
    )
