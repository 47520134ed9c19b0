"""netbpf's differential verifier corpus: the case format, builders, the kernel run and
the error-class taxonomy.

Cases live in ``tests/verifier_corpus/cases/<group>.case``, many to a file; the group
names the verifier rule the cases exercise.  A case::

    # comment lines (outside -- asm / -- c / -- maps bodies) are ignored
    -- case pkt_read_past_end_by_one
    -- note  why the case exists (optional, free text)
    -- type xdp                  program type, section-style (asm cases only)
    -- maps                      optional: one map per line
    counters array key=4 value=8 max=4
    -- asm                       llvm-objdump syntax (netbpf.isa.asm)
    r1 = map_fd(counters) ll     an LD_IMM64 of a map, by name (a MapReloc)
    r1 = map_value(counters, 8) ll   ... or of a byte of its value (global data style)
    ...
    -- expect reject             the kernel's verdict (recorded by check_kernel.py)
    -- error invalid access to packet, off=0 size=8, R2(id=0,off=0,r=0)
    -- class pkt_access          classify(error): see CLASSES

Instead of ``-- asm`` a case may have ``-- c`` (a C program for clang, loaded through
:func:`netbpf.obj.collection.load_collection_spec`; its maps come from the object, its
type from its section) and optionally ``-- prog NAME`` to pick one of its programs.
``-- rule`` overrides the rule (default: the group); ``-- license`` sets an assembly
program's license (default GPL).

Map lines are ``NAME TYPE key=K value=V max=N [flags=F] [inner=OTHER]`` with TYPE a
:class:`netbpf.uapi.MapType` name in any case (``hash``, ``percpu_array``, ...);
``inner=OTHER`` makes a map of maps whose template is the earlier map OTHER (which is
then not created on its own).  In assembly ``map_fd(NAME)`` / ``map_value(NAME, OFF)``
become LD_IMM64 slots with ``src=0, imm=0`` plus a :class:`netbpf.obj.spec.MapReloc`,
exactly what the ELF loader produces, so backends resolve both the same way.

``-- expect``, ``-- error`` and ``-- class`` are what the running kernel said; they are
(re)derived by ``python tests/verifier_corpus/check_kernel.py --write`` (which puts them
right after the case's single-line header fields) and reviewed in the diff.  The format is strict: unknown or doubled fields are a :class:`CorpusError`
naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netbpf.errors import KernelError, NetbpfError
from netbpf.maps.spec import MapSpec
from netbpf.obj.collection import CollectionSpec, load_collection_spec
from netbpf.obj.spec import MapReloc, ProgramSpec
from netbpf.uapi import MapType

__all__ = [
    "CASES_DIR",
    "CLASSES",
    "NON_SAFETY_CLASSES",
    "Built",
    "Case",
    "CorpusError",
    "KernelVerdict",
    "MapDef",
    "build",
    "classify",
    "kernel_verdict",
    "load_corpus",
    "parse_cases",
    "summary_line",
]

CASES_DIR = Path(__file__).resolve().parent / "cases"

_SINGLE = ("case", "rule", "type", "prog", "license", "note", "expect", "error", "class")
_MULTI = ("maps", "asm", "c")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_LD_IMM64 = 0x18
_PSEUDO_MAP_FD = 1
_PSEUDO_MAP_VALUE = 2

#: Compiles C source text to an object path (the ``compile_bpf`` fixture's shape).
Compiler = Callable[[str], Path]


class CorpusError(Exception):
    """A malformed case file or case; the message names the file and line."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


# --- the error-class taxonomy -------------------------------------------------------

