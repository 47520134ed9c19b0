"""Maps of network objects: DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP, SOCKMAP, SOCKHASH,
REUSEPORT_SOCKARRAY -- their *storage* semantics.

What the redirects do with these entries belongs to the simulated stack (a later
issue); here the maps store :mod:`netbpf.maps.handles` objects (or anything with the
same attributes), check them as the kernel's update paths do, and answer user-space
lookups as the kernel does.  Every errno below was measured on the running kernel
(tests/test_maps_kernel.py):

- **DEVMAP** (u32 key; value ``u32 ifindex`` or ``struct bpf_devmap_val {u32 ifindex;
  int prog_fd}``): flags > BPF_EXIST -> EINVAL, index out of range -> E2BIG,
  BPF_NOEXIST -> EEXIST; ifindex 0 clears the slot (with a prog fd > 0 -> EINVAL); an
  unknown ifindex or a program that is not XDP/BPF_XDP_DEVMAP -> EINVAL.  Lookup returns
  ifindex and the program's *id*; delete never fails in range (EINVAL out of range).
  The kernel adds BPF_F_RDONLY_PROG to the map's flags: programs read values only.
- **DEVMAP_HASH**: any u32 key, bucket ``key & (n_buckets - 1)``, newest first;
  ifindex 0 -> EINVAL; BPF_NOEXIST on a present key -> EEXIST; BPF_EXIST is *not*
  checked; full -> E2BIG; delete of an absent key -> ENOENT.
- **CPUMAP** (value ``u32 qsize`` or ``struct bpf_cpumap_val {u32 qsize; int
  prog_fd}``): at most NR_CPUS entries (E2BIG); index out of range -> E2BIG,
  BPF_NOEXIST -> EEXIST, qsize > 16384 -> EOVERFLOW, a CPU that is not possible ->
  ENODEV, qsize 0 clears, a program that is not XDP/BPF_XDP_CPUMAP -> ENOMEM.
- **XSKMAP** (u32 -> AF_XDP socket): index out of range -> E2BIG, not an AF_XDP socket
  -> EOPNOTSUPP, BPF_NOEXIST/BPF_EXIST as usual; user-space lookup -> EOPNOTSUPP; delete
  never fails in range.  A program's lookup returns a pointer to the socket's
  ``struct bpf_xdp_sock`` (its ``queue_id``).
- **SOCKMAP / SOCKHASH** (value: socket fd as u32 or u64): the socket must suit
  (TCP listening or established, bound UDP, connected unix stream, unix dgram) else
  EOPNOTSUPP; an fd above S32_MAX -> EINVAL; lookup returns the socket cookie (u64) and
  needs value_size 8 (ENOSPC otherwise); SOCKMAP delete of an empty slot -> EINVAL.
- **REUSEPORT_SOCKARRAY**: a bound/listening TCP or UDP inet socket with SO_REUSEPORT
  (otherwise ENOTSUPP for the wrong kind of socket, EINVAL when not hashed or not
  reuseport), at most one array slot per socket (EBUSY); lookup returns the cookie
  (value_size 8, else ENOSPC); delete of an empty slot -> ENOENT, out of range -> E2BIG.

Program-side lookups of socket maps return kernel socket pointers and need the
simulated socket layer: they raise NotSupportedError until it exists.
"""

from __future__ import annotations

import errno as _errno
import socket as _socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netbpf.errors import NotSupportedError
from netbpf.hooks.context import NetDevice
from netbpf.maps._htab import HTab, roundup_pow_of_two
from netbpf.maps.array import array_next_key, check_array_spec
from netbpf.maps.base import Map, ValueStore, _Errno
from netbpf.maps.constants import (
    BPF_EXIST,
    BPF_F_NUMA_NODE,
    BPF_F_RDONLY,
    BPF_F_RDONLY_PROG,
    BPF_F_WRONLY,
    BPF_NOEXIST,
    CPUMAP_QSIZE_MAX,
    ENOTSUPP,
    NR_CPUS,
    S32_MAX,
    U32_MAX,
)
from netbpf.maps.handles import AF_XDP, Resolver, Socket, object_id
from netbpf.maps.jhash import jhash
from netbpf.maps.spec import MapSpec
from netbpf.uapi import AttachType, MapType, ProgramType
from netbpf.vm.memory import AddressSpace

