"""Ring buffer and perf buffer consumers through the backend-neutral Collection API,
on the simulator and on the running kernel.

Our C (``tests/progs/consumer_ringbuf.c``, ``tests/progs/consumer_perf.c``) produces
records every way a program can -- ``bpf_ringbuf_output``, reserve + submit/discard
(also with two reservations open at once), records crossing the end of the ring,
``bpf_perf_event_output`` with BPF_F_CURRENT_CPU, an explicit index and the skb/xdp
context length, rings too small for the samples -- in XDP and tc programs run with
``test_run``.  Python reads them with ``coll.ringbuf(name)`` and
``coll.perf_buffer(name)``.

* Tests taking ``backend`` run twice (simulator, kernel) with the same assertions,
  written from the C source: records in order, byte for byte, helper results and
  lost counts.  The kernel runs with the process pinned to CPU 0, the simulator's
  CPU, so BPF_F_CURRENT_CPU picks the same event.
* ``test_*_same_as_kernel`` run one mixed sequence on both and compare every
  observation.
* Kernel details a queue of records would miss are pinned down on both backends:
  a perf ring is full one byte early (``test_perf_ring_full_at_data_size_minus_one``),
  perf padding is left unwritten (``test_perf_padding_is_not_cleared``), and a ring
  buffer record crossing the end sees the ring's start through the double mapping
  (``test_ringbuf_wrapped_record_sees_the_ring_start``).

The same file checks that a failed load unpins the maps it pinned (libbpf), on both
backends.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _collection_cases import on_cpu0
from _testrun import eth

from netbpf.errors import MapError, NetbpfError, ObjectError
from netbpf.maps import possible_cpus
from netbpf.maps.perf import PerfLost, PerfSample
from netbpf.obj.collection import load_collection_spec
from netbpf.obj.spec import MapReloc
from netbpf.sim import SimBackend

NCPUS = possible_cpus()
ETH_P_TEST = 0x88B5
RING = 4096  # consumer_ringbuf.c's ring size
U64 = (1 << 64) - 1


@pytest.fixture(params=["sim", pytest.param("kernel", marks=pytest.mark.kernel)])
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh simulator, or the kernel with this process pinned to CPU 0."""
    if request.param == "sim":
        with SimBackend() as sim:
            yield sim
        return
    kernel = request.getfixturevalue("kernel")
    with on_cpu0():
        yield kernel


def is_sim(backend: Any) -> bool:
    return isinstance(backend, SimBackend)


def pkt(op: int, param: int = 0, length: int = 64, fill: int = 0) -> bytes:
    """An Ethernet frame of ``length`` bytes: opcode and parameter at bytes 14, 15,
    then ``fill`` bytes."""
    body = bytes([op, param]) + bytes([fill]) * max(0, length - 16)
    return eth(ETH_P_TEST, body)[:length]


def rc_of(data_out: bytes) -> int:
    """The helper result the programs write into packet bytes 16..19."""
    return struct.unpack_from("<i", data_out, 16)[0]


def pad(raw: bytes) -> bytes:
    """A perf sample's raw data as the kernel stores it: 4-byte size + data padded
    to a multiple of 8."""
    return raw + bytes(-(len(raw) + 4) % 8)


def polling(fn: Callable[[], None]) -> threading.Thread:
    """Run ``fn`` (a blocking poll) in a daemon thread and give it time to block: the
    test then produces and checks whether the poll returned."""
    started = threading.Event()

    def body() -> None:
        started.set()
        fn()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    started.wait(30)
    t.join(0.2)  # from "started" to blocked in poll: a consume() and one syscall
    return t


# ------------------------------------------------------------------------------ ring buffer


