"""Disassembler: exact strings, llvm-objdump-19 line for line, the kernel verifier log
line for line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from test_isa_roundtrip import REPS

from netbpf.errors import KernelError
from netbpf.isa import Instruction, assemble, decode_program, disassemble, format_insn
from netbpf.isa.opcodes import BPF_LOAD_ACQ, BPF_STORE_REL, CALL_LOCAL

I = Instruction  # noqa: E741

OBJDUMP = "llvm-objdump-19"
V4 = ("-mcpu=v4",)

# (slots, llvm style, verifier style)
EXAMPLES: list[tuple[list[Instruction], str, str]] = [
    ([I(0x61, 0, 1, 4)], "r0 = *(u32 *)(r1 + 0x4)", "r0 = *(u32 *)(r1 +4)"),
    ([I(0x2D, 2, 3, 5)], "if r2 > r3 goto +0x5", "if r2 > r3 goto pc+5"),
    ([I(0x15, 1, 0, -2, -1)], "if r1 == -0x1 goto -0x2", "if r1 == 0xffffffff goto pc-2"),
    ([I(0xDB, 10, 1, -8)], "lock *(u64 *)(r10 - 0x8) += r1", "lock *(u64 *)(r10 -8) += r1"),
    ([I(0xBC, 0, 1)], "w0 = w1", "w0 = w1"),
    ([I(0xDC, 0, 0, 0, 16)], "r0 = be16 r0", "r0 = be16 r0"),
    ([I(0xD7, 0, 0, 0, 32)], "r0 = bswap32 r0", "r0 = bswap32 r0"),
    ([I(0xBF, 1, 2, 8)], "r1 = (s8)r2", "r1 = (s8)r2"),
    ([I(0x89, 0, 1, 2)], "r0 = *(s16 *)(r1 + 0x2)", "r0 = *(s16 *)(r1 +2)"),
    ([I(0x85, 0, 0, 0, 1)], "call 0x1", "call bpf_map_lookup_elem#1"),
    ([I(0x85, 0, 1, 0, 3)], "call pc+0x3", "call pc+3"),
    ([I(0x85, 0, 2, 0, 77)], "call kfunc(0x4d)", "call kfunc(77)"),
    (
        [I(0x18, 1, 0, 0, 0x55667788), I(0, imm=0x11223344)],
        "r1 = 0x1122334455667788 ll",
        "r1 = 0x1122334455667788 ll",
    ),
    ([I(0x18, 1, 0, 0, -1), I(0, imm=-1)], "r1 = -0x1 ll", "r1 = 0xffffffffffffffff ll"),
    ([I(0x18, 1, 1, 0, 3), I(0)], "r1 = map_fd(0x3) ll", "r1 = map_fd(3) ll"),
    ([I(0x18, 1, 2, 0, 3), I(0, imm=8)], "r1 = map_value(0x3, 0x8) ll", "r1 = map_value(3, 8) ll"),
    ([I(0x06, 0, 0, 0, 70000)], "gotol +0x11170", "gotol pc+70000"),
    ([I(0x8D, 1)], "callx r1", "callx r1"),
    ([I(0xE5, 0, 0, 4)], "may_goto +0x4", "may_goto pc+4"),
    (
        [I(0xDB, 1, 2, 0, 0xF1)],
        "r0 = cmpxchg_64(r1 + 0x0, r0, r2)",
        "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)",
    ),
    (
        [I(0xC3, 10, 1, -8, 0x41)],
        "w1 = atomic_fetch_or((u32 *)(r10 - 0x8), w1)",
        "r1 = atomic_fetch_or((u32 *)(r10 -8), r1)",
    ),
    (
        [I(0xC3, 10, 1, -8, 0xE1)],
        "w1 = xchg32_32(r10 - 0x8, w1)",
        "r1 = atomic_xchg((u32 *)(r10 -8), r1)",
    ),
    ([I(0x20, 0, 0, 0, 12)], "r0 = *(u32 *)skb[0xc]", "r0 = *(u32 *)skb[12]"),
    ([I(0x50, 0, 3, 0, -4)], "r0 = *(u8 *)skb[r3 - 0x4]", "r0 = *(u8 *)skb[r3 + -4]"),
    ([I(0x3F, 1, 2, 1)], "r1 s/= r2", "r1 s/= r2"),
    ([I(0x94, 1, 0, 1, -3)], "w1 s%= -0x3", "w1 s%= -3"),
    ([I(0x07, 2, 0, 0, -4)], "r2 += -0x4", "r2 += -4"),
    (
        [I(0xBF, 1, 2, 1, 0x10000)],
        "r1 = addr_space_cast(r2, 0x1, 0x0)",
        "r1 = addr_space_cast(r2, 1, 0)",
    ),
    (
        [I(0xDB, 0, 1, 8, 0x100)],
        "r0 = load_acquire((u64 *)(r1 + 0x8))",
        "r0 = load_acquire((u64 *)(r1 +8))",
    ),
    (
        [I(0xD3, 1, 2, 0, 0x110)],
        "store_release((u8 *)(r1 + 0x0), r2)",
        "store_release((u8 *)(r1 +0), r2)",
    ),
    ([I(0x8E)], ".quad 0x000000000000008e", ".quad 0x000000000000008e"),
]


@pytest.mark.parametrize(("slots", "llvm", "verifier"), EXAMPLES, ids=[e[1] for e in EXAMPLES])
def test_examples(slots: list[Instruction], llvm: str, verifier: str) -> None:
    assert format_insn(slots, 0) == llvm
    assert format_insn(slots, 0, style="verifier") == verifier
    assert assemble(llvm) == slots
    assert assemble(verifier) == slots


def test_bad_style_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="style"):
        format_insn([I(0x95)], 0, style="intel")  # type: ignore[arg-type]


# --- llvm-objdump-19, line for line ------------------------------------------------------

_ANNOTATION = re.compile(r"\s+<[\w.$@]+(?:[+-]0x[0-9a-f]+)?>$")


def _objdump(obj: Path, *extra: str) -> dict[str, dict[int, str]]:
    """{section: {slot index: text}} as ``llvm-objdump-19 -d --no-show-raw-insn``
    prints it, target annotations stripped."""
    out = subprocess.run(
        [OBJDUMP, "-d", "--no-show-raw-insn", *extra, str(obj)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sections: dict[str, dict[int, str]] = {}
    current: dict[int, str] = {}
    for line in out.splitlines():
        m = re.match(r"^Disassembly of section (.+):$", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        m = re.match(r"^\s+(\d+):\t(.*)$", line)
        if m:
            current[int(m.group(1))] = _ANNOTATION.sub("", m.group(2))
    return sections


def _code_sections(obj: Path) -> dict[str, list[Instruction]]:
    with obj.open("rb") as f:
        elf = ELFFile(f)
        return {
            s.name: decode_program(s.data())
            for s in elf.iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"]
        }


def _expected(insn: Instruction, plain: str, v4: str) -> str | None:
    """llvm's text, adjusted where we print something lossless instead (see disasm.py)."""
    if insn.opcode == 0xC3:  # 32-bit atomics: plain objdump cannot decode them
        return v4
    if insn.opcode == 0x85 and insn.src == CALL_LOCAL:  # llvm: "call -0x1"
        m = re.fullmatch(r"call (-?)(0x[0-9a-f]+)", plain)
        assert m, plain
        return f"call pc{m.group(1) or '+'}{m.group(2)}"
    return plain


