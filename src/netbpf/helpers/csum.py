"""Checksum helpers: ``bpf_l3_csum_replace``, ``bpf_l4_csum_replace``, ``bpf_csum_diff``,
``bpf_csum_update`` and ``bpf_csum_level``, with the kernel's arithmetic.

Why the arithmetic is spelled out: the Internet checksum has two encodings of zero
(0x0000 and 0xffff), and which one a helper leaves in a header depends on exactly how
the kernel adds, subtracts and folds.  The functions below follow the kernel's
``include/net/checksum.h`` operations on an x86-64 (little-endian) machine: a 16-bit
header field read from memory is the little-endian value of its two bytes, a
``__be32`` argument is the register's low 32 bits as the program passed them (already
in network byte order), and 32-bit partial sums add with end-around carry
(``csum_add``).  Checked byte for byte against the running kernel by
``tests/test_helpers_csum.py``.

``bpf_csum_diff`` returns the 16-bit folded sum (``csum_from32to16``), as kernels
since 6.13 do on every architecture; older kernels returned the raw 32-bit sum on
x86.  An skb built by BPF_PROG_TEST_RUN has ``ip_summed == CHECKSUM_NONE``, so the
pseudo-header flag of ``bpf_l4_csum_replace`` changes nothing visible there, and
``bpf_csum_update`` answers -ENOTSUPP; both are modelled for CHECKSUM_COMPLETE skbs
too (``skb.csum``).
"""

from __future__ import annotations

import errno as _errno

from netbpf.helpers.packet import (
    ENOTSUPP,
    invalidate_packet,
    signed,
    skb_of,
    try_make_writable,
)
from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.hooks.skb import (
    CHECKSUM_COMPLETE,
    CHECKSUM_NONE,
    CHECKSUM_PARTIAL,
    CHECKSUM_UNNECESSARY,
)
from netbpf.uapi import ProgramType
from netbpf.vm.env import RunEnv

__all__ = [
    "BPF_CSUM_LEVEL_DEC",
    "BPF_CSUM_LEVEL_INC",
    "BPF_CSUM_LEVEL_QUERY",
    "BPF_CSUM_LEVEL_RESET",
    "BPF_F_HDR_FIELD_MASK",
    "BPF_F_MARK_ENFORCE",
    "BPF_F_MARK_MANGLED_0",
    "BPF_F_PSEUDO_HDR",
    "csum_add",
    "csum_diff",
    "csum_fold",
    "csum_from32to16",
    "csum_level",
    "csum_partial",
    "csum_replace2",
    "csum_replace4",
    "csum_replace_by_diff",
    "csum_sub",
    "csum_update",
    "l3_csum_replace",
    "l4_csum_replace",
]

M16 = 0xFFFF
M32 = 0xFFFF_FFFF

#: flags of bpf_l3/l4_csum_replace (uapi linux/bpf.h)
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR = 1 << 4
BPF_F_MARK_MANGLED_0 = 1 << 5
BPF_F_MARK_ENFORCE = 1 << 6
#: bpf_l4_csum_replace on IPv6 (Linux 6.16): only changes CHECKSUM_COMPLETE handling
BPF_F_IPV6 = 1 << 7
_L4_FLAGS = (
    BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_HDR_FIELD_MASK | BPF_F_IPV6
)
#: the value a UDP checksum of zero is replaced with (it would mean "no checksum")
CSUM_MANGLED_0 = 0xFFFF

#: bpf_csum_level levels
BPF_CSUM_LEVEL_QUERY = 0
BPF_CSUM_LEVEL_INC = 1
BPF_CSUM_LEVEL_DEC = 2
BPF_CSUM_LEVEL_RESET = 3
#: SKB_MAX_CSUM_LEVEL
_MAX_CSUM_LEVEL = 3

_CSUM_SKB_TYPES = (ProgramType.SCHED_CLS, ProgramType.SCHED_ACT, ProgramType.LWT_XMIT)
_CSUM_DIFF_TYPES = (*_CSUM_SKB_TYPES, ProgramType.LWT_IN, ProgramType.LWT_OUT, ProgramType.XDP)


# -- the kernel's checksum operations (little-endian host) --------------------------------


def csum_add(a: int, b: int) -> int:
    """32-bit one's-complement add (end-around carry)."""
    s = (a & M32) + (b & M32)
    return (s & M32) + (s >> 32)


def csum_sub(a: int, b: int) -> int:
    return csum_add(a, ~b & M32)


def csum_fold(s: int) -> int:
    """Fold a 32-bit sum to 16 bits and complement it (a header checksum)."""
    s &= M32
    s = (s & M16) + (s >> 16)
    s = (s & M16) + (s >> 16)
    return ~s & M16


def csum_from32to16(s: int) -> int:
    """Fold a 32-bit sum to 16 bits without complementing (``csum_from32to16``)."""
    s &= M32
    s = (s + (((s >> 16) | (s << 16)) & M32)) & M32
    return s >> 16


