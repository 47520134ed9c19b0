"""``SimBackend``: the Backend contract (load, run, close, context managers), program
types by section name or enum, the refusals shared with the kernel (ENOTSUPP for
types without a test run), and what only the simulator reports (sandbox faults)."""

from __future__ import annotations

import errno

import pytest
from _testrun import PACKETS, assert_same, assert_sim_golden, digest, kernel_golden

from netbpf import (
    Backend,
    InstructionError,
    NotSupportedError,
    Program,
    ProgramFault,
    ProgramSpec,
    ProgramType,
    SimBackend,
    TestRunError,
    TestRunResult,
)
from netbpf.hooks.testrun import ENOTSUPP
from netbpf.vm.engine import ENGINES

PKT = PACKETS["ipv4_tcp"]
RET2 = "r0 = 2\nexit\n"


@pytest.mark.parametrize("engine", ENGINES)
def test_contract(engine: str) -> None:
    sim = SimBackend(engine=engine)
    assert isinstance(sim, Backend)
    spec = ProgramSpec.from_asm(RET2, prog_type="xdp", name="pass")
    prog = sim.load_program(spec)
    assert isinstance(prog, Program)
    assert prog.name == "pass"
    r = prog.test_run(PKT)
    assert isinstance(r, TestRunResult)
    assert (r.retval, r.data_out, r.ctx_out) == (2, PKT, None)
    assert isinstance(r.duration_ns, int) and r.duration_ns >= 0


def test_default_engine_and_bad_engine() -> None:
    assert SimBackend().engine == "fast"
    with pytest.raises(NotSupportedError, match="engine 'jit'"):
        SimBackend(engine="jit")


@pytest.mark.parametrize(
    ("prog_type", "expected"),
    [
        ("xdp", ProgramType.XDP),
        ("tc", ProgramType.SCHED_CLS),
        ("tc/ingress", ProgramType.SCHED_CLS),
        ("classifier", ProgramType.SCHED_CLS),
        ("action", ProgramType.SCHED_ACT),
        ("socket", ProgramType.SOCKET_FILTER),
        ("cgroup_skb/ingress", ProgramType.CGROUP_SKB),
        ("cgroup_skb/egress", ProgramType.CGROUP_SKB),
        ("lwt_in", ProgramType.LWT_IN),
        ("lwt_out", ProgramType.LWT_OUT),
        ("lwt_xmit", ProgramType.LWT_XMIT),
        ("SCHED_CLS", ProgramType.SCHED_CLS),
        (ProgramType.LWT_XMIT, ProgramType.LWT_XMIT),
        (int(ProgramType.XDP), ProgramType.XDP),
    ],
)
def test_program_types_by_name_or_enum(prog_type: object, expected: ProgramType) -> None:
    spec = ProgramSpec.from_asm("r0 = 1\nexit\n", prog_type=prog_type)  # type: ignore[arg-type]
    with SimBackend() as sim:
        prog = sim.load_program(spec)
        assert prog.prog_type is expected
        assert prog.test_run(PKT).retval == 1


def test_close_and_context_managers() -> None:
    spec = ProgramSpec.from_asm(RET2, prog_type="xdp")
    with SimBackend() as sim:
        with sim.load_program(spec) as prog:
            assert prog.test_run(PKT).retval == 2
        assert prog.closed
        with pytest.raises(TestRunError) as exc:
            prog.test_run(PKT)
        assert exc.value.errno == errno.EBADF
        other = sim.load_program(spec)
    assert other.closed  # closing the backend closes what it loaded
    sim.close()  # idempotent
    other.close()


def test_load_does_not_mutate_the_spec() -> None:
    spec = ProgramSpec.from_asm(RET2, prog_type="xdp")
    before = (spec.insns, spec.prog_type, spec.attach_type, spec.name)
    SimBackend().load_program(spec).test_run(PKT, repeat=3)
    assert (spec.insns, spec.prog_type, spec.attach_type, spec.name) == before


def test_malformed_program_is_refused_at_load() -> None:
    spec = ProgramSpec.from_bytes(
        bytes.fromhex("8e00000000000000") + bytes.fromhex("9500000000000000")
    )
    with pytest.raises(InstructionError) as exc:
        SimBackend().load_program(spec)
    assert exc.value.index == 0


@pytest.mark.parametrize("repeat", [-1, 2**32, 1.5, "3"])
def test_bad_repeat(repeat: object) -> None:
    prog = SimBackend().load_program(ProgramSpec.from_asm(RET2, prog_type="xdp"))
    with pytest.raises(TestRunError) as exc:
        prog.test_run(PKT, repeat=repeat)  # type: ignore[arg-type]
    assert exc.value.errno == errno.EINVAL


NO_TEST_RUN = [
    "sk_skb",
    "sk_skb/stream_verdict",
    "sk_msg",
    "lwt_seg6local",
    "sockops",
    "cgroup/sock_create",
    "cgroup/connect4",
    "sk_reuseport",
    "cgroup/sysctl",
    "cgroup/getsockopt",
]


@pytest.mark.parametrize("section", NO_TEST_RUN)
def test_types_without_test_run_are_enotsupp(kernel, section: str) -> None:
    """The kernel has no BPF_PROG_TEST_RUN for these types: ENOTSUPP (524) on both."""
    spec = ProgramSpec.from_asm("r0 = 1\nexit\n", prog_type=section)
    got = assert_same(kernel, spec, PKT)
    assert (got.kind, got.errno) == ("refused", ENOTSUPP)
    kernel_golden(f"enotsupp/{section}", digest(got))


@pytest.mark.parametrize("section", NO_TEST_RUN)
def test_types_without_test_run_are_enotsupp_sim(section: str) -> None:
    spec = ProgramSpec.from_asm("r0 = 1\nexit\n", prog_type=section)
    assert_sim_golden(f"enotsupp/{section}", spec, PKT)


def test_types_the_simulator_does_not_model_yet() -> None:
    spec = ProgramSpec.from_asm("r0 = 1\nexit\n", prog_type="flow_dissector")
    with pytest.raises(NotSupportedError, match="FLOW_DISSECTOR"):
        SimBackend().load_program(spec).test_run(PKT)


def test_sandbox_fault_names_the_instruction() -> None:
    """A program the verifier would refuse faults at run time in the simulator."""
    spec = ProgramSpec.from_asm("r1 = 0\nr0 = *(u32 *)(r1 + 0)\nexit\n", prog_type="tc", name="nul")
    with pytest.raises(ProgramFault) as exc:
        # the kernel refuses it (R1 invalid mem access 'scalar'): skip the verifier
        SimBackend(unsafe_skip_verifier=True).load_program(spec).test_run(PKT)
    assert exc.value.index == 1
    assert "nul" in str(exc.value)


def test_docstring_example() -> None:
    spec = ProgramSpec.from_asm("r0 = 2\nexit", prog_type="xdp")
    with SimBackend() as sim:
        prog = sim.load_program(spec)
        assert prog.test_run(bytes(64)).retval == 2
