"""The hash table under the hash-type maps: the kernel's bucket chains for order, plus
a compact open-addressing index for fast lookups.

Why two structures: iteration order (get_next_key, batches) must be the kernel's, which
is "buckets in index order, each bucket's chain newest-first" with the bucket chosen by
``jhash(key) & (n_buckets - 1)``.  Computing jhash in Python costs microseconds, so it
is done once per insertion (for the chain) while lookups go through an open-addressing
index keyed by Python's own ``hash()`` (a C function).  Both live in flat ``array``\\ s
and one ``bytearray`` of keys, never in per-element Python objects: a 1M-entry map costs
tens of bytes per entry, less than the kernel's ``struct htab_elem`` plus its bucket.

Elements are *slots* (small ints); the map owning the table decides which slot holds
which element (free lists, LRU lists, per-CPU extra elements) and where values live.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator

__all__ = ["HTab", "roundup_pow_of_two"]


def roundup_pow_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class HTab:
    """Slots ``0..capacity-1`` with keys of ``key_size`` bytes, chained in
    ``n_buckets`` kernel buckets and indexed for lookup.

    ``grow`` tables (BPF_F_NO_PREALLOC) start small and extend their arrays as slots
    are used; the others allocate everything up front, like the kernel's prealloc."""

    __slots__ = (
        "_len",
        "bmask",
        "capacity",
        "count",
        "grow",
        "hashfn",
        "heads",
        "idx",
        "keys",
        "khash",
        "ks",
        "mask",
        "n_buckets",
        "nxt",
    )

    def __init__(
        self,
        key_size: int,
        n_buckets: int,
        capacity: int,
        *,
        hashfn: Callable[[bytes], int],
        grow: bool = False,
        max_linked: int | None = None,
    ) -> None:
        self.ks = key_size
        self.n_buckets = n_buckets
        self.bmask = n_buckets - 1
        self.heads = array("i", [-1]) * n_buckets
        self.capacity = capacity
        self.hashfn = hashfn
        self.grow = grow
        self.count = 0
        n = min(capacity, 64) if grow else capacity
        self._len = n
        self.keys = bytearray(key_size * n)
        self.khash = array("I", [0]) * n
        self.nxt = array("i", [-1]) * n
        # the index holds linked elements only: at most max_linked (load <= 1/2)
        linked = n if grow or max_linked is None else max_linked
        size = roundup_pow_of_two(max(2 * linked, 8))
        self.idx = array("i", [-1]) * size
        self.mask = size - 1

    # -- storage growth (no-prealloc tables)
    def ensure(self, slot: int) -> None:
        """Make ``slot`` addressable (grow tables extend their arrays)."""
        if slot < self._len:
            return
        n = min(self.capacity, max(slot + 1, 2 * self._len))
        extra = n - self._len
        self.keys.extend(bytes(self.ks * extra))
        self.khash.extend(array("I", [0]) * extra)
        self.nxt.extend(array("i", [-1]) * extra)
        self._len = n

    def _rehash(self, size: int) -> None:
        self.idx = array("i", [-1]) * size
        self.mask = size - 1
        for s in self.slots():
            self._idx_insert(s, self.key_of(s))

    # -- keys
    def key_of(self, slot: int) -> bytes:
        o = slot * self.ks
        return bytes(self.keys[o : o + self.ks])

    # -- lookups
    def find(self, key: bytes) -> int:
        """The slot holding ``key``, or -1."""
        idx = self.idx
        mask = self.mask
        keys = self.keys
        ks = self.ks
        i = hash(key) & mask
        while True:
            s = idx[i]
            if s < 0:
                return -1
            o = s * ks
            if keys[o : o + ks] == key:
                return s
            i = (i + 1) & mask

    def _idx_insert(self, slot: int, key: bytes) -> None:
        idx = self.idx
        mask = self.mask
        i = hash(key) & mask
        while idx[i] >= 0:
            i = (i + 1) & mask
        idx[i] = slot

    def _idx_pos(self, key: bytes, slot: int) -> int:
        idx = self.idx
        mask = self.mask
        i = hash(key) & mask
        while idx[i] != slot:
            i = (i + 1) & mask
        return i

    def _idx_delete(self, pos: int) -> None:
        """Backward-shift deletion (linear probing without tombstones)."""
        idx = self.idx
        mask = self.mask
        keys = self.keys
        ks = self.ks
        i = j = pos
        while True:
            j = (j + 1) & mask
            s = idx[j]
            if s < 0:
                break
            o = s * ks
            home = hash(bytes(keys[o : o + ks])) & mask
            # the entry at j may move into the hole at i unless its home lies in (i, j]
            if (i <= j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            idx[i] = s
            i = j
        idx[i] = -1

    # -- linking (what the kernel's hlist operations do)
    def insert(self, slot: int, key: bytes, khash: int) -> None:
        """Link a new element at the head of its bucket."""
        o = slot * self.ks
        self.keys[o : o + self.ks] = key
        self.khash[slot] = khash
        b = khash & self.bmask
        self.nxt[slot] = self.heads[b]
        self.heads[b] = slot
        self.count += 1
        if self.grow and 2 * self.count > len(self.idx):
            self._rehash(2 * len(self.idx))
        self._idx_insert(slot, key)

    def replace(self, old: int, new: int, key: bytes) -> None:
        """Link ``new`` (same key) at the head of the bucket and unlink ``old``: the
        kernel's update of an existing key with a fresh element."""
        kh = self.khash[old]
        o = new * self.ks
        self.keys[o : o + self.ks] = key
        self.khash[new] = kh
        b = kh & self.bmask
        self.nxt[new] = self.heads[b]
        self.heads[b] = new
        self._chain_remove(old, b)
        self.idx[self._idx_pos(key, old)] = new

    def remove(self, slot: int) -> None:
        """Unlink a linked element."""
        key = self.key_of(slot)
        self._chain_remove(slot, self.khash[slot] & self.bmask)
        self._idx_delete(self._idx_pos(key, slot))
        self.count -= 1

    def remove_if_linked(self, slot: int) -> bool:
        """Unlink ``slot`` if its bucket chain holds it (the LRU's del_from_htab)."""
        b = self.khash[slot] & self.bmask
        s = self.heads[b]
        while s >= 0:
            if s == slot:
                self.remove(slot)
                return True
            s = self.nxt[s]
        return False

    def _chain_remove(self, slot: int, b: int) -> None:
        heads = self.heads
        nxt = self.nxt
        s = heads[b]
        if s == slot:
            heads[b] = nxt[slot]
            return
        while s >= 0:
            n = nxt[s]
            if n == slot:
                nxt[s] = nxt[slot]
                return
            s = n

    # -- iteration (the kernel's order)
    def chain(self, b: int) -> list[int]:
        out = []
        s = self.heads[b]
        nxt = self.nxt
        while s >= 0:
            out.append(s)
            s = nxt[s]
        return out

    def slots(self) -> Iterator[int]:
        heads = self.heads
        nxt = self.nxt
        for b in range(self.n_buckets):
            s = heads[b]
            while s >= 0:
                yield s
                s = nxt[s]

    def next_slot(self, key: bytes | None) -> int:
        """htab_map_get_next_key: the element after ``key`` (the first element when
        ``key`` is None or absent), -1 at the end."""
        b = 0
        if key is not None:
            s = self.find(key)
            if s >= 0:
                n = self.nxt[s]
                if n >= 0:
                    return n
                b = (self.khash[s] & self.bmask) + 1
        heads = self.heads
        for i in range(b, self.n_buckets):
            if heads[i] >= 0:
                return heads[i]
        return -1

    def nbytes(self) -> int:
        return (
            len(self.keys)
            + self.khash.itemsize * len(self.khash)
            + self.nxt.itemsize * len(self.nxt)
            + self.heads.itemsize * len(self.heads)
            + self.idx.itemsize * len(self.idx)
        )
