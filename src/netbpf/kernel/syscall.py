"""The ``bpf()`` system call through ctypes, with the ``union bpf_attr`` layouts.

Why ctypes and not a C extension: netbpf must install anywhere with ``pip`` and no
compiler, and the kernel side is only a few fixed-layout structs.  Each command gets
its own ``ctypes.Structure`` written from ``linux/bpf.h`` (every member of
``union bpf_attr`` starts at offset 0, so passing one member with its own size is what
the kernel expects; it zero-fills the rest and rejects non-zero bytes it does not
know).  ``tests/test_kernel_layout.py`` checks every offset against the installed
header with ``clang -fdump-record-layouts``.

This module is private to :mod:`netbpf.kernel`: it speaks in raw bytes, ints and
:class:`Fd` objects and raises :class:`~netbpf.errors.KernelError` carrying the errno
(and, for loads, the verifier log).  The typed API is in :mod:`netbpf.kernel.backend`.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import platform
from collections.abc import Sequence
from ctypes import c_char, c_int32, c_uint8, c_uint32, c_uint64
from dataclasses import dataclass

from netbpf.backend import MapInfo
from netbpf.errors import KernelError, KernelUnavailable
from netbpf.uapi import BpfCmd

__all__ = [
    "ENOTSUPP",
    "Fd",
    "MapInfo",
    "ProgInfo",
    "TestRunOutput",
    "bpf_syscall_number",
    "btf_load",
    "errno_name",
    "map_create",
    "map_delete_batch",
    "map_delete_elem",
    "map_freeze",
    "map_get_next_key",
    "map_info",
    "map_lookup_and_delete_batch",
    "map_lookup_and_delete_elem",
    "map_lookup_batch",
    "map_lookup_elem",
    "map_update_batch",
    "map_update_elem",
    "obj_get",
    "obj_pin",
    "possible_cpus",
    "prog_info",
    "prog_load",
    "prog_test_run",
    "prog_xlated",
]

BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8

# Kernel-internal errno that bpf() lets escape (include/linux/errno.h); Python's errno
# module does not know it.  Returned e.g. by BPF_PROG_TEST_RUN for a type without
# test_run support.
ENOTSUPP = 524

# __NR_bpf per machine.  Only little-endian 64-bit machines: our instruction encoding is
# little-endian (clang's bpfel) and ``__aligned_u64`` is ctypes' natural c_uint64 there.
_SYSCALL_NUMBERS: dict[str, int] = {
    "x86_64": 321,
    "amd64": 321,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
}


def errno_name(err: int) -> str:
    """``ENOENT``-style name of an errno, including the kernel-internal ones."""
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"errno {err}")


def _strerror(err: int) -> str:
    """The C library's text for an errno (KernelError's message already names it)."""
    if err == ENOTSUPP:
        return "operation not supported by this kernel"
    return os.strerror(err)


# --------------------------------------------------------------------------- structs
# One Structure per union bpf_attr member we use, fields in header order.  Members that
# are newer than the 6.1 UAPI header installed here (log_true_size, *_token_fd, ...)
# are appended where the current kernel has them; we always send them as zero, which
# every kernel accepts.


class _MapCreateAttr(ctypes.Structure):
    """BPF_MAP_CREATE."""

    _fields_ = [
        ("map_type", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("inner_map_fd", c_uint32),
        ("numa_node", c_uint32),
        ("map_name", c_char * BPF_OBJ_NAME_LEN),
        ("map_ifindex", c_uint32),
        ("btf_fd", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("map_extra", c_uint64),
        # newer than the installed header (v6.9)
        ("value_type_btf_obj_fd", c_int32),
        ("map_token_fd", c_int32),
    ]


class _ValueOrNextKey(ctypes.Union):
    _fields_ = [("value", c_uint64), ("next_key", c_uint64)]


class _MapElemAttr(ctypes.Structure):
    """BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM, GET_NEXT_KEY, LOOKUP_AND_DELETE_ELEM, FREEZE."""

    _anonymous_ = ("_u",)
    _fields_ = [
        ("map_fd", c_uint32),
        ("key", c_uint64),
        ("_u", _ValueOrNextKey),
        ("flags", c_uint64),
    ]


class _MapBatchAttr(ctypes.Structure):
    """BPF_MAP_*_BATCH (the ``batch`` member)."""

    _fields_ = [
        ("in_batch", c_uint64),
        ("out_batch", c_uint64),
        ("keys", c_uint64),
        ("values", c_uint64),
        ("count", c_uint32),
        ("map_fd", c_uint32),
        ("elem_flags", c_uint64),
        ("flags", c_uint64),
    ]


class _AttachProgOrBtfObj(ctypes.Union):
    _fields_ = [("attach_prog_fd", c_uint32), ("attach_btf_obj_fd", c_uint32)]


class _ProgLoadAttr(ctypes.Structure):
    """BPF_PROG_LOAD."""

    _anonymous_ = ("_u",)
    _fields_ = [
        ("prog_type", c_uint32),
        ("insn_cnt", c_uint32),
        ("insns", c_uint64),
        ("license", c_uint64),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", c_uint64),
        ("kern_version", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_name", c_char * BPF_OBJ_NAME_LEN),
        ("prog_ifindex", c_uint32),
        ("expected_attach_type", c_uint32),
        ("prog_btf_fd", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("func_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("line_info", c_uint64),
        ("line_info_cnt", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_u", _AttachProgOrBtfObj),
        ("core_relo_cnt", c_uint32),
        ("fd_array", c_uint64),
        ("core_relos", c_uint64),
        ("core_relo_rec_size", c_uint32),
        # newer than the installed header: v6.4, v6.9, v6.14
        ("log_true_size", c_uint32),
        ("prog_token_fd", c_int32),
        ("fd_array_cnt", c_uint32),
    ]


class _ObjAttr(ctypes.Structure):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [
        ("pathname", c_uint64),
        ("bpf_fd", c_uint32),
        ("file_flags", c_uint32),
        # newer than the installed header (v6.5)
        ("path_fd", c_int32),
    ]


class _TestRunAttr(ctypes.Structure):
    """BPF_PROG_TEST_RUN (the ``test`` member)."""

    _fields_ = [
        ("prog_fd", c_uint32),
        ("retval", c_uint32),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("data_in", c_uint64),
        ("data_out", c_uint64),
        ("repeat", c_uint32),
        ("duration", c_uint32),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("ctx_in", c_uint64),
        ("ctx_out", c_uint64),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class _ProgBindMapAttr(ctypes.Structure):
    """BPF_PROG_BIND_MAP (the ``prog_bind_map`` member, Linux 5.10)."""

    _fields_ = [("prog_fd", c_uint32), ("map_fd", c_uint32), ("flags", c_uint32)]


class _InfoAttr(ctypes.Structure):
    """BPF_OBJ_GET_INFO_BY_FD (the ``info`` member)."""

    _fields_ = [("bpf_fd", c_uint32), ("info_len", c_uint32), ("info", c_uint64)]


class _BtfLoadAttr(ctypes.Structure):
    """BPF_BTF_LOAD."""

    _fields_ = [
        ("btf", c_uint64),
        ("btf_log_buf", c_uint64),
        ("btf_size", c_uint32),
        ("btf_log_size", c_uint32),
        ("btf_log_level", c_uint32),
        # newer than the installed header: v6.4, v6.9
        ("btf_log_true_size", c_uint32),
        ("btf_flags", c_uint32),
        ("btf_token_fd", c_int32),
    ]


class _ProgInfoStruct(ctypes.Structure):
    """struct bpf_prog_info."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32, 1),
        ("_pad0", c_uint32, 31),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32),
        ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32),
        ("line_info", c_uint64),
        ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_pad1", c_uint32),
    ]


