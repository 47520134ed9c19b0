"""Whole objects through the backend-neutral Collection, on both backends.

Every test here takes the ``backend`` fixture and runs twice: on a fresh
:class:`netbpf.SimBackend` and on the running kernel (:class:`netbpf.KernelBackend`;
skipped with the probe's reason where bpf() is unusable).  The assertions are the
same for both -- expected values written from the C source -- so a pass means the
simulator and the kernel agree with the source and with each other.

``test_scenario_same_as_kernel`` then runs the scenarios of
``tests/_collection_cases.py`` (our C in tests/progs: counters in every hash/array
flavour with LRU eviction, LPM routing, queues and stacks, ring buffers, bpf_loop and
for_each_map_elem callbacks, tail-call chains, global data and knobs, CO-RE) on the
kernel and on every simulator engine and compares every observation: retval,
data_out, Python-side map operations and their errnos, ring buffer records, and
every map's typed contents after each step.

The kernel runs with the test process pinned to CPU 0, where the simulator runs.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _collection_cases import (
    REGEN,
    SCENARIOS,
    first_difference,
    golden,
    ipv4,
    obj_id,
    observe,
    on_cpu0,
    raw,
    record_golden,
)
from _testrun import ETH_P_IP, eth, udp

from netbpf.backend import Map, Program
from netbpf.collection import Collection
from netbpf.errors import BtfValueError, MapError, MapKeyNotFoundError, NetbpfError
from netbpf.kernel.loader import object_name
from netbpf.maps import possible_cpus
from netbpf.obj.collection import load_collection_spec
from netbpf.sim import SimBackend
from netbpf.uapi import XdpAction
from netbpf.vm.engine import ENGINES

NCPUS = possible_cpus()


@pytest.fixture(params=["sim", pytest.param("kernel", marks=pytest.mark.kernel)])
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh simulator, or the kernel with this process pinned to CPU 0."""
    if request.param == "sim":
        with SimBackend() as sim:
            yield sim
        return
    kernel = request.getfixturevalue("kernel")
    with on_cpu0():
        yield kernel


