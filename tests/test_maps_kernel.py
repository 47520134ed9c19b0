"""Kernel-differential tests of the simulator's maps: the same user-space operations on
a simulated map and on a kernel map, comparing every result and errno.

Each scenario is a list of operations; ``outcome`` runs one on a map and returns
``("ok", result)`` or ``("err", errno)``, so a scenario passes only if the simulator
agrees with the kernel on every step (values, iteration order, error numbers).  LRU
scenarios pin this process to CPU 0 (the kernel's LRU lists depend on the CPU running
the syscall; the simulator runs user-space operations on CPU 0).
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from netbpf.errors import KernelError, MapError
from netbpf.kernel import syscall as ksys
from netbpf.maps import (
    AF_XDP,
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_F_NO_COMMON_LRU,
    BPF_F_NO_PREALLOC,
    BPF_F_ZERO_SEED,
    BPF_NOEXIST,
    DevmapValue,
    MapSpec,
    Resolver,
    Socket,
    XdpSocket,
    create_map,
    lpm_key,
    object_id,
)
from netbpf.maps.base import errno_name
from netbpf.uapi import AttachType, MapType, ProgramType

NCPUS = ksys.possible_cpus()
BPF_F_INNER_MAP = 1 << 12
BPF_F_MMAPABLE = 1 << 10


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        r = fn(*args)
    except MapError as e:
        return ("err", errno_name(e.errno))
    except KernelError as e:
        return ("err", errno_name(e.errno))
    if isinstance(r, Iterator):
        r = list(r)
    return ("ok", r)


@contextmanager
def on_cpu0() -> Iterator[None]:
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def pair(kernel: Any, mtype: MapType, k: int, v: int, n: int, flags: int = 0, **kw: Any) -> Any:
    """The same map in the simulator and in the kernel."""
    inner = kw.pop("inner", None)
    resolver = kw.pop("resolver", None)
    spec = MapSpec("t", mtype, k, v, n, flags, inner_map=inner[0].spec if inner else None, **kw)
    sim = create_map(spec, ncpus=NCPUS, resolver=resolver)
    km = kernel.create_map(mtype, k, v, n, flags=flags, inner_map=inner[1] if inner else None)
    return sim, km


def keyless(m: Any, op: str, flags: int = 0) -> Any:
    """A keyless bpf() command (queue/stack/ring buffer) on either kind of map."""
    if hasattr(m, "lookup_batch_step"):  # the simulator
        if op == "lookup_and_delete":
            return m.lookup_and_delete(None, flags=flags)
        if op == "lookup":
            return m.lookup(None, flags=flags)
        if op == "update":
            return m.update(None, bytes(m.value_size), flags=flags)
        return m.next_key(None)
    try:
        if op == "lookup_and_delete":
            return ksys.map_lookup_and_delete_elem(m.fd, None, m.value_size, flags=flags)
        if op == "lookup":
            return ksys.map_lookup_elem(m.fd, None, m.value_size, flags=flags)
        if op == "update":
            return ksys.map_update_elem(m.fd, None, bytes(m.value_size), flags=flags)
        return ksys.map_get_next_key(m.fd, None, max(m.key_size, 1))
    except KernelError as e:
        raise MapError(op, errno=e.errno) from None


def same(sim: Any, km: Any, ops: list[Callable[[Any], Any]]) -> list[tuple[str, Any]]:
    """Run each op on both maps; every outcome must be equal."""
    got = []
    for i, op in enumerate(ops):
        a = outcome(op, sim)
        b = outcome(op, km)
        assert a == b, f"op #{i}: sim {a} != kernel {b}"
        got.append(a)
    return got


# -- creation -------------------------------------------------------------------------------

F = {
    "none": 0,
    "NO_PREALLOC": 1,
    "NO_COMMON_LRU": 2,
    "NUMA": 4,
    "RDONLY": 8,
    "WRONLY": 16,
    "RDWR": 24,
    "ZERO_SEED": 64,
    "RDONLY_PROG": 128,
    "WRONLY_PROG": 256,
    "PROG_RDWR": 384,
    "MMAPABLE": 1024,
    "PRESERVE": 2048,
    "INNER_MAP": 4096,
}

CREATE_SHAPES = [
    (MapType.ARRAY, 4, 8, 4),
    (MapType.ARRAY, 8, 8, 4),
    (MapType.ARRAY, 4, 0, 4),
    (MapType.ARRAY, 4, 8, 0),
    (MapType.ARRAY, 4, 1 << 31, 1),
    (MapType.PERCPU_ARRAY, 4, 32768, 2),
    (MapType.PERCPU_ARRAY, 4, 32769, 2),
    (MapType.HASH, 4, 8, 4),
    (MapType.HASH, 0, 8, 4),
    (MapType.HASH, 4, 0, 4),
    (MapType.HASH, 513, 8, 4),
    (MapType.HASH, 4, 4194251, 1),
    (MapType.HASH, 4, 4194252, 1),
    (MapType.HASH, 4, 8, (1 << 27) + 1),
    (MapType.PERCPU_HASH, 4, 32769, 2),
    (MapType.LRU_HASH, 4, 8, 5),
    (MapType.LRU_PERCPU_HASH, 4, 8, 5),
    (MapType.LPM_TRIE, 8, 8, 4),
    (MapType.LPM_TRIE, 4, 8, 4),
    (MapType.LPM_TRIE, 260, 8, 4),
    (MapType.LPM_TRIE, 261, 8, 4),
    (MapType.QUEUE, 0, 8, 4),
    (MapType.QUEUE, 4, 8, 4),
    (MapType.STACK, 0, 0, 4),
    (MapType.RINGBUF, 0, 0, 4096),
    (MapType.RINGBUF, 0, 0, 12288),
    (MapType.RINGBUF, 4, 0, 4096),
    (MapType.PROG_ARRAY, 4, 4, 4),
    (MapType.PROG_ARRAY, 4, 8, 4),
    (MapType.PERF_EVENT_ARRAY, 4, 4, 4),
    (MapType.DEVMAP, 4, 4, 4),
    (MapType.DEVMAP, 4, 8, 4),
    (MapType.DEVMAP, 4, 12, 4),
    (MapType.DEVMAP_HASH, 4, 8, 4),
    (MapType.CPUMAP, 4, 8, 4),
    (MapType.CPUMAP, 4, 8, 257),
    (MapType.XSKMAP, 4, 4, 4),
    (MapType.XSKMAP, 4, 8, 4),
    (MapType.SOCKMAP, 4, 8, 4),
    (MapType.SOCKMAP, 4, 16, 4),
    (MapType.SOCKHASH, 16, 8, 4),
    (MapType.SOCKHASH, 0, 8, 4),
    (MapType.REUSEPORT_SOCKARRAY, 4, 8, 4),
    (MapType.REUSEPORT_SOCKARRAY, 8, 8, 4),
]


def _create_outcomes(kernel: Any, mtype: MapType, k: int, v: int, n: int, flags: int) -> Any:
    def sim() -> Any:
        m = create_map(MapSpec("c", mtype, k, v, n, flags), ncpus=NCPUS)
        return (m.max_entries, m.flags)

    def kern() -> Any:
        with kernel.create_map(mtype, k, v, n, flags=flags) as m:
            info = m.info()
            return (info.max_entries, info.map_flags)

    return outcome(sim), outcome(kern)


@pytest.mark.parametrize("shape", CREATE_SHAPES, ids=lambda s: f"{s[0].name}-{s[1]}-{s[2]}-{s[3]}")
def test_create_checks(kernel: Any, shape: tuple[MapType, int, int, int]) -> None:
    """Sizes and limits: the same errno (or the same reported max_entries and flags)."""
    mtype, k, v, n = shape
    flags = BPF_F_NO_PREALLOC if mtype == MapType.LPM_TRIE else 0
    a, b = _create_outcomes(kernel, mtype, k, v, n, flags)
    assert a == b


FLAG_SHAPES = [
    (MapType.ARRAY, 4, 8, 4),
    (MapType.PERCPU_ARRAY, 4, 8, 4),
    (MapType.HASH, 4, 8, 4),
    (MapType.PERCPU_HASH, 4, 8, 4),
    (MapType.LRU_HASH, 4, 8, 5),
    (MapType.LRU_PERCPU_HASH, 4, 8, 5),
    (MapType.QUEUE, 0, 8, 4),
    (MapType.STACK, 0, 8, 4),
    (MapType.RINGBUF, 0, 0, 4096),
    (MapType.PROG_ARRAY, 4, 4, 4),
    (MapType.PERF_EVENT_ARRAY, 4, 4, 4),
    (MapType.DEVMAP, 4, 8, 4),
    (MapType.DEVMAP_HASH, 4, 8, 4),
    (MapType.CPUMAP, 4, 8, 4),
    (MapType.XSKMAP, 4, 4, 4),
    (MapType.SOCKMAP, 4, 8, 4),
    (MapType.SOCKHASH, 4, 8, 4),
    (MapType.REUSEPORT_SOCKARRAY, 4, 8, 4),
]


@pytest.mark.parametrize("shape", FLAG_SHAPES, ids=lambda s: s[0].name)
def test_create_flags(kernel: Any, shape: tuple[MapType, int, int, int]) -> None:
    """Every map_create flag on every type: refused the same way, or accepted with the
    same reported flags (DEVMAP gains BPF_F_RDONLY_PROG; RDONLY/WRONLY are not kept)."""
    mtype, k, v, n = shape
    for name, flags in F.items():
        a, b = _create_outcomes(kernel, mtype, k, v, n, flags)
        assert a == b, f"flags {name}: sim {a} != kernel {b}"


def test_create_lpm_flags(kernel: Any) -> None:
    for name, flags in F.items():
        a, b = _create_outcomes(kernel, MapType.LPM_TRIE, 8, 8, 4, flags | BPF_F_NO_PREALLOC)
        assert a == b, f"flags {name}: sim {a} != kernel {b}"


# -- arrays ---------------------------------------------------------------------------------


def test_array_ops(kernel: Any) -> None:
    sim, km = pair(kernel, MapType.ARRAY, 4, 8, 4)
    same(
        sim,
        km,
        [
            lambda m: m.lookup(u32(0)),
            lambda m: m.lookup(u32(4)),
            lambda m: m.update(u32(1), u64(7)),
            lambda m: m.lookup(u32(1)),
            lambda m: m.update(u32(1), u64(8), flags=BPF_NOEXIST),
            lambda m: m.update(u32(1), u64(9), flags=BPF_EXIST),
            lambda m: m.update(u32(4), u64(9)),
            lambda m: m.update(u32(4), u64(9), flags=7),
            lambda m: m.update(u32(0), u64(9), flags=3),
            lambda m: m.update(u32(0), u64(9), flags=BPF_F_LOCK),
            lambda m: m.lookup(u32(1), flags=BPF_F_LOCK),
            lambda m: m.lookup(u32(1), flags=1),
            lambda m: m.delete(u32(0)),
            lambda m: m.delete(u32(9)),
            lambda m: m.lookup_and_delete(u32(1)),
            lambda m: m.lookup_and_delete(u32(1), flags=BPF_F_LOCK),
            lambda m: [m.next_key(k) for k in (None, u32(0), u32(2), u32(3), u32(4), u32(99))],
            lambda m: list(m.keys()),
            lambda m: m.freeze(),
            lambda m: m.update(u32(1), u64(1)),
            lambda m: m.delete(u32(1)),
            lambda m: m.lookup(u32(1)),
            lambda m: m.freeze(),
        ],
    )


def test_percpu_array_ops(kernel: Any) -> None:
    sim, km = pair(kernel, MapType.PERCPU_ARRAY, 4, 4, 3)
    vals = b"".join(u64(0x0101010100000000 + i) for i in range(NCPUS))
    same(
        sim,
        km,
        [
            lambda m: m.lookup(u32(0)),
            lambda m: m.update(u32(2), vals),
            lambda m: m.lookup(u32(2)),
            lambda m: m.update(u32(2), vals, flags=BPF_F_LOCK),
            lambda m: m.update(u32(2), vals, flags=BPF_NOEXIST),
            lambda m: m.update(u32(3), vals),
            lambda m: list(m.keys()),
        ],
    )
    # the simulator keeps value_size bytes per CPU: the padding reads back as zero
    assert sim.lookup_percpu(u32(2)) == [u32(i) for i in range(NCPUS)]


# -- hash maps ------------------------------------------------------------------------------


def _hash_ops(n: int) -> list[Callable[[Any], Any]]:
    ops: list[Callable[[Any], Any]] = []
    for i in [5, 1, 9, 3, 7, 2, 8, 4]:
        ops.append(lambda m, i=i: m.update(u32(i), u64(i * 10)))
    ops += [
        lambda m: list(m.keys()),
        lambda m: m.update(u32(5), u64(1), flags=BPF_NOEXIST),
        lambda m: m.update(u32(55), u64(1), flags=BPF_EXIST),
        lambda m: m.update(u32(5), u64(2), flags=BPF_EXIST),
        lambda m: list(m.keys()),  # an update relinks the key at its bucket's head
        lambda m: m.update(u32(5), u64(2), flags=3),
        lambda m: m.delete(u32(77)),
        lambda m: m.delete(u32(9)),
        lambda m: m.lookup(u32(9)),
        lambda m: m.lookup_and_delete(u32(1)),
        lambda m: m.lookup_and_delete(u32(1)),
        lambda m: m.lookup_and_delete(u32(3), flags=BPF_F_LOCK),
        lambda m: m.lookup_and_delete(u32(3), flags=8),
        lambda m: [m.next_key(k) for k in (None, u32(5), u32(1000))],
        lambda m: list(m.items()),
        lambda m: len(list(m.keys())),
    ]
    return ops


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.PERCPU_HASH])
@pytest.mark.parametrize("flags", [BPF_F_ZERO_SEED, BPF_F_ZERO_SEED | BPF_F_NO_PREALLOC])
def test_hash_ops(kernel: Any, mtype: MapType, flags: int) -> None:
    sim, km = pair(kernel, mtype, 4, 8, 8, flags)
    same(sim, km, _hash_ops(8))


@pytest.mark.parametrize("flags", [BPF_F_ZERO_SEED, BPF_F_ZERO_SEED | BPF_F_NO_PREALLOC])
def test_hash_full(kernel: Any, flags: int) -> None:
    sim, km = pair(kernel, MapType.HASH, 4, 4, 3, flags)
    same(
        sim,
        km,
        [
            lambda m: m.update(u32(1), u32(1)),
            lambda m: m.update(u32(2), u32(2)),
            lambda m: m.update(u32(3), u32(3)),
            lambda m: m.update(u32(4), u32(4)),  # full: E2BIG
            lambda m: m.update(u32(3), u32(33)),  # replacing in a full map is fine
            lambda m: m.update(u32(4), u32(4), flags=BPF_EXIST),
            lambda m: m.delete(u32(1)),
            lambda m: m.update(u32(4), u32(4)),
            lambda m: list(m.items()),
        ],
    )


def test_hash_odd_key_sizes_order(kernel: Any) -> None:
    """jhash over 3, 5, 12 and 13-byte keys: the same iteration order as the kernel."""
    for ks in (3, 5, 12, 13, 24):
        sim, km = pair(kernel, MapType.HASH, ks, 4, 32, BPF_F_ZERO_SEED)
        rng = random.Random(ks)
        keys = [rng.randbytes(ks) for _ in range(20)]
        same(
            sim, km, [lambda m, k=k: m.update(k, u32(1)) for k in keys] + [lambda m: list(m.keys())]
        )


@pytest.mark.parametrize(
    "mtype,flags",
    [
        (MapType.HASH, BPF_F_ZERO_SEED),
        (MapType.HASH, BPF_F_ZERO_SEED | BPF_F_NO_PREALLOC),
        (MapType.PERCPU_HASH, BPF_F_ZERO_SEED),
        (MapType.LRU_HASH, BPF_F_ZERO_SEED),
        (MapType.LRU_HASH, BPF_F_ZERO_SEED | BPF_F_NO_COMMON_LRU),
        (MapType.LRU_PERCPU_HASH, BPF_F_ZERO_SEED),
        (MapType.LRU_PERCPU_HASH, BPF_F_ZERO_SEED | BPF_F_NO_COMMON_LRU),
    ],
)
@pytest.mark.parametrize("seed", range(4))
def test_hash_random_sequences(kernel: Any, mtype: MapType, flags: int, seed: int) -> None:
    """Random update/delete/lookup/lookup_and_delete sequences on small hash maps (keys
    from a small space so flags collide, maps small so they fill and LRU maps evict):
    every result and the final order must be the kernel's."""
    rng = random.Random(seed * 1000 + int(mtype) * 10 + flags)
    n = 8
    sim, km = pair(kernel, mtype, 4, 8, n, flags)
    percpu = mtype in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
    stride = 8 * NCPUS if percpu else 8
    ops: list[Callable[[Any], Any]] = []
    for _ in range(120):
        k = u32(rng.randrange(24))
        r = rng.random()
        if r < 0.55:
            v = rng.randbytes(stride)
            fl = rng.choice([BPF_ANY, BPF_ANY, BPF_NOEXIST, BPF_EXIST])
            ops.append(lambda m, k=k, v=v, fl=fl: m.update(k, v, flags=fl))
        elif r < 0.75:
            ops.append(lambda m, k=k: m.delete(k))
        elif r < 0.9:
            ops.append(lambda m, k=k: m.lookup(k))
        else:
            ops.append(lambda m, k=k: m.lookup_and_delete(k))
        if rng.random() < 0.1:
            ops.append(lambda m: list(m.keys()))
    ops.append(lambda m: list(m.items()))
    with on_cpu0():
        same(sim, km, ops)


