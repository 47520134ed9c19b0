"""Encoding a :class:`~netbpf.obj.btf.Btf` back to ``.BTF`` bytes, and the fix-ups a
loader applies before the kernel accepts an object's BTF.

The encoder keeps the original string section byte for byte and only appends names
it lacks, so string offsets held elsewhere (``.BTF.ext`` line info, CO-RE access
strings) stay valid.  Unmodified clang or pahole output re-encodes to identical bytes.

Fix-ups follow libbpf's documented behaviour (``bpf_object__sanitize_btf`` and
``btf_fixup_datasec``), written from its description, not its code:

* :func:`fixup_datasecs`: clang emits DATASEC size 0 and offset 0 for global
  variables; the loader fills them from the ELF section headers and symbol table,
  marks hidden globals static and sorts the entries by offset (the kernel requires
  ascending, non-overlapping entries).
* :func:`sanitize`: rewrites kinds an older kernel does not know into look-alikes it
  does (VAR/DECL_TAG -> INT, DATASEC -> STRUCT, FUNC -> TYPEDEF, FUNC_PROTO -> ENUM,
  FLOAT -> empty STRUCT, TYPE_TAG -> CONST, ENUM64 -> UNION, global FUNC -> static).
  Linux 6.18 has every feature, so with the default :class:`BtfFeatures` it returns
  the BTF unchanged; the hook exists for older kernels and is tested by forcing
  features off.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from netbpf.errors import BtfError
from netbpf.obj.btf.model import Btf
from netbpf.obj.btf.parse import BTF_MAGIC, BTF_VERSION, HEADER_SIZE, SECTION
from netbpf.obj.btf.types import (
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
    Int,
    IntEncoding,
    Kind,
    Member,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
)

__all__ = ["BtfFeatures", "encode", "fixup_datasecs", "sanitize"]

#: DATASECs whose layout libbpf computes itself (externs); never fixed up from ELF.
EXTERN_SECTIONS = frozenset({".kconfig", ".ksyms"})


class _StringTable:
    """The original string bytes plus appended names, with a name -> offset index."""

    def __init__(self, original: bytes) -> None:
        self.buf = bytearray(original)
        self.index: dict[str, int] = {}
        pos = 0
        for piece in original.split(b"\0")[:-1]:
            s = piece.decode("utf-8", "surrogateescape")
            self.index.setdefault(s, pos)
            pos += len(piece) + 1

    def offset(self, s: str) -> int:
        off = self.index.get(s)
        if off is None:
            raw = s.encode("utf-8", "surrogateescape")
            if b"\0" in raw:
                raise BtfError(f"name {s!r} contains a NUL byte", section=SECTION)
            off = len(self.buf)
            self.buf += raw + b"\0"
            self.index[s] = off
        return off


def _info(kind: Kind, vlen: int = 0, kflag: bool = False) -> int:
    return (int(kflag) << 31) | (int(kind) << 24) | vlen


def encode(btf: Btf) -> bytes:
    """``.BTF`` bytes of ``btf``."""
    fmt = "<" if btf.byteorder == "little" else ">"
    s3 = struct.Struct(fmt + "III")
    s2 = struct.Struct(fmt + "II")
    s1 = struct.Struct(fmt + "I")
    si = struct.Struct(fmt + "i")
    strings = _StringTable(btf.strings)
    so = strings.offset
    out: list[bytes] = []
    add = out.append
    for t in btf.types[1:]:
        k = t.kind
        name = so(t.name)
        if isinstance(t, Int):
            add(s3.pack(name, _info(k), t.size))
            add(s1.pack((int(t.encoding) << 24) | (t.offset << 16) | t.bits))
        elif isinstance(t, Struct | Union):
            add(s3.pack(name, _info(k, _vlen(t, len(t.members)), t.kind_flag), t.size))
            for m in t.members:
                if t.kind_flag:
                    off = (m.bitfield_size << 24) | m.bit_offset
                elif m.bitfield_size:
                    raise BtfError(
                        f"member {m.name!r} is a bitfield but the {k.name} has no kind_flag",
                        section=SECTION,
                        type_id=t.id,
                    )
                else:
                    off = m.bit_offset
                add(s3.pack(so(m.name), m.type_id, off))
        elif isinstance(t, Enum):
            add(s3.pack(name, _info(k, _vlen(t, len(t.values)), t.signed), t.size))
            for v in t.values:
                add(s2.pack(so(v.name), v.value & 0xFFFFFFFF))
        elif isinstance(t, Enum64):
            add(s3.pack(name, _info(k, _vlen(t, len(t.values)), t.signed), t.size))
            for v in t.values:
                u = v.value & 0xFFFFFFFFFFFFFFFF
                add(s3.pack(so(v.name), u & 0xFFFFFFFF, u >> 32))
        elif k == Kind.ARRAY:
            add(s3.pack(name, _info(k), 0))
            add(s3.pack(t.type_id, t.index_type_id, t.nelems))  # type: ignore[attr-defined]
        elif k == Kind.FWD:
            add(s3.pack(name, _info(k, 0, t.is_union), 0))  # type: ignore[attr-defined]
        elif isinstance(t, Func):
            add(s3.pack(name, _info(k, int(t.linkage)), t.type_id))
        elif isinstance(t, FuncProto):
            add(s3.pack(name, _info(k, _vlen(t, len(t.params))), t.return_type_id))
            for p in t.params:
                add(s2.pack(so(p.name), p.type_id))
        elif isinstance(t, Var):
            add(s3.pack(name, _info(k), t.type_id))
            add(s1.pack(int(t.linkage)))
        elif isinstance(t, Datasec):
            add(s3.pack(name, _info(k, _vlen(t, len(t.vars))), t.size))
            for vs in t.vars:
                add(s3.pack(vs.type_id, vs.offset, vs.size))
        elif isinstance(t, Float):
            add(s3.pack(name, _info(k), t.size))
        elif isinstance(t, DeclTag):
            add(s3.pack(name, _info(k, 0, t.kind_flag), t.type_id))
            add(si.pack(t.component_idx))
        elif isinstance(t, TypeTag):
            add(s3.pack(name, _info(k, 0, t.kind_flag), t.type_id))
        elif k in (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT):
            add(s3.pack(name, _info(k), t.type_id))  # type: ignore[attr-defined]
        else:
            raise BtfError(f"cannot encode a {k.name}", section=SECTION, type_id=t.id)
    type_data = b"".join(out)
    str_data = bytes(strings.buf)
    header = struct.pack(
        fmt + "HBBIIIII",
        BTF_MAGIC,
        BTF_VERSION,
        0,
        HEADER_SIZE,
        0,
        len(type_data),
        len(type_data),
        len(str_data),
    )
    return header + type_data + str_data


def _vlen(t: BtfType, n: int) -> int:
    if n > 0xFFFF:
        raise BtfError(
            f"{n} members/values/params exceed vlen 65535", section=SECTION, type_id=t.id
        )
    return n


# -- DATASEC fix-up -----------------------------------------------------------------


def fixup_datasecs(
    btf: Btf,
    section_sizes: Mapping[str, int],
    var_offsets: Mapping[str, int],
    *,
    hidden_vars: Iterable[str] = (),
) -> Btf:
    """Return ``btf`` with DATASEC sizes and VAR offsets filled in from the ELF.

    For each DATASEC other than ``.kconfig``/``.ksyms``: if its size is 0 it is set
    from ``section_sizes`` (a missing or zero size is an error, as in libbpf) and the
    offsets of its non-static, non-extern VARs are taken from ``var_offsets`` (the
    symbols' ``st_value``; a missing symbol is an error).  VARs named in
    ``hidden_vars`` (STV_HIDDEN/STV_INTERNAL globals) become static.  Entries are
    then sorted by offset.  Static variables keep the offsets clang gave them.
    """
    hidden = frozenset(hidden_vars)
    changes: dict[int, BtfType] = {}
    for sec in btf.types:
        if not isinstance(sec, Datasec):
            continue
        if sec.name in EXTERN_SECTIONS:
            new_vars = tuple(sorted(sec.vars, key=lambda v: v.offset))
            if new_vars != sec.vars:
                changes[sec.id] = replace(sec, vars=new_vars)
            continue
        size = sec.size
        fix_offsets = size == 0
        if fix_offsets:
            size = section_sizes.get(sec.name, 0)
            if not size:
                raise BtfError(
                    f"DATASEC {sec.name!r}: no size for this section in the ELF",
                    file=btf.file,
                    section=SECTION,
                    type_id=sec.id,
                )
        entries = []
        for vs in sec.vars:
            var = btf.type(vs.type_id)
            if not isinstance(var, Var):
                raise BtfError(
                    f"DATASEC {sec.name!r} lists type [{vs.type_id}], a {var.kind.name}, not a VAR",
                    file=btf.file,
                    section=SECTION,
                    type_id=sec.id,
                )
            if var.linkage in (VarLinkage.STATIC, VarLinkage.GLOBAL_EXTERN):
                entries.append(vs)
                continue
            if var.name not in var_offsets:
                raise BtfError(
                    f"DATASEC {sec.name!r}: no ELF symbol for variable {var.name!r}",
                    file=btf.file,
                    section=SECTION,
                    type_id=var.id,
                )
            if fix_offsets:
                vs = replace(vs, offset=var_offsets[var.name])
            entries.append(vs)
            if var.name in hidden:
                changes[var.id] = replace(var, linkage=VarLinkage.STATIC)
        entries.sort(key=lambda v: v.offset)
        new = replace(sec, size=size, vars=tuple(entries))
        if new != sec:
            changes[sec.id] = new
    return btf.with_types(changes) if changes else btf


# -- sanitizing for older kernels -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BtfFeatures:
    """Which BTF features the target kernel accepts (libbpf's FEAT_BTF_* probes).
    The defaults describe Linux >= 6.0, which has them all."""

    func: bool = True  # FUNC/FUNC_PROTO (4.20)
    func_global: bool = True  # global FUNC linkage (5.6)
    datasec: bool = True  # VAR/DATASEC (5.2)
    float: bool = True  # FLOAT (5.13)
    decl_tag: bool = True  # DECL_TAG (5.16)
    type_tag: bool = True  # TYPE_TAG (5.17)
    enum64: bool = True  # ENUM64 and signed enums (6.0)
    qmark_datasec: bool = True  # DATASEC names starting with '?' (5.19)

    @classmethod
    def none(cls) -> BtfFeatures:
        """A kernel with only the BTF of Linux 4.18 (for testing the rewrites)."""
        return cls(False, False, False, False, False, False, False, False)


def _c_ident(name: str) -> str:
    return name.replace(".", "_").replace("?", "_")


def sanitize(btf: Btf, features: BtfFeatures | None = None) -> Btf:
    """Return ``btf`` rewritten so a kernel with only ``features`` accepts it.

    Type ids and sizes are preserved (the rewrites are same-sized look-alikes) so
    map and program BTF ids stay valid; ENUM64 needs one extra INT appended."""
    f = features or BtfFeatures()
    if all(getattr(f, n) for n in f.__slots__):
        return btf
    changes: dict[int, BtfType] = {}
    placeholder: int | None = None
    extra: list[BtfType] = []
    for t in btf.types[1:]:
        new: BtfType | None = None
        if (not f.datasec and isinstance(t, Var)) or (not f.decl_tag and isinstance(t, DeclTag)):
            # VAR and DECL_TAG become a 1-byte INT: never larger than what they stood for.
            new = Int(t.id, t.name, 1, IntEncoding.NONE, 0, 8)
        elif not f.datasec and isinstance(t, Datasec):
            members = tuple(
                Member(btf.type(vs.type_id).name, vs.type_id, vs.offset * 8) for vs in t.vars
            )
            new = Struct(t.id, _c_ident(t.name), t.size, members)
        elif not f.qmark_datasec and isinstance(t, Datasec) and t.name.startswith("?"):
            new = replace(t, name="_" + t.name[1:])
        elif not f.func and isinstance(t, FuncProto):
            # vlen and name offsets line up with an ENUM of 4-byte values.
            new = Enum(t.id, t.name, 4, tuple(EnumValue(p.name, p.type_id) for p in t.params))
        elif not f.func and isinstance(t, Func):
            new = Typedef(t.id, t.name, t.type_id)
        elif not f.func_global and isinstance(t, Func):
            new = replace(t, linkage=FuncLinkage.STATIC)
        elif not f.float and isinstance(t, Float):
            new = Struct(t.id, "", t.size, ())
        elif not f.type_tag and isinstance(t, TypeTag):
            new = Const(t.id, "", t.type_id)
        elif not f.enum64 and isinstance(t, Enum) and t.signed:
            new = replace(t, signed=False)
        elif not f.enum64 and isinstance(t, Enum64):
            if placeholder is None:
                placeholder = len(btf) + len(extra)
                extra.append(Int(placeholder, "enum64_placeholder", 1, IntEncoding.NONE, 0, 8))
            members = tuple(Member(v.name, placeholder, 0) for v in t.values)
            new = Union(t.id, t.name, t.size, members)
        if new is not None:
            changes[t.id] = new
    if not changes:
        return btf
    return btf.with_types([*changes.values(), *extra])
