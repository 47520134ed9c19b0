"""Typed values: Python values <-> bytes, through BTF.

A map's key and value, a global variable, or any BTF type can be read and written as
Python values instead of raw bytes.  :func:`value_codec` compiles a BTF type id once
into a :class:`ValueCodec` (``decode(bytes) -> value``, ``encode(value) -> bytes``);
:class:`TypedMap` wraps any raw-bytes map (the simulator's or the kernel's, see
:class:`netbpf.backend.Map`) with a pair of codecs and gives dict-like access.

How C types map to Python (the choices, and why):

* integers -> ``int`` with the BTF signedness and size (1..16 bytes, ``__int128``
  included); ``_Bool`` -> ``bool``; bitfields (kind_flag structs and legacy INT
  offset/bits encodings) -> ``int`` of the field's width, sign-extended when the
  base type is signed.  Encoding is strict: a value outside the field's range is an
  error naming the range, never silently truncated (C would truncate; a map written
  from Python should not lose bits by accident).
* enums -> a member of a generated :class:`enum.IntEnum` (one class per BTF enum,
  named like the C enum) when the value is a known enumerator, else a plain ``int``.
  An IntEnum *is* an int (``==``, arithmetic and JSON work as for the number), prints
  its C name, and values outside the enum — legal in C, common for flag sets — stay
  lossless.  Encoding takes an int or an enumerator name (``"XDP_PASS"``).
* arrays of 1-byte integers (``char``, ``signed``/``unsigned char``, ``__u8``,
  ``__s8``) -> ``bytes`` of the full array length, trailing NULs kept (lossless: a
  MAC address, an IPv6 address or a name buffer are bytes, and ``.rstrip(b"\\0")`` is
  the caller's choice).  Encoding takes bytes, ``str`` (UTF-8) or a list of ints,
  shorter than the array is zero-padded as in a C initialiser.
* other arrays -> ``list`` (multi-dimensional: nested lists); encoding a shorter
  list zero-fills the rest.
* structs and unions -> ``dict`` of member name -> value.  Dicts rather than
  generated dataclasses because (1) values are read-modify-written
  (``v = m[k]; v["pkts"] += 1; m[k] = v``) and frozen dataclasses would need
  ``replace()`` while mutable ones are no better than dicts; (2) a partial dict
  encodes like a C designated initialiser (missing members are zero); (3) the CLI's
  ``--json`` output and differential tests compare plain data, and dataclass equality
  would depend on class identity, which differs between two codecs of the same BTF.
  The cost: a struct decoded as a key is unhashable, so ``dict(typed.items())`` only
  works for scalar keys; iterate ``items()`` instead.  Members of anonymous
  struct/union members are flattened into the parent dict, as C lets you name them.
  A union decodes to every member's view; encoding takes one member, or several
  that agree byte for byte (a decoded union re-encodes unchanged; changing one view
  of it and leaving the others is refused as ambiguous).
* ``DATASEC`` (a global-data section's value) -> ``dict`` of variable name -> value.
* pointers -> ``int`` (8 bytes on BPF); floats -> ``float`` (2, 4 and 8 bytes;
  other sizes decode to raw ``bytes``).
* any struct, union, array or datasec also accepts ``bytes`` of exactly its size when
  encoding (a raw escape hatch).

Errors in values are :class:`~netbpf.errors.BtfValueError` (a ``ValueError``)
naming the C type and the path: ``struct flow.ports[1]: 70000 does not fit unsigned
short (0..65535)``.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from netbpf.errors import BtfError, BtfValueError, MapKeyNotFoundError, NotSupportedError
from netbpf.obj.btf import (
    Array,
    Btf,
    Datasec,
    Enum,
    Enum64,
    Float,
    Int,
    IntEncoding,
    Ptr,
    Struct,
    Union,
    Var,
)
from netbpf.uapi import MapType

__all__ = [
    "PERCPU_MAP_TYPES",
    "TypedMap",
    "ValueCodec",
    "bytes_codec",
    "int_codec",
    "percpu_stride",
    "value_codec",
]

#: Map types whose user-space values hold one value per possible CPU.
PERCPU_MAP_TYPES = frozenset(
    {
        MapType.PERCPU_HASH,
        MapType.PERCPU_ARRAY,
        MapType.LRU_PERCPU_HASH,
        MapType.PERCPU_CGROUP_STORAGE,
    }
)

#: Map types whose key is a u32 index by definition (used when the key has no BTF).
_INDEXED_MAP_TYPES = frozenset(
    {
        MapType.ARRAY,
        MapType.PERCPU_ARRAY,
        MapType.PROG_ARRAY,
        MapType.PERF_EVENT_ARRAY,
        MapType.CGROUP_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.DEVMAP,
        MapType.CPUMAP,
        MapType.XSKMAP,
        MapType.SOCKMAP,
        MapType.REUSEPORT_SOCKARRAY,
    }
)

#: Map types whose 4-byte value is an object id seen from user space (fd written,
#: id read back) — a u32 when the value has no BTF.
_ID_VALUE_MAP_TYPES = frozenset(
    {
        MapType.PROG_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
    }
)


def percpu_stride(value_size: int) -> int:
    """Bytes one CPU's value takes in a per-CPU map's user-space buffer: the kernel
    rounds every CPU's slot up to 8 bytes."""
    return (value_size + 7) // 8 * 8


