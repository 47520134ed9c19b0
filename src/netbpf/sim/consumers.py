"""Ring buffer and perf buffer consumers of simulated maps, behind the API the kernel
backend's readers have (:class:`netbpf.collection.RingBufferReader`,
:class:`netbpf.collection.PerfBufferReader`), so that user code and tests read events
the same way on both backends (``coll.ringbuf("events").consume()``).

They are thin adapters: the simulated maps already keep the kernel's record layout
and positions (:class:`netbpf.maps.RingBufMap` with its ``consume()``, and
:class:`netbpf.maps.perf.PerfBuffer` -- per-CPU :class:`~netbpf.maps.perf.
PerfEventBuffer` events installed in a :class:`~netbpf.maps.perf.PerfEventArrayMap`).
What the adapters add is the kernel reader's shape: ``bytes`` records, ``(cpu,
data)`` samples with lost counts gathered in ``lost``, the same argument checks and
errors, and ``poll(timeout)`` that waits.

Waiting: a simulated program only runs when some thread calls ``test_run``, so
``poll`` sleeps in short steps until the map signals a wakeup (a ring buffer's
:attr:`~netbpf.maps.RingBufMap.wakeups` counter moves, which follows the kernel's
wakeup rules including BPF_RB_NO_WAKEUP / BPF_RB_FORCE_WAKEUP; a perf event wakes on
every sample, ``wakeup_events = 1``) or the timeout passes.
"""

from __future__ import annotations

import errno as _errno
import time
from collections.abc import Callable, Iterable
from typing import Any

from netbpf.backend import Map
from netbpf.errors import MapError
from netbpf.maps.perf import PerfBuffer, PerfEventArrayMap, PerfLost, PerfSample
from netbpf.maps.ringbuf import RingBufMap
from netbpf.sim.maps import SimMapHandle

__all__ = ["SimConsumers", "SimPerfBufferReader", "SimRingBufferReader"]

#: how often a waiting poll looks at the map again (seconds)
_POLL_STEP = 0.002


def _wait(ready: Callable[[], bool], timeout: float | None) -> None:
    """Sleep until ``ready()`` or ``timeout`` seconds (None: for ever) have passed."""
    deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
    while not ready():
        if deadline is None:
            time.sleep(_POLL_STEP)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(_POLL_STEP, left))


class SimRingBufferReader:
    """The consumer of a simulated ring buffer (see the module docstring)."""

    def __init__(self, m: RingBufMap, *, name: str = "") -> None:
        if not isinstance(m, RingBufMap):
            raise MapError(
                f"ringbuf {name!r}: a {type(m).__name__} is not a ring buffer",
                errno=_errno.EINVAL,
            )
        self.name = name
        self._map: RingBufMap | None = m
        self._size = m.size

    def _live(self, op: str) -> RingBufMap:
        if self._map is None:
            raise MapError(f"ringbuf {self.name!r}: {op}: the reader is closed", errno=_errno.EBADF)
        return self._map

    @property
    def size(self) -> int:
        return self._size

    @property
    def consumer_pos(self) -> int:
        return self._live("consumer_pos").consumer_pos

    @property
    def producer_pos(self) -> int:
        return self._live("producer_pos").producer_pos

    @property
    def available(self) -> int:
        m = self._live("available")
        return m.producer_pos - m.consumer_pos

    @property
    def closed(self) -> bool:
        return self._map is None

    def consume(self) -> list[bytes]:
        return [bytes(r) for r in self._live("consume").consume()]

    def poll(self, timeout: float | None = None) -> list[bytes]:
        m = self._live("poll")
        seen = m.wakeups  # before consuming: a commit in between must end the wait
        out = self.consume()
        if out or timeout == 0:
            return out
        _wait(lambda: m.wakeups != seen, timeout)
        return self.consume()

    def close(self) -> None:
        self._map = None

    def __enter__(self) -> SimRingBufferReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<SimRingBufferReader {self.name!r} size={self._size}{state}>"


