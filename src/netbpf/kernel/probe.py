"""Feature probes: ask the running kernel what it can do, once, and remember.

Each probe answers with :class:`Support` (``YES``, ``NO`` or ``UNKNOWN`` - "could not
tell") and a reason a human can act on, so a skipped test says *why*
("bpf() refused: EPERM, not root").  Probes never raise: a probe that cannot decide
says ``UNKNOWN`` and keeps the error as its reason.  Tests skip on probes, not on
guesses (libbpf's ``libbpf_probe_bpf_prog_type`` and cilium/ebpf's ``features``
package work the same way).
"""

from __future__ import annotations

import errno as _errno
import functools
import os
from dataclasses import dataclass
from enum import Enum

from netbpf.errors import KernelError, KernelUnavailable, NetbpfError
from netbpf.kernel import syscall as _sys
from netbpf.uapi import AttachType, MapType, ProgramType

__all__ = [
    "ProbeResult",
    "Support",
    "bpf_usable",
    "map_type_supported",
    "prog_type_supported",
    "test_run_supported",
]


class Support(Enum):
    """Tri-state answer of a probe."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeResult:
    """A probe's answer and why.  Truthy only for ``Support.YES``."""

    support: Support
    reason: str = ""

    def __bool__(self) -> bool:
        return self.support is Support.YES

    def __str__(self) -> str:
        return f"{self.support.value}: {self.reason}" if self.reason else self.support.value


_F_SLEEPABLE = 1 << 4

# r0 = 0; exit
_RET0 = bytes.fromhex("b7000000000000009500000000000000")

# Program types whose load needs an expected_attach_type, and the one we probe with.
_PROBE_ATTACH: dict[ProgramType, AttachType] = {
    ProgramType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgramType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
    ProgramType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgramType.CGROUP_SOCK: AttachType.CGROUP_INET_SOCK_CREATE,
    ProgramType.FLOW_DISSECTOR: AttachType.FLOW_DISSECTOR,
    ProgramType.XDP: AttachType.XDP,
}
if "NETFILTER" in AttachType.__members__:
    _PROBE_ATTACH[ProgramType.NETFILTER] = AttachType.NETFILTER

# Types that cannot be loaded without a BTF attach target: a 2-insn probe says nothing.
_NEEDS_BTF_TARGET = {
    ProgramType.TRACING,
    ProgramType.STRUCT_OPS,
    ProgramType.EXT,
    ProgramType.LSM,
}


def _seccomp_mode() -> str:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    return {"0": "off", "1": "strict", "2": "filter"}.get(
                        line.split()[1], line.split()[1]
                    )
    except OSError:
        pass
    return "unknown"


_CAP_SYS_ADMIN = 21
_CAP_BPF = 39


