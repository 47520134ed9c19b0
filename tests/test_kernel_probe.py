"""Feature probes: tri-state, cached, never raising - on the real kernel and on a
simulated unusable one."""

from __future__ import annotations

import errno

import pytest

from netbpf.errors import KernelUnavailable
from netbpf.kernel import (
    KernelBackend,
    ProbeResult,
    Support,
    bpf_usable,
    map_type_supported,
    probe,
    prog_type_supported,
    test_run_supported,
)
from netbpf.kernel import syscall as sysc
from netbpf.uapi import MapType, ProgramType

_CACHED = (
    probe.bpf_usable,
    probe.prog_type_supported,
    probe.test_run_supported,
    probe.map_type_supported,
)


@pytest.fixture
def fresh_probes():
    """Clear the probe caches before and after, so a faked kernel does not leak."""
    for fn in _CACHED:
        fn.cache_clear()
    yield
    for fn in _CACHED:
        fn.cache_clear()


def test_probe_result_truthiness() -> None:
    assert ProbeResult(Support.YES, "x")
    assert not ProbeResult(Support.NO, "x")
    assert not ProbeResult(Support.UNKNOWN, "x")
    assert str(ProbeResult(Support.NO, "because")) == "no: because"


def test_real_kernel_probes(kernel: KernelBackend) -> None:
    assert bpf_usable().support is Support.YES
    for t in (
        ProgramType.XDP,
        ProgramType.SCHED_CLS,
        ProgramType.SOCKET_FILTER,
        ProgramType.CGROUP_SKB,
        ProgramType.CGROUP_SOCK_ADDR,
        ProgramType.SK_LOOKUP,
    ):
        assert prog_type_supported(t).support is Support.YES, t
    for t in (
        ProgramType.XDP,
        ProgramType.SCHED_CLS,
        ProgramType.SOCKET_FILTER,
        ProgramType.CGROUP_SKB,
        ProgramType.LWT_IN,
        ProgramType.FLOW_DISSECTOR,
    ):
        assert test_run_supported(t).support is Support.YES, t
    r = test_run_supported(ProgramType.KPROBE)
    assert r.support is Support.NO and "not supported" in r.reason
    for m in (
        MapType.HASH,
        MapType.ARRAY,
        MapType.LPM_TRIE,
        MapType.QUEUE,
        MapType.RINGBUF,
        MapType.HASH_OF_MAPS,
        MapType.DEVMAP,
    ):
        assert map_type_supported(m).support is Support.YES, m
    assert map_type_supported(MapType.SK_STORAGE).support is Support.UNKNOWN
    assert prog_type_supported(ProgramType.TRACING).support is Support.UNKNOWN


def test_probes_are_cached(kernel: KernelBackend) -> None:
    assert prog_type_supported(ProgramType.XDP) is prog_type_supported(ProgramType.XDP)
    assert map_type_supported(MapType.HASH) is map_type_supported(MapType.HASH)


def test_unknown_numbers_are_no() -> None:
    assert prog_type_supported(9999).support is Support.NO
    assert test_run_supported(9999).support is Support.NO
    assert map_type_supported(9999).support is Support.NO


def test_unknown_machine_is_unusable(fresh_probes, monkeypatch: pytest.MonkeyPatch) -> None:
    sysc.bpf_syscall_number.cache_clear()
    monkeypatch.setattr(probe._sys.platform, "machine", lambda: "sparc64")
    try:
        r = bpf_usable()
        assert r.support is Support.NO and "sparc64" in r.reason
        p = prog_type_supported(ProgramType.XDP)
        assert p.support is Support.NO and "bpf() unusable" in p.reason
        assert map_type_supported(MapType.HASH).support is Support.NO
        assert test_run_supported(ProgramType.XDP).support is Support.NO
        with pytest.raises(KernelUnavailable, match="sparc64"):
            KernelBackend()
    finally:
        monkeypatch.undo()
        sysc.bpf_syscall_number.cache_clear()


@pytest.mark.parametrize(
    ("err", "support", "words"),
    [
        (errno.EPERM, Support.NO, "EPERM"),
        (errno.ENOSYS, Support.NO, "ENOSYS"),
        (errno.EFAULT, Support.UNKNOWN, "EFAULT"),
    ],
)
def test_refusing_kernel(
    fresh_probes, monkeypatch: pytest.MonkeyPatch, err: int, support: Support, words: str
) -> None:
    monkeypatch.setattr(sysc, "_raw_bpf", lambda cmd, attr: (-1, err))
    r = bpf_usable()
    assert r.support is support and words in r.reason
    with pytest.raises(KernelUnavailable, match=words):
        KernelBackend()


def test_probes_never_raise(fresh_probes, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(cmd, attr):
        raise OSError("simulated failure")

    monkeypatch.setattr(sysc, "_raw_bpf", boom)
    assert bpf_usable().support is Support.UNKNOWN
    assert prog_type_supported(ProgramType.XDP).support is Support.UNKNOWN
    assert map_type_supported(MapType.HASH).support is Support.UNKNOWN
