"""The socket buffer as BPF_PROG_TEST_RUN builds it, and the ``__sk_buff`` context.

Models the kernel's ``struct sk_buff`` as far as BPF programs of the skb family
(SOCKET_FILTER, SCHED_CLS, SCHED_ACT, CGROUP_SKB, LWT_IN, LWT_OUT, LWT_XMIT) can see
it in ``net/bpf/test_run.c`` on Linux 6.18:

* one linear buffer (``head``) with the kernel's layout: NET_SKB_PAD + NET_IP_ALIGN
  bytes of headroom (64 on x86-64), the data rounded up to SMP_CACHE_BYTES, then the
  ``skb_shared_info`` area (320 bytes) that no program can reach;
* ``data``/``tail`` offsets, ``mac_header``/``network_header``, the scalar fields
  the ``__sk_buff`` context exposes (mark, priority, tc_index, queue_mapping, hash...),
  the qdisc control block (``cb``: ``pkt_len``, ``tc_classid``, 20 bytes of program
  scratch) and the shared-info fields test_run sets (gso_segs, gso_size, hwtstamp);
* the dummy socket test_run attaches (``skb->sk``), whose family and addresses come
  from the packet's IP header.

The packet is a :class:`~netbpf.vm.memory.Region` over ``head`` whose accessible
window is ``[data_meta, data_end)``; ``SkBuff.sync()`` keeps that window (and the
pointers the context hands out) in step when the data moves.  Helpers that change the
packet (``bpf_skb_change_head``...) use :meth:`SkBuff.push`, :meth:`SkBuff.pull`,
:meth:`SkBuff.put`, :meth:`SkBuff.trim` and :meth:`SkBuff.expand_head`.

For the helpers the model also carries ``mac_len``, the checksum state
(``ip_summed``/``csum_level``/``csum``), how the hash was set (``sw_hash``,
``l4_hash``), the encapsulation state bpf_skb_adjust_room sets (``encapsulation`` and
the inner headers) and the tunnel metadata of bpf_skb_set_tunnel_key (``tun_info``);
:meth:`SkBuff.remap` moves the packet to a new address range so that packet pointers
taken before a packet-changing helper fault, as the verifier would refuse them.

What is left out: non-linear skbs (frags: test_run never builds one for the skb
family), hardware VLAN acceleration (``vlan_present`` is always 0 in test_run), the
flow hash (``hash`` stays 0 unless a helper sets it), socket lookups.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netbpf.hooks.context import LOOPBACK, Access, CtxField, CtxTable, NetDevice
from netbpf.uapi import CTX_LAYOUTS, ProgramType
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

__all__ = [
    "CHECKSUM_COMPLETE",
    "CHECKSUM_NONE",
    "CHECKSUM_PARTIAL",
    "CHECKSUM_UNNECESSARY",
    "ETH_HLEN",
    "LOOPBACK",
    "MAX_PACKET_REMAPS",
    "NET_SKB_PAD",
    "PKT_WRITABLE",
    "SKB_ACCESS",
    "SKB_HEADROOM",
    "SKB_MAX_TEST_DATA",
    "SKB_PROG_TYPES",
    "SKB_SHINFO_SIZE",
    "SKF_LL_OFF",
    "SKF_NET_OFF",
    "DummySock",
    "SkBuff",
    "lookup_device",
    "map_skb_context",
    "skb_ctx_table",
    "sock_ctx_table",
]

ETH_HLEN = 14
ETH_ALEN = 6
PAGE_SIZE = 4096
SMP_CACHE_BYTES = 64
#: x86-64: NET_SKB_PAD = max(32, L1_CACHE_BYTES) = 64, NET_IP_ALIGN = 0
NET_SKB_PAD = 64
NET_IP_ALIGN = 0
SKB_HEADROOM = NET_SKB_PAD + NET_IP_ALIGN
#: SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) with MAX_SKB_FRAGS = 17
SKB_SHINFO_SIZE = 320
#: the largest data_size_in test_run accepts for the skb family
SKB_MAX_TEST_DATA = PAGE_SIZE - SKB_HEADROOM - SKB_SHINFO_SIZE
#: qdisc_skb_cb's private area (__sk_buff->cb[5])
QDISC_CB_PRIV_LEN = 20
GSO_LEGACY_MAX_SIZE = 65536
GSO_MAX_SEGS = 65535
#: a store of this value or more into __sk_buff->queue_mapping is ignored
NO_QUEUE_MAPPING = 0xFFFF

PACKET_HOST = 0
PACKET_BROADCAST = 1
PACKET_MULTICAST = 2
PACKET_OTHERHOST = 3

ETH_P_802_3 = 0x0001
ETH_P_802_2 = 0x0004
ETH_P_802_3_MIN = 0x0600
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10
TCP_CLOSE = 7

#: LD_ABS/LD_IND offsets at or above these (negative) values address the network and
#: the link-layer header instead of skb->data
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000

_M64 = 0xFFFF_FFFF_FFFF_FFFF

#: skb->ip_summed values (include/linux/skbuff.h)
CHECKSUM_NONE = 0
CHECKSUM_UNNECESSARY = 1
CHECKSUM_COMPLETE = 2
CHECKSUM_PARTIAL = 3

#: how many times one packet moves to a new address range (see SkBuff.remap); each
#: move takes an address slot that a simulator reuses only after the run
MAX_PACKET_REMAPS = 256

#: header offsets that move with the data when the head is reallocated
_HEADER_ATTRS = (
    "mac_header",
    "network_header",
    "transport_header",
    "inner_mac_header",
    "inner_network_header",
    "inner_transport_header",
)

#: the program types whose BPF_PROG_TEST_RUN builds an skb (net/bpf/test_run.c)
SKB_PROG_TYPES = frozenset(
    {
        ProgramType.SOCKET_FILTER,
        ProgramType.SCHED_CLS,
        ProgramType.SCHED_ACT,
        ProgramType.CGROUP_SKB,
        ProgramType.LWT_IN,
        ProgramType.LWT_OUT,
        ProgramType.LWT_XMIT,
    }
)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _swab16(v: int) -> int:
    return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)


@dataclass
class DummySock:
    """The socket test_run attaches to its skb (``sk_alloc(net, AF_UNSPEC, ...)`` +
    ``sock_init_data(NULL, sk)``).  Addresses are raw network-order bytes, as in
    ``struct sock_common``: the *source* of the packet becomes the socket's local
    (``rcv_saddr``) address and the destination its remote (``daddr``) one."""

    family: int = AF_UNSPEC
    rcv_saddr: bytes = bytes(4)
    daddr: bytes = bytes(4)
    v6_rcv_saddr: bytes = bytes(16)
    v6_daddr: bytes = bytes(16)
    #: skc_num: the local port in host order
    num: int = 0
    #: skc_dport: the remote port, network order (as a 16-bit big-endian value)
    dport: int = 0
    state: int = TCP_CLOSE
    bound_dev_if: int = 0
    #: sk_rx_queue_mapping; -1 = not recorded
    rx_queue_mapping: int = -1
    type: int = 0
    protocol: int = 0
    mark: int = 0
    priority: int = 0
    #: sk_uid: test_run's socket has no owner, so the kernel gives it uid 0
    uid: int = 0
    #: sk_cookie: 0 until a helper asks for it (then the simulator's next cookie)
    cookie: int = 0
    #: the region its ``struct bpf_sock`` view is mapped at, once mapped
    region: Region | None = field(default=None, repr=False)


@dataclass
class QdiscCb:
    """``struct qdisc_skb_cb`` (the first part of skb->cb): what BPF sees as
    ``wire_len`` (pkt_len), ``tc_classid`` and ``cb[5]`` (data)."""

    pkt_len: int = 0
    tc_classid: int = 0
    data: bytearray = field(default_factory=lambda: bytearray(QDISC_CB_PRIV_LEN))


class SkBuff:
    """A linear socket buffer over one fixed bytearray (see the module docstring).

    Offsets (``data``, ``tail``, ``mac_header``, ``network_header``) index ``head``;
    ``None`` headers are unset.  ``metalen`` is the XDP metadata length in front of
    ``data`` (always 0 in test_run).  Scalar fields hold host-order values;
    ``protocol`` and ``vlan_proto`` hold the 16-bit EtherType value (0x0800), the
    context shows them as the kernel stores them, in network byte order."""

    def __init__(self, head: bytearray, data: int, tail: int, *, name: str = "skb") -> None:
        self.name = name
        self.head = head
        self.data = data
        self.tail = tail
        self.end = len(head) - SKB_SHINFO_SIZE
        self.mac_header: int | None = None
        self.network_header: int | None = None
        self.transport_header: int | None = None
        self.metalen = 0
        self.dev: NetDevice | None = None
        self.protocol = 0
        self.pkt_type = PACKET_HOST
        self.mark = 0
        self.priority = 0
        self.queue_mapping = 0
        self.vlan_proto = 0
        self.vlan_tci = 0
        self.tc_index = 0
        self.hash = 0
        self.skb_iif = 0
        self.napi_id = 0
        self.tstamp = 0
        self.tstamp_type = 0
        self.cb = QdiscCb()
        self.gso_segs = 0
        self.gso_size = 0
        self.hwtstamp = 0
        self.sk: DummySock | None = None
        #: skb->mac_len (test_run leaves it 0; skb_reset_mac_len sets it)
        self.mac_len = 0
        #: checksum state: ip_summed (CHECKSUM_NONE in test_run), csum_level, csum
        self.ip_summed = CHECKSUM_NONE
        self.csum_level = 0
        self.csum = 0
        #: how ``hash`` was set: by software (bpf_set_hash, the flow dissector) and
        #: whether it covers L4; both clear means "no valid hash" (skb_get_hash
        #: recomputes)
        self.sw_hash = False
        self.l4_hash = False
        #: set by bpf_skb_adjust_room's encapsulation flags, with the inner headers
        self.encapsulation = False
        self.inner_mac_header: int | None = None
        self.inner_network_header: int | None = None
        self.inner_transport_header: int | None = None
        self.inner_protocol = 0
        #: the tunnel metadata (ip_tunnel_info) a metadata dst carries, if any
        self.tun_info: Any = None
        #: the packet region, once mapped (see :meth:`map`)
        self.region: Region | None = None
        self._mem: AddressSpace | None = None
        self._pkt_writable = True
        self._remaps = 0

    # -- construction ---------------------------------------------------------------
    @classmethod
    def for_test_run(cls, data_in: bytes) -> SkBuff:
        """The buffer ``bpf_prog_test_run_skb`` allocates: headroom, the data rounded up
        to the cache line, the shared-info tailroom; data copied behind the headroom."""
        size = len(data_in)
        head = bytearray(SKB_HEADROOM + _align(size, SMP_CACHE_BYTES) + SKB_SHINFO_SIZE)
        head[SKB_HEADROOM : SKB_HEADROOM + size] = data_in
        return cls(head, SKB_HEADROOM, SKB_HEADROOM + size)

    # -- geometry -------------------------------------------------------------------
    @property
    def len(self) -> int:
        return self.tail - self.data

    @property
    def headroom(self) -> int:
        return self.data

    @property
    def tailroom(self) -> int:
        return self.end - self.tail

    @property
    def data_meta(self) -> int:
        return self.data - self.metalen

    def bytes(self) -> bytes:
        """The packet: ``head[data:tail]``."""
        return bytes(self.head[self.data : self.tail])

    def push(self, n: int) -> int:
        """``__skb_push``: grow the packet at the front by ``n`` bytes (headroom must
        allow it); returns the new data offset."""
        if n > self.data:
            raise MemoryFault(f"skb_push of {n} bytes with only {self.data} bytes of headroom")
        self.data -= n
        self.sync()
        return self.data

    def pull(self, n: int) -> int:
        """``__skb_pull``: drop ``n`` bytes from the front."""
        if n > self.len:
            raise MemoryFault(f"skb_pull of {n} bytes from a {self.len}-byte packet")
        self.data += n
        self.sync()
        return self.data

    def put(self, n: int) -> int:
        """``skb_put``: grow at the end into the tailroom; returns the old tail."""
        if n > self.tailroom:
            raise MemoryFault(f"skb_put of {n} bytes with only {self.tailroom} bytes of tailroom")
        old = self.tail
        self.tail += n
        self.sync()
        return old

    def trim(self, length: int) -> None:
        """``__skb_trim``: cut the packet to ``length`` bytes."""
        if length > self.len:
            raise MemoryFault(f"skb_trim to {length} bytes of a {self.len}-byte packet")
        self.tail = self.data + length
        self.sync()

    def expand_head(self, nhead: int, ntail: int = 0) -> None:
        """``pskb_expand_head``: a new, larger buffer with ``nhead`` more bytes of
        headroom and ``ntail`` more of tailroom.  Offsets move with the data; the new
        buffer gets a new region (the old one is unmapped, so stale packet pointers
        fault, as the verifier would have invalidated them)."""
        old = self.head
        size = self.end + ntail
        new = bytearray(_align(nhead + size, SMP_CACHE_BYTES) + SKB_SHINFO_SIZE)
        new[nhead : nhead + self.end] = old[: self.end]
        self.head = new
        self.data += nhead
        self.tail += nhead
        self.end = len(new) - SKB_SHINFO_SIZE
        for attr in _HEADER_ATTRS:
            v = getattr(self, attr)
            if v is not None:
                setattr(self, attr, v + nhead)
        self.remap()

    def remap(self) -> None:
        """Give the packet a new region (a new address range): every packet pointer
        the program derived before faults from now on.  Helpers that may change the
        packet call this whether or not they moved it, because the verifier
        invalidates packet pointers after any call to them
        (``bpf_helper_changes_pkt_data``); a program that reloads ``data`` /
        ``data_end`` from the context gets the new addresses."""
        region, mem = self.region, self._mem
        if region is None or mem is None:
            return
        if self._remaps >= MAX_PACKET_REMAPS:
            # Address slots are finite: past the limit the packet keeps its address
            # (accesses stay inside the current packet, but an old pointer is not
            # caught at run time any more -- the verifier still refuses it).
            region.buf = self.head
            self.sync()
            return
        self._remaps += 1
        mem.unmap(region)
        self.region = None
        self.map(mem, writable=self._pkt_writable)

    @property
    def mac_header_len(self) -> int:
        """``skb_mac_header_len``: network header minus MAC header."""
        if self.mac_header is None or self.network_header is None:
            return 0
        return self.network_header - self.mac_header

    @property
    def network_offset(self) -> int:
        """``skb_network_offset``: the network header relative to data (may be < 0)."""
        return (self.network_header if self.network_header is not None else self.data) - self.data

    def clear_hash(self) -> None:
        """``skb_clear_hash``: no valid hash any more (hash 0, sw/l4 flags clear)."""
        self.hash = 0
        self.sw_hash = False
        self.l4_hash = False

    # -- memory -----------------------------------------------------------------------
    def map(self, mem: AddressSpace, *, writable: bool) -> int:
        """Map the packet buffer into ``mem`` (``writable``: may the program store to
        packet memory -- SCHED_CLS/ACT and LWT_XMIT may, the others read only)."""
        self._mem = mem
        self._pkt_writable = writable
        self.region = Region(f"{self.name} packet", self.head, kind="packet", writable=writable)
        mem.map(self.region)
        self.sync()
        return self.region.base

    def sync(self) -> None:
        """Make the packet region's window ``[data_meta, data_end)``."""
        if self.region is not None:
            self.region.lo = self.data_meta
            self.region.hi = self.tail

    def addr(self, off: int) -> int:
        """The address of ``head[off]`` (the packet must be mapped)."""
        if self.region is None:
            raise MemoryFault("the packet is not mapped")
        return self.region.base + off

    # -- link layer -------------------------------------------------------------------
    def eth_type_trans(self, dev: NetDevice) -> int:
        """``eth_type_trans``: set dev, mac header and pkt_type, pull the Ethernet
        header, and return the protocol (EtherType; 802.3/802.2 for length fields)."""
        self.dev = dev
        self.mac_header = self.data
        eth = bytes(self.head[self.data : self.data + ETH_HLEN])
        self.pull(ETH_HLEN)
        dest = eth[:ETH_ALEN]
        if dest != dev.addr:
            if dest[0] & 1:
                self.pkt_type = PACKET_BROADCAST if dest == dev.broadcast else PACKET_MULTICAST
            else:
                self.pkt_type = PACKET_OTHERHOST
        proto = int.from_bytes(eth[12:14], "big")
        if proto >= ETH_P_802_3_MIN:
            return proto
        # A 802.3 frame: raw IPX is recognised by its 0xFFFF checksum field.
        if self.len >= 2 and self.head[self.data : self.data + 2] == b"\xff\xff":
            return ETH_P_802_3
        return ETH_P_802_2

    # -- LD_ABS / LD_IND ------------------------------------------------------------------
    def load_bytes_abs(self, offset: int, size: int) -> int | None:
        """``bpf_skb_load_helper_{8,16,32}``: the big-endian value of ``size`` bytes at
        ``offset`` from skb->data, or None when out of bounds.  Offsets at or above
        SKF_NET_OFF count from the network header, at or above SKF_LL_OFF from the MAC
        header; anything lower fails."""
        if offset < 0:
            if offset >= SKF_NET_OFF:
                if self.network_header is None:
                    return None
                offset = offset - SKF_NET_OFF + (self.network_header - self.data)
            elif offset >= SKF_LL_OFF and self.mac_header is not None:
                offset = offset - SKF_LL_OFF + (self.mac_header - self.data)
            else:
                return None
        if offset > self.len - size:
            return None
        start = self.data + offset
        if start < 0:  # pragma: no cover - headers never precede the buffer
            return None
        return int.from_bytes(self.head[start : start + size], "big")