__all__ = [
    "CpuMap",
    "CpumapValue",
    "DevMap",
    "DevMapHash",
    "DevmapValue",
    "ReuseportSockArray",
    "SockHash",
    "SockMap",
    "XskMap",
]

DEV_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY
SOCK_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY
#: sizeof(struct bpf_shtab_elem) without the key, and of a sockhash bucket
SHTAB_ELEM_SIZE = 40
SHTAB_BUCKET_SIZE = 16


@dataclass(frozen=True)
class DevmapValue:
    """A DEVMAP/DEVMAP_HASH value: a device (or ifindex) and an optional XDP program
    (expected attach type BPF_XDP_DEVMAP) run before the frame is sent."""

    dev: NetDevice | int
    prog: Any = None


@dataclass(frozen=True)
class CpumapValue:
    """A CPUMAP value: the queue size and an optional XDP program (BPF_XDP_CPUMAP)."""

    qsize: int
    prog: Any = None


def _i32(b: bytes) -> int:
    return int.from_bytes(b, "little", signed=True)


def _u32(b: bytes) -> int:
    return int.from_bytes(b, "little")


class _ObjectMap(Map):
    """Shared plumbing: a resolver, raw-bytes-or-object values."""

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus)
        self.resolver = resolver or Resolver()

    def _user_value(self, value: Any) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value)
            if len(value) != self.value_size:
                raise self._fail(
                    _Errno(
                        _errno.EINVAL,
                        f"value is {len(value)} bytes, the map's value_size is {self.value_size}",
                    ),
                    "update",
                )
        return value

    def _prog(self, fd_or_prog: Any, ptype: ProgramType, attach: AttachType, err: int) -> Any:
        """A program for a devmap/cpumap value, ``err`` when it is not an XDP program
        with the expected attach type (or names nothing)."""
        prog = fd_or_prog
        if isinstance(prog, int):
            prog = self.resolver.fd(prog)
        if (
            prog is None
            or getattr(prog, "prog_type", None) != ptype
            or getattr(prog, "expected_attach_type", getattr(prog, "attach_type", None)) != attach
        ):
            raise _Errno(err, f"not an XDP program for {attach.name}")
        return prog

    def _socket(self, value: Any, kind: str = "socket") -> Any:
        """A socket-ish object from a handle, an fd int, or the fd bytes."""
        if isinstance(value, bytes):
            fd = int.from_bytes(value, "little")
            if fd > S32_MAX:
                raise _Errno(_errno.EINVAL, f"fd {fd} out of range")
            value = fd
        if isinstance(value, int) and not isinstance(value, bool):
            if value > S32_MAX:
                raise _Errno(_errno.EINVAL, f"fd {value} out of range")
            obj = self.resolver.fd(value)
            if obj is None:
                raise _Errno(_errno.EBADF, f"fd {value} names nothing")
            value = obj
        if not hasattr(value, "family"):
            raise _Errno(_errno.ENOTSOCK, f"not a {kind}")
        return value


