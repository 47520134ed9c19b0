"""BPF_PROG_TEST_RUN in the simulator, with the semantics of Linux 6.18's
``net/bpf/test_run.c``: the same refusals (with the same errno), the same packet and
context handed to the program, the same ``data_out``/``ctx_out`` afterwards.

Models ``bpf_prog_test_run_skb`` (SOCKET_FILTER, SCHED_CLS, SCHED_ACT, CGROUP_SKB,
LWT_IN, LWT_OUT, LWT_XMIT) and ``bpf_prog_test_run_xdp``.  Program types the kernel
has no test_run for are refused with ENOTSUPP (524), as the kernel does; types the
kernel can test-run but netbpf does not model yet (flow dissector, sk_lookup, tracing,
syscall, netfilter) raise :class:`~netbpf.errors.NotSupportedError`.

The skb family, step by step (the order decides which errno wins):

1. data_in shorter than ETH_HLEN (14) or longer than 4096 - 64 - 320 = 3712 bytes:
   EINVAL.  ctx_in longer than ``struct __sk_buff`` (192) with a non-zero byte past
   it, or longer than a page: E2BIG.  A shorter ctx_in is zero-extended; an empty one
   (b"") is an all-zero context.  Without ctx_in there is no context at all: nothing
   is converted, ``wire_len`` reads 0 and there is no ctx_out (as the kernel does
   when asked for no ctx_out, which is what the kernel backend asks then).
2. The buffer: 64 bytes of headroom, the data, 320 bytes of shared info.
   ``ctx_in->ifindex`` > 1 names the device (ENODEV if there is none; the simulator
   knows only ``lo`` unless given more), else loopback.
3. ``eth_type_trans``: pkt_type from the destination MAC (on ``lo``, whose address and
   broadcast address are all zero, any multicast MAC -- ff:ff:ff:ff:ff:ff included --
   is PACKET_MULTICAST and any other non-zero MAC PACKET_OTHERHOST), protocol from the
   EtherType (0x0001/0x0004 for 802.3 lengths), the Ethernet header pulled.
4. IPv4 / IPv6 EtherType with fewer than 20 / 40 bytes after the Ethernet header:
   EINVAL.  Otherwise the dummy socket gets family AF_INET/AF_INET6, its local address
   from the packet's source and its remote address from the destination.
5. SCHED_CLS/ACT get the Ethernet header back (``skb->data`` at the MAC header); the
   other types see data from the network header.
6. ctx_in: only mark, priority, ingress_ifindex, ifindex, cb[], tstamp, wire_len,
   gso_segs, gso_size and hwtstamp may be non-zero (EINVAL); ``wire_len`` must be 0 or
   within [skb->len, 65536], ``gso_segs`` at most 65535.
7. The program runs ``repeat`` times (0 counts as 1) on the same skb: changes persist
   from one run to the next, ``retval`` is the last run's r0 (low 32 bits).
8. For the types that saw data from the network header, 14 zero bytes are pushed in
   front: data_out starts with an all-zero Ethernet header whatever data_in had there.
   ctx_out is ctx_in with mark, priority, ingress_ifindex, ifindex, tstamp, cb,
   wire_len, gso_segs and hwtstamp written back (gso_size is echoed from ctx_in).

XDP:

1. Programs attached to a devmap or cpumap: EINVAL.  ctx_in (24-byte xdp_md):
   ``data_meta`` must be 0, ``data_end`` at most len(data_in), ``data`` (the metadata
   length) at most ``data_end``, a multiple of 4 and at most 216 (256 minus the
   40-byte xdp_frame), ``egress_ifindex`` 0: else EINVAL.  Fewer than 14 bytes after
   the metadata: EINVAL.
2. The frame: 256 bytes of headroom before ``data``, the metadata (the first
   ``ctx_in->data`` bytes of data_in) right before it, then the linear data: up to
   ``ctx_in->data_end`` bytes of data_in (all of it without ctx_in), at most 3520 (plus
   the metadata length).  The rest goes into 4096-byte fragments, at most 17 (ENOMEM).
3. ``ingress_ifindex``/``rx_queue_index`` pick the RX queue: an ifindex that does not
   exist is ENODEV, a queue the device does not have (or a queue without an ifindex)
   EINVAL; without them the queue is loopback's queue 0.
4. data_out is the metadata, the linear data and the fragments; ctx_out is ctx_in with
   ``data`` = metadata length and ``data_end`` = metadata + linear length (returned
   only when ctx_in was given).  Beware: an all-zero (or empty) ctx_in has
   ``data_end`` 0, so the whole packet goes into fragments and the program sees an
   empty linear area -- that is what the kernel does.

Both: ``repeat`` runs reuse the same buffer and context, so what one run writes the
next one sees; the kernel does the same.  ``duration`` is the measured mean wall time
of one run in the simulator.  The RunEnv's ``state`` carries ``prog_type``, the
buffer model (``"skb"``: :class:`~netbpf.hooks.skb.SkBuff`, ``"xdp"``:
:class:`~netbpf.hooks.xdp.XdpBuff`), ``ctx_addr`` and ``devices`` for helpers.
"""