@pytest.fixture
def pin_dir(backend: Any) -> Iterator[Path]:
    """Where maps get pinned: a directory of the simulator's pin namespace, or a private
    bpffs mount for the kernel (removed afterwards)."""
    if isinstance(backend, SimBackend):
        d = Path(backend.pins.root) / "netbpf-test"
        backend.pins.mkdir(str(d))
        yield d
        return
    d = Path(tempfile.mkdtemp(prefix="netbpf-bpffs-"))
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], capture_output=True, text=True)
    if res.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a bpffs: {res.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


def is_sim(backend: Any) -> bool:
    return isinstance(backend, SimBackend)


def held(backend: Any) -> Any:
    """What a backend holds: the simulator's maps and address space regions, the
    process's open file descriptors on the kernel."""
    if is_sim(backend):
        return len(backend.map_table), len(backend.mem.slots)
    return sorted(os.listdir("/proc/self/fd"))


def target_btf(backend: Any) -> Any:
    return backend.core_btf() if is_sim(backend) else backend.vmlinux_btf()


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


# -- every scenario, the simulator against the kernel -----------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_same_as_kernel(kernel: Any, compile_bpf: Any, name: str) -> None:
    scenario = SCENARIOS[name]
    with on_cpu0():
        want = observe(kernel, scenario, compile_bpf)
    for engine in ENGINES:
        got = observe(SimBackend(engine=engine), scenario, compile_bpf)
        assert got == want, f"engine {engine}: " + first_difference(got, want)
    if REGEN:
        record_golden(name, NCPUS, want)
        return
    rec = golden().get(name)
    assert rec is not None, f"no golden record for {name!r}: run with NETBPF_REGEN_GOLDEN=1"
    if rec["ncpus"] == NCPUS:
        assert want == rec["obs"], "the kernel changed: " + first_difference(want, rec["obs"])


# -- global data, knobs, typed maps, subprograms, bpf_loop ------------------------------


def test_globals_knobs_counters_and_structs(backend: Any, compile_bpf: Any) -> None:
    base = load_collection_spec(compile_bpf("coll_globals.c"))
    spec = base.copy()
    spec.variables["verdict"].set(int(XdpAction.DROP))
    spec.variables["loop_mult"].set(3)
    before = spec.copy()
    assert base.variables["verdict"].get_int() == XdpAction.PASS  # the copy is separate

    before_load = held(backend)
    with backend.load(spec) as coll:
        assert isinstance(coll, Collection) and coll.warnings == ()
        assert coll.backend == backend.name
        assert sorted(coll.programs) == ["globals_prog"]
        assert all(isinstance(m, Map) for m in coll.maps.values())
        assert all(isinstance(p, Program) for p in coll.programs.values())
        prog = coll.programs["globals_prog"]
        for n in (61, 77, 130):
            assert prog.test_run(bytes(n)).retval == XdpAction.DROP

        # the hash counter and the array of structs, decoded through BTF
        assert dict(coll.typed_map("counts").items()) == {1: 2, 2: 1}
        stats = coll.typed_map("stats")
        assert stats[1] == {
            "packets": 2,
            "bytes": 61 + 77,
            "last_len": 77,
            "bucket": 1,
            "parity": 1,
            "small": 1,
            "runs_mod8": 2,
            "tag": b"flow\0\0",
        }
        assert stats[2]["bytes"] == 130 and stats[2]["small"] == 0
        zero = {
            "packets": 0,
            "bytes": 0,
            "last_len": 0,
            "bucket": 0,
            "parity": 0,
            "small": 0,
            "runs_mod8": 0,
            "tag": bytes(6),
        }
        assert stats[0] == stats[3] == zero
        # per-CPU: one value per possible CPU, all on CPU 0 where the runs happened
        assert coll.typed_map("pcpu_bytes")[0] == [61 + 77 + 130] + [0] * (NCPUS - 1)

        # global variables, live
        v = coll.variables
        assert v["runs"].get() == 3
        assert v["total_bytes"].get() == 100 + 61 + 77 + 130
        assert v["last_neg"].get() == -130
        assert v["loop_sum"].get() == 3 * (0 + 1 + 2)  # 130 % 8 + 1 steps, loop_mult 3
        assert v["banner"].get() == b"netbpf\0\0"
        assert v["last"].get() == {**stats[2], "packets": 3, "bytes": 268, "runs_mod8": 3}
        assert v["verdict"].get() == XdpAction.DROP

        # writes from Python are seen by the program
        v["total_bytes"].set(0)
        prog.test_run(bytes(64))
        assert v["total_bytes"].get() == 64
        assert v["banner"].get() == b"netbpf\0\0"  # the neighbour is untouched
        with pytest.raises(BtfValueError, match="does not fit"):
            v["runs"].set(-1)
        # .rodata is frozen after load, as with libbpf
        with pytest.raises(MapError) as ei:
            v["verdict"].set(int(XdpAction.PASS))
        assert ei.value.errno == errno.EPERM
        with pytest.raises(MapError) as ei:
            coll.maps[".rodata"].update(bytes(4), bytes(coll.maps[".rodata"].value_size))
        assert ei.value.errno == errno.EPERM

        # typed writes land as the C layout
        stats[3] = {"packets": 5, "tag": "hey", "parity": 1}
        raw_value = coll.maps["stats"].lookup(u32(3))
        assert raw_value[:8] == struct.pack("<Q", 5) and raw_value[20:26] == b"hey\0\0\0"
        assert raw_value[19] == 1  # parity is bit 0 of the byte after `bucket`

        # the names the kernel shows (libbpf's for global data)
        assert coll.maps[".bss"].info().name == f"{object_name(spec)[:8]}.bss"
        assert coll.maps[".rodata.str1.1"].info().name == ".rodata.str1.1"
        assert coll.maps["stats"].info().name == "stats"
    assert coll.closed
    coll.close()  # idempotent
    assert held(backend) == before_load  # maps, programs (and the kernel's BTF) freed
    assert all(p.closed for p in coll.programs.values())
    with pytest.raises(MapError) as ei:
        coll.variables["runs"].get()
    assert ei.value.errno == errno.EBADF
    assert spec == before  # loading never mutates the spec


# -- tail calls and map-in-map from .maps initialisers ----------------------------------


def test_tail_calls_and_map_in_map(backend: Any, compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_tail.c"))
    with backend.load(spec) as coll:
        entry = coll.programs["entry"]
        assert entry.test_run(bytes(65)).retval == XdpAction.DROP  # slot 0: tail_drop
        assert entry.test_run(bytes(121)).retval == XdpAction.PASS  # slot 1 empty
        assert entry.test_run(bytes(160)).retval == XdpAction.TX  # slot 2: tail_tx
        assert coll.variables["tail_hits"].get() == 101
        # the programs wrote through the map-in-map into the inner maps
        assert coll.typed_map("inner_odd")[0] == 65 + 121
        assert coll.typed_map("inner_even")[0] == 160
        # user space reads object ids back from fd-valued maps
        ids = {n: obj_id(coll.maps[n]) for n in ("inner_even", "inner_odd")}
        assert dict(coll.typed_map("by_parity").items()) == {
            0: ids["inner_even"],
            1: ids["inner_odd"],
        }
        progs = {n: obj_id(p) for n, p in coll.programs.items()}
        assert dict(coll.typed_map("jump").items()) == {0: progs["tail_drop"], 2: progs["tail_tx"]}
        # a slot written from Python with a program's fd, as with the kernel
        jump = coll.maps["jump"]
        jump.update(u32(1), u32(coll.programs["tail_drop"].fd))
        assert entry.test_run(bytes(121)).retval == XdpAction.DROP
        jump.delete(u32(1))
        with pytest.raises(MapKeyNotFoundError):
            jump.delete(u32(1))
        assert entry.test_run(bytes(121)).retval == XdpAction.PASS


def test_prog_array_takes_only_its_owners_program_type(backend: Any, compile_bpf: Any) -> None:
    xdp = backend.load(load_collection_spec(compile_bpf("coll_tail.c")))
    tc = backend.load(load_collection_spec(compile_bpf(LEGACY, extra_flags=["-g0"])))
    with xdp, tc:
        with pytest.raises(MapError) as ei:
            xdp.maps["jump"].update(u32(1), u32(tc.programs["count"].fd))
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapError) as ei:  # not a program at all
            xdp.maps["jump"].update(u32(1), u32(xdp.maps["inner_odd"].fd))
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapError) as ei:  # an inner map that does not fit the template
            xdp.maps["by_parity"].update(u32(0), u32(tc.maps["hits"].fd))
        assert ei.value.errno == errno.EINVAL


