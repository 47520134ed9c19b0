"""Soundness fuzzing of netbpf's verifier against the running kernel.

Seeds are the corpus programs (tests/verifier_corpus) the kernel accepts: packet
parsers with bounds checks, map lookups with NULL checks, stack use, bounded indexes,
socket and ring buffer references.  Hypothesis mutates them the way a careless edit
would — change a load/store offset or size, drop a bounds or NULL check, flip a
comparison, add pointer arithmetic (constant or by a register) before an access, swap
a register, nudge an immediate, make a 64-bit comparison or ALU op 32-bit (or back),
insert an ALU step anywhere, delete an instruction — and for every mutant **netbpf's verifier accepts**, the kernel must accept
it too, or refuse it for a reason that is not memory safety (NON_SAFETY_CLASSES: the
complexity limit, unreachable code, a return value out of range...).  A mutant netbpf
accepts and the kernel refuses for safety is a soundness bug; the failure shows the
mutant's disassembly and the kernel's verdict.

A second test mutates programs we did not write: the small clang-built programs of
Debian's xdp-tools (xdp-filter's Ethernet variants, xdpdump, the AF_XDP default
programs, libxdp's dispatcher), skipped where xdp-tools is not installed.

Bounded (300 corpus and 75 xdp-tools examples, derandomized so CI runs the same
mutants every time) so it stays within a minute or two; set NETBPF_FUZZ_EXAMPLES
(NETBPF_FUZZ_XDP_TOOLS_EXAMPLES) to run more by hand, and NETBPF_FUZZ_RANDOM=1 to
explore different mutants on each run.  ``pytest -s`` prints the outcome classes,
including the mutants netbpf refuses and the kernel accepts (precision, with
netbpf's verdict line; not asserted here, the corpus asserts precision).
"""

from __future__ import annotations

import collections
import functools
import os
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_corpus.corpus import (
    NON_SAFETY_CLASSES,
    Built,
    Case,
    KernelSetupError,
    build,
    classify,
    load_corpus,
    summary_line,
)

import netbpf.verifier
from netbpf.errors import KernelError, NetbpfError, VerifierError
from netbpf.isa.disasm import disassemble
from netbpf.isa.instruction import Instruction
from netbpf.obj.collection import CollectionSpec, load_collection_spec
from netbpf.obj.spec import MapReloc

HAVE_VERIFIER = getattr(netbpf.verifier, "verify", None) is not None

#: groups whose accepted assembly programs seed the fuzzer (loops are left out: their
#: mutants can take the kernel and netbpf a long walk to the complexity limit)
SEED_GROUPS = (
    "pkt",
    "null",
    "stack",
    "bounds",
    "ptr_arith",
    "refs",
    "reg_types",
    "helpers",
    "ctx",
    "subprog",
    "tailcall",
)

EXAMPLES = int(os.environ.get("NETBPF_FUZZ_EXAMPLES", "300"))
#: NETBPF_FUZZ_RANDOM=1 explores new mutants each run instead of CI's fixed ones
DERANDOMIZE = not os.environ.get("NETBPF_FUZZ_RANDOM")

# opcode pieces
_CLASS = 0x07
_LD, _LDX, _ST, _STX, _ALU, _JMP, _JMP32, _ALU64 = range(8)
_MODE_MEM = 0x60
_SIZES = (0x00, 0x08, 0x10, 0x18)  # W H B DW
_OP = 0xF0
_JA, _CALL, _EXIT = 0x00, 0x80, 0x90
_NEGATE = {0x10: 0x50, 0x50: 0x10, 0x20: 0xB0, 0xB0: 0x20, 0x30: 0xA0, 0xA0: 0x30,
           0x60: 0xD0, 0xD0: 0x60, 0x70: 0xC0, 0xC0: 0x70}  # fmt: skip
_REVERSE = {0x20: 0xA0, 0xA0: 0x20, 0x30: 0xB0, 0xB0: 0x30, 0x60: 0xC0, 0xC0: 0x60,
            0x70: 0xD0, 0xD0: 0x70, 0x10: 0x10, 0x50: 0x50}  # fmt: skip
_LD_IMM64 = 0x18
_PSEUDO_FUNC = 4
_DELTAS = (-8, -4, -2, -1, 1, 2, 4, 8)

KINDS = (
    "offset",
    "size",
    "drop_check",
    "flip",
    "reverse",
    "ptr_arith",
    "swap_reg",
    "imm",
    "delete",
    "ptr_arith_reg",
    "width",
    "insert_alu",
)

