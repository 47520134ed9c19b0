"""Shared pieces of the test_run differential tests: sample packets and a runner that
puts the same program through the simulator (every engine) and the kernel and
compares retval, data_out, ctx_out and refusals (errno) exactly.

``duration_ns`` is never compared: the kernel measures its JIT, we measure Python.

Golden data: every kernel-differential case also checks the kernel's outcome against
``tests/golden/testrun.json`` (a digest per case), and a sim-only twin test checks the
simulator against the same file -- so the simulator stays tested where the kernel is
unusable (no root), and the file cannot drift from the kernel unnoticed.  After a
deliberate change, regenerate it from the kernel::

    NETBPF_REGEN_GOLDEN=1 python -m pytest -m kernel tests/test_testrun_*.py tests/test_sim_backend.py
"""

from __future__ import annotations

import atexit
import errno as _errno
import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from netbpf import ProgramSpec, SimBackend, TestRunError
from netbpf.errors import KernelError, ProgramFault
from netbpf.hooks.context import NetDevice
from netbpf.vm.engine import ENGINES

# ------------------------------------------------------------------------------ packets

MAC_HOST = bytes(6)  # lo's own address: PACKET_HOST
MAC_OTHER = bytes.fromhex("020000000001")
MAC_SRC = bytes.fromhex("020000000002")
MAC_BCAST = b"\xff" * 6
MAC_MCAST = bytes.fromhex("01005e000001")


def eth(
    ethertype: int, payload: bytes = b"", *, dst: bytes = MAC_HOST, src: bytes = MAC_SRC
) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(proto: int, payload: bytes, *, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(payload), 0x1234, 0x4000, 64, proto, 0,
        bytes(int(x) for x in src.split(".")), bytes(int(x) for x in dst.split(".")),
    )  # fmt: skip
    return hdr + payload


def ipv6(nexthdr: int, payload: bytes) -> bytes:
    src = bytes.fromhex("20010db8000000000000000000000001")
    dst = bytes.fromhex("20010db8000000000000000000000002")
    return struct.pack("!IHBB", 0x60000000, len(payload), nexthdr, 64) + src + dst + payload


def tcp(sport: int = 40000, dport: int = 22, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0) + payload


