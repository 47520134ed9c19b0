"""Structural validation: every refusal class, with the kernel's wording, checked
against the running kernel where it has an opinion."""

from __future__ import annotations

import pytest
from test_isa_roundtrip import REPS

from netbpf.errors import InstructionError, KernelError
from netbpf.isa import OPCODES, Instruction, assemble, validate_program
from netbpf.isa.validate import jump_target, subprogram_starts, validate_upfront

I = Instruction  # noqa: E741 - keeps the tables short
EXIT = I(0x95)
MOV0 = I(0xB7)  # r0 = 0
SOCKET_FILTER = 1  # the program type the kernel-differential loads use (LD_ABS allowed)

# (id, program, index, our message, kernel's message or None when the kernel disagrees
# on purpose or cannot be asked)
REFUSALS: list[tuple[str, list[Instruction], int, str, str | None]] = [
    ("unknown opcode", [I(0x8E), EXIT], 0, "unknown opcode 8e", "unknown opcode 8e"),
    ("opcode 0", [I(0x00), EXIT], 0, "unknown opcode 00", "unknown opcode 00"),
    ("neg X", [MOV0, I(0x8F), EXIT], 1, "unknown opcode 8f", "unknown opcode 8f"),
    ("bswap X", [MOV0, I(0xDF, 0, 0, 0, 16), EXIT], 1, "unknown opcode df", "unknown opcode df"),
    ("ldxsdw", [I(0x99, 0, 1), EXIT], 0, "unknown opcode 99", "unknown opcode 99"),
    ("call32", [I(0x86, 0, 0, 0, 5), EXIT], 0, "unknown opcode 86", "unknown opcode 86"),
    ("jcond32", [MOV0, I(0xE6), EXIT], 1, "unknown opcode e6", "unknown opcode e6"),
    ("ld_abs dw", [I(0xBF, 6, 1), I(0x38), EXIT], 1, "unknown opcode 38", "unknown opcode 38"),
    # reserved fields
    ("alu K src", [I(0x07, 0, 1, 0, 1), EXIT], 0, "BPF_ALU uses reserved fields", "BPF_ALU uses reserved fields"),
    ("alu X imm", [MOV0, I(0x0F, 0, 0, 0, 1), EXIT], 1, "BPF_ALU uses reserved fields", "BPF_ALU uses reserved fields"),
    ("add off 1", [I(0x07, 0, 0, 1, 1), EXIT], 0, "BPF_ALU uses reserved fields", "BPF_ALU uses reserved fields"),
    ("div off 2", [I(0x37, 0, 0, 2, 1), EXIT], 0, "BPF_ALU uses reserved fields", "BPF_ALU uses reserved fields"),
    ("neg imm", [MOV0, I(0x87, 0, 0, 0, 1), EXIT], 1, "BPF_NEG uses reserved fields", "BPF_NEG uses reserved fields"),
    ("end width 8", [MOV0, I(0xD4, 0, 0, 0, 8), EXIT], 1, "BPF_END uses reserved fields", "BPF_END uses reserved fields"),
    ("mov K off", [I(0xB7, 0, 0, 1, 0), EXIT], 0, "BPF_MOV uses reserved fields", "BPF_MOV uses reserved fields"),
    ("mov X off 4", [I(0xBF, 0, 1, 4), EXIT], 0, "BPF_MOV uses reserved fields", "BPF_MOV uses reserved fields"),
    ("movsx32 off 32", [I(0xBC, 0, 1, 32), EXIT], 0, "BPF_MOV uses reserved fields", "BPF_MOV uses reserved fields"),
    ("mov32 X off 1", [I(0xBC, 0, 1, 1), EXIT], 0, "BPF_MOV uses reserved fields", "BPF_MOV uses reserved fields"),
    ("mov X imm", [I(0xBF, 0, 1, 0, 5), EXIT], 0, "BPF_MOV uses reserved fields", "BPF_MOV uses reserved fields"),
    ("addr_space_cast imm", [I(0xBF, 0, 1, 1, 2), EXIT], 0,
     "addr_space_cast insn can only convert between address space 1 and 0",
     "addr_space_cast insn can only convert between address space 1 and 0"),
    ("ldx imm", [I(0x61, 0, 1, 0, 1), EXIT], 0, "BPF_LDX uses reserved fields", "BPF_LDX uses reserved fields"),
    ("st src", [I(0x62, 10, 1, -8, 1), MOV0, EXIT], 0, "BPF_ST uses reserved fields", "BPF_ST uses reserved fields"),
    ("stx imm", [I(0x63, 10, 1, -8, 1), MOV0, EXIT], 0, "BPF_STX uses reserved fields", "BPF_STX uses reserved fields"),
    ("atomic op", [I(0x7B, 10, 1, -8), I(0xDB, 10, 1, -8, 2), MOV0, EXIT], 1,
     "BPF_ATOMIC uses invalid atomic opcode 02", "BPF_ATOMIC uses invalid atomic opcode 02"),
    ("atomic op wide", [I(0x7B, 10, 1, -8), I(0xDB, 10, 1, -8, -2), MOV0, EXIT], 1,
     "BPF_ATOMIC uses invalid atomic opcode fffffffe", "BPF_ATOMIC uses invalid atomic opcode fffffffe"),
    ("atomic8 add", [I(0xD3, 10, 1, -8, 0), MOV0, EXIT], 0, "invalid atomic operand size", "invalid atomic operand size"),
    ("ld_abs dst", [I(0xBF, 6, 1), I(0x20, 1), EXIT], 1,
     "BPF_LD_[ABS|IND] uses reserved fields", "BPF_LD_[ABS|IND] uses reserved fields"),
    ("ld_abs src", [I(0xBF, 6, 1), I(0x20, 0, 1), EXIT], 1,
     "BPF_LD_[ABS|IND] uses reserved fields", "BPF_LD_[ABS|IND] uses reserved fields"),
    ("ld_ind off", [I(0xBF, 6, 1), MOV0, I(0x40, 0, 0, 1), EXIT], 2,
     "BPF_LD_[ABS|IND] uses reserved fields", "BPF_LD_[ABS|IND] uses reserved fields"),
    ("ld_imm64 off", [I(0x18, 0, 0, 1, 1), I(0), EXIT], 0,
     "BPF_LD_IMM64 uses reserved fields", "BPF_LD_IMM64 uses reserved fields"),
    ("ld_imm64 src 7", [I(0x18, 0, 7, 0, 1), I(0), EXIT], 0,
     "unrecognized bpf_ld_imm64 insn", "unrecognized bpf_ld_imm64 insn"),
    ("map_fd upper half", [I(0x18, 1, 1, 0, 1), I(0, 0, 0, 0, 1), MOV0, EXIT], 0,
     "unrecognized bpf_ld_imm64 insn", "unrecognized bpf_ld_imm64 insn"),
    ("ja imm", [MOV0, I(0x05, 0, 0, 0, 1), EXIT], 1, "BPF_JA uses reserved fields", "BPF_JA uses reserved fields"),
    ("gotol off", [MOV0, I(0x06, 0, 0, 1), EXIT], 1, "BPF_JA uses reserved fields", "BPF_JA uses reserved fields"),
    ("call dst", [I(0x85, 1, 0, 0, 5), EXIT], 0, "BPF_CALL uses reserved fields", "BPF_CALL uses reserved fields"),
    ("call src 3", [I(0x85, 0, 3, 0, 5), EXIT], 0, "BPF_CALL uses reserved fields", "BPF_CALL uses reserved fields"),
    ("helper call off", [I(0x85, 0, 0, 1, 5), EXIT], 0, "BPF_CALL uses reserved fields", "BPF_CALL uses reserved fields"),
    ("exit imm", [MOV0, I(0x95, 0, 0, 0, 1)], 1, "BPF_EXIT uses reserved fields", "BPF_EXIT uses reserved fields"),
    ("exit dst", [MOV0, I(0x95, 1)], 1, "BPF_EXIT uses reserved fields", "BPF_EXIT uses reserved fields"),
    ("jcc K src", [MOV0, I(0x15, 0, 1), EXIT], 1,
     "BPF_JMP/JMP32 uses reserved fields", "BPF_JMP/JMP32 uses reserved fields"),
    ("jcc X imm", [MOV0, I(0x1D, 0, 1, 0, 1), EXIT], 1,
     "BPF_JMP/JMP32 uses reserved fields", "BPF_JMP/JMP32 uses reserved fields"),
    ("may_goto imm", [MOV0, I(0xE5, 0, 0, 0, 1), EXIT], 1, "invalid may_goto imm 1", "invalid may_goto imm 1"),
    ("may_goto src", [MOV0, I(0xE5, 0, 1), EXIT], 1, "invalid may_goto imm 0", "invalid may_goto imm 0"),
    # registers
    ("r11 src", [MOV0, I(0x0F, 0, 11), EXIT], 1, "R11 is invalid", "R11 is invalid"),
    ("r11 dst", [I(0xB7, 11), EXIT], 0, "R11 is invalid", "R11 is invalid"),
    ("r12 base", [I(0x79, 0, 12), EXIT], 0, "R12 is invalid", "R12 is invalid"),
    ("r15 ld_ind", [I(0xBF, 6, 1), MOV0, I(0x40, 0, 15), EXIT], 2, "R15 is invalid", "R15 is invalid"),
    ("write r10", [I(0xB7, 10), MOV0, EXIT], 0, "frame pointer is read only", "frame pointer is read only"),
    ("load into r10", [I(0x79, 10, 1), MOV0, EXIT], 0, "frame pointer is read only", "frame pointer is read only"),
    ("fetch into r10", [I(0x7B, 10, 1, -8), I(0xDB, 10, 10, -8, 1), MOV0, EXIT], 1,
     "frame pointer is read only", "frame pointer is read only"),
    # ld_imm64 halves
    ("ld_imm64 second opcode", [I(0x18, 0, 0, 0, 1), I(0x07), EXIT], 0,
     "invalid bpf_ld_imm64 insn", "invalid bpf_ld_imm64 insn"),
    ("ld_imm64 second dst", [I(0x18, 0, 0, 0, 1), I(0, 1), EXIT], 0,
     "invalid bpf_ld_imm64 insn", "invalid bpf_ld_imm64 insn"),
    # the kernel reports this one as "last insn is not an exit or jmp"
    ("ld_imm64 cut off", [MOV0, EXIT, I(0x18, 0, 0, 0, 1)], 2, "invalid bpf_ld_imm64 insn", None),
    # jumps and calls
    ("jump past end", [MOV0, I(0x05, 0, 0, 5), EXIT], 1,
     "jump out of range from insn 1 to 7", "jump out of range from insn 1 to 7"),
    ("jump before start", [MOV0, I(0x05, 0, 0, -3), EXIT], 1,
     "jump out of range from insn 1 to -1", "jump out of range from insn 1 to -1"),
    ("jcc past end", [MOV0, I(0x15, 0, 0, 9), EXIT], 1,
     "jump out of range from insn 1 to 11", "jump out of range from insn 1 to 11"),
    ("gotol past end", [MOV0, I(0x06, 0, 0, 0, 70000), EXIT], 1,
     "jump out of range from insn 1 to 70002", "jump out of range from insn 1 to 70002"),
    ("jump across functions", [MOV0, I(0x85, 0, 1, 0, 1), I(0x05, 0, 0, 1), MOV0, EXIT], 2,
     "jump out of range from insn 2 to 4", "jump out of range from insn 2 to 4"),
    ("jump into ld_imm64", [MOV0, I(0x15, 0, 0, 1), I(0x18, 0, 0, 0, 1), I(0), EXIT], 1,
     "jump into the middle of ldimm64 insn 2", "jump into the middle of ldimm64 insn 2"),
    ("call past end", [MOV0, I(0x85, 0, 1, 0, 10), EXIT], 1,
     "call to invalid destination", "call to invalid destination"),
    ("call before start", [MOV0, I(0x85, 0, 1, 0, -5), EXIT], 1,
     "call to invalid destination", "call to invalid destination"),
    ("func address past end", [I(0x18, 1, 4, 0, 9), I(0), MOV0, EXIT], 0,
     "call to invalid destination", None),
    # shape
    ("last not exit", [MOV0, MOV0], 1, "last insn is not an exit or jmp", "last insn is not an exit or jmp"),
    ("function falls off", [MOV0, I(0x85, 0, 1, 0, 1), EXIT, MOV0], 3,
     "last insn is not an exit or jmp", "last insn is not an exit or jmp"),
    ("empty", [], 0, "empty program", None),
    ("field too wide", [I(0xB7, 0, 0, 0, 1 << 31), EXIT], 0, "field out of range", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("prog", "index", "ours"),
    [(r[1], r[2], r[3]) for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_refusals(prog: list[Instruction], index: int, ours: str) -> None:
    with pytest.raises(InstructionError) as ei:
        validate_program(prog, name="t")
    assert ei.value.index == index
    assert ei.value.reason.startswith(ours), ei.value.reason
    assert str(ei.value).startswith(f"prog 't': insn {index}: ")


KERNEL_CASES = [r for r in REFUSALS if r[4] is not None]


def _kernel_load(prog: list[Instruction]) -> tuple[bool, str]:
    """(accepted, log) from BPF_PROG_LOAD of the raw slots as a socket filter."""
    from netbpf.kernel import syscall

    raw = b"".join(i.encode() for i in prog)
    try:
        fd, log = syscall.prog_load(SOCKET_FILTER, raw, log_level=1)
    except KernelError as e:
        return False, e.log
    fd.close()
    return True, log


@pytest.mark.parametrize(
    ("prog", "kmsg"), [(r[1], r[4]) for r in KERNEL_CASES], ids=[r[0] for r in KERNEL_CASES]
)
def test_kernel_refuses_with_the_same_words(
    kernel: object, prog: list[Instruction], kmsg: str
) -> None:
    ok, log = _kernel_load(prog)
    assert not ok
    lines = [ln for ln in log.splitlines() if ln and not ln.startswith("processed ")]
    assert kmsg in lines, lines[-3:]


def test_kernel_agrees_on_the_opcode_table(kernel: object) -> None:
    """Every byte the table lacks is refused by Linux; every byte it has is known to
    Linux, except LLVM's callx (0x8d), which only we accept."""
    forms = {}
    for _rid, slots in REPS:
        forms.setdefault(slots[0].opcode, slots)
    for code in range(256):
        if code in OPCODES:
            ok, log = _kernel_load([*forms[code], EXIT])
            unknown = f"unknown opcode {code:02x}" in log
            assert unknown == (code == 0x8D), (hex(code), log[-300:])
        else:
            assert not any(True for _ in [0] if code in OPCODES)
            ok, log = _kernel_load([I(code), EXIT])
            assert not ok, hex(code)
            with pytest.raises(InstructionError, match=f"unknown opcode {code:02x}"):
                validate_program([I(code), EXIT])


VALID = {
    "minimal": "r0 = 0\nexit",
    "gotol last": "r0 = 0\nexit\ngotol -0x2",
    "loop": "r0 = 0\nr1 = 10\nloop:\nr0 += r1\nr1 -= 1\nif r1 != 0 goto loop\nexit",
    "subprogram": "r1 = 1\ncall f\nexit\nf:\nr0 = r1\nexit",
    "func pointer": "r1 = func(+3) ll\nr0 = 0\nexit\nr0 = 1\nexit",
    "ld_imm64 then jump over": "r0 = 1 ll\nif r0 == 1 goto +2\nr1 = 2 ll\nexit",
    "pseudo map value": "r1 = map_value(3, 8) ll\nr0 = 0\nexit",
    "callx": "r1 = 0\ncallx r1\nexit",
}


@pytest.mark.parametrize("text", VALID.values(), ids=list(VALID))
def test_valid_programs_pass(text: str) -> None:
    validate_program(assemble(text))


def test_subprograms_and_targets() -> None:
    prog = assemble("r1 = 1\ncall f\ncall g\nexit\nf:\nr0 = 1\nexit\ng:\nr1 = func(f) ll\nexit")
    assert subprogram_starts(prog) == [0, 4, 6]
    assert jump_target(prog[1], 1) == 4
    assert jump_target(prog[6], 6) == 4  # func(f) names code too
    assert jump_target(prog[0], 0) is None
    loop = assemble("r0 = 0\nl: r0 += 1\nif r0 < 3 goto l\ngotol +0\nexit")
    assert jump_target(loop[2], 2) == 1
    assert jump_target(loop[3], 3) == 4


#: REFUSALS Linux makes only where a path reaches the instruction (do_check): reserved
#: fields but LDX's, registers above r10, writes to r10 (tests/test_verifier_rules.py
#: checks each on a dead and on a reached branch against the kernel)
WALKED_ONLY = {
    "alu K src", "alu X imm", "add off 1", "div off 2", "neg imm", "end width 8",
    "mov K off", "mov X off 4", "movsx32 off 32", "mov32 X off 1", "mov X imm",
    "addr_space_cast imm", "st src", "stx imm", "atomic op", "atomic op wide",
    "atomic8 add", "ld_abs dst", "ld_abs src", "ld_ind off", "ld_imm64 off", "ja imm",
    "gotol off", "call dst", "call src 3", "helper call off", "exit imm", "exit dst",
    "jcc K src", "jcc X imm", "may_goto imm", "may_goto src", "r11 src", "r11 dst",
    "r12 base", "r15 ld_ind", "write r10", "load into r10", "fetch into r10",
}  # fmt: skip
#: where the kernel's up-front wording differs from validate_program's
UPFRONT_WORDS = {"ld_imm64 cut off": "last insn is not an exit or jmp"}


@pytest.mark.parametrize(
    ("rid", "prog", "index", "ours"),
    [r[:4] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_upfront_refuses_only_what_linux_refuses_up_front(
    rid: str, prog: list[Instruction], index: int, ours: str
) -> None:
    assert WALKED_ONLY <= {r[0] for r in REFUSALS}
    if rid in WALKED_ONLY:
        validate_upfront(prog, name="t")
        return
    with pytest.raises(InstructionError) as ei:
        validate_upfront(prog, name="t")
    want = UPFRONT_WORDS.get(rid, ours)
    assert ei.value.reason.startswith(want), ei.value.reason
    if rid not in UPFRONT_WORDS:
        assert ei.value.index == index


def test_upfront_refuses_callx_like_linux() -> None:
    """validate_program passes LLVM's callx (bpf_conformance runs it); Linux refuses it
    before walking, and so does validate_upfront."""
    prog = assemble(VALID["callx"])
    validate_program(prog)
    with pytest.raises(InstructionError, match="unknown opcode 8d"):
        validate_upfront(prog)


@pytest.mark.parametrize(
    "prog",
    [
        [MOV0, I(0x95, 0, 0, 1)],  # exit's off: Linux ignores it
        [I(0x7A, 10, 0, -8), MOV0, I(0xDB, 10, 10, -8, 0xF1), EXIT],  # cmpxchg writes r0
    ],
    ids=["exit off", "cmpxchg src r10"],
)
def test_fields_linux_does_not_check(prog: list[Instruction]) -> None:
    validate_program(prog)