class Rb:
    """consumer_ringbuf.c loaded on a backend, with the expected record of each op."""

    def __init__(self, coll: Any) -> None:
        self.coll = coll
        self.seq = 0
        self.reader = coll.ringbuf("events")

    def run(self, op: int, param: int = 0, length: int = 64) -> int:
        self.seq += 1
        res = self.coll.programs["rb_xdp"].test_run(pkt(op, param, length))
        assert res.retval == 2  # XDP_PASS
        return rc_of(res.data_out)

    def tc(self, length: int = 60) -> int:
        self.seq += 1
        return self.coll.programs["rb_tc"].test_run(pkt(9, 0, length)).retval

    # what the C writes (seq is the run's own number)
    @staticmethod
    def out_rec(seq: int, param: int) -> bytes:
        return bytes((seq * 7 + i) & 0xFF for i in range(1 + (param & 31)))

    @staticmethod
    def rec40(seq: int, length: int, op: int = 1) -> bytes:
        return struct.pack("<II", seq, length) + pkt(op, 0, length)[:14] + bytes([op]) * 18

    @staticmethod
    def rec_a(seq: int, length: int) -> bytes:
        return struct.pack("<IIQQ", seq, 0xA, 0x1111111111111111 * (seq & 0xF), length)

    @staticmethod
    def rec_b(seq: int) -> bytes:
        return struct.pack("<IIQ", seq, 0xB, ~seq & U64)

    @staticmethod
    def big(seq: int) -> bytes:
        return b"".join(struct.pack("<Q", seq << 32 | i) for i in range(125))

    @staticmethod
    def tc_rec(length: int) -> bytes:
        frame = pkt(9, 0, length)
        proto = int.from_bytes(frame[12:14], "little")  # skb->protocol, network order
        return struct.pack("<II", length, proto) + frame[:14] + bytes(2)


def load(backend: Any, compile_bpf: Any, source: str) -> Any:
    return backend.load(load_collection_spec(compile_bpf(source)))


