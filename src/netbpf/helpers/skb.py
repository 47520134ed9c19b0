"""skb helpers: packet access and rewriting, hashes, VLAN tags, tunnel metadata, the
getters of socket and cgroup facts, and ``bpf_clone_redirect``, on the
:class:`~netbpf.hooks.skb.SkBuff` of ``env.state["skb"]``, with the semantics of
``net/core/filter.c`` (Linux 6.18) -- argument checks, errno values and the order in
which they are made.

Packet access: ``bpf_skb_load_bytes`` (-EFAULT and a zeroed buffer when out of
range), ``bpf_skb_load_bytes_relative`` (from the MAC or network header),
``bpf_skb_store_bytes`` (BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH),
``bpf_skb_pull_data``.  Rewriting: ``bpf_skb_change_head`` (zeroed bytes in front,
MAC header reset), ``bpf_skb_change_tail`` (zero-filled growth, trim),
``bpf_skb_change_proto`` (IPv4 <-> IPv6: 20 bytes inserted or removed after the MAC
header), ``bpf_skb_change_type``, ``bpf_skb_adjust_room`` (NET/MAC modes, encap and
decap flags), ``bpf_skb_vlan_push``/``pop`` (the first tag is the "hardware" tag in
skb->vlan_*, as the kernel keeps it; only further tags go into the packet),
``bpf_skb_ecn_set_ce``.  All packet-changing helpers invalidate packet pointers.

Values with no meaning in a simulator are defined here, deterministic, and settable
through ``env.state`` (the RunEnv's hook state; see
:func:`netbpf.hooks.testrun.prog_test_run`'s ``env_state``):

==========================  ================================================  ==========
key                         used by                                           default
==========================  ================================================  ==========
``cgroup_classid``          bpf_get_cgroup_classid, bpf_skb_cgroup_classid    0
``route_realm``             bpf_get_route_realm (test_run skbs have no        0
                            route, so the kernel says 0 too)
``cgroup_path``             bpf_skb_cgroup_id (last id), bpf_skb_ancestor_    (1,)
                            cgroup_id (ids from the root, level 0 = root 1)
``socket_cookie``           bpf_get_socket_cookie: the cookie the test        1
                            socket gets on first use (kernel: a global
                            counter, non-zero, stable per socket)
``hash_seed``               the flow hash of bpf_get_hash_recalc: jhash of    0
                            the flow keys with this seed (kernel: a random
                            per-boot secret), never 0
==========================  ================================================  ==========

The socket's uid is ``skb.sk.uid`` (test_run's socket has uid 0; with no socket the
kernel answers the overflow uid 65534).

Recorded, not performed: ``bpf_clone_redirect`` appends a :class:`CloneRedirect`
(a copy of the packet) to ``env.state["clone_redirects"]`` and returns 0 when the
device exists in ``env.state["devices"]``.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any

from netbpf.helpers.csum import csum_add, csum_sub, reset_checksum_unnecessary
from netbpf.helpers.packet import (
    BPF_F_INGRESS,
    ENOTSUPP,
    invalidate_packet,
    signed,
    skb_cow,
    skb_of,
    try_make_writable,
)
from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.hooks.skb import (
    CHECKSUM_COMPLETE,
    ETH_HLEN,
    ETH_P_IP,
    ETH_P_IPV6,
    PACKET_OTHERHOST,
    SKB_SHINFO_SIZE,
    SkBuff,
)
from netbpf.maps.jhash import jhash
from netbpf.uapi import ProgramType
from netbpf.vm.env import RunEnv

__all__ = [
    "BPF_F_ADJ_ROOM_DECAP_L3_IPV4",
    "BPF_F_ADJ_ROOM_DECAP_L3_IPV6",
    "BPF_F_ADJ_ROOM_ENCAP_L2_ETH",
    "BPF_F_ADJ_ROOM_ENCAP_L3_IPV4",
    "BPF_F_ADJ_ROOM_ENCAP_L3_IPV6",
    "BPF_F_ADJ_ROOM_ENCAP_L4_GRE",
    "BPF_F_ADJ_ROOM_ENCAP_L4_UDP",
    "BPF_F_ADJ_ROOM_FIXED_GSO",
    "BPF_F_ADJ_ROOM_NO_CSUM_RESET",
    "BPF_F_INVALIDATE_HASH",
    "BPF_F_RECOMPUTE_CSUM",
    "BPF_HDR_START_MAC",
    "BPF_HDR_START_NET",
    "BPF_SKB_MAX_LEN",
    "CloneRedirect",
    "TunnelInfo",
    "clone_redirect",
    "flow_hash",
    "get_cgroup_classid",
    "get_hash_recalc",
    "get_route_realm",
    "get_socket_cookie",
    "get_socket_uid",
    "set_hash",
    "set_hash_invalid",
    "skb_adjust_room",
    "skb_ancestor_cgroup_id",
    "skb_cgroup_classid",
    "skb_cgroup_id",
    "skb_change_head",
    "skb_change_proto",
    "skb_change_tail",
    "skb_change_type",
    "skb_ecn_set_ce",
    "skb_get_tunnel_key",
    "skb_load_bytes",
    "skb_load_bytes_relative",
    "skb_pull_data",
    "skb_set_tunnel_key",
    "skb_store_bytes",
    "skb_vlan_pop",
    "skb_vlan_push",
]

M16 = 0xFFFF
M32 = 0xFFFF_FFFF
PAGE_SIZE = 4096
#: SKB_MAX_ALLOC: the largest skb the rewriting helpers grow to (16 KiB minus the
#: shared info), BPF_SKB_MAX_LEN in filter.c
BPF_SKB_MAX_LEN = (PAGE_SIZE << 2) - SKB_SHINFO_SIZE
#: overflowuid: the uid reported without a full socket
OVERFLOW_UID = 65534

BPF_F_RECOMPUTE_CSUM = 1 << 0
BPF_F_INVALIDATE_HASH = 1 << 1
BPF_HDR_START_MAC = 0
BPF_HDR_START_NET = 1

BPF_ADJ_ROOM_NET = 0
BPF_ADJ_ROOM_MAC = 1
BPF_F_ADJ_ROOM_FIXED_GSO = 1 << 0
BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 = 1 << 1
BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 = 1 << 2
BPF_F_ADJ_ROOM_ENCAP_L4_GRE = 1 << 3
BPF_F_ADJ_ROOM_ENCAP_L4_UDP = 1 << 4
BPF_F_ADJ_ROOM_NO_CSUM_RESET = 1 << 5
BPF_F_ADJ_ROOM_ENCAP_L2_ETH = 1 << 6
BPF_F_ADJ_ROOM_DECAP_L3_IPV4 = 1 << 7
BPF_F_ADJ_ROOM_DECAP_L3_IPV6 = 1 << 8
BPF_ADJ_ROOM_ENCAP_L2_SHIFT = 56
_ENCAP_L3 = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L3_IPV6
_DECAP_L3 = BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_DECAP_L3_IPV6
_ADJ_ROOM_MASK = (
    BPF_F_ADJ_ROOM_FIXED_GSO
    | _ENCAP_L3
    | BPF_F_ADJ_ROOM_ENCAP_L4_GRE
    | BPF_F_ADJ_ROOM_ENCAP_L4_UDP
    | BPF_F_ADJ_ROOM_ENCAP_L2_ETH
    | (0xFF << BPF_ADJ_ROOM_ENCAP_L2_SHIFT)
    | _DECAP_L3
)

ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_TEB = 0x6558
ETH_P_802_3 = 0x0001
ETH_P_802_2 = 0x0004
ETH_P_802_3_MIN = 0x0600
VLAN_HLEN = 4
VLAN_ETH_HLEN = 18
_VLAN_MAX_DEPTH = 8

_TC = (ProgramType.SCHED_CLS, ProgramType.SCHED_ACT)
_SKB_ALL = (
    ProgramType.SOCKET_FILTER,
    *_TC,
    ProgramType.CGROUP_SKB,
    ProgramType.LWT_IN,
    ProgramType.LWT_OUT,
    ProgramType.LWT_XMIT,
    ProgramType.SK_SKB,
)
_WRITERS = (*_TC, ProgramType.LWT_XMIT, ProgramType.SK_SKB)
_LWT = (ProgramType.LWT_IN, ProgramType.LWT_OUT, ProgramType.LWT_XMIT)


def _swab16(v: int) -> int:
    return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v & 0x8000_0000 else v


def _be16(skb: SkBuff, off: int) -> int:
    return int.from_bytes(skb.head[off : off + 2], "big")


# -- packet access ---------------------------------------------------------------------------


@DEFAULT_REGISTRY.helper("skb_load_bytes", prog_types=_SKB_ALL)
def skb_load_bytes(env: RunEnv, r1: int, offset: int, to: int, length: int, r5: int) -> int:
    """``bpf_skb_load_bytes(skb, offset, to, len)``: copy ``len`` bytes from
    ``skb->data + offset``.  Out of range (or offset > INT_MAX): -EFAULT, and ``to``
    is zeroed."""
    skb = skb_of(env)
    offset &= M32
    length &= M32
    if offset > 0x7FFF_FFFF or offset + length > skb.len:
        env.mem.write(to, bytes(length))
        return signed(-_errno.EFAULT)
    env.mem.write(to, bytes(skb.head[skb.data + offset : skb.data + offset + length]))
    return 0


@DEFAULT_REGISTRY.helper(
    "skb_load_bytes_relative",
    prog_types=[ProgramType.SOCKET_FILTER, *_TC, ProgramType.CGROUP_SKB],
)
def skb_load_bytes_relative(
    env: RunEnv, r1: int, offset: int, to: int, length: int, start_header: int
) -> int:
    """``bpf_skb_load_bytes_relative(skb, offset, to, len, start_header)``: like
    skb_load_bytes from the MAC header (BPF_HDR_START_MAC; it must be set) or the
    network header (BPF_HDR_START_NET).  The bytes must end before the packet's tail
    (they may start before ``data``: the MAC header of an L3 program's skb).  -EFAULT
    and a zeroed buffer otherwise, and for offset > 0xffff or an unknown header."""
    skb = skb_of(env)
    offset &= M32
    length &= M32
    start: int | None = None
    if offset <= 0xFFFF:
        hdr = start_header & M32
        if hdr == BPF_HDR_START_MAC:
            start = skb.mac_header
        elif hdr == BPF_HDR_START_NET:
            start = skb.network_header if skb.network_header is not None else skb.data
    if start is None or start + offset + length > skb.tail:
        env.mem.write(to, bytes(length))
        return signed(-_errno.EFAULT)
    pos = start + offset
    env.mem.write(to, bytes(skb.head[pos : pos + length]))
    return 0


@DEFAULT_REGISTRY.helper("skb_store_bytes", prog_types=_WRITERS)
def skb_store_bytes(env: RunEnv, r1: int, offset: int, frm: int, length: int, flags: int) -> int:
    """``bpf_skb_store_bytes(skb, offset, from, len, flags)``: write ``len`` bytes at
    ``skb->data + offset``.  Unknown flags: -EINVAL; offset > INT_MAX or past the end:
    -EFAULT.  BPF_F_RECOMPUTE_CSUM keeps a CHECKSUM_COMPLETE skb's csum in step;
    BPF_F_INVALIDATE_HASH clears skb->hash."""
    skb = skb_of(env)
    try:
        if flags & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
            return signed(-_errno.EINVAL)
        offset &= M32
        length &= M32
        if offset > 0x7FFF_FFFF or try_make_writable(skb, offset + length) < 0:
            return signed(-_errno.EFAULT)
        data = env.mem.read(frm, length)
        pos = skb.data + offset
        if flags & BPF_F_RECOMPUTE_CSUM and skb.ip_summed == CHECKSUM_COMPLETE:
            skb.csum = _rcsum_replace(skb.csum, bytes(skb.head[pos : pos + length]), data, offset)
        skb.head[pos : pos + length] = data
        if flags & BPF_F_INVALIDATE_HASH:
            skb.clear_hash()
        return 0
    finally:
        invalidate_packet(env)


def _rcsum_replace(csum: int, old: bytes, new: bytes, offset: int) -> int:
    """skb->csum after ``old`` at ``offset`` became ``new`` (postpull + postpush)."""
    from netbpf.helpers.csum import csum_partial

    def block(b: bytes) -> int:
        s = csum_partial(b, 0)
        if offset & 1:  # csum_block_add/sub rotate odd-offset blocks
            s = ((s >> 8) | (s << 24)) & M32
        return s

    return csum_add(csum_sub(csum, block(old)), block(new))


@DEFAULT_REGISTRY.helper("skb_pull_data", prog_types=[*_TC, *_LWT, ProgramType.SK_SKB])
def skb_pull_data(env: RunEnv, r1: int, length: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_pull_data(skb, len)``: make ``len`` bytes (0: the linear part)
    directly accessible.  Test-run skbs are linear, so this succeeds unless ``len``
    exceeds the packet (-ENOMEM); packet pointers are invalidated either way."""
    skb = skb_of(env)
    try:
        length &= M32
        return signed(try_make_writable(skb, length or skb.len))
    finally:
        invalidate_packet(env)


# -- head and tail ---------------------------------------------------------------------------


@DEFAULT_REGISTRY.helper("skb_change_head", prog_types=_WRITERS)
def skb_change_head(env: RunEnv, r1: int, head_room: int, flags: int, r4: int, r5: int) -> int:
    """``bpf_skb_change_head(skb, len, flags)``: push ``len`` zero bytes in front of
    the packet and make them the MAC header (for an L3 packet that needs one).  The
    network header stays.  -EINVAL for flags or a packet beyond 16064 bytes."""
    skb = skb_of(env)
    try:
        head_room &= M32
        new_len = (skb.len + head_room) & M32
        if flags or (not skb.gso_size and new_len > BPF_SKB_MAX_LEN) or new_len < skb.len:
            return signed(-_errno.EINVAL)
        skb_cow(skb, head_room)
        skb.push(head_room)
        skb.head[skb.data : skb.data + head_room] = bytes(head_room)
        skb.mac_header = skb.data
        skb.mac_len = skb.mac_header_len
        return 0
    finally:
        invalidate_packet(env)


def _min_len(skb: SkBuff) -> int:
    """``__bpf_skb_min_len``: change_tail may not cut into the network header (or the
    transport header, once set)."""
    if skb.transport_header is not None:
        return skb.transport_header - skb.data
    return skb.network_offset


@DEFAULT_REGISTRY.helper("skb_change_tail", prog_types=_WRITERS)
def skb_change_tail(env: RunEnv, r1: int, new_len: int, flags: int, r4: int, r5: int) -> int:
    """``bpf_skb_change_tail(skb, len, flags)``: trim or grow (zero-filled) the packet
    to ``len`` bytes.  -EINVAL for flags, more than 16064 bytes or less than the
    headers; -ENOTSUPP on an encapsulated skb."""
    skb = skb_of(env)
    try:
        new_len &= M32
        if flags or new_len > BPF_SKB_MAX_LEN or new_len < _min_len(skb):
            return signed(-_errno.EINVAL)
        if skb.encapsulation:
            return signed(-ENOTSUPP)
        if new_len > skb.len:
            grow = new_len - skb.len
            if grow > skb.tailroom:
                skb.expand_head(0, grow - skb.tailroom)
            old = skb.put(grow)
            skb.head[old : old + grow] = bytes(grow)
        elif new_len < skb.len:
            skb.trim(new_len)
        if skb.gso_size:  # skb_gso_reset: the skb is no longer a GSO one
            skb.gso_size = skb.gso_segs = 0
        return 0
    finally:
        invalidate_packet(env)


# -- protocol, type, room --------------------------------------------------------------------


def _hdr_push(skb: SkBuff, off: int, length: int) -> None:
    """``bpf_skb_net_hdr_push``: insert ``length`` zero bytes ``off`` bytes after data
    (the first ``off`` bytes move to the front); MAC and network headers move with
    the bytes in front of the gap."""
    trans_same = skb.transport_header == skb.network_header
    skb_cow(skb, length)
    skb.push(length)
    d = skb.data
    skb.head[d : d + off] = skb.head[d + length : d + length + off]
    skb.head[d + off : d + off + length] = bytes(length)
    if skb.mac_header is not None:
        skb.mac_header -= length
    if skb.network_header is not None:
        skb.network_header -= length
    if trans_same:
        skb.transport_header = skb.network_header


def _hdr_pop(skb: SkBuff, off: int, length: int) -> int:
    """``bpf_skb_net_hdr_pop``: remove ``length`` bytes ``off`` bytes after data."""
    if off + length > skb.len:
        return -_errno.ENOMEM
    trans_same = skb.transport_header == skb.network_header
    d = skb.data
    skb.head[d + length : d + length + off] = skb.head[d : d + off]
    skb.pull(length)
    if skb.mac_header is not None:
        skb.mac_header += length
    if skb.network_header is not None:
        skb.network_header += length
    if trans_same:
        skb.transport_header = skb.network_header
    return 0


@DEFAULT_REGISTRY.helper("skb_change_proto", prog_types=_TC)
def skb_change_proto(env: RunEnv, r1: int, proto: int, flags: int, r4: int, r5: int) -> int:
    """``bpf_skb_change_proto(skb, proto, flags)`` (``proto`` in network order):
    IPv4 -> IPv6 inserts 20 zero bytes after the MAC header, IPv6 -> IPv4 removes the
    20 bytes there; the program rewrites the header itself.  skb->protocol changes and
    the hash is cleared.  -EINVAL for flags, -ENOTSUPP for any other pair."""
    skb = skb_of(env)
    try:
        if flags:
            return signed(-_errno.EINVAL)
        to = _swab16(proto & M16)
        off = skb.mac_header_len
        if skb.protocol == ETH_P_IP and to == ETH_P_IPV6:
            _hdr_push(skb, off, 20)
            skb.protocol = ETH_P_IPV6
        elif skb.protocol == ETH_P_IPV6 and to == ETH_P_IP:
            err = _hdr_pop(skb, off, 20)
            if err:
                return signed(err)
            skb.protocol = ETH_P_IP
        else:
            return signed(-ENOTSUPP)
        skb.clear_hash()
        return 0
    finally:
        invalidate_packet(env)


@DEFAULT_REGISTRY.helper("skb_change_type", prog_types=_TC)
def skb_change_type(env: RunEnv, r1: int, pkt_type: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_change_type(skb, type)``: set skb->pkt_type to PACKET_HOST ..
    PACKET_OTHERHOST (0..3); -EINVAL for anything else (or when the current type is
    not one of those)."""
    skb = skb_of(env)
    pkt_type &= M32
    if skb.pkt_type > PACKET_OTHERHOST or pkt_type > PACKET_OTHERHOST:
        return signed(-_errno.EINVAL)
    skb.pkt_type = pkt_type
    return 0


def _net_base_len(skb: SkBuff) -> int:
    if skb.protocol == ETH_P_IP:
        return 20
    if skb.protocol == ETH_P_IPV6:
        return 40
    return M32


def _net_grow(skb: SkBuff, off: int, len_diff: int, flags: int) -> int:
    inner_mac_len = (flags >> BPF_ADJ_ROOM_ENCAP_L2_SHIFT) & 0xFF
    encap = bool(flags & _ENCAP_L3)
    if skb.gso_size:  # a GSO skb from ctx_in has no gso_type: neither TCP nor UDP_L4
        return -ENOTSUPP
    skb_cow(skb, len_diff)
    mac_len = inner_net = 0
    inner_trans: int | None = None
    if encap:
        if skb.protocol not in (ETH_P_IP, ETH_P_IPV6):
            return -ENOTSUPP
        if flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6:
            return -_errno.EINVAL
        if flags & BPF_F_ADJ_ROOM_ENCAP_L4_GRE and flags & BPF_F_ADJ_ROOM_ENCAP_L4_UDP:
            return -_errno.EINVAL
        if flags & BPF_F_ADJ_ROOM_ENCAP_L2_ETH and inner_mac_len < ETH_HLEN:
            return -_errno.EINVAL
        if skb.encapsulation:
            return -_errno.EALREADY
        mac_len = skb.mac_header_len
        inner_net = skb.network_header if skb.network_header is not None else skb.data
        if inner_mac_len > len_diff:
            return -_errno.EINVAL
        inner_trans = skb.transport_header
    _hdr_push(skb, off, len_diff)
    if encap:
        # the inner headers keep the offsets they had before the push (the kernel
        # stores them as offsets from skb->head, which did not move)
        skb.inner_mac_header = inner_net - inner_mac_len
        skb.inner_network_header = inner_net
        skb.inner_transport_header = inner_trans
        skb.inner_protocol = ETH_P_TEB if flags & BPF_F_ADJ_ROOM_ENCAP_L2_ETH else skb.protocol
        skb.encapsulation = True
        skb.network_header = skb.data + mac_len
        if flags & (BPF_F_ADJ_ROOM_ENCAP_L4_GRE | BPF_F_ADJ_ROOM_ENCAP_L4_UDP):
            nh_len = 40 if flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 else 20
            skb.transport_header = skb.data + mac_len + nh_len
        if skb.protocol == ETH_P_IP and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV6:
            skb.protocol = ETH_P_IPV6
        elif skb.protocol == ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_ENCAP_L3_IPV4:
            skb.protocol = ETH_P_IP
    return 0


def _net_shrink(skb: SkBuff, off: int, len_diff: int, flags: int) -> int:
    if flags & ~(BPF_F_ADJ_ROOM_FIXED_GSO | _DECAP_L3 | BPF_F_ADJ_ROOM_NO_CSUM_RESET):
        return -_errno.EINVAL
    if skb.gso_size:
        return -ENOTSUPP
    err = _hdr_pop(skb, off, len_diff)
    if err:
        return err
    if skb.protocol == ETH_P_IP and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV6:
        skb.protocol = ETH_P_IPV6
    elif skb.protocol == ETH_P_IPV6 and flags & BPF_F_ADJ_ROOM_DECAP_L3_IPV4:
        skb.protocol = ETH_P_IP
    return 0


def _sk_skb_adjust_room(skb: SkBuff, len_diff: int, mode: int, flags: int) -> int:
    """``sk_skb_adjust_room``: the stream parser's variant, at the front of the data."""
    if flags or mode:
        return -_errno.EINVAL
    n = abs(len_diff)
    if n > 0xFFF:
        return -_errno.EFAULT
    if len_diff >= 0:
        skb_cow(skb, n)
        skb.push(n)
        skb.head[skb.data : skb.data + n] = bytes(n)
    else:
        if n > skb.len:
            return -_errno.ENOMEM
        skb.pull(n)
    return 0


@DEFAULT_REGISTRY.helper("skb_adjust_room", prog_types=[*_TC, ProgramType.SK_SKB])
def skb_adjust_room(env: RunEnv, r1: int, len_diff: int, mode: int, flags: int, r5: int) -> int:
    """``bpf_skb_adjust_room(skb, len_diff, mode, flags)``: insert (len_diff > 0,
    zeroed) or remove room after the MAC header (BPF_ADJ_ROOM_MAC) or after the
    network header (BPF_ADJ_ROOM_NET).  Encap flags (ENCAP_L3_IPV4/6, ENCAP_L4_GRE/UDP,
    ENCAP_L2_ETH with an inner MAC length in bits 56..63) mark the skb encapsulated
    and move the network header to the new outer header; DECAP_L3_IPV4/6 on shrink
    switch skb->protocol.  Errors as the kernel: -EINVAL (flags, combinations),
    -EFAULT (|len_diff| > 0xfff), -ENOTSUPP (not IP, bad mode, too short/long),
    -EALREADY (encapsulating twice)."""
    skb = skb_of(env)
    try:
        diff = _s32(len_diff)
        mode &= M32
        if env.state.get("prog_type") == ProgramType.SK_SKB:
            return signed(_sk_skb_adjust_room(skb, diff, mode, flags))
        return signed(_adjust_room(skb, diff, mode, flags))
    finally:
        invalidate_packet(env)


def _adjust_room(skb: SkBuff, diff: int, mode: int, flags: int) -> int:
    n = abs(diff)
    len_min = _net_base_len(skb)
    shrink = diff < 0
    if flags & ~(_ADJ_ROOM_MASK | BPF_F_ADJ_ROOM_NO_CSUM_RESET):
        return -_errno.EINVAL
    if n > 0xFFF:
        return -_errno.EFAULT
    if skb.protocol not in (ETH_P_IP, ETH_P_IPV6):
        return -ENOTSUPP
    off = skb.mac_header_len
    if mode == BPF_ADJ_ROOM_NET:
        off += _net_base_len(skb)
    elif mode != BPF_ADJ_ROOM_MAC:
        return -ENOTSUPP
    if flags & _DECAP_L3:
        if not shrink:
            return -_errno.EINVAL
        decap = flags & _DECAP_L3
        if decap == BPF_F_ADJ_ROOM_DECAP_L3_IPV4:
            len_min = 20
        elif decap == BPF_F_ADJ_ROOM_DECAP_L3_IPV6:
            len_min = 40
        else:
            return -_errno.EINVAL
    len_cur = skb.len - skb.network_offset
    if shrink and (n >= len_cur or len_cur - n < len_min):
        return -ENOTSUPP
    if not shrink and skb.len + n > BPF_SKB_MAX_LEN and not skb.gso_size:
        return -ENOTSUPP
    ret = _net_shrink(skb, off, n, flags) if shrink else _net_grow(skb, off, n, flags)
    if not ret and not flags & BPF_F_ADJ_ROOM_NO_CSUM_RESET:
        reset_checksum_unnecessary(skb)
    return ret


# -- VLAN ------------------------------------------------------------------------------------


def _eth_type_vlan(proto: int) -> bool:
    return proto in (ETH_P_8021Q, ETH_P_8021AD)


def _vlan_insert_tag(skb: SkBuff, vlan_proto: int, vlan_tci: int) -> int:
    """``__vlan_insert_tag``: put a tag after the MAC addresses in the packet."""
    skb_cow(skb, VLAN_HLEN)
    skb.push(VLAN_HLEN)
    d = skb.data
    skb.head[d : d + 12] = skb.head[d + VLAN_HLEN : d + VLAN_HLEN + 12]
    if skb.mac_header is not None:
        skb.mac_header -= VLAN_HLEN
    skb.head[d + 12 : d + 14] = vlan_proto.to_bytes(2, "big")
    skb.head[d + 14 : d + 16] = (vlan_tci & M16).to_bytes(2, "big")
    return 0


def _skb_vlan_pop_tag(skb: SkBuff) -> tuple[int, int]:
    """``__skb_vlan_pop``: (errno or 0, TCI) after removing the packet's outer tag."""
    if skb.mac_header != skb.data:
        return -_errno.EINVAL, 0
    if try_make_writable(skb, VLAN_ETH_HLEN) < 0:
        return -_errno.ENOMEM, 0
    d = skb.data
    tci = _be16(skb, d + ETH_HLEN)
    encap = _be16(skb, d + ETH_HLEN + 2)
    if encap >= ETH_P_802_3_MIN:
        skb.protocol = encap
    elif skb.head[d + VLAN_ETH_HLEN : d + VLAN_ETH_HLEN + 2] == b"\xff\xff":
        skb.protocol = ETH_P_802_3
    else:
        skb.protocol = ETH_P_802_2
    skb.head[d + VLAN_HLEN : d + VLAN_HLEN + 12] = skb.head[d : d + 12]
    skb.pull(VLAN_HLEN)
    if skb.mac_header is not None:
        skb.mac_header += VLAN_HLEN
    if skb.network_offset < ETH_HLEN:
        skb.network_header = skb.data + ETH_HLEN
    skb.mac_len = skb.mac_header_len
    return 0, tci


@DEFAULT_REGISTRY.helper("skb_vlan_push", prog_types=_TC)
def skb_vlan_push(env: RunEnv, r1: int, vlan_proto: int, vlan_tci: int, r4: int, r5: int) -> int:
    """``bpf_skb_vlan_push(skb, proto, tci)`` (``proto`` in network order; anything
    but 802.1Q/802.1ad counts as 802.1Q).  Like the kernel, the new tag becomes the
    skb's "hardware accelerated" tag (``__sk_buff->vlan_present/vlan_tci/
    vlan_proto``); a tag already there is first written into the packet."""
    skb = skb_of(env)
    try:
        proto = _swab16(vlan_proto & M16)
        if not _eth_type_vlan(proto):
            proto = ETH_P_8021Q
        if skb.vlan_proto or skb.vlan_tci:
            if skb.mac_header != skb.data:
                return signed(-_errno.EINVAL)
            err = _vlan_insert_tag(skb, skb.vlan_proto, skb.vlan_tci)
            if err:
                return signed(err)
            skb.protocol = skb.vlan_proto
            # the network header keeps its distance from the MAC header (it now
            # points at the inserted tag's TCI), as skb_vlan_push leaves it
            if skb.network_header is not None:
                skb.network_header -= VLAN_HLEN
        skb.vlan_proto = proto
        skb.vlan_tci = vlan_tci & M16
        return 0
    finally:
        invalidate_packet(env)


@DEFAULT_REGISTRY.helper("skb_vlan_pop", prog_types=_TC)
def skb_vlan_pop(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_vlan_pop(skb)``: drop the hardware tag, or else the packet's outer
    tag; a further tag in the packet then becomes the hardware tag."""
    skb = skb_of(env)
    try:
        if skb.vlan_proto or skb.vlan_tci:
            skb.vlan_proto = skb.vlan_tci = 0
        else:
            if not _eth_type_vlan(skb.protocol):
                return 0
            err, _ = _skb_vlan_pop_tag(skb)
            if err:
                return signed(err)
        if not _eth_type_vlan(skb.protocol):
            return 0
        proto = skb.protocol
        err, tci = _skb_vlan_pop_tag(skb)
        if err:
            return signed(err)
        skb.vlan_proto = proto
        skb.vlan_tci = tci
        return 0
    finally:
        invalidate_packet(env)


def _vlan_get_protocol(skb: SkBuff) -> int:
    """``vlan_get_protocol``: skb->protocol, or for a VLAN frame the EtherType under
    its tags (0 when they cannot be read)."""
    proto = skb.protocol
    if not _eth_type_vlan(proto):
        return proto
    depth = skb.mac_len - VLAN_HLEN if skb.mac_len else ETH_HLEN
    if skb.mac_len and skb.mac_len < VLAN_HLEN:
        return 0
    for _ in range(_VLAN_MAX_DEPTH - 1):
        if depth + 4 > skb.len:
            return 0
        proto = _be16(skb, skb.data + depth + 2)
        depth += VLAN_HLEN
        if not _eth_type_vlan(proto):
            return proto
    return 0


@DEFAULT_REGISTRY.helper("skb_ecn_set_ce", prog_types=[*_TC, ProgramType.CGROUP_SKB])
def skb_ecn_set_ce(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_ecn_set_ce(skb)``: mark an ECN-capable IPv4/IPv6 packet "congestion
    experienced" (IPv4: the header checksum is updated).  1 when the packet is now
    CE-marked, 0 when it is not ECN-capable, not IP, or too short."""
    skb = skb_of(env)
    proto = _vlan_get_protocol(skb)
    if proto == ETH_P_IP:
        hlen = 20
    elif proto == ETH_P_IPV6:
        hlen = 40
    else:
        return 0
    if skb.len < hlen:
        return 0
    nh = skb.network_header if skb.network_header is not None else skb.data
    if nh + hlen > skb.tail:
        return 0
    if proto == ETH_P_IP:
        tos = skb.head[nh + 1]
        ecn = (tos + 1) & 3
        if not ecn & 2:
            return int(not ecn)
        check = int.from_bytes(skb.head[nh + 10 : nh + 12], "little")
        add = (_swab16(0xFFFB) + _swab16(ecn)) & M16
        r = (check + add) & M16
        check = (r + (r < add)) & M16
        skb.head[nh + 10 : nh + 12] = check.to_bytes(2, "little")
        skb.head[nh + 1] = tos | 3
        return 1
    first = int.from_bytes(skb.head[nh : nh + 4], "big")
    if not (first >> 20) & 3:
        return 0
    new = first | (3 << 20)
    skb.head[nh : nh + 4] = new.to_bytes(4, "big")
    if skb.ip_summed == CHECKSUM_COMPLETE:
        old_le = first.to_bytes(4, "big")
        skb.csum = csum_add(
            csum_sub(skb.csum, int.from_bytes(old_le, "little")),
            int.from_bytes(new.to_bytes(4, "big"), "little"),
        )
    return 1


# -- hashes ----------------------------------------------------------------------------------


def flow_hash(skb: SkBuff, seed: int = 0) -> tuple[int, bool]:
    """The simulator's flow hash of ``skb`` and whether it covers L4 ports: jhash
    over (EtherType, IP protocol, addresses, ports or IPv6 flow label) as far as the
    packet has them, never 0.  The kernel hashes similar keys with a random per-boot
    secret, so only its properties (non-zero, equal for equal flows) are comparable."""
    nh = skb.network_header if skb.network_header is not None else skb.data
    pkt = bytes(skb.head[nh : skb.tail])
    keys = skb.protocol.to_bytes(2, "big")
    l4 = False
    ports_at: int | None = None
    if skb.protocol == ETH_P_IP and len(pkt) >= 20 and pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 0xF) * 4
        keys += pkt[9:10] + pkt[12:20]
        frag = int.from_bytes(pkt[6:8], "big") & 0x3FFF
        if not frag and pkt[9] in (6, 17, 132, 136):
            ports_at = ihl
    elif skb.protocol == ETH_P_IPV6 and len(pkt) >= 40 and pkt[0] >> 4 == 6:
        keys += pkt[6:7] + pkt[8:40]
        label = int.from_bytes(pkt[1:4], "big") & 0xFFFFF
        if label:
            keys += label.to_bytes(4, "big")
            l4 = True
        elif pkt[6] in (6, 17, 132, 136):
            ports_at = 40
    if ports_at is not None and len(pkt) >= ports_at + 4:
        keys += pkt[ports_at : ports_at + 4]
        l4 = True
    h = jhash(keys, seed & M32)
    return (h or 1), l4


@DEFAULT_REGISTRY.helper("get_hash_recalc", prog_types=[*_TC, *_LWT])
def get_hash_recalc(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_hash_recalc(skb)``: skb->hash, computed (and stored) when the skb has
    no valid hash -- see :func:`flow_hash` for the simulator's hash."""
    skb = skb_of(env)
    if not skb.sw_hash and not skb.l4_hash:
        h, l4 = flow_hash(skb, int(env.state.get("hash_seed", 0)))
        skb.hash = h
        skb.sw_hash = True
        skb.l4_hash = l4
    return skb.hash


@DEFAULT_REGISTRY.helper("set_hash_invalid", prog_types=[*_TC, ProgramType.LWT_XMIT])
def set_hash_invalid(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_set_hash_invalid(skb)``: clear the hash (the next recalc recomputes)."""
    skb_of(env).clear_hash()
    return 0


@DEFAULT_REGISTRY.helper("set_hash", prog_types=_TC)
def set_hash(env: RunEnv, r1: int, h: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_set_hash(skb, hash)``: set a software L4 hash (kept by later recalcs)."""
    skb = skb_of(env)
    skb.hash = h & M32
    skb.sw_hash = True
    skb.l4_hash = True
    return 0


# -- getters with simulator-defined values ---------------------------------------------------


@DEFAULT_REGISTRY.helper("get_cgroup_classid")
def get_cgroup_classid(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_cgroup_classid``: the net_cls class id (``env.state["cgroup_classid"]``,
    default 0 -- what the kernel answers for a task outside any net_cls cgroup)."""
    return int(env.state.get("cgroup_classid", 0)) & M32


@DEFAULT_REGISTRY.helper("skb_cgroup_classid", prog_types=_TC)
def skb_cgroup_classid(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_cgroup_classid(skb)``: the socket's net_cls class id, 0 without a
    socket (same sim value as bpf_get_cgroup_classid)."""
    if skb_of(env).sk is None:
        return 0
    return int(env.state.get("cgroup_classid", 0)) & M32


@DEFAULT_REGISTRY.helper("get_route_realm", prog_types=[*_TC, *_LWT])
def get_route_realm(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_route_realm(skb)``: the route's realm (``env.state["route_realm"]``,
    default 0: a test-run skb has no route)."""
    skb_of(env)
    return int(env.state.get("route_realm", 0)) & M32


def _cgroup_path(env: RunEnv) -> tuple[int, ...]:
    path = tuple(int(x) for x in env.state.get("cgroup_path", (1,)))
    return path or (1,)


@DEFAULT_REGISTRY.helper("skb_cgroup_id", prog_types=[*_TC, ProgramType.CGROUP_SKB])
def skb_cgroup_id(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_cgroup_id(skb)``: the v2 cgroup id of the skb's socket (the last id
    of ``env.state["cgroup_path"]``, default the root, 1); 0 without a socket."""
    if skb_of(env).sk is None:
        return 0
    return _cgroup_path(env)[-1]


@DEFAULT_REGISTRY.helper("skb_ancestor_cgroup_id", prog_types=[*_TC, ProgramType.CGROUP_SKB])
def skb_ancestor_cgroup_id(env: RunEnv, r1: int, level: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_skb_ancestor_cgroup_id(skb, level)``: the id of the socket cgroup's
    ancestor at ``level`` (0 = root), 0 when the cgroup is not that deep."""
    if skb_of(env).sk is None:
        return 0
    path = _cgroup_path(env)
    level &= M32
    return path[level] if level < len(path) else 0


@DEFAULT_REGISTRY.helper(
    "get_socket_cookie",
    prog_types=[ProgramType.SOCKET_FILTER, *_TC, ProgramType.CGROUP_SKB, ProgramType.SK_SKB],
)
def get_socket_cookie(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_socket_cookie(skb)``: the socket's cookie, 0 without a socket.  The
    socket gets ``env.state["socket_cookie"]`` (default 1) on first use and keeps it."""
    sk = skb_of(env).sk
    if sk is None:
        return 0
    if not sk.cookie:
        sk.cookie = int(env.state.get("socket_cookie", 1)) or 1
    return sk.cookie


@DEFAULT_REGISTRY.helper(
    "get_socket_uid",
    prog_types=[ProgramType.SOCKET_FILTER, *_TC, ProgramType.CGROUP_SKB, ProgramType.SK_SKB],
)
def get_socket_uid(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_socket_uid(skb)``: the socket owner's uid (``skb.sk.uid``; test_run's
    socket: 0), the overflow uid 65534 without a socket."""
    sk = skb_of(env).sk
    return OVERFLOW_UID if sk is None else sk.uid & M32


# -- tunnel metadata -------------------------------------------------------------------------

BPF_F_TUNINFO_IPV6 = 1 << 0
BPF_F_ZERO_CSUM_TX = 1 << 1
BPF_F_DONT_FRAGMENT = 1 << 2
BPF_F_SEQ_NUMBER = 1 << 3
BPF_F_NO_TUNNEL_KEY = 1 << 4
BPF_F_TUNINFO_FLAGS = 1 << 4
#: sizeof(struct bpf_tunnel_key) and the older layouts the helpers accept
_TUNNEL_KEY_SIZE = 44
_OFF_REMOTE_IPV6_1 = 8
_OFF_TUNNEL_EXT = 22
_OFF_TUNNEL_LABEL = 24
_OFF_LOCAL_IPV6_0 = 28
#: IP_TUNNEL_*_BIT numbers (the be16 TUNNEL_* flag values are 1 << bit)
_TUN_CSUM, _TUN_KEY, _TUN_SEQ, _TUN_DONT_FRAGMENT, _TUN_NOCACHE = 0, 2, 3, 8, 13


@dataclass
class TunnelInfo:
    """``struct ip_tunnel_info`` of a metadata dst, as bpf_skb_set_tunnel_key fills
    it: addresses in network order as stored (``src``/``dst``, 4 or 16 bytes),
    ``flags`` the set IP_TUNNEL_*_BIT numbers."""

    tx: bool
    ipv6: bool
    tun_id: int
    tos: int
    ttl: int
    src: bytes
    dst: bytes
    label: int = 0
    flags: frozenset[int] = field(default_factory=frozenset)


@DEFAULT_REGISTRY.helper("skb_set_tunnel_key", prog_types=[*_TC, ProgramType.LWT_XMIT])
def skb_set_tunnel_key(env: RunEnv, r1: int, frm: int, size: int, flags: int, r5: int) -> int:
    """``bpf_skb_set_tunnel_key(skb, key, size, flags)``: attach TX tunnel metadata
    (``skb.tun_info``).  Accepts the current struct bpf_tunnel_key (44 bytes) and the
    older shorter layouts; -EINVAL for other sizes, unknown flags, a flow label on
    IPv4, or a non-zero ``tunnel_ext``."""
    skb = skb_of(env)
    allowed = (
        BPF_F_TUNINFO_IPV6
        | BPF_F_ZERO_CSUM_TX
        | BPF_F_DONT_FRAGMENT
        | BPF_F_SEQ_NUMBER
        | BPF_F_NO_TUNNEL_KEY
    )
    if flags & ~allowed:
        return signed(-_errno.EINVAL)
    size &= M32
    if size != _TUNNEL_KEY_SIZE and size not in (
        _OFF_LOCAL_IPV6_0,
        _OFF_TUNNEL_LABEL,
        _OFF_TUNNEL_EXT,
        _OFF_REMOTE_IPV6_1,
    ):
        return signed(-_errno.EINVAL)
    raw = env.mem.read(frm, size).ljust(_TUNNEL_KEY_SIZE, b"\0")
    tun_id = int.from_bytes(raw[0:4], "little")
    tos, ttl = raw[20], raw[21]
    ext = int.from_bytes(raw[22:24], "little")
    label = int.from_bytes(raw[24:28], "little")
    ipv6 = bool(flags & BPF_F_TUNINFO_IPV6)
    if (not ipv6 and label) or ext:
        return signed(-_errno.EINVAL)
    bits = {_TUN_NOCACHE}
    if flags & BPF_F_DONT_FRAGMENT:
        bits.add(_TUN_DONT_FRAGMENT)
    if not flags & BPF_F_ZERO_CSUM_TX:
        bits.add(_TUN_CSUM)
    if flags & BPF_F_SEQ_NUMBER:
        bits.add(_TUN_SEQ)
    if not flags & BPF_F_NO_TUNNEL_KEY:
        bits.add(_TUN_KEY)
    if ipv6:
        dst, src = raw[4:20], raw[28:44]
        label &= 0xFFFFF
    else:
        # u32 host-order addresses, stored with cpu_to_be32
        dst = int.from_bytes(raw[4:8], "little").to_bytes(4, "big")
        src = int.from_bytes(raw[28:32], "little").to_bytes(4, "big")
    skb.tun_info = TunnelInfo(True, ipv6, tun_id, tos, ttl, src, dst, label, frozenset(bits))
    return 0


@DEFAULT_REGISTRY.helper("skb_get_tunnel_key", prog_types=[*_TC, ProgramType.LWT_XMIT])
def skb_get_tunnel_key(env: RunEnv, r1: int, to: int, size: int, flags: int, r5: int) -> int:
    """``bpf_skb_get_tunnel_key(skb, key, size, flags)``: the skb's tunnel metadata
    into ``key`` (the *remote* address is the metadata's source).  -EINVAL without
    metadata, for unknown flags or sizes; -EPROTO when BPF_F_TUNINFO_IPV6 does not
    match the metadata's family; ``key`` is zeroed on error."""
    skb = skb_of(env)
    size &= M32
    info: TunnelInfo | None = skb.tun_info
    err = 0
    if info is None or flags & ~(BPF_F_TUNINFO_IPV6 | BPF_F_TUNINFO_FLAGS):
        err = -_errno.EINVAL
    elif info.ipv6 != bool(flags & BPF_F_TUNINFO_IPV6):
        err = -_errno.EPROTO
    elif size != _TUNNEL_KEY_SIZE:
        if size == _OFF_REMOTE_IPV6_1 and info.ipv6:
            err = -_errno.EINVAL
        elif size not in (
            _OFF_LOCAL_IPV6_0,
            _OFF_TUNNEL_LABEL,
            _OFF_TUNNEL_EXT,
            _OFF_REMOTE_IPV6_1,
        ):
            err = -_errno.EINVAL
    if err or info is None:
        env.mem.write(to, bytes(size))
        return signed(err)
    out = bytearray(_TUNNEL_KEY_SIZE)
    out[0:4] = (info.tun_id & M32).to_bytes(4, "little")
    out[20] = info.tos
    out[21] = info.ttl
    if flags & BPF_F_TUNINFO_FLAGS:
        be = sum(1 << b for b in info.flags if b < 16)
        out[22:24] = be.to_bytes(2, "big")
    if info.ipv6:
        out[4:20] = info.src
        out[28:44] = info.dst
        out[24:28] = (info.label & M32).to_bytes(4, "little")
    else:
        out[4:8] = int.from_bytes(info.src, "big").to_bytes(4, "little")
        out[28:32] = int.from_bytes(info.dst, "big").to_bytes(4, "little")
    env.mem.write(to, bytes(out[:size]))
    return 0


# -- clone redirect --------------------------------------------------------------------------


@dataclass(frozen=True)
class CloneRedirect:
    """A clone ``bpf_clone_redirect`` sent: the target ifindex, ingress or egress, and
    the packet as it was at the call (from the MAC header)."""

    ifindex: int
    ingress: bool
    packet: bytes


@DEFAULT_REGISTRY.helper("clone_redirect", prog_types=[*_TC, ProgramType.LWT_XMIT])
def clone_redirect(env: RunEnv, r1: int, ifindex: int, flags: int, r4: int, r5: int) -> int:
    """``bpf_clone_redirect(skb, ifindex, flags)``: send a copy of the packet to
    device ``ifindex`` (ingress with BPF_F_INGRESS) -- recorded in
    ``env.state["clone_redirects"]``.  -EINVAL for other flags or an unknown device,
    -EBADMSG for a GSO skb without a GSO type (test_run's ctx_in gso_size), -ERANGE
    when the packet carries no link-layer header."""
    skb = skb_of(env)
    try:
        if flags & ~BPF_F_INGRESS:
            return signed(-_errno.EINVAL)
        if skb.gso_size:
            return signed(-_errno.EBADMSG)
        devices: Any = env.state.get("devices") or {}
        ifindex &= M32
        if ifindex not in devices:
            return signed(-_errno.EINVAL)
        mac = skb.mac_header if skb.mac_header is not None else skb.data
        nh = skb.network_header if skb.network_header is not None else skb.data
        if mac >= nh:
            return signed(-_errno.ERANGE)
        clone = CloneRedirect(ifindex, bool(flags & BPF_F_INGRESS), bytes(skb.head[mac : skb.tail]))
        env.state.setdefault("clone_redirects", []).append(clone)
        return 0
    finally:
        invalidate_packet(env)