@pytest.mark.parametrize("n", [4, 8, 64])
def test_lru_evicts_least_recently_inserted(kernel: Any, n: int) -> None:
    """Inserting max_entries + 1 keys evicts the oldest key -- in batches of
    target_free = clamp(max_entries / ncpus / 2, 1, 128) -- and keeps the newest."""
    sim, km = pair(kernel, MapType.LRU_HASH, 4, 4, n, BPF_F_ZERO_SEED)
    ops = [lambda m, i=i: m.update(u32(i), u32(i)) for i in range(1, n + 2)]
    ops.append(lambda m: sorted(m.keys(), key=lambda k: struct.unpack("<I", k)[0]))
    with on_cpu0():
        got = same(sim, km, ops)
    kept = [struct.unpack("<I", k)[0] for k in got[-1][1]]
    batch = min(max(n // NCPUS // 2, 1), 128)
    assert kept == list(range(1 + batch, n + 2))


@pytest.mark.parametrize("n", [100, 1000, 5000])
def test_lru_fill_evicts_early_like_the_kernel(kernel: Any, n: int) -> None:
    """Filling an LRU map with exactly max_entries keys: once the global free list has
    fewer than target_free nodes, the kernel evicts to make up the batch -- before the
    map is full.  The simulator keeps the very same keys, in the same order."""
    sim, km = pair(kernel, MapType.LRU_HASH, 4, 8, n, BPF_F_ZERO_SEED)
    with on_cpu0():
        for i in range(n):
            k = struct.pack("<I", (i * 2654435761) & 0xFFFFFFFF)
            sim.update(k, u64(i))
            km.update(k, u64(i))
        assert list(sim.items()) == list(km.items())


def test_lru_lookups_from_user_space_do_not_count(kernel: Any) -> None:
    """User-space lookups leave the reference bit alone: the looked-up key still goes."""
    sim, km = pair(kernel, MapType.LRU_HASH, 4, 4, 4, BPF_F_ZERO_SEED)
    ops = [lambda m, i=i: m.update(u32(i), u32(i)) for i in range(1, 5)]
    ops += [
        lambda m: m.lookup(u32(1)),
        lambda m: m.update(u32(5), u32(5)),
        lambda m: m.lookup(u32(1)),
    ]
    with on_cpu0():
        got = same(sim, km, ops)
    assert got[-1] == ("err", "ENOENT")


# -- batches --------------------------------------------------------------------------------


def _batch_step(m: Any, count: int, token: bytes | None, delete: bool, flags: int = 0) -> Any:
    if hasattr(m, "lookup_batch_step"):
        r = m.lookup_batch_step(count, token, delete=delete, flags=flags)
        return r.items, r.next_batch
    fn = ksys.map_lookup_and_delete_batch if delete else ksys.map_lookup_batch
    try:
        got, tok = fn(
            m.fd,
            m.key_size,
            m.value_size_raw,
            count=count,
            in_batch=token,
            batch_token_size=max(8, m.key_size),
            elem_flags=flags,
        )
    except KernelError as e:
        raise MapError("batch", errno=e.errno) from None
    return got, tok


def _norm_token(token: bytes | None, size: int) -> bytes | None:
    return None if token is None else bytes(token[:size])


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.LRU_HASH, MapType.PERCPU_HASH])
@pytest.mark.parametrize("delete", [False, True])
def test_hash_batches(kernel: Any, mtype: MapType, delete: bool) -> None:
    """Bucket-at-a-time batches: same chunks, tokens (u32 bucket index), ENOSPC for a
    bucket larger than count, ENOENT at the end."""
    sim, km = pair(kernel, mtype, 4, 8, 16, BPF_F_ZERO_SEED)
    stride = 8 * NCPUS if mtype == MapType.PERCPU_HASH else 8
    with on_cpu0():
        for i in range(14):
            for m in (sim, km):
                m.update(u32(i * 7), bytes([i]) * stride)
        for count in (1, 3, 5):
            token: bytes | None = None
            for _ in range(40):
                a = outcome(_batch_step, sim, count, token, False)
                b = outcome(_batch_step, km, count, token, False)
                if a[0] == "ok":
                    a = ("ok", (a[1][0], _norm_token(a[1][1], 4)))
                    b = ("ok", (b[1][0], _norm_token(b[1][1], 4)))
                assert a == b
                if a[0] == "err" or a[1][1] is None:
                    break
                token = a[1][1]
        if delete:
            a = outcome(lambda: _batch_step(sim, 64, None, True))
            b = outcome(lambda: _batch_step(km, 64, None, True))
            assert a == b
            assert list(sim.keys()) == list(km.keys()) == []


