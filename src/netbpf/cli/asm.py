"""``netbpf asm`` and ``netbpf disasm``: between assembly text and instruction bytes.

The assembly syntax is the one ``llvm-objdump -d`` and the kernel verifier log print
(and the bpf_conformance suite's), so a listing copied from either assembles back;
see :mod:`netbpf.isa.asm`.  Raw bytes are little-endian 8-byte slots, what
``llvm-objcopy -O binary --only-section=SEC`` extracts from an object compiled with
``clang -target bpf``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from netbpf.cli import _common
from netbpf.errors import NetbpfError, NotSupportedError

if TYPE_CHECKING:  # pragma: no cover
    from netbpf.isa.disasm import Style
    from netbpf.isa.instruction import Instruction

#: opcode of the 16-byte load of a 64-bit immediate (BPF_LD | BPF_DW | BPF_IMM)
BPF_LD_IMM64 = 0x18

__all__ = ["asm_cmd", "disasm_cmd"]


@click.command("asm")
@click.argument("source", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "-o",
    "--output",
    metavar="OUT",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the raw instruction bytes to OUT (default: print them as hex).",
)
@_common.json_option
def asm_cmd(source: str, output: str | None, as_json: bool) -> None:
    """Assemble FILE (assembly text, or - for stdin) into raw instruction bytes.

    Without -o, prints the bytes as hex, one 8-byte instruction slot per line (a
    16-byte LD_IMM64 takes two lines), which `xxd -r -p` turns back into bytes.
    """
    from netbpf.isa.asm import assemble
    from netbpf.isa.instruction import encode_program
    from netbpf.isa.validate import validate_program

    if output == "-" and as_json:
        raise click.UsageError("stdout can carry one thing: -o - or --json")
    text = _common.decode_text(_common.read_input(source), source)
    try:
        insns = list(assemble(text))
        validate_program(insns)
    except NetbpfError as exc:
        _common.attach_source(exc, source)
        raise
    raw = encode_program(insns)
    if output is not None:
        _common.write_output(output, raw)

    if as_json:
        _common.emit_json(
            {
                "file": source,
                "insns": len(insns),
                "bytes": len(raw),
                "hex": raw.hex(),
                "output": output,
            }
        )
        return
    if output is None:
        for off in range(0, len(raw), 8):
            click.echo(raw[off : off + 8].hex())
    elif output != "-":
        click.echo(
            f"{source}: {len(insns)} instruction slots, {len(raw)} bytes -> {output}", err=True
        )


@click.command("disasm")
@click.argument("source", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--style",
    type=click.Choice(["llvm", "verifier"]),
    default="llvm",
    show_default=True,
    help="llvm: like llvm-objdump -d (index, bytes, text); verifier: like the kernel "
    "verifier log ('0: (b7) r0 = 0').",
)
@_common.json_option
def disasm_cmd(source: str, style: Style, as_json: bool) -> None:
    """Disassemble FILE (raw instruction bytes, or - for stdin)."""
    from netbpf.isa.instruction import decode_program

    raw = _common.read_input(source)
    try:
        if raw[:4] == b"\x7fELF":
            raise NotSupportedError(
                "ELF objects in 'disasm'",
                "disasm takes raw instruction bytes; extract the program section with "
                "'llvm-objcopy-19 -O binary --only-section=SECTION OBJ OUT.bin', or use "
                "'llvm-objdump-19 -d OBJ'",
            )
        insns = decode_program(raw)
        rows = list(_rows(insns, style))
    except NetbpfError as exc:
        _common.attach_source(exc, source)
        raise

    if as_json:
        _common.emit_json(
            {
                "file": source,
                "style": style,
                "insns": [{"index": i, "hex": h, "text": t} for i, h, t in rows],
            }
        )
        return
    # Plain text with tabs, as llvm-objdump prints it: listings are meant to be piped,
    # diffed and assembled back, so no styling and no tab expansion.
    for index, hexbytes, text in rows:
        if style == "llvm":
            pairs = " ".join(hexbytes[k : k + 2] for k in range(0, len(hexbytes), 2))
            click.echo(f"{index:>8}:\t{pairs}\t{text}")
        else:
            click.echo(f"{index}: ({hexbytes[:2]}) {text}")


def _rows(insns: list[Instruction], style: Style) -> Iterator[tuple[int, str, str]]:
    """``(slot index, hex of the instruction's bytes, text)`` per instruction.  A
    well-formed LD_IMM64 covers two slots and is one row; anything the disassembler
    cannot decode is shown as ``.quad`` (one slot), like objdump shows unknown bytes."""
    from netbpf.isa.disasm import format_insn

    index = 0
    while index < len(insns):
        text = format_insn(insns, index, style=style)
        width = 2 if insns[index].opcode == BPF_LD_IMM64 and not text.startswith(".quad") else 1
        raw = b"".join(i.encode() for i in insns[index : index + width])
        yield index, raw.hex(), text
        index += width
