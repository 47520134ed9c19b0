"""netbpf's VM conformance corpus: the case format and its parser.

Cases live in ``tests/conformance/cases/<group>.data``, many to a file.  The format
follows the bpf_conformance suite's ``.data`` files (``-- asm``, ``-- mem``,
``-- result``) so a case reads the same in both places, with a header line per case
and a few sections of our own::

    # comments (a '#' line outside a section body, or before the first case)
    === case-name
    # why this case exists
    -- asm            assembly, llvm-objdump or bpf_conformance syntax (or -- raw)
    r0 = *(u32 *)(r1 + 0)
    exit
    -- mem            memory handed to the program: r1 = its address, r2 = its length
    11 22 33 44
    -- result         expected r0, 64 bits (hex or decimal)
    0x44332211

Other sections:

``-- raw``
    the program as instruction bytes in hex, for what assembly cannot express;
``-- packet``
    instead of ``-- mem``: run as an skb program (r1 = context) whose packet is these
    bytes, for LD_ABS / LD_IND;
``-- error``
    instead of ``-- result``: ``ClassName[: text]``, the netbpf exception (from
    :mod:`netbpf.errors`) the engines must raise and text its message must contain;
``-- kernel``
    what the kernel does with the case: ``accept`` (the default: it loads and gives
    the result), ``reject[: text]`` (its verifier refuses the program, its log
    containing text), or ``skip: reason`` (it cannot run the case, for that reason).

The format is checked strictly: an unknown section, a missing or doubled one, bad
hex or a malformed number is a :class:`CorpusError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from netbpf.isa.asm import assemble
from netbpf.isa.instruction import Instruction, decode_program

__all__ = ["CASES_DIR", "Case", "CorpusError", "KernelExpectation", "load_corpus", "parse_cases"]

CASES_DIR = Path(__file__).resolve().parent / "cases"

_SECTIONS = ("asm", "raw", "mem", "packet", "result", "error", "kernel")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class CorpusError(Exception):
    """A malformed case file; the message names the file and line."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


@dataclass(frozen=True)
class KernelExpectation:
    """What the kernel must do with a case: ``mode`` is accept, reject or skip;
    ``text`` must appear in the verifier log (reject) or is the reason (skip)."""

    mode: str = "accept"
    text: str = ""


@dataclass(frozen=True)
class Case:
    """One conformance case, as parsed (see the module docstring for the sections)."""

    group: str
    name: str
    path: Path
    line: int
    asm: str | None = None
    raw: bytes | None = None
    mem: bytes | None = None
    packet: bytes | None = None
    result: int | None = None
    error: tuple[str, str] | None = None
    kernel: KernelExpectation = field(default_factory=KernelExpectation)

    @property
    def id(self) -> str:
        """``group/name``: the pytest id."""
        return f"{self.group}/{self.name}"

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line} ({self.id})"

    def program(self) -> list[Instruction]:
        """The case's instruction slots (assembled, or decoded from ``-- raw``)."""
        if self.raw is not None:
            return decode_program(self.raw)
        assert self.asm is not None
        return assemble(self.asm)


def _hex(body: list[tuple[int, str]], path: Path) -> bytes:
    out = bytearray()
    for lineno, text in body:
        text = text.split("#", 1)[0]
        for token in text.split():
            if not re.fullmatch(r"[0-9a-fA-F]{2}", token):
                raise CorpusError(path, lineno, f"{token!r} is not a hex byte (two hex digits)")
            out.append(int(token, 16))
    return bytes(out)


def _single(body: list[tuple[int, str]], path: Path, line: int, what: str) -> tuple[int, str]:
    lines = [(n, t.strip()) for n, t in body if t.strip() and not t.strip().startswith("#")]
    if len(lines) != 1:
        raise CorpusError(path, line, f"-- {what} needs exactly one line, got {len(lines)}")
    return lines[0]