def _compare_with_objdump(obj: Path) -> int:
    plain, v4 = _objdump(obj), _objdump(obj, "--mcpu=v4")
    compared = 0
    for name, insns in _code_sections(obj).items():
        ours = {}
        i = 0
        while i < len(insns):
            ours[i] = format_insn(insns, i)
            i += 2 if insns[i].opcode == 0x18 else 1
        assert set(ours) == set(plain[name]), name
        for idx, text in ours.items():
            want = _expected(insns[idx], plain[name][idx], v4[name][idx])
            assert text == want, f"{name}+{idx}: {insns[idx]}"
            compared += 1
        # and the listing itself assembles back to the section's bytes
        assert assemble("\n".join(disassemble(insns))) == insns
    return compared


@pytest.fixture(scope="module")
def objdump() -> str:
    tool = shutil.which(OBJDUMP)
    if tool is None:
        pytest.skip(f"{OBJDUMP} not found on PATH")
    return tool


def test_matches_llvm_objdump_on_isa_ops_c(compile_bpf, objdump: str) -> None:
    obj = compile_bpf("isa_ops.c", extra_flags=V4)
    assert _compare_with_objdump(obj) > 100


def _llvm_exact(slots: list[Instruction]) -> bool:
    """Forms llvm-objdump-19 prints the way we do (the others are listed in disasm.py)."""
    insn = slots[0]
    if insn.opcode == 0x18:
        return insn.src == 0
    if insn.opcode == 0x85:
        return insn.src != 2  # kfunc: ours is call kfunc(..)
    if insn.opcode in (0x40, 0x48, 0x50):
        return insn.imm == 0  # llvm drops LD_IND's immediate
    return not (insn.opcode & 0x07 == 0x03 and insn.opcode & 0xE0 == 0xC0
                and insn.imm in (BPF_LOAD_ACQ, BPF_STORE_REL))  # fmt: skip