@pytest.mark.parametrize("mtype", [MapType.ARRAY, MapType.PERCPU_ARRAY])
def test_array_batches(kernel: Any, mtype: MapType) -> None:
    sim, km = pair(kernel, mtype, 4, 4, 5)
    stride = 8 * NCPUS if mtype == MapType.PERCPU_ARRAY else 4
    for m in (sim, km):
        m.update_batch([(u32(i), bytes([i + 1]) * stride) for i in range(5)])
    token: bytes | None = None
    for _ in range(10):
        a = outcome(_batch_step, sim, 2, token, False)
        b = outcome(_batch_step, km, 2, token, False)
        if a[0] == "ok":
            a = ("ok", (a[1][0], _norm_token(a[1][1], 4)))
            b = ("ok", (b[1][0], _norm_token(b[1][1], 4)))
        assert a == b
        if a[0] == "err" or a[1][1] is None:
            break
        token = a[1][1]
    same(
        sim,
        km,
        [
            lambda m: m.update_batch([(u32(0), bytes(stride))], flags=BPF_EXIST),
            lambda m: m.update_batch([(u32(1), bytes(stride)), (u32(9), bytes(stride))]),
            lambda m: m.lookup(u32(1)),
            lambda m: m.delete_batch([u32(0)]),
            lambda m: _batch_step(m, 2, None, True),
            lambda m: _batch_step(m, 2, None, False, flags=1),
        ],
    )


