"""State pruning: sound (never skips a path that could fail) and as effective as the
kernel's (no exponential blow-up where the kernel prunes).

netbpf decides which scalars state comparison may ignore with a static analysis plus
the set of conditional jumps the verifier *predicted* (precision.py): these tests pin
the cases that make each part necessary, check the processed-instruction counts
against the kernel on branchy code, and run random programs with joins, copies
(linked scalar ids), spills and value-indexed accesses through both verifiers.
"""

from __future__ import annotations

import random

import pytest
from _vcases import Case, M, _expand, check_kernel, check_ours, spec_for

from netbpf import ProgramSpec
from netbpf.errors import KernelError, VerifierError
from netbpf.verifier import verify

#: r7 is a copy of r6 (same id) on one path only; a branch on r7 bounds r6 there
#: alone, so the other path must not be pruned against the first
LINKED = """
    call 7
    r6 = r0
    r6 &= 0xff
    call 7
    if r0 & 1 goto +2
    r7 = r6
    goto +2
    r7 = r0
    r7 &= 0xff
    if r7 > 7 goto +4
    r1 = r10
    r1 += -8
    r1 += r6
    *(u8 *)(r1 + 0) = 0
    r0 = 0
    exit
"""

#: the same with the arms swapped (the unlinked path is explored first)
LINKED_SWAPPED = """
    call 7
    r6 = r0
    r6 &= 0xff
    call 7
    if r0 & 1 goto +3
    r7 = r0
    r7 &= 0xff
    goto +1
    r7 = r6
    if r7 > 7 goto +4
    r1 = r10
    r1 += -8
    r1 += r6
    *(u8 *)(r1 + 0) = 0
    r0 = 0
    exit
"""

#: r7 decides nothing but the predicted branch at the join: the second path, whose r7
#: takes the other direction, must not be pruned against the first
PREDICTED = """
    call 7
    r6 = r0
    r8 = 5
    if r6 == 0 goto +2
    r7 = 0
    goto +1
    r7 = 100
    if r7 == 0 goto +1
    r0 = *(u32 *)(r8 + 0)
    r0 = 0
    exit
"""


def _chain(n: int) -> str:
    """n diamonds on bits of a random value, each arm setting r3 differently: the
    kernel prunes at every join (neither r3 nor the bits matter later).  A fresh value
    every 30 bits: testing a known bit again would be a predicted branch."""
    out = ["call 7", "r7 = r0", "r3 = 0"]
    for i in range(n):
        if i and i % 30 == 0:
            out += ["call 7", "r7 = r0"]
        out += [f"if r7 & {1 << (i % 30)} goto +2", f"r3 = {i}", "goto +1", f"r3 = {i + 1000}"]
    out += ["r0 = 2", "exit"]
    return "\n".join(out)


@pytest.mark.parametrize(
    ("src", "error"),
    [
        (LINKED, "invalid variable-offset write to stack R1 var_off=(0x0; 0xff) off=-8 size=1"),
        (
            LINKED_SWAPPED,
            "invalid variable-offset write to stack R1 var_off=(0x0; 0xff) off=-8 size=1",
        ),
        (PREDICTED, "R8 invalid mem access 'scalar'"),
    ],
    ids=["linked", "linked-swapped", "predicted"],
)
def test_unsafe_path_is_not_pruned(src: str, error: str) -> None:
    with pytest.raises(VerifierError) as ei:
        verify(ProgramSpec.from_asm(src, prog_type="xdp"))
    assert ei.value.summary == error


@pytest.mark.parametrize(
    ("src", "error"),
    [(LINKED, True), (LINKED_SWAPPED, True), (PREDICTED, True)],
    ids=["linked", "linked-swapped", "predicted"],
)
def test_unsafe_path_kernel_agrees(kernel, src: str, error: bool) -> None:
    with pytest.raises(KernelError):
        kernel.load_program(ProgramSpec.from_asm(src, prog_type="xdp")).close()


@pytest.mark.parametrize("n", [4, 16, 60])
def test_diamond_chain_is_linear(n: int) -> None:
    """No blow-up: about 10 instructions per diamond (2**n paths without pruning)."""
    res = verify(ProgramSpec.from_asm(_chain(n), prog_type="xdp"))
    assert res.processed_insns <= 10 * n + 10


