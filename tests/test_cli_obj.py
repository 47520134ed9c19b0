"""``netbpf obj show`` and ``netbpf prog dump`` on objects compiled from our own C
(tests/progs/cli_*.c), checked field by field against independent readers of the
same file: pyelftools for section sizes, ``bpftool btf dump`` for the BTF, the C
source for line numbers, ``llvm-objdump`` for instruction text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _cli import assert_fails, invoke, one_error_line, run_json
from elftools.elf.elffile import ELFFile

PROGS = Path(__file__).resolve().parent / "progs"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def flow_obj(compile_bpf) -> str:
    return str(compile_bpf("cli_flow.c"))


@pytest.fixture(scope="module")
def tail_obj(compile_bpf) -> str:
    return str(compile_bpf("cli_tail.c"))


def _section_slots(obj: str, name: str) -> int:
    with open(obj, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        assert sec is not None, name
        return sec["sh_size"] // 8


def _line_of(source: str, needle: str) -> int:
    """The 1-based line of the C source that contains ``needle`` (exactly once)."""
    lines = [i for i, ln in enumerate((PROGS / source).read_text().splitlines(), 1) if needle in ln]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


# ---------------------------------------------------------------------- obj show


def test_obj_show_programs(flow_obj: str) -> None:
    doc = run_json("obj", "show", flow_obj)
    assert set(doc) == {"file", "license", "kern_version", "programs", "maps", "variables", "btf"}
    assert (doc["file"], doc["license"], doc["kern_version"]) == (flow_obj, "GPL", 0)
    progs = {p["name"]: p for p in doc["programs"]}
    assert list(progs) == ["flow_xdp", "flow_tc"]
    xdp, tc = progs["flow_xdp"], progs["flow_tc"]
    assert set(xdp) == {
        "name",
        "section",
        "prog_type",
        "attach_type",
        "insns",
        "license",
        "subprograms",
        "maps",
        "func_info",
        "line_info",
        "core_relos",
    }
    assert (xdp["section"], xdp["prog_type"], xdp["attach_type"]) == ("xdp", "xdp", "xdp")
    assert (tc["section"], tc["prog_type"], tc["attach_type"]) == ("tc", "sched_cls", None)
    assert xdp["license"] == tc["license"] == "GPL"
    # linked: the program's own section plus every .text function it reaches (all of them)
    assert xdp["insns"] == _section_slots(flow_obj, "xdp") + _section_slots(flow_obj, ".text")
    assert tc["insns"] == _section_slots(flow_obj, "tc")
    assert xdp["subprograms"] == ["bucket_of", "account"]
    assert tc["subprograms"] == []
    assert xdp["func_info"] == 3 and tc["func_info"] == 1
    assert xdp["maps"] == [".bss", ".data", ".rodata", "flows", "limits", "pcpu_bytes"]
    assert tc["maps"] == [".bss"]
    assert xdp["line_info"] > 20 and tc["line_info"] > 0
    assert xdp["core_relos"] == 0


def test_obj_show_maps(flow_obj: str) -> None:
    maps = {m["name"]: m for m in run_json("obj", "show", flow_obj)["maps"]}
    assert list(maps) == [
        ".rodata",
        ".data",
        ".rodata.str1.1",
        ".bss",
        "limits",
        "flows",
        "pcpu_bytes",
    ]
    flows = maps["flows"]
    assert flows == {
        "name": "flows",
        "type": "hash",
        "key_size": 4,
        "value_size": 24,
        "key_type": "__u32",
        "value_type": "struct flow_stats",
        "max_entries": 16,
        "flags": ["BPF_F_NO_PREALLOC"],
        "flags_raw": 1,
        "global_data": None,
        "pinning": None,
        "inner_map": None,
        "initial": None,
    }
    assert maps["pcpu_bytes"]["type"] == "percpu_array"
    assert (maps["limits"]["value_type"], maps["limits"]["max_entries"]) == ("__u64", 4)
    rodata = maps[".rodata"]
    assert rodata["flags"] == ["BPF_F_RDONLY_PROG", "BPF_F_MMAPABLE"]
    assert rodata["flags_raw"] == (1 << 7) | (1 << 10)
    assert (rodata["key_type"], rodata["value_type"]) == (None, 'SEC(".rodata")')
    assert rodata["global_data"] == ".rodata"
    # verdict = XDP_PASS (2) and min_len = 0: one non-zero byte in 6
    assert rodata["initial"] == {"kind": "data", "bytes": 6, "nonzero_bytes": 1}
    assert maps[".bss"]["initial"] == {"kind": "data", "bytes": 8, "nonzero_bytes": 0}
    assert maps[".data"]["flags"] == ["BPF_F_MMAPABLE"]
    # total_bytes = 100 (one byte 0x64) and "netbpf" (six bytes)
    assert maps[".data"]["initial"] == {"kind": "data", "bytes": 16, "nonzero_bytes": 7}


def test_obj_show_map_initialisers_pinning_inner_maps(tail_obj: str) -> None:
    maps = {m["name"]: m for m in run_json("obj", "show", tail_obj)["maps"]}
    outer = maps["outer"]
    assert outer["type"] == "array_of_maps"
    assert outer["inner_map"] == {
        "name": "outer.inner",
        "type": "array",
        "key_size": 4,
        "value_size": 4,
        "key_type": "__u32",
        "value_type": "__u32",
        "max_entries": 1,
        "flags": [],
        "flags_raw": 0,
    }
    assert outer["initial"] == {"kind": "slots", "entries": [{"key": 1, "map": "inner_a"}]}
    assert maps["jump"]["initial"] == {
        "kind": "slots",
        "entries": [{"key": 2, "prog": "tail_pass"}],
    }
    assert maps["hits"]["pinning"] == "by_name"
    pending = maps["pending"]
    assert (pending["type"], pending["key_size"], pending["value_size"]) == ("queue", 0, 4)
    assert (pending["key_type"], pending["value_type"]) == (None, "__u32")
    assert maps["recent"]["type"] == "lru_hash"
    assert maps["recent"]["flags"] == ["BPF_F_NO_COMMON_LRU"]
    assert (maps["recent"]["key_type"], maps["recent"]["value_type"]) == ("__u64", "__u32")


def test_obj_show_variables(flow_obj: str) -> None:
    variables = {v["name"]: v for v in run_json("obj", "show", flow_obj)["variables"]}
    assert variables["verdict"] == {
        "name": "verdict",
        "section": ".rodata",
        "offset": 0,
        "size": 4,
        "type": "const volatile __u32",
        "readonly": True,
        "value": 2,
    }
    assert variables["min_len"]["type"] == "const volatile __u16"
    assert (variables["min_len"]["offset"], variables["min_len"]["size"]) == (4, 2)
    assert variables["banner"] == {
        "name": "banner",
        "section": ".data",
        "offset": 8,
        "size": 8,
        "type": "char[8]",
        "readonly": False,
        "value": "netbpf",
    }
    assert (variables["total_bytes"]["value"], variables["total_bytes"]["type"]) == (100, "__u64")
    assert variables["last_neg"]["type"] == "__s32"
    assert (variables["runs"]["section"], variables["runs"]["value"]) == (".bss", 0)


def test_obj_show_btf_matches_bpftool(flow_obj: str) -> None:
    btf = run_json("obj", "show", flow_obj)["btf"]
    assert set(btf) == {"types", "kinds", "strings_bytes", "datasecs"}
    assert {".bss", ".data", ".rodata", ".maps"} <= set(btf["datasecs"])
    assert sum(btf["kinds"].values()) == btf["types"]
    assert btf["kinds"]["datasec"] == len(btf["datasecs"])
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed (the counts above were still checked)")
    out = subprocess.run(
        ["bpftool", "btf", "dump", "file", flow_obj], capture_output=True, text=True, check=True
    ).stdout
    records = re.findall(r"^\[\d+\] (\w+)", out, flags=re.M)
    assert btf["types"] == len(records)
    for kind, n in btf["kinds"].items():
        assert records.count(kind.upper()) == n, kind


def test_obj_show_human(flow_obj: str, tail_obj: str) -> None:
    result = invoke("obj", "show", flow_obj)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "flow_xdp  xdp, attach xdp, section 'xdp'" in out
    assert "calls bucket_of, account" in out
    assert "flows  hash  __u32 -> struct flow_stats  max_entries 16  BPF_F_NO_PREALLOC" in out
    assert 'banner  char[8]  .data+8 (8 bytes)  = "netbpf"' in out
    assert "verdict  const volatile __u32  .rodata+0 (4 bytes, read-only)  = 2" in out
    tail = invoke("obj", "show", tail_obj).stdout
    assert "initial slots: [2] = prog tail_pass" in tail
    assert "initial slots: [1] = map inner_a" in tail
    assert "pinned by name" in tail


def test_obj_show_example_without_maps() -> None:
    """The shipped example objects (no clang needed): one program, no maps."""
    doc = run_json("obj", "show", str(EXAMPLES / "xdp_udp_drop.o"))
    assert [p["name"] for p in doc["programs"]] == ["xdp_udp_drop"]
    assert doc["maps"] == [] and doc["variables"] == []
    assert doc["license"] == "Dual BSD/GPL"


# --------------------------------------------------------------------- prog dump


def test_prog_dump_json(flow_obj: str) -> None:
    doc = run_json("prog", "dump", flow_obj, "--prog", "flow_xdp")
    assert set(doc) == {"file", "program", "section", "prog_type", "style", "functions", "insns"}
    assert (doc["program"], doc["section"], doc["prog_type"], doc["style"]) == (
        "flow_xdp",
        "xdp",
        "xdp",
        "llvm",
    )
    rows = doc["insns"]
    assert all(set(r) == {"index", "hex", "text", "function", "source"} for r in rows)
    # every slot once: LD_IMM64 rows cover two
    total = _section_slots(flow_obj, "xdp") + _section_slots(flow_obj, ".text")
    assert sum(len(r["hex"]) // 16 for r in rows) == total
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    texts = [r["text"] for r in rows]
    # map references by name, global data with its offset (min_len is .rodata+4)
    assert "r1 = map[limits] ll" in texts
    assert "r1 = map[flows] ll" in texts
    assert any(re.fullmatch(r"r\d = map_value\[\.rodata\]\+4 ll", t) for t in texts)
    assert any(re.fullmatch(r"r\d = map_value\[\.rodata\]\+0 ll", t) for t in texts)
    assert any(re.fullmatch(r"r\d = map_value\[\.bss\]\+0 ll", t) for t in texts)
    assert any(re.fullmatch(r"r\d = map_value\[\.data\]\+0 ll", t) for t in texts)
    # subprogram calls name their target
    assert any(re.fullmatch(r"call pc\+0x[0-9a-f]+ <bucket_of>", t) for t in texts)
    assert any(re.fullmatch(r"call pc\+0x[0-9a-f]+ <account>", t) for t in texts)
    functions = doc["functions"]
    assert [f["name"] for f in functions] == ["flow_xdp", "bucket_of", "account"]
    assert functions[0] == {
        "name": "flow_xdp",
        "index": 0,
        "signature": "int flow_xdp(struct xdp_md *ctx)",
    }
    assert functions[1]["signature"] == "static __u32 bucket_of(__u32 len)"
    assert functions[2]["signature"] == "int account(struct flow_stats *s, __u32 len)"
    assert functions[1]["index"] == _section_slots(flow_obj, "xdp")
    by_index = {r["index"]: r for r in rows}
    for f in functions:
        assert by_index[f["index"]]["function"] == f["name"]
    # source lines from BTF line info, as in the C file
    first = rows[0]["source"]
    assert first["file"].endswith("cli_flow.c")
    assert first["line"] == _line_of("cli_flow.c", "void *data = (void *)(long)ctx->data;")
    assert first["text"].strip() == "void *data = (void *)(long)ctx->data;"
    limits = next(r for r in rows if r["text"] == "r1 = map[limits] ll")
    assert limits["source"]["line"] == _line_of("cli_flow.c", "limit = bpf_map_lookup_elem(")
    assert all(r["source"] is not None for r in rows)


def test_prog_dump_text_matches_llvm_objdump(flow_obj: str) -> None:
    """Rows without a relocation or a call annotation are llvm-objdump's text."""
    objdump = shutil.which("llvm-objdump-19")
    if objdump is None:
        pytest.skip("llvm-objdump-19 not installed")
    out = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", "--section=xdp", flow_obj],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = {}
    for m in re.finditer(r"^\s*(\d+):\s+(.*?)\s*$", out, flags=re.M):
        theirs[int(m.group(1))] = re.sub(r"\s*<.*>$", "", m.group(2))
    rows = run_json("prog", "dump", flow_obj, "--prog", "flow_xdp")["insns"]
    checked = 0
    for r in rows:
        if r["index"] in theirs and "map" not in r["text"] and not r["text"].startswith("call"):
            assert r["text"] == theirs[r["index"]], r
            checked += 1
    assert checked > 50


