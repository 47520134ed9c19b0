"""VM benchmark: the simulator's engines beside the kernel, on the same programs.

    python bench/vm.py                 # every program, every engine, the kernel if usable
    python bench/vm.py --rounds 7 --json

For each program (XDP programs written in assembly, so the kernel runs the very same
instructions) and each engine we report:

* ``insns`` -- instructions executed by one run (counted by the engine; the kernel's
  JIT runs the same instruction stream, so its ns/insn divides by the same count);
* ``ns/insn`` -- time of one run divided by ``insns``;
* ``per run`` -- ``duration_ns`` of ``test_run``: the mean time of one program run
  over ``repeat`` runs, test-run setup excluded, for the simulator and the kernel alike.

Every cell is the median of ``--rounds`` rounds, with the spread (min..max) in the JSON
output: the machine is shared, single runs are noisy.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass

from netbpf import ProgramSpec, SimBackend
from netbpf.vm.engine import ENGINES

ARITH_ITERS = 50_000

#: a tight arithmetic loop: 4 instructions per iteration, registers only
ARITH = f"""
    r0 = 0
    r1 = {ARITH_ITERS}
loop:
    r0 += r1
    r0 ^= 0x55
    r1 -= 1
    if r1 != 0 goto loop
    r0 &= 3
    exit
"""

#: memory-heavy: sum the packet's bytes (bounds-checked packet loads) through a
#: stack-resident accumulator, with a 4-byte store back into the packet per 4 bytes
MEMORY = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = 0
    *(u64 *)(r10 - 8) = r4
loop:
    r5 = r2
    r5 += r4
    r6 = r5
    r6 += 4
    if r6 > r3 goto out
    r7 = *(u8 *)(r5 + 0)
    r8 = *(u16 *)(r5 + 1)
    r7 += r8
    r0 = *(u64 *)(r10 - 8)
    r0 += r7
    *(u64 *)(r10 - 8) = r0
    *(u32 *)(r5 + 0) = r0
    r4 += 4
    if r4 < 1400 goto loop
out:
    r0 = *(u64 *)(r10 - 8)
    r0 &= 3
    exit
"""

#: per-run overhead: two instructions
MINIMAL = """
    r0 = 2
    exit
"""

PROGRAMS = {
    "tight arithmetic loop": ARITH,
    "memory-heavy loop": MEMORY,
    "minimal program": MINIMAL,
}
PACKET = bytes(range(256)) * 6  # 1536 bytes

#: runs per test_run call, per engine and program (the interpreter is ~10x slower)
REPEAT = {"interpreter": 1, "fast": 5, "kernel": 200}
REPEAT_MINIMAL = {"interpreter": 20_000, "fast": 20_000, "kernel": 100_000}


def python_baseline(n: int = 1_000_000) -> float:
    """ns per iteration of an empty ``for`` loop: how fast this CPython is right now on
    this (shared) machine; every simulator number scales with it."""
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pass
    return (time.perf_counter_ns() - t0) / n


@dataclass
class Cell:
    insns: int
    ns_per_run: list[float]

    def ns_per_insn(self) -> list[float]:
        return [t / self.insns for t in self.ns_per_run]


def _count_insns(prog: object) -> int:
    """Instructions one test_run executes (wrap Executable.run once to read the count)."""
    exe = prog.executable  # type: ignore[attr-defined]
    counts: list[int] = []
    orig = exe.run

    def counted(env, r1, **kw):  # type: ignore[no-untyped-def]
        r0 = orig(env, r1, **kw)
        counts.append(env.insn_count)
        return r0

    exe.run = counted
    try:
        prog.test_run(PACKET)  # type: ignore[attr-defined]
    finally:
        del exe.run
    return counts[-1]


def _repeat(spec: ProgramSpec, col: str) -> int:
    return (REPEAT_MINIMAL if spec.name == "minimal" else REPEAT)[col]


