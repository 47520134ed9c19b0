"""Every context access, against the kernel: for each skb program type and XDP, each
field (and the padding), each access size at each aligned offset, read and write;
and ``struct bpf_sock`` reached through ``__sk_buff->sk``.

The kernel verifier's verdict decides what is allowed; where it accepts, the
simulator must load (its verifier accepts too) and run the program and give the same
ctx_out/data_out/retval (the loaded value is stored into ``cb[0..1]`` or returned);
where it refuses, netbpf's verifier must refuse at load, and the simulator loaded
with ``unsafe_skip_verifier`` must fault at the access (the sandbox backstop for
unverified programs).  Each test has a
sim-only twin checking the simulator against the kernel's recorded results
(``tests/golden/testrun.json``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _testrun import (
    PACKETS,
    Outcome,
    combine,
    digest,
    kernel_accepts,
    kernel_golden,
    outcome,
    sim_golden,
    sim_programs,
    sim_verifier_refuses,
)

from netbpf import ProgramSpec
from netbpf.uapi import CTX_LAYOUTS

SKB_TYPES = ["socket", "tc", "action", "cgroup_skb/ingress", "lwt_in", "lwt_out", "lwt_xmit"]
_SIZES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_SKB_FIELDS = [(name, off, size) for name, off, size, _ in CTX_LAYOUTS["__sk_buff"][1]]
_SKB_FIELDS.append(("padding", 181, 3))  # between tstamp_type and hwtstamp
_XDP_FIELDS = [(name, off, size) for name, off, size, _ in CTX_LAYOUTS["xdp_md"][1]]
_SOCK_FIELDS = [(name, off, size) for name, off, size, _ in CTX_LAYOUTS["bpf_sock"][1]]
_SOCK_FIELDS.append(("padding", 50, 2))  # between dst_port and dst_ip4
_OFF = {name: off for name, off, _ in _SKB_FIELDS}
CB = _OFF["cb"]
ZERO_CTX = bytes(192)

Runs = list[tuple[bytes, bytes | None]]
#: (label, program, the runs to compare: data_in, ctx_in)
Access = tuple[str, ProgramSpec, Runs]


def _accesses(off: int, size: int) -> list[tuple[int, int]]:
    return [(o, s) for s in (1, 2, 4, 8) for o in range(off, off + size) if o % s == 0]


def _read_prog(name: str, off: int, size: int) -> str:
    load = f"r2 = *({_SIZES[size]} *)(r1 + {off})\n"
    if name in ("data", "data_end", "data_meta"):
        load += f"r3 = *(u32 *)(r1 + {_OFF['data']})\nr2 -= r3\n"
    elif name in ("sk", "flow_keys"):
        load += "if r2 == 0 goto +1\nr2 = 1\n"
    return load + f"*(u64 *)(r1 + {CB}) = r2\nr0 = 1\nexit\n"


def _write_prog(off: int, size: int, value: int, readback: bool) -> str:
    text = f"r2 = {value:#x} ll\n*({_SIZES[size]} *)(r1 + {off}) = r2\n"
    if readback:
        text += f"r3 = *({_SIZES[size]} *)(r1 + {off})\n*(u64 *)(r1 + {CB}) = r3\n"
    return text + "r0 = 1\nexit\n"


def skb_accesses(ptype: str, field: tuple[str, int, int]) -> Iterator[Access]:
    name, foff, fsize = field
    runs: Runs = [(PACKETS[p], ZERO_CTX) for p in ("ipv4_tcp", "ipv6_udp")]
    for off, size in _accesses(foff, fsize):
        spec = ProgramSpec.from_asm(_read_prog(name, off, size), prog_type=ptype)
        yield f"read {size}@{off}", spec, runs
        for value in (0x0102030405060708, 0xFFFE):
            for readback in (False, True):
                if readback and (name == "cb" or size not in (4, 8)):
                    continue
                text = _write_prog(off, size, value, readback)
                label = f"write{'+read' if readback else ''} {size}@{off} of {value:#x}"
                yield label, ProgramSpec.from_asm(text, prog_type=ptype), runs[:1]


def xdp_accesses(field: tuple[str, int, int]) -> Iterator[Access]:
    name, foff, fsize = field
    pkt = PACKETS["ipv4_tcp"]
    ctx = (4).to_bytes(4, "little") + len(pkt).to_bytes(4, "little") + bytes(16)
    runs: Runs = [(pkt, None), (pkt, ctx)]
    for off, size in _accesses(foff, fsize):
        text = f"r0 = *({_SIZES[size]} *)(r1 + {off})\n"
        if name in ("data", "data_end", "data_meta"):
            text += "r3 = *(u32 *)(r1 + 0)\nr0 -= r3\n"
        yield f"read {size}@{off}", ProgramSpec.from_asm(text + "exit\n", prog_type="xdp"), runs
        text = _write_prog(off, size, 5, False)
        yield f"write {size}@{off}", ProgramSpec.from_asm(text, prog_type="xdp"), runs


def sock_accesses(ptype: str, field: tuple[str, int, int]) -> Iterator[Access]:
    _name, foff, fsize = field
    runs: Runs = [(PACKETS[p], ZERO_CTX) for p in ("ipv4_tcp", "ipv6_udp", "arp_bcast")]
    sk = f"r2 = *(u64 *)(r1 + {_OFF['sk']})\nif r2 == 0 goto +2\n"
    for off, size in _accesses(foff, fsize):
        sz = _SIZES[size]
        text = f"{sk}r3 = *({sz} *)(r2 + {off})\n*(u64 *)(r1 + {CB}) = r3\nr0 = 1\nexit\n"
        yield f"read {size}@{off}", ProgramSpec.from_asm(text, prog_type=ptype), runs
        text = f"{sk}r3 = 1\n*({sz} *)(r2 + {off}) = r3\nr0 = 1\nexit\n"
        yield f"write {size}@{off}", ProgramSpec.from_asm(text, prog_type=ptype), runs[:1]


def check_kernel(kernel, key: str, accesses: Iterator[Access]) -> None:
    """Kernel verdicts and outcomes against every simulator engine, then the golden."""
    problems: list[str] = []
    tokens: list[str] = []
    for label, spec, runs in accesses:
        if not kernel_accepts(kernel, spec):
            tokens.append("R")
            if not sim_verifier_refuses(spec):
                problems.append(f"{label}: kernel rejects, netbpf's verifier accepts")
            # the kernel refuses it: run it unverified to test the run-time sandbox
            for engine, sprog in sim_programs(spec, unsafe_skip_verifier=True).items():
                got = outcome(sprog, *runs[0], 1)
                if got.kind != "fault":
                    problems.append(f"{label}: kernel rejects, sim ({engine}) {got.brief()}")
            continue
        sims = sim_programs(spec)
        with kernel.load_program(spec) as kprog:
            for data_in, ctx_in in runs:
                want = outcome(kprog, data_in, ctx_in, 1)
                tokens.append(digest(want))
                for engine, sprog in sims.items():
                    got = outcome(sprog, data_in, ctx_in, 1)
                    if got != want:
                        problems.append(
                            f"{label}: sim ({engine}) {got.brief()}\n      kernel {want.brief()}"
                        )
    assert not problems, f"{key}:\n  " + "\n  ".join(problems)
    kernel_golden(key, combine(tokens))


def check_sim(key: str, accesses: Iterator[Access]) -> None:
    """The simulator (every engine) reproduces the kernel's recorded results."""
    want = sim_golden(key)
    per_engine: dict[str, list[str]] = {}
    for label, spec, runs in accesses:
        if sim_verifier_refuses(spec):
            # refused at load ("R", as the kernel's refusal is recorded); run it
            # unverified to test the run-time sandbox behind the verifier
            for engine, sprog in sim_programs(spec, unsafe_skip_verifier=True).items():
                per_engine.setdefault(engine, []).append("R")
                got = outcome(sprog, *runs[0], 1)
                assert got.kind == "fault", (
                    f"{key} {label}: unverified sim ({engine}) {got.brief()}"
                )
            continue
        for engine, sprog in sim_programs(spec).items():
            tokens = per_engine.setdefault(engine, [])
            first = outcome(sprog, *runs[0], 1)
            tokens.append(digest(first))
            tokens += [digest(outcome(sprog, d, c, 1)) for d, c in runs[1:]]
    for engine, tokens in per_engine.items():
        assert combine(tokens) == want, (
            f"{key}: engine {engine} differs from the kernel's recorded results "
            "(run the kernel twin of this test for the details)"
        )


