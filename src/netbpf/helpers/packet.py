"""What the packet helpers share: finding the packet a run works on, invalidating
packet pointers, the kernel's "make writable" and "make headroom" steps, and the
redirect helpers that exist for both XDP and tc (``bpf_redirect``,
``bpf_redirect_peer``, ``bpf_redirect_neigh``).

The packet comes from the run environment a hook built (:mod:`netbpf.hooks.testrun`):
``env.state["skb"]`` (a :class:`~netbpf.hooks.skb.SkBuff`) for the skb family,
``env.state["xdp"]`` (an :class:`~netbpf.hooks.xdp.XdpBuff`) for XDP.  A helper called
on an environment without the packet it needs raises
:class:`~netbpf.errors.NotSupportedError` (the engine reports it as a ProgramFault at
the call): the verifier would have refused the call for that program type.

Packet pointers: the kernel's verifier forgets every packet pointer a program holds
after a call to a helper that may move or resize the packet
(``bpf_helper_changes_pkt_data``), whatever the helper then did.  The simulator does
the same at run time: :func:`invalidate_packet` moves the packet to a new address
range, so an old pointer faults, and ``ctx->data``/``data_end`` reloaded from the
context give the new addresses.

Redirects are recorded, not performed: ``env.state["redirect"]`` holds a
:class:`DeviceRedirect` (by ifindex) after ``bpf_redirect``/``redirect_peer``/
``redirect_neigh`` -- the same key ``bpf_redirect_map`` fills with its
:class:`~netbpf.helpers.maps.Redirect` -- and the helpers return what the kernel
returns (TC_ACT_REDIRECT, XDP_REDIRECT; TC_ACT_SHOT / XDP_ABORTED for bad flags).
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass

from netbpf.errors import NotSupportedError
from netbpf.helpers.registry import DEFAULT_REGISTRY
from netbpf.hooks.skb import NET_SKB_PAD, SkBuff
from netbpf.hooks.xdp import XdpBuff
from netbpf.uapi import ProgramType
from netbpf.vm.env import RunEnv

__all__ = [
    "BPF_F_INGRESS",
    "ENOTSUPP",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "XDP_ABORTED",
    "XDP_REDIRECT",
    "DeviceRedirect",
    "invalidate_packet",
    "redirect",
    "redirect_neigh",
    "redirect_peer",
    "signed",
    "skb_cow",
    "skb_of",
    "try_make_writable",
    "xdp_of",
]

M32 = 0xFFFF_FFFF
M64 = 0xFFFF_FFFF_FFFF_FFFF
#: the kernel-internal "not supported" errno (524) several helpers return
ENOTSUPP = 524

TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7
XDP_ABORTED = 0
XDP_REDIRECT = 4

BPF_F_INGRESS = 1
#: kernel-internal redirect flags (filter.c): what redirect_neigh/peer record
BPF_F_NEIGH = 1 << 1
BPF_F_PEER = 1 << 2
BPF_F_NEXTHOP = 1 << 3
#: sizeof(struct bpf_redir_neigh)
_REDIR_NEIGH_SIZE = 20

_TC = (ProgramType.SCHED_CLS, ProgramType.SCHED_ACT)


def signed(v: int) -> int:
    """A helper's (possibly negative) result as the 64-bit register value."""
    return v & M64


def skb_of(env: RunEnv) -> SkBuff:
    skb = env.state.get("skb")
    if not isinstance(skb, SkBuff):
        raise NotSupportedError(
            "an skb helper without an skb", "this run environment has no env.state['skb']"
        )
    return skb


def xdp_of(env: RunEnv) -> XdpBuff:
    xdp = env.state.get("xdp")
    if not isinstance(xdp, XdpBuff):
        raise NotSupportedError(
            "an XDP helper without an xdp_buff", "this run environment has no env.state['xdp']"
        )
    return xdp


