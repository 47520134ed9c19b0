"""``Collection``: the live programs, maps and global variables of one loaded object.

A backend turns a :class:`~netbpf.obj.collection.CollectionSpec` into a Collection
(``SimBackend().load(spec)``, ``KernelBackend().load(spec)``); the class is shared
by both backends, so everything above the raw program and map objects — typed map
access through BTF, global variables, lifetimes — behaves identically wherever the
programs run (cilium/ebpf's Collection, libbpf's skeleton).

Example (needs root for the kernel; the simulator takes the same calls)::

    from netbpf.kernel import KernelBackend
    from netbpf.obj.collection import load_collection_spec

    spec = load_collection_spec("counter.o")
    spec.variables["verdict"].set(1)             # a const volatile knob, before load
    with KernelBackend().load(spec) as coll:
        coll.programs["count"].test_run(bytes(64))
        counts = coll.typed_map("counts")         # keys/values decoded through BTF
        print(dict(counts.items()))
        print(coll.variables["packets"].get())    # a .bss/.data variable, live
        for record in coll.ringbuf("events").poll(timeout=0.1):   # list[bytes]
            print(record.hex())

Ring buffer and perf buffer consumers (:meth:`Collection.ringbuf`,
:meth:`Collection.perf_buffer`) have one API on both backends
(:class:`RingBufferReader`, :class:`PerfBufferReader`): the kernel's read the mmap'ed
rings (:mod:`netbpf.kernel.ringbuf`, :mod:`netbpf.kernel.perf`), the simulator's
adapt its maps' own consumers (:mod:`netbpf.sim.consumers`).

The spec is never changed by loading or by writing variables of the collection.
"""

from __future__ import annotations

import errno as _errno
import struct
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from netbpf.backend import Map, Program
from netbpf.errors import MapError, NetbpfError, NotSupportedError, ObjectError
from netbpf.obj.btf import Btf, Datasec, Kind
from netbpf.obj.btf_values import TypedMap, ValueCodec, bytes_codec, value_codec
from netbpf.obj.collection import CollectionSpec, VariableSpec, is_global_data, map_contents
from netbpf.uapi import MapType

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.maps.perf import PerfLost, PerfSample

__all__ = [
    "Collection",
    "ConsumerFactory",
    "PerfBufferReader",
    "RingBufferReader",
    "Variable",
    "fill_slots",
    "is_global_data",
    "libbpf_max_entries",
    "map_btf_ids",
]


class _Closeable(Protocol):
    def close(self) -> None: ...


