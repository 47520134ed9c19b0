"""Which context bytes a program type may read and write, and what a load gives.

The kernel decides this per program type in its ``*_is_valid_access`` callbacks
(net/core/filter.c): a load or store of ``size`` bytes at offset ``off`` of the
context struct is allowed or not, and a load of certain fields yields a pointer
(``__sk_buff->data`` is PTR_TO_PACKET, ``->sk`` is PTR_TO_SOCK_COMMON_OR_NULL...).
The rules here are written per context struct as field tables plus a per-type policy
(which fields each type may read and write), following those callbacks; the exhaustive
differential test ``tests/test_verifier_ctx.py`` checks every offset, size and
direction against the running kernel.

Layouts are Linux 6.18's: ``bpf_sock_ops`` has ``skb_hwtstamp`` (added after the 6.1
UAPI headers this repo's generated tables come from).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from netbpf.uapi import CTX_LAYOUTS, AttachType, ProgramType
from netbpf.verifier.regs import T

__all__ = ["CtxResult", "ctx_access", "ctx_struct", "flow_keys_size", "sock_access"]

P = ProgramType
A = AttachType


@dataclass(frozen=True, slots=True)
class CtxResult:
    """An allowed context access: the register type a load gives (``T.SCALAR`` or a
    pointer type) and the width of the kernel field a narrow load reads
    (``ctx_field_size``; 0 when the access must cover the whole field)."""

    reg_type: int = T.SCALAR
    field_size: int = 0


OK = CtxResult()


def _layout(struct: str) -> dict[str, tuple[int, int]]:
    return {name: (off, size) for name, off, size, _ in CTX_LAYOUTS[struct][1]}


_SKB = _layout("__sk_buff")
_SOCK = _layout("bpf_sock")
_SOCK_ADDR = _layout("bpf_sock_addr")
_SOCK_OPS = _layout("bpf_sock_ops")
_MSG = _layout("sk_msg_md")
_REUSE = _layout("sk_reuseport_md")
_SKL = _layout("bpf_sk_lookup")
_SOCKOPT = _layout("bpf_sockopt")
_TCP_SOCK = _layout("bpf_tcp_sock")

#: sizeof() of each context struct in Linux 6.18
STRUCT_SIZE = {
    "__sk_buff": 192,
    "xdp_md": 24,
    "bpf_sock": 80,
    "bpf_sock_addr": 72,
    "bpf_sock_ops": 224,
    "sk_msg_md": 80,
    "sk_reuseport_md": 56,
    "bpf_sk_lookup": 72,
    "bpf_sysctl": 8,
    "bpf_sockopt": 40,
    "bpf_flow_keys": 56,
    "bpf_tcp_sock": 112,
    "bpf_xdp_sock": 4,
}

_SKB_TYPES = {
    P.SOCKET_FILTER,
    P.SCHED_CLS,
    P.SCHED_ACT,
    P.CGROUP_SKB,
    P.LWT_IN,
    P.LWT_OUT,
    P.LWT_XMIT,
    P.LWT_SEG6LOCAL,
    P.SK_SKB,
    P.FLOW_DISSECTOR,
}

_CTX_STRUCT = {
    **dict.fromkeys(_SKB_TYPES, "__sk_buff"),
    P.XDP: "xdp_md",
    P.CGROUP_SOCK: "bpf_sock",
    P.CGROUP_SOCK_ADDR: "bpf_sock_addr",
    P.SOCK_OPS: "bpf_sock_ops",
    P.SK_MSG: "sk_msg_md",
    P.SK_REUSEPORT: "sk_reuseport_md",
    P.SK_LOOKUP: "bpf_sk_lookup",
    P.CGROUP_SYSCTL: "bpf_sysctl",
    P.CGROUP_SOCKOPT: "bpf_sockopt",
}


def ctx_struct(prog_type: int) -> str | None:
    """The C struct a program type's context is (``__sk_buff``, ``xdp_md``...)."""
    return _CTX_STRUCT.get(prog_type)  # type: ignore[call-overload]


def _in(off: int, field: tuple[int, int]) -> bool:
    return field[0] <= off < field[0] + field[1]


def _narrow_ok(off: int, size: int, default: int) -> bool:
    """bpf_ctx_narrow_access_ok (alignment ``off % size`` was checked before)."""
    return size <= default and not (size & (size - 1))