def test_lpm_and_queue_batches(kernel: Any) -> None:
    sim, km = pair(kernel, MapType.LPM_TRIE, 8, 4, 8, BPF_F_NO_PREALLOC)
    ops: list[Callable[[Any], Any]] = [
        lambda m, p=p, d=d: m.update(lpm_key(p, d), u32(p))
        for p, d in [(8, b"\x0a\0\0\0"), (16, b"\x0a\x01\0\0"), (24, b"\x0a\x01\x02\0")]
    ]
    ops += [
        lambda m: m.lookup_batch(count=2),
        lambda m: m.delete_batch([lpm_key(16, b"\x0a\x01\0\0"), lpm_key(16, b"\x0a\x01\0\0")]),
        lambda m: m.lookup_batch(count=2),
        lambda m: m.lookup_and_delete(lpm_key(8, b"\x0a\0\0\0")),
        lambda m: _batch_step(m, 2, None, True),
    ]
    same(sim, km, ops)
    qs, qk = pair(kernel, MapType.QUEUE, 0, 4, 4)
    same(
        qs,
        qk,
        [
            lambda m: _batch_step(m, 2, None, False),
            lambda m: m.update_batch([(b"", u32(1))]),
        ],
    )


# -- LPM trie -------------------------------------------------------------------------------


def test_lpm_documented_order(kernel: Any) -> None:
    sim, km = pair(kernel, MapType.LPM_TRIE, 8, 4, 8, BPF_F_NO_PREALLOC)
    nets = [
        (24, b"\xc0\xa8\x00\x00"),
        (24, b"\xc0\xa8\x01\x00"),
        (24, b"\xc0\xa8\x80\x00"),
        (16, b"\xc0\xa8\x00\x00"),
    ]
    ops: list[Callable[[Any], Any]] = [
        lambda m, p=p, d=d: m.update(lpm_key(p, d), u32(p)) for p, d in nets
    ]
    ops += [
        lambda m: list(m.keys()),
        lambda m: m.lookup(lpm_key(32, b"\xc0\xa8\x01\x05")),
        lambda m: m.lookup(lpm_key(32, b"\xc0\xa8\x02\x05")),
        lambda m: m.lookup(lpm_key(32, b"\xc0\xa9\x02\x05")),
        lambda m: m.lookup(lpm_key(20, b"\xc0\xa8\x01\x05")),
        lambda m: m.update(lpm_key(33, b"\xc0\xa8\x01\x05"), u32(1)),
        lambda m: m.delete(lpm_key(33, b"\xc0\xa8\x01\x05")),
        lambda m: m.update(lpm_key(24, b"\xc0\xa8\x01\x00"), u32(1), flags=BPF_NOEXIST),
        lambda m: m.update(lpm_key(25, b"\xc0\xa8\x01\x00"), u32(1), flags=BPF_EXIST),
        lambda m: m.update(lpm_key(24, b"\xc0\xa8\x01\x00"), u32(1), flags=3),
        lambda m: m.delete(lpm_key(23, b"\xc0\xa8\x01\x00")),
        lambda m: m.delete(lpm_key(16, b"\xc0\xa8\x00\x00")),
        lambda m: list(m.keys()),
    ]
    same(sim, km, ops)


@pytest.mark.parametrize("seed", range(6))
def test_lpm_random_sequences(kernel: Any, seed: int) -> None:
    """Random prefixes over 2-byte data (so they nest and diverge): updates with every
    flag, deletes, longest-prefix lookups and get_next_key walks, in a trie small
    enough to fill (ENOSPC)."""
    rng = random.Random(seed)
    sim, km = pair(kernel, MapType.LPM_TRIE, 6, 4, 12, BPF_F_NO_PREALLOC)
    ops: list[Callable[[Any], Any]] = []
    for _ in range(150):
        key = lpm_key(rng.randrange(0, 18), rng.randbytes(2))
        r = rng.random()
        if r < 0.5:
            fl = rng.choice([BPF_ANY, BPF_ANY, BPF_NOEXIST, BPF_EXIST])
            v = u32(rng.randrange(1 << 32))
            ops.append(lambda m, key=key, fl=fl, v=v: m.update(key, v, flags=fl))
        elif r < 0.7:
            ops.append(lambda m, key=key: m.delete(key))
        elif r < 0.9:
            ops.append(lambda m, key=key: m.lookup(key))
        else:
            ops.append(lambda m, key=key: m.next_key(key))
        if rng.random() < 0.1:
            ops.append(lambda m: list(m.keys()))
    ops.append(lambda m: list(m.items()))
    same(sim, km, ops)


# -- queue and stack ------------------------------------------------------------------------


@pytest.mark.parametrize("mtype", [MapType.QUEUE, MapType.STACK])
def test_queue_stack(kernel: Any, mtype: MapType) -> None:
    sim, km = pair(kernel, mtype, 0, 4, 3)
    same(
        sim,
        km,
        [
            lambda m: m.peek(),
            lambda m: m.pop(),
            lambda m: m.push(u32(1)),
            lambda m: m.push(u32(2)),
            lambda m: m.push(u32(3)),
            lambda m: m.push(u32(4)),  # full
            lambda m: m.push(u32(4), flags=BPF_NOEXIST),
            lambda m: m.push(u32(4), flags=8),
            lambda m: m.push(u32(4), flags=BPF_EXIST),  # overwrites the oldest
            lambda m: m.peek(),
            lambda m: m.pop(),
            lambda m: m.push(u32(5), flags=BPF_EXIST),
            lambda m: m.push(u32(6), flags=BPF_EXIST),
            lambda m: [m.pop() for _ in range(3)],
            lambda m: m.pop(),
            lambda m: keyless(m, "lookup_and_delete", BPF_F_LOCK),
            lambda m: keyless(m, "lookup_and_delete", 1),
            lambda m: keyless(m, "next_key"),
            lambda m: m.freeze(),
            lambda m: m.push(u32(1)),
            lambda m: m.pop(),
        ],
    )