def _capabilities() -> str:
    """Which of CAP_BPF / CAP_SYS_ADMIN the process holds (what bpf() checks)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    eff = int(line.split()[1], 16)
                    held = [
                        name
                        for name, bit in (("CAP_BPF", _CAP_BPF), ("CAP_SYS_ADMIN", _CAP_SYS_ADMIN))
                        if eff >> bit & 1
                    ]
                    return "holds " + ", ".join(held) if held else "no CAP_BPF or CAP_SYS_ADMIN"
    except (OSError, ValueError, IndexError):
        pass
    return "capabilities unknown"


def _unprivileged_setting() -> str:
    try:
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


@functools.cache
def bpf_usable() -> ProbeResult:
    """Can this process use bpf() at all?  Loads a 2-instruction socket filter, the
    most widely available program type."""
    try:
        _sys.bpf_syscall_number()
    except KernelUnavailable as e:
        return ProbeResult(Support.NO, str(e))
    try:
        fd, _ = _sys.prog_load(ProgramType.SOCKET_FILTER, _RET0, name="netbpf_probe")
    except KernelError as e:
        if e.errno == _errno.EPERM:
            uid = os.geteuid()
            why = (
                f"bpf() refused with EPERM (euid {uid}"
                f"{', not root' if uid else ''}; {_capabilities()}; "
                f"kernel.unprivileged_bpf_disabled={_unprivileged_setting()}; "
                f"seccomp {_seccomp_mode()})"
            )
            return ProbeResult(Support.NO, why)
        if e.errno == _errno.ENOSYS:
            return ProbeResult(
                Support.NO,
                f"bpf() is not implemented (ENOSYS): kernel without CONFIG_BPF_SYSCALL "
                f"or blocked by seccomp ({_seccomp_mode()})",
            )
        return ProbeResult(Support.UNKNOWN, f"probe load of a socket filter failed: {e}")
    except (NetbpfError, OSError) as e:
        return ProbeResult(Support.UNKNOWN, f"probe failed: {e}")
    fd.close()
    return ProbeResult(Support.YES, "bpf() loads programs")


def _load_probe(prog_type: ProgramType) -> tuple[_sys.Fd | None, ProbeResult]:
    usable = bpf_usable()
    if not usable:
        return None, ProbeResult(
            Support.UNKNOWN if usable.support is Support.UNKNOWN else Support.NO,
            f"bpf() unusable: {usable.reason}",
        )
    if prog_type in _NEEDS_BTF_TARGET:
        return None, ProbeResult(
            Support.UNKNOWN, f"{prog_type.name} needs a BTF attach target; not probed"
        )
    attach = _PROBE_ATTACH.get(prog_type)
    try:
        fd, _ = _sys.prog_load(
            int(prog_type),
            _RET0,
            name="netbpf_probe",
            expected_attach_type=int(attach) if attach is not None else 0,
            # syscall programs exist only as sleepable ones
            prog_flags=_F_SLEEPABLE if prog_type == ProgramType.SYSCALL else 0,
        )
    except KernelError as e:
        if e.errno in (_errno.EINVAL, _errno.ENOTSUP, _sys.ENOTSUPP):
            return None, ProbeResult(
                Support.NO, f"kernel refused to load a {prog_type.name} program: {e}"
            )
        return None, ProbeResult(Support.UNKNOWN, f"probe load of {prog_type.name} failed: {e}")
    except (NetbpfError, OSError) as e:
        return None, ProbeResult(Support.UNKNOWN, f"probe of {prog_type.name} failed: {e}")
    return fd, ProbeResult(Support.YES, f"{prog_type.name} programs load")


@functools.cache
def prog_type_supported(prog_type: ProgramType | int) -> ProbeResult:
    """Does the kernel load a ``r0 = 0; exit`` program of this type?"""
    try:
        ptype = ProgramType(prog_type)
    except ValueError:
        return ProbeResult(Support.NO, f"program type {prog_type} is unknown to netbpf")
    fd, result = _load_probe(ptype)
    if fd is not None:
        fd.close()
    return result


# A packet every networking test_run accepts: 64 zero bytes with an IPv4 ethertype.
_PROBE_PACKET = bytes(12) + b"\x08\x00" + bytes(50)


@functools.cache
def test_run_supported(prog_type: ProgramType | int) -> ProbeResult:
    """Does BPF_PROG_TEST_RUN work for this type?  Runs the 2-insn program on a 64-byte
    packet; the kernel's ENOTSUPP means the type has no test_run."""
    try:
        ptype = ProgramType(prog_type)
    except ValueError:
        return ProbeResult(Support.NO, f"program type {prog_type} is unknown to netbpf")
    fd, loaded = _load_probe(ptype)
    if fd is None:
        return ProbeResult(
            loaded.support if loaded.support is not Support.YES else Support.UNKNOWN,
            f"cannot load a probe program: {loaded.reason}",
        )
    try:
        with fd:
            _sys.prog_test_run(fd.fileno(), data_in=_PROBE_PACKET, data_size_out=4096)
    except KernelError as e:
        if e.errno in (_sys.ENOTSUPP, _errno.ENOTSUP):
            return ProbeResult(
                Support.NO, f"BPF_PROG_TEST_RUN is not supported for {ptype.name} programs"
            )
        return ProbeResult(
            Support.UNKNOWN,
            f"BPF_PROG_TEST_RUN of a {ptype.name} probe failed with "
            f"{_sys.errno_name(e.errno)} (the type may need other input)",
        )
    except (NetbpfError, OSError) as e:
        return ProbeResult(Support.UNKNOWN, f"test_run probe of {ptype.name} failed: {e}")
    return ProbeResult(Support.YES, f"BPF_PROG_TEST_RUN runs {ptype.name} programs")


# Its name starts with "test_": keep pytest from collecting it where it is imported.
test_run_supported.__test__ = False  # type: ignore[attr-defined]

