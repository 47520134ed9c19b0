"""BTF parsing cost on the running kernel's BTF (/sys/kernel/btf/vmlinux).

Run: ``python bench/btf.py [--repeat N]``.  Prints a markdown table of the median and
the spread (min..max) of N runs for each step; each step starts from a fresh parse so
no cache is shared between runs.  bpftool's own dump time is given for scale.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from netbpf.obj.btf import Btf, CoreRelo, CoreReloKind, compute_core_relocation, format_raw
from netbpf.obj.btf.types import Int, IntEncoding, Member, Struct

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    raw = VMLINUX.read_bytes()
    probe = Btf.parse(raw, lazy=True)
    n_types = len(probe) - 1

    local = Btf.from_types(
        [
            Int(1, "unsigned int", 4, IntEncoding.NONE, 0, 32),
            Struct(2, "sk_buff___bench", 4, (Member("len", 1, 0),)),
        ]
    )
    relo = CoreRelo("bench", 0, 2, 0, "0:0", CoreReloKind.FIELD_BYTE_OFFSET)

    def lazy_then_find() -> None:
        Btf.parse(raw, lazy=True).find("sk_buff", "struct")

    def first_core() -> None:
        compute_core_relocation(local, relo, Btf.parse(raw, lazy=True))

    eager = Btf.parse(raw)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("lazy parse (header + record scan)", lambda: Btf.parse(raw, lazy=True)),
        ("lazy parse + first find() (name index)", lazy_then_find),
        ("lazy parse + first CO-RE relocation (candidate index)", first_core),
        ("eager parse (decode and validate every type)", lambda: Btf.parse(raw)),
        ("format_raw of the eager BTF", lambda: format_raw(eager)),
        ("to_bytes of the eager BTF", eager.to_bytes),
    ]
    bpftool = shutil.which("bpftool")
    if bpftool:
        steps.append(
            (
                "(bpftool btf dump file, for scale)",
                lambda: subprocess.run(
                    [bpftool, "btf", "dump", "file", str(VMLINUX)],
                    stdout=subprocess.DEVNULL,
                    check=True,
                ),
            )
        )
    print(f"vmlinux BTF: {len(raw)} bytes, {n_types} types; {args.repeat} runs each\n")
    print("| step | median s | min..max s |")
    print("|---|---:|---:|")
    for name, fn in steps:
        ts = _time(fn, args.repeat)
        print(f"| {name} | {statistics.median(ts):.3f} | {min(ts):.3f}..{max(ts):.3f} |")


if __name__ == "__main__":
    main()