def test_tail_call_limit_and_tail_call_from_a_subprogram(backend: Any, compile_bpf: Any) -> None:
    with backend.load(load_collection_spec(compile_bpf("coll_tailchain.c"))) as coll:
        res = coll.programs["chain"].test_run(raw(b"\x00", 20))
        # entered once plus 33 tail calls, then the 34th tail call fails
        assert coll.variables["hops"].get() == 34
        assert res.retval == XdpAction.TX and res.data_out[14] == 34
        # a tail call from a subprogram: the target's r0 returns to the subprogram's caller
        assert coll.programs["entry_sub"].test_run(raw(b"\x01", 20)).retval == XdpAction.TX
        assert coll.variables["sub_ret"].get() == XdpAction.DROP  # leaf's verdict
        assert coll.variables["leaf_hits"].get() == 1
        # an empty slot: the subprogram goes on and returns 7
        assert coll.programs["entry_sub"].test_run(raw(b"\x02", 20)).retval == XdpAction.PASS
        assert coll.variables["sub_ret"].get() == 7


# -- callbacks ------------------------------------------------------------------------------


def test_bpf_loop_and_for_each_map_elem(backend: Any, compile_bpf: Any) -> None:
    with backend.load(load_collection_spec(compile_bpf("coll_calls.c"))) as coll:
        arr = coll.typed_map("arr")
        for i in range(8):
            arr[i] = i * 3
        length = 15 + 6  # 21 % 16 = 5 loop iterations unless stopped
        coll.programs["calls"].test_run(raw(b"\x03", length))
        v = {n: var.get() for n, var in coll.variables.items()}
        assert v["loop_ret"] == 4  # stopped by the callback at i == 3
        assert v["loop_sum"] == 0 + 1 + 4 + 9
        assert v["loop_einval"] == -errno.EINVAL  # flags != 0: the helper itself
        assert v["loop_e2big"] == (-errno.E2BIG) & 0xFFFF_FFFF  # inlined: w0 = -E2BIG
        assert v["fe_arr_ret"] == 4  # keys 0..3 visited, the callback stopped at 3
        assert v["fe_arr_sum"] == 0 + 3 + 6 + 9
        assert [arr[i] for i in range(8)] == [1, 5, 9, 13, 12, 15, 18, 21]  # key + 1 added
        assert v["fe_hash_ret"] == 1 and v["fe_hash_sum"] == length * (length % 29 + 1)
        assert v["mixed"] == 3 * 10000 + 1 * 1000 + 1 * 100 + 7 * 10 + 9
        assert coll.typed_map("visit_order")[0] == length % 29


