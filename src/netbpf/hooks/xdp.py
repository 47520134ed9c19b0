"""The XDP buffer as BPF_PROG_TEST_RUN builds it, and the ``xdp_md`` context.

Models ``struct xdp_buff`` of ``bpf_prog_test_run_xdp`` (Linux 6.18): one 4096-byte
frame (``frame_sz`` = PAGE_SIZE) whose first XDP_PACKET_HEADROOM (256) bytes are
headroom, the metadata (``ctx_in->data`` bytes, taken from the front of data_in)
right before ``data``, the linear packet, and at the end the 320 bytes of
``skb_shared_info`` no program can reach.  What does not fit the linear area (or lies
beyond ``ctx_in->data_end``) goes into page-sized fragments (``frags``), which only
helpers (``bpf_xdp_load_bytes``...) can reach.

The packet is a :class:`~netbpf.vm.memory.Region` over the frame with the accessible
window ``[data_meta, data_end)``; :meth:`XdpBuff.sync` keeps it in step when a helper
(``bpf_xdp_adjust_head/meta/tail``) moves the pointers.

``xdp_md`` as the 6.18 verifier allows it: 4-byte loads only, no stores;
``data``/``data_meta``/``data_end`` give 64-bit packet pointers; ``ingress_ifindex``
and ``rx_queue_index`` come from the RX queue (loopback queue 0 unless ctx_in names
another); ``egress_ifindex`` only for programs attached to a devmap (which test_run
refuses).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from netbpf.hooks.context import LOOPBACK, Access, CtxField, CtxTable, NetDevice
from netbpf.hooks.skb import MAX_PACKET_REMAPS
from netbpf.uapi import CTX_LAYOUTS, AttachType
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

__all__ = [
    "MAX_SKB_FRAGS",
    "XDP_FRAME_SIZE",
    "XDP_MAX_LINEAR",
    "XDP_METADATA_MAX",
    "XDP_PACKET_HEADROOM",
    "XdpBuff",
    "XdpRxQueue",
    "map_xdp_context",
    "xdp_ctx_table",
]

PAGE_SIZE = 4096
XDP_PACKET_HEADROOM = 256
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)): the frame's tail the program never sees
XDP_TAILROOM = 320
XDP_FRAME_SIZE = PAGE_SIZE
#: linear packet room without metadata: 4096 - 256 - 320
XDP_MAX_LINEAR = PAGE_SIZE - XDP_PACKET_HEADROOM - XDP_TAILROOM
#: sizeof(struct xdp_frame): the headroom an xdp_frame conversion needs to keep free,
#: so metadata may use at most 256 - 40 bytes of the headroom
XDP_FRAME_STRUCT_SIZE = 40
#: the largest metadata length test_run accepts (also a multiple of 4, <= 255)
XDP_METADATA_MAX = XDP_PACKET_HEADROOM - XDP_FRAME_STRUCT_SIZE
MAX_SKB_FRAGS = 17

_LAYOUT = {name: (off, size) for name, off, size, _ in CTX_LAYOUTS["xdp_md"][1]}


@dataclass(frozen=True)
class XdpRxQueue:
    """``xdp_rxq_info``: the device and queue index the frame arrived on."""

    dev: NetDevice = LOOPBACK
    queue_index: int = 0


@dataclass
class XdpBuff:
    """An XDP frame: offsets into ``frame`` (``hard_start`` is 0), the RX queue, the
    TX device (devmap programs only) and the fragments."""

    frame: bytearray
    data_meta: int
    data: int
    data_end: int
    rxq: XdpRxQueue = field(default_factory=XdpRxQueue)
    txq_dev: NetDevice | None = None
    frags: list[bytearray] = field(default_factory=list)
    frame_sz: int = XDP_FRAME_SIZE
    region: Region | None = field(default=None, repr=False)
    _remaps: int = field(default=0, repr=False, compare=False)

    @property
    def frags_size(self) -> int:
        return sum(len(f) for f in self.frags)

    @property
    def metalen(self) -> int:
        return self.data - self.data_meta

    @property
    def linear(self) -> bytes:
        return bytes(self.frame[self.data : self.data_end])

    def bytes_out(self) -> bytes:
        """What test_run copies to data_out: metadata, linear data, then fragments."""
        return bytes(self.frame[self.data_meta : self.data_end]) + b"".join(
            bytes(f) for f in self.frags
        )

    def map(self, mem: AddressSpace) -> int:
        self.region = Region("xdp packet", self.frame, kind="packet", writable=True)
        mem.map(self.region)
        self.sync()
        return self.region.base

    def sync(self) -> None:
        """Make the packet region's window ``[data_meta, data_end)``."""
        if self.region is not None:
            self.region.lo = self.data_meta
            self.region.hi = self.data_end

    def addr(self, off: int) -> int:
        if self.region is None:
            raise MemoryFault("the XDP frame is not mapped")
        return self.region.base + off

    @property
    def buff_len(self) -> int:
        """``xdp_get_buff_len``: linear data (without metadata) plus fragments."""
        return self.data_end - self.data + self.frags_size

    def remap(self, mem: AddressSpace) -> None:
        """Map the frame at a new address so packet pointers taken before a
        packet-changing helper (bpf_xdp_adjust_head/tail/meta) fault, as the verifier
        invalidates them; ``data``/``data_end``/``data_meta`` reloaded from the context
        point into the new mapping."""
        if self.region is None:
            return
        if self._remaps >= MAX_PACKET_REMAPS:
            self.sync()  # past the limit the frame keeps its address (see SkBuff.remap)
            return
        self._remaps += 1
        mem.unmap(self.region)
        self.map(mem)


def _egress(x: XdpBuff) -> int:
    return x.txq_dev.ifindex if x.txq_dev is not None else 0


@functools.cache
def xdp_ctx_table(attach_type: AttachType | None) -> CtxTable:
    """The ``xdp_md`` context (``xdp_is_valid_access`` + ``xdp_convert_ctx_access``)
    for programs of ``attach_type``; built once per attach type."""

    def fld(name: str, access: Access, get: Callable[[XdpBuff], int]) -> CtxField:
        off, size = _LAYOUT[name]
        return CtxField(name, off, size, access, get)

    fields = [
        fld("data", Access.PTR32, lambda x: x.addr(x.data)),
        fld("data_end", Access.PTR32, lambda x: x.addr(x.data_end)),
        fld("data_meta", Access.PTR32, lambda x: x.addr(x.data_meta)),
        fld("ingress_ifindex", Access.WORD, lambda x: x.rxq.dev.ifindex),
        fld("rx_queue_index", Access.WORD, lambda x: x.rxq.queue_index),
        fld("egress_ifindex", Access.WORD, _egress),
    ]
    readable = {"data", "data_end", "data_meta", "ingress_ifindex", "rx_queue_index"}
    devmap = attach_type == AttachType.XDP_DEVMAP
    if devmap:
        readable.add("egress_ifindex")
    return CtxTable(
        "xdp_md",
        CTX_LAYOUTS["xdp_md"][0],
        fields,
        frozenset(readable),
        frozenset(),
        "XDP (devmap)" if devmap else "XDP",
    )


def map_xdp_context(
    xdp: XdpBuff, attach_type: AttachType | None, mem: AddressSpace
) -> tuple[int, CtxTable]:
    """Map the frame and the ``xdp_md`` context into ``mem``; returns (ctx address,
    the context table)."""
    xdp.map(mem)
    table = xdp_ctx_table(attach_type)
    return mem.map(table.region(xdp)), table
