"""Pieces every hook's context model shares: network devices, and the table-driven
description of which context fields a program type may touch, with which access sizes.

Why tables: the kernel decides context access twice -- the verifier's
``*_is_valid_access`` says whether ``(offset, size, read|write)`` is allowed for a
program type, and ``*_convert_ctx_access`` rewrites the access into loads of the real
kernel object.  We model the first as data (:class:`CtxField` rows plus per-type sets
of readable/writable field names, checked against the running kernel's verifier by
``tests/test_testrun_ctx_access.py``) and the second as one getter/setter per field.
At run time an access the table refuses faults with a message naming the field; the
verifier (a later issue) will refuse the same accesses statically, so in a verified
program the fault is only a backstop.

Narrow loads: for a 4-byte field the kernel allows 1- and 2-byte loads at any
naturally aligned offset inside it.  ``convert_ctx_accesses`` rewrites such a load into
a load of the whole *kernel* field (``target_size`` bytes: 2 for ``protocol``, 1 for
``pkt_type``...) and only when the access is narrower than that kernel field shifts by
the access offset and masks: ``(value >> 8 * (off & 3)) & mask``.  A load at least as
wide as the kernel field gets the whole value, wherever it points: a 2-byte load of
``__sk_buff->protocol + 2`` returns the protocol again, a 1-byte load of
``pkt_type + 3`` the pkt_type.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from netbpf.vm.memory import CallbackRegion, MemoryFault

__all__ = [
    "LOOPBACK",
    "Access",
    "CtxField",
    "CtxTable",
    "NetDevice",
    "default_devices",
    "host_devices",
]


@dataclass(frozen=True)
class NetDevice:
    """A network device as test_run sees it: what ``eth_type_trans`` compares the
    destination MAC with (``addr``, ``broadcast``), and how many RX queues XDP's
    ``rx_queue_index`` may name.

    The loopback device has the all-zero address *and* the all-zero broadcast address,
    so on it a frame to ff:ff:ff:ff:ff:ff is PACKET_MULTICAST, not PACKET_BROADCAST."""

    ifindex: int
    name: str
    addr: bytes = bytes(6)
    broadcast: bytes = bytes(6)
    num_rx_queues: int = 1


#: ``lo`` of the network namespace; test_run uses it unless ctx_in names another device.
LOOPBACK = NetDevice(1, "lo")


def host_devices(sysfs: str | os.PathLike[str] = "/sys/class/net") -> dict[int, NetDevice]:
    """The devices of the current network namespace as the kernel sees them (ifindex,
    MAC and broadcast address, number of RX queues), read from sysfs: give them to
    ``SimBackend(devices=...)`` to test-run with the same devices as the kernel.
    Devices whose address is not 6 bytes (tunnels...) get all-zero addresses."""
    out: dict[int, NetDevice] = {}
    root = Path(sysfs)
    if not root.is_dir():
        return default_devices()
    for d in sorted(root.iterdir()):
        try:
            ifindex = int((d / "ifindex").read_text())
            addr = _mac((d / "address").read_text())
            bcast = _mac((d / "broadcast").read_text())
            queues = sum(1 for q in (d / "queues").iterdir() if q.name.startswith("rx-"))
        except (OSError, ValueError):
            continue
        out[ifindex] = NetDevice(ifindex, d.name, addr, bcast, max(queues, 1))
    return out or default_devices()


def _mac(text: str) -> bytes:
    raw = bytes.fromhex(text.strip().replace(":", ""))
    return raw if len(raw) == 6 else bytes(6)


def default_devices() -> dict[int, NetDevice]:
    """The devices the simulator knows by default: only ``lo``.  A ctx_in that names
    any other ifindex is refused with ENODEV, as the kernel does for an ifindex that
    does not exist in the namespace."""
    return {LOOPBACK.ifindex: LOOPBACK}


class Access(Enum):
    """How a context field may be accessed (the size rules of ``*_is_valid_access``)."""

    #: a 4-byte scalar: narrow loads (1, 2, 4 bytes, naturally aligned inside the
    #: field); stores of exactly 4 bytes at the field's start
    U32 = "u32"
    #: exactly 4 bytes, loads only at the field's start; the value is a 64-bit pointer
    #: (xdp_md->data, __sk_buff->data...)
    PTR32 = "ptr32"
    #: exactly 4 bytes at each naturally aligned word (IPv4/IPv6 address words)
    WORD = "word"
    #: exactly 8 bytes at the field's start
    U64 = "u64"
    #: plain memory: 1, 2, 4 or 8 bytes, naturally aligned, inside the field
    MEM = "mem"
    #: exactly 1 byte at the field's start
    U8 = "u8"
    #: the field's start only, 1, 2 or 4 bytes (bpf_sock's enum-like fields)
    HEAD = "head"


#: ``get(obj) -> value`` of a field on the context's object (an SkBuff, an XdpBuff...)
Getter = Callable[[Any], int]
#: ``set(obj, offset within field, size, value)``
Setter = Callable[[Any, int, int, int], None]


@dataclass
class CtxField:
    """One field of a context struct: its place, its access rule, and how to read and
    write it on the object the context describes."""

    name: str
    offset: int
    size: int
    access: Access
    get: Getter
    set: Setter | None = None
    #: for Access.MEM fields: ``read_mem(obj, offset within field, size)``
    read_mem: Callable[[Any, int, int], int] | None = None
    #: allowed load sizes for this field when they differ from the access rule's
    #: (bpf_sock.dst_port: 2 bytes at +0, 1 byte at +0 and +1)
    load_sizes: Mapping[int, frozenset[int]] | None = None
    #: the width of the kernel field the access is rewritten to (``target_size``):
    #: a narrow load at least this wide returns the whole value unshifted
    target: int = 4


class CtxTable:
    """A context struct for one program type: its fields (in offset order), which of
    them the type may read and write, and the struct name for messages.

    A table is static (built once per program type) and works on any object of its
    kind; :meth:`region` binds it to one object as the program's context region.  The
    verdict for each ``(offset, size, read|write)`` is computed once and memoised."""

    def __init__(
        self,
        struct: str,
        size: int,
        fields: list[CtxField],
        readable: frozenset[str],
        writable: frozenset[str],
        prog_desc: str,
    ) -> None:
        self.struct = struct
        self.size = size
        self.fields = fields
        self.readable = readable
        self.writable = writable
        self.prog_desc = prog_desc
        self._by_off: dict[int, CtxField] = {}
        for f in fields:
            for o in range(f.offset, f.offset + f.size):
                self._by_off[o] = f
        self._verdicts: dict[tuple[int, int, bool], CtxField | str] = {}

    def check(self, off: int, size: int, write: bool) -> CtxField:
        """The field an access hits, or MemoryFault saying why it is not allowed."""
        key = (off, size, write)
        v = self._verdicts.get(key)
        if v is None:
            v = self._verdicts[key] = self._verdict(off, size, write)
        if isinstance(v, str):
            raise MemoryFault(v)
        return v

    def _verdict(self, off: int, size: int, write: bool) -> CtxField | str:
        what = "write" if write else "read"
        f = self._by_off.get(off)
        if f is None:
            return (
                f"invalid {self.struct} {what} of {size} bytes at offset {off}: "
                "no field there (padding)"
            )
        allowed = f.name in (self.writable if write else self.readable)
        if not allowed:
            return (
                f"invalid {self.struct} {what} of {self.struct}->{f.name} (offset {off}, "
                f"{size} bytes): {self.prog_desc} programs may not {what} this field"
            )
        if not self._size_ok(f, off - f.offset, size, write):
            return (
                f"invalid {self.struct} {what} of {self.struct}->{f.name}: {size}-byte "
                f"access at offset {off} is not allowed (field is {f.size} bytes at "
                f"offset {f.offset}, rule {f.access.value})"
            )
        return f

    @staticmethod
    def _size_ok(f: CtxField, rel: int, size: int, write: bool) -> bool:
        if size not in (1, 2, 4, 8) or (f.offset + rel) % size:
            return False
        a = f.access
        if a is Access.MEM:
            return rel + size <= f.size
        if write:
            if a is Access.U32:
                return size == 4 and rel == 0
            if a is Access.U64:
                return size == 8 and rel == 0
            return False
        if f.load_sizes is not None:
            return size in f.load_sizes.get(rel, frozenset())
        if a is Access.U32:
            return size <= 4 and rel + size <= 4
        if a is Access.PTR32:
            return size == 4 and rel == 0
        if a is Access.WORD:
            return size == 4
        if a is Access.U64:
            return size == 8 and rel == 0
        if a is Access.U8:
            return size == 1 and rel == 0
        if a is Access.HEAD:
            return size <= 4 and rel == 0
        return False  # pragma: no cover - every Access handled above

    def load(self, obj: Any, off: int, size: int) -> int:
        """The value a ``size``-byte load at ``off`` gives on ``obj`` (a 64-bit pointer
        for the PTR32 fields), or MemoryFault."""
        f = self.check(off, size, False)
        rel = off - f.offset
        if f.access is Access.MEM:
            assert f.read_mem is not None
            return f.read_mem(obj, rel, size)
        value = f.get(obj)
        if f.access is Access.PTR32:
            return value & 0xFFFF_FFFF_FFFF_FFFF
        if f.access is Access.WORD:
            return (value >> (8 * (rel & ~3))) & 0xFFFF_FFFF
        if size >= f.target:
            return value & ((1 << (8 * max(size, 4))) - 1)
        return (value >> (8 * (off & 3))) & ((1 << (8 * size)) - 1)

    def store(self, obj: Any, off: int, size: int, value: int) -> None:
        f = self.check(off, size, True)
        assert f.set is not None, f"{self.struct}->{f.name} writable without a setter"
        f.set(obj, off - f.offset, size, value & 0xFFFF_FFFF_FFFF_FFFF)

    def region(self, obj: Any, *, kind: str = "ctx") -> CallbackRegion:
        """A context region over ``obj``; every access goes through the table, so a
        refused store names the field, as a refused load does."""
        table = self

        def on_load(off: int, size: int) -> int:
            return table.load(obj, off, size)

        def on_store(off: int, size: int, value: int) -> None:
            table.store(obj, off, size, value)

        return CallbackRegion(self.struct, self.size, on_load, on_store, kind=kind)
