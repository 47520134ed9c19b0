"""``netbpf verify``: run netbpf's verifier on the programs of an object.

Each program is checked as the loader would hand it to the kernel (subprograms
linked, map references resolved against the object's maps, ``--set`` knobs in
``.rodata``, which the verifier constant-folds like the kernel does for frozen maps).
The verdict is one line per program; a refusal names the instruction, the kernel's
message and the C source line (BTF line info), and the verifier's extras follow:
where the offending value came from and the usual fix.  ``--log-level 1|2`` adds the
log, as the kernel's ``log_level`` would show it.

Exit status: 0 when every checked program is accepted, 1 when one is refused (one
line on stderr then, like any netbpf error, so a script that only looks at the exit
status and stderr knows why).
"""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from netbpf.cli import _common, _objects
from netbpf.errors import NetbpfError, VerifierError

__all__ = ["verify_cmd"]


def _source_doc(source: Any) -> dict[str, Any] | None:
    if source is None:
        return None
    return {"file": source.file, "line": source.line, "col": source.col, "text": source.text}


_LD_IMM64 = 0x18


def as_loaded(cspec: Any, pspec: Any, core_target: Any = None) -> Any:
    """The program as a loader hands it to the kernel: each map reference's LD_IMM64
    marked BPF_PSEUDO_MAP_FD (the map itself) or BPF_PSEUDO_MAP_VALUE with its offset
    in the second slot (global data), the immediate being the map's index in the
    object (the verifier learns the map from ``maps=`` by slot, not from an fd), and
    CO-RE relocations applied against ``core_target`` (the running kernel's BTF).
    Raises ObjectError for a relocation that is not on an LD_IMM64."""
    from dataclasses import replace

    from netbpf.errors import ObjectError
    from netbpf.uapi import BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE

    insns = list(pspec.insns)
    index = {name: i for i, name in enumerate(cspec.maps)}
    for r in pspec.map_relocs:
        if not (0 <= r.slot < len(insns) - 1) or insns[r.slot].opcode != _LD_IMM64:
            raise ObjectError(
                f"program {pspec.name!r}: map relocation at insn {r.slot} is not on an "
                "LD_IMM64 instruction",
                file=cspec.file,
                section=pspec.section,
            )
        fd = index.get(r.map, 0)
        if r.offset is None:
            insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_FD, imm=fd)
            insns[r.slot + 1] = replace(insns[r.slot + 1], imm=0)
        else:
            insns[r.slot] = replace(insns[r.slot], src=BPF_PSEUDO_MAP_VALUE, imm=fd)
            insns[r.slot + 1] = replace(insns[r.slot + 1], imm=r.offset)
    if pspec.core_relos:
        from netbpf.obj.btf import apply_core_relocation, compute_core_relocation

        if core_target is None:
            from netbpf.obj.btf import load_vmlinux_btf

            core_target = load_vmlinux_btf()
        for slot, relo in pspec.core_relos:
            res = compute_core_relocation(pspec.btf, relo, core_target)
            insns = list(apply_core_relocation(insns, relo, res, insn_base=relo.insn - slot))
    return replace(pspec, insns=tuple(insns))


def check_program(cspec: Any, pspec: Any, log_level: int) -> dict[str, Any]:
    """Verify one program; the JSON document of its verdict."""
    from netbpf.verifier import verify

    doc: dict[str, Any] = {
        "name": pspec.name,
        "section": pspec.section,
        "prog_type": pspec.prog_type.name.lower(),
        "insns": len(pspec.insns),
        "accepted": False,
        "processed_insns": None,
        "stats": None,
        "error": None,
        "log": None,
    }
    try:
        result = verify(as_loaded(cspec, pspec), maps=cspec.maps, log_level=log_level)
    except VerifierError as exc:
        lines = tuple(getattr(exc, "lines", ()) or (exc.summary,))
        doc["processed_insns"] = getattr(exc, "processed_insns", None)
        doc["error"] = {
            "message": str(exc),
            "summary": exc.summary,
            "index": exc.index,
            "lines": list(lines),
            "kind": getattr(exc, "kind", None),
            "source": _source_doc(getattr(exc, "source", None)),
            "why": getattr(exc, "origin", "") or None,
            "fix": getattr(exc, "hint", "") or None,
        }
        if log_level:
            doc["log"] = exc.log
        return doc
    except NetbpfError as exc:
        # Not a verdict: something the verifier cannot check (a feature it does not
        # model, a map reference it cannot resolve).  Reported, and it counts as a
        # failure, never as an acceptance.
        doc["error"] = {
            "message": str(exc),
            "summary": str(exc),
            "index": getattr(exc, "index", None),
            "lines": [str(exc)],
            "kind": type(exc).__name__,
            "source": None,
            "why": None,
            "fix": None,
        }
        return doc
    doc["accepted"] = True
    doc["processed_insns"] = result.processed_insns
    doc["stats"] = result.stats
    if log_level:
        doc["log"] = result.log
    return doc


