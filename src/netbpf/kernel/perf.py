"""Reading a kernel BPF_MAP_TYPE_PERF_EVENT_ARRAY from Python: libbpf's
``perf_buffer`` with ``perf_event_open`` through ctypes, ``mmap`` and ``epoll``.

How the kernel side works (include/uapi/linux/perf_event.h, kernel/events/):

* a program's ``bpf_perf_event_output(ctx, &map, flags, data, size)`` writes into the
  perf event stored at the map's index ``flags & BPF_F_INDEX_MASK`` (or, with
  BPF_F_CURRENT_CPU, the running CPU's index); the event must be a
  PERF_TYPE_SOFTWARE / PERF_COUNT_SW_BPF_OUTPUT event bound to that CPU
  (``perf_event_open(attr, pid=-1, cpu)``), else the helper fails with -EOPNOTSUPP;
* user space creates one such event per CPU with ``sample_type = PERF_SAMPLE_RAW``,
  ``sample_period = 1`` and ``wakeup_events = 1`` (a wakeup per sample), stores the
  event fds into the map (``map[cpu] = fd``) and mmaps each event's ring: one
  metadata page (``struct perf_event_mmap_page``: ``data_head`` at byte 1024,
  ``data_tail`` at 1032, ``data_offset``/``data_size`` at 1040/1048) followed by
  2^n data pages.  A writable mapping makes the kernel respect ``data_tail``: a
  record that does not fit is dropped and counted instead of overwriting;
* records are ``struct perf_event_header`` (u32 type, u16 misc, u16 size) plus a
  body, 8-byte aligned, possibly wrapping around the end of the data area.
  PERF_RECORD_SAMPLE (9) carries ``u32 size`` and the raw bytes (the kernel pads
  them so that 4 + size is a multiple of 8); PERF_RECORD_LOST (2) carries
  ``u64 id, u64 lost`` and is written before the next sample that fits after
  samples were dropped.

Free space follows the kernel's ``CIRC_SPACE``: at most ``data_size - 1`` bytes are
ever in use, so a ring is "full" one byte before it is completely used.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import functools
import mmap
import os
import platform
import select
import struct
from collections.abc import Iterable
from ctypes import c_int32, c_uint16, c_uint32, c_uint64

from netbpf.errors import KernelError, KernelUnavailable, MapError
from netbpf.kernel import syscall as _sys
from netbpf.maps.perf import PERF_RECORD_LOST, PERF_RECORD_SAMPLE, PerfLost, PerfSample
from netbpf.uapi import MapType

__all__ = ["KernelPerfBuffer", "online_cpus", "perf_event_open_bpf_output"]

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_EVENT_IOC_DISABLE = 0x2401  # _IO('$', 1)

# struct perf_event_mmap_page offsets of the ring's control words
_DATA_HEAD = 1024
_DATA_TAIL = 1032
_DATA_OFFSET = 1040
_DATA_SIZE = 1048

_HDR = struct.Struct("<IHH")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_LOST = struct.Struct("<QQ")

# __NR_perf_event_open per machine (the machines syscall.py knows bpf() for)
_PERF_EVENT_OPEN: dict[str, int] = {
    "x86_64": 298,
    "amd64": 298,
    "aarch64": 241,
    "arm64": 241,
    "riscv64": 241,
    "loongarch64": 241,
    "ppc64le": 319,
}


class _PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to ``sig_data`` (PERF_ATTR_SIZE_VER7, 128 bytes); the
    bit-field word after ``read_format`` is one u64 (``flags``)."""

    _fields_ = [
        ("type", c_uint32),
        ("size", c_uint32),
        ("config", c_uint64),
        ("sample_period", c_uint64),
        ("sample_type", c_uint64),
        ("read_format", c_uint64),
        ("flags", c_uint64),
        ("wakeup_events", c_uint32),
        ("bp_type", c_uint32),
        ("config1", c_uint64),
        ("config2", c_uint64),
        ("branch_sample_type", c_uint64),
        ("sample_regs_user", c_uint64),
        ("sample_stack_user", c_uint32),
        ("clockid", c_int32),
        ("sample_regs_intr", c_uint64),
        ("aux_watermark", c_uint32),
        ("sample_max_stack", c_uint16),
        ("reserved_2", c_uint16),
        ("aux_sample_size", c_uint32),
        ("reserved_3", c_uint32),
        ("sig_data", c_uint64),
    ]


@functools.cache
def _syscall() -> ctypes._CFuncPtr:
    # A CDLL of our own: the argument types differ from bpf()'s.
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.restype = ctypes.c_long
    fn.argtypes = [
        ctypes.c_long,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_ulong,
    ]
    return fn


def _nr() -> int:
    machine = platform.machine().lower()
    try:
        return _PERF_EVENT_OPEN[machine]
    except KeyError:
        raise KernelUnavailable(
            f"no perf_event_open() syscall number known for machine {machine!r}"
        ) from None