# -- lookups from programs ------------------------------------------------------------------


def test_lpm_longest_prefix_from_a_program(backend: Any, compile_bpf: Any) -> None:
    with backend.load(load_collection_spec(compile_bpf("coll_lookup.c"))) as coll:
        routes = coll.typed_map("routes4")
        for plen, addr, nh in ((8, "10.0.0.0", 1), (24, "10.0.0.0", 2), (32, "10.0.0.2", 3)):
            key = {"prefixlen": plen, "addr": bytes(int(x) for x in addr.split("."))}
            routes[key] = {"nexthop": nh, "hits": 0}
        prog = coll.programs["route"]

        def send(dst: str) -> Any:
            return prog.test_run(eth(ETH_P_IP, ipv4(17, udp(), dst=dst)))

        r = send("10.0.0.2")
        assert (r.retval, r.data_out[5]) == (XdpAction.TX, 3)  # the /32, odd next hop
        r = send("10.0.0.77")
        assert (r.retval, r.data_out[5]) == (XdpAction.PASS, 2)  # the /24
        assert send("10.9.9.9").data_out[5] == 1  # the /8
        assert send("11.0.0.1").retval == XdpAction.DROP
        assert coll.variables["misses"].get() == 1
        hits = {k["prefixlen"]: v["hits"] for k, v in routes.items()}
        assert hits == {8: 1, 24: 1, 32: 1}


def test_queue_and_stack_from_programs_and_python(backend: Any, compile_bpf: Any) -> None:
    with backend.load(load_collection_spec(compile_bpf("coll_queue.c"))) as coll:
        prog = coll.programs["qs"]
        fifo, lifo = coll.maps["fifo"], coll.maps["lifo"]
        for n in (40, 41, 42):
            assert prog.test_run(raw(b"\x00", n)).retval == XdpAction.PASS
        fifo.push(u32(99))
        out = prog.test_run(raw(b"\x02", 40)).data_out
        rc_f, rc_l, v_f, v_l = struct.unpack_from("<iiII", out, 16)
        assert (rc_f, rc_l, v_f, v_l) == (0, 0, 40, 42)  # first in / last in
        assert fifo.peek() == u32(41) and lifo.pop() == u32(41)
        assert [fifo.pop(), fifo.pop(), fifo.pop()] == [u32(41), u32(42), u32(99)]
        with pytest.raises(MapKeyNotFoundError):
            fifo.pop()
        out = prog.test_run(raw(b"\x02", 40)).data_out
        assert struct.unpack_from("<ii", out, 16) == (-errno.ENOENT, 0)  # lifo still had 40


def test_ringbuf_records_reach_python(backend: Any, compile_bpf: Any) -> None:
    with backend.load(load_collection_spec(compile_bpf("coll_ringbuf.c"))) as coll:
        prog = coll.programs["rb"]
        for n in (20, 23, 21):  # output; reserve+submit; reserve+discard (21 % 3 == 0)
            assert prog.test_run(raw(bytes([n]), n)).retval == XdpAction.PASS
        recs = coll.ringbuf("events").consume()
        assert [len(r) for r in recs] == [16, 100]
        assert struct.unpack_from("<II", recs[0]) == (20, 1)
        assert struct.unpack_from("<II", recs[1]) == (23, 2)
        assert recs[1][8:22] == raw(bytes([23]), 23)[:14]  # the Ethernet header
        assert recs[1][22:] == bytes([2]) * 78  # memset(fill, seq)
        v = {n: var.get() for n, var in coll.variables.items()}
        # three records of 24, 112 and 112 bytes were produced, none consumed yet
        assert (v["prod_pos"], v["cons_pos"], v["avail"]) == (248, 0, 248)
        assert v["ring_size"] == 4096 and v["dropped"] == 0
        assert coll.ringbuf("events").consume() == []


# -- global data flavours and knobs --------------------------------------------------------


