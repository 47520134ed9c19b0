"""``netbpf prog ...``: commands about one program.

``prog run`` is BPF_PROG_TEST_RUN from the shell: load a program into a backend (the
simulator or the running kernel), run it once (or ``--repeat`` times) on a packet and
a context, and show what came back.  Programs come as raw instruction bytes (what
``llvm-objcopy -O binary --only-section=SEC`` extracts from an object), as assembly
in the llvm-objdump / verifier-log syntax, or as a whole BPF object (ELF, detected by
its magic): then ``--prog NAME`` picks the program, the object is loaded (every map
and its global data; the program and the tail-call targets its PROG_ARRAY
initialisers name, as libbpf with autoload off for the others), ``--set`` and
``--map`` prepare it, and ``--dump-maps`` shows every map after the run.

``prog dump`` disassembles one program of an object with its C source lines, map
names and subprogram labels.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from netbpf.cli import _common, _objects, _render
from netbpf.errors import NetbpfError

__all__ = ["load_program_file", "prog"]

FORMATS = ("auto", "raw", "asm", "elf")


@click.group()
def prog() -> None:
    """Run and inspect programs."""


# ------------------------------------------------------------------------ loading


def sniff_format(raw: bytes, path: str) -> str:
    """``raw``, ``asm`` or ``elf`` for ``--format auto``: the ELF magic first, then the
    file suffix (.s/.asm, .bin/.raw), then the content: eBPF bytecode is full of zero
    bytes, assembly is UTF-8 text without them."""
    if raw[:4] == b"\x7fELF":
        return "elf"
    suffix = Path(path).suffix.lower()
    if suffix in (".s", ".asm"):
        return "asm"
    if suffix in (".bin", ".raw"):
        return "raw"
    if b"\0" in raw:
        return "raw"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "raw"
    return "asm"


_NAME_BAD = re.compile(r"[^A-Za-z0-9_.]")


def default_prog_name(path: str) -> str:
    """The file's stem as a kernel-acceptable program name (BPF_OBJ_NAME_LEN is 16
    with the NUL; only alphanumerics, ``_`` and ``.`` are allowed)."""
    stem = "stdin" if path == "-" else Path(path).stem
    return _NAME_BAD.sub("_", stem)[:15] or "prog"


def program_from_bytes(raw: bytes, used: str, path: str, prog_type: str, name: str) -> Any:
    """A :class:`~netbpf.ProgramSpec` from raw instruction bytes or assembly text.
    Errors about the content name the file."""
    from netbpf.obj.spec import ProgramSpec

    try:
        if used == "asm":
            text = _common.decode_text(raw, path)
            spec = ProgramSpec.from_asm(text, prog_type=prog_type, name=name)
        else:
            spec = ProgramSpec.from_bytes(raw, prog_type=prog_type, name=name)
    except NetbpfError as exc:
        _common.attach_source(exc, path)
        raise
    if not spec.insns:
        err = NetbpfError("the program is empty (no instructions)")
        _common.attach_source(err, path)
        raise err
    return spec


def load_program_file(path: str, fmt: str, prog_type: str, name: str | None = None) -> Any:
    """Read ``path`` (raw bytes or assembly) and build a :class:`~netbpf.ProgramSpec`.
    Returns ``(spec, format_used)``.  ELF objects go through the object loader
    (``prog run OBJ --prog NAME``), not through here."""
    raw = _common.read_input(path)
    used = sniff_format(raw, path) if fmt == "auto" else fmt
    if used == "elf":
        err = NetbpfError("an ELF object holds programs and maps; run it with --prog NAME")
        _common.attach_source(err, path)
        raise err
    return program_from_bytes(raw, used, path, prog_type, name or default_prog_name(path)), used


ENGINE_NAMES = _objects.ENGINE_NAMES
_make_backend = _objects.make_backend


def _engine_label(be: Any) -> str | None:
    """The ``--engine`` name of the engine a simulator backend runs (None for the
    kernel, which runs its JIT or interpreter as configured)."""
    name = getattr(be, "engine", None)
    if not isinstance(name, str):
        return None
    return next((k for k, v in ENGINE_NAMES.items() if v == name), name)


# ---------------------------------------------------------------------------- run


@prog.command("run")
@click.argument("prog_file", metavar="PROG", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--prog",
    "prog_name",
    metavar="NAME",
    help="The program of the object to run (default: the object's only program).",
)
@click.option(
    "--type",
    "prog_type",
    type=_common.ProgTypeParam(),
    help="Program type of a raw or assembly PROG, as a section name: xdp, tc, socket, "
    "cgroup_skb/ingress, lwt_in... (an object's section names it).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="How PROG is written: raw instruction bytes, assembly text or an ELF object.",
)
@click.option(
    "--data-in",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The packet to run on (binary file).",
)
@click.option("--data-hex", type=_common.HexBytes(), help="The packet, as hex.")
@click.option(
    "--ctx-in",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The context struct (xdp_md, __sk_buff...) to start from (binary file).",
)
@click.option(
    "--ctx-hex",
    type=_common.HexBytes(),
    help="The context struct, as hex; missing trailing bytes are zero (so 00 is an "
    "all-zero context).  ctx_out comes back only when a context goes in.",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, 0xFFFFFFFF),
    default=1,
    show_default=True,
    help="Run this many times; duration is the mean of one run.",
)
@click.option(
    "--backend",
    type=click.Choice(["sim", "kernel"]),
    default="sim",
    show_default=True,
    help="Where to run: the simulator, or the running kernel through bpf() (root).",
)
@click.option(
    "--engine",
    type=click.Choice(list(ENGINE_NAMES)),
    default=None,
    help="Simulator engine: the fast translating engine or the reference interpreter "
    "(default: the simulator's default).",
)
@click.option(
    "--unsafe-skip-verifier",
    is_flag=True,
    help="Simulator only: load without running netbpf's verifier (for experiments "
    "with programs the kernel would refuse; unsafe accesses then fault at run time).",
)
@click.option(
    "--set",
    "sets",
    metavar="VAR=VALUE",
    multiple=True,
    callback=_objects.parse_assignment,
    help="Object only, repeatable: give a global variable (a const volatile knob in "
    ".rodata too) this initial value before loading.  VALUE is JSON or an integer "
    "(0x1f), typed by the variable's BTF: --set verdict=1 --set banner=hello.",
)
@click.option(
    "--map",
    "map_inits",
    metavar="NAME=JSON",
    multiple=True,
    callback=_objects.parse_assignment,
    help="Object only, repeatable: write entries into map NAME after loading, before "
    "the run, typed by BTF: --map counts='{\"1\": 5}', or a list of [KEY, VALUE] "
    "pairs, or NAME=@FILE.json (what --dump-maps --json prints for a map is accepted).",
)
@click.option(
    "--dump-maps",
    is_flag=True,
    help="Object only: show every map's contents (and the global variables) after "
    "the run, decoded through BTF.",
)
@click.option(
    "--pin-path",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Object on --backend kernel only: where maps declared with pinning "
    "LIBBPF_PIN_BY_NAME are pinned (a bpffs directory; default /sys/fs/bpf).  They "
    "outlive the command: read them with 'netbpf map dump --pinned DIR/NAME'.",
)
@click.option(
    "--data-out",
    "data_out_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the packet after the run to FILE instead of showing a hexdump.",
)
@click.option(
    "--ctx-out",
    "ctx_out_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the context after the run to FILE.",
)
@click.option("--name", help="Program name of a raw or assembly PROG (default: the file name).")
@_common.json_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    prog_file: str,
    prog_name: str | None,
    prog_type: str | None,
    fmt: str,
    data_in: str | None,
    data_hex: bytes | None,
    ctx_in: str | None,
    ctx_hex: bytes | None,
    repeat: int,
    backend: str,
    engine: str | None,
    unsafe_skip_verifier: bool,
    sets: list[_objects.Assignment],
    map_inits: list[_objects.Assignment],
    dump_maps: bool,
    pin_path: str | None,
    data_out_path: str | None,
    ctx_out_path: str | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Run a program once on a packet (BPF_PROG_TEST_RUN) and show retval, data_out,
    ctx_out and duration.

    PROG is a BPF object (ELF, from clang -target bpf), a file of raw instruction
    bytes or of assembly, or - for stdin.  From an object, --prog NAME picks the
    program; all maps and global data are created, and the program is loaded with
    the tail-call targets the object's PROG_ARRAY initialisers name.

    Programs are verified before they run, on both backends (the simulator runs
    netbpf's verifier as the kernel runs its own): a refusal fails with the
    verifier's message ('netbpf verify' explains it).  --unsafe-skip-verifier runs
    a program in the simulator without verifying it.

    \b
    Examples:
      netbpf prog run examples/xdp_udp_drop.bin --type xdp \\
          --data-in examples/packets/udp.bin
      netbpf prog run counter.o --prog count --data-in pkt.bin \\
          --set verdict=1 --map counts='{"1": 5}' --dump-maps
    """
    _common.exclusive(ctx, data_in=data_in, data_hex=data_hex)
    _common.exclusive(ctx, ctx_in=ctx_in, ctx_hex=ctx_hex)
    if backend == "kernel" and engine is not None:
        raise click.UsageError("--engine chooses a simulator engine; it needs --backend sim", ctx)
    if backend == "kernel" and unsafe_skip_verifier:
        raise click.UsageError(
            "--unsafe-skip-verifier is for the simulator; the kernel always verifies", ctx
        )
    stdin_users = [p for p in (prog_file, data_in, ctx_in) if p == "-"]
    if len(stdin_users) > 1:
        raise click.UsageError("only one of PROG, --data-in, --ctx-in can be - (stdin)", ctx)
    raw_to_stdout = [p for p in (data_out_path, ctx_out_path) if p == "-"]
    if len(raw_to_stdout) > 1 or (raw_to_stdout and as_json):
        raise click.UsageError(
            "stdout can carry one thing: --data-out -, --ctx-out - or --json", ctx
        )

    raw = _common.read_input(prog_file)
    used_format = sniff_format(raw, prog_file) if fmt == "auto" else fmt
    object_options = {
        "--prog": prog_name is not None,
        "--set": bool(sets),
        "--map": bool(map_inits),
        "--dump-maps": dump_maps,
        "--pin-path": pin_path is not None,
    }
    if used_format == "elf":
        for option, value in (("--type", prog_type), ("--name", name)):
            if value is not None:
                raise click.UsageError(
                    f"{option} is for raw and assembly programs; an object's section "
                    "names the type and --prog NAME picks the program",
                    ctx,
                )
        if pin_path is not None and backend != "kernel":
            raise click.UsageError(
                "--pin-path needs --backend kernel (pins outlive the command only in "
                "the kernel's bpffs)",
                ctx,
            )
    else:
        given = [opt for opt, on in object_options.items() if on]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} need{'s' if len(given) == 1 else ''} a BPF object "
                f"(ELF); {prog_file} is {'assembly' if used_format == 'asm' else 'raw bytes'}",
                ctx,
            )
        if prog_type is None:
            raise click.UsageError(
                "--type is required: raw and assembly programs do not say which hook they are for",
                ctx,
            )

    packet = data_hex if data_hex is not None else b""
    if data_in is not None:
        packet = _common.read_input(data_in)
    context = ctx_hex
    if ctx_in is not None:
        context = _common.read_input(ctx_in)

    maps_doc: list[dict[str, Any]] | None = None
    variables_doc: dict[str, Any] | None = None
    section: str | None = None
    if used_format == "elf":
        cspec = _objects.load_object_bytes(raw, prog_file)
        spec = _objects.pick_program(cspec, prog_name, prog_file)
        section = spec.section
        cspec = _objects.only_program(_objects.apply_sets(cspec, sets, prog_file), spec.name)
        be = _make_backend(backend, engine, unsafe_skip_verifier=unsafe_skip_verifier)
        with _objects.load_collection(be, cspec, pin_path=pin_path) as coll:
            _objects.apply_map_inits(coll, map_inits, prog_file)
            result = coll.programs[spec.name].test_run(
                data_in=packet, ctx_in=context, repeat=repeat
            )
            if dump_maps:
                maps_doc, variables_doc = _dump_collection(coll)
    else:
        spec = program_from_bytes(
            raw, used_format, prog_file, prog_type or "", name or default_prog_name(prog_file)
        )
        be = _make_backend(backend, engine, unsafe_skip_verifier=unsafe_skip_verifier)
        loaded = be.load_program(spec)
        try:
            result = loaded.test_run(data_in=packet, ctx_in=context, repeat=repeat)
        finally:
            loaded.close()

    if data_out_path is not None:
        _common.write_output(data_out_path, result.data_out)
    if ctx_out_path is not None and result.ctx_out is not None:
        _common.write_output(ctx_out_path, result.ctx_out)

    ptype = spec.prog_type
    action = _render.retval_action(ptype, result.retval)
    fields = _render.decode_ctx(ptype, result.ctx_out) if result.ctx_out is not None else None
    engine_used = _engine_label(be) if backend == "sim" else None

    if as_json:
        program: dict[str, Any] = {
            "file": prog_file,
            "name": spec.name,
            "format": used_format,
            "prog_type": ptype.name.lower(),
            "insns": len(spec.insns),
        }
        doc: dict[str, Any] = {
            "program": program,
            "backend": backend,
            "engine": engine_used,
            "repeat": repeat,
            "retval": result.retval,
            "action": action,
            "data_out": result.data_out.hex(),
            "ctx_out": result.ctx_out.hex() if result.ctx_out is not None else None,
            "ctx_out_fields": fields,
            "duration_ns": result.duration_ns,
        }
        if used_format == "elf":
            program["section"] = section
            doc["maps"] = maps_doc
            doc["variables"] = variables_doc
        _common.emit_json(doc)
        return

    # With the packet itself going to stdout, the summary goes to stderr.
    out = _common.console(stderr=bool(raw_to_stdout))
    where = backend if engine_used is None else f"{backend}, {engine_used} engine"
    head = Text()
    head.append(_common.clean(spec.name), style="bold")
    sect = f", section {_common.clean(section)!r}" if section is not None else ""
    head.append(f"  {ptype.name.lower()}{sect}, {len(spec.insns)} insns, on {where}", style="dim")
    out.print(head)
    _print_result(out, spec, result, packet, repeat, data_out_path, ctx_out_path, action, fields)
    if maps_doc is not None:
        _print_maps_after(out, maps_doc, variables_doc or {})