# ---------------------------------------------------------------------------------------
# The __sk_buff context


def _layout(struct: str) -> dict[str, tuple[int, int]]:
    return {name: (off, size) for name, off, size, _ in CTX_LAYOUTS[struct][1]}


_SKB_LAYOUT = _layout("__sk_buff")
_SOCK_LAYOUT = _layout("bpf_sock")

_COMMON_READ = frozenset(
    {
        "len", "pkt_type", "mark", "queue_mapping", "protocol", "vlan_present",
        "vlan_tci", "vlan_proto", "priority", "ingress_ifindex", "ifindex", "tc_index",
        "cb", "hash", "napi_id", "gso_segs", "gso_size", "sk",
    }
)  # fmt: skip
_SOCK_FIELDS = frozenset(
    {"family", "remote_ip4", "local_ip4", "remote_ip6", "local_ip6", "remote_port", "local_port"}
)
_TC = (ProgramType.SCHED_CLS, ProgramType.SCHED_ACT)
_LWT = (ProgramType.LWT_IN, ProgramType.LWT_OUT, ProgramType.LWT_XMIT)

#: per program type: (readable fields, writable fields) of __sk_buff, as the 6.18
#: verifier decides (sk_filter_, tc_cls_act_, cg_skb_, lwt_is_valid_access)
SKB_ACCESS: dict[ProgramType, tuple[frozenset[str], frozenset[str]]] = {
    ProgramType.SOCKET_FILTER: (_COMMON_READ, frozenset({"cb"})),
    **{
        t: (
            _COMMON_READ
            | {"tc_classid", "data", "data_end", "data_meta", "wire_len", "tstamp"}
            | {"hwtstamp", "tstamp_type"},
            frozenset(
                {"mark", "queue_mapping", "priority", "tc_index", "cb", "tc_classid", "tstamp"}
            ),
        )
        for t in _TC
    },
    ProgramType.CGROUP_SKB: (
        _COMMON_READ | _SOCK_FIELDS | {"data", "data_end", "tstamp", "hwtstamp"},
        frozenset({"mark", "priority", "cb", "tstamp"}),
    ),
    **{
        t: (_COMMON_READ | {"data", "data_end"}, frozenset({"mark", "priority", "cb"}))
        for t in _LWT
    },
}

