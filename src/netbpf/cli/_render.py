"""What a test run's numbers *mean*, for the human and JSON output of ``prog run``.

A return value is only a number to the VM; what it means depends on the hook: XDP
returns an ``enum xdp_action``, tc classifiers in direct-action mode a ``TC_ACT_*``
code (``linux/pkt_cls.h``), lightweight-tunnel programs an ``enum bpf_ret_code``
(``linux/bpf.h``), cgroup skb programs allow/deny in bit 0 (and "congestion
notification" in bit 1 on egress), socket filters the number of bytes to keep.
The tables below are written from those headers; the XDP names come from the
generated UAPI enum.
"""

from __future__ import annotations

import struct

from netbpf.uapi import CTX_LAYOUTS, ProgramType, XdpAction

__all__ = ["ctx_struct", "decode_ctx", "retval_action"]

P = ProgramType

#: linux/pkt_cls.h (TC_ACT_UNSPEC is -1).
TC_ACTIONS: dict[int, str] = {
    -1: "TC_ACT_UNSPEC",
    0: "TC_ACT_OK",
    1: "TC_ACT_RECLASSIFY",
    2: "TC_ACT_SHOT",
    3: "TC_ACT_PIPE",
    4: "TC_ACT_STOLEN",
    5: "TC_ACT_QUEUED",
    6: "TC_ACT_REPEAT",
    7: "TC_ACT_REDIRECT",
    8: "TC_ACT_TRAP",
}

#: linux/bpf.h enum bpf_ret_code (the LWT program return codes).
LWT_ACTIONS: dict[int, str] = {
    0: "BPF_OK",
    2: "BPF_DROP",
    7: "BPF_REDIRECT",
    128: "BPF_LWT_REROUTE",
}

#: cgroup skb: bit 0 is the verdict; egress may set bit 1 (congestion notification).
CGROUP_SKB_ACTIONS: dict[int, str] = {
    0: "drop",
    1: "allow",
    2: "drop, congestion notification",
    3: "allow, congestion notification",
}

_SKB_TYPES = frozenset(
    {
        P.SOCKET_FILTER,
        P.SCHED_CLS,
        P.SCHED_ACT,
        P.CGROUP_SKB,
        P.LWT_IN,
        P.LWT_OUT,
        P.LWT_XMIT,
        P.LWT_SEG6LOCAL,
        P.SK_SKB,
    }
)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def retval_action(prog_type: ProgramType, retval: int) -> str | None:
    """The name of what ``retval`` asks the hook to do, or None where the number has no
    name (an unknown code, or a program type whose return is just a number)."""
    if prog_type == P.XDP:
        try:
            return f"XDP_{XdpAction(retval).name}"
        except ValueError:
            return None
    if prog_type in (P.SCHED_CLS, P.SCHED_ACT):
        return TC_ACTIONS.get(_s32(retval))
    if prog_type in (P.LWT_IN, P.LWT_OUT, P.LWT_XMIT, P.LWT_SEG6LOCAL):
        return LWT_ACTIONS.get(retval)
    if prog_type == P.CGROUP_SKB:
        return CGROUP_SKB_ACTIONS.get(retval)
    if prog_type == P.SOCKET_FILTER:
        return "drop" if retval == 0 else f"keep {retval} bytes"
    return None


def ctx_struct(prog_type: ProgramType) -> str | None:
    """The UAPI context struct a test run's ctx_in/ctx_out hold for this type."""
    if prog_type == P.XDP:
        return "xdp_md"
    if prog_type in _SKB_TYPES:
        return "__sk_buff"
    return None


def decode_ctx(prog_type: ProgramType, ctx: bytes) -> dict[str, int | list[int]] | None:
    """ctx_out as named fields (little-endian, per the generated layout), or None when
    the type has no known context struct or the size does not match it.  Array fields
    (``cb``, ``remote_ip6``...) become lists of their 32-bit elements."""
    name = ctx_struct(prog_type)
    if name is None or name not in CTX_LAYOUTS:
        return None
    size, fields = CTX_LAYOUTS[name]
    if len(ctx) != size:
        return None
    out: dict[str, int | list[int]] = {}
    for field, off, fsize, ctype in fields:
        raw = ctx[off : off + fsize]
        if "[" in ctype and fsize % 4 == 0:
            out[field] = list(struct.unpack(f"<{fsize // 4}I", raw))
        else:
            out[field] = int.from_bytes(raw, "little")
    return out