#: class -> what it means.  Every kernel refusal in the corpus maps to one of these
#: through :func:`classify`; netbpf's VerifierError summary must map to the same one.
CLASSES: dict[str, str] = {
    "invalid_mem_access": "memory access through a register whose type does not allow it "
    "(a scalar, pkt_end, a released pointer; atomics on ctx or packet)",
    "null_deref": "dereference of a maybe-NULL pointer (map value, socket, ringbuf)",
    "pkt_access": "packet access outside the range proven by data_end comparisons",
    "mem_bounds": "access outside a sized memory region (map value, ringbuf record, helper "
    "memory, helper size argument), or through an index whose bounds were never established "
    "or may be negative (the kernel's last line is often the generic 'R0 min value is outside "
    "of the allowed memory range' after the specific one, so these are one class)",
    "ptr_arith": "forbidden arithmetic or comparison on a pointer",
    "uninit_reg": "read of a register never written on this path",
    "uninit_stack": "read of stack bytes never written on this path",
    "stack_access": "stack access out of [-512, 0), misaligned/partial spill or corruption",
    "ctx_access": "context field access not allowed for this program type, size or offset",
    "struct_access": "kernel struct pointer (sock, sock_common, tcp_sock, struct bpf_map) "
    "accessed outside its readable fields, or written",
    "helper_proto": "helper argument of the wrong type, size or map type",
    "helper_not_allowed": "helper (or kfunc) this program type may not call",
    "ref_leak": "acquired socket or ringbuf record not released on some path",
    "ref_invalid": "release of a reference that was not acquired (or twice)",
    "return_range": "return value outside the hook's allowed range, or not a scalar",
    "spin_lock": "bpf_spin_lock rule broken",
    "callback": "callback or subprogram contract broken",
    "tail_call": "tail call rule broken",
    "unreachable": "instruction not reachable from the entry",
    "jump_range": "jump or call target outside the program, or into the middle of an insn",
    "last_insn": "the last instruction is neither exit nor a jump",
    "loop": "loop the verifier cannot bound (infinite loop, back-edge)",
    "too_complex": "the 1,000,000 processed-instruction limit or the jump-sequence limit",
    "stack_limit": "combined stack of the call chain larger than 512 bytes",
    "div_by_zero": "division or modulo by constant zero",
    "shift": "shift by a constant out of range",
    "r10_write": "write to the read-only frame pointer r10",
    "bad_insn": "malformed instruction (reserved fields, unknown opcode, bad register)",
    "map_ref": "LD_IMM64 of a map that is not a valid map fd, or a direct value address of a "
    "map type that has none",
    "map_perm": "write to a map the program may only read (BPF_F_RDONLY_PROG) or the reverse",
    "alignment": "misaligned access where alignment is always enforced (atomics on map values)",
    "verifier_bug": "the kernel verifier's own internal consistency check fired ('verifier "
    "bug: ...'): a kernel bug, not a property of the program",
    "other": "anything not classified above (the taxonomy should grow instead)",
}

#: Refusals that are not about memory safety: the soundness target counts the others.
NON_SAFETY_CLASSES = frozenset(
    {"too_complex", "unreachable", "return_range", "last_insn", "verifier_bug"}
)

