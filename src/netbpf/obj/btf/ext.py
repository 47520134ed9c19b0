"""``.BTF.ext``: per-section func info, line info and CO-RE relocation records.

Layout (libbpf's ``struct btf_ext_header``; offsets relative to the header's end)::

    u16 magic 0xeB9F, u8 version 1, u8 flags 0, u32 hdr_len,
    u32 func_info_off, func_info_len, line_info_off, line_info_len,
    u32 core_relo_off, core_relo_len        (only if hdr_len >= 32)

Each info block is ``u32 record_size`` then, per ELF section,
``u32 sec_name_off, u32 num_info`` and ``num_info`` records of ``record_size`` bytes
(larger record sizes are accepted, the tail is ignored, as libbpf does).  All
``*_off`` string fields point into the *.BTF* string section, which is why parsing
needs the :class:`~netbpf.obj.btf.Btf`.

Instruction offsets are kept in bytes from the start of the ELF section, exactly as
clang writes them (``insn_off // 8`` is the slot index; the kernel wants slot
indices relative to the *program*, which the loader computes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from netbpf.errors import BtfError
from netbpf.obj.btf.model import Btf
from netbpf.obj.btf.parse import BTF_MAGIC, BTF_VERSION

__all__ = [
    "BtfExt",
    "CoreRelo",
    "CoreReloKind",
    "FuncInfo",
    "LineInfo",
    "encode_func_info",
    "encode_line_info",
]

SECTION = ".BTF.ext"
_MIN_HDR = 24
_FULL_HDR = 32
FUNC_INFO_SIZE = 8  # struct bpf_func_info
LINE_INFO_SIZE = 16  # struct bpf_line_info
CORE_RELO_SIZE = 16  # struct bpf_core_relo


class CoreReloKind(IntEnum):
    """``enum bpf_core_relo_kind`` (linux/bpf.h)."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12

    @property
    def is_field(self) -> bool:
        return self <= CoreReloKind.FIELD_RSHIFT_U64

    @property
    def is_type(self) -> bool:
        return self in _TYPE_KINDS

    @property
    def is_enumval(self) -> bool:
        return self in (CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE)


_TYPE_KINDS = frozenset(
    {
        CoreReloKind.TYPE_ID_LOCAL,
        CoreReloKind.TYPE_ID_TARGET,
        CoreReloKind.TYPE_EXISTS,
        CoreReloKind.TYPE_SIZE,
        CoreReloKind.TYPE_MATCHES,
    }
)


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """``struct bpf_func_info``: the FUNC type of the function starting at
    ``insn_off`` (bytes into ``section``)."""

    section: str
    insn_off: int
    type_id: int

    @property
    def insn(self) -> int:
        """Instruction slot index within the section."""
        return self.insn_off // 8


@dataclass(frozen=True, slots=True)
class LineInfo:
    """``struct bpf_line_info`` with its strings resolved: the instruction at
    ``insn_off`` comes from ``file``:``line``:``column``, whose text is ``text``.
    The raw string offsets are kept for handing the record to the kernel."""

    section: str
    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int
    file: str
    text: str

    @property
    def insn(self) -> int:
        return self.insn_off // 8

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def column(self) -> int:
        return self.line_col & 0x3FF


@dataclass(frozen=True, slots=True)
class CoreRelo:
    """``struct bpf_core_relo``: at ``insn_off`` (bytes into ``section``) the value
    described by ``kind`` of local type ``type_id`` reached by the accessor string
    ``access`` ("0:1:2": struct index, member, member...) must be relocated.
    ``offset`` is where the record sits in ``.BTF.ext`` (for error messages)."""

    section: str
    insn_off: int
    type_id: int
    access_str_off: int
    access: str
    kind: CoreReloKind
    offset: int = 0

    @property
    def insn(self) -> int:
        return self.insn_off // 8

    @property
    def spec(self) -> tuple[int, ...]:
        """The accessor string as integers."""
        return tuple(int(x) for x in self.access.split(":")) if self.access else ()