_F_NO_PREALLOC = 1
_F_MMAPABLE = 1 << 10

# map type -> (key_size, value_size, max_entries, flags) the kernel accepts.
_MAP_PROBE_PARAMS: dict[str, tuple[int, int, int, int]] = {
    "HASH": (4, 8, 1, 0),
    "ARRAY": (4, 8, 1, 0),
    "PROG_ARRAY": (4, 4, 1, 0),
    "PERF_EVENT_ARRAY": (4, 4, 1, 0),
    "PERCPU_HASH": (4, 8, 1, 0),
    "PERCPU_ARRAY": (4, 8, 1, 0),
    "STACK_TRACE": (4, 8, 1, 0),
    "CGROUP_ARRAY": (4, 4, 1, 0),
    "LRU_HASH": (4, 8, 1, 0),
    "LRU_PERCPU_HASH": (4, 8, 1, 0),
    "LPM_TRIE": (8, 8, 1, _F_NO_PREALLOC),
    "ARRAY_OF_MAPS": (4, 4, 1, 0),
    "HASH_OF_MAPS": (4, 4, 1, 0),
    "DEVMAP": (4, 4, 1, 0),
    "SOCKMAP": (4, 4, 1, 0),
    "CPUMAP": (4, 4, 1, 0),
    "XSKMAP": (4, 4, 1, 0),
    "SOCKHASH": (4, 4, 1, 0),
    "CGROUP_STORAGE": (16, 8, 0, 0),
    "REUSEPORT_SOCKARRAY": (4, 4, 1, 0),
    "PERCPU_CGROUP_STORAGE": (16, 8, 0, 0),
    "QUEUE": (0, 4, 1, 0),
    "STACK": (0, 4, 1, 0),
    "DEVMAP_HASH": (4, 4, 1, 0),
    "RINGBUF": (0, 0, 4096, 0),
    "BLOOM_FILTER": (0, 4, 1, 0),
    "USER_RINGBUF": (0, 0, 4096, 0),
    "ARENA": (0, 0, 1, _F_MMAPABLE),
}
_MAP_NEEDS_BTF = {"SK_STORAGE", "INODE_STORAGE", "TASK_STORAGE", "CGRP_STORAGE", "STRUCT_OPS"}


@functools.cache
def map_type_supported(map_type: MapType | int) -> ProbeResult:
    """Does BPF_MAP_CREATE accept a small map of this type?"""
    try:
        mtype = MapType(map_type)
    except ValueError:
        return ProbeResult(Support.NO, f"map type {map_type} is unknown to netbpf")
    usable = bpf_usable()
    if not usable:
        return ProbeResult(
            Support.UNKNOWN if usable.support is Support.UNKNOWN else Support.NO,
            f"bpf() unusable: {usable.reason}",
        )
    if mtype.name in _MAP_NEEDS_BTF:
        return ProbeResult(Support.UNKNOWN, f"{mtype.name} maps need BTF; not probed")
    params = _MAP_PROBE_PARAMS.get(mtype.name)
    if params is None:
        return ProbeResult(Support.UNKNOWN, f"no probe parameters known for {mtype.name}")
    key, value, entries, flags = params
    inner: _sys.Fd | None = None
    try:
        if mtype.name in ("ARRAY_OF_MAPS", "HASH_OF_MAPS"):
            inner = _sys.map_create(int(MapType.ARRAY), 4, 4, 1, name="netbpf_probe_in")
        fd = _sys.map_create(
            int(mtype),
            key,
            value,
            entries,
            map_flags=flags,
            name="netbpf_probe",
            inner_map_fd=inner.fileno() if inner is not None else 0,
        )
    except KernelError as e:
        if e.errno in (_errno.EINVAL, _errno.ENOTSUP, _sys.ENOTSUPP):
            return ProbeResult(
                Support.NO,
                f"kernel refused to create a {mtype.name} map ({_sys.errno_name(e.errno)})",
            )
        return ProbeResult(Support.UNKNOWN, f"probe of {mtype.name} map failed: {e}")
    except (NetbpfError, OSError) as e:
        return ProbeResult(Support.UNKNOWN, f"probe of {mtype.name} map failed: {e}")
    finally:
        if inner is not None:
            inner.close()
    fd.close()
    return ProbeResult(Support.YES, f"{mtype.name} maps can be created")
