"""The differential corpus: our own C programs (``tests/progs/corpus_*.c``), each run on
a sequence of packets in the simulator and in the running kernel.

Every program is a small realistic networking program (a DDoS dropper, an L4 load
balancer, an LPM ACL, VLAN tagging, IPIP and SIIT translation, a ring-buffer sampler,
a rate meter, a tail-call pipeline, a socket filter, a cgroup filter, redirect maps,
socket maps, maps of maps, queues, callbacks, global data...).  A :class:`Case` says
how to load it (knobs set on the spec), how to pre-populate its maps (the same
logical contents on both backends), which runs to make (program, packet from
:mod:`corpus_packets`, optional ``__sk_buff`` context), and a Python model of what
must come out.

``test_corpus_sim`` (never skips) runs the simulator and checks it against the
model: every run's retval, data_out and chosen ctx_out fields, every map's full
contents decoded through BTF (per-CPU maps: all CPUs), every ring buffer record,
queue/stack element and perf sample.  ``test_corpus_kernel`` runs the same sequence
on the kernel (pinned to CPU 0, where the simulator runs; skipped with the probe's
reason where bpf() is unusable) and on the simulator and asserts the observations are
equal -- retvals, data_out, whole ctx_out, maps, records -- and that the kernel
agrees with the model too, so the models are themselves checked against the kernel.

Between runs a case may act from Python (:class:`Step`: rewire a PROG_ARRAY or a
map of maps, change a service), as a control plane would.  Where the model cannot
predict exact contents (which entries the kernel's LRU evicts) it checks invariants
(:class:`Loose`) while the kernel comparison stays exact.

Values that differ by nature are masked narrowly, after checking what can be
checked about them: ``bpf_ktime_get_ns`` stamps (never decreasing, in order),
``bpf_get_hash_recalc`` (the kernel seeds its flow hash at boot: only "stable and
non-zero" is compared), socket cookies (only which slots are filled).  Prandom is
only used with a sampling rate of 1 (its value never matters).

Known open simulator disagreements are ``xfail(strict=True)`` cases naming the bug
(``Case.xfail``), so they flip to failures when fixed.  ``test_corpus_coverage``
checks from the compiled objects that the corpus uses every map type, helper group,
global-data section kind, subprogram kind, tail calls and callbacks of issue 3.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from corpus_packets import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_EXP,
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_IPIP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SKB_MAX,
    STANDARD,
    XDP_MAX,
    csum16,
    dport,
    eth,
    ip4,
    ip6,
    ipv4,
    ipv4_header_ok,
    ipv6,
    l4_checksum_ok,
    l4_tcp,
    l4_udp,
    parse,
    udp4_of_size,
    vlan,
)

from netbpf.errors import MapError, NetbpfError, TestRunError
from netbpf.maps import possible_cpus
from netbpf.obj.collection import load_collection_spec, map_contents
from netbpf.sim import SimBackend
from netbpf.uapi import HELPER_IDS, MapType
from netbpf.vm.engine import ENGINES

NCPUS = possible_cpus()

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
TC_ACT_OK, TC_ACT_SHOT = 0, 2
EINVAL = errno.EINVAL

# ------------------------------------------------------------------------ small helpers


def le32(b: bytes) -> int:
    """A ``__be32`` field as the BTF decoder gives it: the bytes as a host integer."""
    return int.from_bytes(b, "little")


def le16(b: bytes) -> int:
    return int.from_bytes(b, "little")


def be16(n: int) -> int:
    """A host-order 16-bit value as a ``__be16`` field decodes."""
    return le16(n.to_bytes(2, "big"))


def pcpu(v: Any) -> list[Any]:
    """A per-CPU value that only CPU 0 (where every run happens) changed."""
    zero: Any = 0
    if isinstance(v, dict):
        zero = {k: (bytes(len(x)) if isinstance(x, bytes) else 0) for k, x in v.items()}
    return [v] + [zero] * (NCPUS - 1)


def u32(n: int) -> int:
    return n & 0xFFFFFFFF


SKB_CTX_SIZE = 192
_SKB = {"len": 0, "mark": 8, "protocol": 16, "priority": 32, "ifindex": 40, "cb": 48, "hash": 68}


def skb_ctx(*, cb: tuple[int, ...] = (0,) * 5, mark: int = 0, priority: int = 0) -> bytes:
    """An ``__sk_buff`` for ctx_in: only fields BPF_PROG_TEST_RUN accepts."""
    b = bytearray(SKB_CTX_SIZE)
    struct.pack_into("<I", b, _SKB["mark"], mark)
    struct.pack_into("<I", b, _SKB["priority"], priority)
    struct.pack_into("<5I", b, _SKB["cb"], *cb)
    return bytes(b)


def skb_fields(ctx: bytes) -> dict[str, Any]:
    """The ctx_out fields the models look at."""
    return {
        "mark": struct.unpack_from("<I", ctx, _SKB["mark"])[0],
        "priority": struct.unpack_from("<I", ctx, _SKB["priority"])[0],
        "cb": list(struct.unpack_from("<5I", ctx, _SKB["cb"])),
    }


ZERO_CTX = skb_ctx()


def xdp_ctx(*, ingress_ifindex: int = 0, rx_queue_index: int = 0) -> bytes:
    """An ``xdp_md`` for ctx_in (data/data_end/data_meta 0: no metadata in data_in)."""
    return struct.pack("<6I", 0, 0, 0, ingress_ifindex, rx_queue_index, 0)


# ------------------------------------------------------------------------ runs and cases


@dataclass(frozen=True)
class Run:
    """One BPF_PROG_TEST_RUN: program, packet label and bytes, optional ctx_in."""

    prog: str
    pkt: str
    data: bytes
    ctx: bytes | None = None


def runs_of(
    prog: str, packets: dict[str, bytes] | None = None, *, ctx: bytes | None = None
) -> list[Run]:
    pk = STANDARD if packets is None else packets
    return [Run(prog, name, data, ctx) for name, data in pk.items()]


@dataclass
class Expect:
    """What a model predicts.  ``runs``: per run, the keys to check (``retval``,
    ``data_out``, ``refused`` errno, ``ctx``: a subset of :func:`skb_fields`);
    ``maps``: every map's normalised contents; ``streams``: drained records."""

    runs: list[dict[str, Any]]
    maps: dict[str, Any]
    streams: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Loose:
    """A map whose exact contents the model cannot predict (LRU eviction order): a
    check returning the problems it finds.  The kernel comparison stays exact."""

    check: Callable[[Any], list[str]]


@dataclass
class Obs:
    runs: list[dict[str, Any]]
    maps: dict[str, Any]
    streams: dict[str, list[Any]]
    problems: list[str]


@dataclass
class Case:
    source: str
    #: runs, and Steps (Python-side map operations) between them
    runs: list[Any]
    model: Callable[[Case], Expect]
    knobs: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[Side], None] | None = None
    #: masks by-nature-different values in an observation, appending violated
    #: relations to ``obs.problems`` (compared too: they must be empty)
    vary: Callable[[Obs], None] | None = None
    #: map name -> decoder of queue/stack elements or ring buffer records
    decode: dict[str, Callable[[bytes], Any]] = field(default_factory=dict)
    #: perf event arrays to open a consumer on (CPU 0) before the runs (its samples:
    #: ``(cpu, decoded data)``)
    perf: tuple[str, ...] = ()
    #: changes to the spec before load besides knobs (libbpf's bpf_map__set_*)
    spec_edit: Callable[[Any], None] | None = None
    #: parameters of the model (what spec_edit changed)
    params: dict[str, Any] = field(default_factory=dict)
    #: known open disagreement of the simulator with the model/kernel: the bug
    xfail: str | None = None


# ------------------------------------------------------------------------ backends