def _wide_ok(off: int, size: int, field: tuple[int, int]) -> bool:
    """bpf_ctx_wide_access_ok: an aligned 8-byte access inside a wider field."""
    return size == 8 and field[0] <= off and off + 8 <= field[0] + field[1] and not off % 8


# --- __sk_buff --------------------------------------------------------------------------

_R = _SKB
_CB = _R["cb"]
_SKB_PTRS = {"data": T.PTR_TO_PACKET, "data_meta": T.PTR_TO_PACKET_META}


def _skb_range(*names: str) -> list[tuple[int, int]]:
    return [_R[n] for n in names]


def _skb_base(off: int, size: int, write: bool, ldsx: bool) -> CtxResult | None:
    """bpf_skb_is_valid_access: the rules shared by every __sk_buff program type."""
    if off < 0 or off >= 192 or off % size:
        return None
    if _in(off, _CB):
        if off + size > _CB[0] + _CB[1]:
            return None
        return OK
    if _in(off, _R["data"]) or _in(off, _R["data_meta"]) or _in(off, _R["data_end"]):
        if ldsx or size != 4:
            return None
        return OK
    for name in ("remote_ip6", "local_ip6", "remote_ip4", "local_ip4"):
        if _in(off, _R[name]):
            return OK if size == 4 else None
    if _in(off, _R["flow_keys"]):
        return None
    if _in(off, _R["hwtstamp"]):
        return OK if not write and size == 8 else None
    if _in(off, _R["tstamp"]):
        return OK if size == 8 else None
    if _in(off, _R["sk"]):
        if write or size != 8 or off != _R["sk"][0]:
            return None
        return CtxResult(T.PTR_TO_SOCK_COMMON | T.MAYBE_NULL)
    if off == _R["tstamp_type"][0]:
        return None
    if 181 <= off < 184:  # padding between tstamp_type and hwtstamp
        return None
    if write:
        return OK if size == 4 else None
    if not _narrow_ok(off, size, 4):
        return None
    return CtxResult(T.SCALAR, 4)


def _skb_forbid(off: int, names: tuple[str, ...]) -> bool:
    return any(_in(off, _R[n]) for n in names)


_SOCK_FIELDS_RANGE = (_R["family"][0], _R["local_port"][0] + 4)  # family .. local_port


def _in_sock_fields(off: int) -> bool:
    return _SOCK_FIELDS_RANGE[0] <= off < _SOCK_FIELDS_RANGE[1]


def _skb_policy(
    forbid: tuple[str, ...],
    writable: tuple[str, ...],
    *,
    sock_fields: bool,
    ptrs: dict[str, int],
    extra: Callable[[int, int, bool], CtxResult | bool | None] | None = None,
) -> Callable[[int, int, bool, bool], CtxResult | None]:
    """A __sk_buff rule set: fields the type may not touch at all, fields it may
    write, whether it sees the socket fields (family..local_port), which fields load
    as pointers, and an optional special case evaluated first."""

    def check(off: int, size: int, write: bool, ldsx: bool) -> CtxResult | None:
        if extra is not None:
            r = extra(off, size, write)
            if r is not True:
                return r  # type: ignore[return-value]
        if _skb_forbid(off, forbid):
            return None
        if not sock_fields and _in_sock_fields(off):
            return None
        if write and not any(_in(off, _R[n]) for n in writable):
            return None
        res = _skb_base(off, size, write, ldsx)
        if res is None:
            return None
        for name, t in ptrs.items():
            if _in(off, _R[name]):
                return CtxResult(t)
        return res

    return check


def _tc_extra(off: int, size: int, write: bool) -> CtxResult | bool | None:
    if off == _R["tstamp_type"][0]:
        return OK if not write and size == 1 else None
    return True


_PKT = {"data": T.PTR_TO_PACKET, "data_end": T.PTR_TO_PACKET_END}
_PKT_META = {**_PKT, "data_meta": T.PTR_TO_PACKET_META}