def test_const_volatile_knobs_and_custom_data_sections(backend: Any, compile_bpf: Any) -> None:
    from netbpf.obj.btf_values import value_codec

    spec = load_collection_spec(compile_bpf("coll_data.c")).copy()
    knob = spec.variables["cfg"]
    mac = bytes.fromhex("0a0b0c0d0e0f")
    knob.set(value_codec(spec.btf, knob.type_id).encode({"mode": 2, "mac": mac, "port": 443}))
    spec.variables["enable_rewrite"].set(1)
    assert sorted(spec.maps) == [".bss", ".data.stats", ".rodata"]
    with backend.load(spec) as coll:
        pkt = eth(ETH_P_IP, ipv4(17, bytes(20)))
        res = coll.programs["data_prog"].test_run(pkt)
        assert res.retval == 2 and res.data_out[:6] == mac
        v = {n: var.get() for n, var in coll.variables.items()}
        assert v["pkt_count"] == 1001 and v["byte_hist"] == [len(pkt), 0, 0, 0, 0]
        assert v["seen_cfg"] == {"mode": 2, "mac": mac, "port": 443}
        assert v["seen_tag"] == b"netbpf!\0" and v["small_count"] == 1
        assert coll.maps[".data.stats"].info().name == ".data.stats"
        with pytest.raises(MapError) as ei:
            coll.variables["cfg"].set({"mode": 1})
        assert ei.value.errno == errno.EPERM


# -- CO-RE ----------------------------------------------------------------------------------


def test_core_relocations_against_target_btf(backend: Any, compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_core.c"))
    assert len(spec.programs["core_prog"].core_relos) == 6
    if is_sim(backend) and not os.path.exists("/sys/kernel/btf/vmlinux"):
        with pytest.raises(NetbpfError, match="CO-RE relocations in program 'core_prog'"):
            backend.load(spec)
        return
    with backend.load(spec) as coll:
        # the local struct lists data_end before data: only relocated offsets give
        # a packet pointer and a packet end
        res = coll.programs["core_prog"].test_run(bytes(90))
        assert res.retval == XdpAction.PASS
        v = {n: var.get() for n, var in coll.variables.items()}
    assert v["pkt_len"] == 90
    assert v["ifindex_seen"] == 1  # test_run's default: the loopback device
    assert v["future_exists"] == 0  # no such field in the target's struct xdp_md
    btf = target_btf(backend)
    assert v["md_size"] == btf.size_of(btf.find("xdp_md", "struct").id)
    assert v["tx_value"] == XdpAction.TX  # the target's value, not the local 77


# -- pinning ------------------------------------------------------------------------------

PINNED = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_count SEC(".maps");
SEC("xdp")
int bump(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&shared_count, &k);
	if (v)
		*v += 1;
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_pinned_by_name_is_reused(backend: Any, compile_bpf: Any, pin_dir: Path) -> None:
    spec = load_collection_spec(compile_bpf(PINNED))
    with backend.load(spec, pin_path=pin_dir) as first:
        first.programs["bump"].test_run(bytes(64))
        with backend.load(spec, pin_path=pin_dir) as second:
            assert obj_id(second.maps["shared_count"]) == obj_id(first.maps["shared_count"])
            second.programs["bump"].test_run(bytes(64))
    # the pinned map outlives both collections, with what both programs counted
    with backend.load(spec, pin_path=pin_dir) as third:
        assert third.typed_map("shared_count")[0] == 2


def test_incompatible_pinned_map_is_refused(backend: Any, compile_bpf: Any, pin_dir: Path) -> None:
    with backend.create_map("array", 4, 4, 1) as other:
        other.pin(pin_dir / "shared_count")
    spec = load_collection_spec(compile_bpf(PINNED))
    before = held(backend)
    with pytest.raises(NetbpfError, match=r"incompatible: value_size 4 \(spec: 8\)") as ei:
        backend.load(spec, pin_path=pin_dir)
    assert ei.value.errno == errno.EINVAL
    assert held(backend) == before  # nothing the failed load created is left


# -- objects without BTF --------------------------------------------------------------------

LEGACY = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct legacy_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct legacy_map_def hits SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 2,
};
SEC("tc")
int count(struct __sk_buff *skb)
{
	__u32 k = skb->len > 100;
	__u64 *v = bpf_map_lookup_elem(&hits, &k);
	if (v)
		*v += 1;
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_legacy_maps_without_btf(backend: Any, compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf(LEGACY, extra_flags=["-g0"]))
    assert spec.btf is None
    with backend.load(spec) as coll:
        for n in (64, 200, 300):
            coll.programs["count"].test_run(bytes(n))
        # no BTF: u32 array indices, raw bytes values
        assert list(coll.typed_map("hits").items()) == [
            (0, struct.pack("<Q", 1)),
            (1, struct.pack("<Q", 2)),
        ]
        assert coll.maps["hits"].info().btf_id == 0


# -- the Map protocol itself ------------------------------------------------------------------


def test_map_protocol_shapes_and_errors(backend: Any) -> None:
    with backend.create_map("percpu_hash", 4, 4, 8, name="pc") as m:
        assert isinstance(m, Map)
        assert m.value_size_raw == 8 * NCPUS  # round_up(4, 8) per CPU
        value = b"".join(struct.pack("<Q", c + 1) for c in range(NCPUS))
        m.update(u32(1), value)
        assert m.lookup(u32(1)) == value and m[u32(1)] == value
        assert u32(1) in m and u32(2) not in m and "x" not in m
        assert list(m.keys()) == [u32(1)] and m.next_key(u32(1)) is None
        with pytest.raises(MapError) as ei:
            m.update(u32(2), value[:-1])
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapError) as ei:
            m.lookup(b"\0\0")
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(MapKeyNotFoundError):
            m.lookup(u32(2))
        assert m.get(u32(2)) is None
        m.update_batch([(u32(3), value), (u32(4), value)])
        assert sorted(m.lookup_batch(count=1)) == [(u32(k), value) for k in (1, 3, 4)]
        m.delete_batch([u32(3), u32(4)])
        assert m.lookup_and_delete(u32(1)) == value
        assert m.next_key() is None
    assert m.closed
    with pytest.raises(MapError) as ei:
        m.lookup(u32(1))
    assert ei.value.errno == errno.EBADF

    with backend.create_map("queue", 0, 2, 2) as q:
        q.push(b"ab")
        q.push(b"cd")
        with pytest.raises(MapError) as ei:
            q.push(b"ef")
        assert ei.value.errno == errno.E2BIG
        q.push(b"ef", flags=2)  # BPF_EXIST: the oldest goes
        assert [q.peek(), q.pop(), q.pop()] == [b"cd", b"cd", b"ef"]
        with pytest.raises(MapKeyNotFoundError):
            q.pop()

    with backend.create_map("array", 4, 8, 2) as a:
        a.freeze()
        with pytest.raises(MapError) as ei:
            a.update(u32(0), bytes(8))
        assert ei.value.errno == errno.EPERM
        assert a.lookup(u32(1)) == bytes(8)


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except MapError as e:
        return (type(e).__name__, e.errno)


