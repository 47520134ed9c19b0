"""The seam between the object model and where programs run.

``SimBackend`` (the simulator) and ``KernelBackend`` (the running kernel, through
``bpf()``) implement the same protocol, so a behaviour test is written once and run on
both (httpx's transport seam, cilium/ebpf's Collection API).
"""

from __future__ import annotations

import errno as _errno
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

from netbpf.errors import MapError, MapKeyNotFoundError
from netbpf.obj.spec import ProgramSpec
from netbpf.uapi import MapType

__all__ = ["Backend", "Map", "MapHandle", "MapInfo", "Program", "TestRunResult"]


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returns: the program's return value, the packet after the
    run, the context after the run (None when the type has no ctx_out), and the mean
    duration of one run in nanoseconds."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes
    ctx_out: bytes | None
    duration_ns: int


@dataclass(frozen=True)
class MapInfo:
    """What BPF_OBJ_GET_INFO_BY_FD reports for a map (``struct bpf_map_info``): the
    same record from ``info()`` on both backends (the kernel's from bpf(), the
    simulator's from its map)."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    map_extra: int = 0


@runtime_checkable
class Program(Protocol):
    """A loaded program.  ``verified_insns`` is what the verifier processed to accept
    it (the kernel's ``bpf_prog_info.verified_insns``; None in the simulator when
    loaded with ``unsafe_skip_verifier``), ``verifier_log`` the log of the load at the
    log level the load asked for (empty at level 0)."""

    name: str

    @property
    def verified_insns(self) -> int | None: ...

    @property
    def verifier_log(self) -> str: ...

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> TestRunResult: ...

    def close(self) -> None: ...


@runtime_checkable
class Map(Protocol):
    """A live map with raw-bytes element operations, the same on both backends
    (:class:`netbpf.kernel.KernelMap`, the simulator's maps).

    Keys and values are ``bytes`` of exactly ``key_size`` / ``value_size_raw``.  A
    per-CPU map (PERCPU_ARRAY, PERCPU_HASH, LRU_PERCPU_HASH) moves every CPU's value at
    once, as ``bpf()`` does: ``round_up(value_size, 8) * ncpus`` bytes, CPU 0 first,
    so ``value_size_raw`` is that size (``value_size`` otherwise).  ``flags`` are the
    kernel's BPF_ANY (0) / BPF_NOEXIST (1) / BPF_EXIST (2) / BPF_F_LOCK (4).  Failures
    are the typed map errors with the kernel's errno: MapKeyNotFoundError (ENOENT, a
    KeyError), MapKeyExistsError (EEXIST), MapFullError (E2BIG), MapError otherwise.

    Typed (BTF-decoded) access wraps one of these:
    :class:`netbpf.obj.btf_values.TypedMap`, or ``Collection.typed_map(name)``.
    ``len()`` is not part of the contract (the kernel has no element count).
    """

    name: str
    map_type: MapType
    key_size: int
    value_size: int
    value_size_raw: int
    max_entries: int
    flags: int

    @property
    def closed(self) -> bool: ...

    def lookup(self, key: bytes, *, flags: int = 0) -> bytes: ...

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None: ...

    def update(self, key: bytes, value: bytes, *, flags: int = 0) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def lookup_and_delete(self, key: bytes, *, flags: int = 0) -> bytes: ...

    def next_key(self, key: bytes | None = None) -> bytes | None: ...

    def keys(self) -> Iterator[bytes]: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def __contains__(self, key: object) -> bool: ...

    def __getitem__(self, key: bytes) -> bytes: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...

    def push(self, value: bytes, *, flags: int = 0) -> None: ...

    def pop(self) -> bytes: ...

    def peek(self) -> bytes: ...

    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]: ...

    def update_batch(self, items: Iterable[tuple[bytes, bytes]], *, flags: int = 0) -> None: ...

    def delete_batch(self, keys: Iterable[bytes]) -> None: ...

    def freeze(self) -> None: ...

    def close(self) -> None: ...


class MapHandle(ABC):
    """The :class:`Map` protocol's user-space conventions, written once for both
    backends (:class:`netbpf.kernel.KernelMap`, :class:`netbpf.sim.SimMapHandle`), so
    the two cannot drift apart.

    Here: the argument checks (keys of exactly ``key_size``, values of exactly
    ``value_size_raw`` -- else MapError(EINVAL) before the map is touched, as the
    kernel reads that many bytes from whatever buffer it is given), keyword-only
    ``flags``, empty batches that do nothing, and every operation made of others
    (``get``, ``keys``, ``items``, the mapping dunders, ``with``, ``repr``).

    A backend sets the attributes below and implements the primitives (``_lookup``,
    ``_update``, ... given checked bytes, raising the typed map errors with the
    kernel's errno) and ``fd``, ``closed``, ``lookup_batch``, ``freeze``, ``info``,
    ``pin``, ``close``."""

    name: str
    map_type: MapType
    key_size: int
    value_size: int
    value_size_raw: int
    max_entries: int
    flags: int
    #: per-CPU map: a value is every CPU's value, ``value_size_raw`` bytes in all
    _percpu: bool

    # -- what a backend provides ----------------------------------------------------------
    @property
    @abstractmethod
    def fd(self) -> int: ...

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    @abstractmethod
    def _lookup(self, key: bytes, flags: int) -> bytes: ...

    @abstractmethod
    def _update(self, key: bytes, value: bytes, flags: int) -> None: ...

    @abstractmethod
    def _delete(self, key: bytes) -> None: ...

    @abstractmethod
    def _lookup_and_delete(self, key: bytes, flags: int) -> bytes: ...

    @abstractmethod
    def _next_key(self, key: bytes | None) -> bytes | None: ...

    @abstractmethod
    def _push(self, value: bytes, flags: int) -> None: ...

    @abstractmethod
    def _pop(self) -> bytes: ...

    @abstractmethod
    def _peek(self) -> bytes: ...

    @abstractmethod
    def _update_batch(self, pairs: list[tuple[bytes, bytes]], flags: int) -> None: ...

    @abstractmethod
    def _delete_batch(self, keys: list[bytes]) -> None: ...

    @abstractmethod
    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]:
        """All entries through BPF_MAP_LOOKUP(_AND_DELETE)_BATCH, ``count`` at a time."""

    @abstractmethod
    def freeze(self) -> None:
        """No more writes from user space (programs may still write unless the map was
        created with BPF_F_RDONLY_PROG)."""

    @abstractmethod
    def close(self) -> None: ...

    # -- checks -----------------------------------------------------------------------------
    def _what(self) -> str:
        return (
            f"{self.map_type.name} map '{self.name}'" if self.name else f"{self.map_type.name} map"
        )

    def _key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.key_size:
            raise MapError(
                f"{self._what()}: key is {len(key)} bytes, the map's key_size is {self.key_size}",
                errno=_errno.EINVAL,
            )
        return key

    def _value(self, value: bytes) -> bytes:
        value = bytes(value)
        if len(value) != self.value_size_raw:
            what = "per-CPU value (all CPUs)" if self._percpu else "value"
            raise MapError(
                f"{self._what()}: {what} is {len(value)} bytes, expected {self.value_size_raw}",
                errno=_errno.EINVAL,
            )
        return value

    # -- element operations ---------------------------------------------------------------
    def lookup(self, key: bytes, *, flags: int = 0) -> bytes:
        return self._lookup(self._key(key), flags)

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        try:
            return self.lookup(key)
        except MapKeyNotFoundError:
            return default

    def update(self, key: bytes, value: bytes, *, flags: int = 0) -> None:
        key, value = self._key(key), self._value(value)
        self._update(key, value, flags)

    def delete(self, key: bytes) -> None:
        self._delete(self._key(key))

    def lookup_and_delete(self, key: bytes, *, flags: int = 0) -> bytes:
        return self._lookup_and_delete(self._key(key), flags)

    def next_key(self, key: bytes | None = None) -> bytes | None:
        """The key after ``key`` in the map's order (None: the first), or None."""
        return self._next_key(None if key is None else self._key(key))

    def keys(self) -> Iterator[bytes]:
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs; a key deleted while iterating is skipped."""
        for key in self.keys():
            value = self.get(key)
            if value is not None:
                yield key, value

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes | bytearray) and self.get(bytes(key)) is not None

    def __getitem__(self, key: bytes) -> bytes:
        return self.lookup(key)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.update(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.delete(key)

    # -- queue / stack (no key) -------------------------------------------------------------
    def push(self, value: bytes, *, flags: int = 0) -> None:
        """Queue/stack push (BPF_EXIST as flags overwrites the oldest when full)."""
        self._push(self._value(value), flags)

    def pop(self) -> bytes:
        return self._pop()

    def peek(self) -> bytes:
        return self._peek()

    # -- batches ----------------------------------------------------------------------------
    def update_batch(self, items: Iterable[tuple[bytes, bytes]], *, flags: int = 0) -> None:
        pairs = [(self._key(k), self._value(v)) for k, v in items]
        if pairs:
            self._update_batch(pairs, flags)

    def delete_batch(self, keys: Iterable[bytes]) -> None:
        ks = [self._key(k) for k in keys]
        if ks:
            self._delete_batch(ks)

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return (
            f"<{type(self).__name__} {self.name!r} {self.map_type.name} key={self.key_size} "
            f"value={self.value_size} max_entries={self.max_entries} {state}>"
        )


@runtime_checkable
class Backend(Protocol):
    """Turns specs into live objects."""

    name: str

    def load_program(self, spec: ProgramSpec) -> Program: ...
