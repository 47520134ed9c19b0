"""The simulator verifies every program at load, as the kernel's BPF_PROG_LOAD does.

* a refused program never loads: ``load_program`` and ``load`` raise
  VerifierRejection (log, instruction index, the kernel's message), and a refused
  program in a collection fails the whole load, leaving nothing behind -- as
  KernelBackend.load fails with KernelError;
* ``unsafe_skip_verifier`` (backend-wide or per call) loads without verifying;
* ``verified_insns`` and ``verifier_log`` are on the programs of both backends, with
  the same counts as the kernel on programs where netbpf's count is the kernel's;
* maps referenced by fd (``map_fd(N)``) in a single program are resolved and verified
  with the live map, like the kernel;
* the verification cache never returns a verdict for different inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netbpf import ProgramSpec, SimBackend
from netbpf.errors import InstructionError, KernelError, ObjectError, ProgramFault, VerifierError
from netbpf.sim import verify as simverify
from netbpf.verifier import VerifierRejection

NULL_DEREF = "r0 = 0\nr0 = *(u8 *)(r0 + 0)\nexit"
PKT_CHECKED = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 14
    if r4 > r3 goto +2
    r0 = *(u8 *)(r2 + 12)
    exit
    r0 = 1
    exit
"""
LOOP = "r0 = 0\nr1 = 0\nl:\nr0 += r1\nr1 += 1\nif r1 < 10 goto l\nr0 = 2\nexit"
# look up key 0 of map fd {fd}; read 8 bytes at value offset {off}
LOOKUP = """
    r1 = 0
    *(u32 *)(r10 - 4) = r1
    r2 = r10
    r2 += -4
    r1 = map_fd({fd}) ll
    call 1
    if r0 == 0 goto +3
    r1 = *(u64 *)(r0 + {off})
    r0 = 2
    exit
    r0 = 1
    exit
"""


def _chain(n: int) -> str:
    """n diamonds in a row (2**n paths; pruning makes it linear, as in the kernel)."""
    out = ["r6 = *(u32 *)(r1 + 0)"]
    for i in range(n):
        out += [f"if r6 > {i} goto +1", "r7 = 1", "r0 = 0"]
    out += ["r0 = 2", "exit"]
    return "\n".join(out)


def xdp(src: str, name: str = "prog") -> ProgramSpec:
    return ProgramSpec.from_asm(src, prog_type="xdp", name=name)


# -- refusal --------------------------------------------------------------------------


def test_refused_program_does_not_load() -> None:
    with SimBackend() as sim:
        with pytest.raises(VerifierRejection) as ei:
            sim.load_program(xdp(NULL_DEREF, "nul"))
        e = ei.value
        assert isinstance(e, VerifierError)
        assert e.summary == "R0 invalid mem access 'scalar'"
        assert e.index == 1
        assert e.program == "nul"
        assert "1: (71) r0 = *(u8 *)(r0 +0)" in e.log
        assert e.log.rstrip().splitlines()[-1].startswith("processed 2 insns")
        assert not sim._programs


def test_kernel_refuses_it_too(kernel: Any) -> None:
    """The sim-side refusal above is the kernel's (message in its log)."""
    with pytest.raises(KernelError) as ei:
        kernel.load_program(xdp(NULL_DEREF, "nul"))
    assert "R0 invalid mem access 'scalar'" in ei.value.log


def test_unsafe_switch_backend_wide_and_per_call() -> None:
    with SimBackend(unsafe_skip_verifier=True) as sim:
        prog = sim.load_program(xdp(NULL_DEREF))
        assert not prog.verified and prog.verified_insns is None and prog.verifier_log == ""
        assert prog.info().verified_insns == 0
        with pytest.raises(ProgramFault):  # the unsafe access faults at run time instead
            prog.test_run(bytes(64))
        with pytest.raises(VerifierRejection):  # the per-call switch overrides
            sim.load_program(xdp(NULL_DEREF), unsafe_skip_verifier=False)
    with SimBackend() as sim:
        prog = sim.load_program(xdp(NULL_DEREF), unsafe_skip_verifier=True)
        assert prog.verified_insns is None


