"""Verifier cases as data: a program, how to load it, and the expected verdict.

A :class:`Case` is assembly (llvm-objdump / verifier-log syntax) with ``{name}``
placeholders for maps: ``r1 = {m} ll`` becomes a BPF_PSEUDO_MAP_FD load of map ``m``
and ``r1 = {m:8} ll`` a BPF_PSEUDO_MAP_VALUE load at offset 8 (global data).  netbpf
gets the maps as ``map_relocs`` + MapSpecs; the kernel gets real maps created for the
run, their fds patched in.

``expect`` is None for "accepted" or the kernel's message for the refusal (the
first line of the error, as :attr:`VerifierRejection.summary`); the kernel check
compares the verdict and that the kernel's log contains the same message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from netbpf import ProgramSpec
from netbpf.errors import KernelError, VerifierError
from netbpf.maps.spec import MapSpec
from netbpf.obj.spec import MapReloc
from netbpf.uapi import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, MapType
from netbpf.verifier import VerifierRejection, verify

_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\d+))?\}")


@dataclass(frozen=True)
class Case:
    id: str
    asm: str
    expect: str | None = None
    prog_type: str = "xdp"
    maps: Mapping[str, MapSpec] = field(default_factory=dict)
    #: the kernel's wording differs on purpose (documented deviation): compare
    #: only the verdict
    verdict_only: bool = False


def M(
    name: str, mtype: str | MapType, key: int, value: int, entries: int = 4, **kw: Any
) -> MapSpec:
    t = mtype if isinstance(mtype, MapType) else MapType[mtype.upper()]
    return MapSpec(name, t, key, value, entries, **kw)


def _expand(case: Case, fds: Mapping[str, int] | None) -> tuple[str, list[tuple[str, int | None]]]:
    refs: list[tuple[str, int | None]] = []

    def sub(m: re.Match[str]) -> str:
        name, off = m.group(1), m.group(2)
        refs.append((name, None if off is None else int(off)))
        fd = fds[name] if fds is not None else 0
        return f"map_fd({fd})" if off is None else f"map_value({fd}, {off})"

    return _PLACEHOLDER.sub(sub, case.asm), refs


def spec_for(case: Case) -> ProgramSpec:
    text, refs = _expand(case, None)
    spec = ProgramSpec.from_asm(text, prog_type=case.prog_type, name=case.id[:15] or "prog")
    slots = [
        i
        for i, ins in enumerate(spec.insns)
        if ins.opcode == 0x18 and ins.src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE)
    ]
    relocs = tuple(MapReloc(slot, name, off) for slot, (name, off) in zip(slots, refs))
    return replace(spec, map_relocs=relocs)


def run_ours(case: Case, *, log_level: int = 0) -> VerifierRejection | None:
    """None if netbpf accepts, else the rejection."""
    try:
        verify(spec_for(case), maps=case.maps, log_level=log_level)
    except VerifierRejection as e:
        return e
    return None


def run_kernel(kernel: Any, case: Case) -> KernelError | None:
    """None if the kernel accepts, else its error (with ``.log``)."""
    maps = {}
    try:
        for name, ms in case.maps.items():
            maps[name] = kernel.create_map(
                ms.type, ms.key_size, ms.value_size, ms.max_entries, flags=ms.flags, name=name
            )
            data = ms.extra.get("contents")
            if data:
                for idx, value in data:
                    maps[name].update(idx.to_bytes(ms.key_size, "little"), value)
            if ms.extra.get("freeze"):
                maps[name].freeze()
        text, _ = _expand(case, {n: m.fd for n, m in maps.items()})
        spec = ProgramSpec.from_asm(text, prog_type=case.prog_type, name="t")
        try:
            kernel.load_program(spec, log_level=1).close()
        except KernelError as e:
            return e
        return None
    finally:
        for m in maps.values():
            m.close()


def kernel_error_lines(log: str) -> list[str]:
    """The kernel log's lines after the last instruction/state line: the error."""
    lines = [ln for ln in log.strip().splitlines() if ln.strip()]
    while lines and lines[-1].startswith(("processed ", "verification time", "stack depth")):
        lines.pop()
    out: list[str] = []
    for ln in reversed(lines):
        if re.match(r"^\d+: ", ln) or ln.startswith(("from ", ";")):
            break
        out.append(ln)
    return list(reversed(out))


def check_ours(case: Case) -> None:
    err = run_ours(case)
    if case.expect is None:
        assert err is None, f"{case.id}: netbpf refused: {err and err.describe()}"
    else:
        assert err is not None, f"{case.id}: netbpf accepted, expected {case.expect!r}"
        assert case.expect in err.lines, f"{case.id}: {err.lines} does not include {case.expect!r}"


def check_kernel(kernel: Any, case: Case) -> None:
    kerr = run_kernel(kernel, case)
    ours = run_ours(case)
    if kerr is None:
        assert ours is None, (
            f"{case.id}: kernel accepts, netbpf refused: {ours and ours.describe()}"
        )
        return
    klines = [re.sub(r"=P(?=[-0-9s])", "=", ln) for ln in kernel_error_lines(kerr.log)]
    assert ours is not None, f"{case.id}: kernel refused ({klines}), netbpf accepted"
    if case.verdict_only:
        return
    assert list(ours.lines) == klines, f"{case.id}: kernel {klines} != netbpf {list(ours.lines)}"


__all__ = [
    "Case",
    "M",
    "check_kernel",
    "check_ours",
    "kernel_error_lines",
    "run_kernel",
    "run_ours",
    "spec_for",
]

_ = VerifierError