class _Bad(Exception):
    """Internal: a value problem at ``path``; turned into BtfValueError at the top."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


def _at(path: str, e: _Bad) -> _Bad:
    return _Bad(e.reason, path + e.path)


# ------------------------------------------------------------------------- codecs


class ValueCodec:
    """Encodes and decodes one BTF type.  ``size`` is the type's byte size,
    ``type_name`` its C spelling (used in error messages)."""

    size: int
    type_name: str

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The Python value of exactly ``size`` bytes."""
        if len(data) != self.size:
            raise BtfValueError(
                f"{len(data)} bytes to decode, the type is {self.size} bytes",
                type_name=self.type_name,
            )
        return self.decode_from(bytes(data), 0)

    def encode(self, value: Any) -> bytes:
        """The ``size`` bytes of ``value`` (BtfValueError if it does not fit)."""
        buf = bytearray(self.size)
        try:
            self.encode_into(buf, 0, value)
        except _Bad as e:
            raise BtfValueError(e.reason, type_name=self.type_name, path=e.path) from None
        return bytes(buf)

    # Subclasses implement these two on a shared buffer (no copies per member).
    def decode_from(self, buf: bytes, off: int) -> Any:
        raise NotImplementedError

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type_name!r} size={self.size}>"


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool | int):
        return int(value)
    raise _Bad(f"{value!r} is not an integer ({what})")


