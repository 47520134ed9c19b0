"""The VM conformance corpus (tests/conformance/cases/*.data), run everywhere.

* every case in every netbpf engine: the expected r0, or the expected error;
* every case in the running kernel through BPF_PROG_TEST_RUN (XDP harness, or
  SCHED_CLS for LD_ABS/LD_IND cases; see :mod:`netbpf.cli.conformance_plugin`): the
  same r0 and the same memory afterwards as netbpf, or the verifier refusal the case
  announces; skipped with the probe's reason where the kernel is unusable;
* the corpus itself: it parses strictly, and it exercises every opcode (and every
  opcode variant selected by off / imm / src) that RFC 9669 and its v4 additions define.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance.corpus import Case, CorpusError, load_corpus, parse_cases

import netbpf.errors
from netbpf.cli.conformance_plugin import (
    Outcome,
    run_kernel,
    run_kernel_skb,
    run_vm,
    run_vm_skb,
)
from netbpf.errors import KernelError, NetbpfError
from netbpf.isa.instruction import Instruction
from netbpf.isa.opcodes import MOVSX_OFFSETS, OPCODES, Group, Kind, OpInfo
from netbpf.kernel import KernelBackend
from netbpf.uapi import (
    BPF_ADD,
    BPF_ALU,
    BPF_ALU64,
    BPF_AND,
    BPF_CMPXCHG,
    BPF_DIV,
    BPF_FETCH,
    BPF_MOD,
    BPF_OR,
    BPF_XCHG,
    BPF_XOR,
)
from netbpf.vm.engine import ENGINES

CASES = load_corpus()
#: RFC 9669 section 5.3's atomic operations (Linux's later load-acquire / store-release
#: are not part of the RFC).
RFC_ATOMIC_IMMS = frozenset(
    {op | f for op in (BPF_ADD, BPF_OR, BPF_AND, BPF_XOR) for f in (0, BPF_FETCH)}
    | {BPF_XCHG, BPF_CMPXCHG}
)
RESULT_CASES = [c for c in CASES if c.result is not None]


def _run_vm(case: Case, engine: str) -> Outcome:
    insns = case.program()
    if case.packet is not None:
        return run_vm_skb(insns, case.packet, engine=engine, name=case.name)
    return run_vm(insns, case.mem, engine=engine, name=case.name)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_vm(case: Case, engine: str) -> None:
    if case.error is None:
        got = _run_vm(case, engine).r0
        assert got == case.result, f"{case.where}: r0 = {got:#x}, expected {case.result:#x}"
        return
    cls_name, text = case.error
    cls = getattr(netbpf.errors, cls_name, None)
    assert isinstance(cls, type) and issubclass(cls, NetbpfError), (
        f"{case.where}: -- error names {cls_name!r}, not a netbpf.errors class"
    )
    with pytest.raises(cls) as info:
        _run_vm(case, engine)
    assert text in str(info.value), f"{case.where}: {info.value!s} lacks {text!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel(case: Case, kernel: KernelBackend) -> None:
    if case.kernel.mode == "skip":
        pytest.skip(f"{case.id}: {case.kernel.text}")
    insns = case.program()

    def run() -> Outcome:
        if case.packet is not None:
            return run_kernel_skb(kernel, insns, case.packet, name=case.name)
        return run_kernel(kernel, insns, case.mem, name=case.name)

    if case.kernel.mode == "reject":
        with pytest.raises(KernelError) as info:
            run()
        log = info.value.log or str(info.value)
        assert case.kernel.text in log, (
            f"{case.where}: the kernel refused it, but its log lacks "
            f"{case.kernel.text!r}:\n{log[-2000:]}"
        )
        return
    got = run()
    assert got.r0 == case.result, (
        f"{case.where}: kernel r0 = {got.r0:#x}, case says {case.result:#x}"
    )
    ours = _run_vm(case, "interpreter")
    assert got.memory == ours.memory, f"{case.where}: memory after the run differs from netbpf's"


def _variant(insns: list[Instruction]) -> set[tuple]:
    """The opcode variants a program uses: the opcode, plus the field that selects
    the operation where one does (signed div/mod off, movsx off, END width, atomic
    imm, call kind)."""
    out: set[tuple] = set()
    skip_next = False
    for insn in insns:
        if skip_next:
            skip_next = False
            continue
        info = OPCODES.get(insn.opcode)
        if info is None:
            continue
        if info.slots == 2:
            skip_next = True
        out.add(_key(info, insn.off, insn.imm, insn.src))
    return out


def _key(info: OpInfo, off: int, imm: int, src: int) -> tuple:
    if info.kind is Kind.ALU and info.op in (BPF_DIV, BPF_MOD):
        return (info.opcode, "off", off)
    if info.kind is Kind.MOV and info.use_src_reg:
        return (info.opcode, "off", off)
    if info.kind is Kind.END:
        return (info.opcode, "imm", imm)
    if info.kind is Kind.ATOMIC:
        return (info.opcode, "imm", imm)
    if info.kind in (Kind.CALL, Kind.LD_IMM64):
        return (info.opcode, "src", src)
    return (info.opcode,)


def _required() -> set[tuple]:
    """Every RFC 9669 (+ v4) opcode variant, from the opcode table."""
    req: set[tuple] = set()
    for info in OPCODES.values():
        if info.group is Group.LINUX:
            continue  # may_goto, callx, addr_space_cast: not part of the RFC
        if info.kind is Kind.ALU and info.op in (BPF_DIV, BPF_MOD):
            req |= {(info.opcode, "off", 0), (info.opcode, "off", 1)}
        elif info.kind is Kind.MOV and info.use_src_reg:
            cls = BPF_ALU64 if info.width == 64 else BPF_ALU
            req |= {(info.opcode, "off", o) for o in (0, *MOVSX_OFFSETS[cls])}
        elif info.kind is Kind.END:
            req |= {(info.opcode, "imm", w) for w in (16, 32, 64)}
        elif info.kind is Kind.ATOMIC:
            req |= {(info.opcode, "imm", a) for a in RFC_ATOMIC_IMMS}
        elif info.kind is Kind.CALL:
            req |= {(info.opcode, "src", 0), (info.opcode, "src", 1)}
        elif info.kind is Kind.LD_IMM64:
            req.add((info.opcode, "src", 0))
        else:
            req.add((info.opcode,))
    return req


def test_corpus_covers_every_opcode() -> None:
    used: set[tuple] = set()
    for case in RESULT_CASES:
        used |= _variant(case.program())
    missing = _required() - used
    names = sorted(f"{OPCODES[k[0]].name}{k[1:] if len(k) > 1 else ''}" for k in missing)
    assert not missing, f"opcode variants no -- result case exercises: {names}"


def test_corpus_is_large_and_has_unique_ids() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 250
    # every edge-case family the corpus promises is present
    for needle in (
        "divmod/div64-by-zero-reg",
        "divmod/smod32-intmin-by-minus-one-k",
        "shift/lsh64-x-masked",
        "alu64/and-k-signext",
        "alu32/add32-k-zero-extends",
        "atomic/cmpxchg32-mismatch",
        "atomic/fetch-xor32",
        "packet/ldabsw-short-packet",
        "jmp/jsgt32-k",
        "byteorder/be16",
    ):
        assert needle in ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- asm\nexit\n", "before the first case"),
        ("=== a\n-- asm\nexit\n", "exactly one of -- result / -- error"),
        ("=== a\n-- result\n1\n", "exactly one of -- asm / -- raw"),
        ("=== a\n-- asm\nexit\n-- result\n1\n-- bogus\n", "unknown section -- bogus"),
        ("=== a\n-- asm\nexit\n-- result\n1\n-- result\n2\n", "given twice"),
        ("=== a\n-- asm\nexit\n-- result\n1\n=== a\n-- asm\nexit\n-- result\n1\n", "duplicate"),
        ("=== a\n-- asm\nexit\n-- mem\n0g\n-- result\n1\n", "'0g' is not a hex byte"),
        ("=== a\n-- asm\nexit\n-- result\nzz\n", "'zz' is not a number"),
        ("=== a\n-- asm\nexit\n-- result\n0x1ffffffffffffffff\n", "does not fit in 64 bits"),
        ("=== a\n-- asm\nexit\n-- error\nProgramFault\n", "say what the kernel does"),
        ("=== a\n-- asm\nexit\n-- result\n1\n-- kernel\nmaybe\n", "accept, reject or skip"),
        ("=== a\n-- asm\nexit\n-- result\n1\n-- kernel\nskip\n", "needs a reason"),
        ("=== a\n-- asm\nexit\n-- error\nnot a class\n-- kernel\nreject\n", "class name"),
        ("=== A b\n", "bad case name"),
        ("=== a\nstray text\n", "text outside a section"),
    ],
)
def test_corpus_format_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(CorpusError) as info:
        parse_cases(text, Path("x.data"))
    assert message in str(info.value)
    assert str(info.value).startswith("x.data:")


def test_corpus_parses_every_section() -> None:
    (case,) = parse_cases(
        "# file comment\n=== one\n# why\n-- raw\n95 00 00 00 00 00 00 00 # exit\n"
        "-- packet\n00 01\n-- error\nProgramFault: insn 0\n-- kernel\nreject: nope\n",
        Path("g.data"),
    )
    assert case.id == "g/one" and case.line == 2
    assert case.raw == bytes.fromhex("9500000000000000") and case.packet == b"\x00\x01"
    assert case.error == ("ProgramFault", "insn 0")
    assert (case.kernel.mode, case.kernel.text) == ("reject", "nope")
    assert [i.opcode for i in case.program()] == [0x95]
