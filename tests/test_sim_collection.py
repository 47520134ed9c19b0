"""``SimBackend.load``: whole objects in the simulator, without the kernel.

* every scenario of ``tests/_collection_cases.py`` on every engine gives exactly the
  kernel's recorded observations (``tests/golden/collections.json``, taken by
  tests/test_collection_both.py) -- the simulator stays compared with the kernel
  where bpf() is unusable;
* what only the simulator can show: one long-lived address space (map value
  addresses stable across runs and collections, per-run regions removed after every
  run, slots reused), maps released when nothing holds them any more, read-only
  ``.rodata`` enforced at run time (there is no verifier yet), the refusals the
  loader makes itself (missing target BTF, bad direct value access, a program with
  map references loaded alone), handles with their own lifetime, the CPU count.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import replace
from typing import Any

import pytest
from _collection_cases import SCENARIOS, first_difference, golden, observe, raw
from _testrun import PACKETS

from netbpf.backend import Map
from netbpf.errors import (
    MapError,
    NotSupportedError,
    ObjectError,
    PinError,
    ProgramFault,
)
from netbpf.maps import MapSpec
from netbpf.obj.collection import CollectionSpec, load_collection_spec
from netbpf.obj.spec import MapReloc, ProgramSpec
from netbpf.sim import SimBackend
from netbpf.sim.maps import SimMapHandle
from netbpf.uapi import MapType, XdpAction
from netbpf.verifier import VerifierRejection
from netbpf.vm.engine import ENGINES

HAVE_VMLINUX = os.path.exists("/sys/kernel/btf/vmlinux")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_the_kernels_record(compile_bpf: Any, name: str, engine: str) -> None:
    rec = golden().get(name)
    assert rec is not None, f"no golden record for {name!r} (tests/golden/collections.json)"
    sim = SimBackend(engine=engine, ncpus=rec["ncpus"])
    scenario = SCENARIOS[name]
    if scenario.core and not HAVE_VMLINUX:
        with pytest.raises(NotSupportedError, match="CO-RE relocations in program"):
            observe(sim, scenario, compile_bpf)
        return
    got = observe(sim, scenario, compile_bpf)
    assert got == rec["obs"], first_difference(got, rec["obs"])


# -- one address space ------------------------------------------------------------------------

SELF_ADDRESS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");
__u64 seen;
SEC("xdp")
int where(struct xdp_md *ctx)
{
	__u32 k = ctx->data_end - ctx->data > 100;
	__u64 *v = bpf_map_lookup_elem(&slots, &k);
	if (!v)
		return XDP_ABORTED;
	*v = (__u64)v;       /* the value's own address (root may store pointers) */
	seen = (__u64)&seen; /* a .bss address, from BPF_PSEUDO_MAP_VALUE */
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_map_value_addresses_are_stable_across_runs_and_collections(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf(SELF_ADDRESS))
    with SimBackend() as sim:
        coll = sim.load(spec)
        prog = coll.programs["where"]
        m = coll.maps["slots"]
        assert isinstance(m, SimMapHandle)
        prog.test_run(bytes(64))
        first = struct.unpack("<Q", m.lookup(bytes(4)))[0]
        assert first == m.map.values_store.address(0)
        bss = coll.variables["seen"].get()
        assert bss == coll.maps[".bss"].map.values_store.address(0)
        other = sim.load(spec)  # another collection in the same backend
        for _ in range(3):
            prog.test_run(bytes(64))
            other.programs["where"].test_run(bytes(64))
        assert struct.unpack("<Q", m.lookup(bytes(4)))[0] == first
        assert coll.variables["seen"].get() == bss
        prog.test_run(bytes(200))  # the second element sits one 8-byte slot further
        assert struct.unpack("<Q", m.lookup(struct.pack("<I", 1)))[0] == first + 8
        theirs = struct.unpack("<Q", other.maps["slots"].lookup(bytes(4)))[0]
        assert theirs != first  # a separate map, elsewhere


@pytest.mark.parametrize("section", ["xdp", "tc", "socket", "cgroup_skb/ingress"])
def test_runs_leave_no_regions_behind(section: str) -> None:
    """Packet, context, socket and stack regions of a run are unmapped after it, and
    their slots reused: thousands of runs fit in the address space."""
    text = "r2 = 7\n*(u64 *)(r10 - 8) = r2\ncall 7\nr0 = 1\nexit\n"  # get_prandom_u32
    with SimBackend() as sim:
        prog = sim.load_program(ProgramSpec.from_asm(text, prog_type=section))
        baseline = len(sim.mem.slots)
        prog.test_run(PACKETS["ipv4_tcp"], repeat=3)
        assert len(sim.mem.slots) == baseline
        per_run = sim.mem.free_slots
        assert per_run >= 2  # at least the packet and a stack frame came and went
        for _ in range(50):
            prog.test_run(PACKETS["ipv4_tcp"])
        assert len(sim.mem.slots) == baseline
        assert sim.mem.free_slots == per_run  # the same slots, over and over


def test_a_faulting_run_cleans_up_too() -> None:
    # the kernel refuses the ctx access (off=4096): skip the verifier to make it fault
    with SimBackend(unsafe_skip_verifier=True) as sim:
        prog = sim.load_program(
            ProgramSpec.from_asm("r0 = *(u64 *)(r1 + 4096)\nexit", prog_type="xdp")
        )
        baseline = len(sim.mem.slots)
        for _ in range(3):
            with pytest.raises(ProgramFault):
                prog.test_run(PACKETS["ipv4_tcp"])
        assert len(sim.mem.slots) == baseline


def test_slots_freed_during_a_run_are_not_reused_before_it_ends() -> None:
    """A region replaced while a program runs (a packet re-allocated by a helper) must
    leave its old pointers faulting, not aliasing the new region."""
    from netbpf.vm.memory import MemoryFault, Region

    sim = SimBackend()
    mem = sim.mem
    with mem.run_scope():
        old = Region("old packet", bytearray(8), kind="packet")
        old_addr = mem.map(old)
        mem.unmap(old)
        new = Region("new packet", bytearray(8), kind="packet")
        assert mem.map(new) != old_addr
        with pytest.raises(MemoryFault):
            mem.load(old_addr, 1)
    assert mem.free_slots == 2  # both slots come back once the run is over


# -- lifetimes ----------------------------------------------------------------------------------


def test_closing_a_collection_releases_its_maps(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_tail.c"))
    with SimBackend() as sim:
        slots = len(sim.mem.slots)
        with sim.load(spec) as coll:
            assert len(sim.map_table) == len(coll.maps)
            fds = [m.fd for m in coll.maps.values()] + [p.fd for p in coll.programs.values()]
            assert all(sim.resolver.fd(fd) is not None for fd in fds)
        assert len(sim.map_table) == 0
        assert len(sim.mem.slots) == slots
        assert all(sim.resolver.fd(fd) is None for fd in fds)
        assert all(m.fd == -1 for m in coll.maps.values())


def test_pinned_maps_outlive_their_collection(compile_bpf: Any) -> None:
    from test_collection_both import PINNED

    spec = load_collection_spec(compile_bpf(PINNED))
    with SimBackend() as sim:
        with sim.load(spec) as coll:
            coll.programs["bump"].test_run(bytes(64))
            pinned = coll.maps["shared_count"].map
        assert sim.pins.get("/sys/fs/bpf/shared_count") is pinned
        assert list(sim.map_table) == [pinned]  # .bss-less object: only the pinned map
        sim.pins.unpin("/sys/fs/bpf/shared_count")
        with sim.load(spec) as again:  # nothing pinned any more: a fresh map, pinned
            assert again.typed_map("shared_count")[0] == 0
            assert again.maps["shared_count"].map is not pinned
        assert len(sim.map_table) == 1
        with pytest.raises(PinError) as ei:
            sim.load(spec, pin_path="/tmp/not-bpffs")
        assert ei.value.errno == errno.EPERM
        assert len(sim.map_table) == 1  # the failed load released what it created


def test_a_handle_has_its_own_lifetime(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    with SimBackend() as sim, sim.load(spec) as coll:
        counts = coll.maps["counts"]
        assert isinstance(counts, Map)
        counts.close()
        counts.close()
        with pytest.raises(MapError) as ei:
            counts.lookup(struct.pack("<I", 1))
        assert ei.value.errno == errno.EBADF
        # the program still has the map, like a kernel program holding a map ref
        coll.programs["globals_prog"].test_run(bytes(61))
        assert counts.map.lookup(struct.pack("<I", 1)) == struct.pack("<Q", 1)


def test_closed_program_stays_a_tail_call_target(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_tail.c"))
    with SimBackend() as sim, sim.load(spec) as coll:
        coll.programs["tail_drop"].close()
        assert coll.programs["entry"].test_run(bytes(65)).retval == XdpAction.DROP


# -- refusals -----------------------------------------------------------------------------------


def test_core_without_target_btf_is_refused_naming_the_program(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_core.c"))
    sim = SimBackend(core_btf="/nonexistent/vmlinux")
    with pytest.raises(NotSupportedError) as ei:
        sim.load(spec)
    msg = str(ei.value)
    assert "program 'core_prog'" in msg and "/nonexistent/vmlinux" in msg
    assert "6 relocation(s)" in msg
    assert len(sim.map_table) == 0 and len(sim.mem.slots) == 0


UAPI_TYPES = r"""
#include <linux/bpf.h>
/* Only the kernel's own context struct and verdicts: a CO-RE target without flavours. */
struct xdp_md md_example;
enum xdp_action verdict_example;
"""


def test_core_target_can_be_given(compile_bpf: Any) -> None:
    """Any BTF describing the context types will do as the target -- here one clang
    wrote for the UAPI header's ``struct xdp_md`` and ``enum xdp_action`` -- so CO-RE
    works without /sys/kernel/btf/vmlinux when given one."""
    target = load_collection_spec(compile_bpf(UAPI_TYPES)).btf
    spec = load_collection_spec(compile_bpf("coll_core.c"))
    with SimBackend(core_btf=target) as sim, sim.load(spec) as coll:
        assert coll.programs["core_prog"].test_run(bytes(90)).retval == XdpAction.PASS
        v = {n: var.get() for n, var in coll.variables.items()}
    md_size = target.size_of(target.find("xdp_md", "struct").id)
    assert (v["pkt_len"], v["ifindex_seen"], v["future_exists"]) == (90, 1, 0)
    assert (v["md_size"], v["tx_value"]) == (md_size, XdpAction.TX)


def _hand_made(mspec: MapSpec, text: str, relocs: tuple[MapReloc, ...]) -> CollectionSpec:
    prog = replace(ProgramSpec.from_asm(text, prog_type="xdp", name="p"), map_relocs=relocs)
    return CollectionSpec({"p": prog}, {mspec.name: mspec}, {})


def test_direct_value_access_needs_a_one_element_array() -> None:
    text = "r1 = 0 ll\nr0 = *(u32 *)(r1 + 0)\nexit\n"
    arr2 = MapSpec("arr2", MapType.ARRAY, 4, 8, 2)
    with pytest.raises(ObjectError, match="only arrays with one element"):
        SimBackend().load(_hand_made(arr2, text, (MapReloc(0, "arr2", 0),)))
    arr1 = MapSpec("arr1", MapType.ARRAY, 4, 8, 1)
    with pytest.raises(ObjectError, match="offset 8 is outside"):
        SimBackend().load(_hand_made(arr1, text, (MapReloc(0, "arr1", 8),)))
    with pytest.raises(ObjectError, match="refers to map 'nope'"):
        SimBackend().load(_hand_made(arr1, text, (MapReloc(0, "nope"),)))
    with pytest.raises(ObjectError, match="not on an LD_IMM64"):
        SimBackend().load(_hand_made(arr1, text, (MapReloc(2, "arr1"),)))
    with SimBackend() as sim, sim.load(_hand_made(arr1, text, (MapReloc(0, "arr1", 4),))) as c:
        c.maps["arr1"].update(bytes(4), struct.pack("<II", 5, 6))
        assert c.programs["p"].test_run(bytes(14)).retval == 6


def test_a_program_with_map_references_needs_its_collection(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    with pytest.raises(ObjectError, match=r"refers to maps \(.*counts.*\): load its"):
        SimBackend().load_program(spec.programs["globals_prog"])


RODATA_WRITE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
const volatile __u32 knob = 1;
SEC("xdp")
int poke(struct xdp_md *ctx)
{
	*(volatile __u32 *)&knob = 5; /* the kernel's verifier refuses this at load */
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_rodata_is_read_only_to_programs(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf(RODATA_WRITE))
    with SimBackend() as sim:  # the verifier refuses the write, as the kernel does
        with pytest.raises(VerifierRejection, match="write into map forbidden"):
            sim.load(spec)
    # skip the verifier to test the run-time backstop: .rodata is read-only memory
    with SimBackend(unsafe_skip_verifier=True) as sim, sim.load(spec) as coll:
        with pytest.raises(ProgramFault, match="read-only"):
            coll.programs["poke"].test_run(bytes(64))
        assert coll.variables["knob"].get() == 1


# -- configuration --------------------------------------------------------------------------------


def test_cpu_count_is_configurable(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_globals.c"))
    with SimBackend(ncpus=4) as sim, sim.load(spec) as coll:
        coll.programs["globals_prog"].test_run(bytes(61))
        assert coll.maps["pcpu_bytes"].value_size_raw == 32
        assert coll.typed_map("pcpu_bytes")[0] == [61, 0, 0, 0]
    with pytest.raises(NotSupportedError):
        SimBackend(ncpus=0)


def test_create_map_parity_with_the_kernel_backend() -> None:
    with SimBackend() as sim:
        with pytest.raises(NotSupportedError, match="map type 'bloom'"):
            sim.create_map("bloom", 0, 4, 1)
        with pytest.raises(MapError) as ei:
            sim.create_map("array", 4, 0, 1)
        assert ei.value.errno == errno.EINVAL
        inner = sim.create_map("array", 4, 8, 1)
        outer = sim.create_map("array_of_maps", 4, 4, 2, inner_map=inner)
        outer.update(bytes(4), struct.pack("<I", inner.fd))
        assert outer.lookup(bytes(4)) == struct.pack("<I", inner.info().id)
        inner.close()  # the outer map still holds it
        assert len(sim.map_table) == 2
        outer.close()
        assert len(sim.map_table) == 0


def test_program_info_and_fds(compile_bpf: Any) -> None:
    spec = load_collection_spec(compile_bpf("coll_tail.c"))
    with SimBackend() as sim, sim.load(spec) as coll:
        entry = coll.programs["entry"]
        info = entry.info()
        assert info.name == "entry" and info.id == entry.id
        used = {coll.maps[n].info().id for n in ("by_parity", "jump")}
        assert used <= set(info.map_ids)
        assert sim.resolver.fd(entry.fd) is entry
        assert raw(b"", 20)[:14] == raw(b"\x00", 14)
