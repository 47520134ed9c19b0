"""The byte-level ring models of the simulator, without the kernel: the ring buffer's
double mapping (:class:`netbpf.maps.ringbuf.RingBufRegion`) and the perf event ring
(:class:`netbpf.maps.perf.PerfEventBuffer`).

What the kernel does with the same sequences is checked in
``tests/test_consumers_both.py`` (both backends); here the expected bytes are worked
out by hand from the layouts, so a wrong offset or a copy that goes stale shows up
even where the kernel cannot be used."""

from __future__ import annotations

import errno
import struct

import pytest

from netbpf.errors import NotSupportedError
from netbpf.helpers import DEFAULT_REGISTRY
from netbpf.helpers import maps as hm
from netbpf.maps import MapSpec, MapTable, create_map
from netbpf.maps.perf import PerfEventBuffer, PerfLost, PerfSample
from netbpf.maps.ringbuf import RingBufMap
from netbpf.uapi import MapType, ProgramType
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, MemoryFault, Region

RING = 4096


class Env:
    """One ring buffer map in an address space, called through the helpers."""

    def __init__(self) -> None:
        self.table = MapTable(AddressSpace())
        self.mem = self.table.mem
        self.scratch = Region("scratch", bytearray(4096))
        self.mem.map(self.scratch)
        self.rb = create_map(MapSpec("rb", MapType.RINGBUF, 0, 0, RING))
        assert isinstance(self.rb, RingBufMap)
        self.ptr = self.table.add(self.rb)
        self.env = RunEnv(self.mem, helpers=DEFAULT_REGISTRY.for_prog_type(ProgramType.XDP))

    def reserve(self, size: int) -> int:
        return hm.ringbuf_reserve(self.env, self.ptr, size, 0, 0, 0)

    def submit(self, rec: int) -> None:
        hm.ringbuf_submit(self.env, rec, 0, 0, 0, 0)

    def output(self, data: bytes) -> int:
        self.scratch.buf[: len(data)] = data
        r = hm.ringbuf_output(self.env, self.ptr, self.scratch.base, len(data), 0, 0)
        return r - (1 << 64) if r >= 1 << 63 else r


# -- ring buffer: the double mapping -----------------------------------------------------------


def test_ringbuf_region_offsets_are_modulo_the_ring() -> None:
    e = Env()
    region = e.rb.region
    assert len(e.rb.data) == RING and (region.lo, region.hi) == (0, 2 * RING)
    base = region.base
    # a u64 store crossing the end: 4 bytes at the end, 4 at the start
    e.mem.store(base + RING - 4, 8, 0x1122334455667788)
    assert e.rb.data[RING - 4 :] == bytes.fromhex("88776655")
    assert e.rb.data[:4] == bytes.fromhex("44332211")
    assert e.mem.load(base + RING - 4, 8) == 0x1122334455667788
    # the second mapping is the first: a store there is at the start at once
    e.mem.store(base + RING + 8, 4, 0xDEADBEEF)
    assert e.mem.load(base + 8, 4) == 0xDEADBEEF
    assert e.rb.data[8:12] == struct.pack("<I", 0xDEADBEEF)
    e.mem.write(base + RING - 2, b"wxyz")
    assert (
        e.mem.read(base + RING - 2, 4)
        == b"wxyz"
        == e.mem.read(base + 2 * RING - 2, 2) + (e.mem.read(base, 2))
    )
    # a read as long as the ring itself, started in the middle, sees every byte once
    whole = e.mem.read(base + 100, RING)
    assert whole == bytes(e.rb.data[100:]) + bytes(e.rb.data[:100])
    # beyond the doubled view: a fault, not a third lap
    with pytest.raises(MemoryFault, match="accessible range"):
        e.mem.load(base + 2 * RING - 4, 8)
    with pytest.raises(MemoryFault):
        e.mem.write(base + 2 * RING, b"x")


def test_ringbuf_wrapped_record_is_written_in_place() -> None:
    """A record reserved across the end: the program's bytes past the end are at the
    ring's start before the commit (nothing is folded back), the bytes it leaves
    alone show the start of the ring, and the consumer reads what the program saw."""
    e = Env()
    first = e.reserve(1000)  # header 0, data 8..1008
    e.mem.write(first, bytes(range(256)) * 3 + bytes(232))
    e.submit(first)
    for _ in range(3):  # records at 1008, 2016, 3024: producer at 4032
        e.submit(e.reserve(1000))
    assert len(e.rb.consume()) == 4 and e.rb.producer_pos == 4032
    rec = e.reserve(1000)  # header at 4032, data 4040..5040: 56 bytes before the end
    assert rec == e.rb.region.base + 4040
    e.mem.store(rec + 100, 8, 0x0102030405060708)  # ring offset 44
    assert e.rb.data[44:52] == bytes.fromhex("0807060504030201")
    # through the record: the first record's header (len 1000, committed) and data
    assert e.mem.load(rec + 56, 4) == 1000
    assert e.mem.read(rec + 64, 36) == bytes(range(36))
    e.submit(rec)
    (got,) = e.rb.consume()
    assert len(got) == 1000
    assert got[56:60] == struct.pack("<I", 1000)
    assert got[64:100] == bytes(range(36))
    assert got[100:108] == bytes.fromhex("0807060504030201")
    assert got[108:164] == bytes(range(44, 100))


