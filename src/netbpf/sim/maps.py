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
  CPU 0 first) -- else MapError(EINVAL), as KernelMap checks before calling bpf()
  (both handles inherit these checks from :class:`netbpf.backend.MapHandle`).
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
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from netbpf.backend import MapHandle
from netbpf.errors import MapError
from netbpf.maps import Map as SimMap
from netbpf.maps import MapInfo
from netbpf.uapi import MapType

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.sim.backend import SimBackend

__all__ = ["SimMapHandle"]

_T = TypeVar("_T")


class SimMapHandle(MapHandle):
    """A user-space handle (an "fd") on a simulated map; see the module docstring.  The
    argument conventions and the derived operations are
    :class:`netbpf.backend.MapHandle`'s; here are the calls into the simulated map."""

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
        self._percpu = m.percpu
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

    @staticmethod
    def _bytes(value: Any) -> bytes:
        """A simulated map's value as bpf() returns it (per-CPU lists packed)."""
        if isinstance(value, list):
            return b"".join(bytes(v) + bytes(-len(v) % 8) for v in value)
        return bytes(value)

    def _call(self, op: str, fn: Callable[[SimMap], _T]) -> _T:
        return fn(self._live(op))

    # -- the simulated map's operations behind MapHandle's ------------------------------------
    def _lookup(self, key: bytes, flags: int) -> bytes:
        return self._bytes(self._call("lookup", lambda m: m.lookup(key, flags=flags)))

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        self._call("update", lambda m: m.update(key, value, flags))

    def _delete(self, key: bytes) -> None:
        self._call("delete", lambda m: m.delete(key))

    def _lookup_and_delete(self, key: bytes, flags: int) -> bytes:
        return self._bytes(
            self._call("lookup_and_delete", lambda m: m.lookup_and_delete(key, flags=flags))
        )

    def _next_key(self, key: bytes | None) -> bytes | None:
        return self._call("get_next_key", lambda m: m.get_next_key(key))

    def _push(self, value: bytes, flags: int) -> None:
        self._call("push", lambda m: m.push(value, flags))

    def _pop(self) -> bytes:
        return self._bytes(self._call("pop", lambda m: m.pop()))

    def _peek(self) -> bytes:
        return self._bytes(self._call("peek", lambda m: m.peek()))

    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]:
        """All entries through BPF_MAP_LOOKUP(_AND_DELETE)_BATCH, ``count`` at a time."""
        got = self._call(
            "lookup_batch", lambda m: m.lookup_batch(count=count, delete=delete, flags=flags)
        )
        return [(bytes(k), self._bytes(v)) for k, v in got]

    def _update_batch(self, pairs: list[tuple[bytes, bytes]], flags: int) -> None:
        self._call("update_batch", lambda m: m.update_batch(pairs, flags=flags))

    def _delete_batch(self, keys: list[bytes]) -> None:
        self._call("delete_batch", lambda m: m.delete_batch(keys))

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
