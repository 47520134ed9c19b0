"""BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH (kernel/bpf/hashtab.c).

Kernel semantics modelled (and checked against the running kernel):

- **Order.** Buckets are ``jhash(key, key_size, seed) & (n_buckets - 1)`` with
  ``n_buckets = roundup_pow_of_two(max_entries)``; a new element goes to the head of its
  bucket.  get_next_key and batch lookups walk buckets in index order, chains
  newest-first; get_next_key of an absent key restarts at the first element.  The
  simulator's seed is always 0: the kernel's order with BPF_F_ZERO_SEED, a fixed
  deterministic order otherwise (the kernel's is random then).
- **Updates.** flags > BPF_EXIST (besides BPF_F_LOCK) -> EINVAL; BPF_NOEXIST on a
  present key -> EEXIST; BPF_EXIST on an absent one -> ENOENT; no free element -> E2BIG.
  Updating an existing key of a HASH (or LRU_HASH) links a *new* element at the head of
  the bucket and retires the old one; PERCPU and BPF_F_LOCK updates write in place.
- **Element memory.** Preallocated maps (the default) own ``max_entries`` elements, and
  a HASH also one spare element per CPU: an update of an existing key takes the CPU's
  spare and the old element becomes the spare.  So a value pointer a program kept
  across an update of its key still points at the *old* value (until that CPU's next
  such update reuses it) -- as in the kernel.  A deleted element goes back on a LIFO
  free list and the next insertion reuses it, so a stale pointer then sees another
  key's value, again as in the kernel.  BPF_F_NO_PREALLOC allocates value chunks lazily;
  freed elements are reused LIFO (the kernel's per-CPU bpf_mem_alloc caches do the
  same), live values never move.
- **LRU.** See :mod:`netbpf.maps._lru`: the kernel's lists, reference bits set by
  program-side lookups only, eviction on insertion.  An LRU insertion takes its node
  *before* checking flags, so even a failing BPF_NOEXIST update can evict (kernel
  behaviour).  LRU maps must be preallocated (BPF_F_NO_PREALLOC -> ENOTSUPP).
- **Per-CPU.** User space reads and writes every CPU's copy; a program's update writes
  its CPU's copy (a new element's other copies are zeroed).  User-space operations run
  on CPU ``user_cpu`` (0 unless changed): pin the calling thread to compare with the
  kernel, where LRU behaviour depends on the CPU.
- **Batches.** Bucket-at-a-time like the kernel: the position token is a u32 bucket
  index; a bucket larger than ``count`` is ENOSPC when nothing was copied yet.
"""

from __future__ import annotations

import errno as _errno
from array import array
from typing import Any

from netbpf.maps._htab import HTab, roundup_pow_of_two
from netbpf.maps._lru import Lru
from netbpf.maps.base import BatchResult, Map, ValueStore, _Errno, round_up
from netbpf.maps.constants import (
    BPF_EXIST,
    BPF_F_ACCESS_MASK,
    BPF_F_LOCK,
    BPF_F_NO_COMMON_LRU,
    BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE,
    BPF_F_RDONLY_PROG,
    BPF_F_ZERO_SEED,
    BPF_NOEXIST,
    ENOTSUPP,
    HTAB_ELEM_SIZE,
    KMALLOC_MAX_SIZE,
    PCPU_MIN_UNIT_SIZE,
    U32_MAX,
)
from netbpf.maps.jhash import jhash
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType
from netbpf.vm.memory import AddressSpace

__all__ = ["HashMap", "LruHashMap", "LruPercpuHashMap", "PercpuHashMap", "check_htab_spec"]

HTAB_CREATE_FLAG_MASK = (
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED
)
#: sizeof(struct bucket): the kernel refuses n_buckets > U32_MAX / this (E2BIG)
BUCKET_SIZE = 16

