"""Assembler tests: both syntaxes, decorations from disassembler output, labels, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netbpf.errors import AssemblerError
from netbpf.isa import Instruction, assemble
from netbpf.isa.instruction import decode_program

I = Instruction  # noqa: E741 - short alias keeps the expected-encoding tables readable

# (text, expected slots).  Encodings checked by hand against llvm-objdump-19 output.
CASES: list[tuple[str, list[Instruction]]] = [
    # C-like, llvm-objdump style
    ("r0 = *(u32 *)(r1 + 0x4)", [I(0x61, 0, 1, 4)]),
    ("w0 = *(u32 *)(r1 + 0x4)", [I(0x61, 0, 1, 4)]),
    ("if r2 > r3 goto +0x5 <LBB0_2>", [I(0x2D, 2, 3, 5)]),
    ("lock *(u64 *)(r10 - 0x8) += r1", [I(0xDB, 10, 1, -8, 0x00)]),
    ("lock *(u32 *)(r10 - 0x8) ^= w1", [I(0xC3, 10, 1, -8, 0xA0)]),
    ("w0 = w1", [I(0xBC, 0, 1)]),
    ("r0 = be16 r0", [I(0xDC, 0, 0, 0, 16)]),
    ("r0 = le64 r0", [I(0xD4, 0, 0, 0, 64)]),
    ("r0 = bswap32 r0", [I(0xD7, 0, 0, 0, 32)]),
    ("r1 = (s8)r2", [I(0xBF, 1, 2, 8)]),
    ("w1 = (s16)w2", [I(0xBC, 1, 2, 16)]),
    ("r0 = *(s16 *)(r1 + 2)", [I(0x89, 0, 1, 2)]),
    ("call 0x1", [I(0x85, 0, 0, 0, 1)]),
    ("r1 = 0x1122334455667788 ll", [I(0x18, 1, 0, 0, 0x55667788), I(0, 0, 0, 0, 0x11223344)]),
    ("r1 = -0x1 ll", [I(0x18, 1, 0, 0, -1), I(0, 0, 0, 0, -1)]),
    ("r1 = map_fd(3) ll", [I(0x18, 1, 1, 0, 3), I(0)]),
    ("r2 = map_value(0x3, 0x8) ll", [I(0x18, 2, 2, 0, 3), I(0, 0, 0, 0, 8)]),
    ("r3 = btf_id(77) ll", [I(0x18, 3, 3, 0, 77), I(0)]),
    ("r4 = func(+5) ll", [I(0x18, 4, 4, 0, 5), I(0)]),
    ("r5 = map_idx(0) ll", [I(0x18, 5, 5, 0, 0), I(0)]),
    ("r6 = map_idx_value(1, 16) ll", [I(0x18, 6, 6, 0, 1), I(0, 0, 0, 0, 16)]),
    ("ld_pseudo\tr1, 0x1, 0x3", [I(0x18, 1, 1, 0, 3), I(0)]),
    ("gotol +0x5", [I(0x06, 0, 0, 0, 5)]),
    ("goto -0x3", [I(0x05, 0, 0, -3)]),
    ("callx r1", [I(0x8D, 1)]),
    ("may_goto +0x5", [I(0xE5, 0, 0, 5)]),
    ("r0 = cmpxchg_64(r1 + 0x0, r0, r2)", [I(0xDB, 1, 2, 0, 0xF1)]),
    ("w0 = cmpxchg32_32(r10 - 0x8, w0, w1)", [I(0xC3, 10, 1, -8, 0xF1)]),
    ("r1 = xchg_64(r10 - 0x8, r1)", [I(0xDB, 10, 1, -8, 0xE1)]),
    ("w1 = xchg32_32(r10 - 0x8, w1)", [I(0xC3, 10, 1, -8, 0xE1)]),
    ("r8 = atomic_fetch_or((u64 *)(r1 + 0x0), r8)", [I(0xDB, 1, 8, 0, 0x41)]),
    ("w1 = atomic_fetch_and((u32 *)(r10 - 0x8), w1)", [I(0xC3, 10, 1, -8, 0x51)]),
    ("*(u32 *)(r10 - 0x4) = 0x1", [I(0x62, 10, 0, -4, 1)]),
    ("*(u8 *)(r1 + 0x3) = w2", [I(0x73, 1, 2, 3)]),
    ("r2 += -0x4", [I(0x07, 2, 0, 0, -4)]),
    ("w0 *= 0x3", [I(0x24, 0, 0, 0, 3)]),
    ("r1 s/= r2", [I(0x3F, 1, 2, 1)]),
    ("w1 s%= 0x3", [I(0x94, 1, 0, 1, 3)]),
    ("r1 s>>= 0x3", [I(0xC7, 1, 0, 0, 3)]),
    ("r1 = -r1", [I(0x87, 1)]),
    ("w1 = -w1", [I(0x84, 1)]),
    ("w1 = -0x1", [I(0xB4, 1, 0, 0, -1)]),
    ("r0 = *(u32 *)skb[0xc]", [I(0x20, 0, 0, 0, 12)]),
    ("r0 = *(u16 *)skb[r2]", [I(0x48, 0, 2, 0, 0)]),
    ("r0 = *(u8 *)skb[r2 + 0x4]", [I(0x50, 0, 2, 0, 4)]),
    ("if w1 == w2 goto +0x3", [I(0x1E, 1, 2, 3)]),
    ("if r1 & 0x4 goto -0x1", [I(0x45, 1, 0, -1, 4)]),
    ("if w1 s<= -0x1 goto +0x0", [I(0xD6, 1, 0, 0, -1)]),
    ("r1 = addr_space_cast(r2, 0x1, 0x0)", [I(0xBF, 1, 2, 1, 0x10000)]),
    ("exit", [I(0x95)]),
    # verifier-log style
    ("r0 = *(u32 *)(r1 +4)", [I(0x61, 0, 1, 4)]),
    ("*(u64 *)(r10 -8) = r1", [I(0x7B, 10, 1, -8)]),
    ("if r2 > r3 goto pc+5", [I(0x2D, 2, 3, 5)]),
    ("if r1 == 0xffffffff goto pc-2", [I(0x15, 1, 0, -2, -1)]),
    ("r1 = 0x1122334455667788", [I(0x18, 1, 0, 0, 0x55667788), I(0, 0, 0, 0, 0x11223344)]),
    ("call bpf_map_lookup_elem#1", [I(0x85, 0, 0, 0, 1)]),
    ("call pc+3", [I(0x85, 0, 1, 0, 3)]),
    ("call kfunc(0x10, 2)", [I(0x85, 0, 2, 2, 16)]),
    ("r1 = atomic64_fetch_add((u64 *)(r10 -8), r1)", [I(0xDB, 10, 1, -8, 0x01)]),
    ("r1 = atomic_fetch_xor((u32 *)(r10 -8), r1)", [I(0xC3, 10, 1, -8, 0xA1)]),
    ("r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)", [I(0xDB, 10, 1, -8, 0xF1)]),
    ("r1 = atomic64_xchg((u64 *)(r10 -8), r1)", [I(0xDB, 10, 1, -8, 0xE1)]),
    ("r0 = *(u32 *)skb[r2 + 4]", [I(0x40, 0, 2, 0, 4)]),
    ("12: (bf) r1 = r2                      ; R1_w=ctx()", [I(0xBF, 1, 2)]),
    # helper by name
    ("call bpf_map_lookup_elem", [I(0x85, 0, 0, 0, 1)]),
    ("call map_update_elem", [I(0x85, 0, 0, 0, 2)]),
    # objdump decorations
    ("       7:\t85 00 00 00 01 00 00 00\tcall 0x1", [I(0x85, 0, 0, 0, 1)]),
    (
        "  5:\t18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr1 = 0x0 ll",
        [I(0x18, 1), I(0)],
    ),
    # bpf_conformance syntax
    ("mov %r0, 1", [I(0xB7, 0, 0, 0, 1)]),
    ("mov32 %r1, 0x87654321", [I(0xB4, 1, 0, 0, 0x87654321 - (1 << 32))]),
    ("ldxw %r0, [%r1+4]", [I(0x61, 0, 1, 4)]),
    ("ldxsh %r0, [%r1-2]", [I(0x89, 0, 1, -2)]),
    ("ldxdw %r0, [%r1]", [I(0x79, 0, 1, 0)]),
    ("stxdw [%r10-8], %r1", [I(0x7B, 10, 1, -8)]),
    ("stb [%r10-1], 0x7f", [I(0x72, 10, 0, -1, 0x7F)]),
    ("jeq %r1, 0x10, +2", [I(0x15, 1, 0, 2, 16)]),
    ("jsgt32 %r1, %r2, -1", [I(0x6E, 1, 2, -1)]),
    ("add32 %r1, %r2", [I(0x0C, 1, 2)]),
    ("add64 %r1, 2", [I(0x07, 1, 0, 0, 2)]),
    ("neg %r1", [I(0x87, 1)]),
    ("neg32 %r1", [I(0x84, 1)]),
    ("sdiv32 %r1, 3", [I(0x34, 1, 0, 1, 3)]),
    ("smod %r1, %r2", [I(0x9F, 1, 2, 1)]),
    ("movsx832 %r0, %r1", [I(0xBC, 0, 1, 8)]),
    ("movsx3264 %r0, %r1", [I(0xBF, 0, 1, 32)]),
    ("be16 %r0", [I(0xDC, 0, 0, 0, 16)]),
    ("le32 %r0", [I(0xD4, 0, 0, 0, 32)]),
    ("swap64 %r0", [I(0xD7, 0, 0, 0, 64)]),
    ("bswap16 %r0", [I(0xD7, 0, 0, 0, 16)]),
    (
        "lddw %r0, 0x123456789abcdef0",
        [I(0x18, 0, 0, 0, 0x9ABCDEF0 - (1 << 32)), I(0, 0, 0, 0, 0x12345678)],
    ),
    ("call 1", [I(0x85, 0, 0, 0, 1)]),
    ("call %r2", [I(0x8D, 2)]),
    ("call local +2", [I(0x85, 0, 1, 0, 2)]),
    ("call runtime 7", [I(0x85, 0, 2, 0, 7)]),
    ("ja +1", [I(0x05, 0, 0, 1)]),
    ("ja32 -1", [I(0x06, 0, 0, 0, -1)]),
    ("lock add [%r10-8], %r1", [I(0xDB, 10, 1, -8, 0x00)]),
    ("lock fetch add32 [%r10-4], %r1", [I(0xC3, 10, 1, -4, 0x01)]),
    ("lock fetch xor [%r10-8], %r1", [I(0xDB, 10, 1, -8, 0xA1)]),
    ("lock xchg [%r10-8], %r1", [I(0xDB, 10, 1, -8, 0xE1)]),
    ("lock cmpxchg32 [%r10-8], %r1", [I(0xC3, 10, 1, -8, 0xF1)]),
    ("ldabsh 12", [I(0x28, 0, 0, 0, 12)]),
    ("ldindw %r2, 4", [I(0x40, 0, 2, 0, 4)]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_assemble_one(text: str, expected: list[Instruction]) -> None:
    assert assemble(text) == expected


def test_labels_comments_and_blank_lines() -> None:
    text = """
    # a comment line
    start:
        r0 = 0          // trailing comment
        if r1 == 0x0 goto out   ; another
        r0 = 1 ll
    loop: r0 += 1
        if r0 < 10 goto loop
        call helper_fn
    out:
        exit
    helper_fn:
        r0 = 7
        exit
    """
    got = assemble(text)
    assert got == [
        I(0xB7, 0),
        I(0x15, 1, 0, 5),  # to 'out' at slot 7: 7 - 1 - 1
        I(0x18, 0, 0, 0, 1),
        I(0),
        I(0x07, 0, 0, 0, 1),
        I(0xA5, 0, 0, -2, 10),
        I(0x85, 0, 1, 0, 1),  # local call to helper_fn at slot 8
        I(0x95),
        I(0xB7, 0, 0, 0, 7),
        I(0x95),
    ]


def test_conformance_exit_label_is_first_exit() -> None:
    text = "mov %r0, 1\njne %r0, 2, exit\nmov %r0, 3\nexit\nmov %r0, 4\nexit\n"
    assert assemble(text)[1] == I(0x55, 0, 0, 1, 2)


def test_objdump_listing_assembles_to_its_own_bytes() -> None:
    listing = """
