"""Specs: what a program or map *is*, independent of where it runs.

A spec is pure data (frozen, comparable, copyable).  Parsing the same input twice
gives equal specs; a backend (``SimBackend``, ``KernelBackend``) turns a spec into a
live object and never mutates it (cilium/ebpf's ProgramSpec/Program split).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netbpf.isa.instruction import Instruction, decode_program
from netbpf.uapi import AttachType, ProgramType
from netbpf.uapi.sections import resolve_prog_type

__all__ = ["ProgramSpec"]


@dataclass(frozen=True)
class ProgramSpec:
    """One program: its instructions (8-byte slots) and how it is meant to be loaded."""

    name: str
    prog_type: ProgramType
    insns: tuple[Instruction, ...]
    attach_type: AttachType | None = None
    section: str = ""
    license: str = "GPL"
    # Filled by the ELF loader (issue 3): map references, BTF func/line info, etc.
    extra: dict = field(default_factory=dict, compare=False, hash=False)

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