def invalidate_packet(env: RunEnv) -> None:
    """Move the run's packet to a new address range (see the module docstring)."""
    skb = env.state.get("skb")
    if isinstance(skb, SkBuff):
        skb.remap()
    xdp = env.state.get("xdp")
    if isinstance(xdp, XdpBuff):
        xdp.remap(env.mem)


def try_make_writable(skb: SkBuff, write_len: int) -> int:
    """``skb_ensure_writable``: 0, or -ENOMEM when the packet is shorter than
    ``write_len`` (``pskb_may_pull`` fails).  Test-run skbs are linear and never
    cloned, so nothing else can fail."""
    if write_len > skb.len:
        return -_errno.ENOMEM
    return 0


def skb_cow(skb: SkBuff, headroom: int) -> int:
    """``skb_cow``/``skb_cow_head``: make sure ``headroom`` bytes of headroom exist,
    reallocating the head (growing it by the shortfall rounded up to NET_SKB_PAD)."""
    if headroom > skb.headroom:
        delta = headroom - skb.headroom
        skb.expand_head((delta + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD, 0)
    return 0


@dataclass(frozen=True)
class DeviceRedirect:
    """A redirect to a device by ifindex: ``bpf_redirect`` (``ingress``: BPF_F_INGRESS,
    tc only), ``bpf_redirect_peer`` (``peer``: the veth/netkit peer's ingress) or
    ``bpf_redirect_neigh`` (``neigh``: through the neighbour subsystem, with the
    next hop ``nexthop`` -- the raw struct bpf_redir_neigh -- when given)."""

    ifindex: int
    ingress: bool = False
    peer: bool = False
    neigh: bool = False
    nexthop: bytes | None = None


@DEFAULT_REGISTRY.helper("redirect", prog_types=[*_TC, ProgramType.LWT_XMIT, ProgramType.XDP])
def redirect(env: RunEnv, ifindex: int, flags: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_redirect(ifindex, flags)``.  tc/LWT: any flag but BPF_F_INGRESS returns
    TC_ACT_SHOT, else TC_ACT_REDIRECT.  XDP: any flag returns XDP_ABORTED, else
    XDP_REDIRECT.  The target is recorded; whether the device exists is only checked
    when the redirect is carried out (after the program), as in the kernel."""
    ifindex &= M32
    if env.state.get("prog_type") == ProgramType.XDP:
        if flags:
            return XDP_ABORTED
        env.state["redirect"] = DeviceRedirect(ifindex)
        return XDP_REDIRECT
    if flags & ~BPF_F_INGRESS:
        return TC_ACT_SHOT
    env.state["redirect"] = DeviceRedirect(ifindex, ingress=bool(flags & BPF_F_INGRESS))
    return TC_ACT_REDIRECT


@DEFAULT_REGISTRY.helper("redirect_peer", prog_types=_TC)
def redirect_peer(env: RunEnv, ifindex: int, flags: int, r3: int, r4: int, r5: int) -> int:
    """``bpf_redirect_peer(ifindex, flags)``: flags must be 0 (else TC_ACT_SHOT)."""
    if flags:
        return TC_ACT_SHOT
    env.state["redirect"] = DeviceRedirect(ifindex & M32, peer=True)
    return TC_ACT_REDIRECT


@DEFAULT_REGISTRY.helper("redirect_neigh", prog_types=_TC)
def redirect_neigh(env: RunEnv, ifindex: int, params: int, plen: int, flags: int, r5: int) -> int:
    """``bpf_redirect_neigh(ifindex, params, plen, flags)``: flags must be 0 and
    ``plen`` 0 or at least sizeof(struct bpf_redir_neigh) (else TC_ACT_SHOT)."""
    # ``int plen`` compared with a size_t: a negative length counts as huge
    plen_s = plen & M32
    if (plen_s and plen_s < _REDIR_NEIGH_SIZE) or flags:
        return TC_ACT_SHOT
    nh = env.mem.read(params, _REDIR_NEIGH_SIZE) if plen_s else None
    env.state["redirect"] = DeviceRedirect(ifindex & M32, neigh=True, nexthop=nh)
    return TC_ACT_REDIRECT