a.o:\tfile format elf64-bpf

Disassembly of section xdp:

0000000000000000 <f>:
       0:\t61 17 04 00 00 00 00 00\tr7 = *(u32 *)(r1 + 0x4)
       1:\t62 0a fc ff 01 00 00 00\t*(u32 *)(r10 - 0x4) = 0x1
       2:\t18 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr1 = 0x0 ll
\t\t0000000000000010:  R_BPF_64_64\tm
       4:\t15 01 01 00 00 00 00 00\tif r1 == 0x0 goto +0x1 <f+0x30>
       5:\tdb 21 00 00 00 00 00 00\tlock *(u64 *)(r1 + 0x0) += r2
       6:\t95 00 00 00 00 00 00 00\texit
"""
    raw = bytes.fromhex(
        "6117040000000000 620afcff01000000 1801000000000000 0000000000000000"
        " 1501010000000000 db21000000000000 9500000000000000".replace(" ", "")
    )
    assert assemble(listing) == decode_program(raw)


ERRORS = [
    ("r0 = = 1", 1),
    ("mov %r0", 1),
    ("exit\nfoo bar baz", 2),
    ("r16 = 1", 1),
    ("r1 = 0x100000000", None),  # fine: becomes ld_imm64 (verifier-log spelling)
    ("w1 = 0x100000000", 1),
    ("goto nowhere", 1),
    ("goto +40000", 1),  # jump distances do not wrap around
    ("r0 = 0\nif r0 == 0 goto pc+0x8000\nexit", 2),
    ("x:\nx:\nexit", 2),
    ("*(u32 *)(r1 + 0x100000) = 1", 1),
    ("r0 = *(s64 *)(r1 + 0)", 1),
    ("lock *(u8 *)(r1 + 0) += r2", 1),
    ("r1 = atomic_fetch_add((u64 *)(r1 + 0), r2)", 1),
    ("r1 = bogus(3) ll", 1),
    ("ldxsdw %r0, [%r1]", 1),
    ("lock foo [%r1], %r2", 1),
    ("call", 1),
    ("if r1 ?? r2 goto +1", 1),
]


@pytest.mark.parametrize(("text", "line"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_line(text: str, line: int | None) -> None:
    if line is None:
        assemble(text)
        return
    with pytest.raises(AssemblerError) as ei:
        assemble(text)
    assert ei.value.line == line
    assert f"line {line}:" in str(ei.value)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_only_assembler_errors(text: str) -> None:
    try:
        assemble(text)
    except AssemblerError:
        pass


_TOKENS = st.sampled_from(
    ["r1", "w2", "%r3", "r10", "r15", "r99", "=", "+=", "s/=", "*(u32 *)", "(r1 + 0x4)", "[%r1+4]",
     "goto", "if", "call", "lock", "ll", "0x10", "-5", "+3", "pc+2", ",", "(", ")", "skb[", "]",
     "mov", "ldxw", "jeq", "exit", "be16", "(s8)", "label:", "#1", "map_fd(3)", "cmpxchg_64(",
     "atomic_fetch_add(", "ld_pseudo", "callx", "gotol", "may_goto", "lddw", "stxdw", "fetch", "add"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(_TOKENS, max_size=8).map(" ".join), max_size=5).map("\n".join))
def test_fuzz_token_soup_only_assembler_errors(text: str) -> None:
    try:
        assemble(text)
    except AssemblerError:
        pass