class _ObjectArray(_ObjectMap):
    """Array-indexed object slots, ``self.entries[i]`` for u32 keys below max_entries
    (DEVMAP, CPUMAP, XSKMAP, SOCKMAP, REUSEPORT_SOCKARRAY): the checks and walks
    their kernel update, delete and get_next_key paths share."""

    entries: list[Any]

    def _index(self, key: bytes, flags: int) -> int:
        """The slot a user-space update names: flags above BPF_EXIST -> EINVAL, then an
        index beyond max_entries -> E2BIG."""
        i = _u32(key)
        if flags > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        if i >= self.max_entries:
            raise _Errno(_errno.E2BIG, f"index {i} out of range (max_entries {self.max_entries})")
        return i

    @staticmethod
    def _check_exist(old: Any, flags: int) -> None:
        """BPF_NOEXIST on a used slot -> EEXIST, BPF_EXIST on an empty one -> ENOENT."""
        if old is not None and flags == BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "slot in use (BPF_NOEXIST)")
        if old is None and flags == BPF_EXIST:
            raise _Errno(_errno.ENOENT, "slot empty (BPF_EXIST)")

    def _sys_delete(self, key: bytes) -> None:
        """DEVMAP, CPUMAP, XSKMAP: clearing a slot never fails in range (EINVAL beyond)."""
        i = _u32(key)
        if i >= self.max_entries:
            raise _Errno(_errno.EINVAL, f"index {i} out of range")
        self.entries[i] = None

    def _next_key(self, key: bytes | None) -> bytes:
        return array_next_key(key, self.max_entries)

    def _count(self) -> int:
        return sum(1 for e in self.entries if e is not None)

    def target(self, key: bytes) -> Any:
        """The entry a redirect through ``key`` sends to (None: empty or out of range)."""
        i = _u32(key)
        return self.entries[i] if i < self.max_entries else None


class _ValueArray(_ObjectArray):
    """An object array whose slots programs read as values (DEVMAP's ifindex/prog id,
    XSKMAP's queue_id) from ``self.store``."""

    store: ValueStore

    def _attach(self, mem: AddressSpace) -> None:
        self.store.attach(mem)

    def _detach(self) -> None:
        self.store.detach()

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        i = _u32(key)
        if i >= self.max_entries or self.entries[i] is None:
            return 0
        return self.store.address(i)


