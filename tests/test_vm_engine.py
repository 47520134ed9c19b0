"""Execution semantics of both engines: every test runs on the reference interpreter and
the fast engine and checks the same result (r0, env.insn_count, fault index/reason).

The per-opcode edge cases (division by zero, INT_MIN / -1, shift masking...) are also in
the conformance corpus (tests/conformance), which runs them against the kernel; here we
pin what the corpus cannot express: faults, budgets, frames, calls, callbacks, tail
calls, may_goto, legacy packet loads, helpers.
"""

from __future__ import annotations

import errno

import pytest

from netbpf.errors import InstructionError, InstructionLimitExceeded, ProgramFault
from netbpf.isa.asm import assemble
from netbpf.isa.instruction import Instruction
from netbpf.vm import _fastgen, interpreter
from netbpf.vm.engine import ENGINES, Executable, load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace, CallbackRegion, MemoryFault, Region
from netbpf.vm.runtime import BPF_MAX_LOOPS, TailCall

M64 = (1 << 64) - 1

pytestmark = pytest.mark.parametrize("engine", ENGINES)


def load(text: str, engine: str, **kw: object) -> Executable:
    return load_executable(assemble(text), engine=engine, **kw)  # type: ignore[arg-type]


def run(text: str, engine: str, *, env: RunEnv | None = None, r1: int = 0, **kw: object) -> int:
    env = env or RunEnv(AddressSpace())
    return load(text, engine, **kw).run(env, r1)


def fault(text: str, engine: str, *, env: RunEnv | None = None, r1: int = 0) -> ProgramFault:
    env = env or RunEnv(AddressSpace())
    with pytest.raises(ProgramFault) as ei:
        load(text, engine, name="t").run(env, r1)
    return ei.value


# ---------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("r0 = 7\nr1 = 0\nr0 /= r1", 0),  # x / 0 = 0
        ("r0 = 7\nr1 = 0\nr0 %= r1", 7),  # x % 0 = x
        ("r0 = -1\nr1 = 0\nw0 %= w1", 0xFFFF_FFFF),  # 32-bit: zero-extended dst
        ("r0 = 0x80000000 ll\nr0 <<= 32\nr1 = -1\nr0 s/= r1", 1 << 63),  # INT_MIN / -1
        ("r0 = 0x80000000 ll\nr0 <<= 32\nr1 = -1\nr0 s%= r1", 0),  # INT_MIN % -1
        ("w0 = 0x80000000\nw1 = -1\nw0 s/= w1", 0x8000_0000),
        ("r0 = -7\nr1 = 2\nr0 s/= r1", (-3) & M64),  # truncation toward zero
        ("r0 = -7\nr1 = 2\nr0 s%= r1", (-1) & M64),  # sign of the dividend
        ("r0 = 7\nr1 = -2\nr0 s%= r1", 1),
        ("r0 = 1\nr1 = 65\nr0 <<= r1", 2),  # shift amount masked by 63
        ("w0 = 1\nw1 = 33\nw0 <<= w1", 2),  # ... and by 31
        ("r0 = -1\nw0 += 1", 0),  # ALU32 zero-extends
        ("r0 = -1\nw0 = w0", 0xFFFF_FFFF),
        ("r0 = -8\nr0 s>>= 1", (-4) & M64),
        ("w0 = -8\nw0 s>>= 1", 0xFFFF_FFFC),
        ("r0 = 5\nr0 = -r0", (-5) & M64),
        ("r1 = 0x80\nr0 = (s8)r1", (-128) & M64),
        ("r1 = 0x8000\nw0 = (s16)w1", 0xFFFF_8000),
        ("r0 = 0x1122334455667788 ll\nr0 = be16 r0", 0x8877),
        ("r0 = 0x1122334455667788 ll\nr0 = be32 r0", 0x88776655),
        ("r0 = 0x1122334455667788 ll\nr0 = le16 r0", 0x7788),
        ("r0 = 0x1122334455667788 ll\nr0 = bswap64 r0", 0x8877665544332211),
    ],
)
def test_alu_edge_cases(engine: str, text: str, expect: int) -> None:
    assert run(text + "\nexit", engine) == expect