from __future__ import annotations

import errno as _errno
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from netbpf.backend import TestRunResult
from netbpf.errors import NotSupportedError, TestRunError
from netbpf.hooks.context import NetDevice, default_devices
from netbpf.hooks.skb import (
    AF_INET,
    AF_INET6,
    ETH_HLEN,
    ETH_P_IP,
    ETH_P_IPV6,
    GSO_LEGACY_MAX_SIZE,
    GSO_MAX_SEGS,
    LOOPBACK,
    QDISC_CB_PRIV_LEN,
    SKB_MAX_TEST_DATA,
    SKB_PROG_TYPES,
    DummySock,
    SkBuff,
    lookup_device,
    map_skb_context,
)
from netbpf.hooks.xdp import (
    MAX_SKB_FRAGS,
    PAGE_SIZE,
    XDP_METADATA_MAX,
    XDP_PACKET_HEADROOM,
    XDP_TAILROOM,
    XdpBuff,
    XdpRxQueue,
    map_xdp_context,
)
from netbpf.uapi import CTX_LAYOUTS, AttachType, ProgramType
from netbpf.vm.env import HelperFn, RunEnv
from netbpf.vm.memory import AddressSpace

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.vm.engine import Executable

__all__ = [
    "ENOTSUPP",
    "LD_ABS_PROG_TYPES",
    "TEST_RUN_KERNEL_TYPES",
    "TEST_RUN_SIM_TYPES",
    "prog_test_run",
    "prog_test_run_skb",
    "prog_test_run_xdp",
]

#: the kernel-internal errno bpf() returns for a program type without test_run
ENOTSUPP = 524
U32_MAX = 0xFFFF_FFFF

#: program types whose BPF_PROG_TEST_RUN exists on Linux 6.18 (their prog_ops has a
#: test_run); the others are refused with ENOTSUPP -- LWT_SEG6LOCAL included
TEST_RUN_KERNEL_TYPES = frozenset(
    {
        *SKB_PROG_TYPES,
        ProgramType.XDP,
        ProgramType.FLOW_DISSECTOR,
        ProgramType.SK_LOOKUP,
        ProgramType.TRACING,
        ProgramType.RAW_TRACEPOINT,
        ProgramType.STRUCT_OPS,
        ProgramType.SYSCALL,
        *([ProgramType.NETFILTER] if "NETFILTER" in ProgramType.__members__ else []),
    }
)
#: program types the simulator's test_run models
TEST_RUN_SIM_TYPES = frozenset({*SKB_PROG_TYPES, ProgramType.XDP})
#: program types the verifier lets use LD_ABS/LD_IND (may_access_skb)
LD_ABS_PROG_TYPES = frozenset(
    {ProgramType.SOCKET_FILTER, ProgramType.SCHED_CLS, ProgramType.SCHED_ACT}
)
#: SCHED_CLS/ACT see the Ethernet header; the rest of the skb family starts at L3
_L2_TYPES = frozenset({ProgramType.SCHED_CLS, ProgramType.SCHED_ACT})