# -- ring buffer ----------------------------------------------------------------------------


def test_ringbuf_user_ops(kernel: Any) -> None:
    sim, km = pair(kernel, MapType.RINGBUF, 0, 0, 4096)
    same(
        sim,
        km,
        [
            lambda m: keyless(m, "lookup"),
            lambda m: keyless(m, "lookup", BPF_F_LOCK),
            lambda m: keyless(m, "update"),
            lambda m: keyless(m, "update", BPF_F_LOCK),
            lambda m: keyless(m, "lookup_and_delete"),
            lambda m: keyless(m, "next_key"),
            lambda m: m.freeze(),
            lambda m: keyless(m, "update"),
        ],
    )


# -- fd maps --------------------------------------------------------------------------------

RET0 = bytes.fromhex("b7000000000000009500000000000000")


class FakeProg:
    def __init__(self, prog_type: ProgramType, attach: AttachType | None = None) -> None:
        self.prog_type = prog_type
        self.expected_attach_type = attach
        self.id = 0


def _kprog(kernel: Any, section: str) -> Any:
    from netbpf import ProgramSpec

    return kernel.load_program(ProgramSpec.from_bytes(RET0, prog_type=section))


def test_prog_array(kernel: Any) -> None:
    res = Resolver()
    kx, kt = _kprog(kernel, "xdp"), _kprog(kernel, "tc")
    sx, st = FakeProg(ProgramType.XDP), FakeProg(ProgramType.SCHED_CLS)
    fd_x, fd_t = res.add_fd(sx), res.add_fd(st)
    sim = create_map(MapSpec("p", MapType.PROG_ARRAY, 4, 4, 4), ncpus=NCPUS, resolver=res)
    km = kernel.create_map(MapType.PROG_ARRAY, 4, 4, 4)
    # same fds on both sides: the simulator's resolver maps our fd numbers
    res._fds[kx.fd] = sx
    res._fds[kt.fd] = st
    got = same(
        sim,
        km,
        [
            lambda m: m.lookup(u32(0)),
            lambda m: m.update(u32(0), u32(kx.fd), flags=BPF_NOEXIST),
            lambda m: m.update(u32(0), u32(kx.fd)),
            lambda m: m.update(u32(1), u32(kt.fd)),  # another program type
            lambda m: m.update(u32(4), u32(kx.fd)),
            lambda m: m.update(u32(1), u32(99999)),
            lambda m: m.delete(u32(4)),
            lambda m: m.delete(u32(1)),
            lambda m: [m.next_key(k) for k in (None, u32(3))],
            lambda m: m.lookup_batch(count=2),
            lambda m: m.delete(u32(0)),
            lambda m: m.lookup(u32(0)),
        ],
    )
    assert fd_x and fd_t and got[0] == ("err", "ENOENT")
    sim.update(u32(2), sx)
    assert sim.lookup(u32(2)) == u32(object_id(sx))
    kernel_id = kx.info().id
    km.update(u32(2), u32(kx.fd))
    assert km.lookup(u32(2)) == u32(kernel_id)


def test_maps_of_maps(kernel: Any) -> None:
    res = Resolver()
    kin = kernel.create_map(MapType.ARRAY, 4, 4, 4)
    sin = create_map(MapSpec("in", MapType.ARRAY, 4, 4, 4), ncpus=NCPUS)
    others = {
        "same": (MapSpec("a", MapType.ARRAY, 4, 4, 4), (MapType.ARRAY, 4, 4, 4, 0)),
        "bigger": (MapSpec("b", MapType.ARRAY, 4, 4, 8), (MapType.ARRAY, 4, 4, 8, 0)),
        "hash": (MapSpec("h", MapType.HASH, 4, 4, 4), (MapType.HASH, 4, 4, 4, 0)),
        "value8": (MapSpec("v", MapType.ARRAY, 4, 8, 4), (MapType.ARRAY, 4, 8, 4, 0)),
    }
    kmaps, fds = {}, {}
    for name, (spec, (t, k, v, n, fl)) in others.items():
        kmaps[name] = kernel.create_map(t, k, v, n, flags=fl)
        fds[name] = kmaps[name].fd
        res._fds[kmaps[name].fd] = create_map(spec, ncpus=NCPUS)
    for mtype in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        fl = BPF_F_ZERO_SEED if mtype == MapType.HASH_OF_MAPS else 0
        sim = create_map(
            MapSpec("o", mtype, 4, 4, 4, fl, inner_map=sin.spec), ncpus=NCPUS, resolver=res
        )
        km = kernel.create_map(mtype, 4, 4, 4, flags=fl, inner_map=kin)
        same(
            sim,
            km,
            [
                lambda m: m.update(u32(0), u32(fds["same"])),
                lambda m: m.update(u32(1), u32(fds["bigger"])),
                lambda m: m.update(u32(1), u32(fds["hash"])),
                lambda m: m.update(u32(1), u32(fds["value8"])),
                lambda m: m.update(u32(2), u32(fds["same"]), flags=BPF_NOEXIST),
                lambda m: m.update(u32(5), u32(fds["same"])),
                lambda m: m.delete(u32(3)),
                lambda m: m.delete(u32(7)),
                lambda m: [m.next_key(k) for k in (None, u32(0))],
            ],
        )
    # BPF_F_INNER_MAP templates accept any max_entries; hash templates never compare it
    kin2 = kernel.create_map(MapType.ARRAY, 4, 4, 4, flags=BPF_F_INNER_MAP)
    sin2 = create_map(MapSpec("in2", MapType.ARRAY, 4, 4, 4, BPF_F_INNER_MAP), ncpus=NCPUS)
    kbig = kernel.create_map(MapType.ARRAY, 4, 4, 100, flags=BPF_F_INNER_MAP)
    res._fds[kbig.fd] = create_map(
        MapSpec("big", MapType.ARRAY, 4, 4, 100, BPF_F_INNER_MAP), ncpus=NCPUS
    )
    sim = create_map(
        MapSpec("o2", MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map=sin2.spec), resolver=res
    )
    km = kernel.create_map(MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map=kin2)
    same(sim, km, [lambda m: m.update(u32(0), u32(kbig.fd))])
    # creation: no template, nested maps of maps, a PROG_ARRAY template
    kpa = kernel.create_map(MapType.PROG_ARRAY, 4, 4, 4)
    spa = create_map(MapSpec("pa", MapType.PROG_ARRAY, 4, 4, 4), ncpus=NCPUS)
    a = outcome(
        lambda: create_map(MapSpec("x", MapType.ARRAY_OF_MAPS, 4, 4, 4, inner_map=spa.spec))
    )
    b = outcome(lambda: kernel.create_map(MapType.ARRAY_OF_MAPS, 4, 4, 4, inner_map=kpa))
    assert a == b
    kaom = kernel.create_map(MapType.ARRAY_OF_MAPS, 4, 4, 4, inner_map=kin)
    a = outcome(lambda: create_map(MapSpec("x", MapType.HASH_OF_MAPS, 4, 4, 4, inner_map=sim.spec)))
    b = outcome(lambda: kernel.create_map(MapType.HASH_OF_MAPS, 4, 4, 4, inner_map=kaom))
    assert a == b


# -- network object maps -------------------------------------------------------------------