def test_jmp32_compares_low_bits(engine: str) -> None:
    text = """
        r1 = 0x100000005 ll
        r0 = 0
        if w1 == 5 goto +1
        exit
        r0 = 1
        if w1 s> -1 goto +1
        exit
        r0 = 2
        exit
    """
    assert run(text, engine) == 2


# ------------------------------------------------------------------------------- memory


def test_stack_zeroed_each_run_and_r10_stable(engine: str) -> None:
    env = RunEnv(AddressSpace())
    exe = load("r0 = *(u64 *)(r10 - 8)\n*(u64 *)(r10 - 8) = 42\nr0 += r10\nexit", engine)
    first = exe.run(env, 0)
    second = exe.run(env, 0)
    assert first == second  # the 42 of run 1 is not visible in run 2; r10 did not move
    assert first != 0


def test_region_access_and_faults(engine: str) -> None:
    mem = AddressSpace()
    data = Region("data", bytearray(range(16)))
    ro = Region("rodata", bytearray(8), writable=False)
    base = mem.map(data)
    ro_base = mem.map(ro)
    env = RunEnv(mem)
    assert run("r0 = *(u32 *)(r1 + 4)\nexit", engine, env=env, r1=base) == 0x07060504
    assert run("r0 = *(s8 *)(r1 + 0)\nexit", engine, env=env, r1=base + 15) == 15
    f = fault("r0 = 0\nr0 = *(u64 *)(r1 + 12)\nexit", engine, env=env, r1=base)
    assert (f.index, f.program) == (1, "t")
    assert "invalid read of 8 bytes at data+12" in f.reason
    assert env.insn_count == 2
    f = fault("*(u8 *)(r1 + 0) = 1\nexit", engine, env=env, r1=ro_base)
    assert f.index == 0 and "read-only rodata" in f.reason
    f = fault("r2 = 1\nlock *(u64 *)(r1 + 0) += r2\nexit", engine, env=env, r1=ro_base)
    assert f.index == 1 and "read-only" in f.reason
    f = fault("r1 = 0\nr0 = *(u8 *)(r1 + 0)\nexit", engine)  # NULL
    assert f.index == 1 and "no region" in f.reason
    f = fault("r0 = *(u64 *)(r10 + 0)\nexit", engine)  # just past the frame top
    assert f.index == 0


def test_ctx_callback_region(engine: str) -> None:
    seen: list[tuple[int, int, int]] = []
    ctx = CallbackRegion(
        "ctx", 24, lambda off, size: off * 100 + size, lambda o, s, v: seen.append((o, s, v))
    )
    mem = AddressSpace()
    base = mem.map(ctx)
    text = "r0 = *(u32 *)(r1 + 4)\nr2 = 9\n*(u16 *)(r1 + 8) = r2\nexit"
    assert run(text, engine, env=RunEnv(mem), r1=base) == 404
    assert seen == [(8, 2, 9)]


def test_atomics(engine: str) -> None:
    text = """
        r1 = 0xffffffff00000001 ll
        *(u64 *)(r10 - 8) = r1
        r2 = 5
        r2 = atomic_fetch_add((u64 *)(r10 - 8), r2)
        w3 = 2
        w3 = atomic_fetch_or((u32 *)(r10 - 8), w3)
        r0 = 0x12345678ffffffff ll
        r4 = 77
        w0 = cmpxchg32_32(r10 - 4, w0, w4)
        r5 = *(u64 *)(r10 - 8)
        r0 += r5
        r0 += r2
        r0 += r3
        exit
    """
    # mem: 0xffffffff00000001 +5 -> ..06, |2 -> ..06 (u32 6|2=6), cmpxchg on the high word
    # (0xffffffff == w0 0xffffffff) -> 77; r0 = old high word zero-extended
    mem_after = (77 << 32) | 6
    expect = (0xFFFF_FFFF + mem_after + 0xFFFF_FFFF_0000_0001 + 6) & M64
    assert run(text, engine) == expect


# ------------------------------------------------------------------------------- loading


