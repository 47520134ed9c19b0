"""BPF_MAP_TYPE_PERF_EVENT_ARRAY and a libbpf-style ``perf_buffer`` consumer.

In the kernel the array holds perf events (BPF_OUTPUT software events, one per CPU,
opened by the consumer) and ``bpf_perf_event_output`` appends a PERF_RECORD_SAMPLE to
the ring of the event at the chosen index.  The simulator's :class:`PerfEventBuffer`
plays the event and its mmap'ed ring, and keeps the ring as the kernel does: a byte
ring of ``page_cnt`` pages with a ``head`` (producer) and ``tail`` (consumer)
position, records written into it in the kernel's layout and parsed back out of it by
the consumer.  Why bytes rather than a queue of Python records: what a consumer sees
depends on what the ring held before (see padding below), and fullness depends on the
byte positions, so only the byte ring gives the kernel's answers.

- a sample is ``struct perf_event_header`` (u32 type 9, u16 misc
  PERF_RECORD_MISC_KERNEL, u16 size), ``u32 size`` and the raw data, padded so that
  ``4 + size`` is a multiple of 8: ``8 + round_up(4 + len, 8)`` bytes.  The padding is
  *skipped, not written* (Linux 6.18's ``perf_output_sample`` moves over it with
  ``__output_skip(handle, NULL, pad)``): once the ring has wrapped it holds whatever
  an older record left there (zeros only on the first lap, the pages start zeroed).
  The consumer sees the padded data, as libbpf's callbacks do;
- a record may cross the end of the ring (perf has no double mapping; the consumer
  copies the two parts together);
- the ring never fills completely: a record of ``n`` bytes fits when
  ``CIRC_SPACE(head, tail, size) = (tail - head - 1) mod size >= n``, so at most
  ``size - 1`` bytes are ever in use;
- when a sample does not fit, it is lost: the event counts it and the helper returns
  -ENOSPC; the next sample is preceded by a PERF_RECORD_LOST (type 2, 24 bytes: the
  event id and the count), and the space check covers both records together.  The
  consumer reports it as :class:`PerfLost`;
- the helper's index is ``flags & BPF_F_INDEX_MASK`` or the current CPU for
  BPF_F_CURRENT_CPU; out of range -> -E2BIG, empty slot -> -ENOENT, an event bound to
  another CPU -> -EOPNOTSUPP; other flag bits -> -EINVAL (the skb/xdp variants also
  take a context length in bits 32..51, see :mod:`netbpf.helpers.maps`).

The map itself (an fd array): key and value are u32, flags must be BPF_ANY (EINVAL),
index out of range -> E2BIG, an fd naming nothing or no perf event -> EBADF; lookup ->
ENOTSUPP; delete of an empty slot -> ENOENT.
"""

from __future__ import annotations

import errno as _errno
import itertools
import struct
from dataclasses import dataclass
from typing import Any

from netbpf.errors import NotSupportedError
from netbpf.maps.array import check_array_spec
from netbpf.maps.base import _Errno, round_up
from netbpf.maps.constants import (
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY_PROG,
    ENOTSUPP,
    PAGE_SIZE,
)
from netbpf.maps.fdmaps import FdArrayMap
from netbpf.maps.handles import Resolver
from netbpf.maps.spec import MapSpec
from netbpf.uapi import MapType

__all__ = ["PerfBuffer", "PerfEventArrayMap", "PerfEventBuffer", "PerfLost", "PerfSample"]

PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_RECORD_MISC_KERNEL = 1
LOST_RECORD_SIZE = 24

_HDR = struct.Struct("<IHH")  # struct perf_event_header: type, misc, size
_U32 = struct.Struct("<I")
_LOST = struct.Struct("<QQ")  # PERF_RECORD_LOST body: id, lost
#: perf event ids, as the kernel hands out one per event
_EVENT_IDS = itertools.count(1)


@dataclass(frozen=True)
class PerfSample:
    """One bpf_perf_event_output record: the CPU's buffer it arrived in, and the raw
    data with the kernel's padding (bytes the kernel leaves unwritten: zeros on the
    ring's first lap, older records' bytes after)."""

    cpu: int
    data: bytes


@dataclass(frozen=True)
class PerfLost:
    """``count`` samples were lost on ``cpu`` because its ring was full."""

    cpu: int
    count: int