@contextlib.contextmanager
def on_cpu0() -> Iterator[None]:
    """Run the block on CPU 0: BPF_PROG_TEST_RUN runs on the caller's CPU, the
    simulator on CPU 0, so per-CPU values compare only there."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class Side:
    """One backend with a loaded collection, and what differs in how the two are fed:
    sockets (real ones for the kernel, simulator sockets in its resolver)."""

    def __init__(self, backend: Any, coll: Any) -> None:
        self.backend = backend
        self.coll = coll
        self.sim = isinstance(backend, SimBackend)
        self._closers: list[Callable[[], None]] = []

    def tm(self, name: str) -> Any:
        return self.coll.typed_map(name)

    def socket_fd(self, kind: str) -> int:
        """A socket suitable for socket maps: ``udp`` (bound), ``tcp_listen``,
        ``udp_reuseport`` (bound, SO_REUSEPORT)."""
        if self.sim:
            from netbpf.maps.handles import Socket

            if kind == "tcp_listen":
                sk = Socket(type=socket.SOCK_STREAM, state="listen")
            else:
                sk = Socket(type=socket.SOCK_DGRAM, bound=True, reuseport=kind == "udp_reuseport")
            return self.backend.resolver.add_fd(sk)
        if kind == "tcp_listen":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if kind == "udp_reuseport":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", 0))
        self._closers.append(s.close)
        return s.fileno()

    def close(self) -> None:
        for c in reversed(self._closers):
            c()
        self._closers.clear()


# ------------------------------------------------------------------------ observing

_UNORDERED = {
    MapType.HASH,
    MapType.PERCPU_HASH,
    MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH,
    MapType.HASH_OF_MAPS,
    MapType.DEVMAP_HASH,
    MapType.SOCKHASH,
}
#: values that name kernel objects: only which keys are set is compared
_COOKIE_MAPS = {MapType.SOCKMAP, MapType.SOCKHASH, MapType.REUSEPORT_SOCKARRAY}


def _sort(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return sorted(items, key=lambda kv: repr(kv[0]))


def _keys(m: Any) -> list[int]:
    return sorted(int.from_bytes(k, "little") for k in m.keys())


def _filled(m: Any) -> list[int]:
    """The keys of a socket map that hold a socket (lookups return cookies, which
    differ by nature; an empty SOCKMAP slot is ENOENT)."""
    out = []
    for k in m.keys():
        try:
            m.lookup(k)
        except MapError as e:
            if e.errno != errno.ENOENT:
                raise
            continue
        out.append(int.from_bytes(k, "little"))
    return sorted(out)


def snapshot(side: Side, case: Case) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    coll = side.coll
    prog_ids = {int(p.info().id): n for n, p in coll.programs.items()}
    map_ids = {int(m.info().id): n for n, m in coll.maps.items()}
    maps: dict[str, Any] = {}
    streams: dict[str, list[Any]] = {}
    for name in sorted(coll.maps):
        m = coll.maps[name]
        t = m.map_type
        dec = case.decode.get(name, bytes)
        if t == MapType.RINGBUF:
            streams[name] = [dec(r) for r in coll.ringbuf(name).consume()]
        elif t in (MapType.QUEUE, MapType.STACK):
            out = []
            while True:
                try:
                    out.append(dec(m.pop()))
                except MapError as e:
                    if e.errno != errno.ENOENT:
                        raise
                    break
            streams[name] = out
        elif t == MapType.PERF_EVENT_ARRAY:
            if name in case.perf:
                reader = coll.perf_buffer(name, cpus=[0])
                streams[name] = [(cpu, dec(data)) for cpu, data in reader.consume()]
                if reader.lost:
                    streams[name].append(("lost", reader.lost))
        elif t == MapType.XSKMAP:
            maps[name] = {"keys": _keys(m)}  # user space cannot look AF_XDP sockets up
        elif t in _COOKIE_MAPS:
            maps[name] = {"filled": _filled(m)}
        else:
            items = list(side.tm(name).items())
            if t == MapType.PROG_ARRAY:
                items = [(k, prog_ids.get(v, f"id {v}")) for k, v in items]
            elif t in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                items = [(k, map_ids.get(v, f"id {v}")) for k, v in items]
            maps[name] = _sort(items) if t in _UNORDERED else items
    return maps, streams


def observe(backend: Any, case: Case, compile_bpf: Any) -> Obs:
    spec = load_collection_spec(compile_bpf(case.source))
    for k, v in case.knobs.items():
        spec.variables[k].set(v)
    if case.spec_edit is not None:
        case.spec_edit(spec)
    with backend.load(spec) as coll:
        side = Side(backend, coll)
        try:
            if case.setup is not None:
                case.setup(side)
            for name in case.perf:
                coll.perf_buffer(name, cpus=[0])  # BPF_OUTPUT event on CPU 0, installed
            runs = []
            for r in case.runs:
                if isinstance(r, Step):
                    r.fn(side)
                    continue
                rec: dict[str, Any] = {"prog": r.prog, "pkt": r.pkt}
                try:
                    res = coll.programs[r.prog].test_run(r.data, r.ctx)
                except TestRunError as e:
                    rec["refused"] = e.errno
                except NetbpfError as e:  # a simulator fault: keep it visible in the diff
                    rec["fault"] = f"{type(e).__name__}: {e}"
                else:
                    rec["retval"] = res.retval
                    rec["data_out"] = res.data_out
                    if r.ctx is not None:
                        rec["ctx_out"] = res.ctx_out
                runs.append(rec)
            maps, streams = snapshot(side, case)
        finally:
            side.close()
    obs = Obs(runs, maps, streams, [])
    if case.vary is not None:
        case.vary(obs)
    return obs


def _show(v: Any) -> str:
    text = bytes(v).hex() if isinstance(v, bytes | bytearray) else repr(v)
    return text if len(text) <= 120 else f"{text[:117]}... ({len(text)} chars)"


def diff_runs(got: list[dict[str, Any]], want: list[dict[str, Any]], *, subset: bool) -> list[str]:
    out = []
    if len(got) != len(want):
        return [f"{len(got)} runs, expected {len(want)}"]
    for g, w in zip(got, want, strict=True):
        where = f"{g['prog']}({g['pkt']})"
        if "fault" in g and "fault" not in w:
            out.append(
                f"{where}: {_show(g['fault'])}, expected {_show({k: v for k, v in w.items() if k in ('retval', 'refused')})}"
            )
            continue
        for k, wv in w.items():
            if k in ("prog", "pkt"):
                continue
            if k == "ctx" and subset:
                ctx = g.get("ctx_out")
                gf = skb_fields(ctx) if ctx is not None else None
                for fk, fv in wv.items():
                    if gf is None or gf[fk] != fv:
                        out.append(f"{where}: ctx {fk} = {gf and gf[fk]!r}, expected {fv!r}")
                continue
            gv = g.get(k, "<absent>")
            if gv != wv:
                extra = ""
                if "fault" in g:
                    extra = f" [{g['fault']}]"
                elif "refused" in g:
                    extra = f" [refused {errno.errorcode.get(g['refused'])}]"
                out.append(f"{where}: {k} = {_show(gv)}, expected {_show(wv)}{extra}")
        if not subset:
            for k in g:
                if k not in w:
                    out.append(f"{where}: unexpected {k} = {_show(g[k])}")
    return out


def diff_dicts(what: str, got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    out = []
    for k in sorted(set(got) | set(want)):
        if k not in got:
            out.append(f"{what} {k}: missing, expected {want[k]!r}")
        elif k not in want:
            out.append(f"{what} {k}: {got[k]!r} not modelled")
        elif isinstance(want[k], Loose):
            out += [f"{what} {k}: {p}" for p in want[k].check(got[k])]
        elif got[k] != want[k]:
            out.append(f"{what} {k}:\n   got {got[k]!r}\n  want {want[k]!r}")
    return out


def check_model(obs: Obs, exp: Expect) -> list[str]:
    out = diff_runs(obs.runs, exp.runs, subset=True)
    out += diff_dicts("map", obs.maps, exp.maps)
    out += diff_dicts("stream", obs.streams, exp.streams)
    out += [f"relation: {p}" for p in obs.problems]
    return out


def check_same(got: Obs, want: Obs) -> list[str]:
    """Simulator (got) against kernel (want): everything, exactly."""
    out = diff_runs(got.runs, want.runs, subset=False)
    out += diff_dicts("map", got.maps, want.maps)
    out += diff_dicts("stream", got.streams, want.streams)
    if got.problems != want.problems:
        out.append(f"relations: sim {got.problems}, kernel {want.problems}")
    return out


# ------------------------------------------------------------------------ model helpers


def rodata(**kw: Any) -> list[tuple[int, dict[str, Any]]]:
    return [(0, kw)]


def outcome(run: Run, retval: int, data_out: bytes | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"prog": run.prog, "pkt": run.pkt, "retval": retval}
    d["data_out"] = run.data if data_out is None else data_out
    d.update(extra)
    return d


def refused(run: Run, err: int = EINVAL) -> dict[str, Any]:
    return {"prog": run.prog, "pkt": run.pkt, "refused": err}


def skb_refuses(data: bytes) -> bool:
    """BPF_PROG_TEST_RUN refuses skb programs frames shorter than Ethernet, longer than
    one page's linear area, or whose EtherType promises an IPv4/IPv6 header that is
    not all there."""
    if len(data) < 14 or len(data) > SKB_MAX:
        return True
    proto = get16(data, 12)
    return (proto == ETH_P_IP and len(data) < 34) or (proto == ETH_P_IPV6 and len(data) < 54)


def xdp_refuses(data: bytes) -> bool:
    return len(data) < 14


def xdp_linear(data: bytes) -> int:
    """What data_end - data is in XDP: a frame longer than the linear area arrives
    with the rest in fragments (BPF_PROG_TEST_RUN builds a multi-buffer frame)."""
    return min(len(data), XDP_MAX)


def array(values: list[Any]) -> list[tuple[int, Any]]:
    return list(enumerate(values))


def inc(d: dict[Any, Any], k: Any, n: int = 1) -> None:
    d[k] = d.get(k, 0) + n


def hashed(d: dict[Any, Any]) -> list[tuple[Any, Any]]:
    return _sort(list(d.items()))


def csum_replace(check: int, old: bytes, new: bytes) -> int:
    """RFC 1624 incremental update of a checksum field (big-endian values):
    ``~(~HC + ~m + m')``, what ``bpf_csum_diff`` plus a fold computes."""
    s = ~check & 0xFFFF
    for i in range(0, len(old), 2):
        s += ~int.from_bytes(old[i : i + 2], "big") & 0xFFFF
    for i in range(0, len(new), 2):
        s += int.from_bytes(new[i : i + 2], "big")
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def get16(b: bytes | bytearray, off: int) -> int:
    return int(struct.unpack_from("!H", b, off)[0])


def put16(b: bytearray, off: int, v: int) -> None:
    struct.pack_into("!H", b, off, v)


# ======================================================================== the corpus
# ------------------------------------------------------------------------ ddos


def _ddos_model(case: Case) -> Expect:
    allow = {le32(ip4("10.1.2.3"))}
    v4: dict[int, dict[str, Any]] = {}
    v6: dict[bytes, int] = {}
    verdicts = [0] * 5  # PASS_NEW, PASS, DROP, ALLOW, NOT_IP
    runs = []
    lim4, lim6 = case.knobs["v4_limit"], case.knobs["v6_limit"]
    for r in case.runs:
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        if not p.l3_ok:
            verdicts[4] += 1
            runs.append(outcome(r, XDP_PASS))
            continue
        if p.ethertype == ETH_P_IP:
            src = le32(p.src)
            if src in allow:
                verdicts[3] += 1
                runs.append(outcome(r, XDP_PASS))
                continue
            st = v4.get(src)
            if st is None:
                v4[src] = {
                    "packets": 1,
                    "bytes": xdp_linear(r.data),
                    "first_seen_ns": "ktime",
                    "last_seen_ns": "ktime",
                }
                verdicts[0] += 1
                runs.append(outcome(r, XDP_PASS))
                continue
            st["packets"] += 1
            st["bytes"] += xdp_linear(r.data)
            drop = st["packets"] > lim4
        else:
            key = p.src[:8]
            if key not in v6:
                v6[key] = 1
                verdicts[0] += 1
                runs.append(outcome(r, XDP_PASS))
                continue
            v6[key] += 1
            drop = v6[key] > lim6
        verdicts[2 if drop else 1] += 1
        runs.append(outcome(r, XDP_DROP if drop else XDP_PASS))
    return Expect(
        runs,
        {
            ".rodata": rodata(v4_limit=lim4, v6_limit=lim6),
            ".bss": [(0, {"clock_backwards": 0})],
            "allow": [(k, 1) for k in sorted(allow)],
            "v4_src": hashed(v4),
            "v6_src": _sort([({"bytes": k}, pcpu(n)) for k, n in v6.items()]),
            "verdicts": array([pcpu(v) for v in verdicts]),
        },
    )


def _ddos_setup(side: Side) -> None:
    side.tm("allow")[le32(ip4("10.1.2.3"))] = 1


def _ddos_vary(obs: Obs) -> None:
    for key, st in obs.maps.get("v4_src", []):
        if not st["first_seen_ns"] <= st["last_seen_ns"]:
            obs.problems.append(f"v4_src {key}: first seen after last seen")
        st["first_seen_ns"] = st["last_seen_ns"] = "ktime"


def _ddos() -> Case:
    burst = {
        f"burst_{i}": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(3000 + i, 53), src="10.9.9.9"))
        for i in range(5)
    }
    burst6 = {
        f"burst6_{i}": eth(
            ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(3000, 53), src=f"2001:db8:0:0:{i}::9")
        )
        for i in range(3)
    }
    return Case(
        "corpus_ddos.c",
        runs_of("ddos_drop") + runs_of("ddos_drop", burst | burst6),
        _ddos_model,
        knobs={"v4_limit": 3, "v6_limit": 2},
        setup=_ddos_setup,
        vary=_ddos_vary,
    )


# ------------------------------------------------------------------------ load balancer

_LB_BACKENDS = [
    (ip4("10.10.0.1"), bytes.fromhex("02000000aa01")),
    (ip4("10.10.0.2"), bytes.fromhex("02000000aa02")),
    (ip4("10.10.0.3"), bytes.fromhex("02000000aa03")),
    (ip4("10.10.0.4"), bytes.fromhex("02000000aa04")),
]
_LB_VIPS = {
    (ip4("10.0.0.2"), 80, IPPROTO_TCP): (0, 2),
    (ip4("10.0.0.2"), 53, IPPROTO_UDP): (2, 1),
    (ip4("10.0.0.3"), 4791, IPPROTO_UDP): (3, 2),  # backend 4 is unset: drops
}


def _vip_key(addr: bytes, port: int, proto: int) -> dict[str, int]:
    return {"addr": le32(addr), "port": be16(port), "proto": proto, "pad": 0}


def _lb_setup(side: Side) -> None:
    vips = side.tm("vips")
    for (addr, port, proto), (first, count) in _LB_VIPS.items():
        vips[_vip_key(addr, port, proto)] = {"first": first, "count": count}
    be = side.tm("backends")
    for i, (addr, mac) in enumerate(_LB_BACKENDS):
        be[i] = {"addr": le32(addr), "mac": mac, "pad": 0}


def _lb_grow(side: Side) -> None:
    side.tm("vips")[_vip_key(ip4("10.0.0.2"), 80, IPPROTO_TCP)] = {"first": 0, "count": 3}


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


@dataclass(frozen=True)
class Step:
    """A Python-side action between runs (the same on both backends)."""

    label: str
    fn: Callable[[Side], None]