def test_prog_dump_human(flow_obj: str) -> None:
    result = invoke("prog", "dump", flow_obj, "--prog", "flow_xdp")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    total = _section_slots(flow_obj, "xdp") + _section_slots(flow_obj, ".text")
    assert lines[0] == f"flow_xdp: xdp, section 'xdp', {total} insns"
    assert "<flow_xdp>:  ; int flow_xdp(struct xdp_md *ctx)" in lines
    assert "<bucket_of>:  ; static __u32 bucket_of(__u32 len)" in lines
    line = _line_of("cli_flow.c", "__u32 len = data_end - data;")
    assert f"; __u32 len = data_end - data;  [cli_flow.c:{line}:23]" in lines
    # the source line comes right before the first instruction it produced
    at = lines.index(f"; __u32 len = data_end - data;  [cli_flow.c:{line}:23]")
    assert lines[at + 1].split("\t")[0].strip() == "2:"
    assert any(ln.endswith("\tr1 = map[flows] ll") for ln in lines)

    verifier = invoke("prog", "dump", flow_obj, "--prog", "flow_xdp", "--style", "verifier")
    assert verifier.exit_code == 0
    vlines = verifier.stdout.splitlines()
    assert "0: (61) r2 = *(u32 *)(r1 +0)" in vlines
    assert any(re.fullmatch(r"\d+: \(85\) call bpf_map_lookup_elem#1", ln) for ln in vlines)
    assert any(re.fullmatch(r"\d+: \(18\) r1 = map\[flows\] ll", ln) for ln in vlines)


