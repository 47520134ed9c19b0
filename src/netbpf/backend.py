"""The seam between the object model and where programs run.

``SimBackend`` (the simulator) and ``KernelBackend`` (the running kernel, through
``bpf()``) implement the same protocol, so a behaviour test is written once and run on
both (httpx's transport seam, cilium/ebpf's Collection API).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from netbpf.obj.spec import ProgramSpec
from netbpf.uapi import MapType

__all__ = ["Backend", "Map", "Program", "TestRunResult"]


@dataclass(frozen=True)
class TestRunResult:
    """What BPF_PROG_TEST_RUN returns: the program's return value, the packet after the
    run, the context after the run (None when the type has no ctx_out), and the mean
    duration of one run in nanoseconds."""

    __test__ = False  # not a pytest test class

    retval: int
    data_out: bytes
    ctx_out: bytes | None
    duration_ns: int


@runtime_checkable
class Program(Protocol):
    """A loaded program."""

    name: str

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> TestRunResult: ...

    def close(self) -> None: ...


@runtime_checkable
class Map(Protocol):
    """A live map with raw-bytes element operations, the same on both backends
    (:class:`netbpf.kernel.KernelMap`, the simulator's maps).

    Keys and values are ``bytes`` of exactly ``key_size`` / ``value_size_raw``.  A
    per-CPU map (PERCPU_ARRAY, PERCPU_HASH, LRU_PERCPU_HASH) moves every CPU's value at
    once, as ``bpf()`` does: ``round_up(value_size, 8) * ncpus`` bytes, CPU 0 first,
    so ``value_size_raw`` is that size (``value_size`` otherwise).  ``flags`` are the
    kernel's BPF_ANY (0) / BPF_NOEXIST (1) / BPF_EXIST (2) / BPF_F_LOCK (4).  Failures
    are the typed map errors with the kernel's errno: MapKeyNotFoundError (ENOENT, a
    KeyError), MapKeyExistsError (EEXIST), MapFullError (E2BIG), MapError otherwise.

    Typed (BTF-decoded) access wraps one of these:
    :class:`netbpf.obj.btf_values.TypedMap`, or ``Collection.typed_map(name)``.
    ``len()`` is not part of the contract (the kernel has no element count).
    """

    name: str
    map_type: MapType
    key_size: int
    value_size: int
    value_size_raw: int
    max_entries: int
    flags: int

    @property
    def closed(self) -> bool: ...

    def lookup(self, key: bytes, *, flags: int = 0) -> bytes: ...

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None: ...

    def update(self, key: bytes, value: bytes, *, flags: int = 0) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def lookup_and_delete(self, key: bytes, *, flags: int = 0) -> bytes: ...

    def next_key(self, key: bytes | None = None) -> bytes | None: ...

    def keys(self) -> Iterator[bytes]: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def __contains__(self, key: object) -> bool: ...

    def __getitem__(self, key: bytes) -> bytes: ...

    def __setitem__(self, key: bytes, value: bytes) -> None: ...

    def __delitem__(self, key: bytes) -> None: ...

    def push(self, value: bytes, *, flags: int = 0) -> None: ...

    def pop(self) -> bytes: ...

    def peek(self) -> bytes: ...

    def lookup_batch(
        self, *, count: int = 256, delete: bool = False, flags: int = 0
    ) -> list[tuple[bytes, bytes]]: ...

    def update_batch(self, items: Iterable[tuple[bytes, bytes]], *, flags: int = 0) -> None: ...

    def delete_batch(self, keys: Iterable[bytes]) -> None: ...

    def freeze(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """Turns specs into live objects."""

    name: str

    def load_program(self, spec: ProgramSpec) -> Program: ...