class _Reader:
    def __init__(self, raw: bytes, file: str | None) -> None:
        self.raw = raw
        self.file = file

    def error(self, reason: str, offset: int, type_id: int | None = None) -> BtfError:
        return BtfError(reason, file=self.file, section=SECTION, offset=offset, type_id=type_id)


@dataclass(frozen=True)
class BtfExt:
    """A parsed ``.BTF.ext`` section: per ELF section name, the func info, line info
    and CO-RE relocation records in file order."""

    func_info: Mapping[str, tuple[FuncInfo, ...]]
    line_info: Mapping[str, tuple[LineInfo, ...]]
    core_relos: Mapping[str, tuple[CoreRelo, ...]]
    func_info_rec_size: int = FUNC_INFO_SIZE
    line_info_rec_size: int = LINE_INFO_SIZE
    core_relo_rec_size: int = CORE_RELO_SIZE
    #: Where each section name sits in the .BTF string section (for re-encoding).
    section_name_offs: Mapping[str, int] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash(
            (
                tuple(self.func_info.items()),
                tuple(self.line_info.items()),
                tuple(self.core_relos.items()),
            )
        )

    @classmethod
    def parse(
        cls, raw: bytes | bytearray | memoryview, btf: Btf, *, file: str | None = None
    ) -> BtfExt:
        """Parse ``raw`` (a ``.BTF.ext`` section) whose strings live in ``btf``.

        Every header offset/length and every block is checked against the section
        size; type ids must exist in ``btf``; string offsets must be inside its string
        section.  Problems raise ``BtfError`` naming '.BTF.ext' and the byte offset.
        """
        raw = bytes(raw)
        rd = _Reader(raw, file)
        size = len(raw)
        if size < _MIN_HDR:
            raise rd.error(f"section is {size} bytes, too short for the {_MIN_HDR}-byte header", 0)
        magic = int.from_bytes(raw[0:2], "little")
        if magic == BTF_MAGIC:
            fmt = "<"
        elif int.from_bytes(raw[0:2], "big") == BTF_MAGIC:
            fmt = ">"
        else:
            raise rd.error(f"bad magic {magic:#06x} (expected {BTF_MAGIC:#06x})", 0)
        _, version, flags, hdr_len = struct.unpack_from(fmt + "HBBI", raw, 0)
        if version != BTF_VERSION:
            raise rd.error(f"unsupported version {version}", 2)
        if flags:
            raise rd.error(f"unsupported flags {flags:#x}", 3)
        if hdr_len < _MIN_HDR or hdr_len > size:
            raise rd.error(f"hdr_len {hdr_len} is not within [{_MIN_HDR}, {size}]", 4)
        fi_off, fi_len, li_off, li_len = struct.unpack_from(fmt + "IIII", raw, 8)
        cr_off = cr_len = 0
        if hdr_len >= _FULL_HDR:
            cr_off, cr_len = struct.unpack_from(fmt + "II", raw, 24)
        fi = cls._blocks(rd, fmt, hdr_len, fi_off, fi_len, FUNC_INFO_SIZE, "func_info", 8, btf)
        li = cls._blocks(rd, fmt, hdr_len, li_off, li_len, LINE_INFO_SIZE, "line_info", 16, btf)
        cr = cls._blocks(rd, fmt, hdr_len, cr_off, cr_len, CORE_RELO_SIZE, "core_relo", 24, btf)

        func_info: dict[str, tuple[FuncInfo, ...]] = {}
        for sec, recs in fi[1].items():
            out_f = []
            for pos in recs:
                insn_off, type_id = struct.unpack_from(fmt + "II", raw, pos)
                cls._check_insn_off(rd, insn_off, pos)
                cls._check_type(rd, btf, type_id, pos + 4)
                out_f.append(FuncInfo(sec, insn_off, type_id))
            func_info[sec] = tuple(out_f)

        line_info: dict[str, tuple[LineInfo, ...]] = {}
        for sec, recs in li[1].items():
            out_l = []
            for pos in recs:
                insn_off, fname_off, line_off, line_col = struct.unpack_from(fmt + "IIII", raw, pos)
                cls._check_insn_off(rd, insn_off, pos)
                fname = cls._string(rd, btf, fname_off, pos + 4)
                text = cls._string(rd, btf, line_off, pos + 8)
                out_l.append(LineInfo(sec, insn_off, fname_off, line_off, line_col, fname, text))
            line_info[sec] = tuple(out_l)

        core: dict[str, tuple[CoreRelo, ...]] = {}
        for sec, recs in cr[1].items():
            out_c = []
            for pos in recs:
                insn_off, type_id, access_off, kind = struct.unpack_from(fmt + "IIII", raw, pos)
                cls._check_insn_off(rd, insn_off, pos)
                cls._check_type(rd, btf, type_id, pos + 4)
                access = cls._string(rd, btf, access_off, pos + 8)
                try:
                    rkind = CoreReloKind(kind)
                except ValueError:
                    raise rd.error(
                        f"unknown CO-RE relocation kind {kind}", pos + 12, type_id
                    ) from None
                out_c.append(CoreRelo(sec, insn_off, type_id, access_off, access, rkind, pos))
            core[sec] = tuple(out_c)
        names = {**fi[2], **li[2], **cr[2]}
        return cls(func_info, line_info, core, fi[0], li[0], cr[0], names)

    @staticmethod
    def _blocks(
        rd: _Reader,
        fmt: str,
        hdr_len: int,
        off: int,
        length: int,
        min_rec: int,
        what: str,
        hdr_field: int,
        btf: Btf,
    ) -> tuple[int, dict[str, list[int]], dict[str, int]]:
        """Walk one info block; returns (record size, {section: [record position]},
        {section: name offset})."""
        if length == 0:
            return min_rec, {}, {}
        start = hdr_len + off
        if off % 4:
            raise rd.error(f"{what} offset {off} is not 4-byte aligned", hdr_field)
        if start + length > len(rd.raw):
            raise rd.error(
                f"{what} [{off}, +{length}) runs past the end of the section "
                f"({len(rd.raw) - hdr_len} data bytes)",
                hdr_field + 4,
            )
        if length < 4:
            raise rd.error(f"{what} block of {length} bytes has no record size", start)
        end = start + length
        (rec_size,) = struct.unpack_from(fmt + "I", rd.raw, start)
        if rec_size < min_rec or rec_size % 4:
            raise rd.error(f"{what} record size {rec_size} is invalid (minimum {min_rec})", start)
        pos = start + 4
        out: dict[str, list[int]] = {}
        name_offs: dict[str, int] = {}
        while pos < end:
            if pos + 8 > end:
                raise rd.error(f"{what}: truncated section header", pos)
            name_off, num = struct.unpack_from(fmt + "II", rd.raw, pos)
            name = BtfExt._string(rd, btf, name_off, pos)
            if not name:
                raise rd.error(f"{what}: empty section name", pos)
            if num == 0:
                raise rd.error(f"{what} for section {name!r} has no records", pos + 4)
            if pos + 8 + num * rec_size > end:
                raise rd.error(
                    f"{what} for section {name!r}: {num} records of {rec_size} bytes run past "
                    f"the end of the block",
                    pos + 4,
                )
            first = pos + 8
            pos = first + num * rec_size
            out.setdefault(name, []).extend(range(first, pos, rec_size))
            name_offs.setdefault(name, name_off)
        return rec_size, out, name_offs

    @staticmethod
    def _check_insn_off(rd: _Reader, insn_off: int, pos: int) -> None:
        if insn_off % 8:
            raise rd.error(f"insn_off {insn_off} is not a multiple of 8", pos)

    @staticmethod
    def _check_type(rd: _Reader, btf: Btf, type_id: int, pos: int) -> None:
        if not 0 < type_id < len(btf):
            raise rd.error(
                f"type id {type_id} is not in the BTF ({len(btf) - 1} types)", pos, type_id
            )

    @staticmethod
    def _string(rd: _Reader, btf: Btf, off: int, pos: int) -> str:
        if off >= len(btf.strings):
            raise rd.error(
                f"string offset {off} is outside the {len(btf.strings)}-byte .BTF string section",
                pos,
            )
        return btf.string_at(off)

    # -- queries --------------------------------------------------------------------
    def line_at(self, section: str, insn: int) -> LineInfo | None:
        """The line info in effect at slot ``insn`` of ``section`` (the last record at
        or before it), or None."""
        best = None
        for li in self.line_info.get(section, ()):
            if li.insn <= insn:
                best = li
            else:
                break
        return best

    # -- encoding -------------------------------------------------------------------
    def to_bytes(self, btf: Btf, *, byteorder: str | None = None) -> bytes:
        """Re-encode with the minimal record sizes (string offsets are the records'
        own: ``btf`` must have been parsed from, or encode to, the same strings;
        section names are looked up in it)."""
        fmt = "<" if (byteorder or btf.byteorder) == "little" else ">"
        str_index = _string_index(btf)

        def block(
            groups: Mapping[str, tuple[Any, ...]], rec_size: int, pack: Callable[[Any], bytes]
        ) -> bytes:
            if not groups:
                return b""
            parts = [struct.pack(fmt + "I", rec_size)]
            for sec, recs in groups.items():
                off = self.section_name_offs.get(sec, str_index.get(sec))
                if off is None:
                    raise BtfError(
                        f"section name {sec!r} is not in the .BTF string section", section=SECTION
                    )
                parts.append(struct.pack(fmt + "II", off, len(recs)))
                parts.extend(pack(r) for r in recs)
            return b"".join(parts)

        fi = block(
            self.func_info, FUNC_INFO_SIZE, lambda r: struct.pack(fmt + "II", r.insn_off, r.type_id)
        )
        li = block(
            self.line_info,
            LINE_INFO_SIZE,
            lambda r: struct.pack(
                fmt + "IIII", r.insn_off, r.file_name_off, r.line_off, r.line_col
            ),
        )
        cr = block(
            self.core_relos,
            CORE_RELO_SIZE,
            lambda r: struct.pack(fmt + "IIII", r.insn_off, r.type_id, r.access_str_off, r.kind),
        )
        hdr = struct.pack(
            fmt + "HBBIIIIIII",
            BTF_MAGIC,
            BTF_VERSION,
            0,
            _FULL_HDR,
            0,
            len(fi),
            len(fi),
            len(li),
            len(fi) + len(li),
            len(cr),
        )
        return hdr + fi + li + cr


def _string_index(btf: Btf) -> dict[str, int]:
    idx: dict[str, int] = {}
    pos = 0
    for piece in btf.strings.split(b"\0")[:-1]:
        idx.setdefault(piece.decode("utf-8", "surrogateescape"), pos)
        pos += len(piece) + 1
    return idx


def encode_func_info(
    records: list[FuncInfo] | tuple[FuncInfo, ...], *, insn_base: int = 0
) -> bytes:
    """``struct bpf_func_info`` array for ``BPF_PROG_LOAD``: the kernel wants slot
    indices relative to the program, so ``insn_base`` (the program's first slot in
    its section) is subtracted.  Little-endian (the host's order on x86-64/arm64)."""
    return b"".join(struct.pack("<II", r.insn - insn_base, r.type_id) for r in records)


def encode_line_info(
    records: list[LineInfo] | tuple[LineInfo, ...], *, insn_base: int = 0
) -> bytes:
    """``struct bpf_line_info`` array for ``BPF_PROG_LOAD`` (see :func:`encode_func_info`)."""
    return b"".join(
        struct.pack("<IIII", r.insn - insn_base, r.file_name_off, r.line_off, r.line_col)
        for r in records
    )
