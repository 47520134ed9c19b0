"""One eBPF instruction slot and the raw encoding (RFC 9669 section 3).

A program is a list of 8-byte *slots*, exactly as the kernel sees it: the 16-byte
LD_IMM64 occupies two slots (the second has opcode 0 and carries the upper 32 bits of
the immediate in ``imm``).  Keeping slots, not "logical instructions", means
instruction indices and jump offsets are the kernel's and the verifier log's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Instruction", "decode_program", "encode_program"]

_SLOT = struct.Struct("<BBhi")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One 8-byte slot: opcode, dst_reg, src_reg, signed 16-bit off, signed 32-bit imm."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        """Little-endian encoding, as clang emits for ``-target bpf`` (bpfel)."""
        return _SLOT.pack(self.opcode, (self.src << 4) | self.dst, self.off, self.imm)

    @classmethod
    def decode(cls, raw: bytes | memoryview, offset: int = 0) -> Instruction:
        opcode, regs, off, imm = _SLOT.unpack_from(raw, offset)
        return cls(opcode, regs & 0x0F, regs >> 4, off, imm)

    @property
    def cls(self) -> int:
        """The instruction class (low 3 bits of the opcode)."""
        return self.opcode & 0x07


def decode_program(raw: bytes | memoryview) -> list[Instruction]:
    """Split raw bytes into slots.  The length must be a multiple of 8; structural checks
    (opcodes, registers, jumps) are :func:`netbpf.isa.validate.validate_program`'s job."""
    from netbpf.errors import InstructionError

    if len(raw) % 8:
        raise InstructionError(
            len(raw) // 8,
            f"program is {len(raw)} bytes, not a multiple of 8 (trailing partial slot)",
        )
    return [Instruction.decode(raw, i) for i in range(0, len(raw), 8)]


def encode_program(insns: list[Instruction] | tuple[Instruction, ...]) -> bytes:
    return b"".join(i.encode() for i in insns)