def _build(
    path: Path, group: str, name: str, line: int, sections: dict[str, tuple[int, list]]
) -> Case:
    def has(s: str) -> bool:
        return s in sections

    if has("asm") == has("raw"):
        raise CorpusError(path, line, f"case {name!r} needs exactly one of -- asm / -- raw")
    if has("result") == has("error"):
        raise CorpusError(path, line, f"case {name!r} needs exactly one of -- result / -- error")
    if has("mem") and has("packet"):
        raise CorpusError(path, line, f"case {name!r} has both -- mem and -- packet")
    kw: dict[str, object] = {}
    if has("asm"):
        text = "\n".join(t for _, t in sections["asm"][1])
        if not text.strip():
            raise CorpusError(path, sections["asm"][0], "-- asm is empty")
        kw["asm"] = text
    if has("raw"):
        raw = _hex(sections["raw"][1], path)
        if not raw:
            raise CorpusError(path, sections["raw"][0], "-- raw is empty")
        kw["raw"] = raw
    if has("mem"):
        kw["mem"] = _hex(sections["mem"][1], path)
    if has("packet"):
        kw["packet"] = _hex(sections["packet"][1], path)
    if has("result"):
        n, text = _single(sections["result"][1], path, sections["result"][0], "result")
        try:
            value = int(text, 0)
        except ValueError:
            raise CorpusError(path, n, f"result {text!r} is not a number") from None
        if not -(1 << 63) <= value < (1 << 64):
            raise CorpusError(path, n, f"result {text!r} does not fit in 64 bits")
        kw["result"] = value & ((1 << 64) - 1)
    if has("error"):
        n, text = _single(sections["error"][1], path, sections["error"][0], "error")
        cls, _, detail = text.partition(":")
        if not re.fullmatch(r"[A-Z]\w*", cls.strip()):
            raise CorpusError(path, n, f"error {text!r} must start with an exception class name")
        kw["error"] = (cls.strip(), detail.strip())
    if has("kernel"):
        n, text = _single(sections["kernel"][1], path, sections["kernel"][0], "kernel")
        mode, _, detail = text.partition(":")
        mode = mode.strip()
        if mode not in ("accept", "reject", "skip"):
            raise CorpusError(path, n, f"-- kernel must be accept, reject or skip, not {mode!r}")
        if mode == "skip" and not detail.strip():
            raise CorpusError(path, n, "-- kernel skip needs a reason: 'skip: why'")
        kw["kernel"] = KernelExpectation(mode, detail.strip())
    case = Case(group=group, name=name, path=path, line=line, **kw)  # type: ignore[arg-type]
    if case.error is not None and case.kernel.mode == "accept":
        raise CorpusError(
            path, line, f"case {name!r} expects an error: say what the kernel does (-- kernel)"
        )
    return case


def parse_cases(text: str, path: Path | str, group: str | None = None) -> list[Case]:
    """Parse one ``.data`` file's text.  ``group`` defaults to the file's stem."""
    path = Path(path)
    group = group or path.stem
    cases: list[Case] = []
    seen: set[str] = set()
    current: tuple[str, int] | None = None
    sections: dict[str, tuple[int, list[tuple[int, str]]]] = {}
    section: str | None = None

    def flush() -> None:
        if current is not None:
            cases.append(_build(path, group, current[0], current[1], sections))

    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("=== "):
            flush()
            name = line[4:].strip()
            if not _NAME.fullmatch(name):
                raise CorpusError(path, lineno, f"bad case name {name!r} (use [a-z0-9_.-])")
            if name in seen:
                raise CorpusError(path, lineno, f"duplicate case name {name!r}")
            seen.add(name)
            current, sections, section = (name, lineno), {}, None
        elif line.startswith("-- "):
            section = line[3:].strip()
            if current is None:
                raise CorpusError(path, lineno, f"section -- {section} before the first case")
            if section not in _SECTIONS:
                raise CorpusError(path, lineno, f"unknown section -- {section}")
            if section in sections:
                raise CorpusError(path, lineno, f"section -- {section} given twice")
            sections[section] = (lineno, [])
        elif section is not None:
            sections[section][1].append((lineno, line))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise CorpusError(path, lineno, "text outside a section")
    flush()
    return cases


def load_corpus(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of every ``*.data`` file in ``directory``, in file then case order."""
    cases: list[Case] = []
    for path in sorted(directory.glob("*.data")):
        cases.extend(parse_cases(path.read_text(), path))
    if not cases:
        raise CorpusError(directory, 0, "no cases found")
    return cases
