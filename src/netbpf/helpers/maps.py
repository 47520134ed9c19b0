"""Map helpers, with the kernel's semantics: element access, queues and stacks, per-CPU
lookups, ring buffers, perf event output, ``for_each_map_elem``, tail calls, and the
redirect helpers that pick their target from a map.

How they find things (the contract with the hooks and the SimBackend):

* **Maps.** ``r1`` (or the map argument) is a map's CONST_PTR_TO_MAP address; it is
  resolved through ``env.mem`` (:func:`netbpf.maps.map_from_pointer`), so the map must
  have been registered in a :class:`netbpf.maps.MapTable` over the run's address
  space.  Keys and values are read from and written to ``env.mem``; a lookup returns
  the address of the value inside the map's storage.
* **The CPU** a program runs on is ``env.state["cpu"]`` (default 0), as for
  ``bpf_get_smp_processor_id``: per-CPU maps, LRU lists and BPF_F_CURRENT_CPU use it.
* **The packet** for the skb/xdp flavours of ``bpf_perf_event_output`` (the context
  length in flag bits 32..51) comes from ``env.state["skb"]`` (an object with
  ``bytes()``, the test_run :class:`~netbpf.hooks.skb.SkBuff`) or ``env.state["xdp"]``
  (an object with ``linear`` and ``frags``, the :class:`~netbpf.hooks.xdp.XdpBuff`).
  Without either, a non-zero context length is -EINVAL (the kernel's plain
  ``bpf_event_output_data`` flavour).
* **Redirects** are recorded, not performed (the simulated stack acts on them later):
  ``bpf_redirect_map`` leaves a :class:`Redirect` in ``env.state["redirect"]`` (None
  when the lookup failed, as the kernel clears its redirect info), the socket
  redirects in ``env.state["sk_redirect"]``, ``bpf_sk_select_reuseport`` the chosen
  socket in ``env.state["reuseport_selected"]``.
* **Callbacks** (``bpf_for_each_map_elem``) run through ``env.call_subprog``; **tail
  calls** raise :class:`netbpf.vm.runtime.TailCall` with the target program's
  ``executable`` and the engine does the rest (including the 33-call limit).

A helper used on a map type the verifier would refuse it for raises MapError (the run
faults at the call) rather than inventing a result.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Any

from netbpf.errors import MapError
from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.maps.array import ArrayMap
from netbpf.maps.base import Map, map_from_pointer
from netbpf.maps.constants import (
    BPF_F_BROADCAST,
    BPF_F_CTXLEN_MASK,
    BPF_F_CURRENT_CPU,
    BPF_F_EXCLUDE_INGRESS,
    BPF_F_INDEX_MASK,
    BPF_F_INGRESS,
)
from netbpf.maps.fdmaps import ProgArrayMap
from netbpf.maps.hash import HashMap
from netbpf.maps.netmaps import CpuMap, DevMap, ReuseportSockArray, SockHash, SockMap, XskMap
from netbpf.maps.perf import PerfEventArrayMap
from netbpf.maps.queue import QueueMap
from netbpf.maps.ringbuf import RingBufMap, RingBufRegion
from netbpf.uapi import MapType, ProgramType
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import MemoryFault, Region
from netbpf.vm.runtime import TailCall

__all__ = [
    "Redirect",
    "SkRedirect",
    "current_cpu",
    "for_each_map_elem",
    "map_delete_elem",
    "map_lookup_elem",
    "map_lookup_percpu_elem",
    "map_peek_elem",
    "map_pop_elem",
    "map_push_elem",
    "map_update_elem",
    "msg_redirect_hash",
    "msg_redirect_map",
    "perf_event_output",
    "redirect_map",
    "ringbuf_discard",
    "ringbuf_output",
    "ringbuf_query",
    "ringbuf_reserve",
    "ringbuf_submit",
    "sk_redirect_hash",
    "sk_redirect_map",
    "sk_select_reuseport",
    "spin_lock",
    "spin_unlock",
    "tail_call",
]

XDP_ABORTED = 0
XDP_REDIRECT = 4
SK_DROP = 0
SK_PASS = 1
_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Redirect:
    """What ``bpf_redirect_map`` chose: the map, the u32 key, the entry (device and
    program, (cpu, qsize, program), or AF_XDP socket; None for a broadcast) and the
    flags kept for broadcasts."""

    map: Map
    key: int
    target: Any
    flags: int


@dataclass(frozen=True)
class SkRedirect:
    """What ``bpf_sk_redirect_*`` / ``bpf_msg_redirect_*`` chose: the socket, and
    whether it is the socket's ingress (BPF_F_INGRESS) rather than egress."""

    socket: Any
    ingress: bool