@pytest.mark.parametrize("n", [4, 16, 60])
def test_diamond_chain_processed_like_kernel(kernel, n: int) -> None:
    spec = ProgramSpec.from_asm(_chain(n), prog_type="xdp")
    prog = kernel.load_program(spec, log_level=4)
    stats = prog.log.strip().splitlines()[-1]
    prog.close()
    assert verify(spec).stats.split(" max_states")[0] == stats.split(" max_states")[0]


# --- random programs: joins, copies, spills, then an access indexed by a value -------------

_JOPS = ["==", "!=", ">", ">=", "<", "<=", "s>", "s>=", "s<", "s<=", "&"]


def _arm(r: random.Random, regs: list[int]) -> list[str]:
    out = []
    for _ in range(r.randint(0, 2)):
        d = r.choice(regs)
        c = r.random()
        if c < 0.4:
            out.append(f"r{d} = {r.choice([0, 1, 5, 63, 64, 100, 255, -1])}")
        elif c < 0.7:
            out.append(f"r{d} = r{r.choice(regs)}")
        else:
            out.append(f"r{d} &= {r.choice([7, 0x3F, 0xFF])}")
    return out


def random_program(seed: int) -> str:
    r = random.Random(seed)
    out = ["r6 = r1", "call 7", "r7 = r0", "r7 &= 0xff", "r8 = *(u32 *)(r6 + 12)", "r8 &= 0x3f"]
    out += ["r9 = 0"] + [f"*(u64 *)(r10 - {8 * i}) = r9" for i in range(1, 9)]
    regs = [7, 8, 9]
    for _ in range(r.randint(3, 9)):
        c = r.random()
        d, s = r.choice(regs), r.choice(regs)
        w = "w" if r.random() < 0.2 else "r"
        if c < 0.35:
            op = r.choice(_JOPS)
            if r.random() < 0.4:
                cond = f"if {w}{d} {op} {w}{s}"
            else:
                cond = (
                    f"if {w}{d} {op} {r.choice([0, 1, 7, 16, 31, 32, 63, 64, 100, 200, 255, -1])}"
                )
            then_arm, else_arm = _arm(r, regs), _arm(r, regs)
            out.append(f"{cond} goto +{len(then_arm) + 1}")
            out += then_arm
            out.append(f"goto +{len(else_arm)}")
            out += else_arm
        elif c < 0.55:
            out.append(f"r{d} = r{s}")
        elif c < 0.7:
            slot = r.choice([8, 16, 24, 32])
            if r.random() < 0.5:
                out.append(f"*(u64 *)(r10 - {slot}) = r{d}")
            else:
                out.append(f"r{d} = *(u64 *)(r10 - {slot})")
        else:
            op = r.choice(["+=", "-=", "&=", "|=", ">>=", "<<="])
            imm = r.randint(0, 5) if op in (">>=", "<<=") else r.choice([1, 3, 7, 15, 63, 0xFF, -1])
            out.append(f"r{d} {op} {imm}")
    x = r.choice(regs)
    if r.random() < 0.5:
        out.append(f"if r{x} > {r.choice([56, 63, 64, 70])} goto +4")
    out += ["r1 = r10", "r1 += -64", f"r1 += r{x}", "r0 = *(u8 *)(r1 + 0)", "r0 = 2", "exit"]
    return "\n".join(out)


def _ours(spec: ProgramSpec) -> str | None:
    try:
        verify(spec)
    except VerifierError as e:
        return e.summary
    return None


@pytest.mark.parametrize("seed", range(60))
def test_random_joins_match_kernel(kernel, seed: int) -> None:
    spec = ProgramSpec.from_asm(random_program(seed), prog_type="xdp")
    try:
        kernel.load_program(spec).close()
        theirs = None
    except KernelError as e:
        theirs = e.log.strip().splitlines()[-2]
    assert _ours(spec) == theirs


