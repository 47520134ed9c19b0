"""``netbpf-conformance-plugin``: the bpf_conformance plugin protocol.

The runner (bpf_conformance's ``tools/bpf_conformance.cc``) writes the program to the
plugin's stdin as hex bytes, each as two digits followed by two spaces, then a
newline; it passes the memory the same way as the first argument (only when the test
has memory), then any ``--plugin_options``.  It reads r0 as hex from stdout when the
exit status is 0; otherwise it compares stderr with the test's expected error.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import pytest
from conformance.corpus import Case, load_corpus

from netbpf.cli.conformance_plugin import main, parse_hex
from netbpf.isa.asm import assemble
from netbpf.isa.instruction import encode_program
from netbpf.kernel import KernelBackend


def runner_hex(data: bytes) -> str:
    """Bytes the way the bpf_conformance runner encodes them."""
    return "".join(f"{b:02x}  " for b in data)


def run_plugin(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    program: bytes,
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(runner_hex(program) + "\n"))
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def prog(text: str) -> bytes:
    return encode_program(assemble(text))


def test_memory_argument_is_r1_and_its_length_r2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    program = prog("r0 = *(u32 *)(r1 + 0)\nr0 <<= 8\nr0 += r2\nexit")
    status, out, err = run_plugin(monkeypatch, capsys, program, runner_hex(b"\x11\x22\x33\x44\x55"))
    assert (status, out, err) == (0, "4433221105\n", "")


def test_without_memory_r1_and_r2_are_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_plugin(monkeypatch, capsys, prog("r0 = r1\nr0 |= r2\nexit"))
    assert (status, out) == (0, "0\n")


def test_r0_is_printed_as_64_bit_hex(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_plugin(monkeypatch, capsys, prog("r0 = -2\nexit"))
    assert (status, out) == (0, "fffffffffffffffe\n")
    assert int(out, 16) == (1 << 64) - 2


def test_fault_prints_one_line_on_stderr_and_nothing_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    program = prog("r0 = 0\nr0 = *(u64 *)(r1 + 4)\nexit")
    status, out, err = run_plugin(monkeypatch, capsys, program, runner_hex(bytes(8)))
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "insn 1" in err


def test_malformed_program_is_refused_with_the_slot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_plugin(
        monkeypatch, capsys, bytes.fromhex("ff00000000000000") + prog("exit")
    )
    assert status == 1 and out == "" and "insn 0" in err


def test_partial_slot_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_plugin(monkeypatch, capsys, prog("r0 = 0\nexit") + b"\x95")
    assert status == 1 and "not a multiple of 8" in err


def test_runaway_loop_stops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_plugin(monkeypatch, capsys, prog("r0 = 0\nif r0 == 0 goto -1\nexit"))
    assert status == 1 and out == "" and "instruction limit" in err


def test_bad_hex_names_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("b7 00 zz\n"))
    assert main([]) == 1
    assert "token 3 ('zz')" in capsys.readouterr().err


def test_empty_program_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert main([]) == 1
    assert "no instruction bytes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--elf"], "not supported: --elf"),
        (["--engine", "warp"], "engine 'warp'"),
        (["--engine"], "--engine needs a value"),
        (["--frobnicate"], "unexpected argument '--frobnicate'"),
    ],
)
def test_bad_options(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    status, out, err = run_plugin(monkeypatch, capsys, prog("r0 = 0\nexit"), *args)
    assert status == 1 and out == "" and message in err


def test_program_option_and_engine_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--program", runner_hex(prog("r0 = 7\nexit")), "--engine", "interpreter"]) == 0
    assert capsys.readouterr().out == "7\n"
    assert main(["--program=" + prog("r0 = 8\nexit").hex(), "--debug", ""]) == 0
    assert capsys.readouterr().out == "8\n"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "usage: netbpf-conformance-plugin" in capsys.readouterr().out


def test_parse_hex_accepts_the_runner_form_and_contiguous_hex() -> None:
    assert parse_hex("b7  00  0a  ", what="x") == b"\xb7\x00\x0a"
    assert parse_hex("b7000a 0x1 f", what="x") == b"\xb7\x00\x0a\x01\x0f"


PLUGIN_CASES = [c for c in load_corpus() if c.packet is None]


@pytest.mark.parametrize("case", PLUGIN_CASES, ids=[c.id for c in PLUGIN_CASES])
def test_corpus_through_the_plugin_protocol(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our own corpus, fed to the plugin exactly as the bpf_conformance runner would."""
    args = [runner_hex(case.mem)] if case.mem else []
    status, out, err = run_plugin(monkeypatch, capsys, encode_program(case.program()), *args)
    if case.result is not None:
        assert (status, out, err) == (0, f"{case.result:x}\n", "")
    else:
        assert case.error is not None
        assert status == 1 and out == "" and case.error[1] in err


def test_installed_entry_point_speaks_the_protocol() -> None:
    """The console script, as a separate process, the way the runner starts it."""
    exe = shutil.which("netbpf-conformance-plugin")
    cmd = (
        [exe]
        if exe
        else [
            sys.executable,
            "-c",
            "from netbpf.cli.conformance_plugin import main; raise SystemExit(main())",
        ]
    )
    program = prog("r0 = *(u16 *)(r1 + 1)\nexit")
    res = subprocess.run(
        [*cmd, runner_hex(b"\x01\x02\x03")],
        input=runner_hex(program) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "302\n", "")


def test_kernel_option_runs_the_program_in_the_kernel(
    kernel: KernelBackend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    program = prog("r0 = *(u64 *)(r1 + 0)\nr0 = be64 r0\nexit")
    status, out, err = run_plugin(
        monkeypatch, capsys, program, runner_hex(bytes(range(1, 9))), "--kernel"
    )
    assert (status, out, err) == (0, "102030405060708\n", "")
    status, out, err = run_plugin(monkeypatch, capsys, prog("r0 = 1\nr0 /= 0\nexit"), "--kernel")
    assert status == 1 and out == "" and "div by zero" in err
