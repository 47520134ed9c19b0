"""Helpers every networking program type may call that need no packet: the NUMA
node, ``bpf_jiffies64``, ``bpf_ktime_get_tai_ns``, the current task's ids,
``bpf_strncmp``, ``bpf_snprintf`` and ``bpf_trace_vprintk``.

Simulator-defined values (deterministic, settable through ``env.state``):

=================  ==========================================================  =========
key                used by                                                     default
=================  ==========================================================  =========
``numa_node``      bpf_get_numa_node_id                                        0
``hz``             bpf_jiffies64: ``INITIAL_JIFFIES + ktime_ns * hz / 1e9``    1000
                   (the kernel's jiffies start 300 s before wrapping 32 bits)
``jiffies64``      bpf_jiffies64, when set, instead of the formula above       --
``tai_offset_ns``  bpf_ktime_get_tai_ns = ``env.ktime_ns`` + this              0
``pid``, ``tgid``  bpf_get_current_pid_tgid (``tgid << 32 | pid``)              0, 0
``uid``, ``gid``   bpf_get_current_uid_gid (``gid << 32 | uid``)                0, 0
=================  ==========================================================  =========

``bpf_snprintf``/``bpf_trace_vprintk`` format like the kernel's
``bpf_bprintf_prepare`` + ``bstr_printf``: the same accepted conversions (``%d %i %u
%x %X`` with ``l``/``ll``, ``%c``, ``%s``, ``%%``, ``%p`` with ``K x s S B`` and
``%pI4 %pi4 %pI6 %pi6`` (``%pI6c`` prints in full too, as the kernel does), flags ``0 + - space`` and a width) and the same refusals
(-EINVAL: a non-printable character, any other conversion, more conversions than
arguments, ``%s``/``%p`` followed by a letter or digit, more than 12 arguments).
Plain ``%p``, ``%pK`` and the symbol forms print the raw value in hex: the kernel
hashes or resolves them, which no simulator can reproduce.
"""

from __future__ import annotations

import errno as _errno
import re

from netbpf.helpers.base import read_cstring
from netbpf.helpers.packet import signed
from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import MemoryFault

__all__ = [
    "MAX_BPRINTF_VARARGS",
    "bprintf",
    "get_current_pid_tgid",
    "get_current_uid_gid",
    "get_numa_node_id",
    "jiffies64",
    "ktime_get_tai_ns",
    "snprintf",
    "strncmp",
    "trace_vprintk",
]

M32 = 0xFFFF_FFFF
M64 = 0xFFFF_FFFF_FFFF_FFFF
#: bpf_snprintf / bpf_trace_vprintk take at most 12 u64 arguments
MAX_BPRINTF_VARARGS = 12
#: the per-call output buffer of bpf_trace_vprintk, and the string scratch of prepare
MAX_BPRINTF_BUF = 1024
MAX_BPRINTF_STR = 512


