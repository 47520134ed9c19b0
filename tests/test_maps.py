"""The simulator's maps without the kernel: the parts the differential tests cannot see
(value addresses and element reuse, the map table, program-side helpers, ring buffer
and perf buffer internals, pinning, specs) and the error contract."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from netbpf.errors import (
    MapError,
    MapFullError,
    MapKeyExistsError,
    MapKeyNotFoundError,
    NotSupportedError,
    PinError,
    ProgramFault,
)
from netbpf.helpers import DEFAULT_REGISTRY
from netbpf.helpers import maps as hm
from netbpf.isa.asm import assemble
from netbpf.maps import (
    BPF_ANY,
    BPF_EXIST,
    BPF_F_LOCK,
    BPF_F_MMAPABLE,
    BPF_F_NO_PREALLOC,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_NOEXIST,
    LIBBPF_PIN_BY_NAME,
    CpumapValue,
    DevmapValue,
    MapSpec,
    MapTable,
    PerfLost,
    PerfSample,
    PinNamespace,
    Resolver,
    Socket,
    create_map,
    jhash,
    lpm_key,
    map_from_pointer,
    object_id,
    pin_by_name,
)
from netbpf.maps.base import ValueStore
from netbpf.uapi import AttachType, MapType, ProgramType
from netbpf.vm.engine import load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, MemoryFault, Region


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def spec(mtype: MapType, k: int, v: int, n: int, flags: int = 0, **kw: object) -> MapSpec:
    return MapSpec("m", mtype, k, v, n, flags, **kw)  # type: ignore[arg-type]


class Env:
    """A run environment over one map table, with a scratch region for keys/values."""

    def __init__(self, cpu: int = 0) -> None:
        self.table = MapTable(AddressSpace())
        self.scratch = Region("scratch", bytearray(256))
        self.table.mem.map(self.scratch)
        self.env = RunEnv(
            self.table.mem,
            helpers=DEFAULT_REGISTRY.for_prog_type(ProgramType.XDP),
            state={"cpu": cpu},
        )

    def put(self, off: int, data: bytes) -> int:
        self.scratch.buf[off : off + len(data)] = data
        return self.scratch.base + off

    def call(self, fn: object, *args: int) -> int:
        regs = [*args, 0, 0, 0, 0, 0][:5]
        r = fn(self.env, *regs)  # type: ignore[operator]
        return r - (1 << 64) if r >= (1 << 64) - 4096 else r  # -errno, else unsigned


# -- specs and creation ----------------------------------------------------------------------


def test_spec_is_data() -> None:
    a = spec(MapType.HASH, 4, 8, 16, extra={"spin_lock_off": 0})
    b = spec(MapType.HASH, 4, 8, 16, extra={"spin_lock_off": 0})
    assert a == b and hash(a) == hash(b)
    assert a.spin_lock_off == 0 and spec(MapType.HASH, 4, 8, 1).spin_lock_off is None
    assert a.with_(max_entries=2).max_entries == 2 and a.max_entries == 16
    with pytest.raises(AttributeError):
        a.name = "x"  # type: ignore[misc]


def test_create_errors_are_typed() -> None:
    with pytest.raises(MapError) as ei:
        create_map(spec(MapType.ARRAY, 8, 4, 4))
    assert ei.value.errno == errno.EINVAL and "key_size 4" in str(ei.value)
    with pytest.raises(MapFullError):
        create_map(spec(MapType.PERCPU_ARRAY, 4, 40000, 1))
    with pytest.raises(MapError) as ei:
        create_map(spec(999, 4, 4, 4))  # type: ignore[arg-type]
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(NotSupportedError):
        create_map(spec(MapType.STACK_TRACE, 4, 8, 4))
    with pytest.raises(MapError):
        create_map(spec(MapType.ARRAY, 4, 4, 4), ncpus=0)
    with pytest.raises(MapError) as ei:
        create_map(spec(MapType.LRU_HASH, 4, 4, 4, BPF_F_NO_PREALLOC))
    assert ei.value.errno == 524 and "ENOTSUPP" in str(ei.value)


def test_bad_user_arguments() -> None:
    m = create_map(spec(MapType.HASH, 4, 8, 4))
    for bad in (b"123", 1.5, "abcd", 1 << 40):
        with pytest.raises(MapError):
            m.update(bad, bytes(8))
    with pytest.raises(MapError, match="value is 7 bytes"):
        m.update(1, bytes(7))
    p = create_map(spec(MapType.PERCPU_HASH, 4, 4, 4), ncpus=3)
    with pytest.raises(MapError, match="per-CPU"):
        p.update(1, bytes(4))
    p.update(1, [b"aaaa", b"bbbb", b"cccc"])
    assert p.lookup_percpu(1) == [b"aaaa", b"bbbb", b"cccc"]
    assert p.lookup(1) == b"aaaa\0\0\0\0bbbb\0\0\0\0cccc\0\0\0\0" and p.value_size_raw == 24


def test_dict_like_api_and_close() -> None:
    m = create_map(spec(MapType.HASH, 4, 4, 4))
    m[u32(1)] = u32(10)
    assert u32(1) in m and u32(2) not in m and m[1] == u32(10) and len(m) == 1
    assert m.get(u32(2), b"-") == b"-"
    with pytest.raises(KeyError):
        m[u32(2)]
    del m[u32(1)]
    assert len(m) == 0
    with m:
        pass
    assert m.closed
    with pytest.raises(MapError) as ei:
        m.lookup(1)
    assert ei.value.errno == errno.EBADF


# -- value memory, addresses and element reuse -------------------------------------------------


def test_array_values_are_addressable_and_shared() -> None:
    e = Env()
    a = create_map(spec(MapType.ARRAY, 4, 12, 3))
    ptr = e.table.add(a)
    assert map_from_pointer(e.table.mem, ptr) is a and e.table.resolve(ptr) is a
    addr = e.call(hm.map_lookup_elem, ptr, e.put(0, u32(2)))
    assert addr == a.value_address(2) == a.value_address(0) + 32  # round_up(12, 8) apart
    e.table.mem.write(addr, b"hello world!")
    assert a.lookup(2) == b"hello world!"
    assert e.call(hm.map_lookup_elem, ptr, e.put(0, u32(3))) == 0
    with pytest.raises(MemoryFault):  # a map pointer is not memory
        e.table.mem.load(ptr, 8)
    with pytest.raises(MemoryFault):
        map_from_pointer(e.table.mem, addr)
    assert e.table.add(a) == ptr and len(e.table) == 1 and a in e.table


def test_rdonly_prog_values_fault_on_store() -> None:
    e = Env()
    a = create_map(spec(MapType.ARRAY, 4, 8, 1, BPF_F_RDONLY_PROG))
    ptr = e.table.add(a)
    addr = e.call(hm.map_lookup_elem, ptr, e.put(0, u32(0)))
    with pytest.raises(MemoryFault, match="read-only"):
        e.table.mem.store(addr, 8, 1)
    with pytest.raises(MapError, match="RDONLY_PROG"):
        e.call(hm.map_update_elem, ptr, e.put(0, u32(0)), e.put(8, u64(1)), 0)


def test_hash_update_moves_the_value_like_the_kernel() -> None:
    """A prealloc HASH update links a new element (the CPU's spare); a pointer taken
    before still sees the old value, until that spare is reused."""
    e = Env()
    h = create_map(spec(MapType.HASH, 4, 8, 4), ncpus=1)
    ptr = e.table.add(h)
    k = e.put(0, u32(7))
    e.call(hm.map_update_elem, ptr, k, e.put(8, u64(1)), BPF_ANY)
    old = e.call(hm.map_lookup_elem, ptr, k)
    e.call(hm.map_update_elem, ptr, k, e.put(8, u64(2)), BPF_ANY)
    new = e.call(hm.map_lookup_elem, ptr, k)
    assert new != old and e.table.mem.load(old, 8) == 1 and e.table.mem.load(new, 8) == 2
    e.call(hm.map_update_elem, ptr, k, e.put(8, u64(3)), BPF_ANY)
    assert e.call(hm.map_lookup_elem, ptr, k) == old  # the spare came back
    # a deleted element is the next one reused (LIFO free list)
    e.call(hm.map_delete_elem, ptr, k)
    e.call(hm.map_update_elem, ptr, e.put(0, u32(8)), e.put(8, u64(9)), BPF_ANY)
    assert e.call(hm.map_lookup_elem, ptr, e.put(0, u32(8))) == old
    assert e.table.mem.load(old, 8) == 9


def test_percpu_and_no_prealloc_addresses() -> None:
    e = Env(cpu=1)
    p = create_map(spec(MapType.PERCPU_HASH, 4, 4, 4), ncpus=2)
    ptr = e.table.add(p)
    k = e.put(0, u32(1))
    assert e.call(hm.map_update_elem, ptr, k, e.put(8, u32(5)), BPF_ANY) == 0
    assert p.lookup_percpu(1) == [u32(0), u32(5)]  # only this CPU's copy
    mine = e.call(hm.map_lookup_elem, ptr, k)
    assert e.call(hm.map_lookup_percpu_elem, ptr, k, 0) != mine
    assert e.call(hm.map_lookup_percpu_elem, ptr, k, 2) == 0
    n = create_map(spec(MapType.HASH, 4, 8, 100000, BPF_F_NO_PREALLOC))
    e.table.add(n)
    n.update(1, u64(1))
    assert n.store.nbytes() < 100000  # no values preallocated (buckets are, as in the kernel)
    for i in range(2000):
        n.update(i, u64(i))
    assert n.lookup(1999) == u64(1999) and len(n) == 2000


def test_lru_program_lookup_keeps_key() -> None:
    e = Env()
    lru = create_map(spec(MapType.LRU_HASH, 4, 4, 4), ncpus=1)
    ptr = e.table.add(lru)
    for i in range(1, 5):
        lru.update(i, u32(i))
    e.call(hm.map_lookup_elem, ptr, e.put(0, u32(1)))
    lru.update(5, u32(5))
    assert u32(1) in lru and len(lru) <= 4


def test_spin_lock_word_is_masked() -> None:
    m = create_map(spec(MapType.HASH, 4, 8, 4, extra={"spin_lock_off": 4}))
    m.update(1, b"abcdefgh")
    assert m.lookup(1) == b"abcd\0\0\0\0"
    m.update(1, b"ABCDEFGH", flags=BPF_F_LOCK)
    assert m.lookup(1, flags=BPF_F_LOCK) == b"ABCD\0\0\0\0"
    with pytest.raises(MapError) as ei:
        m.freeze()
    assert ei.value.errno == 524
    plain = create_map(spec(MapType.HASH, 4, 8, 4))
    with pytest.raises(MapError) as ei:
        plain.update(1, bytes(8), flags=BPF_F_LOCK)
    assert ei.value.errno == errno.EINVAL


def test_mmapable_array_shares_memory_with_programs() -> None:
    e = Env()
    a = create_map(spec(MapType.ARRAY, 4, 4, 4, BPF_F_MMAPABLE))
    e.table.add(a)
    view = a.mmap()
    assert len(view) == 4096
    view[8:12] = u32(99)
    assert e.table.mem.load(a.value_address(1), 4) == 99  # elements 8 bytes apart
    assert a.value_address(1) == a.value_address(0) + 8
    ro = create_map(spec(MapType.ARRAY, 4, 4, 4, BPF_F_MMAPABLE | BPF_F_RDONLY_PROG))
    with pytest.raises(MapError) as ei:
        ro.mmap()
    assert ei.value.errno == errno.EACCES
    assert ro.mmap(writable=False).readonly
    with pytest.raises(MapError):
        create_map(spec(MapType.ARRAY, 4, 4, 4)).mmap()


def test_user_rdonly_flag() -> None:
    m = create_map(spec(MapType.ARRAY, 4, 4, 4, BPF_F_RDONLY))
    assert m.flags == 0 and m.lookup(0) == bytes(4)
    with pytest.raises(MapError) as ei:
        m.update(0, bytes(4))
    assert ei.value.errno == errno.EPERM


# -- the element semantics the differential tests also cover, without a kernel -------------


def test_hash_order_is_jhash_buckets_newest_first() -> None:
    m = create_map(spec(MapType.HASH, 4, 4, 8))
    for i in (5, 1, 9, 3, 7, 2):
        m.update(i, u32(i))
    order = [struct.unpack("<I", k)[0] for k in m.keys()]
    buckets: dict[int, list[int]] = {}
    for i in (5, 1, 9, 3, 7, 2):
        buckets.setdefault(jhash(u32(i)) & 7, []).insert(0, i)
    assert order == [k for b in sorted(buckets) for k in buckets[b]] == [2, 7, 1, 9, 5, 3]
    assert m.get_next_key(u32(1000)) == u32(2)  # an absent key restarts
    with pytest.raises(MapKeyExistsError):
        m.update(5, u32(0), flags=BPF_NOEXIST)
    with pytest.raises(MapKeyNotFoundError):
        m.update(55, u32(0), flags=BPF_EXIST)
    m.update(7, u32(1), flags=BPF_EXIST)
    assert m.lookup_and_delete(7) == u32(1) and 7 not in [
        struct.unpack("<I", k)[0] for k in m.keys()
    ]


def test_lru_eviction_batches_and_per_cpu_lists() -> None:
    m = create_map(spec(MapType.LRU_HASH, 4, 4, 4), ncpus=2)
    for i in range(1, 6):
        m.update(i, u32(i))
    assert sorted(m.keys()) == sorted(u32(i) for i in (2, 3, 4, 5))
    pc = create_map(spec(MapType.LRU_HASH, 4, 4, 5, 2), ncpus=2)  # BPF_F_NO_COMMON_LRU
    assert pc.max_entries == 6  # rounded up to a multiple of the CPUs
    for i in range(1, 6):
        pc.update(i, u32(i))
    assert sorted(pc.keys()) == [u32(4), u32(5)]  # CPU 0 owns 3 nodes, shrinks in batches
    st = pc.lru_lists.state()  # type: ignore[union-attr]
    assert len(st["free1"]) == 3  # CPU 1's share is untouched


def test_lpm_trie_shapes() -> None:
    m = create_map(spec(MapType.LPM_TRIE, 8, 4, 3, BPF_F_NO_PREALLOC))
    m.update(lpm_key(16, b"\xc0\xa8\x00\x00"), u32(16))
    m.update(lpm_key(24, b"\xc0\xa8\x01\x07"), u32(24))  # data past the prefix is kept
    assert m.lookup(lpm_key(32, b"\xc0\xa8\x01\x01")) == u32(24)
    assert m.lookup(lpm_key(32, b"\xc0\xa8\x02\x01")) == u32(16)
    assert m.lookup_prefix(23, b"\xc0\xa8\x01\x01") == u32(16)
    assert list(m.keys()) == [lpm_key(24, b"\xc0\xa8\x01\x07"), lpm_key(16, b"\xc0\xa8\x00\x00")]
    m.update(lpm_key(24, b"\xc0\xa8\x02\x00"), u32(2))
    with pytest.raises(MapError) as ei:
        m.update(lpm_key(8, b"\x0a\0\0\0"), u32(8))
    assert ei.value.errno == errno.ENOSPC
    m.delete(lpm_key(16, b"\xc0\xa8\x00\x00"))  # has two children: becomes intermediate
    assert len(m) == 2
    with pytest.raises(MapKeyNotFoundError):
        m.lookup(lpm_key(32, b"\xc0\xa8\x03\x01"))
    with pytest.raises(MapError):
        m.lookup_and_delete(lpm_key(24, b"\xc0\xa8\x02\x00"))


def test_queue_and_stack() -> None:
    q = create_map(spec(MapType.QUEUE, 0, 4, 2))
    s = create_map(spec(MapType.STACK, 0, 4, 2))
    for m in (q, s):
        m.push(u32(1))
        m.push(u32(2))
        with pytest.raises(MapFullError):
            m.push(u32(3))
        m.push(u32(3), flags=BPF_EXIST)
        assert len(m) == 2 and list(m.keys()) == []
    assert q.contents() == [u32(2), u32(3)] and q.pop() == u32(2) and q.peek() == u32(3)
    assert s.contents() == [u32(3), u32(2)] and s.pop() == u32(3)
    with pytest.raises(MapError) as ei:
        q.push(u32(1), flags=BPF_NOEXIST)
    assert ei.value.errno == errno.EINVAL
    q.pop()
    with pytest.raises(MapKeyNotFoundError):
        q.pop()
    e = Env()
    ptr = e.table.add(s)
    assert e.call(hm.map_push_elem, ptr, e.put(0, u32(7)), 0) == 0
    assert e.call(hm.map_peek_elem, ptr, e.put(8, bytes(4))) == 0
    assert e.scratch.buf[8:12] == u32(7)
    assert e.call(hm.map_pop_elem, ptr, e.put(8, bytes(4))) == 0
    assert e.call(hm.map_pop_elem, ptr, e.put(8, bytes(4))) == 0  # the older element
    assert e.call(hm.map_pop_elem, ptr, e.put(8, bytes(4))) == -errno.ENOENT


def test_batches_and_processed_count() -> None:
    m = create_map(spec(MapType.HASH, 4, 4, 3))
    assert m.update_batch([(u32(i), u32(i)) for i in range(2)]) == 2
    with pytest.raises(MapFullError) as ei:
        m.update_batch([(u32(i), u32(i)) for i in range(2, 6)])
    assert ei.value.processed == 1  # type: ignore[attr-defined]
    assert sorted(m.lookup_batch(count=1)) == [(u32(i), u32(i)) for i in range(3)]
    with pytest.raises(MapKeyNotFoundError) as ei2:
        m.delete_batch([u32(0), u32(9), u32(1)])
    assert ei2.value.processed == 1  # type: ignore[attr-defined]
    assert sorted(m.lookup_batch(delete=True)) == [(u32(1), u32(1)), (u32(2), u32(2))]
    assert len(m) == 0


def test_freeze() -> None:
    m = create_map(spec(MapType.ARRAY, 4, 4, 1))
    m.freeze()
    assert m.frozen
    with pytest.raises(MapError) as ei:
        m.update(0, u32(1))
    assert ei.value.errno == errno.EPERM
    e = Env()
    ptr = e.table.add(m)
    assert e.call(hm.map_update_elem, ptr, e.put(0, u32(0)), e.put(8, u32(5)), 0) == 0
    assert m.lookup(0) == u32(5)  # programs may still write a frozen map


# -- ring buffer and perf buffers ---------------------------------------------------------------


def test_ringbuf_records_wrap_and_wakeups() -> None:
    e = Env()
    rb = create_map(spec(MapType.RINGBUF, 0, 0, 4096))
    ptr = e.table.add(rb)
    got = []
    for i in range(60):
        rec = e.call(hm.ringbuf_reserve, ptr, 100, 0)
        assert rec, i
        e.table.mem.write(rec, bytes([i]) * 100)
        e.call(hm.ringbuf_submit if i % 4 else hm.ringbuf_discard, rec, 0)
        got += rb.consume()
    assert got == [bytes([i]) * 100 for i in range(60) if i % 4]
    assert rb.query(0) == 0 and rb.query(3) == rb.query(2) == 60 * 112
    # a full ring refuses, and a record still being written blocks the consumer
    held = e.call(hm.ringbuf_reserve, ptr, 2000, 0)
    assert held and e.call(hm.ringbuf_reserve, ptr, 2100, 0) == 0
    assert e.call(hm.ringbuf_output, ptr, e.put(0, b"x" * 16), 16, 0) == 0
    assert rb.consume() == [] and rb.query(0) == 2008 + 24
    e.call(hm.ringbuf_submit, held, 2)  # BPF_RB_FORCE_WAKEUP
    assert [len(r) for r in rb.consume()] == [2000, 16]
    assert e.call(hm.ringbuf_output, ptr, e.put(0, b"y"), 1, 4) == -errno.EINVAL
    assert e.call(hm.ringbuf_reserve, ptr, 8, 1) == 0
    with pytest.raises(MemoryFault, match="already submitted"):
        e.call(hm.ringbuf_submit, held, 0)
    assert rb.wakeups > 0


def test_perf_event_array_output() -> None:
    e = Env(cpu=1)
    pe = create_map(spec(MapType.PERF_EVENT_ARRAY, 4, 4, 2), ncpus=2)
    ptr = e.table.add(pe)
    data = e.put(0, b"abcde")
    assert e.call(hm.perf_event_output, 0, ptr, 0xFFFFFFFF, data, 5) == -errno.ENOENT
    with pe.open_buffer(page_cnt=1) as buf:
        assert e.call(hm.perf_event_output, 0, ptr, 0xFFFFFFFF, data, 5) == 0
        assert e.call(hm.perf_event_output, 0, ptr, 0, data, 5) == -errno.EOPNOTSUPP
        assert e.call(hm.perf_event_output, 0, ptr, 7, data, 5) == -errno.E2BIG
        assert e.call(hm.perf_event_output, 0, ptr, 1 << 32 | 1, data, 5) == -errno.EINVAL
        assert buf.poll() == [PerfSample(1, b"abcde" + bytes(7))]  # 4 + 12: 8-byte aligned
        n = 0
        while e.call(hm.perf_event_output, 0, ptr, 1, data, 5) == 0:
            n += 1
        assert n == 4096 // 24 and e.call(hm.perf_event_output, 0, ptr, 1, data, 5) == -28
        recs = buf.consume()
        assert len(recs) == n
        assert e.call(hm.perf_event_output, 0, ptr, 1, data, 5) == 0
        # lost record at ring offset 8, this sample's padding at 49..55: the kernel
        # skips it, so it still holds bytes 1..7 of the header (type 9, misc 1, size
        # 24) of the sample written at offset 48 on the first lap
        stale = struct.pack("<IHH", 9, 1, 24)[1:]
        assert buf.consume() == [PerfLost(1, 2), PerfSample(1, b"abcde" + stale)]
    assert pe.get_object(1) is None
    # skb/xdp programs may append packet bytes (flags bits 32..51)
    e.env.state["xdp"] = type("X", (), {"linear": b"PKT", "frags": [b"FR"]})()
    with pe.open_buffer() as buf:
        assert e.call(hm.perf_event_output, 0, ptr, 5 << 32 | 1, data, 2) == 0
        assert e.call(hm.perf_event_output, 0, ptr, 6 << 32 | 1, data, 2) == -errno.EFAULT
        assert buf.poll() == [PerfSample(1, b"abPKTFR" + bytes(5))]
    with pytest.raises(MapError):
        pe.lookup(0)


# -- fd maps, tail calls, for_each ---------------------------------------------------------------


class Prog:
    def __init__(self, text: str, ptype: ProgramType = ProgramType.XDP) -> None:
        self.prog_type = ptype
        self.executable = load_executable(assemble(text), engine="interpreter", name="p")


def test_tail_call_and_prog_array_owner() -> None:
    e = Env()
    pa = create_map(spec(MapType.PROG_ARRAY, 4, 4, 4))
    ptr = e.table.add(pa)
    target = Prog("r0 = 42\nexit")
    pa.update(2, target)
    assert pa.lookup(2) == u32(object_id(target))
    with pytest.raises(MapError) as ei:
        pa.update(1, Prog("r0 = 1\nexit", ProgramType.SCHED_CLS))
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(MapError) as ei:
        pa.update(1, 12345)  # an fd the resolver does not know
    assert ei.value.errno == errno.EBADF
    text = f"r2 = {ptr & 0xFFFFFFFF}\nr6 = {ptr >> 32}\nr6 <<= 32\nr2 |= r6\nr3 = {{i}}\ncall 12\nr0 = 7\nexit"
    for i, want in ((2, 42), (3, 7), (9, 7)):
        exe = load_executable(assemble(text.format(i=i)), engine="interpreter")
        assert exe.run(e.env, 0) == want
    assert pa.get_object(9) is None and len(pa) == 1


def test_for_each_map_elem_callback_order() -> None:
    e = Env()
    h = create_map(spec(MapType.HASH, 4, 8, 8))
    ptr = e.table.add(h)
    for i in (5, 1, 6, 2):
        h.update(i, u64(i * 100))
    prog = """
        r1 = {lo}
        r6 = {hi}
        r6 <<= 32
        r1 |= r6
        r2 = func(cb) ll
        r3 = r10
        r3 += -8
        r4 = 0
        *(u64 *)(r10 - 8) = r4
        call 164
        r6 = *(u64 *)(r10 - 8)
        r6 <<= 8
        r0 += r6
        exit
    cb:
        r6 = *(u32 *)(r2 + 0)
        r7 = *(u64 *)(r4 + 0)
        r7 *= 10
        r7 += r6
        *(u64 *)(r4 + 0) = r7
        r0 = 0
        if r6 != {stop} goto +1
        r0 = 1
        exit
    """
    order = [struct.unpack("<I", k)[0] for k in h.keys()]
    for stop in (99, order[1]):
        text = prog.format(lo=ptr & 0xFFFFFFFF, hi=ptr >> 32, stop=stop)
        r0 = load_executable(assemble(text), engine="interpreter").run(e.env, 0)
        n = len(order) if stop == 99 else 2
        digits = int("".join(str(k) for k in order[:n]))
        assert r0 == (digits << 8) + n
    with pytest.raises(ProgramFault):
        lpm = create_map(spec(MapType.LPM_TRIE, 8, 4, 4, BPF_F_NO_PREALLOC))
        lp = e.table.add(lpm)
        text = prog.format(lo=lp & 0xFFFFFFFF, hi=lp >> 32, stop=0)
        load_executable(assemble(text), engine="interpreter").run(e.env, 0)


def test_maps_of_maps_give_programs_inner_pointers() -> None:
    e = Env()
    inner_spec = spec(MapType.ARRAY, 4, 4, 2)
    aom = create_map(spec(MapType.ARRAY_OF_MAPS, 4, 4, 2, inner_map=inner_spec))
    hom = create_map(spec(MapType.HASH_OF_MAPS, 4, 4, 2, inner_map=inner_spec))
    inner = create_map(inner_spec)
    aom.update(1, inner)
    for outer in (aom, hom):
        ptr = e.table.add(outer)
        hom.update(3, inner)
        got = e.call(hm.map_lookup_elem, ptr, e.put(0, u32(1 if outer is aom else 3)))
        assert got == inner.pointer != 0
        assert map_from_pointer(e.table.mem, got) is inner
        assert outer.inner(1 if outer is aom else 3) is inner
        assert outer.lookup(1 if outer is aom else 3) == u32(inner.id)
    with pytest.raises(MapError, match="does not match"):
        aom.update(0, create_map(spec(MapType.ARRAY, 4, 4, 3)))


# -- network object maps ------------------------------------------------------------------------


def test_redirect_map_records_targets() -> None:
    e = Env()
    dm = create_map(spec(MapType.DEVMAP, 4, 8, 4))
    ptr = e.table.add(dm)
    prog = Prog("r0 = 2\nexit")
    prog.expected_attach_type = AttachType.XDP_DEVMAP  # type: ignore[attr-defined]
    dm.update(1, DevmapValue(1, prog))
    assert dm.lookup(1) == u32(1) + u32(object_id(prog))
    assert dm.flags & BPF_F_RDONLY_PROG
    assert e.call(hm.redirect_map, ptr, 1, 0) == 4
    r = e.env.state["redirect"]
    assert r.map is dm and r.key == 1 and r.target[0].ifindex == 1 and r.target[1] is prog
    assert e.call(hm.redirect_map, ptr, 2, 2) == 2 and e.env.state["redirect"] is None
    assert e.call(hm.redirect_map, ptr, 2, 1 << 5) == 0  # unknown flag: XDP_ABORTED
    vp = e.call(hm.map_lookup_elem, ptr, e.put(0, u32(1)))
    assert e.table.mem.load(vp, 4) == 1  # struct bpf_devmap_val.ifindex
    cm = create_map(spec(MapType.CPUMAP, 4, 8, 4), ncpus=2)
    cptr = e.table.add(cm)
    cm.update(1, CpumapValue(128))
    assert e.call(hm.redirect_map, cptr, 1, 0) == 4
    assert e.env.state["redirect"].target == (1, 128, None)
    with pytest.raises(MapError):
        e.call(hm.map_lookup_elem, cptr, e.put(0, u32(1)))  # the verifier refuses it


def test_sock_maps_and_redirects() -> None:
    res = Resolver()
    e = Env()
    sm = create_map(spec(MapType.SOCKMAP, 4, 8, 2), resolver=res)
    ptr = e.table.add(sm)
    est = Socket(state="established")
    lst = Socket(state="listen", bound=True, reuseport=True)
    sm.update(0, est)
    sm.update(1, res.add_fd(lst))
    assert sm.lookup(0) == u64(est.cookie) and sm.lookup(1) == u64(lst.cookie)
    with pytest.raises(MapError) as ei:
        sm.update(0, Socket())  # an unconnected TCP socket
    assert ei.value.errno == errno.EOPNOTSUPP
    assert e.call(hm.sk_redirect_map, 0, ptr, 0, 1) == 1
    assert e.env.state["sk_redirect"] == hm.SkRedirect(est, True)
    assert e.call(hm.sk_redirect_map, 0, ptr, 1, 0) == 0  # a listener is no target
    assert e.call(hm.sk_redirect_map, 0, ptr, 0, 2) == 0
    with pytest.raises(NotSupportedError):
        e.call(hm.map_lookup_elem, ptr, e.put(0, u32(0)))
    ra = create_map(spec(MapType.REUSEPORT_SOCKARRAY, 4, 8, 2), resolver=res)
    rptr = e.table.add(ra)
    ra.update(0, lst)
    e.env.state["reuseport_sk"] = Socket(socket.AF_INET6, state="listen", reuseport=True)
    assert e.call(hm.sk_select_reuseport, 0, rptr, e.put(0, u32(0)), 0) == -errno.EAFNOSUPPORT
    e.env.state["reuseport_sk"] = lst
    assert e.call(hm.sk_select_reuseport, 0, rptr, e.put(0, u32(0)), 0) == 0
    assert e.env.state["reuseport_selected"] is lst
    assert e.call(hm.sk_select_reuseport, 0, rptr, e.put(0, u32(1)), 0) == -errno.ENOENT


# -- pinning and the value store ----------------------------------------------------------------


def test_pin_namespace() -> None:
    ns = PinNamespace()
    m = create_map(spec(MapType.ARRAY, 4, 4, 1))
    ns.pin("/sys/fs/bpf/a", m)
    assert ns.get("/sys/fs/bpf/a") is m and "/sys/fs/bpf/a" in ns
    for path, err in [
        ("/sys/fs/bpf/a", errno.EEXIST),
        ("/sys/fs/bpf/dir/b", errno.ENOENT),
        ("/tmp/x", errno.EPERM),
    ]:
        with pytest.raises(PinError) as ei:
            ns.pin(path, m)
        assert ei.value.errno == err
    ns.mkdir("/sys/fs/bpf/dir")
    ns.pin("/sys/fs/bpf/dir/b", m)
    assert ns.listdir() == ["a", "dir"]
    with pytest.raises(PinError):
        ns.unpin("/sys/fs/bpf/dir")
    ns.unpin("/sys/fs/bpf/dir/b")
    ns.unpin("/sys/fs/bpf/dir")
    with pytest.raises(PinError) as ei:
        ns.get("/sys/fs/bpf/dir/b")
    assert ei.value.errno == errno.ENOENT


def test_pin_by_name_reuses_compatible_maps() -> None:
    ns = PinNamespace()
    s = MapSpec("counts", MapType.HASH, 4, 8, 16, pinning=LIBBPF_PIN_BY_NAME)
    made: list[object] = []

    def create(sp: MapSpec) -> object:
        m = create_map(sp)
        made.append(m)
        return m

    a = pin_by_name(ns, s, create)  # type: ignore[arg-type]
    b = pin_by_name(ns, s, create)  # type: ignore[arg-type]
    assert a is b and len(made) == 1 and ns.get("/sys/fs/bpf/counts") is a
    with pytest.raises(PinError) as ei:
        pin_by_name(ns, s.with_(max_entries=32), create)  # type: ignore[arg-type]
    assert ei.value.errno == errno.EINVAL
    d = MapSpec("dev", MapType.DEVMAP, 4, 4, 4, pinning=LIBBPF_PIN_BY_NAME)
    assert pin_by_name(ns, d, create) is pin_by_name(ns, d, create)  # type: ignore[arg-type]
    assert pin_by_name(ns, s.with_(pinning=0), create) is not a  # type: ignore[arg-type]


def test_value_store_never_resizes() -> None:
    st = ValueStore("v", 4, 3)
    with pytest.raises(ValueError):
        st.set(0, b"12345")
    st.set(2, b"abcd")
    assert st.get(2) == b"abcd" and st.get_long(2) == b"abcd\0\0\0\0" and st.nbytes() == 24


def test_every_map_type_speaks_the_backend_map_protocol() -> None:
    """The simulator's maps are drop-in for the backend-neutral Map protocol (what
    Collection and TypedMap use), like netbpf.kernel.KernelMap."""
    from netbpf.backend import Map as MapProtocol
    from netbpf.maps import MAP_CLASSES

    inner = spec(MapType.ARRAY, 4, 4, 1)
    shapes = {
        MapType.QUEUE: (0, 4, 4),
        MapType.STACK: (0, 4, 4),
        MapType.RINGBUF: (0, 0, 4096),
        MapType.PROG_ARRAY: (4, 4, 4),
        MapType.PERF_EVENT_ARRAY: (4, 4, 4),
        MapType.ARRAY_OF_MAPS: (4, 4, 4),
        MapType.HASH_OF_MAPS: (4, 4, 4),
        MapType.XSKMAP: (4, 4, 4),
        MapType.LPM_TRIE: (8, 4, 4),
    }
    for mtype in MAP_CLASSES:
        k, v, n = shapes.get(mtype, (4, 8, 4))
        flags = BPF_F_NO_PREALLOC if mtype == MapType.LPM_TRIE else 0
        m = create_map(spec(mtype, k, v, n, flags, inner_map=inner), ncpus=2)
        assert isinstance(m, MapProtocol), mtype.name
        assert m.map_type == mtype and m.value_size_raw >= m.value_size
