"""Tristate numbers: what the verifier knows about the bits of a 64-bit value.

A tnum is a pair ``(value, mask)`` of unsigned 64-bit ints: bits set in ``mask`` are
unknown, the others are known and equal to the corresponding bit of ``value``
(``value & mask == 0`` always).  This is the kernel's ``struct tnum``
(kernel/bpf/tnum.c); the operations below compute, for each ALU operation, a tnum that
contains every possible result, bit-exactly as the kernel does, because register
states are compared with the kernel's in the verifier log.

Tnums are plain ``(value, mask)`` tuples: the verifier makes millions of them, and
tuples are the cheapest immutable pair Python has.
"""

from __future__ import annotations

__all__ = [
    "U64",
    "Tnum",
    "tadd",
    "tand",
    "tarshift",
    "tcast",
    "tclear_subreg",
    "tconst",
    "tin",
    "tintersect",
    "tis_aligned",
    "tis_const",
    "tlshift",
    "tmul",
    "tneg",
    "tor",
    "trange",
    "trshift",
    "tstr",
    "tsub",
    "tsubreg",
    "twith_subreg",
    "txor",
]

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

Tnum = tuple[int, int]

#: the tnum of a value nothing is known about
TUNKNOWN: Tnum = (0, U64)


def tconst(v: int) -> Tnum:
    return (v & U64, 0)


def trange(lo: int, hi: int) -> Tnum:
    """The smallest tnum containing every u64 in ``[lo, hi]``: the common high bits of
    ``lo`` and ``hi`` are known, everything below the highest differing bit is not."""
    chi = (lo ^ hi) & U64
    bits = chi.bit_length()
    if bits > 63:
        return TUNKNOWN
    delta = (1 << bits) - 1
    return (lo & ~delta & U64, delta)


def tis_const(a: Tnum) -> bool:
    return a[1] == 0


def tlshift(a: Tnum, shift: int) -> Tnum:
    return ((a[0] << shift) & U64, (a[1] << shift) & U64)


def trshift(a: Tnum, shift: int) -> Tnum:
    return (a[0] >> shift, a[1] >> shift)


def tarshift(a: Tnum, shift: int, bits: int) -> Tnum:
    """Arithmetic right shift of the low ``bits`` (32 or 64) bits; a 32-bit result is
    zero-extended, as the kernel's ``tnum_arshift(a, shift, 32)``."""
    if bits == 32:
        v = ((a[0] & U32) ^ 0x8000_0000) - 0x8000_0000
        m = ((a[1] & U32) ^ 0x8000_0000) - 0x8000_0000
        return ((v >> shift) & U32, (m >> shift) & U32)
    v = (a[0] ^ (1 << 63)) - (1 << 63)
    m = (a[1] ^ (1 << 63)) - (1 << 63)
    return ((v >> shift) & U64, (m >> shift) & U64)


def tadd(a: Tnum, b: Tnum) -> Tnum:
    sm = (a[1] + b[1]) & U64
    sv = (a[0] + b[0]) & U64
    sigma = (sm + sv) & U64
    chi = sigma ^ sv
    mu = chi | a[1] | b[1]
    return (sv & ~mu & U64, mu)


def tsub(a: Tnum, b: Tnum) -> Tnum:
    dv = (a[0] - b[0]) & U64
    alpha = (dv + a[1]) & U64
    beta = (dv - b[1]) & U64
    chi = alpha ^ beta
    mu = chi | a[1] | b[1]
    return (dv & ~mu & U64, mu)


def tneg(a: Tnum) -> Tnum:
    return tsub((0, 0), a)


def tand(a: Tnum, b: Tnum) -> Tnum:
    alpha = a[0] | a[1]
    beta = b[0] | b[1]
    v = a[0] & b[0]
    return (v, alpha & beta & ~v & U64)


def tor(a: Tnum, b: Tnum) -> Tnum:
    v = a[0] | b[0]
    mu = a[1] | b[1]
    return (v, mu & ~v & U64)


def txor(a: Tnum, b: Tnum) -> Tnum:
    v = a[0] ^ b[0]
    mu = a[1] | b[1]
    return (v & ~mu & U64, mu)


