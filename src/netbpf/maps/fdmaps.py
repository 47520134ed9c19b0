"""Maps whose values name other objects: PROG_ARRAY, ARRAY_OF_MAPS, HASH_OF_MAPS.

User space stores an object and reads back its id, as with the kernel's fds and ids:

- **PROG_ARRAY** (kernel/bpf/arraymap.c, fd arrays): ``update(i, prog)`` stores a program
  (an object with ``prog_type``, or an fd known to the map's :class:`Resolver`); flags
  must be BPF_ANY (EINVAL), index out of range -> E2BIG, an fd that names nothing ->
  EBADF, not a program -> EINVAL, a program of another type than the array's owner ->
  EINVAL (the first program stored, or :meth:`ProgArrayMap.set_owner`, decides).  lookup
  returns the program's id (u32), delete of an empty slot -> ENOENT, out of range ->
  E2BIG.  No batches, no program-side lookup: programs reach it through
  ``bpf_tail_call``.
- **ARRAY_OF_MAPS / HASH_OF_MAPS** (kernel/bpf/map_in_map.c): creation needs the inner
  map template (``spec.inner_map``): none -> EINVAL, a map-in-map -> EINVAL, a
  PROG_ARRAY -> ENOTSUPP.  An inner map must match the template's type, key size, value
  size and flags (and max_entries for arrays, unless the template has BPF_F_INNER_MAP),
  else EINVAL.  User-space lookup returns the inner map's id; a program's lookup
  returns the inner map's CONST_PTR_TO_MAP (the map must be registered in the same
  :class:`~netbpf.maps.MapTable` as the outer one, which happens automatically).
  ARRAY_OF_MAPS updates take BPF_ANY only; HASH_OF_MAPS follows the hash rules.
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from netbpf.errors import MapError
from netbpf.maps.array import array_next_key, check_array_spec
from netbpf.maps.base import Map, MapTable, _Errno
from netbpf.maps.constants import (
    BPF_ANY,
    BPF_F_INNER_MAP,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY_PROG,
    ENOTSUPP,
)
from netbpf.maps.handles import Resolver, object_id
from netbpf.maps.hash import HashMap
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType

__all__ = ["ArrayOfMapsMap", "FdArrayMap", "HashOfMapsMap", "ProgArrayMap", "check_inner_spec"]

_MAP_IN_MAP = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
_ARRAY_META = (MapType.ARRAY, MapType.PERCPU_ARRAY)


def check_fd_array_spec(spec: MapSpec) -> None:
    """fd_array_map_alloc_check."""
    if spec.value_size != 4:
        raise _Errno(_errno.EINVAL, "the value of an fd array is a u32 (value_size 4)")
    if spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG):
        raise _Errno(_errno.EINVAL, "BPF_F_RDONLY_PROG/WRONLY_PROG not supported here")
    check_array_spec(spec)


def check_inner_spec(spec: MapSpec, ncpus: int) -> None:
    """bpf_map_meta_alloc: the inner template must exist, be creatable, and not be a map
    of maps or a program array."""
    from netbpf.maps.factory import map_class

    inner = spec.inner_map
    if inner is None:
        raise _Errno(_errno.EINVAL, "a map of maps needs an inner map template")
    cls = map_class(inner)
    Map.check_common(inner)
    cls.validate(inner, ncpus)  # type: ignore[attr-defined]
    if inner.type in _MAP_IN_MAP:
        raise _Errno(_errno.EINVAL, "maps of maps cannot be nested")
    if inner.type == MapType.PROG_ARRAY:
        raise _Errno(ENOTSUPP, "a PROG_ARRAY cannot be an inner map")


def _template(spec: MapSpec, ncpus: int) -> tuple[Any, ...]:
    from netbpf.maps.factory import map_class

    inner = spec.inner_map
    assert inner is not None
    max_entries, flags = map_class(inner).created_params(inner, ncpus)
    return (inner.type, inner.key_size, inner.value_size, flags, max_entries, inner.spin_lock_off)


def _inner_compatible(tmpl: tuple[Any, ...], m: Map) -> bool:
    """bpf_map_meta_equal / array_map_meta_equal."""
    mtype, ks, vs, flags, max_entries, lock = tmpl
    if (m.type, m.key_size, m.value_size, m.flags, m.spin_lock_off) != (mtype, ks, vs, flags, lock):
        return False
    if mtype in _ARRAY_META and not flags & BPF_F_INNER_MAP:
        return m.max_entries == max_entries
    return True


class FdArrayMap(Map):
    """An array of object references (the kernel's fd arrays)."""

    _batch_lookup: str | None = None

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        check_fd_array_spec(spec)

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.resolver = resolver or Resolver()
        self.entries: list[Any] = [None] * self.max_entries

    def _user_value(self, value: Any) -> Any:
        return value  # resolved (and checked) by _resolve, in the kernel's order

    def _fd_of(self, value: Any) -> int | None:
        """An integer-ish value (int or the u32 bytes) as an fd, else None."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, bytes | bytearray | memoryview) and len(value) == 4:
            return int.from_bytes(bytes(value), "little")
        return None

    def _lookup_fd(self, value: Any) -> Any:
        fd = self._fd_of(value)
        if fd is None:
            return value
        obj = self.resolver.fd(fd)
        if obj is None:
            raise _Errno(_errno.EBADF, f"fd {fd} names nothing")
        return obj

    def _resolve(self, value: Any) -> Any:  # pragma: no cover - per type
        raise NotImplementedError

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        if flags != BPF_ANY:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x} (fd arrays take BPF_ANY only)")
        i = self._index(key)
        if i >= self.max_entries:
            raise _Errno(_errno.E2BIG, f"index {i} out of range (max_entries {self.max_entries})")
        obj = self._resolve(value)
        self.entries[i] = obj
        self._stored(obj)

    def _stored(self, obj: Any) -> None:
        pass

    def _sys_delete(self, key: bytes) -> None:
        i = self._index(key)
        if i >= self.max_entries:
            raise _Errno(_errno.E2BIG, f"index {i} out of range (max_entries {self.max_entries})")
        if self.entries[i] is None:
            raise _Errno(_errno.ENOENT, f"slot {i} is empty")
        self.entries[i] = None

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        i = self._index(key)
        if i >= self.max_entries or self.entries[i] is None:
            raise _Errno(_errno.ENOENT, f"slot {i} is empty")
        return object_id(self.entries[i]).to_bytes(4, "little")

    def _next_key(self, key: bytes | None) -> bytes:
        return array_next_key(key, self.max_entries)

    def _count(self) -> int:
        return sum(1 for e in self.entries if e is not None)

    def get_object(self, index: int) -> Any:
        """The object stored at ``index`` (None when empty or out of range)."""
        if 0 <= index < self.max_entries:
            return self.entries[index]
        return None


class ProgArrayMap(FdArrayMap):
    """BPF_MAP_TYPE_PROG_ARRAY: the targets of ``bpf_tail_call``."""

    map_type = MapType.PROG_ARRAY

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        #: the program type every program in the array must have (None until decided)
        self.owner_type: Any = None

    def set_owner(self, prog_type: Any) -> None:
        """Claim the array for programs of ``prog_type`` (what loading a program that
        tail-calls through the map does in the kernel)."""
        if self.owner_type is None:
            self.owner_type = prog_type

    def _resolve(self, value: Any) -> Any:
        prog = self._lookup_fd(value)
        ptype = getattr(prog, "prog_type", None)
        if ptype is None or isinstance(prog, Map):
            raise _Errno(_errno.EINVAL, "not a program")
        if self.owner_type is not None and ptype != self.owner_type:
            raise _Errno(
                _errno.EINVAL,
                f"program type {getattr(ptype, 'name', ptype)} differs from the array's "
                f"{getattr(self.owner_type, 'name', self.owner_type)}",
            )
        return prog

    def _stored(self, obj: Any) -> None:
        self.set_owner(obj.prog_type)

    def prog_at(self, index: int) -> Any:
        """The program a tail call with ``index`` jumps to, None when there is none."""
        return self.get_object(index)


class ArrayOfMapsMap(FdArrayMap):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS."""

    map_type = MapType.ARRAY_OF_MAPS
    _batch_lookup = "generic"
    _batch_update = True

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        check_fd_array_spec(spec)
        check_inner_spec(spec, ncpus)

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self._tmpl = _template(spec, ncpus)
        self._table: MapTable | None = None

    def _resolve(self, value: Any) -> Any:
        return _resolve_inner(self, value)

    def _stored(self, obj: Any) -> None:
        if self._table is not None:
            self._table.add(obj)

    def _on_table(self, table: MapTable) -> None:
        self._table = table
        for m in self.entries:
            if m is not None:
                table.add(m)

    def inner(self, key: Any) -> Map | None:
        """The inner map at ``key`` (None when empty)."""
        i = int.from_bytes(self._key(key), "little")
        return self.get_object(i)

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        i = int.from_bytes(key, "little")
        m = self.get_object(i)
        return 0 if m is None else _inner_pointer(self, m)


def _resolve_inner(outer: Any, value: Any) -> Map:
    m = outer._lookup_fd(value)
    if not isinstance(m, Map):
        raise _Errno(_errno.EINVAL, "not a map")
    if not _inner_compatible(outer._tmpl, m):
        raise _Errno(_errno.EINVAL, f"inner map {m.name!r} does not match the template")
    return m


def _inner_pointer(outer: Map, m: Map) -> int:
    if m.pointer == 0:
        raise MapError(
            f"{outer._what()}: inner map {m.name!r} is not registered in a map table",
            errno=_errno.EINVAL,
        )
    return m.pointer


class HashOfMapsMap(HashMap):
    """BPF_MAP_TYPE_HASH_OF_MAPS: a hash map whose values are inner maps."""

    map_type = MapType.HASH_OF_MAPS

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if spec.value_size != 4:
            raise _Errno(_errno.EINVAL, "the value of a map of maps is a u32 (value_size 4)")
        super().validate(spec, ncpus)
        check_inner_spec(spec, ncpus)

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.resolver = resolver or Resolver()
        self._tmpl = _template(spec, ncpus)
        self._objs: dict[int, Map] = {}
        self._table: MapTable | None = None

    _lookup_fd = FdArrayMap._lookup_fd
    _fd_of = FdArrayMap._fd_of

    def _user_value(self, value: Any) -> Any:
        return value

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        m = _resolve_inner(self, value)
        super()._sys_update(key, object_id(m).to_bytes(4, "little"), flags)
        assert key is not None
        self._objs[self.table.find(key)] = m
        if self._table is not None:
            self._table.add(m)

    def _on_table(self, table: MapTable) -> None:
        self._table = table
        for s in self.table.slots():
            table.add(self._objs[s])

    def _release(self, slot: int) -> None:
        self._objs.pop(slot, None)
        super()._release(slot)

    def inner(self, key: Any) -> Map | None:
        """The inner map at ``key`` (None when absent)."""
        s = self.table.find(self._key(key))
        return None if s < 0 else self._objs[s]

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        s = self.table.find(key)
        return 0 if s < 0 else _inner_pointer(self, self._objs[s])

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return Map.prog_update(self, key, value, flags, cpu)

    def prog_delete(self, key: bytes, cpu: int) -> int:
        return Map.prog_delete(self, key, cpu)
