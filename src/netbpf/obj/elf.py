"""Reading BPF ELF objects: sections, symbols and relocations, with our own errors.

pyelftools does the ELF decoding; this module's job is to refuse anything that is not a
little-endian 64-bit BPF object, and to turn every decoding failure (truncated file,
offsets past the end, corrupt tables) into an :class:`~netbpf.errors.ElfError` that
names the file, the section and the byte offset, instead of a library traceback.
"""

from __future__ import annotations

import io
import struct as _struct
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.elffile import ELFFile

from netbpf.errors import ElfError

__all__ = ["EM_BPF", "ElfObject", "Reloc", "Section", "Symbol"]

EM_BPF = 247

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_NOBITS = 8
SHT_REL = 9
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

STT_NOTYPE = 0
STT_OBJECT = 1
STT_FUNC = 2
STT_SECTION = 3
STB_LOCAL = 0
STB_GLOBAL = 1
STB_WEAK = 2
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2

# BPF relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def)
R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10

_DECODE_ERRORS = (
    _PyElfError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AssertionError,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
    AttributeError,
)
try:  # construct is pyelftools' decoding library; its errors must not escape either
    from elftools.construct.core import ConstructError as _ConstructError

    _DECODE_ERRORS = (*_DECODE_ERRORS, _ConstructError)
except ImportError:  # pragma: no cover
    pass

_DECODE_ERRORS = (*_DECODE_ERRORS, _struct.error)


@dataclass(frozen=True, slots=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    data: bytes

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True, slots=True)
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int


@dataclass(frozen=True, slots=True)
class Reloc:
    """One REL entry: byte offset in the target section, type, symbol index."""

    offset: int
    type: int
    symbol: Symbol


