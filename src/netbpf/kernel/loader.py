"""Loading a whole CollectionSpec into the running kernel (``KernelBackend.load``).

The steps and their order follow libbpf's documented object loading, so an object
behaves here as it does under ``bpftool prog loadall`` or a libbpf skeleton:

1. the object's BTF goes to the kernel (BPF_BTF_LOAD); if the kernel refuses it the
   load continues without BTF (a warning), as libbpf does;
2. maps are created in spec order, with their BTF key/value types (global-data maps:
   the section's DATASEC as value, no key type), falling back to no BTF for a map the
   kernel refuses to describe; global-data maps get libbpf's kernel names
   (``<obj prefix>.data``...); a map-in-map gets a template inner map; maps pinned
   by name reuse a compatible map already pinned under ``pin_path``;
3. global data is written and ``.rodata`` frozen; new pinned maps are pinned;
4. map-in-map slots from ``.maps`` initialisers are filled;
5. each program's LD_IMM64 map references become map fds (BPF_PSEUDO_MAP_FD, or
   BPF_PSEUDO_MAP_VALUE + offset for global data), CO-RE relocations are resolved
   against the kernel's BTF (``/sys/kernel/btf/vmlinux``), and the program is loaded
   with func_info/line_info and the BTF fd, so the verifier log names C source lines;
6. like libbpf, every ``.rodata*`` map is bound to every program (BPF_PROG_BIND_MAP);
7. PROG_ARRAY slots from ``.maps`` initialisers get the programs' fds.

Any failure closes everything created so far and raises; nothing is left behind:
maps this load pinned are unpinned again (libbpf's behaviour), while maps that were
already pinned (and reused) stay where they were.

The collection's ring buffer and perf event array consumers
(``Collection.ringbuf``/``perf_buffer``) are :mod:`netbpf.kernel.ringbuf` and
:mod:`netbpf.kernel.perf`.
"""

from __future__ import annotations

import errno as _errno
import os
import struct
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netbpf.collection import (
    Collection,
    fill_slots,
    is_global_data,
    libbpf_max_entries,
    map_btf_ids,
)
from netbpf.errors import KernelError, MapError, NetbpfError, ObjectError
from netbpf.isa.instruction import Instruction
from netbpf.kernel.perf import KernelPerfBuffer
from netbpf.kernel.ringbuf import KernelRingBuffer
from netbpf.maps.constants import LIBBPF_PIN_BY_NAME
from netbpf.obj.btf import POISON_IMM, apply_core_relocation, compute_core_relocation
from netbpf.obj.collection import CollectionSpec, map_contents
from netbpf.obj.naming import internal_map_name, kernel_map_name, object_name, sanitize_name
from netbpf.obj.spec import ProgramSpec
from netbpf.uapi import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, MapType

if TYPE_CHECKING:
    from collections.abc import Iterable

    from netbpf.backend import Map
    from netbpf.kernel.backend import KernelBackend, KernelMap, KernelProgram

from netbpf.kernel import syscall as _sys

__all__ = ["DEFAULT_PIN_PATH", "internal_map_name", "load_collection", "object_name"]

DEFAULT_PIN_PATH = "/sys/fs/bpf"
_LD_IMM64 = 0x18
_BPF_F_RDONLY_PROG = 1 << 7

#: Map types the kernel takes no BTF key/value description for: it answers ENOTSUPP
#: (perf event array, devmap, cpumap, xskmap, sockmap/hash — measured on Linux 6.18)
#: or EINVAL (queue/stack have no key; map-in-maps have no value type).  libbpf
#: leaves BTF out for the same list, silently; other refusals fall back with a warning.
_NO_BTF_MAP_TYPES = frozenset(
    {
        MapType.PERF_EVENT_ARRAY,
        MapType.CGROUP_ARRAY,
        MapType.STACK_TRACE,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
        MapType.DEVMAP,
        MapType.DEVMAP_HASH,
        MapType.CPUMAP,
        MapType.XSKMAP,
        MapType.SOCKMAP,
        MapType.SOCKHASH,
        MapType.QUEUE,
        MapType.STACK,
        MapType.ARENA,
    }
)