#: ALU operations "insert_alu" adds (add, sub, mul, or, and, lsh, rsh, xor, arsh)
_ALU_OPS = (0x00, 0x10, 0x20, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xC0)


def _slots(insns: list[Instruction]) -> list[int]:
    """Indexes of real instructions (not the second half of an LD_IMM64)."""
    out, skip = [], False
    for i, ins in enumerate(insns):
        if skip:
            skip = False
            continue
        out.append(i)
        skip = ins.opcode == _LD_IMM64
    return out


def _is_mem(ins: Instruction) -> bool:
    return ins.opcode & _CLASS in (_LDX, _ST, _STX) and ins.opcode & 0xE0 == _MODE_MEM


def _is_cond_jump(ins: Instruction) -> bool:
    cls, op = ins.opcode & _CLASS, ins.opcode & _OP
    return cls in (_JMP, _JMP32) and op not in (_JA, _CALL, _EXIT)


def _rel_field(ins: Instruction) -> str | None:
    """The pc-relative field of ``ins`` (jumps, ``gotol``, local calls, function
    pointers), or None."""
    cls, op = ins.opcode & _CLASS, ins.opcode & _OP
    if cls in (_JMP, _JMP32) and op not in (_CALL, _EXIT):
        return "imm" if (cls == _JMP32 and op == _JA) else "off"
    if (cls == _JMP and op == _CALL and ins.src == 1) or (
        ins.opcode == _LD_IMM64 and ins.src == _PSEUDO_FUNC
    ):
        return "imm"
    return None


def _insert(
    insns: list[Instruction], relocs: tuple[MapReloc, ...], at: int, new: Instruction
) -> tuple[list[Instruction], tuple[MapReloc, ...]]:
    """Insert ``new`` before slot ``at``; jumps to ``at`` now land on ``new``, every
    other pc-relative offset (jumps, local calls, function pointers) and every map
    relocation keeps pointing at the same instruction."""
    out: list[Instruction] = []
    for j, ins in enumerate(insns):
        rel_field = _rel_field(ins)
        if rel_field is not None:
            rel = getattr(ins, rel_field)
            target = j + 1 + rel
            if j < at and target > at:
                ins = replace(ins, **{rel_field: rel + 1})
            elif j >= at and target <= at:
                ins = replace(ins, **{rel_field: rel - 1})
        out.append(ins)
    out.insert(at, new)
    moved = tuple(replace(r, slot=r.slot + 1) if r.slot >= at else r for r in relocs)
    return out, moved


def _delete(
    insns: list[Instruction], relocs: tuple[MapReloc, ...], at: int
) -> tuple[list[Instruction], tuple[MapReloc, ...]] | None:
    """Remove the one-slot instruction at ``at``; jumps to it land on its successor,
    every other pc-relative offset and map relocation keeps its target."""
    out: list[Instruction] = []
    for j, ins in enumerate(insns):
        rel_field = _rel_field(ins)
        if rel_field is not None and j != at:
            rel = getattr(ins, rel_field)
            target = j + 1 + rel
            if j < at < target:
                ins = replace(ins, **{rel_field: rel - 1})
            elif j > at >= target:
                ins = replace(ins, **{rel_field: rel + 1})
        out.append(ins)
    del out[at]
    if any(r.slot == at for r in relocs):
        return None
    return out, tuple(replace(r, slot=r.slot - 1) if r.slot > at else r for r in relocs)