class _MapInfoStruct(ctypes.Structure):
    """struct bpf_map_info."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("_pad0", c_uint32),
        ("map_extra", c_uint64),
    ]


# For the layout test: our Structure -> (how C names the union member's fields,
# the first field, which identifies the anonymous struct in clang's record dump).
ATTR_LAYOUTS: dict[type[ctypes.Structure], str] = {
    _MapCreateAttr: "map_type",
    _MapElemAttr: "map_fd",
    _MapBatchAttr: "in_batch",
    _ProgLoadAttr: "prog_type",
    _ObjAttr: "pathname",
    _TestRunAttr: "prog_fd",
    _InfoAttr: "bpf_fd",
    _BtfLoadAttr: "btf",
}
INFO_LAYOUTS: dict[type[ctypes.Structure], str] = {
    _ProgInfoStruct: "bpf_prog_info",
    _MapInfoStruct: "bpf_map_info",
}


# --------------------------------------------------------------------------- plumbing


@functools.cache
def bpf_syscall_number() -> int:
    """``__NR_bpf`` for this machine; KernelUnavailable where we do not know it."""
    if platform.system() != "Linux":
        raise KernelUnavailable(f"bpf() needs Linux, this is {platform.system()}")
    machine = platform.machine().lower()
    try:
        return _SYSCALL_NUMBERS[machine]
    except KeyError:
        raise KernelUnavailable(
            f"no bpf() syscall number known for machine {machine!r} "
            f"(supported: {', '.join(sorted(_SYSCALL_NUMBERS))})"
        ) from None


@functools.cache
def _libc_syscall() -> ctypes._CFuncPtr:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
    return fn


def _raw_bpf(cmd: BpfCmd, attr: ctypes.Structure) -> tuple[int, int]:
    """One bpf() call: (return value, errno).  Retries EINTR, as every caller would."""
    fn = _libc_syscall()
    nr = bpf_syscall_number()
    while True:
        ctypes.set_errno(0)
        ret = fn(nr, int(cmd), ctypes.addressof(attr), ctypes.sizeof(attr))
        if ret >= 0:
            return ret, 0
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            return ret, err


def _bpf(cmd: BpfCmd, attr: ctypes.Structure, *, detail: str = "") -> int:
    ret, err = _raw_bpf(cmd, attr)
    if err:
        raise KernelError(f"BPF_{cmd.name}", err, detail=detail)
    return ret


def _ptr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _inbuf(data: bytes | bytearray | memoryview | None) -> ctypes.Array | None:
    """A C copy of input bytes (None for no data, so the kernel sees a NULL pointer)."""
    if data is None:
        return None
    data = bytes(data)
    return (c_uint8 * len(data)).from_buffer_copy(data) if data else None


def _outbuf(size: int) -> ctypes.Array | None:
    return (c_uint8 * size)() if size > 0 else None


def _name_bytes(name: str) -> bytes:
    raw = name.encode("ascii", "replace")[: BPF_OBJ_NAME_LEN - 1]
    return raw


# --------------------------------------------------------------------------- Fd


class Fd:
    """An owned kernel file descriptor (a program, map, BTF object...).

    ``close()`` is idempotent; the object is a context manager and closes itself when
    garbage-collected, so a forgotten program never leaks kernel memory for long."""

    __slots__ = ("__weakref__", "_fd")

    def __init__(self, fd: int) -> None:
        self._fd = int(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        """The raw number; KernelError(EBADF) once closed (using a stale number could
        silently hit an unrelated file the process opened since)."""
        if self._fd < 0:
            raise KernelError("use of file descriptor", _errno.EBADF, detail="already closed")
        return self._fd

    def __int__(self) -> int:
        return self.fileno()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Fd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may already be torn down
            pass

    def __repr__(self) -> str:
        return f"Fd({self._fd})" if self._fd >= 0 else "Fd(closed)"


# --------------------------------------------------------------------------- programs

_LOG_START = 256 * 1024
_LOG_MAX = 64 * 1024 * 1024


def _decode_log(buf: ctypes.Array | None) -> str:
    if buf is None:
        return ""
    return bytes(buf).split(b"\0", 1)[0].decode("utf-8", "replace")


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    name: str = "",
    expected_attach_type: int = 0,
    prog_flags: int = 0,
    kern_version: int = 0,
    prog_ifindex: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    attach_btf_id: int = 0,
    attach_prog_fd: int = 0,
    fd_array: Sequence[int] = (),
    log_level: int = 0,
    log_size: int = _LOG_START,
) -> tuple[Fd, str]:
    """BPF_PROG_LOAD.  Returns the program fd and the verifier log (empty unless
    ``log_level`` was asked for).

    Like libbpf, the first attempt asks for no log (logging makes verification slower
    and, on kernels >= 6.4, a too-small buffer fails the load with ENOSPC); if the load
    fails it is repeated with ``log_level=1`` so the error carries the verifier's
    reason.  A log that does not fit is retried with a bigger buffer (the kernel's
    ``log_true_size`` says how big, where it reports it)."""
    if len(insns) % 8 or not insns:
        raise KernelError(
            "BPF_PROG_LOAD",
            _errno.EINVAL,
            detail=f"program is {len(insns)} bytes; need a non-empty multiple of 8",
        )
    insn_buf = _inbuf(insns)
    license_buf = ctypes.create_string_buffer(license.encode("ascii", "replace"))
    func_buf = _inbuf(func_info)
    line_buf = _inbuf(line_info)
    fds = (c_int32 * len(fd_array))(*fd_array) if fd_array else None
    what = f"prog '{name}'" if name else "program"

    def attempt(level: int, size: int) -> tuple[int, int, str, int]:
        log_buf = _outbuf(size) if level else None
        attr = _ProgLoadAttr(
            prog_type=prog_type,
            insn_cnt=len(insns) // 8,
            insns=_ptr(insn_buf),
            license=ctypes.addressof(license_buf),
            log_level=level,
            log_size=size if level else 0,
            log_buf=_ptr(log_buf),
            kern_version=kern_version,
            prog_flags=prog_flags,
            prog_name=_name_bytes(name),
            prog_ifindex=prog_ifindex,
            expected_attach_type=expected_attach_type,
            prog_btf_fd=prog_btf_fd,
            func_info_rec_size=func_info_rec_size if func_info else 0,
            func_info=_ptr(func_buf),
            func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
            line_info_rec_size=line_info_rec_size if line_info else 0,
            line_info=_ptr(line_buf),
            line_info_cnt=len(line_info) // line_info_rec_size if line_info else 0,
            attach_btf_id=attach_btf_id,
            fd_array=_ptr(fds),
        )
        attr.attach_prog_fd = attach_prog_fd
        # EAGAIN: the verifier gave up on a signal/resched; libbpf retries too.
        for _ in range(5):
            ret, err = _raw_bpf(BpfCmd.PROG_LOAD, attr)
            if err != _errno.EAGAIN:
                break
        return ret, err, _decode_log(log_buf), attr.log_true_size

    level, size = log_level, max(int(log_size), 4096)
    ret, err, log, true_size = attempt(level, size)
    if err and level == 0:
        level = 1
        ret, err, log, true_size = attempt(level, size)
    while err == _errno.ENOSPC and level and size < _LOG_MAX:
        size = min(_LOG_MAX, max(size * 4, true_size + 1))
        ret, err, log, true_size = attempt(level, size)
    if err:
        raise KernelError(
            "BPF_PROG_LOAD", err, log=log, detail=what if log else f"{what}: {_strerror(err)}"
        )
    return Fd(ret), log


@dataclass(frozen=True)
class TestRunOutput:
    """What BPF_PROG_TEST_RUN wrote back.  ``truncated`` is set when the kernel said
    ENOSPC: the program did run, but data_out/ctx_out were cut to the buffers given and
    ``data_size_out``/``ctx_size_out`` hold the sizes the kernel wanted."""

    __test__ = False

    retval: int
    duration: int
    data_out: bytes | None
    data_size_out: int
    ctx_out: bytes | None
    ctx_size_out: int
    truncated: bool


def prog_test_run(
    prog_fd: int,
    *,
    data_in: bytes = b"",
    data_size_out: int = 0,
    ctx_in: bytes | None = None,
    ctx_size_out: int = 0,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
) -> TestRunOutput:
    """BPF_PROG_TEST_RUN.  ``data_size_out``/``ctx_size_out`` of 0 mean "no output
    buffer" (a NULL pointer): never a pointer with size 0, which old kernels take as
    "copy everything" and would overrun."""
    din = _inbuf(data_in)
    cin = _inbuf(ctx_in)
    dout = _outbuf(data_size_out)
    cout = _outbuf(ctx_size_out)
    attr = _TestRunAttr(
        prog_fd=prog_fd,
        data_size_in=len(data_in),
        data_size_out=data_size_out,
        data_in=_ptr(din),
        data_out=_ptr(dout),
        repeat=repeat,
        ctx_size_in=len(ctx_in) if ctx_in is not None else 0,
        ctx_size_out=ctx_size_out,
        ctx_in=_ptr(cin),
        ctx_out=_ptr(cout),
        flags=flags,
        cpu=cpu,
        batch_size=batch_size,
    )
    _ret, err = _raw_bpf(BpfCmd.PROG_TEST_RUN, attr)
    if err and err != _errno.ENOSPC:
        raise KernelError("BPF_PROG_TEST_RUN", err, detail=_strerror(err))
    d_size = attr.data_size_out
    c_size = attr.ctx_size_out
    return TestRunOutput(
        retval=attr.retval,
        duration=attr.duration,
        data_out=bytes(dout)[: min(d_size, data_size_out)] if dout is not None else None,
        data_size_out=d_size,
        ctx_out=bytes(cout)[: min(c_size, ctx_size_out)] if cout is not None else None,
        ctx_size_out=c_size,
        truncated=err == _errno.ENOSPC,
    )


# --------------------------------------------------------------------------- maps


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    map_flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    numa_node: int = 0,
    map_ifindex: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    map_extra: int = 0,
) -> Fd:
    """BPF_MAP_CREATE."""
    attr = _MapCreateAttr(
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=map_flags,
        inner_map_fd=inner_map_fd,
        numa_node=numa_node,
        map_name=_name_bytes(name),
        map_ifindex=map_ifindex,
        btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
        map_extra=map_extra,
    )
    what = f"map '{name}'" if name else "map"
    ret, err = _raw_bpf(BpfCmd.MAP_CREATE, attr)
    if err:
        raise KernelError(
            "BPF_MAP_CREATE",
            err,
            detail=f"{what} (type {map_type}, key {key_size}, value {value_size}, "
            f"max_entries {max_entries}, flags {map_flags:#x}): {_strerror(err)}",
        )
    return Fd(ret)


def _elem(
    cmd: BpfCmd, map_fd: int, key: bytes | None, value_ptr: int, flags: int
) -> tuple[int, ctypes.Array | None]:
    kbuf = _inbuf(key)
    attr = _MapElemAttr(map_fd=map_fd, key=_ptr(kbuf), flags=flags)
    attr.value = value_ptr
    _ret, err = _raw_bpf(cmd, attr)
    return err, kbuf


def _elem_error(cmd: BpfCmd, err: int) -> KernelError:
    return KernelError(f"BPF_{cmd.name}", err, detail=_strerror(err))


def map_lookup_elem(map_fd: int, key: bytes | None, value_size: int, *, flags: int = 0) -> bytes:
    """BPF_MAP_LOOKUP_ELEM (key None: peek a queue/stack).  KernelError(ENOENT) when
    absent.  ``value_size`` is the full buffer size (per-CPU maps: all CPUs)."""
    vbuf = (c_uint8 * max(value_size, 1))()
    err, _ = _elem(BpfCmd.MAP_LOOKUP_ELEM, map_fd, key, ctypes.addressof(vbuf), flags)
    if err:
        raise _elem_error(BpfCmd.MAP_LOOKUP_ELEM, err)
    return bytes(vbuf)[:value_size]


def map_update_elem(map_fd: int, key: bytes | None, value: bytes, *, flags: int = 0) -> None:
    """BPF_MAP_UPDATE_ELEM (key None: push onto a queue/stack)."""
    vbuf = _inbuf(value) if value else (c_uint8 * 1)()
    err, _ = _elem(BpfCmd.MAP_UPDATE_ELEM, map_fd, key, _ptr(vbuf), flags)
    if err:
        raise _elem_error(BpfCmd.MAP_UPDATE_ELEM, err)


def map_delete_elem(map_fd: int, key: bytes, *, flags: int = 0) -> None:
    """BPF_MAP_DELETE_ELEM."""
    err, _ = _elem(BpfCmd.MAP_DELETE_ELEM, map_fd, key, 0, flags)
    if err:
        raise _elem_error(BpfCmd.MAP_DELETE_ELEM, err)


def map_get_next_key(map_fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """BPF_MAP_GET_NEXT_KEY: the key after ``key`` (None: the first key), or None at the
    end (the kernel's ENOENT)."""
    nbuf = (c_uint8 * max(key_size, 1))()
    err, _ = _elem(BpfCmd.MAP_GET_NEXT_KEY, map_fd, key, ctypes.addressof(nbuf), 0)
    if err == _errno.ENOENT:
        return None
    if err:
        raise _elem_error(BpfCmd.MAP_GET_NEXT_KEY, err)
    return bytes(nbuf)[:key_size]


def map_lookup_and_delete_elem(
    map_fd: int, key: bytes | None, value_size: int, *, flags: int = 0
) -> bytes:
    """BPF_MAP_LOOKUP_AND_DELETE_ELEM (key None: pop a queue/stack)."""
    vbuf = (c_uint8 * max(value_size, 1))()
    err, _ = _elem(BpfCmd.MAP_LOOKUP_AND_DELETE_ELEM, map_fd, key, ctypes.addressof(vbuf), flags)
    if err:
        raise _elem_error(BpfCmd.MAP_LOOKUP_AND_DELETE_ELEM, err)
    return bytes(vbuf)[:value_size]


def map_freeze(map_fd: int) -> None:
    """BPF_MAP_FREEZE: no more writes from user space."""
    attr = _MapElemAttr(map_fd=map_fd)
    _bpf(BpfCmd.MAP_FREEZE, attr)


def _batch_lookup(
    cmd: BpfCmd,
    map_fd: int,
    key_size: int,
    value_size: int,
    count: int,
    in_batch: bytes | None,
    batch_token_size: int,
    elem_flags: int,
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    keys = (c_uint8 * max(key_size * count, 1))()
    values = (c_uint8 * max(value_size * count, 1))()
    inb = _inbuf(in_batch)
    outb = (c_uint8 * max(batch_token_size, 1))()
    attr = _MapBatchAttr(
        in_batch=_ptr(inb),
        out_batch=ctypes.addressof(outb),
        keys=ctypes.addressof(keys),
        values=ctypes.addressof(values),
        count=count,
        map_fd=map_fd,
        elem_flags=elem_flags,
    )
    _ret, err = _raw_bpf(cmd, attr)
    # ENOENT: this batch reached the end of the map (it may still hold entries).
    if err and err != _errno.ENOENT:
        raise KernelError(f"BPF_{cmd.name}", err, detail=_strerror(err))
    n = attr.count
    kb, vb = bytes(keys), bytes(values)
    out = [
        (kb[i * key_size : (i + 1) * key_size], vb[i * value_size : (i + 1) * value_size])
        for i in range(n)
    ]
    return out, (None if err == _errno.ENOENT else bytes(outb)[:batch_token_size])


def map_lookup_batch(
    map_fd: int,
    key_size: int,
    value_size: int,
    *,
    count: int,
    in_batch: bytes | None = None,
    batch_token_size: int = 8,
    elem_flags: int = 0,
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """BPF_MAP_LOOKUP_BATCH: up to ``count`` (key, value) pairs starting at the opaque
    position ``in_batch`` (None: the beginning), and the next position (None: done).
    The position token is a key for hash maps and a u32 index for arrays; pass
    ``batch_token_size`` accordingly (the larger of 8 and key_size is always safe)."""
    return _batch_lookup(
        BpfCmd.MAP_LOOKUP_BATCH,
        map_fd,
        key_size,
        value_size,
        count,
        in_batch,
        batch_token_size,
        elem_flags,
    )


def map_lookup_and_delete_batch(
    map_fd: int,
    key_size: int,
    value_size: int,
    *,
    count: int,
    in_batch: bytes | None = None,
    batch_token_size: int = 8,
    elem_flags: int = 0,
) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """BPF_MAP_LOOKUP_AND_DELETE_BATCH (see :func:`map_lookup_batch`)."""
    return _batch_lookup(
        BpfCmd.MAP_LOOKUP_AND_DELETE_BATCH,
        map_fd,
        key_size,
        value_size,
        count,
        in_batch,
        batch_token_size,
        elem_flags,
    )


def map_update_batch(
    map_fd: int, keys: bytes, values: bytes, count: int, *, elem_flags: int = 0
) -> int:
    """BPF_MAP_UPDATE_BATCH of ``count`` packed keys and values; returns how many the
    kernel processed (it stops at the first failure, and says so with an error)."""
    kbuf, vbuf = _inbuf(keys), _inbuf(values)
    attr = _MapBatchAttr(
        keys=_ptr(kbuf), values=_ptr(vbuf), count=count, map_fd=map_fd, elem_flags=elem_flags
    )
    _ret, err = _raw_bpf(BpfCmd.MAP_UPDATE_BATCH, attr)
    if err:
        raise KernelError(
            "BPF_MAP_UPDATE_BATCH",
            err,
            detail=f"after {attr.count} of {count} elements: {_strerror(err)}",
        )
    return attr.count


def map_delete_batch(map_fd: int, keys: bytes, count: int, *, elem_flags: int = 0) -> int:
    """BPF_MAP_DELETE_BATCH of ``count`` packed keys; returns how many were deleted."""
    kbuf = _inbuf(keys)
    attr = _MapBatchAttr(keys=_ptr(kbuf), count=count, map_fd=map_fd, elem_flags=elem_flags)
    _ret, err = _raw_bpf(BpfCmd.MAP_DELETE_BATCH, attr)
    if err:
        raise KernelError(
            "BPF_MAP_DELETE_BATCH",
            err,
            detail=f"after {attr.count} of {count} elements: {_strerror(err)}",
        )
    return attr.count


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs: the kernel sizes per-CPU map values by it (every
    per-CPU value crosses bpf() as ``round_up(value_size, 8) * possible_cpus``)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += (int(hi) - int(lo) + 1) if hi else 1
    return n


# --------------------------------------------------------------------------- BTF, objects


def btf_load(data: bytes, *, log_level: int = 0, log_size: int = _LOG_START) -> tuple[Fd, str]:
    """BPF_BTF_LOAD; on failure retried with a log so the error says why."""
    dbuf = _inbuf(data)

    def attempt(level: int, size: int) -> tuple[int, int, str, int]:
        log_buf = _outbuf(size) if level else None
        attr = _BtfLoadAttr(
            btf=_ptr(dbuf),
            btf_log_buf=_ptr(log_buf),
            btf_size=len(data),
            btf_log_size=size if level else 0,
            btf_log_level=level,
        )
        ret, err = _raw_bpf(BpfCmd.BTF_LOAD, attr)
        return ret, err, _decode_log(log_buf), attr.btf_log_true_size

    level, size = log_level, max(int(log_size), 4096)
    ret, err, log, true_size = attempt(level, size)
    if err and level == 0:
        level = 1
        ret, err, log, true_size = attempt(level, size)
    while err == _errno.ENOSPC and level and size < _LOG_MAX:
        size = min(_LOG_MAX, max(size * 4, true_size + 1))
        ret, err, log, true_size = attempt(level, size)
    if err:
        raise KernelError("BPF_BTF_LOAD", err, log=log, detail=_strerror(err))
    return Fd(ret), log


def prog_bind_map(prog_fd: int, map_fd: int) -> None:
    """BPF_PROG_BIND_MAP: make a program hold a map it does not reference in its code
    (libbpf binds .rodata maps so program metadata stays reachable)."""
    _bpf(BpfCmd.PROG_BIND_MAP, _ProgBindMapAttr(prog_fd=prog_fd, map_fd=map_fd))


def obj_pin(fd: int, path: str | os.PathLike[str]) -> None:
    """BPF_OBJ_PIN: give an object a name in a bpffs mount."""
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    attr = _ObjAttr(pathname=ctypes.addressof(pbuf), bpf_fd=fd)
    _bpf(BpfCmd.OBJ_PIN, attr, detail=f"{os.fspath(path)!r}")


def obj_get(path: str | os.PathLike[str], *, file_flags: int = 0) -> Fd:
    """BPF_OBJ_GET: open a pinned object."""
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    attr = _ObjAttr(pathname=ctypes.addressof(pbuf), file_flags=file_flags)
    return Fd(_bpf(BpfCmd.OBJ_GET, attr, detail=f"{os.fspath(path)!r}"))


# --------------------------------------------------------------------------- info


@dataclass(frozen=True)
class ProgInfo:
    """The useful part of ``struct bpf_prog_info``."""

    type: int
    id: int
    tag: str
    name: str
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    map_ids: tuple[int, ...]
    gpl_compatible: bool
    btf_id: int
    run_time_ns: int
    run_cnt: int
    verified_insns: int


def _get_info(fd: int, info: ctypes.Structure) -> None:
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr)


def prog_info(fd: int) -> ProgInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a program (two calls: the second fetches map ids)."""
    info = _ProgInfoStruct()
    _get_info(fd, info)
    n = info.nr_map_ids
    ids = (c_uint32 * max(n, 1))()
    if n:
        info2 = _ProgInfoStruct(nr_map_ids=n, map_ids=ctypes.addressof(ids))
        _get_info(fd, info2)
        n = min(n, info2.nr_map_ids)
    return ProgInfo(
        type=info.type,
        id=info.id,
        tag=bytes(info.tag).hex(),
        name=info.name.decode("ascii", "replace"),
        jited_prog_len=info.jited_prog_len,
        xlated_prog_len=info.xlated_prog_len,
        load_time=info.load_time,
        created_by_uid=info.created_by_uid,
        map_ids=tuple(ids[:n]),
        gpl_compatible=bool(info.gpl_compatible),
        btf_id=info.btf_id,
        run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt,
        verified_insns=info.verified_insns,
    )


def prog_xlated(fd: int) -> bytes:
    """The program as the kernel keeps it after verification (rewritten ctx accesses,
    resolved map pointers), as raw instruction bytes."""
    info = _ProgInfoStruct()
    _get_info(fd, info)
    size = info.xlated_prog_len
    if not size:
        return b""
    buf = (c_uint8 * size)()
    info2 = _ProgInfoStruct(xlated_prog_len=size, xlated_prog_insns=ctypes.addressof(buf))
    _get_info(fd, info2)
    return bytes(buf)[: min(size, info2.xlated_prog_len)]


def map_info(fd: int) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a map."""
    info = _MapInfoStruct()
    _get_info(fd, info)
    return MapInfo(
        type=info.type,
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        map_flags=info.map_flags,
        name=info.name.decode("ascii", "replace"),
        btf_id=info.btf_id,
        btf_key_type_id=info.btf_key_type_id,
        btf_value_type_id=info.btf_value_type_id,
        map_extra=info.map_extra,
    )