class RingBufferReader(Protocol):
    """User-space consumer of a BPF_MAP_TYPE_RINGBUF map (libbpf's ``ring_buffer``),
    the same on both backends.

    * ``consume()``: every committed record, oldest first, as ``bytes`` (exactly the
      length the program reserved or output); discarded records are skipped; the
      consumer position advances past them, so the space is the producers' again.
      Stops before a record still being written (BUSY).
    * ``poll(timeout=None)``: the records available now; if there are none, waits up
      to ``timeout`` seconds (None: for ever, 0: not at all) for a producer's wakeup
      and returns what arrived (possibly nothing).  Records committed with
      BPF_RB_NO_WAKEUP do not end the wait (as epoll in the kernel).
    * ``size``: the ring's data size in bytes; ``consumer_pos``/``producer_pos``: the
      kernel's positions (they only grow); ``available``: bytes between them.
    * ``close()`` (idempotent; also ``with``): release the mapping.  A reader keeps
      working after its collection's map handle closes (it holds its own reference).
    """

    name: str

    @property
    def size(self) -> int: ...
    @property
    def consumer_pos(self) -> int: ...
    @property
    def producer_pos(self) -> int: ...
    @property
    def available(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def consume(self) -> list[bytes]: ...
    def poll(self, timeout: float | None = None) -> list[bytes]: ...
    def close(self) -> None: ...


class PerfBufferReader(Protocol):
    """User-space consumer of a BPF_MAP_TYPE_PERF_EVENT_ARRAY map (libbpf's
    ``perf_buffer``), the same on both backends.

    Opening it installs one BPF_OUTPUT perf event per CPU (``cpus``, by default every
    online CPU below the map's ``max_entries``) at index = CPU, each with a ring of
    ``page_cnt`` pages; programs' ``bpf_perf_event_output`` lands there.

    * ``consume()``: every sample of every CPU's ring, CPU by CPU, oldest first, as
      ``(cpu, data)``; ``data`` is the raw sample as the kernel stores it, padded so
      that the 4-byte size plus data is a multiple of 8 (libbpf hands callbacks the
      same bytes).  The padding is not part of what the program wrote: the kernel
      (6.18) skips over it, leaving older ring bytes there, and so does the simulator.
      Lost-sample records found on the way are added to ``lost`` / ``lost_by_cpu``.
    * ``consume_records()``: the same records as :class:`~netbpf.maps.perf.PerfSample`
      and :class:`~netbpf.maps.perf.PerfLost` in ring order (where the losses were).
    * ``poll(timeout=None)``: as ``consume()``, waiting up to ``timeout`` seconds for a
      wakeup when nothing is there yet.
    * ``close()``: remove the events from the map and release the rings.
    """

    name: str
    page_cnt: int
    lost: int

    @property
    def cpus(self) -> tuple[int, ...]: ...
    @property
    def lost_by_cpu(self) -> dict[int, int]: ...
    @property
    def closed(self) -> bool: ...
    def consume(self) -> list[tuple[int, bytes]]: ...
    def consume_records(self) -> list[PerfSample | PerfLost]: ...
    def poll(self, timeout: float | None = None) -> list[tuple[int, bytes]]: ...
    def close(self) -> None: ...


class ConsumerFactory(Protocol):
    """What a backend hands its collections so that :meth:`Collection.ringbuf` and
    :meth:`Collection.perf_buffer` can open readers on its maps."""

    def ringbuf(self, m: Map, name: str) -> RingBufferReader: ...

    def perf_buffer(
        self, m: Map, name: str, *, page_cnt: int, cpus: Iterable[int] | None
    ) -> PerfBufferReader: ...


def map_btf_ids(btf: Btf | None, mspec: Any) -> tuple[int, int]:
    """(key type id, value type id) describing a map in the object's BTF.

    Declared maps carry them in the spec.  A global-data map has no key type (its
    key is the u32 index 0) and its value is the section's DATASEC, as libbpf gives
    the kernel (so ``bpftool map dump`` shows the variables by name)."""
    if not is_global_data(mspec):
        return mspec.btf_key_type_id, mspec.btf_value_type_id
    if btf is None:
        return 0, 0
    sec = btf.find(mspec.extra.get("section", mspec.name), Kind.DATASEC)
    if isinstance(sec, Datasec) and sec.size == mspec.value_size:
        return 0, sec.id
    return 0, 0


_PAGE_SIZE = 4096


def libbpf_max_entries(mspec: Any, *, ncpus: int) -> int:
    """``max_entries`` as libbpf creates the map (both loaders follow it): a
    PERF_EVENT_ARRAY declared with 0 gets one slot per possible CPU (``ncpus``); a
    ring buffer's size must be a power-of-2 multiple of the page size, so a declared
    size is rounded up to the next one."""
    if mspec.type == MapType.PERF_EVENT_ARRAY and mspec.max_entries == 0:
        return ncpus
    if mspec.type == MapType.RINGBUF:
        pages = max(1, (mspec.max_entries + _PAGE_SIZE - 1) // _PAGE_SIZE)
        return (1 << (pages - 1).bit_length()) * _PAGE_SIZE
    return mspec.max_entries


def fill_slots(
    spec: CollectionSpec, kind: str, maps: Mapping[str, Map], programs: Mapping[str, Any]
) -> None:
    """Write the map-in-map (``kind`` "map") or PROG_ARRAY ("prog") slots declared by
    ``.maps`` initialisers: each slot gets the fd (a u32) of the map or program it
    names, as libbpf does.  Both loaders call it with their live maps and programs;
    a name the object does not define is an ObjectError."""
    pool: Mapping[str, Any] = maps if kind == "map" else programs
    for name, mspec in spec.maps.items():
        for idx, value in map_contents(mspec):
            if not isinstance(value, tuple) or value[0] != kind:
                continue
            target = value[1]
            obj = pool.get(target)
            if obj is None:
                raise ObjectError(
                    f"map {name!r} slot {idx} names {kind} {target!r}, which the object "
                    "does not define",
                    file=spec.file,
                    section=".maps",
                )
            maps[name].update(idx.to_bytes(mspec.key_size, "little"), struct.pack("<I", obj.fd))


class Variable:
    """A global variable of a loaded collection, read and written in its live
    global-data map (libbpf's skeleton ``skel->bss->counter``).

    ``get()``/``set()`` use the variable's BTF type (see
    :mod:`netbpf.obj.btf_values`); ``get_bytes()``/``set_bytes()`` its raw bytes.
    ``set`` rewrites the map's one value around the variable (read, patch, write):
    a program running at the same moment could lose an update made between the
    two, which never happens with ``test_run``.  Variables in ``.rodata`` are
    read-only after load (the map is frozen, as with libbpf): set them on the spec
    (``spec.variables[name].set(...)``) before loading."""

    def __init__(self, spec: VariableSpec, collection: Collection) -> None:
        self.spec = spec
        self.name = spec.name
        self.map = spec.map
        self.offset = spec.offset
        self.size = spec.size
        self.type_id = spec.type_id
        self.readonly = spec.readonly
        self._collection = collection
        self._codec: ValueCodec | None = None

    @property
    def codec(self) -> ValueCodec:
        """How this variable's bytes become a Python value (raw bytes without BTF)."""
        if self._codec is None:
            btf = self._collection.spec.btf
            codec = None
            if self.type_id and btf is not None:
                codec = value_codec(btf, self.type_id)
                if codec.size != self.size:
                    codec = None  # BTF and the symbol disagree: trust the bytes
            self._codec = codec if codec is not None else bytes_codec(self.size)
        return self._codec

    def _map(self) -> Map:
        return self._collection.maps[self.map]

    def get_bytes(self) -> bytes:
        m = self._map()
        value = m.lookup(bytes(m.key_size))
        return value[self.offset : self.offset + self.size]

    def set_bytes(self, raw: bytes) -> None:
        raw = bytes(raw)
        if len(raw) != self.size:
            raise MapError(
                f"variable {self.name!r} is {self.size} bytes, got {len(raw)} bytes",
                errno=_errno.EINVAL,
            )
        if self.readonly:
            raise MapError(
                f"variable {self.name!r} is in {self.map} (read-only after load; set it on "
                "the spec before loading)",
                errno=_errno.EPERM,
            )
        m = self._map()
        key = bytes(m.key_size)
        value = bytearray(m.lookup(key))
        value[self.offset : self.offset + self.size] = raw
        m.update(key, bytes(value))

    def get(self) -> Any:
        """The current value, decoded through BTF."""
        return self.codec.decode(self.get_bytes())

    def set(self, value: Any) -> None:
        """Write a new value (encoded through BTF; BtfValueError if it does not fit)."""
        self.set_bytes(self.codec.encode(value))

    def __repr__(self) -> str:
        return f"<Variable {self.name!r} in {self.map} +{self.offset} ({self.size} bytes)>"


class Collection:
    """Live programs and maps from one CollectionSpec, on one backend.

    * ``programs``: program name -> :class:`~netbpf.backend.Program`;
    * ``maps``: map name as in the spec (``"counts"``, ``".data"``, ``".rodata"``)
      -> :class:`~netbpf.backend.Map` with raw-bytes operations;
    * ``variables``: global variable name -> :class:`Variable` (typed, live);
    * ``typed_map(name)``: a :class:`~netbpf.obj.btf_values.TypedMap` over
      ``maps[name]`` decoding keys and values through the object's BTF;
    * ``ringbuf(name)`` / ``perf_buffer(name)``: the consumer of a ring buffer or perf
      event array map (:class:`RingBufferReader`, :class:`PerfBufferReader`);
    * ``spec``: the spec it was loaded from (never mutated);
    * ``warnings``: what the backend had to work around while loading (e.g. a map the
      kernel refused to take BTF for).

    ``close()`` (idempotent; also ``with``) closes the consumers, programs, then maps,
    then whatever else the backend handed over (the kernel's BTF object).  Backends construct it;
    users do not.
    """

    def __init__(
        self,
        spec: CollectionSpec,
        programs: Mapping[str, Program],
        maps: Mapping[str, Map],
        *,
        backend: str = "",
        resources: Iterable[_Closeable] = (),
        warnings: Iterable[str] = (),
        consumers: ConsumerFactory | None = None,
    ) -> None:
        self.spec = spec
        self.programs: dict[str, Program] = dict(programs)
        self.maps: dict[str, Map] = dict(maps)
        self.backend = backend
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._resources = list(resources)
        self._typed: dict[str, TypedMap] = {}
        self._consumers = consumers
        self._readers: dict[tuple[str, str], Any] = {}
        self._closed = False
        self.variables: dict[str, Variable] = {
            name: Variable(v, self) for name, v in spec.variables.items() if v.map in self.maps
        }

    @property
    def closed(self) -> bool:
        return self._closed

    def typed_map(self, name: str) -> TypedMap:
        """``maps[name]`` with keys and values as Python values through BTF (a
        per-CPU map's values are lists, one per CPU).  A global-data map's value is a
        dict of its variables.  Unknown names raise KeyError."""
        tm = self._typed.get(name)
        if tm is None:
            raw = self.maps[name]
            mspec = self.spec.maps.get(name)
            key_id, value_id = map_btf_ids(self.spec.btf, mspec) if mspec is not None else (0, 0)
            tm = self._typed[name] = TypedMap(raw, self.spec.btf, key_id, value_id)
        return tm

    def _consumer_map(self, name: str, map_type: MapType, what: str) -> Map:
        if self._closed:
            raise MapError(f"{what} of map {name!r}: the collection is closed", errno=_errno.EBADF)
        m = self.maps.get(name)
        if m is None:
            raise MapError(
                f"{what}: the collection has no map {name!r} (maps: {', '.join(sorted(self.maps))})",
                errno=_errno.ENOENT,
            )
        mtype = getattr(m, "map_type", None)
        if mtype != map_type:
            kind = mtype.name if isinstance(mtype, MapType) else str(mtype)
            raise MapError(
                f"{what}: map {name!r} is a {kind}, not a {map_type.name}", errno=_errno.EINVAL
            )
        if self._consumers is None:
            raise NotSupportedError(f"{what} on the {self.backend or 'unknown'} backend")
        return m

    def ringbuf(self, name: str) -> RingBufferReader:
        """The consumer of ring buffer map ``name`` (opened on first use, then the same
        reader until it is closed).  MapError: no such map (ENOENT), not a ring
        buffer (EINVAL), collection closed (EBADF)."""
        key = ("ringbuf", name)
        reader = self._readers.get(key)
        if reader is not None and not reader.closed:
            return reader
        m = self._consumer_map(name, MapType.RINGBUF, "ringbuf")
        assert self._consumers is not None
        reader = self._readers[key] = self._consumers.ringbuf(m, name)
        return reader

    def perf_buffer(
        self, name: str, *, page_cnt: int = 8, cpus: Iterable[int] | None = None
    ) -> PerfBufferReader:
        """The consumer of perf event array ``name``: one BPF_OUTPUT event per CPU with
        a ring of ``page_cnt`` pages (a power of 2), installed in the map (libbpf's
        ``perf_buffer__new``).  Opened on first use; asking again returns the same
        reader while it is open, and MapError(EBUSY) if ``page_cnt``/``cpus`` differ
        (close it first).  Other errors as :meth:`ringbuf`."""
        if (
            isinstance(page_cnt, bool)
            or not isinstance(page_cnt, int)
            or page_cnt <= 0
            or (page_cnt & (page_cnt - 1))
        ):
            raise MapError(
                f"perf_buffer of map {name!r}: page_cnt must be a power of 2, not {page_cnt!r}",
                errno=_errno.EINVAL,
            )
        want = None if cpus is None else tuple(sorted(set(cpus)))
        key = ("perf", name)
        reader = self._readers.get(key)
        if reader is not None and not reader.closed:
            if reader.page_cnt != page_cnt or (want is not None and want != reader.cpus):
                raise MapError(
                    f"perf_buffer of map {name!r} is already open with page_cnt "
                    f"{reader.page_cnt} on CPUs {list(reader.cpus)}; close it first",
                    errno=_errno.EBUSY,
                )
            return reader
        m = self._consumer_map(name, MapType.PERF_EVENT_ARRAY, "perf_buffer")
        assert self._consumers is not None
        reader = self._consumers.perf_buffer(m, name, page_cnt=page_cnt, cpus=want)
        self._readers[key] = reader
        return reader

    def close(self) -> None:
        """Close every consumer, program and map (and backend resources).  Safe to call
        twice; errors while closing are collected and the first is raised at the end."""
        if self._closed:
            return
        self._closed = True
        first: BaseException | None = None
        readers = list(self._readers.values())
        self._readers.clear()
        objs: list[Any] = [
            *readers,
            *self.programs.values(),
            *self.maps.values(),
            *self._resources,
        ]
        for obj in objs:
            close = getattr(obj, "close", None)
            if close is None:
                continue  # nothing to release (a simulator object without one)
            try:
                close()
            except (NetbpfError, OSError) as e:
                first = first or e
        self._resources.clear()
        if first is not None:
            raise first

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        where = f" {self.backend}" if self.backend else ""
        return (
            f"<Collection{where} programs={sorted(self.programs)} maps={sorted(self.maps)}{state}>"
        )