_skb_params = pytest.mark.parametrize("field", _SKB_FIELDS, ids=[f[0] for f in _SKB_FIELDS])
_xdp_params = pytest.mark.parametrize("field", _XDP_FIELDS, ids=[f[0] for f in _XDP_FIELDS])
_sock_params = pytest.mark.parametrize("field", _SOCK_FIELDS, ids=[f[0] for f in _SOCK_FIELDS])
_SOCK_TYPES = ["tc", "cgroup_skb/ingress", "socket"]


@_skb_params
@pytest.mark.parametrize("ptype", SKB_TYPES)
def test_skb_ctx_access(kernel, ptype: str, field: tuple[str, int, int]) -> None:
    check_kernel(kernel, f"ctx/{ptype}/{field[0]}", skb_accesses(ptype, field))


@_skb_params
@pytest.mark.parametrize("ptype", SKB_TYPES)
def test_skb_ctx_access_sim(ptype: str, field: tuple[str, int, int]) -> None:
    check_sim(f"ctx/{ptype}/{field[0]}", skb_accesses(ptype, field))


@_xdp_params
def test_xdp_ctx_access(kernel, field: tuple[str, int, int]) -> None:
    check_kernel(kernel, f"xdp_ctx/{field[0]}", xdp_accesses(field))


