"""Every context access, against the kernel: for each skb program type and XDP, each
field (and the padding), each access size at each aligned offset, read and write.

The kernel verifier's verdict decides what is allowed; where it accepts, the
simulator must run the program and give the same ctx_out/data_out/retval (the loaded
value is stored into ``cb[0..1]`` or returned); where it refuses, the simulator must
fault at the access (the sandbox backstop for unverified programs).
"""

from __future__ import annotations

import pytest
from _testrun import PACKETS, Outcome, kernel_accepts, outcome, sim_programs

from netbpf import ProgramSpec
from netbpf.uapi import CTX_LAYOUTS

SKB_TYPES = ["socket", "tc", "action", "cgroup_skb/ingress", "lwt_in", "lwt_out", "lwt_xmit"]
_SIZES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_SKB_FIELDS = [(name, off, size) for name, off, size, _ in CTX_LAYOUTS["__sk_buff"][1]]
_SKB_FIELDS.append(("padding", 181, 3))  # between tstamp_type and hwtstamp
_XDP_FIELDS = [(name, off, size) for name, off, size, _ in CTX_LAYOUTS["xdp_md"][1]]
_OFF = {name: off for name, off, _ in _SKB_FIELDS}
#: fields whose value is an address: compared relative to another pointer instead
_SKB_POINTERS = {"data", "data_end", "data_meta", "sk", "flow_keys"}
CB = _OFF["cb"]
ZERO_CTX = bytes(192)
RUN_PACKETS = ("ipv4_tcp", "ipv6_udp")


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


def _compare(kernel, spec: ProgramSpec, runs: list[tuple[bytes, bytes | None]]) -> list[str]:
    """Problems found running ``spec`` on the kernel (when it loads) and the simulator."""
    problems: list[str] = []
    accepted = kernel_accepts(kernel, spec)
    sims = sim_programs(spec)
    if not accepted:
        for engine, sprog in sims.items():
            got = outcome(sprog, *runs[0], 1)
            if got.kind != "fault":
                problems.append(f"kernel rejects, sim ({engine}) gave {got.brief()}")
        return problems
    with kernel.load_program(spec) as kprog:
        for data_in, ctx_in in runs:
            want = outcome(kprog, data_in, ctx_in, 1)
            for engine, sprog in sims.items():
                got = outcome(sprog, data_in, ctx_in, 1)
                if got != want:
                    problems.append(
                        f"sim ({engine}) {got.brief()}\n      kernel     {want.brief()}"
                    )
    return problems


@pytest.mark.parametrize("field", _SKB_FIELDS, ids=[f[0] for f in _SKB_FIELDS])
@pytest.mark.parametrize("ptype", SKB_TYPES)
def test_skb_ctx_access(kernel, ptype: str, field: tuple[str, int, int]) -> None:
    name, foff, fsize = field
    runs = [(PACKETS[p], ZERO_CTX) for p in RUN_PACKETS]
    problems: list[str] = []
    for off, size in _accesses(foff, fsize):
        spec = ProgramSpec.from_asm(_read_prog(name, off, size), prog_type=ptype)
        problems += [f"read {size}@{off}: {p}" for p in _compare(kernel, spec, runs)]
        for value in (0x0102030405060708, 0xFFFE):
            for readback in (False, True):
                if readback and (name == "cb" or size not in (4, 8)):
                    continue
                spec = ProgramSpec.from_asm(
                    _write_prog(off, size, value, readback), prog_type=ptype
                )
                problems += [
                    f"write{'+read' if readback else ''} {size}@{off} of {value:#x}: {p}"
                    for p in _compare(kernel, spec, runs[:1])
                ]
    assert not problems, f"{ptype} __sk_buff->{name}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("field", _XDP_FIELDS, ids=[f[0] for f in _XDP_FIELDS])
def test_xdp_ctx_access(kernel, field: tuple[str, int, int]) -> None:
    name, foff, fsize = field
    pkt = PACKETS["ipv4_tcp"]
    ctx = (4).to_bytes(4, "little") + len(pkt).to_bytes(4, "little") + bytes(16)
    runs: list[tuple[bytes, bytes | None]] = [(pkt, None), (pkt, ctx)]
    problems: list[str] = []
    for off, size in _accesses(foff, fsize):
        text = f"r0 = *({_SIZES[size]} *)(r1 + {off})\n"
        if name in ("data", "data_end", "data_meta"):
            text += "r3 = *(u32 *)(r1 + 0)\nr0 -= r3\n"
        spec = ProgramSpec.from_asm(text + "exit\n", prog_type="xdp")
        problems += [f"read {size}@{off}: {p}" for p in _compare(kernel, spec, runs)]
        spec = ProgramSpec.from_asm(_write_prog(off, size, 5, False), prog_type="xdp")
        problems += [f"write {size}@{off}: {p}" for p in _compare(kernel, spec, runs)]
    assert not problems, f"xdp_md->{name}:\n  " + "\n  ".join(problems)


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
    for sprog in sim_programs(spec).values():
        got: Outcome = outcome(sprog, PACKETS["ipv4_tcp"], None, 1)
        assert got.kind == "fault"
        assert "__sk_buff->data_meta" in got.message
        assert "SOCKET_FILTER programs may not read" in got.message


_SOCK_FIELDS = [(name, off, size) for name, off, size, _ in CTX_LAYOUTS["bpf_sock"][1]]
_SOCK_FIELDS.append(("padding", 50, 2))  # between dst_port and dst_ip4


@pytest.mark.parametrize("field", _SOCK_FIELDS, ids=[f[0] for f in _SOCK_FIELDS])
@pytest.mark.parametrize("ptype", ["tc", "cgroup_skb/ingress", "socket"])
def test_skb_sk_access(kernel, ptype: str, field: tuple[str, int, int]) -> None:
    """``struct bpf_sock`` through ``__sk_buff->sk`` (the dummy socket test_run
    attaches, family and addresses taken from the packet): loads of every size at
    every offset, and stores (always refused)."""
    name, foff, fsize = field
    runs = [(PACKETS[p], ZERO_CTX) for p in ("ipv4_tcp", "ipv6_udp", "arp_bcast")]
    problems: list[str] = []
    for off, size in _accesses(foff, fsize):
        sz = _SIZES[size]
        text = (
            f"r2 = *(u64 *)(r1 + {_OFF['sk']})\nif r2 == 0 goto +2\n"
            f"r3 = *({sz} *)(r2 + {off})\n*(u64 *)(r1 + {CB}) = r3\nr0 = 1\nexit\n"
        )
        spec = ProgramSpec.from_asm(text, prog_type=ptype)
        problems += [f"read {size}@{off}: {p}" for p in _compare(kernel, spec, runs)]
        text = (
            f"r2 = *(u64 *)(r1 + {_OFF['sk']})\nif r2 == 0 goto +2\n"
            f"r3 = 1\n*({sz} *)(r2 + {off}) = r3\nr0 = 1\nexit\n"
        )
        spec = ProgramSpec.from_asm(text, prog_type=ptype)
        problems += [f"write {size}@{off}: {p}" for p in _compare(kernel, spec, runs[:1])]
    assert not problems, f"{ptype} bpf_sock->{name}:\n  " + "\n  ".join(problems)
