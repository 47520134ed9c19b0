"""The ``netbpf`` command line: commands, --json documents, and the error policy.

Driven through click's CliRunner on :data:`netbpf.cli.cli`, whose ``main`` carries the
error policy, so these tests see exactly what a user sees (stdout, stderr, exit code).
A few tests run the real console entry point in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from netbpf.cli import cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
PACKETS = EXAMPLES / "packets"
XDP_DROP = str(EXAMPLES / "xdp_udp_drop.bin")
UDP = str(PACKETS / "udp.bin")

PROG_RUN_KEYS = {
    "program",
    "backend",
    "engine",
    "repeat",
    "retval",
    "action",
    "data_out",
    "ctx_out",
    "ctx_out_fields",
    "duration_ns",
}

RUN_XDP = ["prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP]

# r0 = 2 (XDP_PASS / TC_ACT_SHOT); exit
PASS_ASM = "r0 = 2\nexit\n"
PASS_RAW = bytes.fromhex("b7000000020000009500000000000000")


def invoke(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    """The error policy: exactly one line on stderr, prefixed, and no traceback."""
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("netbpf: error: "), lines[0]
    return lines[0]


def run_json(*args: str, input: bytes | str | None = None) -> dict:
    result = invoke(*args, "--json", input=input)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


# ------------------------------------------------------------------ structure


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_command_has_json_and_help() -> None:
    commands = dict(_all_commands(cli))
    assert {("prog", "run"), ("asm",), ("disasm",)} <= set(commands)
    for path, cmd in commands.items():
        assert any("--json" in p.opts for p in cmd.params), f"{' '.join(path)} lacks --json"
        result = invoke(*path, "--help")
        assert result.exit_code == 0
        assert "--json" in result.stdout


def test_bare_group_prints_help() -> None:
    for args in ((), ("prog",)):
        result = invoke(*args)
        assert result.exit_code == 0
        assert result.stdout.startswith("Usage: ")
        assert result.stderr == ""


def test_top_level_help_and_version() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("prog", "asm", "disasm"):
        assert name in result.stdout
    result = invoke("--version")
    assert result.exit_code == 0
    assert "netbpf" in result.stdout


# ------------------------------------------------------------------- prog run


def test_prog_run_example_human_output() -> None:
    result = invoke("prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "retval" in out and "XDP_DROP" in out
    assert "duration" in out and "data_out" in out and "ctx_out" in out
    assert "56 bytes, unchanged" in out
    # the hexdump shows the packet
    assert "|..............E.|" in out


def test_prog_run_json_document() -> None:
    doc = run_json("prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP)
    assert set(doc) == PROG_RUN_KEYS
    assert doc["retval"] == 1
    assert doc["action"] == "XDP_DROP"
    assert doc["data_out"] == Path(UDP).read_bytes().hex()
    assert doc["backend"] == "sim"
    assert doc["repeat"] == 1
    assert doc["program"] == {
        "file": XDP_DROP,
        "name": "xdp_udp_drop",
        "format": "raw",
        "prog_type": "xdp",
        "insns": 40,
    }
    assert isinstance(doc["duration_ns"], int) and doc["duration_ns"] >= 0


def test_prog_run_data_hex_equals_data_in() -> None:
    packet = Path(UDP).read_bytes()
    spaced = " ".join(f"{b:02x}" for b in packet)
    a = run_json("prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP)
    b = run_json("prog", "run", XDP_DROP, "--type", "xdp", "--data-hex", spaced)
    assert (a["retval"], a["data_out"]) == (b["retval"], b["data_out"])


def test_prog_run_tc_example_shows_rewrite_and_mark(tmp_path: Path) -> None:
    out_file = tmp_path / "out.bin"
    ctx_file = tmp_path / "ctx.bin"
    args = ["prog", "run", str(EXAMPLES / "tc_mark.bin"), "--type", "tc"]
    args += ["--data-in", str(PACKETS / "tcp_ssh.bin"), "--ctx-hex", "00"]
    result = invoke(*args, "--data-out", str(out_file), "--ctx-out", str(ctx_file))
    assert result.exit_code == 0, result.stderr
    assert "TC_ACT_OK" in result.stdout
    assert "2 bytes changed" in result.stdout
    assert "mark=0x22" in result.stdout and "priority=6" in result.stdout
    doc = run_json(*args)
    assert bytes.fromhex(doc["data_out"]) == out_file.read_bytes()
    assert doc["ctx_out"] is not None
    assert bytes.fromhex(doc["ctx_out"]) == ctx_file.read_bytes()
    assert doc["ctx_out_fields"]["mark"] == 0x22
    assert doc["ctx_out_fields"]["priority"] == 6
    assert out_file.read_bytes()[15] == 0xB8  # DSCP EF


def test_prog_run_data_out_to_stdout() -> None:
    """--data-out - puts exactly the packet bytes on stdout; the summary moves to stderr."""
    args = ["prog", "run", str(EXAMPLES / "tc_mark.bin"), "--type", "tc"]
    args += ["--data-in", str(PACKETS / "tcp_ssh.bin")]
    doc = run_json(*args)
    result = CliRunner().invoke(cli, [*args, "--data-out", "-"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == bytes.fromhex(doc["data_out"])
    assert "TC_ACT_OK" in result.stderr


def test_asm_json_refuses_raw_stdout(tmp_path: Path) -> None:
    src = tmp_path / "p.s"
    src.write_text(PASS_ASM)
    raw = invoke("asm", str(src), "-o", "-")
    assert raw.exit_code == 0
    assert raw.stdout_bytes == PASS_RAW
    result = invoke("asm", str(src), "-o", "-", "--json")
    assert result.exit_code == 2
    assert "stdout can carry one thing" in one_error_line(result)


def test_prog_run_without_ctx_in_has_no_ctx_out() -> None:
    """BPF_PROG_TEST_RUN gives a context back only when one goes in; the CLI passes
    exactly what it is given and says how to get one."""
    args = ["prog", "run", str(EXAMPLES / "tc_mark.bin"), "--type", "tc"]
    args += ["--data-in", str(PACKETS / "tcp_ssh.bin")]
    doc = run_json(*args)
    assert doc["ctx_out"] is None and doc["ctx_out_fields"] is None
    assert "--ctx-hex 00" in invoke(*args).stdout


def test_prog_run_udp_to_blocked_port_is_shot_by_tc() -> None:
    doc = run_json("prog", "run", str(EXAMPLES / "tc_mark.bin"), "--type", "tc", "--data-in", UDP)
    assert (doc["retval"], doc["action"]) == (2, "TC_ACT_SHOT")


def test_prog_run_socket_filter_action() -> None:
    prog = str(EXAMPLES / "socket_ssh_filter.bin")
    ssh = run_json(
        "prog", "run", prog, "--type", "socket", "--data-in", str(PACKETS / "tcp_ssh.bin")
    )
    assert (ssh["retval"], ssh["action"]) == (44, "keep 44 bytes")
    http = run_json(
        "prog", "run", prog, "--type", "socket", "--data-in", str(PACKETS / "tcp_http.bin")
    )
    assert (http["retval"], http["action"]) == (0, "drop")


def test_prog_run_assembly_from_stdin() -> None:
    doc = run_json(
        "prog", "run", "-", "--type", "xdp", "--format", "asm", "--data-in", UDP, input=PASS_ASM
    )
    assert doc["retval"] == 2 and doc["action"] == "XDP_PASS"
    assert doc["program"]["format"] == "asm"
    assert doc["program"]["insns"] == 2


def test_prog_run_auto_detects_assembly_and_raw(tmp_path: Path) -> None:
    src = tmp_path / "pass.txt"
    src.write_text(PASS_ASM)
    raw = tmp_path / "pass.data"
    raw.write_bytes(PASS_RAW)
    a = run_json("prog", "run", str(src), "--type", "tc", "--data-in", UDP)
    b = run_json("prog", "run", str(raw), "--type", "tc", "--data-in", UDP)
    assert a["program"]["format"] == "asm" and b["program"]["format"] == "raw"
    assert a["retval"] == b["retval"] == 2
    assert a["action"] == "TC_ACT_SHOT"


def test_prog_run_repeat_and_engines_agree() -> None:
    args = ["prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP, "--repeat", "5"]
    fast = run_json(*args, "--engine", "fast")
    interp = run_json(*args, "--engine", "interp")
    assert fast["repeat"] == interp["repeat"] == 5
    assert fast["engine"] == "fast" and interp["engine"] == "interp"
    assert (fast["retval"], fast["data_out"]) == (interp["retval"], interp["data_out"])
    human = invoke(*args)
    assert "mean of 5 runs" in human.stdout


def test_prog_run_section_style_and_enum_types() -> None:
    for ptype in ("cgroup_skb/ingress", "CGROUP_SKB"):
        # the kernel refuses r0 = 2 on ingress (R0 ... should have been in [0, 1]); the
        # test is about type names and retval rendering, so the verifier is skipped
        args = ["--type", ptype, "--data-in", UDP, "--unsafe-skip-verifier"]
        doc = run_json("prog", "run", "-", *args, input=PASS_RAW)
        assert doc["program"]["prog_type"] == "cgroup_skb"
        assert doc["action"] == "drop, congestion notification"


@pytest.mark.kernel
def test_prog_run_kernel_backend_matches_simulator(kernel) -> None:
    examples = (("xdp_udp_drop", "xdp", []), ("tc_mark", "tc", ["--ctx-hex", "00"]))
    examples += (("socket_ssh_filter", "socket", ["--ctx-hex", "00"]),)
    for name, ptype, ctx in examples:
        for packet in sorted(PACKETS.glob("*.bin")):
            args = ["prog", "run", str(EXAMPLES / f"{name}.bin"), "--type", ptype]
            args += ["--data-in", str(packet), *ctx]
            sim = run_json(*args)
            ker = run_json(*args, "--backend", "kernel")
            assert ker["backend"] == "kernel" and ker["engine"] is None
            for key in ("retval", "action", "data_out", "ctx_out"):
                assert sim[key] == ker[key], f"{name} on {packet.name}: {key}"


# -------------------------------------------------------------------- asm/disasm


def test_asm_prints_hex_slots_and_writes_raw(tmp_path: Path) -> None:
    src = tmp_path / "p.s"
    src.write_text("r1 = 0x1122334455667788 ll\nr0 = 2\nexit\n")
    result = invoke("asm", str(src))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.split()
    assert len(lines) == 4  # LD_IMM64 takes two slots
    assert all(len(x) == 16 for x in lines)
    assert lines[2:] == ["b700000002000000", "9500000000000000"]
    out = tmp_path / "p.bin"
    result = invoke("asm", str(src), "-o", str(out))
    assert result.exit_code == 0
    assert out.read_bytes() == bytes.fromhex("".join(lines))
    doc = run_json("asm", str(src))
    assert set(doc) == {"file", "insns", "bytes", "hex", "output"}
    assert (doc["insns"], doc["bytes"], doc["hex"]) == (4, 32, "".join(lines))


def test_disasm_styles_and_round_trip(tmp_path: Path) -> None:
    result = invoke("disasm", XDP_DROP)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 40
    assert lines[0].split("\t")[-1].startswith("r0 = ")
    assert "exit" in lines[-1]
    # what disasm prints assembles back to the same bytes
    listing = tmp_path / "listing.s"
    listing.write_text(result.stdout)
    back = tmp_path / "back.bin"
    assert invoke("asm", str(listing), "-o", str(back)).exit_code == 0
    assert back.read_bytes() == Path(XDP_DROP).read_bytes()

    verifier = invoke("disasm", XDP_DROP, "--style", "verifier")
    assert verifier.exit_code == 0
    assert verifier.stdout.splitlines()[0].startswith("0: (b7) r0 = ")
    vlisting = tmp_path / "vlisting.s"
    vlisting.write_text(verifier.stdout)
    assert invoke("asm", str(vlisting), "-o", str(back)).exit_code == 0
    assert back.read_bytes() == Path(XDP_DROP).read_bytes()


def test_disasm_shows_undecodable_slots_as_quad(tmp_path: Path) -> None:
    """Like objdump, the disassembler shows what is there: a slot that is no valid
    instruction is printed as ``.quad`` (which assembles back to the same bytes)."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes.fromhex("ff00000000000000") + PASS_RAW)
    result = invoke("disasm", str(bad))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith(".quad 0x00000000000000ff")
    assert lines[2].endswith("exit")