def test_ringbuf_records_in_order(backend: Any, compile_bpf: Any) -> None:
    with load(backend, compile_bpf, "consumer_ringbuf.c") as coll:
        rb = Rb(coll)
        want = []
        for param in (0, 1, 6, 7, 8, 30, 31, 0x40 | 3, 0x80 | 12):  # lengths 1..32, flags
            assert rb.run(0, param) == 0
            want.append(rb.out_rec(rb.seq, param))
        assert rb.run(1, 0x40, 50) == 0  # submit, BPF_RB_NO_WAKEUP
        want.append(rb.rec40(rb.seq, 50))
        assert rb.run(2, 0, 51) == 0  # discarded: never seen
        assert rb.run(3, 0, 52) == 0  # A and B submitted: A first (reserved first)
        want += [rb.rec_a(rb.seq, 52), rb.rec_b(rb.seq)]
        assert rb.run(3, 1, 53) == 0  # A discarded after B was submitted
        want.append(rb.rec_b(rb.seq))
        assert rb.run(5) == -errno.EINVAL  # bad flags: nothing written
        assert rb.tc(60) == 0
        want.append(rb.tc_rec(60))
        reader = rb.reader
        assert reader.size == RING
        produced = reader.available
        assert produced == sum((len(r) + 8 + 7) // 8 * 8 for r in want) + 48 + 32  # + discards
        assert reader.consume() == want
        assert reader.consumer_pos == reader.producer_pos == produced
        assert reader.available == 0
        assert reader.consume() == [] and reader.poll(timeout=0) == []
        assert coll.ringbuf("events") is reader  # one reader per map while open
        # the program sees the consumer position Python wrote
        assert rb.run(0, 0) == 0
        assert coll.variables["cons_pos"].get() == produced
        assert coll.variables["prod_pos"].get() == produced + 16
        assert coll.variables["dropped"].get() == 1  # the -EINVAL


def test_ringbuf_full_ring_and_wrap_around(backend: Any, compile_bpf: Any) -> None:
    """1008-byte records in a 4096-byte ring: four fit, the fifth is refused; after
    consuming, records cross the end of the ring and still read whole."""
    with load(backend, compile_bpf, "consumer_ringbuf.c") as coll:
        rb = Rb(coll)
        rcs = [rb.run(4) for _ in range(5)]
        assert rcs == [0, 0, 0, 0, -1]
        assert rb.reader.consume() == [rb.big(s) for s in (1, 2, 3, 4)]
        want: list[bytes] = []
        for _ in range(9):  # positions 4032, 5040, ...: records straddle the end
            if rb.run(4) == 0:
                want.append(rb.big(rb.seq))
            if len(want) == 3:
                assert rb.reader.consume() == want
                want = []
        assert rb.reader.consume() == want
        assert rb.reader.consumer_pos == rb.reader.producer_pos == 13 * 1008


def test_ringbuf_poll_waits_for_a_wakeup(backend: Any, compile_bpf: Any) -> None:
    """poll(None) blocks until a producer wakes the consumer; a record committed with
    BPF_RB_NO_WAKEUP does not, BPF_RB_FORCE_WAKEUP does (and both are returned)."""
    with load(backend, compile_bpf, "consumer_ringbuf.c") as coll:
        rb = Rb(coll)
        got: list[list[bytes]] = []
        worker = polling(lambda: got.append(rb.reader.poll(None)))
        assert rb.run(0, 0x40 | 4) == 0  # NO_WAKEUP
        worker.join(0.3)
        assert worker.is_alive(), "poll returned without a wakeup"
        assert rb.run(0, 0x80 | 5) == 0  # FORCE_WAKEUP
        worker.join(30)
        assert not worker.is_alive(), "the forced wakeup did not end poll"
        assert got == [[rb.out_rec(1, 4), rb.out_rec(2, 5)]]
        # a plain commit of the record the consumer waits for wakes it too
        worker = polling(lambda: got.append(rb.reader.poll(30)))
        assert rb.run(1, 0, 44) == 0
        worker.join(30)
        assert not worker.is_alive()
        assert got[1] == [rb.rec40(3, 44)]


def test_ringbuf_wrapped_record_sees_the_ring_start(backend: Any, compile_bpf: Any) -> None:
    """A record crossing the ring's end is written through the kernel's second
    mapping of the data pages: bytes the program leaves alone show what the start of
    the ring holds (here: the first record, header included)."""
    with load(backend, compile_bpf, "consumer_ringbuf.c") as coll:
        rb = Rb(coll)
        assert [rb.run(4) for _ in range(4)] == [0, 0, 0, 0]  # positions 0..4032
        assert len(rb.reader.consume()) == 4
        assert rb.run(6, 0, 80) == 0  # header at 4032, data 4040..5040 (wraps at 56)
        (rec,) = rb.reader.consume()
        assert rec[:8] == struct.pack("<Q", 5)
        assert rec[992:] == struct.pack("<Q", 0xFEEDFACE00000000 | 80)
        assert rec[8:56] == bytes(48)  # ring offsets 4048..4095: never written
        # ring offsets 0..935: record 1's header (len 1000) and its first u64s
        assert rec[56:60] == struct.pack("<I", 1000)
        assert rec[64:992] == rb.big(1)[:928]


# ------------------------------------------------------------------------------ perf buffer


class Perf:
    """consumer_perf.c loaded on a backend, with the expected sample of each op."""

    def __init__(self, coll: Any) -> None:
        self.coll = coll
        self.seq = 0
        #: seq -> length of the sample before the kernel's padding
        self.raw_len: dict[int, int] = {}

    def run(self, prog: str, op: int, param: int = 0, length: int = 64, fill: int = 0) -> int:
        self.seq += 1
        res = self.coll.programs[prog].test_run(pkt(op, param, length, fill))
        assert res.retval == (2 if prog == "perf_xdp" else 0)
        self.raw_len[self.seq] = 8 + {0: 1 + (param & 31), 1: param, 5: length}.get(op, 0)
        return rc_of(res.data_out)

    def unpadded(self, data: bytes) -> tuple[int, str]:
        """A sample without its padding (which the kernel does not clear: it holds
        whatever the ring held there), and its padded length."""
        (seq,) = struct.unpack_from("<I", data)
        return len(data), data[: self.raw_len[seq]].hex()

    def hdr(self, op: int, param: int, prog: str) -> bytes:
        return struct.pack("<IBBH", self.seq, op, param, prog == "perf_tc")

    def sample(self, prog: str, op: int, param: int = 0, length: int = 64) -> bytes:
        """The raw sample (padded) the run just made."""
        h = self.hdr(op, param, prog)
        if op == 0:
            tail = bytes((self.seq + 3 * i) & 0xFF for i in range(32))
            return pad(h + tail[: 1 + (param & 31)])
        if op == 1:
            return pad(h + pkt(op, param, length)[:param])
        if op == 5:
            return pad(h + pkt(op, param, length))
        return pad(h)


@pytest.mark.parametrize("prog", ["perf_xdp", "perf_tc"])
def test_perf_samples_and_helper_results(backend: Any, compile_bpf: Any, prog: str) -> None:
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("samples")
        assert pb.cpus == tuple(range(NCPUS)) and pb.page_cnt == 8
        want = []
        for op, param in [(0, 0), (0, 3), (0, 31), (1, 0), (1, 13), (1, 64), (2, 0)]:
            assert p.run(prog, op, param) == 0
            want.append((0, p.sample(prog, op, param)))
        other_cpu = -errno.EOPNOTSUPP if NCPUS > 1 else -errno.E2BIG
        assert p.run(prog, 2, 1) == other_cpu  # CPU 1's event, running on CPU 0
        assert p.run(prog, 2, 200) == -errno.E2BIG  # beyond the map
        assert p.run(prog, 3) == -errno.EINVAL  # a flag bit above the context length
        assert p.run(prog, 4) == -errno.EFAULT  # context longer than the packet
        assert p.run(prog, 6) == -errno.ENOENT  # no event in that map
        assert pb.consume() == want
        assert pb.consume() == [] and pb.poll(timeout=0) == []
        assert pb.lost == 0 and pb.lost_by_cpu == {}
        assert coll.variables["failures"].get() == 5


def test_perf_lost_samples(backend: Any, compile_bpf: Any) -> None:
    """A one-page ring holds four 920-byte records (header, size, 8 + 900 bytes);
    the next four are lost (-ENOSPC).  After a consume, a PERF_RECORD_LOST with the
    count comes before the next sample (whose record crosses the ring's end)."""
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("lossy", page_cnt=1)
        want = []
        rcs = []
        for _ in range(8):
            rcs.append(p.run("perf_xdp", 5, 0, 900))
            if rcs[-1] == 0:
                want.append(PerfSample(0, p.sample("perf_xdp", 5, 0, 900)))
        assert rcs == [0] * 4 + [-errno.ENOSPC] * 4
        assert pb.consume_records() == want
        assert pb.lost == 0
        assert p.run("perf_tc", 5, 0, 900) == 0
        last = PerfSample(0, p.sample("perf_tc", 5, 0, 900))
        assert pb.consume_records() == [PerfLost(0, 4), last]
        assert pb.lost == 4 and pb.lost_by_cpu == {0: 4}
        for _ in range(6):  # more laps around the ring, through consume()
            assert p.run("perf_xdp", 5, 0, 900) == 0
            assert pb.consume() == [(0, p.sample("perf_xdp", 5, 0, 900))]
        assert coll.variables["failures"].get() == 4


def test_perf_ring_full_at_data_size_minus_one(backend: Any, compile_bpf: Any) -> None:
    """The kernel's perf ring never fills completely (CIRC_SPACE leaves one byte):
    four 1024-byte records do not fit a 4096-byte ring, the fourth is lost."""
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("lossy", page_cnt=1)
        # 8 (header) + 4 (size) + 8 + 1004 bytes = 1024
        assert [p.run("perf_xdp", 5, 0, 1004) for _ in range(4)] == [0, 0, 0, -errno.ENOSPC]
        assert len(pb.consume()) == 3


def test_perf_padding_is_not_cleared(backend: Any, compile_bpf: Any) -> None:
    """The kernel skips over a sample's padding without writing it (Linux 6.18's
    perf_output_sample): once the ring has wrapped, the padding shows older bytes."""
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("lossy", page_cnt=1)
        for fill in (0xAA, 0xAA, 0, 0, 0):  # 920-byte records: 0..1840 of 0xaa, then
            assert p.run("perf_xdp", 5, 0, 900, fill) == 0  # ..4600, wrapping to 504
            assert len(pb.consume()) == 1
        assert p.run("perf_xdp", 5, 0, 21) == 0  # 8 + 21 bytes raw: 7 bytes of padding
        ((cpu, data),) = pb.consume()
        assert cpu == 0
        assert data[:29] == p.hdr(5, 0, "perf_xdp") + pkt(5, 0, 21)
        assert data[29:] == b"\xaa" * 7  # what the first record left at ring offset 545


def test_perf_poll_wakes_per_sample(backend: Any, compile_bpf: Any) -> None:
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("samples")
        got: list[list[tuple[int, bytes]]] = []
        worker = polling(lambda: got.append(pb.poll(None)))  # inherits CPU 0 affinity
        assert p.run("perf_xdp", 0, 2) == 0
        worker.join(30)
        assert not worker.is_alive(), "a sample did not wake poll"
        assert got == [[(0, p.sample("perf_xdp", 0, 2))]]


def test_perf_buffer_lifetime_and_cpus(backend: Any, compile_bpf: Any) -> None:
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        assert p.run("perf_xdp", 0) == -errno.ENOENT  # no reader yet: no events
        pb = coll.perf_buffer("samples")
        assert coll.perf_buffer("samples") is pb
        with pytest.raises(MapError) as ei:
            coll.perf_buffer("samples", page_cnt=2)
        assert ei.value.errno == errno.EBUSY
        assert p.run("perf_xdp", 0) == 0
        pb.close()
        pb.close()
        assert pb.closed
        with pytest.raises(MapError) as ei:
            pb.consume()
        assert ei.value.errno == errno.EBADF
        assert p.run("perf_xdp", 0) == -errno.ENOENT  # closing took the events out
        if NCPUS > 1:
            only1 = coll.perf_buffer("samples", cpus=[1], page_cnt=2)
            assert only1 is not pb and only1.cpus == (1,)
            assert p.run("perf_xdp", 0) == -errno.ENOENT  # nothing at CPU 0's index
            assert p.run("perf_xdp", 2, 1) == -errno.EOPNOTSUPP
            only1.close()
        with pytest.raises(MapError) as ei:
            coll.perf_buffer("samples", cpus=[NCPUS + 64])
        assert ei.value.errno == errno.E2BIG
        with pytest.raises(MapError) as ei:
            coll.perf_buffer("samples", page_cnt=3)
        assert ei.value.errno == errno.EINVAL
        kept = coll.perf_buffer("lossy")
    assert kept.closed  # the collection closed its readers


def test_consumer_api_errors(backend: Any, compile_bpf: Any) -> None:
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        with pytest.raises(MapError, match="is a PERF_EVENT_ARRAY, not a RINGBUF") as ei:
            coll.ringbuf("samples")
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapError, match="no map 'nope'") as ei:
            coll.perf_buffer("nope")
        assert ei.value.errno == errno.ENOENT
        with pytest.raises(MapError, match=r"is a \w+, not a PERF_EVENT_ARRAY"):
            coll.perf_buffer(".bss")
    with load(backend, compile_bpf, "consumer_ringbuf.c") as coll:
        reader = coll.ringbuf("events")
        reader.close()
        with pytest.raises(MapError) as ei:
            reader.consume()
        assert ei.value.errno == errno.EBADF
        again = coll.ringbuf("events")  # a closed reader is replaced
        assert again is not reader and not again.closed
        # a reader keeps its own reference: it outlives the collection's handle
        own = again
        Rb(coll).run(0, 1)
        coll.maps["events"].close()
        assert own.consume() == [Rb.out_rec(1, 1)]
        own.close()
        with pytest.raises(MapError, match="handle is closed") as ei:
            coll.ringbuf("events")  # a new reader needs the (closed) handle
        assert ei.value.errno == errno.EBADF
    assert own.closed
    with pytest.raises(MapError) as ei:
        coll.ringbuf("events")
    assert ei.value.errno == errno.EBADF