# (pattern, class), first match wins; patterns match the verdict line (see summary_line).
_CLASS_TABLE: tuple[tuple[str, str], ...] = (
    (r"^verifier bug", "verifier_bug"),
    (r"invalid mem access '(?:\w+_)?or_null'|invalid mem access '\w*or_null", "null_deref"),
    (r"Possibly NULL pointer passed", "null_deref"),
    (r"invalid mem access|BPF_ATOMIC stores into", "invalid_mem_access"),
    (
        r"invalid access to packet|offset is outside of the packet|pkt pointer be out of|"
        r"cannot write into packet",
        "pkt_access",
    ),
    (
        r"invalid access to map value|access beyond the end of member|invalid access to memory|"
        r"unbounded memory access|min value is negative|(?:min|max) value is outside of the "
        r"allowed memory range|unbounded min value",
        "mem_bounds",
    ),
    (
        r"pointer arithmetic|bitwise operator .* on pointer|pointer comparison prohibited|"
        r"32-bit pointer arithmetic|math between \w+ pointer|arithmetic on \w+ prohibited|"
        r"pointer (?:offset|\+=)|R\d+ tried to \w+ from different maps|subtract pointer from "
        r"scalar|subtraction from stack pointer",
        "ptr_arith",
    ),
    (r"(?:write into|read from) map forbidden", "map_perm"),
    (r"misaligned (?:value|packet|access)", "alignment"),
    (r"!read_ok", "uninit_reg"),
    (
        r"invalid read from stack off |invalid indirect read from stack|uninit|"
        r"invalid (?:variable-offset )?indirect access to stack",
        "uninit_stack",
    ),
    (
        r"invalid stack|invalid (?:variable-offset |unbounded variable-offset )?(?:read|write) "
        r"(?:from|to) stack|stack off|misaligned stack|corrupt spilled|invalid size of register "
        r"(?:fill|spill)|variable stack access|stack depth|return stack pointer|spill pointers to "
        r"stack",
        "stack_access",
    ),
    (
        r"bpf_context access|context access|ctx access|invalid narrow|misaligned context|"
        r"dereference of modified ctx ptr|variable ctx access|invalid access to flow keys",
        "ctx_access",
    ),
    (
        r"cannot write into (?:sock|tcp_sock|xdp_sock|bpf_)|invalid (?:sock|sock_common|tcp_sock|"
        r"xdp_sock) access|only read from \w+ is supported|is \w+ invalid negative access|"
        r"map_ptr access",
        "struct_access",
    ),
    (r"spin_lock|spin_unlock|bpf_spin|holding a lock|inside bpf_\w*lock", "spin_lock"),
    (r"Unreleased reference|reference leak|leaks? (?:ref|reference)", "ref_leak"),
    (r"release|reference has not been acquired|acquired reference", "ref_invalid"),
    (
        r"unknown func|invalid func unknown#|GPL-restricted|cannot (?:use|call) helper|"
        r"helper call is not allowed|not allowed in this program|"
        r"helper (?!access to the packet).* not allowed|calling kernel function .* not allowed|"
        r"only read is supported|unknown opcode 85|program of this type cannot use",
        "helper_not_allowed",
    ),
    (r"At callback return|callback|async cb|R0 not a scalar value|write to change key", "callback"),
    (
        r"At program exit|At subprogram exit|leaks addr as return value|R0 is not a scalar|"
        r"should have been in",
        "return_range",
    ),
    (r"tail_call|tail call", "tail_call"),
    (
        r"cannot pass map_type|expected=|type=\w+ expected|arg\d+ |R\d+ type=|helper access|"
        r"invalid indirect access|Invalid map_ptr|map_ptr|ARG_|zero-sized|leaks addr into helper|"
        r"expected pointer|is not a known constant|must be a known constant|has to be a constant",
        "helper_proto",
    ),
    (r"unreachable insn", "unreachable"),
    (
        r"jump out of range|jump to|into the middle of|call to invalid destination|"
        r"invalid (?:func|call) ",
        "jump_range",
    ),
    (r"last insn is not an exit or jmp", "last_insn"),
    (r"infinite loop|back-edge|loop detected|bounded loop", "loop"),
    (
        r"program is too large|too complex|processed \d+ insns? \(limit|too many states",
        "too_complex",
    ),
    (r"combined stack size|stack size of \d+ calls|too deep", "stack_limit"),
    (r"div by zero", "div_by_zero"),
    (r"invalid shift", "shift"),
    (r"frame pointer is read only", "r10_write"),
    (
        r"reserved fields|unknown opcode|invalid (?:BPF_LD_IMM|insn)|invalid bpf_ld_imm64|"
        r"R\d+ is invalid|invalid register|BPF_\w+ uses reserved",
        "bad_insn",
    ),
    (
        r"fd \d+ is not pointing to valid bpf_map|map_fd|is not a valid map|direct value access|"
        r"pseudo|incompatible with|map .* not supported",
        "map_ref",
    ),
)
_CLASS_RES = tuple((re.compile(p), c) for p, c in _CLASS_TABLE)

# The verifier prints statistics after its verdict; the verdict is the line before them.
# The verdict of an infinite loop is followed by the two states compared.
_STAT_PREFIXES = (
    "processed ",
    "verification time ",
    "stack depth ",
    "max_states_per_insn",
    "cur state:",
    "old state:",
)


_GLUED_STATS = re.compile(r"(?<=\S)(?=processed \d+ insns \(limit)")