_SKB_RULES: dict[int, Callable[[int, int, bool, bool], CtxResult | None]] = {
    P.SOCKET_FILTER: _skb_policy(
        ("tc_classid", "data", "data_meta", "data_end", "tstamp", "wire_len", "hwtstamp"),
        ("cb",),
        sock_fields=False,
        ptrs={},
    ),
    P.SCHED_CLS: _skb_policy(
        (),
        ("mark", "tc_index", "priority", "tc_classid", "cb", "tstamp", "queue_mapping"),
        sock_fields=False,
        ptrs=_PKT_META,
        extra=_tc_extra,
    ),
    P.CGROUP_SKB: _skb_policy(
        ("tc_classid", "data_meta", "wire_len"),
        ("mark", "priority", "cb", "tstamp"),
        sock_fields=True,
        ptrs=_PKT,
    ),
    P.LWT_IN: _skb_policy(
        ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp"),
        ("mark", "priority", "cb"),
        sock_fields=False,
        ptrs=_PKT,
    ),
    P.SK_SKB: _skb_policy(
        ("tc_classid", "data_meta", "tstamp", "wire_len", "hwtstamp", "mark"),
        ("tc_index", "priority"),
        sock_fields=True,
        ptrs=_PKT,
    ),
}
_SKB_RULES[P.SCHED_ACT] = _SKB_RULES[P.SCHED_CLS]
_SKB_RULES[P.LWT_OUT] = _SKB_RULES[P.LWT_IN]
_SKB_RULES[P.LWT_XMIT] = _SKB_RULES[P.LWT_IN]
_SKB_RULES[P.LWT_SEG6LOCAL] = _SKB_RULES[P.LWT_IN]


def _flow_dissector(off: int, size: int, write: bool, ldsx: bool) -> CtxResult | None:
    if off < 0 or off >= 192 or write or off % size:
        return None
    if _in(off, _R["data"]):
        return CtxResult(T.PTR_TO_PACKET) if not ldsx and size == 4 else None
    if _in(off, _R["data_end"]):
        return CtxResult(T.PTR_TO_PACKET_END) if not ldsx and size == 4 else None
    if _in(off, _R["flow_keys"]):
        return CtxResult(T.PTR_TO_FLOW_KEYS) if size == 8 else None
    return None


_SKB_RULES[P.FLOW_DISSECTOR] = _flow_dissector


# --- xdp_md -----------------------------------------------------------------------------


def _xdp(attach: int | None, off: int, size: int, write: bool, ldsx: bool) -> CtxResult | None:
    if attach != A.XDP_DEVMAP and off == 20:
        return None
    if write:
        return None
    if off in (0, 4, 8) and ldsx:
        return None
    if off < 0 or off >= 24 or off % size or size != 4:
        return None
    if off == 0:
        return CtxResult(T.PTR_TO_PACKET)
    if off == 4:
        return CtxResult(T.PTR_TO_PACKET_END)
    if off == 8:
        return CtxResult(T.PTR_TO_PACKET_META)
    return OK


# --- struct bpf_sock (CGROUP_SOCK context; socket pointers) -----------------------------

_S = _SOCK


def sock_access(kind: str, off: int, size: int) -> CtxResult | None:
    """Loads through a socket pointer: ``kind`` is "sock" (bpf_sock_is_valid_access),
    "sock_common" (only the sock_common part), "tcp_sock" or "xdp_sock"."""
    if kind == "tcp_sock":
        if off < 0 or off >= 112 or off % size:
            return None
        if _in(off, _TCP_SOCK["bytes_received"]) or _in(off, _TCP_SOCK["bytes_acked"]):
            return OK if size == 8 else None
        return OK if size == 4 else None
    if kind == "xdp_sock":
        if off < 0 or off >= 4 or off % size:
            return None
        return OK if size == 4 else None
    if kind == "sock_common" and _S["type"][0] <= off < _S["priority"][0] + 4:
        return None
    return _bpf_sock(off, size)


def _bpf_sock(off: int, size: int) -> CtxResult | None:
    if off < 0 or off >= 80 or off % size:
        return None
    heads = {_S[n][0] for n in ("state", "family", "type", "protocol", "src_port")}
    heads.add(_S["rx_queue_mapping"][0])
    if off in heads or any(_in(off, _S[n]) for n in ("src_ip4", "src_ip6", "dst_ip4", "dst_ip6")):
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    if _in(off, _S["dst_port"]):
        fsize = 4 if size == 4 else 2
        return CtxResult(T.SCALAR, fsize) if _narrow_ok(off, size, fsize) else None
    if 50 <= off < 52:  # padding after dst_port
        return None
    return OK if size == 4 else None