def bench_sim(spec: ProgramSpec, engine: str, rounds: int) -> Cell:
    with SimBackend(engine=engine) as sim:
        prog = sim.load_program(spec)
        insns = _count_insns(prog)
        prog.test_run(PACKET, repeat=1)  # warm-up (translation is done at load)
        times = []
        for _ in range(rounds):
            # duration_ns: mean time of one program run (test-run setup excluded), as
            # the kernel measures it
            res = prog.test_run(PACKET, repeat=_repeat(spec, engine))
            times.append(float(res.duration_ns))
        return Cell(insns, times)


def bench_kernel(spec: ProgramSpec, insns: int, rounds: int) -> Cell | str:
    """The kernel (JIT as configured) via BPF_PROG_TEST_RUN with repeat, or the reason
    it could not run."""
    try:
        from netbpf.kernel import KernelBackend, bpf_usable
    except ImportError as e:  # pragma: no cover - the kernel package is part of netbpf
        return f"netbpf.kernel unavailable: {e}"
    usable = bpf_usable()
    if not usable:
        return f"kernel unusable: {usable.reason}"
    with KernelBackend().load_program(spec) as prog:
        times = []
        for _ in range(rounds):
            res = prog.test_run(PACKET, repeat=_repeat(spec, "kernel"))
            times.append(float(res.duration_ns))
    return Cell(insns, times)


def _fmt(values: list[float], unit: str) -> str:
    med = statistics.median(values)
    if unit == "ns/insn":
        return f"{med:.2f}" if med < 10 else f"{med:.1f}"
    if med >= 1e6:
        return f"{med / 1e6:.2f} ms"
    if med >= 1e3:
        return f"{med / 1e3:.1f} µs"
    return f"{med:.0f} ns"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds per cell (median reported)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated engines")
    ap.add_argument("--no-kernel", action="store_true", help="skip the kernel column")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]

    results: dict[str, dict[str, object]] = {}
    baselines = [python_baseline()]
    for name, text in PROGRAMS.items():
        spec = ProgramSpec.from_asm(text, prog_type="xdp", name=name.split()[0].split("-")[0])
        row: dict[str, object] = {}
        insns = 0
        for engine in engines:
            cell = bench_sim(spec, engine, args.rounds)
            insns = cell.insns
            row[engine] = cell
        if not args.no_kernel:
            row["kernel"] = bench_kernel(spec, insns, args.rounds)
        results[name] = row
        baselines.append(python_baseline())

    meta = {
        "python_empty_loop_ns": [round(b, 1) for b in baselines],
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "kernel": platform.release(),
    }
    if args.json:
        out = {"meta": meta, "results": {}}
        for name, row in results.items():
            out["results"][name] = {
                col: (
                    {
                        "insns": c.insns,
                        "ns_per_insn_median": statistics.median(c.ns_per_insn()),
                        "ns_per_insn_range": [min(c.ns_per_insn()), max(c.ns_per_insn())],
                        "ns_per_run_median": statistics.median(c.ns_per_run),
                        "ns_per_run_range": [min(c.ns_per_run), max(c.ns_per_run)],
                    }
                    if isinstance(c, Cell)
                    else {"skipped": c}
                )
                for col, c in row.items()
            }
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0

    print(f"# bench/vm.py  {meta['date']}  Python {meta['python']}  Linux {meta['kernel']}")
    print(f"# median of {args.rounds} rounds; ns/insn = one run's time / instructions it executed")
    print(
        "# CPython empty for-loop iteration (machine speed right now, before/between rows): "
        + ", ".join(f"{b:.1f}" for b in baselines)
        + " ns"
    )
    cols = [*engines, *([] if args.no_kernel else ["kernel"])]
    head = ["program", "insns"] + [f"{c} ns/insn" for c in cols] + [f"{c} per run" for c in cols]
    print(" | ".join(head))
    for name, row in results.items():
        cells = [row[c] for c in cols]
        insns = next(c.insns for c in cells if isinstance(c, Cell))
        line = [name, str(insns)]
        line += [_fmt(c.ns_per_insn(), "ns/insn") if isinstance(c, Cell) else "-" for c in cells]
        line += [_fmt(c.ns_per_run, "run") if isinstance(c, Cell) else "-" for c in cells]
        print(" | ".join(line))
        for c, cell in zip(cols, cells):
            if not isinstance(cell, Cell):
                print(f"#   {c}: {cell}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
