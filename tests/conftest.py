"""Shared fixtures.

``kernel``: a session-wide :class:`netbpf.KernelBackend`, or a skip whose reason is the
probe's (shown by ``pytest -ra``), so kernel-differential tests skip cleanly where
bpf() is unusable.  Tests that use it are marked ``kernel`` automatically
(``-m "not kernel"`` deselects them).

``compile_bpf``: compiles one of our C programs with the pinned clang command into
``.cache/progs/<sha>.o`` (keyed by source, headers beside it, flags and compiler), so
the test objects are rebuilt from source on every machine and never stored in git.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests are reproducible in CI (same examples on every run, no flaky
# deadlines on a loaded 2-core machine) and explore freely on a developer's machine.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGS_DIR = REPO_ROOT / "tests" / "progs"
PROG_CACHE = REPO_ROOT / ".cache" / "progs"

CLANG = "clang-19"
CLANG_FLAGS = ("-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kernel: differential test that needs the running kernel's bpf() "
        "(skipped with a reason where unusable)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "kernel" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(scope="session")
def kernel():  # -> netbpf.kernel.KernelBackend
    """The running kernel as a backend, or skip with the probe's reason."""
    from netbpf.errors import KernelUnavailable
    from netbpf.kernel import KernelBackend, bpf_usable

    usable = bpf_usable()
    if not usable:
        pytest.skip(f"kernel backend unusable: {usable.reason}")
    try:
        return KernelBackend()
    except KernelUnavailable as e:  # pragma: no cover - the probe said yes
        pytest.skip(str(e))


CompileBpf = Callable[..., Path]


def _clang_version(clang: str) -> str:
    out = subprocess.run([clang, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else clang


def _header_digest(dirs: Iterable[Path]) -> bytes:
    h = hashlib.sha256()
    for d in sorted({p.resolve() for p in dirs}):
        if d.is_dir():
            for hdr in sorted(d.glob("*.h")):
                h.update(hdr.name.encode() + b"\0" + hdr.read_bytes() + b"\0")
    return h.digest()


@pytest.fixture(scope="session")
def compile_bpf() -> CompileBpf:
    """``compile_bpf(source_path_or_text, *, extra_flags=()) -> Path`` of the object.

    ``source_path_or_text`` is a path to a ``.c`` file (a relative path is looked up
    in ``tests/progs/``) or C source text.  The command is
    ``clang-19 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu [-I<source dir>]
    [-Itests/progs] EXTRA -c SRC -o OBJ``.  Skips when clang-19 is missing; a compile
    error fails the test with clang's message."""
    clang = shutil.which(CLANG)
    if clang is None:
        pytest.skip(f"{CLANG} not found on PATH (needed to build tests/progs)")
    version = _clang_version(clang)

    def build(source: str | os.PathLike[str], *, extra_flags: Iterable[str] = ()) -> Path:
        extra = tuple(extra_flags)
        src_path: Path | None = None
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and "\n" not in source and source.endswith(".c")
        ):
            src_path = Path(source)
            if not src_path.is_absolute() and not src_path.exists():
                src_path = PROGS_DIR / src_path
            text = src_path.read_text()
            include_dirs = [src_path.parent.resolve(), PROGS_DIR]
        else:
            text = str(source)
            include_dirs = [PROGS_DIR]
        key = hashlib.sha256()
        key.update(version.encode() + b"\0")
        key.update("\0".join(CLANG_FLAGS + extra).encode() + b"\0")
        key.update(text.encode() + b"\0")
        key.update(_header_digest(include_dirs))
        obj = PROG_CACHE / f"{key.hexdigest()[:24]}.o"
        if obj.exists():
            return obj
        PROG_CACHE.mkdir(parents=True, exist_ok=True)
        incs = [f"-I{d}" for d in dict.fromkeys(str(d) for d in include_dirs)]
        with tempfile.TemporaryDirectory(dir=PROG_CACHE) as tmp:
            src = src_path if src_path is not None else Path(tmp) / "prog.c"
            if src_path is None:
                src.write_text(text)
            out_tmp = Path(tmp) / "out.o"
            cmd = [clang, *CLANG_FLAGS, *incs, *extra, "-c", str(src), "-o", str(out_tmp)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                pytest.fail(
                    f"compiling {src_path or '<inline C>'} failed:\n"
                    f"$ {' '.join(cmd)}\n{res.stderr}",
                    pytrace=False,
                )
            # Atomic: other test processes may build the same object concurrently.
            os.replace(out_tmp, obj)
        return obj

    return build