@DEFAULT_REGISTRY.helper("get_numa_node_id")
def get_numa_node_id(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_numa_node_id()``: ``env.state["numa_node"]`` (default 0)."""
    return int(env.state.get("numa_node", 0)) & M32


def _initial_jiffies(hz: int) -> int:
    return (-300 * hz) & M32


@DEFAULT_REGISTRY.helper("jiffies64")
def jiffies64(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_jiffies64()``: derived from the virtual clock (see the module table)."""
    if "jiffies64" in env.state:
        return int(env.state["jiffies64"]) & M64
    hz = int(env.state.get("hz", 1000))
    return (_initial_jiffies(hz) + env.ktime_ns * hz // 1_000_000_000) & M64


@DEFAULT_REGISTRY.helper("ktime_get_tai_ns")
def ktime_get_tai_ns(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_ktime_get_tai_ns()``: the virtual clock plus ``env.state["tai_offset_ns"]``."""
    return (env.ktime_ns + int(env.state.get("tai_offset_ns", 0))) & M64


@DEFAULT_REGISTRY.helper("get_current_pid_tgid")
def get_current_pid_tgid(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_current_pid_tgid()``: ``tgid << 32 | pid`` from ``env.state``."""
    return ((int(env.state.get("tgid", 0)) & M32) << 32) | (int(env.state.get("pid", 0)) & M32)


@DEFAULT_REGISTRY.helper("get_current_uid_gid")
def get_current_uid_gid(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_get_current_uid_gid()``: ``gid << 32 | uid`` from ``env.state``."""
    return ((int(env.state.get("gid", 0)) & M32) << 32) | (int(env.state.get("uid", 0)) & M32)


def _cstring(env: RunEnv, addr: int, limit: int) -> bytes | None:
    """The NUL-terminated string at ``addr`` (at most ``limit`` bytes), None when it
    cannot be read or has no NUL within the limit."""
    out = bytearray()
    try:
        while len(out) < limit:
            b = env.mem.load(addr + len(out), 1)
            if b == 0:
                return bytes(out)
            out.append(b)
    except MemoryFault:
        return None
    return None


@DEFAULT_REGISTRY.helper("strncmp")
def strncmp(env: RunEnv, s1: int, s1_sz: int, s2: int, r4: int, r5: int) -> int:
    """``bpf_strncmp(s1, s1_sz, s2)``: the kernel's strncmp of at most ``s1_sz``
    bytes: -1, 0 or 1."""
    n = s1_sz & M32
    for i in range(n):
        c1 = env.mem.load(s1 + i, 1)
        c2 = env.mem.load(s2 + i, 1)
        if c1 != c2:
            return signed(-1 if c1 < c2 else 1)
        if not c1:
            break
    return 0


# -- formatting ------------------------------------------------------------------------------

_FLAGS = re.compile(rb"[0+\- ]*")
_WIDTH = re.compile(rb"[1-9][0-9]*")


def _printable(c: int) -> bool:
    return 0x20 <= c < 0x7F or c in b"\t\n\v\f\r"


def _ends_token(c: int) -> bool:
    """The kernel's ``fmt[i+1] == 0 || isspace || ispunct`` after %s / %p."""
    return c == 0 or c in b" \t\n\v\f\r" or (0x21 <= c < 0x7F and not chr(c).isalnum())


def _pad(text: str, flags: bytes, width: int, numeric: bool) -> str:
    if len(text) >= width:
        return text
    if b"-" in flags:
        return text.ljust(width)
    if numeric and b"0" in flags:
        sign = text[0] if text[:1] in ("-", "+", " ") else ""
        return sign + text[len(sign) :].rjust(width - len(sign), "0")
    return text.rjust(width)


def _ip6_full(raw: bytes) -> str:
    """%pI6: eight groups of four hex digits."""
    return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))


def bprintf(env: RunEnv, fmt: bytes, args: list[int]) -> bytes | int:
    """Format ``fmt`` (without its NUL) with the u64 ``args`` like the kernel's
    bpf_bprintf_prepare + bstr_printf; the text, or a negative errno when refused."""
    out: list[str] = []
    i = 0
    nspec = 0
    n = len(fmt)
    strbuf = 0  # bytes of string arguments copied so far (the kernel's scratch)

    def at(k: int) -> int:
        return fmt[k] if k < n else 0

    while i < n:
        c = fmt[i]
        if not _printable(c):
            return -_errno.EINVAL
        if c != 0x25:
            out.append(chr(c))
            i += 1
            continue
        if at(i + 1) == 0x25:
            out.append("%")
            i += 2
            continue
        if nspec >= len(args):
            return -_errno.EINVAL
        arg = args[nspec] & M64
        i += 1
        m = _FLAGS.match(fmt, i)
        flags = m.group(0) if m else b""
        i += len(flags)
        m = _WIDTH.match(fmt, i)
        width = int(m.group(0)) if m else 0
        i += len(m.group(0)) if m else 0
        conv = at(i)
        if conv == ord("p"):
            nxt = at(i + 1)
            if _ends_token(nxt):
                text = f"{arg:016x}"
                i += 1
            elif nxt in b"ku" and at(i + 2) == ord("s"):
                i += 2
                text, strbuf, bad = _string(env, arg, strbuf, at(i + 1))
                if bad:
                    return -_errno.EINVAL
                i += 1
            elif nxt in b"KxsSB":
                text = f"{arg:016x}"
                i += 2
            elif nxt in b"iI" and at(i + 2) in b"46":
                size = 4 if at(i + 2) == ord("4") else 16
                try:
                    raw = env.mem.read(arg, size)
                except MemoryFault:
                    raw = bytes(size)
                if size == 4:
                    spec = "{:03d}" if nxt == ord("i") else "{:d}"
                    text = ".".join(spec.format(b) for b in raw)
                elif nxt == ord("i"):
                    text = raw.hex()
                elif at(i + 3) == ord("c"):
                    # bstr_printf consumes the "c" of %pI6c but prints the copied
                    # address in full, as the running kernel shows
                    text = _ip6_full(raw)
                    i += 1
                else:
                    text = _ip6_full(raw)
                i += 3
            else:
                return -_errno.EINVAL
            out.append(_pad(text, flags, width, False))
        elif conv == ord("s"):
            text, strbuf, bad = _string(env, arg, strbuf, at(i + 1))
            if bad:
                return -_errno.EINVAL
            out.append(_pad(text, flags, width, False))
            i += 1
        elif conv == ord("c"):
            out.append(_pad(chr(arg & 0xFF), flags, width, False))
            i += 1
        else:
            bits = 32
            if at(i) == ord("l"):
                bits = 64
                i += 1
                if at(i) == ord("l"):
                    i += 1
            conv = at(i)
            if conv not in b"diuxX" or conv == 0:
                return -_errno.EINVAL
            v = arg & ((1 << bits) - 1)
            if conv in b"di":
                if v >> (bits - 1):
                    v -= 1 << bits
                text = str(v)
                if v >= 0 and b"+" in flags:
                    text = "+" + text
                elif v >= 0 and b" " in flags:
                    text = " " + text
            elif conv == ord("u"):
                text = str(v)
            else:
                text = f"{v:x}" if conv == ord("x") else f"{v:X}"
            out.append(_pad(text, flags, width, True))
            i += 1
        nspec += 1
    return "".join(out).encode("latin-1")


def _string(env: RunEnv, addr: int, used: int, following: int) -> tuple[str, int, bool]:
    """A %s argument: (text, scratch used after it, refused?)."""
    if not _ends_token(following):
        return "", used, True
    room = MAX_BPRINTF_STR - used
    if room <= 0:
        return "", used, True
    raw = read_cstring(env, addr, room - 1)
    return raw.decode("latin-1"), used + len(raw) + 1, False


def _args(env: RunEnv, data: int, data_len: int) -> list[int] | int:
    data_len &= M32
    if data_len % 8 or data_len > MAX_BPRINTF_VARARGS * 8 or (data_len and not data):
        return -_errno.EINVAL
    raw = env.mem.read(data, data_len) if data_len else b""
    return [int.from_bytes(raw[k : k + 8], "little") for k in range(0, data_len, 8)]


@DEFAULT_REGISTRY.helper("snprintf")
def snprintf(env: RunEnv, out: int, size: int, fmt: int, data: int, data_len: int) -> int:
    """``bpf_snprintf(str, str_size, fmt, data, data_len)``: format into ``str`` (at
    most ``str_size`` bytes with the NUL); returns the length of the whole formatted
    string plus one."""
    args = _args(env, data, data_len)
    if isinstance(args, int):
        return signed(args)
    raw = _cstring(env, fmt, 1 << 16)
    if raw is None:
        return signed(-_errno.EINVAL)
    text = bprintf(env, raw, args)
    if isinstance(text, int):
        return signed(text)
    size &= M32
    if size:
        env.mem.write(out, text[: size - 1] + b"\0")
    return len(text) + 1


@DEFAULT_REGISTRY.helper("trace_vprintk")
def trace_vprintk(env: RunEnv, fmt: int, fmt_size: int, data: int, data_len: int, r5: int) -> int:
    """``bpf_trace_vprintk(fmt, fmt_size, data, data_len)``: like bpf_trace_printk
    with up to 12 arguments in an array; the line goes to ``env.trace``."""
    args = _args(env, data, data_len)
    if isinstance(args, int):
        return signed(args)
    fmt_size &= M32
    raw = env.mem.read(fmt, fmt_size) if fmt_size else b""
    nul = raw.find(b"\0")
    if nul < 0:
        return signed(-_errno.EINVAL)
    text = bprintf(env, raw[:nul], args)
    if isinstance(text, int):
        return signed(text)
    env.trace.append(text[: MAX_BPRINTF_BUF - 1].decode("latin-1"))
    return len(text)
