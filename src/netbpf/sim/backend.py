"""``SimBackend``: the :class:`~netbpf.backend.Backend` contract, answered by netbpf's
own VM instead of the kernel.

Loading is the kernel's BPF_PROG_LOAD: the instructions are validated structurally
(:func:`netbpf.isa.validate.validate_upfront`, what the kernel refuses before walking
any path), then **verified** (:func:`netbpf.verifier.verify`, with the maps the program
refers to as they were created: type, sizes, flags, spin lock, frozen constant
contents; the other per-instruction checks run where a path reaches the instruction),
then the slots no path reached are trapped
(:func:`netbpf.sim.verify.sanitize_dead_code`, the kernel's sanitize_dead_code) and the
program is decoded for the chosen engine.  A program the verifier refuses does
not load: :class:`~netbpf.verifier.VerifierRejection` (a
:class:`~netbpf.errors.VerifierError`) carries the log, the instruction index and the
kernel's one-line message, as KernelBackend's KernelError(BPF_PROG_LOAD, log=...)
does.  The loaded program says what the verifier did: ``verified_insns`` (the
kernel's ``bpf_prog_info.verified_insns``) and ``verifier_log`` (at the ``log_level``
the load asked for).  Verification outcomes are cached (:mod:`netbpf.sim.verify`),
keyed by everything the verdict depends on.

``SimBackend(unsafe_skip_verifier=True)`` (or ``unsafe_skip_verifier=True`` on one
load) skips verification, for experiments with programs the kernel would refuse:
their unsafe accesses then fault at run time (:class:`~netbpf.errors.ProgramFault`);
every structural check (:func:`~netbpf.isa.validate.validate_program`) then runs on
every instruction.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from netbpf.backend import TestRunResult
from netbpf.errors import NotSupportedError, ObjectError, TestRunError
from netbpf.hooks.context import NetDevice, default_devices
from netbpf.hooks.testrun import prog_test_run
from netbpf.isa.instruction import Instruction
from netbpf.isa.validate import validate_program, validate_upfront
from netbpf.maps import (
    DEFAULT_PIN_ROOT,
    ArrayMap,
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
from netbpf.obj.spec import MapReloc, ProgramSpec
from netbpf.sim.maps import SimMapHandle
from netbpf.sim.memory import SimAddressSpace
from netbpf.uapi import (
    BPF_PSEUDO_MAP_FD,
    BPF_PSEUDO_MAP_VALUE,
    MapType,
    ProgramType,
    resolve_map_type,
)
from netbpf.vm.engine import ENGINES, Executable, load_executable
from netbpf.vm.env import HelperFn

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.collection import Collection
    from netbpf.helpers.registry import HelperRegistry
    from netbpf.obj.btf import Btf
    from netbpf.obj.collection import CollectionSpec
    from netbpf.verifier import VerifierResult

__all__ = ["SimBackend", "SimProgram", "SimProgramInfo"]

_prog_ids = itertools.count(1)
_LD_IMM64 = 0x18


@dataclass(frozen=True)
class SimProgramInfo:
    """What BPF_OBJ_GET_INFO_BY_FD would report for a simulated program: its id, name,
    type, the ids of the maps it uses and how many instructions the verifier
    processed."""

    id: int
    name: str
    type: int
    map_ids: tuple[int, ...]
    verified_insns: int = 0


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
        verification: VerifierResult | None = None,
        log_level: int = 0,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.prog_type = spec.prog_type
        self.attach_type = spec.attach_type
        self.executable = executable
        self.maps: tuple[SimMap, ...] = tuple(maps)
        #: the verifier's outcome (None when loaded with ``unsafe_skip_verifier``)
        self.verification = verification
        self._log_level = log_level
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

    @property
    def verified(self) -> bool:
        """Whether the verifier accepted the program (False only for programs loaded
        with ``unsafe_skip_verifier``)."""
        return self.verification is not None

    @property
    def verified_insns(self) -> int | None:
        """Instructions the verifier processed (the kernel's ``bpf_prog_info.
        verified_insns``, the N of ``processed N insns``); None when verification was
        skipped."""
        v = self.verification
        return None if v is None else v.processed_insns

    @property
    def verifier_log(self) -> str:
        """The verifier log of the load at the log level it asked for, as the kernel's
        log buffer would hold it: empty at level 0 (and when verification was
        skipped), the statistics line at level 1, every instruction's state at 2."""
        v = self.verification
        if v is None or not self._log_level:
            return ""
        return v.log

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
        """The program's id, name, type, map ids and verified instruction count (the
        kernel's ``bpf_prog_info`` subset the simulator knows; ``verified_insns`` is 0
        when verification was skipped)."""
        return SimProgramInfo(
            self.id,
            self.name,
            int(self.prog_type),
            tuple(m.id for m in self.maps),
            self.verified_insns or 0,
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
    of the backend's bpffs-like pin namespace.

    Every program is verified at load (:func:`netbpf.verifier.verify`, as the kernel's
    BPF_PROG_LOAD does) and a refusal raises
    :class:`~netbpf.verifier.VerifierRejection`.  ``unsafe_skip_verifier=True`` loads
    programs without verifying them (the per-call ``unsafe_skip_verifier`` of
    :meth:`load_program` / :meth:`load` overrides it): for experiments with programs
    the kernel would refuse, whose unsafe accesses then fault at run time
    (:class:`~netbpf.errors.ProgramFault`)."""

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
        unsafe_skip_verifier: bool = False,
    ) -> None:
        if engine not in ENGINES:
            raise NotSupportedError(f"engine {engine!r}", f"choose one of {', '.join(ENGINES)}")
        if ncpus is not None and (
            isinstance(ncpus, bool) or not isinstance(ncpus, int) or ncpus < 1
        ):
            raise NotSupportedError(f"ncpus={ncpus!r}", "a positive number of CPUs")
        self.engine = engine
        self.unsafe_skip_verifier = bool(unsafe_skip_verifier)
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
    def load_program(
        self,
        spec: ProgramSpec,
        *,
        log_level: int = 0,
        unsafe_skip_verifier: bool | None = None,
    ) -> SimProgram:
        """BPF_PROG_LOAD in the simulator: validate the instructions (InstructionError
        names the slot of a malformed one; verified, only what Linux refuses before
        walking paths), verify the program
        (:class:`~netbpf.verifier.VerifierRejection` with the log, the instruction
        index and the kernel's message when refused) and decode it for the engine.

        Maps are referenced as with the kernel: an LD_IMM64 ``r1 = map_fd(N) ll``
        (BPF_PSEUDO_MAP_FD) or ``map_value(N, off)`` (BPF_PSEUDO_MAP_VALUE) whose N is
        the ``fd`` of a map of this backend (:meth:`create_map`).  A spec that refers
        to maps by name (``spec.map_relocs``) needs its object: load it with
        :meth:`load`.  ``log_level`` 1 or 2 keeps the verifier's log in
        ``program.verifier_log`` (the kernel's log levels).  ``unsafe_skip_verifier``
        (default: the backend's) skips verification.  The spec is not modified."""
        if spec.map_relocs:
            names = sorted({r.map for r in spec.map_relocs})
            raise ObjectError(
                f"program {spec.name!r} refers to maps ({', '.join(names)}): load its "
                "CollectionSpec with SimBackend.load()",
                section=spec.section or None,
            )
        skip = self._skip(unsafe_skip_verifier)
        # unverified: every structural check on every instruction (the engines' guard);
        # verified: what Linux refuses before walking paths, the rest where reached
        (validate_program if skip else validate_upfront)(spec.insns, name=spec.name)
        imm64, used, relocs, views = self._fd_maps(spec)
        result = None
        insns: Sequence[Instruction] = spec.insns
        if not skip:
            from netbpf.sim.verify import sanitize_dead_code, verify_for_load

            vspec = replace(spec, map_relocs=relocs) if relocs else spec
            result = verify_for_load(vspec, views, log_level=log_level)
            insns = sanitize_dead_code(spec.insns, result)
        exe = load_executable(insns, name=spec.name, engine=self.engine, imm64=imm64)
        for m in used:
            if isinstance(m, ProgArrayMap):
                m.set_owner(spec.prog_type)
        prog = SimProgram(spec, exe, self, maps=used, verification=result, log_level=log_level)
        self._programs.append(prog)
        return prog

    def _skip(self, unsafe_skip_verifier: bool | None) -> bool:
        if unsafe_skip_verifier is None:
            return self.unsafe_skip_verifier
        return bool(unsafe_skip_verifier)

    def _fd_maps(
        self, spec: ProgramSpec
    ) -> tuple[dict[int, int], list[SimMap], tuple[MapReloc, ...], dict[str, MapSpec]]:
        """Resolve the map fds of LD_IMM64 BPF_PSEUDO_MAP_FD / _MAP_VALUE instructions,
        as the kernel does at BPF_PROG_LOAD: the VM's values (slot -> address), the
        maps used, and the references as the verifier takes them (by name, with each
        map's :func:`~netbpf.sim.verify.map_view`).  A number that names no map of
        this backend is refused with EBADF, a direct value access outside a
        one-element array with EINVAL, as the kernel does."""
        from netbpf.sim.verify import map_view

        imm64: dict[int, int] = {}
        used: dict[int, SimMap] = {}
        relocs: list[MapReloc] = []
        views: dict[str, MapSpec] = {}
        insns = spec.insns
        for i, ins in enumerate(insns[:-1]):
            if ins.opcode != _LD_IMM64 or ins.src not in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE):
                continue
            m = self.resolver.fd(ins.imm)
            if not isinstance(m, SimMap) or m.closed:
                raise ObjectError(
                    f"program {spec.name!r}: insn {i} refers to fd {ins.imm}, which is not "
                    "a map of this backend (EBADF)",
                    section=spec.section or None,
                )
            name = f"map_fd({ins.imm})"
            if ins.src == BPF_PSEUDO_MAP_FD:
                imm64[i] = self.map_table.add(m)
                relocs.append(MapReloc(i, name))
            else:
                off = insns[i + 1].imm
                if not isinstance(m, ArrayMap) or m.percpu or m.max_entries != 1:
                    raise ObjectError(
                        f"program {spec.name!r}: insn {i}: direct value access to map "
                        f"{m.name!r} ({m.type.name}, max_entries {m.max_entries}): only "
                        "arrays with one element allow it (EINVAL)",
                        section=spec.section or None,
                    )
                if not 0 <= off < m.value_size:
                    raise ObjectError(
                        f"program {spec.name!r}: insn {i}: offset {off} is outside map "
                        f"{m.name!r}'s {m.value_size}-byte value (EINVAL)",
                        section=spec.section or None,
                    )
                self.map_table.add(m)
                imm64[i] = m.values_store.address(0) + off
                relocs.append(MapReloc(i, name, off))
            used[id(m)] = m
            views[name] = map_view(m)
        return imm64, list(used.values()), tuple(relocs), views

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
        self,
        spec: CollectionSpec,
        *,
        pin_path: str | os.PathLike[str] | None = None,
        log_level: int = 0,
        unsafe_skip_verifier: bool | None = None,
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
        pinned are unpinned again, as libbpf and the kernel backend do).

        Every program is verified with the maps it refers to (as created); a program
        the verifier refuses fails the whole load with
        :class:`~netbpf.verifier.VerifierRejection` naming the program, as
        :meth:`netbpf.KernelBackend.load` fails with KernelError.  ``log_level`` > 0
        keeps each program's verifier log in ``program.verifier_log``;
        ``unsafe_skip_verifier`` (default: the backend's) skips verification."""
        from netbpf.sim.loader import load_collection

        coll = load_collection(
            self,
            spec,
            pin_path=pin_path,
            log_level=log_level,
            skip_verifier=self._skip(unsafe_skip_verifier),
        )
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
        # an open program holds the maps it refers to, as a kernel program does
        stack.extend(p for p in self._programs if not p.closed)
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
