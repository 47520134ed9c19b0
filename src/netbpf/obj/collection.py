"""``load_collection_spec``: a clang ``-target bpf`` object -> a CollectionSpec.

What it does, following libbpf's documented conventions:

* every function symbol in an executable section other than ``.text`` is a program;
  the section name gives its type (:mod:`netbpf.uapi.sections`);
* functions in ``.text`` are subprograms: each program gets its own copy of every
  subprogram it reaches (calls, and ``LD_IMM64`` of a function for callbacks), appended
  after its own code, with call offsets rewritten — the kernel loads one flat
  instruction array per program;
* BTF-defined maps (``.maps``), legacy ``maps`` definitions and global data
  (``.data``, ``.rodata``, ``.bss``, ``.data.*``, ``.rodata.*``) become MapSpecs;
  ``LD_IMM64`` relocations against them become :class:`MapReloc` records that a backend
  resolves once the maps exist;
* ``.BTF``/``.BTF.ext`` give types, func_info, line_info and CO-RE records, remapped to
  the linked program's slots.

The result is pure data: parsing the same bytes twice gives equal specs, and nothing is
created in a kernel or a simulator.
"""

from __future__ import annotations

import copy
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netbpf.errors import BtfError, ElfError, NotSupportedError, ObjectError
from netbpf.isa.instruction import Instruction
from netbpf.obj import elf as E
from netbpf.obj.spec import FuncInfo, LineInfo, MapReloc, ProgramSpec
from netbpf.uapi import BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, MapType, ProgramType
from netbpf.uapi.sections import match_section

__all__ = [
    "CollectionSpec",
    "VariableSpec",
    "is_global_data",
    "load_collection_spec",
    "map_contents",
    "map_data",
]

_LD_IMM64 = 0x18
_CALL = 0x85
#: An array map's value may not exceed KMALLOC_MAX_SIZE (4 MiB on x86-64), so neither
#: may a global-data section (the kernel answers E2BIG).
_MAX_MAP_VALUE = 4 << 20
_DATA_PREFIXES = (".data", ".rodata", ".bss")


@dataclass
class VariableSpec:
    """A global variable of the object (``.data``/``.rodata``/``.bss``).

    ``set()`` writes the initial value into the owning map's contents in the spec, so a
    ``const volatile`` configuration knob can be chosen before loading (libbpf's
    skeleton ``rodata->knob = 1``; cilium/ebpf's VariableSpec.Set)."""

    name: str
    map: str
    offset: int
    size: int
    type_id: int = 0
    readonly: bool = False
    _collection: CollectionSpec | None = field(default=None, repr=False, compare=False)

    def get(self) -> bytes:
        assert self._collection is not None
        data = map_data(self._collection.maps[self.map])
        return bytes(data[self.offset : self.offset + self.size])

    def get_int(self, *, signed: bool = False) -> int:
        return int.from_bytes(self.get(), "little", signed=signed)

    def set(self, value: Any) -> None:
        """Set the initial value: bytes of exactly this variable's size, or a Python
        value encoded through the variable's BTF type (an int, a list for an array, a
        dict for a struct; see :mod:`netbpf.obj.btf_values`).  Without BTF only ints
        (little-endian, this variable's size) and bytes are accepted."""
        assert self._collection is not None
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            if len(raw) != self.size:
                raise ObjectError(
                    f"variable {self.name!r} is {self.size} bytes, got {len(raw)} bytes"
                )
        elif self.type_id and self._collection.btf is not None:
            from netbpf.errors import BtfValueError
            from netbpf.obj.btf_values import value_codec

            try:
                raw = value_codec(self._collection.btf, self.type_id).encode(value)
            except BtfValueError as e:
                raise ObjectError(f"variable {self.name!r}: {e}") from None
        elif isinstance(value, int):
            try:
                raw = value.to_bytes(self.size, "little", signed=value < 0)
            except OverflowError:
                raise ObjectError(
                    f"value {value} does not fit variable {self.name!r} ({self.size} bytes)"
                ) from None
        else:
            raise ObjectError(
                f"variable {self.name!r} has no BTF type: give an int or {self.size} bytes, "
                f"not {type(value).__name__}"
            )
        mspec = self._collection.maps[self.map]
        data = bytearray(map_data(mspec))
        data[self.offset : self.offset + self.size] = raw
        self._collection.maps[self.map] = mspec.with_(
            extra={**mspec.extra, "contents": ((0, bytes(data)),)}
        )


