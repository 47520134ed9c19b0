"""The kernel backend's ring buffer and perf buffer readers (netbpf.kernel.ringbuf,
netbpf.kernel.perf): the kernel facts they are built on, their file descriptors and
argument checks.  What they read is compared with the simulator in
tests/test_consumers_both.py; everything here needs the running kernel (skipped with
the probe's reason otherwise).  Runs pin the process to CPU 0."""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator
from typing import Any

import pytest
from _collection_cases import on_cpu0
from test_consumers_both import Perf, Rb

from netbpf.errors import KernelError, MapError
from netbpf.kernel.perf import KernelPerfBuffer, online_cpus, perf_event_open_bpf_output
from netbpf.kernel.ringbuf import KernelRingBuffer
from netbpf.obj.collection import load_collection_spec

PAGE = mmap.PAGESIZE


@pytest.fixture
def kern(kernel: Any) -> Iterator[Any]:
    with on_cpu0():
        yield kernel


def open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def test_ringbuf_mmap_layout(kern: Any) -> None:
    """What the reader relies on: the consumer page is the only writable one, and the
    data pages follow the producer page twice in a row."""
    with kern.create_map("ringbuf", 0, 0, 2 * PAGE) as m:
        with pytest.raises(PermissionError):
            mmap.mmap(m.fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=PAGE)
        with pytest.raises(PermissionError):  # writable, but more than the consumer page
            mmap.mmap(m.fd, 2 * PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        with KernelRingBuffer(m.fd, name="rb") as reader:
            assert reader.size == 2 * PAGE
            assert (reader.consumer_pos, reader.producer_pos, reader.available) == (0, 0, 0)
            assert reader.consume() == [] and reader.poll(0) == []
            assert os.readlink(f"/proc/self/fd/{reader.fileno()}") == "anon_inode:bpf-map"


def test_readers_share_the_kernels_positions(kern: Any, compile_bpf: Any) -> None:
    """The consumer position lives in the map, not in a reader: two readers of one
    ring see each other's progress, and the program sees both."""
    spec = load_collection_spec(compile_bpf("consumer_ringbuf.c"))
    with kern.load(spec) as coll:
        rb = Rb(coll)
        other = KernelRingBuffer(coll.maps["events"].fd, name="other")
        try:
            assert rb.run(0, 5) == 0 and rb.run(0, 6) == 0
            assert other.consume() == [rb.out_rec(1, 5), rb.out_rec(2, 6)]
            assert rb.reader.consumer_pos == other.consumer_pos == 32
            assert rb.reader.consume() == []
            assert rb.run(0, 7) == 0
            assert coll.variables["cons_pos"].get() == 32
            assert rb.reader.consume() == [rb.out_rec(3, 7)]
            assert other.available == 0
        finally:
            other.close()


def test_readers_release_their_descriptors(kern: Any, compile_bpf: Any) -> None:
    before = open_fds()
    rspec = load_collection_spec(compile_bpf("consumer_ringbuf.c"))
    pspec = load_collection_spec(compile_bpf("consumer_perf.c"))
    with kern.load(rspec) as rcoll, kern.load(pspec) as pcoll:
        reader = rcoll.ringbuf("events")
        pb = pcoll.perf_buffer("samples", page_cnt=1)
        fds = pb.fds()
        assert sorted(fds) == [c for c in online_cpus() if c < pcoll.maps["samples"].max_entries]
        for fd in fds.values():
            assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]"
        reader.close()
        reader.close()
        assert reader.closed and repr(reader).endswith("closed>")
        with pytest.raises(MapError) as ei:
            reader.poll(0)
        assert ei.value.errno == errno.EBADF
    assert pb.closed
    assert open_fds() == before


def test_reader_refuses_other_maps(kern: Any) -> None:
    with kern.create_map("hash", 4, 4, 4) as h, kern.create_map("ringbuf", 0, 0, PAGE) as r:
        with pytest.raises(MapError, match="not BPF_MAP_TYPE_RINGBUF") as ei:
            KernelRingBuffer(h.fd, name="h")
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapError, match="not BPF_MAP_TYPE_PERF_EVENT_ARRAY"):
            KernelPerfBuffer(r.fd, name="r")
    with kern.create_map("perf_event_array", 4, 4, 1) as pa:
        with pytest.raises(MapError, match="power of 2") as ei:
            KernelPerfBuffer(pa.fd, page_cnt=6)
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapError, match="beyond the map's 1 entries") as ei:
            KernelPerfBuffer(pa.fd, cpus=[1])
        assert ei.value.errno == errno.E2BIG
        before = open_fds()
        with KernelPerfBuffer(pa.fd, cpus=[0], page_cnt=1) as pb:
            assert pb.cpus == (0,) and pb.lost == 0
        assert open_fds() == before


def test_perf_event_open_reports_the_cpu(kern: Any) -> None:
    with pytest.raises(KernelError, match="on CPU 4096") as ei:
        perf_event_open_bpf_output(4096)
    assert ei.value.op == "perf_event_open"
    assert ei.value.errno in (errno.EINVAL, errno.ENODEV, errno.ENXIO)
    with perf_event_open_bpf_output(0) as fd:
        assert os.readlink(f"/proc/self/fd/{fd.fileno()}") == "anon_inode:[perf_event]"


def test_perf_records_across_the_ring_end(kern: Any, compile_bpf: Any) -> None:
    """Samples whose records wrap past the end of a one-page ring, read whole, lap
    after lap (different sizes, so the wrap point moves)."""
    spec = load_collection_spec(compile_bpf("consumer_perf.c"))
    with kern.load(spec) as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("lossy", page_cnt=1)
        total = 0
        for n in range(40):
            length = 100 + (n * 389) % 1700
            assert p.run("perf_tc", 5, 0, length) == 0
            ((cpu, data),) = pb.consume()
            want = p.sample("perf_tc", 5, 0, length)
            assert cpu == 0 and len(data) == len(want)
            assert data[: p.raw_len[p.seq]] == want[: p.raw_len[p.seq]]  # padding: stale
            total += 8 + 4 + len(data)
        assert total > 8 * PAGE  # many laps
        assert pb.lost == 0