def _cgroup_sock(attach: int | None, off: int, size: int, write: bool) -> CtxResult | None:
    res = _bpf_sock(off, size)
    if res is None:
        return None
    if off in (_S["bound_dev_if"][0], _S["mark"][0], _S["priority"][0]):
        if attach in (A.CGROUP_INET_SOCK_CREATE, A.CGROUP_INET_SOCK_RELEASE):
            return res
        return None
    if _in(off, _S["src_ip4"]):
        if attach != A.CGROUP_INET4_POST_BIND:
            return None
    elif _in(off, _S["src_ip6"]):
        if attach != A.CGROUP_INET6_POST_BIND:
            return None
    elif _in(off, _S["src_port"]):
        if attach not in (A.CGROUP_INET4_POST_BIND, A.CGROUP_INET6_POST_BIND):
            return None
    return None if write else res


# --- bpf_sock_addr ---------------------------------------------------------------------

_SA = _SOCK_ADDR
_V4 = {
    A.CGROUP_INET4_BIND,
    A.CGROUP_INET4_CONNECT,
    A.CGROUP_INET4_GETPEERNAME,
    A.CGROUP_INET4_GETSOCKNAME,
    A.CGROUP_UDP4_SENDMSG,
    A.CGROUP_UDP4_RECVMSG,
}
_V6 = {
    A.CGROUP_INET6_BIND,
    A.CGROUP_INET6_CONNECT,
    A.CGROUP_INET6_GETPEERNAME,
    A.CGROUP_INET6_GETSOCKNAME,
    A.CGROUP_UDP6_SENDMSG,
    A.CGROUP_UDP6_RECVMSG,
}


def _sock_addr(attach: int | None, off: int, size: int, write: bool) -> CtxResult | None:
    if off < 0 or off >= 72 or off % size:
        return None
    if _in(off, _SA["user_ip4"]) and attach not in _V4:
        return None
    if _in(off, _SA["user_ip6"]) and attach not in _V6:
        return None
    if _in(off, _SA["msg_src_ip4"]) and attach != A.CGROUP_UDP4_SENDMSG:
        return None
    if _in(off, _SA["msg_src_ip6"]) and attach != A.CGROUP_UDP6_SENDMSG:
        return None
    if any(
        _in(off, _SA[n])
        for n in ("user_ip4", "user_ip6", "msg_src_ip4", "msg_src_ip6", "user_port")
    ):
        if _wide_ok(off, size, _SA["user_ip6"]) or _wide_ok(off, size, _SA["msg_src_ip6"]):
            return OK
        if write:
            return OK if size == 4 else None
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    if any(_in(off, _SA[n]) for n in ("user_family", "family", "type", "protocol")):
        return OK if not write and size == 4 else None
    if off == _SA["sk"][0]:
        return CtxResult(T.PTR_TO_SOCKET) if not write and size == 8 else None
    return None


# --- bpf_sock_ops -----------------------------------------------------------------------

_SO = _SOCK_OPS


def _sock_ops(off: int, size: int, write: bool) -> CtxResult | None:
    if off < 0 or off >= 224 or off % size:
        return None
    if write:
        if off in (_SO["reply"][0], _SO["sk_txhash"][0]):
            return OK if size == 4 else None
        return None
    if _SO["bytes_received"][0] <= off < _SO["bytes_acked"][0] + 8:
        return OK if size == 8 else None
    ptrs = {
        "sk": T.PTR_TO_SOCKET | T.MAYBE_NULL,
        "skb_data": T.PTR_TO_PACKET,
        "skb_data_end": T.PTR_TO_PACKET_END,
    }
    for name, t in ptrs.items():
        if _in(off, _SO[name]):
            return CtxResult(t) if size == 8 and off == _SO[name][0] else None
    if off == _SO["skb_tcp_flags"][0]:
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    if 216 <= off < 224:  # skb_hwtstamp
        return OK if size == 8 and off == 216 else None
    return OK if size == 4 else None


# --- sk_msg_md, sk_reuseport_md, bpf_sk_lookup, bpf_sysctl, bpf_sockopt ----------------


def _sk_msg(off: int, size: int, write: bool) -> CtxResult | None:
    if write or off < 0 or off % size:
        return None
    if off == _MSG["data"][0]:
        return CtxResult(T.PTR_TO_PACKET) if size == 8 else None
    if off == _MSG["data_end"][0]:
        return CtxResult(T.PTR_TO_PACKET_END) if size == 8 else None
    if off == _MSG["sk"][0]:
        return CtxResult(T.PTR_TO_SOCKET) if size == 8 else None
    names = ("family", "remote_ip4", "local_ip4", "remote_ip6", "local_ip6")
    if any(_in(off, _MSG[n]) for n in (*names, "remote_port", "local_port", "size")):
        return OK if size == 4 else None
    return None


