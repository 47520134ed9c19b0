"""Shared pieces of the helper tests (tests/test_helpers_*.py): our C programs in
``tests/progs/helpers_*.c`` loaded once per backend, run on the same packets and
contexts in the simulator (both engines) and in the kernel, compared byte for byte
(retval, data_out, ctx_out, refusals).

Golden data: every kernel run is also checked against ``tests/golden/helpers.json``
(a digest per case) and a sim-only twin checks the simulator against the same file,
so the simulator is compared with the kernel even where the kernel cannot be used.
After a deliberate change, regenerate it from the kernel::

    NETBPF_REGEN_GOLDEN=1 python -m pytest -m kernel tests/test_helpers_*.py
"""

from __future__ import annotations

import atexit
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _testrun import Outcome, digest, outcome

from netbpf import SimBackend
from netbpf.backend import TestRunResult
from netbpf.hooks.testrun import prog_test_run
from netbpf.obj.collection import load_collection_spec
from netbpf.uapi import ctx_field
from netbpf.vm.engine import ENGINES

GOLDEN_FILE = Path(__file__).parent / "golden" / "helpers.json"
REGEN = os.environ.get("NETBPF_REGEN_GOLDEN") == "1"
_golden: dict[str, str] | None = None
_updates: dict[str, str] = {}

_CB_OFF, _CB_SIZE = ctx_field("__sk_buff", "cb")[:2]
SKB_CTX_SIZE = 192


def skb_ctx(*cb: int) -> bytes:
    """A __sk_buff ctx_in with ``cb[0..4]`` set (the programs' parameters)."""
    ctx = bytearray(SKB_CTX_SIZE)
    vals = [v & 0xFFFF_FFFF for v in cb] + [0] * (5 - len(cb))
    ctx[_CB_OFF : _CB_OFF + 20] = struct.pack("<5I", *vals)
    return bytes(ctx)


def cb_of(ctx_out: bytes) -> tuple[int, ...]:
    return struct.unpack_from("<5I", ctx_out, _CB_OFF)


def xdp_md(data: int = 0, data_end: int = 0) -> bytes:
    return struct.pack("<6I", data, data_end, 0, 0, 0, 0)


@dataclass(frozen=True)
class Case:
    """One run: program ``prog`` of object ``obj`` (a tests/progs file name) on
    ``data_in`` with ``ctx_in``."""

    obj: str
    prog: str
    data_in: bytes
    ctx_in: bytes | None = None
    #: BPF_PROG_TEST_RUN repeat: later runs see what earlier ones did to the packet
    repeat: int = 1

    def key(self, name: str) -> str:
        return f"{self.obj.removesuffix('.c')}/{self.prog}/{name}"


class Loaded:
    """Collections of our objects, loaded once per backend (and sim engine)."""

    def __init__(self, compile_bpf: Callable[..., Path]) -> None:
        self._compile = compile_bpf
        self._specs: dict[str, Any] = {}
        self._colls: dict[tuple[str, str], Any] = {}
        self._backends: dict[tuple[str, str], SimBackend] = {}

    def spec(self, obj: str) -> Any:
        if obj not in self._specs:
            self._specs[obj] = load_collection_spec(self._compile(obj))
        return self._specs[obj]

    def sim(self, obj: str, engine: str, **kw: Any) -> Any:
        key = (obj, f"sim-{engine}-{sorted(kw.items())}")
        if key not in self._colls:
            backend = SimBackend(engine=engine, **kw)
            self._backends[key] = backend
            self._colls[key] = backend.load(self.spec(obj))
        return self._colls[key]

    def run_with_state(
        self,
        obj: str,
        prog: str,
        data_in: bytes,
        ctx_in: bytes | None,
        state: dict[str, Any],
        *,
        engine: str = "fast",
    ) -> TestRunResult:
        """A simulator test run whose RunEnv state is ``state`` (simulator-defined
        helper values in, recorded redirects out)."""
        coll = self.sim(obj, engine)
        backend = self._backends[(obj, f"sim-{engine}-[]")]
        p = coll.programs[prog]
        with backend.mem.run_scope():
            return prog_test_run(
                p.executable,
                p.prog_type,
                attach_type=p.attach_type,
                data_in=data_in,
                ctx_in=ctx_in,
                devices=backend.devices,
                helpers=backend.helpers_for(p.prog_type),
                mem=backend.mem,
                state=state,
            )

    def kernel(self, kernel: Any, obj: str) -> Any:
        key = (obj, "kernel")
        if key not in self._colls:
            self._colls[key] = kernel.load(self.spec(obj))
        return self._colls[key]

    def close(self) -> None:
        for c in self._colls.values():
            c.close()
        self._colls.clear()


def sim_outcomes(loaded: Loaded, case: Case, **kw: Any) -> dict[str, Outcome]:
    return {
        e: outcome(
            loaded.sim(case.obj, e, **kw).programs[case.prog],
            case.data_in,
            case.ctx_in,
            case.repeat,
        )
        for e in ENGINES
    }


def kernel_outcome(loaded: Loaded, kernel: Any, case: Case) -> Outcome:
    return outcome(
        loaded.kernel(kernel, case.obj).programs[case.prog],
        case.data_in,
        case.ctx_in,
        case.repeat,
    )


def assert_same(loaded: Loaded, kernel: Any, case: Case, name: str) -> Outcome:
    """The kernel's outcome equals every engine's (and the golden file's)."""
    want = kernel_outcome(loaded, kernel, case)
    assert want.kind != "fault"
    for engine, got in sim_outcomes(loaded, case).items():
        assert got == want, f"engine {engine}:\n  sim:    {got.brief()}\n  kernel: {want.brief()}"
    kernel_golden(case.key(name), digest(want))
    return want


def assert_sim_golden(loaded: Loaded, case: Case, name: str) -> None:
    want = sim_golden(case.key(name))
    for engine, got in sim_outcomes(loaded, case).items():
        assert digest(got) == want, f"engine {engine}: sim {got.brief()}\n  golden {want}"


# ------------------------------------------------------------------------------ golden


def _golden_data() -> dict[str, str]:
    global _golden
    if _golden is None:
        _golden = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    return _golden


def kernel_golden(key: str, value: str) -> None:
    if REGEN:
        _updates[key] = value
        return
    have = _golden_data().get(key)
    assert have == value, (
        f"golden {key}: the file has {have!r}, the kernel gives {value!r}; if the change is "
        "expected, regenerate (see tests/_helpers_common.py)"
    )


def sim_golden(key: str) -> str:
    have = _golden_data().get(key)
    if have is None:
        pytest.fail(
            f"no golden value for {key}: regenerate (see tests/_helpers_common.py)",
            pytrace=False,
        )
    return have


@atexit.register
def _save_golden() -> None:
    if REGEN and _updates:
        merged = {**_golden_data(), **_updates}
        GOLDEN_FILE.parent.mkdir(exist_ok=True)
        GOLDEN_FILE.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")