def is_global_data(mspec: Any) -> bool:
    """Whether a MapSpec stands for a global-data section (``.data``, ``.rodata``,
    ``.bss``, ``.data.*``, ``.rodata.*``) rather than a declared map."""
    return "section" in mspec.extra


def map_contents(mspec: Any) -> tuple[tuple[int, Any], ...]:
    """Initial contents of a map spec: ``(key index, value)`` pairs where the value is
    bytes (global data) or ``("map"|"prog", name)`` (map-in-map / prog-array slots
    filled from ``.maps`` relocations)."""
    return tuple(mspec.extra.get("contents", ()))


def map_data(mspec: Any) -> bytes:
    """The single value of a global-data map (``.data``/``.rodata``/``.bss``)."""
    for key, value in map_contents(mspec):
        if key == 0 and isinstance(value, bytes):
            return value
    return bytes(mspec.value_size)


@dataclass
class CollectionSpec:
    """Everything an object declares: programs, maps, global variables, BTF."""

    programs: dict[str, ProgramSpec]
    maps: dict[str, Any]  # name -> netbpf.maps.MapSpec
    variables: dict[str, VariableSpec]
    btf: Any = None
    license: str = ""
    kern_version: int = 0
    file: str | None = field(default=None, compare=False)

    def copy(self) -> CollectionSpec:
        """A deep copy: change variables on the copy without touching this spec."""
        new = copy.copy(self)
        new.programs = dict(self.programs)
        new.maps = dict(self.maps)
        new.variables = {k: replace(v, _collection=new) for k, v in self.variables.items()}
        return new

    def __post_init__(self) -> None:
        for v in self.variables.values():
            v._collection = self


def load_collection_spec(source: str | Path | bytes, *, name: str | None = None) -> CollectionSpec:
    """Parse a BPF ELF object (path or bytes) into a :class:`CollectionSpec`."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, file = bytes(source), name
    else:
        file = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ObjectError(f"cannot read object: {e.strerror}", file=file) from None
    return _Loader(data, file).load()


# --------------------------------------------------------------------------------------


@dataclass
class _Func:
    """A function symbol's extent inside an executable section (slot indices)."""

    name: str
    section: E.Section
    start: int
    end: int
    is_global: bool


