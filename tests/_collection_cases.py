"""Shared pieces of the collection tests: whole-object scenarios run the same way on
the simulator and on the kernel, and what they observe -- every test run's retval and
data_out, Python-side map operations and their errors, ring buffer records, and every
map's contents decoded through BTF -- as plain JSON-able data to compare.

* ``SCENARIOS``: name -> :class:`Scenario` (our C in ``tests/progs``, knobs set
  before load, and the steps).  ``observe(backend, scenario, compile_bpf)`` loads and
  runs one and returns its observations.
* ``snapshot(coll)``: every map, typed.  Object ids (PROG_ARRAY and map-of-maps
  values) become the names of the programs and maps they stand for; maps whose order
  the kernel fixes (arrays, LPM tries, hash maps with BPF_F_ZERO_SEED) keep their
  iteration order, other hash maps are sorted (their order follows a random seed).
  Queues, stacks and ring buffers are left out: the scenarios drain them explicitly.
* ring buffer records are read with the collection's own consumer,
  ``coll.ringbuf(name).consume()`` (the same API on both backends).
* ``on_cpu0()``: the kernel runs a test on the CPU of the calling thread; the
  simulator on CPU 0.  Per-CPU values compare only with the process pinned there.

Golden data: ``tests/golden/collections.json`` holds the kernel's observations of
every scenario (and the possible-CPU count they were taken with), so the simulator is
compared with the kernel even where the kernel cannot be used.  Regenerate after a
deliberate change with::

    NETBPF_REGEN_GOLDEN=1 python -m pytest -m kernel tests/test_collection_both.py
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _testrun import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, eth, ipv6, tcp, udp

from netbpf.errors import MapError, TestRunError
from netbpf.obj.collection import load_collection_spec
from netbpf.uapi import MapType

Obs = list[Any]

# ------------------------------------------------------------------------------ packets


def ipv4(
    proto: int,
    payload: bytes = b"",
    *,
    src: str = "10.0.0.1",
    dst: str = "10.0.0.2",
    tos: int = 0,
    ttl: int = 64,
) -> bytes:
    def a(s: str) -> bytes:
        return bytes(int(x) for x in s.split("."))

    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), 1, 0, ttl, proto, 0, a(src), a(dst)
    )
    return hdr + payload


def ipv6_to(dst: bytes, payload: bytes = b"") -> bytes:
    pkt = bytearray(ipv6(17, payload))
    pkt[24:40] = dst
    return bytes(pkt)


ETH_P_TEST = 0x88B5  # IEEE local experimental EtherType: our own opcodes follow


def raw(first: bytes, length: int) -> bytes:
    """An Ethernet frame of ``length`` bytes whose payload starts with ``first``."""
    body = first + bytes(max(0, length - 14 - len(first)))
    return eth(ETH_P_TEST, body)[:length]


# ------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def on_cpu0() -> Iterator[None]:
    """Pin the calling thread to CPU 0 for the block (the simulator's CPU)."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def jsonable(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, enum.Enum):
        return int(v.value)
    if isinstance(v, int | float | str) or v is None:
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return "b:" + bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    raise TypeError(f"cannot make {type(v).__name__} JSON-able")


def obj_id(obj: Any) -> int:
    """A loaded program's or map's id on either backend."""
    return int(obj.info().id)


_UNSNAPSHOTTED = {MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.PERF_EVENT_ARRAY}
_ORDERED = {MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.LPM_TRIE, MapType.ARRAY_OF_MAPS}
_BPF_F_ZERO_SEED = 1 << 6


def snapshot(coll: Any) -> dict[str, Any]:
    """Every map of ``coll``, typed (see the module docstring)."""
    prog_names = {obj_id(p): n for n, p in coll.programs.items()}
    map_names = {obj_id(m): n for n, m in coll.maps.items()}
    out: dict[str, Any] = {}
    for name in sorted(coll.maps):
        m = coll.maps[name]
        if m.map_type in _UNSNAPSHOTTED:
            continue
        items = list(coll.typed_map(name).items())
        if m.map_type == MapType.PROG_ARRAY:
            items = [(k, prog_names.get(v, f"id {v}")) for k, v in items]
        elif m.map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            items = [(k, map_names.get(v, f"id {v}")) for k, v in items]
        data = jsonable(items)
        ordered = m.map_type in _ORDERED or m.flags & _BPF_F_ZERO_SEED
        out[name] = data if ordered else sorted(data, key=lambda kv: json.dumps(kv))
    return out


class Runner:
    """Records what a scenario sees."""

    def __init__(self, coll: Any) -> None:
        self.coll = coll
        self.obs: Obs = []

    def run(self, prog: str, data: bytes, ctx_in: bytes | None = None) -> int | None:
        try:
            r = self.coll.programs[prog].test_run(data, ctx_in)
        except TestRunError as e:
            self.obs.append({"run": prog, "len": len(data), "refused": e.errno})
            return None
        out = r.data_out.hex() if r.data_out != data else "same"
        self.obs.append({"run": prog, "len": len(data), "retval": r.retval, "data_out": out})
        return r.retval

    def snap(self, label: str = "") -> None:
        self.obs.append({"snapshot": label, "maps": snapshot(self.coll)})

    def variables(self) -> None:
        self.obs.append(
            {"variables": {n: jsonable(v.get()) for n, v in self.coll.variables.items()}}
        )

    def do(self, label: str, fn: Callable[[], Any]) -> Any:
        """A Python-side operation: its (JSON-able) result or its errno."""
        try:
            got = fn()
        except MapError as e:
            self.obs.append({"op": label, "errno": e.errno})
            return None
        self.obs.append({"op": label, "result": jsonable(got)})
        return got

    def ringbuf(self, name: str) -> None:
        self.obs.append({"ringbuf": name, "records": jsonable(self.coll.ringbuf(name).consume())})


@dataclass
class Scenario:
    source: str
    steps: Callable[[Runner], None]
    knobs: dict[str, Any] = field(default_factory=dict)
    #: CO-RE: needs the target BTF
    core: bool = False


# ------------------------------------------------------------------------------ scenarios


def _counters(r: Runner) -> None:
    tcp_ = 6
    pkts = [
        eth(ETH_P_IP, ipv4(tcp_, tcp(), src="10.0.0.1")),
        eth(ETH_P_IP, ipv4(17, udp(), src="10.0.0.2")),
        eth(ETH_P_IP, ipv4(tcp_, tcp(payload=bytes(100)), src="10.0.0.1", ttl=3)),
        eth(ETH_P_ARP, bytes(28)),
        eth(ETH_P_IPV6, ipv6(17, udp())),
        eth(ETH_P_IP, ipv4(1, bytes(8), src="10.0.0.3")),
        eth(ETH_P_IP, ipv4(tcp_, tcp(), src="10.0.0.4")),
    ]
    for p in pkts:
        r.run("count_pkts", p)
    r.snap("first packets")
    # more distinct sources than the 4-entry LRU maps hold; lengths that repeat
    for i in range(5, 13):
        r.run("count_pkts", eth(ETH_P_IP, ipv4(tcp_, tcp(payload=bytes(i % 3)), src=f"10.0.0.{i}")))
        r.run("count_pkts", eth(ETH_P_IP, ipv4(17, udp(), src=f"10.0.0.{i % 4 + 1}")))
    r.run("count_pkts", eth(ETH_P_IP, ipv4(tcp_, tcp(), src="10.0.0.12", tos=0x10)))
    r.run("count_pkts", eth(ETH_P_IP, ipv4(tcp_, tcp(), src="10.0.0.99", tos=0x10)))
    r.variables()
    r.snap("after eviction")
    # Python-side operations through the Map protocol
    by_len = r.coll.maps["by_len"]
    byproto = r.coll.maps["by_ethertype"]
    key_arp = struct.pack("<H", ETH_P_ARP)
    r.do(
        "by_len batch update",
        lambda: by_len.update_batch(
            [(struct.pack("<I", i), struct.pack("<Q", 100 + i)) for i in (1, 3)]
        ),
    )
    r.do("by_len batch lookup", lambda: by_len.lookup_batch(count=3))
    r.do("by_ethertype delete arp", lambda: byproto.delete(key_arp))
    r.do("by_ethertype delete arp again", lambda: byproto.delete(key_arp))
    r.do(
        "by_ethertype noexist",
        lambda: byproto.update(struct.pack("<H", ETH_P_IP), bytes(16), flags=1),
    )
    r.do("by_ethertype exist missing", lambda: byproto.update(key_arp, bytes(16), flags=2))
    r.do("by_ethertype batch", lambda: sorted(byproto.lookup_batch(count=1)))
    r.do("by_ethertype delete batch", lambda: byproto.delete_batch([struct.pack("<H", ETH_P_IPV6)]))
    r.do("by_len out of range", lambda: by_len.update(struct.pack("<I", 8), bytes(8)))
    r.do("pcpu_pkts raw", lambda: r.coll.maps["pcpu_pkts"].lookup(struct.pack("<I", 0)))
    r.do(
        "recent_src lookup_and_delete",
        lambda: r.coll.maps["recent_src"].lookup_and_delete(bytes([10, 0, 0, 12])),
    )
    r.run("count_pkts", eth(ETH_P_ARP, bytes(28)))
    r.snap("after Python")


def _lookup(r: Runner) -> None:
    r4 = r.coll.typed_map("routes4")

    def pfx(plen: int, *octets: int) -> dict[str, Any]:
        return {"prefixlen": plen, "addr": bytes(octets)}

    r4[pfx(8, 10, 0, 0, 0)] = {"nexthop": 1, "hits": 0}
    r4[pfx(24, 10, 0, 0, 0)] = {"nexthop": 2, "hits": 0}
    r4[pfx(32, 10, 0, 0, 2)] = {"nexthop": 3, "hits": 0}
    r4[pfx(16, 192, 168, 0, 0)] = {"nexthop": 4, "hits": 0}
    r4[pfx(0, 0, 0, 0, 0)] = {"nexthop": 9, "hits": 0}
    r6 = r.coll.typed_map("routes6")
    net6 = bytes.fromhex("20010db8000000000000000000000000")
    r6[{"prefixlen": 32, "addr": net6}] = 6
    r6[{"prefixlen": 127, "addr": bytes.fromhex("20010db8000000000000000000000002")}] = 7
    for dst in ("10.0.0.2", "10.0.0.9", "10.1.2.3", "192.168.7.7", "172.16.0.1", "10.0.0.2"):
        r.run("route", eth(ETH_P_IP, ipv4(17, udp(), dst=dst)))
    r.run("route", eth(ETH_P_IPV6, ipv6(17, udp())))
    r.run("route", eth(ETH_P_IPV6, ipv6_to(bytes.fromhex("20010db8ffff00000000000000000001"))))
    r.run("route", eth(ETH_P_IPV6, ipv6_to(bytes(16))))
    r.snap("routes")
    r.do("delete /32", lambda: r.coll.maps["routes4"].delete(struct.pack("<I4B", 32, 10, 0, 0, 2)))
    r.do("delete /0", lambda: r.coll.maps["routes4"].delete(struct.pack("<I4B", 0, 0, 0, 0, 0)))
    r.do(
        "delete missing",
        lambda: r.coll.maps["routes4"].delete(struct.pack("<I4B", 31, 10, 0, 0, 2)),
    )
    r.do(
        "bad prefixlen",
        lambda: r.coll.maps["routes4"].update(struct.pack("<I4B", 33, 10, 0, 0, 2), bytes(8)),
    )
    for dst in ("10.0.0.2", "172.16.0.1"):
        r.run("route", eth(ETH_P_IP, ipv4(17, udp(), dst=dst)))
    r.variables()
    r.snap("after deletes")


def _queue(r: Runner) -> None:
    fifo, lifo = r.coll.maps["fifo"], r.coll.maps["lifo"]
    for n in (40, 41, 42, 43, 44):
        r.run("qs", raw(b"\x00", n))  # push; the fifth finds both full
    r.run("qs", raw(b"\x01", 50))  # push with BPF_EXIST: overwrite
    r.run("qs", raw(b"\x03", 40))  # peek
    r.run("qs", raw(b"\x02", 40))  # pop
    r.do("python pop fifo", fifo.pop)
    r.do("python peek lifo", lifo.peek)
    r.do("python push full", lambda: fifo.push(struct.pack("<I", 7)))
    r.do("python push exist", lambda: fifo.push(struct.pack("<I", 8), flags=2))
    r.do("python push bad size", lambda: fifo.push(b"\x01\x02"))
    for _ in range(6):
        r.run("qs", raw(b"\x02", 40))  # pop until empty, then -ENOENT
    r.run("qs", raw(b"\x03", 40))
    r.do("python pop empty", lifo.pop)
    r.do("python peek empty", fifo.peek)
    r.do("python push", lambda: lifo.push(struct.pack("<I", 0xABCD)))
    r.run("qs", raw(b"\x02", 40))
    r.run("qs", raw(b"\x09", 40))
    r.do("drain fifo", lambda: _drain(fifo))
    r.do("drain lifo", lambda: _drain(lifo))


def _drain(m: Any) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(m.pop())
        except MapError:
            return out


def _ringbuf(r: Runner) -> None:
    for i in range(40):
        r.run("rb", raw(bytes([i & 0xFF]), 20 + (i * 7) % 90))
    r.ringbuf("events")
    r.variables()
    for i in range(40, 200):  # enough to fill the 4 KiB ring: records are dropped
        r.run("rb", raw(bytes([i & 0xFF]), 20 + (i * 7) % 90))
    r.variables()
    r.ringbuf("events")
    for i in range(200, 260):  # the positions wrap around the ring's end
        r.run("rb", raw(bytes([i & 0xFF]), 20 + (i * 11) % 100))
    r.variables()
    r.ringbuf("events")
    r.run("rb", raw(b"x", 22))
    r.variables()


def _calls(r: Runner) -> None:
    arr = r.coll.typed_map("arr")
    for i in range(8):
        arr[i] = i * 3
    for n, sel in enumerate((0, 3, 7, 9, 200, 1, 2, 5, 15, 4, 6, 8)):
        r.run("calls", raw(bytes([sel]), 15 + (n * 13) % 70))
        if n % 4 == 3:
            r.variables()
            r.snap(f"after {n + 1}")
    r.do("h keys in order", lambda: list(r.coll.maps["h"].keys()))


def _tailchain(r: Runner) -> None:
    for n in (15, 40):
        r.run("chain", raw(b"\x00", n))
    for sel in (0, 1, 2, 3):
        r.run("entry_sub", raw(bytes([sel]), 20))
    r.variables()
    progs = r.coll.maps["progs"]
    chain_fd = r.coll.programs["chain"].fd
    r.do("slot 2 = chain", lambda: progs.update(struct.pack("<I", 2), struct.pack("<I", chain_fd)))
    r.do(
        "slot 4 out of range",
        lambda: progs.update(struct.pack("<I", 4), struct.pack("<I", chain_fd)),
    )
    r.do(
        "slot 3 flags",
        lambda: progs.update(struct.pack("<I", 3), struct.pack("<I", chain_fd), flags=1),
    )
    r.snap("slot 2 filled")
    r.run("entry_sub", raw(b"\x02", 20))  # a tail call from a subprogram into the chain
    r.variables()
    r.do("delete slot 0", lambda: progs.delete(struct.pack("<I", 0)))
    r.do("delete slot 0 again", lambda: progs.delete(struct.pack("<I", 0)))
    r.run("chain", raw(b"\x00", 20))
    r.run("entry_sub", raw(b"\x02", 20))
    r.variables()
    r.snap("end")


def _data(r: Runner) -> None:
    for n in (60, 64, 100, 200, 300, 2000, 14):
        r.run("data_prog", eth(ETH_P_IP, ipv4(17, bytes(max(0, n - 34))))[: max(n, 34)])
    r.variables()
    r.do("rodata write", lambda: r.coll.variables["enable_rewrite"].set(1))
    r.do("data write", lambda: r.coll.variables["pkt_count"].set(5))
    r.run("data_prog", eth(ETH_P_IP, ipv4(17, bytes(30))))
    r.snap("end")


def _maps2(r: Runner) -> None:
    for n, key in enumerate((0, 1, 2, 3, 4, 1, 9, 5, 6, 8, 7, 2)):
        r.run("maps2", raw(bytes([key]), 20 + n * 9))
        if n % 4 == 3:
            r.variables()
            r.snap(f"after {n + 1}")
    small, outer, guarded = (r.coll.maps[n] for n in ("small", "outer", "guarded"))
    r.do("small full", lambda: small.update(struct.pack("<I", 77), struct.pack("<I", 1)))
    r.do("small exist", lambda: small.update(struct.pack("<I", 0), struct.pack("<I", 5), flags=2))
    r.do("small keys", lambda: sorted(small.keys()))
    locked = struct.pack("<IIQ", 0xFFFF, 7, 700)  # the lock word is never written
    r.do("locked update", lambda: guarded.update(struct.pack("<I", 1), locked, flags=4))
    r.do("locked lookup", lambda: guarded.lookup(struct.pack("<I", 1), flags=4))
    r.do("lock flag on a lockless map", lambda: small.lookup(struct.pack("<I", 0), flags=4))
    r.do("outer delete", lambda: outer.delete(struct.pack("<I", 0)))
    inner_b = r.coll.maps["inner_b"].fd
    r.do("outer insert", lambda: outer.update(struct.pack("<I", 2), struct.pack("<I", inner_b)))
    r.do("outer bad fd", lambda: outer.update(struct.pack("<I", 3), struct.pack("<I", 9999)))
    r.run("maps2", raw(b"\x00", 30))
    r.variables()
    r.snap("end")


def _redirect(r: Runner) -> None:
    devs, devs_h, cpus = (r.coll.maps[n] for n in ("devs", "devs_h", "cpus"))
    u32 = struct.Struct("<I").pack
    r.do("devs[1] = lo", lambda: devs.update(u32(1), u32(1)))
    r.do("devs[2] = no such device", lambda: devs.update(u32(2), u32(4242)))
    r.do("devs_h[7] = lo", lambda: devs_h.update(u32(7), struct.pack("<Ii", 1, 0)))
    r.do("devs_h[3] = lo, bad prog fd", lambda: devs_h.update(u32(3), struct.pack("<Ii", 1, 9999)))
    r.do("cpus[0] qsize 64", lambda: cpus.update(u32(0), struct.pack("<Ii", 64, 0)))
    r.do("cpus[1] qsize 0", lambda: cpus.update(u32(1), struct.pack("<Ii", 0, 0)))
    r.do("cpus[2] out of range", lambda: cpus.update(u32(2), struct.pack("<Ii", 64, 0)))
    r.do("devs lookup", lambda: devs.lookup(u32(1)))
    r.do("devs_h lookup", lambda: devs_h.lookup(u32(7)))
    r.do("cpus lookup", lambda: cpus.lookup(u32(0)))
    r.do("devs empty slot", lambda: devs.lookup(u32(0)))
    for map_sel in range(4):
        for key in (0, 1, 7):
            for miss in (1, 2):
                r.run("redir", raw(bytes([key << 2 | map_sel, miss]), 40))
    r.do("devs delete", lambda: devs.delete(u32(1)))
    r.run("redir", raw(bytes([1 << 2, 2]), 40))
    r.snap("end")


def _globals(r: Runner) -> None:
    for n in (61, 77, 130, 131, 64):
        r.run("globals_prog", bytes(n))
    r.variables()
    r.snap("runs")
    r.coll.variables["total_bytes"].set(0)
    r.coll.typed_map("stats")[3] = {"packets": 5, "tag": "hey", "parity": 1}
    r.run("globals_prog", bytes(64))
    r.variables()
    r.snap("after writes")


def _tail(r: Runner) -> None:
    for n in (65, 121, 160, 99, 151):
        r.run("entry", bytes(n))
    r.variables()
    r.snap("end")


def _core(r: Runner) -> None:
    for n in (90, 14, 13):
        r.run("core_prog", bytes(n))
    r.variables()


SCENARIOS: dict[str, Scenario] = {
    "counters": Scenario("coll_counters.c", _counters),
    "lookup": Scenario("coll_lookup.c", _lookup),
    "queue": Scenario("coll_queue.c", _queue),
    "ringbuf": Scenario("coll_ringbuf.c", _ringbuf),
    "calls": Scenario("coll_calls.c", _calls),
    "tailchain": Scenario("coll_tailchain.c", _tailchain),
    "data_default": Scenario("coll_data.c", _data),
    "data_knobs": Scenario(
        "coll_data.c",
        _data,
        knobs={
            "cfg": {"mode": 2, "mac": bytes.fromhex("0a0b0c0d0e0f"), "port": 443},
            "thresholds": [100, 200, 300, 400],
            "enable_rewrite": 1,
        },
    ),
    "maps2": Scenario("coll_maps2.c", _maps2),
    "redirect": Scenario("coll_redirect.c", _redirect),
    "globals": Scenario("coll_globals.c", _globals, knobs={"verdict": 1, "loop_mult": 3}),
    "tail": Scenario("coll_tail.c", _tail),
    "core": Scenario("coll_core.c", _core, core=True),
}


def load_spec(scenario: Scenario, compile_bpf: Callable[..., Path]) -> Any:
    """The scenario's spec with its knobs set (typed through BTF)."""
    from netbpf.obj.btf_values import value_codec

    spec = load_collection_spec(compile_bpf(scenario.source)).copy()
    for name, value in scenario.knobs.items():
        var = spec.variables[name]
        raw_value = value_codec(spec.btf, var.type_id).encode(value)
        var.set(raw_value)
    return spec


def observe(backend: Any, scenario: Scenario, compile_bpf: Callable[..., Path]) -> Obs:
    """Load the scenario on ``backend``, run its steps, return the observations."""
    spec = load_spec(scenario, compile_bpf)
    with backend.load(spec) as coll:
        r = Runner(coll)
        scenario.steps(r)
        return r.obs


def first_difference(got: Obs, want: Obs) -> str:
    """Where two observation lists part (for assertion messages)."""
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            if isinstance(g, dict) and isinstance(w, dict) and "maps" in g and "maps" in w:
                diffs = {
                    k: (g["maps"].get(k), w["maps"].get(k))
                    for k in sorted(set(g["maps"]) | set(w["maps"]))
                    if g["maps"].get(k) != w["maps"].get(k)
                }
                return f"step {i} ({g.get('snapshot')}): maps differ (sim, kernel): {diffs}"
            return f"step {i}:\n  sim:    {g}\n  kernel: {w}"
    return f"lengths differ: sim {len(got)} steps, kernel {len(want)}"


# ------------------------------------------------------------------------------ golden

GOLDEN_FILE = Path(__file__).parent / "golden" / "collections.json"
REGEN = os.environ.get("NETBPF_REGEN_GOLDEN") == "1"
_golden: dict[str, Any] | None = None
_updates: dict[str, Any] = {}


def golden() -> dict[str, Any]:
    global _golden
    if _golden is None:
        _golden = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    return _golden


def record_golden(name: str, ncpus: int, obs: Obs) -> None:
    _updates[name] = {"ncpus": ncpus, "obs": obs}


@atexit.register
def _write_golden() -> None:
    if REGEN and _updates:
        data = {**golden(), **_updates}
        GOLDEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