def test_matches_llvm_objdump_on_every_form(compile_bpf, objdump: str) -> None:
    """Every representative form, emitted raw with .quad into an object, printed by
    llvm-objdump-19 and by us."""
    slots = [s for _, rep in REPS if _llvm_exact(rep) for s in rep]
    quads = "\\n".join(f".quad {int.from_bytes(s.encode(), 'little'):#018x}" for s in slots)
    src = f'__attribute__((section("xdp"), used)) int every_form(void)\n{{ asm volatile("{quads}"); return 0; }}\n'
    obj = compile_bpf(src)
    assert _compare_with_objdump(obj) >= len(slots) - sum(1 for s in slots if s.opcode == 0)


# --- the kernel verifier log, line for line -----------------------------------------------

# Programs the kernel accepts (so every line is printed), covering the forms it knows.
KERNEL_PROGRAMS = {
    "alu and memory": """
        r6 = r1
        r0 = 0
        r2 = 5
        w3 = 7
        r2 += 3
        r2 -= -4
        r2 *= r3
        r2 /= 3
        r2 %= r3
        r2 |= 0x10
        r2 &= 0xff
        r2 <<= 2
        r2 >>= 1
        r2 s>>= r3
        r2 ^= 1
        r2 s/= 3
        r2 s%= r3
        w2 += w3
        w2 s/= -2
        w2 <<= 3
        w2 s>>= 1
        r2 = -r2
        w2 = -w2
        r2 = be16 r2
        r2 = le32 r2
        r2 = be64 r2
        r2 = bswap16 r2
        r2 = bswap64 r2
        r4 = (s8)r2
        r4 = (s16)r2
        r4 = (s32)r2
        w4 = (s8)w2
        w4 = (s16)w2
        r5 = 0x1122334455667788 ll
        r5 = -1 ll
        *(u64 *)(r10 - 8) = r2
        *(u32 *)(r10 - 12) = w2
        *(u16 *)(r10 - 14) = 3
        *(u8 *)(r10 - 15) = -1
        r4 = *(u64 *)(r10 - 8)
        r4 = *(u32 *)(r10 - 12)
        r4 = *(s32 *)(r10 - 12)
        r4 = *(s16 *)(r10 - 14)
        r4 = *(s8 *)(r10 - 15)
        r4 = *(u8 *)(r10 - 15)
        r4 = *(u16 *)(r10 - 14)
        r1 = 1
        lock *(u64 *)(r10 - 8) += r1
        lock *(u64 *)(r10 - 8) |= r1
        lock *(u64 *)(r10 - 8) &= r1
        lock *(u64 *)(r10 - 8) ^= r1
        lock *(u32 *)(r10 - 12) += w1
        lock *(u32 *)(r10 - 12) ^= w1
        r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)
        r1 = atomic_fetch_or((u64 *)(r10 - 8), r1)
        r1 = atomic_fetch_and((u64 *)(r10 - 8), r1)
        r1 = atomic_fetch_xor((u64 *)(r10 - 8), r1)
        w1 = atomic_fetch_add((u32 *)(r10 - 12), w1)
        w1 = atomic_fetch_and((u32 *)(r10 - 12), w1)
        r1 = xchg_64(r10 - 8, r1)
        w1 = xchg32_32(r10 - 12, w1)
        r0 = cmpxchg_64(r10 - 8, r0, r1)
        w0 = cmpxchg32_32(r10 - 12, w0, w1)
        r0 = load_acquire((u64 *)(r10 - 8))
        r0 = load_acquire((u8 *)(r10 - 8))
        store_release((u32 *)(r10 - 8), r1)
        store_release((u16 *)(r10 - 8), r1)
        r0 = *(u8 *)skb[12]
        r0 = *(u16 *)skb[12]
        r0 = *(u32 *)skb[12]
        r3 = 2
        r0 = *(u32 *)skb[r3 + 4]
        r0 = 0
        exit
    """,
    "jumps and calls": """
        r6 = r1
        r0 = 0
        r2 = 5
        r7 = r2
        if r7 == 0x1 goto +0
        if r7 != r2 goto +0
        if r7 > 3 goto +0
        if r7 >= r2 goto +0
        if r7 < 3 goto +0
        if r7 <= 3 goto +0
        if r7 s> -3 goto +0
        if r7 s>= 3 goto +0
        if r7 s< 3 goto +0
        if r7 s<= 3 goto +0
        if r7 & 4 goto +0
        if w7 == 1 goto +0
        if w7 s< w2 goto +0
        if w7 & 0xffffffff goto +0
        if r7 == -1 goto +0
        goto +0
        gotol +0
        may_goto +0
        call bpf_ktime_get_ns
        call sub
        r0 = 0
        exit
    sub:
        r0 = 1
        exit
    """,
}


