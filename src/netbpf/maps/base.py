"""The map base class, value storage programs can address, and the map table.

How maps meet programs (the design every map type follows):

- A map's values live in fixed ``bytearray``\\ s wrapped by
  :class:`~netbpf.vm.memory.Region`\\ s (:class:`ValueStore`).  ``map.attach(mem)``
  maps them into an :class:`~netbpf.vm.memory.AddressSpace`; a program-side lookup
  returns the address of the value inside its region (0 when absent), and the program
  reads and writes the very bytes Python sees.  The SimBackend keeps one long-lived
  address space per backend, so value addresses are stable across runs, like kernel
  addresses.
- Hash maps preallocate their elements like the kernel (unless BPF_F_NO_PREALLOC, which
  allocates value chunks lazily but never moves a live value).  Element memory is
  reused the kernel's way, so a pointer kept across a delete or an update can see
  another element's value exactly where the kernel's would (see each type's notes).
- A map is known to programs by a CONST_PTR_TO_MAP address: :class:`MapTable` gives
  each map a tiny :class:`MapHandleRegion` whose base address is that pointer.  Any
  access through it faults; helpers turn ``r1`` back into the map with
  :func:`map_from_pointer` (``env.mem.resolve(r1)``), so they need no other table.

User-space operations (the ``bpf()`` commands) are methods on :class:`Map` taking and
returning raw ``bytes``; per-CPU maps take and return one value per possible CPU.
Failures raise the kernel's errno as typed errors: ENOENT -> MapKeyNotFoundError,
EEXIST -> MapKeyExistsError, E2BIG -> MapFullError, anything else MapError(errno=...),
including ENOTSUPP (524) for operations a type lacks, as ``bpf()`` reports them.
"""

from __future__ import annotations

import errno as _errno
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from netbpf.backend import MapInfo
from netbpf.errors import MapError, MapFullError, MapKeyExistsError, MapKeyNotFoundError
from netbpf.maps.constants import (
    BPF_ANY,
    BPF_F_LOCK,
    BPF_F_NUMA_NODE,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY,
    BPF_F_WRONLY_PROG,
    ENOTSUPP,
)
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

__all__ = [
    "MAX_SIM_ALLOC",
    "BatchResult",
    "Map",
    "MapHandleRegion",
    "MapInfo",
    "MapTable",
    "ValueStore",
    "map_error",
    "map_from_pointer",
    "round_up",
]

#: The simulator refuses (ENOMEM) a map whose preallocated storage would exceed this
#: many bytes; the kernel would fail the same way, only later.
MAX_SIM_ALLOC = 1 << 32

_ERRNO_NAMES = {ENOTSUPP: "ENOTSUPP"}


def errno_name(err: int) -> str:
    return _ERRNO_NAMES.get(err) or _errno.errorcode.get(err, str(err))


def round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def map_error(err: int, message: str) -> MapError:
    """The typed error for a kernel errno."""
    if err == _errno.ENOENT:
        return MapKeyNotFoundError(message)
    if err == _errno.EEXIST:
        return MapKeyExistsError(message)
    if err == _errno.E2BIG:
        return MapFullError(message)
    return MapError(message, errno=err)


class _Errno(Exception):
    """Internal: an operation failed with this errno (turned into a typed MapError with
    the map, operation and key named by the public method, or into -errno for a
    program-side helper)."""

    def __init__(self, err: int, why: str = "") -> None:
        super().__init__(err, why)
        self.err = err
        self.why = why


_REASONS = {
    _errno.ENOENT: "no such element",
    _errno.EEXIST: "element exists",
    _errno.E2BIG: "map full or index out of range",
    _errno.EINVAL: "invalid argument",
    _errno.EPERM: "operation not permitted",
    _errno.ENOSPC: "no space",
    _errno.EBUSY: "busy",
    _errno.EBADF: "bad handle",
    ENOTSUPP: "operation not supported by this map type",
    _errno.EOPNOTSUPP: "operation not supported",
}


# -- memory ---------------------------------------------------------------------------------


class MapHandleRegion(Region):
    """The region whose base address is a map's CONST_PTR_TO_MAP value.  It has no
    accessible bytes: a program dereferencing a map pointer faults (the verifier would
    have refused it)."""

    __slots__ = ("map",)

    def __init__(self, m: Map) -> None:
        super().__init__(
            f"map {m.name!r}", bytearray(8), kind="map_ptr", writable=False, lo=0, hi=0
        )
        self.map = m