def mutate(built: Built, kind: str, pick: int, param: int) -> Built | None:
    """One mutation of ``kind`` at the ``pick``-th applicable instruction; None when the
    program has no instruction it applies to (or it would change nothing)."""
    insns = list(built.spec.insns)
    relocs = built.spec.map_relocs
    slots = _slots(insns)
    mem = [i for i in slots if _is_mem(insns[i])]
    jumps = [i for i in slots if _is_cond_jump(insns[i])]
    delta = _DELTAS[param % len(_DELTAS)]
    if kind in ("offset", "size", "ptr_arith", "ptr_arith_reg", "swap_reg") and not mem:
        return None
    if kind in ("drop_check", "flip", "reverse") and not jumps:
        return None
    if kind == "offset":
        i = mem[pick % len(mem)]
        insns[i] = replace(insns[i], off=max(-32768, min(32767, insns[i].off + delta)))
    elif kind == "size":
        i = mem[pick % len(mem)]
        ins = insns[i]
        size = _SIZES[param % 4]
        if size == ins.opcode & 0x18:
            return None
        insns[i] = replace(ins, opcode=(ins.opcode & ~0x18) | size)
    elif kind == "drop_check":
        # the branch is never taken (or, with an odd param, always taken)
        i = jumps[pick % len(jumps)]
        ins = insns[i]
        off = ins.off if param % 2 else 0
        insns[i] = Instruction(_JMP | _JA, 0, 0, off, 0)
    elif kind == "flip":
        i = jumps[pick % len(jumps)]
        ins = insns[i]
        op = ins.opcode & _OP
        if op not in _NEGATE:
            return None
        insns[i] = replace(ins, opcode=(ins.opcode & ~_OP) | _NEGATE[op])
    elif kind == "reverse":
        i = jumps[pick % len(jumps)]
        ins = insns[i]
        op = ins.opcode & _OP
        if _REVERSE.get(op, op) == op:
            return None
        insns[i] = replace(ins, opcode=(ins.opcode & ~_OP) | _REVERSE[op])
    elif kind == "ptr_arith":
        i = mem[pick % len(mem)]
        ins = insns[i]
        base = ins.src if ins.opcode & _CLASS == _LDX else ins.dst
        add = Instruction(_ALU64 | 0x00 | 0x00, base, 0, 0, delta)  # rB += delta
        insns, relocs = _insert(insns, relocs, i, add)
    elif kind == "ptr_arith_reg":
        # rB += rK (or -= with an odd param) before an access: a variable offset from
        # whatever rK holds there (a scalar of known bounds, a pointer, uninitialised)
        i = mem[pick % len(mem)]
        ins = insns[i]
        base = ins.src if ins.opcode & _CLASS == _LDX else ins.dst
        reg = (param >> 1) % 10
        op = 0x10 if param % 2 else 0x00
        add = Instruction(_ALU64 | op | 0x08, base, reg, 0, 0)
        insns, relocs = _insert(insns, relocs, i, add)
    elif kind == "width":
        # a 64-bit comparison made 32-bit (or back), or an ALU op's width toggled: a
        # bounds check that no longer covers the upper half, a truncated value
        cands = [
            i
            for i in slots
            if (_is_cond_jump(insns[i]) and not param % 2)
            or (insns[i].opcode & _CLASS in (_ALU, _ALU64) and param % 2)
        ]
        if not cands:
            return None
        i = cands[pick % len(cands)]
        ins = insns[i]
        swap = {_JMP: _JMP32, _JMP32: _JMP, _ALU: _ALU64, _ALU64: _ALU}
        insns[i] = replace(ins, opcode=(ins.opcode & ~_CLASS) | swap[ins.opcode & _CLASS])
    elif kind == "insert_alu":
        # an arbitrary ALU step anywhere: rD op= imm or rD op= rS, 64- or 32-bit
        at = slots[pick % len(slots)]
        op = _ALU_OPS[param % len(_ALU_OPS)]
        dst = (param >> 4) % 10
        cls = _ALU64 if (param >> 8) % 4 else _ALU
        if (param >> 10) % 2:
            new = Instruction(cls | op | 0x08, dst, (param >> 11) % 11, 0, 0)
        else:
            imm = _DELTAS[(param >> 11) % len(_DELTAS)]
            if op in (0x60, 0x70, 0xC0):
                imm = abs(imm) % 64
            new = Instruction(cls | op, dst, 0, 0, imm)
        insns, relocs = _insert(insns, relocs, at, new)
    elif kind == "swap_reg":
        i = mem[pick % len(mem)]
        ins = insns[i]
        reg = param % 10
        if ins.opcode & _CLASS == _LDX:
            new = replace(ins, src=reg)
        else:
            new = replace(ins, dst=reg)
        if new == ins:
            return None
        insns[i] = new
    elif kind == "imm":
        cands = [
            i
            for i in slots
            if insns[i].opcode & _CLASS in (_ALU, _ALU64, _JMP, _JMP32)
            and not insns[i].opcode & 0x08
            and insns[i].opcode & _OP not in (_CALL, _EXIT, _JA)
        ]
        if not cands:
            return None
        i = cands[pick % len(cands)]
        insns[i] = replace(insns[i], imm=insns[i].imm + delta)
    elif kind == "delete":
        # drop one instruction: an initialising store, a mask, a pointer adjustment...
        cands = [i for i in slots if insns[i].opcode not in (_LD_IMM64, _JMP | _EXIT)]
        if len(cands) < 2:
            return None
        done = _delete(insns, relocs, cands[pick % len(cands)])
        if done is None:
            return None
        insns, relocs = done
    spec = replace(built.spec, insns=tuple(insns), map_relocs=relocs)
    coll = CollectionSpec(programs={spec.name: spec}, maps=dict(built.maps), variables={})
    return Built(spec, built.maps, coll)


