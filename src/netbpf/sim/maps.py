"""``SimMapHandle``: a simulator map behind the backend-neutral
:class:`netbpf.backend.Map` protocol, shaped exactly like :class:`netbpf.kernel.KernelMap`.

A :class:`~netbpf.collection.Collection` hands its users ``Map``\\ s; a test written
against them must pass unchanged on both backends.  The simulator's maps
(:mod:`netbpf.maps`) offer more (integer keys, per-CPU values as lists, batch step
results, ``len()``) and are shared objects, so this thin handle pins down the
kernel's conventions and adds the one thing a kernel fd has and a map object does not:
its own lifetime.

* Keys are ``bytes(key)`` of exactly ``key_size``, values of exactly
  ``value_size_raw`` (per-CPU maps: ``round_up(value_size, 8) * ncpus`` packed bytes,
  CPU 0 first) -- else MapError(EINVAL), as KernelMap checks before calling bpf().
* Results are ``bytes`` (per-CPU values packed), batches return lists and
  ``update_batch``/``delete_batch`` return None; ``flags`` are keyword-only.
* Errors are the typed map errors with the kernel's errno, raised by the simulated
  map (its messages name the map, the operation and the key).
* ``close()`` closes the *handle*, like closing an fd: further operations raise
  MapError(EBADF), while programs, maps of maps and pins holding the map keep using it.
* ``fd`` is a number in the backend's :class:`~netbpf.maps.Resolver`: write it as a
  u32 into a PROG_ARRAY or map-of-maps slot, as with the kernel.

``handle.map`` is the simulated map itself, for what only the simulator has (ring
buffer :meth:`~netbpf.maps.RingBufMap.consume`, perf buffers, ``len()``).
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from netbpf.errors import MapError, MapKeyNotFoundError
from netbpf.maps import Map as SimMap
from netbpf.maps import MapInfo
from netbpf.uapi import MapType

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.sim.backend import SimBackend

__all__ = ["SimMapHandle"]

_T = TypeVar("_T")


class SimMapHandle:
    """A user-space handle (an "fd") on a simulated map; see the module docstring."""

    def __init__(
        self,
        m: SimMap,
        backend: SimBackend,
        *,
        name: str | None = None,
        kernel_name: str | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.map = m
        self.name = m.name if name is None else name
        self.map_type: MapType = MapType(m.type)
        self.key_size = m.key_size
        self.value_size = m.value_size
        self.max_entries = m.max_entries
        self.flags = m.flags
        #: per-CPU maps: how many CPUs' values one user-space buffer holds
        self.ncpus = m.ncpus if m.percpu else 1
        self.value_size_raw = m.value_size_raw
        self._backend = backend
        self._kernel_name = kernel_name
        self._on_close = on_close
        self._fd = backend.resolver.add_fd(m)
        self._closed = False

    @property
    def fd(self) -> int:
        """The handle's number in the backend's resolver (-1 once closed)."""
        return -1 if self._closed else self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    # -- checks ---------------------------------------------------------------------------
    def _what(self) -> str:
        return f"{self.map_type.name} map '{self.name}'"

    def _live(self, op: str) -> SimMap:
        if self._closed:
            raise MapError(f"{self._what()}: {op}: the map is closed", errno=_errno.EBADF)
        return self.map

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
            what = "per-CPU value (all CPUs)" if self.map.percpu else "value"
            raise MapError(
                f"{self._what()}: {what} is {len(value)} bytes, expected {self.value_size_raw}",
                errno=_errno.EINVAL,
            )
        return value

    @staticmethod
    def _bytes(value: Any) -> bytes:
        """A simulated map's value as bpf() returns it (per-CPU lists packed)."""
        if isinstance(value, list):
            return b"".join(bytes(v) + bytes(-len(v) % 8) for v in value)
        return bytes(value)

    def _call(self, op: str, fn: Callable[[SimMap], _T]) -> _T:
        return fn(self._live(op))

    # -- element operations ---------------------------------------------------------------
    def lookup(self, key: bytes, *, flags: int = 0) -> bytes:
        key = self._key(key)
        return self._bytes(self._call("lookup", lambda m: m.lookup(key, flags=flags)))

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        try:
            return self.lookup(key)
        except MapKeyNotFoundError:
            return default

    def update(self, key: bytes, value: bytes, *, flags: int = 0) -> None:
        key, value = self._key(key), self._value(value)
        self._call("update", lambda m: m.update(key, value, flags))

    def delete(self, key: bytes) -> None:
        key = self._key(key)
        self._call("delete", lambda m: m.delete(key))

    def lookup_and_delete(self, key: bytes, *, flags: int = 0) -> bytes:
        key = self._key(key)
        return self._bytes(
            self._call("lookup_and_delete", lambda m: m.lookup_and_delete(key, flags=flags))
        )

    def next_key(self, key: bytes | None = None) -> bytes | None:
        """The key after ``key`` in the map's order (None: the first), or None."""
        if key is not None:
            key = self._key(key)
        return self._call("get_next_key", lambda m: m.get_next_key(key))

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
        value = self._value(value)
        self._call("push", lambda m: m.push(value, flags))

    def pop(self) -> bytes:
        return self._bytes(self._call("pop", lambda m: m.pop()))

    def peek(self) -> bytes:
        return self._bytes(self._call("peek", lambda m: m.peek()))

    # -- batches ----------------------------------------------------------------------------
    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]:
        """All entries through BPF_MAP_LOOKUP(_AND_DELETE)_BATCH, ``count`` at a time."""
        got = self._call(
            "lookup_batch", lambda m: m.lookup_batch(count=count, delete=delete, flags=flags)
        )
        return [(bytes(k), self._bytes(v)) for k, v in got]

    def update_batch(self, items: Iterable[tuple[bytes, bytes]], *, flags: int = 0) -> None:
        pairs = [(self._key(k), self._value(v)) for k, v in items]
        if not pairs:
            return
        self._call("update_batch", lambda m: m.update_batch(pairs, flags=flags))

    def delete_batch(self, keys: Iterable[bytes]) -> None:
        ks = [self._key(k) for k in keys]
        if not ks:
            return
        self._call("delete_batch", lambda m: m.delete_batch(ks))

    # -- whole map ----------------------------------------------------------------------------
    def freeze(self) -> None:
        """No more writes from user space (programs may still write unless the map was
        created with BPF_F_RDONLY_PROG)."""
        self._call("freeze", lambda m: m.freeze())

    def info(self) -> MapInfo:
        """What BPF_OBJ_GET_INFO_BY_FD reports: the simulator's map id, and the name
        the kernel would show (libbpf's ``<object>.bss`` for global data)."""
        info = self._call("info", lambda m: m.info())
        if self._kernel_name is not None:
            info = replace(info, name=self._kernel_name)
        return info

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map in the backend's :class:`~netbpf.maps.PinNamespace`."""
        m = self._live("pin")
        self._backend.pins.pin(os.fspath(path), m)

    def close(self) -> None:
        """Close this handle (idempotent); the map lives on while anything holds it."""
        if not self._closed:
            self._closed = True
            self._backend.resolver.close_fd(self._fd)
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> SimMapHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return (
            f"<SimMapHandle {self.name!r} {self.map_type.name} key={self.key_size} "
            f"value={self.value_size} max_entries={self.max_entries} {state}>"
        )