def test_disasm_json_covers_every_slot() -> None:
    doc = run_json("disasm", str(EXAMPLES / "socket_ssh_filter.bin"))
    assert set(doc) == {"file", "style", "insns"}
    rows = doc["insns"]
    assert all(set(r) == {"index", "hex", "text"} for r in rows)
    # 20 slots, one of them the second half of an LD_IMM64
    assert len(rows) == 19
    assert sum(len(r["hex"]) // 16 for r in rows) == 20
    assert [r["index"] for r in rows][-1] == 19
    wide = [r for r in rows if len(r["hex"]) == 32]
    assert len(wide) == 1 and wide[0]["index"] == 12


# ------------------------------------------------------------------ error policy


def _write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return str(path)


ERROR_CASES = {
    # name: (args builder, exit code, substring of the error line)
    "missing program file": (
        lambda t: ["prog", "run", str(t / "nope.bin"), "--type", "xdp", "--data-in", UDP],
        1,
        "nope.bin: No such file or directory",
    ),
    "missing packet file": (
        lambda t: ["prog", "run", XDP_DROP, "--type", "xdp", "--data-in", str(t / "nope.pkt")],
        1,
        "nope.pkt: No such file or directory",
    ),
    "odd-length raw program": (
        lambda t: ["prog", "run", _write(t, "odd.bin", PASS_RAW[:12]), "--type", "xdp"],
        1,
        "not a multiple of 8",
    ),
    "empty program": (
        lambda t: ["prog", "run", _write(t, "empty.bin", b""), "--type", "xdp"],
        1,
        "empty",
    ),
    "bad assembly": (
        lambda t: ["prog", "run", _write(t, "bad.s", "r0 = 2\nr0 = = 1\nexit\n"), "--type", "xdp"],
        1,
        "bad.s: line 2",
    ),
    "jump out of the program": (
        lambda t: ["prog", "run", _write(t, "jmp.s", "goto +5\nexit\n"), "--type", "xdp"],
        1,
        "insn 0",
    ),
    "bad hex": (
        lambda t: ["prog", "run", XDP_DROP, "--type", "xdp", "--data-hex", "0g"],
        2,
        "not a hex digit",
    ),
    "odd hex": (
        lambda t: ["prog", "run", XDP_DROP, "--type", "xdp", "--data-hex", "abc"],
        2,
        "odd number of hex digits",
    ),
    "unknown type": (
        lambda t: ["prog", "run", XDP_DROP, "--type", "nosuchhook", "--data-in", UDP],
        2,
        "unknown program type 'nosuchhook'",
    ),
    "missing type": (
        lambda t: ["prog", "run", XDP_DROP, "--data-in", UDP],
        2,
        "--type is required",
    ),
    "both data-in and data-hex": (
        lambda t: ["prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP, "--data-hex", "00"],
        2,
        "cannot be used together",
    ),
    "engine with kernel": (
        lambda t: [
            "prog",
            "run",
            XDP_DROP,
            "--type",
            "xdp",
            "--backend",
            "kernel",
            "--engine",
            "fast",
        ],
        2,
        "--engine",
    ),
    "two raw outputs on stdout": (
        lambda t: [*RUN_XDP, "--data-out", "-", "--ctx-out", "-"],
        2,
        "stdout can carry one thing",
    ),
    "unknown command": (lambda t: ["frobnicate"], 2, "No such command 'frobnicate'"),
    "unknown option": (lambda t: ["prog", "run", XDP_DROP, "--frobnicate"], 2, "--frobnicate"),
    "program fault": (
        lambda t: [
            "prog",
            "run",
            _write(t, "fault.s", "r1 = 0\nr0 = *(u64 *)(r1 + 0)\nexit\n"),
            "--type",
            "xdp",
            "--data-in",
            UDP,
        ],
        1,
        "insn 1",
    ),
    "packet too short for the kernel's rules": (
        lambda t: ["prog", "run", XDP_DROP, "--type", "xdp", "--data-hex", "0001"],
        1,
        "test run refused",
    ),
    "ELF object with --type": (
        lambda t: ["prog", "run", str(EXAMPLES / "xdp_udp_drop.o"), "--type", "xdp"],
        2,
        "--type is for raw and assembly programs",
    ),
    "object options on a raw program": (
        lambda t: [*RUN_XDP, "--set", "verdict=1", "--dump-maps"],
        2,
        "--set, --dump-maps need a BPF object (ELF)",
    ),
    "asm of a missing file": (lambda t: ["asm", str(t / "none.s")], 1, "No such file"),
    "asm of binary bytes": (
        lambda t: ["asm", _write(t, "bin.s", b"\xff\xfe\x00")],
        1,
        "not UTF-8 text",
    ),
    "asm syntax error": (lambda t: ["asm", _write(t, "x.s", "frobnicate r0\n")], 1, "line 1"),
    "disasm of an odd-length file": (
        lambda t: ["disasm", _write(t, "odd.bin", b"\x95\0\0\0")],
        1,
        "not a multiple of 8",
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_one_line(case: str, tmp_path: Path) -> None:
    build, code, needle = ERROR_CASES[case]
    args = build(tmp_path)
    result = invoke(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert needle in line
    assert result.stdout == ""
    # --json: the same line on stderr, and an error document on stdout
    result = invoke(*args, "--json")
    assert result.exit_code == code
    assert one_error_line(result) == line
    doc = json.loads(result.stdout)["error"]
    assert {"type", "message", "exit_code"} <= set(doc)
    assert doc["exit_code"] == code
    assert doc["message"] == line.removeprefix("netbpf: error: ")


def test_program_fault_json_names_the_instruction(tmp_path: Path) -> None:
    src = _write(tmp_path, "fault.s", "r1 = 0\nr0 = *(u64 *)(r1 + 0)\nexit\n")
    # the kernel refuses the NULL read: only an unverified program can fault
    args = ["--data-in", UDP, "--unsafe-skip-verifier", "--json"]
    result = invoke("prog", "run", src, "--type", "xdp", *args)
    doc = json.loads(result.stdout)["error"]
    assert doc["type"] == "ProgramFault"
    assert doc["index"] == 1


def test_prog_run_refuses_what_the_verifier_refuses(tmp_path: Path) -> None:
    """Verified by default, as the kernel's BPF_PROG_LOAD: a refusal is one line with
    the instruction and the kernel's message, and a structured error document."""
    src = _write(tmp_path, "fault.s", "r1 = 0\nr0 = *(u64 *)(r1 + 0)\nexit\n")
    result = invoke("prog", "run", src, "--type", "xdp", "--data-in", UDP)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.endswith("insn 1: R1 invalid mem access 'scalar'")
    result = invoke("prog", "run", src, "--type", "xdp", "--data-in", UDP, "--json")
    assert result.exit_code == 1 and one_error_line(result) == line
    doc = json.loads(result.stdout)["error"]
    assert doc["type"] == "VerifierRejection"
    assert (doc["index"], doc["summary"]) == (1, "R1 invalid mem access 'scalar'")
    result = invoke(
        "prog", "run", src, "--type", "xdp", "--backend", "kernel", "--unsafe-skip-verifier"
    )
    assert result.exit_code == 2 and "for the simulator" in result.stderr


def test_kernel_unavailable_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import netbpf.kernel
    from netbpf.errors import KernelUnavailable

    class NoKernel:
        def __init__(self) -> None:
            raise KernelUnavailable("bpf() is not permitted: EPERM (run as root)")

    monkeypatch.setattr(netbpf.kernel, "KernelBackend", NoKernel)
    result = invoke(
        "prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP, "--backend", "kernel"
    )
    assert result.exit_code == 1
    assert one_error_line(result) == "netbpf: error: bpf() is not permitted: EPERM (run as root)"


def test_internal_error_is_one_line_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import netbpf.sim

    class Broken:
        def __init__(self, **kwargs: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setattr(netbpf.sim, "SimBackend", Broken)
    monkeypatch.delenv("NETBPF_DEBUG", raising=False)
    result = invoke("prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP)
    assert result.exit_code == 70
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        "netbpf: internal error: RuntimeError: boom "
        "(a bug in netbpf; set NETBPF_DEBUG=1 to see the traceback)"
    ]


# ------------------------------------------------------------- real entry point


def _netbpf_cmd() -> list[str]:
    script = Path(sys.executable).parent / "netbpf"
    return [str(script)] if script.exists() else [sys.executable, "-m", "netbpf.cli"]


def test_console_script_runs_and_fails_cleanly(tmp_path: Path) -> None:
    ok = subprocess.run(
        [*_netbpf_cmd(), "prog", "run", XDP_DROP, "--type", "xdp", "--data-in", UDP, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["action"] == "XDP_DROP"
    bad = subprocess.run(
        [*_netbpf_cmd(), "disasm", str(tmp_path / "missing.bin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        f"netbpf: error: {tmp_path / 'missing.bin'}: No such file or directory"
    ]
    assert bad.stdout == ""


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "netbpf.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "prog" in result.stdout


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """`netbpf disasm big.bin | head -1` stops without an error or a traceback (status
    1, click's convention for EPIPE).  The listing is far larger than a pipe buffer, so
    netbpf really writes into a closed pipe."""
    big = tmp_path / "big.bin"
    big.write_bytes(bytes.fromhex("b700000002000000") * 50_000 + bytes.fromhex("9500000000000000"))
    proc = subprocess.run(
        f"{' '.join(_netbpf_cmd())} disasm {big} | head -1; echo rc=${{PIPESTATUS[0]}} >&2",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.splitlines() == ["       0:\tb7 00 00 00 02 00 00 00\tr0 = 0x2"]
    assert proc.stderr.splitlines() == ["rc=1"]