def test_load_time_refusals(engine: str) -> None:
    cases = {
        "ld_imm64 map without value": ([Instruction(0x18, 1, 1, 0, 3), Instruction(0), Instruction(0x95)], 0),
        "kfunc": ([Instruction(0x85, 0, 2, 0, 1), Instruction(0x95)], 0),
        "jump out": ([Instruction(0x05, 0, 0, 5, 0), Instruction(0x95)], 0),
        "write r10": ([Instruction(0xB7, 10, 0, 0, 1), Instruction(0x95)], 0),
        "half ld_imm64": ([Instruction(0x95), Instruction(0x18, 1, 0, 0, 3)], 1),
        "falls off": ([Instruction(0xB7, 0, 0, 0, 1)], 0),
        "jump into ld_imm64": ([Instruction(0x05, 0, 0, 1, 0), Instruction(0x18), Instruction(0), Instruction(0x95)], 0),
    }  # fmt: skip
    for what, (insns, index) in cases.items():
        with pytest.raises(InstructionError) as ei:
            load_executable(insns, engine=engine, name="p")
        assert ei.value.index == index, what
        assert ei.value.program == "p"


def test_imm64_pseudo_values(engine: str) -> None:
    insns = [Instruction(0x18, 0, 2, 0, 0), Instruction(0), Instruction(0x95)]  # MAP_VALUE
    exe = load_executable(insns, engine=engine, imm64={0: 0xFFFF_8880_0000_1234})
    assert exe.run(RunEnv(AddressSpace()), 0) == 0xFFFF_8880_0000_1234
    with pytest.raises(InstructionError, match="BPF_PSEUDO_MAP_VALUE"):
        load_executable(insns, engine=engine)


# -------------------------------------------------------------------------------- budget


def test_instruction_budget(engine: str) -> None:
    env = RunEnv(AddressSpace(), insn_limit=100)
    exe = load("r0 = 0\nl: r0 += 1\ngoto l\nexit", engine, name="spin")
    with pytest.raises(InstructionLimitExceeded) as ei:
        exe.run(env, 0)
    # checked at the backward jump (slot 2) once more than 100 instructions ran
    assert ei.value.index == 2 and ei.value.program == "spin"
    assert env.insn_count == 101
    env2 = RunEnv(AddressSpace())
    assert run("r0 = 3\nl: r0 -= 1\nif r0 != 0 goto l\nexit", engine, env=env2) == 0
    assert env2.insn_count == 1 + 3 * 2 + 1


# --------------------------------------------------------------------------------- calls

CALLS = """
    r6 = 11
    r1 = 5
    *(u64 *)(r10 - 8) = r1
    r1 = r10
    r1 += -8
    call double_it
    r0 += r6
    r2 = *(u64 *)(r10 - 8)
    r0 += r2
    exit
double_it:
    r6 = 1000
    r2 = *(u64 *)(r1 + 0)
    *(u64 *)(r10 - 8) = r6
    *(u64 *)(r1 + 0) = r6
    r0 = r2
    r0 *= 2
    exit
"""


def test_bpf_to_bpf_call(engine: str) -> None:
    # the callee reads the caller's stack through r1, has its own frame at r10, and
    # r6 is preserved: 10 + 11 + 1000
    env = RunEnv(AddressSpace())
    assert run(CALLS, engine, env=env) == 1021
    assert env.insn_count == 17


def test_call_depth_limit(engine: str) -> None:
    # f calls itself while r1 > 0: 7 nested calls (8 frames) pass, 8 fault.  The
    # outermost f returns its own r1 (callees do not change the caller's r1-r5).
    text = "r1 = {n}\ncall f\nexit\nf: if r1 == 0 goto out\nr1 -= 1\ncall f\nout: r0 = r1\nexit"
    assert run(text.format(n=6), engine) == 5
    f = fault(text.format(n=7), engine)
    assert f.index == 5 and "call stack too deep" in f.reason


def _loop_helper(env: RunEnv, n: int, fn: int, ctx: int, flags: int, r5: int) -> int:
    """A bpf_loop lookalike: call fn(i, ctx) until it returns non-zero."""
    for i in range(n):
        if env.call_subprog(fn, i, ctx):
            return i + 1
    return n


