"""Helpers shared by the CLI tests (tests/test_cli*.py): drive :data:`netbpf.cli.cli`
through click's CliRunner, whose ``main`` carries the error policy, so the tests see
exactly what a user sees (stdout, stderr, exit code)."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from netbpf.cli import cli


def invoke(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """The error policy: exactly one line on stderr, prefixed, and no traceback."""
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("netbpf: error: "), lines[0]
    return lines[0]


def run_json(*args: str, input: bytes | str | None = None) -> Any:
    result = invoke(*args, "--json", input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def assert_fails(args: list[str], code: int, needle: str) -> dict[str, Any]:
    """The command fails with ``code``, one error line containing ``needle``, nothing
    on stdout; under --json the same line and an error document.  Returns the
    document."""
    result = invoke(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert needle in line, line
    assert result.stdout == ""
    result = invoke(*args, "--json")
    assert result.exit_code == code
    assert one_error_line(result) == line
    doc = json.loads(result.stdout)["error"]
    assert doc["exit_code"] == code
    assert doc["message"] == line.removeprefix("netbpf: error: ")
    return doc