def udp(sport: int = 5353, dport: int = 53, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, ETH_P_8021Q = 0x0800, 0x0806, 0x86DD, 0x8100

#: name -> frame, the packets every program runs on
PACKETS: dict[str, bytes] = {
    "min14_arp": eth(ETH_P_ARP),
    "arp_bcast": eth(ETH_P_ARP, bytes(range(28)), dst=MAC_BCAST),
    "ipv4_tcp": eth(ETH_P_IP, ipv4(6, tcp(payload=b"hello"))),
    "ipv4_tcp_otherhost": eth(ETH_P_IP, ipv4(6, tcp()), dst=MAC_OTHER),
    "ipv4_min34": eth(ETH_P_IP, ipv4(17, b"")),
    "ipv6_udp": eth(ETH_P_IPV6, ipv6(17, udp(payload=b"dns?"))),
    "ipv6_udp_mcast": eth(ETH_P_IPV6, ipv6(17, udp()), dst=MAC_MCAST),
    "vlan_ipv4_udp": eth(ETH_P_8021Q, struct.pack("!HH", 0x2064, ETH_P_IP) + ipv4(17, udp())),
    "llc_8023_raw": eth(0x0040, b"\xff\xff" + bytes(30)),
    "llc_8022": eth(0x0040, b"\xaa\xaa\x03" + bytes(29)),
    "skb_max3712": eth(ETH_P_IP, ipv4(17, udp(payload=bytes(range(256)) * 14 + bytes(86)))),
}
assert len(PACKETS["skb_max3712"]) == 3712
#: frames the skb family refuses (EINVAL) but XDP may take
SHORT_PACKETS: dict[str, bytes] = {
    "short13": eth(ETH_P_ARP)[:13],
    "ipv4_trunc33": eth(ETH_P_IP, ipv4(17, b""))[:33],
    "ipv6_trunc53": eth(ETH_P_IPV6, ipv6(17, b""))[:53],
    "skb_too_big3713": bytes(3713),
}


# ------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Outcome:
    """What one test run gave: ("ok", retval, data_out, ctx_out) or ("refused",
    errno) or ("fault", message) -- the last only the simulator produces."""

    kind: str
    retval: int | None = None
    data_out: bytes | None = None
    ctx_out: bytes | None = None
    errno: int | None = None
    message: str = ""

    def brief(self) -> str:
        if self.kind == "ok":
            ctx = self.ctx_out.hex() if self.ctx_out is not None else None
            return f"retval={self.retval:#x} data_out={self.data_out.hex()} ctx_out={ctx}"
        if self.kind == "refused":
            return f"refused {_errno.errorcode.get(self.errno, self.errno)} ({self.message})"
        return f"fault: {self.message}"


def outcome(prog, data_in: bytes, ctx_in: bytes | None, repeat: int) -> Outcome:
    try:
        r = prog.test_run(data_in, ctx_in, repeat)
    except TestRunError as e:
        return Outcome("refused", errno=e.errno, message=str(e))
    except ProgramFault as e:
        return Outcome("fault", message=str(e))
    return Outcome("ok", r.retval, r.data_out, r.ctx_out)


def kernel_load(kernel, spec: ProgramSpec):
    """Load into the kernel or fail the test with the verifier's verdict: every
    differential program must pass the kernel verifier."""
    try:
        return kernel.load_program(spec, log_level=1)
    except KernelError as e:
        pytest.fail(f"the kernel refused the test program: {e}\n{e.log[-3000:]}", pytrace=False)


def kernel_accepts(kernel, spec: ProgramSpec) -> bool:
    try:
        prog = kernel.load_program(spec)
    except KernelError as e:
        if e.errno in (_errno.EACCES, _errno.EINVAL):
            return False
        raise
    prog.close()
    return True


def sim_programs(
    spec: ProgramSpec,
    devices: Mapping[int, NetDevice] | None = None,
    *,
    unsafe_skip_verifier: bool = False,
) -> dict[str, object]:
    """The program loaded into a SimBackend of every engine (verified, unless
    ``unsafe_skip_verifier``: for tests of the run-time sandbox behind the verifier)."""
    return {
        engine: SimBackend(
            engine=engine, devices=devices, unsafe_skip_verifier=unsafe_skip_verifier
        ).load_program(spec)
        for engine in ENGINES
    }


def sim_verifier_refuses(spec: ProgramSpec) -> bool:
    """Whether netbpf's verifier refuses ``spec`` at SimBackend load."""
    from netbpf.verifier import VerifierRejection

    try:
        SimBackend().load_program(spec).close()
    except VerifierRejection:
        return True
    return False


def assert_same(
    kernel,
    spec: ProgramSpec,
    data_in: bytes,
    ctx_in: bytes | None = None,
    repeat: int = 1,
    *,
    devices: Mapping[int, NetDevice] | None = None,
) -> Outcome:
    """Run ``spec`` on the kernel and on every simulator engine (seeing ``devices``);
    assert equal outcomes (the kernel's must not be a fault); return the kernel's."""
    with kernel_load(kernel, spec) as kprog:
        want = outcome(kprog, data_in, ctx_in, repeat)
    for engine, sprog in sim_programs(spec, devices).items():
        got = outcome(sprog, data_in, ctx_in, repeat)
        assert got == want or (got.kind == want.kind == "refused" and got.errno == want.errno), (
            f"engine {engine}:\n  sim:    {got.brief()}\n  kernel: {want.brief()}"
        )
    return want


# ------------------------------------------------------------------------------ golden

GOLDEN_FILE = Path(__file__).parent / "golden" / "testrun.json"
REGEN = os.environ.get("NETBPF_REGEN_GOLDEN") == "1"
_golden: dict[str, str] | None = None
_updates: dict[str, str] = {}


def _golden_data() -> dict[str, str]:
    global _golden
    if _golden is None:
        _golden = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    return _golden


def _h(data: bytes) -> str:
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()[:16]}"


def digest(o: Outcome) -> str:
    """A compact, exact fingerprint of an outcome (faults: "fault")."""
    if o.kind == "ok":
        ctx = "-" if o.ctx_out is None else _h(o.ctx_out)
        return f"ok {o.retval:#x} {_h(o.data_out or b'')} {ctx}"
    if o.kind == "refused":
        return f"refused {_errno.errorcode.get(o.errno, str(o.errno))}"
    return "fault"


def combine(tokens: list[str]) -> str:
    """One digest for a sequence of per-access results."""
    return hashlib.sha256("|".join(tokens).encode()).hexdigest()[:24]


def kernel_golden(key: str, value: str) -> None:
    """Check the kernel's value against the golden file (or record it when
    NETBPF_REGEN_GOLDEN=1)."""
    if REGEN:
        _updates[key] = value
        return
    have = _golden_data().get(key)
    assert have == value, (
        f"golden {key}: the file has {have!r}, the kernel gives {value!r}; if the change is "
        "expected, regenerate (see tests/_testrun.py)"
    )


def sim_golden(key: str) -> str:
    """The kernel's recorded value for ``key``."""
    have = _golden_data().get(key)
    if have is None:
        pytest.fail(f"no golden value for {key}: regenerate (see tests/_testrun.py)", pytrace=False)
    return have


def assert_sim_golden(
    key: str, spec: ProgramSpec, data_in: bytes, ctx_in: bytes | None = None, repeat: int = 1
) -> None:
    """Every simulator engine gives the kernel's recorded outcome for ``key``."""
    want = sim_golden(key)
    for engine, sprog in sim_programs(spec).items():
        got = outcome(sprog, data_in, ctx_in, repeat)
        assert digest(got) == want, f"engine {engine}: sim {got.brief()}\n  golden (kernel) {want}"


@atexit.register
def _save_golden() -> None:
    if REGEN and _updates:
        merged = {**_golden_data(), **_updates}
        GOLDEN_FILE.parent.mkdir(exist_ok=True)
        GOLDEN_FILE.write_text(json.dumps(dict(sorted(merged.items())), indent=0) + "\n")