class _Loader:
    def __init__(self, data: bytes, file: str | None) -> None:
        self.file = file
        self.elf = E.ElfObject(data, file=file)
        self.btf = None
        self.btf_ext = None
        self.maps: dict[str, Any] = {}
        self.map_by_symbol: dict[tuple[int, int], str] = {}  # (shndx, value) -> map name
        self.data_maps: dict[int, str] = {}  # shndx -> map name for global-data sections
        self.variables: dict[str, VariableSpec] = {}

    def err(self, reason: str, section: str | None = None, offset: int | None = None) -> ElfError:
        return ElfError(reason, file=self.file, section=section, offset=offset)

    # -- top level ------------------------------------------------------------------
    def load(self) -> CollectionSpec:
        self._load_btf()
        license = self._string_section("license")
        version = self._version()
        self._load_data_sections()
        self._load_legacy_maps()
        self._load_btf_maps()
        funcs = self._functions()
        programs: dict[str, ProgramSpec] = {}
        for fn in funcs.values():
            if fn.section.name == ".text":
                continue
            sdef = match_section(fn.section.name)
            if sdef is None:
                raise self.err(
                    f"program {fn.name!r} is in section {fn.section.name!r}, which names no "
                    "known program type (see netbpf.uapi.sections)",
                    fn.section.name,
                    fn.section.offset + fn.start * 8,
                )
            if not fn.is_global:
                continue  # static functions in program sections are subprograms
            insns, relocs, finfo, linfo, core = self._link(fn, funcs)
            programs[fn.name] = ProgramSpec(
                name=fn.name,
                prog_type=sdef.prog_type,
                insns=tuple(insns),
                attach_type=sdef.attach_type,
                section=fn.section.name,
                license=license,
                map_relocs=tuple(relocs),
                func_info=tuple(finfo),
                line_info=tuple(linfo),
                core_relos=tuple(core),
                btf=self.btf,
                frags=sdef.frags,
                kern_version=version,
            )
        return CollectionSpec(
            programs, self.maps, self.variables, self.btf, license, version, self.file
        )

    # -- simple sections ---------------------------------------------------------------
    def _string_section(self, name: str) -> str:
        s = self.elf.section_named(name)
        if s is None:
            return ""
        raw = s.data.split(b"\0", 1)[0]
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise self.err("license string is not UTF-8", name, s.offset) from None

    def _version(self) -> int:
        s = self.elf.section_named("version")
        if s is None:
            return 0
        if len(s.data) != 4:
            raise self.err(
                f"version section is {len(s.data)} bytes, expected 4", "version", s.offset
            )
        return int.from_bytes(s.data, "little")

    def _load_btf(self) -> None:
        from netbpf.obj.btf import Btf, BtfExt

        s = self.elf.section_named(".BTF")
        if s is None:
            return
        self.btf = Btf.parse(s.data, file=self.file)
        # libbpf fills DATASEC sizes and VAR offsets from the ELF (clang leaves them 0
        # for some sections); do the same so the BTF describes the object as loaded.
        sizes = {sec.name: sec.size for sec in self.elf.sections if sec.name}
        offsets = {}
        for sym in self.elf.symbols:
            if sym.type == E.STT_OBJECT and sym.bind != E.STB_LOCAL:
                offsets[sym.name] = sym.value
        try:
            self.btf = self.btf.fixup_datasecs(sizes, offsets)
        except BtfError:
            raise
        ext = self.elf.section_named(".BTF.ext")
        if ext is not None:
            self.btf_ext = BtfExt.parse(ext.data, btf=self.btf, file=self.file)

    # -- maps ---------------------------------------------------------------------------
    def _add_map(self, mspec: Any, section: str, offset: int) -> None:
        if mspec.name in self.maps:
            raise self.err(f"map {mspec.name!r} is defined twice", section, offset)
        self.maps[mspec.name] = mspec

    def _load_data_sections(self) -> None:
        from netbpf.maps.spec import MapSpec

        for sec in self.elf.sections:
            if not sec.name.startswith(_DATA_PREFIXES) or sec.executable:
                continue
            if sec.type not in (E.SHT_PROGBITS, E.SHT_NOBITS):
                continue
            if not sec.flags & E.SHF_ALLOC:
                continue
            readonly = sec.name.startswith(".rodata")
            size = sec.size
            if size == 0:
                continue
            if size > _MAX_MAP_VALUE:
                raise self.err(
                    f"global data section is {size} bytes; the kernel refuses map values "
                    f"larger than {_MAX_MAP_VALUE} bytes (KMALLOC_MAX_SIZE)",
                    sec.name,
                    sec.offset,
                )
            data = bytes(size) if sec.type == E.SHT_NOBITS else sec.data
            flags = 0x80 if readonly else 0  # BPF_F_RDONLY_PROG for .rodata, as libbpf
            mspec = MapSpec(
                name=sec.name,
                type=MapType.ARRAY,
                key_size=4,
                value_size=size,
                max_entries=1,
                flags=flags | 0x400,  # BPF_F_MMAPABLE
                extra={"contents": ((0, data),), "freeze": readonly, "section": sec.name},
            )
            self._add_map(mspec, sec.name, sec.offset)
            self.data_maps[sec.index] = sec.name
            btf_types = {}
            if self.btf is not None:
                try:
                    for var, off, vsize in self.btf.variables(sec.name):
                        btf_types[var.name] = (off, vsize, var.type_id)
                except BtfError:
                    btf_types = {}
            for sym in self.elf.symbols:
                if sym.shndx != sec.index or sym.type != E.STT_OBJECT or sym.bind == E.STB_LOCAL:
                    continue
                off, vsize, tid = btf_types.get(sym.name, (sym.value, sym.size, 0))
                self.variables[sym.name] = VariableSpec(
                    sym.name, sec.name, sym.value, sym.size or vsize, tid, readonly
                )

    def _load_legacy_maps(self) -> None:
        """The pre-BTF ``maps`` section: ``struct bpf_map_def`` (type, key_size,
        value_size, max_entries, map_flags, and optionally more u32 fields) per symbol."""
        from netbpf.maps.spec import MapSpec

        sec = self.elf.section_named("maps")
        if sec is None:
            return
        syms = [
            s
            for s in self.elf.symbols
            if s.shndx == sec.index and s.type != E.STT_SECTION and s.name
        ]
        if not syms:
            raise self.err("maps section has no map symbols", "maps", sec.offset)
        for sym in syms:
            size = sym.size or (len(sec.data) // len(syms))
            if size < 20 or sym.value + size > len(sec.data):
                raise self.err(
                    f"legacy map {sym.name!r}: definition of {size} bytes at {sym.value:#x} "
                    "does not hold struct bpf_map_def (20 bytes) inside the section",
                    "maps",
                    sec.offset + sym.value,
                )
            mtype, ksz, vsz, maxe, flags = struct.unpack_from("<IIIII", sec.data, sym.value)
            try:
                mtype = MapType(mtype)
            except ValueError:
                raise self.err(
                    f"legacy map {sym.name!r}: unknown map type {mtype}",
                    "maps",
                    sec.offset + sym.value,
                ) from None
            self._add_map(
                MapSpec(
                    name=sym.name,
                    type=mtype,
                    key_size=ksz,
                    value_size=vsz,
                    max_entries=maxe,
                    flags=flags,
                ),
                "maps",
                sec.offset + sym.value,
            )
            self.map_by_symbol[(sec.index, sym.value)] = sym.name

    def _load_btf_maps(self) -> None:
        sec = self.elf.section_named(".maps")
        if sec is None:
            return
        if self.btf is None:
            raise self.err(
                "a .maps section needs BTF (.BTF section missing; build with -g)",
                ".maps",
                sec.offset,
            )
        from netbpf.obj.btf_maps import parse_btf_map

        relocs = {r.offset: r for r in self.elf.relocations_for(sec)}
        try:
            variables = self.btf.variables(".maps")
        except BtfError as e:
            raise self.err(f"no BTF DATASEC for .maps: {e.reason}", ".maps", sec.offset) from None
        for var, off, size in variables:
            mspec = parse_btf_map(
                self.btf, var.name, var.type_id, off, size, relocs, self.elf, sec, file=self.file
            )
            self._add_map(mspec, ".maps", sec.offset + off)
            self.map_by_symbol[(sec.index, off)] = var.name

    # -- programs -----------------------------------------------------------------------
    def _functions(self) -> dict[tuple[int, int], _Func]:
        """Function extents per executable section, keyed by (section index, start slot)."""
        funcs: dict[tuple[int, int], _Func] = {}
        for sym in self.elf.symbols:
            if sym.type != E.STT_FUNC or sym.shndx in (E.SHN_UNDEF, E.SHN_ABS, E.SHN_COMMON):
                continue
            sec = self.elf.sections[sym.shndx]
            if not sec.executable:
                raise self.err(
                    f"function {sym.name!r} is in non-executable section",
                    sec.name,
                    sec.offset + sym.value,
                )
            if sym.value % 8 or sym.size % 8 or sym.value + sym.size > len(sec.data):
                raise self.err(
                    f"function {sym.name!r} spans [{sym.value:#x}, "
                    f"{sym.value + sym.size:#x}), not whole instructions inside the "
                    f"section ({len(sec.data):#x} bytes)",
                    sec.name,
                    sec.offset + sym.value,
                )
            if len(sec.data) % 8:
                raise self.err(
                    f"section size {len(sec.data)} is not a multiple of 8", sec.name, sec.offset
                )
            start = sym.value // 8
            funcs[(sec.index, start)] = _Func(
                sym.name, sec, start, start + sym.size // 8, sym.bind != E.STB_LOCAL
            )
        for sec in self.elf.sections:
            if sec.executable and sec.size and not any(k[0] == sec.index for k in funcs):
                raise self.err("executable section has no function symbols", sec.name, sec.offset)
        return funcs

    def _section_insns(self, sec: E.Section) -> list[Instruction]:
        cache = getattr(self, "_insn_cache", None)
        if cache is None:
            cache = self._insn_cache = {}
        if sec.index not in cache:
            cache[sec.index] = [Instruction.decode(sec.data, i) for i in range(0, len(sec.data), 8)]
        return cache[sec.index]

    def _relocs(self, sec: E.Section) -> dict[int, E.Reloc]:
        cache = getattr(self, "_reloc_cache", None)
        if cache is None:
            cache = self._reloc_cache = {}
        if sec.index not in cache:
            cache[sec.index] = {r.offset: r for r in self.elf.relocations_for(sec)}
        return cache[sec.index]

    def _func_at(
        self, funcs: Mapping[tuple[int, int], _Func], sec: E.Section, slot: int, where: str, at: int
    ) -> _Func:
        fn = funcs.get((sec.index, slot))
        if fn is None:
            raise self.err(
                f"{where} targets instruction {slot} of {sec.name!r}, which is not the "
                "start of a function",
                sec.name,
                at,
            )
        return fn

    def _link(self, main: _Func, funcs: Mapping[tuple[int, int], _Func]):
        """One flat instruction array for ``main`` plus every function it reaches."""
        out: list[Instruction] = []
        placed: dict[tuple[int, int], int] = {}  # function key -> start slot in out
        order: list[_Func] = [main]
        map_relocs: list[MapReloc] = []
        fixups: list[tuple[int, _Func]] = []  # (slot in out, target function)
        placed[(main.section.index, main.start)] = 0
        i = 0
        while i < len(order):
            fn = order[i]
            i += 1
            base = len(out)
            placed[(fn.section.index, fn.start)] = base
            insns = self._section_insns(fn.section)
            relocs = self._relocs(fn.section)
            for k in range(fn.start, fn.end):
                ins = insns[k]
                boff = k * 8
                rel = relocs.get(boff)
                slot = base + (k - fn.start)
                target: _Func | None = None
                if rel is not None:
                    ins, target = self._apply_reloc(ins, rel, fn, k, funcs, map_relocs, slot)
                elif ins.opcode == _CALL and ins.src == BPF_PSEUDO_CALL:
                    target = self._func_at(
                        funcs, fn.section, k + ins.imm + 1, "call", fn.section.offset + boff
                    )
                elif ins.opcode == _LD_IMM64 and ins.src == BPF_PSEUDO_FUNC:
                    target = self._func_at(
                        funcs,
                        fn.section,
                        k + ins.imm + 1,
                        "function pointer",
                        fn.section.offset + boff,
                    )
                if target is not None:
                    key = (target.section.index, target.start)
                    if key not in placed and target not in order:
                        order.append(target)
                    fixups.append((slot, target))
                out.append(ins)
        for slot, target in fixups:
            dest = placed[(target.section.index, target.start)]
            out[slot] = replace(out[slot], imm=dest - slot - 1)
        finfo, linfo, core = self._ext_info(order, placed)
        return out, map_relocs, finfo, linfo, core

    def _apply_reloc(
        self,
        ins: Instruction,
        rel: E.Reloc,
        fn: _Func,
        k: int,
        funcs: Mapping[tuple[int, int], _Func],
        map_relocs: list[MapReloc],
        slot: int,
    ) -> tuple[Instruction, _Func | None]:
        sec = fn.section
        at = sec.offset + k * 8
        sym = rel.symbol
        if rel.type == E.R_BPF_64_32:
            if ins.opcode != _CALL:
                raise self.err(
                    f"R_BPF_64_32 relocation on a non-call instruction (opcode {ins.opcode:#x})",
                    sec.name,
                    at,
                )
            if sym.shndx in (E.SHN_UNDEF,):
                raise NotSupportedError(
                    f"call to extern function {sym.name!r} (kfuncs)",
                    f"{self.file}: section {sec.name!r} offset {at:#x}",
                )
            tsec = self.elf.sections[sym.shndx]
            tslot = (sym.value // 8 if sym.type != E.STT_SECTION else 0) + ins.imm + 1
            target = self._func_at(funcs, tsec, tslot, "call", at)
            return replace(ins, src=BPF_PSEUDO_CALL), target
        if rel.type != E.R_BPF_64_64:
            raise self.err(
                f"unsupported relocation type {rel.type} against {sym.name!r} in code", sec.name, at
            )
        if ins.opcode != _LD_IMM64:
            raise self.err(
                f"R_BPF_64_64 relocation on a non-LD_IMM64 instruction (opcode {ins.opcode:#x})",
                sec.name,
                at,
            )
        if sym.shndx == E.SHN_UNDEF:
            raise NotSupportedError(
                f"extern symbol {sym.name!r} (.kconfig/.ksyms)",
                f"{self.file}: section {sec.name!r} offset {at:#x}",
            )
        if sym.shndx >= len(self.elf.sections):
            raise self.err(
                f"relocation against symbol {sym.name!r} in missing section", sec.name, at
            )
        tsec = self.elf.sections[sym.shndx]
        if tsec.executable:  # function pointer (callback)
            byte = (sym.value if sym.type != E.STT_SECTION else 0) + ins.imm
            if byte % 8:
                raise self.err("function pointer is not instruction-aligned", sec.name, at)
            target = self._func_at(funcs, tsec, byte // 8, "function pointer", at)
            return replace(ins, src=BPF_PSEUDO_FUNC), target
        if sym.shndx in self.data_maps:
            off = (sym.value if sym.type != E.STT_SECTION else 0) + ins.imm
            map_relocs.append(MapReloc(slot, self.data_maps[sym.shndx], off))
            return replace(ins, imm=0), None
        mname = self.map_by_symbol.get((sym.shndx, sym.value))
        if mname is None:
            raise self.err(
                f"LD_IMM64 relocation against {sym.name!r} in section {tsec.name!r}, "
                "which is neither a map nor global data",
                sec.name,
                at,
            )
        map_relocs.append(MapReloc(slot, mname, None))
        return replace(ins, imm=0), None

    def _ext_info(self, order: list[_Func], placed: dict[tuple[int, int], int]):
        finfo: list[FuncInfo] = []
        linfo: list[LineInfo] = []
        core: list[tuple[int, Any]] = []
        ext = self.btf_ext
        if ext is None:
            return finfo, linfo, core
        for fn in order:
            base = placed[(fn.section.index, fn.start)]

            def local(byte_off: int, fn: _Func = fn, base: int = base) -> int | None:
                s = byte_off // 8
                return base + s - fn.start if fn.start <= s < fn.end else None

            for rec in ext.func_info.get(fn.section.name, ()):
                s = local(rec.insn_off)
                if s is not None:
                    name = self.btf.name_of(rec.type_id) if self.btf is not None else ""
                    finfo.append(FuncInfo(s, rec.type_id, name))
            for rec in ext.line_info.get(fn.section.name, ()):
                s = local(rec.insn_off)
                if s is not None:
                    linfo.append(LineInfo(s, rec.file, rec.line, rec.column, rec.text))
            for rec in ext.core_relos.get(fn.section.name, ()):
                s = local(rec.insn_off)
                if s is not None:
                    core.append((s, rec))
        finfo.sort(key=lambda f: f.slot)
        linfo.sort(key=lambda li: li.slot)
        core.sort(key=lambda c: c[0])
        return finfo, linfo, core


def object_digest(data: bytes) -> str:
    """A short content hash (used to name cached objects)."""
    return hashlib.sha256(data).hexdigest()[:16]


_ = ProgramType  # re-exported names stay importable for users of this module
