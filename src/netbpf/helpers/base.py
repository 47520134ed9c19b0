"""Helpers that need nothing but the run environment: time, randomness, CPU id, and
``bpf_trace_printk``.  Every program type may call them (the kernel's
``bpf_base_func_proto`` set).

Environment inputs (all on :class:`~netbpf.vm.env.RunEnv`):

* ``env.ktime_ns`` -- the virtual clock every ``ktime_get_*`` helper reads (the
  simulator does not advance time by itself; the caller sets it);
* ``env.state["prandom_seed"]`` -- seed of ``get_prandom_u32`` (default 0); the
  generator is created on first use and kept in ``env.state["prandom"]``, so a seeded
  environment gives a reproducible sequence across runs;
* ``env.state["cpu"]`` -- what ``get_smp_processor_id`` returns (default 0);
* ``env.trace`` -- ``trace_printk`` appends one string per call.
"""

from __future__ import annotations

import errno
import random
import re

from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import MemoryFault

__all__ = [
    "format_trace_printk",
    "get_prandom_u32",
    "get_smp_processor_id",
    "ktime_get_boot_ns",
    "ktime_get_coarse_ns",
    "ktime_get_ns",
    "read_cstring",
    "trace_printk",
]

M64 = 0xFFFF_FFFF_FFFF_FFFF
#: kernel MAX_BPRINTF_BUF: the formatted message is cut at 1023 characters
MAX_BPRINTF_BUF = 1024
#: kernel MAX_TRACE_PRINTK_VARARGS
MAX_TRACE_PRINTK_VARARGS = 3


@DEFAULT_REGISTRY.helper("ktime_get_ns")
def ktime_get_ns(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """CLOCK_MONOTONIC in ns: the virtual clock ``env.ktime_ns``."""
    return env.ktime_ns


@DEFAULT_REGISTRY.helper("ktime_get_boot_ns")
def ktime_get_boot_ns(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """CLOCK_BOOTTIME in ns; the simulator never suspends, so it equals ktime_get_ns."""
    return env.ktime_ns


@DEFAULT_REGISTRY.helper("ktime_get_coarse_ns")
def ktime_get_coarse_ns(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """CLOCK_MONOTONIC_COARSE in ns: the same virtual clock (no tick granularity)."""
    return env.ktime_ns


@DEFAULT_REGISTRY.helper("get_prandom_u32")
def get_prandom_u32(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A pseudo-random u32 from a generator seeded by ``env.state["prandom_seed"]``."""
    rng = env.state.get("prandom")
    if not isinstance(rng, random.Random):
        rng = env.state["prandom"] = random.Random(env.state.get("prandom_seed", 0))
    return rng.getrandbits(32)


@DEFAULT_REGISTRY.helper("get_smp_processor_id")
def get_smp_processor_id(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The CPU the program runs on: ``env.state["cpu"]`` (default 0)."""
    return int(env.state.get("cpu", 0))


# -- bpf_trace_printk ---------------------------------------------------------------------

# One conversion as the kernel's bpf_bprintf_prepare accepts it: optional flags and
# width, then %c, %s, %p (with an optional pointer-kind suffix), or an integer
# conversion with optional l / ll.
_CONV = re.compile(rb"%([-+ 0]*)([0-9]*)(ll|l)?([cspdiuxX%])")


def read_cstring(env: RunEnv, addr: int, limit: int) -> bytes:
    """At most ``limit`` bytes of the NUL-terminated string at ``addr`` in program
    memory (the NUL excluded); b"" when the memory cannot be read, as the kernel's
    string copies give an empty string for an unreadable pointer (trace_printk's %s,
    snprintf's %s)."""
    out = bytearray()
    try:
        while len(out) < limit:
            b = env.mem.load(addr + len(out), 1)
            if b == 0:
                break
            out.append(b)
    except MemoryFault:
        return b""  # the kernel prints an empty string for an unreadable %s pointer
    return bytes(out)


def format_trace_printk(env: RunEnv, fmt: bytes, args: list[int]) -> bytes | int:
    """Format ``fmt`` like bpf_trace_printk; return the message or a negative errno.

    Refused like the kernel refuses (-EINVAL): a non-printable character, an unknown
    conversion, ``l``/``ll`` on %c, %s or %p, more than three arguments.  ``%p`` prints
    the raw value as 16 hex digits (the kernel hashes it, which no simulator can
    reproduce; use %px in programs that print pointers for comparison)."""
    out = bytearray()
    pos = 0
    argi = 0
    while pos < len(fmt):
        ch = fmt[pos]
        if ch != 0x25:  # '%'
            if not (0x20 <= ch < 0x7F or ch in b"\t\n\r\x0b\x0c"):
                return -errno.EINVAL
            out.append(ch)
            pos += 1
            continue
        m = _CONV.match(fmt, pos)
        if m is None:
            return -errno.EINVAL
        flags, width, length, conv = m.group(1), m.group(2), m.group(3), m.group(4)
        pos = m.end()
        if conv == b"%":
            if flags or width or length:
                return -errno.EINVAL
            out.append(0x25)
            continue
        if argi >= MAX_TRACE_PRINTK_VARARGS:
            return -errno.EINVAL
        arg = args[argi] & M64
        argi += 1
        spec = "%" + flags.decode() + width.decode()
        if conv in b"csp" and length:
            return -errno.EINVAL
        if conv == b"c":
            text = (spec + "c") % chr(arg & 0xFF)
            out += text.encode("latin-1")
        elif conv == b"s":
            s = read_cstring(env, arg, MAX_BPRINTF_BUF)
            out += (spec + "s").encode() % s
        elif conv == b"p":
            # optional kind suffix the kernel accepts after %p (K, x, s, S, B, i4/I4...)
            km = re.match(rb"(K|x|s|S|B|[iI][46])?", fmt[pos:])
            pos += len(km.group(0)) if km else 0
            out += f"{arg:016x}".encode()
        else:
            bits = 32 if length is None else 64
            v = arg & ((1 << bits) - 1)
            if conv in b"di":
                if v >> (bits - 1):
                    v -= 1 << bits
                out += (spec + "d").encode() % v
            elif conv == b"u":
                out += (spec + "d").encode() % v
            else:
                out += (spec + conv.decode()).encode() % v
    return bytes(out[: MAX_BPRINTF_BUF - 1])


@DEFAULT_REGISTRY.helper("trace_printk")
def trace_printk(env: RunEnv, fmt: int, fmt_size: int, a1: int, a2: int, a3: int) -> int:
    """``long bpf_trace_printk(const char *fmt, u32 fmt_size, ...)``: format, append
    the message to ``env.trace``, return its length in bytes (-EINVAL when the format
    is refused or has no NUL within ``fmt_size``)."""
    size = fmt_size & 0xFFFF_FFFF
    if size < 1:
        return -errno.EINVAL
    raw = env.mem.read(fmt, size)
    nul = raw.find(b"\0")
    if nul < 0:
        return -errno.EINVAL
    msg = format_trace_printk(env, raw[:nul], [a1, a2, a3])
    if isinstance(msg, int):
        return msg
    env.trace.append(msg.decode("latin-1"))
    return len(msg)