@pytest.mark.parametrize("name", list(KERNEL_PROGRAMS))
def test_matches_the_kernel_verifier_log(kernel: object, name: str) -> None:
    from netbpf.kernel import syscall

    insns = assemble(KERNEL_PROGRAMS[name])
    raw = b"".join(i.encode() for i in insns)
    try:
        fd, log = syscall.prog_load(1, raw, log_level=2)  # socket filter
    except KernelError as e:  # pragma: no cover - shows the log when it happens
        pytest.fail(f"kernel refused the test program:\n{e.log[-2000:]}")
    fd.close()
    printed: dict[int, str] = {}
    for line in log.splitlines():
        m = re.match(r"^(\d+): \(([0-9a-f]{2})\) (.*?)\s*(?:;.*)?$", line)
        if m:
            printed.setdefault(int(m.group(1)), m.group(3))
    i = 0
    compared = 0
    while i < len(insns):
        ours = format_insn(insns, i, style="verifier")
        want = printed[i]
        if insns[i].opcode == 0x18:
            want += " ll"  # the one deliberate difference (see disasm.py)
        assert ours == want, f"insn {i}"
        compared += 1
        i += 2 if insns[i].opcode == 0x18 else 1
    assert compared > 20


def test_matches_the_kernel_listing_of_refused_programs(kernel: object) -> None:
    """Forms the kernel prints but will not load here (an arena cast without an arena,
    an unknown helper): its 'Live regs' listing still shows them."""
    from netbpf.kernel import syscall

    insns = assemble("r2 = 0\nr1 = addr_space_cast(r2, 1, 0)\ncall 9999\nr0 = 0\nexit")
    with pytest.raises(KernelError) as ei:
        syscall.prog_load(1, b"".join(i.encode() for i in insns), log_level=2)
    listed = {}
    for line in ei.value.log.splitlines():
        m = re.match(r"^\s+(\d+): [.0-9]+ \(([0-9a-f]{2})\) (.*)$", line)
        if m:
            listed[int(m.group(1))] = m.group(3)
    if not listed:
        pytest.skip("this kernel's log has no 'Live regs' listing")
    assert listed[1] == format_insn(insns, 1, style="verifier") == "r1 = addr_space_cast(r2, 1, 0)"
    assert listed[2] == format_insn(insns, 2, style="verifier") == "call unknown#9999"