STATS: collections.Counter[str] = collections.Counter()


def _netbpf_refusal(built: Built) -> str | None:
    """None if netbpf's verifier accepts, else its verdict line."""
    try:
        netbpf.verifier.verify(built.spec, maps=built.maps)
    except VerifierError as e:
        return str(getattr(e, "summary", "") or e)
    except NetbpfError as e:
        return str(e)  # e.g. an instruction the validator refuses: not accepted
    return None


def _kernel(kernel: Any, built: Built) -> tuple[bool, str, str]:
    try:
        coll = kernel.load(built.collection)
    except KernelError as e:
        if e.op != "BPF_PROG_LOAD":
            raise KernelSetupError(str(e)) from e
        line = summary_line(e.log) or f"errno {e.errno}"
        return False, line, e.log
    coll.close()
    return True, "", ""


def _has_memory_access(case: Case) -> bool:
    insns = list(build(case).spec.insns)
    return any(_is_mem(insns[i]) for i in _slots(insns))


#: the accepted assembly programs of the seed groups that access memory
SEEDS: list[Case] = [
    c
    for c in load_corpus()
    if c.group in SEED_GROUPS
    and c.expect == "accept"
    and c.asm is not None
    and _has_memory_access(c)
]

mutation = st.tuples(st.sampled_from(KINDS), st.integers(0, 1 << 16), st.integers(0, 1 << 16))


def _check(kernel: Any, name: str, original: Built, muts: list[tuple[str, int, int]]) -> None:
    """Apply ``muts`` to ``original``; if netbpf accepts the mutant, the kernel must
    accept it too or refuse it for a reason that is not memory safety."""
    built = original
    for kind, pick, param in muts:
        built = mutate(built, kind, pick, param) or built  # skip what does not apply
    if built.spec.insns == original.spec.insns:
        STATS["not applicable"] += 1
        return
    STATS["mutants"] += 1
    refusal = _netbpf_refusal(built)
    if refusal is not None:
        STATS["netbpf refuses"] += 1
        # precision, not asserted here (the corpus asserts it): does the kernel agree?
        try:
            agrees = not _kernel(kernel, built)[0]
        except KernelSetupError:
            return
        if agrees:
            STATS["kernel refuses too"] += 1
        else:
            STATS[f"kernel accepts what netbpf refuses ({refusal})"] += 1
        return
    STATS["netbpf accepts"] += 1
    try:
        ok, line, log = _kernel(kernel, built)
    except KernelSetupError as e:
        pytest.skip(f"kernel cannot set the mutant up: {e}")
    if ok:
        STATS["kernel accepts too"] += 1
        return
    cls = classify(line)
    STATS[f"kernel refuses: {cls}"] += 1
    assert cls in NON_SAFETY_CLASSES, (
        f"netbpf accepts a mutant of {name} ({muts}) that the kernel refuses for "
        f"safety [{cls}]: {line}\n{disassemble(list(built.spec.insns))}\n{log[-2000:]}"
    )


@pytest.mark.skipif(not SEEDS, reason="no accepted assembly seeds in the corpus")
@pytest.mark.xfail(not HAVE_VERIFIER, reason="verifier not implemented yet", strict=False)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(seed=st.sampled_from(SEEDS), muts=st.lists(mutation, min_size=1, max_size=3))
def test_mutants_netbpf_accepts_are_kernel_safe(
    kernel: Any, seed: Case, muts: list[tuple[str, int, int]]
) -> None:
    if not HAVE_VERIFIER:
        raise NotImplementedError("netbpf.verifier.verify does not exist yet")
    _check(kernel, seed.id, build(seed), muts)


# -------------------------------------------------------------- seeds we did not write

XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")
#: clang-built programs of Debian's xdp-tools (tests/test_verifier_realworld.py) small
#: enough to verify many mutants of: (object, program, global-data map, its bytes).
#: xdpdump on the test-run device (ifindex 1), the AF_XDP programs with a socket, the
#: dispatcher with three slots (libxdp's struct xdp_dispatcher_config)
XDP_TOOLS_SEEDS: tuple[tuple[str, str, str | None, bytes | None], ...] = (
    ("xdpfilt_alw_eth.o", "xdpfilt_alw_eth", None, None),
    ("xdpfilt_dny_eth.o", "xdpfilt_dny_eth", None, None),
    ("xdpdump_xdp.o", "xdpdump", ".data", struct.pack("<III", 1, 64, 0)),
    ("xsk_def_xdp_prog.o", "xsk_def_prog", ".data", struct.pack("<I", 1)),
    ("xsk_def_xdp_prog_5.3.o", "xsk_def_prog", ".data", struct.pack("<I", 1)),
    (
        "xdp-dispatcher.o",
        "xdp_dispatcher",
        ".rodata",
        struct.pack("<BBBB10I10I10I", 236, 2, 3, 0, *[(1 << 2) | (1 << 31)] * 10, *range(10),
                    *[0] * 10),
    ),
)  # fmt: skip


def _xdp_tools_seed(obj: str, prog: str, data_map: str | None, data: bytes | None) -> Built:
    """One program of an xdp-tools object, without BTF (mutants move instructions, so
    func_info/line_info would no longer fit; global functions become static ones),
    its maps unpinned, global data set as its tool would set it."""
    spec = load_collection_spec(XDP_TOOLS / obj)
    p = replace(spec.programs[prog], func_info=(), line_info=(), btf=None)
    maps = {r.map: replace(spec.maps[r.map], pinning=0) for r in p.map_relocs}
    if data_map is not None and data is not None:
        m = maps[data_map]
        maps[data_map] = replace(m, extra={**m.extra, "contents": ((0, data),)})
    return Built(p, maps, CollectionSpec(programs={p.name: p}, maps=maps, variables={}))


@functools.cache
def _xdp_tools_built(seed: int) -> Built:
    return _xdp_tools_seed(*XDP_TOOLS_SEEDS[seed])


#: EXAMPLES / 4 by default: each mutant of these verifies a few hundred instructions
XDP_TOOLS_EXAMPLES = int(os.environ.get("NETBPF_FUZZ_XDP_TOOLS_EXAMPLES", max(1, EXAMPLES // 4)))


@pytest.mark.skipif(
    not (XDP_TOOLS / "xdpfilt_alw_eth.o").exists(),
    reason=f"xdp-tools objects not found in {XDP_TOOLS} (apt-get install xdp-tools)",
)
@settings(
    max_examples=XDP_TOOLS_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    seed=st.sampled_from(range(len(XDP_TOOLS_SEEDS))),
    muts=st.lists(mutation, min_size=1, max_size=3),
)
def test_xdp_tools_variants_netbpf_accepts_are_kernel_safe(
    kernel: Any, seed: int, muts: list[tuple[str, int, int]]
) -> None:
    """The same check on mutants of real programs: clang's code, not ours."""
    obj, prog = XDP_TOOLS_SEEDS[seed][:2]
    _check(kernel, f"{obj}:{prog}", _xdp_tools_built(seed), muts)


def test_mutations_are_well_formed() -> None:
    """The mutator itself (no kernel, no verifier): inserting an instruction keeps every
    jump on its old target, map relocations follow their slot, and each kind changes
    the program where it applies."""
    from netbpf.isa.asm import assemble

    insns = assemble("r1 = 0 ll\nif r2 > 3 goto l\nr0 = *(u8 *)(r1 + 0)\nl:\nr0 = 0\nexit")
    relocs = (MapReloc(0, "m"),)
    out, moved = _insert(insns, relocs, 3, Instruction(_ALU64, 1, 0, 0, 4))
    assert out[2].off == insns[2].off + 1  # the jump skips the new instruction too
    assert out[3] == Instruction(_ALU64, 1, 0, 0, 4)
    assert moved == relocs
    out, moved = _insert(insns, relocs, 0, Instruction(_ALU64, 1, 0, 0, 4))
    assert moved == (MapReloc(1, "m"),) and out[3].off == insns[2].off
    back, moved = _delete(out, moved, 0)  # type: ignore[misc]
    assert back == insns and moved == relocs  # delete undoes insert
    seed = next(c for c in SEEDS if c.id == "pkt/jgt_end_read_last_byte")
    built = build(seed)
    for kind in KINDS:
        changed = [mutate(built, kind, p, q) for p in range(4) for q in range(8)]
        assert any(m is not None and m.spec.insns != built.spec.insns for m in changed), kind


@pytest.fixture(scope="module", autouse=True)
def _report_stats() -> Any:
    """Print what the fuzzer saw (pytest -s shows it): how many mutants netbpf
    accepted and what the kernel said about those."""
    yield
    if STATS:
        print("\nverifier fuzz: " + ", ".join(f"{k}: {v}" for k, v in sorted(STATS.items())))