def current_cpu(env: RunEnv) -> int:
    """The CPU the program runs on (``env.state["cpu"]``, default 0)."""
    return int(env.state.get("cpu", 0))


def _map(env: RunEnv, addr: int) -> Map:
    return map_from_pointer(env.mem, addr)


def _key(env: RunEnv, m: Map, addr: int) -> bytes:
    return env.mem.read(addr, m.key_size)


def _signed(v: int) -> int:
    return v & _M64


def _refuse(m: Map, helper: str) -> MapError:
    return MapError(
        f"{m.type.name} map '{m.name}': the verifier refuses {helper} on this map type",
        errno=_errno.EINVAL,
    )


# -- elements -------------------------------------------------------------------------------


@DEFAULT_REGISTRY.helper("map_lookup_elem")
def map_lookup_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The value's address in the map (LPM tries: the longest matching prefix; LRU maps
    mark the element referenced; per-CPU maps: this CPU's copy), 0 when absent."""
    m = _map(env, r1)
    return m.prog_lookup(_key(env, m, r2), current_cpu(env))


@DEFAULT_REGISTRY.helper("map_update_elem")
def map_update_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Insert or update (flags BPF_ANY/NOEXIST/EXIST, | BPF_F_LOCK): 0 or -errno."""
    m = _map(env, r1)
    key = _key(env, m, r2)
    value = env.mem.read(r3, m.value_size)
    return _signed(m.prog_update(key, value, r4, current_cpu(env)))


@DEFAULT_REGISTRY.helper("map_delete_elem")
def map_delete_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _map(env, r1)
    return _signed(m.prog_delete(_key(env, m, r2), current_cpu(env)))


@DEFAULT_REGISTRY.helper("map_lookup_percpu_elem")
def map_lookup_percpu_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """The value of ``cpu`` (r3) in a per-CPU array or hash; 0 when absent or the CPU
    does not exist."""
    m = _map(env, r1)
    fn = getattr(m, "prog_lookup_percpu", None)
    if fn is None or not m.percpu:
        raise _refuse(m, "bpf_map_lookup_percpu_elem")
    return fn(_key(env, m, r2), r3 & _M32)


# -- queues and stacks ------------------------------------------------------------------------


def _queue(env: RunEnv, addr: int, helper: str) -> QueueMap:
    m = _map(env, addr)
    if not isinstance(m, QueueMap):
        raise _refuse(m, helper)
    return m


@DEFAULT_REGISTRY.helper("map_push_elem")
def map_push_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Push (BPF_EXIST: overwrite the oldest when full): 0, -E2BIG, -EINVAL."""
    m = _queue(env, r1, "bpf_map_push_elem")
    return _signed(m.prog_push(env.mem.read(r2, m.value_size), r3))


def _pop(env: RunEnv, r1: int, r2: int, delete: bool, helper: str) -> int:
    m = _queue(env, r1, helper)
    rc, value = m.prog_pop(delete)
    if value is not None:
        env.mem.write(r2, value)
    return _signed(rc)


