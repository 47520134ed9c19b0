"""BTF, the BPF Type Format: parsing, encoding, ``.BTF.ext`` and CO-RE relocations.

Our own implementation of linux/btf.h and libbpf's documented CO-RE semantics.

* :class:`Btf` — a type table (``Btf.parse(raw)``, ``btf.types[id]``, ``find``,
  ``resolve``, ``size_of``, ``format_type``, ``to_bytes``, ``fixup_datasecs``).
* The type records (:class:`Int`, :class:`Struct`, ... one per ``BTF_KIND_*``).
* :class:`BtfExt` — func info, line info and CO-RE records of ``.BTF.ext``.
* :func:`compute_core_relocation` / :func:`apply_core_relocation` — CO-RE.
* :func:`load_vmlinux_btf` — the kernel's BTF; :func:`format_raw` — bpftool's dump.
"""

from __future__ import annotations

from netbpf.obj.btf.core import (
    POISON_IMM,
    CoreCandidateCache,
    CoreReloResult,
    apply_core_relocation,
    compute_core_relocation,
    essential_name,
)
from netbpf.obj.btf.dump import format_raw, format_type
from netbpf.obj.btf.encode import BtfFeatures, fixup_datasecs, sanitize
from netbpf.obj.btf.ext import (
    BtfExt,
    CoreRelo,
    CoreReloKind,
    FuncInfo,
    LineInfo,
    encode_func_info,
    encode_line_info,
)
from netbpf.obj.btf.model import Btf, Field
from netbpf.obj.btf.types import (
    VOID,
    Array,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Void,
    Volatile,
)
from netbpf.obj.btf.vmlinux import VMLINUX_BTF_PATH, load_vmlinux_btf

__all__ = [
    "POISON_IMM",
    "VMLINUX_BTF_PATH",
    "VOID",
    "Array",
    "Btf",
    "BtfExt",
    "BtfFeatures",
    "BtfType",
    "Const",
    "CoreCandidateCache",
    "CoreRelo",
    "CoreReloKind",
    "CoreReloResult",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Field",
    "Float",
    "Func",
    "FuncInfo",
    "FuncLinkage",
    "FuncProto",
    "Fwd",
    "Int",
    "IntEncoding",
    "Kind",
    "LineInfo",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "Struct",
    "TypeTag",
    "Typedef",
    "Union",
    "Var",
    "VarLinkage",
    "VarSecinfo",
    "Void",
    "Volatile",
    "apply_core_relocation",
    "compute_core_relocation",
    "encode_func_info",
    "encode_line_info",
    "essential_name",
    "fixup_datasecs",
    "format_raw",
    "format_type",
    "load_vmlinux_btf",
    "sanitize",
]
