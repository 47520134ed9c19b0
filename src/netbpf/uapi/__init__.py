"""Kernel vocabulary: enums and constants from the UAPI headers.

The numbers live in :mod:`netbpf.uapi._generated` (made by ``scripts/gen_uapi.py``);
this module wraps them in enums with short names (``ProgramType.XDP``,
``AttachType.CGROUP_INET_INGRESS``, ``MapType.HASH``) and exposes the opcode bits as
plain module constants, named as in the kernel headers.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from netbpf.errors import NotSupportedError
from netbpf.uapi import _generated as _g

__all__ = [
    "CTX_LAYOUTS",
    "HELPER_IDS",
    "HELPER_NAMES",
    "AttachType",
    "BpfCmd",
    "MapType",
    "ProgramType",
    "XdpAction",
    "ctx_field",
    "resolve_map_type",
]


def _enum(name: str, values: dict[str, int], prefix: str) -> Any:
    return IntEnum(name, {k.removeprefix(prefix): v for k, v in values.items()})


ProgramType = _enum("ProgramType", _g.PROG_TYPES, "BPF_PROG_TYPE_")
ProgramType.__doc__ = "enum bpf_prog_type (BPF_PROG_TYPE_ prefix dropped)."
AttachType = _enum("AttachType", _g.ATTACH_TYPES, "BPF_")
AttachType.__doc__ = "enum bpf_attach_type (BPF_ prefix dropped)."
MapType = _enum("MapType", _g.MAP_TYPES, "BPF_MAP_TYPE_")
MapType.__doc__ = "enum bpf_map_type (BPF_MAP_TYPE_ prefix dropped)."
BpfCmd = _enum("BpfCmd", _g.BPF_CMD, "BPF_")
BpfCmd.__doc__ = "enum bpf_cmd: the bpf() syscall commands."
XdpAction = _enum("XdpAction", _g.XDP_ACTIONS, "XDP_")
XdpAction.__doc__ = "enum xdp_action: what an XDP program returns."


def resolve_map_type(value: MapType | str | int) -> MapType:
    """A :class:`MapType` from the enum, its number, or its name (``"hash"``,
    ``"LRU_HASH"``, ``"BPF_MAP_TYPE_ARRAY"``): how both backends' ``create_map`` take
    a map type.  NotSupportedError for anything else."""
    if isinstance(value, MapType):
        return value
    if isinstance(value, int):
        try:
            return MapType(value)
        except ValueError:
            raise NotSupportedError(f"map type {value}") from None
    key = value.upper().removeprefix("BPF_MAP_TYPE_")
    if key in MapType.__members__:
        return MapType[key]
    raise NotSupportedError(f"map type {value!r}", "use a name such as 'hash' or 'array'")


HELPER_IDS: dict[str, int] = dict(_g.HELPER_IDS)
HELPER_NAMES: dict[int, str] = {v: k for k, v in _g.HELPER_IDS.items()}
CTX_LAYOUTS = _g.CTX_LAYOUTS
DEFINES = _g.DEFINES

# Opcode bits, as in linux/bpf_common.h and linux/bpf.h.
BPF_LD = _g.DEFINES["BPF_LD"]
BPF_LDX = _g.DEFINES["BPF_LDX"]
BPF_ST = _g.DEFINES["BPF_ST"]
BPF_STX = _g.DEFINES["BPF_STX"]
BPF_ALU = _g.DEFINES["BPF_ALU"]
BPF_JMP = _g.DEFINES["BPF_JMP"]
BPF_JMP32 = _g.DEFINES["BPF_JMP32"]
BPF_ALU64 = _g.DEFINES["BPF_ALU64"]

BPF_W = _g.DEFINES["BPF_W"]
BPF_H = _g.DEFINES["BPF_H"]
BPF_B = _g.DEFINES["BPF_B"]
BPF_DW = _g.DEFINES["BPF_DW"]

BPF_IMM = _g.DEFINES["BPF_IMM"]
BPF_ABS = _g.DEFINES["BPF_ABS"]
BPF_IND = _g.DEFINES["BPF_IND"]
BPF_MEM = _g.DEFINES["BPF_MEM"]
BPF_MEMSX = _g.DEFINES["BPF_MEMSX"]
BPF_ATOMIC = _g.DEFINES["BPF_ATOMIC"]

BPF_ADD = _g.DEFINES["BPF_ADD"]
BPF_SUB = _g.DEFINES["BPF_SUB"]
BPF_MUL = _g.DEFINES["BPF_MUL"]
BPF_DIV = _g.DEFINES["BPF_DIV"]
BPF_OR = _g.DEFINES["BPF_OR"]
BPF_AND = _g.DEFINES["BPF_AND"]
BPF_LSH = _g.DEFINES["BPF_LSH"]
BPF_RSH = _g.DEFINES["BPF_RSH"]
BPF_NEG = _g.DEFINES["BPF_NEG"]
BPF_MOD = _g.DEFINES["BPF_MOD"]
BPF_XOR = _g.DEFINES["BPF_XOR"]
BPF_MOV = _g.DEFINES["BPF_MOV"]
BPF_ARSH = _g.DEFINES["BPF_ARSH"]
BPF_END = _g.DEFINES["BPF_END"]
BPF_TO_LE = _g.DEFINES["BPF_TO_LE"]
BPF_TO_BE = _g.DEFINES["BPF_TO_BE"]

BPF_K = _g.DEFINES["BPF_K"]
BPF_X = _g.DEFINES["BPF_X"]

BPF_JA = _g.DEFINES["BPF_JA"]
BPF_JEQ = _g.DEFINES["BPF_JEQ"]
BPF_JGT = _g.DEFINES["BPF_JGT"]
BPF_JGE = _g.DEFINES["BPF_JGE"]
BPF_JSET = _g.DEFINES["BPF_JSET"]
BPF_JNE = _g.DEFINES["BPF_JNE"]
BPF_JSGT = _g.DEFINES["BPF_JSGT"]
BPF_JSGE = _g.DEFINES["BPF_JSGE"]
BPF_CALL = _g.DEFINES["BPF_CALL"]
BPF_EXIT = _g.DEFINES["BPF_EXIT"]
BPF_JLT = _g.DEFINES["BPF_JLT"]
BPF_JLE = _g.DEFINES["BPF_JLE"]
BPF_JSLT = _g.DEFINES["BPF_JSLT"]
BPF_JSLE = _g.DEFINES["BPF_JSLE"]
BPF_JCOND = _g.DEFINES["BPF_JCOND"]

BPF_FETCH = _g.DEFINES["BPF_FETCH"]
BPF_XCHG = _g.DEFINES["BPF_XCHG"]
BPF_CMPXCHG = _g.DEFINES["BPF_CMPXCHG"]

BPF_PSEUDO_MAP_FD = _g.DEFINES["BPF_PSEUDO_MAP_FD"]
BPF_PSEUDO_MAP_VALUE = _g.DEFINES["BPF_PSEUDO_MAP_VALUE"]
BPF_PSEUDO_BTF_ID = _g.DEFINES["BPF_PSEUDO_BTF_ID"]
BPF_PSEUDO_FUNC = _g.DEFINES["BPF_PSEUDO_FUNC"]
BPF_PSEUDO_MAP_IDX = _g.DEFINES["BPF_PSEUDO_MAP_IDX"]
BPF_PSEUDO_MAP_IDX_VALUE = _g.DEFINES["BPF_PSEUDO_MAP_IDX_VALUE"]
BPF_PSEUDO_CALL = _g.DEFINES["BPF_PSEUDO_CALL"]
BPF_PSEUDO_KFUNC_CALL = _g.DEFINES["BPF_PSEUDO_KFUNC_CALL"]

MAX_BPF_STACK = 512
MAX_CALL_FRAMES = 8
MAX_TAIL_CALL_CNT = 33


def ctx_field(struct: str, name: str) -> tuple[int, int]:
    """(offset, size) of a field of a context struct, e.g. ``ctx_field("xdp_md", "data")``."""
    for fname, off, size, _ctype in CTX_LAYOUTS[struct][1]:
        if fname == name:
            return off, size
    raise KeyError(f"struct {struct} has no field {name!r}")
