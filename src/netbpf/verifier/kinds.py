"""The instruction kinds of :class:`netbpf.isa.opcodes.Kind` as plain module
attributes, for the verifier's per-instruction code.

``Kind`` is an enum, and in Python 3.11 every ``Kind.ALU`` goes through the enum
class's attribute machinery (about 0.3 µs; a test such as ``k in (Kind.ALU,
Kind.MOV, Kind.NEG, Kind.END)`` about 2 µs), which the verifier paid several times
per processed instruction.  ``K.ALU`` (``from netbpf.verifier import kinds as K``) is
the same member object, found by a module dictionary lookup.
"""

from __future__ import annotations

from netbpf.isa.opcodes import Kind

ALU = Kind.ALU
NEG = Kind.NEG
MOV = Kind.MOV
END = Kind.END
LD_IMM64 = Kind.LD_IMM64
LD_ABS = Kind.LD_ABS
LD_IND = Kind.LD_IND
LDX = Kind.LDX
ST = Kind.ST
STX = Kind.STX
ATOMIC = Kind.ATOMIC
JA = Kind.JA
JCC = Kind.JCC
CALL = Kind.CALL
CALLX = Kind.CALLX
EXIT = Kind.EXIT
MAY_GOTO = Kind.MAY_GOTO

#: kinds handled by check_alu_op
ALU_KINDS = frozenset((ALU, MOV, NEG, END))