# ------------------------------------------------------ stack liveness, zero-ness ------
#
# Two rules let state comparison ignore more, as Linux 6.18 does: stack slots no path
# reads before overwriting them whole (its stack liveness), and the value of a register
# whose only use is a store that cannot be a spill (its bytes become STACK_ZERO when
# it is 0, STACK_MISC otherwise: the kernel marks it precise only when it is 0).  Each
# program below has two paths that differ only in what such a rule could ignore, the
# first explored (the fall-through) safe and reaching the join with a checkpoint, the
# second unsafe: pruning it would accept the program.

#: the fall-through path's padding: enough instructions and jumps since the last
#: checkpoint for the join to get one (the kernel's heuristic: 2 jumps, 8 insns)
_PAD = """
    r2 = 0
    if r6 > 5 goto +1
    r2 = 1
    r2 += 1
    r2 += 1
    if r6 > 7 goto +1
    r2 += 1
    r2 += 1
    r2 += 1
    if r6 > 9 goto +1
    r2 += 1
    r2 += 1
    r2 += 1
    r2 += 1
    r2 += 1
    r2 += 1
    r2 += 1
    r2 += 1
"""


def _two_paths(a: str, b: str, join: str) -> str:
    """``call 7``; fp-16 = 0; path A (r6 != 0, explored first), path B (r6 == 0),
    then ``join``: both paths store something to fp-8."""
    na = len([ln for ln in (a + _PAD).splitlines() if ln.strip()]) + 1
    return (
        "call 7\nr6 = r0\nr1 = 0\n*(u64 *)(r10 - 16) = r1\n"
        f"if r6 == 0 goto +{na}\n{a}\n{_PAD}\ngoto +{len(b.strip().splitlines())}\n{b}\n{join}"
    )


#: fp-8 holds a pointer on path A and the scalar 0 on path B; the join reads it back
#: and dereferences it: read directly, through another pointer into the frame, and by
#: a bpf-to-bpf callee given a pointer to the slot
_PTR_OR_SCALAR_A = "r1 = r10\n*(u64 *)(r10 - 8) = r1"
_PTR_OR_SCALAR_B = "*(u64 *)(r10 - 8) = r6"
LIVE_DIRECT = _two_paths(
    _PTR_OR_SCALAR_A, _PTR_OR_SCALAR_B,
    "r2 = *(u64 *)(r10 - 8)\nr0 = *(u8 *)(r2 - 16)\nr0 = 2\nexit",
)  # fmt: skip
LIVE_ALIAS = _two_paths(
    _PTR_OR_SCALAR_A, _PTR_OR_SCALAR_B,
    "r3 = r10\nr3 += -8\nr2 = *(u64 *)(r3 + 0)\nr0 = *(u8 *)(r2 - 16)\nr0 = 2\nexit",
)  # fmt: skip
LIVE_CALLEE = _two_paths(
    _PTR_OR_SCALAR_A, _PTR_OR_SCALAR_B,
    "r1 = r10\nr1 += -8\nr2 = 0\nr3 = 0\nr4 = 0\nr5 = 0\nif r6 > 100 goto +0\ncall pc+2\n"
    "r0 = 2\nexit\n"
    "r2 = *(u64 *)(r1 + 0)\nr0 = *(u8 *)(r2 - 16)\nr0 = 0\nexit",
)  # fmt: skip
#: a partial store does not kill the slot: its upper half, STACK_ZERO on path A and
#: STACK_MISC on path B, is read back after the lower half is written, and indexes the
#: stack
LIVE_PARTIAL = _two_paths(
    "*(u32 *)(r10 - 4) = 0", "r1 = 7\n*(u32 *)(r10 - 4) = r1",
    "*(u32 *)(r10 - 8) = 0\nr2 = *(u32 *)(r10 - 4)\nr2 &= 0xff\nr3 = r10\nr3 += -16\n"
    "r3 += r2\n*(u8 *)(r3 + 0) = 0\nr0 = 2\nexit",
)  # fmt: skip

