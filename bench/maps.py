"""Map benchmark: the simulator's hash, LRU hash and LPM trie maps beside the kernel's,
and memory per entry of a 1M-entry hash map.

    python bench/maps.py                  # everything, the kernel too if usable
    python bench/maps.py --rounds 5 --json
    python bench/maps.py --skip-memory    # throughput only

What is measured:

* **from Python** -- microseconds per ``lookup`` / ``update`` of an existing key /
  insertion of a new key through the raw-bytes API (the simulator's methods; the kernel's
  through ``bpf()`` syscalls, for scale);
* **from programs** -- the time of one run of an XDP program that calls
  ``bpf_map_lookup_elem`` or ``bpf_map_update_elem`` once (the same instructions in both:
  the kernel's ``test_run`` ``duration`` with ``repeat``; the simulator's engine running the
  program in a loop on one environment).  Each run includes the program's few other
  instructions, on both sides;
* **memory** -- bytes per entry of a ``max_entries = 1,000,000`` hash map (4-byte key,
  8-byte value) filled with 1M keys: the simulator's allocations measured with
  ``tracemalloc`` (everything the map holds: keys, values, buckets, index, free lists),
  beside the kernel's own accounting (the ``memlock`` line of the map fd's fdinfo, what
  ``bpftool map show`` prints), for the default preallocated map and for
  BPF_F_NO_PREALLOC.

Every time is the median of ``--rounds`` rounds (spread in the JSON); the machine is
shared, single runs are noisy.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from netbpf.helpers import DEFAULT_REGISTRY
from netbpf.isa.asm import assemble
from netbpf.maps import BPF_F_NO_PREALLOC, MapSpec, MapTable, create_map, lpm_key
from netbpf.uapi import MapType, ProgramType
from netbpf.vm.engine import ENGINES, load_executable
from netbpf.vm.env import RunEnv
from netbpf.vm.memory import AddressSpace

MAPS = {
    "hash": (MapType.HASH, 4, 8, 0),
    "LRU hash": (MapType.LRU_HASH, 4, 8, 0),
    "LPM trie": (MapType.LPM_TRIE, 8, 8, BPF_F_NO_PREALLOC),
}
MEM_ENTRIES = 1_000_000


def _key(kind: str, i: int) -> bytes:
    if kind == "LPM trie":
        return lpm_key(32, struct.pack(">I", (i * 2654435761) & 0xFFFFFFFF))
    return struct.pack("<I", (i * 2654435761) & 0xFFFFFFFF)


def _median(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def _time_per_op(fn: Callable[[], None], n: int) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / n * 1e6


# -- from Python ----------------------------------------------------------------------------


def python_side(kind: str, n: int, kernel: Any) -> dict[str, Any]:
    mtype, ks, vs, flags = MAPS[kind]
    keys = [_key(kind, i) for i in range(n)]
    value = bytes(vs)
    out: dict[str, Any] = {}

    def measure(m: Any) -> dict[str, float]:
        r = {"insert": _time_per_op(lambda: [m.update(k, value) for k in keys], n)}
        r["lookup"] = _time_per_op(lambda: [m.lookup(k) for k in keys], n)
        r["update"] = _time_per_op(lambda: [m.update(k, value) for k in keys], n)
        return r

    # room for twice the keys: an LRU map starts evicting in batches before it is full
    sim = create_map(MapSpec("b", mtype, ks, vs, 2 * n, flags))
    out["sim"] = measure(sim)
    if kernel is not None:
        with kernel.create_map(mtype, ks, vs, 2 * n, flags=flags) as km:
            out["kernel"] = measure(km)
    return out


# -- from programs --------------------------------------------------------------------------

LOOKUP = """
    r6 = {k0}
    *(u32 *)(r10 - 8) = r6
    r6 = {k1}
    *(u32 *)(r10 - 4) = r6
    r1 = map_fd(0) ll
    r2 = r10
    r2 += {koff}
    call 1
    r0 = 2
    exit
"""

UPDATE = """
    r6 = {k0}
    *(u32 *)(r10 - 8) = r6
    r6 = {k1}
    *(u32 *)(r10 - 4) = r6
    r6 = 7
    *(u64 *)(r10 - 16) = r6
    r1 = map_fd(0) ll
    r2 = r10
    r2 += {koff}
    r3 = r10
    r3 += -16
    r4 = 0
    call 2
    r0 = 2
    exit