@_xdp_params
def test_xdp_ctx_access_sim(field: tuple[str, int, int]) -> None:
    check_sim(f"xdp_ctx/{field[0]}", xdp_accesses(field))


@_sock_params
@pytest.mark.parametrize("ptype", _SOCK_TYPES)
def test_skb_sk_access(kernel, ptype: str, field: tuple[str, int, int]) -> None:
    """``struct bpf_sock`` through ``__sk_buff->sk`` (the dummy socket test_run
    attaches, family and addresses taken from the packet): loads of every size at
    every offset, and stores (always refused)."""
    check_kernel(kernel, f"sk/{ptype}/{field[0]}", sock_accesses(ptype, field))


@_sock_params
@pytest.mark.parametrize("ptype", _SOCK_TYPES)
def test_skb_sk_access_sim(ptype: str, field: tuple[str, int, int]) -> None:
    check_sim(f"sk/{ptype}/{field[0]}", sock_accesses(ptype, field))


def test_xdp_devmap_egress_ifindex(kernel) -> None:
    """egress_ifindex is readable only by devmap programs, and those cannot be
    test-run: both sides refuse with EINVAL."""
    spec = ProgramSpec.from_asm("r0 = *(u32 *)(r1 + 20)\nexit\n", prog_type="xdp/devmap")
    assert kernel_accepts(kernel, spec)
    with kernel.load_program(spec) as kprog:
        want = outcome(kprog, PACKETS["ipv4_tcp"], None, 1)
    assert want.kind == "refused"
    for engine, sprog in sim_programs(spec).items():
        got = outcome(sprog, PACKETS["ipv4_tcp"], None, 1)
        assert (got.kind, got.errno) == (want.kind, want.errno), engine


def test_sim_fault_names_the_field() -> None:
    """The sandbox's message says which field and why (sim only)."""
    spec = ProgramSpec.from_asm("r0 = *(u32 *)(r1 + 140)\nexit\n", prog_type="socket")
    # the verifier refuses it at load (as the kernel does): test the run-time backstop
    for sprog in sim_programs(spec, unsafe_skip_verifier=True).values():
        got: Outcome = outcome(sprog, PACKETS["ipv4_tcp"], None, 1)
        assert got.kind == "fault"
        assert "__sk_buff->data_meta" in got.message
        assert "SOCKET_FILTER programs may not read" in got.message
