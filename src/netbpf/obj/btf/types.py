"""BTF type records as frozen dataclasses (the vocabulary of linux/btf.h).

One class per BTF kind.  Every record carries its type ``id`` (its index in the type
table; 0 is ``void``) and its ``name`` ('' when anonymous), and refers to other types
by id, exactly as the wire format does: a :class:`~netbpf.obj.btf.Btf` owns the table
that gives those ids meaning.  Keeping ids (not Python references) makes records
cheap to build lazily for the 150k-type vmlinux BTF, comparable, hashable, and
trivially re-encodable.

Fields keep every bit of the encoding that carries meaning (``kind_flag`` of a struct
decides how member offsets are packed, the enum ``signed`` flag is the kind_flag...),
so ``Btf.parse(raw).to_bytes()`` reproduces the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar

__all__ = [
    "VOID",
    "Array",
    "BtfType",
    "Const",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Float",
    "Func",
    "FuncLinkage",
    "FuncProto",
    "Fwd",
    "Int",
    "IntEncoding",
    "Kind",
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
]


class Kind(IntEnum):
    """``BTF_KIND_*`` from linux/btf.h (bits 24-28 of ``btf_type.info``)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class IntEncoding(IntFlag):
    """``BTF_INT_*`` encoding bits of an INT (at most one is set in valid BTF)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class FuncLinkage(IntEnum):
    """``enum btf_func_linkage`` (stored in the FUNC's vlen field)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class VarLinkage(IntEnum):
    """``BTF_VAR_*`` linkage of a VAR."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


@dataclass(frozen=True, slots=True)
class BtfType:
    """Base of every BTF type record: the type id and the name ('' if anonymous)."""

    id: int
    name: str

    KIND: ClassVar[Kind] = Kind.UNKN

    @property
    def kind(self) -> Kind:
        return self.KIND

    def refs(self) -> tuple[int, ...]:
        """Every type id this record refers to (used for validation and remapping)."""
        return ()


@dataclass(frozen=True, slots=True)
class Void(BtfType):
    """Type id 0: ``void``.  Never encoded; implicit in every BTF."""

    KIND: ClassVar[Kind] = Kind.UNKN


VOID = Void(0, "")


@dataclass(frozen=True, slots=True)
class Int(BtfType):
    """An integer: ``size`` bytes, ``bits`` of which starting at bit ``offset`` hold
    the value (offset/bits other than 0/size*8 only in legacy bitfield encodings)."""

    size: int
    encoding: IntEncoding
    offset: int
    bits: int

    KIND: ClassVar[Kind] = Kind.INT

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True, slots=True)
class Ptr(BtfType):
    """A pointer to ``type_id`` (8 bytes on BPF)."""

    type_id: int

    KIND: ClassVar[Kind] = Kind.PTR

    def refs(self) -> tuple[int, ...]:
        return (self.type_id,)


@dataclass(frozen=True, slots=True)
class Array(BtfType):
    """``nelems`` elements of ``type_id``; ``index_type_id`` is an INT (clang's
    ``__ARRAY_SIZE_TYPE__``)."""

    type_id: int
    index_type_id: int
    nelems: int

    KIND: ClassVar[Kind] = Kind.ARRAY

    def refs(self) -> tuple[int, ...]:
        return (self.type_id, self.index_type_id)


@dataclass(frozen=True, slots=True)
class Member:
    """A struct/union member.  ``bit_offset`` counts from the start of the enclosing
    struct; ``bitfield_size`` is non-zero only for bitfields of a kind_flag struct."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def byte_offset(self) -> int:
        """Byte offset of the member (the byte holding its first bit for bitfields)."""
        return self.bit_offset // 8


@dataclass(frozen=True, slots=True)
class _Composite(BtfType):
    size: int
    members: tuple[Member, ...]
    kind_flag: bool = False

    def refs(self) -> tuple[int, ...]:
        return tuple(m.type_id for m in self.members)

    def member(self, name: str) -> Member:
        """The directly contained member called ``name`` (no anonymous-member search;
        see :meth:`Btf.field` for C-like paths)."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Struct(_Composite):
    """``struct name { members }`` of ``size`` bytes.  With ``kind_flag`` the member
    offset word packs (bitfield_size << 24 | bit_offset)."""

    KIND: ClassVar[Kind] = Kind.STRUCT


@dataclass(frozen=True, slots=True)
class Union(_Composite):
    """``union name { members }`` of ``size`` bytes (same encoding as a struct)."""

    KIND: ClassVar[Kind] = Kind.UNION


@dataclass(frozen=True, slots=True)
class EnumValue:
    """An enumerator; ``value`` is interpreted as signed or unsigned per the enum."""

    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Enum(BtfType):
    """A 32-bit enum (``size`` may be 1, 2, 4 or 8); ``signed`` is the kind_flag."""

    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False

    KIND: ClassVar[Kind] = Kind.ENUM


@dataclass(frozen=True, slots=True)
class Enum64(BtfType):
    """An enum with 64-bit enumerator values; ``signed`` is the kind_flag."""

    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False

    KIND: ClassVar[Kind] = Kind.ENUM64


@dataclass(frozen=True, slots=True)
class Fwd(BtfType):
    """A forward declaration ``struct name;`` (or ``union name;`` if ``is_union``)."""

    is_union: bool = False

    KIND: ClassVar[Kind] = Kind.FWD


@dataclass(frozen=True, slots=True)
class _RefType(BtfType):
    type_id: int

    def refs(self) -> tuple[int, ...]:
        return (self.type_id,)


@dataclass(frozen=True, slots=True)
class Typedef(_RefType):
    """``typedef <type_id> name``."""

    KIND: ClassVar[Kind] = Kind.TYPEDEF


@dataclass(frozen=True, slots=True)
class Volatile(_RefType):
    """``volatile <type_id>``."""

    KIND: ClassVar[Kind] = Kind.VOLATILE


@dataclass(frozen=True, slots=True)
class Const(_RefType):
    """``const <type_id>``."""

    KIND: ClassVar[Kind] = Kind.CONST


@dataclass(frozen=True, slots=True)
class Restrict(_RefType):
    """``restrict <type_id>`` (applies to a pointer)."""

    KIND: ClassVar[Kind] = Kind.RESTRICT


@dataclass(frozen=True, slots=True)
class TypeTag(_RefType):
    """``__attribute__((btf_type_tag(name))) <type_id>``.  ``kind_flag`` marks a tag
    that is an arbitrary attribute (kernels >= 6.14); clang 19 never sets it."""

    kind_flag: bool = False

    KIND: ClassVar[Kind] = Kind.TYPE_TAG


@dataclass(frozen=True, slots=True)
class Func(_RefType):
    """A function: ``type_id`` is its FUNC_PROTO; linkage lives in the vlen field."""

    linkage: FuncLinkage = FuncLinkage.STATIC

    KIND: ClassVar[Kind] = Kind.FUNC


@dataclass(frozen=True, slots=True)
class Param:
    """A FUNC_PROTO parameter; a trailing ``Param('', 0)`` means ``...``."""

    name: str
    type_id: int


@dataclass(frozen=True, slots=True)
class FuncProto(BtfType):
    """A function signature (always anonymous); ``return_type_id`` 0 is void."""

    return_type_id: int
    params: tuple[Param, ...]

    KIND: ClassVar[Kind] = Kind.FUNC_PROTO

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type_id == 0 and not self.params[-1].name

    def refs(self) -> tuple[int, ...]:
        return (self.return_type_id, *(p.type_id for p in self.params))


@dataclass(frozen=True, slots=True)
class Var(_RefType):
    """A global or static variable of ``type_id`` (listed in a DATASEC)."""

    linkage: VarLinkage = VarLinkage.GLOBAL_ALLOCATED

    KIND: ClassVar[Kind] = Kind.VAR


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    """One DATASEC entry: the VAR (or extern FUNC) at ``offset`` taking ``size`` bytes."""

    type_id: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Datasec(BtfType):
    """An ELF data section (``.data``, ``.bss``, ``.rodata``, ``.maps``...) and the
    variables in it.  Clang leaves ``size`` and global VAR offsets 0; the loader fills
    them from the ELF (:meth:`Btf.fixup_datasecs`)."""

    size: int
    vars: tuple[VarSecinfo, ...]

    KIND: ClassVar[Kind] = Kind.DATASEC

    def refs(self) -> tuple[int, ...]:
        return tuple(v.type_id for v in self.vars)


@dataclass(frozen=True, slots=True)
class Float(BtfType):
    """A floating-point type of ``size`` bytes (2, 4, 8, 12 or 16)."""

    size: int

    KIND: ClassVar[Kind] = Kind.FLOAT


@dataclass(frozen=True, slots=True)
class DeclTag(_RefType):
    """``__attribute__((btf_decl_tag(name)))`` on ``type_id`` (component_idx -1) or on
    its member/parameter number ``component_idx``."""

    component_idx: int = -1
    kind_flag: bool = False

    KIND: ClassVar[Kind] = Kind.DECL_TAG


#: Kinds whose record is a pure reference (skipped by ``Btf.resolve``).
MODIFIER_KINDS = frozenset({Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})

KIND_CLASSES: dict[Kind, type[BtfType]] = {
    cls.KIND: cls
    for cls in (
        Void,
        Int,
        Ptr,
        Array,
        Struct,
        Union,
        Enum,
        Fwd,
        Typedef,
        Volatile,
        Const,
        Restrict,
        Func,
        FuncProto,
        Var,
        Datasec,
        Float,
        DeclTag,
        TypeTag,
        Enum64,
    )
}
