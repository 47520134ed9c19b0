"""BPF_MAP_TYPE_PERF_EVENT_ARRAY and a libbpf-style ``perf_buffer`` consumer.

In the kernel the array holds perf events (BPF_OUTPUT software events, one per CPU,
opened by the consumer) and ``bpf_perf_event_output`` appends a PERF_RECORD_SAMPLE to
the ring of the event at the chosen index.  The simulator's :class:`PerfEventBuffer`
plays the event and its mmap'ed ring:

- a sample takes ``8 (header) + round_up(4 + size, 8)`` bytes of the ring (the raw
  data is zero-padded so the record stays 8-byte aligned; the consumer sees the padded
  data, as libbpf's callbacks do);
- when a sample does not fit, it is lost: the event counts it and the helper returns
  -ENOSPC; the next sample that fits is preceded by a PERF_RECORD_LOST (24 bytes)
  carrying the count, which the consumer reports as :class:`PerfLost`;
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
from collections import deque
from dataclasses import dataclass
from typing import Any

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
LOST_RECORD_SIZE = 24


@dataclass(frozen=True)
class PerfSample:
    """One bpf_perf_event_output record: the CPU's buffer it arrived in, and the raw
    data (zero-padded as the kernel stores it)."""

    cpu: int
    data: bytes


@dataclass(frozen=True)
class PerfLost:
    """``count`` samples were lost on ``cpu`` because its ring was full."""

    cpu: int
    count: int


class PerfEventBuffer:
    """A BPF_OUTPUT perf event bound to one CPU, with its ring of ``page_cnt`` pages."""

    def __init__(self, cpu: int, page_cnt: int = 8) -> None:
        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise ValueError(f"page_cnt must be a power of 2, not {page_cnt}")
        self.cpu = cpu
        self.size = page_cnt * PAGE_SIZE
        self.records: deque[PerfSample | PerfLost] = deque()
        self.used = 0
        self.lost = 0
        self.total_lost = 0

    def output(self, data: bytes) -> int:
        """perf_event_output of a raw sample: 0 or -ENOSPC (lost)."""
        need = 8 + round_up(4 + len(data), 8)
        extra = LOST_RECORD_SIZE if self.lost else 0
        if self.used + need + extra > self.size:
            self.lost += 1
            self.total_lost += 1
            return -_errno.ENOSPC
        if self.lost:
            self.records.append(PerfLost(self.cpu, self.lost))
            self.used += LOST_RECORD_SIZE
            self.lost = 0
        padded = data + bytes(need - 12 - len(data))
        self.records.append(PerfSample(self.cpu, padded))
        self.used += need
        return 0

    def drain(self) -> list[PerfSample | PerfLost]:
        out = list(self.records)
        self.records.clear()
        self.used = 0
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
