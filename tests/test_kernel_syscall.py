"""The private bpf() layer: Fd lifetimes, raw test runs, BTF loading."""

from __future__ import annotations

import errno
import gc
import os
import struct

import pytest

from netbpf.errors import KernelError
from netbpf.kernel import KernelBackend
from netbpf.kernel import syscall as sysc
from netbpf.uapi import ProgramType

RET2 = bytes.fromhex("b7000000020000009500000000000000")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_fd_close_is_idempotent_and_a_context_manager(kernel: KernelBackend) -> None:
    fd, _ = sysc.prog_load(int(ProgramType.SOCKET_FILTER), RET2)
    raw = fd.fileno()
    assert int(fd) == raw and _is_open(raw)
    with fd as same:
        assert same is fd
    assert fd.closed and not _is_open(raw)
    fd.close()
    with pytest.raises(KernelError) as ei:
        fd.fileno()
    assert ei.value.errno == errno.EBADF
    assert repr(fd) == "Fd(closed)"


def test_fd_closed_when_collected(kernel: KernelBackend) -> None:
    fd, _ = sysc.prog_load(int(ProgramType.SOCKET_FILTER), RET2)
    raw = fd.fileno()
    del fd
    gc.collect()
    assert not _is_open(raw)


def test_raw_test_run_reports_enospc_as_truncated(kernel: KernelBackend) -> None:
    with sysc.prog_load(int(ProgramType.XDP), RET2)[0] as fd:
        pkt = bytes(64)
        out = sysc.prog_test_run(fd.fileno(), data_in=pkt, data_size_out=10)
        assert out.truncated and out.retval == 2
        assert out.data_size_out == 64 and out.data_out == bytes(10)
        out = sysc.prog_test_run(fd.fileno(), data_in=pkt)  # no data_out buffer at all
        assert not out.truncated and out.data_out is None and out.retval == 2


def test_prog_load_rejects_bad_lengths() -> None:
    for raw in (b"", b"\x95\x00\x00"):
        with pytest.raises(KernelError) as ei:
            sysc.prog_load(int(ProgramType.XDP), raw)
        assert ei.value.errno == errno.EINVAL


def _btf_int_u32() -> bytes:
    """A minimal BTF blob: one type, ``unsigned int`` (INT, 32 bits)."""
    strings = b"\0unsigned int\0"
    # struct btf_type: name_off, info (kind INT=1 << 24), size; then the INT word:
    # encoding 0 (unsigned), offset 0, bits 32.
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", 32)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_btf_load(kernel: KernelBackend) -> None:
    fd, log = sysc.btf_load(_btf_int_u32())
    with fd:
        assert fd.fileno() >= 0 and log == ""


def test_btf_load_failure_carries_log(kernel: KernelBackend) -> None:
    blob = bytearray(_btf_int_u32())
    struct.pack_into("<I", blob, 24 + 12, 33)  # an INT of 33 bits is invalid
    with pytest.raises(KernelError) as ei:
        sysc.btf_load(bytes(blob))
    assert ei.value.op == "BPF_BTF_LOAD"
    assert ei.value.errno == errno.EINVAL
    assert ei.value.log.strip()


def test_errno_name() -> None:
    assert sysc.errno_name(errno.ENOENT) == "ENOENT"
    assert sysc.errno_name(sysc.ENOTSUPP) == "ENOTSUPP"
    assert sysc.errno_name(100000) == "errno 100000"