def test_prog_dump_single_program_needs_no_name() -> None:
    obj = str(EXAMPLES / "xdp_udp_drop.o")
    doc = run_json("prog", "dump", obj)
    assert doc["program"] == "xdp_udp_drop"
    assert sum(len(r["hex"]) // 16 for r in doc["insns"]) == 40
    # the example's raw section is the same program
    raw = (EXAMPLES / "xdp_udp_drop.bin").read_bytes().hex()
    assert "".join(r["hex"] for r in doc["insns"]) == raw


# ----------------------------------------------------------------------- errors


def test_missing_program_lists_the_programs(flow_obj: str) -> None:
    doc = assert_fails(
        ["prog", "dump", flow_obj, "--prog", "nosuch"],
        1,
        f"{flow_obj}: no program 'nosuch'; programs: flow_tc, flow_xdp",
    )
    assert doc["type"] == "NetbpfError"
    assert_fails(
        ["prog", "dump", flow_obj],
        1,
        f"{flow_obj} has 2 programs; choose one with --prog: flow_tc, flow_xdp",
    )


def test_corrupted_objects_are_one_line(flow_obj: str, tmp_path: Path) -> None:
    data = Path(flow_obj).read_bytes()
    truncated = tmp_path / "truncated.o"
    truncated.write_bytes(data[: len(data) // 3])
    doc = assert_fails(["obj", "show", str(truncated)], 1, str(truncated))
    assert doc["type"] in ("ElfError", "ObjectError", "BtfError")
    assert doc["file"] == str(truncated)
    # a corrupted header field: the section header table offset points past the end
    broken = bytearray(data)
    broken[0x28:0x30] = (len(data) + 4096).to_bytes(8, "little")
    path = tmp_path / "broken.o"
    path.write_bytes(bytes(broken))
    assert_fails(["prog", "dump", str(path)], 1, str(path))
    text = tmp_path / "notelf.o"
    text.write_text("hello")
    assert_fails(["obj", "show", str(text)], 1, "not an ELF object")
    assert_fails(["obj", "show", str(tmp_path / "missing.o")], 1, "No such file or directory")


def test_obj_commands_have_json_and_help() -> None:
    for path in (("obj", "show"), ("prog", "dump"), ("map", "dump")):
        result = invoke(*path, "--help")
        assert result.exit_code == 0
        assert "--json" in result.stdout
    top = invoke("--help").stdout
    for group in ("obj", "prog", "map"):
        assert group in top


def test_mutated_btf_never_escapes_the_error_policy(flow_obj: str, tmp_path: Path) -> None:
    """Bytes flipped in .BTF / .BTF.ext (names, source lines, types): every command
    either works (strings it cannot decode shown with U+FFFD) or prints one error
    line; never an internal error or a traceback."""
    import random

    data = Path(flow_obj).read_bytes()
    with open(flow_obj, "rb") as f:
        elf = ELFFile(f)
        spans = []
        for name in (".BTF", ".BTF.ext"):
            sec = elf.get_section_by_name(name)
            assert sec is not None
            spans.append((sec["sh_offset"], sec["sh_size"]))
    rng = random.Random(20261125)
    path = tmp_path / "mutant.o"
    outcomes = set()
    for _ in range(40):
        mutant = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            start, size = rng.choice(spans)
            mutant[start + rng.randrange(size)] = rng.randrange(0x80, 0x100)
        path.write_bytes(bytes(mutant))
        for args in (["obj", "show", str(path)], ["prog", "dump", str(path), "--prog", "flow_xdp"]):
            for extra in ((), ("--json",)):
                result = invoke(*args, *extra)
                assert result.exit_code in (0, 1), (args, result.stderr)
                if result.exit_code:
                    one_error_line(result)
                else:
                    assert result.stderr == ""
                outcomes.add(result.exit_code)
    assert outcomes == {0, 1}  # the mutations did reach both paths
