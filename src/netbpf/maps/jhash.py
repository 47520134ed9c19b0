"""The kernel's ``jhash`` (Bob Jenkins' lookup3, ``include/linux/jhash.h``).

Hash maps, sock hashes and LRU lists pick their bucket with it, so reproducing the
kernel's iteration order (``get_next_key``, batch lookups) needs the same function and
seed.  The kernel seeds hash maps randomly unless ``BPF_F_ZERO_SEED``; the simulator
always uses seed 0, which makes it deterministic and equal to the kernel with
``BPF_F_ZERO_SEED``.

``jhash(key, seed)`` for any length; the kernel's ``htab_map_hash`` uses ``jhash2`` on
u32 words when the length is a multiple of 4, which is the same value on a
little-endian machine (both read the key as little-endian u32 words, zero-padded).
"""

from __future__ import annotations

__all__ = ["jhash"]

_M = 0xFFFFFFFF
JHASH_INITVAL = 0xDEADBEEF


def jhash(key: bytes, seed: int = 0) -> int:
    """``jhash(key, len(key), seed)`` as the kernel computes it."""
    n = len(key)
    a = b = c = (JHASH_INITVAL + n + seed) & _M
    if n == 0:
        return c
    k = int.from_bytes(key, "little")
    # all but the last (1..12 byte) block go through the mix
    while n > 12:
        a = (a + (k & _M)) & _M
        b = (b + ((k >> 32) & _M)) & _M
        c = (c + ((k >> 64) & _M)) & _M
        a = (a - c) & _M
        a ^= ((c << 4) | (c >> 28)) & _M
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= ((a << 6) | (a >> 26)) & _M
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= ((b << 8) | (b >> 24)) & _M
        b = (b + a) & _M
        a = (a - c) & _M
        a ^= ((c << 16) | (c >> 16)) & _M
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= ((a << 19) | (a >> 13)) & _M
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= ((b << 4) | (b >> 28)) & _M
        b = (b + a) & _M
        k >>= 96
        n -= 12
    a = (a + (k & _M)) & _M
    if n > 4:
        b = (b + ((k >> 32) & _M)) & _M
        if n > 8:
            c = (c + (k >> 64)) & _M
    # __jhash_final, inlined (this is on every hash map insertion)
    c = ((c ^ b) - (((b << 14) | (b >> 18)) & _M)) & _M
    a = ((a ^ c) - (((c << 11) | (c >> 21)) & _M)) & _M
    b = ((b ^ a) - (((a << 25) | (a >> 7)) & _M)) & _M
    c = ((c ^ b) - (((b << 16) | (b >> 16)) & _M)) & _M
    a = ((a ^ c) - (((c << 4) | (c >> 28)) & _M)) & _M
    b = ((b ^ a) - (((a << 14) | (a >> 18)) & _M)) & _M
    return ((c ^ b) - (((b << 24) | (b >> 8)) & _M)) & _M