# ------------------------------------------------------------------------------ differential


def observe_ringbuf(backend: Any, compile_bpf: Any) -> list[Any]:
    obs: list[Any] = []
    with load(backend, compile_bpf, "consumer_ringbuf.c") as coll:
        rb = Rb(coll)
        for i in range(90):
            op = (0, 1, 2, 3, 4, 0, 6, 5)[i % 8]  # 6: unwritten bytes show the old ring
            obs.append(["rc", op, rb.run(op, (i * 37) & 0xFF, 20 + (i * 13) % 200)])
            if i % 9 == 8:
                obs.append(["tc", rb.tc(30 + i)])
            if i % 16 == 15 or i % 23 == 0:  # irregular: the ring fills up between
                obs.append(
                    [
                        "records",
                        [r.hex() for r in rb.reader.consume()],
                        rb.reader.consumer_pos,
                        rb.reader.producer_pos,
                    ]
                )
        obs.append(["variables", {n: v.get() for n, v in coll.variables.items()}])
    return obs


def observe_perf(backend: Any, compile_bpf: Any) -> list[Any]:
    obs: list[Any] = []
    with load(backend, compile_bpf, "consumer_perf.c") as coll:
        p = Perf(coll)
        pb = coll.perf_buffer("samples", page_cnt=2)
        lossy = coll.perf_buffer("lossy", page_cnt=1)
        for i in range(120):
            prog = ("perf_xdp", "perf_tc")[i % 2]
            op = (0, 1, 5, 2, 0, 5, 3, 5, 4, 1, 6, 5)[i % 12]
            param = (i * 29) & 0x3F if op != 2 else (0, 1, 0, 9)[i % 4]
            obs.append(["rc", prog, op, param, p.run(prog, op, param, 60 + (i * 47) % 1400)])
            if i % 7 == 6:
                recs = pb.consume_records()
                obs.append(["samples", [[type(r).__name__, *vars_of(p, r)] for r in recs]])
            if i % 19 == 18:  # seldom: the one-page ring overflows in between
                recs = lossy.consume_records()
                obs.append(["lossy", [[type(r).__name__, *vars_of(p, r)] for r in recs]])
        obs.append(["lost", pb.lost, lossy.lost, lossy.lost_by_cpu])
        obs.append(["variables", {n: v.get() for n, v in coll.variables.items()}])
    return obs


