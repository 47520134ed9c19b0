"""KernelMap: raw-bytes map operations through bpf(), with the kernel's errnos turned
into the typed map errors."""

from __future__ import annotations

import errno
import os
import struct
import subprocess

import pytest

from netbpf.errors import (
    KernelError,
    MapError,
    MapFullError,
    MapKeyExistsError,
    MapKeyNotFoundError,
    NotSupportedError,
)
from netbpf.kernel import KernelBackend, KernelMap
from netbpf.kernel import syscall as sysc
from netbpf.uapi import MapType

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def test_array_round_trip(kernel: KernelBackend) -> None:
    with kernel.create_map("array", 4, 8, 4, name="arr") as m:
        assert isinstance(m, KernelMap)
        assert m.map_type == MapType.ARRAY
        # array elements always exist, zero-initialised
        assert m.lookup(u32(3)) == bytes(8)
        m.update(u32(1), u64(0x1122334455667788))
        assert m[u32(1)] == u64(0x1122334455667788)
        m[u32(2)] = u64(5)
        assert list(m.keys()) == [u32(i) for i in range(4)]
        assert dict(m.items())[u32(2)] == u64(5)
        assert m.next_key() == u32(0)
        assert m.next_key(u32(3)) is None
        # out of range / flags / delete, the kernel's way
        with pytest.raises(MapKeyNotFoundError):
            m.lookup(u32(4))
        with pytest.raises(MapFullError) as ei:
            m.update(u32(4), u64(1))
        assert ei.value.errno == errno.E2BIG
        with pytest.raises(MapKeyExistsError):
            m.update(u32(0), u64(1), flags=BPF_NOEXIST)
        with pytest.raises(MapError) as ei2:
            m.delete(u32(0))
        assert ei2.value.errno == errno.EINVAL
        assert m.info().max_entries == 4
        assert m.info().name == "arr"