def test_ringbuf_output_wraps_into_the_start() -> None:
    e = Env()
    for _ in range(4):
        assert e.output(bytes(1000)) == 0
    e.rb.consume()
    payload = bytes((i * 7) & 0xFF for i in range(300))
    assert e.output(payload) == 0  # data 4040..4340: 56 bytes, then 244 at the start
    assert e.rb.data[4040:] == payload[:56]
    assert e.rb.data[:244] == payload[56:]
    assert e.rb.consume() == [payload]


# -- perf event ring ---------------------------------------------------------------------------


def test_perf_ring_keeps_one_byte_free() -> None:
    """CIRC_SPACE: 255 minimal records (16 bytes: header, size, 8 bytes of padded
    data) leave 16 bytes, yet a 256th does not fit."""
    ev = PerfEventBuffer(0, page_cnt=1)
    assert [ev.output(b"") for _ in range(255)] == [0] * 255
    assert ev.used == 4080
    assert ev.output(b"") == -errno.ENOSPC
    assert ev.lost == 1
    ev.drain()
    # the pending lost record counts: 24 + 16 bytes must fit together
    assert ev.output(b"") == 0  # lost record 4080..4104 (wrapping), sample at 8..24
    assert ev.used == 40
    # the sample's 4 padding bytes (20..24) keep the end of the lap-one header at
    # 16..24: misc 1, size 16
    assert ev.drain() == [PerfLost(0, 1), PerfSample(0, struct.pack("<HH", 1, 16))]


def test_perf_records_are_the_kernel_layout() -> None:
    ev = PerfEventBuffer(3, page_cnt=1)
    assert ev.output(b"abc") == 0  # 4 + 3 -> 8: header size 16, raw size 4
    assert ev.data[:16] == struct.pack("<IHHI", 9, 1, 16, 4) + b"abc\x00"
    assert ev.records == [PerfSample(3, b"abc\x00")]  # a peek, not a consume
    ev.drain()
    rcs = [ev.output(bytes(1000)) for _ in range(5)]  # 1016-byte records from 16
    assert rcs == [0, 0, 0, 0, -errno.ENOSPC] and ev.head == 4080
    ev.drain()
    assert ev.output(b"x") == 0
    # PERF_RECORD_LOST at 4080: header, event id, then the count wraps to 0..8
    assert ev.data[4080:4088] == struct.pack("<IHH", 2, 0, 24)
    assert ev.data[4088:] == struct.pack("<Q", ev.id)
    assert ev.data[:8] == struct.pack("<Q", 1)
    assert ev.data[8:21] == struct.pack("<IHHI", 9, 1, 16, 4) + b"x"
    # its padding (21..24) keeps the lap-one header at 16: misc 1, size 1016
    stale = struct.pack("<HH", 1, 1016)[1:]
    assert ev.drain() == [PerfLost(3, 1), PerfSample(3, b"x" + stale)]


def test_perf_record_crossing_the_end() -> None:
    ev = PerfEventBuffer(0, page_cnt=1)
    for _ in range(4):
        assert ev.output(bytes(1000)) == 0  # 1016 bytes each: head 4064
        ev.drain()
    data = bytes(range(200))
    assert ev.output(data) == 0  # header 4064..4072, size 4072..4076, data to 4096, then 0
    assert ev.data[4076:] == data[:20]
    assert ev.data[:180] == data[20:]
    assert ev.drain() == [PerfSample(0, data + bytes(4))]  # 4 + 200 -> 208


def test_perf_padding_keeps_older_bytes() -> None:
    """The kernel skips the padding: zeros on the first lap (fresh pages), an older
    record's bytes once the ring has wrapped."""
    ev = PerfEventBuffer(0, page_cnt=1)
    assert ev.output(b"\xaa" * 2036) == 0  # 2048-byte record over 0..2048
    assert ev.output(b"\xbb" * 2020) == 0  # 2032 bytes, 2048..4080
    ev.drain()
    assert ev.output(b"\xcc") == 0  # 4080..4096, padding 4093..4096 never written
    assert ev.drain() == [PerfSample(0, b"\xcc" + bytes(3))]
    assert ev.output(b"\xdd") == 0  # 0..16 on lap two: padding at 13..16 was 0xaa
    assert ev.drain() == [PerfSample(0, b"\xdd" + b"\xaa" * 3)]


def test_perf_sample_too_large_for_the_header() -> None:
    ev = PerfEventBuffer(0, page_cnt=32)
    assert ev.output(bytes(65516)) == 0  # a 65528-byte record: the largest that fits
    assert ev.drain() == [PerfSample(0, bytes(65516))]
    with pytest.raises(NotSupportedError, match="65535"):
        ev.output(bytes(65517))  # 65536 bytes
