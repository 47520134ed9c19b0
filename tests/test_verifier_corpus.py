"""The differential verifier corpus (tests/verifier_corpus/cases/*.case).

Every case has its own test ids:

* ``test_kernel[group/name]`` loads the case into the running kernel and checks the
  verdict recorded in the case file (derived from the kernel by
  ``tests/verifier_corpus/check_kernel.py``) and, for refusals, the error class of the
  kernel's verdict line; skipped with the probe's reason where the kernel is unusable;
* ``test_netbpf[group/name]`` runs ``netbpf.verifier.verify`` on the same spec and maps
  and checks it reaches the kernel's verdict and, for refusals, an error of the same
  class.  Until the verifier exists these are xfail (not skipped), "verifier not
  implemented yet".

The two targets of the verifier are tests of their own: ``test_soundness`` (no case the
kernel refuses for memory safety is accepted by netbpf) and ``test_precision`` (netbpf
accepts at least 99% of the cases the kernel accepts).  The corpus itself (format,
coverage of every rule, taxonomy consistency) is checked without any kernel.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
from verifier_corpus.corpus import (
    CLASSES,
    NON_SAFETY_CLASSES,
    Case,
    CorpusError,
    KernelSetupError,
    build,
    classify,
    kernel_verdict,
    load_corpus,
    parse_cases,
    summary_line,
)

import netbpf.verifier
from netbpf.errors import VerifierError

CASES = load_corpus()
BY_ID = {c.id: c for c in CASES}


def _verify_fn() -> Any:
    return getattr(netbpf.verifier, "verify", None)


HAVE_VERIFIER = _verify_fn() is not None
NOT_YET = pytest.mark.xfail(reason="verifier not implemented yet", strict=False)
_NETBPF_MARKS = () if HAVE_VERIFIER else (NOT_YET,)


#: Cases where netbpf's verifier is known to disagree with the kernel, each with the
#: reason.  An entry becomes a strict xfail, so a fix that lands must also remove it
#: here.
KNOWN_GAPS: dict[str, str] = {}


def _params(marks: tuple[Any, ...] = (), *, netbpf: bool = False) -> list[Any]:
    out = []
    for c in CASES:
        m = marks
        if netbpf and HAVE_VERIFIER and c.id in KNOWN_GAPS:
            m = (pytest.mark.xfail(reason=KNOWN_GAPS[c.id], strict=True),)
        out.append(pytest.param(c, id=c.id, marks=m))
    return out


# --- the corpus itself (no kernel, never skipped) ---------------------------------------

#: the verifier rules of issue 4 and the corpus groups that exercise them
RULE_GROUPS = {
    "register types": {"reg_types"},
    "tnum and 32/64-bit signed/unsigned bounds": {"bounds"},
    "packet ranges from data_end comparisons": {"pkt"},
    "null checks propagated to copies": {"null"},
    "stack slots, spills, fills": {"stack"},
    "reference tracking (sockets, ringbuf)": {"refs"},
    "spin locks": {"spin_lock"},
    "helper prototypes per program type": {"helpers"},
    "context access per program type": {"ctx"},
    "return-value ranges per hook": {"returns"},
    "subprograms": {"subprog"},
    "callbacks": {"callback"},
    "tail calls": {"tailcall"},
    "bounded loops and the complexity limit": {"loops"},
    "pointer arithmetic and map values": {"ptr_arith"},
    "structural checks": {"structural"},
}


def test_corpus_size_and_rules() -> None:
    """At least 300 cases; every rule has cases the kernel accepts and refuses."""
    assert len(CASES) >= 300
    groups = {c.group for c in CASES}
    assert groups == set().union(*RULE_GROUPS.values()), "a group without a rule, or vice versa"
    for rule, gs in RULE_GROUPS.items():
        verdicts = collections.Counter(c.expect for c in CASES if c.group in gs)
        assert verdicts["accept"] >= 2 and verdicts["reject"] >= 2, (rule, verdicts)


def test_corpus_recorded() -> None:
    """Every case carries a recorded kernel verdict; refusals a message and a class."""
    for c in CASES:
        assert c.expect in ("accept", "reject"), f"{c.where}: run check_kernel.py --write"
        if c.expect == "reject":
            assert c.error and c.cls in CLASSES, c.where
        else:
            assert c.error is None and c.cls is None, c.where


def test_recorded_class_is_classify_of_recorded_error() -> None:
    """The taxonomy is a function of the verdict line: the recorded class is what
    classify() gives for the recorded message, and no refusal is left 'other'."""
    for c in CASES:
        if c.expect == "reject":
            assert c.error is not None
            assert classify(c.error) == c.cls, f"{c.where}: {c.error!r}"
            assert c.cls != "other", f"{c.where}: unclassified kernel message {c.error!r}"


def test_every_safety_class_has_cases() -> None:
    used = collections.Counter(c.cls for c in CASES if c.expect == "reject")
    for cls in (
        "invalid_mem_access",
        "null_deref",
        "pkt_access",
        "mem_bounds",
        "uninit_reg",
        "stack_access",
        "ctx_access",
        "helper_proto",
        "helper_not_allowed",
        "ref_leak",
        "return_range",
        "spin_lock",
        "unreachable",
        "jump_range",
        "div_by_zero",
        "shift",
        "r10_write",
        "too_complex",
        "loop",
        "stack_limit",
        "callback",
        "tail_call",
    ):
        assert used[cls] >= 1, cls


def test_parser_rejects_malformed(tmp_path: Path) -> None:
    bad = [
        "-- case x\n-- asm\nr0 = 0\nexit\n",  # asm without type
        "-- case x\n-- type xdp\n-- asm\nr0 = 0\nexit\n-- expect maybe\n",
        "-- case x\n-- type xdp\n-- expect reject\n-- asm\nexit\n",  # reject without class
        "-- case x\n-- type xdp\n-- bogus 1\n-- asm\nexit\n",
        "-- case x\n-- type xdp\n-- asm\nexit\n-- case x\n-- type xdp\n-- asm\nexit\n",
        "-- case x\n-- type xdp\n-- maps\nm nosuchmap key=4\n-- asm\nexit\n",
        "stray\n-- case x\n-- type xdp\n-- asm\nexit\n",
    ]
    for text in bad:
        with pytest.raises(CorpusError):
            parse_cases(text, tmp_path / "bad.case")


def test_map_references_become_relocations() -> None:
    """``map_fd(NAME)`` assembles to an LD_IMM64 with src 0, imm 0 plus a MapReloc, as
    the ELF loader makes them; ``map_value(NAME, OFF)`` carries the offset."""
    (case,) = parse_cases(
        "-- case x\n-- type xdp\n-- maps\na array key=4 value=16 max=1\n"
        "b hash key=4 value=8 max=2\n-- asm\nr1 = map_fd(b) ll\nr2 = map_value(a, 8) ll\n"
        "r0 = 2\nexit\n",
        "x.case",
    )
    built = build(case)
    relocs = {(r.slot, r.map, r.offset) for r in built.spec.map_relocs}
    assert relocs == {(0, "b", None), (2, "a", 8)}
    assert all(built.spec.insns[s].src == 0 and built.spec.insns[s].imm == 0 for s in (0, 2))
    assert set(built.maps) == {"a", "b"} and built.maps["a"].value_size == 16


def test_summary_line_and_classify() -> None:
    log = (
        "0: (b7) r0 = 0\n1: (05) goto pc-1\ninfinite loop detected at insn 1\n"
        "cur state: R0=0 R1=ctx() R10=fp0\nold state: R0=0 R1=ctx() R10=fp0\n"
        "processed 9 insns (limit 1000000) max_states_per_insn 0 total_states 1\n"
    )
    assert summary_line(log) == "infinite loop detected at insn 1"
    glued = "expected prog array map for tail callprocessed 3 insns (limit 1000000) x\n"
    assert summary_line(glued) == "expected prog array map for tail call"
    big = "BPF program is too large. Processed 1000001 insn\nprocessed 1000001 insns (limit 1000000)\n"
    assert classify(summary_line(big)) == "too_complex"
    assert classify("R0 invalid mem access 'map_value_or_null'") == "null_deref"
    assert classify("R1 invalid mem access 'scalar'") == "invalid_mem_access"
    assert classify("invalid access to packet, off=0 size=8, R2(id=0,off=0,r=0)") == "pkt_access"
    assert classify("something the kernel never said") == "other"


# --- (a) the kernel -------------------------------------------------------------------


def _compiler(request: pytest.FixtureRequest, case: Case | None = None) -> Any:
    """The compile_bpf fixture, asked for only where a C case needs it (so assembly
    cases never skip for a missing clang)."""
    if case is not None and case.c is None:
        return None
    return request.getfixturevalue("compile_bpf")


@pytest.mark.parametrize("case", _params())
def test_kernel(case: Case, kernel: Any, request: pytest.FixtureRequest) -> None:
    """The running kernel still gives the recorded verdict and error class."""
    from netbpf.kernel import prog_type_supported

    compile_c = _compiler(request, case)
    built = build(case, compile_c)
    probe = prog_type_supported(built.spec.prog_type)
    if not probe:
        pytest.skip(f"program type {built.spec.prog_type.name} not loadable: {probe.reason}")
    try:
        v = kernel_verdict(case, kernel, compile_c)
    except KernelSetupError as e:
        pytest.skip(f"kernel cannot set the case up: {e}")
    got = "accept" if v.accepted else "reject"
    assert got == case.expect, f"{case.where}: kernel says {got}: {v.error}\n{v.log[-3000:]}"
    if not v.accepted:
        assert v.cls == case.cls, f"{case.where}: kernel class {v.cls} ({v.error!r})"


# --- (b) netbpf's verifier -------------------------------------------------------------

_OURS: dict[str, tuple[str, str, str]] = {}


def _ours(case: Case, compile_c: Any) -> tuple[str, str, str]:
    """netbpf's verdict on a case: (accept|reject, class, summary); cached per case so
    the target tests reuse the per-case runs."""
    if case.id in _OURS:
        return _OURS[case.id]
    verify = _verify_fn()
    if verify is None:
        raise NotImplementedError("netbpf.verifier.verify does not exist yet")
    built = build(case, compile_c)
    try:
        verify(built.spec, maps=built.maps)
    except VerifierError as e:
        result = ("reject", classify(e.summary), e.summary)
    else:
        result = ("accept", "", "")
    _OURS[case.id] = result
    return result


@pytest.mark.parametrize("case", _params(_NETBPF_MARKS, netbpf=True))
def test_netbpf(case: Case, request: pytest.FixtureRequest) -> None:
    """netbpf's verifier reaches the kernel's verdict, and refuses with the same class."""
    verdict, cls, summary = _ours(case, _compiler(request, case))
    assert verdict == case.expect, (
        f"{case.where}: netbpf says {verdict} ({summary!r}); the kernel says {case.expect}"
        + (f" ({case.error!r})" if case.error else "")
    )
    if verdict == "reject":
        assert cls == case.cls, (
            f"{case.where}: netbpf class {cls} ({summary!r}), kernel {case.cls} ({case.error!r})"
        )


def _all_ours(request: pytest.FixtureRequest) -> dict[str, tuple[str, str, str]]:
    """netbpf's verdict on every case (C cases only where clang is there); a crash of
    the verifier counts as not accepting, and is reported."""
    try:
        compile_c = _compiler(request)
    except pytest.skip.Exception:
        compile_c = None
    out: dict[str, tuple[str, str, str]] = {}
    for c in CASES:
        if c.c is not None and compile_c is None:
            continue
        try:
            out[c.id] = _ours(c, compile_c)
        except NotImplementedError:
            raise
        except Exception as e:
            out[c.id] = ("crash", "", f"{type(e).__name__}: {e}")
    return out


def _target(f: Any) -> Any:
    return f if HAVE_VERIFIER else NOT_YET(f)


@_target
def test_soundness(request: pytest.FixtureRequest, record_property: Any) -> None:
    """Target: netbpf accepts no case that the kernel refuses for memory safety (every
    class but NON_SAFETY_CLASSES)."""
    ours = _all_ours(request)
    refused = [c for c in CASES if c.id in ours and c.expect == "reject"]
    unsound = [
        f"{c.id} [{c.cls}] {c.error}"
        for c in refused
        if c.cls not in NON_SAFETY_CLASSES and ours[c.id][0] == "accept"
    ]
    any_class = [c.id for c in refused if ours[c.id][0] == "accept"]
    record_property("unsound", len(unsound))
    known = [u for u in unsound if u.split(" ", 1)[0] in KNOWN_GAPS]
    if known:
        print("\nknown unsound cases (open work, see KNOWN_GAPS):\n" + "\n".join(known))
    unsound = [u for u in unsound if u.split(" ", 1)[0] not in KNOWN_GAPS]
    print(
        f"\nsoundness: {len(unsound)} of {len(refused)} kernel refusals accepted by netbpf "
        f"for safety classes ({len(any_class)} of any class)"
    )
    assert unsound == [], "netbpf accepts what the kernel refuses for safety:\n" + "\n".join(
        unsound
    )


@_target
def test_precision(request: pytest.FixtureRequest, record_property: Any) -> None:
    """Target: of the cases the kernel accepts, netbpf accepts at least 99%."""
    ours = _all_ours(request)
    accepted = [c for c in CASES if c.id in ours and c.expect == "accept"]
    ok = [c for c in accepted if ours[c.id][0] == "accept"]
    pct = 100.0 * len(ok) / len(accepted)
    missed = [f"{c.id}: {ours[c.id][2]}" for c in accepted if ours[c.id][0] != "accept"]
    record_property("precision_pct", round(pct, 2))
    print(f"\nprecision: netbpf accepts {len(ok)}/{len(accepted)} = {pct:.2f}% of kernel-accepted")
    assert pct >= 99.0, "refused by netbpf, accepted by the kernel:\n" + "\n".join(missed)