def summary_line(log: str) -> str:
    """The verdict line of a verifier log: the last line that is not a statistics
    line, not a state dump and not a bare instruction echo."""
    # Some verdicts lack their newline and run into the statistics line.
    log = _GLUED_STATS.sub("\n", log)
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    while lines and lines[-1].startswith(_STAT_PREFIXES):
        lines.pop()
    # A too-large program's verdict is itself followed by "processed N insns".
    for ln in lines:
        if ln.startswith("BPF program is too large"):
            return ln
    return lines[-1] if lines else ""


def classify(message: str) -> str:
    """The error class (a key of :data:`CLASSES`) of a verifier verdict line — the
    kernel's or netbpf's.  Unknown wording gives ``"other"``."""
    for rx, cls in _CLASS_RES:
        if rx.search(message):
            return cls
    return "other"


# --- cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MapDef:
    """One map of an assembly case."""

    name: str
    type: MapType
    key: int
    value: int
    max: int
    flags: int = 0
    inner: str | None = None


@dataclass(frozen=True)
class Case:
    """One verifier case, as parsed (see the module docstring)."""

    group: str
    name: str
    path: Path
    line: int
    rule: str
    type: str | None = None
    maps: tuple[MapDef, ...] = ()
    asm: str | None = None
    c: str | None = None
    prog: str | None = None
    license: str = "GPL"
    note: str = ""
    expect: str | None = None
    error: str | None = None
    cls: str | None = None
    #: line numbers of the recorded fields (expect/error/class), and the last line of
    #: the header block (single-line fields before the first body), for --write
    recorded_lines: tuple[int, ...] = field(default=(), compare=False)
    header_end: int = field(default=0, compare=False)

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line} ({self.id})"


def _parse_map(path: Path, lineno: int, text: str) -> MapDef:
    parts = text.split()
    if len(parts) < 2:
        raise CorpusError(path, lineno, f"map line {text!r}: need NAME TYPE key= value= max=")
    name, tname = parts[0], parts[1].upper()
    if tname not in MapType.__members__:
        raise CorpusError(path, lineno, f"unknown map type {parts[1]!r}")
    kv: dict[str, str] = {}
    for p in parts[2:]:
        k, eq, v = p.partition("=")
        if not eq or k not in ("key", "value", "max", "flags", "inner") or k in kv:
            raise CorpusError(path, lineno, f"bad or doubled map attribute {p!r}")
        kv[k] = v
    try:
        return MapDef(
            name,
            MapType[tname],
            int(kv.get("key", "0"), 0),
            int(kv.get("value", "0"), 0),
            int(kv.get("max", "1"), 0),
            int(kv.get("flags", "0"), 0),
            kv.get("inner"),
        )
    except ValueError:
        raise CorpusError(path, lineno, f"bad number in map line {text!r}") from None


