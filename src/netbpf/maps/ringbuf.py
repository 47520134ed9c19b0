"""BPF_MAP_TYPE_RINGBUF (kernel/bpf/ringbuf.c) and its user-space consumer.

The ring is ``max_entries`` bytes (a power of two, a multiple of the page size).
Producers (programs) reserve records, fill them in place, then submit or discard them;
the consumer reads committed records in order.  Modelled as in the kernel:

- every record has an 8-byte header: u32 ``len`` with BUSY (bit 31, still being
  written) and DISCARD (bit 30) flags, u32 ``pg_off``; records are
  ``round_up(len + 8, 8)`` bytes; positions (consumer, producer, pending) only grow.
- reserve fails (NULL) when the record is larger than the ring, when the producer would
  get ``>= ring size`` bytes ahead of the consumer, or ahead of the oldest record still
  being written; ``flags`` must be 0.
- the kernel maps the data pages twice, back to back, so a record crossing the end
  of the ring is contiguous: offset ``size + i`` *is* offset ``i``.  The simulator
  keeps one ``size``-byte ring and gives programs a :class:`RingBufRegion` of twice
  that size whose offsets are taken modulo the ring size, so a wrapped record is
  contiguous for the program and every byte it writes past the end lands at the
  ring's start at once (nothing is copied on commit); bytes it leaves alone show what
  the start of the ring holds, as on the kernel.
- submit/discard/output flags: BPF_RB_NO_WAKEUP suppresses, BPF_RB_FORCE_WAKEUP forces
  the consumer wakeup; otherwise a wakeup happens when the committed record is the one
  the consumer waits for (:attr:`RingBufMap.wakeups` counts them).  bpf_ringbuf_output
  with other flags -> -EINVAL, no space -> -EAGAIN.
- bpf_ringbuf_query: BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS,
  BPF_RB_PROD_POS (anything else 0).
- from user space every element command fails with ENOTSUPP; :meth:`consume` /
  :meth:`poll` are libbpf's ``ring_buffer__consume`` / ``__poll``.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from typing import Any

from netbpf.maps.base import MAX_SIM_ALLOC, Map, _Errno, round_up
from netbpf.maps.constants import (
    BPF_F_NUMA_NODE,
    BPF_RB_AVAIL_DATA,
    BPF_RB_CONS_POS,
    BPF_RB_FORCE_WAKEUP,
    BPF_RB_NO_WAKEUP,
    BPF_RB_PROD_POS,
    BPF_RB_RING_SIZE,
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
    PAGE_SIZE,
)
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

__all__ = ["RingBufMap", "RingBufRegion"]

RINGBUF_CREATE_FLAG_MASK = BPF_F_NUMA_NODE
RINGBUF_MAX_RECORD_SZ = 0xFFFFFFFF >> 2
#: pages of struct bpf_ringbuf before the data (header, consumer_pos, producer_pos):
#: what a record header's pg_off counts from
RINGBUF_PGOFF = 3


class RingBufRegion(Region):
    """The ring's data pages as programs see them: the kernel's double mapping.

    ``buf`` is the ring itself (``size`` bytes, the map's ``data``); the region spans
    ``[0, 2 * size)`` and offset ``o`` means ring byte ``o mod size``, as the kernel's
    second mapping of the same pages does.  A record that starts near the end is one
    contiguous range of the region, so programs address it like any other memory, yet
    there is only one copy of every byte.

    Why this design and not a buffer of twice the size kept in sync on every store:
    with one storage there is no second copy that can go stale -- the map's own
    writes (record headers, ``bpf_ringbuf_output``), the program's stores and the
    consumer's reads all see the same bytes with nothing to mirror or fold back, just
    as in the kernel.  The price is that ``buf`` is shorter than ``hi``, so this
    region cannot take the VM's inline fast path for plain :class:`Region`\\ s; the
    accessors call :meth:`load` / :meth:`store` (as for every Region subclass), which
    translate the offset and split an access that crosses the end.  Code must not
    index ``buf`` with region offsets directly.

    Knows its map, so helpers can resolve a record pointer."""

    __slots__ = ("_mask", "_size", "map")

    def __init__(self, m: RingBufMap, buf: bytearray) -> None:
        super().__init__(f"ringbuf {m.name!r} data", buf, kind="ringbuf", hi=2 * len(buf))
        self.map = m
        self._size = len(buf)
        self._mask = len(buf) - 1

    def get(self, off: int, n: int) -> bytes:
        """``n`` bytes at region offset ``off`` (any offset: taken modulo the ring)."""
        o = off & self._mask
        buf = self.buf
        if o + n <= self._size:
            return bytes(buf[o : o + n])
        parts = [bytes(buf[o:])]
        left = n - (self._size - o)
        while left > 0:
            k = min(left, self._size)
            parts.append(bytes(buf[:k]))
            left -= k
        return b"".join(parts)

    def put(self, off: int, data: bytes) -> None:
        """Write ``data`` at region offset ``off`` (any offset: taken modulo the ring).
        A write longer than the ring leaves its last ``size`` bytes, as a store
        through the double mapping would."""
        o = off & self._mask
        if o + len(data) <= self._size:
            self.buf[o : o + len(data)] = data
            return
        i = 0
        while i < len(data):
            k = min(len(data) - i, self._size - o)
            self.buf[o : o + k] = data[i : i + k]
            i += k
            o = 0

    def load(self, off: int, size: int) -> int:
        self._check(off, size, False)
        return int.from_bytes(self.get(off, size), "little")

    def store(self, off: int, size: int, value: int) -> None:
        self._check(off, size, True)
        self.put(off, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def read(self, off: int, size: int) -> bytes:
        self._check(off, size, False)
        return self.get(off, size)

    def write(self, off: int, data: bytes) -> None:
        self._check(off, len(data), True)
        self.put(off, data)


class RingBufMap(Map):
    """BPF_MAP_TYPE_RINGBUF."""

    map_type = MapType.RINGBUF

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        n = spec.max_entries
        if spec.flags & ~RINGBUF_CREATE_FLAG_MASK:
            raise _Errno(_errno.EINVAL, f"flags {spec.flags:#x} not valid for a ring buffer")
        if spec.key_size or spec.value_size or n == 0 or n & (n - 1) or n % PAGE_SIZE:
            raise _Errno(
                _errno.EINVAL,
                "a ring buffer has key_size 0, value_size 0 and a power-of-2, page-multiple "
                "max_entries",
            )
        if 2 * n > MAX_SIM_ALLOC:  # the doubled view must fit one region's slot
            raise _Errno(_errno.ENOMEM, "ring too large for the simulator")

    def __init__(self, spec: MapSpec, *, ncpus: int) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.size = self.max_entries
        self.mask = self.size - 1
        #: the ring's data pages (once; :class:`RingBufRegion` is the doubled view)
        self.data = bytearray(self.size)
        self.region = RingBufRegion(self, self.data)
        self.consumer_pos = 0
        self.producer_pos = 0
        self.pending_pos = 0
        #: consumer wakeups signalled by commits (what epoll would see)
        self.wakeups = 0

    # -- headers
    def _hdr_len(self, pos: int) -> int:
        o = pos & self.mask
        return int.from_bytes(self.data[o : o + 4], "little")

    def _set_hdr(self, pos: int, length: int) -> None:
        o = pos & self.mask
        self.data[o : o + 4] = length.to_bytes(4, "little")
        self.data[o + 4 : o + 8] = (RINGBUF_PGOFF + (o >> 12)).to_bytes(4, "little")

    # -- producer side (the helpers)
    def reserve(self, size: int) -> int:
        """__bpf_ringbuf_reserve: the data offset of a new BUSY record, or -1."""
        if size > RINGBUF_MAX_RECORD_SZ:
            return -1
        length = round_up(size + BPF_RINGBUF_HDR_SZ, 8)
        if length > self.size:
            return -1
        cons = self.consumer_pos
        prod = self.producer_pos
        new_prod = prod + length
        pend = self.pending_pos
        while pend < prod:
            hl = self._hdr_len(pend)
            if hl & BPF_RINGBUF_BUSY_BIT:
                break
            pend += round_up((hl & ~BPF_RINGBUF_DISCARD_BIT) + BPF_RINGBUF_HDR_SZ, 8)
        self.pending_pos = pend
        if new_prod - cons > self.mask or new_prod - pend > self.mask:
            return -1
        self._set_hdr(prod, size | BPF_RINGBUF_BUSY_BIT)
        self.producer_pos = new_prod
        return (prod & self.mask) + BPF_RINGBUF_HDR_SZ

    def commit(self, data_off: int, flags: int, *, discard: bool) -> None:
        """bpf_ringbuf_commit of the record whose data starts at ``data_off`` in the
        data region.  Raises MemoryFault for anything that is not a reserved record."""
        hdr = data_off - BPF_RINGBUF_HDR_SZ
        if hdr < 0 or hdr >= self.size or hdr % 8:
            raise MemoryFault(f"{data_off:#x} is not a ring buffer record of {self.name!r}")
        hl = int.from_bytes(self.data[hdr : hdr + 4], "little")
        if not hl & BPF_RINGBUF_BUSY_BIT:
            raise MemoryFault(
                f"ring buffer record at {hdr:#x} of {self.name!r} was already submitted or "
                "discarded"
            )
        new_len = hl ^ BPF_RINGBUF_BUSY_BIT
        if discard:
            new_len |= BPF_RINGBUF_DISCARD_BIT
        self.data[hdr : hdr + 4] = new_len.to_bytes(4, "little")
        if flags & BPF_RB_FORCE_WAKEUP:
            self.wakeups += 1
        elif (self.consumer_pos & self.mask) == hdr and not flags & BPF_RB_NO_WAKEUP:
            self.wakeups += 1

    def output(self, data: bytes, flags: int) -> int:
        """bpf_ringbuf_output: 0, -EINVAL or -EAGAIN."""
        if flags & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            return -_errno.EINVAL
        off = self.reserve(len(data))
        if off < 0:
            return -_errno.EAGAIN
        self.region.put(off, data)
        self.commit(off, flags, discard=False)
        return 0

    def query(self, flags: int) -> int:
        """bpf_ringbuf_query."""
        if flags == BPF_RB_AVAIL_DATA:
            return self.producer_pos - self.consumer_pos
        if flags == BPF_RB_RING_SIZE:
            return self.size
        if flags == BPF_RB_CONS_POS:
            return self.consumer_pos
        if flags == BPF_RB_PROD_POS:
            return self.producer_pos
        return 0

    def record_address(self, data_off: int) -> int:
        return self.region.base + data_off if self._mem is not None else 0

    # -- consumer side (libbpf's ring_buffer)
    def _read(self, pos: int, n: int) -> bytes:
        return self.region.get(pos, n)

    def consume(self, callback: Callable[[bytes], Any] | None = None) -> list[bytes]:
        """Read every committed record (discarded ones are skipped), advancing the
        consumer position; stops at a record still being written.  ``callback(data)``
        is called per record; a negative return stops after that record (libbpf)."""
        out: list[bytes] = []
        cons = self.consumer_pos
        while cons < self.producer_pos:
            hl = self._hdr_len(cons)
            if hl & BPF_RINGBUF_BUSY_BIT:
                break
            size = hl & ~BPF_RINGBUF_DISCARD_BIT
            start = cons
            cons += round_up(size + BPF_RINGBUF_HDR_SZ, 8)
            if not hl & BPF_RINGBUF_DISCARD_BIT:
                rec = self._read(start + BPF_RINGBUF_HDR_SZ, size)
                out.append(rec)
                if callback is not None:
                    rc = callback(rec)
                    if isinstance(rc, int) and rc < 0:
                        break
        self.consumer_pos = cons
        return out

    def poll(self, timeout: float | None = None) -> list[bytes]:
        """libbpf's ring_buffer__poll: in the simulator nothing arrives while Python
        waits, so this is :meth:`consume`."""
        return self.consume()

    def _count(self) -> int:
        n = 0
        cons = self.consumer_pos
        while cons < self.producer_pos:
            hl = self._hdr_len(cons)
            if hl & BPF_RINGBUF_BUSY_BIT:
                break
            if not hl & BPF_RINGBUF_DISCARD_BIT:
                n += 1
            cons += round_up((hl & ~BPF_RINGBUF_DISCARD_BIT) + BPF_RINGBUF_HDR_SZ, 8)
        return n

    def keys(self):  # type: ignore[override]
        """A ring buffer has no keys (see :meth:`consume`)."""
        return iter(())

    def memory_usage(self) -> int:
        return len(self.data)

    # -- memory
    def _attach(self, mem: AddressSpace) -> None:
        mem.map(self.region)

    def _detach(self) -> None:
        if self._mem is not None:
            self._mem.unmap(self.region)
