"""The simulator's maps: every networking map type of the kernel, with its semantics.

Create maps from specs with :func:`create_map`; give them to programs through a
:class:`MapTable` (which maps their storage into an address space and hands out their
CONST_PTR_TO_MAP addresses); pin them in a :class:`PinNamespace`.  Every map speaks the
``bpf()`` commands in raw bytes (see :class:`Map`), so the same code drives a simulated
map and a :class:`netbpf.kernel.KernelMap`.

Example::

    from netbpf.maps import MapSpec, create_map
    from netbpf.uapi import MapType

    counts = create_map(MapSpec("counts", MapType.HASH, key_size=4, value_size=8,
                                max_entries=1024))
    counts.update((1).to_bytes(4, "little"), (5).to_bytes(8, "little"))
    assert counts.lookup((1).to_bytes(4, "little")) == (5).to_bytes(8, "little")

Which kernel behaviour each type models is in its module: :mod:`~netbpf.maps.array`,
:mod:`~netbpf.maps.hash` (with :mod:`~netbpf.maps._lru`), :mod:`~netbpf.maps.lpm`,
:mod:`~netbpf.maps.queue`, :mod:`~netbpf.maps.ringbuf`, :mod:`~netbpf.maps.perf`,
:mod:`~netbpf.maps.fdmaps`, :mod:`~netbpf.maps.netmaps`; tests/test_maps_kernel.py
checks it against the running kernel (creation checks, every operation's result and
errno, iteration orders, batches, LRU eviction, program-side helpers).

What the simulator deliberately does differently or leaves out:

* hash seeds are always 0: iteration order equals the kernel's with BPF_F_ZERO_SEED and
  is deterministic otherwise (the kernel's is random then);
* one thread: spin locks only mark the lock word; user-space operations run on CPU
  ``user_cpu`` (0), programs on ``env.state["cpu"]``;
* run-time bounds are per storage region (a map's value array), not per value:
  BPF_F_RDONLY_PROG is enforced (read-only regions), BPF_F_WRONLY_PROG and in-value
  bounds are the verifier's job;
* socket, device and AF_XDP entries are opaque handles (:mod:`~netbpf.maps.handles`);
  redirect helpers record their target in ``env.state``; program-side lookups of
  SOCKMAP/SOCKHASH raise NotSupportedError until the simulated socket layer exists;
* perf event buffers are a byte budget of ``page_cnt`` pages with PERF_RECORD_LOST
  accounting, without watermarks or wakeup counts; no BPF_F_RB_OVERWRITE ring buffers,
  user ring buffers or dynptr helpers;
* BTF special fields other than ``bpf_spin_lock`` (timers, kptrs) are not modelled;
* storage above 4 GiB per map is refused with ENOMEM where the kernel might allocate.
"""

from __future__ import annotations

from netbpf.maps.array import ArrayMap, PercpuArrayMap
from netbpf.maps.base import (
    BatchResult,
    Map,
    MapHandleRegion,
    MapInfo,
    MapTable,
    ValueStore,
    map_error,
    map_from_pointer,
)
from netbpf.maps.constants import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NO_COMMON_LRU,
    BPF_F_NO_PREALLOC,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY,
    BPF_F_WRONLY_PROG,
    BPF_F_ZERO_SEED,
    BPF_NOEXIST,
    ENOTSUPP,
    LIBBPF_PIN_BY_NAME,
    LIBBPF_PIN_NONE,
)
from netbpf.maps.factory import MAP_CLASSES, create_map, map_class, possible_cpus
from netbpf.maps.fdmaps import ArrayOfMapsMap, HashOfMapsMap, ProgArrayMap
from netbpf.maps.handles import AF_XDP, Resolver, Socket, XdpSocket, object_id
from netbpf.maps.hash import HashMap, LruHashMap, LruPercpuHashMap, PercpuHashMap
from netbpf.maps.jhash import jhash
from netbpf.maps.lpm import LpmTrieMap, lpm_key
from netbpf.maps.netmaps import (
    CpuMap,
    CpumapValue,
    DevMap,
    DevMapHash,
    DevmapValue,
    ReuseportSockArray,
    SockHash,
    SockMap,
    XskMap,
)
from netbpf.maps.perf import PerfBuffer, PerfEventArrayMap, PerfEventBuffer, PerfLost, PerfSample
from netbpf.maps.pinning import DEFAULT_PIN_ROOT, PinNamespace, map_reuse_compatible, pin_by_name
from netbpf.maps.queue import QueueMap, StackMap
from netbpf.maps.ringbuf import RingBufMap
from netbpf.maps.spec import MapSpec

__all__ = [
    "AF_XDP",
    "BPF_ANY",
    "BPF_EXIST",
    "BPF_F_LOCK",
    "BPF_F_MMAPABLE",
    "BPF_F_NO_COMMON_LRU",
    "BPF_F_NO_PREALLOC",
    "BPF_F_RDONLY",
    "BPF_F_RDONLY_PROG",
    "BPF_F_WRONLY",
    "BPF_F_WRONLY_PROG",
    "BPF_F_ZERO_SEED",
    "BPF_NOEXIST",
    "DEFAULT_PIN_ROOT",
    "ENOTSUPP",
    "LIBBPF_PIN_BY_NAME",
    "LIBBPF_PIN_NONE",
    "MAP_CLASSES",
    "ArrayMap",
    "ArrayOfMapsMap",
    "BatchResult",
    "CpuMap",
    "CpumapValue",
    "DevMap",
    "DevMapHash",
    "DevmapValue",
    "HashMap",
    "HashOfMapsMap",
    "LpmTrieMap",
    "LruHashMap",
    "LruPercpuHashMap",
    "Map",
    "MapHandleRegion",
    "MapInfo",
    "MapSpec",
    "MapTable",
    "PercpuArrayMap",
    "PercpuHashMap",
    "PerfBuffer",
    "PerfEventArrayMap",
    "PerfEventBuffer",
    "PerfLost",
    "PerfSample",
    "PinNamespace",
    "ProgArrayMap",
    "QueueMap",
    "Resolver",
    "ReuseportSockArray",
    "RingBufMap",
    "SockHash",
    "SockMap",
    "Socket",
    "StackMap",
    "ValueStore",
    "XdpSocket",
    "XskMap",
    "create_map",
    "jhash",
    "lpm_key",
    "map_class",
    "map_error",
    "map_from_pointer",
    "map_reuse_compatible",
    "object_id",
    "pin_by_name",
    "possible_cpus",
]
