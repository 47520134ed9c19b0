"""Shared pieces of the CLI: ``--json``, reading inputs, parameter types, rendering.

Kept free of heavy imports (the VM, the kernel backend) so that ``netbpf --help``
stays fast; commands import what they run inside their bodies.
"""

from __future__ import annotations

import json
import string
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from netbpf.errors import NetbpfError

F = TypeVar("F", bound=Callable[..., Any])

#: True while the running command was given ``--json`` (read by the error policy).
JSON_MODE: ContextVar[bool] = ContextVar("netbpf_cli_json", default=False)

# --------------------------------------------------------------------------- --json


def _json_callback(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        JSON_MODE.set(True)
    return value


def json_option(f: F) -> F:
    """The ``--json`` flag every command carries."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=_json_callback,
        help="Print one JSON document with stable keys instead of human output.",
    )(f)


def clean(value: Any) -> Any:
    """``value`` with every string made printable: names and source lines read from
    an object are decoded with ``surrogateescape`` (a corrupted or non-UTF-8 object
    keeps its bytes), and a lone surrogate cannot be written to a terminal or put in
    JSON; each undecodable byte becomes U+FFFD.  Recurses into dicts and lists."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def emit_json(doc: dict[str, Any]) -> None:
    """Write one JSON document (and a newline) to stdout."""
    click.echo(json.dumps(clean(doc), indent=2))


def console(*, stderr: bool = False) -> Console:
    """A rich console on the *current* stdout (so click's test runner captures it), or
    stderr.  ``soft_wrap`` keeps long lines whole when piped."""
    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- errors, one line


#: Attribute the CLI sets on an error raised while handling an input file, so the
#: one-line message can say which file (instruction and line errors do not know).
_SOURCE_ATTR = "_netbpf_cli_source"


def attach_source(exc: BaseException, source: str) -> None:
    """Remember which input file ``exc`` is about (shown as ``FILE: message``)."""
    if getattr(exc, "file", None) is None:
        setattr(exc, _SOURCE_ATTR, source)


def describe_error(exc: NetbpfError) -> str:
    source = getattr(exc, _SOURCE_ATTR, None)
    return f"{source}: {exc}" if source else str(exc)


def describe_os_error(exc: OSError) -> str:
    """``FILE: No such file or directory`` rather than ``[Errno 2] ...``."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason


#: Structured fields of the error tree copied into the JSON error document.
_ERROR_FIELDS = (
    "index",
    "line",
    "text",
    "reason",
    "program",
    "errno",
    "op",
    "file",
    "section",
    "offset",
    "feature",
    "summary",
)


def error_payload(exc: BaseException | None, message: str, code: int) -> dict[str, Any]:
    """The ``{"error": ...}`` document printed under ``--json``: stable keys ``type``,
    ``message``, ``exit_code``, plus whichever structured fields the error carries."""
    payload: dict[str, Any] = {
        "type": type(exc).__name__ if exc is not None else "Interrupted",
        "message": message,
        "exit_code": code,
    }
    if exc is not None:
        for name in _ERROR_FIELDS:
            value = getattr(exc, name, None)
            if isinstance(value, str | int) and not isinstance(value, bool):
                payload[name] = value
        source = getattr(exc, _SOURCE_ATTR, None)
        if source is not None and "file" not in payload:
            payload["file"] = source
    return payload


# -------------------------------------------------------------------------- inputs


def read_input(path: str) -> bytes:
    """Bytes of a file, or of stdin for ``-``.  OSError propagates (one-line error)."""
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def write_output(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    Path(path).write_bytes(data)


def decode_text(raw: bytes, source: str) -> str:
    """Assembly sources are UTF-8 text; anything else is a clear error, not a crash."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        err = NetbpfError(f"not UTF-8 text (byte offset {exc.start}); is it a raw program?")
        attach_source(err, source)
        raise err from None


_HEX_DIGITS = frozenset(string.hexdigits)


def parse_hex(text: str) -> bytes:
    """Hex bytes as people paste them: ``0x`` prefix, spaces, newlines, ``:`` or ``-``
    between bytes are all accepted.  Raises ValueError naming the first bad digit."""
    cleaned = text.strip()
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    digits: list[str] = []
    for pos, ch in enumerate(cleaned):
        if ch in _HEX_DIGITS:
            digits.append(ch)
        elif ch.isspace() or ch in ":-":
            continue
        else:
            raise ValueError(f"{ch!r} at position {pos} is not a hex digit")
    if len(digits) % 2:
        raise ValueError(f"odd number of hex digits ({len(digits)}): bytes need two each")
    return bytes.fromhex("".join(digits))


class HexBytes(click.ParamType):
    """A click parameter holding bytes written as hex."""

    name = "HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, bytes):
            return value
        try:
            return parse_hex(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ProgTypeParam(click.ParamType):
    """A program type as libbpf names sections (``xdp``, ``tc``, ``socket``,
    ``cgroup_skb/ingress``...) or as the enum name (``SCHED_CLS``).  Converted early so
    a typo is a usage error (exit 2), not a failure half-way through a run."""

    name = "TYPE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from netbpf.uapi.sections import resolve_prog_type

        if not isinstance(value, str):
            return value
        try:
            resolve_prog_type(value)
        except NetbpfError:
            self.fail(
                f"unknown program type {value!r}; use a section-style name such as "
                "xdp, tc, socket, cgroup_skb/ingress, lwt_in (or an enum name like SCHED_CLS)",
                param,
                ctx,
            )
        return value


def exclusive(ctx: click.Context, **options: Any) -> None:
    """At most one of ``options`` (name -> value) may be given."""
    given = [name for name, value in options.items() if value is not None]
    if len(given) > 1:
        flags = " and ".join("--" + name.replace("_", "-") for name in given)
        raise click.UsageError(f"{flags} cannot be used together", ctx)


# ------------------------------------------------------------------------- output


def _printable(byte: int) -> str:
    return chr(byte) if 0x20 <= byte < 0x7F else "."


def hexdump(data: bytes, *, compare: bytes | None = None, indent: str = "  ") -> Text:
    """A classic 16-bytes-per-line hexdump.  With ``compare`` (the input packet, same
    length), bytes the program changed are highlighted."""
    text = Text()
    if not data:
        text.append(f"{indent}(empty)\n", style="dim")
        return text
    for line_off in range(0, len(data), 16):
        chunk = data[line_off : line_off + 16]
        text.append(f"{indent}{line_off:04x}  ", style="dim")
        for i in range(16):
            if i == 8:
                text.append(" ")
            if i >= len(chunk):
                text.append("   ")
                continue
            pos = line_off + i
            changed = compare is not None and compare[pos] != data[pos]
            text.append(f"{chunk[i]:02x}", style="bold red" if changed else "")
            text.append(" ")
        text.append(" |")
        text.append("".join(_printable(b) for b in chunk), style="dim")
        text.append("|\n")
    return text