def _lb_model(case: Case) -> Expect:
    vips = dict(_LB_VIPS)
    conntrack: dict[bytes, int] = {}
    stats = [[0, 0] for _ in range(8)]
    runs = []
    for r in case.runs:
        if isinstance(r, Step):
            vips[(ip4("10.0.0.2"), 80, IPPROTO_TCP)] = (0, 3)
            continue
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        if p.ethertype != ETH_P_IP or not p.l3_ok or p.fragment or p.l4 is None or p.vlan_ids:
            runs.append(outcome(r, XDP_PASS))
            continue
        if p.ip_proto not in (IPPROTO_TCP, IPPROTO_UDP):
            runs.append(outcome(r, XDP_PASS))
            continue
        hdr = 20 if p.ip_proto == IPPROTO_TCP else 8
        if p.l4 + hdr > len(r.data):
            runs.append(outcome(r, XDP_PASS))
            continue
        _sport, dp = struct.unpack_from("!HH", r.data, p.l4)
        vip = vips.get((p.dst, dp, p.ip_proto))
        if vip is None or vip[1] == 0:
            runs.append(outcome(r, XDP_PASS))
            continue
        fk = p.src + p.dst + r.data[p.l4 : p.l4 + 4] + bytes([p.ip_proto]) + bytes(3)
        if fk in conntrack:
            idx = conntrack[fk]
        else:
            idx = vip[0] + fnv1a(fk[:13]) % vip[1]
            conntrack[fk] = idx
        if idx >= len(_LB_BACKENDS):
            runs.append(outcome(r, XDP_DROP))
            continue
        addr, mac = _LB_BACKENDS[idx]
        out = bytearray(r.data)
        l3 = p.l3
        assert l3 is not None
        out[l3 + 16 : l3 + 20] = addr
        put16(out, l3 + 10, csum_replace(get16(out, l3 + 10), p.dst, addr))
        coff = p.l4 + (16 if p.ip_proto == IPPROTO_TCP else 6)
        if p.ip_proto == IPPROTO_TCP or get16(out, coff):
            put16(out, coff, csum_replace(get16(out, coff), p.dst, addr))
        out[6:12] = r.data[0:6]
        out[0:6] = mac
        assert ipv4_header_ok(bytes(out), l3), r.pkt
        if len(out) >= l3 + get16(out, l3 + 2):
            assert l4_checksum_ok(bytes(out), l3), r.pkt
        stats[idx][0] += 1
        stats[idx][1] += xdp_linear(r.data)
        runs.append(outcome(r, XDP_TX, bytes(out)))
    ct = []
    for k, v in conntrack.items():
        key = {
            "saddr": le32(k[0:4]),
            "daddr": le32(k[4:8]),
            "sport": le16(k[8:10]),
            "dport": le16(k[10:12]),
            "proto": k[12],
            "pad": bytes(3),
        }
        ct.append((key, v))
    return Expect(
        runs,
        {
            "vips": _sort([(_vip_key(*k), {"first": f, "count": c}) for k, (f, c) in vips.items()]),
            "backends": array(
                [{"addr": le32(a), "mac": m, "pad": 0} for a, m in _LB_BACKENDS]
                + [{"addr": 0, "mac": bytes(6), "pad": 0}] * 4
            ),
            "conntrack": _sort(ct),
            "be_stats": array([pcpu({"packets": a, "bytes": b}) for a, b in stats]),
        },
    )


def _lb() -> Case:
    flows = {
        f"flow_{i}": eth(
            ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(1000 + i, 80, b"x" * i), src=f"10.0.1.{i}")
        )
        for i in range(1, 9)
    }
    again = {f"flow_{i}_again": flows[f"flow_{i}"] for i in range(1, 9, 2)}
    more = {
        f"udp_vip_{i}": eth(
            ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(2000 + i, 4791, bytes(i)), dst="10.0.0.3")
        )
        for i in range(6)
    }
    seq: list[Any] = runs_of("lb_ingress") + runs_of("lb_ingress", flows)
    seq += [Step("grow", _lb_grow), *runs_of("lb_ingress", again | more)]
    return Case("corpus_lb.c", seq, _lb_model, setup=_lb_setup)


# ------------------------------------------------------------------------ LPM ACL

_ACL_V4 = [("10.0.0.0", 8, 1, 0), ("10.0.0.0", 24, 2, 1), ("10.0.0.1", 32, 3, 0), ("192.168.0.0", 16, 4, 1),
           ("172.16.0.0", 12, 5, 0)]  # fmt: skip
_ACL_V6 = [("2001:db8::", 32, 6, 0), ("2001:db8:1::", 48, 7, 1), ("2001:db8::1", 128, 8, 1)]


def _bits(addr: bytes, plen: int) -> str:
    return "".join(f"{b:08b}" for b in addr)[:plen]


def lpm_order(entries: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
    """The kernel's LPM trie iteration order: post-order, the 0 branch first (a
    prefix after everything it contains)."""
    return sorted(entries, key=lambda e: _bits(*e) + "2")


def lpm_match(table: list[tuple[bytes, int, Any]], addr: bytes) -> Any:
    best = None
    for pfx, plen, val in table:
        if _bits(pfx, plen) == _bits(addr, plen) and (best is None or plen > best[0]):
            best = (plen, val)
    return None if best is None else best[1]


def _acl_tables() -> tuple[list[Any], list[Any]]:
    v4 = [(ip4(a), n, {"id": i, "action": act}) for a, n, i, act in _ACL_V4]
    v6 = [(ip6(a), n, {"id": i, "action": act}) for a, n, i, act in _ACL_V6]
    return v4, v6


def _acl_setup(side: Side) -> None:
    v4, v6 = _acl_tables()
    for name, table in (("acl_v4", v4), ("acl_v6", v6)):
        m = side.tm(name)
        for pfx, plen, val in table:
            m[{"prefixlen": plen, "addr": pfx}] = val


def _acl_model(case: Case) -> Expect:
    v4, v6 = _acl_tables()
    deny_default = case.knobs["default_deny"]
    hits = [0] * 16
    runs = []

    def decide(addr: bytes) -> tuple[bool, int]:
        rule = lpm_match(v4 if len(addr) == 4 else v6, addr)
        hits[rule["id"] & 15 if rule else 0] += 1
        if rule is None:
            return bool(deny_default), 0
        return rule["action"] == 1, rule["id"]

    for r in case.runs:
        if r.prog == "acl_tc":
            if skb_refuses(r.data):
                runs.append(refused(r))
                continue
            proto = get16(r.data, 12)
            n = {ETH_P_IP: 4, ETH_P_IPV6: 16}.get(proto)
            off = 14 + (12 if proto == ETH_P_IP else 8)
            if n is None or off + n > len(r.data):
                runs.append(outcome(r, TC_ACT_OK, ctx={"mark": 0}))
                continue
            deny, rid = decide(r.data[off : off + n])
            runs.append(outcome(r, TC_ACT_SHOT if deny else TC_ACT_OK, ctx={"mark": rid}))
        else:
            if xdp_refuses(r.data):
                runs.append(refused(r))
                continue
            p = parse(r.data)
            assert p is not None
            if not p.l3_ok:
                runs.append(outcome(r, XDP_PASS))
                continue
            deny, _ = decide(p.src)
            runs.append(outcome(r, XDP_DROP if deny else XDP_PASS))

    def lpm(table: list[Any]) -> list[Any]:
        order = lpm_order([(pfx, plen) for pfx, plen, _ in table])
        vals = {(pfx, plen): v for pfx, plen, v in table}
        return [({"prefixlen": plen, "addr": pfx}, vals[(pfx, plen)]) for pfx, plen in order]

    return Expect(
        runs,
        {
            ".rodata": rodata(default_deny=deny_default),
            "acl_v4": lpm(v4),
            "acl_v6": lpm(v6),
            "hits": array([pcpu(h) for h in hits]),
        },
    )


def _acl() -> Case:
    extra = {
        "v4_src_10_0_0_77": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1, 2), src="10.0.0.77")),
        "v4_src_10_200_0_1": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1, 2), src="10.200.0.1")),
        "v4_src_8_8_8_8": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1, 2), src="8.8.8.8")),
        "v6_src_db8_1_5": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2), src="2001:db8:1::5")),
        "v6_src_other": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2), src="fe80::1")),
    }
    pk = STANDARD | extra
    return Case(
        "corpus_acl.c",
        runs_of("acl_tc", pk, ctx=ZERO_CTX) + runs_of("acl_xdp", pk),
        _acl_model,
        knobs={"default_deny": 1},
        setup=_acl_setup,
    )


# ------------------------------------------------------------------------ VLAN tagger

_VID_BY_PORT = {53: 0, 80: 200, 443: 300}


def _vlan_setup(side: Side) -> None:
    m = side.tm("vid_by_port")
    for port, vid in _VID_BY_PORT.items():
        m[port] = vid


def _vlan_model(case: Case) -> Expect:
    default_vid = case.knobs["default_vid"]
    stats = [0] * 8
    runs = []

    def vid_for(data: bytes) -> int | None:
        p = parse(data)
        assert p is not None
        if p.vlan_ids or not p.l3_ok:
            return None
        port = dport(data, p) or 0
        return _VID_BY_PORT.get(port, default_vid)

    for r in case.runs:
        refuses = skb_refuses(r.data) if r.prog.startswith("vlan_") else xdp_refuses(r.data)
        if refuses:
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        if r.prog == "vlan_tag":
            if p.vlan_ids:
                stats[2] += 1
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            vid = vid_for(r.data)
            if vid is None:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
            elif vid == 0:
                stats[1] += 1
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
            else:
                stats[0] += 1
                cb = [1, vid | 3 << 13, ETH_P_8021Q, get16(r.data, 12), 0]
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": cb}))
        elif r.prog == "vlan_untag":
            proto = get16(r.data, 12)
            data = r.data
            popped = 0
            hw: int | None = None
            for _ in range(2):
                if hw is None and proto not in (ETH_P_8021Q, ETH_P_8021AD):
                    break
                if hw is not None:
                    hw = None  # the accelerated tag is dropped
                else:
                    data = data[:12] + data[16:]
                    proto = get16(data, 12)
                    if proto in (ETH_P_8021Q, ETH_P_8021AD):  # the next tag moves to hwaccel
                        hw = get16(data, 14)
                        data = data[:12] + data[16:]
                        proto = get16(data, 12)
                popped += 1
            stats[4] += popped
            cb = [popped, int(hw is not None), hw or 0, proto, 0]
            runs.append(outcome(r, TC_ACT_OK, data, ctx={"cb": cb}))
        elif r.prog == "xdp_vlan_push":
            vid = vid_for(r.data)
            if not vid:
                runs.append(outcome(r, XDP_PASS))
                continue
            stats[6] += 1
            out = r.data[:12] + struct.pack("!HH", ETH_P_8021Q, vid) + r.data[12:]
            runs.append(outcome(r, XDP_PASS, out))
        else:  # xdp_vlan_pop
            if len(r.data) < 18 or get16(r.data, 12) not in (ETH_P_8021Q, ETH_P_8021AD):
                runs.append(outcome(r, XDP_PASS))
                continue
            stats[7] += 1
            runs.append(outcome(r, XDP_PASS, r.data[:12] + r.data[16:]))
    return Expect(
        runs,
        {
            ".rodata": rodata(default_vid=default_vid),
            "vid_by_port": hashed(dict(_VID_BY_PORT)),
            "vlan_stats": array(stats),
        },
    )


def _vlan() -> Case:
    extra = {
        "ipv4_tcp_443": eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(5555, 443, b"tls"))),
        "qinq_ipv6_udp": vlan(
            [(ETH_P_8021AD, 7), (ETH_P_8021Q, 8)], ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2))
        ),
        "vlan_only_tag": vlan([(ETH_P_8021Q, 5)], ETH_P_IP, b""),
    }
    pk = STANDARD | extra
    seq = runs_of("vlan_tag", pk, ctx=ZERO_CTX) + runs_of("vlan_untag", pk, ctx=ZERO_CTX)
    seq += runs_of("xdp_vlan_push", pk) + runs_of("xdp_vlan_pop", pk)
    return Case("corpus_vlan.c", seq, _vlan_model, knobs={"default_vid": 100}, setup=_vlan_setup)


# ------------------------------------------------------------------------ IPIP

_TUNNELS = {
    ip4("10.0.0.2"): (ip4("192.0.2.1"), ip4("198.51.100.7"), 32),
    ip4("10.0.0.4"): (ip4("192.0.2.1"), ip4("198.51.100.9"), 9),
}
_IPIP_LOCAL = ip4("10.0.0.2")


def _tunnel_value(local: bytes, remote: bytes, ttl: int) -> dict[str, Any]:
    return {"local": le32(local), "remote": le32(remote), "ttl": ttl, "pad": bytes(3)}


def _ipip_setup(side: Side) -> None:
    m = side.tm("tunnels")
    for inner, t in _TUNNELS.items():
        m[le32(inner)] = _tunnel_value(*t)