def _sk_reuseport(off: int, size: int, write: bool) -> CtxResult | None:
    if off < 0 or off >= 56 or off % size or write:
        return None
    exact = {
        _REUSE["data"][0]: (T.PTR_TO_PACKET, 8),
        _REUSE["data_end"][0]: (T.PTR_TO_PACKET_END, 8),
        _REUSE["hash"][0]: (T.SCALAR, 4),
        _REUSE["sk"][0]: (T.PTR_TO_SOCKET, 8),
        _REUSE["migrating_sk"][0]: (T.PTR_TO_SOCK_COMMON | T.MAYBE_NULL, 8),
    }
    if off in exact:
        t, sz = exact[off]
        return CtxResult(t) if size == sz else None
    if _in(off, _REUSE["eth_protocol"]):
        if size < 2:
            return None
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    if any(_in(off, _REUSE[n]) for n in ("ip_protocol", "bind_inany", "len")):
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    return None


def _sk_lookup(off: int, size: int, write: bool) -> CtxResult | None:
    if off < 0 or off >= 72 or off % size or write:
        return None
    if off == 0:
        return CtxResult(T.PTR_TO_SOCKET | T.MAYBE_NULL) if size == 8 else None
    names = ("family", "protocol", "remote_ip4", "local_ip4", "remote_ip6", "local_ip6")
    if any(_in(off, _SKL[n]) for n in (*names, "local_port", "ingress_ifindex")):
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    if _in(off, _SKL["remote_port"]):
        if size == 4:
            return OK
        return CtxResult(T.SCALAR, 2) if _narrow_ok(off, size, 2) else None
    if 38 <= off < 40:  # zero padding after remote_port
        return CtxResult(T.SCALAR, 2) if _narrow_ok(off, size, 2) else None
    return None


def _sysctl(off: int, size: int, write: bool) -> CtxResult | None:
    if off < 0 or off + size > 8 or off % size:
        return None
    if off < 4:  # write
        if write:
            return None
        return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None
    if write:
        return OK if size == 4 else None
    return CtxResult(T.SCALAR, 4) if _narrow_ok(off, size, 4) else None


def _sockopt(attach: int | None, off: int, size: int, write: bool) -> CtxResult | None:
    if off < 0 or off >= 40 or off % size:
        return None
    so = _SOCKOPT
    if write:
        if off == so["retval"][0]:
            return OK if size == 4 and attach == A.CGROUP_GETSOCKOPT else None
        if off in (so["optname"][0], so["level"][0]):
            return OK if size == 4 and attach == A.CGROUP_SETSOCKOPT else None
        if off == so["optlen"][0]:
            return OK if size == 4 else None
        return None
    ptrs = {"sk": T.PTR_TO_SOCKET, "optval": T.PTR_TO_PACKET, "optval_end": T.PTR_TO_PACKET_END}
    for name, t in ptrs.items():
        if _in(off, so[name]):
            return CtxResult(t) if size == 8 else None
    if _in(off, so["retval"]):
        return OK if size == 4 and attach == A.CGROUP_GETSOCKOPT else None
    return OK if size == 4 else None


def ctx_access(
    prog_type: int, attach_type: int | None, off: int, size: int, write: bool, ldsx: bool = False
) -> CtxResult | None:
    """The verdict of the program type's ``is_valid_access`` for a ``size``-byte access
    at ``off``: None if refused, else what a load gives."""
    rule = _SKB_RULES.get(prog_type)
    if rule is not None:
        return rule(off, size, write, ldsx)
    if prog_type == P.XDP:
        return _xdp(attach_type, off, size, write, ldsx)
    if prog_type == P.CGROUP_SOCK:
        return _cgroup_sock(attach_type, off, size, write)
    if prog_type == P.CGROUP_SOCK_ADDR:
        return _sock_addr(attach_type, off, size, write)
    if prog_type == P.SOCK_OPS:
        return _sock_ops(off, size, write)
    if prog_type == P.SK_MSG:
        return _sk_msg(off, size, write)
    if prog_type == P.SK_REUSEPORT:
        return _sk_reuseport(off, size, write)
    if prog_type == P.SK_LOOKUP:
        return _sk_lookup(off, size, write)
    if prog_type == P.CGROUP_SYSCTL:
        return _sysctl(off, size, write)
    if prog_type == P.CGROUP_SOCKOPT:
        return _sockopt(attach_type, off, size, write)
    return None


def flow_keys_size() -> int:
    return STRUCT_SIZE["bpf_flow_keys"]
