"""BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY.

Kernel semantics modelled (kernel/bpf/arraymap.c, checked against the running kernel
by tests/test_maps_kernel.py):

- key is a u32 index (key_size must be 4), every index in ``[0, max_entries)`` exists
  and starts zeroed; values are ``round_up(value_size, 8)`` apart.
- update: flags other than BPF_ANY/NOEXIST/EXIST (| BPF_F_LOCK on plain arrays) ->
  EINVAL, index out of range -> E2BIG, BPF_NOEXIST -> EEXIST (every element exists).
- delete -> EINVAL; lookup out of range -> ENOENT; get_next_key(None or out of range)
  -> 0, from the last index -> ENOENT.
- batch lookup and update (generic), no lookup_and_delete / delete batches (ENOTSUPP).
- BPF_F_MMAPABLE (plain arrays): :meth:`ArrayMap.mmap` exposes the value memory as a
  memoryview shared with programs (page-aligned, like the kernel's vmalloc area).
- BPF_F_RDONLY_PROG makes the value regions read-only for programs (stores fault);
  that is how ``.rodata`` works together with :meth:`~netbpf.maps.Map.freeze`.
- programs: lookup returns the element's address (this CPU's copy for per-CPU arrays),
  update from a program writes only this CPU's copy of a per-CPU array.
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from netbpf.maps.base import Map, ValueStore, _Errno, round_up
from netbpf.maps.constants import (
    BPF_EXIST,
    BPF_F_ACCESS_MASK,
    BPF_F_INNER_MAP,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NUMA_NODE,
    BPF_F_PRESERVE_ELEMS,
    BPF_F_RDONLY_PROG,
    BPF_NOEXIST,
    PAGE_SIZE,
    PCPU_MIN_UNIT_SIZE,
    U32_MAX,
)
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType
from netbpf.vm.memory import AddressSpace

__all__ = ["ArrayMap", "PercpuArrayMap", "array_next_key", "check_array_spec"]

ARRAY_CREATE_FLAG_MASK = (
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP
)
INT_MAX = (1 << 31) - 1


def check_array_spec(spec: MapSpec, *, percpu: bool = False) -> None:
    """array_map_alloc_check (shared by the fd arrays, which call it too)."""
    if (
        spec.max_entries == 0
        or spec.key_size != 4
        or spec.value_size == 0
        or spec.flags & ~ARRAY_CREATE_FLAG_MASK
        or not Map.access_ok(spec.flags)
        or (percpu and spec.flags & BPF_F_NUMA_NODE)
    ):
        raise _Errno(
            _errno.EINVAL,
            "arrays need key_size 4, value_size > 0, max_entries > 0 and array flags",
        )
    if spec.type != MapType.ARRAY and spec.flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP):
        raise _Errno(_errno.EINVAL, "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for ARRAY maps")
    if spec.type != MapType.PERF_EVENT_ARRAY and spec.flags & BPF_F_PRESERVE_ELEMS:
        raise _Errno(_errno.EINVAL, "BPF_F_PRESERVE_ELEMS is for PERF_EVENT_ARRAY maps")
    if spec.value_size > INT_MAX:
        raise _Errno(_errno.E2BIG, "value_size too large")
    if percpu and round_up(spec.value_size, 8) > PCPU_MIN_UNIT_SIZE:
        raise _Errno(_errno.E2BIG, f"per-CPU values are at most {PCPU_MIN_UNIT_SIZE} bytes")


def array_next_key(key: bytes | None, max_entries: int) -> bytes:
    """array_map_get_next_key: None or an out-of-range index restarts at 0."""
    index = U32_MAX if key is None else int.from_bytes(key[:4], "little")
    if index >= max_entries:
        return bytes(4)
    if index == max_entries - 1:
        raise _Errno(_errno.ENOENT, "no key after the last index")
    return (index + 1).to_bytes(4, "little")


class ArrayMap(Map):
    """BPF_MAP_TYPE_ARRAY."""

    map_type = MapType.ARRAY
    _batch_lookup = "generic"
    _batch_update = True

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        check_array_spec(spec, percpu=cls.percpu)

    def __init__(self, spec: MapSpec, *, ncpus: int) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.values_store = ValueStore(
            f"map {self.name!r}",
            self.value_size,
            self.max_entries,
            copies=ncpus if self.percpu else 1,
            writable=not self.flags & BPF_F_RDONLY_PROG,
            page_align=bool(self.flags & BPF_F_MMAPABLE),
        )

    # -- helpers
    def _index(self, key: bytes) -> int:
        return int.from_bytes(key, "little")

    def _read(self, i: int) -> Any:
        st = self.values_store
        if self.percpu:
            return [st.get_long(i, c) for c in range(self.ncpus)]
        return self._mask_lock(st.get(i))

    # -- user space
    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        i = self._index(key)
        if i >= self.max_entries:
            raise _Errno(_errno.ENOENT, f"index {i} out of range (max_entries {self.max_entries})")
        return self._read(i)

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        self._do_update(self._index(key), value, flags, cpu=None)

    def _do_update(self, i: int, value: Any, flags: int, *, cpu: int | None) -> None:
        st = self.values_store
        if self.percpu:
            if flags > BPF_EXIST:
                raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        elif flags & ~BPF_F_LOCK > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        if i >= self.max_entries:
            raise _Errno(_errno.E2BIG, f"index {i} out of range (max_entries {self.max_entries})")
        if flags & BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "every array element exists (BPF_NOEXIST)")
        if flags & BPF_F_LOCK and self.spin_lock_off is None:
            raise _Errno(_errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock")
        if self.percpu:
            if cpu is None:
                for c, v in enumerate(value):
                    st.set_long(i, v, c)
            else:
                st.set(i, value, cpu)
        else:
            st.set(i, self._merge_lock(st.get(i), value))

    def _sys_delete(self, key: bytes) -> None:
        raise _Errno(_errno.EINVAL, "array elements cannot be deleted")

    def _next_key(self, key: bytes | None) -> bytes:
        return array_next_key(key, self.max_entries)

    def _count(self) -> int:
        return self.max_entries

    # -- memory
    def _attach(self, mem: AddressSpace) -> None:
        self.values_store.attach(mem)

    def _detach(self) -> None:
        self.values_store.detach()

    def value_address(self, index: int = 0, cpu: int = 0) -> int:
        """The address programs see for element ``index`` (what BPF_PSEUDO_MAP_VALUE
        relocations of global data resolve to); 0 until attached."""
        if not 0 <= index < self.max_entries:
            raise self._fail(_Errno(_errno.E2BIG, f"index {index} out of range"), "value_address")
        return self.values_store.address(index, cpu)

    def memory_usage(self) -> int:
        return self.values_store.nbytes()

    def mmap(self, *, writable: bool = True) -> memoryview:
        """The value memory of a BPF_F_MMAPABLE array, shared with programs (what
        ``mmap()`` of the map fd gives).  Writable mappings are refused on frozen (EPERM)
        and BPF_F_RDONLY_PROG (EACCES) maps, and block :meth:`freeze` (EBUSY) until
        :meth:`munmap`."""

        def run() -> memoryview:
            if not self.flags & BPF_F_MMAPABLE:
                raise _Errno(_errno.EINVAL, "the map was not created BPF_F_MMAPABLE")
            if writable:
                if self.frozen:
                    raise _Errno(_errno.EPERM, "the map is frozen")
                if self.flags & BPF_F_RDONLY_PROG:
                    raise _Errno(_errno.EACCES, "BPF_F_RDONLY_PROG maps map read-only")
                self._mmap_writers += 1
            buf, _ = self.values_store.buf(0)
            view = memoryview(buf)
            assert len(buf) % PAGE_SIZE == 0
            return view if writable else view.toreadonly()

        return self._run("mmap", None, run)

    def munmap(self, view: memoryview) -> None:
        """Release a mapping from :meth:`mmap`."""
        if not view.readonly and self._mmap_writers:
            self._mmap_writers -= 1
        view.release()

    # -- programs
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        i = int.from_bytes(key, "little")
        if i >= self.max_entries:
            return 0
        return self.values_store.address(i, cpu if self.percpu else 0)

    def prog_lookup_percpu(self, key: bytes, cpu: int) -> int:
        if not self.percpu:
            return super().prog_lookup(key, cpu)
        i = int.from_bytes(key, "little")
        if i >= self.max_entries or cpu >= self.ncpus:
            return 0
        return self.values_store.address(i, cpu)

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        self._check_prog_write("bpf_map_update_elem")
        try:
            self._do_update(
                int.from_bytes(key, "little"), value, flags, cpu=cpu if self.percpu else None
            )
        except _Errno as e:
            return -e.err
        return 0

    def prog_delete(self, key: bytes, cpu: int) -> int:
        self._check_prog_write("bpf_map_delete_elem")
        return -_errno.EINVAL


class PercpuArrayMap(ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: one value per possible CPU per index."""

    map_type = MapType.PERCPU_ARRAY
    percpu = True
