"""Verifier benchmark: netbpf's verifier beside the kernel's, on the same programs.

    python bench/verifier.py                  # synthetic programs + the C corpus
    python bench/verifier.py --rounds 5 --json
    python bench/verifier.py --no-corpus      # synthetic programs only (no clang needed)
    python bench/verifier.py --corpus-group loops --rounds 1
                                              # the differential corpus's loop cases
                                              # (its slowest), side by side

Programs:

* synthetic assembly programs (XDP, no maps), each stressing one part of the verifier:
  a bounded loop walked iteration by iteration, long straight-line ALU code, a chain
  of data-dependent branches (many states, pruning), packet parsing with bounds checks,
  and stack spills/fills;
* every program of the C corpus ``tests/progs/*.c`` (compiled with clang, cached in
  ``.cache/progs``) that both verifiers accept.

For each program and each verifier we report:

* ``processed`` -- instructions the verifier processed (its own count: netbpf's
  exploration differs from the kernel's, see docs/verifier.md, so the counts differ);
* netbpf: wall time of :func:`netbpf.verifier.verify` (log level 0) and processed
  instructions per second;
* kernel: the verifier's own ``verification time`` (log level 4, BPF_LOG_STATS:
  kernel-measured, verification only) and the wall time of the BPF_PROG_LOAD that
  carried it (verification + JIT + syscall; for C programs the whole object load,
  maps and BTF included, since their maps must exist first).

Every cell is the median of ``--rounds`` rounds; the JSON output has the spread.
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from netbpf import ProgramSpec
from netbpf.errors import NetbpfError
from netbpf.verifier import verify

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache/progs"

LOOP_ITERS = 10_000


def _branch_chain(n: int) -> str:
    """n data-dependent diamonds on bits of a random value: each joins with a
    different r3, so states at the join differ until pruning sees that neither r3 nor
    the tested bits matter later (a fresh random value every 30 bits, so that no
    branch is decided by an earlier one)."""
    out = ["r6 = r1", "call 7", "r7 = r0", "r3 = 0"]
    for i in range(n):
        if i and i % 30 == 0:
            out += ["call 7", "r7 = r0"]
        out += [f"if r7 & {1 << (i % 30)} goto +2", f"r3 = {i}", "goto +1", f"r3 = {i + 1000}"]
    out += ["r0 = 2", "exit"]
    return "\n".join(out)


def _alu_chain(n: int) -> str:
    ops = ["r0 += r1", "r0 ^= 0x55", "r1 *= 3", "r0 >>= 1", "r1 &= 0xffff", "w0 += w1"]
    body = ["r0 = 1", "r1 = 7"] + [ops[i % len(ops)] for i in range(n)]
    return "\n".join([*body, "r0 = 2", "exit"])


PKT_PARSE = """
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 14
    if r4 > r3 goto drop
    r5 = *(u16 *)(r2 + 12)
    if r5 != 0x8 goto pass
    r4 = r2
    r4 += 34
    if r4 > r3 goto drop
    r5 = *(u8 *)(r2 + 23)
    if r5 == 6 goto tcp
    if r5 == 17 goto udp
    goto pass
tcp:
    r4 = r2
    r4 += 54
    if r4 > r3 goto drop
    r5 = *(u16 *)(r2 + 36)
    if r5 == 0x5000 goto drop
    goto pass
udp:
    r4 = r2
    r4 += 42
    if r4 > r3 goto drop
    r5 = *(u16 *)(r2 + 36)
    if r5 == 0x3500 goto drop
pass:
    r0 = 2
    exit
drop:
    r0 = 1
    exit
"""

LOOP = f"""
    r0 = 0
    r1 = 0
loop:
    r0 += r1
    r0 &= 0xffff
    r1 += 1
    if r1 < {LOOP_ITERS} goto loop
    r0 = 2
    exit
