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
