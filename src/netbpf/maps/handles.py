"""Opaque handles for what some maps store: network devices, sockets, AF_XDP sockets,
programs -- and the :class:`Resolver` that turns user-space integers into them.

The kernel's maps hold kernel objects that user space names by file descriptor or
ifindex.  Devices are :class:`netbpf.hooks.context.NetDevice` (what test_run uses).  The simulator's maps hold Python objects instead; the simulated network stack
(a later issue) will supply richer devices and sockets, which only need the attributes
used here.  Until then these small classes stand in for them, with exactly the
properties the kernel's update checks look at (a socket's family, type, protocol, state,
whether it is bound and SO_REUSEPORT), so the storage semantics of DEVMAP, CPUMAP,
XSKMAP, SOCKMAP, SOCKHASH and REUSEPORT_SOCKARRAY can already be exercised.

Programs stored in PROG_ARRAY and DEVMAP/CPUMAP values are any object with
``prog_type`` (:class:`~netbpf.uapi.ProgramType`) and, optionally, ``id``,
``expected_attach_type`` and ``executable`` (the :class:`~netbpf.vm.engine.Executable`
a tail call jumps to; the SimBackend's programs provide it).
"""

from __future__ import annotations

import itertools
import socket as _socket
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netbpf.hooks.context import NetDevice, default_devices
from netbpf.maps.base import next_object_id

__all__ = [
    "AF_XDP",
    "NetDevice",
    "Resolver",
    "Socket",
    "XdpSocket",
    "object_id",
]

AF_XDP = 44

_cookies = itertools.count(1)
_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def object_id(obj: Any) -> int:
    """The kernel-style id of a program or map: its ``id`` attribute, else one assigned
    on first use and kept for the object's life."""
    oid = getattr(obj, "id", None)
    if isinstance(oid, int) and oid > 0:
        return oid
    try:
        got = _ids.get(obj)
        if got is None:
            got = _ids[obj] = next_object_id()
        return got
    except TypeError:  # not weak-referenceable
        return next_object_id()


@dataclass(eq=False)
class Socket:
    """A socket as the socket maps see it.

    ``state`` is the TCP state name for stream sockets (``"listen"``, ``"established"``,
    ``"close"``...); ``bound`` says whether a datagram socket is bound (hashed);
    ``reuseport`` whether SO_REUSEPORT is set.  ``cookie`` is the socket cookie
    (``SO_COOKIE``) that user-space lookups of SOCKMAP/SOCKHASH/REUSEPORT_SOCKARRAY
    return."""

    family: int = _socket.AF_INET
    type: int = _socket.SOCK_STREAM
    protocol: int = 0
    state: str = "close"
    bound: bool = False
    reuseport: bool = False
    cookie: int = field(default_factory=lambda: next(_cookies))
    #: set while the socket sits in a REUSEPORT_SOCKARRAY (the kernel's sk_user_data)
    reuseport_array: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.protocol == 0 and self.family in (_socket.AF_INET, _socket.AF_INET6):
            self.protocol = (
                _socket.IPPROTO_TCP if self.type == _socket.SOCK_STREAM else _socket.IPPROTO_UDP
            )

    @property
    def is_tcp(self) -> bool:
        return (
            self.family in (_socket.AF_INET, _socket.AF_INET6)
            and self.type == _socket.SOCK_STREAM
            and self.protocol == _socket.IPPROTO_TCP
        )

    @property
    def is_udp(self) -> bool:
        return (
            self.family in (_socket.AF_INET, _socket.AF_INET6)
            and self.type == _socket.SOCK_DGRAM
            and self.protocol == _socket.IPPROTO_UDP
        )

    @property
    def hashed(self) -> bool:
        """In the lookup tables: a listening TCP socket, a bound UDP socket."""
        if self.is_tcp:
            return self.state == "listen"
        return self.bound


@dataclass(eq=False)
class XdpSocket:
    """An AF_XDP socket as an XSKMAP entry names it (``queue_id`` is what a program
    reads through the ``struct bpf_xdp_sock`` pointer a lookup returns)."""

    queue_id: int = 0
    ifindex: int = 0
    family: int = AF_XDP


class Resolver:
    """Turns the integers user space passes to maps into objects: file descriptors (of
    programs, maps, sockets, perf buffers) and ifindexes.

    The SimBackend (and later the simulated stack) owns one and registers objects in it;
    ``devices`` defaults to the simulator's default devices (only ``lo``, ifindex 1).
    A map created without a resolver gets a fresh default one (no file descriptors).
    Python callers can always pass the objects themselves instead of integers."""

    def __init__(self, devices: Mapping[int, NetDevice] | None = None) -> None:
        self._fds: dict[int, Any] = {}
        self._next_fd = 3
        self.devices: dict[int, NetDevice] = dict(default_devices() if devices is None else devices)

    def add_fd(self, obj: Any) -> int:
        """Install ``obj`` and return the fd-like number naming it."""
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = obj
        return fd

    def close_fd(self, fd: int) -> None:
        self._fds.pop(fd, None)

    def fd(self, fd: int) -> Any | None:
        """The object behind ``fd``, None if the number names nothing (EBADF)."""
        return self._fds.get(fd)

    def add_device(self, dev: NetDevice) -> None:
        self.devices[dev.ifindex] = dev

    def netdev(self, ifindex: int) -> NetDevice | None:
        return self.devices.get(ifindex)
