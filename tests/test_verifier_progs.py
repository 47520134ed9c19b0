"""C programs through the verifier: what clang emits, with maps, BTF and line info.

* ``verifier_accept.c``: every program is accepted (netbpf alone, and the kernel);
* ``verifier_reject.c``: every program is refused with the kernel's message, and
  netbpf's error names the C line (the line carries a ``/* MARKER */`` comment), where
  the offending value came from, and the usual fix;
* every C program under tests/progs (the project's corpus): netbpf's verdict equals
  the kernel's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _vcases import kernel_error_lines

from netbpf.errors import KernelError, NetbpfError
from netbpf.obj.collection import load_collection_spec
from netbpf.verifier import VerifierRejection, verify

PROGS = Path(__file__).parent / "progs"

REJECT = {
    "no_null_check": ("R0 invalid mem access 'map_value_or_null'", "MISSING NULL CHECK"),
    "no_bounds_check": (
        "invalid access to packet, off=12 size=1, R1(id=0,off=12,r=0)",
        "MISSING BOUNDS CHECK",
    ),
    "short_bounds_check": (
        "invalid access to packet, off=23 size=1, R1(id=0,off=23,r=14)",
        "CHECK TOO SHORT",
    ),
    "index_unchecked": (
        "R0 unbounded memory access, make sure to bounds check any such access",
        "INDEX UNCHECKED",
    ),
    "leaks_record": ("Unreleased reference id=2 alloc_insn=5", None),
    "bad_verdict": (
        "At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]",
        "BAD VERDICT",
    ),
}


@pytest.fixture(scope="module")
def accept_spec(compile_bpf):
    return load_collection_spec(compile_bpf("verifier_accept.c"))


@pytest.fixture(scope="module")
def reject_spec(compile_bpf):
    return load_collection_spec(compile_bpf("verifier_reject.c"))


def test_accept_programs(accept_spec) -> None:
    assert len(accept_spec.programs) >= 10
    for name, prog in accept_spec.programs.items():
        res = verify(prog, maps=accept_spec.maps)
        assert res.accepted and res.processed_insns > 0, name


def test_accept_per_insn_info(accept_spec) -> None:
    """Per-instruction facts for engines: context loads narrowed, helper ids."""
    prog = accept_spec.programs["lookup_sock"]
    res = verify(prog, maps=accept_spec.maps)
    calls = {a.call_target for a in res.insn_aux if a.call_target is not None}
    assert 84 in calls and 86 in calls  # bpf_sk_lookup_tcp, bpf_sk_release
    assert all(a.seen for a in res.insn_aux[:3])


@pytest.mark.parametrize("name", sorted(REJECT))
def test_reject_programs(reject_spec, name: str) -> None:
    summary, marker = REJECT[name]
    with pytest.raises(VerifierRejection) as ei:
        verify(reject_spec.programs[name], maps=reject_spec.maps)
    err = ei.value
    assert err.summary == summary
    assert err.program == name and err.index is not None
    assert err.source is not None
    if marker is not None:
        assert marker in err.source.text
    assert err.origin and err.hint
    report = err.describe()
    assert summary in report and "fix:" in report
    assert err.log.rstrip().splitlines()[-1].startswith("processed ")


def test_reject_log_shows_the_path(reject_spec) -> None:
    with pytest.raises(VerifierRejection) as ei:
        verify(reject_spec.programs["no_null_check"], maps=reject_spec.maps, log_level=1)
    log = ei.value.log
    assert log.startswith("0: R1=ctx() R10=fp0\n")
    assert "call bpf_map_lookup_elem#1" in log
    assert "R0 invalid mem access 'map_value_or_null'" in log


def _corpus() -> list[Path]:
    return sorted(PROGS.glob("*.c"))


#: sources that need more than the default clang flags (isa_ops.c uses the v4 ISA:
#: sign-extending loads, sdiv/smod, bswap, callx)
EXTRA_FLAGS: dict[str, tuple[str, ...]] = {"isa_ops.c": ("-mcpu=v4",)}


def _kernel_verdicts(kernel, spec) -> dict[str, list[str] | None]:
    """Per program: None if the kernel accepts, else its error lines."""
    out: dict[str, list[str] | None] = {}
    try:
        kernel.load(spec).close()
        return dict.fromkeys(spec.programs)
    except NetbpfError:
        pass
    for name, prog in spec.programs.items():
        one = spec.copy()
        one.programs = {name: prog}
        try:
            kernel.load(one).close()
            out[name] = None
        except KernelError as e:
            if e.op != "BPF_PROG_LOAD":  # maps, pinning...: not a verifier verdict
                out[name] = ["(not loadable on its own)"]
            else:
                out[name] = kernel_error_lines(e.log)
        except NetbpfError:
            out[name] = ["(not loadable on its own)"]
    return out


@pytest.mark.parametrize("src", _corpus(), ids=lambda p: p.name)
def test_corpus_matches_kernel(kernel, compile_bpf, src: Path) -> None:
    try:
        obj = compile_bpf(src, extra_flags=EXTRA_FLAGS.get(src.name, ()))
    except BaseException as e:  # pytest.fail from the fixture: not our program's fault
        pytest.skip(f"{src.name} does not compile here: {e}")
    spec = load_collection_spec(obj)
    verdicts = _kernel_verdicts(kernel, spec)
    for name, prog in spec.programs.items():
        kv = verdicts[name]
        if kv == ["(not loadable on its own)"] or prog.core_relos:
            continue
        try:
            verify(prog, maps=spec.maps)
            ours = None
        except VerifierRejection as e:
            ours = list(e.lines)
        if kv is None:
            assert ours is None, f"{src.name}:{name}: kernel accepts, netbpf refused: {ours}"
        else:
            assert ours is not None, f"{src.name}:{name}: kernel refused {kv}, netbpf accepted"