class _ObjectHash(_ObjectMap):
    """Hashed object slots (DEVMAP_HASH, SOCKHASH): ``self.table`` chains keys the
    kernel's way (bucket ``hashfn(key) & (n_buckets - 1)``, newest first) and
    ``self.objs`` holds each slot's object."""

    def _init_table(self, key_size: int, hashfn: Callable[[bytes], int]) -> None:
        self.table = HTab(
            key_size,
            roundup_pow_of_two(self.max_entries),
            self.max_entries + 1,
            hashfn=hashfn,
            grow=True,
        )
        self.objs: dict[int, Any] = {}
        self._free: list[int] = []
        self._fresh = 0

    def _new_slot(self, old: int) -> int:
        """A free slot for a new element (``old`` < 0) or a replacement of slot ``old``;
        E2BIG when a new element would exceed max_entries."""
        if old < 0 and self.table.count >= self.max_entries:
            raise _Errno(_errno.E2BIG, f"map full ({self.max_entries} elements)")
        if self._free:
            return self._free.pop()
        s = self._fresh
        self._fresh += 1
        self.table.ensure(s)
        return s

    def _link(self, key: bytes, old: int, s: int) -> None:
        """Chain slot ``s`` (its object already in ``objs``) under ``key``, in place of
        slot ``old`` when that is >= 0 (which is then freed)."""
        t = self.table
        if old >= 0:
            t.replace(old, s, key)
            self.objs.pop(old, None)
            self._free.append(old)
        else:
            t.insert(s, key, t.hashfn(key))

    def _sys_delete(self, key: bytes) -> None:
        s = self.table.find(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no such key")
        self.table.remove(s)
        self.objs.pop(s, None)
        self._free.append(s)

    def _next_key(self, key: bytes | None) -> bytes:
        s = self.table.next_slot(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no more keys")
        return self.table.key_of(s)

    def _count(self) -> int:
        return self.table.count

    def target(self, key: bytes) -> Any:
        """The object a redirect through ``key`` sends to (None: no such key)."""
        s = self.table.find(key)
        return None if s < 0 else self.objs[s]


# -- DEVMAP ---------------------------------------------------------------------------------


class DevMap(_ValueArray):
    """BPF_MAP_TYPE_DEVMAP."""

    map_type = MapType.DEVMAP

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or spec.key_size != 4
            or spec.value_size not in (4, 8)
            or spec.flags & ~DEV_CREATE_FLAG_MASK
        ):
            raise _Errno(_errno.EINVAL, "devmaps need key_size 4, value_size 4 or 8, devmap flags")

    @classmethod
    def created_params(cls, spec: MapSpec, ncpus: int) -> tuple[int, int]:
        max_entries, flags = super().created_params(spec, ncpus)
        return max_entries, flags | BPF_F_RDONLY_PROG

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self.flags |= BPF_F_RDONLY_PROG
        self._init_storage()

    def _init_storage(self) -> None:
        self.entries: list[tuple[NetDevice, Any] | None] = [None] * self.max_entries
        self.store = ValueStore(
            f"map {self.name!r}", self.value_size, self.max_entries, writable=False
        )

    def _parse(self, value: Any) -> tuple[int, Any, Any]:
        """(ifindex, prog fd-or-object or None, device-or-None) from a user value."""
        if isinstance(value, bytes):
            ifindex = _u32(value[:4])
            fd = _i32(value[4:8]) if len(value) == 8 else 0
            return ifindex, (fd if fd > 0 else None), None
        if isinstance(value, DevmapValue):
            dev = value.dev
            if isinstance(dev, int):
                return dev, value.prog, None
            return dev.ifindex, value.prog, dev
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None, None
        if hasattr(value, "ifindex"):
            return value.ifindex, None, value
        raise _Errno(_errno.EINVAL, f"not a devmap value: {type(value).__name__}")

    def _make(self, value: Any) -> tuple[NetDevice, Any] | None:
        """__dev_map_alloc_node (None: clear the slot)."""
        ifindex, prog, dev = self._parse(value)
        if self.value_size == 4:
            prog = None
        if ifindex == 0:
            if prog is not None:
                raise _Errno(_errno.EINVAL, "a program needs a device (ifindex 0)")
            return None
        if dev is None:
            dev = self.resolver.netdev(ifindex)
            if dev is None:
                raise _Errno(_errno.EINVAL, f"no device with ifindex {ifindex}")
        if prog is not None:
            prog = self._prog(prog, ProgramType.XDP, AttachType.XDP_DEVMAP, _errno.EINVAL)
        return dev, prog

    def _encode(self, entry: tuple[NetDevice, Any]) -> bytes:
        dev, prog = entry
        raw = dev.ifindex.to_bytes(4, "little")
        if self.value_size == 8:
            raw += (object_id(prog) if prog is not None else 0).to_bytes(4, "little")
        return raw

    def _put(self, i: int, entry: tuple[NetDevice, Any] | None) -> None:
        self.entries[i] = entry
        if entry is not None:
            self.store.set(i, self._encode(entry))

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        i = self._index(key, flags)
        if flags == BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "every devmap slot exists (BPF_NOEXIST)")
        self._put(i, self._make(value))

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        i = _u32(key)
        e = self.entries[i] if i < self.max_entries else None
        if e is None:
            raise _Errno(_errno.ENOENT, f"slot {i} is empty")
        return self._encode(e)