def parse_cases(text: str, path: Path | str, group: str | None = None) -> list[Case]:
    """Parse one ``.case`` file's text; ``group`` defaults to the file's stem."""
    path = Path(path)
    group = group or path.stem
    cases: list[Case] = []
    seen: set[str] = set()
    fields: dict[str, Any] = {}
    bodies: dict[str, list[str]] = {}
    recorded: list[int] = []
    start = 0
    header_end = 0
    body: str | None = None
    in_header = True

    def flush() -> None:
        if "case" not in fields:
            return
        name = fields["case"]
        if ("asm" in bodies) == ("c" in bodies):
            raise CorpusError(path, start, f"case {name!r} needs exactly one of -- asm / -- c")
        if "c" in bodies and "type" in fields:
            raise CorpusError(path, start, f"case {name!r}: a C case takes its type from SEC()")
        if "asm" in bodies and "type" not in fields:
            raise CorpusError(path, start, f"case {name!r}: an asm case needs -- type")
        if "c" in bodies and "maps" in bodies:
            raise CorpusError(path, start, f"case {name!r}: a C case declares maps in C")
        expect = fields.get("expect")
        if expect not in (None, "accept", "reject"):
            raise CorpusError(path, start, f"case {name!r}: -- expect must be accept or reject")
        if expect == "reject" and "class" not in fields:
            raise CorpusError(path, start, f"case {name!r}: a rejection needs -- class")
        cls = fields.get("class")
        if cls is not None and cls not in CLASSES:
            raise CorpusError(path, start, f"case {name!r}: unknown class {cls!r}")
        maps: list[MapDef] = []
        for lineno, ln in bodies.get("maps_lines", []):
            m = _parse_map(path, lineno, ln)
            if any(x.name == m.name for x in maps):
                raise CorpusError(path, lineno, f"map {m.name!r} defined twice")
            if m.inner is not None and not any(x.name == m.inner for x in maps):
                raise CorpusError(path, lineno, f"inner map {m.inner!r} must be defined first")
            maps.append(m)
        asm = "\n".join(bodies["asm"]) if "asm" in bodies else None
        c = "\n".join(bodies["c"]) + "\n" if "c" in bodies else None
        if (asm is not None and not asm.strip()) or (c is not None and not c.strip()):
            raise CorpusError(path, start, f"case {name!r}: empty program")
        cases.append(
            Case(
                group=group,
                name=name,
                path=path,
                line=start,
                rule=fields.get("rule", group),
                type=fields.get("type"),
                maps=tuple(maps),
                asm=asm,
                c=c,
                prog=fields.get("prog"),
                license=fields.get("license", "GPL"),
                note=fields.get("note", ""),
                expect=expect,
                error=fields.get("error"),
                cls=cls,
                recorded_lines=tuple(recorded),
                header_end=header_end,
            )
        )

    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("-- "):
            key, _, value = line[3:].partition(" ")
            key, value = key.strip(), value.strip()
            if key == "case":
                flush()
                if not _NAME.fullmatch(value):
                    raise CorpusError(path, lineno, f"bad case name {value!r}")
                if value in seen:
                    raise CorpusError(path, lineno, f"duplicate case name {value!r}")
                seen.add(value)
                fields, bodies, recorded, start, body = {"case": value}, {}, [], lineno, None
                header_end, in_header = lineno, True
                continue
            if "case" not in fields:
                raise CorpusError(path, lineno, f"-- {key} before the first -- case")
            if key in _SINGLE:
                if key in fields:
                    raise CorpusError(path, lineno, f"-- {key} given twice")
                if not value and key != "error":
                    raise CorpusError(path, lineno, f"-- {key} needs a value")
                fields[key] = value
                if key in ("expect", "error", "class"):
                    recorded.append(lineno)
                elif in_header:
                    header_end = lineno
                body = None
            elif key in _MULTI:
                if key in bodies or (key == "maps" and "maps_lines" in bodies):
                    raise CorpusError(path, lineno, f"-- {key} given twice")
                if value:
                    raise CorpusError(path, lineno, f"-- {key} takes its content on the next lines")
                body = key
                in_header = False
                if key == "maps":
                    bodies["maps_lines"] = []
                else:
                    bodies[key] = []
            else:
                raise CorpusError(path, lineno, f"unknown field -- {key}")
            continue
        if body in ("asm", "c"):
            bodies[body].append(line)
        elif body == "maps":
            s = line.strip()
            if s and not s.startswith("#"):
                bodies["maps_lines"].append((lineno, s))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise CorpusError(path, lineno, f"stray text outside a field: {line.strip()!r}")
    flush()
    return cases


