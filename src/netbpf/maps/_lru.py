"""The kernel's LRU element lists (kernel/bpf/bpf_lru_list.c), node for node.

LRU hash maps do not evict "the least recently used element" in the textbook sense;
they run this approximation, and which keys survive depends on it, so the simulator
runs the same algorithm on the same lists (checked against the kernel by
tests/test_maps_kernel.py).  In short:

- Every element is a node on exactly one list.  With the common LRU (the default) there
  are global ACTIVE, INACTIVE and FREE lists plus, per CPU, a local FREE and a local
  PENDING list; with BPF_F_NO_COMMON_LRU every CPU has its own ACTIVE/INACTIVE/FREE
  lists and owns ``max_entries / ncpus`` nodes.
- A lookup *from a program* sets the node's reference bit; user-space lookups do not.
- An insertion pops a node: from the CPU's local free list; if empty, the CPU's pending
  nodes are flushed to the global lists, the lists are rotated (referenced nodes move
  to ACTIVE, the active tail slides to INACTIVE) and up to ``target_free`` nodes are
  moved from the global free list to the local one -- or, when it is empty, evicted
  from the INACTIVE tail (nodes whose reference bit is clear; if none, one node is
  evicted regardless).  As a last resort a node is stolen from some CPU's local lists.
  ``target_free`` is ``clamp(max_entries / ncpus / 2, 1, 128)`` (kernel 6.16+).
- The per-CPU flavour rotates and, when its free list is empty, shrinks up to 4
  unreferenced inactive nodes at once.

So inserting ``max_entries + 1`` keys from one CPU evicts the oldest key with the
common LRU (``target_free`` nodes at a time), while BPF_F_NO_COMMON_LRU evicts from
that CPU's share only, in batches of up to four.

Nodes are slot numbers; list heads are sentinel nodes after the last slot.  ``evict``
is the map's ``del_from_htab`` callback: unlink the node's element, True if it was
linked.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

__all__ = ["Lru"]

# node types (enum bpf_lru_list_type)
ACTIVE = 0
INACTIVE = 1
FREE = 2
LOCAL_FREE = 3
LOCAL_PENDING = 4

LOCAL_FREE_TARGET = 128
LOCAL_NR_SCANS = LOCAL_FREE_TARGET
PERCPU_FREE_TARGET = 4
PERCPU_NR_SCANS = PERCPU_FREE_TARGET


class _List:
    """struct bpf_lru_list: ACTIVE/INACTIVE/FREE heads, counts, rotation cursor."""

    __slots__ = ("counts", "heads", "next_inactive_rotation")

    def __init__(self, base: int) -> None:
        self.heads = (base, base + 1, base + 2)  # indexed by ACTIVE, INACTIVE, FREE
        self.counts = [0, 0]
        self.next_inactive_rotation = base + INACTIVE


class Lru:
    """The LRU lists of one LRU hash map."""

    def __init__(
        self, nr_elems: int, ncpus: int, *, percpu: bool, evict: Callable[[int], bool]
    ) -> None:
        self.n = nr_elems
        self.ncpus = ncpus
        self.percpu = percpu
        self.evict = evict
        self.type = bytearray(nr_elems)
        self.ref = bytearray(nr_elems)
        self.cpu = array("H", [0]) * nr_elems
        if percpu:
            nheads = 3 * ncpus
            self.lists = [_List(nr_elems + 3 * c) for c in range(ncpus)]
            self.nr_scans = PERCPU_NR_SCANS
        else:
            nheads = 3 + 2 * ncpus
            self.lists = [_List(nr_elems)]
            # per-CPU local lists: FREE then PENDING head
            self.local = [(nr_elems + 3 + 2 * c, nr_elems + 4 + 2 * c) for c in range(ncpus)]
            self.next_steal = list(range(ncpus))
            self.nr_scans = LOCAL_NR_SCANS
        total = nr_elems + nheads
        self.prev = array("i", range(total))
        self.next = array("i", range(total))
        self._populate()

    # -- struct list_head
    def _del(self, node: int) -> None:
        p = self.prev[node]
        n = self.next[node]
        self.next[p] = n
        self.prev[n] = p

    def _add(self, node: int, head: int) -> None:
        """list_add: insert right after ``head`` (at the list's front)."""
        n = self.next[head]
        self.next[node] = n
        self.prev[node] = head
        self.prev[n] = node
        self.next[head] = node

    def _list_move(self, node: int, head: int) -> None:
        self._del(node)
        self._add(node, head)

    def _empty(self, head: int) -> bool:
        return self.next[head] == head

    def _is_head(self, node: int) -> bool:
        return node >= self.n

    # -- population
    def _populate(self) -> None:
        if not self.percpu:
            free = self.lists[0].heads[FREE]
            for i in range(self.n):
                self.type[i] = FREE
                self.ref[i] = 0
                self._add(i, free)
            self.target_free = min(max((self.n // self.ncpus) // 2, 1), LOCAL_FREE_TARGET)
            return
        pcpu_entries = self.n // self.ncpus
        i = 0
        for cpu in range(self.ncpus):
            free = self.lists[cpu].heads[FREE]
            while True:
                self.cpu[i] = cpu
                self.type[i] = FREE
                self.ref[i] = 0
                self._add(i, free)
                i += 1
                if i == self.n or i % pcpu_entries == 0:
                    break
            if i == self.n:
                break

    # -- reference bit
    def set_ref(self, node: int) -> None:
        self.ref[node] = 1

    # -- moves between the global lists
    def _count_dec(self, lst: _List, t: int) -> None:
        if t < 2:
            lst.counts[t] -= 1

    def _count_inc(self, lst: _List, t: int) -> None:
        if t < 2:
            lst.counts[t] += 1

    def _move_to_free(self, lst: _List, node: int, free_head: int, tgt_type: int) -> None:
        if node == lst.next_inactive_rotation:
            lst.next_inactive_rotation = self.prev[node]
        self._count_dec(lst, self.type[node])
        self.type[node] = tgt_type
        self._list_move(node, free_head)

    def _move_in(self, lst: _List, node: int, tgt: int) -> None:
        self._count_inc(lst, tgt)
        self.type[node] = tgt
        self.ref[node] = 0
        self._list_move(node, lst.heads[tgt])

    def _move(self, lst: _List, node: int, tgt: int) -> None:
        if self.type[node] != tgt:
            self._count_dec(lst, self.type[node])
            self._count_inc(lst, tgt)
            self.type[node] = tgt
        self.ref[node] = 0
        if node == lst.next_inactive_rotation:
            lst.next_inactive_rotation = self.prev[node]
        self._list_move(node, lst.heads[tgt])

    def _rotate_active(self, lst: _List) -> None:
        head = lst.heads[ACTIVE]
        first = self.next[head]
        node = self.prev[head]
        i = 0
        while node != head:
            tmp = self.prev[node]
            self._move(lst, node, ACTIVE if self.ref[node] else INACTIVE)
            i += 1
            if i == self.nr_scans or node == first:
                break
            node = tmp

    def _rotate_inactive(self, lst: _List) -> None:
        inactive = lst.heads[INACTIVE]
        if self._empty(inactive):
            return
        last = self.next[lst.next_inactive_rotation]
        if last == inactive:
            last = self.next[last]
        cur = lst.next_inactive_rotation
        nxt = cur
        i = 0
        while i < self.nr_scans:
            if cur == inactive:
                cur = self.prev[cur]
                continue
            nxt = self.prev[cur]
            if self.ref[cur]:
                self._move(lst, cur, ACTIVE)
            if cur == last:
                break
            cur = nxt
            i += 1
        lst.next_inactive_rotation = nxt

    def _shrink_inactive(self, lst: _List, tgt: int, free_head: int, tgt_type: int) -> int:
        inactive = lst.heads[INACTIVE]
        node = self.prev[inactive]
        nshrinked = 0
        i = 0
        while node != inactive:
            tmp = self.prev[node]
            if self.ref[node]:
                self._move(lst, node, ACTIVE)
            elif self.evict(node):
                self._move_to_free(lst, node, free_head, tgt_type)
                nshrinked += 1
                if nshrinked == tgt:
                    break
            i += 1
            if i == self.nr_scans:
                break
            node = tmp
        return nshrinked

    def _rotate(self, lst: _List) -> None:
        if lst.counts[INACTIVE] < lst.counts[ACTIVE]:
            self._rotate_active(lst)
        self._rotate_inactive(lst)

    def _shrink(self, lst: _List, tgt: int, free_head: int, tgt_type: int) -> int:
        n = self._shrink_inactive(lst, tgt, free_head, tgt_type)
        if n:
            return n
        if not self._empty(lst.heads[INACTIVE]):
            force = lst.heads[INACTIVE]
        else:
            force = lst.heads[ACTIVE]
        node = self.prev[force]
        while node != force:
            tmp = self.prev[node]
            if self.evict(node):
                self._move_to_free(lst, node, free_head, tgt_type)
                return 1
            node = tmp
        return 0

    # -- the common LRU
    def _local_flush(self, lst: _List, cpu: int) -> None:
        pending = self.local[cpu][1]
        node = self.prev[pending]
        while node != pending:
            tmp = self.prev[node]
            self._move_in(lst, node, ACTIVE if self.ref[node] else INACTIVE)
            node = tmp

    def _pop_free_to_local(self, cpu: int) -> None:
        lst = self.lists[0]
        local_free = self.local[cpu][0]
        self._local_flush(lst, cpu)
        self._rotate(lst)
        free = lst.heads[FREE]
        nfree = 0
        node = self.next[free]
        while node != free:
            tmp = self.next[node]
            self._move_to_free(lst, node, local_free, LOCAL_FREE)
            nfree += 1
            if nfree == self.target_free:
                break
            node = tmp
        if nfree < self.target_free:
            self._shrink(lst, self.target_free - nfree, local_free, LOCAL_FREE)

    def _add_pending(self, cpu: int, node: int) -> None:
        self.cpu[node] = cpu
        self.type[node] = LOCAL_PENDING
        self.ref[node] = 0
        self._add(node, self.local[cpu][1])

    def _local_pop_free(self, cpu: int) -> int:
        head = self.local[cpu][0]
        node = self.next[head]
        if node == head:
            return -1
        self._del(node)
        return node

    def _local_pop_pending(self, cpu: int) -> int:
        head = self.local[cpu][1]
        for force in (False, True):
            node = self.prev[head]
            while node != head:
                if (not self.ref[node] or force) and self.evict(node):
                    self._del(node)
                    return node
                node = self.prev[node]
        return -1

    def pop_free(self, cpu: int) -> int:
        """A node for a new element inserted from ``cpu`` (may evict), -1 if none."""
        if self.percpu:
            return self._percpu_pop_free(cpu)
        node = self._local_pop_free(cpu)
        if node < 0:
            self._pop_free_to_local(cpu)
            node = self._local_pop_free(cpu)
        if node >= 0:
            self._add_pending(cpu, node)
            return node
        first = self.next_steal[cpu]
        steal = first
        while True:
            node = self._local_pop_free(steal)
            if node < 0:
                node = self._local_pop_pending(steal)
            steal = (steal + 1) % self.ncpus
            if node >= 0 or steal == first:
                break
        self.next_steal[cpu] = steal
        if node >= 0:
            self._add_pending(cpu, node)
        return node

    def push_free(self, node: int) -> None:
        """The element of ``node`` was deleted: give the node back."""
        if self.percpu:
            self._move(self.lists[self.cpu[node]], node, FREE)
            return
        t = self.type[node]
        if t in (FREE, LOCAL_FREE):
            return
        if t == LOCAL_PENDING:
            self.type[node] = LOCAL_FREE
            self.ref[node] = 0
            self._list_move(node, self.local[self.cpu[node]][0])
            return
        self._move(self.lists[0], node, FREE)

    # -- the per-CPU LRU
    def _percpu_pop_free(self, cpu: int) -> int:
        lst = self.lists[cpu]
        self._rotate(lst)
        free = lst.heads[FREE]
        if self._empty(free):
            self._shrink(lst, PERCPU_FREE_TARGET, free, FREE)
        if self._empty(free):
            return -1
        node = self.next[free]
        self.ref[node] = 0
        self._move(lst, node, INACTIVE)
        return node

    def state(self) -> dict[str, list[int]]:
        """The lists' contents front to back (for tests and debugging)."""
        out: dict[str, list[int]] = {}

        def walk(head: int) -> list[int]:
            r = []
            n = self.next[head]
            while n != head:
                r.append(n)
                n = self.next[n]
            return r

        names = ("active", "inactive", "free")
        for c, lst in enumerate(self.lists):
            for t, h in enumerate(lst.heads):
                out[f"{names[t]}{c if self.percpu else ''}"] = walk(h)
        if not self.percpu:
            for c, (f, p) in enumerate(self.local):
                out[f"local_free{c}"] = walk(f)
                out[f"local_pending{c}"] = walk(p)
        return out