class _Consumers:
    """Opens the kernel readers of a collection's ring buffers and perf event arrays
    (:class:`netbpf.collection.ConsumerFactory`)."""

    def ringbuf(self, m: Map, name: str) -> KernelRingBuffer:
        return KernelRingBuffer(_open_fd(m, name, "ringbuf"), name=name)

    def perf_buffer(
        self, m: Map, name: str, *, page_cnt: int, cpus: Iterable[int] | None
    ) -> KernelPerfBuffer:
        fd = _open_fd(m, name, "perf_buffer")
        return KernelPerfBuffer(fd, name=name, page_cnt=page_cnt, cpus=cpus)


def _open_fd(m: Map, name: str, what: str) -> int:
    if getattr(m, "closed", False):
        raise MapError(f"{what} of map {name!r}: the map handle is closed", errno=_errno.EBADF)
    return int(m.fd)


class _Loader:
    def __init__(
        self,
        backend: KernelBackend,
        spec: CollectionSpec,
        *,
        pin_path: str | os.PathLike[str] | None,
        log_level: int,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.pin_path = os.fspath(pin_path) if pin_path is not None else DEFAULT_PIN_PATH
        self.log_level = log_level
        self.obj_name = object_name(spec)
        self.btf_fd: _sys.Fd | None = None
        self.maps: dict[str, KernelMap] = {}
        self.programs: dict[str, KernelProgram] = {}
        self.reused: set[str] = set()
        self.pinned: list[str] = []  # paths this load pinned (unpinned if it fails)
        self.warnings: list[str] = []
        self._strings: dict[str, int] | None = None
        self._vmlinux: Any = None
        self._core_cache: dict[tuple[int, int], list[int]] = {}

    # -- top level -------------------------------------------------------------------
    def load(self) -> Collection:
        try:
            self._load_btf()
            for name, mspec in self.spec.maps.items():
                self.maps[name] = self._create_map(name, mspec)
            fill_slots(self.spec, "map", self.maps, self.programs)
            for name, pspec in self.spec.programs.items():
                self.programs[name] = self._load_program(pspec)
            fill_slots(self.spec, "prog", self.maps, self.programs)
        except BaseException:
            self._close_all()
            raise
        resources = [self.btf_fd] if self.btf_fd is not None else []
        return Collection(
            self.spec,
            self.programs,
            self.maps,
            backend="kernel",
            resources=resources,
            warnings=self.warnings,
            consumers=_Consumers(),
        )

    def _close_all(self) -> None:
        for path in reversed(self.pinned):
            try:
                os.unlink(path)
            except OSError:
                pass  # already gone: nothing of ours to take back
        for obj in [*self.programs.values(), *self.maps.values()]:
            try:
                obj.close()
            except (NetbpfError, OSError):
                pass
        if self.btf_fd is not None:
            self.btf_fd.close()

    # -- BTF ---------------------------------------------------------------------------
    def _load_btf(self) -> None:
        btf = self.spec.btf
        if btf is None:
            return
        try:
            self.btf_fd, _ = _sys.btf_load(btf.to_bytes())
        except KernelError as e:
            reason = e.log.strip().splitlines()[-1] if e.log.strip() else str(e)
            self.warnings.append(
                f"the kernel refused the object's BTF ({reason}); loading without BTF "
                "(no typed map descriptions, no source lines in verifier logs)"
            )

    def _string_offset(self, s: str) -> int:
        """Offset of ``s`` in the BTF string section as loaded (line_info needs
        offsets; the spec keeps the resolved text)."""
        if self._strings is None:
            idx: dict[str, int] = {}
            pos = 0
            for piece in self.spec.btf.strings.split(b"\0")[:-1]:
                idx.setdefault(piece.decode("utf-8", "surrogateescape"), pos)
                pos += len(piece) + 1
            self._strings = idx
        return self._strings.get(s, -1)

    # -- maps --------------------------------------------------------------------------
    def _create_map(self, name: str, mspec: Any, *, template: bool = False) -> KernelMap:
        kname = kernel_map_name(name, mspec, obj_name=self.obj_name)
        max_entries = libbpf_max_entries(mspec, ncpus=_sys.possible_cpus())
        pin = None
        if mspec.pinning == LIBBPF_PIN_BY_NAME and not template:
            pin = os.path.join(self.pin_path, name)
            if os.path.exists(pin):
                m = self._reuse_pinned(name, mspec, pin, max_entries)
                self.reused.add(name)
                return m
        inner = None
        if mspec.inner_map is not None:
            inner = self._create_map(f"{name}.inner", mspec.inner_map, template=True)
        try:
            m = self._create(name, kname, mspec, max_entries, inner)
        finally:
            if inner is not None:
                inner.close()  # the outer map keeps what it needs of the template
        m.name = name
        if template:
            return m
        try:
            for idx, value in map_contents(mspec):
                if isinstance(value, bytes | bytearray):
                    m.update(idx.to_bytes(mspec.key_size, "little"), bytes(value))
            if mspec.extra.get("freeze"):
                m.freeze()
            if pin is not None:
                m.pin(pin)
                self.pinned.append(pin)
        except BaseException:
            m.close()
            raise
        return m

    def _create(
        self, name: str, kname: str, mspec: Any, max_entries: int, inner: KernelMap | None
    ) -> KernelMap:
        key_id, value_id = map_btf_ids(self.spec.btf, mspec)
        use_btf = (
            self.btf_fd is not None
            and mspec.type not in _NO_BTF_MAP_TYPES
            and value_id != 0
            and (key_id != 0 or is_global_data(mspec))
        )

        def create(with_btf: bool) -> KernelMap:
            return self.backend.create_map(
                mspec.type,
                mspec.key_size,
                mspec.value_size,
                max_entries,
                flags=mspec.flags,
                name=kname,
                inner_map=inner,
                map_extra=mspec.map_extra,
                numa_node=mspec.numa_node,
                btf_fd=self.btf_fd.fileno() if with_btf and self.btf_fd is not None else 0,
                btf_key_type_id=key_id if with_btf else 0,
                btf_value_type_id=value_id if with_btf else 0,
            )

        if not use_btf:
            try:
                return create(False)
            except KernelError as e:
                raise self._map_error(name, e) from None
        try:
            return create(True)
        except KernelError as e:
            first = e
        try:
            m = create(False)
        except KernelError:
            # Not a BTF problem after all: report the first refusal.
            raise self._map_error(name, first) from None
        self.warnings.append(
            f"map {name!r}: the kernel refused its BTF description "
            f"({_sys.errno_name(first.errno)}); created without BTF"
        )
        return m

    @staticmethod
    def _map_error(name: str, e: KernelError) -> KernelError:
        return KernelError(e.op, e.errno, log=e.log, detail=f"map {name!r}: {e}")

    def _reuse_pinned(self, name: str, mspec: Any, path: str, max_entries: int) -> KernelMap:
        from netbpf.kernel.backend import KernelMap

        fd = _sys.obj_get(path)
        try:
            info = _sys.map_info(fd.fileno())
            want = {
                "type": int(mspec.type),
                "key_size": mspec.key_size,
                "value_size": mspec.value_size,
                "max_entries": max_entries,
                "map_flags": mspec.flags,
                "map_extra": mspec.map_extra,
            }
            have = {k: getattr(info, k) for k in want}
            if mspec.type in (MapType.DEVMAP, MapType.DEVMAP_HASH):
                # the kernel adds BPF_F_RDONLY_PROG to every devmap it creates
                have["map_flags"] &= ~_BPF_F_RDONLY_PROG
                want["map_flags"] &= ~_BPF_F_RDONLY_PROG
            diff = [f"{k} {have[k]} (spec: {want[k]})" for k in want if have[k] != want[k]]
            if diff:
                raise KernelError(
                    "BPF_OBJ_GET",
                    _errno.EINVAL,
                    detail=f"map {name!r}: the map pinned at {path} is incompatible: "
                    + ", ".join(diff),
                )
        except BaseException:
            fd.close()
            raise
        return KernelMap(
            fd,
            mspec.type,
            mspec.key_size,
            mspec.value_size,
            max_entries,
            flags=mspec.flags,
            name=name,
        )

    # -- programs ----------------------------------------------------------------------
    def _patched(self, pspec: ProgramSpec) -> list[Instruction]:
        insns = list(pspec.insns)
        for r in pspec.map_relocs:
            m = self.maps.get(r.map)
            if m is None:
                raise ObjectError(
                    f"program {pspec.name!r}: insn {r.slot} refers to map {r.map!r}, which "
                    "the object does not define",
                    file=self.spec.file,
                    section=pspec.section,
                )
            if not (0 <= r.slot < len(insns) - 1) or insns[r.slot].opcode != _LD_IMM64:
                raise ObjectError(
                    f"program {pspec.name!r}: map relocation at insn {r.slot} is not on an "
                    "LD_IMM64 instruction",
                    file=self.spec.file,
                    section=pspec.section,
                )
            if r.offset is None:
                insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_FD, imm=m.fd)
                insns[r.slot + 1] = replace(insns[r.slot + 1], imm=0)
            else:
                insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_VALUE, imm=m.fd)
                insns[r.slot + 1] = replace(insns[r.slot + 1], imm=r.offset)
        if pspec.core_relos:
            target = self._target_btf()
            for slot, relo in pspec.core_relos:
                res = compute_core_relocation(pspec.btf, relo, target, cache=self._core_cache)
                insns = list(apply_core_relocation(insns, relo, res, insn_base=relo.insn - slot))
        return insns

    def _target_btf(self) -> Any:
        if self._vmlinux is None:
            self._vmlinux = self.backend.vmlinux_btf()
        return self._vmlinux

    def _ext_info(self, pspec: ProgramSpec) -> tuple[bytes, bytes]:
        if self.btf_fd is None or pspec.btf is None:
            return b"", b""
        finfo = b"".join(struct.pack("<II", f.slot, f.type_id) for f in pspec.func_info)
        lines = []
        last = -1
        for li in pspec.line_info:
            if li.slot <= last:
                continue  # the kernel wants strictly increasing instruction offsets
            foff, loff = self._string_offset(li.file), self._string_offset(li.text)
            if foff < 0 or loff < 0:
                continue
            lines.append(struct.pack("<IIII", li.slot, foff, loff, (li.line << 10) | li.col))
            last = li.slot
        return finfo, b"".join(lines)

    def _load_program(self, pspec: ProgramSpec) -> KernelProgram:
        from netbpf.kernel.backend import KernelProgram, program_load_flags

        insns = self._patched(pspec)
        finfo, linfo = self._ext_info(pspec)
        try:
            fd, log = _sys.prog_load(
                int(pspec.prog_type),
                b"".join(i.encode() for i in insns),
                license=pspec.license,
                name=sanitize_name(pspec.name),
                expected_attach_type=int(pspec.attach_type) if pspec.attach_type is not None else 0,
                prog_flags=program_load_flags(pspec),
                kern_version=pspec.kern_version,
                prog_btf_fd=self.btf_fd.fileno() if finfo or linfo else 0,
                func_info=finfo,
                func_info_rec_size=8 if finfo else 0,
                line_info=linfo,
                line_info_rec_size=16 if linfo else 0,
                log_level=self.log_level,
            )
        except KernelError as e:
            detail = f"program {pspec.name!r} (section {pspec.section!r})"
            if f"unknown#{POISON_IMM}" in e.log or f"#{POISON_IMM}" in e.log:
                detail += (
                    f"; call {POISON_IMM:#x} marks a CO-RE relocation that found no match "
                    "in the kernel's BTF (guard it with bpf_core_field_exists())"
                )
            raise KernelError("BPF_PROG_LOAD", e.errno, log=e.log, detail=detail) from None
        prog = KernelProgram(pspec, fd, log)
        # libbpf binds every read-only data map to every program, referenced or not,
        # so `bpftool prog show` finds the object's bpf_metadata_* variables.
        try:
            for name, mspec in self.spec.maps.items():
                if is_global_data(mspec) and mspec.extra.get("section", "").startswith(".rodata"):
                    _sys.prog_bind_map(prog.fd, self.maps[name].fd)
        except BaseException:
            prog.close()
            raise
        return prog


def load_collection(
    backend: KernelBackend,
    spec: CollectionSpec,
    *,
    pin_path: str | os.PathLike[str] | None = None,
    log_level: int = 0,
) -> Collection:
    """See :meth:`netbpf.kernel.KernelBackend.load`."""
    return _Loader(backend, spec, pin_path=pin_path, log_level=log_level).load()