def test_devmap(kernel: Any) -> None:
    res = Resolver()
    kdev = _kprog(kernel, "xdp/devmap")
    kplain = _kprog(kernel, "xdp")
    res._fds[kdev.fd] = FakeProg(ProgramType.XDP, AttachType.XDP_DEVMAP)
    res._fds[kplain.fd] = FakeProg(ProgramType.XDP, None)
    for mtype in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        for vs in (4, 8):
            sim, km = pair(kernel, mtype, 4, vs, 2, resolver=res)

            def val(ifindex: int, fd: int = 0, vs: int = vs) -> bytes:
                return u32(ifindex) + (struct.pack("<i", fd) if vs == 8 else b"")

            ops: list[Callable[[Any], Any]] = [
                lambda m: m.lookup(u32(0)),
                lambda m: m.update(u32(0), val(1)),
                lambda m: m.lookup(u32(0)),
                lambda m: m.update(u32(0), val(1), flags=BPF_NOEXIST),
                lambda m: m.update(u32(1), val(1), flags=BPF_EXIST),
                lambda m: m.update(u32(1), val(1), flags=3),
                lambda m: m.update(u32(7), val(1)),
                lambda m: m.update(u32(9), val(1)),
                lambda m: m.update(u32(0), val(424242)),
                lambda m: m.update(u32(0), val(0)),
                lambda m: m.update(u32(0), val(0, 5)),
                lambda m: [m.next_key(k) for k in (None, u32(0), u32(1), u32(7))],
                lambda m: m.delete(u32(1)),
                lambda m: m.delete(u32(1)),
                lambda m: m.delete(u32(9)),
                lambda m: m.lookup_batch(count=2),
            ]
            if vs == 8:
                ops += [
                    lambda m, kp=kplain.fd: m.update(u32(0), val(1, kp)),
                    lambda m: m.update(u32(0), val(1, -1)),
                ]
            same(sim, km, ops)
    # a program in the value reads back as its id
    sim = create_map(MapSpec("d", MapType.DEVMAP, 4, 8, 2), ncpus=NCPUS, resolver=res)
    prog = FakeProg(ProgramType.XDP, AttachType.XDP_DEVMAP)
    sim.update(u32(0), DevmapValue(1, prog))
    assert sim.lookup(u32(0)) == u32(1) + u32(object_id(prog))


def test_cpumap(kernel: Any) -> None:
    res = Resolver()
    kcpu = _kprog(kernel, "xdp/cpumap")
    kplain = _kprog(kernel, "xdp")
    res._fds[kcpu.fd] = FakeProg(ProgramType.XDP, AttachType.XDP_CPUMAP)
    res._fds[kplain.fd] = FakeProg(ProgramType.XDP, None)
    n = NCPUS + 2
    sim, km = pair(kernel, MapType.CPUMAP, 4, 8, n, resolver=res)

    def val(q: int, fd: int = 0) -> bytes:
        return u32(q) + struct.pack("<i", fd)

    same(
        sim,
        km,
        [
            lambda m: m.lookup(u32(0)),
            lambda m: m.update(u32(0), val(64)),
            lambda m: m.lookup(u32(0)),
            lambda m: m.update(u32(NCPUS), val(64)),  # not a possible CPU
            lambda m: m.update(u32(n), val(64)),
            lambda m: m.update(u32(0), val(16385)),
            lambda m: m.update(u32(0), val(16384)),
            lambda m: m.update(u32(0), val(64), flags=BPF_NOEXIST),
            lambda m: m.update(u32(0), val(64, kplain.fd)),
            lambda m: m.update(u32(0), val(0)),
            lambda m: m.lookup(u32(0)),
            lambda m: m.delete(u32(n)),
            lambda m: m.delete(u32(1)),
            lambda m: m.next_key(None),
        ],
    )


def test_xskmap(kernel: Any) -> None:
    res = Resolver()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    res._fds[udp.fileno()] = Socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        xs = socket.socket(AF_XDP, socket.SOCK_RAW)
    except OSError as e:  # pragma: no cover - no AF_XDP
        pytest.skip(f"no AF_XDP sockets: {e}")
    res._fds[xs.fileno()] = XdpSocket()
    sim, km = pair(kernel, MapType.XSKMAP, 4, 4, 2, resolver=res)
    same(
        sim,
        km,
        [
            lambda m: m.update(u32(2), u32(udp.fileno())),
            lambda m: m.update(u32(0), u32(udp.fileno())),
            lambda m: m.update(u32(0), u32(xs.fileno()), flags=BPF_EXIST),
            lambda m: m.update(u32(0), u32(xs.fileno())),
            lambda m: m.update(u32(0), u32(xs.fileno()), flags=BPF_NOEXIST),
            lambda m: m.lookup(u32(0)),
            lambda m: m.delete(u32(0)),
            lambda m: m.delete(u32(0)),
            lambda m: m.delete(u32(2)),
        ],
    )
    xs.close()
    udp.close()


