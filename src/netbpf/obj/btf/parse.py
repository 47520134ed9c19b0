"""Decoding the ``.BTF`` wire format (linux/btf.h, Documentation/bpf/btf.rst).

Parsing is two-phase so that the 5 MB vmlinux BTF costs little until it is used:

1. :func:`scan` validates the header and walks the type section once, checking that
   every record (header plus its kind-specific tail) lies inside the section and
   recording where each type id starts.  This is all that ``lazy`` parsing does.
2. :meth:`Decoder.decode` turns one record into a frozen dataclass, validating its
   contents (string offsets, referenced type ids, int encodings, linkages...).  Eager
   parsing decodes every record up front, so any malformed byte is reported by
   ``Btf.parse`` itself.

Every problem is a :class:`~netbpf.errors.BtfError` naming the section, the byte
offset *within the section* (so it can be found with ``xxd``) and the type id.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import ClassVar

from netbpf.errors import BtfError
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
    Volatile,
)

__all__ = ["BTF_MAGIC", "Decoder", "Header", "scan"]

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HEADER_SIZE = 24  # sizeof(struct btf_header)
MAX_TYPE_ID = 0x000FFFFF
SECTION = ".BTF"

# Bytes that follow the 12-byte btf_type header: (fixed, per vlen element).
_TAIL: dict[int, tuple[int, int]] = {
    Kind.INT: (4, 0),
    Kind.PTR: (0, 0),
    Kind.ARRAY: (12, 0),
    Kind.STRUCT: (0, 12),
    Kind.UNION: (0, 12),
    Kind.ENUM: (0, 8),
    Kind.FWD: (0, 0),
    Kind.TYPEDEF: (0, 0),
    Kind.VOLATILE: (0, 0),
    Kind.CONST: (0, 0),
    Kind.RESTRICT: (0, 0),
    Kind.FUNC: (0, 0),
    Kind.FUNC_PROTO: (0, 8),
    Kind.VAR: (4, 0),
    Kind.DATASEC: (0, 12),
    Kind.FLOAT: (0, 0),
    Kind.DECL_TAG: (4, 0),
    Kind.TYPE_TAG: (0, 0),
    Kind.ENUM64: (0, 12),
}
_TAIL_LIST = [_TAIL.get(k, (-1, -1)) for k in range(32)]

# Kinds for which the kernel accepts a set kind_flag / a non-zero vlen.
_KFLAG_OK = frozenset(
    {Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.DECL_TAG, Kind.TYPE_TAG}
)
_VLEN_OK = frozenset(
    {Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FUNC, Kind.FUNC_PROTO, Kind.DATASEC}
)
_INFO_UNUSED = 0x60FF0000  # bits 16-23 and 29-30 of btf_type.info


@dataclass(frozen=True, slots=True)
class Header:
    """``struct btf_header``; offsets are relative to the end of the header."""

    byteorder: str  # "little" or "big"
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int


def parse_header(raw: bytes | memoryview, file: str | None) -> Header:
    """Validate and decode the BTF header against the section size (as libbpf's
    ``btf_parse_hdr`` does, plus the kernel's "unknown header bytes must be zero")."""
    size = len(raw)
    if size < 8:
        raise BtfError(
            f"section is {size} bytes, too short for a BTF header",
            file=file,
            section=SECTION,
            offset=0,
        )
    magic_le = int.from_bytes(raw[0:2], "little")
    if magic_le == BTF_MAGIC:
        order, fmt = "little", "<"
    elif int.from_bytes(raw[0:2], "big") == BTF_MAGIC:
        order, fmt = "big", ">"
    else:
        raise BtfError(
            f"bad magic {magic_le:#06x} (expected {BTF_MAGIC:#06x})",
            file=file,
            section=SECTION,
            offset=0,
        )
    _, version, flags, hdr_len = struct.unpack_from(fmt + "HBBI", raw, 0)
    if version != BTF_VERSION:
        raise BtfError(f"unsupported BTF version {version}", file=file, section=SECTION, offset=2)
    if flags != 0:
        raise BtfError(f"unsupported BTF flags {flags:#x}", file=file, section=SECTION, offset=3)
    if hdr_len < HEADER_SIZE:
        raise BtfError(
            f"hdr_len {hdr_len} is smaller than the {HEADER_SIZE}-byte BTF header",
            file=file,
            section=SECTION,
            offset=4,
        )
    if hdr_len > size:
        raise BtfError(
            f"hdr_len {hdr_len} exceeds the section size {size}",
            file=file,
            section=SECTION,
            offset=4,
        )
    for pos in range(HEADER_SIZE, hdr_len):
        if raw[pos]:
            raise BtfError(
                "unknown non-zero field in the extended BTF header",
                file=file,
                section=SECTION,
                offset=pos,
            )
    type_off, type_len, str_off, str_len = struct.unpack_from(fmt + "IIII", raw, 8)
    data = size - hdr_len
    if type_off % 4:
        raise BtfError(
            f"type_off {type_off} is not 4-byte aligned", file=file, section=SECTION, offset=8
        )
    if type_len % 4:
        raise BtfError(
            f"type_len {type_len} is not a multiple of 4", file=file, section=SECTION, offset=12
        )
    if type_off + type_len > data:
        raise BtfError(
            f"type section [{type_off}, +{type_len}) runs past the {data} data bytes",
            file=file,
            section=SECTION,
            offset=12,
        )
    if str_off + str_len > data:
        raise BtfError(
            f"string section [{str_off}, +{str_len}) runs past the {data} data bytes",
            file=file,
            section=SECTION,
            offset=20,
        )
    if type_off + type_len > str_off:
        raise BtfError(
            f"type section [{type_off}, +{type_len}) overlaps or follows the string "
            f"section at {str_off}",
            file=file,
            section=SECTION,
            offset=16,
        )
    s0 = hdr_len + str_off
    if str_len == 0 or raw[s0] != 0 or raw[s0 + str_len - 1] != 0:
        raise BtfError(
            "string section must start and end with a NUL byte",
            file=file,
            section=SECTION,
            offset=s0,
        )
    return Header(order, version, flags, hdr_len, type_off, type_len, str_off, str_len)


class Decoder:
    """The raw type and string sections of one BTF plus the result of :func:`scan`.

    ``offsets[id]`` is the position of type ``id``'s record in ``types`` (index 0,
    void, is unused); ``name_offs[id]`` its name offset."""

    __slots__ = (
        "_int",
        "_s4",
        "_s12",
        "_str_cache",
        "base",
        "file",
        "fmt",
        "header",
        "name_offs",
        "offsets",
        "strings",
        "types",
    )

    def __init__(self, raw: bytes, header: Header, file: str | None) -> None:
        self.header = header
        self.file = file
        self.base = header.hdr_len + header.type_off  # section offset of the type data
        self.types = raw[self.base : self.base + header.type_len]
        s0 = header.hdr_len + header.str_off
        self.strings = raw[s0 : s0 + header.str_len]
        self.fmt = "<" if header.byteorder == "little" else ">"
        self._s12 = struct.Struct(self.fmt + "III")
        self._s4 = struct.Struct(self.fmt + "I")
        self._int = struct.Struct(self.fmt + "i")
        self._str_cache: dict[int, str] = {0: ""}
        self.offsets: list[int] = [0]
        self.name_offs: list[int] = [0]

    # -- errors -------------------------------------------------------------------
    def error(self, reason: str, pos: int, type_id: int | None = None) -> BtfError:
        """A BtfError at ``pos`` within the type data (reported as a section offset)."""
        return BtfError(
            reason, file=self.file, section=SECTION, offset=self.base + pos, type_id=type_id
        )

    # -- strings ------------------------------------------------------------------
    def string(self, off: int, pos: int, type_id: int) -> str:
        """The NUL-terminated string at ``off``.  Names are kept as UTF-8 with
        surrogate escapes so that any byte string round-trips exactly."""
        s = self._str_cache.get(off)
        if s is not None:
            return s
        if off >= len(self.strings):
            raise self.error(
                f"name offset {off} is outside the {len(self.strings)}-byte string section",
                pos,
                type_id,
            )
        end = self.strings.index(b"\0", off)  # the section ends with NUL: never fails
        s = self.strings[off:end].decode("utf-8", "surrogateescape")
        self._str_cache[off] = s
        return s

    # -- phase 1 --------------------------------------------------------------------
    def scan(self) -> None:
        """Walk the type section, recording each record's offset and name offset and
        checking that every record lies inside the section."""
        data = self.types
        n = len(data)
        unpack = self._s12.unpack_from
        tails = _TAIL_LIST
        offsets = self.offsets
        name_offs = self.name_offs
        str_len = len(self.strings)
        pos = 0
        tid = 1
        while pos < n:
            if pos + 12 > n:
                raise self.error(
                    f"truncated type record: {n - pos} bytes left, a btf_type needs 12",
                    pos,
                    tid,
                )
            name_off, info, _ = unpack(data, pos)
            kind = (info >> 24) & 0x1F
            fixed, per = tails[kind]
            if fixed < 0:
                raise self.error(f"unknown BTF kind {kind}", pos, tid)
            if name_off >= str_len:
                raise self.error(
                    f"name offset {name_off} is outside the {str_len}-byte string section",
                    pos,
                    tid,
                )
            end = pos + 12 + fixed + per * (info & 0xFFFF)
            if end > n:
                raise self.error(
                    f"{Kind(kind).name} record of {end - pos} bytes runs past the end of "
                    f"the type section ({n - pos} bytes left)",
                    pos,
                    tid,
                )
            if tid > MAX_TYPE_ID:
                raise self.error(f"more than {MAX_TYPE_ID} types", pos, tid)
            offsets.append(pos)
            name_offs.append(name_off)
            pos = end
            tid += 1

    @property
    def count(self) -> int:
        """Number of type ids including void."""
        return len(self.offsets)

    # -- phase 2 --------------------------------------------------------------------
    def prime_strings(self) -> None:
        """Decode every string of the section at once (cheaper than one by one when
        all types are about to be decoded)."""
        pieces = self.strings.split(b"\0")
        starts = accumulate((len(p) + 1 for p in pieces), initial=0)
        cache = dict(zip(starts, (p.decode("utf-8", "surrogateescape") for p in pieces)))
        cache.update(self._str_cache)
        self._str_cache = cache

    def _ref(self, ref: int, pos: int, tid: int, what: str = "type") -> int:
        if ref >= len(self.offsets):
            raise self.error(
                f"{what} id {ref} is out of range (the BTF has {len(self.offsets) - 1} types)",
                pos,
                tid,
            )
        return ref

    def decode(self, tid: int) -> BtfType:
        """Decode and validate type ``tid`` (1 <= tid < count)."""
        if tid == 0:
            return VOID
        pos = self.offsets[tid]
        name_off, info, sot = self._s12.unpack_from(self.types, pos)
        kind = (info >> 24) & 0x1F
        if (
            info & _INFO_UNUSED
            or (info >> 31 and kind not in _KFLAG_OK)
            or (info & 0xFFFF and kind not in _VLEN_OK)
        ):
            self._bad_info(tid, pos, info, kind)
        name = self._str_cache.get(name_off)
        if name is None:
            name = self.string(name_off, pos, tid)
        return self._DISPATCH[kind](self, tid, name, pos, info, sot)

    def _bad_info(self, tid: int, pos: int, info: int, kind: int) -> None:
        k = Kind(kind).name
        if info & _INFO_UNUSED:
            raise self.error(f"unused bits set in btf_type.info {info:#010x}", pos + 4, tid)
        if info >> 31:
            raise self.error(f"kind_flag set on a {k}", pos + 4, tid)
        raise self.error(f"vlen {info & 0xFFFF} on a {k} (must be 0)", pos + 4, tid)

    def _names(self, offs: Iterable[int], pos: int, step: int, tid: int) -> list[str]:
        cache = self._str_cache
        out = []
        for off in offs:
            s = cache.get(off)
            if s is None:
                s = self.string(off, pos, tid)
            out.append(s)
            pos += step
        return out

    def _refs(self, ids: Iterable[int], pos: int, step: int, tid: int, what: str) -> None:
        n = len(self.offsets)
        for ref in ids:
            if ref >= n:
                self._ref(ref, pos, tid, what)
            pos += step

    # One decoder per kind: (self, tid, name, pos, info, size_or_type) -> record.
    def _d_int(self, tid: int, name: str, pos: int, info: int, size: int) -> BtfType:
        tail = pos + 12
        (word,) = self._s4.unpack_from(self.types, tail)
        if word & 0xF000FF00:
            raise self.error(f"reserved bits set in INT data {word:#010x}", tail, tid)
        enc = (word >> 24) & 0x0F
        off = (word >> 16) & 0xFF
        bits = word & 0xFF
        if enc not in _INT_ENCODINGS:
            raise self.error(f"unsupported INT encoding {enc:#x}", tail, tid)
        if size not in (1, 2, 4, 8, 16):
            raise self.error(f"INT size {size} is not 1, 2, 4, 8 or 16", pos + 8, tid)
        if bits == 0 or off + bits > size * 8:
            raise self.error(
                f"INT bits {bits} at offset {off} do not fit in {size} bytes", tail, tid
            )
        return Int(tid, name, size, _INT_ENCODINGS[enc], off, bits)

    def _d_ptr(self, tid: int, name: str, pos: int, info: int, ref: int) -> BtfType:
        if ref >= len(self.offsets):
            self._ref(ref, pos + 8, tid)
        return Ptr(tid, name, ref)

    def _d_array(self, tid: int, name: str, pos: int, info: int, _: int) -> BtfType:
        tail = pos + 12
        elem, index, nelems = self._s12.unpack_from(self.types, tail)
        self._ref(elem, tail, tid)
        self._ref(index, tail + 4, tid, "index type")
        return Array(tid, name, elem, index, nelems)

    def _d_composite(self, tid: int, name: str, pos: int, info: int, size: int) -> BtfType:
        tail = pos + 12
        vlen = info & 0xFFFF
        rows = list(self._s12.iter_unpack(self.types[tail : tail + 12 * vlen]))
        cache = self._str_cache
        kflag = bool(info >> 31)
        try:
            if rows and max([r[1] for r in rows]) >= len(self.offsets):
                raise KeyError
            if kflag:
                members = tuple([Member(cache[n], t, o & 0xFFFFFF, o >> 24) for n, t, o in rows])
            else:
                members = tuple([Member(cache[n], t, o, 0) for n, t, o in rows])
        except KeyError:  # an unseen or bad name offset, or a bad type id: slow path
            names = self._names((r[0] for r in rows), tail, 12, tid)
            self._refs((r[1] for r in rows), tail + 4, 12, tid, "member type")
            members = tuple(
                Member(n, t, o & 0xFFFFFF, o >> 24) if kflag else Member(n, t, o, 0)
                for n, (_, t, o) in zip(names, rows)
            )
        cls = Struct if (info >> 24) & 0x1F == Kind.STRUCT else Union
        return cls(tid, name, size, members, kflag)

    def _d_enum(self, tid: int, name: str, pos: int, info: int, size: int) -> BtfType:
        tail = pos + 12
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        rows = list(
            struct.iter_unpack(
                self.fmt + ("Ii" if kflag else "II"), self.types[tail : tail + 8 * vlen]
            )
        )
        names = self._names((r[0] for r in rows), tail, 8, tid)
        self._enum_size(size, pos, tid)
        values = tuple(EnumValue(n, v) for n, (_, v) in zip(names, rows))
        return Enum(tid, name, size, values, kflag)

    def _d_enum64(self, tid: int, name: str, pos: int, info: int, size: int) -> BtfType:
        tail = pos + 12
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        rows = list(self._s12.iter_unpack(self.types[tail : tail + 12 * vlen]))
        names = self._names((r[0] for r in rows), tail, 12, tid)
        self._enum_size(size, pos, tid)
        values = []
        for n, (_, lo, hi) in zip(names, rows):
            v = (hi << 32) | lo
            if kflag and v >= 1 << 63:
                v -= 1 << 64
            values.append(EnumValue(n, v))
        return Enum64(tid, name, size, tuple(values), kflag)

    def _d_fwd(self, tid: int, name: str, pos: int, info: int, _: int) -> BtfType:
        return Fwd(tid, name, bool(info >> 31))

    def _d_ref(self, tid: int, name: str, pos: int, info: int, ref: int) -> BtfType:
        if ref >= len(self.offsets):
            self._ref(ref, pos + 8, tid)
        kind = (info >> 24) & 0x1F
        if kind == Kind.TYPE_TAG:
            return TypeTag(tid, name, ref, bool(info >> 31))
        return _REF_CLASSES[kind](tid, name, ref)

    def _d_func(self, tid: int, name: str, pos: int, info: int, ref: int) -> BtfType:
        linkage = info & 0xFFFF
        if linkage > FuncLinkage.EXTERN:
            raise self.error(f"unknown FUNC linkage {linkage}", pos + 4, tid)
        self._ref(ref, pos + 8, tid)
        return Func(tid, name, ref, _FUNC_LINKAGES[linkage])

    def _d_func_proto(self, tid: int, name: str, pos: int, info: int, ret: int) -> BtfType:
        tail = pos + 12
        vlen = info & 0xFFFF
        rows = list(struct.iter_unpack(self.fmt + "II", self.types[tail : tail + 8 * vlen]))
        self._ref(ret, pos + 8, tid, "return type")
        cache = self._str_cache
        try:
            if rows and max([r[1] for r in rows]) >= len(self.offsets):
                raise KeyError
            params = tuple([Param(cache[n], t) for n, t in rows])
        except KeyError:  # an unseen or bad name offset, or a bad type id: slow path
            names = self._names((r[0] for r in rows), tail, 8, tid)
            self._refs((r[1] for r in rows), tail + 4, 8, tid, "param type")
            params = tuple(Param(n, t) for n, (_, t) in zip(names, rows))
        return FuncProto(tid, name, ret, params)

    def _d_var(self, tid: int, name: str, pos: int, info: int, ref: int) -> BtfType:
        tail = pos + 12
        (linkage,) = self._s4.unpack_from(self.types, tail)
        if linkage > VarLinkage.GLOBAL_EXTERN:
            raise self.error(f"unknown VAR linkage {linkage}", tail, tid)
        self._ref(ref, pos + 8, tid)
        return Var(tid, name, ref, _VAR_LINKAGES[linkage])

    def _d_datasec(self, tid: int, name: str, pos: int, info: int, size: int) -> BtfType:
        tail = pos + 12
        vlen = info & 0xFFFF
        rows = list(self._s12.iter_unpack(self.types[tail : tail + 12 * vlen]))
        self._refs((r[0] for r in rows), tail, 12, tid, "variable type")
        return Datasec(tid, name, size, tuple(VarSecinfo(*r) for r in rows))

    def _d_float(self, tid: int, name: str, pos: int, info: int, size: int) -> BtfType:
        if size not in (2, 4, 8, 12, 16):
            raise self.error(f"FLOAT size {size} is not 2, 4, 8, 12 or 16", pos + 8, tid)
        return Float(tid, name, size)

    def _d_decl_tag(self, tid: int, name: str, pos: int, info: int, ref: int) -> BtfType:
        tail = pos + 12
        (component,) = self._int.unpack_from(self.types, tail)
        if component < -1:
            raise self.error(f"DECL_TAG component_idx {component} < -1", tail, tid)
        self._ref(ref, pos + 8, tid)
        return DeclTag(tid, name, ref, component, bool(info >> 31))

    def _enum_size(self, size: int, pos: int, tid: int) -> None:
        if size not in (1, 2, 4, 8):
            raise self.error(f"enum size {size} is not 1, 2, 4 or 8", pos + 8, tid)

    _DISPATCH: ClassVar[list[Callable[..., BtfType]]] = []


Decoder._DISPATCH.extend(
    [
        Decoder._bad_info,  # UNKN never reaches decode: scan rejects unknown kinds
        Decoder._d_int,
        Decoder._d_ptr,
        Decoder._d_array,
        Decoder._d_composite,
        Decoder._d_composite,
        Decoder._d_enum,
        Decoder._d_fwd,
        Decoder._d_ref,
        Decoder._d_ref,
        Decoder._d_ref,
        Decoder._d_ref,
        Decoder._d_func,
        Decoder._d_func_proto,
        Decoder._d_var,
        Decoder._d_datasec,
        Decoder._d_float,
        Decoder._d_decl_tag,
        Decoder._d_ref,
        Decoder._d_enum64,
    ]
)

_INT_ENCODINGS = {
    0: IntEncoding.NONE,
    1: IntEncoding.SIGNED,
    2: IntEncoding.CHAR,
    4: IntEncoding.BOOL,
}
_FUNC_LINKAGES = list(FuncLinkage)
_VAR_LINKAGES = list(VarLinkage)
_REF_CLASSES: dict[int, type[BtfType]] = {
    Kind.TYPEDEF: Typedef,
    Kind.VOLATILE: Volatile,
    Kind.CONST: Const,
    Kind.RESTRICT: Restrict,
}


def scan(raw: bytes, file: str | None) -> Decoder:
    """Validate the header and scan the type section of a raw ``.BTF`` section."""
    header = parse_header(raw, file)
    dec = Decoder(bytes(raw), header, file)
    dec.scan()
    return dec
