"""``netbpf prog ...``: commands about one program.

``prog run`` is BPF_PROG_TEST_RUN from the shell: load a program into a backend (the
simulator or the running kernel), run it once (or ``--repeat`` times) on a packet and
a context, and show what came back.  Programs come as raw instruction bytes (what
``llvm-objcopy -O binary --only-section=SEC`` extracts from an object) or as assembly
in the llvm-objdump / verifier-log syntax; ELF objects join when the object loader
lands (``--prog NAME`` then picks the program).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from netbpf.cli import _common, _render
from netbpf.errors import NetbpfError, NotSupportedError

__all__ = ["load_program_file", "prog"]

FORMATS = ("auto", "raw", "asm")


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


def load_program_file(path: str, fmt: str, prog_type: str, name: str | None = None) -> Any:
    """Read ``path`` and build a :class:`~netbpf.ProgramSpec`.  Returns ``(spec,
    format_used)``.  Errors about the content name the file."""
    from netbpf.obj.spec import ProgramSpec

    raw = _common.read_input(path)
    used = sniff_format(raw, path) if fmt == "auto" else fmt
    name = name or default_prog_name(path)
    try:
        if used == "elf":
            raise NotSupportedError(
                "ELF objects in 'prog run'",
                "running programs from ELF objects is not in yet; extract the program "
                "section with 'llvm-objcopy-19 -O binary --only-section=SECTION OBJ "
                "OUT.bin' and run OUT.bin",
            )
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
    return spec, used


#: ``--engine`` names -> the simulator's engine names (netbpf.vm.engine.ENGINES)
ENGINE_NAMES = {"fast": "fast", "interp": "interpreter"}


def _make_backend(backend: str, engine: str | None) -> Any:
    if backend == "kernel":
        from netbpf.kernel import KernelBackend

        return KernelBackend()
    from netbpf.sim import SimBackend

    return SimBackend(engine=ENGINE_NAMES[engine]) if engine else SimBackend()


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
    "--type",
    "prog_type",
    type=_common.ProgTypeParam(),
    help="Program type, as a section name: xdp, tc, socket, cgroup_skb/ingress, lwt_in...",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="How PROG is written: raw instruction bytes or assembly text.",
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
@click.option("--name", help="Program name (default: the file name).")
@_common.json_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    prog_file: str,
    prog_type: str | None,
    fmt: str,
    data_in: str | None,
    data_hex: bytes | None,
    ctx_in: str | None,
    ctx_hex: bytes | None,
    repeat: int,
    backend: str,
    engine: str | None,
    data_out_path: str | None,
    ctx_out_path: str | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Run PROG once on a packet (BPF_PROG_TEST_RUN) and show retval, data_out,
    ctx_out and duration.

    PROG is a file of raw instruction bytes or of assembly, or - for stdin.

    \b
    Example:
      netbpf prog run examples/xdp_udp_drop.bin --type xdp \\
          --data-in examples/packets/udp.bin
    """
    _common.exclusive(ctx, data_in=data_in, data_hex=data_hex)
    _common.exclusive(ctx, ctx_in=ctx_in, ctx_hex=ctx_hex)
    if prog_type is None:
        raise click.UsageError(
            "--type is required: raw and assembly programs do not say which hook they are for",
            ctx,
        )
    if backend == "kernel" and engine is not None:
        raise click.UsageError("--engine chooses a simulator engine; it needs --backend sim", ctx)
    stdin_users = [p for p in (prog_file, data_in, ctx_in) if p == "-"]
    if len(stdin_users) > 1:
        raise click.UsageError("only one of PROG, --data-in, --ctx-in can be - (stdin)", ctx)
    raw_to_stdout = [p for p in (data_out_path, ctx_out_path) if p == "-"]
    if len(raw_to_stdout) > 1 or (raw_to_stdout and as_json):
        raise click.UsageError(
            "stdout can carry one thing: --data-out -, --ctx-out - or --json", ctx
        )

    spec, used_format = load_program_file(prog_file, fmt, prog_type, name)
    packet = data_hex if data_hex is not None else b""
    if data_in is not None:
        packet = _common.read_input(data_in)
    context = ctx_hex
    if ctx_in is not None:
        context = _common.read_input(ctx_in)

    be = _make_backend(backend, engine)
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
        _common.emit_json(
            {
                "program": {
                    "file": prog_file,
                    "name": spec.name,
                    "format": used_format,
                    "prog_type": ptype.name.lower(),
                    "insns": len(spec.insns),
                },
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
        )
        return

    # With the packet itself going to stdout, the summary goes to stderr.
    out = _common.console(stderr=bool(raw_to_stdout))
    where = backend if engine_used is None else f"{backend}, {engine_used} engine"
    head = Text()
    head.append(spec.name, style="bold")
    head.append(f"  {ptype.name.lower()}, {len(spec.insns)} insns, on {where}", style="dim")
    out.print(head)

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