def csum_partial(data: bytes, seed: int) -> int:
    """One's-complement sum of ``data`` (little-endian 32-bit words, a trailing
    partial word zero-padded) into the 32-bit ``seed``; zero only when everything
    summed is zero, as the kernel's carry-propagating implementation."""
    s = seed & M32
    n = len(data)
    for i in range(0, n - n % 4, 4):
        s = csum_add(s, int.from_bytes(data[i : i + 4], "little"))
    if n % 4:
        s = csum_add(s, int.from_bytes(data[n - n % 4 :].ljust(4, b"\0"), "little"))
    return s


def _csum16_add(c: int, addend: int) -> int:
    r = (c + addend) & M16
    return (r + (r < addend)) & M16


def csum_replace2(field: int, old: int, new: int) -> int:
    """``csum_replace2``: the 16-bit field value after ``old`` (16 bits) became
    ``new`` in the covered data (RFC 1624 incremental update)."""
    return ~_csum16_add(_csum16_add(~field & M16, ~old & M16), new & M16) & M16


def csum_replace4(field: int, old: int, new: int) -> int:
    """``csum_replace4`` for a 32-bit value change."""
    tmp = csum_sub(~field & M32, old)
    return csum_fold(csum_add(tmp, new))


def csum_replace_by_diff(field: int, diff: int) -> int:
    """``csum_replace_by_diff``: apply a 32-bit checksum difference (bpf_csum_diff)."""
    return csum_fold(csum_add(diff, ~field & M32))


def _diff4(old: int, new: int) -> bytes:
    return (~old & M32).to_bytes(4, "little") + (new & M32).to_bytes(4, "little")


def inet_proto_csum_replace4(
    field: int, ip_summed: int, skb_csum: int, old: int, new: int, pseudo: bool
) -> tuple[int, int]:
    """``inet_proto_csum_replace4``: (new field value, new skb->csum)."""
    diff = _diff4(old, new)
    if ip_summed != CHECKSUM_PARTIAL:
        field = csum_fold(csum_partial(diff, ~field & M32))
        if ip_summed == CHECKSUM_COMPLETE and pseudo:
            skb_csum = ~csum_partial(diff, ~skb_csum & M32) & M32
    elif pseudo:
        field = ~csum_fold(csum_partial(diff, field)) & M16
    return field, skb_csum


def inet_proto_csum_replace_by_diff(
    field: int, ip_summed: int, skb_csum: int, diff: int, pseudo: bool
) -> tuple[int, int]:
    diff &= M32
    if ip_summed != CHECKSUM_PARTIAL:
        field = csum_fold(csum_add(diff, ~field & M32))
        if ip_summed == CHECKSUM_COMPLETE and pseudo:
            skb_csum = ~csum_add(diff, ~skb_csum & M32) & M32
    elif pseudo:
        field = ~csum_fold(csum_add(diff, field)) & M16
    return field, skb_csum


# -- helpers ---------------------------------------------------------------------------------


def _csum_field(env: RunEnv, offset: int) -> tuple[int, int] | int:
    """(skb, position of the 16-bit field in head) for a csum_replace at ``offset``,
    or the errno the kernel returns first."""
    skb = skb_of(env)
    offset &= M32
    if offset > 0xFFFF or offset & 1:
        return -_errno.EFAULT
    if try_make_writable(skb, offset + 2) < 0:
        return -_errno.EFAULT
    return skb.data + offset


@DEFAULT_REGISTRY.helper("l3_csum_replace", prog_types=_CSUM_SKB_TYPES)
def l3_csum_replace(env: RunEnv, r1: int, offset: int, frm: int, to: int, flags: int) -> int:
    """``bpf_l3_csum_replace(skb, offset, from, to, flags)``: update the 16-bit checksum
    at ``offset`` for a 2- or 4-byte value change (``flags & 0xf`` = size) or, with
    size 0 and ``from`` 0, by the difference ``to`` (from bpf_csum_diff).  -EINVAL for
    unknown flags, a bad size, or ``from`` != 0 with size 0; -EFAULT for an odd or
    out-of-packet offset."""
    try:
        if flags & ~BPF_F_HDR_FIELD_MASK:
            return signed(-_errno.EINVAL)
        pos = _csum_field(env, offset)
        if pos < 0:
            return signed(pos)
        skb = skb_of(env)
        field = int.from_bytes(skb.head[pos : pos + 2], "little")
        size = flags & BPF_F_HDR_FIELD_MASK
        if size == 0:
            if frm:
                return signed(-_errno.EINVAL)
            field = csum_replace_by_diff(field, to)
        elif size == 2:
            field = csum_replace2(field, frm & M16, to & M16)
        elif size == 4:
            field = csum_replace4(field, frm & M32, to & M32)
        else:
            return signed(-_errno.EINVAL)
        skb.head[pos : pos + 2] = field.to_bytes(2, "little")
        return 0
    finally:
        invalidate_packet(env)