def test_hash_round_trip(kernel: KernelBackend) -> None:
    with kernel.create_map(MapType.HASH, 4, 8, 3, name="h") as m:
        assert m.next_key() is None
        assert list(m.items()) == []
        m.update(b"aaaa", u64(1))
        m.update(b"bbbb", u64(2), flags=BPF_NOEXIST)
        with pytest.raises(MapKeyExistsError) as ei:
            m.update(b"aaaa", u64(9), flags=BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        with pytest.raises(MapKeyNotFoundError) as ei2:
            m.update(b"zzzz", u64(9), flags=BPF_EXIST)
        assert isinstance(ei2.value, KeyError)
        m.update(b"aaaa", u64(3), flags=BPF_EXIST)
        assert m.lookup(b"aaaa") == u64(3)
        m.update(b"cccc", u64(4))
        with pytest.raises(MapFullError):
            m.update(b"dddd", u64(5))
        assert sorted(m.keys()) == [b"aaaa", b"bbbb", b"cccc"]
        assert b"bbbb" in m and b"zzzz" not in m
        # get_next_key walks every key exactly once, from any start
        first = m.next_key(None)
        second = m.next_key(first)
        third = m.next_key(second)
        assert {first, second, third} == {b"aaaa", b"bbbb", b"cccc"}
        assert m.next_key(third) is None
        # a key that is not in the map restarts from the first key
        assert m.next_key(b"nope") == first
        m.delete(b"bbbb")
        with pytest.raises(MapKeyNotFoundError) as ei3:
            m.delete(b"bbbb")
        assert "no such key" in str(ei3.value) and "62626262" in str(ei3.value)
        assert m.get(b"bbbb") is None
        assert m.lookup_and_delete(b"cccc") == u64(4)
        assert list(m.keys()) == [b"aaaa"]


def test_hash_batch_ops(kernel: KernelBackend) -> None:
    with kernel.create_map("hash", 4, 8, 64) as m:
        items = [(u32(i), u64(i * 10)) for i in range(40)]
        m.update_batch(items)
        got = m.lookup_batch(count=7)
        assert sorted(got) == sorted(items)
        m.delete_batch([u32(i) for i in range(10)])
        assert sorted(m.keys()) == sorted(u32(i) for i in range(10, 40))
        drained = m.lookup_batch(count=16, delete=True)
        assert sorted(drained) == sorted(items[10:])
        assert list(m.keys()) == []
        with pytest.raises(MapKeyNotFoundError):
            m.delete_batch([u32(1)])


def test_array_lookup_batch(kernel: KernelBackend) -> None:
    with kernel.create_map("array", 4, 4, 10) as m:
        for i in range(10):
            m[u32(i)] = u32(i * i)
        assert m.lookup_batch(count=3) == [(u32(i), u32(i * i)) for i in range(10)]


def test_percpu_array_values_cover_every_cpu(kernel: KernelBackend) -> None:
    ncpu = sysc.possible_cpus()
    with kernel.create_map("percpu_array", 4, 4, 2) as m:
        assert m.value_size_raw == 8 * ncpu  # rounded up to 8 per CPU
        assert m.lookup(u32(0)) == bytes(8 * ncpu)
        value = b"".join(u64(c + 1) for c in range(ncpu))
        m.update(u32(1), value)
        got = m.lookup(u32(1))
        assert [struct.unpack_from("<I", got, 8 * c)[0] for c in range(ncpu)] == list(
            range(1, ncpu + 1)
        )
        with pytest.raises(MapError) as ei:
            m.update(u32(0), u32(1))
        assert "all CPUs" in str(ei.value)


def test_queue_and_stack(kernel: KernelBackend) -> None:
    with kernel.create_map("queue", 0, 4, 2) as q:
        q.push(u32(1))
        q.push(u32(2))
        with pytest.raises(MapFullError):
            q.push(u32(3))
        q.push(u32(3), flags=BPF_EXIST)  # overwrite the oldest
        assert q.peek() == u32(2)
        assert [q.pop(), q.pop()] == [u32(2), u32(3)]
        with pytest.raises(MapKeyNotFoundError):
            q.pop()
    with kernel.create_map("stack", 0, 4, 4) as st:
        st.push(u32(1))
        st.push(u32(2))
        assert [st.pop(), st.pop()] == [u32(2), u32(1)]


def test_lpm_trie(kernel: KernelBackend) -> None:
    with kernel.create_map("lpm_trie", 8, 4, 8, flags=1) as m:  # BPF_F_NO_PREALLOC
        m.update(u32(8) + bytes([10, 0, 0, 0]), u32(8))
        m.update(u32(24) + bytes([10, 1, 2, 0]), u32(24))
        assert m.lookup(u32(32) + bytes([10, 1, 2, 3])) == u32(24)
        assert m.lookup(u32(32) + bytes([10, 9, 9, 9])) == u32(8)
        with pytest.raises(MapKeyNotFoundError):
            m.lookup(u32(32) + bytes([11, 0, 0, 0]))


def test_map_in_map(kernel: KernelBackend) -> None:
    with kernel.create_map("array", 4, 4, 1) as inner:
        with kernel.create_map("array_of_maps", 4, 4, 2, inner_map=inner) as outer:
            outer.update(u32(0), u32(inner.fd))
            # user space writes an fd and reads back the inner map's id
            assert outer.lookup(u32(0)) == u32(inner.info().id)


def test_freeze_blocks_user_writes(kernel: KernelBackend) -> None:
    with kernel.create_map("array", 4, 4, 1) as m:
        m.update(u32(0), u32(1))
        m.freeze()
        with pytest.raises(MapError) as ei:
            m.update(u32(0), u32(2))
        assert ei.value.errno == errno.EPERM
        assert m.lookup(u32(0)) == u32(1)


def test_wrong_sizes_never_reach_the_kernel(kernel: KernelBackend) -> None:
    with kernel.create_map("hash", 4, 8, 1, name="sized") as m:
        with pytest.raises(MapError) as ei:
            m.lookup(b"abc")
        assert ei.value.errno == errno.EINVAL
        assert "key is 3 bytes" in str(ei.value) and "'sized'" in str(ei.value)
        with pytest.raises(MapError):
            m.update(b"abcd", b"1234")
        with pytest.raises(MapError):
            m.next_key(b"toolong")


def test_create_map_errors(kernel: KernelBackend) -> None:
    with pytest.raises(KernelError) as ei:
        kernel.create_map("hash", 0, 8, 1)  # hash maps need a key
    assert ei.value.errno == errno.EINVAL and ei.value.op == "BPF_MAP_CREATE"
    with pytest.raises(NotSupportedError):
        kernel.create_map("no_such_type", 4, 4, 1)
    with pytest.raises(NotSupportedError):
        kernel.create_map(9999, 4, 4, 1)


def test_map_close(kernel: KernelBackend) -> None:
    m = kernel.create_map("array", 4, 4, 1)
    raw = m.fd
    os.fstat(raw)
    m.close()
    m.close()
    assert m.closed
    with pytest.raises(OSError):
        os.fstat(raw)
    with pytest.raises(MapError, match="closed") as ei:
        m.lookup(u32(0))
    assert ei.value.errno == errno.EBADF


def test_pin_and_get(kernel: KernelBackend, tmp_path) -> None:
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a private bpffs: {res.stderr.strip()}")
    try:
        with kernel.create_map("array", 4, 4, 1, name="pinned") as m:
            m.update(u32(0), u32(42))
            m.pin(mnt / "m")
            with sysc.obj_get(mnt / "m") as fd:
                assert sysc.map_lookup_elem(fd.fileno(), u32(0), 4) == u32(42)
                assert sysc.map_info(fd.fileno()).id == m.info().id
        with pytest.raises(KernelError) as ei:
            sysc.obj_get(mnt / "missing")
        assert ei.value.errno == errno.ENOENT
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _btf_u32_u64() -> bytes:
    """BTF with type 1 = ``unsigned int`` (32 bits) and type 2 = ``unsigned long``."""
    strings = b"\0unsigned int\0unsigned long\0"
    types = struct.pack("<IIII", 1, 1 << 24, 4, 32) + struct.pack("<IIII", 14, 1 << 24, 8, 64)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_map_with_btf_types(kernel: KernelBackend) -> None:
    btf, _ = sysc.btf_load(_btf_u32_u64())
    with btf:
        ids = {"btf_fd": btf.fileno(), "btf_key_type_id": 1, "btf_value_type_id": 2}
        with kernel.create_map("hash", 4, 8, 2, name="typed", **ids) as m:
            info = m.info()
            assert (info.btf_key_type_id, info.btf_value_type_id) == (1, 2)
            assert info.btf_id != 0
        # the kernel checks that the BTF types have the map's sizes
        with pytest.raises(KernelError) as ei:
            kernel.create_map("hash", 8, 8, 2, **ids)
        assert ei.value.errno == errno.EINVAL