def perf_event_open_bpf_output(cpu: int, *, wakeup_events: int = 1) -> _sys.Fd:
    """A PERF_COUNT_SW_BPF_OUTPUT event on ``cpu`` (any task), enabled, close-on-exec:
    what ``bpf_perf_event_output`` writes into.  KernelError with the errno on
    failure (EACCES/EPERM: perf_event_paranoid or missing CAP_PERFMON, ENODEV: an
    offline CPU)."""
    attr = _PerfEventAttr(
        type=PERF_TYPE_SOFTWARE,
        size=ctypes.sizeof(_PerfEventAttr),
        config=PERF_COUNT_SW_BPF_OUTPUT,
        sample_period=1,
        sample_type=PERF_SAMPLE_RAW,
        wakeup_events=wakeup_events,
    )
    fn, nr = _syscall(), _nr()
    while True:
        ctypes.set_errno(0)
        ret = fn(nr, ctypes.addressof(attr), -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
        if ret >= 0:
            return _sys.Fd(ret)
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise KernelError(
                "perf_event_open",
                err,
                detail=f"BPF_OUTPUT software event on CPU {cpu}: {os.strerror(err)}",
            )


def _parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return cpus


def online_cpus() -> list[int]:
    """The CPUs a per-CPU perf event can be opened on (/sys/devices/system/cpu/online)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return _parse_cpulist(f.read())
    except (OSError, ValueError):
        return list(range(_sys.possible_cpus()))


class _CpuRing:
    """One CPU's event and its mmap'ed ring."""

    def __init__(self, cpu: int, fd: _sys.Fd, page_cnt: int) -> None:
        self.cpu = cpu
        self.fd = fd
        page = mmap.PAGESIZE
        self.mm = mmap.mmap(
            fd.fileno(), (1 + page_cnt) * page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        # the kernel says where the data is (Linux >= 4.1); older: right after the page
        self.base = _U64.unpack_from(self.mm, _DATA_OFFSET)[0] or page
        self.size = _U64.unpack_from(self.mm, _DATA_SIZE)[0] or page_cnt * page

    def _read(self, pos: int, n: int) -> bytes:
        o = pos & (self.size - 1)
        b = self.base
        if o + n <= self.size:
            return self.mm[b + o : b + o + n]
        k = self.size - o
        return self.mm[b + o : b + self.size] + self.mm[b : b + n - k]

    def drain(self) -> list[PerfSample | PerfLost]:
        mm = self.mm
        head = _U64.unpack_from(mm, _DATA_HEAD)[0]
        tail = _U64.unpack_from(mm, _DATA_TAIL)[0]
        out: list[PerfSample | PerfLost] = []
        while tail < head:
            rtype, _misc, rsize = _HDR.unpack(self._read(tail, _HDR.size))
            if rsize < _HDR.size or rsize > self.size:
                raise MapError(
                    f"perf ring of CPU {self.cpu}: corrupt record (type {rtype}, size "
                    f"{rsize}) at position {tail}",
                    errno=_errno.EIO,
                )
            body = self._read(tail + _HDR.size, rsize - _HDR.size)
            if rtype == PERF_RECORD_SAMPLE:
                (n,) = _U32.unpack_from(body, 0)
                out.append(PerfSample(self.cpu, body[4 : 4 + n]))
            elif rtype == PERF_RECORD_LOST:
                _id, lost = _LOST.unpack_from(body, 0)
                out.append(PerfLost(self.cpu, lost))
            # other record types (throttling) carry nothing for a BPF consumer
            tail += rsize
        _U64.pack_into(mm, _DATA_TAIL, tail)
        return out

    def close(self) -> None:
        self.mm.close()
        self.fd.close()


class KernelPerfBuffer:
    """The consumer of one kernel perf event array (see the module docstring).

    ``map_fd`` is any fd of the map (duplicated: the reader keeps its own).  Opening
    installs a BPF_OUTPUT event for each CPU in ``cpus`` (default: every online CPU
    below the map's max_entries) at index = CPU.  Use
    :meth:`netbpf.collection.Collection.perf_buffer` rather than constructing one."""

    def __init__(
        self,
        map_fd: int,
        *,
        name: str = "",
        page_cnt: int = 8,
        cpus: Iterable[int] | None = None,
        wakeup_events: int = 1,
    ) -> None:
        self.name = name
        self.page_cnt = page_cnt
        self.lost = 0
        self._lost_by_cpu: dict[int, int] = {}
        self._rings: dict[int, _CpuRing] = {}
        self._map_fd = -1
        self._epoll: select.epoll | None = None
        self._closed = False
        if page_cnt <= 0 or page_cnt & (page_cnt - 1):
            raise MapError(
                f"perf_buffer {name!r}: page_cnt must be a power of 2, not {page_cnt}",
                errno=_errno.EINVAL,
            )
        info = _sys.map_info(map_fd)
        if info.type != int(MapType.PERF_EVENT_ARRAY):
            raise MapError(
                f"perf_buffer {name!r}: map type {info.type} is not BPF_MAP_TYPE_PERF_EVENT_ARRAY",
                errno=_errno.EINVAL,
            )
        online = online_cpus()
        if cpus is None:
            which = [c for c in online if c < info.max_entries]
        else:
            which = sorted(set(cpus))
            for c in which:
                if c >= info.max_entries:
                    raise MapError(
                        f"perf_buffer {name!r}: CPU {c} is beyond the map's "
                        f"{info.max_entries} entries",
                        errno=_errno.E2BIG,
                    )
                if c not in online:
                    raise MapError(
                        f"perf_buffer {name!r}: CPU {c} is not online", errno=_errno.ENODEV
                    )
        self._map_fd = os.dup(map_fd)
        try:
            self._epoll = select.epoll()
            for cpu in which:
                self._open_cpu(cpu, page_cnt, wakeup_events)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, cpu: int, page_cnt: int, wakeup_events: int) -> None:
        fd = perf_event_open_bpf_output(cpu, wakeup_events=wakeup_events)
        try:
            ring = _CpuRing(cpu, fd, page_cnt)
        except OSError as e:
            fd.close()
            raise KernelError(
                "mmap",
                e.errno or _errno.EINVAL,
                detail=f"perf ring of CPU {cpu} ({page_cnt} pages): {e.strerror}",
            ) from None
        self._rings[cpu] = ring
        fcntl.ioctl(fd.fileno(), PERF_EVENT_IOC_ENABLE, 0)
        try:
            _sys.map_update_elem(self._map_fd, _U32.pack(cpu), _U32.pack(fd.fileno()))
        except KernelError as e:
            raise MapError(
                f"perf_buffer {self.name!r}: storing CPU {cpu}'s event in the map: "
                f"{_sys.errno_name(e.errno)}",
                errno=e.errno,
            ) from None
        assert self._epoll is not None
        self._epoll.register(fd.fileno(), select.EPOLLIN)

    # -- state ---------------------------------------------------------------------------
    @property
    def cpus(self) -> tuple[int, ...]:
        """The CPUs with an event in the map, ascending."""
        return tuple(sorted(self._rings))

    @property
    def lost_by_cpu(self) -> dict[int, int]:
        """Samples reported lost so far, per CPU (only CPUs that lost any)."""
        return dict(self._lost_by_cpu)

    @property
    def closed(self) -> bool:
        return self._closed

    def fds(self) -> dict[int, int]:
        """CPU -> the perf event's fd (what the map holds)."""
        return {cpu: r.fd.fileno() for cpu, r in sorted(self._rings.items())}

    # -- reading -------------------------------------------------------------------------
    def _live(self, op: str) -> None:
        if self._closed:
            raise MapError(
                f"perf_buffer {self.name!r}: {op}: the reader is closed", errno=_errno.EBADF
            )

    def consume_records(self) -> list[PerfSample | PerfLost]:
        """Every record of every CPU's ring, CPU by CPU, in ring order."""
        self._live("consume")
        out: list[PerfSample | PerfLost] = []
        for cpu in sorted(self._rings):
            for rec in self._rings[cpu].drain():
                if isinstance(rec, PerfLost):
                    self.lost += rec.count
                    self._lost_by_cpu[cpu] = self._lost_by_cpu.get(cpu, 0) + rec.count
                out.append(rec)
        return out

    def consume(self) -> list[tuple[int, bytes]]:
        """Every sample as ``(cpu, data)``; lost-sample records go to :attr:`lost`."""
        return [(r.cpu, r.data) for r in self.consume_records() if isinstance(r, PerfSample)]

    def poll(self, timeout: float | None = None) -> list[tuple[int, bytes]]:
        """The samples there now, or else those arriving within ``timeout`` seconds
        (None: wait for ever) -- epoll_wait on the events."""
        out = self.consume()
        if out or timeout == 0:
            return out
        assert self._epoll is not None
        self._epoll.poll(-1 if timeout is None else max(0.0, float(timeout)))
        return self.consume()

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Take the events out of the map, disable and close them (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for cpu, ring in sorted(self._rings.items()):
            if self._map_fd >= 0:
                try:
                    _sys.map_delete_elem(self._map_fd, _U32.pack(cpu))
                except KernelError:
                    pass  # already replaced or deleted by someone else
            ring.close()
        self._rings.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        fd, self._map_fd = self._map_fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> KernelPerfBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"cpus={list(self.cpus)}"
        return f"<KernelPerfBuffer {self.name!r} page_cnt={self.page_cnt} {state}>"