def ipip_frame(inner: bytes, *, src: str = "198.51.100.7", dst: str = "10.0.0.2") -> bytes:
    """An Ethernet/IPv4 frame carrying ``inner`` (an IPv4 packet) as IPIP."""
    return eth(ETH_P_IP, ipv4(IPPROTO_IPIP, inner, src=src, dst=dst))


def _ipip_model(case: Case) -> Expect:
    stats = [0] * 4
    runs = []
    for r in case.runs:
        tc = r.prog != "ipip_xdp_decap"
        if skb_refuses(r.data) if tc else xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        d = r.data
        is_ip = get16(d, 12) == ETH_P_IP
        if r.prog == "ipip_encap":
            t = _TUNNELS.get(d[30:34]) if is_ip and len(d) >= 34 else None
            if t is None:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            local, remote, ttl = t
            hdr = bytearray(
                struct.pack(
                    "!BBHHHBBH4s4s",
                    0x45,
                    d[15],
                    len(d) + 20 - 14,
                    0,
                    0x4000,
                    ttl,
                    IPPROTO_IPIP,
                    0,
                    local,
                    remote,
                )
            )
            put16(hdr, 10, csum16(bytes(hdr)))
            stats[0] += 1
            runs.append(outcome(r, TC_ACT_OK, d[:14] + bytes(hdr) + d[14:], ctx={"cb": [0] * 5}))
            continue
        ours = (
            is_ip
            and len(d) >= 34
            and d[23] == IPPROTO_IPIP
            and d[14] & 0xF == 5
            and d[30:34] == _IPIP_LOCAL
        )
        if r.prog == "ipip_decap":
            if not ours:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            stats[1] += 1
            out = d[:14] + d[34:]
            runs.append(outcome(r, TC_ACT_OK, out, ctx={"cb": [0, le32(out[26:30]), 0, 0, 0]}))
        else:
            if not ours:
                runs.append(outcome(r, XDP_PASS))
                continue
            stats[2] += 1
            runs.append(outcome(r, XDP_PASS, d[:14] + d[34:]))
    return Expect(
        runs,
        {
            ".rodata": rodata(local_addr=le32(_IPIP_LOCAL)),
            "tunnels": hashed({le32(k): _tunnel_value(*v) for k, v in _TUNNELS.items()}),
            "tun_stats": array(stats),
        },
    )


def _ipip() -> Case:
    inner_tcp = ipv4(IPPROTO_TCP, l4_tcp(1111, 80, b"inner"), src="172.16.9.9", dst="10.8.0.1")
    inner_udp = ipv4(IPPROTO_UDP, l4_udp(2222, 53, bytes(40)), src="172.16.9.10", dst="10.8.0.2")
    encapsulated = {
        "ipip_tcp": ipip_frame(inner_tcp),
        "ipip_udp": ipip_frame(inner_udp),
        "ipip_not_local": ipip_frame(inner_tcp, dst="10.0.0.99"),
        "ipip_big": ipip_frame(ipv4(IPPROTO_UDP, l4_udp(3, 4, bytes(3000)), src="172.16.9.11")),
    }
    pk = STANDARD | encapsulated
    seq = runs_of("ipip_encap", pk, ctx=ZERO_CTX) + runs_of("ipip_decap", pk, ctx=ZERO_CTX)
    seq += runs_of("ipip_xdp_decap", pk)
    return Case(
        "corpus_ipip.c",
        seq,
        _ipip_model,
        knobs={"local_addr": le32(_IPIP_LOCAL)},
        setup=_ipip_setup,
    )


# ------------------------------------------------------------------------ SIIT

_WKP = bytes.fromhex("0064ff9b0000000000000000")


def _siit_model(case: Case) -> Expect:
    stats = [0] * 4
    runs = []
    for r in case.runs:
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        d = r.data
        proto = get16(d, 12)
        if r.prog == "nat46":
            if proto != ETH_P_IP:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            if len(d) < 34:
                stats[2] += 1
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            l4p = d[23]
            if d[14] & 0xF != 5 or l4p not in (IPPROTO_TCP, IPPROTO_UDP) or get16(d, 20) & 0x3FFF:
                stats[2] += 1
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            tos, tot, ttl = d[15], get16(d, 16), d[22]
            src6, dst6 = _WKP + d[26:30], _WKP + d[30:34]
            hdr = (
                struct.pack("!IHBB", 0x60000000 | tos << 20, (tot - 20) & 0xFFFF, l4p, ttl)
                + src6
                + dst6
            )
            out = bytearray(d[:12] + struct.pack("!H", ETH_P_IPV6) + hdr + d[34:])
            old_addrs, new_addrs = d[26:34], src6 + dst6
            l4 = 54
        else:
            if proto != ETH_P_IPV6:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            if len(d) < 54:
                stats[2] += 1
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            l4p = d[20]
            if l4p not in (IPPROTO_TCP, IPPROTO_UDP) or d[22:34] != _WKP or d[38:50] != _WKP:
                stats[2] += 1
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            tclass = (get16(d, 14) >> 4) & 0xFF
            hdr = bytearray(
                struct.pack(
                    "!BBHHHBBH4s4s",
                    0x45,
                    tclass,
                    get16(d, 18) + 20,
                    0,
                    0x4000,
                    d[21],
                    l4p,
                    0,
                    d[34:38],
                    d[50:54],
                )
            )
            put16(hdr, 10, csum16(bytes(hdr)))
            out = bytearray(d[:12] + struct.pack("!H", ETH_P_IP) + bytes(hdr) + d[54:])
            old_addrs, new_addrs = d[22:54], d[34:38] + d[50:54]
            l4 = 34
        coff = l4 + (16 if l4p == IPPROTO_TCP else 6)
        if coff + 2 > len(out):
            stats[3] += 1
            runs.append(
                outcome(r, TC_ACT_SHOT, bytes(out), ctx={"cb": [0, 0, 0, u32(-errno.EFAULT), 0]})
            )
            continue
        c = get16(out, coff)
        if not (l4p == IPPROTO_UDP and c == 0):
            c = csum_replace(c, old_addrs, new_addrs)
            if l4p == IPPROTO_UDP and c == 0:
                c = 0xFFFF
            put16(out, coff, c)
        assert l4_checksum_ok(bytes(out), 14), r.pkt
        stats[0 if r.prog == "nat46" else 1] += 1
        runs.append(outcome(r, TC_ACT_OK, bytes(out), ctx={"cb": [0] * 5}))
    return Expect(runs, {".rodata": [(0, {"wkp": _WKP})], "xlat_stats": array(stats)})


def _siit() -> Case:
    v6 = {
        "siit6_tcp": eth(ETH_P_IPV6, ipv6(IPPROTO_TCP, l4_tcp(4000, 80, b"hi"), src="64:ff9b::a00:1", dst="64:ff9b::c000:201", tclass=0x28)),
        "siit6_udp": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(4001, 53, b"q"), src="64:ff9b::a00:2", dst="64:ff9b::808:808", hop_limit=3)),
        "siit6_icmp": eth(ETH_P_IPV6, ipv6(IPPROTO_ICMPV6, bytes(8), src="64:ff9b::a00:2", dst="64:ff9b::808:808")),
        "siit6_half": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2), src="64:ff9b::a00:2", dst="2001:db8::2")),
    }  # fmt: skip
    v4 = {"siit4_tos": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(9, 9, b"tos"), tos=0xB8, ttl=7))}
    pk = STANDARD | v6 | v4
    seq = runs_of("nat46", pk, ctx=ZERO_CTX) + runs_of("nat64", pk, ctx=ZERO_CTX)
    return Case("corpus_siit.c", seq, _siit_model)


# ------------------------------------------------------------------------ sampler

_SAMPLE = struct.Struct("<IIHHIQ64s")


def _decode_sample(raw: bytes) -> dict[str, Any]:
    seq, n, proto, head_len, cpu, ts, head = _SAMPLE.unpack(raw)
    return {
        "seq": seq,
        "len": n,
        "proto": proto,
        "head_len": head_len,
        "cpu": cpu,
        "ts": ts,
        "head": head,
    }


def _decode_note(raw: bytes) -> tuple[int, ...]:
    return tuple(struct.unpack("<IHBB", raw))


def _decode_perf(raw: bytes) -> bytes:
    """What the program wrote: its 8-byte meta and min(len, 128) packet bytes; the
    padding after it is left stale by the kernel (it skips over it)."""
    n = struct.unpack_from("<I", raw, 4)[0]
    return raw[: 8 + min(n, 128)]


def _sampler_vary(obs: Obs) -> None:
    last = 0
    for rec in obs.streams.get("samples", []):
        if rec["ts"] < last:
            obs.problems.append(f"sample {rec['seq']}: timestamp went backwards")
        last = rec["ts"]
        rec["ts"] = "ktime"


def _sampler_model(case: Case) -> Expect:
    assert case.knobs["sample_rate"] == 1
    ring = case.params.get("ring", 16384)
    seq = sampled = discarded = perf_ok = failed = 0
    prod = 0
    samples, notes, perf = [], [], []
    runs = []
    for r in case.runs:
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        n = xdp_linear(r.data)
        seq += 1
        flag = 0
        if (
            prod + 8 + _SAMPLE.size > ring - 1
        ):  # the kernel: new producer position - consumer > mask
            failed += 1
        elif n < 60:
            prod += 8 + _SAMPLE.size
            discarded += 1
        else:
            head = r.data[: 64 if n >= 64 else 60].ljust(64, b"\0")
            samples.append(
                {"seq": seq, "len": n, "proto": get16(r.data, 12), "head_len": min(64, 60 if n < 64 else 64),
                 "cpu": 0, "ts": "ktime", "head": head}
            )  # fmt: skip
            sampled += 1
            prod += 8 + _SAMPLE.size
            flag = 1
        notes.append((seq, n & 0xFFFF, flag, 0))
        perf.append((0, struct.pack("<II", seq, n) + r.data[: min(n, 128)]))
        perf_ok += 1
        runs.append(outcome(r, XDP_PASS))
    bss = {
        "seq": seq, "sampled": sampled, "discarded": discarded, "reserve_failed": failed, "note_failed": 0,
        "perf_ok": perf_ok, "perf_last_rc": 0, "avail_data": prod, "prod_pos": prod, "cons_pos": 0,
        "ring_size": ring,
    }  # fmt: skip
    return Expect(
        runs,
        {".rodata": rodata(sample_rate=1), ".bss": [(0, bss)]},
        {"samples": samples, "notes": notes, "perf_samples": perf},
    )


def _sampler() -> Case:
    return Case(
        "corpus_sampler.c",
        runs_of("sample_pkt"),
        _sampler_model,
        knobs={"sample_rate": 1},
        vary=_sampler_vary,
        decode={"samples": _decode_sample, "notes": _decode_note, "perf_samples": _decode_perf},
        perf=("perf_samples",),
    )


def _sampler_full() -> Case:
    """The sample ring shrunk to one page before load: it fills, reservations fail."""

    def shrink(spec: Any) -> None:
        spec.maps["samples"] = spec.maps["samples"].with_(max_entries=4096)

    case = _sampler()
    case.runs = case.runs + runs_of("sample_pkt", {f"{k}_2": v for k, v in STANDARD.items()})
    case.spec_edit = shrink
    case.params = {"ring": 4096}
    return case


# ------------------------------------------------------------------------ LRU flood


def _flood_model(case: Case) -> Expect:
    runs = [outcome(r, XDP_PASS) for r in case.runs]

    def v4_check(items: Any) -> list[str]:
        out = []
        if not 0 < len(items) <= 64:
            out.append(f"{len(items)} entries in a 64-entry LRU map")
        for key, st in items:
            if st["packets"] not in (1, 2) or st["bytes"] != st["packets"] * 42:
                out.append(f"{key}: {st}")
        return out

    def v6_check(items: Any) -> list[str]:
        out = []
        if not 0 < len(items) <= 32:
            out.append(f"{len(items)} entries in a 32-entry LRU map")
        out += [f"{k}: {v}" for k, v in items if v not in (pcpu(1), pcpu(2))]
        return out

    def verdict_check(items: Any) -> list[str]:
        counts = [v[0] for _, v in items]
        if counts[0] + counts[1] != len(case.runs) or counts[2:] != [0, 0, 0]:
            return [f"verdicts {counts}"]
        return []

    return Expect(
        runs,
        {
            ".rodata": rodata(v4_limit=3, v6_limit=2),
            ".bss": [(0, {"clock_backwards": 0})],
            "allow": [],
            "v4_src": Loose(v4_check),
            "v6_src": Loose(v6_check),
            "verdicts": Loose(verdict_check),
        },
    )