def _sockets(res: Resolver) -> dict[str, socket.socket]:
    """Real sockets for the kernel and their simulated twins (same fd numbers)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    fresh = socket.socket()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udpb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udpb.bind(("127.0.0.1", 0))
    ux, uy = socket.socketpair()
    rl = socket.socket()
    rl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    rl.bind(("127.0.0.1", 0))
    rl.listen()
    ru = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ru.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    ru.bind(("127.0.0.1", 0))
    real = {
        "listen": lst,
        "cli": cli,
        "srv": srv,
        "fresh": fresh,
        "udp": udp,
        "udpb": udpb,
        "unix": ux,
        "unix2": uy,
        "rl": rl,
        "ru": ru,
    }
    twins = {
        "listen": Socket(state="listen", bound=True),
        "cli": Socket(state="established"),
        "srv": Socket(state="established"),
        "fresh": Socket(),
        "udp": Socket(socket.AF_INET, socket.SOCK_DGRAM),
        "udpb": Socket(socket.AF_INET, socket.SOCK_DGRAM, bound=True),
        "unix": Socket(socket.AF_UNIX, socket.SOCK_STREAM, state="established"),
        "unix2": Socket(socket.AF_UNIX, socket.SOCK_STREAM, state="established"),
        "rl": Socket(state="listen", bound=True, reuseport=True),
        "ru": Socket(socket.AF_INET, socket.SOCK_DGRAM, bound=True, reuseport=True),
    }
    for name, s in real.items():
        res._fds[s.fileno()] = twins[name]
    return real


@pytest.mark.parametrize("vs", [4, 8])
def test_sockmap_sockhash(kernel: Any, vs: int) -> None:
    res = Resolver()
    socks = _sockets(res)

    def fd(name: str) -> bytes:
        n = socks[name].fileno()
        return u32(n) if vs == 4 else u64(n)

    for mtype, ks in ((MapType.SOCKMAP, 4), (MapType.SOCKHASH, 4), (MapType.SOCKHASH, 6)):
        sim, km = pair(kernel, mtype, ks, vs, 3, resolver=res)

        def k(i: int, ks: int = ks) -> bytes:
            return (u32(i) + b"\0\0")[:ks]

        ops: list[Callable[[Any], Any]] = [
            lambda m: m.update(k(0), fd("listen")),
            lambda m: m.update(k(1), fd("cli")),
            lambda m: m.update(k(2), fd("fresh")),
            lambda m: m.update(k(2), fd("udp")),
            lambda m: m.update(k(2), fd("udpb")),
            lambda m: m.update(k(2), fd("unix")),
            lambda m: m.update(k(3), fd("srv")),
            lambda m: m.update(k(0), fd("srv"), flags=BPF_NOEXIST),
            lambda m: m.update(k(7), fd("srv"), flags=BPF_EXIST),
            lambda m: m.update(k(0), fd("srv"), flags=3),
            lambda m: m.update(k(0), u32(0x7FFFFFFF + 1) if vs == 4 else u64(1 << 31)),
            lambda m: m.update(k(0), u32(55555) if vs == 4 else u64(55555)),
            lambda m: m.lookup(k(9)),
            lambda m: [m.next_key(x) for x in (None, k(0), k(1), k(2))],
            lambda m: m.delete(k(1)),
            lambda m: m.delete(k(1)),
            lambda m: m.delete(k(9)),
            lambda m: m.lookup_batch(count=4),
        ]
        same(sim, km, ops)
        # lookups return the socket cookie (value_size 8) or ENOSPC
        a, b = outcome(sim.lookup, k(0)), outcome(km.lookup, k(0))
        assert a[0] == b[0]
        if vs == 8:
            assert a[1] == u64(res.fd(socks["listen"].fileno()).cookie)
        else:
            assert a == b == ("err", "ENOSPC")
    for s in socks.values():
        s.close()


@pytest.mark.parametrize("vs", [4, 8])
def test_reuseport_sockarray(kernel: Any, vs: int) -> None:
    res = Resolver()
    socks = _sockets(res)

    def fd(name: str) -> bytes:
        n = socks[name].fileno()
        return u32(n) if vs == 4 else u64(n)

    sim, km = pair(kernel, MapType.REUSEPORT_SOCKARRAY, 4, vs, 4, resolver=res)
    same(
        sim,
        km,
        [
            lambda m: m.update(u32(0), fd("rl")),
            lambda m: m.update(u32(1), fd("ru")),
            lambda m: m.update(u32(2), fd("listen")),  # no SO_REUSEPORT
            lambda m: m.update(u32(2), fd("fresh")),
            lambda m: m.update(u32(2), fd("unix")),
            lambda m: m.update(u32(2), fd("cli")),
            lambda m: m.update(u32(2), fd("rl")),  # already in an array: EBUSY
            lambda m: m.update(u32(0), fd("ru"), flags=BPF_NOEXIST),
            lambda m: m.update(u32(3), fd("ru"), flags=BPF_EXIST),
            lambda m: m.update(u32(4), fd("ru")),
            lambda m: m.update(u32(2), fd("rl"), flags=3),
            lambda m: m.lookup(u32(3)),
            lambda m: m.delete(u32(0)),
            lambda m: m.delete(u32(0)),
            lambda m: m.delete(u32(4)),
            lambda m: m.update(u32(2), fd("rl")),  # free again after the delete
            lambda m: [m.next_key(x) for x in (None, u32(3))],
        ],
    )
    for s in socks.values():
        s.close()


# -- permissions and freezing ---------------------------------------------------------------


def test_rdonly_wronly_and_freeze(kernel: Any) -> None:
    for flags in (8, 16):
        sim, km = pair(kernel, MapType.HASH, 4, 4, 4, flags)
        same(
            sim,
            km,
            [
                lambda m: m.update(u32(1), u32(1)),
                lambda m: m.lookup(u32(1)),
                lambda m: m.next_key(None),
                lambda m: m.delete(u32(1)),
                lambda m: m.lookup_and_delete(u32(1)),
                lambda m: m.lookup_batch(count=4),
                lambda m: m.freeze(),
            ],
        )
    sim, km = pair(kernel, MapType.HASH, 4, 4, 4, BPF_F_ZERO_SEED)
    same(
        sim,
        km,
        [
            lambda m: m.update(u32(1), u32(1)),
            lambda m: m.freeze(),
            lambda m: m.update(u32(1), u32(2)),
            lambda m: m.update_batch([(u32(1), u32(2))]),
            lambda m: m.delete_batch([u32(1)]),
            lambda m: m.lookup_and_delete(u32(1)),
            lambda m: m.lookup_batch(count=4),
            lambda m: m.lookup(u32(1)),
        ],
    )


def test_mmapable_array_freeze_busy(kernel: Any) -> None:
    """A writable mapping blocks freezing (EBUSY); a frozen map refuses one (EPERM)."""
    import mmap

    km = kernel.create_map(MapType.ARRAY, 4, 8, 512, flags=BPF_F_MMAPABLE)
    sim = create_map(MapSpec("m", MapType.ARRAY, 4, 8, 512, BPF_F_MMAPABLE))
    kview = mmap.mmap(km.fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    sview = sim.mmap()
    kview[8:16] = u64(42)
    sview[8:16] = u64(42)
    assert km.lookup(u32(1)) == sim.lookup(u32(1)) == u64(42)
    assert outcome(km.freeze) == outcome(sim.freeze) == ("err", "EBUSY")
    kview.close()
    sim.munmap(sview)
    assert outcome(km.freeze) == outcome(sim.freeze) == ("ok", None)
    try:
        mmap.mmap(km.fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        kern = ("ok", None)
    except PermissionError as e:
        kern = ("err", errno_name(e.errno))
    assert outcome(lambda: sim.mmap() and None) == kern


# -- the program side: map helpers in the kernel and in the simulator -------------------------

from netbpf.helpers import DEFAULT_REGISTRY  # noqa: E402
from netbpf.isa.asm import assemble  # noqa: E402
from netbpf.maps import MapTable  # noqa: E402
from netbpf.vm.engine import load_executable  # noqa: E402
from netbpf.vm.env import RunEnv  # noqa: E402
from netbpf.vm.memory import AddressSpace  # noqa: E402

#: one long-lived address space for every simulated program of this module (as the
#: SimBackend keeps one per backend)
TABLE = MapTable(AddressSpace())


class Both:
    """One assembly program run as an XDP program in the kernel (BPF_PROG_TEST_RUN) and
    in the simulator (the VM with the map helpers), with ``map_fd(i)`` naming the i-th
    map of each side."""

    def __init__(self, kernel: Any, text: str, sims: list[Any], kms: list[Any]) -> None:
        from netbpf import ProgramSpec

        ktext = text
        for i in reversed(range(len(kms))):
            ktext = ktext.replace(f"map_fd({i})", f"map_fd({kms[i].fd})")
        self.kprog = kernel.load_program(ProgramSpec.from_asm(ktext, prog_type="xdp"))
        self.table = TABLE
        insns = assemble(text)
        imm64 = {
            i: self.table.add(sims[ins.imm])
            for i, ins in enumerate(insns)
            if ins.opcode == 0x18 and ins.src == 1
        }
        self.exe = load_executable(insns, engine="interpreter", imm64=imm64, name="t")
        self.env = RunEnv(self.table.mem, helpers=DEFAULT_REGISTRY.for_prog_type(ProgramType.XDP))

    def run(self) -> tuple[int, int]:
        """(sim r0, kernel retval), both as u32."""
        k = self.kprog.test_run(bytes(64)).retval & 0xFFFFFFFF
        s = self.exe.run(self.env, 0) & 0xFFFFFFFF
        return s, k


def _key_on_stack(key: int) -> str:
    return f"r6 = {key}\n*(u32 *)(r10 - 4) = r6\nr2 = r10\nr2 += -4\n"


def test_prog_lru_lookup_sets_reference(kernel: Any) -> None:
    """A program's lookup marks the element: the next insertion evicts another key."""
    sim, km = pair(kernel, MapType.LRU_HASH, 4, 4, 4, BPF_F_ZERO_SEED)
    text = _key_on_stack(1) + "r1 = map_fd(0) ll\ncall 1\nr0 = 2\nexit"
    both = Both(kernel, text, [sim], [km])
    with on_cpu0():
        for m in (sim, km):
            for i in range(1, 5):
                m.update(u32(i), u32(i))
        assert both.run() == (2, 2)
        ops = [lambda m: m.update(u32(5), u32(5)), lambda m: sorted(m.keys())]
        got = same(sim, km, ops)
    assert u32(1) in got[-1][1]


