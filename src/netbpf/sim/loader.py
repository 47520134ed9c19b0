"""Loading a whole CollectionSpec into the simulator (``SimBackend.load``).

The steps, their order and their outcomes are those of the kernel backend
(:mod:`netbpf.kernel.loader`, itself libbpf's order), so a collection behaves the same
on both:

1. maps are created in spec order (:func:`netbpf.maps.create_map`, with the backend's
   CPU count and resolver); ring buffer sizes are rounded up to a power-of-2 number of
   pages and a PERF_EVENT_ARRAY with ``max_entries`` 0 gets one slot per possible CPU,
   as libbpf does; a value with a ``struct bpf_spin_lock`` gets its offset from the
   object's BTF (the kernel finds it there); a map-in-map checks its inner maps
   against ``spec.inner_map``, the template.  Maps pinned by name (``LIBBPF_PIN_BY_NAME``) reuse a compatible map
   already pinned at ``<pin_path>/<name>`` in the backend's
   :class:`~netbpf.maps.PinNamespace`, contents and all; an incompatible one fails
   the load with PinError(EINVAL) listing the differences;
2. global data is written and ``.rodata`` frozen (its BPF_F_RDONLY_PROG flag already
   makes its values read-only to programs); new pinned maps are pinned;
3. map-in-map slots from ``.maps`` initialisers are filled;
4. each program's LD_IMM64 map references are resolved: BPF_PSEUDO_MAP_FD to the map's
   CONST_PTR_TO_MAP address, BPF_PSEUDO_MAP_VALUE to the address of byte ``offset``
   of the map's value (direct value access: arrays with one entry, as the kernel
   requires).  The instructions are patched the kernel's way (the src register names
   the pseudo source, imm the map's fd) and the addresses go to the VM through
   ``load_executable(imm64=...)``.  CO-RE relocations are applied against the target
   BTF (:meth:`SimBackend.core_btf`, by default the running kernel's
   ``/sys/kernel/btf/vmlinux``; without one, a program with CO-RE relocations is
   refused with NotSupportedError naming it).  A program that tail-calls through a
   PROG_ARRAY claims it for its program type, as the kernel's verifier does;
5. PROG_ARRAY slots from ``.maps`` initialisers get the programs.

Any failure releases everything created so far and raises; like the kernel backend
(and libbpf), maps pinned during the failed load are unpinned again, while maps that
were pinned before (and reused) stay pinned.

The collection's ring buffer and perf buffer consumers are
:mod:`netbpf.sim.consumers`.
"""

from __future__ import annotations

import errno as _errno
import os
import posixpath
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from netbpf.collection import Collection, fill_slots, libbpf_max_entries
from netbpf.errors import ObjectError, PinError
from netbpf.isa.instruction import Instruction
from netbpf.isa.validate import validate_program, validate_upfront
from netbpf.maps import (
    LIBBPF_PIN_BY_NAME,
    ArrayMap,
    MapSpec,
    ProgArrayMap,
    map_class,
)
from netbpf.maps import Map as SimMap
from netbpf.obj.btf import apply_core_relocation, compute_core_relocation
from netbpf.obj.btf_maps import spin_lock_offset
from netbpf.obj.collection import CollectionSpec, map_contents
from netbpf.obj.naming import kernel_map_name, object_name
from netbpf.obj.spec import ProgramSpec
from netbpf.sim.consumers import SimConsumers
from netbpf.sim.maps import SimMapHandle
from netbpf.uapi import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE
from netbpf.vm.engine import load_executable

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.sim.backend import SimBackend, SimProgram
    from netbpf.verifier import VerifierResult

__all__ = ["load_collection"]

_LD_IMM64 = 0x18


