"""Specs: what a program or map *is*, independent of where it runs.

A spec is pure data (frozen, comparable, copyable).  Parsing the same input twice
gives equal specs; a backend (``SimBackend``, ``KernelBackend``) turns a spec into a
live object and never mutates it (cilium/ebpf's ProgramSpec/Program split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netbpf.isa.instruction import Instruction, decode_program
from netbpf.uapi import AttachType, ProgramType
from netbpf.uapi.sections import resolve_prog_type

__all__ = ["FuncInfo", "LineInfo", "MapReloc", "ProgramSpec"]


@dataclass(frozen=True, slots=True)
class MapReloc:
    """An LD_IMM64 at ``slot`` that must point at map ``map`` when loaded: the map itself
    (``offset`` None: BPF_PSEUDO_MAP_FD) or a byte ``offset`` into its value
    (BPF_PSEUDO_MAP_VALUE: global data).  Backends resolve these; the spec stays pure."""

    slot: int
    map: str
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """BTF func_info: the function starting at ``slot`` has BTF FUNC type ``type_id``."""

    slot: int
    type_id: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class LineInfo:
    """BTF line_info: the instruction at ``slot`` comes from ``file:line:col``."""

    slot: int
    file: str
    line: int
    col: int
    text: str = ""


@dataclass(frozen=True)
class ProgramSpec:
    """One program: its instructions (8-byte slots) and how it is meant to be loaded."""

    name: str
    prog_type: ProgramType
    insns: tuple[Instruction, ...]
    attach_type: AttachType | None = None
    section: str = ""
    license: str = "GPL"
    #: LD_IMM64 slots to point at maps / global data at load time
    map_relocs: tuple[MapReloc, ...] = ()
    #: BTF func_info and line_info, slot-indexed in this (linked) program
    func_info: tuple[FuncInfo, ...] = ()
    line_info: tuple[LineInfo, ...] = ()
    #: CO-RE relocations (slot, record) applied against the target BTF at load time
    core_relos: tuple[tuple[int, Any], ...] = ()
    #: the object's BTF (None for programs built from bytes or assembly)
    btf: Any = field(default=None, repr=False)
    #: the program may see multi-buffer XDP frames (section ``xdp.frags``)
    frags: bool = False
    kern_version: int = 0

    def source_line(self, slot: int) -> LineInfo | None:
        """The C source line an instruction came from (the nearest line_info at or
        before ``slot``), for verifier messages and ``prog dump``."""
        best = None
        for li in self.line_info:
            if li.slot <= slot and (best is None or li.slot >= best.slot):
                best = li
        return best

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        *,
        prog_type: str | int | ProgramType = "socket",
        name: str = "prog",
        license: str = "GPL",
    ) -> ProgramSpec:
        """A spec from raw little-endian instruction bytes (as in an ELF section)."""
        ptype, attach = resolve_prog_type(prog_type)
        return cls(name, ptype, tuple(decode_program(raw)), attach, license=license)

    @classmethod
    def from_asm(
        cls,
        text: str,
        *,
        prog_type: str | int | ProgramType = "socket",
        name: str = "prog",
        license: str = "GPL",
    ) -> ProgramSpec:
        """A spec from assembly in the llvm-objdump / verifier-log syntax (or the
        bpf_conformance syntax); see :mod:`netbpf.isa.asm`."""
        from netbpf.isa.asm import assemble

        ptype, attach = resolve_prog_type(prog_type)
        return cls(name, ptype, tuple(assemble(text)), attach, license=license)

    def to_bytes(self) -> bytes:
        return b"".join(i.encode() for i in self.insns)