UPDATE_PROG = """
    r6 = {key}
    *(u32 *)(r10 - 4) = r6
    r6 = {value}
    *(u64 *)(r10 - 16) = r6
    r1 = map_fd(0) ll
    r2 = r10
    r2 += -4
    r3 = r10
    r3 += -16
    r4 = {flags}
    call 2
    exit
"""


@pytest.mark.parametrize(
    "mtype,k,n,flags",
    [
        (MapType.ARRAY, 4, 4, 0),
        (MapType.PERCPU_ARRAY, 4, 4, 0),
        (MapType.HASH, 4, 2, 0),
        (MapType.HASH, 4, 2, BPF_F_NO_PREALLOC),
        (MapType.PERCPU_HASH, 4, 2, 0),
        (MapType.LRU_HASH, 4, 2, 0),
    ],
)
def test_prog_update_return_codes(kernel: Any, mtype: MapType, k: int, n: int, flags: int) -> None:
    if mtype not in (MapType.ARRAY, MapType.PERCPU_ARRAY):
        flags |= BPF_F_ZERO_SEED
    sim, km = pair(kernel, mtype, k, 8, n, flags)
    with on_cpu0():
        for key, fl in [(1, 0), (1, 1), (1, 2), (2, 2), (2, 0), (3, 0), (7, 0), (1, 3), (1, 4)]:
            both = Both(kernel, UPDATE_PROG.format(key=key, value=key * 11, flags=fl), [sim], [km])
            s, kr = both.run()
            assert s == kr, f"update key {key} flags {fl}: sim {s:#x} kernel {kr:#x}"
        assert list(sim.items()) == list(km.items())


def test_prog_queue_and_lpm(kernel: Any) -> None:
    qs, qk = pair(kernel, MapType.QUEUE, 0, 4, 2)
    push = "r6 = {v}\n*(u32 *)(r10 - 4) = r6\nr1 = map_fd(0) ll\nr2 = r10\nr2 += -4\nr3 = {f}\ncall 87\nexit"
    pop = "r1 = map_fd(0) ll\nr2 = r10\nr2 += -4\ncall {h}\nif r0 != 0 goto +1\nr0 = *(u32 *)(r10 - 4)\nexit"
    for text in [
        push.format(v=1, f=0),
        push.format(v=2, f=0),
        push.format(v=3, f=0),
        push.format(v=3, f=2),
        push.format(v=3, f=1),
        pop.format(h=89),
        pop.format(h=88),
        pop.format(h=88),
        pop.format(h=88),
    ]:
        s, k = Both(kernel, text, [qs], [qk]).run()
        assert s == k, text
    ls, lk = pair(kernel, MapType.LPM_TRIE, 8, 4, 8, BPF_F_NO_PREALLOC)
    for m in (ls, lk):
        m.update(lpm_key(8, b"\x0a\0\0\0"), u32(8))
        m.update(lpm_key(24, b"\x0a\x01\x02\0"), u32(24))
    look = (
        "r6 = {p}\n*(u32 *)(r10 - 8) = r6\nr6 = {d}\n*(u32 *)(r10 - 4) = r6\n"
        "r1 = map_fd(0) ll\nr2 = r10\nr2 += -8\ncall 1\nif r0 == 0 goto +1\n"
        "r0 = *(u32 *)(r0 + 0)\nexit"
    )
    for p, d in [(32, 0x0502010A), (32, 0x0503010A), (32, 0x0B), (16, 0x0502010A)]:
        s, k = Both(kernel, look.format(p=p, d=d), [ls], [lk]).run()
        assert s == k, (p, hex(d))


def _kernel_ringbuf_records(km: Any, size: int) -> list[bytes]:
    """A libbpf-style consumer of a kernel ring buffer, through mmap."""
    import mmap

    cons = mmap.mmap(km.fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
    prod = mmap.mmap(km.fd, 4096 + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=4096)
    out = []
    c = struct.unpack_from("<Q", cons, 0)[0]
    p = struct.unpack_from("<Q", prod, 0)[0]
    while c < p:
        hdr = struct.unpack_from("<I", prod, 4096 + (c & (size - 1)))[0]
        if hdr & (1 << 31):
            break
        ln = hdr & ~(3 << 30)
        if not hdr & (1 << 30):
            o = 4096 + (c & (size - 1)) + 8
            out.append(bytes(prod[o : o + ln]))
        c += (ln + 8 + 7) // 8 * 8
    struct.pack_into("<Q", cons, 0, c)
    cons.close()
    prod.close()
    return out


RINGBUF_PROG = """
    r6 = {v}
    *(u64 *)(r10 - 8) = r6
    *(u64 *)(r10 - 16) = r6
    r1 = map_fd(0) ll
    r2 = r10
    r2 += -16
    r3 = {osize}
    r4 = {flags}
    call 130
    r6 = r0
    r1 = map_fd(0) ll
    r2 = {size}
    r3 = 0
    call 131
    if r0 == 0 goto nores
    r7 = {v}
    *(u32 *)(r0 + 0) = r7
    r1 = r0
    r2 = 0
    if r7 & 1 goto discard
    call 132
    goto query
discard:
    call 133
    goto query
nores:
    r6 += 1000
query:
    r1 = map_fd(0) ll
    r2 = {q}
    call 134
    r0 <<= 16
    r0 += r6
    exit
"""


def test_prog_ringbuf(kernel: Any) -> None:
    """bpf_ringbuf_output / reserve / submit / discard / query: the same return values
    and the same records for the consumer, until the ring is full."""
    size = 4096
    sim, km = pair(kernel, MapType.RINGBUF, 0, 0, size)
    for i in range(40):
        text = RINGBUF_PROG.format(
            v=i, osize=1 + i % 16, size=4 + (i * 37) % 200, flags=i % 3 if i % 5 else 4, q=i % 5
        )
        s, k = Both(kernel, text, [sim], [km]).run()
        assert s == k, f"step {i}: sim {s:#x} kernel {k:#x}"
        if i % 7 == 6:
            assert sim.consume() == _kernel_ringbuf_records(km, size)
    assert sim.consume() == _kernel_ringbuf_records(km, size)


def test_prog_tail_call(kernel: Any) -> None:
    """A tail call runs the target and never returns; a missing slot falls through."""
    from netbpf import ProgramSpec

    ktarget = kernel.load_program(ProgramSpec.from_asm("r0 = 42\nexit", prog_type="xdp"))
    starget = load_executable(assemble("r0 = 42\nexit"), engine="interpreter", name="target")
    sprog = FakeProg(ProgramType.XDP)
    sprog.executable = starget  # type: ignore[attr-defined]
    sim, km = pair(kernel, MapType.PROG_ARRAY, 4, 4, 4)
    sim.update(u32(1), sprog)
    km.update(u32(1), u32(ktarget.fd))
    call = "r1 = 0\nr2 = map_fd(0) ll\nr3 = {i}\ncall 12\nr0 = 7\nexit"
    for i in (1, 2, 9):
        both = Both(kernel, call.replace("r1 = 0", "r1 = r1").format(i=i), [sim], [km])
        assert both.run() == ((42, 42) if i == 1 else (7, 7))