def _ddos_flood() -> Case:
    """More sources than the LRU hash holds: which ones the kernel evicts is compared
    exactly with the simulator; the model checks only the invariants."""
    srcs = [f"10.{i // 200}.{i % 200}.1" for i in range(150)]
    pk = {
        f"src_{i}": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1, 2), src=a))
        for i, a in enumerate(srcs)
    }
    again = {f"src_{i}_again": pk[f"src_{i}"] for i in list(range(10)) + list(range(140, 150))}
    pk6 = {
        f"src6_{i}": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2), src=f"2001:db8:{i:x}::1"))
        for i in range(60)
    }
    again6 = {f"src6_{i}_again": pk6[f"src6_{i}"] for i in list(range(5)) + list(range(55, 60))}
    return Case(
        "corpus_ddos.c",
        runs_of("ddos_drop", pk | again | pk6 | again6),
        _flood_model,
        knobs={"v4_limit": 3, "v6_limit": 2},
        vary=_ddos_vary,
    )


# ------------------------------------------------------------------------ rate meter


def _meter_vary(obs: Obs) -> None:
    for key, per_cpu in obs.maps.get("meters", []):
        if per_cpu[0]["last_ns"] == 0:
            obs.problems.append(f"meter {key}: no timestamp on CPU 0")
        per_cpu[0]["last_ns"] = "ktime"


def _meter_model(case: Case) -> Expect:
    budget = case.knobs["byte_budget"]
    meters: dict[tuple[int, int], list[int]] = {}
    runs = []
    for r in case.runs:
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        pull = 0 if len(r.data) >= 34 else u32(-errno.ENOMEM)
        key = (0, 0)
        if get16(r.data, 12) == ETH_P_IP and len(r.data) >= 34:
            key = (le32(r.data[26:30]), r.data[23])
        m = meters.setdefault(key, [0, 0, 0])
        m[0] += 1
        m[1] += len(r.data)
        over = m[1] > budget
        if over:
            m[2] += 1
        ctx = {"cb": [pull, m[0], 0, 0, 0], "priority": 7 if over else 0}
        runs.append(outcome(r, TC_ACT_SHOT if over else TC_ACT_OK, ctx=ctx))
    items = [
        (
            {"saddr": k[0], "proto": k[1], "pad": bytes(3)},
            pcpu({"packets": v[0], "bytes": v[1], "dropped": v[2], "last_ns": 0}),
        )
        for k, v in meters.items()
    ]
    for _, vals in items:
        vals[0]["last_ns"] = "ktime"
    return Expect(runs, {".rodata": rodata(byte_budget=budget), "meters": _sort(items)})


def _meter() -> Case:
    repeat = {f"ipv4_tcp_{i}": STANDARD["ipv4_tcp"] for i in range(6)}
    return Case(
        "corpus_meter.c",
        runs_of("rate_meter", STANDARD | repeat, ctx=ZERO_CTX),
        _meter_model,
        knobs={"byte_budget": 400},
        vary=_meter_vary,
    )


# ------------------------------------------------------------------------ tail-call pipeline


def _pipeline_model(case: Case) -> Expect:
    results: dict[tuple[int, int, int], int] = {}
    runs = []
    state: dict[str, int] = {}
    last_hops = 0
    tcp_stage = True
    for r in case.runs:
        if isinstance(r, Step):
            tcp_stage = r.label == "restore tcp stage"
            continue
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        d = r.data[: xdp_linear(r.data)]
        st = {"l3_off": 0, "l4_off": 0, "ethertype": 0, "l4proto": 0, "stage_count": 0, "hops": 0}

        def finish(verdict: int, st: dict[str, int] = st) -> int:
            inc(results, (st["ethertype"], st["l4proto"], verdict))
            return verdict

        proto, off = get16(d, 12), 14
        verdict = None
        if proto == ETH_P_8021Q:
            if len(d) < 18:
                verdict = XDP_DROP
            else:
                proto, off = get16(d, 16), 18
        if verdict is None:
            st.update(ethertype=proto, l3_off=off, stage_count=1)
            if proto not in (ETH_P_IP, ETH_P_IPV6):
                verdict = finish(XDP_PASS)
            else:
                st["stage_count"] += 1
                v4 = proto == ETH_P_IP
                if off + (20 if v4 else 40) > len(d):
                    verdict = finish(XDP_DROP)
                else:
                    st["l4proto"] = l4p = d[off + 9] if v4 else d[off + 6]
                    if v4 and get16(d, off + 6) & 0x1FFF:
                        verdict = finish(XDP_PASS)
                    else:
                        st["l4_off"] = l4 = off + ((d[off] & 0xF) * 4 if v4 else 40)
                        if l4p == IPPROTO_TCP and not tcp_stage:
                            verdict = finish(XDP_PASS)  # the empty slot: the call falls through
                        elif l4p == IPPROTO_TCP:
                            st["stage_count"] += 1
                            if l4 + 20 > len(d):
                                verdict = finish(XDP_DROP)
                            else:
                                verdict = finish(XDP_DROP if get16(d, l4 + 2) == 23 else XDP_PASS)
                        elif l4p == IPPROTO_UDP:
                            st["stage_count"] += 1
                            if l4 + 8 > len(d):
                                verdict = finish(XDP_DROP)
                            elif get16(d, l4 + 2) == 7:
                                # entry -> L3 -> UDP -> loop are 3 tail calls; 30 more
                                # succeed (33 in all), then the 34th fails
                                st["hops"] = last_hops = 31
                                verdict = finish(XDP_TX)
                            else:
                                verdict = finish(XDP_PASS)
                        else:
                            verdict = finish(XDP_PASS)
        state = st
        runs.append(outcome(r, verdict))
    return Expect(
        runs,
        {
            ".bss": [(0, {"tail_call_failed": 0, "last_hops": last_hops})],
            "stages": [
                (0, "stage_v4"),
                (1, "stage_v6"),
                (2, "stage_tcp"),
                (3, "stage_udp"),
                (5, "stage_loop"),
            ],
            "scratch": [(0, pcpu(state))],
            "results": _sort(
                [
                    ({"ethertype": e, "l4proto": p, "verdict": v}, n)
                    for (e, p, v), n in results.items()
                ]
            ),
        },
    )


def _pipeline() -> Case:
    extra = {
        "udp_echo": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(9, 7, b"echo"))),
        "tcp_telnet": eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(9, 23))),
        "udp6_echo": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(9, 7, b"echo6"))),
        "vlan_udp_echo": vlan([(ETH_P_8021Q, 9)], ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(9, 7))),
        "vlan_short": eth(ETH_P_8021Q, b"\x00"),
    }
    tcp = {k: v for k, v in (STANDARD | extra).items() if "tcp" in k}

    def drop(side: Side) -> None:
        side.coll.maps["stages"].delete(struct.pack("<I", 2))

    def restore(side: Side) -> None:
        fd = side.coll.programs["stage_tcp"].fd
        side.coll.maps["stages"].update(struct.pack("<I", 2), struct.pack("<I", fd))

    seq = [*runs_of("pipeline", STANDARD | extra), Step("drop tcp stage", drop)]
    seq += [
        *runs_of("pipeline", tcp),
        Step("restore tcp stage", restore),
        *runs_of("pipeline", tcp),
    ]
    return Case("corpus_pipeline.c", seq, _pipeline_model)


# ------------------------------------------------------------------------ socket filter


def _sockfilter_model(case: Case) -> Expect:
    snap = case.knobs["snaplen"]
    by_proto = [{"packets": 0, "bytes": 0} for _ in range(256)]
    first = [0] * 256
    last_word = 0
    runs = []
    for r in case.runs:
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        proto_eth, net = get16(r.data, 12), r.data[14:]
        out = bytes(14) + net  # the kernel zeroes the Ethernet header of L3 programs
        n = len(net)
        ver = net[0] >> 4 if n else None
        if ver == 4 and proto_eth == ETH_P_IP and n >= 20:
            proto, last_word, fb = net[9], int.from_bytes(net[12:16], "big"), net[12]
        elif ver == 6 and proto_eth == ETH_P_IPV6 and n >= 40:
            proto, last_word, fb = net[6], get16(net, 4), net[8]
        else:
            runs.append(outcome(r, 0, out))
            continue
        by_proto[proto]["packets"] += 1
        by_proto[proto]["bytes"] += n
        first[fb] += 1
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            ret = min(n, snap)
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            ret = n
        else:
            ret = 0
        runs.append(outcome(r, ret, out))
    return Expect(
        runs,
        {
            ".rodata": rodata(snaplen=snap),
            ".bss": [(0, {"last_word": last_word})],
            "by_proto": array(by_proto),
            "src_first_byte": array([pcpu(v) for v in first]),
        },
    )


def _sockfilter() -> Case:
    return Case(
        "corpus_sockfilter.c", runs_of("count_proto"), _sockfilter_model, knobs={"snaplen": 96}
    )


# ------------------------------------------------------------------------ cgroup_skb

_BLOCKED = (22, 53, 443)


def _cgroup_setup(side: Side) -> None:
    m = side.tm("blocked_ports")
    for port in _BLOCKED:
        m[port] = 1


def _cgroup_model(case: Case) -> Expect:
    drop_frags = case.knobs["drop_fragments"]
    stats = [0] * 8
    runs = []
    for r in case.runs:
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        direction = 0 if r.prog == "cg_ingress" else 1
        proto, net = get16(r.data, 12), r.data[14:]
        port = None
        if proto == ETH_P_IP:
            if len(net) < 20:
                reason = 3
            elif get16(net, 6) & 0x3FFF:
                reason = 2 if drop_frags else 0
            elif net[9] not in (IPPROTO_TCP, IPPROTO_UDP):
                reason = 0
            else:
                l4 = (net[0] & 0xF) * 4
                port = get16(net, l4 + 2) if l4 + 8 <= len(net) else None
                reason = 0
        elif proto == ETH_P_IPV6:
            if len(net) < 7:
                reason = 3
            elif net[6] not in (IPPROTO_TCP, IPPROTO_UDP):
                reason = 0
            else:
                port = get16(net, 42) if len(net) >= 44 else None
                reason = 0
        else:
            reason = 3
        if port is not None and port in _BLOCKED:
            reason = 1
        stats[direction * 4 + reason] += 1
        runs.append(outcome(r, int(reason in (0, 3)), bytes(14) + net))
    return Expect(
        runs,
        {
            ".rodata": rodata(drop_fragments=drop_frags),
            "blocked_ports": hashed(dict.fromkeys(_BLOCKED, 1)),
            "cg_stats": array([pcpu(v) for v in stats]),
        },
    )


def _cgroup() -> Case:
    seq = runs_of("cg_ingress") + runs_of("cg_egress")
    return Case(
        "corpus_cgroup.c", seq, _cgroup_model, knobs={"drop_fragments": 1}, setup=_cgroup_setup
    )


# ------------------------------------------------------------------------ maps of maps


def _tenants_model(case: Case) -> Expect:
    inner = {n: [0, 0, 0, 0] for n in ("tenant_a", "tenant_b", "tenant_c", "svc_web", "svc_dns")}
    by_tenant = {0: "tenant_a", 1: "tenant_b", 2: "tenant_c"}
    by_service = {0: "svc_dns", 1: "svc_web"}
    no_tenant = no_service = 0
    runs = []
    for r in case.runs:
        if isinstance(r, Step):
            by_tenant[3] = "tenant_a"
            del by_service[1]
            continue
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        if p.ethertype != ETH_P_IP or not p.l3_ok:
            runs.append(outcome(r, XDP_PASS))
            continue
        t = by_tenant.get(p.dst[3] % 4)
        if t is None:
            no_tenant += 1
            runs.append(outcome(r, XDP_PASS))
            continue
        inner[t][{IPPROTO_TCP: 0, IPPROTO_UDP: 1}.get(p.ip_proto, 2)] += 1
        inner[t][3] += xdp_linear(r.data)
        port = dport(r.data, p) or 0
        svc = by_service.get({53: 0, 80: 1}.get(port, port))
        if svc is None:
            no_service += 1
        else:
            inner[svc][2] += 1
        runs.append(outcome(r, XDP_PASS))
    maps: dict[str, Any] = {n: array(v) for n, v in inner.items()}
    maps[".bss"] = [(0, {"no_tenant": no_tenant, "no_service": no_service})]
    maps["tenants"] = sorted(by_tenant.items())
    maps["services"] = sorted(by_service.items())
    return Expect(runs, maps)