class DevMapHash(_ObjectHash, DevMap):
    """BPF_MAP_TYPE_DEVMAP_HASH."""

    map_type = MapType.DEVMAP_HASH

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        super().validate(spec, ncpus)
        if roundup_pow_of_two(spec.max_entries) > U32_MAX:
            raise _Errno(_errno.EINVAL, "too many buckets")

    def _init_storage(self) -> None:
        self._init_table(4, _u32)
        self.store = ValueStore(
            f"map {self.name!r}",
            self.value_size,
            self.max_entries + 1,
            prealloc=False,
            writable=False,
        )

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        ifindex = self._parse(value)[0]
        if flags > BPF_EXIST or ifindex == 0:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x} / ifindex {ifindex}")
        t = self.table
        old = t.find(key)
        if old >= 0 and flags & BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "key exists (BPF_NOEXIST)")
        entry = self._make(value)
        assert entry is not None
        s = self._new_slot(old)
        self.objs[s] = entry
        self.store.set(s, self._encode(entry))
        self._link(key, old, s)

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        s = self.table.find(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no such key")
        return self._encode(self.objs[s])

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        s = self.table.find(key)
        return 0 if s < 0 else self.store.address(s)


# -- CPUMAP ---------------------------------------------------------------------------------


class CpuMap(_ObjectArray):
    """BPF_MAP_TYPE_CPUMAP: redirect targets are CPUs (index = CPU number)."""

    map_type = MapType.CPUMAP

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or spec.key_size != 4
            or spec.value_size not in (4, 8)
            or spec.flags & ~BPF_F_NUMA_NODE
        ):
            raise _Errno(_errno.EINVAL, "cpumaps need key_size 4, value_size 4 or 8")
        if spec.max_entries > NR_CPUS:
            raise _Errno(_errno.E2BIG, f"at most NR_CPUS ({NR_CPUS}) entries")

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self.entries: list[tuple[int, Any] | None] = [None] * self.max_entries

    def _parse(self, value: Any) -> tuple[int, Any]:
        if isinstance(value, bytes):
            fd = _i32(value[4:8]) if len(value) == 8 else 0
            return _u32(value[:4]), (fd if fd > 0 else None)
        if isinstance(value, CpumapValue):
            return value.qsize, value.prog
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        raise _Errno(_errno.EINVAL, f"not a cpumap value: {type(value).__name__}")

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        qsize, prog = self._parse(value)
        if self.value_size == 4:
            prog = None
        cpu = self._index(key, flags)
        if flags == BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "every cpumap slot exists (BPF_NOEXIST)")
        if qsize > CPUMAP_QSIZE_MAX:
            raise _Errno(_errno.EOVERFLOW, f"qsize {qsize} > {CPUMAP_QSIZE_MAX}")
        if cpu >= self.ncpus:
            raise _Errno(_errno.ENODEV, f"CPU {cpu} is not possible ({self.ncpus} CPUs)")
        if qsize == 0:
            self.entries[cpu] = None
            return
        if prog is not None:
            prog = self._prog(prog, ProgramType.XDP, AttachType.XDP_CPUMAP, _errno.ENOMEM)
        self.entries[cpu] = (qsize, prog)

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        i = _u32(key)
        e = self.entries[i] if i < self.max_entries else None
        if e is None:
            raise _Errno(_errno.ENOENT, f"slot {i} is empty")
        raw = e[0].to_bytes(4, "little")
        if self.value_size == 8:
            raw += (object_id(e[1]) if e[1] is not None else 0).to_bytes(4, "little")
        return raw

    def target(self, key: bytes) -> tuple[int, int, Any] | None:
        """(cpu, qsize, program) a redirect through ``key`` sends to."""
        i = _u32(key)
        e = self.entries[i] if i < self.max_entries else None
        return None if e is None else (i, e[0], e[1])


# -- XSKMAP ---------------------------------------------------------------------------------


class XskMap(_ValueArray):
    """BPF_MAP_TYPE_XSKMAP."""

    map_type = MapType.XSKMAP

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or spec.key_size != 4
            or spec.value_size != 4
            or spec.flags & ~DEV_CREATE_FLAG_MASK
        ):
            raise _Errno(_errno.EINVAL, "xskmaps need key_size 4 and value_size 4")

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self.entries: list[Any] = [None] * self.max_entries
        self.store = ValueStore(f"map {self.name!r} xdp_sock", 4, self.max_entries, writable=False)

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        i = self._index(key, flags)
        xs = self._socket(value, "AF_XDP socket")
        if xs.family != AF_XDP:
            raise _Errno(_errno.EOPNOTSUPP, "not an AF_XDP socket")
        old = self.entries[i]
        if old is xs:
            return
        self._check_exist(old, flags)
        self.entries[i] = xs
        self.store.set(i, int(getattr(xs, "queue_id", 0)).to_bytes(4, "little"))

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        raise _Errno(_errno.EOPNOTSUPP, "XSKMAP elements cannot be read from user space")