ENOTSUPP = 524


def test_map_protocol_refusals_by_map_type(backend: Any) -> None:
    """Operations a map type does not have fail with the kernel's errno (ENOTSUPP is
    the kernel-internal 524 that bpf() really returns for these)."""
    with backend.create_map("queue", 0, 4, 2) as q:
        assert _outcome(lambda: list(q.keys())) == ("MapError", errno.EINVAL)
        assert _outcome(lambda: q.lookup(b"")) == ("MapKeyNotFoundError", errno.ENOENT)
        q.update(b"", b"abcd")  # update without a key is a push
        assert q.lookup(b"") == b"abcd"  # lookup without a key is a peek
        assert q.lookup_and_delete(b"") == b"abcd"  # and this a pop
        assert _outcome(lambda: q.delete(b"")) == ("MapError", errno.EINVAL)
        assert _outcome(q.lookup_batch) == ("MapError", ENOTSUPP)
    with backend.create_map("ringbuf", 0, 0, 4096) as rb:
        assert _outcome(lambda: list(rb.keys())) == ("MapError", ENOTSUPP)
        assert _outcome(lambda: rb.lookup(b"")) == ("MapError", ENOTSUPP)
    with backend.create_map("prog_array", 4, 4, 2) as pa:
        assert list(pa.keys()) == [u32(0), u32(1)]
        assert _outcome(lambda: pa.lookup(u32(0))) == ("MapKeyNotFoundError", errno.ENOENT)
        assert _outcome(pa.lookup_batch) == ("MapError", ENOTSUPP)
    with backend.create_map("hash", 4, 4, 2) as h:
        assert h.lookup_batch() == [] and h.lookup_batch(delete=True) == []
        h.freeze()
        assert _outcome(h.freeze) == ("MapError", errno.EPERM)