def map_from_pointer(mem: AddressSpace, addr: int) -> Map:
    """The map whose CONST_PTR_TO_MAP is ``addr`` in ``mem`` (what helpers do with r1).
    Raises MemoryFault when ``addr`` is not a map pointer."""
    region, off = mem.resolve(addr)
    if not isinstance(region, MapHandleRegion) or off != 0:
        raise MemoryFault(f"{addr & 0xFFFFFFFFFFFFFFFF:#x} is not a map pointer ({region.name})")
    return region.map


class ValueStore:
    """Fixed-address value storage: ``capacity`` slots of ``elem_size`` bytes, one copy
    per CPU for per-CPU maps.

    Slots live in chunks of ``chunk`` slots; each chunk (per copy) is one bytearray and
    one Region.  A preallocated store is a single chunk allocated up front; a lazy one
    (BPF_F_NO_PREALLOC) allocates chunks on first use.  Chunks never move or shrink, so
    the address of a slot is fixed for the store's life."""

    __slots__ = (
        "_addr0",
        "_bufs",
        "_mem",
        "_regions",
        "capacity",
        "chunk",
        "copies",
        "elem_size",
        "name",
        "page_align",
        "value_size",
        "writable",
    )

    def __init__(
        self,
        name: str,
        value_size: int,
        capacity: int,
        *,
        copies: int = 1,
        prealloc: bool = True,
        writable: bool = True,
        page_align: bool = False,
        chunk: int | None = None,
    ) -> None:
        self.name = name
        self.value_size = value_size
        self.elem_size = round_up(value_size, 8)
        self.capacity = capacity
        self.copies = copies
        self.writable = writable
        self.page_align = page_align
        if prealloc:
            self.chunk = max(capacity, 1)
        else:
            self.chunk = chunk or max(1, min(max(capacity, 1), 65536 // self.elem_size or 1))
        # chunk lists grow on demand (a lazy store may hold millions of slots)
        self._bufs: list[list[bytearray | None]] = [[] for _ in range(copies)]
        self._regions: list[list[Region | None]] = [[] for _ in range(copies)]
        self._mem: AddressSpace | None = None
        self._addr0: list[int] = [0] * copies
        if prealloc and capacity:
            self._alloc_chunk(0)

    def _chunk_bytes(self, c: int) -> int:
        n = min(self.chunk, max(self.capacity - c * self.chunk, 0)) * self.elem_size
        return round_up(n, 4096) if self.page_align else n

    def _alloc_chunk(self, c: int) -> None:
        if c * self.chunk >= self.capacity:
            raise _Errno(_errno.ENOMEM, f"{self.name}: slot beyond capacity {self.capacity}")
        for per in (*self._bufs, *self._regions):
            if len(per) <= c:
                per.extend([None] * (c + 1 - len(per)))  # type: ignore[list-item]
        size = self._chunk_bytes(c)
        if size * self.copies > MAX_SIM_ALLOC:
            raise _Errno(_errno.ENOMEM, f"{size * self.copies} bytes of values")
        try:
            for cpu in range(self.copies):
                buf = bytearray(size)
                self._bufs[cpu][c] = buf
                suffix = f" cpu{cpu}" if self.copies > 1 else ""
                region = Region(
                    f"{self.name} values{suffix}", buf, kind="map_value", writable=self.writable
                )
                self._regions[cpu][c] = region
                if self._mem is not None:
                    self._mem.map(region)
                    if c == 0:
                        self._addr0[cpu] = region.base
        except MemoryError:
            raise _Errno(_errno.ENOMEM, f"{size * self.copies} bytes of values") from None

    def buf(self, slot: int, cpu: int = 0) -> tuple[bytearray, int]:
        """(buffer, offset) of a slot's value on one CPU, allocating its chunk."""
        c, i = divmod(slot, self.chunk)
        per = self._bufs[cpu]
        b = per[c] if c < len(per) else None
        if b is None:
            self._alloc_chunk(c)
            b = self._bufs[cpu][c]
            assert b is not None
        return b, i * self.elem_size

    def get(self, slot: int, cpu: int = 0) -> bytes:
        if slot < self.chunk:  # the common case: the first (for prealloc, only) chunk
            per = self._bufs[cpu]
            if per and per[0] is not None:
                o = slot * self.elem_size
                return bytes(per[0][o : o + self.value_size])
        b, o = self.buf(slot, cpu)
        return bytes(b[o : o + self.value_size])

    def set(self, slot: int, data: bytes, cpu: int = 0) -> None:
        if len(data) != self.value_size:  # a slice assignment must never resize
            raise ValueError(f"{self.name}: value of {len(data)} bytes, not {self.value_size}")
        b, o = self.buf(slot, cpu)
        b[o : o + self.value_size] = data

    def get_long(self, slot: int, cpu: int = 0) -> bytes:
        """The value with its padding to 8 bytes (what per-CPU maps copy to user space:
        the kernel's copy_map_value_long)."""
        b, o = self.buf(slot, cpu)
        return bytes(b[o : o + self.elem_size])

    def set_long(self, slot: int, data: bytes, cpu: int = 0) -> None:
        if len(data) != self.elem_size:
            raise ValueError(f"{self.name}: value of {len(data)} bytes, not {self.elem_size}")
        b, o = self.buf(slot, cpu)
        b[o : o + self.elem_size] = data

    def zero(self, slot: int, cpu: int = 0) -> None:
        b, o = self.buf(slot, cpu)
        b[o : o + self.elem_size] = bytes(self.elem_size)

    def address(self, slot: int, cpu: int = 0) -> int:
        """The program-visible address of a slot (0 when the store is not attached)."""
        if self._mem is None:
            return 0
        if slot < self.chunk:
            if not self._bufs[cpu] or self._bufs[cpu][0] is None:
                self._alloc_chunk(0)
            return self._addr0[cpu] + slot * self.elem_size
        c, i = divmod(slot, self.chunk)
        per = self._regions[cpu]
        r = per[c] if c < len(per) else None
        if r is None:
            self._alloc_chunk(c)
            r = self._regions[cpu][c]
            assert r is not None
        return r.base + i * self.elem_size

    def locate(self, region: Region, off: int) -> tuple[int, int] | None:
        """(slot, offset inside the value) of an address in one of our regions."""
        for cpu in range(self.copies):
            for c, r in enumerate(self._regions[cpu]):
                if r is region:
                    i, o = divmod(off, self.elem_size)
                    return c * self.chunk + i, o
        return None

    def regions(self) -> Iterator[Region]:
        for per_cpu in self._regions:
            for r in per_cpu:
                if r is not None:
                    yield r

    def attach(self, mem: AddressSpace) -> None:
        self._mem = mem
        for cpu in range(self.copies):
            for c, r in enumerate(self._regions[cpu]):
                if r is not None:
                    mem.map(r)
                    if c == 0:
                        self._addr0[cpu] = r.base

    def detach(self) -> None:
        if self._mem is not None:
            for r in self.regions():
                self._mem.unmap(r)
        self._mem = None

    def set_writable(self, writable: bool) -> None:
        self.writable = writable
        for r in self.regions():
            r.writable = writable

    def nbytes(self) -> int:
        return sum(len(b) for per_cpu in self._bufs for b in per_cpu if b is not None)


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """One BPF_MAP_LOOKUP(_AND_DELETE)_BATCH call: the (key, value) pairs it returned and
    the position to continue from (``next_batch``), None when the kernel said ENOENT
    (the end of the map was reached; ``items`` may still hold entries)."""

    items: list[tuple[bytes, Any]]
    next_batch: bytes | None

    @property
    def done(self) -> bool:
        return self.next_batch is None


_ids = itertools.count(1)


def next_object_id() -> int:
    """A fresh map/program id (the kernel's idr ids start at 1 and are never 0)."""
    return next(_ids)


# -- the base class ------------------------------------------------------------------------

Value = bytes | list[bytes]


class Map:
    """A simulated map.  Create with :func:`netbpf.maps.create_map`.

    Attributes: ``spec`` (the :class:`MapSpec` it came from), ``name``, ``type``,
    ``key_size``, ``value_size``, ``max_entries`` and ``flags`` as the kernel reports
    them after creation (an LRU map with BPF_F_NO_COMMON_LRU rounds ``max_entries`` to
    a multiple of the CPU count; a DEVMAP gains BPF_F_RDONLY_PROG), ``id``, ``ncpus``,
    ``frozen``."""

    map_type: ClassVar[MapType]
    #: per-CPU values (user space moves ncpus values at once)
    percpu: ClassVar[bool] = False
    #: operations the kernel offers for this type
    _has_lookup_and_delete: ClassVar[bool] = False
    _batch_lookup: ClassVar[str | None] = None  # "generic" | "htab"
    _batch_update: ClassVar[bool] = False
    _batch_delete: ClassVar[bool] = False
    _batch_lookup_and_delete: ClassVar[bool] = False

    def __init__(self, spec: MapSpec, *, ncpus: int) -> None:
        self.spec = spec
        self.name = spec.name
        self.type = self.map_type
        self.key_size = spec.key_size
        self.value_size = spec.value_size
        self.max_entries = spec.max_entries
        # BPF_F_RDONLY / BPF_F_WRONLY are file permissions, not kept in map_flags
        self.flags = spec.flags & ~(BPF_F_RDONLY | BPF_F_WRONLY)
        self._user_rdonly = bool(spec.flags & BPF_F_RDONLY)
        self._user_wronly = bool(spec.flags & BPF_F_WRONLY)
        self.ncpus = ncpus
        self.id = next_object_id()
        self.frozen = False
        self.spin_lock_off = spec.spin_lock_off
        self._mem: AddressSpace | None = None
        self._handle: MapHandleRegion | None = None
        self._mmap_writers = 0
        self._closed = False

    # -- creation checks shared by the types
    @staticmethod
    def check_common(spec: MapSpec) -> None:
        """Checks BPF_MAP_CREATE does before the type's own (file flags, NUMA node,
        map_extra), in the kernel's order."""
        if spec.flags & BPF_F_RDONLY and spec.flags & BPF_F_WRONLY:
            raise _Errno(_errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY together")
        if spec.flags & BPF_F_NUMA_NODE and spec.numa_node != 0:
            raise _Errno(_errno.EINVAL, f"NUMA node {spec.numa_node} is not online")
        if spec.map_extra:
            raise _Errno(_errno.EINVAL, "map_extra is only for bloom filters and arenas")

    @classmethod
    def created_params(cls, spec: MapSpec, ncpus: int) -> tuple[int, int]:
        """(max_entries, map_flags) as the kernel reports them after creating ``spec``
        (what map-in-map templates and pin reuse compare)."""
        return spec.max_entries, spec.flags & ~(BPF_F_RDONLY | BPF_F_WRONLY)

    @staticmethod
    def access_ok(flags: int) -> bool:
        """bpf_map_flags_access_ok: programs cannot be both read-only and write-only."""
        both = BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG
        return flags & both != both

    # -- naming and errors
    def _what(self) -> str:
        return f"{self.type.name} map '{self.name}'"

    def _fail(self, e: _Errno, op: str, key: bytes | None = None) -> MapError:
        where = f"{self._what()}: {op}"
        if key is not None:
            where += f" key {bytes(key).hex() or '(empty)'}"
        why = e.why or _REASONS.get(e.err, "")
        msg = f"{where}: {why} ({errno_name(e.err)})" if why else f"{where}: {errno_name(e.err)}"
        return map_error(e.err, msg)

    def _run(self, op: str, key: bytes | None, fn: Callable[[], Any]) -> Any:
        if self._closed:
            raise self._fail(_Errno(_errno.EBADF, "the map is closed"), op, key)
        try:
            return fn()
        except _Errno as e:
            raise self._fail(e, op, key) from None

    # -- argument coercion
    def _key(self, key: Any) -> bytes:
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                return key.to_bytes(self.key_size, "little")
            except OverflowError:
                raise MapError(
                    f"{self._what()}: integer key {key} does not fit {self.key_size} bytes",
                    errno=_errno.EINVAL,
                ) from None
        if not isinstance(key, bytes | bytearray | memoryview):
            raise MapError(
                f"{self._what()}: key must be bytes (or an int), not {type(key).__name__}",
                errno=_errno.EINVAL,
            )
        key = bytes(key)
        if len(key) != self.key_size:
            raise MapError(
                f"{self._what()}: key is {len(key)} bytes, the map's key_size is {self.key_size}",
                errno=_errno.EINVAL,
            )
        return key

    def _value(self, value: Any) -> Any:
        """Normalize a user value: bytes of value_size, or for per-CPU maps a list of
        ncpus such values (from a sequence, or libbpf's packed round_up(size, 8) * ncpus
        buffer)."""
        if self.percpu:
            return self._percpu_value(value)
        if not isinstance(value, bytes | bytearray | memoryview):
            raise MapError(
                f"{self._what()}: value must be bytes, not {type(value).__name__}",
                errno=_errno.EINVAL,
            )
        value = bytes(value)
        if len(value) != self.value_size:
            raise MapError(
                f"{self._what()}: value is {len(value)} bytes, the map's value_size is "
                f"{self.value_size}",
                errno=_errno.EINVAL,
            )
        return value

    def _percpu_value(self, value: Any) -> list[bytes]:
        """One ``round_up(value_size, 8)``-byte chunk per CPU: the kernel copies the
        padding too (copy_map_value_long), so it is part of the stored value."""
        vs = self.value_size
        stride = round_up(vs, 8)
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if len(raw) != stride * self.ncpus:
                raise MapError(
                    f"{self._what()}: a per-CPU value is a list of {self.ncpus} values or "
                    f"{stride * self.ncpus} packed bytes, not {len(raw)} bytes",
                    errno=_errno.EINVAL,
                )
            return [raw[i * stride : (i + 1) * stride] for i in range(self.ncpus)]
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise MapError(
                f"{self._what()}: a per-CPU value is a list of {self.ncpus} bytes values",
                errno=_errno.EINVAL,
            )
        out = [bytes(v) for v in value]
        if len(out) != self.ncpus or any(len(v) not in (vs, stride) for v in out):
            raise MapError(
                f"{self._what()}: a per-CPU value is {self.ncpus} values of {vs} bytes "
                f"(got {len(out)} values of sizes {sorted({len(v) for v in out})})",
                errno=_errno.EINVAL,
            )
        return [v + bytes(stride - len(v)) for v in out]

    def _mask_lock(self, value: bytes) -> bytes:
        """User space never sees the bpf_spin_lock word (the kernel zeroes it)."""
        off = self.spin_lock_off
        if off is None:
            return value
        return value[:off] + bytes(4) + value[off + 4 :]

    def _merge_lock(self, old: bytes, new: bytes) -> bytes:
        """User space never overwrites the bpf_spin_lock word."""
        off = self.spin_lock_off
        if off is None:
            return new
        return new[:off] + old[off : off + 4] + new[off + 4 :]

    # -- permission checks (map_get_sys_perms)
    def _check_read(self) -> None:
        if self._user_wronly:
            raise _Errno(_errno.EPERM, "the map was created BPF_F_WRONLY")

    def _check_write(self) -> None:
        if self.frozen:
            raise _Errno(_errno.EPERM, "the map is frozen")
        if self._user_rdonly:
            raise _Errno(_errno.EPERM, "the map was created BPF_F_RDONLY")

    def _check_lock_flag(self, flags: int) -> None:
        if flags & BPF_F_LOCK and self.spin_lock_off is None:
            raise _Errno(_errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock")

    # -- the bpf() commands -------------------------------------------------------------------
    def lookup(self, key: Any, *, flags: int = 0) -> Value:
        """BPF_MAP_LOOKUP_ELEM.  Raises MapKeyNotFoundError when absent."""
        k = None if key is None and self.key_size == 0 else self._key(key)

        def run() -> Value:
            if flags & ~BPF_F_LOCK:
                raise _Errno(_errno.EINVAL, f"lookup flags {flags:#x}")
            self._check_read()
            self._check_lock_flag(flags)
            return self._sys_lookup(k, flags)

        return self._pack(self._run("lookup", k, run))

    def lookup_percpu(self, key: Any, *, flags: int = 0) -> list[bytes]:
        """A per-CPU map's value as a list of ``ncpus`` values (CPU 0 first)."""
        if not self.percpu:
            raise MapError(f"{self._what()}: not a per-CPU map", errno=_errno.EINVAL)
        return [v[: self.value_size] for v in self._percpu_value(self.lookup(key, flags=flags))]

    def _pack(self, value: Any) -> Any:
        """User-space buffers of per-CPU maps hold every CPU's value at a stride of
        round_up(value_size, 8), CPU 0 first (what bpf() and libbpf move)."""
        if self.percpu and isinstance(value, list):
            return b"".join(value)
        return value

    @property
    def value_size_raw(self) -> int:
        """Bytes of one user-space value buffer (all CPUs' for a per-CPU map)."""
        if self.percpu:
            return round_up(self.value_size, 8) * self.ncpus
        return self.value_size

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the map (idempotent): user-space operations then fail with EBADF.
        Programs and maps of maps that hold it keep using it, as in the kernel."""
        self._closed = True

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: Any, default: Any = None) -> Any:
        """Like :meth:`lookup`, but ``default`` when the key is absent."""
        try:
            return self.lookup(key)
        except MapKeyNotFoundError:
            return default

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        """BPF_MAP_UPDATE_ELEM with the kernel's flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST,
        optionally | BPF_F_LOCK)."""
        k = None if key is None and self.key_size == 0 else self._key(key)
        v = self._user_value(value)

        def run() -> None:
            self._check_write()
            self._check_lock_flag(flags)
            self._sys_update(k, v, flags)

        self._run("update", k, run)

    def delete(self, key: Any) -> None:
        """BPF_MAP_DELETE_ELEM."""
        k = self._key(key)

        def run() -> None:
            self._check_write()
            self._sys_delete(k)

        self._run("delete", k, run)

    def lookup_and_delete(self, key: Any = None, *, flags: int = 0) -> Value:
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM (hash types; pop for queues and stacks)."""
        k = None if key is None and self.key_size == 0 else self._key(key)

        def run() -> Value:
            if flags & ~BPF_F_LOCK:
                raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
            self._check_read()
            self._check_write()
            self._check_lookup_and_delete_flags(flags)
            self._check_lock_flag(flags)
            if not self._has_lookup_and_delete:
                raise _Errno(ENOTSUPP)
            return self._sys_lookup_and_delete(k, flags)

        return self._pack(self._run("lookup_and_delete", k, run))

    def _check_lookup_and_delete_flags(self, flags: int) -> None:
        pass

    def next_key(self, key: Any = None) -> bytes | None:
        """Alias of :meth:`get_next_key` (the backend-neutral Map protocol's name)."""
        return self.get_next_key(key)

    def get_next_key(self, key: Any = None) -> bytes | None:
        """BPF_MAP_GET_NEXT_KEY: the key after ``key`` in the kernel's order (``None``:
        the first key); None at the end (the kernel's ENOENT)."""
        k = None if key is None else self._key(key)

        def run() -> bytes | None:
            self._check_read()
            try:
                return self._next_key(k)
            except _Errno as e:
                if e.err == _errno.ENOENT:
                    return None
                raise

        return self._run("get_next_key", k, run)

    def keys(self) -> Iterator[bytes]:
        """All keys in the kernel's iteration order (get_next_key from None)."""
        key = self.get_next_key(None)
        while key is not None:
            yield key
            key = self.get_next_key(key)

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(self) -> Iterator[tuple[bytes, Value]]:
        """(key, value) pairs in key order; a key that vanished meanwhile is skipped."""
        for k in self.keys():
            try:
                yield k, self.lookup(k)
            except MapKeyNotFoundError:
                continue

    def values(self) -> Iterator[Value]:
        for _k, v in self.items():
            yield v

    def __len__(self) -> int:
        return self._count()

    def __contains__(self, key: object) -> bool:
        try:
            self.lookup(key)
        except MapKeyNotFoundError:
            return False
        except MapError:
            return False
        return True

    def __getitem__(self, key: Any) -> Value:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    # -- batches
    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]:
        """Every entry through BPF_MAP_LOOKUP(_AND_DELETE)_BATCH, ``count`` at a time
        (a hash bucket larger than ``count`` doubles it, as after ENOSPC)."""
        out: list[tuple[bytes, bytes]] = []
        token: bytes | None = None
        while True:
            try:
                res = self.lookup_batch_step(count, token, delete=delete, flags=flags)
            except MapError as e:
                if e.errno == _errno.ENOSPC:
                    count *= 2
                    continue
                raise
            out.extend(res.items)
            if res.next_batch is None:
                return out
            token = res.next_batch

    def lookup_batch_step(
        self, count: int, in_batch: bytes | None = None, *, delete: bool = False, flags: int = 0
    ) -> BatchResult:
        """One BPF_MAP_LOOKUP_BATCH (or, with ``delete``, LOOKUP_AND_DELETE_BATCH) call:
        up to ``count`` entries from position ``in_batch`` (None: the beginning).  The
        position token is opaque (a key for arrays and LPM tries, a u32 bucket index for
        hash maps); ``next_batch`` is None when the kernel would say ENOENT (the end)."""
        op = "lookup_and_delete_batch" if delete else "lookup_batch"
        res = self._batch(op, count, in_batch, flags, delete=delete)
        if self.percpu:
            res = BatchResult([(k, self._pack(v)) for k, v in res.items], res.next_batch)
        return res

    def _batch(
        self, op: str, count: int, in_batch: bytes | None, flags: int, *, delete: bool
    ) -> BatchResult:
        def run() -> BatchResult:
            self._check_read()
            if delete:
                self._check_write()
            kind = self._batch_lookup
            if delete and not self._batch_lookup_and_delete:
                kind = None
            if kind is None:
                raise _Errno(ENOTSUPP)
            if flags & ~BPF_F_LOCK:
                raise _Errno(_errno.EINVAL, f"elem_flags {flags:#x}")
            self._check_lock_flag(flags)
            if kind == "generic":
                return self._generic_lookup_batch(count, in_batch, flags)
            return self._htab_lookup_batch(count, in_batch, flags, delete)

        return self._run(op, None, run)

    def update_batch(self, items: Iterable[tuple[Any, Any]], *, flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH: update each (key, value) in turn, stopping at the first
        failure, which is raised with ``processed`` (elements done before it) set.
        Returns the number of elements updated."""
        pairs = list(items)
        ks = [self._key(k) for k, _ in pairs]
        vs = [self._user_value(v) for _, v in pairs]
        done = 0

        def run() -> int:
            nonlocal done
            self._check_write()
            if not self._batch_update:
                raise _Errno(ENOTSUPP)
            if flags & ~BPF_F_LOCK:
                raise _Errno(_errno.EINVAL, f"elem_flags {flags:#x}")
            self._check_lock_flag(flags)
            for k, v in zip(ks, vs):
                self._sys_update(k, v, flags)
                done += 1
            return done

        try:
            return self._run("update_batch", None, run)
        except MapError as e:
            e.processed = done  # type: ignore[attr-defined]
            raise

    def delete_batch(self, keys: Iterable[Any], *, flags: int = 0) -> int:
        """BPF_MAP_DELETE_BATCH: delete each key in turn, stopping at the first failure
        (raised with ``processed`` set)."""
        ks = [self._key(k) for k in keys]
        done = 0

        def run() -> int:
            nonlocal done
            self._check_write()
            if not self._batch_delete:
                raise _Errno(ENOTSUPP)
            if flags & ~BPF_F_LOCK:
                raise _Errno(_errno.EINVAL, f"elem_flags {flags:#x}")
            for k in ks:
                self._sys_delete(k)
                done += 1
            return done

        try:
            return self._run("delete_batch", None, run)
        except MapError as e:
            e.processed = done  # type: ignore[attr-defined]
            raise

    def _generic_lookup_batch(self, count: int, in_batch: bytes | None, flags: int) -> BatchResult:
        """generic_map_lookup_batch: walk with get_next_key from ``in_batch``."""
        if count == 0:
            return BatchResult([], in_batch if in_batch is not None else bytes(self.key_size))
        prev = None if in_batch is None else bytes(in_batch[: self.key_size])
        out: list[tuple[bytes, Any]] = []
        while len(out) < count:
            try:
                key = self._next_key(prev)
            except _Errno as e:
                if e.err == _errno.ENOENT:
                    return BatchResult(out, None)
                raise
            try:
                value = self._sys_lookup(key, flags)
            except _Errno as e:
                if e.err == _errno.ENOENT:  # raced away; the kernel retries, then EINTR
                    prev = key
                    continue
                raise
            out.append((key, value))
            prev = key
        assert prev is not None
        return BatchResult(out, prev)

    def _htab_lookup_batch(
        self, count: int, in_batch: bytes | None, flags: int, delete: bool
    ) -> BatchResult:  # pragma: no cover - overridden by the hash types
        raise _Errno(ENOTSUPP)

    # -- freezing and mmap
    def freeze(self) -> None:
        """BPF_MAP_FREEZE: user space may no longer write (programs still may, unless
        the map is BPF_F_RDONLY_PROG)."""

        def run() -> None:
            if self.spin_lock_off is not None:
                raise _Errno(ENOTSUPP, "maps with a bpf_spin_lock cannot be frozen")
            self._check_write()
            if self._mmap_writers:
                raise _Errno(_errno.EBUSY, "the map has a writable memory mapping")
            self.frozen = True

        self._run("freeze", None, run)

    # -- queue / stack / ring buffer defaults
    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        """Queue/stack push (BPF_MAP_UPDATE_ELEM without a key)."""
        raise self._fail(_Errno(_errno.EINVAL, "push is for QUEUE and STACK maps"), "push")

    def pop(self) -> bytes:
        raise self._fail(_Errno(_errno.EINVAL, "pop is for QUEUE and STACK maps"), "pop")

    def peek(self) -> bytes:
        raise self._fail(_Errno(_errno.EINVAL, "peek is for QUEUE and STACK maps"), "peek")

    # -- information
    def info(self) -> MapInfo:
        return MapInfo(
            type=int(self.type),
            id=self.id,
            key_size=self.key_size,
            value_size=self.value_size,
            max_entries=self.max_entries,
            map_flags=self.flags,
            name=self.name,
            btf_key_type_id=self.spec.btf_key_type_id,
            btf_value_type_id=self.spec.btf_value_type_id,
            map_extra=self.spec.map_extra,
        )

    def memory_usage(self) -> int:
        """Bytes of storage the simulator holds for this map's elements (bpftool's
        ``memlock`` for the kernel's)."""
        return 0

    # -- address space
    def attach(self, mem: AddressSpace) -> None:
        """Map this map's value regions into ``mem`` (once; a map lives in one address
        space, so its value addresses never change)."""
        if self._mem is mem:
            return
        if self._mem is not None:
            raise MapError(
                f"{self._what()}: already attached to another address space", errno=_errno.EBUSY
            )
        self._mem = mem
        self._attach(mem)

    def _attach(self, mem: AddressSpace) -> None:
        pass

    def detach(self) -> None:
        if self._mem is not None:
            self._detach()
            if self._handle is not None:
                self._mem.unmap(self._handle)
                self._handle = None
        self._mem = None

    def _detach(self) -> None:
        pass

    def _on_table(self, table: MapTable) -> None:
        """Hook: called when a MapTable registers this map (maps of maps register their
        inner maps in the same table)."""

    @property
    def pointer(self) -> int:
        """The CONST_PTR_TO_MAP value programs use for this map (0 until a
        :class:`MapTable` registered it)."""
        return self._handle.base if self._handle is not None else 0

    # -- program side (helpers) ------------------------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        """bpf_map_lookup_elem from a program: the value's address, 0 when absent."""
        raise MapError(
            f"{self._what()}: the verifier refuses bpf_map_lookup_elem on this map type",
            errno=_errno.EINVAL,
        )

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        """bpf_map_update_elem from a program: 0 or -errno."""
        raise MapError(
            f"{self._what()}: the verifier refuses bpf_map_update_elem on this map type",
            errno=_errno.EINVAL,
        )

    def prog_delete(self, key: bytes, cpu: int) -> int:
        """bpf_map_delete_elem from a program: 0 or -errno."""
        raise MapError(
            f"{self._what()}: the verifier refuses bpf_map_delete_elem on this map type",
            errno=_errno.EINVAL,
        )

    def _check_prog_write(self, helper: str) -> None:
        if self.flags & BPF_F_RDONLY_PROG:
            raise MapError(
                f"{self._what()}: the verifier refuses {helper} on a BPF_F_RDONLY_PROG map",
                errno=_errno.EACCES,
            )

    # -- per-type hooks --------------------------------------------------------------------
    def _user_value(self, value: Any) -> Any:
        return self._value(value)

    def _sys_lookup(self, key: bytes | None, flags: int) -> Value:
        raise _Errno(ENOTSUPP)

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        raise _Errno(ENOTSUPP)

    def _sys_delete(self, key: bytes) -> None:
        raise _Errno(ENOTSUPP)

    def _sys_lookup_and_delete(self, key: bytes | None, flags: int) -> Value:
        raise _Errno(ENOTSUPP)

    def _next_key(self, key: bytes | None) -> bytes:
        raise _Errno(ENOTSUPP)

    def _count(self) -> int:
        return 0

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self.type.name} key={self.key_size} "
            f"value={self.value_size} max_entries={self.max_entries} id={self.id}>"
        )


class MapTable:
    """address -> Map for one address space: how a backend gives maps their
    CONST_PTR_TO_MAP values.

    ``add(map)`` attaches the map's value regions to the table's address space and maps
    a small :class:`MapHandleRegion` whose base address is the map's pointer (unique per
    map, stable for the table's life).  The loader patches that address into LD_IMM64
    BPF_PSEUDO_MAP_FD; helpers find the map again from it."""

    def __init__(self, mem: AddressSpace) -> None:
        self.mem = mem
        self._by_addr: dict[int, Map] = {}

    def add(self, m: Map) -> int:
        """Register ``m`` (idempotent); returns its map pointer."""
        if m._handle is not None and m._mem is self.mem:
            return m._handle.base
        m.attach(self.mem)
        handle = MapHandleRegion(m)
        self.mem.map(handle)
        m._handle = handle
        self._by_addr[handle.base] = m
        m._on_table(self)
        return handle.base

    def address(self, m: Map) -> int:
        """The pointer of a registered map."""
        if m._handle is None or self._by_addr.get(m._handle.base) is not m:
            raise MapError(f"{m._what()} is not in this map table", errno=_errno.ENOENT)
        return m._handle.base

    def resolve(self, addr: int) -> Map:
        """The map whose pointer is ``addr``."""
        m = self._by_addr.get(addr & 0xFFFFFFFFFFFFFFFF)
        if m is None:
            raise MapError(f"{addr:#x} is not a map pointer of this table", errno=_errno.EINVAL)
        return m

    def remove(self, m: Map) -> None:
        """Forget ``m`` and unmap its regions (its pointers become faults)."""
        if m._handle is not None:
            self._by_addr.pop(m._handle.base, None)
        m.detach()

    def __contains__(self, m: object) -> bool:
        return isinstance(m, Map) and m._handle is not None and m._handle.base in self._by_addr

    def __iter__(self) -> Iterator[Map]:
        return iter(list(self._by_addr.values()))

    def __len__(self) -> int:
        return len(self._by_addr)