#: the array key at fp-4 (not the start of a slot: never a spill) is 0 on path A
#: (STACK_ZERO: a constant key, the lookup cannot fail) and 1 on path B (STACK_MISC:
#: it may), whose missing null check is refused; r1 is stored at the join, so its
#: value matters only for being 0, and on path A it is
ZERO_KEY = _two_paths(
    "r1 = 0", "r1 = 1",
    "*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {a} ll\ncall 1\n"
    "r0 = *(u64 *)(r0 + 0)\nr0 = 2\nexit",
)  # fmt: skip
#: the same through a copy made before the join
ZERO_KEY_COPY = _two_paths(
    "r1 = 0", "r1 = 1",
    "r3 = r1\n*(u32 *)(r10 - 4) = r3\nr2 = r10\nr2 += -4\nr1 = {a} ll\ncall 1\n"
    "r0 = *(u64 *)(r0 + 0)\nr0 = 2\nexit",
)  # fmt: skip
#: path A's r1 is unknown but linked (same id) to r7; a branch on r7 after the join
#: makes it 0 there: that path stores STACK_ZERO, path B's r1 (1, unlinked) does not
ZERO_KEY_LINKED = _two_paths(
    "r1 = r6\nr1 &= 1\nr7 = r1", "r1 = 1\nr7 = 0",
    "if r7 != 0 goto +7\n*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {a} ll\n"
    "call 1\nr0 = *(u64 *)(r0 + 0)\nr0 = 2\nexit",
)  # fmt: skip

_A = M("a", "array", 4, 8, 4)
NEW_RULE_CASES = [
    Case("live-direct", LIVE_DIRECT, "R2 invalid mem access 'scalar'"),
    Case("live-alias", LIVE_ALIAS, "R2 invalid mem access 'scalar'"),
    Case("live-callee", LIVE_CALLEE, "R2 invalid mem access 'scalar'"),
    Case(
        "live-partial",
        LIVE_PARTIAL,
        "invalid variable-offset write to stack R3 var_off=(0x0; 0xff) off=-16 size=1",
    ),
    Case("zero-key", ZERO_KEY, "R0 invalid mem access 'map_value_or_null'", maps={"a": _A}),
    Case(
        "zero-key-copy",
        ZERO_KEY_COPY,
        "R0 invalid mem access 'map_value_or_null'",
        maps={"a": _A},
    ),
    Case(
        "zero-key-linked",
        ZERO_KEY_LINKED,
        "R0 invalid mem access 'map_value_or_null'",
        maps={"a": _A},
    ),
]


@pytest.mark.parametrize("case", NEW_RULE_CASES, ids=lambda c: c.id)
def test_liveness_and_zero_paths_not_pruned(case: Case) -> None:
    check_ours(case)


@pytest.mark.parametrize("case", NEW_RULE_CASES, ids=lambda c: c.id)
def test_liveness_and_zero_paths_kernel_agrees(kernel, case: Case) -> None:
    check_kernel(kernel, case)


#: the pruning the two rules allow, as the kernel does it: path B's fp-8 is dead at
#: the join (nothing reads it), and its r1 (stored where no spill can be) is nonzero
#: like path A's -- B is pruned at the join, by both verifiers, in as many insns
DEAD_SLOT = _two_paths(_PTR_OR_SCALAR_A, _PTR_OR_SCALAR_B, "r0 = 2\nexit")
NONZERO_KEY = _two_paths(
    "r1 = 2", "r1 = 1",
    "*(u32 *)(r10 - 4) = r1\nr2 = r10\nr2 += -4\nr1 = {a} ll\ncall 1\n"
    "if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 0)\nr0 = 2\nexit",
)  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [Case("dead-slot", DEAD_SLOT), Case("nonzero-key", NONZERO_KEY, maps={"a": _A})],
    ids=lambda c: c.id,
)
def test_liveness_and_zero_prune_like_kernel(kernel, case: Case) -> None:
    ours = verify(spec_for(case), maps=case.maps).processed_insns
    maps = {n: kernel.create_map(m.type, m.key_size, m.value_size, m.max_entries, name=n)
            for n, m in case.maps.items()}  # fmt: skip
    try:
        text, _ = _expand(case, {n: m.fd for n, m in maps.items()})
        prog = kernel.load_program(ProgramSpec.from_asm(text, prog_type="xdp"))
        try:
            theirs = prog.info().verified_insns
        finally:
            prog.close()
    finally:
        for m in maps.values():
            m.close()
    assert ours == theirs
