"""The SimBackend's one long-lived address space, with per-run scopes.

Why a subclass of :class:`~netbpf.vm.memory.AddressSpace`: a SimBackend keeps every
map's value storage mapped for its whole life, so the address a program gets from
``bpf_map_lookup_elem`` (or a ``.data`` LD_IMM64) is the same in every run, as kernel
addresses are.  Each test run adds its own regions (the packet, the context, the
dummy socket, stack frames, helper scratch) to that same space and must take them
away again afterwards.  :class:`AddressSpace` hands out a fresh 4 GiB slot for every
region and never reuses one; with roughly 30,000 slots above ``FIRST_SLOT`` a
long-lived space would run out after some ten thousand runs.  This class

* **reuses slots**: an unmapped slot goes to a free list, taken first-in first-out
  by later regions;
* **scopes runs**: :meth:`run_scope` records every region mapped while it is open and
  unmaps, when it closes, those that belong to the run (everything but map storage,
  see :data:`PERSISTENT_KINDS`);
* **quarantines slots freed during a run** until the run's scope closes: when a run
  replaces a region (``bpf_skb_change_head`` re-allocating the packet), the old
  pointers must keep faulting rather than land in the new region, as the hooks
  promise; after the run nothing can hold them (the verifier forbids storing
  pointers in maps).

``unmap`` only removes a region that is still mapped at its address, so a second
unmap of a region whose slot was since reused cannot take the new occupant away.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from netbpf.vm.memory import SLOT_SHIFT, AddressSpace, Region

__all__ = ["PERSISTENT_KINDS", "SimAddressSpace"]

#: Region kinds that outlive the run that mapped them: map value storage (a
#: BPF_F_NO_PREALLOC hash map allocates value chunks while a program inserts), map
#: handles (CONST_PTR_TO_MAP) and ring buffer data.  Every other region mapped during
#: a run scope -- stack frames, packet, context, socket views, helper scratch -- is
#: unmapped when the scope closes.
PERSISTENT_KINDS = frozenset({"map_value", "map_ptr", "ringbuf"})


class SimAddressSpace(AddressSpace):
    """An :class:`AddressSpace` that reuses freed slots and scopes per-run regions."""

    __slots__ = ("_free", "_quarantine", "_scopes")

    def __init__(self) -> None:
        super().__init__()
        self._free: deque[int] = deque()
        self._quarantine: list[int] = []
        self._scopes: list[list[Region]] = []

    def map(self, region: Region) -> int:
        """Give ``region`` a slot (a freed one first) and return its base address."""
        if self._free:
            slot = self._free.popleft()
            self.slots[slot] = region
            region.base = slot << SLOT_SHIFT
        else:
            super().map(region)
        if self._scopes:
            self._scopes[-1].append(region)
        return region.base

    def unmap(self, region: Region) -> None:
        """Remove ``region`` if it is still mapped at its address (idempotent)."""
        slot = region.base >> SLOT_SHIFT
        if self.slots.get(slot) is not region:
            return
        del self.slots[slot]
        if self._scopes:
            self._quarantine.append(slot)
        else:
            self._free.append(slot)

    @contextmanager
    def run_scope(self) -> Iterator[None]:
        """Everything mapped inside the ``with`` block that is not map storage is
        unmapped when it ends (also on errors); slots freed inside are reused only
        after the outermost scope ends."""
        mapped: list[Region] = []
        self._scopes.append(mapped)
        try:
            yield
        finally:
            self._scopes.pop()
            for region in mapped:
                if region.kind not in PERSISTENT_KINDS:
                    self.unmap(region)
            if not self._scopes:
                self._free.extend(self._quarantine)
                self._quarantine.clear()

    @property
    def free_slots(self) -> int:
        """Slots waiting for reuse (free list and quarantine)."""
        return len(self._free) + len(self._quarantine)