class _IntCodec(ValueCodec):
    """A BTF INT; ``bit_offset``/``bits`` other than 0/size*8 for legacy bitfields."""

    def __init__(
        self,
        type_name: str,
        size: int,
        *,
        signed: bool,
        is_bool: bool = False,
        byteorder: str = "little",
        bit_offset: int = 0,
        bits: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.size = size
        self.signed = signed
        self.is_bool = is_bool
        self.byteorder = byteorder
        self.bit_offset = bit_offset
        self.bits = size * 8 if bits is None else bits
        self.whole = bit_offset == 0 and self.bits == size * 8
        if self.signed:
            self.lo, self.hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        else:
            self.lo, self.hi = 0, (1 << self.bits) - 1

    def decode_from(self, buf: bytes, off: int) -> Any:
        raw = buf[off : off + self.size]
        if self.whole:
            v = int.from_bytes(raw, self.byteorder, signed=self.signed)  # type: ignore[arg-type]
        else:
            v = int.from_bytes(raw, self.byteorder) >> self.bit_offset  # type: ignore[arg-type]
            v &= (1 << self.bits) - 1
            if self.signed and v >> (self.bits - 1):
                v -= 1 << self.bits
        return bool(v) if self.is_bool else v

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        v = _as_int(value, self.type_name)
        if not self.lo <= v <= self.hi:
            raise _Bad(f"{v} does not fit {self.type_name} ({self.lo}..{self.hi})")
        order = self.byteorder
        if self.whole:
            buf[off : off + self.size] = v.to_bytes(self.size, order, signed=self.signed)  # type: ignore[arg-type]
            return
        cur = int.from_bytes(buf[off : off + self.size], order)  # type: ignore[arg-type]
        mask = ((1 << self.bits) - 1) << self.bit_offset
        cur = (cur & ~mask) | ((v << self.bit_offset) & mask)
        buf[off : off + self.size] = cur.to_bytes(self.size, order)  # type: ignore[arg-type]


class _EnumCodec(ValueCodec):
    """A BTF ENUM/ENUM64: decodes to the generated IntEnum member, else an int."""

    def __init__(self, type_name: str, size: int, signed: bool, values: Iterable[Any]) -> None:
        self.type_name = type_name
        self.size = size
        self.signed = signed
        bits = size * 8
        self.lo, self.hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        )
        self.by_name: dict[str, int] = {}
        for ev in values:
            v = ev.value
            if not signed and v < 0:  # BTF stores the bits; read them unsigned
                v &= (1 << bits) - 1
            elif signed and v > self.hi:
                v -= 1 << bits
            self.by_name.setdefault(ev.name, v)
        self.cls: type[enum.IntEnum] | None = None
        if self.by_name:
            cls_name = type_name.removeprefix("enum ").strip() or "anon_enum"
            try:
                self.cls = enum.IntEnum(cls_name, list(self.by_name.items()))  # type: ignore[misc]
            except (ValueError, TypeError):  # a name Python's enum reserves
                self.cls = None

    def to_int(self, value: Any) -> int:
        if isinstance(value, str):
            if value not in self.by_name:
                known = ", ".join(self.by_name) or "none"
                raise _Bad(f"{value!r} is not an enumerator of {self.type_name} (known: {known})")
            return self.by_name[value]
        v = _as_int(value, self.type_name)
        if not self.lo <= v <= self.hi:
            raise _Bad(f"{v} does not fit {self.type_name} ({self.lo}..{self.hi})")
        return v

    def from_int(self, v: int) -> Any:
        if self.cls is not None:
            member = self.cls._value2member_map_.get(v)
            if member is not None:
                return member
        return v

    def decode_from(self, buf: bytes, off: int) -> Any:
        return self.from_int(
            int.from_bytes(buf[off : off + self.size], "little", signed=self.signed)
        )

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        v = self.to_int(value)
        buf[off : off + self.size] = v.to_bytes(self.size, "little", signed=v < 0)


class _FloatCodec(ValueCodec):
    _FMT = {2: "e", 4: "f", 8: "d"}

    def __init__(self, type_name: str, size: int, byteorder: str) -> None:
        self.type_name = type_name
        self.size = size
        self.st = struct.Struct(("<" if byteorder == "little" else ">") + self._FMT[size])

    def decode_from(self, buf: bytes, off: int) -> Any:
        return self.st.unpack_from(buf, off)[0]

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Bad(f"{value!r} is not a number ({self.type_name})")
        try:
            self.st.pack_into(buf, off, value)
        except (OverflowError, struct.error):
            raise _Bad(f"{value!r} does not fit {self.type_name}") from None


class _RawCodec(ValueCodec):
    """Bytes of exactly ``size`` (no BTF, or a type Python has no value for)."""

    def __init__(self, size: int, type_name: str = "") -> None:
        self.size = size
        self.type_name = type_name or f"{size} bytes"

    def decode_from(self, buf: bytes, off: int) -> Any:
        return bytes(buf[off : off + self.size])

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise _Bad(f"{type(value).__name__} given, expected {self.size} bytes")
        raw = bytes(value)
        if len(raw) != self.size:
            raise _Bad(f"{len(raw)} bytes given, expected exactly {self.size}")
        buf[off : off + self.size] = raw