def vars_of(p: Perf, r: PerfSample | PerfLost) -> list[Any]:
    if isinstance(r, PerfSample):  # padding included: the older bytes the kernel left
        return [r.cpu, *p.unpadded(r.data), r.data.hex()]
    return [r.cpu, r.count]


def first_difference(sim: list[Any], kern: list[Any]) -> str:
    for i, (a, b) in enumerate(zip(sim, kern)):
        if a != b:
            return f"step {i}:\n  sim:    {a}\n  kernel: {b}"
    return f"lengths differ: sim {len(sim)}, kernel {len(kern)}"


def ringbuf_exercised(obs: list[Any]) -> bool:
    rcs = [o[2] for o in obs if o[0] == "rc"]
    wrapped = any(o[0] == "records" and o[3] > 2 * RING for o in obs)
    return -1 in rcs and -errno.EINVAL in rcs and 0 in rcs and wrapped


def perf_exercised(obs: list[Any]) -> bool:
    rcs = {o[4] for o in obs if o[0] == "rc"}
    lost = obs[-2]
    return lost[2] > 0 and {0, -errno.ENOSPC, -errno.EINVAL, -errno.ENOENT} <= rcs


@pytest.mark.parametrize(
    ("observe", "exercised"),
    [(observe_ringbuf, ringbuf_exercised), (observe_perf, perf_exercised)],
    ids=["ringbuf", "perf"],
)
def test_same_as_kernel(
    kernel: Any,
    compile_bpf: Any,
    observe: Callable[..., list[Any]],
    exercised: Callable[[list[Any]], bool],
) -> None:
    with on_cpu0():
        want = observe(kernel, compile_bpf)
    with SimBackend() as sim:
        got = observe(sim, compile_bpf)
    assert got == want, first_difference(got, want)
    assert exercised(want)  # drops, errors and wrap-around all happened


