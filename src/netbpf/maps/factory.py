"""``create_map(spec)``: the simulator's BPF_MAP_CREATE, a table keyed by map type."""

from __future__ import annotations

import errno as _errno
import functools
import os
from typing import Any

from netbpf.errors import MapError, NotSupportedError
from netbpf.maps.array import ArrayMap, PercpuArrayMap
from netbpf.maps.base import Map, _Errno, errno_name, map_error
from netbpf.maps.fdmaps import ArrayOfMapsMap, HashOfMapsMap, ProgArrayMap
from netbpf.maps.hash import HashMap, LruHashMap, LruPercpuHashMap, PercpuHashMap
from netbpf.maps.lpm import LpmTrieMap
from netbpf.maps.netmaps import (
    CpuMap,
    DevMap,
    DevMapHash,
    ReuseportSockArray,
    SockHash,
    SockMap,
    XskMap,
)
from netbpf.maps.perf import PerfEventArrayMap
from netbpf.maps.queue import QueueMap, StackMap
from netbpf.maps.ringbuf import RingBufMap
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType

__all__ = ["MAP_CLASSES", "create_map", "map_class", "possible_cpus"]

#: map type -> simulator class (every networking map type of the kernel)
MAP_CLASSES: dict[MapType, type[Map]] = {
    MapType.HASH: HashMap,
    MapType.ARRAY: ArrayMap,
    MapType.PROG_ARRAY: ProgArrayMap,
    MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
    MapType.PERCPU_HASH: PercpuHashMap,
    MapType.PERCPU_ARRAY: PercpuArrayMap,
    MapType.LRU_HASH: LruHashMap,
    MapType.LRU_PERCPU_HASH: LruPercpuHashMap,
    MapType.LPM_TRIE: LpmTrieMap,
    MapType.ARRAY_OF_MAPS: ArrayOfMapsMap,
    MapType.HASH_OF_MAPS: HashOfMapsMap,
    MapType.DEVMAP: DevMap,
    MapType.SOCKMAP: SockMap,
    MapType.CPUMAP: CpuMap,
    MapType.XSKMAP: XskMap,
    MapType.SOCKHASH: SockHash,
    MapType.REUSEPORT_SOCKARRAY: ReuseportSockArray,
    MapType.QUEUE: QueueMap,
    MapType.STACK: StackMap,
    MapType.DEVMAP_HASH: DevMapHash,
    MapType.RINGBUF: RingBufMap,
}

#: types whose maps hold objects named through a Resolver (fds, ifindexes)
_TAKES_RESOLVER = frozenset(
    {
        MapType.PROG_ARRAY,
        MapType.PERF_EVENT_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
        MapType.DEVMAP,
        MapType.DEVMAP_HASH,
        MapType.CPUMAP,
        MapType.XSKMAP,
        MapType.SOCKMAP,
        MapType.SOCKHASH,
        MapType.REUSEPORT_SOCKARRAY,
    }
)


@functools.cache
def possible_cpus() -> int:
    """The host's possible CPUs (``/sys/devices/system/cpu/possible``): the kernel's and
    libbpf's per-CPU value count; os.cpu_count() where that file is missing."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return max(n, 1)


def map_class(spec: MapSpec) -> type[Map]:
    """The simulator class for ``spec.type`` (EINVAL for an unknown type number,
    NotSupportedError for a kernel type netbpf does not simulate)."""
    try:
        mtype = MapType(spec.type)
    except ValueError:
        raise _Errno(_errno.EINVAL, f"unknown map type {spec.type}") from None
    cls = MAP_CLASSES.get(mtype)
    if cls is None:
        raise NotSupportedError(f"map type {mtype.name}", "not a networking map netbpf simulates")
    return cls


def create_map(spec: MapSpec, *, ncpus: int | None = None, resolver: Any = None) -> Map:
    """Create the simulated map ``spec`` describes, checking it as BPF_MAP_CREATE does:
    an invalid spec raises the kernel's errno as a typed
    :class:`~netbpf.errors.MapError`.

    ``ncpus`` is the number of possible CPUs per-CPU storage is sized for (default: the
    host's, like the kernel and libbpf).  ``resolver`` (a :class:`Resolver`) names the
    programs, maps, devices and sockets user space refers to by number; maps holding such
    objects get a private one (loopback device only) without it."""
    n = possible_cpus() if ncpus is None else ncpus
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MapError(f"map '{spec.name}': ncpus must be a positive integer, not {ncpus!r}")
    what = f"map '{spec.name}'"
    try:
        cls = map_class(spec)
        what = f"{cls.map_type.name} map '{spec.name}'"
        Map.check_common(spec)
        cls.validate(spec, n)  # type: ignore[attr-defined]
        if cls.map_type in _TAKES_RESOLVER:
            return cls(spec, ncpus=n, resolver=resolver)  # type: ignore[call-arg]
        return cls(spec, ncpus=n)
    except _Errno as e:
        why = f"{e.why} " if e.why else ""
        raise map_error(e.err, f"{what}: create: {why}({errno_name(e.err)})") from None
