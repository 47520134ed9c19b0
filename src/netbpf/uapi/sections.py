"""ELF section names -> program type and expected attach type.

One table, written from libbpf's documented section-name conventions
(Documentation/bpf/libbpf/program_types.rst).  The networking program types are the
ones netbpf models; the tracing, LSM and other sections are listed too
(:data:`NON_NETWORKING`), so that an object mixing a networking program with, say, an
``fentry`` program still parses -- the simulator then refuses only those programs, by
name, when they are loaded.  Users also name program types this way on the command line
and in ``ProgramSpec.from_asm(..., prog_type="xdp")``.

Matching follows libbpf: an entry ``"xdp"`` matches the section ``xdp`` exactly and,
when the entry allows a suffix, ``xdp/<anything>``; longer entries win over shorter.
"""

from __future__ import annotations

from dataclasses import dataclass

from netbpf.errors import NotSupportedError
from netbpf.uapi import AttachType, ProgramType

__all__ = ["NON_NETWORKING", "SECTION_DEFS", "SectionDef", "match_section", "resolve_prog_type"]


@dataclass(frozen=True, slots=True)
class SectionDef:
    """One row: section prefix, program type, expected attach type (or None), whether
    ``prefix/<name>`` is accepted, and whether the program is for XDP frags."""

    prefix: str
    prog_type: ProgramType
    attach_type: AttachType | None = None
    allow_suffix: bool = False
    frags: bool = False


P = ProgramType
A = AttachType