# ------------------------------------------------------------------------------ pinning

PINNED2 = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} old_pin SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} new_pin SEC(".maps");
SEC("xdp")
int touch(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&old_pin, &k);
	if (v)
		*v += 1;
	bpf_map_update_elem(&new_pin, &k, &k, BPF_ANY);
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def pin_dir(backend: Any) -> Iterator[Path]:
    """A directory of the simulator's pin namespace, or a private bpffs mount."""
    if is_sim(backend):
        d = Path(backend.pins.root) / "netbpf-consumers"
        backend.pins.mkdir(str(d))
        yield d
        return
    d = Path(tempfile.mkdtemp(prefix="netbpf-bpffs-"))
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], capture_output=True, text=True)
    if res.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a bpffs: {res.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


def pinned(backend: Any, path: Path) -> bool:
    return str(path) in backend.pins if is_sim(backend) else os.path.exists(path)


def test_failed_load_unpins_what_it_pinned(backend: Any, compile_bpf: Any, pin_dir: Path) -> None:
    spec = load_collection_spec(compile_bpf(PINNED2))
    with backend.load(spec, pin_path=pin_dir) as first:
        first.programs["touch"].test_run(bytes(64))
    # new_pin must not be there when the broken load starts: only old_pin is
    if is_sim(backend):
        backend.pins.unpin(str(pin_dir / "new_pin"))
    else:
        os.unlink(pin_dir / "new_pin")
    assert pinned(backend, pin_dir / "old_pin")
    broken = spec.copy()
    prog = broken.programs["touch"]
    broken.programs["touch"] = replace(
        prog, map_relocs=(*prog.map_relocs, MapReloc(slot=prog.map_relocs[0].slot, map="gone"))
    )
    with pytest.raises(ObjectError, match="map 'gone'"):
        backend.load(broken, pin_path=pin_dir)
    assert not pinned(backend, pin_dir / "new_pin")  # pinned by the failed load: undone
    assert pinned(backend, pin_dir / "old_pin")  # pinned before: kept, with its contents
    with backend.load(spec, pin_path=pin_dir) as again:
        assert again.typed_map("old_pin")[0] == 1
        assert pinned(backend, pin_dir / "new_pin")


def test_failed_load_refusing_a_program_unpins(
    backend: Any, compile_bpf: Any, pin_dir: Path
) -> None:
    """The same when the failure comes later, from loading the program itself."""
    spec = load_collection_spec(compile_bpf(PINNED2)).copy()
    prog = spec.programs["touch"]
    bad = list(prog.insns)
    bad[-1] = replace(bad[-1], opcode=0x05, off=100)  # exit -> a jump out of the program
    spec.programs["touch"] = replace(prog, insns=tuple(bad))
    with pytest.raises(NetbpfError):
        backend.load(spec, pin_path=pin_dir)
    assert not pinned(backend, pin_dir / "new_pin")
    assert not pinned(backend, pin_dir / "old_pin")
