"""The :class:`Btf` container: a type table indexed by type id, plus its strings.

A ``Btf`` is immutable, like the specs that hold it: the loader's fix-ups
(:meth:`Btf.fixup_datasecs`, :func:`~netbpf.obj.btf.encode.sanitize`) return a new
``Btf``.  The original string section is kept verbatim and only appended to when
encoding, because ``.BTF.ext`` line info and CO-RE records point into it by offset:
the offsets the kernel receives must stay valid after any fix-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

from netbpf.errors import BtfError
from netbpf.obj.btf import parse as _parse
from netbpf.obj.btf.types import (
    MODIFIER_KINDS,
    VOID,
    Array,
    BtfType,
    Datasec,
    Kind,
    Member,
    Struct,
    Union,
    Var,
)

__all__ = ["Btf", "Field"]

#: Pointer size of the BPF target (and of x86-64/arm64 vmlinux BTF).
POINTER_SIZE = 8
# libbpf's MAX_RESOLVE_DEPTH: longest typedef/modifier/array chain followed.
MAX_RESOLVE_DEPTH = 32


def _kind_of(kind: Kind | str | type[BtfType] | None) -> Kind | None:
    if kind is None or isinstance(kind, Kind):
        return kind
    if isinstance(kind, str):
        try:
            return Kind[kind.upper()]
        except KeyError:
            raise ValueError(f"unknown BTF kind name {kind!r}") from None
    return kind.KIND


@dataclass(frozen=True, slots=True)
class Field:
    """Where a (possibly nested) field lives: bit offset from the start of the
    outer type, its type id, byte size and bitfield width (0 if not a bitfield)."""

    bit_offset: int
    type_id: int
    size: int
    bitfield_size: int = 0

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


class _TypeView(Sequence[BtfType]):
    """``btf.types``: a read-only sequence indexed by type id that decodes records
    on first access (lazy BTF) or returns the already decoded ones."""

    __slots__ = ("_btf",)

    def __init__(self, btf: Btf) -> None:
        self._btf = btf

    def __len__(self) -> int:
        return len(self._btf._types)

    @overload
    def __getitem__(self, i: int) -> BtfType: ...
    @overload
    def __getitem__(self, i: slice) -> list[BtfType]: ...
    def __getitem__(self, i: int | slice) -> BtfType | list[BtfType]:
        if isinstance(i, slice):
            return [self._btf.type(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return self._btf.type(i)

    def __iter__(self) -> Iterator[BtfType]:
        for i in range(len(self)):
            yield self._btf.type(i)


class Btf:
    """A parsed (or constructed) BTF type table.

    ``btf.types[id]`` is the record of type ``id`` (``types[0]`` is void).  Build one
    with :meth:`parse` from a ``.BTF`` section or with :meth:`from_types`.
    """

    __slots__ = (
        "_decoder",
        "_essential_index",
        "_hash",
        "_name_index",
        "_types",
        "byteorder",
        "file",
        "strings",
    )

    def __init__(
        self,
        types: Sequence[BtfType | None],
        *,
        strings: bytes = b"\0",
        byteorder: str = "little",
        file: str | None = None,
        _decoder: _parse.Decoder | None = None,
    ) -> None:
        self._types: list[BtfType | None] = list(types)
        self.strings = strings
        self.byteorder = byteorder
        self.file = file
        self._decoder = _decoder
        self._name_index: dict[str, list[int]] | None = None
        self._essential_index: dict[str, list[int]] | None = None
        self._hash: int | None = None

    # -- construction -------------------------------------------------------------
    @classmethod
    def parse(
        cls, raw: bytes | bytearray | memoryview, *, file: str | None = None, lazy: bool = False
    ) -> Btf:
        """Parse a raw ``.BTF`` section.

        Eager parsing (the default) validates every record now, so a ``Btf`` that
        parses is fully usable.  ``lazy=True`` only checks the header and the record
        boundaries and decodes a type when it is first asked for (errors then surface
        from that access, still as ``BtfError``); that is what makes the 5 MB
        vmlinux BTF cheap to load.
        """
        dec = _parse.scan(bytes(raw), file)
        btf = cls(
            [VOID] + [None] * (dec.count - 1),
            strings=dec.strings,
            byteorder=dec.header.byteorder,
            file=file,
            _decoder=dec,
        )
        if not lazy:
            dec.prime_strings()
            types = btf._types
            decode = dec.decode
            for i in range(1, dec.count):
                types[i] = decode(i)
            btf._decoder = None
        return btf

    @classmethod
    def from_types(
        cls,
        types: Iterable[BtfType],
        *,
        strings: bytes = b"\0",
        byteorder: str = "little",
        file: str | None = None,
    ) -> Btf:
        """A BTF from type records numbered 1, 2, 3... (void may be included as the
        first element).  Every referenced id must exist.  ``strings`` is an initial
        string section to keep (names missing from it are appended on encoding)."""
        if byteorder not in ("little", "big"):
            raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
        lst = list(types)
        if not lst or lst[0].id != 0:
            lst.insert(0, VOID)
        for i, t in enumerate(lst):
            if t.id != i:
                raise BtfError(
                    f"type at position {i} has id {t.id}; ids must be consecutive from 0",
                    file=file,
                    section=_parse.SECTION,
                    type_id=t.id,
                )
            if i and t.kind == Kind.UNKN:
                raise BtfError(
                    "only type 0 may be void", file=file, section=_parse.SECTION, type_id=i
                )
            for r in t.refs():
                if not 0 <= r < len(lst):
                    raise BtfError(
                        f"refers to type id {r}, which does not exist",
                        file=file,
                        section=_parse.SECTION,
                        type_id=i,
                    )
        if not strings or strings[0] != 0 or strings[-1] != 0:
            raise BtfError(
                "string section must start and end with a NUL byte",
                file=file,
                section=_parse.SECTION,
            )
        return cls(lst, strings=strings, byteorder=byteorder, file=file)

    def with_types(self, replacements: Mapping[int, BtfType] | Iterable[BtfType]) -> Btf:
        """A copy with some records replaced (by id) and/or new ones appended (ids
        ``len(btf.types)``, ``+1``...).  The string section is kept."""
        items = replacements.values() if isinstance(replacements, Mapping) else replacements
        types: list[BtfType] = list(self.types)
        for t in items:
            if t.id < len(types):
                types[t.id] = t
            elif t.id == len(types):
                types.append(t)
            else:
                raise BtfError(
                    f"new type id {t.id} leaves a gap after {len(types) - 1}",
                    file=self.file,
                    section=_parse.SECTION,
                    type_id=t.id,
                )
        return Btf.from_types(types, strings=self.strings, byteorder=self.byteorder, file=self.file)

    # -- access -------------------------------------------------------------------
    @property
    def types(self) -> Sequence[BtfType]:
        """All records indexed by type id; ``types[0]`` is void."""
        return _TypeView(self)

    def __len__(self) -> int:
        """Number of type ids including void (libbpf's ``btf__type_cnt``)."""
        return len(self._types)

    def type(self, type_id: int) -> BtfType:
        """The record of ``type_id``; a ``BtfError`` if there is no such type."""
        try:
            t = self._types[type_id] if type_id >= 0 else None
        except IndexError:
            t = None
        else:
            if t is None and type_id >= 0:
                assert self._decoder is not None
                t = self._types[type_id] = self._decoder.decode(type_id)
        if t is None:
            raise BtfError(
                f"no type with id {type_id} (the BTF has {len(self._types) - 1} types)",
                file=self.file,
                section=_parse.SECTION,
                type_id=type_id,
            )
        return t

    def string_at(self, offset: int) -> str:
        """The string at ``offset`` in the (original) string section, as used by
        ``.BTF.ext`` records; a ``BtfError`` if the offset is outside it."""
        if not 0 <= offset < len(self.strings):
            raise BtfError(
                f"string offset {offset} is outside the {len(self.strings)}-byte string section",
                file=self.file,
                section=_parse.SECTION,
            )
        end = self.strings.index(b"\0", offset)
        return self.strings[offset:end].decode("utf-8", "surrogateescape")

    def _name(self, type_id: int) -> str:
        dec = self._decoder
        if dec is not None and self._types[type_id] is None:
            return dec.string(dec.name_offs[type_id], dec.offsets[type_id], type_id)
        return self.type(type_id).name

    def _index(self) -> dict[str, list[int]]:
        if self._name_index is None:
            idx: dict[str, list[int]] = {}
            dec = self._decoder
            if dec is not None:
                # lazy BTF: names straight from the string section, no type decoded
                dec.prime_strings()
                strs = dec._str_cache
                str_len = len(dec.strings)
                for i, off in enumerate(dec.name_offs):
                    if off:
                        name = strs.get(off)
                        if name is None:  # a suffix of another string (scan checked off)
                            name = dec.string(off, dec.offsets[i], i) if off < str_len else ""
                        if name:
                            idx.setdefault(name, []).append(i)
            else:
                for i in range(1, len(self._types)):
                    name = self._name(i)
                    if name:
                        idx.setdefault(name, []).append(i)
            self._name_index = idx
        return self._name_index

    def find_all(self, name: str, kind: Kind | str | type[BtfType] | None = None) -> list[BtfType]:
        """Every type called ``name`` (of ``kind`` if given), in id order."""
        k = _kind_of(kind)
        out = [self.type(i) for i in self._index().get(name, ())]
        return [t for t in out if k is None or t.kind == k]

    def find(self, name: str, kind: Kind | str | type[BtfType] | None = None) -> BtfType | None:
        """The first type called ``name`` (of ``kind`` — a :class:`Kind`, a kind name
        like ``"struct"`` or a type class — if given), or ``None``."""
        found = self.find_all(name, kind)
        return found[0] if found else None

    def essential_candidates(self, essential_name: str) -> list[int]:
        """Ids of named types whose name minus any ``___flavor`` suffix is
        ``essential_name`` (the CO-RE candidate index, built once per Btf)."""
        if self._essential_index is None:
            from netbpf.obj.btf.core import essential_name as _ess

            idx: dict[str, list[int]] = {}
            for name, ids in self._index().items():
                idx.setdefault(_ess(name), []).extend(ids)
            for ids in idx.values():
                ids.sort()
            self._essential_index = idx
        return self._essential_index.get(essential_name, [])

    # -- type algebra ---------------------------------------------------------------
    def resolve(self, type_id: int) -> BtfType:
        """The type behind ``type_id`` once typedef/const/volatile/restrict/type_tag
        are skipped."""
        t = self.type(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in MODIFIER_KINDS:
                return t
            t = self.type(t.type_id)  # type: ignore[attr-defined]
        raise BtfError(
            f"modifier/typedef chain longer than {MAX_RESOLVE_DEPTH}",
            file=self.file,
            section=_parse.SECTION,
            type_id=type_id,
        )

    def size_of(self, type_id: int) -> int:
        """Size in bytes of an object of type ``type_id`` (libbpf's
        ``btf__resolve_size``): a ``BtfError`` for void, functions and forwards."""
        mult = 1
        t = self.type(type_id)
        for _ in range(MAX_RESOLVE_DEPTH):
            k = t.kind
            if k in MODIFIER_KINDS or k == Kind.VAR:
                t = self.type(t.type_id)  # type: ignore[attr-defined]
            elif k == Kind.PTR:
                return mult * POINTER_SIZE
            elif k == Kind.ARRAY:
                assert isinstance(t, Array)
                mult *= t.nelems
                t = self.type(t.type_id)
            elif hasattr(t, "size"):
                size: int = t.size  # type: ignore[attr-defined]
                return mult * size
            else:
                raise BtfError(
                    f"{k.name} has no size",
                    file=self.file,
                    section=_parse.SECTION,
                    type_id=t.id,
                )
        raise BtfError(
            f"type chain longer than {MAX_RESOLVE_DEPTH} while computing the size",
            file=self.file,
            section=_parse.SECTION,
            type_id=type_id,
        )

    def align_of(self, type_id: int) -> int:
        """Natural alignment of ``type_id`` (libbpf's ``btf__align_of``)."""
        t = self.resolve(type_id)
        k = t.kind
        if k in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FLOAT):
            return min(POINTER_SIZE, t.size)  # type: ignore[attr-defined]
        if k == Kind.PTR:
            return POINTER_SIZE
        if k == Kind.ARRAY:
            return self.align_of(t.type_id)  # type: ignore[attr-defined]
        if isinstance(t, Struct | Union):
            return max((self.align_of(m.type_id) for m in t.members), default=1)
        raise BtfError(
            f"{k.name} has no alignment", file=self.file, section=_parse.SECTION, type_id=t.id
        )

    def name_of(self, type_id: int) -> str:
        """The name of ``type_id`` ('' when anonymous, 'void' for 0)."""
        return "void" if type_id == 0 else self._name(type_id)

    def format_type(self, type_id: int, name: str = "") -> str:
        """A C declaration of ``type_id`` (with declarator ``name`` if given):
        ``struct foo``, ``unsigned int``, ``char[16]``, ``int (*)(void *)``..."""
        from netbpf.obj.btf.dump import format_type

        return format_type(self, type_id, name)

    def members(self, type_id: int) -> tuple[Member, ...]:
        """Members of the struct/union behind ``type_id`` (modifiers skipped)."""
        t = self.resolve(type_id)
        if not isinstance(t, Struct | Union):
            raise BtfError(
                f"{t.kind.name} has no members",
                file=self.file,
                section=_parse.SECTION,
                type_id=t.id,
            )
        return t.members

    def field(self, type_id: int, path: str) -> Field:
        """Locate a field by a C-like path (``"a.b[2].c"``) in the struct/union behind
        ``type_id``, looking through anonymous struct/union members like C does."""
        cur = type_id
        bit = 0
        bitfield = 0
        for part in _split_path(path, self, type_id):
            if isinstance(part, int):
                arr = self.resolve(cur)
                if not isinstance(arr, Array):
                    raise BtfError(
                        f"cannot index {arr.kind.name} in path {path!r}",
                        file=self.file,
                        section=_parse.SECTION,
                        type_id=arr.id,
                    )
                if part >= arr.nelems:
                    raise BtfError(
                        f"index {part} out of range for {arr.nelems} elements in {path!r}",
                        file=self.file,
                        section=_parse.SECTION,
                        type_id=arr.id,
                    )
                bit += part * self.size_of(arr.type_id) * 8
                cur = arr.type_id
                bitfield = 0
                continue
            chain = self._find_member(cur, part)
            if chain is None:
                raise BtfError(
                    f"no member {part!r} in {self.format_type(cur)} (path {path!r})",
                    file=self.file,
                    section=_parse.SECTION,
                    type_id=cur,
                )
            for m in chain:
                bit += m.bit_offset
            cur = chain[-1].type_id
            bitfield = chain[-1].bitfield_size
        size = self.size_of(cur)
        return Field(bit, cur, size, bitfield)

    def _find_member(self, type_id: int, name: str) -> list[Member] | None:
        t = self.resolve(type_id)
        if not isinstance(t, Struct | Union):
            return None
        for m in t.members:
            if m.name == name:
                return [m]
        for m in t.members:
            if not m.name:
                sub = self._find_member(m.type_id, name)
                if sub is not None:
                    return [m, *sub]
        return None

    # -- datasecs -------------------------------------------------------------------
    def datasecs(self) -> dict[str, Datasec]:
        """DATASEC records by section name."""
        return {t.name: t for t in self.types if isinstance(t, Datasec)}

    def variables(self, section: str) -> list[tuple[Var, int, int]]:
        """(VAR, offset, size) of every variable in DATASEC ``section``."""
        sec = self.find(section, Kind.DATASEC)
        if not isinstance(sec, Datasec):
            raise BtfError(f"no DATASEC {section!r}", file=self.file, section=_parse.SECTION)
        out = []
        for vs in sec.vars:
            v = self.type(vs.type_id)
            if isinstance(v, Var):
                out.append((v, vs.offset, vs.size))
        return out

    def fixup_datasecs(
        self,
        section_sizes: Mapping[str, int],
        var_offsets: Mapping[str, int],
        *,
        hidden_vars: Iterable[str] = (),
    ) -> Btf:
        """Fill in what clang leaves out, as libbpf does before loading: DATASEC sizes
        (from ``{section_name: size}``) and global VAR offsets (from the ELF symbol
        table, ``{var_name: st_value}``); see :func:`netbpf.obj.btf.encode.fixup_datasecs`."""
        from netbpf.obj.btf.encode import fixup_datasecs

        return fixup_datasecs(self, section_sizes, var_offsets, hidden_vars=hidden_vars)

    # -- encoding -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The ``.BTF`` encoding (header, types, strings) in this BTF's byte order."""
        from netbpf.obj.btf.encode import encode

        return encode(self)

    def materialize(self) -> Btf:
        """Decode every record of a lazily parsed BTF now (validating all of it)."""
        for i in range(len(self._types)):
            self.type(i)
        self._decoder = None
        return self

    # -- value semantics --------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Btf):
            return NotImplemented
        if self is other:
            return True
        return (
            len(self) == len(other)
            and self.byteorder == other.byteorder
            and all(a == b for a, b in zip(self.types, other.types))
        )

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self.byteorder, tuple(self.types)))
        return self._hash

    # A Btf is immutable (lazy decoding only fills a cache), so copies can share it.
    def __copy__(self) -> Btf:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Btf:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (list(self.types), self.strings, self.byteorder, self.file))

    def __repr__(self) -> str:
        where = f" file={self.file!r}" if self.file else ""
        return f"<Btf {len(self) - 1} types{where}>"


def _rebuild(types: list[BtfType], strings: bytes, byteorder: str, file: str | None) -> Btf:
    return Btf(types, strings=strings, byteorder=byteorder, file=file)


_PATH_RE = re.compile(r"[A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*")
_TOKEN_RE = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def _split_path(path: str, btf: Btf, type_id: int) -> list[str | int]:
    """``"a.b[2].c"`` -> ``["a", "b", 2, "c"]``."""
    if not _PATH_RE.fullmatch(path):
        raise BtfError(
            f"malformed field path {path!r}",
            file=btf.file,
            section=_parse.SECTION,
            type_id=type_id,
        )
    return [name if name else int(idx) for name, idx in _TOKEN_RE.findall(path)]