def load_corpus(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of every ``*.case`` file, in file then case order."""
    out: list[Case] = []
    for p in sorted(directory.glob("*.case")):
        out.extend(parse_cases(p.read_text(), p))
    return out


# --- building -------------------------------------------------------------------------


@dataclass
class Built:
    """What a case loads: the program, the maps it refers to (by name, as in
    ``spec.map_relocs``), and a collection the kernel backend can load whole."""

    spec: ProgramSpec
    maps: dict[str, MapSpec]
    collection: CollectionSpec


def _map_specs(case: Case) -> dict[str, MapSpec]:
    specs: dict[str, MapSpec] = {}
    templates = {m.inner for m in case.maps if m.inner}
    for m in case.maps:
        inner = specs[m.inner] if m.inner else None
        specs[m.name] = MapSpec(
            m.name, m.type, m.key, m.value, m.max, flags=m.flags, inner_map=inner
        )
    return {k: v for k, v in specs.items() if k not in templates}


_RE_MAPREF = re.compile(r"\b(map_fd|map_value)\(\s*([A-Za-z_]\w*)\s*([,)])")


def _assemble_case(case: Case) -> tuple[ProgramSpec, dict[str, MapSpec]]:
    assert case.asm is not None and case.type is not None
    names = [m.name for m in case.maps]

    def sub(m: re.Match[str]) -> str:
        if m.group(2) not in names:
            raise CorpusError(case.path, case.line, f"{case.id}: unknown map {m.group(2)!r}")
        return f"{m.group(1)}({names.index(m.group(2))}{m.group(3)}"

    text = _RE_MAPREF.sub(sub, case.asm)
    try:
        spec = ProgramSpec.from_asm(
            text, prog_type=case.type, name=case.name[:15], license=case.license
        )
    except NetbpfError as e:
        raise CorpusError(case.path, case.line, f"{case.id}: {e}") from None
    insns = list(spec.insns)
    relocs: list[MapReloc] = []
    for slot, ins in enumerate(insns):
        if ins.opcode == _LD_IMM64 and ins.src in (_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE):
            if slot + 1 >= len(insns) or not 0 <= ins.imm < len(names):
                raise CorpusError(case.path, case.line, f"{case.id}: bad map reference at {slot}")
            off = None if ins.src == _PSEUDO_MAP_FD else insns[slot + 1].imm
            relocs.append(MapReloc(slot, names[ins.imm], off))
            insns[slot] = replace(ins, src=0, imm=0)
            insns[slot + 1] = replace(insns[slot + 1], imm=0)
    spec = replace(spec, insns=tuple(insns), map_relocs=tuple(relocs))
    return spec, _map_specs(case)


def build(case: Case, compile_c: Compiler | None = None) -> Built:
    """Assemble (or compile and load) the case into a ProgramSpec plus its maps."""
    if case.asm is not None:
        spec, maps = _assemble_case(case)
        coll = CollectionSpec(programs={spec.name: spec}, maps=dict(maps), variables={})
        return Built(spec, maps, coll)
    assert case.c is not None
    if compile_c is None:
        raise CorpusError(case.path, case.line, f"{case.id}: a C case needs a compiler")
    coll = load_collection_spec(compile_c(case.c))
    if case.prog is not None:
        if case.prog not in coll.programs:
            raise CorpusError(case.path, case.line, f"{case.id}: no program {case.prog!r}")
        spec = coll.programs[case.prog]
        coll = replace(coll, programs={case.prog: spec})
    else:
        if len(coll.programs) != 1:
            raise CorpusError(case.path, case.line, f"{case.id}: several programs; say -- prog")
        spec = next(iter(coll.programs.values()))
    return Built(spec, dict(coll.maps), coll)


# --- the kernel -----------------------------------------------------------------------


@dataclass(frozen=True)
class KernelVerdict:
    """What BPF_PROG_LOAD said: accepted, or the verdict line, its class and the log."""

    accepted: bool
    error: str = ""
    cls: str = ""
    log: str = ""
    errno: int = 0


class KernelSetupError(Exception):
    """The kernel could not even be asked (a map it will not create...)."""


def kernel_verdict(case: Case, backend: Any, compile_c: Compiler | None = None) -> KernelVerdict:
    """Load the case into the running kernel (``backend``: a KernelBackend) and report
    the verdict; the program and maps are closed again at once."""
    built = build(case, compile_c)
    try:
        coll = backend.load(built.collection)
    except KernelError as e:
        if e.op != "BPF_PROG_LOAD":
            raise KernelSetupError(f"{case.id}: {e}") from e
        line = summary_line(e.log)
        if not line:
            import errno as _errno

            line = f"errno {_errno.errorcode.get(e.errno, e.errno)}"
        return KernelVerdict(False, line, classify(line), e.log, e.errno)
    coll.close()
    return KernelVerdict(True)
