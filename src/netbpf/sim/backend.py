"""``SimBackend``: the :class:`~netbpf.backend.Backend` contract, answered by netbpf's
own VM instead of the kernel.

Loading validates the instructions structurally (:func:`netbpf.isa.validate.
validate_program`, the kernel's instruction-by-instruction checks) and decodes them
for the chosen engine.  The verifier (:func:`netbpf.verifier.verify`, still being
written) is not run at load yet: a program the kernel would refuse may load here, and
its unsafe accesses fault at run time instead (:class:`~netbpf.errors.ProgramFault`).

``SimProgram.test_run`` has the semantics of Linux 6.18's BPF_PROG_TEST_RUN (see
:mod:`netbpf.hooks.testrun`), byte for byte: retval, data_out, ctx_out and the errno of
every refusal match :class:`netbpf.KernelBackend`'s; ``duration_ns`` is the measured
mean time of one run in the simulator.

Whole objects load with :meth:`SimBackend.load` into the same
:class:`~netbpf.collection.Collection` the kernel backend returns (steps in
:mod:`netbpf.sim.loader`).  What one backend holds for its whole life, like a kernel:

* ``mem``: one :class:`~netbpf.sim.memory.SimAddressSpace`.  Maps are mapped into it
  once, so a map value's address is the same in every run; each test run adds its
  packet, context and stack regions and removes them afterwards.
* ``map_table``: the :class:`~netbpf.maps.MapTable` giving maps their
  CONST_PTR_TO_MAP addresses; ``resolver``: the fd-like numbers of maps and programs
  (what PROG_ARRAY and map-of-maps slots take from user space); ``pins``: the
  bpffs-like :class:`~netbpf.maps.PinNamespace` (root ``/sys/fs/bpf`` by default).
* the helper table of each program type, from a
  :class:`~netbpf.helpers.HelperRegistry` (default: every helper netbpf implements).
* the CO-RE target BTF: ``core_btf`` (a :class:`~netbpf.obj.btf.Btf` or a path), by
  default the running kernel's ``/sys/kernel/btf/vmlinux`` -- the simulator's
  context structs are the kernel's UAPI ones, so the kernel's BTF describes them.

Test runs execute on CPU 0 (per-CPU maps, ``bpf_get_smp_processor_id``); the kernel
runs a test on the CPU the calling thread is on, so pin the process to CPU 0 to
compare per-CPU values.

Example::

    from netbpf import ProgramSpec, SimBackend

    spec = ProgramSpec.from_asm("r0 = 2\\nexit", prog_type="xdp")
    with SimBackend() as sim:
        prog = sim.load_program(spec)
        assert prog.test_run(bytes(64)).retval == 2   # XDP_PASS

    from netbpf.obj.collection import load_collection_spec

    with SimBackend() as sim, sim.load(load_collection_spec("counter.o")) as coll:
        coll.programs["count"].test_run(bytes(64))
        print(dict(coll.typed_map("counts").items()))
"""

from __future__ import annotations

import errno as _errno
import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netbpf.backend import TestRunResult
from netbpf.errors import NotSupportedError, ObjectError, TestRunError
from netbpf.hooks.context import NetDevice, default_devices
from netbpf.hooks.testrun import prog_test_run
from netbpf.isa.validate import validate_program
from netbpf.maps import (
    DEFAULT_PIN_ROOT,
    ArrayOfMapsMap,
    HashOfMapsMap,
    MapSpec,
    MapTable,
    PinNamespace,
    ProgArrayMap,
    Resolver,
    create_map,
    possible_cpus,
)
from netbpf.maps import Map as SimMap
from netbpf.obj.spec import ProgramSpec
from netbpf.sim.maps import SimMapHandle
from netbpf.sim.memory import SimAddressSpace
from netbpf.uapi import MapType, ProgramType, resolve_map_type
from netbpf.vm.engine import ENGINES, Executable, load_executable
from netbpf.vm.env import HelperFn

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.collection import Collection
    from netbpf.helpers.registry import HelperRegistry
    from netbpf.obj.btf import Btf
    from netbpf.obj.collection import CollectionSpec

__all__ = ["SimBackend", "SimProgram", "SimProgramInfo"]

_prog_ids = itertools.count(1)


@dataclass(frozen=True)
class SimProgramInfo:
    """What BPF_OBJ_GET_INFO_BY_FD would report for a simulated program: its id, name,
    type and the ids of the maps it uses."""

    id: int
    name: str
    type: int
    map_ids: tuple[int, ...]