"""


def _prog_text(template: str, kind: str) -> str:
    key = _key(kind, 1)
    if len(key) == 8:  # LPM: prefixlen then the address
        k0, k1 = struct.unpack("<II", key)
        return template.format(k0=k0, k1=k1, koff=-8)
    (k1,) = struct.unpack("<I", key)
    return template.format(k0=0, k1=k1, koff=-4)


#: the lookup program without its helper call: what a run costs besides the helper
BASELINE = LOOKUP.replace("    call 1\n", "")


def program_side(kind: str, runs: int, kernel: Any, engine: str) -> dict[str, Any]:
    mtype, ks, vs, flags = MAPS[kind]
    out: dict[str, Any] = {}
    for op, template in (("baseline", BASELINE), ("lookup", LOOKUP), ("update", UPDATE)):
        text = _prog_text(template, kind)
        sim = create_map(MapSpec("b", mtype, ks, vs, 1024, flags))
        for i in range(512):
            sim.update(_key(kind, i), bytes(vs))
        table = MapTable(AddressSpace())
        insns = assemble(text)
        imm64 = {i: table.add(sim) for i, ins in enumerate(insns) if ins.opcode == 0x18 and ins.src}
        exe = load_executable(insns, engine=engine, imm64=imm64, name=f"{kind} {op}")
        env = RunEnv(table.mem, helpers=DEFAULT_REGISTRY.for_prog_type(ProgramType.XDP))
        assert exe.run(env, 0) == 2
        t = time.perf_counter()
        for _ in range(runs):
            exe.run(env, 0)
        res = {"sim_ns_per_run": (time.perf_counter() - t) / runs * 1e9}
        if kernel is not None:
            from netbpf import ProgramSpec

            with kernel.create_map(mtype, ks, vs, 1024, flags=flags) as km:
                for i in range(512):
                    km.update(_key(kind, i), bytes(vs))
                ktext = text.replace("map_fd(0)", f"map_fd({km.fd})")
                with kernel.load_program(ProgramSpec.from_asm(ktext, prog_type="xdp")) as kp:
                    r = kp.test_run(bytes(64), repeat=max(runs * 20, 100_000))
                    res["kernel_ns_per_run"] = float(r.duration_ns)
        out[op] = res
    return out


# -- memory ---------------------------------------------------------------------------------


def _fdinfo_memlock(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    raise RuntimeError("no memlock line in fdinfo")


def memory(kernel: Any, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, flags in (("prealloc", 0), ("no_prealloc", BPF_F_NO_PREALLOC)):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        m = create_map(MapSpec("mem", MapType.HASH, 4, 8, n, flags))
        empty = tracemalloc.get_traced_memory()[0] - base
        value = bytes(8)
        for i in range(n):
            m.update(i.to_bytes(4, "little"), value)
        full = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        res: dict[str, Any] = {
            "sim_bytes_empty": empty,
            "sim_bytes_full": full,
            "sim_bytes_per_entry": full / n,
            "sim_memory_usage": m.memory_usage(),
        }
        del m
        gc.collect()
        if kernel is not None:
            with kernel.create_map(MapType.HASH, 4, 8, n, flags=flags) as km:
                res["kernel_memlock_empty"] = _fdinfo_memlock(km.fd)
                for i in range(n):
                    km.update(i.to_bytes(4, "little"), value)
                full_k = _fdinfo_memlock(km.fd)
                res["kernel_memlock_full"] = full_k
                res["kernel_bytes_per_entry"] = full_k / n
        out[label] = res
    return out


# -- driver ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=50_000, help="keys for the Python-side runs")
    ap.add_argument("--runs", type=int, default=20_000, help="program runs per measurement")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-kernel", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args(argv)

    kernel = None
    if not args.no_kernel:
        try:
            from netbpf.kernel import KernelBackend

            kernel = KernelBackend()
        except Exception as e:  # report it and go on without the kernel
            print(f"kernel not used: {e}", file=sys.stderr)
    engine = "fast" if "fast" in ENGINES else ENGINES[0]
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "engine": engine,
        },
        "python": {},
        "programs": {},
    }
    for kind in MAPS:
        n = args.n if kind != "LPM trie" else max(args.n // 5, 1000)
        rounds = [python_side(kind, n, kernel) for _ in range(args.rounds)]
        report["python"][kind] = {
            side: {op: _median([r[side][op] for r in rounds]) for op in rounds[0][side]}
            for side in rounds[0]
        }
        prounds = [program_side(kind, args.runs, kernel, engine) for _ in range(args.rounds)]
        report["programs"][kind] = {
            op: {what: _median([r[op][what] for r in prounds]) for what in prounds[0][op]}
            for op in prounds[0]
        }
    if not args.skip_memory:
        report["memory"] = memory(kernel, MEM_ENTRIES)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"engine: {engine}; medians of {args.rounds} rounds")
    print("\nfrom Python (us per operation)")
    print(f"{'map':10} {'side':7} {'lookup':>9} {'update':>9} {'insert':>9}")
    for kind, sides in report["python"].items():
        for side, ops in sides.items():
            print(
                f"{kind:10} {side:7} {ops['lookup']['median']:9.2f} "
                f"{ops['update']['median']:9.2f} {ops['insert']['median']:9.2f}"
            )
    print("\nfrom programs (ns per run of the program; 'baseline' is it without the call)")
    print(f"{'map':10} {'op':7} {'simulator':>12} {'kernel':>12}")
    for kind, ops in report["programs"].items():
        for op, r in ops.items():
            k = r.get("kernel_ns_per_run", {}).get("median")
            print(
                f"{kind:10} {op:7} {r['sim_ns_per_run']['median']:12.0f} "
                f"{'-' if k is None else f'{k:12.0f}'}"
            )
    if "memory" in report:
        print(f"\nmemory of a {MEM_ENTRIES:,}-entry hash map (4-byte key, 8-byte value)")
        for label, r in report["memory"].items():
            k = r.get("kernel_bytes_per_entry")
            print(
                f"{label:12} simulator {r['sim_bytes_per_entry']:6.1f} B/entry "
                f"(empty map {r['sim_bytes_empty'] / 1e6:.1f} MB, full {r['sim_bytes_full'] / 1e6:.1f} MB); "
                + (
                    f"kernel memlock {k:6.1f} B/entry (empty {r['kernel_memlock_empty'] / 1e6:.1f} MB, "
                    f"full {r['kernel_memlock_full'] / 1e6:.1f} MB)"
                    if k is not None
                    else "kernel not measured"
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
