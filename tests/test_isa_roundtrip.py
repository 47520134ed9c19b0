"""Round trip: every valid instruction form, disassembled in both styles, assembles back
to the same slots; and the opcode table's own invariants.

``representatives()`` enumerates the table: every opcode, every value of every choice
field (atomic operations, byte-swap widths, movsx/sdiv offsets, ld_imm64 pseudo
sources, call kinds), with sample registers and numbers.  The validator and
disassembler tests import it too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from netbpf.isa import (
    OPCODE_BY_NAME,
    OPCODES,
    FieldUse,
    Group,
    Instruction,
    Kind,
    assemble,
    disassemble,
    format_insn,
    validate_program,
)
from netbpf.isa.opcodes import (
    ADDR_SPACE_CAST_IMMS,
    ADDR_SPACE_CAST_OFF,
    CALL_KFUNC,
    CALL_LOCAL,
    LD_IMM64_SOURCES,
    Field,
)
from netbpf.uapi import BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX

EXIT = Instruction(0x95)


def _values(rule: Field, *, reg: int, any_values: tuple[int, ...]) -> list[int]:
    if rule.use is FieldUse.ZERO:
        return [0]
    if rule.use is FieldUse.CHOICE:
        return sorted(rule.values)
    if rule.use in (FieldUse.REG, FieldUse.REG_W):
        return [reg]
    return list(any_values)


def representatives(*, program: bool = False) -> Iterator[tuple[str, list[Instruction]]]:
    """(id, slots) for every valid instruction form.

    With ``program=True`` the numbers are chosen so that ``slots + [exit, exit]`` is a
    structurally valid program (jumps land on the next slot, calls on the last exit)."""
    for code, info in sorted(OPCODES.items()):
        k = info.kind
        jumpy = k in (Kind.JA, Kind.JCC, Kind.MAY_GOTO)
        if program and jumpy:
            any_off: tuple[int, ...] = (0,)
        elif jumpy or k is Kind.CALL:
            any_off = (-3, 0, 0x7FFF)
        else:
            any_off = (-8, 0x7FFF)
        any_imm = (0,) if program and k is Kind.JA else (-7, 0x7FFFFFFF, -(1 << 31))
        dsts = _values(info.dst, reg=3 if info.dst.use is FieldUse.REG_W else 10, any_values=())
        srcs = _values(info.src, reg=2, any_values=())
        offs = _values(info.off, reg=0, any_values=any_off)
        imms = _values(info.imm, reg=0, any_values=any_imm)
        for dst, src, off, imm in itertools.product(dsts, srcs, offs, imms):
            if k is Kind.MOV and info.use_src_reg and (off == ADDR_SPACE_CAST_OFF) != (imm != 0):
                continue
            if k is Kind.CALL and off and src != CALL_KFUNC:
                continue
            if k is Kind.ATOMIC and imm == 0x100:  # load_acquire writes dst
                dst = 3
            rid = f"{info.name}-d{dst}-s{src}-o{off}-i{imm}"
            if k is Kind.LD_IMM64:
                if program and src == BPF_PSEUDO_FUNC:
                    imm = 2  # -> the last exit of slots + [exit, exit]
                his = [0] if src in (BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_IDX) else [0, -2, 0x1234]
                for hi in his:
                    yield (
                        f"{rid}-hi{hi}",
                        [Instruction(code, dst, src, off, imm), Instruction(0, imm=hi)],
                    )
                continue
            if program and k is Kind.CALL and src == CALL_LOCAL:
                imm = 1
            yield rid, [Instruction(code, dst, src, off, imm)]


REPS = list(representatives())
PROGRAM_REPS = list(representatives(program=True))


def test_representatives_cover_every_opcode_and_choice() -> None:
    seen = {slots[0].opcode for _, slots in REPS}
    assert seen == set(OPCODES)
    ld_sources = {s[0].src for _, s in REPS if s[0].opcode == 0x18}
    assert ld_sources == set(LD_IMM64_SOURCES) == set(range(7))
    atomics64 = {s[0].imm for _, s in REPS if s[0].opcode == 0xDB}
    assert {0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1} <= atomics64
    assert {s[0].src for _, s in REPS if s[0].opcode == 0x85} == {0, 1, 2}


@pytest.mark.parametrize("style", ["llvm", "verifier"])
@pytest.mark.parametrize(("rid", "slots"), REPS, ids=[r[0] for r in REPS])
def test_round_trip_each_form(rid: str, slots: list[Instruction], style: str) -> None:
    text = format_insn(slots, 0, style=style)  # type: ignore[arg-type]
    assert not text.startswith(".quad"), f"valid form printed raw: {text}"
    assert assemble(text) == slots, text


@pytest.mark.parametrize("style", ["llvm", "verifier"])
def test_round_trip_whole_program(style: str) -> None:
    prog = [s for _, slots in REPS for s in slots] + [EXIT]
    lines = disassemble(prog, style=style)  # type: ignore[arg-type]
    assert assemble("\n".join(lines)) == prog
    numbered = disassemble(prog, style=style, numbered=True)  # type: ignore[arg-type]
    assert assemble("\n".join(numbered)) == prog


@pytest.mark.parametrize(("rid", "slots"), PROGRAM_REPS, ids=[r[0] for r in PROGRAM_REPS])
def test_every_form_validates(rid: str, slots: list[Instruction]) -> None:
    validate_program([*slots, EXIT, EXIT])


def test_invalid_slots_round_trip_raw() -> None:
    """Unknown opcodes, reserved fields, lone ld_imm64 halves print as .quad and come
    back bit for bit."""
    junk = [
        Instruction(0x8E, 1, 2, 3, 4),  # unknown opcode
        Instruction(0x07, 1, 5, 0, 1),  # ALU K with src set
        Instruction(0x95, 0, 0, 0, 9),  # exit with imm
        Instruction(0x85, 0, 0, 4, 1),  # helper call with off
        Instruction(0xBF, 1, 2, 0, 7),  # mov with imm
        Instruction(0x18, 1, 0, 0, 5),  # ld_imm64 whose second slot is not one
        Instruction(0x07, 1, 0, 0, 1),
        Instruction(0x18, 1, 0, 0, 5),  # ... and one cut off at the end
    ]
    for style in ("llvm", "verifier"):
        text = "\n".join(disassemble(junk, style=style))  # type: ignore[arg-type]
        assert assemble(text) == junk


def test_table_invariants() -> None:
    names = [info.name for info in OPCODES.values()]
    assert len(names) == len(set(names))
    assert {OPCODE_BY_NAME[n] for n in names} == set(OPCODES)
    for code, info in OPCODES.items():
        assert info.opcode == code
        assert info.cls == code & 7
        if info.kind in (Kind.ALU, Kind.MOV, Kind.JCC):
            assert info.use_src_reg == bool(code & 0x08)
            assert info.op == code & 0xF0
        if info.size:
            assert info.width == 8 * info.size
    # RFC 9669 conformance groups
    assert OPCODES[0x24].group is Group.DIVMUL32 and OPCODES[0x9F].group is Group.DIVMUL64
    assert OPCODES[0x07].group is Group.BASE64 and OPCODES[0x04].group is Group.BASE32
    assert OPCODES[0x79].group is Group.BASE64 and OPCODES[0x61].group is Group.BASE32
    assert OPCODES[0x18].group is Group.BASE64
    assert OPCODES[0xC3].group is Group.ATOMIC32 and OPCODES[0xDB].group is Group.ATOMIC64
    assert {OPCODES[c].group for c in (0x20, 0x28, 0x30, 0x40, 0x48, 0x50)} == {Group.PACKET}
    assert OPCODES[0x1D].group is Group.BASE64 and OPCODES[0x1E].group is Group.BASE32
    assert OPCODES[0x05].group is OPCODES[0x85].group is Group.BASE32
    assert {OPCODES[c].group for c in (0x8D, 0xE5)} == {Group.LINUX}
    # what RFC 9669 leaves out stays out
    for missing in (0x8C, 0x8F, 0xDF, 0x86, 0x96, 0xE6, 0x38, 0x58, 0x99, 0x00):
        assert missing not in OPCODES
    assert ADDR_SPACE_CAST_IMMS == (1, 1 << 16)


# --- property tests over arbitrary slots ----------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from netbpf.errors import InstructionError  # noqa: E402

_SLOT = st.builds(
    Instruction,
    opcode=st.one_of(st.sampled_from(sorted(OPCODES)), st.integers(0, 255)),
    dst=st.integers(0, 15),
    src=st.one_of(st.integers(0, 2), st.integers(0, 15)),
    off=st.one_of(st.sampled_from([0, 1, 8, 16, 32, -1]), st.integers(-(1 << 15), (1 << 15) - 1)),
    imm=st.one_of(
        st.sampled_from([0, 1, 16, 32, 64, 0xF1, 0xE1, 0x100, 0x110, -1]),
        st.integers(-(1 << 31), (1 << 31) - 1),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SLOT, max_size=12), st.sampled_from(["llvm", "verifier"]))
def test_any_slots_round_trip(slots: list[Instruction], style: str) -> None:
    """Whatever the bytes, the listing assembles back to them (invalid slots as .quad)."""
    text = "\n".join(disassemble(slots, style=style))  # type: ignore[arg-type]
    assert assemble(text) == slots


@settings(max_examples=200, deadline=None)
@given(st.lists(_SLOT, max_size=12))
def test_validator_only_raises_instruction_errors(slots: list[Instruction]) -> None:
    try:
        validate_program(slots)
    except InstructionError as e:
        assert 0 <= e.index < max(len(slots), 1)