class SimProgram:
    """A program loaded into the simulator.  ``close()`` (or ``with``) releases it;
    a closed program refuses to run (EBADF, as a closed kernel fd would) but stays
    usable as a tail-call target where a PROG_ARRAY holds it, as in the kernel.

    ``fd`` is its number in the backend's resolver (write it into a PROG_ARRAY slot
    as a u32, as with a kernel fd), ``id`` its program id (what a PROG_ARRAY lookup
    returns), ``maps`` the simulated maps its instructions refer to."""

    def __init__(
        self,
        spec: ProgramSpec,
        executable: Executable,
        backend: SimBackend,
        *,
        maps: Iterable[SimMap] = (),
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.prog_type = spec.prog_type
        self.attach_type = spec.attach_type
        self.executable = executable
        self.maps: tuple[SimMap, ...] = tuple(maps)
        self.id = next(_prog_ids)
        self._backend = backend
        self._fd = backend.resolver.add_fd(self)
        self._closed = False

    @property
    def expected_attach_type(self) -> Any:
        """The attach type the program was loaded for (what devmap/cpumap entries check)."""
        return self.attach_type

    @property
    def fd(self) -> int:
        """The program's number in the backend's resolver (-1 once closed)."""
        return -1 if self._closed else self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> TestRunResult:
        """BPF_PROG_TEST_RUN in the simulator.  ``ctx_out`` is the context after the
        run (``__sk_buff`` for the skb family, ``xdp_md`` for XDP) when ``ctx_in`` was
        given, else None.  Raises TestRunError with the kernel's errno where the
        kernel refuses the run, ProgramFault where the program breaks the sandbox.

        The run happens in the backend's address space (where the maps live); the
        packet, context and stack regions it adds are removed when it ends."""
        if self._closed:
            raise TestRunError(f"{self._what()} is closed", errno=_errno.EBADF)
        backend = self._backend
        try:
            with backend.mem.run_scope():
                return prog_test_run(
                    self.executable,
                    self.prog_type,
                    attach_type=self.attach_type,
                    data_in=data_in,
                    ctx_in=ctx_in,
                    repeat=repeat,
                    devices=backend.devices,
                    helpers=backend.helpers_for(self.prog_type),
                    mem=backend.mem,
                )
        except TestRunError as e:
            raise TestRunError(f"{self._what()}: {e.reason}", errno=e.errno) from None

    def _what(self) -> str:
        return f"{self.prog_type.name} program '{self.name}'"

    def info(self) -> SimProgramInfo:
        """The program's id, name, type and map ids (the kernel's ``bpf_prog_info``
        subset the simulator knows)."""
        return SimProgramInfo(
            self.id, self.name, int(self.prog_type), tuple(m.id for m in self.maps)
        )

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin in the backend's :class:`~netbpf.maps.PinNamespace`."""
        if self._closed:
            raise TestRunError(f"{self._what()} is closed", errno=_errno.EBADF)
        self._backend.pins.pin(os.fspath(path), self)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend.resolver.close_fd(self._fd)

    def __enter__(self) -> SimProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<SimProgram {self.name!r} {self.prog_type.name} engine={self.executable.engine}{state}>"


class _Lease:
    """What a Collection hands back to the backend when it closes: the maps it held."""

    def __init__(self, backend: SimBackend, maps: Iterable[SimMap]) -> None:
        self._backend = backend
        self._maps = list(maps)

    def close(self) -> None:
        maps, self._maps = self._maps, []
        if maps:
            self._backend._drop(maps)


class SimBackend:
    """Loads specs into the simulator.

    ``engine`` picks the VM engine (``"fast"``: programs translated to Python once;
    ``"interpreter"``: the plain reference).  ``devices`` is the simulated network
    namespace test runs see (ifindex -> :class:`~netbpf.hooks.context.NetDevice`);
    by default only ``lo``.  ``ncpus``: the possible CPUs per-CPU maps hold values
    for (default: the host's, like the kernel).  ``registry``: the helpers programs
    may call (default: all of netbpf's).  ``core_btf``: the CO-RE target (a Btf or a
    path; default ``/sys/kernel/btf/vmlinux`` when it exists).  ``pin_root``: the root
    of the backend's bpffs-like pin namespace."""

    name = "sim"

    def __init__(
        self,
        *,
        engine: str = "fast",
        devices: Mapping[int, NetDevice] | None = None,
        ncpus: int | None = None,
        registry: HelperRegistry | None = None,
        core_btf: Btf | str | os.PathLike[str] | None = None,
        pin_root: str = DEFAULT_PIN_ROOT,
    ) -> None:
        if engine not in ENGINES:
            raise NotSupportedError(f"engine {engine!r}", f"choose one of {', '.join(ENGINES)}")
        if ncpus is not None and (
            isinstance(ncpus, bool) or not isinstance(ncpus, int) or ncpus < 1
        ):
            raise NotSupportedError(f"ncpus={ncpus!r}", "a positive number of CPUs")
        self.engine = engine
        self.devices: Mapping[int, NetDevice] = (
            dict(devices) if devices is not None else default_devices()
        )
        self.ncpus = possible_cpus() if ncpus is None else ncpus
        if registry is None:
            from netbpf.helpers import DEFAULT_REGISTRY

            registry = DEFAULT_REGISTRY
        self.registry = registry
        self.mem = SimAddressSpace()
        self.map_table = MapTable(self.mem)
        self.resolver = Resolver(self.devices)
        self.pins = PinNamespace(pin_root)
        self._core_btf_arg = core_btf
        self._core_btf: Btf | None = None
        self._helpers: dict[ProgramType, dict[int, HelperFn]] = {}
        self._held: dict[SimMap, int] = {}
        self._programs: list[SimProgram] = []
        self._collections: list[Collection] = []

    # -- programs ----------------------------------------------------------------------
    def load_program(self, spec: ProgramSpec) -> SimProgram:
        """Validate and decode ``spec``'s instructions; raises InstructionError naming
        the slot for a malformed program.  A program that refers to maps
        (``spec.map_relocs``) needs its object: load it with :meth:`load`.  The spec
        is not modified."""
        if spec.map_relocs:
            names = sorted({r.map for r in spec.map_relocs})
            raise ObjectError(
                f"program {spec.name!r} refers to maps ({', '.join(names)}): load its "
                "CollectionSpec with SimBackend.load()",
                section=spec.section or None,
            )
        validate_program(spec.insns, name=spec.name)
        exe = load_executable(spec.insns, name=spec.name, engine=self.engine)
        prog = SimProgram(spec, exe, self)
        self._programs.append(prog)
        return prog

    def create_map(
        self,
        map_type: MapType | str | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        *,
        flags: int = 0,
        name: str = "",
        inner_map: SimMapHandle | None = None,
        map_extra: int = 0,
        numa_node: int = 0,
    ) -> SimMapHandle:
        """BPF_MAP_CREATE in the simulator, with :meth:`netbpf.KernelBackend.create_map`'s
        arguments: ``map_type`` as an enum, a name (``"hash"``) or a number; ``flags``
        the BPF_F_* map flags; ``inner_map`` the template of an ARRAY_OF_MAPS /
        HASH_OF_MAPS (its spec is copied, as the kernel copies the template's shape).
        Failures raise the kernel's errno as typed MapErrors.  The map lives until
        the handle is closed and nothing else (a pin, another map, a program) holds it."""
        mtype = resolve_map_type(map_type)
        spec = MapSpec(
            name,
            mtype,
            key_size,
            value_size,
            max_entries,
            flags=flags,
            inner_map=inner_map.map.spec if inner_map is not None else None,
            map_extra=map_extra,
            numa_node=numa_node,
        )
        m = self._create_map(spec)
        return SimMapHandle(m, self, on_close=lambda: self._drop([m]))

    def helpers_for(self, prog_type: ProgramType) -> dict[int, HelperFn]:
        """The helper table programs of ``prog_type`` run with (cached)."""
        table = self._helpers.get(prog_type)
        if table is None:
            table = self._helpers[prog_type] = self.registry.for_prog_type(prog_type)
        return table

    # -- collections -------------------------------------------------------------------
    def load(
        self, spec: CollectionSpec, *, pin_path: str | os.PathLike[str] | None = None
    ) -> Collection:
        """Load a whole object: maps (global data initialised, ``.rodata`` frozen and
        read-only to programs, map-in-map and PROG_ARRAY slots filled from ``.maps``
        initialisers), then every program with its map references and CO-RE
        relocations resolved.  See :mod:`netbpf.sim.loader` for the steps.

        Maps declared with ``__uint(pinning, LIBBPF_PIN_BY_NAME)`` live at
        ``<pin_path>/<map name>`` in :attr:`pins` (default: its root, ``/sys/fs/bpf``):
        an existing pinned map is reused when its type, sizes, max_entries, flags and
        map_extra match (its contents are kept), else PinError(EINVAL); a new one is
        pinned there.  A program with CO-RE relocations needs a target BTF
        (NotSupportedError naming the program without one).  The spec is not
        modified; on any error nothing the load created is left behind (maps it
        pinned are unpinned again, as libbpf and the kernel backend do)."""
        from netbpf.sim.loader import load_collection

        coll = load_collection(self, spec, pin_path=pin_path)
        self._collections.append(coll)
        return coll

    def core_btf(self, spec: ProgramSpec | None = None) -> Btf:
        """The CO-RE target BTF (loaded once).  ``spec`` names the program that needs
        it in the NotSupportedError raised when there is none."""
        if self._core_btf is not None:
            return self._core_btf
        from netbpf.obj.btf import VMLINUX_BTF_PATH, Btf, load_vmlinux_btf

        arg = self._core_btf_arg
        if isinstance(arg, Btf):
            self._core_btf = arg
            return arg
        path = os.fspath(arg) if arg is not None else VMLINUX_BTF_PATH
        if not os.path.exists(path):
            who = f"program {spec.name!r}" if spec is not None else "a program"
            n = len(spec.core_relos) if spec is not None else 0
            raise NotSupportedError(
                f"CO-RE relocations in {who}",
                f"{n} relocation(s) need a target BTF and {path} does not exist; pass "
                "SimBackend(core_btf=...)",
            )
        self._core_btf = load_vmlinux_btf(path)
        return self._core_btf

    # -- map lifetimes (used by netbpf.sim.loader) -------------------------------------------
    def _create_map(self, spec: MapSpec) -> SimMap:
        """A new simulated map, registered in the map table and held by the load."""
        m = create_map(spec, ncpus=self.ncpus, resolver=self.resolver)
        self.map_table.add(m)
        self._held[m] = self._held.get(m, 0) + 1
        return m

    def _adopt(self, m: SimMap) -> None:
        """An existing (pinned) map is held by one more load."""
        self.map_table.add(m)
        self._held[m] = self._held.get(m, 0) + 1

    def _lease(self, maps: Iterable[SimMap]) -> _Lease:
        return _Lease(self, maps)

    def _release(self, maps: Iterable[SimMap]) -> None:
        """A failed load gives back what it held."""
        self._drop(maps)

    def _drop(self, maps: Iterable[SimMap]) -> None:
        """Stop holding ``maps`` and free every map nothing reaches any more: a map
        lives while an open collection holds it, it is pinned, or it sits (directly or
        through a program's references) in a map that lives -- a map of maps' inner
        maps, a PROG_ARRAY's programs' maps, as kernel references work."""
        for m in maps:
            n = self._held.get(m, 0) - 1
            if n > 0:
                self._held[m] = n
            else:
                self._held.pop(m, None)
        live = self._reachable()
        for m in list(self.map_table):
            if m not in live:
                self.map_table.remove(m)
                m.close()

    def _reachable(self) -> set[SimMap]:
        stack: list[Any] = list(self._held)
        for path in self.pins:
            stack.append(self.pins.get(path))
        seen_maps: set[SimMap] = set()
        seen_progs: set[int] = set()
        while stack:
            obj = stack.pop()
            if isinstance(obj, SimProgram):
                if id(obj) not in seen_progs:
                    seen_progs.add(id(obj))
                    stack.extend(obj.maps)
                continue
            if not isinstance(obj, SimMap) or obj in seen_maps:
                continue
            seen_maps.add(obj)
            if isinstance(obj, ArrayOfMapsMap | ProgArrayMap):
                stack.extend(e for e in obj.entries if e is not None)
            elif isinstance(obj, HashOfMapsMap):
                stack.extend(obj.inner(k) for k in obj.keys())
        return seen_maps

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Close every collection and program this backend loaded (idempotent)."""
        for c in self._collections:
            c.close()
        self._collections.clear()
        for p in self._programs:
            p.close()
        self._programs.clear()

    def __enter__(self) -> SimBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SimBackend engine={self.engine}>"