CALLBACK = """
    r1 = 10
    r2 = func(cb) ll
    r3 = r10
    r3 += -8
    r4 = 0
    *(u64 *)(r10 - 8) = r4
    call 181
    r6 = r0
    r0 = *(u64 *)(r10 - 8)
    r0 <<= 8
    r0 |= r6
    exit
cb:
    r3 = *(u64 *)(r2 + 0)
    r3 += r1
    *(u64 *)(r2 + 0) = r3
    r0 = 0
    if r1 != 4 goto +1
    r0 = 1
    exit
"""


def test_callback_through_call_subprog(engine: str) -> None:
    env = RunEnv(AddressSpace(), helpers={181: _loop_helper})
    r0 = run(CALLBACK, engine, env=env)
    assert r0 == ((0 + 1 + 2 + 3 + 4) << 8) | 5
    assert env.insn_count == 12 + 4 * 6 + 7  # callbacks count; the last one runs 7


def test_callback_fault_names_callback_insn(engine: str) -> None:
    text = CALLBACK.replace("r3 = *(u64 *)(r2 + 0)", "r3 = *(u64 *)(r2 + 4096)")
    env = RunEnv(AddressSpace(), helpers={181: _loop_helper})
    f = fault(text, engine, env=env)
    assert f.index == 13


def test_callx(engine: str) -> None:
    text = "r2 = func(f) ll\ncallx r2\nr0 += 1\nexit\nf: r0 = 41\nexit"
    assert run(text, engine) == 42
    env = RunEnv(AddressSpace(), helpers={5: lambda env, *a: 7})
    assert run("r2 = 5\ncallx r2\nexit", engine, env=env) == 7  # uBPF: helper by id
    assert "unknown helper" in fault("r2 = 99\ncallx r2\nexit", engine).reason


# ------------------------------------------------------------------------------- helpers


def test_helpers_args_result_and_faults(engine: str) -> None:
    calls: list[tuple[int, ...]] = []

    def h(env: RunEnv, *args: int) -> int:
        calls.append(args)
        return -errno.ENOENT

    def bad(env: RunEnv, *args: int) -> int:
        raise MemoryFault("bad pointer")

    env = RunEnv(AddressSpace(), helpers={1: h, 2: bad})
    text = "r1 = 1\nr2 = -2\nr3 = 3\nr4 = 4\nr5 = 5\ncall 1\nr0 += r1\nexit"
    assert run(text, engine, env=env) == (-errno.ENOENT + 1) & M64  # r1 kept as it was
    assert calls == [(1, (-2) & M64, 3, 4, 5)]
    f = fault("r0 = 0\ncall 2\nexit", engine, env=env)
    assert f.index == 1 and f.reason == "helper bpf_map_update_elem#2: bad pointer"
    f = fault("call 3\nexit", engine, env=env)
    assert f.index == 0 and "unknown helper bpf_map_delete_elem#3" in f.reason


def test_tail_calls(engine: str) -> None:
    # each program tail-calls itself; the helper counts; after 33 the call fails
    hits: list[int] = []
    exe_box: list[Executable] = []

    def tail_call(env: RunEnv, ctx: int, *a: int) -> int:
        hits.append(ctx)
        raise TailCall(exe_box[0], fail_r0=(-errno.ENOENT) & M64)

    text = "r6 = r1\ncall 12\nr0 = 0xabc\nexit"
    exe = load(text, engine)
    exe_box.append(exe)
    env = RunEnv(AddressSpace(), helpers={12: tail_call})
    assert exe.run(env, 77) == 0xABC
    assert hits == [77] * 34  # 33 tail calls went through, the 34th failed
    assert env.insn_count == 34 * 2 + 2


def test_tail_call_from_subprog_returns_to_caller(engine: str) -> None:
    target = load("r0 = r1\nr0 += 1000\nexit", engine)

    def tail_call(env: RunEnv, ctx: int, *a: int) -> int:
        raise TailCall(target)

    text = "r1 = 5\ncall f\nr0 += 1\nexit\nf: call 12\nr0 = 7\nexit"
    env = RunEnv(AddressSpace(), helpers={12: tail_call})
    assert run(text, engine, env=env) == 1006


# ------------------------------------------------------------------------------ may_goto


