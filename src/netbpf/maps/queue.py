"""BPF_MAP_TYPE_QUEUE and BPF_MAP_TYPE_STACK (kernel/bpf/queue_stack_maps.c).

No keys (key_size must be 0).  The kernel keeps ``max_entries + 1`` value slots in a
ring with head/tail indices; the simulator does the same, so "push with BPF_EXIST on a
full map overwrites the oldest element" (queue *and* stack) falls out exactly.

From user space: update without a key = push (BPF_ANY or BPF_EXIST; BPF_NOEXIST or other
flags -> EINVAL; full without BPF_EXIST -> E2BIG), lookup = peek, lookup_and_delete =
pop (flags must be 0), empty -> ENOENT; delete and get_next_key -> EINVAL; no batches
(ENOTSUPP).  Programs use bpf_map_push_elem / pop_elem / peek_elem, which copy values
(programs never get a pointer into the map).
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from netbpf.maps.base import MAX_SIM_ALLOC, Map, _Errno
from netbpf.maps.constants import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_ACCESS_MASK,
    BPF_F_NUMA_NODE,
    BPF_NOEXIST,
    KMALLOC_MAX_SIZE,
)
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType

__all__ = ["QueueMap", "StackMap"]

QUEUE_STACK_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK


class QueueMap(Map):
    """BPF_MAP_TYPE_QUEUE: first in, first out."""

    map_type = MapType.QUEUE
    _has_lookup_and_delete = True

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or spec.key_size != 0
            or spec.value_size == 0
            or spec.flags & ~QUEUE_STACK_CREATE_FLAG_MASK
            or not Map.access_ok(spec.flags)
        ):
            raise _Errno(
                _errno.EINVAL, "queues and stacks need key_size 0, value_size > 0, max_entries > 0"
            )
        if spec.value_size > KMALLOC_MAX_SIZE:
            raise _Errno(_errno.E2BIG, "value_size too large")
        if (spec.max_entries + 1) * spec.value_size > MAX_SIM_ALLOC:
            raise _Errno(_errno.ENOMEM, "too large for the simulator")

    def __init__(self, spec: MapSpec, *, ncpus: int) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.size = self.max_entries + 1
        self.elements = bytearray(self.size * self.value_size)
        self.head = 0
        self.tail = 0

    # -- ring state
    def _is_empty(self) -> bool:
        return self.head == self.tail

    def _is_full(self) -> bool:
        head = self.head + 1
        if head >= self.size:
            head = 0
        return head == self.tail

    def _count(self) -> int:
        return (self.head - self.tail) % self.size

    def _slot(self, i: int) -> bytes:
        vs = self.value_size
        return bytes(self.elements[i * vs : (i + 1) * vs])

    # -- the kernel's operations
    def _push(self, value: bytes, flags: int) -> None:
        if flags & BPF_NOEXIST or flags > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"push flags {flags:#x} (BPF_ANY or BPF_EXIST only)")
        if self._is_full():
            if not flags & BPF_EXIST:
                raise _Errno(_errno.E2BIG, f"full ({self.max_entries} elements)")
            self.tail += 1
            if self.tail >= self.size:
                self.tail = 0
        vs = self.value_size
        self.elements[self.head * vs : (self.head + 1) * vs] = value
        self.head += 1
        if self.head >= self.size:
            self.head = 0

    def _get(self, delete: bool) -> bytes:
        if self._is_empty():
            raise _Errno(_errno.ENOENT, "empty")
        value = self._slot(self.tail)
        if delete:
            self.tail += 1
            if self.tail >= self.size:
                self.tail = 0
        return value

    # -- user space
    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        return self._get(False)

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        self._push(value, flags)

    def _sys_lookup_and_delete(self, key: bytes | None, flags: int) -> Any:
        return self._get(True)

    def _check_lookup_and_delete_flags(self, flags: int) -> None:
        if flags:
            raise _Errno(_errno.EINVAL, "pop takes no flags")

    def _sys_delete(self, key: bytes) -> None:
        raise _Errno(_errno.EINVAL, "queues and stacks have no keys to delete")

    def _next_key(self, key: bytes | None) -> bytes:
        raise _Errno(_errno.EINVAL, "queues and stacks have no keys")

    def _key(self, key: Any) -> bytes:
        if key is None:
            return b""
        return super()._key(key)

    def delete(self, key: Any = None) -> None:
        super().delete(key)

    def push(self, value: Any, flags: int = BPF_ANY) -> None:
        """Push ``value`` (BPF_EXIST: overwrite the oldest element when full)."""
        self.update(None, value, flags)

    def pop(self) -> bytes:
        """Remove and return the next element (MapKeyNotFoundError when empty)."""
        return self.lookup_and_delete(None)  # type: ignore[return-value]

    def peek(self) -> bytes:
        """The next element, without removing it."""
        return self.lookup(None)  # type: ignore[return-value]

    def contents(self) -> list[bytes]:
        """The elements in pop order (does not change the map)."""
        out = []
        saved = self.head, self.tail
        try:
            while not self._is_empty():
                out.append(self._get(True))
        finally:
            self.head, self.tail = saved
        return out

    def keys(self):  # type: ignore[override]
        """Queues and stacks have no keys: nothing to iterate (see :meth:`contents`)."""
        return iter(())

    def memory_usage(self) -> int:
        return len(self.elements)

    # -- programs
    def prog_push(self, value: bytes, flags: int) -> int:
        self._check_prog_write("bpf_map_push_elem")
        try:
            self._push(value, flags)
        except _Errno as e:
            return -e.err
        return 0

    def prog_pop(self, delete: bool) -> tuple[int, bytes | None]:
        """(0, value) or (-ENOENT, None)."""
        try:
            return 0, self._get(delete)
        except _Errno as e:
            return -e.err, None


class StackMap(QueueMap):
    """BPF_MAP_TYPE_STACK: last in, first out."""

    map_type = MapType.STACK

    def _get(self, delete: bool) -> bytes:
        if self._is_empty():
            raise _Errno(_errno.ENOENT, "empty")
        index = self.head - 1
        if index < 0:
            index = self.size - 1
        value = self._slot(index)
        if delete:
            self.head = index
        return value