def _dump_collection(coll: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every map's contents and every global variable's value, after a run."""
    from netbpf.maps.constants import LIBBPF_PIN_BY_NAME

    maps = []
    for name in coll.maps:
        mspec = coll.spec.maps.get(name)
        pinned = mspec is not None and mspec.pinning == LIBBPF_PIN_BY_NAME
        # Popping a queue/stack is harmless here: the collection is closed next,
        # unless the map is pinned and outlives the command.
        maps.append(_objects.dump_live_map(coll, name, pop_ok=not pinned))
    variables = {name: _objects.to_json(v.get()) for name, v in coll.variables.items()}
    return maps, variables


def _print_maps_after(out: Any, maps: list[dict[str, Any]], variables: dict[str, Any]) -> None:
    """The maps after the run (global variables show inside their .data/.bss/.rodata
    maps, so the human output does not list them twice; --json has both)."""
    line = _kv("maps")
    line.append(f"{len(maps)} after the run")
    out.print(line)
    for doc in maps:
        _objects.print_map_dump(out, doc, indent="  ")


def _print_result(
    out: Any,
    spec: Any,
    result: Any,
    packet: bytes,
    repeat: int,
    data_out_path: str | None,
    ctx_out_path: str | None,
    action: str | None,
    fields: dict[str, Any] | None,
) -> None:
    ptype = spec.prog_type
    line = _kv("retval")
    line.append(str(result.retval), style="bold")
    if action is not None:
        line.append(f"  {action}", style="bold cyan")
    out.print(line)

    line = _kv("duration")
    runs = "1 run" if repeat == 1 else f"mean of {repeat} runs"
    line.append(f"{format_ns(result.duration_ns)} per run ({runs})")
    out.print(line)

    line = _kv("data_out")
    line.append(f"{len(result.data_out)} bytes")
    same_len = len(result.data_out) == len(packet)
    if result.data_out == packet:
        line.append(", unchanged", style="dim")
    elif same_len:
        changed = sum(a != b for a, b in zip(result.data_out, packet))
        line.append(f", {changed} byte{'s' if changed != 1 else ''} changed", style="yellow")
    else:
        line.append(f", {len(result.data_out) - len(packet):+d} bytes", style="yellow")
    if data_out_path is not None:
        line.append(f", written to {data_out_path}")
        out.print(line)
    else:
        out.print(line)
        out.print(_common.hexdump(result.data_out, compare=packet if same_len else None), end="")

    line = _kv("ctx_out")
    if result.ctx_out is None:
        if _render.ctx_struct(ptype) is None:
            line.append("none (this program type has no test-run context)", style="dim")
        elif ptype.name == "XDP":
            # An all-zero xdp_md would mean data_end 0 (an empty linear area).
            line.append(
                "none (a test run returns the context only when given one: --ctx-in "
                "FILE with an xdp_md whose data_end is the packet length)",
                style="dim",
            )
        else:
            line.append(
                "none (a test run returns the context only when given one: "
                "--ctx-in FILE, or --ctx-hex 00 for an all-zero one)",
                style="dim",
            )
        out.print(line)
        return
    line.append(f"{len(result.ctx_out)} bytes")
    if ctx_out_path is not None:
        line.append(f", written to {ctx_out_path}")
    out.print(line)
    if fields is None:
        out.print(_common.hexdump(result.ctx_out), end="")
        return
    shown = {k: v for k, v in fields.items() if (any(v) if isinstance(v, list) else v)}
    if not shown:
        out.print(Text("  all fields zero", style="dim"))
        return
    out.print(Text("  " + "  ".join(f"{k}={_fmt_field(k, v)}" for k, v in shown.items())))


def _kv(key: str) -> Text:
    text = Text()
    text.append(f"{key:<10}", style="bold")
    return text


#: Context fields that are bit patterns or wire-order numbers, clearer in hex.
_HEX_FIELDS = frozenset({"mark", "hash", "protocol", "vlan_proto", "tc_classid", "tc_index"})


def _fmt_field(name: str, value: int | list[int]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return f"{value:#x}" if name in _HEX_FIELDS else str(value)


def format_ns(ns: int) -> str:
    """``812 ns``, ``1.31 µs``, ``2.50 ms``, ``1.20 s``."""
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


# --------------------------------------------------------------------------- dump

_LD_IMM64 = 0x18
_CALL = 0x85


def dump_rows(spec: Any, style: str) -> list[dict[str, Any]]:
    """One row per instruction (an LD_IMM64 is one row for its two slots): slot
    index, bytes as hex, text, the function starting there (func_info) and the C
    source line in effect (line_info).

    Map references are shown by name, which the instructions alone cannot say (the
    object leaves their immediates 0 for the loader): ``r1 = map[counts] ll`` and
    ``r1 = map_value[.rodata]+4 ll``.  Calls and function pointers to subprograms
    name their target: ``call pc+0x52 <bucket_of>``."""
    from netbpf.isa.disasm import format_insn
    from netbpf.uapi import BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC

    insns = spec.insns
    relocs = {r.slot: r for r in spec.map_relocs}
    funcs = {f.slot: f.name for f in spec.func_info}
    lines: dict[int, Any] = {}
    for li in spec.line_info:
        lines[li.slot] = li  # the last record for a slot wins, as in source_line()
    rows: list[dict[str, Any]] = []
    current: Any = None
    index = 0
    while index < len(insns):
        ins = insns[index]
        text = format_insn(insns, index, style=style)  # type: ignore[arg-type]
        pair = ins.opcode == _LD_IMM64 and not text.startswith(".quad")
        width = 2 if pair else 1
        reloc = relocs.get(index)
        if reloc is not None and pair:
            if reloc.offset is None:
                text = f"r{ins.dst} = map[{reloc.map}] ll"
            else:
                text = f"r{ins.dst} = map_value[{reloc.map}]+{reloc.offset} ll"
        elif (ins.opcode == _CALL and ins.src == BPF_PSEUDO_CALL) or (
            pair and ins.src == BPF_PSEUDO_FUNC
        ):
            target = funcs.get(index + ins.imm + 1)
            if target:
                text += f" <{target}>"
        started = index in lines
        if started:
            current = lines[index]
        raw = b"".join(i.encode() for i in insns[index : index + width])
        rows.append(
            {
                "index": index,
                "hex": raw.hex(),
                "text": text,
                "function": funcs.get(index),
                "source": None
                if current is None
                else {
                    "file": current.file,
                    "line": current.line,
                    "col": current.col,
                    "text": current.text,
                },
                "_new_line": started,
            }
        )
        index += width
    return rows


def _signature(spec: Any, slot: int) -> str | None:
    """The C prototype of the function at ``slot`` from its BTF FUNC type."""
    from netbpf.obj.btf import FuncLinkage

    btf = spec.btf
    fi = next((f for f in spec.func_info if f.slot == slot), None)
    if btf is None or fi is None:
        return None
    try:
        proto = str(btf.format_type(fi.type_id))
        static = getattr(btf.type(fi.type_id), "linkage", None) == FuncLinkage.STATIC
    except NetbpfError:
        return None
    return f"static {proto}" if static else proto


@prog.command("dump")
@click.argument("obj_file", metavar="OBJ", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--prog",
    "prog_name",
    metavar="NAME",
    help="The program to show (default: the object's only program).",
)
@click.option(
    "--style",
    type=click.Choice(["llvm", "verifier"]),
    default="llvm",
    show_default=True,
    help="llvm: like llvm-objdump -S (index, bytes, text); verifier: like the kernel "
    "verifier log and bpftool ('5: (18) r1 = map[counts] ll').",
)
@_common.json_option
def dump_cmd(obj_file: str, prog_name: str | None, style: str, as_json: bool) -> None:
    """Disassemble one program of the object OBJ with its C source lines.

    Like 'llvm-objdump -S' or 'bpftool prog dump xlated linum', from the file: the
    program as the loader links it (its subprograms appended, labelled with their
    names), C source lines from BTF line info (build with -g), and map references by
    name: 'r1 = map[counts] ll', 'r1 = map_value[.rodata]+4 ll' (global data).

    \b
    Example:
      netbpf prog dump examples/xdp_udp_drop.o --prog xdp_udp_drop
    """
    cspec = _objects.load_object(obj_file)
    spec = _objects.pick_program(cspec, prog_name, obj_file)
    try:
        rows = dump_rows(spec, style)
    except NetbpfError as exc:
        _common.attach_source(exc, obj_file)
        raise
    functions = [
        {"name": f.name, "index": f.slot, "signature": _signature(spec, f.slot)}
        for f in spec.func_info
    ]
    rows, functions = _common.clean(rows), _common.clean(functions)
    name, section = _common.clean(spec.name), _common.clean(spec.section)
    if as_json:
        _common.emit_json(
            {
                "file": obj_file,
                "program": name,
                "section": section,
                "prog_type": spec.prog_type.name.lower(),
                "style": style,
                "functions": functions,
                "insns": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            }
        )
        return
    # Plain text, like llvm-objdump: listings are read, piped and diffed.
    signatures = {f["index"]: f["signature"] for f in functions}
    click.echo(
        f"{name}: {spec.prog_type.name.lower()}, section '{section}', {len(spec.insns)} insns"
    )
    if not spec.line_info:
        click.echo("; (no BTF line info: build the object with -g to see C source lines)")
    last_line: tuple[str, int] | None = None
    for row in rows:
        if row["function"] is not None:
            sig = signatures.get(row["index"])
            click.echo("")
            click.echo(f"<{row['function']}>:" + (f"  ; {sig}" if sig else ""))
            last_line = None
        src = row["source"]
        if row["_new_line"] and src is not None and (src["file"], src["line"]) != last_line:
            last_line = (src["file"], src["line"])
            where = f"{Path(src['file']).name}:{src['line']}:{src['col']}"
            click.echo(f"; {src['text'].strip()}  [{where}]")
        if style == "llvm":
            pairs = " ".join(row["hex"][k : k + 2] for k in range(0, len(row["hex"]), 2))
            click.echo(f"{row['index']:>8}:\t{pairs}\t{row['text']}")
        else:
            click.echo(f"{row['index']}: ({row['hex'][:2]}) {row['text']}")