#: may the program type write packet data directly (verifier may_access_direct_pkt_data)
PKT_WRITABLE = frozenset({*_TC, ProgramType.LWT_XMIT})


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _sk_get(attr: str) -> Callable[[SkBuff], int]:
    return lambda s: getattr(s.sk, attr) if s.sk is not None else 0


def _sk_bytes(attr: str) -> Callable[[SkBuff], int]:
    return lambda s: _le(getattr(s.sk, attr)) if s.sk is not None else 0


def _set_bits(attr: str, bits: int) -> Callable[[Any, int, int, int], None]:
    def setter(s: Any, _rel: int, _size: int, v: int) -> None:
        setattr(s, attr, v & ((1 << bits) - 1))

    return setter


def _set_queue_mapping(s: SkBuff, _rel: int, _size: int, v: int) -> None:
    # The rewrite skips the store when the value is NO_QUEUE_MAPPING or more.
    if v < NO_QUEUE_MAPPING:
        s.queue_mapping = v & 0xFFFF


def _set_tc_classid(s: SkBuff, _rel: int, _size: int, v: int) -> None:
    s.cb.tc_classid = v & 0xFFFF


def _cb_read(s: SkBuff, rel: int, size: int) -> int:
    return _le(s.cb.data[rel : rel + size])


