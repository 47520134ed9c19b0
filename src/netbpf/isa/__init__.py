"""The eBPF instruction set: slots, the opcode table, validation, (dis)assembly.

* :mod:`~netbpf.isa.instruction` — :class:`Instruction` (one 8-byte slot) and the raw
  encoding.
* :mod:`~netbpf.isa.opcodes` — ``OPCODES: dict[int, OpInfo]``, every valid opcode of
  RFC 9669 plus the Linux additions, shared by the validator, the (dis)assembler and
  the engines.
* :mod:`~netbpf.isa.validate` — :func:`validate_program`: the kernel's structural checks
  (unknown opcodes, reserved fields, registers, jump ranges, ld_imm64 halves).
* :mod:`~netbpf.isa.asm` — :func:`assemble`: llvm-objdump / verifier-log syntax and the
  bpf_conformance syntax.
* :mod:`~netbpf.isa.disasm` — :func:`disassemble` / :func:`format_insn` in the
  llvm-objdump or the verifier-log style; ``assemble(disassemble(p)) == p``.
"""

from netbpf.isa.asm import assemble
from netbpf.isa.disasm import Style, disassemble, format_insn
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
from netbpf.isa.validate import jump_target, subprogram_starts, validate_program

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
    "Style",
    "assemble",
    "decode_program",
    "disassemble",
    "encode_program",
    "format_insn",
    "jump_target",
    "lookup",
    "subprogram_starts",
    "validate_program",
]