# -- sockets --------------------------------------------------------------------------------


def _sockmap_suitable(sk: Any) -> bool:
    """sock_map_sk_is_suitable + sock_map_sk_state_allowed."""
    family = getattr(sk, "family", None)
    stype = getattr(sk, "type", None)
    state = getattr(sk, "state", "close")
    if isinstance(sk, Socket) and sk.is_tcp:
        return state in ("listen", "established")
    if isinstance(sk, Socket) and sk.is_udp:
        return bool(sk.bound)
    if family == _socket.AF_UNIX:
        if stype == _socket.SOCK_STREAM:
            return state == "established"
        return stype == _socket.SOCK_DGRAM
    return False


class _SockCookie:
    def prog_delete(self: Any, key: bytes, cpu: int) -> int:
        """bpf_map_delete_elem from a tc/XDP program: the kernel allows it on socket
        maps (sock_map_delete_elem / sock_hash_delete_elem) and returns 0 or -errno
        (-EINVAL for an empty SOCKMAP slot, -ENOENT for a missing SOCKHASH key)."""
        self._check_prog_write("bpf_map_delete_elem")
        try:
            self._sys_delete(key)
        except _Errno as e:
            return -e.err
        return 0

    def _cookie(self: Any, sk: Any) -> bytes:
        if self.value_size != 8:
            raise _Errno(_errno.ENOSPC, "a socket cookie needs value_size 8")
        return int(getattr(sk, "cookie", 0)).to_bytes(8, "little")


class _SockArray(_SockCookie, _ObjectArray):
    """SOCKMAP and REUSEPORT_SOCKARRAY: user-space lookups return the socket cookie."""

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        if self.value_size != 8:
            raise _Errno(_errno.ENOSPC, "a socket cookie needs value_size 8")
        i = _u32(key)
        sk = self.entries[i] if i < self.max_entries else None
        if sk is None:
            raise _Errno(_errno.ENOENT, f"slot {i} is empty")
        return self._cookie(sk)


class SockMap(_SockArray):
    """BPF_MAP_TYPE_SOCKMAP."""

    map_type = MapType.SOCKMAP

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or spec.key_size != 4
            or spec.value_size not in (4, 8)
            or spec.flags & ~SOCK_CREATE_FLAG_MASK
        ):
            raise _Errno(_errno.EINVAL, "sockmaps need key_size 4, value_size 4 or 8")

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self.entries: list[Any] = [None] * self.max_entries

    def _checked_socket(self, value: Any) -> Any:
        sk = self._socket(value)
        if not _sockmap_suitable(sk):
            raise _Errno(_errno.EOPNOTSUPP, "socket not suitable (type or state)")
        return sk

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        sk = self._checked_socket(value)
        i = self._index(key, flags)
        self._check_exist(self.entries[i], flags)
        self.entries[i] = sk

    def _sys_delete(self, key: bytes) -> None:
        i = _u32(key)
        if i >= self.max_entries or self.entries[i] is None:
            raise _Errno(_errno.EINVAL, f"slot {i} is empty or out of range")
        self.entries[i] = None

    def prog_lookup(self, key: bytes, cpu: int) -> int:
        raise NotSupportedError(
            f"bpf_map_lookup_elem on a {self.type.name} from a program",
            "returns a kernel socket; needs the simulated socket layer",
        )


