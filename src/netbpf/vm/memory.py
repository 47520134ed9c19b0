"""The VM's memory: a 64-bit virtual address space made of bounded regions.

Why this shape:
- Every region (a stack frame, the context, the packet buffer, a map's value storage,
  a ringbuf record...) gets its own 4 GiB *slot* of the address space, so turning a
  pointer into (region, offset) is one shift and one dict lookup, and pointer
  arithmetic that leaves a region lands on no region (a clean fault) instead of in a
  neighbour.
- Region storage is a fixed-size ``bytearray`` that is never resized (a packet buffer is
  allocated with its full headroom and tailroom up front, as the kernel does).  A native
  JIT can therefore take each buffer's host address once (ctypes ``from_buffer``) and
  run on the very bytes Python sees, with the same bounds, without copying.
- Addresses look like kernel addresses (slot numbers start at ``0xffff8880``), and the
  NULL page and small integers map to no region, so a dereferenced scalar faults.

Faults raise :class:`MemoryFault`; the engines turn it into a
:class:`netbpf.errors.ProgramFault` that names the instruction.
"""

from __future__ import annotations

from collections.abc import Callable

from netbpf.errors import NetbpfError

__all__ = [
    "SLOT_SHIFT",
    "AddressSpace",
    "CallbackRegion",
    "MemoryFault",
    "Region",
]

SLOT_SHIFT = 32
OFFSET_MASK = (1 << SLOT_SHIFT) - 1
FIRST_SLOT = 0xFFFF8880


class MemoryFault(NetbpfError):
    """An access outside every region, or forbidden by the region's permissions.

    Internal to the VM and helpers: the engine re-raises it as ProgramFault with the
    instruction index."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Region:
    """A bounded, contiguous piece of memory the program may touch.

    ``lo``/``hi`` narrow the accessible window inside ``buf`` (a packet buffer is
    allocated with headroom and tailroom, but only ``[data_meta, data_end)`` is
    accessible); ``writable`` False makes stores fault (``.rodata``, frozen maps)."""

    __slots__ = ("base", "buf", "hi", "kind", "lo", "name", "writable")

    def __init__(
        self,
        name: str,
        buf: bytearray,
        *,
        kind: str = "mem",
        writable: bool = True,
        lo: int = 0,
        hi: int | None = None,
    ) -> None:
        self.name = name
        self.buf = buf
        self.kind = kind
        self.writable = writable
        self.lo = lo
        self.hi = len(buf) if hi is None else hi
        self.base = 0  # assigned by AddressSpace.map

    def _check(self, off: int, size: int, write: bool) -> None:
        if off < self.lo or off + size > self.hi:
            raise MemoryFault(
                f"invalid {'write' if write else 'read'} of {size} bytes at {self.name}+{off} "
                f"(accessible range [{self.lo}, {self.hi}))"
            )
        if write and not self.writable:
            raise MemoryFault(f"write of {size} bytes into read-only {self.name}+{off}")

    def load(self, off: int, size: int) -> int:
        self._check(off, size, False)
        return int.from_bytes(self.buf[off : off + size], "little")

    def store(self, off: int, size: int, value: int) -> None:
        self._check(off, size, True)
        self.buf[off : off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def read(self, off: int, size: int) -> bytes:
        self._check(off, size, False)
        return bytes(self.buf[off : off + size])

    def write(self, off: int, data: bytes) -> None:
        self._check(off, len(data), True)
        self.buf[off : off + len(data)] = data

    def __repr__(self) -> str:
        return f"<Region {self.name} kind={self.kind} base={self.base:#x} [{self.lo},{self.hi})>"


class CallbackRegion(Region):
    """A region whose loads and stores are computed, not stored: the program context.

    The kernel rewrites context accesses at load time (``xdp_md->data`` is a 4-byte
    field in C but yields a 64-bit packet pointer); we do the same at run time through
    ``on_load(off, size) -> int`` and ``on_store(off, size, value)``, which raise
    MemoryFault for fields the program type may not touch."""

    __slots__ = ("on_load", "on_store")

    def __init__(
        self,
        name: str,
        size: int,
        on_load: Callable[[int, int], int],
        on_store: Callable[[int, int, int], None] | None = None,
        *,
        kind: str = "ctx",
    ) -> None:
        super().__init__(name, bytearray(size), kind=kind, writable=on_store is not None)
        self.on_load = on_load
        self.on_store = on_store

    def load(self, off: int, size: int) -> int:
        self._check(off, size, False)
        return self.on_load(off, size)

    def store(self, off: int, size: int, value: int) -> None:
        self._check(off, size, True)
        assert self.on_store is not None
        self.on_store(off, size, value)

    def read(self, off: int, size: int) -> bytes:
        return b"".join(self.load(off + i, 1).to_bytes(1, "little") for i in range(size))

    def write(self, off: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.store(off + i, 1, b)


class AddressSpace:
    """The set of regions one program run can reach, keyed by slot (address >> 32)."""

    __slots__ = ("_next_slot", "slots")

    def __init__(self) -> None:
        self.slots: dict[int, Region] = {}
        self._next_slot = FIRST_SLOT

    def map(self, region: Region) -> int:
        """Give ``region`` a slot; returns its base address (offset 0 of ``buf``)."""
        slot = self._next_slot
        self._next_slot += 1
        self.slots[slot] = region
        region.base = slot << SLOT_SHIFT
        return region.base

    def unmap(self, region: Region) -> None:
        self.slots.pop(region.base >> SLOT_SHIFT, None)

    def resolve(self, addr: int) -> tuple[Region, int]:
        region = self.slots.get((addr & 0xFFFFFFFFFFFFFFFF) >> SLOT_SHIFT)
        if region is None:
            raise MemoryFault(
                f"invalid memory access at address {addr & 0xFFFFFFFFFFFFFFFF:#x} (no region)"
            )
        return region, addr & OFFSET_MASK

    def load(self, addr: int, size: int) -> int:
        region, off = self.resolve(addr)
        return region.load(off, size)

    def store(self, addr: int, size: int, value: int) -> None:
        region, off = self.resolve(addr)
        region.store(off, size, value)

    def read(self, addr: int, size: int) -> bytes:
        region, off = self.resolve(addr)
        return region.read(off, size)

    def write(self, addr: int, data: bytes) -> None:
        region, off = self.resolve(addr)
        region.write(off, data)