def _cb_write(s: SkBuff, rel: int, size: int, v: int) -> None:
    s.cb.data[rel : rel + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _sk_ptr(s: SkBuff) -> int:
    sk = s.sk
    return sk.region.base if sk is not None and sk.region is not None else 0


def _remote_port(s: SkBuff) -> int:
    # the be16 skc_dport, shifted left 16 by the rewrite on little-endian machines
    return (_swab16(s.sk.dport) << 16) if s.sk is not None else 0


def _skb_fields() -> list[CtxField]:
    """Every ``__sk_buff`` field with its access rule and its value on an SkBuff
    (``bpf_convert_ctx_access``); ``target`` is the kernel field's width."""
    A = Access

    def fld(
        name: str, access: Access, get: Callable[[SkBuff], int], set_=None, **kw: Any
    ) -> CtxField:
        off, size = _SKB_LAYOUT[name]
        return CtxField(name, off, size, access, get, set_, **kw)

    return [
        fld("len", A.U32, lambda s: s.len),
        fld("pkt_type", A.U32, lambda s: s.pkt_type & 7, target=1),
        fld("mark", A.U32, lambda s: s.mark, _set_bits("mark", 32)),
        fld("queue_mapping", A.U32, lambda s: s.queue_mapping, _set_queue_mapping, target=2),
        fld("protocol", A.U32, lambda s: _swab16(s.protocol), target=2),
        fld("vlan_present", A.U32, lambda s: int(bool(s.vlan_tci or s.vlan_proto))),
        fld("vlan_tci", A.U32, lambda s: s.vlan_tci, target=2),
        fld("vlan_proto", A.U32, lambda s: _swab16(s.vlan_proto), target=2),
        fld("priority", A.U32, lambda s: s.priority, _set_bits("priority", 32)),
        fld("ingress_ifindex", A.U32, lambda s: s.skb_iif),
        fld("ifindex", A.U32, lambda s: s.dev.ifindex if s.dev is not None else 0),
        fld("tc_index", A.U32, lambda s: s.tc_index, _set_bits("tc_index", 16), target=2),
        fld("cb", A.MEM, lambda s: 0, _cb_write, read_mem=_cb_read),
        fld("hash", A.U32, lambda s: s.hash),
        fld("tc_classid", A.U32, lambda s: s.cb.tc_classid, _set_tc_classid, target=2),
        fld("data", A.PTR32, lambda s: s.addr(s.data)),
        fld("data_end", A.PTR32, lambda s: s.addr(s.tail)),
        fld("napi_id", A.U32, lambda s: s.napi_id),
        fld("family", A.U32, _sk_get("family"), target=2),
        fld("remote_ip4", A.WORD, _sk_bytes("daddr")),
        fld("local_ip4", A.WORD, _sk_bytes("rcv_saddr")),
        fld("remote_ip6", A.WORD, _sk_bytes("v6_daddr")),
        fld("local_ip6", A.WORD, _sk_bytes("v6_rcv_saddr")),
        fld("remote_port", A.U32, _remote_port, target=2),
        fld("local_port", A.U32, _sk_get("num"), target=2),
        fld("data_meta", A.PTR32, lambda s: s.addr(s.data_meta)),
        fld("flow_keys", A.U64, lambda s: 0),
        fld("tstamp", A.U64, lambda s: s.tstamp, _set_bits("tstamp", 64)),
        fld("wire_len", A.U32, lambda s: s.cb.pkt_len),
        fld("gso_segs", A.U32, lambda s: s.gso_segs, target=2),
        fld("sk", A.U64, _sk_ptr),
        fld("gso_size", A.U32, lambda s: s.gso_size, target=2),
        fld("tstamp_type", A.U8, lambda s: s.tstamp_type, target=1),
        fld("hwtstamp", A.U64, lambda s: s.hwtstamp),
    ]


@functools.cache
def skb_ctx_table(prog_type: ProgramType) -> CtxTable:
    """The ``__sk_buff`` context for ``prog_type``: which fields it may read/write and
    the value each gives on an SkBuff.  Built once per type."""
    readable, writable = SKB_ACCESS[prog_type]
    return CtxTable(
        "__sk_buff", CTX_LAYOUTS["__sk_buff"][0], _skb_fields(), readable, writable, prog_type.name
    )


class _SockTable(CtxTable):
    """bpf_sock: the 16-byte address arrays allow narrow loads anywhere inside (each
    word is its own 4-byte field for the verifier); messages name the pointer."""

    def _verdict(self, off: int, size: int, write: bool) -> CtxField | str:
        f = self._by_off.get(off)
        if f is not None and f.size == 16 and not write:
            rel = off - f.offset
            if size in (1, 2, 4) and off % size == 0 and (rel % 4) + size <= 4:
                return f
        v = super()._verdict(off, size, write)
        return f"{v} (a sock_common pointer from __sk_buff->sk)" if isinstance(v, str) else v

    def load(self, obj: Any, off: int, size: int) -> int:
        f = self.check(off, size, False)
        return (f.get(obj) >> (8 * (off - f.offset))) & ((1 << (8 * size)) - 1)


@functools.cache
def sock_ctx_table() -> CtxTable:
    """``struct bpf_sock`` on a DummySock as reached through ``skb->sk`` (a
    PTR_TO_SOCK_COMMON): only the sock_common fields are readable (type, protocol,
    mark, priority need ``bpf_sk_fullsock``), with the 6.18 verifier's size rules."""
    A = Access

    def fld(name: str, access: Access, get: Callable[[DummySock], int], **kw: Any) -> CtxField:
        off, size = _SOCK_LAYOUT[name]
        return CtxField(name, off, size, access, get, **kw)

    fields = [
        fld("bound_dev_if", A.WORD, lambda k: k.bound_dev_if & 0xFFFF_FFFF),
        fld("family", A.HEAD, lambda k: k.family),
        fld("type", A.HEAD, lambda k: k.type),
        fld("protocol", A.HEAD, lambda k: k.protocol),
        fld("mark", A.U32, lambda k: k.mark),
        fld("priority", A.U32, lambda k: k.priority),
        fld("src_ip4", A.U32, lambda k: _le(k.rcv_saddr)),
        fld("src_ip6", A.U32, lambda k: _le(k.v6_rcv_saddr)),
        fld("src_port", A.HEAD, lambda k: k.num),
        fld(
            "dst_port",
            A.U32,
            lambda k: _swab16(k.dport),
            load_sizes={0: frozenset({1, 2, 4}), 1: frozenset({1})},
        ),
        fld("dst_ip4", A.U32, lambda k: _le(k.daddr)),
        fld("dst_ip6", A.U32, lambda k: _le(k.v6_daddr)),
        fld("state", A.HEAD, lambda k: k.state),
        fld("rx_queue_mapping", A.HEAD, lambda k: k.rx_queue_mapping & 0xFFFF_FFFF),
    ]
    readable = frozenset(f.name for f in fields) - {"type", "protocol", "mark", "priority"}
    return _SockTable(
        "bpf_sock", CTX_LAYOUTS["bpf_sock"][0], fields, readable, frozenset(), "sock_common"
    )


def map_skb_context(skb: SkBuff, prog_type: ProgramType, mem: AddressSpace) -> tuple[int, CtxTable]:
    """Map the packet, the dummy socket's bpf_sock view and the ``__sk_buff`` context
    into ``mem``; returns (ctx address, the context table)."""
    skb.map(mem, writable=prog_type in PKT_WRITABLE)
    if skb.sk is not None:
        skb.sk.region = sock_ctx_table().region(skb.sk, kind="sock")
        mem.map(skb.sk.region)
    table = skb_ctx_table(prog_type)
    return mem.map(table.region(skb)), table


def lookup_device(devices: Mapping[int, NetDevice], ifindex: int) -> NetDevice | None:
    """``dev_get_by_index``: the device with that ifindex in the namespace, or None."""
    return devices.get(ifindex)
