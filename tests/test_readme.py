"""The README's two opening commands are real: the first one's netbpf part runs and
prints what the README says, and ``.ci/run`` runs the second one verbatim."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def opening_commands() -> list[str]:
    """The shell code blocks before the README's first ``##`` section, each joined
    into one command line (backslash continuations undone)."""
    head = README.split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", head, flags=re.S)
    return [block.strip() for block in blocks]


def _netbpf_cmd() -> list[str]:
    """The console script of the Python running the tests (the one `pip install`
    put next to it), else the module entry point."""
    script = Path(sys.executable).parent / "netbpf"
    return [str(script)] if script.exists() else [sys.executable, "-m", "netbpf.cli"]


def _first_netbpf_part() -> list[str]:
    first = opening_commands()[0]
    parts = [p.strip() for p in first.split("&&")]
    netbpf_parts = [p for p in parts if p.startswith("netbpf ")]
    assert len(netbpf_parts) == 1, first
    return shlex.split(netbpf_parts[0])[1:]


def test_readme_opens_with_exactly_two_commands() -> None:
    commands = opening_commands()
    assert len(commands) == 2
    first, second = commands
    # the first: install and run, no root, no clang
    assert "pip install ." in first
    for needs_more in ("sudo", "apt-get", "clang", "bpftool"):
        assert needs_more not in first
    # the second: every test dependency, then the whole suite
    for package in ("clang-19", "llvm-19", "libbpf-dev", "bpftool"):
        assert package in second
    assert "'.[test]'" in second
    assert second.rstrip().endswith("pytest")


def test_first_command_runs_and_prints_the_verdict() -> None:
    args = _first_netbpf_part()
    result = subprocess.run(
        [*_netbpf_cmd(), *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    retval_line = next(ln for ln in result.stdout.splitlines() if ln.startswith("retval"))
    assert retval_line.split() == ["retval", "1", "XDP_DROP"]
    # what the README says the command shows
    assert "retval 1  XDP_DROP" in README
    for word in ("duration", "data_out", "ctx_out"):
        assert word in result.stdout


def test_first_command_json_agrees() -> None:
    args = _first_netbpf_part()
    result = subprocess.run(
        [*_netbpf_cmd(), *args, "--json"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["retval"], doc["action"]) == (1, "XDP_DROP")
    packet = (REPO / "examples" / "packets" / "udp.bin").read_bytes()
    assert bytes.fromhex(doc["data_out"]) == packet


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "DEBIAN_FRONTEND=noninteractive" in text
    second = opening_commands()[1]
    assert second in text
    # and it is the last thing the script does, so its status is the script's
    assert text.rstrip().endswith(second)


def test_readme_examples_exist() -> None:
    for path in re.findall(r"examples/[\w/]+\.(?:bin|o|c)", README):
        assert (REPO / path).exists(), path


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def _example_commands() -> list[str]:
    section = README.split("## Examples", 1)[1].split("\n## ", 1)[0]
    return [ln for ln in section.splitlines() if ln.startswith("netbpf prog run")]


#: the verdict each command of the Examples section announces in its comment
EXAMPLE_ACTIONS = ["TC_ACT_OK", "keep 44 bytes", "XDP_DROP"]


def test_readme_example_commands_are_listed() -> None:
    assert len(_example_commands()) == len(EXAMPLE_ACTIONS)


@pytest.mark.parametrize("which", range(len(EXAMPLE_ACTIONS)))
def test_readme_example_command_runs(which: int, request: pytest.FixtureRequest) -> None:
    """The netbpf commands of the Examples section give the verdicts their comments
    announce (the kernel one skips, with the reason, where bpf() is unusable)."""
    command = _example_commands()[which]
    if "--backend kernel" in command:
        request.getfixturevalue("kernel")
    args = shlex.split(command)[1:]
    result = subprocess.run(
        [*_netbpf_cmd(), *args, "--json"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (command, result.stderr)
    doc = json.loads(result.stdout)
    assert doc["action"] == EXAMPLE_ACTIONS[which], command
    if "tc_mark" in command:
        assert doc["ctx_out_fields"]["mark"] == 0x22
        assert doc["ctx_out_fields"]["priority"] == 6