def test_may_goto_counts_down_per_frame(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BPF_MAX_LOOPS == 8 * 1024 * 1024  # kernel BPF_MAX_LOOPS
    monkeypatch.setattr(interpreter, "BPF_MAX_LOOPS", 5)
    monkeypatch.setattr(_fastgen, "BPF_MAX_LOOPS", 5)
    text = """
        r0 = 0
    l:  may_goto +2
        r0 += 1
        goto l
        r1 = r0
        call f
        exit
    f:  r6 = r1
        r0 = 0
    m:  may_goto +2
        r0 += 100
        goto m
        r0 += r6
        exit
    """
    assert run(text, engine) == 505  # 5 iterations in each frame


# ------------------------------------------------------------------------ LD_ABS/LD_IND


def test_ld_abs_ind(engine: str) -> None:
    pkt = bytes(range(64))

    def skb_load(off: int, size: int) -> int | None:
        if off < 0 or off + size > len(pkt):
            return None
        return int.from_bytes(pkt[off : off + size], "big")

    env = RunEnv(AddressSpace(), skb_load=skb_load)
    assert run("r6 = r1\nr0 = *(u16 *)skb[12]\nexit", engine, env=env) == 0x0C0D
    text = "r6 = r1\nr7 = 30\nr0 = *(u32 *)skb[r7 + 2]\nexit"
    assert run(text, engine, env=env) == 0x20212223
    # out of bounds: r0 = 0 and the frame exits (here the subprogram returns to main)
    text = "r6 = r1\ncall f\nr0 += 9\nexit\nf: r0 = *(u8 *)skb[64]\nr0 = 5\nexit"
    assert run(text, engine, env=env) == 9
    f = fault("r6 = r1\nr0 = *(u8 *)skb[0]\nexit", engine)  # no skb in this env
    assert f.index == 1 and "socket buffer" in f.reason


def test_nested_run_on_same_env(engine: str) -> None:
    inner = load("r0 = *(u64 *)(r10 - 8)\nexit", engine)

    def run_inner(env: RunEnv, *a: int) -> int:
        return inner.run(env, 0) + 1

    env = RunEnv(AddressSpace(), helpers={1: run_inner})
    text = "r1 = 5\n*(u64 *)(r10 - 8) = r1\ncall 1\nr1 = *(u64 *)(r10 - 8)\nr0 += r1\nexit"
    assert run(text, engine, env=env) == 6  # the inner run had its own, zeroed, stack


def test_pointer_arithmetic_across_slots_and_remapping(engine: str) -> None:
    # a pointer that leaves its region's 4 GiB slot lands in the next slot's region:
    # both engines must follow the address, not the region the base pointed into
    mem = AddressSpace()
    a = Region("a", bytearray(8))
    b = Region("b", bytearray(b"\x11\x22\x33\x44\x55\x66\x77\x88"))
    base_a = mem.map(a)
    assert mem.map(b) == base_a + (1 << 32)
    env = RunEnv(mem)
    text = "r2 = 0xffffffff ll\nr1 += r2\nr0 = *(u8 *)(r1 + 2)\nexit"
    assert run(text, engine, env=env, r1=base_a) == 0x22

    # a helper that unmaps the region a pointer points into: the next access faults
    def unmap(env: RunEnv, *args: int) -> int:
        env.mem.unmap(b)
        return 0

    mem2 = AddressSpace()
    base_b = mem2.map(b)
    env2 = RunEnv(mem2, helpers={1: unmap})
    text = "r6 = r1\nr0 = *(u8 *)(r6 + 0)\ncall 1\nr0 = *(u8 *)(r6 + 1)\nexit"
    f = fault(text, engine, env=env2, r1=base_b)
    assert f.index == 3 and "no region" in f.reason


def test_stack_frame_remapped_after_unmap(engine: str) -> None:
    # an address-space owner may unmap everything a run mapped (SimAddressSpace run
    # scopes); the next run on the same env must get a mapped frame again
    env = RunEnv(AddressSpace())
    exe = load(
        "r1 = r10\nr1 += -8\nr2 = 7\n*(u64 *)(r1 + 0) = r2\nr0 = *(u64 *)(r10 - 8)\nexit", engine
    )
    assert exe.run(env, 0) == 7
    for region in list(env.mem.slots.values()):
        env.mem.unmap(region)
    assert exe.run(env, 0) == 7