# -- verified_insns and the log, on both backends -------------------------------------

AGREE = {
    "straight": "r0 = 2\nexit",
    "packet": PKT_CHECKED,
    "loop": LOOP,
    "chain16": _chain(16),
}


@pytest.mark.parametrize("name", sorted(AGREE))
def test_verified_insns_sim(name: str) -> None:
    with SimBackend() as sim:
        prog = sim.load_program(xdp(AGREE[name], name))
        assert prog.verified
        assert prog.verified_insns == prog.verification.processed_insns > 0
        assert prog.info().verified_insns == prog.verified_insns


@pytest.mark.parametrize("name", sorted(AGREE))
def test_verified_insns_same_as_kernel(kernel: Any, name: str) -> None:
    spec = xdp(AGREE[name], name)
    with SimBackend() as sim, kernel.load_program(spec) as kprog:
        sprog = sim.load_program(spec)
        assert sprog.verified_insns == kprog.verified_insns


@pytest.mark.parametrize("level", [0, 1, 2])
def test_verifier_log_levels_like_kernel(kernel: Any, level: int) -> None:
    """Level 0: no log; level 1: the statistics line only; level 2: per-instruction
    state ending with the statistics line -- the same shape as the kernel's."""
    spec = xdp(PKT_CHECKED, "pkt")
    with SimBackend() as sim, kernel.load_program(spec, log_level=level) as kprog:
        slog = sim.load_program(spec, log_level=level).verifier_log
        klog = kprog.verifier_log
        if level == 0:
            assert slog == klog == ""
            return
        assert slog.splitlines()[-1] == klog.splitlines()[-1]
        assert slog.startswith("processed") == klog.startswith("processed")
        if level == 2:
            assert "5: (71) r0 = *(u8 *)(r2 +12)" in slog


def test_map_fd_program_same_on_both(kernel: Any) -> None:
    """A single program referring to a map by fd: the simulator resolves the fd to its
    map and verifies with it; verdict, count and result are the kernel's."""
    sim = SimBackend()
    sm, km = sim.create_map("array", 4, 8, 4), kernel.create_map("array", 4, 8, 4)
    with kernel.load_program(xdp(LOOKUP.format(fd=km.fd, off=0))) as kprog:
        sprog = sim.load_program(xdp(LOOKUP.format(fd=sm.fd, off=0)))
        assert sprog.verified_insns == kprog.verified_insns
        assert sprog.test_run(bytes(64)).retval == kprog.test_run(bytes(64)).retval == 2
    with pytest.raises(KernelError):
        kernel.load_program(xdp(LOOKUP.format(fd=km.fd, off=8)))
    with pytest.raises(VerifierRejection) as ei:
        sim.load_program(xdp(LOOKUP.format(fd=sm.fd, off=8)))
    assert ei.value.summary == "invalid access to map value, value_size=8 off=8 size=8"
    km.close()
    sim.close()


# -- maps by fd (sim only) ------------------------------------------------------------


def test_map_fd_resolved_and_held() -> None:
    with SimBackend() as sim:
        h = sim.create_map("array", 4, 8, 4)
        h.update((0).to_bytes(4, "little"), (7).to_bytes(8, "little"))
        prog = sim.load_program(xdp(LOOKUP.format(fd=h.fd, off=0)))
        assert prog.info().map_ids == (h.map.id,)
        h.close()  # the program still holds the map, as a kernel program would
        assert prog.test_run(bytes(64)).retval == 2


def test_map_fd_unknown_is_ebadf() -> None:
    with SimBackend() as sim, pytest.raises(ObjectError, match=r"fd 99.*EBADF"):
        sim.load_program(xdp(LOOKUP.format(fd=99, off=0)))


# -- collections ----------------------------------------------------------------------

COLL_SRC = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);   /* a hash lookup may return NULL */
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

SEC("xdp") int good(struct xdp_md *ctx) {
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return XDP_PASS;
}