def _tenants() -> Case:
    extra = {
        f"to_{last}_{proto}": eth(ETH_P_IP, ipv4(proto, l4_udp(1, port) if proto == IPPROTO_UDP else l4_tcp(1, port), dst=f"10.0.0.{last}"))
        for last, proto, port in [(3, IPPROTO_TCP, 80), (4, IPPROTO_UDP, 53), (5, IPPROTO_TCP, 80), (6, IPPROTO_UDP, 9), (9, IPPROTO_TCP, 1)]
    }  # fmt: skip

    def rewire(side: Side) -> None:
        """Tenant 3 shares tenant A's counters; the web service goes away."""
        fd = side.coll.maps["tenant_a"].fd
        side.coll.maps["tenants"].update(struct.pack("<I", 3), struct.pack("<I", fd))
        side.coll.maps["services"].delete(struct.pack("<I", 1))

    seq = [
        *runs_of("account", STANDARD | extra),
        Step("rewire", rewire),
        *runs_of("account", extra),
    ]
    return Case("corpus_tenants.c", seq, _tenants_model)


# ------------------------------------------------------------------------ queue and stack

_EVENT = struct.Struct("<IIHBB")


def _decode_event(raw: bytes) -> tuple[int, ...]:
    return tuple(_EVENT.unpack(raw))


def _fold6(addr: bytes) -> int:
    w = struct.unpack("<4I", addr)
    return w[0] ^ w[1] ^ w[2] ^ w[3]


def _flowlog_model(case: Case) -> Expect:
    queue: list[tuple[int, ...]] = []
    stack: list[tuple[int, ...]] = []
    v = {
        "queue_full": 0,
        "pushed": 0,
        "popped": 0,
        "popped_bytes": 0,
        "peek_len": 0,
        "last_pop_rc": 0,
    }
    runs = []
    for r in case.runs:
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        if p.ethertype == ETH_P_EXP:
            if len(r.data) < 15:
                runs.append(outcome(r, XDP_DROP))
                continue
            for _ in range(min(r.data[14], 8)):
                if not queue:
                    v["last_pop_rc"] = -errno.ENOENT
                    break
                v["last_pop_rc"] = 0
                v["popped"] += 1
                v["popped_bytes"] += queue.pop(0)[2]
            runs.append(outcome(r, XDP_DROP))
            continue
        if not p.l3_ok:
            runs.append(outcome(r, XDP_PASS))
            continue
        if p.ethertype == ETH_P_IP:
            ev = (le32(p.src), le32(p.dst), xdp_linear(r.data) & 0xFFFF, p.ip_proto, 4)
        else:
            ev = (_fold6(p.src), _fold6(p.dst), xdp_linear(r.data) & 0xFFFF, p.ip_proto, 6)
        if len(queue) >= 8:
            v["queue_full"] += 1
        else:
            queue.append(ev)
            v["pushed"] += 1
        if len(stack) >= 4:
            stack.pop(0)
        stack.append(ev)
        v["peek_len"] = ev[2]
        runs.append(outcome(r, XDP_PASS))
    return Expect(runs, {".bss": [(0, v)]}, {"events": queue, "recent": stack[::-1]})


def _flowlog() -> Case:
    ctl = {f"ctl_pop_{n}": eth(ETH_P_EXP, bytes([n])) for n in (3, 8)}
    seq = runs_of("flowlog", dict(list(STANDARD.items())[:12]))
    seq += runs_of("flowlog", {"ctl_pop_3": ctl["ctl_pop_3"]})
    seq += runs_of("flowlog", dict(list(STANDARD.items())[12:]))
    seq += runs_of("flowlog", {"ctl_pop_8": ctl["ctl_pop_8"], "ctl_pop_8b": ctl["ctl_pop_8"]})
    seq += runs_of("flowlog", dict(list(STANDARD.items())[:5]))
    return Case(
        "corpus_flowlog.c",
        seq,
        _flowlog_model,
        decode={"events": _decode_event, "recent": _decode_event},
    )


# ------------------------------------------------------------------------ redirect maps

_NO_PROG = -1


def _redirect_setup(side: Side) -> None:
    dev = struct.pack("<Ii", 1, _NO_PROG)  # lo, no program
    side.coll.maps["tx_ports"].update(struct.pack("<I", 0), dev)
    side.coll.maps["tx_ports"].update(struct.pack("<I", 2), dev)
    side.coll.maps["tx_by_vlan"].update(struct.pack("<I", 100), dev)
    for cpu in range(min(2, NCPUS)):
        side.coll.maps["cpus"].update(struct.pack("<I", cpu), struct.pack("<Ii", 192, _NO_PROG))


def _redirect_model(case: Case) -> Expect:
    tx_ports, tx_by_vlan, cpus = {0, 2}, {100}, set(range(min(2, NCPUS)))
    actions = [0] * 5
    bss = {"last_ifindex": 0, "xsk_found": 0, "xsk_missing": 0}
    runs = []
    for r in case.runs:
        if xdp_refuses(r.data) or r.pkt == "no_such_queue":
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        if p.vlan_ids:
            act = XDP_REDIRECT if p.vlan_ids[0] in tx_by_vlan else XDP_DROP
        elif not p.l3_ok:
            act = XDP_PASS
        elif p.ethertype == ETH_P_IPV6:
            act = XDP_REDIRECT if p.src[15] & 1 in cpus else XDP_PASS
        elif p.ip_proto == IPPROTO_UDP and dport(r.data, p) == 4791:
            bss["xsk_missing"] += 1
            act = XDP_PASS
        elif p.dst[3] % 4 in tx_ports:
            bss["last_ifindex"] = 1
            act = XDP_REDIRECT
        else:
            act = XDP_PASS
        actions[act] += 1
        runs.append(outcome(r, act))
    dev = {"ifindex": 1, "bpf_prog": {"fd": 0, "id": 0}}
    return Expect(
        runs,
        {
            ".bss": [(0, bss)],
            "actions": array(actions),
            "tx_ports": [(0, dev), (2, dev)],
            "tx_by_vlan": [(100, dev)],
            "cpus": [(c, {"qsize": 192, "bpf_prog": {"fd": 0, "id": 0}}) for c in sorted(cpus)],
            "xsks": {"keys": [0, 1, 2, 3]},
        },
    )


def _redirect() -> Case:
    extra = {
        f"to_10_0_0_{i}": eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(1, 80), dst=f"10.0.0.{i}"))
        for i in range(4)
    } | {
        "v6_from_odd": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2), src="2001:db8::3")),
        "v6_from_even": eth(ETH_P_IPV6, ipv6(IPPROTO_UDP, l4_udp(1, 2), src="2001:db8::4")),
        "xsk_udp": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1, 4791, b"roce"))),
    }
    return Case(
        "corpus_redirect.c",
        runs_of("forward", STANDARD | extra),
        _redirect_model,
        setup=_redirect_setup,
    )


# ------------------------------------------------------------------------ socket maps

_SOCKMAP = {1: "udp", 2: "tcp_listen"}
_SOCKHASH = {53: "udp", 80: "tcp_listen", 443: "udp"}
ENOTSUPP = 524  # the kernel's internal "operation not supported" errno


def _sockmaps_setup(side: Side) -> None:
    for idx, kind in _SOCKMAP.items():
        side.coll.maps["sock_map"].update(
            struct.pack("<I", idx), struct.pack("<Q", side.socket_fd(kind))
        )
    for port, kind in _SOCKHASH.items():
        side.coll.maps["sock_by_port"].update(
            struct.pack("<I", port), struct.pack("<Q", side.socket_fd(kind))
        )
    side.coll.maps["reuse_group"].update(
        struct.pack("<I", 0), struct.pack("<Q", side.socket_fd("udp_reuseport"))
    )


def _sockmaps_model(case: Case) -> Expect:
    sockmap, sockhash = dict(_SOCKMAP), dict(_SOCKHASH)
    rcs = [0] * 4
    runs = []

    def note(rc: int) -> int:
        rcs[{0: 0, -errno.ENOENT: 1, -errno.EINVAL: 2}.get(rc, 3)] += 1
        return u32(rc)

    for r in case.runs:
        if r.prog in ("pick_reuseport", "steer_stream", "steer_msg"):
            runs.append(refused(r, ENOTSUPP))
            continue
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        if r.prog == "sock_peek":
            kind = sockmap.get((len(r.data)) % 4)
            cb = [0xFFFFFFFF, 0, 0, 0, 0]
            if kind is not None:
                cb = [
                    socket.AF_INET,
                    socket.SOCK_STREAM if kind == "tcp_listen" else socket.SOCK_DGRAM,
                    0,
                    0,
                    0,
                ]
            runs.append(outcome(r, TC_ACT_OK, ctx={"cb": cb}))
            continue
        p = parse(r.data)
        assert p is not None
        port = dport(r.data, p)
        if port is None:
            runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
            continue
        rc0 = 0 if sockhash.pop(port, None) else -errno.ENOENT
        rc1 = 0 if sockmap.pop(port % 4, None) else -errno.EINVAL
        runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [note(rc0), note(rc1), 0, 0, 0]}))
    return Expect(
        runs,
        {
            "sock_map": {"filled": sorted(sockmap)},
            "sock_by_port": {"filled": sorted(sockhash)},
            "reuse_group": {"filled": [0]},
            "delete_rcs": array(rcs),
        },
    )


def _sockmaps() -> Case:
    """The socket maps filled from user space, and the program types around them that
    BPF_PROG_TEST_RUN does not run (sk_reuseport, sk_skb, sk_msg): refused alike."""
    one = {"ipv4_udp": STANDARD["ipv4_udp"]}
    seq = (
        runs_of("pick_reuseport", one)
        + runs_of("steer_stream", one, ctx=ZERO_CTX)
        + runs_of("steer_msg", one)
    )
    return Case("corpus_sockmaps.c", seq, _sockmaps_model, setup=_sockmaps_setup)


def _sockmaps_evict() -> Case:
    extra = {
        "udp_to_443": eth(ETH_P_IP, ipv4(IPPROTO_UDP, l4_udp(1, 443))),
        "tcp_to_6": eth(ETH_P_IP, ipv4(IPPROTO_TCP, l4_tcp(1, 6))),
    }
    return Case(
        "corpus_sockmaps.c",
        runs_of("sock_evict", STANDARD | extra, ctx=ZERO_CTX),
        _sockmaps_model,
        setup=_sockmaps_setup,
    )


def _sockmaps_peek() -> Case:
    sizes = {f"len_{n}": udp4_of_size(n) for n in (60, 61, 62, 63)}
    return Case(
        "corpus_sockmaps.c",
        runs_of("sock_peek", sizes, ctx=ZERO_CTX),
        _sockmaps_model,
        setup=_sockmaps_setup,
        xfail="SOCKMAP lookups from programs raise NotSupportedError in the simulator (they return "
        "kernel sockets, which need the simulated socket layer: netbpf/maps/netmaps.py)",
    )


# ------------------------------------------------------------------------ callbacks

_FLOWS = {i: {"packets": i * 10, "bytes": i * 100, "age": i % 4, "pad": 0} for i in range(10)}
_WEIGHTS = [1, 2, 3, 4]
_PCPU = [[5, 6, 7]] + [[100 * (c + 1)] * 3 for c in range(1, NCPUS)]