class SimPerfBufferReader:
    """The consumer of a simulated perf event array (see the module docstring)."""

    def __init__(
        self,
        m: PerfEventArrayMap,
        *,
        name: str = "",
        page_cnt: int = 8,
        cpus: Iterable[int] | None = None,
    ) -> None:
        if not isinstance(m, PerfEventArrayMap):
            raise MapError(
                f"perf_buffer {name!r}: a {type(m).__name__} is not a perf event array",
                errno=_errno.EINVAL,
            )
        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise MapError(
                f"perf_buffer {name!r}: page_cnt must be a power of 2, not {page_cnt}",
                errno=_errno.EINVAL,
            )
        which = None
        if cpus is not None:
            which = sorted(set(cpus))
            for c in which:
                if c >= m.max_entries:
                    raise MapError(
                        f"perf_buffer {name!r}: CPU {c} is beyond the map's "
                        f"{m.max_entries} entries",
                        errno=_errno.E2BIG,
                    )
                if not 0 <= c < m.ncpus:
                    raise MapError(
                        f"perf_buffer {name!r}: CPU {c} is not online", errno=_errno.ENODEV
                    )
        self.name = name
        self.page_cnt = page_cnt
        self.lost = 0
        self._lost_by_cpu: dict[int, int] = {}
        self._buf: PerfBuffer | None = m.open_buffer(page_cnt=page_cnt, cpus=which)
        self._cpus = tuple(sorted(self._buf.buffers))

    @property
    def cpus(self) -> tuple[int, ...]:
        return self._cpus

    @property
    def lost_by_cpu(self) -> dict[int, int]:
        return dict(self._lost_by_cpu)

    @property
    def closed(self) -> bool:
        return self._buf is None

    def _live(self, op: str) -> PerfBuffer:
        if self._buf is None:
            raise MapError(
                f"perf_buffer {self.name!r}: {op}: the reader is closed", errno=_errno.EBADF
            )
        return self._buf

    def consume_records(self) -> list[PerfSample | PerfLost]:
        out = self._live("consume").consume()
        for rec in out:
            if isinstance(rec, PerfLost):
                self.lost += rec.count
                self._lost_by_cpu[rec.cpu] = self._lost_by_cpu.get(rec.cpu, 0) + rec.count
        return out

    def consume(self) -> list[tuple[int, bytes]]:
        return [(r.cpu, r.data) for r in self.consume_records() if isinstance(r, PerfSample)]

    def poll(self, timeout: float | None = None) -> list[tuple[int, bytes]]:
        buf = self._live("poll")
        out = self.consume()
        if out or timeout == 0:
            return out
        _wait(lambda: any(ev.records for ev in buf.buffers.values()), timeout)
        return self.consume()

    def close(self) -> None:
        """Take the events out of the map (idempotent)."""
        buf, self._buf = self._buf, None
        if buf is not None:
            buf.close()

    def __enter__(self) -> SimPerfBufferReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"cpus={list(self._cpus)}"
        return f"<SimPerfBufferReader {self.name!r} page_cnt={self.page_cnt} {state}>"


class SimConsumers:
    """Opens the simulator's readers for a collection
    (:class:`netbpf.collection.ConsumerFactory`)."""

    def ringbuf(self, m: Map, name: str) -> SimRingBufferReader:
        return SimRingBufferReader(_sim_map(m, "ringbuf"), name=name)

    def perf_buffer(
        self, m: Map, name: str, *, page_cnt: int, cpus: Iterable[int] | None
    ) -> SimPerfBufferReader:
        return SimPerfBufferReader(
            _sim_map(m, "perf_buffer"), name=name, page_cnt=page_cnt, cpus=cpus
        )


def _sim_map(h: Map, what: str) -> Any:
    """The simulated map behind a collection's handle."""
    if not isinstance(h, SimMapHandle):
        raise MapError(f"{what}: {h!r} is not a simulator map", errno=_errno.EINVAL)
    if h.closed:
        raise MapError(f"{what} of map {h.name!r}: the map handle is closed", errno=_errno.EBADF)
    return h.map