def tunion(a: Tnum, b: Tnum) -> Tnum:
    """A tnum containing every value of ``a`` and of ``b``."""
    v = a[0] & b[0]
    mu = (a[0] ^ b[0]) | a[1] | b[1]
    return (v & ~mu & U64, mu)


def tmul(a: Tnum, b: Tnum) -> Tnum:
    """Multiplication by shift-and-add over the bits of ``a``: a known 1 adds ``b``,
    an unknown bit takes the union of adding and not adding it.  (tadd and tunion
    are written out on locals: this loop runs once per bit of ``a``.)"""
    accv = accm = 0
    av, am = a
    bv, bm = b
    while av or am:
        if av & 1 or am & 1:
            # s = tadd((accv, accm), (bv, bm))
            sm = (accm + bm) & U64
            sv = (accv + bv) & U64
            mu = (((sm + sv) & U64) ^ sv) | accm | bm
            sv &= ~mu & U64
            if av & 1:
                accv, accm = sv, mu
            else:
                # tunion((accv, accm), (sv, mu))
                um = (accv ^ sv) | accm | mu
                accv, accm = accv & sv & ~um & U64, um
        av >>= 1
        am >>= 1
        bv = (bv << 1) & U64
        bm = (bm << 1) & U64
    return (accv, accm)


def tintersect(a: Tnum, b: Tnum) -> Tnum:
    v = a[0] | b[0]
    mu = a[1] & b[1]
    return (v & ~mu & U64, mu)


def tcast(a: Tnum, size: int) -> Tnum:
    """Keep the low ``size`` bytes (zero extension)."""
    m = (1 << (size * 8)) - 1
    return (a[0] & m, a[1] & m)


def tsubreg(a: Tnum) -> Tnum:
    return (a[0] & U32, a[1] & U32)


def tclear_subreg(a: Tnum) -> Tnum:
    return (a[0] & ~U32 & U64, a[1] & ~U32 & U64)


def twith_subreg(reg: Tnum, subreg: Tnum) -> Tnum:
    return tor(tclear_subreg(reg), tsubreg(subreg))


def tis_aligned(a: Tnum, size: int) -> bool:
    if not size:
        return True
    return not ((a[0] | a[1]) & (size - 1))


def tin(a: Tnum, b: Tnum) -> bool:
    """True if every value ``b`` may take is also a value of ``a`` (b is a subset)."""
    if b[1] & ~a[1]:
        return False
    return a[0] == (b[0] & ~a[1])


def tnext_ge(a: Tnum, z: int, bits: int = 64) -> int | None:
    """The smallest value of ``a`` (a ``bits``-wide tnum) that is >= ``z``, or None."""
    v, m = a
    if z <= v:
        return v
    full = (1 << bits) - 1
    if z > (v | m):
        return None
    if (z & ~m & full) == v:
        return z
    diff = (z ^ v) & ~m & full  # known bits where z disagrees with a
    k = diff.bit_length() - 1
    if v >> k & 1:
        # z has 0 where a has a known 1: keep z above k, minimal member below
        low = (1 << (k + 1)) - 1
        return (z & ~low & full) | (v & low)
    # z has 1 where a has a known 0: carry into the lowest free unknown bit above k
    free = m & ~z & ~((1 << (k + 1)) - 1) & full
    if not free:
        return None
    j = (free & -free).bit_length() - 1
    low = (1 << j) - 1
    return ((z >> (j + 1)) << (j + 1)) | (1 << j) | (v & low)


def tstep(a: Tnum, z: int) -> int:
    """The smallest value of ``a`` greater than ``z``; the largest value of ``a`` when
    ``z`` is past it, the smallest when ``z`` is below it (the kernel's tnum_step)."""
    v, m = a
    tmax = v | m
    if z >= tmax:
        return tmax
    if z < v:
        return v
    r = tnext_ge(a, z + 1)
    assert r is not None
    return r


def tprev_le(a: Tnum, z: int, bits: int = 64) -> int | None:
    """The largest value of ``a`` that is <= ``z``, or None."""
    full = (1 << bits) - 1
    v, m = a
    r = tnext_ge(((~v) & ~m & full, m), (~z) & full, bits)
    return None if r is None else (~r) & full


def tstr(a: Tnum) -> str:
    """``(0x0; 0xff)``: the kernel's tnum_strn format."""
    return f"({a[0]:#x}; {a[1]:#x})"