def _loops_setup(side: Side) -> None:
    flows = side.tm("flows")
    for k, v in _FLOWS.items():
        flows[k] = v
    w = side.tm("weights")
    for i, v in enumerate(_WEIGHTS):
        w[i] = v
    pc = side.tm("pcpu_vals")
    for i in range(3):
        pc[i] = [_PCPU[c][i] for c in range(NCPUS)]


def _loops_model(case: Case) -> Expect:
    max_age = case.knobs["max_age"]
    flows = {k: dict(v) for k, v in _FLOWS.items()}
    bss = {
        "last_sum": 0,
        "last_iters": 0,
        "visited": 0,
        "aged_out": 0,
        "weighted": 0,
        "pcpu_sum": 0,
        "loop_acc": 0,
    }
    runs = []
    for r in case.runs:
        if xdp_refuses(r.data) if r.prog == "payload_sum" else skb_refuses(r.data):
            runs.append(refused(r))
            continue
        if r.prog == "payload_sum":
            payload = r.data[14 : xdp_linear(r.data)][:64]
            bss["last_sum"], bss["last_iters"] = sum(payload), len(payload)
            runs.append(outcome(r, XDP_PASS))
            continue
        for k in list(flows):
            bss["visited"] += 1
            flows[k]["age"] += 1
            if flows[k]["age"] > max_age:
                del flows[k]
                bss["aged_out"] += 1
        bss["weighted"] = sum(
            w * sum(f["packets"] for k, f in flows.items() if k % 4 == slot)
            for slot, w in enumerate(_WEIGHTS)
        )
        bss["pcpu_sum"] = sum(_PCPU[0])
        bss["loop_acc"] += sum(range(len(r.data) % 16))
        runs.append(outcome(r, TC_ACT_OK))
    return Expect(
        runs,
        {
            ".rodata": rodata(max_age=max_age),
            ".bss": [(0, bss)],
            "flows": hashed(flows),
            "weights": array(_WEIGHTS),
            "pcpu_vals": array([[_PCPU[c][i] for c in range(NCPUS)] for i in range(3)]),
        },
    )


def _loops() -> Case:
    aging = dict(list(STANDARD.items())[:6])
    seq = runs_of("payload_sum") + runs_of("flow_aging", aging)
    return Case("corpus_loops.c", seq, _loops_model, knobs={"max_age": 3}, setup=_loops_setup)


# ------------------------------------------------------------------------ global data


def _mix(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    return x


_VERDICT_OF = bytes([XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS, XDP_TX, XDP_PASS, XDP_DROP, XDP_PASS])


def _globals_model(case: Case) -> Expect:
    mult, limits = case.knobs["mult"], struct.unpack("<2I", case.knobs["limits"])
    tag = b"corpus\0\0"
    data = {"counter": 5, "last_cpu": 77}
    cfg = {"seen": 0, "last_len": 0, "last_class": 0, "flags": 0xA5, "mixed": 0}
    bss = {"hist": [0] * 4, "printk_rc": 0, "tc_marks": 0}
    runs = []
    for r in case.runs:
        if r.prog == "globals_xdp":
            if xdp_refuses(r.data):
                runs.append(refused(r))
                continue
            n = xdp_linear(r.data)
            cls = 0 if n < limits[0] else 1 if n < limits[1] else 2 if n < 2 * limits[1] else 3
            data["counter"] += n * mult
            data["last_cpu"] = 0
            bss["hist"][cls] += 1
            cfg.update(
                seen=cfg["seen"] + 1,
                last_len=n & 0xFFFF,
                last_class=cls,
                mixed=cfg["mixed"] ^ _mix(n + tag[0]),
            )
            bss["printk_rc"] = len(f"corpus len {n} class {cls}")
            runs.append(outcome(r, _VERDICT_OF[n & 7]))
        else:
            if skb_refuses(r.data):
                runs.append(refused(r))
                continue
            proto = get16(r.data, 12)
            cls = (
                6
                if proto == ETH_P_IPV6
                else (4 if len(r.data) > limits[0] else 5)
                if proto == ETH_P_IP
                else 1
            )
            bss["tc_marks"] += 1
            runs.append(
                outcome(r, TC_ACT_SHOT if cls == 1 else TC_ACT_OK, ctx={"mark": cls * 1000 + mult})
            )
    return Expect(
        runs,
        {
            ".rodata": rodata(
                mult=mult, tag=tag, **{"globals_xdp.____fmt": b"corpus len %u class %d\0"}
            ),
            ".rodata.limits": [(0, {"limits": list(limits)})],
            ".rodata.cst8": [(0, {"verdict_of": _VERDICT_OF})],
            ".data": [(0, data)],
            ".data.cfg": [(0, {"cfg": cfg})],
            ".bss": [(0, bss)],
        },
    )


def _globals() -> Case:
    seq = runs_of("globals_xdp") + runs_of("globals_tc", ctx=ZERO_CTX)
    return Case(
        "corpus_globals.c",
        seq,
        _globals_model,
        knobs={"mult": 3, "limits": struct.pack("<2I", 64, 512)},
    )


# ------------------------------------------------------------------------ XDP trim/pad

_META_MAGIC = 0x4D455441


def _trim_model(case: Case) -> Expect:
    snap = case.knobs["snaplen"]
    v = {"meta_ok": 0, "meta_rc": 0, "tail_rc": 0, "store_rc": 0, "load_rc": 0, "past_end_rc": 0,
         "last_tail": 0, "final_len": 0}  # fmt: skip
    runs = []
    for r in case.runs:
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        total = len(r.data)
        if r.prog == "trim_frags":
            out = r.data
            if total > snap:
                v["tail_rc"] = 0
                out = r.data[:snap]
            v["final_len"] = len(out)
            v["load_rc"] = 0
            v["last_tail"] = le32(out[-4:])
            runs.append(outcome(r, XDP_PASS, out))
            continue
        n = xdp_linear(r.data)
        delta = snap - n if n > snap else 64 - n if n < 64 else 0
        out = r.data[: total + delta] if delta <= 0 else r.data + bytes(delta)
        v["tail_rc"] = 0
        new_linear = n + delta if total == n or delta >= 0 else min(total + delta, XDP_MAX)
        if delta > 0 and new_linear >= 4:
            out = out[:-4] + b"PAD!"
            v["store_rc"] = 0
        if new_linear >= 4:
            v["load_rc"] = 0
            v["last_tail"] = le32(out[new_linear - 4 : new_linear])
        v["past_end_rc"] = -EINVAL
        if n >= new_linear:
            v["meta_ok"] += 1
        v["final_len"] = len(out)
        meta = struct.pack("<II", _META_MAGIC, n)
        runs.append(outcome(r, XDP_PASS, meta + out))
    return Expect(
        runs,
        {".rodata": rodata(snaplen=snap), ".rodata.str1.1": [(0, b"PAD!\0")], ".bss": [(0, v)]},
    )


def _trim() -> Case:
    jumbo = {"jumbo_8000": udp4_of_size(8000, dst="10.0.0.8")}
    seq = runs_of("trim") + runs_of("trim_frags", STANDARD | jumbo)
    return Case("corpus_trim.c", seq, _trim_model, knobs={"snaplen": 128})


# ------------------------------------------------------------------------ tc DNAT

_DNAT = {
    (ip4("10.0.0.2"), 80, IPPROTO_TCP): (ip4("192.168.50.10"), 8080),
    (ip4("10.0.0.2"), 53, IPPROTO_UDP): (ip4("192.168.50.53"), 5353),
    (ip4("10.0.0.3"), 4791, IPPROTO_UDP): (ip4("192.168.50.3"), 4791),
}


def _dnat_setup(side: Side) -> None:
    m = side.tm("dnat")
    for (addr, port, proto), (naddr, nport) in _DNAT.items():
        m[_vip_key(addr, port, proto)] = {"addr": le32(naddr), "port": be16(nport), "pad": 0}


def _tcnat_model(case: Case) -> Expect:
    stats = [0] * 3
    runs = []
    for r in case.runs:
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        p = parse(r.data)
        assert p is not None
        port = dport(r.data, p)
        if p.ethertype != ETH_P_IP or p.l4 is None or p.fragment or port is None:
            stats[1] += 1
            runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
            continue
        t = _DNAT.get((p.dst, port, p.ip_proto))
        if t is None:
            stats[1] += 1
            runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
            continue
        naddr, nport = t
        out = bytearray(r.data)
        l3 = p.l3
        assert l3 is not None
        coff = p.l4 + (16 if p.ip_proto == IPPROTO_TCP else 6)
        c = get16(out, coff)
        if not (p.ip_proto == IPPROTO_UDP and c == 0):
            c = csum_replace(c, p.dst, naddr)
            c = csum_replace(c, struct.pack("!H", port), struct.pack("!H", nport))
            if p.ip_proto == IPPROTO_UDP and c == 0:
                c = 0xFFFF
            put16(out, coff, c)
        put16(out, l3 + 10, csum_replace(get16(out, l3 + 10), p.dst, naddr))
        out[l3 + 16 : l3 + 20] = naddr
        put16(out, p.l4 + 2, nport)
        assert ipv4_header_ok(bytes(out), l3)
        if len(out) >= l3 + get16(out, l3 + 2):
            assert l4_checksum_ok(bytes(out), l3), r.pkt
        stats[0] += 1
        hash_after_invalidate = 0
        cb = [0, 1, 0x5EED0000 | nport, 1, hash_after_invalidate]
        runs.append(outcome(r, TC_ACT_OK, bytes(out), ctx={"cb": cb}))
    items = [
        (_vip_key(*k), {"addr": le32(a), "port": be16(pt), "pad": 0})
        for k, (a, pt) in _DNAT.items()
    ]
    return Expect(runs, {"dnat": _sort(items), "nat_stats": array(stats)})


def _tcnat() -> Case:
    return Case("corpus_tcnat.c", runs_of("dnat_tc", ctx=ZERO_CTX), _tcnat_model, setup=_dnat_setup)


# ------------------------------------------------------------------------ tc pad/trim/push


def _pad_model(case: Case) -> Expect:
    mtu = case.knobs["mtu"]
    src, dst = bytes.fromhex("0200000000aa"), bytes.fromhex("0200000000bb")
    bss = {"padded": 0, "trimmed": 0, "pushed": 0}
    runs = []
    for r in case.runs:
        if skb_refuses(r.data):
            runs.append(refused(r))
            continue
        n = len(r.data)
        if r.prog == "normalise":
            out = r.data
            if n < 60:
                out = r.data + bytes(60 - n)
                bss["padded"] += 1
            elif n > mtu + 14:
                out = r.data[: mtu + 14]
                bss["trimmed"] += 1
            runs.append(outcome(r, TC_ACT_OK, out, ctx={"cb": [0, len(out), 0, 0, 0]}))
        else:
            if get16(r.data, 12) != ETH_P_EXP:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
                continue
            bss["pushed"] += 1
            out = dst + src + struct.pack("!H", ETH_P_EXP) + r.data
            runs.append(outcome(r, TC_ACT_OK, out, ctx={"cb": [0, n + 14, 0, 0, 0]}))
    return Expect(
        runs,
        {
            ".rodata": rodata(mtu=mtu, outer_src=src, outer_dst=dst),
            ".bss": [(0, bss)],
        },
    )


def _pad() -> Case:
    exp = {f"exp_{n}": eth(ETH_P_EXP, bytes(range(n))) for n in (1, 46, 200)}
    pk = STANDARD | exp
    seq = runs_of("normalise", pk, ctx=ZERO_CTX) + runs_of("push_outer", pk, ctx=ZERO_CTX)
    return Case("corpus_pad.c", seq, _pad_model, knobs={"mtu": 1000})


# ------------------------------------------------------------------------ helper error paths

E = errno
#: what the running kernel (6.18) answers, per call of corpus_edges.c; notes:
#: [1] an unknown VLAN protocol is taken as 802.1Q; [2] bpf_csum_diff no longer
#: insists on 4-byte multiples (the sum of the 3 bytes' complement); [15] the
#: verifier inlines bpf_loop and its -E2BIG is a 32-bit move (zero-extended)
_TC_RC = [
    -E.EINVAL, 0, 0xFDFB, -E.EFAULT, -E.EINVAL, -E.EFAULT, -E.EINVAL, -ENOTSUPP, -E.EINVAL,
    None, -E.EEXIST, -E.E2BIG, -E.EINVAL, -E.EEXIST, -E.E2BIG, u32(-E.E2BIG), -E.EINVAL,
    -E.EINVAL, -E.ENOENT, -E.ENOMEM, -ENOTSUPP, 0, -E.ENOENT * 100, 1,
]  # fmt: skip


def _edges_model(case: Case) -> Expect:
    tc_rc, xdp_rc = [0] * 24, [0] * 12
    hash_set = False
    runs = []
    for r in case.runs:
        if r.prog == "edges_tc":
            if skb_refuses(r.data):
                runs.append(refused(r))
                continue
            tc_rc = list(_TC_RC)
            tc_rc[9] = -E.EEXIST if hash_set else 0
            hash_set = True
            # [21] bpf_skb_vlan_pop drops the accelerated tag [1] pushed, then moves an
            # in-band tag (if any) into its place: the frame loses its outer tag
            tagged = get16(r.data, 12) in (ETH_P_8021Q, ETH_P_8021AD)
            runs.append(outcome(r, TC_ACT_OK, r.data[:12] + r.data[16:] if tagged else r.data))
            continue
        if xdp_refuses(r.data):
            runs.append(refused(r))
            continue
        n, total = xdp_linear(r.data), len(r.data)
        frags = total > n
        # meta -40 succeeds (the headroom is zeroed); the shrink to 10 bytes only works
        # on a multi-buffer frame, whose fragments then carry the rest
        xdp_rc = [-E.EINVAL, -E.EINVAL, -E.EINVAL, 0 if frags else -E.EINVAL, -E.EACCES, 0,
                  -E.EINVAL, -E.EINVAL, XDP_PASS, XDP_REDIRECT, 0, 0]  # fmt: skip
        out = bytes(40) + (r.data[: total - (n - 10)] if frags else r.data)
        runs.append(outcome(r, XDP_PASS, out))
    return Expect(
        runs,
        {
            ".bss": [(0, {"tc_rc": tc_rc, "xdp_rc": xdp_rc})],
            "e_hash": [(0, 7)] if hash_set else [],
            "e_array": array([0] * 4),
            "e_devs": [],
            "e_jump": [],
        },
        {"e_queue": [], "e_ring": []},
    )


def _edges() -> Case:
    seq = runs_of("edges_tc") + runs_of("edges_xdp")
    return Case("corpus_edges.c", seq, _edges_model)


# ------------------------------------------------------------------------ VXLAN

_VNI = 0x123456
_VTEP_LOCAL, _VTEP_REMOTE = ip4("192.0.2.10"), ip4("192.0.2.20")


def vxlan_wrap(frame: bytes, vni: int, src: bytes, dst: bytes) -> bytes:
    """``frame`` in outer IPv4/UDP/VXLAN headers, behind a copy of its own Ethernet
    header -- what corpus_vxlan.c's encapsulation produces."""
    n = len(frame)
    ip = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, n - 14 + 50, 0, 0x4000, 64, IPPROTO_UDP, 0, src, dst)
    )
    put16(ip, 10, csum16(bytes(ip)))
    udp = struct.pack("!HHHH", 49152 | (n & 0x3FFF), 4789, 16 + n, 0)
    vx = struct.pack("!II", 0x08000000, vni << 8)
    return frame[:14] + bytes(ip) + udp + vx + frame