@DEFAULT_REGISTRY.helper("l4_csum_replace", prog_types=_CSUM_SKB_TYPES)
def l4_csum_replace(env: RunEnv, r1: int, offset: int, frm: int, to: int, flags: int) -> int:
    """``bpf_l4_csum_replace(skb, offset, from, to, flags)``: like l3_csum_replace for a
    TCP/UDP checksum.  BPF_F_PSEUDO_HDR marks a change of a pseudo-header field (an IP
    address), which matters for CHECKSUM_COMPLETE/PARTIAL skbs; BPF_F_MARK_MANGLED_0
    leaves a zero (UDP "no checksum") field alone and turns a result of 0 into 0xffff;
    BPF_F_MARK_ENFORCE updates a zero field anyway."""
    try:
        if flags & ~_L4_FLAGS:
            return signed(-_errno.EINVAL)
        pos = _csum_field(env, offset)
        if pos < 0:
            return signed(pos)
        skb = skb_of(env)
        field = int.from_bytes(skb.head[pos : pos + 2], "little")
        mangled0 = bool(flags & BPF_F_MARK_MANGLED_0)
        if mangled0 and not flags & BPF_F_MARK_ENFORCE and field == 0:
            return 0
        pseudo = bool(flags & BPF_F_PSEUDO_HDR)
        size = flags & BPF_F_HDR_FIELD_MASK
        if size == 0:
            if frm:
                return signed(-_errno.EINVAL)
            field, skb.csum = inet_proto_csum_replace_by_diff(
                field, skb.ip_summed, skb.csum, to, pseudo
            )
        elif size == 2:
            field, skb.csum = inet_proto_csum_replace4(
                field, skb.ip_summed, skb.csum, frm & M16, to & M16, pseudo
            )
        elif size == 4:
            field, skb.csum = inet_proto_csum_replace4(
                field, skb.ip_summed, skb.csum, frm & M32, to & M32, pseudo
            )
        else:
            return signed(-_errno.EINVAL)
        if mangled0 and field == 0:
            field = CSUM_MANGLED_0
        skb.head[pos : pos + 2] = field.to_bytes(2, "little")
        return 0
    finally:
        invalidate_packet(env)


@DEFAULT_REGISTRY.helper("csum_diff", prog_types=_CSUM_DIFF_TYPES)
def csum_diff(env: RunEnv, frm: int, from_size: int, to: int, to_size: int, seed: int) -> int:
    """``bpf_csum_diff(from, from_size, to, to_size, seed)``: the checksum difference
    between the ``from`` and ``to`` buffers added to ``seed``, folded to 16 bits.
    Either buffer may be absent (size 0).  Since Linux 6.13 there is no size check
    left (sizes need not be multiples of 4, nor total at most 512 bytes: the
    verifier bounds the buffers), which the running kernel confirms."""
    from_size &= M32
    to_size &= M32
    seed &= M32
    old = env.mem.read(frm, from_size) if from_size else b""
    new = env.mem.read(to, to_size) if to_size else b""
    if from_size and to_size:
        s = csum_sub(csum_partial(new, seed), csum_partial(old, 0))
    elif to_size:
        s = csum_partial(new, seed)
    elif from_size:
        s = ~csum_partial(old, ~seed & M32) & M32
    else:
        s = seed
    return csum_from32to16(s)


@DEFAULT_REGISTRY.helper("csum_update", prog_types=_CSUM_SKB_TYPES)
def csum_update(env: RunEnv, r1: int, csum: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_csum_update(skb, csum)``: add ``csum`` to a CHECKSUM_COMPLETE skb's
    ``skb->csum`` and return the new value; -ENOTSUPP (524) for any other skb (every
    test_run skb)."""
    skb = skb_of(env)
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(skb.csum, csum & M32)
        return skb.csum
    return signed(-ENOTSUPP)


@DEFAULT_REGISTRY.helper("csum_level", prog_types=_CSUM_SKB_TYPES)
def csum_level(env: RunEnv, r1: int, level: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_csum_level(skb, level)``: QUERY returns skb->csum_level for a
    CHECKSUM_UNNECESSARY skb (-EACCES otherwise); INC/DEC/RESET move the
    "checksum verified" level as ``__skb_{incr,decr,reset}_checksum_unnecessary``."""
    skb = skb_of(env)
    if level == BPF_CSUM_LEVEL_QUERY:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            return skb.csum_level
        return signed(-_errno.EACCES)
    if level == BPF_CSUM_LEVEL_INC:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level < _MAX_CSUM_LEVEL:
                skb.csum_level += 1
        elif skb.ip_summed == CHECKSUM_NONE:
            skb.ip_summed = CHECKSUM_UNNECESSARY
            skb.csum_level = 0
        return 0
    if level == BPF_CSUM_LEVEL_DEC:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level == 0:
                skb.ip_summed = CHECKSUM_NONE
            else:
                skb.csum_level -= 1
        return 0
    if level == BPF_CSUM_LEVEL_RESET:
        reset_checksum_unnecessary(skb)
        return 0
    return signed(-_errno.EINVAL)


def reset_checksum_unnecessary(skb: object) -> None:
    """``__skb_reset_checksum_unnecessary``."""
    if getattr(skb, "ip_summed", None) == CHECKSUM_UNNECESSARY:
        skb.ip_summed = CHECKSUM_NONE  # type: ignore[attr-defined]
        skb.csum_level = 0  # type: ignore[attr-defined]