def verdict_line(doc: dict[str, Any]) -> str:
    """``prog NAME: accepted (processed N insns)`` or the one-line refusal with the
    instruction index and the C source line."""
    if doc["accepted"]:
        return f"prog {doc['name']}: accepted (processed {doc['processed_insns']} insns)"
    err = doc["error"]
    at = f"insn {err['index']}: " if err["index"] is not None else ""
    src = err["source"]
    where = ""
    if src is not None:
        file = src["file"].rsplit("/", 1)[-1]
        where = f" (at {file}:{src['line']}: {src['text'].strip()})"
    return f"prog {doc['name']}: rejected: {at}{err['summary']}{where}"


@click.command("verify")
@click.argument("obj_file", metavar="OBJ", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--prog",
    "prog_name",
    metavar="NAME",
    help="Check only this program (default: every program of the object).",
)
@click.option(
    "--log-level",
    type=click.IntRange(0, 2),
    default=0,
    show_default=True,
    help="0: verdicts only; 1: also the log of the path to a refusal (and the "
    "statistics); 2: every instruction's register and stack state, as the kernel's log.",
)
@click.option(
    "--set",
    "sets",
    metavar="VAR=VALUE",
    multiple=True,
    callback=_objects.parse_assignment,
    help="Give a global variable (a const volatile knob) this initial value first, as "
    "'prog run --set' does: the verifier sees .rodata as constants.",
)
@_common.json_option
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    obj_file: str,
    prog_name: str | None,
    log_level: int,
    sets: list[_objects.Assignment],
    as_json: bool,
) -> None:
    """Check the programs of the object OBJ with netbpf's verifier.

    Prints 'prog NAME: accepted (processed N insns)' per program, or the refusal in
    one line: the instruction, the kernel's message and the C source line; then why
    (where the offending value came from) and the usual fix.  Exits 1 when a program
    is refused.

    \b
    Example:
      netbpf verify examples/xdp_udp_drop.o
      netbpf verify prog.o --prog xdp_main --log-level 2
    """
    cspec = _objects.apply_sets(_objects.load_object(obj_file), sets, obj_file)
    if prog_name is not None:
        programs = [_objects.pick_program(cspec, prog_name, obj_file)]
    else:
        programs = list(cspec.programs.values())
        if not programs:
            raise NetbpfError(f"{obj_file}: the object has no programs")
    docs = [_common.clean(check_program(cspec, p, log_level)) for p in programs]
    refused = [d for d in docs if not d["accepted"]]

    if as_json:
        _common.emit_json(
            {
                "file": obj_file,
                "log_level": log_level,
                "accepted": not refused,
                "programs": docs,
            }
        )
    else:
        out = _common.console()
        for doc in docs:
            line = Text(verdict_line(doc), style="green" if doc["accepted"] else "bold red")
            out.print(line)
            err = doc["error"]
            if err is not None:
                for extra in err["lines"][1:]:
                    out.print(Text(f"  {extra}"))
                if err["why"]:
                    out.print(Text(f"  why: {err['why']}", style="yellow"))
                if err["fix"]:
                    out.print(Text(f"  fix: {err['fix']}", style="cyan"))
            if doc["log"]:
                out.print(Text(doc["log"].rstrip("\n"), style="dim"))
    if refused:
        first = refused[0]["error"]["message"]
        more = f" (and {len(refused) - 1} more refused)" if len(refused) > 1 else ""
        click.echo(f"netbpf: error: {' '.join(first.split())}{more}", err=True)
        ctx.exit(1)