def _vxlan_model(case: Case) -> Expect:
    stats = [0] * 4
    runs = []
    for r in case.runs:
        d = r.data
        if r.prog == "vxlan_encap":
            if skb_refuses(d):
                runs.append(refused(r))
            elif get16(d, 12) != ETH_P_IP:
                runs.append(outcome(r, TC_ACT_OK, ctx={"cb": [0] * 5}))
            else:
                stats[0] += 1
                out = vxlan_wrap(d, _VNI, _VTEP_LOCAL, _VTEP_REMOTE)
                runs.append(outcome(r, TC_ACT_OK, out, ctx={"cb": [0] * 5}))
            continue
        if xdp_refuses(d):
            runs.append(refused(r))
            continue
        ours = (
            len(d) >= 64 and get16(d, 12) == ETH_P_IP and d[14] & 0xF == 5 and d[23] == IPPROTO_UDP
            and get16(d, 36) == 4789 and d[30:34] == _VTEP_LOCAL
        )  # fmt: skip
        if not ours:
            runs.append(outcome(r, XDP_PASS))
        elif struct.unpack_from("!I", d, 46)[0] != _VNI << 8:
            stats[2] += 1
            runs.append(outcome(r, XDP_DROP))
        else:
            stats[1] += 1
            runs.append(outcome(r, XDP_PASS, d[50:]))
    return Expect(
        runs,
        {
            ".rodata": rodata(
                vni=_VNI, vtep_local=le32(_VTEP_LOCAL), vtep_remote=le32(_VTEP_REMOTE)
            ),
            "vx_stats": array(stats),
        },
    )


def _vxlan() -> Case:
    to_us = {
        f"vxlan_{k}": vxlan_wrap(STANDARD[k], _VNI, _VTEP_REMOTE, _VTEP_LOCAL)
        for k in ("ipv4_tcp", "ipv6_udp", "vlan_ipv4_udp", "arp")
    }
    to_us["vxlan_other_vni"] = vxlan_wrap(STANDARD["ipv4_udp"], 77, _VTEP_REMOTE, _VTEP_LOCAL)
    to_us["vxlan_not_ours"] = vxlan_wrap(
        STANDARD["ipv4_udp"], _VNI, _VTEP_REMOTE, ip4("192.0.2.99")
    )
    seq = runs_of("vxlan_encap", ctx=ZERO_CTX) + runs_of("vxlan_decap", STANDARD | to_us)
    knobs = {"vni": _VNI, "vtep_local": le32(_VTEP_LOCAL), "vtep_remote": le32(_VTEP_REMOTE)}
    return Case("corpus_vxlan.c", seq, _vxlan_model, knobs=knobs)


# ======================================================================== the tests

CASES: dict[str, Callable[[], Case]] = {
    "ddos": _ddos,
    "lb": _lb,
    "acl": _acl,
    "vlan": _vlan,
    "ipip": _ipip,
    "siit": _siit,
    "sampler": _sampler,
    "sampler_full": _sampler_full,
    "ddos_flood": _ddos_flood,
    "meter": _meter,
    "pipeline": _pipeline,
    "sockfilter": _sockfilter,
    "cgroup": _cgroup,
    "tenants": _tenants,
    "flowlog": _flowlog,
    "redirect": _redirect,
    "sockmaps": _sockmaps,
    "sockmaps_evict": _sockmaps_evict,
    "sockmaps_peek": _sockmaps_peek,
    "loops": _loops,
    "globals": _globals,
    "trim": _trim,
    "tcnat": _tcnat,
    "pad": _pad,
    "edges": _edges,
    "vxlan": _vxlan,
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_sim(
    name: str, engine: str, compile_bpf: Any, request: pytest.FixtureRequest
) -> None:
    """The simulator (each execution engine) against the Python model of the program."""
    case = CASES[name]()
    if case.xfail:
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.xfail))
    with SimBackend(engine=engine) as sim:
        obs = observe(sim, case, compile_bpf)
    problems = check_model(obs, case.model(case))
    assert not problems, f"{case.source}: simulator vs model:\n" + "\n".join(problems[:30])


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_kernel(
    name: str, kernel: Any, compile_bpf: Any, request: pytest.FixtureRequest
) -> None:
    """The kernel against the model, and the simulator against the kernel."""
    case = CASES[name]()
    with on_cpu0():
        want = observe(kernel, case, compile_bpf)
    problems = check_model(want, case.model(case))
    assert not problems, f"{case.source}: KERNEL vs model:\n" + "\n".join(problems[:30])
    if case.xfail:
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.xfail))
    for engine in ENGINES:
        with SimBackend(engine=engine) as sim:
            got = observe(sim, case, compile_bpf)
        problems = check_same(got, want)
        assert not problems, f"{case.source}: simulator ({engine}) vs kernel:\n" + "\n".join(
            problems[:30]
        )


# ======================================================================== coverage

#: what issue 3 asks the corpus to exercise
REQUIRED_MAP_TYPES = {
    MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
    MapType.HASH_OF_MAPS, MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.PERF_EVENT_ARRAY,
    MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP,
    MapType.SOCKHASH, MapType.REUSEPORT_SOCKARRAY,
}  # fmt: skip
REQUIRED_HELPERS = {
    "maps": {
        "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_push_elem", "map_pop_elem",
        "map_peek_elem", "map_lookup_percpu_elem", "ringbuf_output", "ringbuf_reserve",
        "ringbuf_submit", "ringbuf_discard", "ringbuf_query", "perf_event_output",
        "redirect_map", "sk_select_reuseport", "sk_redirect_map", "msg_redirect_hash",
    },
    "calls": {"tail_call", "loop", "for_each_map_elem"},
    "packet": {
        "xdp_adjust_head", "xdp_adjust_tail", "xdp_adjust_meta", "xdp_load_bytes",
        "xdp_store_bytes", "xdp_get_buff_len", "skb_load_bytes", "skb_load_bytes_relative",
        "skb_store_bytes", "l3_csum_replace", "l4_csum_replace", "csum_diff", "skb_change_head",
        "skb_change_tail", "skb_change_proto", "skb_adjust_room", "skb_vlan_push", "skb_vlan_pop",
        "get_hash_recalc", "set_hash", "skb_pull_data",
    },
    "base": {"ktime_get_ns", "get_prandom_u32", "get_smp_processor_id", "trace_printk", "sk_release"},
}  # fmt: skip
HELPER_NAMES = {v: k for k, v in HELPER_IDS.items()}


def corpus_sources() -> list[str]:
    from conftest import PROGS_DIR

    return sorted(p.name for p in PROGS_DIR.glob("corpus_*.c"))


def test_corpus_coverage(compile_bpf: Any) -> None:
    """The corpus covers what issue 3 lists: every map type, global data in every
    section kind with knobs set before load, static and global subprograms, tail
    calls, callbacks and each helper group -- read from the compiled objects, and
    every program of every object is run by some case."""
    from netbpf.obj.btf import FuncLinkage

    sources = corpus_sources()
    assert len(sources) >= 15, sources
    cases = [make() for make in CASES.values()]
    assert {c.source for c in cases} == set(sources), "a corpus program no case runs"
    run_progs = {(c.source, r.prog) for c in cases for r in c.runs if isinstance(r, Run)}
    map_types: set[MapType] = set()
    helpers: set[str] = set()
    sections: set[str] = set()
    static_fns: set[str] = set()
    global_fns: set[str] = set()
    for src in sources:
        spec = load_collection_spec(compile_bpf(src))
        map_types |= {MapType(m.type) for m in spec.maps.values()}
        sections |= {m.extra["section"] for m in spec.maps.values() if "section" in m.extra}
        tail_targets = {
            v[1]
            for m in spec.maps.values()
            for _, v in map_contents(m)
            if isinstance(v, tuple) and v[0] == "prog"
        }
        for name, prog in spec.programs.items():
            reached = (src, name) in run_progs or name in tail_targets
            assert reached, f"{src}: program {name} is never run (nor a tail-call target)"
            for insn in prog.insns:
                if insn.opcode == 0x85 and insn.src == 0:
                    helpers.add(HELPER_NAMES[insn.imm])
            for fi in prog.func_info[1:]:
                fn = spec.btf.type(fi.type_id)
                (global_fns if fn.linkage == FuncLinkage.GLOBAL else static_fns).add(
                    f"{src}:{fi.name}"
                )
    assert REQUIRED_MAP_TYPES <= map_types, REQUIRED_MAP_TYPES - map_types
    for group, names in REQUIRED_HELPERS.items():
        assert names <= helpers, f"helper group {group}: missing {sorted(names - helpers)}"
    assert {".data", ".rodata", ".bss"} <= sections
    assert any(s.startswith(".data.") for s in sections) and any(
        s.startswith(".rodata.") for s in sections
    )
    assert static_fns and global_fns, (static_fns, global_fns)
    assert sum(bool(c.knobs) for c in cases) >= 10  # const volatile knobs set before load
