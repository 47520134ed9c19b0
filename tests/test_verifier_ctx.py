"""Context access per program type, exhaustively against the running kernel.

For each networking program type (and the attach types whose rules differ), every
access size at every aligned offset of the context struct (plus a misaligned load
inside every aligned slot, and a few past-the-end ones), as a load, a sign-extending
load and a store: netbpf's verdict must equal the kernel's, and for accepted loads the
loaded register's state (scalar bounds from narrow loads, or the pointer type: pkt,
pkt_end, sock_common_or_null...) must print the same as in the kernel's log.
"""

from __future__ import annotations

import re

import pytest

from netbpf import ProgramSpec
from netbpf.errors import KernelError, VerifierError
from netbpf.verifier import verify
from netbpf.verifier.ctx import STRUCT_SIZE, ctx_struct

SECTIONS = [
    "socket",
    "tc",
    "action",
    "xdp",
    "xdp/devmap",
    "cgroup_skb/ingress",
    "lwt_in",
    "lwt_xmit",
    "lwt_seg6local",
    "sk_skb/stream_verdict",
    "flow_dissector",
    "sk_msg",
    "sockops",
    "sk_reuseport",
    "sk_lookup",
    "cgroup/sock_create",
    "cgroup/post_bind4",
    "cgroup/post_bind6",
    "cgroup/connect4",
    "cgroup/connect6",
    "cgroup/sendmsg4",
    "cgroup/sendmsg6",
    "cgroup/getpeername4",
    "cgroup/sysctl",
    "cgroup/getsockopt",
    "cgroup/setsockopt",
]

_SZ = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_SSZ = {1: "s8", 2: "s16", 4: "s32"}


def _ret(section: str) -> str:
    return "r0 = 1" if "getpeername" in section else "r0 = 0"


def _accesses(struct_size: int) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for size in (1, 2, 4, 8):
        for off in range(0, struct_size + 8, size):
            out.append(("r", off, size))
            out.append(("w", off, size))
            if size < 8:
                out.append(("s", off, size))
        out.append(("r", 1, size) if size > 1 else ("r", -1, 1))
        if size > 1:
            # a misaligned load in the middle of every aligned slot
            out.extend(("r", off, size) for off in range(size // 2, struct_size, size))
    return out


def _program(kind: str, off: int, size: int, section: str) -> str:
    if kind == "r":
        body = f"r0 = *({_SZ[size]} *)(r1 {off:+d})"
    elif kind == "s":
        body = f"r0 = *({_SSZ[size]} *)(r1 {off:+d})"
    else:
        body = f"r2 = 0\n*({_SZ[size]} *)(r1 {off:+d}) = r2"
    return f"{body}\n{_ret(section)}\nexit"


def _load_state(log: str) -> str | None:
    """The state line of instruction 0 (the load) in a level-1 log."""
    for ln in log.splitlines():
        m = re.match(r"^0: \(\w\w\) [^;]*; (.*)$", ln)
        if m:
            return re.sub(r"=P(?=[-0-9s])", "=", m.group(1))
    return None


def _verdict_ours(spec: ProgramSpec) -> tuple[bool, str | None]:
    try:
        return True, _load_state(verify(spec, log_level=2).log)
    except VerifierError:
        return False, None


@pytest.mark.parametrize("section", SECTIONS)
def test_ctx_access_matches_kernel(kernel, section: str) -> None:
    spec0 = ProgramSpec.from_asm("r0 = 0\nexit", prog_type=section)
    struct = ctx_struct(spec0.prog_type)
    assert struct is not None
    mismatches = []
    for kind, off, size in _accesses(STRUCT_SIZE[struct]):
        spec = ProgramSpec.from_asm(_program(kind, off, size, section), prog_type=section)
        try:
            p = kernel.load_program(spec, log_level=2)
            kv, kstate = True, _load_state(p.log)
            p.close()
        except KernelError:
            kv, kstate = False, None
        uv, ustate = _verdict_ours(spec)
        if kv != uv or (kv and kind != "w" and kstate != ustate):
            mismatches.append((kind, off, size, kv, uv, kstate, ustate))
    assert not mismatches, f"{section}: {len(mismatches)} mismatches, first: {mismatches[:5]}"


def test_ctx_rules_without_kernel() -> None:
    """A few fixed facts, so the rules are checked even where the kernel is not."""
    ok = [
        ("xdp", "r0 = *(u32 *)(r1 + 0)"),
        ("tc", "r0 = *(u8 *)(r1 + 0)"),
        ("tc", "r0 = *(u64 *)(r1 + 168)"),
        ("sk_msg", "r0 = *(u64 *)(r1 + 0)"),
        ("sockops", "r0 = *(u64 *)(r1 + 168)"),
        ("cgroup/connect4", "r0 = *(u32 *)(r1 + 4)"),
    ]
    bad = [
        ("xdp", "r0 = *(u16 *)(r1 + 0)"),
        ("tc", "r0 = *(u32 *)(r1 + 144)"),
        ("socket", "r0 = *(u32 *)(r1 + 76)"),
        ("cgroup/connect4", "r0 = *(u32 *)(r1 + 8)"),
        ("sk_msg", "r0 = *(u32 *)(r1 + 0)"),
    ]
    for section, load in ok:
        verify(ProgramSpec.from_asm(f"{load}\nr0 = 0\nexit", prog_type=section))
    for section, load in bad:
        with pytest.raises(VerifierError, match="invalid bpf_context access"):
            verify(ProgramSpec.from_asm(f"{load}\nr0 = 0\nexit", prog_type=section))
