"""``KernelBackend``: the same contract as ``SimBackend``, answered by the running kernel.

It is the oracle the simulator is measured against: a spec is loaded with
BPF_PROG_LOAD and run with BPF_PROG_TEST_RUN, and the result is a
:class:`~netbpf.backend.TestRunResult` exactly like the simulator's, so a behaviour
test is written once and run on both backends.

Example (needs root)::

    from netbpf import KernelBackend, ProgramSpec

    spec = ProgramSpec.from_bytes(bytes.fromhex("b7000000020000009500000000000000"),
                                  prog_type="xdp")
    with KernelBackend().load_program(spec) as prog:
        assert prog.test_run(bytes(64)).retval == 2   # XDP_PASS
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from netbpf.backend import MapHandle, TestRunResult
from netbpf.errors import (
    KernelError,
    KernelUnavailable,
    MapError,
    MapFullError,
    MapKeyExistsError,
    MapKeyNotFoundError,
    TestRunError,
)
from netbpf.kernel import probe as _probe
from netbpf.kernel import syscall as _sys
from netbpf.obj.naming import sanitize_name
from netbpf.obj.spec import ProgramSpec
from netbpf.uapi import CTX_LAYOUTS, MapType, ProgramType, resolve_map_type
from netbpf.uapi.sections import match_section

if TYPE_CHECKING:
    from netbpf.collection import Collection
    from netbpf.obj.btf import Btf
    from netbpf.obj.collection import CollectionSpec

__all__ = ["KernelBackend", "KernelMap", "KernelProgram", "program_load_flags", "sanitize_name"]

_BPF_F_XDP_HAS_FRAGS = 1 << 5

# Program types whose BPF_PROG_TEST_RUN hands back a context (ctx_out), and its struct.
_CTX_STRUCT: dict[ProgramType, str] = {
    ProgramType.XDP: "xdp_md",
    ProgramType.SOCKET_FILTER: "__sk_buff",
    ProgramType.SCHED_CLS: "__sk_buff",
    ProgramType.SCHED_ACT: "__sk_buff",
    ProgramType.CGROUP_SKB: "__sk_buff",
    ProgramType.LWT_IN: "__sk_buff",
    ProgramType.LWT_OUT: "__sk_buff",
    ProgramType.LWT_XMIT: "__sk_buff",
    ProgramType.FLOW_DISSECTOR: "bpf_flow_keys",
    ProgramType.SK_LOOKUP: "bpf_sk_lookup",
}
# Program types whose test run takes a packet and writes one back (data_out).  For
# the flow dissector the "packet out" is the struct bpf_flow_keys it filled in.
_PACKET_TYPES = frozenset(_CTX_STRUCT) - {ProgramType.SK_LOOKUP}

# data_out room beyond data_in: helpers may grow the packet (bpf_xdp_adjust_tail,
# bpf_skb_change_tail up to the device MTU, 64 KiB on loopback).  A too-small buffer
# costs a second run (ENOSPC), which would repeat map side effects: size generously.
_DATA_OUT_MARGIN = 64 * 1024 + 512
# ctx_out room beyond the header's struct size, for kernels whose struct grew.
_CTX_OUT_MARGIN = 256

_ERRNO_HINTS: dict[int, str] = {
    _errno.EINVAL: "the kernel rejected the input (packet shorter than the 14-byte "
    "Ethernet header or too long for one page, a ctx_in field this program type does "
    "not accept, or a size that does not fit)",
    _sys.ENOTSUPP: "this kernel has no BPF_PROG_TEST_RUN for this program type (ENOTSUPP)",
    _errno.ENOTSUP: "this kernel has no BPF_PROG_TEST_RUN for this program type",
    _errno.E2BIG: "data_in or ctx_in is larger than the kernel accepts",
    _errno.EPERM: "not permitted (BPF_PROG_TEST_RUN needs CAP_BPF/CAP_SYS_ADMIN)",
    _errno.EFAULT: "the kernel could not access the buffers",
    _errno.ENOMEM: "the kernel could not allocate the test packet",
}


def program_load_flags(spec: ProgramSpec) -> int:
    """BPF_PROG_LOAD ``prog_flags`` a spec needs: BPF_F_XDP_HAS_FRAGS for programs from
    an ``xdp.frags`` section (multi-buffer XDP)."""
    flags = 0
    sdef = match_section(spec.section) if spec.section else None
    if spec.frags or (sdef is not None and sdef.frags):
        flags |= _BPF_F_XDP_HAS_FRAGS
    return flags


class KernelProgram:
    """A program loaded into the running kernel.  Close it (or use ``with``) to free it."""

    def __init__(self, spec: ProgramSpec, fd: _sys.Fd, log: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.prog_type = spec.prog_type
        self._fd = fd
        #: the verifier log of the load (empty unless a log level was asked for)
        self.log = log

    @property
    def fd(self) -> int:
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    @property
    def verifier_log(self) -> str:
        """The verifier log of the load at the requested log level (same as ``log``;
        the name :class:`netbpf.sim.SimProgram` shares)."""
        return self.log

    @property
    def verified_insns(self) -> int:
        """Instructions the kernel's verifier processed (``bpf_prog_info.
        verified_insns``, Linux >= 5.16; 0 on older kernels)."""
        return self.info().verified_insns

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> TestRunResult:
        """BPF_PROG_TEST_RUN.

        ``ctx_out`` is returned when ``ctx_in`` is given and the type's kernel test
        run hands a context back (XDP: xdp_md; the skb family: __sk_buff; the flow
        dissector: bpf_flow_keys; sk_lookup: bpf_sk_lookup), else None.  ``data_out``
        is the packet after the run (b"" for types without a packet).  The kernel
        reports retval as u32 and duration as the mean ns per run over ``repeat``."""
        if not isinstance(repeat, int) or not 0 <= repeat <= 0xFFFFFFFF:
            raise TestRunError(f"repeat must be an integer in 0..2**32-1, not {repeat!r}")
        data_in = bytes(data_in)
        if ctx_in is not None:
            ctx_in = bytes(ctx_in)
        ptype = self.prog_type
        struct = _CTX_STRUCT.get(ptype)
        ctx_size = 0
        if struct is not None and ctx_in is not None:
            # Only with a ctx_in: asked for a ctx_out alone, the kernel runs the
            # program on an all-zero context (for XDP: data_end 0, an empty linear
            # area), which is not "no context".  The buffer holds the kernel's whole
            # struct even when ctx_in is shorter, else the kernel says ENOSPC.
            ctx_size = max(len(ctx_in), CTX_LAYOUTS[struct][0]) + _CTX_OUT_MARGIN
        data_size = len(data_in) + _DATA_OUT_MARGIN if ptype in _PACKET_TYPES else 0
        out = self._run(data_in, data_size, ctx_in, ctx_size, repeat)
        if out.truncated:
            # The buffers were too small (the packet grew more than the margin): run
            # again with the sizes the kernel asked for.
            data_size = max(data_size, out.data_size_out)
            ctx_size = max(ctx_size, out.ctx_size_out)
            out = self._run(data_in, data_size, ctx_in, ctx_size, repeat)
            if out.truncated:
                raise TestRunError(
                    f"{self._what()}: output did not fit even after resizing", errno=_errno.ENOSPC
                )
        ctx_out = out.ctx_out if out.ctx_out is not None and out.ctx_size_out else None
        return TestRunResult(
            retval=out.retval,
            data_out=out.data_out or b"",
            ctx_out=ctx_out,
            duration_ns=out.duration,
        )

    def _run(
        self, data_in: bytes, data_size: int, ctx_in: bytes | None, ctx_size: int, repeat: int
    ) -> _sys.TestRunOutput:
        try:
            return _sys.prog_test_run(
                self.fd,
                data_in=data_in,
                data_size_out=data_size,
                ctx_in=ctx_in,
                ctx_size_out=ctx_size,
                repeat=repeat,
            )
        except KernelError as e:
            if e.errno == _errno.EBADF and self.closed:
                raise TestRunError(f"{self._what()} is closed", errno=_errno.EBADF) from None
            hint = _ERRNO_HINTS.get(e.errno, os.strerror(e.errno))
            sizes = f"{len(data_in)}-byte data_in"
            if ctx_in is not None:
                sizes += f", {len(ctx_in)}-byte ctx_in"
            raise TestRunError(
                f"{self._what()} with {sizes}: {_sys.errno_name(e.errno)}: {hint}",
                errno=e.errno,
            ) from None

    def _what(self) -> str:
        return f"{self.prog_type.name} program '{self.name}'"

    def info(self) -> _sys.ProgInfo:
        """The kernel's view of the program (id, tag, run counters...)."""
        return _sys.prog_info(self.fd)

    def xlated(self) -> bytes:
        """The instructions after verification, as the kernel rewrote them."""
        return _sys.prog_xlated(self.fd)

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin in a bpffs mount (e.g. /sys/fs/bpf/NAME)."""
        _sys.obj_pin(self.fd, path)

    def close(self) -> None:
        self._fd.close()

    def __enter__(self) -> KernelProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd.fileno()}"
        return f"<KernelProgram {self.name!r} {self.prog_type.name} {state}>"


_PERCPU = frozenset(
    {
        MapType.PERCPU_HASH,
        MapType.PERCPU_ARRAY,
        MapType.LRU_PERCPU_HASH,
        MapType.PERCPU_CGROUP_STORAGE,
    }
)


class KernelMap(MapHandle):
    """A kernel map accessed by raw bytes through bpf().

    Keys and values are ``bytes`` of exactly ``key_size`` / ``value_size`` (checked:
    the kernel reads that many bytes from whatever buffer it is given).  Per-CPU maps
    move every CPU's value at once: ``round_up(value_size, 8) * possible_cpus`` bytes,
    see :attr:`value_size_raw`.  ``flags`` on updates are the kernel's BPF_ANY (0),
    BPF_NOEXIST (1), BPF_EXIST (2), BPF_F_LOCK (4).  Errors are the typed map errors:
    MapKeyNotFoundError (ENOENT), MapKeyExistsError (EEXIST), MapFullError (E2BIG).
    The argument conventions and the derived operations are
    :class:`netbpf.backend.MapHandle`'s; here are the bpf() calls."""

    def __init__(
        self,
        fd: _sys.Fd,
        map_type: MapType,
        key_size: int,
        value_size: int,
        max_entries: int,
        *,
        flags: int = 0,
        name: str = "",
    ) -> None:
        self._fd = fd
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.name = name
        self._percpu = map_type in _PERCPU
        if self._percpu:
            self.value_size_raw = ((value_size + 7) // 8 * 8) * _sys.possible_cpus()
        else:
            self.value_size_raw = value_size

    @property
    def fd(self) -> int:
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    # -- errors
    def _error(self, e: KernelError, op: str, key: bytes | None) -> MapError:
        where = f"{self._what()}: {op}" + (f" key {key.hex()}" if key is not None else "")
        if e.errno == _errno.ENOENT:
            return MapKeyNotFoundError(f"{where}: no such key (ENOENT)")
        if e.errno == _errno.EEXIST:
            return MapKeyExistsError(f"{where}: key exists (EEXIST)")
        if e.errno == _errno.E2BIG:
            return MapFullError(f"{where}: map full or index out of range (E2BIG)")
        if e.errno == _errno.EBADF and self.closed:
            return MapError(f"{where}: the map is closed", errno=_errno.EBADF)
        return MapError(
            f"{where}: {_sys.errno_name(e.errno)}: {os.strerror(e.errno)}", errno=e.errno
        )

    @contextmanager
    def _bpf(self, op: str, key: bytes | None = None) -> Iterator[None]:
        """Turn a failed bpf() call into the typed map error naming ``op`` and ``key``."""
        try:
            yield
        except KernelError as e:
            raise self._error(e, op, key) from None

    # -- the bpf() calls behind MapHandle's operations
    def _lookup(self, key: bytes, flags: int) -> bytes:
        with self._bpf("lookup", key):
            return _sys.map_lookup_elem(self.fd, key, self.value_size_raw, flags=flags)

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        with self._bpf("update", key):
            _sys.map_update_elem(self.fd, key, value, flags=flags)

    def _delete(self, key: bytes) -> None:
        with self._bpf("delete", key):
            _sys.map_delete_elem(self.fd, key)

    def _lookup_and_delete(self, key: bytes, flags: int) -> bytes:
        with self._bpf("lookup_and_delete", key):
            return _sys.map_lookup_and_delete_elem(self.fd, key, self.value_size_raw, flags=flags)

    def _next_key(self, key: bytes | None) -> bytes | None:
        with self._bpf("get_next_key", key):
            return _sys.map_get_next_key(self.fd, key, self.key_size)

    def _push(self, value: bytes, flags: int) -> None:
        with self._bpf("push"):
            _sys.map_update_elem(self.fd, None, value, flags=flags)

    def _pop(self) -> bytes:
        with self._bpf("pop"):
            return _sys.map_lookup_and_delete_elem(self.fd, None, self.value_size_raw)

    def _peek(self) -> bytes:
        with self._bpf("peek"):
            return _sys.map_lookup_elem(self.fd, None, self.value_size_raw)

    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]:
        """All entries through BPF_MAP_LOOKUP(_AND_DELETE)_BATCH, ``count`` at a time."""
        fn = _sys.map_lookup_and_delete_batch if delete else _sys.map_lookup_batch
        token_size = max(8, self.key_size)
        out: list[tuple[bytes, bytes]] = []
        token: bytes | None = None
        while True:
            try:
                got, token = fn(
                    self.fd,
                    self.key_size,
                    self.value_size_raw,
                    count=count,
                    in_batch=token,
                    batch_token_size=token_size,
                    elem_flags=flags,
                )
            except KernelError as e:
                if e.errno == _errno.ENOSPC:
                    # A hash bucket holds more than `count` entries; ask for more.
                    count *= 2
                    continue
                raise self._error(e, "lookup_batch", None) from None
            out.extend(got)
            if token is None:
                return out

    def _update_batch(self, pairs: list[tuple[bytes, bytes]], flags: int) -> None:
        with self._bpf("update_batch"):
            _sys.map_update_batch(
                self.fd,
                b"".join(k for k, _ in pairs),
                b"".join(v for _, v in pairs),
                len(pairs),
                elem_flags=flags,
            )

    def _delete_batch(self, keys: list[bytes]) -> None:
        with self._bpf("delete_batch"):
            _sys.map_delete_batch(self.fd, b"".join(keys), len(keys))

    # -- whole map
    def freeze(self) -> None:
        """No more writes from user space (programs may still write unless the map was
        created with BPF_F_RDONLY_PROG)."""
        with self._bpf("freeze"):
            _sys.map_freeze(self.fd)

    def info(self) -> _sys.MapInfo:
        return _sys.map_info(self.fd)

    def pin(self, path: str | os.PathLike[str]) -> None:
        _sys.obj_pin(self.fd, path)

    def close(self) -> None:
        self._fd.close()


