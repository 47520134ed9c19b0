"""XDP packet helpers: ``bpf_xdp_adjust_head``, ``bpf_xdp_adjust_tail`` (linear and
multi-buffer frames), ``bpf_xdp_adjust_meta``, ``bpf_xdp_load_bytes``,
``bpf_xdp_store_bytes`` and ``bpf_xdp_get_buff_len``, on the
:class:`~netbpf.hooks.xdp.XdpBuff` of ``env.state["xdp"]``.

The frame geometry is the kernel's (``net/core/filter.c`` on Linux 6.18): ``data``
may move back as far as ``sizeof(struct xdp_frame)`` (40) plus the metadata length
from the start of the frame and forward until 14 bytes (an Ethernet header) are left;
the tail may grow up to the frame size minus the 320 bytes of ``skb_shared_info``;
metadata must stay a multiple of 4 and at most 255 bytes (-EACCES).  Fragments (the
paged part of a multi-buffer frame) are pages of 4096 bytes: growing the tail fills
the last fragment's page, shrinking it releases whole fragments from the end.

Every helper here that may move the packet invalidates packet pointers
(:func:`~netbpf.helpers.packet.invalidate_packet`), like the verifier does.
"""

from __future__ import annotations

import errno as _errno

from netbpf.helpers.packet import invalidate_packet, signed, xdp_of
from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.hooks.xdp import PAGE_SIZE, XDP_FRAME_STRUCT_SIZE, XDP_TAILROOM, XdpBuff
from netbpf.uapi import ProgramType
from netbpf.vm.env import RunEnv

__all__ = [
    "xdp_adjust_head",
    "xdp_adjust_meta",
    "xdp_adjust_tail",
    "xdp_get_buff_len",
    "xdp_load_bytes",
    "xdp_store_bytes",
]

ETH_HLEN = 14
M32 = 0xFFFF_FFFF
#: type_max(skb_shared_info.meta_len): metadata is at most 255 bytes
_META_MAX = 255
#: the fragment size test_run's RX queue declares (rxq->frag_size)
_FRAG_SIZE = PAGE_SIZE

_XDP = [ProgramType.XDP]


def _s32(v: int) -> int:
    v &= M32
    return v - (1 << 32) if v & 0x8000_0000 else v