SECTION_DEFS: tuple[SectionDef, ...] = (
    SectionDef("socket", P.SOCKET_FILTER, None, True),
    SectionDef("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE),
    SectionDef("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT),
    SectionDef("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    SectionDef("tc/egress", P.SCHED_CLS, A.TCX_EGRESS),
    SectionDef("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    SectionDef("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS),
    SectionDef("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY),
    SectionDef("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    SectionDef("tc", P.SCHED_CLS, None, True),
    SectionDef("classifier", P.SCHED_CLS, None, True),
    SectionDef("action", P.SCHED_ACT, None, True),
    SectionDef("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, frags=True),
    SectionDef("xdp/devmap", P.XDP, A.XDP_DEVMAP),
    SectionDef("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, frags=True),
    SectionDef("xdp/cpumap", P.XDP, A.XDP_CPUMAP),
    SectionDef("xdp.frags", P.XDP, A.XDP, frags=True),
    SectionDef("xdp", P.XDP, A.XDP, True),
    SectionDef("lwt_in", P.LWT_IN, None, True),
    SectionDef("lwt_out", P.LWT_OUT, None, True),
    SectionDef("lwt_xmit", P.LWT_XMIT, None, True),
    SectionDef("lwt_seg6local", P.LWT_SEG6LOCAL, None, True),
    SectionDef("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS),
    SectionDef("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER),
    SectionDef("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT),
    SectionDef("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT),
    SectionDef("sk_skb", P.SK_SKB, None, True),
    SectionDef("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT),
    SectionDef("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR),
    SectionDef("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP),
    SectionDef("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS),
    SectionDef("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS),
    SectionDef("cgroup/skb", P.CGROUP_SKB, None),
    SectionDef("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    SectionDef("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE),
    SectionDef("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    SectionDef("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND),
    SectionDef("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND),
    SectionDef("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND),
    SectionDef("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND),
    SectionDef("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT),
    SectionDef("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT),
    SectionDef("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT),
    SectionDef("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG),
    SectionDef("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG),
    SectionDef("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG),
    SectionDef("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG),
    SectionDef("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG),
    SectionDef("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG),
    SectionDef("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME),
    SectionDef("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME),
    SectionDef("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME),
    SectionDef("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME),
    SectionDef("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME),
    SectionDef("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME),
    SectionDef("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
    SectionDef("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT),
    SectionDef("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT),
    SectionDef("struct_ops.s", P.STRUCT_OPS, None, True),
    SectionDef("struct_ops", P.STRUCT_OPS, None, True),
    # --- not networking: parsed so mixed objects load, not simulated ----------------------
    SectionDef("kprobe", P.KPROBE, None, True),
    SectionDef("kretprobe", P.KPROBE, None, True),
    SectionDef("kprobe.multi", P.KPROBE, A.TRACE_KPROBE_MULTI, True),
    SectionDef("kretprobe.multi", P.KPROBE, A.TRACE_KPROBE_MULTI, True),
    SectionDef("ksyscall", P.KPROBE, None, True),
    SectionDef("kretsyscall", P.KPROBE, None, True),
    SectionDef("uprobe", P.KPROBE, None, True),
    SectionDef("uprobe.s", P.KPROBE, None, True),
    SectionDef("uretprobe", P.KPROBE, None, True),
    SectionDef("uretprobe.s", P.KPROBE, None, True),
    SectionDef("uprobe.multi", P.KPROBE, A.TRACE_UPROBE_MULTI, True),
    SectionDef("uretprobe.multi", P.KPROBE, A.TRACE_UPROBE_MULTI, True),
    SectionDef("usdt", P.KPROBE, None, True),
    SectionDef("tracepoint", P.TRACEPOINT, None, True),
    SectionDef("tp", P.TRACEPOINT, None, True),
    SectionDef("raw_tracepoint", P.RAW_TRACEPOINT, None, True),
    SectionDef("raw_tp", P.RAW_TRACEPOINT, None, True),
    SectionDef("raw_tracepoint.w", P.RAW_TRACEPOINT_WRITABLE, None, True),
    SectionDef("raw_tp.w", P.RAW_TRACEPOINT_WRITABLE, None, True),
    SectionDef("tp_btf", P.TRACING, A.TRACE_RAW_TP, True),
    SectionDef("fentry", P.TRACING, A.TRACE_FENTRY, True),
    SectionDef("fentry.s", P.TRACING, A.TRACE_FENTRY, True),
    SectionDef("fexit", P.TRACING, A.TRACE_FEXIT, True),
    SectionDef("fexit.s", P.TRACING, A.TRACE_FEXIT, True),
    SectionDef("fmod_ret", P.TRACING, A.MODIFY_RETURN, True),
    SectionDef("fmod_ret.s", P.TRACING, A.MODIFY_RETURN, True),
    SectionDef("iter", P.TRACING, A.TRACE_ITER, True),
    SectionDef("iter.s", P.TRACING, A.TRACE_ITER, True),
    SectionDef("freplace", P.EXT, None, True),
    SectionDef("lsm", P.LSM, A.LSM_MAC, True),
    SectionDef("lsm.s", P.LSM, A.LSM_MAC, True),
    SectionDef("lsm_cgroup", P.LSM, A.LSM_CGROUP, True),
    SectionDef("perf_event", P.PERF_EVENT, None),
    SectionDef("syscall", P.SYSCALL, None),
    SectionDef("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE),
    SectionDef("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2),
    SectionDef("netfilter", P.NETFILTER, A.NETFILTER),
)

#: program types whose sections are parsed but which netbpf does not simulate
#: (tracing, LSM, device cgroup, infrared, netfilter, syscall): loading one in the
#: simulator is refused with NotSupportedError naming the program
NON_NETWORKING: frozenset[ProgramType] = frozenset(
    {
        P.KPROBE,
        P.TRACEPOINT,
        P.PERF_EVENT,
        P.RAW_TRACEPOINT,
        P.RAW_TRACEPOINT_WRITABLE,
        P.TRACING,
        P.EXT,
        P.LSM,
        P.SYSCALL,
        P.CGROUP_DEVICE,
        P.LIRC_MODE2,
        P.NETFILTER,
    }
)

# Longest prefix first so "xdp/devmap" wins over "xdp".
_ORDERED = sorted(SECTION_DEFS, key=lambda d: len(d.prefix), reverse=True)


def match_section(section: str) -> SectionDef | None:
    """The table row for an ELF section name, or None when it is not a program section."""
    for d in _ORDERED:
        if section == d.prefix:
            return d
        if d.allow_suffix and section.startswith(d.prefix + "/"):
            return d
    return None


def resolve_prog_type(value: str | int | ProgramType) -> tuple[ProgramType, AttachType | None]:
    """Accept a section-style name (``"xdp"``, ``"tc"``, ``"cgroup_skb/ingress"``), an
    enum name (``"SCHED_CLS"``), a ProgramType or its number."""
    if isinstance(value, ProgramType):
        return value, None
    if isinstance(value, int):
        try:
            return ProgramType(value), None
        except ValueError:
            raise NotSupportedError(f"program type {value}") from None
    d = match_section(value)
    if d is not None:
        return d.prog_type, d.attach_type
    key = value.upper().removeprefix("BPF_PROG_TYPE_")
    if key in ProgramType.__members__:
        return ProgramType[key], None
    raise NotSupportedError(
        f"program type {value!r}",
        "use a section-style name such as 'xdp', 'tc', 'socket', 'cgroup_skb/ingress'",
    )