class SockHash(_SockCookie, _ObjectHash):
    """BPF_MAP_TYPE_SOCKHASH (bucket = jhash(key, 0), newest first)."""

    map_type = MapType.SOCKHASH

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if (
            spec.max_entries == 0
            or spec.key_size == 0
            or spec.value_size not in (4, 8)
            or spec.flags & ~SOCK_CREATE_FLAG_MASK
        ):
            raise _Errno(_errno.EINVAL, "sockhashes need a key, value_size 4 or 8")
        if spec.key_size > U32_MAX - SHTAB_ELEM_SIZE:
            raise _Errno(_errno.E2BIG, "key_size too large")
        if roundup_pow_of_two(spec.max_entries) > U32_MAX // SHTAB_BUCKET_SIZE:
            raise _Errno(_errno.EINVAL, "too many buckets")

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self._init_table(self.key_size, jhash)

    _checked_socket = SockMap._checked_socket

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        sk = self._checked_socket(value)
        if flags > BPF_EXIST:
            raise _Errno(_errno.EINVAL, f"flags {flags:#x}")
        t = self.table
        old = t.find(key)
        if old >= 0 and flags == BPF_NOEXIST:
            raise _Errno(_errno.EEXIST, "key exists (BPF_NOEXIST)")
        if old < 0 and flags == BPF_EXIST:
            raise _Errno(_errno.ENOENT, "no such key (BPF_EXIST)")
        s = self._new_slot(old)
        self.objs[s] = sk
        self._link(key, old, s)

    def _sys_lookup(self, key: bytes | None, flags: int) -> Any:
        assert key is not None
        if self.value_size != 8:
            raise _Errno(_errno.ENOSPC, "a socket cookie needs value_size 8")
        s = self.table.find(key)
        if s < 0:
            raise _Errno(_errno.ENOENT, "no such key")
        return self._cookie(self.objs[s])

    prog_lookup = SockMap.prog_lookup


class ReuseportSockArray(_SockArray):
    """BPF_MAP_TYPE_REUSEPORT_SOCKARRAY."""

    map_type = MapType.REUSEPORT_SOCKARRAY

    @classmethod
    def validate(cls, spec: MapSpec, ncpus: int) -> None:
        if spec.value_size not in (4, 8):
            raise _Errno(_errno.EINVAL, "value_size must be 4 or 8 (a socket fd)")
        check_array_spec(spec)

    def __init__(self, spec: MapSpec, *, ncpus: int, resolver: Resolver | None = None) -> None:
        super().__init__(spec, ncpus=ncpus, resolver=resolver)
        self.entries: list[Any] = [None] * self.max_entries

    def _sys_update(self, key: bytes | None, value: Any, flags: int) -> None:
        assert key is not None
        i = self._index(key, flags)
        sk = self._socket(value)
        old = self.entries[i]
        self._check_exist(old, flags)
        proto = getattr(sk, "protocol", 0)
        if proto not in (_socket.IPPROTO_TCP, _socket.IPPROTO_UDP):
            raise _Errno(ENOTSUPP, "only TCP and UDP sockets")
        if getattr(sk, "family", None) not in (_socket.AF_INET, _socket.AF_INET6):
            raise _Errno(ENOTSUPP, "only inet sockets")
        if getattr(sk, "type", None) not in (_socket.SOCK_STREAM, _socket.SOCK_DGRAM):
            raise _Errno(ENOTSUPP, "only stream and datagram sockets")
        if not getattr(sk, "hashed", False) or not getattr(sk, "reuseport", False):
            raise _Errno(_errno.EINVAL, "the socket must be bound/listening with SO_REUSEPORT")
        if getattr(sk, "reuseport_array", None) is not None:
            raise _Errno(_errno.EBUSY, "the socket is already in a reuseport array")
        if old is not None:
            old.reuseport_array = None
        sk.reuseport_array = self
        self.entries[i] = sk

    def _sys_delete(self, key: bytes) -> None:
        i = _u32(key)
        if i >= self.max_entries:
            raise _Errno(_errno.E2BIG, f"index {i} out of range")
        sk = self.entries[i]
        if sk is None:
            raise _Errno(_errno.ENOENT, f"slot {i} is empty")
        sk.reuseport_array = None
        self.entries[i] = None