_PERCPU = (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
_LRU = (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)


def check_htab_spec(spec: MapSpec) -> None:
    """htab_map_alloc_check."""
    percpu = spec.type in _PERCPU
    lru = spec.type in _LRU
    prealloc = not spec.flags & BPF_F_NO_PREALLOC
    percpu_lru = bool(spec.flags & BPF_F_NO_COMMON_LRU)
    if spec.flags & ~HTAB_CREATE_FLAG_MASK or not Map.access_ok(spec.flags):
        raise _Errno(_errno.EINVAL, f"flags {spec.flags:#x} not valid for a hash map")
    if not lru and percpu_lru:
        raise _Errno(_errno.EINVAL, "BPF_F_NO_COMMON_LRU is for LRU maps")
    if lru and not prealloc:
        raise _Errno(ENOTSUPP, "LRU maps must be preallocated (no BPF_F_NO_PREALLOC)")
    if spec.flags & BPF_F_NUMA_NODE and (percpu or percpu_lru):
        raise _Errno(_errno.EINVAL, "BPF_F_NUMA_NODE with per-CPU storage")
    if spec.max_entries == 0 or spec.key_size == 0 or spec.value_size == 0:
        raise _Errno(_errno.EINVAL, "key_size, value_size and max_entries must be non-zero")
    if spec.key_size + spec.value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE:
        raise _Errno(_errno.E2BIG, "key_size + value_size too large")
    if percpu and round_up(spec.value_size, 8) > PCPU_MIN_UNIT_SIZE:
        raise _Errno(_errno.E2BIG, f"per-CPU values are at most {PCPU_MIN_UNIT_SIZE} bytes")


def lru_max_entries(spec: MapSpec, ncpus: int) -> int:
    """BPF_F_NO_COMMON_LRU gives every CPU the same share: max_entries is rounded up to
    a multiple of the CPU count (down if that overflows u32)."""
    n = spec.max_entries
    if spec.type in _LRU and spec.flags & BPF_F_NO_COMMON_LRU:
        up = round_up(n, ncpus)
        n = up if up <= U32_MAX else n // ncpus * ncpus
    return n


def _htab_hash(key: bytes) -> int:
    return jhash(key, 0)


class HashMap(Map):
    """BPF_MAP_TYPE_HASH (and the base of the other hash types)."""

    map_type = MapType.HASH
    lru = False
    _has_lookup_and_delete = True
    _batch_lookup = "htab"
    _batch_update = True
    _batch_delete = True
    _batch_lookup_and_delete = True

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        check_htab_spec(spec)
        n_buckets = roundup_pow_of_two(lru_max_entries(spec, ncpus))
        if n_buckets > U32_MAX // BUCKET_SIZE:
            raise _Errno(_errno.E2BIG, "too many buckets (max_entries above 2**27)")

    @classmethod
    def created_params(cls, spec: MapSpec, ncpus: int) -> tuple[int, int]:
        return lru_max_entries(spec, ncpus), super().created_params(spec, ncpus)[1]

    def __init__(self, spec: MapSpec, *, ncpus: int) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.max_entries = lru_max_entries(spec, ncpus)
        self.prealloc = not self.flags & BPF_F_NO_PREALLOC
        self.user_cpu = 0
        n = self.max_entries
        # element slots: prealloc HASH has one spare per CPU (htab->extra_elems)
        self._extras = not self.percpu and not self.lru and self.prealloc
        capacity = n + (ncpus if self._extras else 0) if self.prealloc else n + 1
        self.n_buckets = roundup_pow_of_two(n)
        self.table = HTab(
            self.key_size,
            self.n_buckets,
            capacity,
            hashfn=_htab_hash,
            grow=not self.prealloc,
            max_linked=n,
        )
        self.store = self._make_store(capacity)
        self._fresh = 0  # no-prealloc: slots never used yet start here
        self._free = array("i")
        self._extra: list[int] = []
        self.lru_lists: Lru | None = None
        if self.lru:
            self.lru_lists = Lru(
                n,
                ncpus,
                percpu=bool(self.flags & BPF_F_NO_COMMON_LRU),
                evict=self.table.remove_if_linked,
            )
        elif self.prealloc:
            self._free = array("i", range(n - 1, -1, -1))
            if self._extras:
                self._extra = list(range(n, n + ncpus))

    def _make_store(self, capacity: int) -> ValueStore | None:
        return ValueStore(
            f"map {self.name!r}",
            self.value_size,
            capacity,
            copies=self.ncpus if self.percpu else 1,
            prealloc=self.prealloc,
            writable=not self.flags & BPF_F_RDONLY_PROG,
        )

    # -- element allocation ---------------------------------------------------------------
    def _alloc(self, cpu: int, replacing: bool) -> int:
        """A slot for a new element (alloc_htab_elem), or _Errno(E2BIG)."""
        if self.prealloc:
            if replacing and self._extras:
                return -2  # the caller swaps with the CPU's spare
            if not self._free:
                raise _Errno(_errno.E2BIG, f"map full ({self.max_entries} elements)")
            return self._free.pop()
        if self.table.count >= self.max_entries and not replacing:
            raise _Errno(_errno.E2BIG, f"map full ({self.max_entries} elements)")
        if self._free:
            return self._free.pop()
        slot = self._fresh
        self._fresh += 1
        self.table.ensure(slot)
        return slot

    def _release(self, slot: int) -> None:
        """free_htab_elem: back on the free list (LIFO)."""
        if self.lru_lists is not None:
            self.lru_lists.push_free(slot)
        else:
            self._free.append(slot)

    # -- values -------------------------------------------------------------------------------
    def _write(self, slot: int, value: Any, cpu: int | None, *, new: bool) -> None:
        st = self.store
        assert st is not None
        if self.percpu:
            if cpu is None:
                for c, v in enumerate(value):
                    st.set_long(slot, v, c)
            else:
                if new:
                    for c in range(self.ncpus):
                        if c != cpu:
                            st.zero(slot, c)
                st.set(slot, value, cpu)
        elif self.spin_lock_off is not None:
            st.set(slot, self._merge_lock(st.get(slot), value))
        else:
            st.set(slot, value)

    def _read(self, slot: int) -> Any:
        st = self.store
        assert st is not None
        if self.percpu:
            return [st.get_long(slot, c) for c in range(self.ncpus)]
        return self._mask_lock(st.get(slot))

    # -- the core operations -----------------------------------------------------------------
    def _update(self, key: bytes, value: Any, flags: int, cpu: int, *, user: bool) -> None:
        """htab_map_update_elem and friends; ``value`` is per-CPU list from user space
        for per-CPU maps, a single value from programs."""
        if self.lru:
            return self._lru_update(key, value, flags, cpu, user=user)
        if self.percpu:
            if flags > BPF_EXIST:
                raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        elif flags & ~BPF_F_LOCK > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        elif flags & BPF_F_LOCK and self.spin_lock_off is None:
            raise _Errno(_errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock")
        t = self.table
        old = t.find(key)
        self._check_flags(old, flags)
        wcpu = None if user else cpu
        if old >= 0 and (self.percpu or flags & BPF_F_LOCK):
            self._write(old, value, wcpu, new=False)
            return
        slot = self._alloc(cpu, old >= 0)
        if slot == -2:  # swap with this CPU's spare element
            slot = self._extra[cpu]
            self._extra[cpu] = old
            self._write(slot, value, wcpu, new=True)
            t.replace(old, slot, key)
            return
        self._write(slot, value, wcpu, new=True)
        if old >= 0:
            t.replace(old, slot, key)
            self._release(old)
        else:
            t.insert(slot, key, _htab_hash(key))

    def _check_flags(self, old: int, flags: int) -> None:
        f = flags & ~BPF_F_LOCK
        if old >= 0 and f == BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "key exists (BPF_NOEXIST)")
        if old < 0 and f == BPF_EXIST:
            raise _Errno(_errno.ENOENT, "no such key (BPF_EXIST)")

    def _lru_update(self, key: bytes, value: Any, flags: int, cpu: int, *, user: bool) -> None:
        """htab_lru_map_update_elem / __htab_lru_percpu_map_update_elem: the node is
        taken before the flags are checked."""
        if flags > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        lru = self.lru_lists
        assert lru is not None
        t = self.table
        kh = _htab_hash(key)
        new = -1
        if not (self.percpu and flags == BPF_EXIST):
            new = lru.pop_free(cpu)
            if new < 0:
                raise _Errno(_errno.ENOMEM, "no LRU node available")
            t.khash[new] = kh
        wcpu = None if user else cpu
        old = t.find(key)
        try:
            self._check_flags(old, flags)
        except _Errno:
            if new >= 0:
                lru.push_free(new)
            raise
        if self.percpu:
            if old >= 0:
                lru.set_ref(old)
                self._write(old, value, wcpu, new=False)
                if new >= 0:
                    lru.push_free(new)
            else:
                self._write(new, value, wcpu, new=True)
                t.insert(new, key, kh)
            return
        self._write(new, value, wcpu, new=True)
        if old >= 0:
            lru.set_ref(new)
            t.replace(old, new, key)
            lru.push_free(old)
        else:
            t.insert(new, key, kh)

    def _delete(self, key: bytes) -> None:
        t = self.table
        s = t.find(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no such key")
        t.remove(s)
        self._release(s)

    # -- user space ----------------------------------------------------------------------------
    def _fast_ok(self, key: Any) -> bool:
        """Whether a plain lookup/update may skip the generic checks (a bytes key of
        the right size on an open, writable, lock-free, non-per-CPU map)."""
        return (
            key.__class__ is bytes
            and len(key) == self.key_size
            and not (self._closed or self._user_wronly or self._user_rdonly or self.frozen)
            and not self.percpu
            and self.spin_lock_off is None
            and self.store is not None
        )

    def lookup(self, key: Any, *, flags: int = 0) -> Any:
        if flags or not self._fast_ok(key):
            return super().lookup(key, flags=flags)
        s = self.table.find(key)
        if s < 0:
            return super().lookup(key)  # raises the typed error
        assert self.store is not None
        return self.store.get(s)

    def update(self, key: Any, value: Any, flags: int = 0) -> None:
        if (
            flags
            or value.__class__ is not bytes
            or len(value) != self.value_size
            or self.map_type == MapType.HASH_OF_MAPS
            or not self._fast_ok(key)
        ):
            return super().update(key, value, flags)
        try:
            self._update(key, value, 0, self.user_cpu, user=True)
        except _Errno as e:
            raise self._fail(e, "update", key) from None
        return None

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        s = self.table.find(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no such key")
        return self._read(s)

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        self._update(key, value, flags, self.user_cpu, user=True)

    def _sys_delete(self, key: bytes) -> None:
        self._delete(key)

    def _sys_lookup_and_delete(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        t = self.table
        s = t.find(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no such key")
        value = self._read(s)
        t.remove(s)
        self._release(s)
        return value

    def _next_key(self, key: bytes | None) -> bytes:
        s = self.table.next_slot(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no more keys")
        return self.table.key_of(s)

    def keys(self):  # type: ignore[override]
        """All keys in the kernel's order (a snapshot: changing the map while iterating
        does not disturb it)."""
        self._run("get_next_key", None, self._check_read)
        t = self.table
        return iter([t.key_of(s) for s in t.slots()])

    def items(self):  # type: ignore[override]
        self._run("lookup", None, self._check_read)
        t = self.table
        return iter([(t.key_of(s), self._pack(self._read(s))) for s in t.slots()])

    def _count(self) -> int:
        return self.table.count

    def _htab_lookup_batch(
        self, count: int, in_batch: bytes | None, flags: int, delete: bool
    ) -> BatchResult:
        if count == 0:
            return BatchResult([], in_batch if in_batch is not None else bytes(4))
        batch = 0 if in_batch is None else int.from_bytes(bytes(in_batch[:4]), "little")
        t = self.table
        if batch >= t.n_buckets:
            return BatchResult([], None)
        out: list[tuple[bytes, Any]] = []
        while True:
            slots = t.chain(batch)
            if len(slots) > count - len(out):
                if not out:
                    raise _Errno(
                        _errno.ENOSPC, f"bucket {batch} holds {len(slots)} elements, count {count}"
                    )
                return BatchResult(out, batch.to_bytes(4, "little"))
            for s in slots:
                out.append((t.key_of(s), self._read(s)))
            if delete:
                for s in slots:
                    t.remove(s)
                # LRU nodes are freed after the bucket, last first
                for s in reversed(slots) if self.lru else slots:
                    self._release(s)
            batch += 1
            if batch >= t.n_buckets:
                return BatchResult(out, None)

    # -- memory
    def _attach(self, mem: AddressSpace) -> None:
        if self.store is not None:
            self.store.attach(mem)

    def _detach(self) -> None:
        if self.store is not None:
            self.store.detach()

    def memory_usage(self) -> int:
        n = self.table.nbytes() + self._free.itemsize * len(self._free)
        if self.store is not None:
            n += self.store.nbytes()
        if self.lru_lists is not None:
            lr = self.lru_lists
            n += len(lr.type) + len(lr.ref) + lr.cpu.itemsize * len(lr.cpu)
            n += lr.prev.itemsize * (len(lr.prev) + len(lr.next))
        return n

    # -- programs ------------------------------------------------------------------------------
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        s = self.table.find(key)
        if s < 0:
            return 0
        if self.lru_lists is not None:
            self.lru_lists.set_ref(s)
        assert self.store is not None
        return self.store.address(s, cpu if self.percpu else 0)

    def prog_lookup_percpu(self, key: bytes, cpu: int) -> int:
        if not self.percpu:
            return super().prog_lookup(key, cpu)
        if cpu >= self.ncpus:
            return 0
        s = self.table.find(key)
        if s < 0:
            return 0
        if self.lru_lists is not None:
            self.lru_lists.set_ref(s)
        assert self.store is not None
        return self.store.address(s, cpu)

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        self._check_prog_write("bpf_map_update_elem")
        try:
            self._update(key, value, flags, cpu, user=False)
        except _Errno as e:
            return -e.err
        return 0

    def prog_delete(self, key: bytes, cpu: int) -> int:
        self._check_prog_write("bpf_map_delete_elem")
        try:
            self._delete(key)
        except _Errno as e:
            return -e.err
        return 0

    def slot_of(self, key: bytes) -> int:
        """The element slot holding ``key`` (-1 when absent): for tests and tools that
        reason about element reuse."""
        return self.table.find(self._key(key))


class PercpuHashMap(HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH."""

    map_type = MapType.PERCPU_HASH
    percpu = True


class LruHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_HASH."""

    map_type = MapType.LRU_HASH
    lru = True


class LruPercpuHashMap(HashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH."""

    map_type = MapType.LRU_PERCPU_HASH
    percpu = True
    lru = True
