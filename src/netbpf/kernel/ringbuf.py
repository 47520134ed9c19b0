"""Reading a kernel BPF_MAP_TYPE_RINGBUF from Python: libbpf's ``ring_buffer``
consumer with ``mmap`` and ``epoll`` from the standard library.

Why no C extension: the ring is plain shared memory with a documented layout, so two
``mmap`` objects and ``struct`` reads do what libbpf's C does, and netbpf keeps
installing with pip alone.

The kernel's layout of a ring buffer map's file (kernel/bpf/ringbuf.c), as mmap sees it:

* offset 0, one page: ``consumer_pos`` (u64 at the start), the only page user space
  may map writable -- the consumer advances it to give space back to producers;
* offset one page, one page: ``producer_pos`` (u64), read-only;
* then the ``size`` data bytes, mapped **twice** in a row (read-only), so a record
  that wraps past the end of the ring reads contiguously from the second copy.

Records start at ``pos & (size - 1)`` with an 8-byte header: u32 ``len`` whose bit 31
(BPF_RINGBUF_BUSY_BIT) says the producer has not committed it yet and bit 30
(BPF_RINGBUF_DISCARD_BIT) that it was discarded, then u32 ``pg_off`` (kernel-internal).
A record occupies ``round_up(len + 8, 8)`` bytes.  Positions only grow.

Waiting: ``poll()`` on the map's fd says readable while the producer is ahead of the
consumer; producers wake waiters when they commit the record the consumer waits for
(unless BPF_RB_NO_WAKEUP) or with BPF_RB_FORCE_WAKEUP.  :meth:`KernelRingBuffer.poll`
registers a duplicate of the map fd with ``select.epoll``.

Memory ordering: the kernel publishes ``producer_pos`` with a release store and
reads ``consumer_pos`` with an acquire load; on the little-endian 64-bit machines the
kernel backend supports, aligned 8-byte loads and stores through ``mmap`` are single
instructions, and Python's calls between them are compiler barriers, which is what
libbpf's ``smp_load_acquire``/``smp_store_release`` compile to on x86-64 (on arm64
they are ordered loads/stores: readers there rely on the syscall/epoll barriers).
"""

from __future__ import annotations

import errno as _errno
import mmap
import os
import select
import struct

from netbpf.errors import KernelError, MapError
from netbpf.kernel import syscall as _sys
from netbpf.maps.constants import (
    BPF_RINGBUF_BUSY_BIT,
    BPF_RINGBUF_DISCARD_BIT,
    BPF_RINGBUF_HDR_SZ,
)
from netbpf.uapi import MapType

__all__ = ["KernelRingBuffer"]

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def _round8(n: int) -> int:
    return (n + 7) & ~7


class KernelRingBuffer:
    """The consumer of one kernel ring buffer map (see the module docstring).

    ``map_fd`` is any fd of a RINGBUF map; the reader duplicates it, so it stays valid
    after the caller closes its own.  Use :meth:`netbpf.collection.Collection.ringbuf`
    rather than constructing one."""

    def __init__(self, map_fd: int, *, name: str = "") -> None:
        self.name = name
        self._fd = -1
        self._cons: mmap.mmap | None = None
        self._prod: mmap.mmap | None = None
        self._epoll: select.epoll | None = None
        info = _sys.map_info(map_fd)
        if info.type != int(MapType.RINGBUF):
            raise MapError(
                f"ringbuf {name!r}: map type {info.type} is not BPF_MAP_TYPE_RINGBUF",
                errno=_errno.EINVAL,
            )
        size = info.max_entries
        self._size = size
        self._mask = size - 1
        self._page = mmap.PAGESIZE
        self._fd = os.dup(map_fd)
        try:
            self._cons = mmap.mmap(
                self._fd, self._page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            self._prod = mmap.mmap(
                self._fd,
                self._page + 2 * size,
                mmap.MAP_SHARED,
                mmap.PROT_READ,
                offset=self._page,
            )
            self._epoll = select.epoll()
            self._epoll.register(self._fd, select.EPOLLIN)
        except OSError as e:
            self.close()
            raise KernelError(
                "mmap", e.errno or _errno.EINVAL, detail=f"ring buffer {name!r}: {e.strerror}"
            ) from None
        except BaseException:
            self.close()
            raise

    # -- positions -----------------------------------------------------------------------
    @property
    def size(self) -> int:
        """The ring's data size in bytes (the map's max_entries)."""
        return self._size

    def _maps(self, op: str) -> tuple[mmap.mmap, mmap.mmap]:
        if self._cons is None or self._prod is None:
            raise MapError(f"ringbuf {self.name!r}: {op}: the reader is closed", errno=_errno.EBADF)
        return self._cons, self._prod

    @property
    def consumer_pos(self) -> int:
        cons, _ = self._maps("consumer_pos")
        return _U64.unpack_from(cons, 0)[0]

    @property
    def producer_pos(self) -> int:
        _, prod = self._maps("producer_pos")
        return _U64.unpack_from(prod, 0)[0]

    @property
    def available(self) -> int:
        """Bytes between consumer and producer (records, headers, padding, discards)."""
        return self.producer_pos - self.consumer_pos

    @property
    def closed(self) -> bool:
        return self._cons is None

    def fileno(self) -> int:
        """The reader's own map fd (readable when records are pending), for selectors."""
        self._maps("fileno")
        return self._fd

    # -- reading -------------------------------------------------------------------------
    def consume(self) -> list[bytes]:
        """Every committed record, in order; advances the consumer position past each
        one (discarded records are skipped, a BUSY one ends the batch)."""
        cons_map, prod_map = self._maps("consume")
        page = self._page
        out: list[bytes] = []
        cons = _U64.unpack_from(cons_map, 0)[0]
        while True:
            prod = _U64.unpack_from(prod_map, 0)[0]
            if cons >= prod:
                return out
            while cons < prod:
                off = page + (cons & self._mask)
                hdr = _U32.unpack_from(prod_map, off)[0]
                if hdr & BPF_RINGBUF_BUSY_BIT:
                    return out
                length = hdr & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)
                step = _round8(length + BPF_RINGBUF_HDR_SZ)
                if step > self._size:
                    raise MapError(
                        f"ringbuf {self.name!r}: corrupt record header {hdr:#010x} at "
                        f"position {cons} (longer than the {self._size}-byte ring)",
                        errno=_errno.EIO,
                    )
                if not hdr & BPF_RINGBUF_DISCARD_BIT:
                    start = off + BPF_RINGBUF_HDR_SZ
                    out.append(prod_map[start : start + length])
                cons += step
                # hand the space back record by record, as libbpf does
                _U64.pack_into(cons_map, 0, cons)
            # the producer may have moved on meanwhile: look again (libbpf does)

    def poll(self, timeout: float | None = None) -> list[bytes]:
        """The records available now, or else those that arrive within ``timeout``
        seconds (None: wait for ever) -- epoll_wait on the map fd."""
        out = self.consume()
        if out or timeout == 0:
            return out
        ep = self._epoll
        if ep is None:
            raise MapError(f"ringbuf {self.name!r}: poll: the reader is closed", errno=_errno.EBADF)
        ep.poll(-1 if timeout is None else max(0.0, float(timeout)))
        return self.consume()

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap the ring and close the reader's fd (idempotent)."""
        for attr in ("_cons", "_prod"):
            mm = getattr(self, attr)
            setattr(self, attr, None)
            if mm is not None:
                mm.close()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> KernelRingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<KernelRingBuffer {self.name!r} size={self._size} {state}>"
