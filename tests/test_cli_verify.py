"""``netbpf verify``: verdict lines, the refusal with its instruction and C source
line, log levels, --json, exit status; and against the kernel: the same verdict and,
for accepted programs, the same number of processed instructions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import assert_fails, invoke, one_error_line, run_json

PROGS = Path(__file__).resolve().parent / "progs"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def verify_obj(compile_bpf) -> str:
    return str(compile_bpf("cli_verify.c"))


def _line_of(needle: str, after: str) -> int:
    """The line of the C source holding ``needle``, the first one after ``after``."""
    text = (PROGS / "cli_verify.c").read_text().splitlines()
    start = next(i for i, ln in enumerate(text) if after in ln)
    return next(i for i, ln in enumerate(text[start:], start + 1) if needle in ln)


def test_accepted_program(verify_obj: str) -> None:
    result = invoke("verify", verify_obj, "--prog", "good")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("prog good: accepted (processed ")
    assert line.endswith(" insns)")
    assert result.stderr == ""
    doc = run_json("verify", verify_obj, "--prog", "good")
    assert set(doc) == {"file", "log_level", "accepted", "programs"}
    assert (doc["file"], doc["log_level"], doc["accepted"]) == (verify_obj, 0, True)
    (prog,) = doc["programs"]
    assert set(prog) == {
        "name", "section", "prog_type", "insns", "accepted", "processed_insns", "stats",
        "error", "log",
    }  # fmt: skip
    assert (prog["name"], prog["section"], prog["prog_type"]) == ("good", "xdp", "xdp")
    assert prog["accepted"] is True and prog["error"] is None and prog["log"] is None
    assert line == f"prog good: accepted (processed {prog['processed_insns']} insns)"
    assert prog["stats"].startswith(f"processed {prog['processed_insns']} insns (limit 1000000)")


def test_refused_program_names_insn_and_source_line(verify_obj: str) -> None:
    result = invoke("verify", verify_obj, "--prog", "no_null_check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    source_line = _line_of("*n += 1;", after="int no_null_check(")
    assert lines[0].startswith("prog no_null_check: rejected: insn ")
    assert "R0 invalid mem access 'map_value_or_null'" in lines[0]
    assert lines[0].endswith(f"(at cli_verify.c:{source_line}: *n += 1;)")
    assert any(ln.startswith("  why: ") for ln in lines[1:])
    assert any(ln.startswith("  fix: ") for ln in lines[1:])
    err = one_error_line(result)
    assert "prog 'no_null_check': insn " in err
    assert "R0 invalid mem access 'map_value_or_null'" in err

    result = invoke("verify", verify_obj, "--prog", "no_null_check", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["accepted"] is False
    (prog,) = doc["programs"]
    assert prog["accepted"] is False and prog["stats"] is None
    error = prog["error"]
    assert set(error) == {"message", "summary", "index", "lines", "kind", "source", "why", "fix"}
    assert error["summary"] == "R0 invalid mem access 'map_value_or_null'"
    assert error["message"] == f"prog 'no_null_check': insn {error['index']}: {error['summary']}"
    assert f"insn {error['index']}: " in lines[0]
    assert error["source"]["line"] == source_line
    assert error["source"]["text"].strip() == "*n += 1;"
    assert error["source"]["file"].endswith("cli_verify.c")
    assert error["why"] and error["fix"]


def test_every_program_by_default(verify_obj: str) -> None:
    result = invoke("verify", verify_obj)
    assert result.exit_code == 1
    verdicts = [ln for ln in result.stdout.splitlines() if ln.startswith("prog ")]
    assert [v.split(":")[0] for v in verdicts] == ["prog good", "prog no_null_check"]
    assert "accepted" in verdicts[0] and "rejected" in verdicts[1]
    one_error_line(result)  # the refusal, once, on stderr


def test_log_levels(verify_obj: str) -> None:
    quiet = run_json("verify", verify_obj, "--prog", "good")["programs"][0]
    one = run_json("verify", verify_obj, "--prog", "good", "--log-level", "1")["programs"][0]
    two = run_json("verify", verify_obj, "--prog", "good", "--log-level", "2")["programs"][0]
    assert quiet["log"] is None
    # level 1 on success: the statistics line only, as the kernel's
    assert one["log"].strip() == one["stats"]
    # level 2: every instruction with its state, starting with the context in R1
    assert "0: R1=ctx() R10=fp0" in two["log"].splitlines()
    assert "call bpf_map_lookup_elem#1" in two["log"]
    assert two["log"].strip().endswith(two["stats"])
    human = invoke("verify", verify_obj, "--prog", "no_null_check", "--log-level", "1")
    assert human.exit_code == 1
    assert "R0 invalid mem access 'map_value_or_null'" in human.stdout
    assert "processed " in human.stdout  # the log's statistics line


@pytest.mark.parametrize("example", ["xdp_udp_drop", "tc_mark", "socket_ssh_filter"])
def test_same_processed_count_as_the_kernel(example: str, kernel) -> None:
    """For an accepted program, the number of processed instructions is the kernel's
    own count (``verified_insns`` of BPF_OBJ_GET_INFO_BY_FD)."""
    from netbpf import load_collection_spec

    obj = str(EXAMPLES / f"{example}.o")
    doc = run_json("verify", obj)
    (prog,) = doc["programs"]
    assert prog["accepted"] is True
    (spec,) = load_collection_spec(obj).programs.values()
    with kernel.load_program(spec) as loaded:
        assert prog["processed_insns"] == loaded.info().verified_insns


def test_same_verdicts_as_the_kernel(verify_obj: str, kernel) -> None:
    from netbpf import load_collection_spec
    from netbpf.errors import KernelError

    spec = load_collection_spec(verify_obj)
    result = invoke("verify", verify_obj, "--json")
    ours = {p["name"]: p for p in json.loads(result.stdout)["programs"]}
    for name in spec.programs:
        single = spec.copy()
        single.programs = {name: spec.programs[name]}
        try:
            kernel.load(single).close()
            accepted = True
        except KernelError as exc:
            accepted = False
            assert ours[name]["error"]["summary"] in exc.log
        assert ours[name]["accepted"] is accepted, name


def test_verify_errors(verify_obj: str, tmp_path: Path) -> None:
    assert_fails(
        ["verify", verify_obj, "--prog", "nope"],
        1,
        f"{verify_obj}: no program 'nope'; programs: good, no_null_check",
    )
    assert_fails(["verify", verify_obj, "--log-level", "3"], 2, "--log-level")
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF" + bytes(10))
    assert_fails(["verify", str(bad)], 1, str(bad))
