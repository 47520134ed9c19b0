"""The root ``netbpf`` group, command registration and the error policy.

Why the error policy lives in the group's ``main``: click's own standalone mode
prints usage errors over several lines and lets every other exception escape with a
traceback.  netbpf promises one line per error instead (``netbpf: error: ...``), exit
status 1 for errors netbpf detects (bad bytes, bad assembly, a program fault, a kernel
that refuses, a file that cannot be read) and 2 for command-line usage errors.  Doing
it here, not in :func:`main`, means tests driving :data:`cli` through click's
``CliRunner`` see exactly what a user sees.

Command groups follow ``bpftool``: one group per kind of object (``obj``, ``prog``,
``map``), plus ``verify`` and the object-less ``asm`` and ``disasm``.  A new group is one module with a click group and
one ``add_command`` line below.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from netbpf.cli import _common
from netbpf.errors import NetbpfError

__all__ = ["cli", "main"]

#: What click raises for a group called without a command (click >= 8.2).
_NoArgsIsHelp: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_NeverRaised", (click.UsageError,), {})
)

#: Exit status for a bug in netbpf itself (sysexits.h EX_SOFTWARE).
EXIT_INTERNAL = 70
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class NetbpfGroup(click.Group):
    """A click group whose ``main`` applies netbpf's one-line error policy."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        token = _common.JSON_MODE.set(False)
        try:
            code = self._run(argv, prog_name, complete_var, **extra)
        finally:
            _common.JSON_MODE.reset(token)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(
        self, argv: list[str], prog_name: str | None, complete_var: str | None, **extra: Any
    ) -> int:
        try:
            rv = super().main(
                argv, prog_name or "netbpf", complete_var, standalone_mode=False, **extra
            )
        # (A closed stdout, `netbpf disasm prog.bin | head`, is handled inside click:
        # EPIPE ends the command quietly with status 1.)
        except _NoArgsIsHelp as exc:
            # `netbpf` or `netbpf prog` alone: the same as --help, not an error.
            if exc.ctx is not None:
                click.echo(exc.ctx.get_help())
            return 0
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            return _fail(exc, exc.format_message() + hint, EXIT_USAGE, json_hint=argv)
        except click.Abort:
            return _fail(None, "interrupted", EXIT_INTERRUPTED, json_hint=argv)
        except click.ClickException as exc:
            return _fail(exc, exc.format_message(), exc.exit_code or EXIT_ERROR, json_hint=argv)
        except NetbpfError as exc:
            return _fail(exc, _common.describe_error(exc), EXIT_ERROR)
        except OSError as exc:
            return _fail(exc, _common.describe_os_error(exc), EXIT_ERROR)
        except Exception as exc:
            if os.environ.get("NETBPF_DEBUG"):
                raise
            message = (
                f"internal error: {type(exc).__name__}: {exc} "
                "(a bug in netbpf; set NETBPF_DEBUG=1 to see the traceback)"
            )
            return _fail(exc, message, EXIT_INTERNAL, prefix_error=False)
        return rv if isinstance(rv, int) else 0


def _fail(
    exc: BaseException | None,
    message: str,
    code: int,
    *,
    json_hint: list[str] | None = None,
    prefix_error: bool = True,
) -> int:
    """Print the one-line error (and, under ``--json``, a JSON error document on
    stdout so that scripts parsing stdout always get a document)."""
    line = " ".join(message.split())  # exactly one line, whatever the message held
    click.echo(f"netbpf: {'error: ' if prefix_error else ''}{line}", err=True)
    as_json = _common.JSON_MODE.get() or (json_hint is not None and "--json" in json_hint)
    if as_json:
        payload = _common.error_payload(exc, line, code)
        try:
            click.echo(json.dumps({"error": payload}, indent=2))
        except BrokenPipeError:
            _silence_stdout()
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=NetbpfGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="netbpf", prog_name="netbpf")
def cli() -> None:
    """netbpf: eBPF networking in Python.

    Run eBPF programs in the simulator or in the running kernel, assemble and
    disassemble them.  Every command takes --json for machine-readable output.
    """


def _register() -> None:
    from netbpf.cli import asm, maps, obj, prog, verify

    cli.add_command(obj.obj)
    cli.add_command(prog.prog)
    cli.add_command(maps.map_group)
    cli.add_command(verify.verify_cmd)
    cli.add_command(asm.asm_cmd)
    cli.add_command(asm.disasm_cmd)


_register()


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the CLI and return the exit status."""
    return cli.main(args=argv, prog_name="netbpf", standalone_mode=False)