@DEFAULT_REGISTRY.helper("xdp_adjust_head", prog_types=_XDP)
def xdp_adjust_head(env: RunEnv, r1: int, offset: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_xdp_adjust_head(xdp, offset)``: move ``data`` by ``offset`` (negative:
    grow the packet at the front, for encapsulation).  The metadata moves with it.
    -EINVAL when the new start would overlap the xdp_frame area plus metadata or leave
    fewer than 14 bytes in the linear part."""
    x = xdp_of(env)
    try:
        off = _s32(offset)
        metalen = x.metalen
        data = x.data + off
        if data < XDP_FRAME_STRUCT_SIZE + metalen or data > x.data_end - ETH_HLEN:
            return signed(-_errno.EINVAL)
        if metalen:
            meta = bytes(x.frame[x.data_meta : x.data])
            x.frame[x.data_meta + off : x.data_meta + off + metalen] = meta
        x.data_meta += off
        x.data = data
        return 0
    finally:
        invalidate_packet(env)


def _frags_shrink(x: XdpBuff, offset: int) -> int:
    if offset > x.buff_len - ETH_HLEN:
        return -_errno.EINVAL
    while x.frags and offset > 0:
        last = x.frags[-1]
        shrink = min(offset, len(last))
        offset -= shrink
        if shrink == len(last):
            x.frags.pop()
        else:
            del last[len(last) - shrink :]
            break
    if not x.frags:
        x.data_end -= offset
    return 0


def _frags_grow(x: XdpBuff, offset: int) -> int:
    last = x.frags[-1]
    tailroom = _FRAG_SIZE - len(last)
    if offset > tailroom:
        return -_errno.EINVAL
    last.extend(bytes(offset))
    return 0


@DEFAULT_REGISTRY.helper("xdp_adjust_tail", prog_types=_XDP)
def xdp_adjust_tail(env: RunEnv, r1: int, offset: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_xdp_adjust_tail(xdp, offset)``: grow (zero-filled) or shrink the packet at
    the end.  Linear frames: ``data_end`` may reach frame size - 320 and must keep 14
    bytes after ``data`` (-EINVAL).  Multi-buffer frames: growth goes into the last
    fragment's page (-EINVAL beyond it), shrinking drops bytes from the last
    fragments and, once none is left, from the linear part; the whole packet must
    keep 14 bytes."""
    x = xdp_of(env)
    try:
        off = _s32(offset)
        if x.frags:
            return signed(_frags_shrink(x, -off) if off < 0 else _frags_grow(x, off))
        end = x.data_end + off
        if end > x.frame_sz - XDP_TAILROOM or end < x.data + ETH_HLEN:
            return signed(-_errno.EINVAL)
        if off > 0:
            x.frame[x.data_end : end] = bytes(off)
        x.data_end = end
        return 0
    finally:
        invalidate_packet(env)


@DEFAULT_REGISTRY.helper("xdp_adjust_meta", prog_types=_XDP)
def xdp_adjust_meta(env: RunEnv, r1: int, offset: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_xdp_adjust_meta(xdp, offset)``: move ``data_meta`` by ``offset`` (negative:
    more metadata).  -EINVAL when it would pass ``data`` or enter the xdp_frame area,
    -EACCES when the metadata length would not be a multiple of 4 or exceed 255.  The
    bytes newly counted as metadata are whatever the headroom holds."""
    x = xdp_of(env)
    try:
        meta = x.data_meta + _s32(offset)
        if meta < XDP_FRAME_STRUCT_SIZE or meta > x.data:
            return signed(-_errno.EINVAL)
        metalen = x.data - meta
        if metalen % 4 or metalen > _META_MAX:
            return signed(-_errno.EACCES)
        x.data_meta = meta
        return 0
    finally:
        invalidate_packet(env)


def _xdp_span(x: XdpBuff, offset: int, length: int) -> int:
    """``bpf_xdp_pointer``'s checks: 0, -EFAULT (offset or length above 0xffff) or
    -EINVAL (beyond the packet, fragments included)."""
    if offset > 0xFFFF or length > 0xFFFF:
        return -_errno.EFAULT
    if offset + length > x.buff_len:
        return -_errno.EINVAL
    return 0


def _pieces(x: XdpBuff) -> list[tuple[bytearray, int, int]]:
    """(buffer, start, end) of the linear part and each fragment, in packet order."""
    out = [(x.frame, x.data, x.data_end)]
    out += [(f, 0, len(f)) for f in x.frags]
    return out


def xdp_read(x: XdpBuff, offset: int, length: int) -> bytes:
    """``length`` packet bytes from ``offset`` (linear part, then fragments)."""
    out = bytearray()
    pos = 0
    for buf, start, end in _pieces(x):
        n = end - start
        if offset < pos + n and length > len(out):
            lo = start + max(offset - pos, 0)
            take = min(end - lo, length - len(out))
            out += buf[lo : lo + take]
        pos += n
    return bytes(out)


def xdp_write(x: XdpBuff, offset: int, data: bytes) -> None:
    pos = 0
    done = 0
    for buf, start, end in _pieces(x):
        n = end - start
        if offset + done < pos + n and done < len(data):
            lo = start + (offset + done - pos)
            take = min(end - lo, len(data) - done)
            buf[lo : lo + take] = data[done : done + take]
            done += take
        pos += n


@DEFAULT_REGISTRY.helper("xdp_load_bytes", prog_types=_XDP)
def xdp_load_bytes(env: RunEnv, r1: int, offset: int, buf: int, length: int, r5: int) -> int:
    """``bpf_xdp_load_bytes(xdp, offset, buf, len)``: copy packet bytes (across
    fragments) to ``buf``.  -EFAULT for offset/len above 0xffff, -EINVAL beyond the
    packet; ``buf`` is left untouched on error."""
    x = xdp_of(env)
    offset &= M32
    length &= M32
    err = _xdp_span(x, offset, length)
    if err:
        return signed(err)
    env.mem.write(buf, xdp_read(x, offset, length))
    return 0


@DEFAULT_REGISTRY.helper("xdp_store_bytes", prog_types=_XDP)
def xdp_store_bytes(env: RunEnv, r1: int, offset: int, buf: int, length: int, r5: int) -> int:
    """``bpf_xdp_store_bytes(xdp, offset, buf, len)``: the reverse of
    bpf_xdp_load_bytes, with the same errors."""
    x = xdp_of(env)
    offset &= M32
    length &= M32
    err = _xdp_span(x, offset, length)
    if err:
        return signed(err)
    xdp_write(x, offset, env.mem.read(buf, length))
    return 0


@DEFAULT_REGISTRY.helper("xdp_get_buff_len", prog_types=_XDP)
def xdp_get_buff_len(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_xdp_get_buff_len(xdp)``: linear length (without metadata) plus the
    fragments."""
    return xdp_of(env).buff_len