class _BytesCodec(ValueCodec):
    """An array of 1-byte integers: ``bytes`` of the array's length."""

    def __init__(self, type_name: str, size: int, signed: bool) -> None:
        self.type_name = type_name
        self.size = size
        self.signed = signed

    def decode_from(self, buf: bytes, off: int) -> Any:
        return bytes(buf[off : off + self.size])

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        if isinstance(value, str):
            raw = value.encode()
        elif isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
        elif isinstance(value, list | tuple):
            lo, hi = (-128, 127) if self.signed else (0, 255)
            out = bytearray()
            for i, x in enumerate(value):
                v = _as_int(x, "byte")
                if not lo <= v <= hi:
                    raise _Bad(f"{v} does not fit a byte ({lo}..{hi})", f"[{i}]")
                out.append(v & 0xFF)
            raw = bytes(out)
        else:
            raise _Bad(f"{type(value).__name__} given for {self.type_name}; use bytes or str")
        if len(raw) > self.size:
            raise _Bad(f"{len(raw)} bytes do not fit {self.type_name} ({self.size} bytes)")
        buf[off : off + len(raw)] = raw
        buf[off + len(raw) : off + self.size] = bytes(self.size - len(raw))


def _raw_escape(codec: ValueCodec, buf: bytearray, off: int, value: Any) -> bool:
    """Composite types accept bytes of exactly their size."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) != codec.size:
            raise _Bad(f"{len(raw)} raw bytes given, {codec.type_name} is {codec.size} bytes")
        buf[off : off + codec.size] = raw
        return True
    return False


class _ArrayCodec(ValueCodec):
    def __init__(self, type_name: str, elem: ValueCodec, nelems: int) -> None:
        self.type_name = type_name
        self.elem = elem
        self.nelems = nelems
        self.size = elem.size * nelems

    def decode_from(self, buf: bytes, off: int) -> Any:
        es = self.elem.size
        return [self.elem.decode_from(buf, off + i * es) for i in range(self.nelems)]

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        if _raw_escape(self, buf, off, value):
            return
        if not isinstance(value, list | tuple):
            raise _Bad(f"{type(value).__name__} given for {self.type_name}; use a list")
        if len(value) > self.nelems:
            raise _Bad(f"{len(value)} elements do not fit {self.type_name}")
        es = self.elem.size
        buf[off : off + self.size] = bytes(self.size)
        for i, x in enumerate(value):
            try:
                self.elem.encode_into(buf, off + i * es, x)
            except _Bad as e:
                raise _at(f"[{i}]", e) from None


class _Field:
    """One member of a struct/union/datasec as the codec sees it."""

    __slots__ = ("bit_offset", "bits", "byte_end", "byte_start", "codec", "name", "signed")

    def __init__(
        self,
        name: str,
        codec: ValueCodec,
        bit_offset: int,
        bits: int = 0,
        signed: bool = False,
    ) -> None:
        self.name = name  # '' for an anonymous struct/union member (flattened)
        self.codec = codec
        self.bit_offset = bit_offset
        self.bits = bits  # non-zero: a bitfield of this width
        self.signed = signed
        if bits:
            self.byte_start = bit_offset // 8
            self.byte_end = (bit_offset + bits + 7) // 8
        else:
            self.byte_start = bit_offset // 8
            self.byte_end = self.byte_start + codec.size

    def names(self) -> list[str]:
        if self.name:
            return [self.name]
        assert isinstance(self.codec, _CompositeCodec)
        return self.codec.all_names

    def decode_into(self, out: dict[str, Any], buf: bytes, off: int) -> None:
        if self.bits:
            s, e = off + self.byte_start, off + self.byte_end
            v = int.from_bytes(buf[s:e], "little") >> (self.bit_offset % 8)
            v &= (1 << self.bits) - 1
            if self.signed and v >> (self.bits - 1):
                v -= 1 << self.bits
            if isinstance(self.codec, _EnumCodec):
                out[self.name] = self.codec.from_int(v)
            elif isinstance(self.codec, _IntCodec) and self.codec.is_bool:
                out[self.name] = bool(v)
            else:
                out[self.name] = v
        elif self.name:
            out[self.name] = self.codec.decode_from(buf, off + self.byte_start)
        else:
            out.update(self.codec.decode_from(buf, off + self.byte_start))

    def encode(self, buf: bytearray, off: int, value: Any) -> None:
        if not self.bits:
            self.codec.encode_into(buf, off + self.byte_start, value)
            return
        v = (
            self.codec.to_int(value)
            if isinstance(self.codec, _EnumCodec)
            else _as_int(value, self.codec.type_name)
        )
        lo, hi = (
            (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1)
            if self.signed
            else (0, (1 << self.bits) - 1)
        )
        if not lo <= v <= hi:
            raise _Bad(f"{v} does not fit a {self.bits}-bit bitfield ({lo}..{hi})")
        s, e = off + self.byte_start, off + self.byte_end
        shift = self.bit_offset % 8
        cur = int.from_bytes(buf[s:e], "little")
        mask = ((1 << self.bits) - 1) << shift
        cur = (cur & ~mask) | ((v << shift) & mask)
        buf[s:e] = cur.to_bytes(e - s, "little")


class _CompositeCodec(ValueCodec):
    """Struct, union or datasec: a dict of member name -> value."""

    is_union = False

    def __init__(self, type_name: str, size: int, fields: list[_Field]) -> None:
        self.type_name = type_name
        self.size = size
        self.fields = fields
        self.all_names: list[str] = [n for f in fields for n in f.names()]
        self._owner: dict[str, _Field] = {}
        for f in fields:
            for n in f.names():
                self._owner.setdefault(n, f)

    def decode_from(self, buf: bytes, off: int) -> Any:
        out: dict[str, Any] = {}
        for f in self.fields:
            f.decode_into(out, buf, off)
        return out

    def _split(self, value: Mapping[str, Any]) -> list[tuple[_Field, Any]]:
        """(field, value) pairs in member order; anonymous members get sub-dicts."""
        unknown = [k for k in value if k not in self._owner]
        if unknown:
            raise _Bad(
                f"no member {unknown[0]!r} in {self.type_name} "
                f"(members: {', '.join(self.all_names) or 'none'})"
            )
        out: list[tuple[_Field, Any]] = []
        for f in self.fields:
            if f.name:
                if f.name in value:
                    out.append((f, value[f.name]))
            else:
                sub = {n: value[n] for n in f.names() if n in value}
                if sub:
                    out.append((f, sub))
        return out

    def _encode_one(self, buf: bytearray, off: int, f: _Field, v: Any) -> None:
        try:
            f.encode(buf, off, v)
        except _Bad as e:
            raise _at(f".{f.name}" if f.name else "", e) from None

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        if _raw_escape(self, buf, off, value):
            return
        if not isinstance(value, Mapping):
            raise _Bad(f"{type(value).__name__} given for {self.type_name}; use a dict")
        buf[off : off + self.size] = bytes(self.size)
        for f, v in self._split(value):
            self._encode_one(buf, off, f, v)


class _UnionCodec(_CompositeCodec):
    is_union = True

    def encode_into(self, buf: bytearray, off: int, value: Any) -> None:
        if _raw_escape(self, buf, off, value):
            return
        if not isinstance(value, Mapping):
            raise _Bad(f"{type(value).__name__} given for {self.type_name}; use a dict")
        parts = self._split(value)
        merged = bytearray(self.size)
        covered = [False] * self.size
        owner: list[str] = [""] * self.size
        for f, v in parts:
            one = bytearray(self.size)
            self._encode_one(one, 0, f, v)
            label = f.name or "/".join(f.names())
            for i in range(f.byte_start, min(f.byte_end, self.size)):
                if covered[i] and merged[i] != one[i]:
                    raise _Bad(
                        f"members {owner[i]!r} and {label!r} give different bytes; a union "
                        "holds one member at a time, so give only the one you mean"
                    )
                merged[i] = one[i]
                covered[i] = True
                owner[i] = label
        buf[off : off + self.size] = merged


# ------------------------------------------------------------------------- builder


def int_codec(size: int, *, signed: bool = False, type_name: str = "") -> ValueCodec:
    """A plain little-endian integer of ``size`` bytes (used for keys without BTF:
    array indices are u32)."""
    name = type_name or f"{'s' if signed else 'u'}{size * 8}"
    return _IntCodec(name, size, signed=signed)


def bytes_codec(size: int) -> ValueCodec:
    """Raw bytes of exactly ``size`` (keys and values without BTF)."""
    return _RawCodec(size)


def value_codec(btf: Btf, type_id: int) -> ValueCodec:
    """The codec of BTF type ``type_id`` (typedefs and qualifiers looked through).

    Raises BtfError for types that have no value (void, functions, forward
    declarations) and NotSupportedError for bitfields in big-endian BTF."""
    return _Builder(btf).build(type_id)


class _Builder:
    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.memo: dict[int, ValueCodec] = {}

    def err(self, type_id: int, reason: str) -> BtfError:
        return BtfError(reason, file=self.btf.file, section=".BTF", type_id=type_id)

    def build(self, type_id: int) -> ValueCodec:
        c = self.memo.get(type_id)
        if c is None:
            c = self.memo[type_id] = self._build(type_id)
        return c

    def _name(self, type_id: int) -> str:
        try:
            return self.btf.format_type(type_id)
        except BtfError:
            return f"type [{type_id}]"

    def _build(self, type_id: int) -> ValueCodec:
        btf = self.btf
        t = btf.resolve(type_id)
        name = self._name(type_id)
        order = btf.byteorder
        if isinstance(t, Var):
            return self.build(t.type_id)
        if isinstance(t, Int):
            return _IntCodec(
                name,
                t.size,
                signed=t.signed,
                is_bool=bool(t.encoding & IntEncoding.BOOL),
                byteorder=order,
                bit_offset=t.offset,
                bits=t.bits,
            )
        if isinstance(t, Ptr):
            return _IntCodec(name, 8, signed=False, byteorder=order)
        if isinstance(t, Enum | Enum64):
            if order != "little":
                raise NotSupportedError("enum values in big-endian BTF")
            return _EnumCodec(name, t.size, t.signed, t.values)
        if isinstance(t, Float):
            if t.size in _FloatCodec._FMT:
                return _FloatCodec(name, t.size, order)
            return _RawCodec(t.size, name)
        if isinstance(t, Array):
            elem_t = btf.resolve(t.type_id)
            if (
                isinstance(elem_t, Int)
                and elem_t.size == 1
                and elem_t.bits == 8
                and not (elem_t.encoding & IntEncoding.BOOL)
            ):
                return _BytesCodec(name, t.nelems, elem_t.signed)
            return _ArrayCodec(name, self.build(t.type_id), t.nelems)
        if isinstance(t, Struct | Union):
            fields = []
            for m in t.members:
                fields.append(self._field(m.name, m.type_id, m.bit_offset, m.bitfield_size, t.id))
            cls = _UnionCodec if isinstance(t, Union) else _CompositeCodec
            return cls(name, t.size, [f for f in fields if f is not None])
        if isinstance(t, Datasec):
            fields = []
            for vs in t.vars:
                v = btf.type(vs.type_id)
                if isinstance(v, Var) and v.name:
                    fields.append(_Field(v.name, self.build(v.type_id), vs.offset * 8))
            return _CompositeCodec(name, t.size, fields)
        raise self.err(type_id, f"{t.kind.name} {name!r} has no value to encode or decode")

    def _field(
        self, name: str, type_id: int, bit_offset: int, bitfield_size: int, parent: int
    ) -> _Field | None:
        t = self.btf.resolve(type_id)
        if bitfield_size or (isinstance(t, Int) and (t.bits != t.size * 8 or t.offset)):
            # A bitfield: kind_flag structs give its width; legacy BTF puts it in the INT.
            if self.btf.byteorder != "little":
                raise NotSupportedError("bitfields in big-endian BTF")
            if isinstance(t, Int):
                bits = bitfield_size or t.bits
                start = bit_offset + (0 if bitfield_size else t.offset)
                signed = t.signed
            elif isinstance(t, Enum | Enum64):
                bits, start, signed = bitfield_size, bit_offset, t.signed
            else:
                raise self.err(parent, f"bitfield {name!r} of {t.kind.name} type")
            if not name:
                return None  # unnamed padding bitfield (``int :3``)
            return _Field(name, self.build(type_id), start, bits, signed)
        if bit_offset % 8:
            raise self.err(parent, f"member {name!r} is not byte-aligned")
        if not name:
            if isinstance(t, Struct | Union):
                return _Field("", self.build(type_id), bit_offset)
            return None
        return _Field(name, self.build(type_id), bit_offset)


# ------------------------------------------------------------------------- typed map


class TypedMap:
    """Dict-like access to a raw-bytes map with Python keys and values.

    ``raw`` is any :class:`netbpf.backend.Map` (a KernelMap, a simulator map); keys and
    values are decoded through ``btf`` types ``key_type_id`` / ``value_type_id``
    (see the module docstring for how C types become Python values).  A type id of 0
    (no BTF) means: a u32 ``int`` for index-keyed maps (arrays, prog arrays...),
    a u32 for the id values of prog arrays and map-in-maps, raw ``bytes`` otherwise.

    Per-CPU maps (``percpu``, detected from the map type) read and write a ``list``
    with one value per CPU, ``ncpus`` long (default: what the raw map's
    ``ncpus`` or ``value_size_raw`` says — the possible CPUs on the kernel).

    Errors are the raw map's (MapKeyNotFoundError is a KeyError) plus
    BtfValueError for values that do not fit their type.
    """

    def __init__(
        self,
        raw: Any,
        btf: Btf | None,
        key_type_id: int = 0,
        value_type_id: int = 0,
        *,
        percpu: bool | None = None,
        ncpus: int | None = None,
    ) -> None:
        self.raw = raw
        self.btf = btf
        mtype = getattr(raw, "map_type", None)
        self.percpu = mtype in PERCPU_MAP_TYPES if percpu is None else percpu
        key_size, value_size = int(raw.key_size), int(raw.value_size)
        self.key_codec = self._codec(key_type_id, key_size, mtype in _INDEXED_MAP_TYPES, "key")
        self.value_codec = self._codec(
            value_type_id, value_size, mtype in _ID_VALUE_MAP_TYPES, "value"
        )
        self.stride = percpu_stride(value_size)
        if self.percpu:
            if ncpus is None:
                ncpus = getattr(raw, "ncpus", None)
            if ncpus is None:
                raw_size = int(getattr(raw, "value_size_raw", self.stride))
                ncpus = max(1, raw_size // self.stride)
            self.ncpus = int(ncpus)
        else:
            self.ncpus = 1

    def _codec(self, type_id: int, size: int, u32_default: bool, what: str) -> ValueCodec:
        if type_id and self.btf is not None:
            c = value_codec(self.btf, type_id)
            if c.size != size:
                raise BtfError(
                    f"{what} type {c.type_name!r} is {c.size} bytes but the map's "
                    f"{what}_size is {size}",
                    file=self.btf.file,
                    section=".BTF",
                    type_id=type_id,
                )
            return c
        if u32_default and size == 4:
            return int_codec(4)
        return bytes_codec(size)

    @property
    def name(self) -> str:
        return str(getattr(self.raw, "name", ""))

    # -- conversions
    def encode_key(self, key: Any) -> bytes:
        return self.key_codec.encode(key)

    def decode_key(self, raw: bytes) -> Any:
        return self.key_codec.decode(raw)

    def encode_value(self, value: Any) -> bytes:
        """One value's bytes; for a per-CPU map a list of ``ncpus`` values."""
        if not self.percpu:
            return self.value_codec.encode(value)
        if not isinstance(value, list | tuple) or len(value) != self.ncpus:
            got = (
                f"{len(value)} values" if isinstance(value, list | tuple) else type(value).__name__
            )
            raise BtfValueError(
                f"a per-CPU map takes a list of {self.ncpus} values (one per CPU), got {got}",
                type_name=self.value_codec.type_name,
            )
        pad = bytes(self.stride - self.value_codec.size)
        return b"".join(self.value_codec.encode(v) + pad for v in value)

    def decode_value(self, raw: Any) -> Any:
        """A value from the raw map; a per-CPU value may come packed (``bpf()``'s
        ``round_up(value_size, 8) * ncpus`` bytes) or as a list of per-CPU bytes."""
        if not self.percpu:
            return self.value_codec.decode(raw)
        if isinstance(raw, list | tuple):
            return [self.value_codec.decode(v) for v in raw]
        size = self.value_codec.size
        return [
            self.value_codec.decode(raw[i * self.stride : i * self.stride + size])
            for i in range(self.ncpus)
        ]

    # -- element operations
    def lookup(self, key: Any, *, flags: int = 0) -> Any:
        return self.decode_value(self.raw.lookup(self.encode_key(key), flags=flags))

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self.lookup(key)
        except MapKeyNotFoundError:
            return default

    def update(self, key: Any, value: Any, *, flags: int = 0) -> None:
        self.raw.update(self.encode_key(key), self.encode_value(value), flags=flags)

    def delete(self, key: Any) -> None:
        self.raw.delete(self.encode_key(key))

    def lookup_and_delete(self, key: Any, *, flags: int = 0) -> Any:
        return self.decode_value(self.raw.lookup_and_delete(self.encode_key(key), flags=flags))

    def __getitem__(self, key: Any) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        try:
            raw_key = self.encode_key(key)
        except BtfValueError:
            return False
        return raw_key in self.raw

    def keys(self) -> Iterator[Any]:
        for k in self.raw.keys():
            yield self.decode_key(k)

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def values(self) -> Iterator[Any]:
        for _, v in self.items():
            yield v

    def items(self) -> Iterator[tuple[Any, Any]]:
        for k, v in self.raw.items():
            yield self.decode_key(k), self.decode_value(v)

    def __len__(self) -> int:
        """The number of keys (counted by iterating where the map has no count:
        the kernel has none, so this costs one bpf() call per key)."""
        try:
            return len(self.raw)
        except TypeError:
            return sum(1 for _ in self.raw.keys())

    # -- queue / stack
    def push(self, value: Any, *, flags: int = 0) -> None:
        self.raw.push(self.encode_value(value), flags=flags)

    def pop(self) -> Any:
        return self.decode_value(self.raw.pop())

    def peek(self) -> Any:
        return self.decode_value(self.raw.peek())

    # -- batches
    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[Any, Any]]:
        return [
            (self.decode_key(k), self.decode_value(v))
            for k, v in self.raw.lookup_batch(count=count, delete=delete, flags=flags)
        ]

    def update_batch(self, items: Iterable[tuple[Any, Any]], *, flags: int = 0) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self.raw.update_batch(
            [(self.encode_key(k), self.encode_value(v)) for k, v in pairs], flags=flags
        )

    def delete_batch(self, keys: Iterable[Any]) -> None:
        self.raw.delete_batch([self.encode_key(k) for k in keys])

    def __repr__(self) -> str:
        per = f" per-CPU x{self.ncpus}" if self.percpu else ""
        return (
            f"<TypedMap {self.name!r} key={self.key_codec.type_name!r} "
            f"value={self.value_codec.type_name!r}{per}>"
        )