SEC("xdp") int bad(struct xdp_md *ctx) {
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    return *v ? XDP_PASS : XDP_DROP;     /* no NULL check */
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def coll_obj(compile_bpf: Any) -> Path:
    return compile_bpf(COLL_SRC)  # type: ignore[no-any-return]


def _spec(obj: Path, *names: str) -> Any:
    from netbpf.obj.collection import load_collection_spec

    spec = load_collection_spec(obj)
    new = spec.copy()
    new.programs = {k: v for k, v in spec.programs.items() if k in names}
    return new


def test_collection_refusal_fails_whole_load(coll_obj: Path) -> None:
    with SimBackend() as sim:
        with pytest.raises(VerifierRejection) as ei:
            sim.load(_spec(coll_obj, "good", "bad"))
        assert ei.value.program == "bad"
        assert ei.value.summary == "R0 invalid mem access 'map_value_or_null'"
        assert ei.value.source is not None  # the C line, from BTF line info
        assert not list(sim.map_table)  # nothing left behind
        with sim.load(_spec(coll_obj, "good"), log_level=1) as coll:
            prog = coll.programs["good"]
            assert prog.verified_insns and prog.verifier_log.startswith("processed")
            assert coll.programs["good"].test_run(bytes(64)).retval == 2
        with sim.load(_spec(coll_obj, "good", "bad"), unsafe_skip_verifier=True) as coll:
            assert coll.programs["bad"].verified_insns is None


def test_collection_kernel_refuses_too_and_counts_agree(kernel: Any, coll_obj: Path) -> None:
    with pytest.raises(KernelError) as ei:
        kernel.load(_spec(coll_obj, "good", "bad"))
    assert "R0 invalid mem access 'map_value_or_null'" in ei.value.log
    with kernel.load(_spec(coll_obj, "good")) as kcoll, SimBackend() as sim:
        with sim.load(_spec(coll_obj, "good")) as scoll:
            k = kcoll.programs["good"].verified_insns
            assert scoll.programs["good"].verified_insns == k


# -- the cache ------------------------------------------------------------------------


def test_cache_hit_gives_same_outcome() -> None:
    simverify.clear_cache()
    spec = xdp(LOOP, "cached")
    with SimBackend() as sim:
        a = sim.load_program(spec)
        b = sim.load_program(spec)
    assert a.verification is b.verification
    info = simverify.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    with SimBackend() as sim:
        for _ in range(2):  # a cached refusal is raised again, each time a new object
            with pytest.raises(VerifierRejection) as ei:
                sim.load_program(xdp(NULL_DEREF, "nul"))
            assert ei.value.summary == "R0 invalid mem access 'scalar'"
            assert ei.value.__traceback__ is not None


def test_cache_is_keyed_by_map_shape() -> None:
    """Same instructions, same fd number, a map with a different value size (or
    type): a different verdict, never the cached one."""
    src = LOOKUP.format(fd=3, off=8)
    for _ in range(2):  # twice: the second time every outcome comes from the cache
        with SimBackend() as sim:
            h = sim.create_map("array", 4, 8, 4)
            assert h.fd == 3
            with pytest.raises(VerifierRejection, match="value_size=8 off=8"):
                sim.load_program(xdp(src))
        with SimBackend() as sim:
            h = sim.create_map("array", 4, 16, 4)
            assert h.fd == 3
            assert sim.load_program(xdp(src)).verified
        with SimBackend() as sim:
            h = sim.create_map("hash", 4, 16, 4)
            assert h.fd == 3
            assert sim.load_program(xdp(src)).verified


def test_cache_is_keyed_by_frozen_contents() -> None:
    """A frozen read-only array's bytes are constants to the verifier: same program,
    other contents, other verdict (the loaded byte decides a reachable null deref)."""
    from netbpf.maps import BPF_F_RDONLY_PROG

    src = """
        r1 = map_value(3, 0) ll
        r2 = *(u8 *)(r1 + 0)
        if r2 == 0 goto +2
        r0 = 0
        r0 = *(u8 *)(r0 + 0)
        r0 = 2
        exit
    """
    for value, ok in ((0, True), (1, False), (0, True)):
        with SimBackend() as sim:
            h = sim.create_map("array", 4, 4, 1, flags=BPF_F_RDONLY_PROG)
            h.update(bytes(4), value.to_bytes(4, "little"))
            h.freeze()
            if ok:
                assert sim.load_program(xdp(src)).verified
            else:
                with pytest.raises(VerifierRejection, match="invalid mem access"):
                    sim.load_program(xdp(src))


def test_cache_is_keyed_by_type_and_log_level() -> None:
    src = "r0 = *(u32 *)(r1 + 0)\nr0 = 0\nexit"  # ctx offset 0: xdp data / __sk_buff len
    with SimBackend() as sim:
        assert sim.load_program(ProgramSpec.from_asm(src, prog_type="xdp")).verified
        assert sim.load_program(ProgramSpec.from_asm(src, prog_type="tc")).verified
        bad = "r0 = *(u32 *)(r1 + 4)\nr0 = 2\nexit"  # xdp data_end: fine; sk_lookup: no
        assert sim.load_program(ProgramSpec.from_asm(bad, prog_type="xdp")).verified
        with pytest.raises(VerifierRejection):
            sim.load_program(ProgramSpec.from_asm(bad, prog_type="sk_lookup"))
        p0 = sim.load_program(xdp(LOOP), log_level=0)
        p2 = sim.load_program(xdp(LOOP), log_level=2)
        assert p0.verifier_log == "" and "l:" not in p2.verifier_log
        assert p2.verifier_log.count("\n") > 5


# -- dead code: checked only where reached, trapped in the program the engines run ----

#: Linux accepts these (tests/verifier_corpus/cases/structural.case, dead_branch_*):
#: the malformed slot 2 sits on a branch the constant r0 = 2 decides
DEAD_MALFORMED = {
    "r10 write": ("r10 += 8", "frame pointer is read only"),
    "r11 read": ("r0 = r11", "R11 is invalid"),
    "alu reserved off": (".quad 0x0000000800050107", "BPF_ALU uses reserved fields"),
}


def _dead(bad: str) -> str:
    return f"r0 = 2\nif r0 == 2 goto +1\n{bad}\nexit"


@pytest.mark.parametrize("engine", ["interpreter", "fast"])
@pytest.mark.parametrize("name", sorted(DEAD_MALFORMED))
def test_dead_malformed_code_loads_and_runs(engine: str, name: str) -> None:
    bad, _ = DEAD_MALFORMED[name]
    spec = xdp(_dead(bad))
    with SimBackend(engine=engine) as sim:
        prog = sim.load_program(spec)
        assert prog.verified_insns == 3  # r0 = 2, the branch, exit
        assert prog.test_run(bytes(64)).retval == 2  # XDP_PASS
        # the engines run the trap, not the malformed slot; the spec is untouched
        assert prog.executable.insns[2] == simverify.DEAD_CODE_TRAP
        assert spec.insns[2] != simverify.DEAD_CODE_TRAP


@pytest.mark.parametrize("name", sorted(DEAD_MALFORMED))
def test_dead_malformed_code_refused_structurally_when_unverified(name: str) -> None:
    """Without the verifier nothing proves slot 2 dead: every structural check runs on
    every instruction, and the program never reaches an engine."""
    bad, msg = DEAD_MALFORMED[name]
    with SimBackend(unsafe_skip_verifier=True) as sim:
        with pytest.raises(InstructionError) as ei:
            sim.load_program(xdp(_dead(bad)))
    assert ei.value.index == 2
    assert ei.value.reason == msg


@pytest.mark.parametrize("name", sorted(DEAD_MALFORMED))
def test_reached_malformed_code_refused_with_the_kernels_message(name: str) -> None:
    bad, msg = DEAD_MALFORMED[name]
    with SimBackend() as sim:
        with pytest.raises(VerifierRejection) as ei:
            sim.load_program(xdp(f"r0 = 2\nif r0 == 3 goto +1\n{bad}\nexit"))
    assert ei.value.summary == msg
    assert ei.value.index == 2


def test_dead_malformed_code_same_verdict_on_the_kernel(kernel: Any) -> None:
    for bad, _ in DEAD_MALFORMED.values():
        kernel.load_program(xdp(_dead(bad))).close()


def test_dead_call_is_trapped_but_its_function_kept() -> None:
    """A bpf-to-bpf call on a dead branch: the call and the function only it calls are
    never walked, so both are trapped (the function's last slot with ``goto -1``)."""
    src = "r0 = 2\nif r0 == 2 goto +1\ncall f\nexit\nf:\nr0 = 1\nexit"
    for engine in ("interpreter", "fast"):
        with SimBackend(engine=engine) as sim:
            prog = sim.load_program(xdp(src))
            assert prog.test_run(bytes(64)).retval == 2
            insns = prog.executable.insns
            assert insns[2] == insns[4] == simverify.DEAD_CODE_TRAP
            assert (insns[5].opcode, insns[5].off) == (0x05, -1)


@pytest.mark.parametrize("engine", ["interpreter", "fast"])
def test_trap_faults_if_ever_reached(engine: str) -> None:
    """Were the verifier wrong about a slot, running it faults at that slot instead of
    executing whatever was there: a fake verdict calls slot 1 (``r0 += 1``, reached in
    truth) dead, and slot 2 (the last: ``goto -1``) too."""
    from dataclasses import replace

    from netbpf.errors import InstructionLimitExceeded
    from netbpf.vm.engine import load_executable
    from netbpf.vm.env import RunEnv
    from netbpf.vm.memory import AddressSpace

    spec = xdp("r0 = 1\nr0 += 1\nexit")
    with SimBackend() as sim:
        result = sim.load_program(spec).verification
    assert result is not None and all(a.seen for a in result.insn_aux)
    for dead, fault in ((1, ProgramFault), (2, InstructionLimitExceeded)):
        aux = list(result.insn_aux)
        aux[dead] = replace(aux[dead], seen=False)
        insns = simverify.sanitize_dead_code(spec.insns, replace(result, insn_aux=tuple(aux)))
        exe = load_executable(insns, engine=engine)
        with pytest.raises(fault) as ei:
            exe.run(RunEnv(AddressSpace(), insn_limit=1000), 0)
        assert ei.value.index == dead
        if fault is ProgramFault:
            assert "dead code reached" in str(ei.value)
    assert all(a.seen for a in result.insn_aux)  # the (cached, shared) verdict untouched


def test_dead_malformed_code_in_a_collection() -> None:
    """The same through SimBackend.load (the object loader's path)."""
    from netbpf.obj.collection import CollectionSpec

    spec = xdp(_dead(DEAD_MALFORMED["r11 read"][0]), "p")
    with SimBackend() as sim:
        coll = sim.load(CollectionSpec({"p": spec}, {}, {}))
        assert coll.programs["p"].test_run(bytes(64)).retval == 2
    with SimBackend(unsafe_skip_verifier=True) as sim:
        with pytest.raises(InstructionError, match="R11 is invalid"):
            sim.load(CollectionSpec({"p": spec}, {}, {}))


def test_cached_refusals_share_the_deferred_log() -> None:
    """A level-0 refusal computes its log on first read (a second, level-1 run); the
    copies the outcome cache hands out share that one run instead of each redoing it
    (minutes for a 1M-instruction refusal)."""
    spec = xdp("r0 = *(u64 *)(r1 + 4096)\nexit")
    errs = []
    with SimBackend() as sim:
        for _ in range(2):
            with pytest.raises(VerifierRejection) as ei:
                sim.load_program(spec)
            errs.append(ei.value)
    first, second = errs
    assert first is not second
    assert "invalid bpf_context access off=4096 size=8" in first.log
    pending = second._log_later
    assert pending is not None and pending.cache_info().currsize == 1  # already computed
    assert second.log == first.log
