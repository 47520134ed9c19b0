"""The eBPF instruction set: slots, the opcode table, validation, (dis)assembly.

* :mod:`~netbpf.isa.instruction` — :class:`Instruction` (one 8-byte slot) and the raw
  encoding.
* :mod:`~netbpf.isa.opcodes` — ``OPCODES: dict[int, OpInfo]``, every valid opcode of
  RFC 9669 plus the Linux additions, shared by the validator, the (dis)assembler and
  the engines.
* :mod:`~netbpf.isa.asm` — :func:`assemble`: llvm-objdump / verifier-log syntax and the
  bpf_conformance syntax.
"""

from netbpf.isa.asm import assemble
from netbpf.isa.instruction import Instruction, decode_program, encode_program
from netbpf.isa.opcodes import (
    ALU_OPS,
    ATOMIC_OPS,
    CALL_SOURCES,
    JMP_OPS,
    LD_IMM64_SOURCES,
    OPCODE_BY_NAME,
    OPCODES,
    AtomicOp,
    Field,
    FieldUse,
    Group,
    Kind,
    OpInfo,
    lookup,
)

__all__ = [
    "ALU_OPS",
    "ATOMIC_OPS",
    "CALL_SOURCES",
    "JMP_OPS",
    "LD_IMM64_SOURCES",
    "OPCODES",
    "OPCODE_BY_NAME",
    "AtomicOp",
    "Field",
    "FieldUse",
    "Group",
    "Instruction",
    "Kind",
    "OpInfo",
    "assemble",
    "decode_program",
    "encode_program",
    "lookup",
]