class ElfObject:
    """A validated, fully read BPF ELF object (all sections loaded eagerly so that no
    later access can hit a decoding error)."""

    def __init__(self, data: bytes, *, file: str | None = None) -> None:
        self.file = file
        self.data = bytes(data)
        try:
            elf = ELFFile(io.BytesIO(self.data))
        except _DECODE_ERRORS as e:
            raise ElfError(f"not an ELF object: {e}", file=file, offset=0) from None
        hdr = elf.header
        if elf.elfclass != 64:
            raise ElfError(f"ELF class {elf.elfclass}: BPF objects are 64-bit", file=file, offset=4)
        if not elf.little_endian:
            raise ElfError(
                "big-endian BPF object (bpfeb) is not supported; build with -target bpf on "
                "a little-endian host or -target bpfel",
                file=file,
                offset=5,
            )
        if hdr["e_machine"] not in ("EM_BPF", EM_BPF):
            raise ElfError(
                f"machine {hdr['e_machine']} is not EM_BPF (247)", file=file, offset=0x12
            )
        self.sections: list[Section] = []
        try:
            count = elf.num_sections()
        except _DECODE_ERRORS as e:
            raise ElfError(
                f"corrupt section header table: {e}", file=file, offset=hdr["e_shoff"]
            ) from None
        for i in range(count):
            shoff = hdr["e_shoff"] + i * hdr["e_shentsize"]
            try:
                s = elf.get_section(i)
                name = s.name
                sh = s.header
                if sh["sh_type"] in ("SHT_NOBITS", SHT_NOBITS) or i == 0:
                    body = b""
                else:
                    end = sh["sh_offset"] + sh["sh_size"]
                    if end > len(self.data):
                        raise ElfError(
                            f"section data [{sh['sh_offset']:#x}, {end:#x}) runs past the end of "
                            f"the file ({len(self.data):#x} bytes)",
                            file=file,
                            section=name,
                            offset=sh["sh_offset"],
                        )
                    body = self.data[sh["sh_offset"] : end]
            except ElfError:
                raise
            except _DECODE_ERRORS as e:
                raise ElfError(
                    f"corrupt section header {i}: {e}", file=file, offset=shoff
                ) from None
            stype = sh["sh_type"]
            if isinstance(stype, str):
                stype = _SHT_NAMES.get(stype, -1)
            self.sections.append(
                Section(
                    i,
                    name,
                    stype,
                    sh["sh_flags"],
                    sh["sh_offset"],
                    sh["sh_size"],
                    sh["sh_link"],
                    sh["sh_info"],
                    sh["sh_addralign"],
                    body,
                )
            )
        self._elf = elf

    # -- symbols ---------------------------------------------------------------------
    @cached_property
    def symbols(self) -> list[Symbol]:
        tabs = [s for s in self.sections if s.type == SHT_SYMTAB]
        if not tabs:
            raise ElfError("no symbol table (.symtab); was the object stripped?", file=self.file)
        tab = tabs[0]
        if tab.link >= len(self.sections):
            raise ElfError(
                f"symbol table links to missing string table {tab.link}",
                file=self.file,
                section=tab.name,
                offset=tab.offset,
            )
        strtab = self.sections[tab.link].data
        out: list[Symbol] = []
        entsize = 24
        for i in range(len(tab.data) // entsize):
            base = i * entsize
            st_name, st_info, _other, st_shndx, st_value, st_size = _struct.unpack_from(
                "<IBBHQQ", tab.data, base
            )
            name = _cstr(strtab, st_name, self.file, tab.name, tab.offset + base)
            if st_shndx not in (SHN_UNDEF, SHN_ABS, SHN_COMMON) and st_shndx >= len(self.sections):
                raise ElfError(
                    f"symbol {name!r} refers to missing section {st_shndx}",
                    file=self.file,
                    section=tab.name,
                    offset=tab.offset + base,
                )
            out.append(Symbol(i, name, st_value, st_size, st_info & 0xF, st_info >> 4, st_shndx))
        return out

    def section_named(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def relocations_for(self, target: Section) -> list[Reloc]:
        """REL entries that apply to ``target`` (from every SHT_REL section whose sh_info
        points at it), sorted by offset."""
        out: list[Reloc] = []
        syms = None
        for s in self.sections:
            if s.type != SHT_REL or s.info != target.index:
                continue
            if syms is None:
                syms = self.symbols
            if len(s.data) % 16:
                raise ElfError(
                    f"relocation section size {len(s.data)} is not a multiple of 16",
                    file=self.file,
                    section=s.name,
                    offset=s.offset,
                )
            for i in range(len(s.data) // 16):
                r_offset, r_info = _struct.unpack_from("<QQ", s.data, i * 16)
                sym_idx, rtype = r_info >> 32, r_info & 0xFFFFFFFF
                if sym_idx >= len(syms):
                    raise ElfError(
                        f"relocation {i} names missing symbol {sym_idx}",
                        file=self.file,
                        section=s.name,
                        offset=s.offset + i * 16,
                    )
                if r_offset >= max(target.size, 1) and target.type != SHT_NOBITS:
                    raise ElfError(
                        f"relocation {i} at offset {r_offset:#x} is past the end of "
                        f"{target.name!r} ({target.size:#x} bytes)",
                        file=self.file,
                        section=s.name,
                        offset=s.offset + i * 16,
                    )
                out.append(Reloc(r_offset, rtype, syms[sym_idx]))
        out.sort(key=lambda r: r.offset)
        return out


_SHT_NAMES = {
    "SHT_NULL": 0,
    "SHT_PROGBITS": 1,
    "SHT_SYMTAB": 2,
    "SHT_STRTAB": 3,
    "SHT_RELA": 4,
    "SHT_HASH": 5,
    "SHT_DYNAMIC": 6,
    "SHT_NOTE": 7,
    "SHT_NOBITS": 8,
    "SHT_REL": 9,
    "SHT_DYNSYM": 11,
    "SHT_LLVM_ADDRSIG": 0x6FFF4C03,
}


def _cstr(table: bytes, off: int, file: str | None, section: str, where: int) -> str:
    if off >= len(table) and off:
        raise ElfError(
            f"string offset {off} is past the string table ({len(table)} bytes)",
            file=file,
            section=section,
            offset=where,
        )
    end = table.find(b"\0", off)
    if end < 0:
        raise ElfError(
            f"unterminated string at string-table offset {off}",
            file=file,
            section=section,
            offset=where,
        )
    try:
        return table[off:end].decode()
    except UnicodeDecodeError:
        raise ElfError(
            f"string at string-table offset {off} is not UTF-8",
            file=file,
            section=section,
            offset=where,
        ) from None