class KernelBackend:
    """Loads specs into the running kernel.  Raises KernelUnavailable, with the probe's
    reason, where bpf() cannot be used (not Linux, not root, seccomp...)."""

    name = "kernel"

    def __init__(self) -> None:
        usable = _probe.bpf_usable()
        if not usable:
            raise KernelUnavailable(f"the kernel backend cannot be used: {usable.reason}")
        self._vmlinux: Btf | None = None

    def load(
        self,
        spec: CollectionSpec,
        *,
        pin_path: str | os.PathLike[str] | None = None,
        log_level: int = 0,
    ) -> Collection:
        """Load a whole object: BTF, maps (with BTF types, global data initialised,
        ``.rodata`` frozen, map-in-map and PROG_ARRAY slots filled from ``.maps``
        initialisers), then every program with its map references, CO-RE relocations
        (against the running kernel's BTF) and func/line info.  See
        :mod:`netbpf.kernel.loader` for the steps.

        Maps declared with ``__uint(pinning, LIBBPF_PIN_BY_NAME)`` live at
        ``<pin_path>/<map name>`` (default /sys/fs/bpf, which must be a bpffs mount):
        an existing pinned map is reused when its type, sizes, max_entries and flags
        match (its contents are kept), else the load fails; a new one is pinned there
        (and unpinned again if the load fails later, as libbpf does).

        A program the verifier refuses raises KernelError naming the program and
        carrying the verifier log (with C source lines when the object has BTF).
        ``log_level`` > 0 keeps the log of successful loads in ``program.log``.
        The spec is not modified."""
        from netbpf.kernel.loader import load_collection

        return load_collection(self, spec, pin_path=pin_path, log_level=log_level)

    def vmlinux_btf(self) -> Btf:
        """The running kernel's BTF (parsed lazily once per backend), the CO-RE target."""
        if self._vmlinux is None:
            from netbpf.obj.btf import load_vmlinux_btf

            self._vmlinux = load_vmlinux_btf()
        return self._vmlinux

    def load_program(self, spec: ProgramSpec, *, log_level: int = 0) -> KernelProgram:
        """BPF_PROG_LOAD of the spec's instructions with its program type, expected
        attach type and license.  A refusal raises KernelError with the verifier log;
        ``log_level`` > 0 keeps the log of a successful load in ``program.log``."""
        prog_flags = program_load_flags(spec)
        fd, log = _sys.prog_load(
            int(spec.prog_type),
            spec.to_bytes(),
            license=spec.license,
            name=sanitize_name(spec.name),
            expected_attach_type=int(spec.attach_type) if spec.attach_type is not None else 0,
            prog_flags=prog_flags,
            log_level=log_level,
        )
        return KernelProgram(spec, fd, log)

    def create_map(
        self,
        map_type: MapType | str | int,
        key_size: int,
        value_size: int,
        max_entries: int,
        *,
        flags: int = 0,
        name: str = "",
        inner_map: KernelMap | None = None,
        map_extra: int = 0,
        numa_node: int = 0,
        btf_fd: int = 0,
        btf_key_type_id: int = 0,
        btf_value_type_id: int = 0,
    ) -> KernelMap:
        """BPF_MAP_CREATE.  ``flags`` are the kernel's BPF_F_* map flags;
        ``inner_map`` is the template map of an ARRAY_OF_MAPS / HASH_OF_MAPS;
        ``btf_fd`` (from BPF_BTF_LOAD) with the key/value type ids describes the
        key and value (the kernel checks the sizes match); ``numa_node`` counts only
        with BPF_F_NUMA_NODE in ``flags``."""
        mtype = resolve_map_type(map_type)
        clean = sanitize_name(name)
        fd = _sys.map_create(
            int(mtype),
            key_size,
            value_size,
            max_entries,
            map_flags=flags,
            name=clean,
            inner_map_fd=inner_map.fd if inner_map is not None else 0,
            map_extra=map_extra,
            numa_node=numa_node,
            btf_fd=btf_fd,
            btf_key_type_id=btf_key_type_id,
            btf_value_type_id=btf_value_type_id,
        )
        return KernelMap(fd, mtype, key_size, value_size, max_entries, flags=flags, name=name)

    def __repr__(self) -> str:
        return "<KernelBackend>"