class _Loader:
    def __init__(
        self,
        backend: SimBackend,
        spec: CollectionSpec,
        *,
        pin_path: str | None,
        log_level: int = 0,
        skip_verifier: bool = False,
    ) -> None:
        self.backend = backend
        self.log_level = log_level
        self.skip_verifier = skip_verifier
        self.spec = spec
        self.pin_path = backend.pins.root if pin_path is None else posixpath.normpath(pin_path)
        self.maps: dict[str, SimMapHandle] = {}
        self.programs: dict[str, SimProgram] = {}
        self.created: list[SimMap] = []  # maps this load created (released on failure)
        self.pinned: list[str] = []  # paths this load pinned (unpinned on failure)
        self.warnings: list[str] = []
        self._core_cache: dict[Any, Any] = {}

    # -- top level ---------------------------------------------------------------------
    def load(self) -> Collection:
        try:
            for name, mspec in self.spec.maps.items():
                self.maps[name] = self._create_map(name, mspec)
            fill_slots(self.spec, "map", self.maps, self.programs)
            for name, pspec in self.spec.programs.items():
                self.programs[name] = self._load_program(pspec)
            fill_slots(self.spec, "prog", self.maps, self.programs)
        except BaseException:
            self._close_all()
            raise
        lease = self.backend._lease([h.map for h in self.maps.values()])
        return Collection(
            self.spec,
            self.programs,
            self.maps,
            backend="sim",
            resources=[lease],
            warnings=self.warnings,
            consumers=SimConsumers(),
        )

    def _close_all(self) -> None:
        for path in reversed(self.pinned):
            if path in self.backend.pins:
                self.backend.pins.unpin(path)
        for obj in [*self.programs.values(), *self.maps.values()]:
            obj.close()
        self.backend._release(self.created)

    # -- maps --------------------------------------------------------------------------
    def _effective_spec(self, mspec: MapSpec) -> MapSpec:
        """The spec as libbpf creates it (ring buffer size, perf event array size), and
        as the kernel sees it through its BTF: where the value's ``struct
        bpf_spin_lock`` is (what makes BPF_F_LOCK legal and keeps user space off the
        lock word), when the spec does not already say."""
        from netbpf.maps import possible_cpus

        if "spin_lock_off" not in mspec.extra:
            off = spin_lock_offset(self.spec.btf, mspec.btf_value_type_id)
            if off is not None:
                mspec = mspec.with_(extra={**mspec.extra, "spin_lock_off": off})
        max_entries = libbpf_max_entries(mspec, ncpus=possible_cpus())
        if max_entries != mspec.max_entries:
            return mspec.with_(max_entries=max_entries)
        return mspec

    def _create_map(self, name: str, mspec: MapSpec) -> SimMapHandle:
        eff = self._effective_spec(mspec)
        pin = None
        kname = kernel_map_name(name, mspec, obj_name=object_name(self.spec))
        if mspec.pinning == LIBBPF_PIN_BY_NAME:
            pin = posixpath.join(self.pin_path, name)
            if pin in self.backend.pins:
                m = self._reuse_pinned(name, eff, pin)
                return SimMapHandle(m, self.backend, name=name, kernel_name=kname)
        m = self.backend._create_map(eff)
        self.created.append(m)
        h = SimMapHandle(m, self.backend, name=name, kernel_name=kname)
        for idx, value in map_contents(mspec):
            if isinstance(value, bytes | bytearray):
                h.update(idx.to_bytes(mspec.key_size, "little"), bytes(value))
        if mspec.extra.get("freeze"):
            h.freeze()
        if pin is not None:
            self.backend.pins.pin(pin, m)
            self.pinned.append(pin)
        return h

    def _reuse_pinned(self, name: str, eff: MapSpec, path: str) -> SimMap:
        m = self.backend.pins.get(path)
        if not isinstance(m, SimMap):
            raise PinError(
                path, f"map {name!r}: the object pinned there is not a map", errno=_errno.EINVAL
            )
        max_entries, flags = map_class(eff).created_params(eff, m.ncpus)
        want = {
            "type": int(eff.type),
            "key_size": eff.key_size,
            "value_size": eff.value_size,
            "max_entries": max_entries,
            "map_flags": flags,
            "map_extra": eff.map_extra,
        }
        info = m.info()
        have = {k: getattr(info, k) for k in want}
        diff = [f"{k} {have[k]} (spec: {want[k]})" for k in want if have[k] != want[k]]
        if diff:
            raise PinError(
                path,
                f"map {name!r}: the map pinned at {path} is incompatible: " + ", ".join(diff),
                errno=_errno.EINVAL,
            )
        self.backend._adopt(m)
        return m

    # -- programs ----------------------------------------------------------------------
    def _reloc_error(self, pspec: ProgramSpec, reason: str) -> ObjectError:
        return ObjectError(
            f"program {pspec.name!r}: {reason}", file=self.spec.file, section=pspec.section
        )

    def _patched(self, pspec: ProgramSpec) -> tuple[list[Instruction], dict[int, int]]:
        """The instructions with map references and CO-RE relocations applied, and the
        LD_IMM64 values (slot -> address) for the VM."""
        insns = list(pspec.insns)
        imm64: dict[int, int] = {}
        for r in pspec.map_relocs:
            h = self.maps.get(r.map)
            if h is None:
                raise self._reloc_error(
                    pspec,
                    f"insn {r.slot} refers to map {r.map!r}, which the object does not define",
                )
            if not (0 <= r.slot < len(insns) - 1) or insns[r.slot].opcode != _LD_IMM64:
                raise self._reloc_error(
                    pspec, f"map relocation at insn {r.slot} is not on an LD_IMM64 instruction"
                )
            m = h.map
            if r.offset is None:
                insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_FD, imm=h.fd)
                insns[r.slot + 1] = replace(insns[r.slot + 1], imm=0)
                imm64[r.slot] = self.backend.map_table.add(m)
                continue
            # BPF_PSEUDO_MAP_VALUE: the kernel's map_direct_value_addr exists for
            # (non-per-CPU) arrays with a single element, and the offset must fall
            # inside the value.
            if not isinstance(m, ArrayMap) or m.percpu or m.max_entries != 1:
                raise self._reloc_error(
                    pspec,
                    f"insn {r.slot}: direct value access to map {r.map!r} "
                    f"({m.type.name}, max_entries {m.max_entries}): only arrays with one "
                    "element allow it (EINVAL)",
                )
            if not 0 <= r.offset < m.value_size:
                raise self._reloc_error(
                    pspec,
                    f"insn {r.slot}: offset {r.offset} is outside map {r.map!r}'s "
                    f"{m.value_size}-byte value (EINVAL)",
                )
            insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_VALUE, imm=h.fd)
            insns[r.slot + 1] = replace(insns[r.slot + 1], imm=r.offset)
            self.backend.map_table.add(m)
            imm64[r.slot] = m.values_store.address(0) + r.offset
        if pspec.core_relos:
            target = self.backend.core_btf(pspec)
            for slot, relo in pspec.core_relos:
                res = compute_core_relocation(pspec.btf, relo, target, cache=self._core_cache)
                insns = list(apply_core_relocation(insns, relo, res, insn_base=relo.insn - slot))
        return insns, imm64

    def _claim_prog_arrays(self, pspec: ProgramSpec) -> None:
        """A program that uses a PROG_ARRAY makes the array its type's (the kernel's
        verifier records the owner when it sees the map used with bpf_tail_call)."""
        for r in pspec.map_relocs:
            h = self.maps.get(r.map)
            if h is not None and isinstance(h.map, ProgArrayMap) and r.offset is None:
                h.map.set_owner(pspec.prog_type)

    def _load_program(self, pspec: ProgramSpec) -> SimProgram:
        from netbpf.sim.backend import SimProgram

        insns, imm64 = self._patched(pspec)
        # unverified: every structural check on every instruction (the engines' guard);
        # verified: what Linux refuses before walking paths, the rest where reached
        result = None
        if self.skip_verifier:
            validate_program(insns, name=pspec.name)
        else:
            from netbpf.sim.verify import sanitize_dead_code

            validate_upfront(insns, name=pspec.name)
            result = self._verify(pspec, insns)
            insns = sanitize_dead_code(insns, result)
        exe = load_executable(insns, name=pspec.name, engine=self.backend.engine, imm64=imm64)
        self._claim_prog_arrays(pspec)
        used = {id(self.maps[r.map].map): self.maps[r.map].map for r in pspec.map_relocs}
        return SimProgram(
            pspec,
            exe,
            self.backend,
            maps=used.values(),
            verification=result,
            log_level=self.log_level,
        )

    def _verify(self, pspec: ProgramSpec, insns: list[Instruction]) -> VerifierResult:
        """Verify the program as loaded (CO-RE relocations applied, map references
        resolved) against the maps as created; a refusal fails the load naming the
        program, its section and the object, as the kernel backend's KernelError does."""
        from netbpf.sim.verify import map_view, verify_for_load

        views = {r.map: map_view(self.maps[r.map].map) for r in pspec.map_relocs}
        return verify_for_load(replace(pspec, insns=tuple(insns)), views, log_level=self.log_level)


def load_collection(
    backend: SimBackend,
    spec: CollectionSpec,
    *,
    pin_path: str | os.PathLike[str] | None = None,
    log_level: int = 0,
    skip_verifier: bool = False,
) -> Collection:
    """See :meth:`netbpf.sim.SimBackend.load`."""
    path = None if pin_path is None else os.fspath(pin_path)
    return _Loader(
        backend, spec, pin_path=path, log_level=log_level, skip_verifier=skip_verifier
    ).load()