@DEFAULT_REGISTRY.helper("map_pop_elem")
def map_pop_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Pop into the buffer at r2: 0 or -ENOENT when empty."""
    return _pop(env, r1, r2, True, "bpf_map_pop_elem")


@DEFAULT_REGISTRY.helper("map_peek_elem")
def map_peek_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _pop(env, r1, r2, False, "bpf_map_peek_elem")


# -- ring buffer ----------------------------------------------------------------------------


def _ringbuf(env: RunEnv, addr: int, helper: str) -> RingBufMap:
    m = _map(env, addr)
    if not isinstance(m, RingBufMap):
        raise _refuse(m, helper)
    return m


@DEFAULT_REGISTRY.helper("ringbuf_output")
def ringbuf_output(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Copy r3 bytes at r2 into a new record: 0, -EINVAL (flags), -EAGAIN (full)."""
    m = _ringbuf(env, r1, "bpf_ringbuf_output")
    return _signed(m.output(env.mem.read(r2, r3), r4))


@DEFAULT_REGISTRY.helper("ringbuf_reserve")
def ringbuf_reserve(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """A pointer to r2 bytes of a new record (0 when it does not fit or flags != 0)."""
    m = _ringbuf(env, r1, "bpf_ringbuf_reserve")
    if r3:
        return 0
    off = m.reserve(r2)
    if off < 0:
        return 0
    if m._mem is not env.mem:
        raise MemoryFault(f"ring buffer {m.name!r} is not mapped into this address space")
    return m.record_address(off)


def _record(env: RunEnv, addr: int) -> tuple[RingBufMap, int]:
    region, off = env.mem.resolve(addr)
    if not isinstance(region, RingBufRegion):
        raise MemoryFault(f"{addr:#x} is not a ring buffer record ({region.name})")
    return region.map, off


@DEFAULT_REGISTRY.helper("ringbuf_submit")
def ringbuf_submit(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m, off = _record(env, r1)
    m.commit(off, r2, discard=False)
    return 0


@DEFAULT_REGISTRY.helper("ringbuf_discard")
def ringbuf_discard(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m, off = _record(env, r1)
    m.commit(off, r2, discard=True)
    return 0


@DEFAULT_REGISTRY.helper("ringbuf_query")
def ringbuf_query(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return _ringbuf(env, r1, "bpf_ringbuf_query").query(r2)


# -- perf event output ----------------------------------------------------------------------


def _packet(env: RunEnv) -> bytes | None:
    skb = env.state.get("skb")
    if skb is not None:
        return bytes(skb.bytes())
    xdp = env.state.get("xdp")
    if xdp is not None:
        return bytes(xdp.linear) + b"".join(bytes(f) for f in getattr(xdp, "frags", ()))
    return None


@DEFAULT_REGISTRY.helper("perf_event_output")
def perf_event_output(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """bpf_perf_event_output(ctx, map, flags, data, size): a sample of ``size`` bytes
    (plus, for skb and XDP programs, the first ``flags >> 32`` packet bytes) into the
    perf event at index ``flags & BPF_F_INDEX_MASK`` (BPF_F_CURRENT_CPU: this CPU's).
    0, -EINVAL, -EFAULT, -E2BIG, -ENOENT, -EOPNOTSUPP or -ENOSPC (lost)."""
    m = _map(env, r2)
    if not isinstance(m, PerfEventArrayMap):
        raise _refuse(m, "bpf_perf_event_output")
    flags = r3
    packet = _packet(env)
    if packet is None:
        if flags & ~BPF_F_INDEX_MASK:
            return _signed(-_errno.EINVAL)
        ctxlen = 0
    else:
        if flags & ~(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK):
            return _signed(-_errno.EINVAL)
        ctxlen = (flags & BPF_F_CTXLEN_MASK) >> 32
        if ctxlen > len(packet):
            return _signed(-_errno.EFAULT)
    cpu = current_cpu(env)
    index = flags & BPF_F_INDEX_MASK
    if index == BPF_F_CURRENT_CPU:
        index = cpu
    data = env.mem.read(r4, r5) + (packet[:ctxlen] if packet is not None else b"")
    return _signed(m.output(index, cpu, data))


# -- iteration ------------------------------------------------------------------------------


class _KeyScratch(Region):
    """Where ``for_each_map_elem`` puts the key it passes by pointer (the kernel uses a
    variable on its own stack for arrays)."""

    __slots__ = ()


def _key_pointer(env: RunEnv, m: Map, key: bytes) -> int:
    cache = env.state.setdefault("_for_each_key_regions", {})
    region = cache.get(m.key_size)
    if region is None or env.mem.slots.get(region.base >> 32) is not region:
        region = _KeyScratch("for_each_map_elem key", bytearray(max(m.key_size, 1)))
        env.mem.map(region)
        cache[m.key_size] = region
    region.buf[: m.key_size] = key
    return region.base


@DEFAULT_REGISTRY.helper("for_each_map_elem")
def for_each_map_elem(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Call the BPF function r2 as ``cb(map, &key, &value, r3)`` for each element in
    the kernel's order (arrays: every index; hash maps: bucket by bucket; per-CPU maps:
    this CPU's value) until it returns non-zero.  Returns the number of elements
    visited; flags (r4) other than 0 -> -EINVAL."""
    m = _map(env, r1)
    if r4:
        return _signed(-_errno.EINVAL)
    cpu = current_cpu(env)
    n = 0
    if isinstance(m, ArrayMap):
        for i in range(m.max_entries):
            n += 1
            kp = _key_pointer(env, m, i.to_bytes(4, "little"))
            vp = m.values_store.address(i, cpu if m.percpu else 0)
            if env.call_subprog(r2, r1, kp, vp, r3, 0) & _M64:
                break
        return n
    if isinstance(m, HashMap) and m.store is not None and m.map_type != MapType.HASH_OF_MAPS:
        t = m.table
        for b in range(t.n_buckets):
            for s in t.chain(b):
                n += 1
                kp = _key_pointer(env, m, t.key_of(s))
                vp = m.store.address(s, cpu if m.percpu else 0)
                if env.call_subprog(r2, r1, kp, vp, r3, 0) & _M64:
                    return n
        return n
    raise _refuse(m, "bpf_for_each_map_elem")


# -- tail calls -----------------------------------------------------------------------------


@DEFAULT_REGISTRY.helper("tail_call")
def tail_call(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Jump to the program at index r3 of the PROG_ARRAY r2 (the engine replaces the
    running program, keeping r1 = ctx).  An index out of range or an empty slot falls
    through: the program continues after the call (r0 = 0 here)."""
    m = _map(env, r2)
    if not isinstance(m, ProgArrayMap):
        raise _refuse(m, "bpf_tail_call")
    prog = m.prog_at(r3 & _M32)
    if prog is None:
        return 0
    exe = getattr(prog, "executable", prog)
    raise TailCall(exe)


# -- redirects ------------------------------------------------------------------------------

_XDP_ACTION_MASK = 3  # XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX


@DEFAULT_REGISTRY.helper("redirect_map", prog_types=[ProgramType.XDP])
def redirect_map(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """XDP_REDIRECT to the entry ``key`` (r2) of a DEVMAP, DEVMAP_HASH, CPUMAP or XSKMAP,
    recorded in ``env.state["redirect"]``.  A missing entry returns the low two flag
    bits (an XDP action) and clears the record; unknown flags return XDP_ABORTED.
    BPF_F_BROADCAST / BPF_F_EXCLUDE_INGRESS are accepted on devmaps."""
    m = _map(env, r1)
    key = r2 & _M32
    flags = r3
    if isinstance(m, DevMap):
        flag_mask = BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS
    elif isinstance(m, CpuMap | XskMap):
        flag_mask = 0
    else:
        raise _refuse(m, "bpf_redirect_map")
    if flags & ~(_XDP_ACTION_MASK | flag_mask):
        return XDP_ABORTED
    target = m.target(key.to_bytes(4, "little"))
    if target is None and not flags & BPF_F_BROADCAST:
        env.state["redirect"] = None
        return flags & _XDP_ACTION_MASK
    broadcast = bool(flags & BPF_F_BROADCAST)
    env.state["redirect"] = Redirect(m, key, target, flags if broadcast else 0)
    return XDP_REDIRECT


def _redirect_allowed(sk: Any) -> bool:
    """sock_map_redirect_allowed: not a listener (TCP), established (others)."""
    state = getattr(sk, "state", "close")
    if getattr(sk, "is_tcp", False):
        return state != "listen"
    return state == "established"


def _sk_redirect(env: RunEnv, m: Map, key: bytes, flags: int, helper: str) -> int:
    if not isinstance(m, SockMap | SockHash):
        raise _refuse(m, helper)
    if flags & ~BPF_F_INGRESS:
        return SK_DROP
    sk = m.target(key)
    if sk is None or not _redirect_allowed(sk):
        return SK_DROP
    env.state["sk_redirect"] = SkRedirect(sk, bool(flags & BPF_F_INGRESS))
    return SK_PASS


@DEFAULT_REGISTRY.helper("sk_redirect_map", prog_types=[ProgramType.SK_SKB])
def sk_redirect_map(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """SK_PASS after choosing socket ``key`` (u32, r3) of a SOCKMAP, else SK_DROP."""
    m = _map(env, r2)
    return _sk_redirect(env, m, (r3 & _M32).to_bytes(4, "little"), r4, "bpf_sk_redirect_map")


@DEFAULT_REGISTRY.helper("sk_redirect_hash", prog_types=[ProgramType.SK_SKB])
def sk_redirect_hash(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _map(env, r2)
    return _sk_redirect(env, m, _key(env, m, r3), r4, "bpf_sk_redirect_hash")


@DEFAULT_REGISTRY.helper("msg_redirect_map", prog_types=[ProgramType.SK_MSG])
def msg_redirect_map(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _map(env, r2)
    return _sk_redirect(env, m, (r3 & _M32).to_bytes(4, "little"), r4, "bpf_msg_redirect_map")


@DEFAULT_REGISTRY.helper("msg_redirect_hash", prog_types=[ProgramType.SK_MSG])
def msg_redirect_hash(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    m = _map(env, r2)
    return _sk_redirect(env, m, _key(env, m, r3), r4, "bpf_msg_redirect_hash")


@DEFAULT_REGISTRY.helper("sk_select_reuseport", prog_types=[ProgramType.SK_REUSEPORT])
def sk_select_reuseport(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Pick the socket at ``*key`` (r3) of a REUSEPORT_SOCKARRAY, SOCKMAP or SOCKHASH:
    0 (recorded in ``env.state["reuseport_selected"]``), -ENOENT when absent, -EINVAL
    for a socket without SO_REUSEPORT from a sock map; against the listening socket in
    ``env.state["reuseport_sk"]`` (when the hook provides one) a different protocol is
    -EPROTOTYPE and a different family -EAFNOSUPPORT."""
    m = _map(env, r2)
    if not isinstance(m, ReuseportSockArray | SockMap | SockHash):
        raise _refuse(m, "bpf_sk_select_reuseport")
    sk = m.target(_key(env, m, r3))
    if sk is None:
        return _signed(-_errno.ENOENT)
    if not getattr(sk, "reuseport", False) or not getattr(sk, "hashed", False):
        err = _errno.ENOENT if isinstance(m, ReuseportSockArray) else _errno.EINVAL
        return _signed(-err)
    me = env.state.get("reuseport_sk")
    if me is not None:
        if getattr(me, "protocol", None) != getattr(sk, "protocol", None):
            return _signed(-_errno.EPROTOTYPE)
        if getattr(me, "family", None) != getattr(sk, "family", None):
            return _signed(-_errno.EAFNOSUPPORT)
    env.state["reuseport_selected"] = sk
    return 0


# -- spin locks -----------------------------------------------------------------------------


@DEFAULT_REGISTRY.helper("spin_lock")
def spin_lock(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Take the ``struct bpf_spin_lock`` at r1 (inside a map value).  One program runs
    at a time in the simulator, so this only marks the lock word; user space never sees
    it (maps mask it)."""
    env.mem.store(r1, 4, 1)
    return 0


@DEFAULT_REGISTRY.helper("spin_unlock")
def spin_unlock(env: RunEnv, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    env.mem.store(r1, 4, 0)
    return 0