_SKB_CTX_SIZE = CTX_LAYOUTS["__sk_buff"][0]
_XDP_CTX_SIZE = CTX_LAYOUTS["xdp_md"][0]
_SKB = {name: (off, size) for name, off, size, _ in CTX_LAYOUTS["__sk_buff"][1]}
_XDP = {name: (off, size) for name, off, size, _ in CTX_LAYOUTS["xdp_md"][1]}
#: the __sk_buff fields ctx_in may set (convert___skb_to_skb); every other byte must be 0
_SKB_CTX_IN_FIELDS = (
    "mark", "priority", "ingress_ifindex", "ifindex", "cb", "tstamp", "wire_len",
    "gso_segs", "gso_size", "hwtstamp",
)  # fmt: skip
_IPV4_HLEN = 20
#: HH_DATA_MOD: the kernel grows too-small headroom in multiples of 16
_HH_DATA_MOD = 16
_IPV6_HLEN = 40


def _n(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


def _u(buf: bytes, struct: dict[str, tuple[int, int]], name: str) -> int:
    off, size = struct[name]
    return int.from_bytes(buf[off : off + size], "little")


def _put(buf: bytearray, struct: dict[str, tuple[int, int]], name: str, value: int) -> None:
    off, size = struct[name]
    buf[off : off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _run_state(state: dict[str, Any] | None, hook: dict[str, Any]) -> dict[str, Any]:
    """The RunEnv's state: the caller's dict (if any) with the hook's entries."""
    if state is None:
        return hook
    state.update(hook)
    return state


def _check_repeat(repeat: object) -> int:
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= U32_MAX:
        raise TestRunError(f"repeat must be an integer in 0..2**32-1, not {repeat!r}")
    return max(repeat, 1)


def _ctx_init(ctx_in: bytes | None, max_size: int, struct: str) -> bytearray | None:
    """``bpf_ctx_init``: copy ctx_in into a zeroed struct; bytes past the struct must be
    zero (E2BIG), and ctx_in may not exceed a page (E2BIG)."""
    if ctx_in is None:
        return None
    if len(ctx_in) > PAGE_SIZE:
        raise TestRunError(
            f"ctx_in is {_n(len(ctx_in))}, more than a page ({PAGE_SIZE})", errno=_errno.E2BIG
        )
    tail = ctx_in[max_size:]
    if any(tail):
        first = max_size + next(i for i, b in enumerate(tail) if b)
        raise TestRunError(
            f"ctx_in is {_n(len(ctx_in))} and byte {first}, past struct {struct} "
            f"({max_size} bytes) is not zero",
            errno=_errno.E2BIG,
        )
    ctx = bytearray(max_size)
    n = min(len(ctx_in), max_size)
    ctx[:n] = ctx_in[:n]
    return ctx


def _run(exe: Executable, env: RunEnv, ctx_addr: int, repeat: int) -> tuple[int, int]:
    """Run ``repeat`` times on the same state; (retval of the last run, mean ns/run)."""
    r0 = 0
    start = time.perf_counter_ns()
    for _ in range(repeat):
        env.ktime_ns = time.monotonic_ns()
        r0 = exe.run(env, ctx_addr)
    spent = (time.perf_counter_ns() - start) // repeat
    return r0 & U32_MAX, min(spent, U32_MAX)


def _helpers(
    prog_type: ProgramType, helpers: Mapping[int, HelperFn] | None
) -> Mapping[int, HelperFn]:
    if helpers is not None:
        return helpers
    # Importing the package registers every helper module into the default registry.
    from netbpf.helpers import DEFAULT_REGISTRY

    return DEFAULT_REGISTRY.for_prog_type(prog_type)


# --------------------------------------------------------------------------- skb family


def _check_skb_ctx(ctx: bytes) -> None:
    """The zero-byte ranges of ``convert___skb_to_skb``: every byte outside the fields
    test_run consumes must be 0."""
    allowed = bytearray(len(ctx))
    for name in _SKB_CTX_IN_FIELDS:
        off, size = _SKB[name]
        allowed[off : off + size] = b"\x01" * size
    for i, b in enumerate(ctx):
        if b and not allowed[i]:
            field = next(
                (n for n, (o, s) in _SKB.items() if o <= i < o + s), f"padding at offset {i}"
            )
            raise TestRunError(
                f"ctx_in: __sk_buff->{field} (byte {i}) must be zero; only "
                f"{', '.join(_SKB_CTX_IN_FIELDS)} may be set",
                errno=_errno.EINVAL,
            )


def prog_test_run_skb(
    exe: Executable,
    prog_type: ProgramType,
    *,
    data_in: bytes,
    ctx_in: bytes | None = None,
    repeat: int = 1,
    devices: Mapping[int, NetDevice] | None = None,
    helpers: Mapping[int, HelperFn] | None = None,
    mem: AddressSpace | None = None,
    state: dict[str, Any] | None = None,
) -> TestRunResult:
    """``bpf_prog_test_run_skb`` (see the module docstring for the exact steps)."""
    if prog_type not in SKB_PROG_TYPES:
        raise TestRunError(f"{prog_type.name} is not an skb program type", errno=_errno.EINVAL)
    n_runs = _check_repeat(repeat)
    data_in = bytes(data_in)
    size = len(data_in)
    if size < ETH_HLEN:
        raise TestRunError(
            f"data_in is {_n(size)}, shorter than an Ethernet header ({ETH_HLEN})",
            errno=_errno.EINVAL,
        )
    if size > SKB_MAX_TEST_DATA:
        raise TestRunError(
            f"data_in is {_n(size)}, more than the {SKB_MAX_TEST_DATA} an skb test run "
            "can hold in one page",
            errno=_errno.EINVAL,
        )
    ctx = _ctx_init(ctx_in, _SKB_CTX_SIZE, "__sk_buff")
    devs = default_devices() if devices is None else devices
    is_l2 = prog_type in _L2_TYPES

    skb = SkBuff.for_test_run(data_in)
    sk = DummySock()
    skb.sk = sk
    dev = LOOPBACK
    ifindex = _u(ctx, _SKB, "ifindex") if ctx is not None else 0
    if ifindex > 1:
        found = lookup_device(devs, ifindex)
        if found is None:
            raise TestRunError(
                f"ctx_in->ifindex {ifindex}: no such device in the namespace",
                errno=_errno.ENODEV,
            )
        dev = found
    skb.protocol = skb.eth_type_trans(dev)
    skb.network_header = skb.data
    net = skb.head[skb.data : skb.tail]
    if skb.protocol == ETH_P_IP:
        if len(net) < _IPV4_HLEN:
            raise TestRunError(
                f"IPv4 EtherType with {_n(len(net))} after the Ethernet header, fewer "
                f"than an IPv4 header ({_IPV4_HLEN})",
                errno=_errno.EINVAL,
            )
        sk.family = AF_INET
        sk.rcv_saddr = bytes(net[12:16])
        sk.daddr = bytes(net[16:20])
    elif skb.protocol == ETH_P_IPV6:
        if len(net) < _IPV6_HLEN:
            raise TestRunError(
                f"IPv6 EtherType with {_n(len(net))} after the Ethernet header, fewer "
                f"than an IPv6 header ({_IPV6_HLEN})",
                errno=_errno.EINVAL,
            )
        sk.family = AF_INET6
        sk.v6_rcv_saddr = bytes(net[8:24])
        sk.v6_daddr = bytes(net[24:40])
    if is_l2:
        skb.push(ETH_HLEN)

    if ctx is not None:
        _ctx_to_skb(ctx, skb)

    mem = AddressSpace() if mem is None else mem
    ctx_addr, _table = map_skb_context(skb, prog_type, mem)
    env = RunEnv(
        mem=mem,
        helpers=_helpers(prog_type, helpers),
        skb_load=skb.load_bytes_abs if prog_type in LD_ABS_PROG_TYPES else None,
        state=_run_state(
            state, {"prog_type": prog_type, "skb": skb, "ctx_addr": ctx_addr, "devices": devs}
        ),
    )
    retval, duration = _run(exe, env, ctx_addr, n_runs)

    if not is_l2:
        if skb.headroom < ETH_HLEN:
            skb.expand_head((ETH_HLEN - skb.headroom + _HH_DATA_MOD - 1) & ~(_HH_DATA_MOD - 1))
        skb.push(ETH_HLEN)
        skb.head[skb.data : skb.data + ETH_HLEN] = bytes(ETH_HLEN)

    ctx_out: bytes | None = None
    if ctx is not None:
        _skb_to_ctx(skb, ctx)
        ctx_out = bytes(ctx)
    return TestRunResult(retval, skb.bytes(), ctx_out, duration)


def _ctx_to_skb(ctx: bytearray, skb: SkBuff) -> None:
    """``convert___skb_to_skb``: check the zero ranges, then take the settable fields."""
    _check_skb_ctx(ctx)
    skb.mark = _u(ctx, _SKB, "mark")
    skb.priority = _u(ctx, _SKB, "priority")
    skb.skb_iif = _u(ctx, _SKB, "ingress_ifindex")
    skb.tstamp = _u(ctx, _SKB, "tstamp")
    cb_off, _ = _SKB["cb"]
    skb.cb.data[:] = ctx[cb_off : cb_off + QDISC_CB_PRIV_LEN]
    wire_len = _u(ctx, _SKB, "wire_len")
    if wire_len == 0:
        skb.cb.pkt_len = skb.len
    elif wire_len < skb.len or wire_len > GSO_LEGACY_MAX_SIZE:
        raise TestRunError(
            f"ctx_in->wire_len {wire_len} must be 0 or in [{skb.len}, {GSO_LEGACY_MAX_SIZE}] "
            f"(skb->len is {skb.len})",
            errno=_errno.EINVAL,
        )
    else:
        skb.cb.pkt_len = wire_len
    gso_segs = _u(ctx, _SKB, "gso_segs")
    if gso_segs > GSO_MAX_SEGS:
        raise TestRunError(
            f"ctx_in->gso_segs {gso_segs} is more than {GSO_MAX_SEGS}", errno=_errno.EINVAL
        )
    skb.gso_segs = gso_segs
    skb.gso_size = _u(ctx, _SKB, "gso_size")
    skb.hwtstamp = _u(ctx, _SKB, "hwtstamp")


def _skb_to_ctx(skb: SkBuff, ctx: bytearray) -> None:
    """``convert_skb_to___skb``: write back what the program may have changed (the
    rest of ctx_in, gso_size included, is returned as it came)."""
    cb_off, _ = _SKB["cb"]
    _put(ctx, _SKB, "mark", skb.mark)
    _put(ctx, _SKB, "priority", skb.priority)
    _put(ctx, _SKB, "ingress_ifindex", skb.skb_iif)
    _put(ctx, _SKB, "ifindex", skb.dev.ifindex if skb.dev is not None else 0)
    _put(ctx, _SKB, "tstamp", skb.tstamp)
    ctx[cb_off : cb_off + QDISC_CB_PRIV_LEN] = skb.cb.data
    _put(ctx, _SKB, "wire_len", skb.cb.pkt_len)
    _put(ctx, _SKB, "gso_segs", skb.gso_segs)
    _put(ctx, _SKB, "hwtstamp", skb.hwtstamp)


# --------------------------------------------------------------------------- XDP


def prog_test_run_xdp(
    exe: Executable,
    *,
    attach_type: AttachType | None = None,
    data_in: bytes,
    ctx_in: bytes | None = None,
    repeat: int = 1,
    devices: Mapping[int, NetDevice] | None = None,
    helpers: Mapping[int, HelperFn] | None = None,
    mem: AddressSpace | None = None,
    state: dict[str, Any] | None = None,
) -> TestRunResult:
    """``bpf_prog_test_run_xdp`` without live frames (see the module docstring)."""
    if attach_type in (AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP):
        raise TestRunError(
            f"XDP programs for {attach_type.name} cannot be test-run", errno=_errno.EINVAL
        )
    n_runs = _check_repeat(repeat)
    data_in = bytes(data_in)
    size = len(data_in)
    ctx = _ctx_init(ctx_in, _XDP_CTX_SIZE, "xdp_md")
    devs = default_devices() if devices is None else devices

    headroom = XDP_PACKET_HEADROOM
    linear_sz = size
    meta = 0
    if ctx is not None:
        c_data = _u(ctx, _XDP, "data")
        c_end = _u(ctx, _XDP, "data_end")
        c_meta = _u(ctx, _XDP, "data_meta")
        if c_meta:
            raise TestRunError(f"ctx_in->data_meta must be 0, not {c_meta}", errno=_errno.EINVAL)
        if c_end > size:
            raise TestRunError(
                f"ctx_in->data_end {c_end} is past the end of the {size}-byte data_in",
                errno=_errno.EINVAL,
            )
        if c_data > c_end:
            raise TestRunError(
                f"ctx_in->data {c_data} (the metadata length) is past ctx_in->data_end {c_end}",
                errno=_errno.EINVAL,
            )
        if c_data % 4 or c_data > XDP_METADATA_MAX:
            raise TestRunError(
                f"ctx_in->data {c_data}: the metadata length must be a multiple of 4 and at "
                f"most {XDP_METADATA_MAX}",
                errno=_errno.EINVAL,
            )
        meta = c_data
        headroom -= meta
        linear_sz = c_end
    max_linear = PAGE_SIZE - headroom - XDP_TAILROOM
    linear_sz = min(linear_sz, max_linear)
    if size - meta < ETH_HLEN:
        raise TestRunError(
            f"data_in has {_n(size - meta)} after {_n(meta)} of metadata, fewer than an "
            f"Ethernet header ({ETH_HLEN})",
            errno=_errno.EINVAL,
        )

    frame = bytearray(PAGE_SIZE)
    frame[headroom : headroom + linear_sz] = data_in[:linear_sz]
    xdp = XdpBuff(frame, headroom, headroom, headroom + linear_sz)

    # xdp_convert_md_to_buff
    if ctx is not None:
        if _u(ctx, _XDP, "egress_ifindex"):
            raise TestRunError("ctx_in->egress_ifindex must be 0", errno=_errno.EINVAL)
        ifindex = _u(ctx, _XDP, "ingress_ifindex")
        queue = _u(ctx, _XDP, "rx_queue_index")
        if not ifindex and queue:
            raise TestRunError(
                f"ctx_in->rx_queue_index {queue} without an ingress_ifindex",
                errno=_errno.EINVAL,
            )
        if ifindex:
            dev = lookup_device(devs, ifindex)
            if dev is None:
                raise TestRunError(
                    f"ctx_in->ingress_ifindex {ifindex}: no such device in the namespace",
                    errno=_errno.ENODEV,
                )
            if queue >= dev.num_rx_queues:
                raise TestRunError(
                    f"ctx_in->rx_queue_index {queue}: device {dev.name} has "
                    f"{dev.num_rx_queues} RX queue(s)",
                    errno=_errno.EINVAL,
                )
            xdp.rxq = XdpRxQueue(dev, queue)
        xdp.data = xdp.data_meta + meta

    rest = data_in[linear_sz:]
    while rest:
        if len(xdp.frags) == MAX_SKB_FRAGS:
            raise TestRunError(
                f"data_in is {_n(size)}: {_n(linear_sz)} in the linear area plus more than "
                f"{MAX_SKB_FRAGS} fragments of {PAGE_SIZE}",
                errno=_errno.ENOMEM,
            )
        xdp.frags.append(bytearray(rest[:PAGE_SIZE]))
        rest = rest[PAGE_SIZE:]

    mem = AddressSpace() if mem is None else mem
    ctx_addr, _table = map_xdp_context(xdp, attach_type, mem)
    env = RunEnv(
        mem=mem,
        helpers=_helpers(ProgramType.XDP, helpers),
        state=_run_state(
            state,
            {"prog_type": ProgramType.XDP, "xdp": xdp, "ctx_addr": ctx_addr, "devices": devs},
        ),
    )
    retval, duration = _run(exe, env, ctx_addr, n_runs)

    ctx_out: bytes | None = None
    if ctx is not None:
        _put(ctx, _XDP, "data", xdp.data - xdp.data_meta)
        _put(ctx, _XDP, "data_end", xdp.data_end - xdp.data_meta)
        ctx_out = bytes(ctx)
    return TestRunResult(retval, xdp.bytes_out(), ctx_out, duration)


# --------------------------------------------------------------------------- dispatch


def prog_test_run(
    exe: Executable,
    prog_type: ProgramType,
    *,
    attach_type: AttachType | None = None,
    data_in: bytes = b"",
    ctx_in: bytes | None = None,
    repeat: int = 1,
    devices: Mapping[int, NetDevice] | None = None,
    helpers: Mapping[int, HelperFn] | None = None,
    mem: AddressSpace | None = None,
    state: dict[str, Any] | None = None,
) -> TestRunResult:
    """BPF_PROG_TEST_RUN for a loaded program of ``prog_type``.

    ``devices`` is the network namespace (ifindex -> :class:`NetDevice`, default only
    ``lo``); ``helpers`` overrides the program type's helper table; ``mem`` is the
    address space to run in (default: a fresh one per run).  With a long-lived
    ``mem`` -- the SimBackend's, where its maps live -- the run's packet, context and
    stack regions are added to it and stay there: the caller unmaps them
    (:meth:`netbpf.sim.memory.SimAddressSpace.run_scope`).  ``state`` (additive, for
    the helpers): a dict used as the run environment's ``state`` -- give it the
    simulator-defined values helpers read (``cgroup_path``, ``socket_cookie``...; see
    :mod:`netbpf.helpers.skb` and :mod:`netbpf.helpers.misc`) and read back what the
    run recorded (``redirect``, ``clone_redirects``).  Raises
    :class:`TestRunError` with the kernel's errno where the kernel refuses, and
    :class:`~netbpf.errors.ProgramFault` when the program breaks the sandbox."""
    if prog_type == ProgramType.XDP:
        return prog_test_run_xdp(
            exe,
            attach_type=attach_type,
            data_in=data_in,
            ctx_in=ctx_in,
            repeat=repeat,
            devices=devices,
            helpers=helpers,
            mem=mem,
            state=state,
        )
    if prog_type in SKB_PROG_TYPES:
        return prog_test_run_skb(
            exe,
            prog_type,
            data_in=data_in,
            ctx_in=ctx_in,
            repeat=repeat,
            devices=devices,
            helpers=helpers,
            mem=mem,
            state=state,
        )
    if prog_type in TEST_RUN_KERNEL_TYPES:
        raise NotSupportedError(
            f"BPF_PROG_TEST_RUN for {prog_type.name} programs in the simulator",
            "the simulator's test_run models XDP and the skb family",
        )
    raise TestRunError(
        f"{prog_type.name} programs have no BPF_PROG_TEST_RUN (the kernel answers ENOTSUPP)",
        errno=ENOTSUPP,
    )
