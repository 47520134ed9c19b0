"""Ask the running kernel about every verifier corpus case; by hand, as root.

    python tests/verifier_corpus/check_kernel.py [--write] [--log] [SUBSTRING ...]

Loads each case (whose id contains one of the SUBSTRINGs, or all) with BPF_PROG_LOAD
and prints one line per case: the kernel's verdict, its verdict line and class, and
``!!`` where that differs from what the case file records.  ``--write`` records the
kernel's verdict in the case files (``-- expect`` / ``-- error`` / ``-- class``, right
after each case's header fields), so the corpus is (re)derived from the kernel and the
change is reviewed as a diff.  ``--log`` prints the full verifier log of refusals.
A summary of verdicts per group and per class ends the output.

C cases are compiled with the same pinned clang command as the ``compile_bpf`` test
fixture (tests/conftest.py), into the same cache.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from verifier_corpus.corpus import (  # noqa: E402
    Case,
    KernelSetupError,
    KernelVerdict,
    kernel_verdict,
    load_corpus,
)


def compile_c(text: str) -> Path:
    """The compile_bpf fixture's pinned command (tests/conftest.py), outside pytest;
    objects are cached in the same directory, keyed by source and flags."""
    import hashlib
    import subprocess
    import tempfile

    from conftest import CLANG, CLANG_FLAGS, PROG_CACHE, PROGS_DIR

    flags = (*CLANG_FLAGS, f"-I{PROGS_DIR}")
    key = hashlib.sha256(("\0".join((CLANG, *flags, text))).encode()).hexdigest()[:24]
    obj = PROG_CACHE / f"vc-{key}.o"
    if obj.exists():
        return obj
    PROG_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=PROG_CACHE) as tmp:
        src = Path(tmp) / "prog.c"
        src.write_text(text)
        res = subprocess.run(
            [CLANG, *flags, "-c", str(src), "-o", str(Path(tmp) / "out.o")],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            raise KernelSetupError(f"clang failed:\n{res.stderr[-2000:]}")
        (Path(tmp) / "out.o").replace(obj)
    return obj


def _recorded(v: KernelVerdict) -> list[str]:
    if v.accepted:
        return ["-- expect accept"]
    return ["-- expect reject", f"-- error {v.error}", f"-- class {v.cls}"]


def write_back(results: dict[Case, KernelVerdict]) -> int:
    """Rewrite the recorded fields of the cases in ``results``; returns files changed."""
    by_file: dict[Path, list[Case]] = collections.defaultdict(list)
    for case in results:
        by_file[case.path].append(case)
    changed = 0
    for path, cases in by_file.items():
        lines = path.read_text().splitlines()
        drop = {n for c in cases for n in c.recorded_lines}
        insert = {c.header_end: _recorded(results[c]) for c in cases}
        out: list[str] = []
        for n, line in enumerate(lines, 1):
            if n not in drop:
                out.append(line)
            if n in insert:
                out.extend(insert[n])
        text = "\n".join(out) + "\n"
        if text != path.read_text():
            path.write_text(text)
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="record the kernel's verdicts")
    ap.add_argument("--log", action="store_true", help="print verifier logs of refusals")
    ap.add_argument("filters", nargs="*", help="only cases whose id contains one of these")
    args = ap.parse_args(argv)

    from netbpf.kernel import KernelBackend

    backend = KernelBackend()
    cases = [c for c in load_corpus() if not args.filters or any(f in c.id for f in args.filters)]
    results: dict[Case, KernelVerdict] = {}
    per_group: collections.Counter[tuple[str, str]] = collections.Counter()
    per_class: collections.Counter[str] = collections.Counter()
    differ = 0
    for case in cases:
        try:
            v = kernel_verdict(case, backend, compile_c)
        except KernelSetupError as e:
            print(f"SETUP {case.id}: {e}")
            continue
        results[case] = v
        verdict = "accept" if v.accepted else "reject"
        per_group[(case.group, verdict)] += 1
        if not v.accepted:
            per_class[v.cls] += 1
        same = case.expect == verdict and (
            v.accepted or (case.error == v.error and case.cls == v.cls)
        )
        differ += not same
        mark = "  " if same else "!!"
        detail = "" if v.accepted else f"  [{v.cls}] {v.error}"
        was = "" if same else f"   (recorded: {case.expect} {case.cls or ''} {case.error or ''})"
        print(f"{mark} {verdict:6} {case.id}{detail}{was}")
        if args.log and not v.accepted:
            print("    " + v.log.rstrip().replace("\n", "\n    "))
    print()
    groups = sorted({g for g, _ in per_group})
    for g in groups:
        print(f"{g:24} accept {per_group[(g, 'accept')]:4}  reject {per_group[(g, 'reject')]:4}")
    print()
    for cls, n in per_class.most_common():
        print(f"{cls:24} {n:4}")
    total_acc = sum(n for (_, v), n in per_group.items() if v == "accept")
    print(
        f"\n{len(results)} cases: {total_acc} accepted, {len(results) - total_acc} rejected; "
        f"{differ} differ from the recorded verdicts"
    )
    if args.write:
        print(f"wrote {write_back(results)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
