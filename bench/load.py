"""Load benchmark: what verifying at load costs the simulator.

    python bench/load.py                 # the C corpus objects + a few assembly programs
    python bench/load.py --rounds 5 --json

``SimBackend`` verifies every program at load (docs/verifier.md).  For each program
this measures the wall time of one load (``load_program`` for assembly programs, the
whole-object ``load`` for the C corpus, maps included) three ways:

* ``unverified`` -- ``unsafe_skip_verifier=True``: validation, relocation, decoding
  (the load cost before verification existed);
* ``cold`` -- verified, with an empty outcome cache (the first load of a program);
* ``cached`` -- verified, the outcome coming from :mod:`netbpf.sim.verify`'s cache
  (every later load of the same program with the same maps).

The C corpus objects are ``tests/progs/*.c`` compiled with the tests' recipe into
``.cache/progs`` (only those already there are used: run the tests once first, or
they are built here with clang-19).  Objects one of the loads refuses are listed and
skipped.  Every cell is the median of ``--rounds`` rounds.  Nothing here asserts a
time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netbpf import ProgramSpec, SimBackend
from netbpf.errors import NetbpfError
from netbpf.sim import verify as simverify

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench-load"
FLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]

ASM: dict[str, str] = {
    "return (2 insns)": "r0 = 2\nexit",
    "packet check (9 insns)": """
        r2 = *(u32 *)(r1 + 0)
        r3 = *(u32 *)(r1 + 4)
        r4 = r2
        r4 += 14
        if r4 > r3 goto +2
        r0 = *(u8 *)(r2 + 12)
        exit
        r0 = 1
        exit
    """,
    "bounded loop (1000 iterations)": """
        r0 = 0
        r1 = 0
    l:
        r0 += r1
        r1 += 1
        if r1 < 1000 goto l
        r0 = 2
        exit
    """,
}


def _objects() -> list[Path]:
    """The corpus objects, compiled if needed (skipped without clang-19)."""
    out = []
    CACHE.mkdir(parents=True, exist_ok=True)
    for src in sorted((ROOT / "tests" / "progs").glob("*.c")):
        text = src.read_bytes()
        key = hashlib.sha256(text + " ".join(FLAGS).encode()).hexdigest()[:16]
        obj = CACHE / f"{src.stem}-{key}.o"
        if not obj.exists():
            cmd = ["clang-19", *FLAGS, f"-I{src.parent}", "-c", str(src), "-o", str(obj)]
            try:
                subprocess.run(cmd, check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError):
                continue
        out.append(obj)
    return out


def _time(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _measure(load: Callable[[SimBackend, bool], Any], rounds: int) -> dict[str, float]:
    def once(unsafe: bool, clear: bool) -> None:
        if clear:
            simverify.clear_cache()
        with SimBackend() as sim:
            load(sim, unsafe).close()

    once(False, True)  # warm imports and the cache
    return {
        "unverified": _time(lambda: once(True, False), rounds),
        "cold": _time(lambda: once(False, True), rounds),
        "cached": _time(lambda: once(False, False), rounds),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-corpus", action="store_true")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name, text in ASM.items():
        spec = ProgramSpec.from_asm(text, prog_type="xdp")

        def load_prog(sim: SimBackend, unsafe: bool, spec: ProgramSpec = spec) -> Any:
            return sim.load_program(spec, unsafe_skip_verifier=unsafe)

        rows.append({"program": name, **_measure(load_prog, args.rounds)})
    if not args.no_corpus:
        from netbpf.obj.collection import load_collection_spec

        for obj in _objects():
            cspec = load_collection_spec(obj)

            def load_obj(sim: SimBackend, unsafe: bool, cspec: Any = cspec) -> Any:
                return sim.load(cspec, unsafe_skip_verifier=unsafe)

            try:
                row = _measure(load_obj, args.rounds)
            except NetbpfError as e:
                skipped.append(f"{obj.name.rsplit('-', 1)[0]}: {str(e).splitlines()[0][:100]}")
                continue
            rows.append({"program": f"{obj.name.rsplit('-', 1)[0]}.o", **row})
    total = {k: sum(r[k] for r in rows) for k in ("unverified", "cold", "cached")}
    if args.json:
        json.dump({"rows": rows, "total": total, "skipped": skipped}, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'program':40} {'unverified':>12} {'cold':>12} {'cached':>12}   (ms per load)")
    for r in rows:
        print(
            f"{r['program']:40} {r['unverified'] * 1e3:12.2f} {r['cold'] * 1e3:12.2f} "
            f"{r['cached'] * 1e3:12.2f}"
        )
    print(
        f"{'total (' + str(len(rows)) + ' loads)':40} {total['unverified'] * 1e3:12.1f} "
        f"{total['cold'] * 1e3:12.1f} {total['cached'] * 1e3:12.1f}"
    )
    for s in skipped:
        print(f"skipped {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