class PerfEventBuffer:
    """A BPF_OUTPUT perf event bound to one CPU, with its ring of ``page_cnt`` pages.

    ``data`` is the ring's data area (zeroed, like fresh pages); ``head`` and ``tail``
    are the kernel's ``data_head`` / ``data_tail``: byte positions that only grow and
    are taken modulo the ring size.  :meth:`output` is the producer
    (``perf_output_begin`` + ``perf_output_sample``), :meth:`drain` the consumer
    (libbpf's ``perf_event_read_simple`` loop); they share nothing but the bytes and
    the two positions."""

    def __init__(self, cpu: int, page_cnt: int = 8) -> None:
        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise ValueError(f"page_cnt must be a power of 2, not {page_cnt}")
        self.cpu = cpu
        self.size = page_cnt * PAGE_SIZE
        self.mask = self.size - 1
        self.data = bytearray(self.size)
        self.head = 0
        self.tail = 0
        #: the event's id (what a PERF_RECORD_LOST names; the kernel's ids are global)
        self.id = next(_EVENT_IDS)
        #: samples lost since the last PERF_RECORD_LOST was written (the kernel's rb->lost)
        self.lost = 0
        self.total_lost = 0

    @property
    def used(self) -> int:
        """Bytes written and not yet consumed."""
        return self.head - self.tail

    @property
    def records(self) -> list[PerfSample | PerfLost]:
        """The records waiting in the ring, without consuming them."""
        return self._parse(self.tail, self.head)

    # -- the byte ring
    def _put(self, pos: int, b: bytes) -> None:
        o = pos & self.mask
        k = min(len(b), self.size - o)
        self.data[o : o + k] = b[:k]
        if k < len(b):
            self.data[0 : len(b) - k] = b[k:]

    def _get(self, pos: int, n: int) -> bytes:
        o = pos & self.mask
        if o + n <= self.size:
            return bytes(self.data[o : o + n])
        k = self.size - o
        return bytes(self.data[o:]) + bytes(self.data[0 : n - k])

    def output(self, data: bytes) -> int:
        """perf_event_output of a raw sample: 0 or -ENOSPC (lost)."""
        raw_size = round_up(4 + len(data), 8) - 4  # what the sample's u32 size says
        need = _HDR.size + 4 + raw_size
        if need > 0xFFFF:
            # struct perf_event_header's size is a u16; the kernel would truncate it
            # and write a record its consumer cannot parse -- not modelled
            raise NotSupportedError(
                "perf samples over 65535 bytes",
                f"a {len(data)}-byte raw sample does not fit perf_event_header.size",
            )
        extra = LOST_RECORD_SIZE if self.lost else 0
        if ((self.tail - self.head - 1) & self.mask) < need + extra:  # CIRC_SPACE
            self.lost += 1
            self.total_lost += 1
            return -_errno.ENOSPC
        pos = self.head
        if self.lost:
            self._put(pos, _HDR.pack(PERF_RECORD_LOST, 0, LOST_RECORD_SIZE))
            self._put(pos + _HDR.size, _LOST.pack(self.id, self.lost))
            pos += LOST_RECORD_SIZE
            self.lost = 0
        self._put(pos, _HDR.pack(PERF_RECORD_SAMPLE, PERF_RECORD_MISC_KERNEL, need))
        self._put(pos + _HDR.size, _U32.pack(raw_size) + data)
        # the raw_size - len(data) bytes of padding are skipped, not written
        self.head = pos + need
        return 0

    def _parse(self, tail: int, head: int) -> list[PerfSample | PerfLost]:
        out: list[PerfSample | PerfLost] = []
        while tail < head:
            rtype, _misc, rsize = _HDR.unpack(self._get(tail, _HDR.size))
            body = self._get(tail + _HDR.size, rsize - _HDR.size)
            if rtype == PERF_RECORD_SAMPLE:
                (n,) = _U32.unpack_from(body)
                out.append(PerfSample(self.cpu, body[4 : 4 + n]))
            elif rtype == PERF_RECORD_LOST:
                out.append(PerfLost(self.cpu, _LOST.unpack_from(body)[1]))
            tail += rsize
        return out

    def drain(self) -> list[PerfSample | PerfLost]:
        """Every record between tail and head; the tail moves to the head."""
        out = self._parse(self.tail, self.head)
        self.tail = self.head
        return out


class PerfEventArrayMap(FdArrayMap):
    """BPF_MAP_TYPE_PERF_EVENT_ARRAY."""

    map_type = MapType.PERF_EVENT_ARRAY

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if spec.value_size != 4:
            raise _Errno(_errno.EINVAL, "the value of a perf event array is a u32 (value_size 4)")
        if spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG):
            raise _Errno(_errno.EINVAL, "BPF_F_RDONLY_PROG/WRONLY_PROG not supported here")
        check_array_spec(spec)

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)

    def _resolve(self, value: Any) -> Any:
        ev = self._lookup_fd(value)
        if not isinstance(ev, PerfEventBuffer):
            raise _Errno(_errno.EBADF, "not a perf event")
        return ev

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        raise _Errno(ENOTSUPP)

    def output(self, index: int, cpu: int, data: bytes) -> int:
        """__bpf_perf_event_output after the flags were decoded: 0 or -errno."""
        if index >= self.max_entries:
            return -_errno.E2BIG
        ev = self.entries[index]
        if ev is None:
            return -_errno.ENOENT
        if ev.cpu != cpu:
            return -_errno.EOPNOTSUPP
        return ev.output(data)

    def open_buffer(self, *, page_cnt: int = 8, cpus: Any = None) -> PerfBuffer:
        """libbpf's ``perf_buffer__new``: one event per CPU, installed at index = CPU."""
        return PerfBuffer(self, page_cnt=page_cnt, cpus=cpus)


class PerfBuffer:
    """The consumer side: per-CPU :class:`PerfEventBuffer`\\ s installed in a perf event
    array, read with :meth:`poll` / :meth:`consume`."""

    def __init__(self, m: PerfEventArrayMap, *, page_cnt: int = 8, cpus: Any = None) -> None:
        self.map = m
        which = range(min(m.ncpus, m.max_entries)) if cpus is None else list(cpus)
        self.buffers: dict[int, PerfEventBuffer] = {}
        for cpu in which:
            ev = PerfEventBuffer(cpu, page_cnt)
            m.update(cpu, ev)
            self.buffers[cpu] = ev

    def consume(self) -> list[PerfSample | PerfLost]:
        """Every record of every CPU's ring, CPU by CPU (libbpf's perf_buffer__consume)."""
        out: list[PerfSample | PerfLost] = []
        for cpu in sorted(self.buffers):
            out.extend(self.buffers[cpu].drain())
        return out

    def poll(self, timeout: float | None = None) -> list[PerfSample | PerfLost]:
        """perf_buffer__poll; nothing arrives while Python waits, so this is consume."""
        return self.consume()

    def close(self) -> None:
        """Remove the events from the map (the kernel does when their fds close)."""
        for cpu, ev in self.buffers.items():
            if self.map.get_object(cpu) is ev:
                self.map.entries[cpu] = None
        self.buffers.clear()

    def __enter__(self) -> PerfBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