"""


def _stack_spills(n: int) -> str:
    out = ["r6 = r1", "call 7", "r7 = r0"]
    for i in range(n):
        off = -8 * (1 + i % 60)
        out += [f"*(u64 *)(r10 {off}) = r7", f"r8 = *(u64 *)(r10 {off})", "r7 += r8"]
    out += ["r0 = 2", "exit"]
    return "\n".join(out)


SYNTHETIC: dict[str, str] = {
    f"bounded loop ({LOOP_ITERS} iterations)": LOOP,
    "straight-line ALU (4000 insns)": _alu_chain(4000),
    "branch chain (200 diamonds)": _branch_chain(200),
    "packet parsing (eth/ip/tcp/udp)": PKT_PARSE,
    "stack spills/fills (1500)": _stack_spills(1500),
}


@dataclass
class Row:
    name: str
    insns: int
    processed_ours: int = 0
    processed_kernel: int | None = None
    ours_s: list[float] = field(default_factory=list)
    kernel_verify_s: list[float] = field(default_factory=list)
    kernel_load_s: list[float] = field(default_factory=list)


_VTIME = re.compile(r"verification time (\d+) usec")
_PROCESSED = re.compile(r"processed (\d+) insns")


def _record_kernel_stats(row: Row, log: str) -> None:
    """Take the kernel's verification time and processed count from its BPF_LOG_STATS
    line (log level 4), when the log carries one."""
    if m := _VTIME.search(log):
        row.kernel_verify_s.append(int(m.group(1)) / 1e6)
    if m := _PROCESSED.search(log):
        row.processed_kernel = int(m.group(1))


def _kernel() -> object | None:
    try:
        from netbpf.kernel import KernelBackend

        k = KernelBackend()
        k.load_program(ProgramSpec.from_asm("r0 = 0\nexit", prog_type="xdp")).close()
        return k
    except (NetbpfError, OSError):
        return None


def bench_synthetic(k: object | None, rounds: int) -> list[Row]:
    rows = []
    for name, src in SYNTHETIC.items():
        spec = ProgramSpec.from_asm(src, prog_type="xdp")
        row = Row(name, len(spec.insns))
        for _ in range(rounds):
            t0 = time.perf_counter()
            res = verify(spec)
            row.ours_s.append(time.perf_counter() - t0)
            row.processed_ours = res.processed_insns
            if k is not None:
                t0 = time.perf_counter()
                p = k.load_program(spec, log_level=4)  # type: ignore[attr-defined]
                row.kernel_load_s.append(time.perf_counter() - t0)
                log = p.verifier_log
                p.close()
                _record_kernel_stats(row, log)
        rows.append(row)
        print(f"  {name}: done", file=sys.stderr)
    return rows


def _build(src: Path) -> Path | None:
    key = hashlib.sha256(src.read_bytes()).hexdigest()[:20]
    out = CACHE / f"vc_{key}.o"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    for cc in ("clang-19", "clang"):
        try:
            r = subprocess.run(
                [
                    cc,
                    "-O2",
                    "-g",
                    "-target",
                    "bpf",
                    "-I/usr/include/x86_64-linux-gnu",
                    f"-I{ROOT / 'tests/progs'}",
                    "-c",
                    str(src),
                    "-o",
                    str(out),
                ],
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            continue
        return out if r.returncode == 0 else None
    return None


def bench_corpus(k: object | None, rounds: int) -> list[Row]:
    from netbpf.errors import VerifierError
    from netbpf.obj.btf.core import apply_core_relocation, compute_core_relocation
    from netbpf.obj.collection import load_collection_spec

    rows = []
    vml = None
    for src in sorted((ROOT / "tests/progs").glob("*.c")):
        obj = _build(src)
        if obj is None:
            continue
        try:
            cs = load_collection_spec(obj)
        except NetbpfError:
            continue
        for pname, ps in cs.programs.items():
            spec = ps
            if ps.core_relos:
                if k is None:
                    continue
                if vml is None:
                    vml = k.vmlinux_btf()  # type: ignore[attr-defined]
                insns = list(ps.insns)
                try:
                    for slot, relo in ps.core_relos:
                        r = compute_core_relocation(ps.btf, relo, vml)
                        insns = list(
                            apply_core_relocation(insns, relo, r, insn_base=relo.insn - slot)
                        )
                except Exception:
                    continue
                spec = replace(ps, insns=tuple(insns))
            try:
                res = verify(spec, maps=cs.maps)
            except VerifierError:
                continue
            one = cs.copy()
            one.programs = {pname: ps}
            row = Row(f"{src.stem}:{pname}", len(spec.insns), processed_ours=res.processed_insns)
            ok = True
            for _ in range(rounds):
                t0 = time.perf_counter()
                verify(spec, maps=cs.maps)
                row.ours_s.append(time.perf_counter() - t0)
                if k is not None:
                    try:
                        t0 = time.perf_counter()
                        coll = k.load(one, log_level=4)  # type: ignore[attr-defined]
                        row.kernel_load_s.append(time.perf_counter() - t0)
                    except NetbpfError:
                        ok = False
                        break
                    log = next(iter(coll.programs.values())).verifier_log
                    coll.close()
                    _record_kernel_stats(row, log or "")
            if ok:
                rows.append(row)
    return rows


def bench_corpus_group(k: object | None, rounds: int, group: str) -> list[Row]:
    """The assembly cases of one group of the differential corpus
    (tests/verifier_corpus/cases/GROUP.case), accepted or refused: for a refusal at
    the complexity limit both verifiers do the full 1M instructions of work, so these
    are the slowest programs of the corpus.  The kernel's verification time is read
    from its BPF_LOG_STATS line when the log carries one (also on refusals)."""
    sys.path.insert(0, str(ROOT / "tests" / "verifier_corpus"))
    from corpus import build, load_corpus  # type: ignore[import-not-found]

    from netbpf.errors import KernelError
    from netbpf.verifier import VerifierRejection

    rows = []
    for case in load_corpus():
        if case.group != group or case.asm is None:
            continue
        built = build(case)
        row = Row(f"{group}/{case.name} ({case.expect})", len(built.spec.insns))
        for _ in range(rounds):
            t0 = time.perf_counter()
            try:
                res = verify(built.spec, maps=built.maps)
                row.processed_ours = res.processed_insns
            except VerifierRejection as e:
                row.processed_ours = e.processed_insns
            row.ours_s.append(time.perf_counter() - t0)
            if k is not None:
                t0 = time.perf_counter()
                try:
                    coll = k.load(built.collection, log_level=4)  # type: ignore[attr-defined]
                    log = coll.programs[built.spec.name].verifier_log
                    coll.close()
                except KernelError as e:
                    log = e.log
                row.kernel_load_s.append(time.perf_counter() - t0)
                _record_kernel_stats(row, log)
        rows.append(row)
        print(f"  {row.name}: done", file=sys.stderr)
    return rows


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _fmt_t(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def _rate(n: int | None, s: float | None) -> str:
    if not n or not s:
        return "-"
    r = n / s
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.1f} k"


def table(rows: list[Row]) -> str:
    head = (
        "| program | insns | processed (netbpf / kernel) | netbpf verify | netbpf insn/s "
        "| kernel verification time | kernel insn/s | kernel BPF_PROG_LOAD | netbpf / kernel time |\n"
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    out = []
    for r in rows:
        o, kv, kl = _med(r.ours_s), _med(r.kernel_verify_s), _med(r.kernel_load_s)
        ratio = f"{o / kv:.0f}x" if o and kv else "-"
        out.append(
            f"| {r.name} | {r.insns} | {r.processed_ours} / {r.processed_kernel or '-'} "
            f"| {_fmt_t(o)} | {_rate(r.processed_ours, o)} | {_fmt_t(kv)} "
            f"| {_rate(r.processed_kernel, kv)} | {_fmt_t(kl)} | {ratio} |"
        )
    return head + "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument(
        "--corpus-group",
        metavar="GROUP",
        help="only the assembly cases of this differential-corpus group (e.g. loops)",
    )
    args = ap.parse_args()
    k = _kernel()
    if k is None:
        print("kernel not usable: netbpf columns only", file=sys.stderr)
    if args.corpus_group:
        rows = bench_corpus_group(k, args.rounds, args.corpus_group)
    else:
        rows = bench_synthetic(k, args.rounds)
        if not args.no_corpus:
            rows += bench_corpus(k, args.rounds)
    if args.json:
        print(
            json.dumps(
                {"python": platform.python_version(), "rows": [r.__dict__ for r in rows]}, indent=1
            )
        )
        return 0
    print(table(rows))
    tot_o = sum(_med(r.ours_s) or 0 for r in rows)
    tot_po = sum(r.processed_ours for r in rows)
    tot_k = sum(_med(r.kernel_verify_s) or 0 for r in rows)
    tot_pk = sum(r.processed_kernel or 0 for r in rows)
    print(
        f"\ntotal: netbpf {tot_po} insns in {_fmt_t(tot_o)} ({_rate(tot_po, tot_o)} insn/s); "
        f"kernel {tot_pk} insns in {_fmt_t(tot_k)} ({_rate(tot_pk, tot_k)} insn/s)"
    )
    slow = max(rows, key=lambda r: _med(r.ours_s) or 0)
    print(f"slowest for netbpf: {slow.name} ({_fmt_t(_med(slow.ours_s))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
