"""``netbpf prog run OBJ`` (whole objects: --prog, --set, --map, --dump-maps) and
``netbpf map dump`` on objects compiled from tests/progs/cli_*.c.

Every behaviour test runs on both backends (the kernel one skips, with the probe's
reason, where bpf() is unusable), and a differential test checks that the simulator
and the kernel agree on retval, packet and every map after the same run.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import assert_fails, invoke, run_json

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PACKET = bytes(range(60))  # 60 bytes: flow bucket 60 % 4 == 0
PACKET_HEX = PACKET.hex()


@pytest.fixture(scope="module")
def flow_obj(compile_bpf) -> str:
    return str(compile_bpf("cli_flow.c"))


@pytest.fixture(scope="module")
def tail_obj(compile_bpf) -> str:
    return str(compile_bpf("cli_tail.c"))


@pytest.fixture(params=["sim", pytest.param("kernel", marks=pytest.mark.kernel)])
def backend(request: pytest.FixtureRequest) -> str:
    """``--backend`` value; the kernel one skips where bpf() is unusable."""
    if request.param == "kernel":
        request.getfixturevalue("kernel")
    return str(request.param)


def run_flow(obj: str, backend: str, *extra: str) -> dict:
    return run_json(
        "prog", "run", obj, "--prog", "flow_xdp", "--data-hex", PACKET_HEX,
        "--backend", backend, *extra,
    )  # fmt: skip


def maps_of(doc: dict) -> dict[str, dict]:
    return {m["name"]: m for m in doc["maps"]}


def entries(doc: dict, name: str) -> dict:
    """A dumped map's entries as {key: value} (scalar keys)."""
    return {e["key"]: e["value"] for e in maps_of(doc)[name]["entries"]}


# -------------------------------------------------------------------------- runs


def test_run_object_json_document(flow_obj: str, backend: str) -> None:
    doc = run_flow(flow_obj, backend)
    assert set(doc) == {
        "program", "backend", "engine", "repeat", "retval", "action", "data_out",
        "ctx_out", "ctx_out_fields", "duration_ns", "maps", "variables",
    }  # fmt: skip
    assert doc["program"] == {
        "file": flow_obj,
        "name": "flow_xdp",
        "format": "elf",
        "prog_type": "xdp",
        "insns": 112,
        "section": "xdp",
    }
    assert (doc["retval"], doc["action"]) == (2, "XDP_PASS")  # verdict = XDP_PASS
    assert doc["data_out"] == PACKET_HEX
    assert doc["backend"] == backend
    assert doc["maps"] is None and doc["variables"] is None  # no --dump-maps


def test_dump_maps_after_a_run(flow_obj: str, backend: str) -> None:
    doc = run_flow(flow_obj, backend, "--dump-maps", "--repeat", "3")
    maps = maps_of(doc)
    assert list(maps) == [
        ".rodata",
        ".data",
        ".rodata.str1.1",
        ".bss",
        "limits",
        "flows",
        "pcpu_bytes",
    ]
    for m in maps.values():
        assert set(m) == {
            "name", "type", "key_type", "value_type", "max_entries", "percpu", "entries", "note",
        }  # fmt: skip
    flows = maps["flows"]
    assert (flows["type"], flows["key_type"], flows["value_type"]) == (
        "hash",
        "__u32",
        "struct flow_stats",
    )
    # three runs of a 60-byte packet, all in bucket 0
    assert entries(doc, "flows") == {0: {"packets": 3, "bytes": 180, "last_len": 60, "tag": "seen"}}
    assert entries(doc, ".bss") == {0: {"runs": 3, "last_neg": -60}}
    assert entries(doc, ".data") == {0: {"total_bytes": 100 + 180, "banner": "netbpf"}}
    assert entries(doc, ".rodata") == {0: {"verdict": 2, "min_len": 0}}
    assert entries(doc, ".rodata.str1.1") == {0: "seen"}
    assert entries(doc, "limits") == {0: 0, 1: 0, 2: 0, 3: 0}
    pcpu = maps["pcpu_bytes"]
    assert pcpu["percpu"] is True
    (per_cpu,) = entries(doc, "pcpu_bytes").values()
    assert isinstance(per_cpu, list) and sum(per_cpu) == 180
    assert doc["variables"] == {
        "min_len": 0,
        "verdict": 2,
        "total_bytes": 280,
        "banner": "netbpf",
        "runs": 3,
        "last_neg": -60,
    }


def test_dump_maps_human(flow_obj: str, backend: str) -> None:
    args = ["prog", "run", flow_obj, "--prog", "flow_xdp", "--data-hex", PACKET_HEX]
    result = invoke(*args, "--backend", backend, "--dump-maps")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "flow_xdp  xdp, section 'xdp', 112 insns" in out
    assert "retval    2  XDP_PASS" in out
    assert "maps      7 after the run" in out
    assert "  flows  hash  __u32 -> struct flow_stats  1 entry" in out
    assert '    0: {"packets": 1, "bytes": 60, "last_len": 60, "tag": "seen"}' in out
    assert '    0: {"runs": 1, "last_neg": -60}' in out


def test_set_const_volatile_knobs(flow_obj: str, backend: str) -> None:
    doc = run_flow(flow_obj, backend, "--set", "verdict=1", "--dump-maps")
    assert (doc["retval"], doc["action"]) == (1, "XDP_DROP")
    assert doc["variables"]["verdict"] == 1
    # min_len above the packet's length: dropped before anything is counted
    doc = run_flow(flow_obj, backend, "--set", "min_len=0x100", "--dump-maps")
    assert doc["retval"] == 1
    assert entries(doc, "flows") == {}
    assert entries(doc, ".bss") == {0: {"runs": 1, "last_neg": 0}}
    assert entries(doc, ".rodata") == {0: {"verdict": 2, "min_len": 256}}
    # .data variables too; strings are char arrays, zero-padded
    doc = run_flow(flow_obj, backend, "--set", "banner=hi", "--set", "total_bytes=0", "--dump-maps")
    assert entries(doc, ".data") == {0: {"total_bytes": 60, "banner": "hi"}}


def test_map_json_prepopulates(flow_obj: str, backend: str) -> None:
    # limit 10 for bucket 0: the 60-byte packet is dropped
    doc = run_flow(flow_obj, backend, "--map", 'limits={"0": 10, "2": "0x20"}', "--dump-maps")
    assert doc["retval"] == 1
    assert entries(doc, "limits") == {0: 10, 1: 0, 2: 32, 3: 0}
    # a struct value, partial (missing members are zero), and a key as a pair list
    doc = run_flow(
        flow_obj, backend, "--map", 'flows=[[0, {"packets": 7, "tag": "pre"}], [3, {"bytes": 1}]]',
        "--dump-maps",
    )  # fmt: skip
    assert doc["retval"] == 2
    assert entries(doc, "flows") == {
        0: {"packets": 8, "bytes": 60, "last_len": 60, "tag": "seen"},
        3: {"packets": 0, "bytes": 1, "last_len": 0, "tag": "0x000000000000"},
    }
    # a per-CPU map: one value for every CPU
    doc = run_flow(flow_obj, backend, "--map", 'pcpu_bytes={"0": 1000}', "--dump-maps")
    (per_cpu,) = entries(doc, "pcpu_bytes").values()
    assert sum(per_cpu) == 1000 * len(per_cpu) + 60


def test_dump_json_round_trips_through_map_file(
    flow_obj: str, backend: str, tmp_path: Path
) -> None:
    """What --dump-maps --json prints for a map is what --map NAME=@FILE reads."""
    first = run_flow(flow_obj, backend, "--repeat", "2", "--dump-maps")
    saved = tmp_path / "flows.json"
    saved.write_text(json.dumps(maps_of(first)["flows"]["entries"]))
    second = run_flow(flow_obj, backend, "--map", f"flows=@{saved}", "--dump-maps")
    assert entries(second, "flows") == {
        0: {"packets": 3, "bytes": 180, "last_len": 60, "tag": "seen"}
    }


def test_tc_program_of_the_object(flow_obj: str, backend: str) -> None:
    doc = run_json(
        "prog", "run", flow_obj, "--prog", "flow_tc", "--data-hex", PACKET_HEX,
        "--ctx-hex", "00", "--backend", backend, "--dump-maps",
    )  # fmt: skip
    assert (doc["retval"], doc["action"]) == (0, "TC_ACT_OK")
    assert doc["program"]["prog_type"] == "sched_cls"
    assert doc["ctx_out_fields"]["mark"] == 0x2A
    assert doc["variables"]["runs"] == 1


def test_tail_call_through_initialised_prog_array(
    tail_obj: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """The whole object is loaded: entry tail-calls tail_pass through jump[2]."""
    args = ["prog", "run", tail_obj, "--prog", "tail_entry", "--data-hex", PACKET_HEX]
    args += ["--backend", backend]
    if backend == "kernel":  # cli_tail.o pins 'hits' by name: give it a bpffs
        args += ["--pin-path", str(request.getfixturevalue("bpffs"))]
    doc = run_json(*args, "--map", 'pending=[5, "0x10"]', "--dump-maps")
    assert (doc["retval"], doc["action"]) == (2, "XDP_PASS")
    (count,) = entries(doc, "hits").values()
    assert count == 1
    # a queue is listed by popping it (the collection goes away with the command):
    # the two values pushed from the command line, then the packet length
    pending = maps_of(doc)["pending"]
    assert (pending["type"], pending["key_type"], pending["value_type"]) == (
        "queue",
        None,
        "__u32",
    )
    assert pending["entries"] == [{"value": 5}, {"value": 16}, {"value": len(PACKET)}]
    assert entries(doc, "recent") == {}
    slots = entries(doc, "jump")
    assert list(slots) == [2]  # the slot the object initialised (its value is a prog id)


@pytest.mark.kernel
def test_sim_and_kernel_agree(flow_obj: str, kernel) -> None:
    """The same run, with knobs and pre-populated maps, on both backends."""
    extra = [
        "--set",
        "min_len=10",
        "--map",
        'limits={"1": 50}',
        "--map",
        'flows={"2": {"packets": 5}}',
    ]
    for packet in (bytes(14), bytes(range(60)), bytes(61), bytes(100), bytes(range(255))):
        args = ["prog", "run", flow_obj, "--prog", "flow_xdp", "--data-hex", packet.hex()]
        sim = run_json(*args, *extra, "--repeat", "2", "--dump-maps")
        ker = run_json(*args, *extra, "--repeat", "2", "--dump-maps", "--backend", "kernel")
        for key in ("retval", "action", "data_out", "variables"):
            assert sim[key] == ker[key], (len(packet), key)
        for name, smap in maps_of(sim).items():
            kmap = maps_of(ker)[name]
            if smap["percpu"]:  # which CPU ran it differs; the sums may not
                assert {e["key"]: sum(e["value"]) for e in smap["entries"]} == {
                    e["key"]: sum(e["value"]) for e in kmap["entries"]
                }
                continue
            # the kernel seeds its hash function randomly: iteration order differs
            for m in (smap, kmap):
                m["entries"].sort(key=lambda e: json.dumps(e["key"]))
            assert smap == kmap, (len(packet), name)


# ------------------------------------------------------------------- pinned maps


@pytest.fixture
def bpffs(kernel) -> Iterator[Path]:
    """A private bpffs mount (pinning needs one), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="netbpf-cli-bpffs-"))
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], capture_output=True, text=True)
    if res.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a bpffs: {res.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


def test_pinned_map_outlives_the_command(tail_obj: str, bpffs: Path) -> None:
    args = ["prog", "run", tail_obj, "--prog", "tail_entry", "--data-hex", PACKET_HEX]
    args += ["--backend", "kernel", "--pin-path", str(bpffs)]
    first = run_json(*args, "--dump-maps")
    assert first["retval"] == 2  # XDP_PASS from the tail call
    ((key, count),) = entries(first, "hits").items()
    assert count == 1
    assert (bpffs / "hits").exists()
    # a second command reuses the pinned map: the count goes on
    second = run_json(*args, "--dump-maps")
    assert entries(second, "hits") == {key: 2}
    # and map dump reads it, typed through the object's BTF ...
    doc = run_json("map", "dump", "--pinned", str(bpffs / "hits"), tail_obj)
    assert (doc["file"], doc["pinned"], doc["backend"]) == (tail_obj, str(bpffs / "hits"), "kernel")
    (m,) = doc["maps"]
    assert (m["name"], m["type"], m["key_type"], m["value_type"]) == (
        "hits",
        "hash",
        "__u32",
        "__u64",
    )
    assert m["entries"] == [{"key": key, "value": 2}]
    assert m["kernel_name"] == "hits"
    # ... or raw without it
    (raw,) = run_json("map", "dump", "--pinned", str(bpffs / "hits"))["maps"]
    assert raw["entries"] == [
        {
            "key": "0x" + key.to_bytes(4, "little").hex(),
            "value": "0x" + (2).to_bytes(8, "little").hex(),
        }
    ]
    human = invoke("map", "dump", "--pinned", str(bpffs / "hits"), tail_obj)
    assert human.exit_code == 0
    assert f"    {key}: 2" in human.stdout
    # a map of another shape in the object is refused, naming both
    assert_fails(
        ["map", "dump", "--pinned", str(bpffs / "hits"), tail_obj, "--map", "recent"],
        1,
        "the pinned map is hash with 4-byte keys and 8-byte values, but",
    )
    assert_fails(["map", "dump", "--pinned", str(bpffs / "nope")], 1, "nope")


# ---------------------------------------------------------------------- map dump


def test_map_dump_fresh_load(flow_obj: str, tail_obj: str, backend: str) -> None:
    doc = run_json("map", "dump", flow_obj, "--backend", backend, "--set", "verdict=1")
    assert (doc["file"], doc["pinned"], doc["backend"]) == (flow_obj, None, backend)
    assert entries(doc, ".rodata") == {0: {"verdict": 1, "min_len": 0}}
    assert entries(doc, ".data") == {0: {"total_bytes": 100, "banner": "netbpf"}}
    assert entries(doc, "flows") == {}
    assert entries(doc, "limits") == {0: 0, 1: 0, 2: 0, 3: 0}
    one = run_json("map", "dump", flow_obj, "--map", "flows", "--backend", backend)
    assert [m["name"] for m in one["maps"]] == ["flows"]
    human = invoke("map", "dump", flow_obj, "--map", ".data", "--backend", backend)
    assert human.exit_code == 0
    assert "no program has run" in human.stdout
    assert '    0: {"total_bytes": 100, "banner": "netbpf"}' in human.stdout


# ------------------------------------------------------------------------ errors


def test_object_errors_before_loading(flow_obj: str) -> None:
    run = ["prog", "run", flow_obj, "--data-hex", PACKET_HEX]
    assert_fails([*run, "--prog", "nope"], 1, "no program 'nope'; programs: flow_tc, flow_xdp")
    assert_fails(run, 1, "has 2 programs; choose one with --prog: flow_tc, flow_xdp")
    xdp = [*run, "--prog", "flow_xdp"]
    doc = assert_fails(
        [*xdp, "--set", "nosuch=1"],
        1,
        "--set nosuch: " + flow_obj + " has no global variable 'nosuch'; variables: banner, "
        "last_neg, min_len, runs, total_bytes, verdict",
    )
    assert doc["type"] == "NetbpfError"
    assert_fails([*xdp, "--set", "min_len=70000"], 1, "--set min_len: ")
    assert_fails([*xdp, "--set", "min_len=70000"], 1, "70000 does not fit")
    assert_fails([*xdp, "--set", "banner=much too long"], 1, "--set banner: ")
    assert_fails([*xdp, "--set", "verdict=[1, 2]"], 1, "--set verdict: ")
    assert_fails([*xdp, "--set", "verdict"], 2, "'verdict' is not NAME=VALUE")


def test_map_option_errors(flow_obj: str, backend: str, tmp_path: Path) -> None:
    xdp = ["prog", "run", flow_obj, "--prog", "flow_xdp", "--data-hex", PACKET_HEX]
    xdp += ["--backend", backend]
    assert_fails([*xdp, "--map", 'limits={"0": '], 1, "--map limits: the value is not JSON")
    assert_fails(
        [*xdp, "--map", "nosuch={}"],
        1,
        "--map nosuch: " + flow_obj + " has no map 'nosuch'; maps: .bss, .data, .rodata, "
        ".rodata.str1.1, flows, limits, pcpu_bytes",
    )
    assert_fails([*xdp, "--map", 'limits={"x": 1}'], 1, "--map limits: key 'x': ")
    assert_fails([*xdp, "--map", 'limits={"9": 1}'], 1, "--map limits: key '9': ")
    assert_fails([*xdp, "--map", 'flows={"0": {"nosuch": 1}}'], 1, "nosuch")
    assert_fails([*xdp, "--map", "limits=5"], 1, "expected a JSON object")
    assert_fails([*xdp, "--map", "limits=[[1]]"], 1, "entry 0 is neither")
    assert_fails([*xdp, "--map", f"limits=@{tmp_path / 'none.json'}"], 1, "No such file")
    bad = tmp_path / "bad.json"
    bad.write_text("{,}")
    assert_fails([*xdp, "--map", f"limits=@{bad}"], 1, f"--map limits: {bad} is not JSON")


def test_usage_errors(flow_obj: str) -> None:
    xdp = ["prog", "run", flow_obj, "--prog", "flow_xdp", "--data-hex", PACKET_HEX]
    assert_fails([*xdp, "--pin-path", "/tmp"], 2, "--pin-path needs --backend kernel")
    assert_fails([*xdp, "--name", "x"], 2, "--name is for raw and assembly programs")
    raw = ["prog", "run", str(EXAMPLES / "xdp_udp_drop.bin"), "--type", "xdp"]
    assert_fails([*raw, "--prog", "x"], 2, "--prog needs a BPF object (ELF)")
    assert_fails([*raw, "--map", "a={}"], 2, "--map needs a BPF object (ELF); ")
    assert_fails(["map", "dump"], 2, "give an object OBJ, or --pinned PATH")
    assert_fails(["map", "dump", flow_obj, "--map", "nope"], 1, "no map 'nope'; maps: .bss,")
    assert_fails(
        ["map", "dump", "--pinned", "/x", "--set", "a=1"], 2, "--set prepares a fresh load"
    )


def test_corrupted_object_in_prog_run(flow_obj: str, tmp_path: Path) -> None:
    data = Path(flow_obj).read_bytes()
    cut = tmp_path / "cut.o"
    cut.write_bytes(data[:200])
    doc = assert_fails(["prog", "run", str(cut), "--data-hex", PACKET_HEX], 1, str(cut))
    assert doc["type"] in ("ElfError", "ObjectError")


# ------------------------------------------------------------------------ README


def _readme_tour() -> list[str]:
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("### Objects", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [ln.split("  #")[0].strip() for ln in block.strip().splitlines()]


def test_readme_object_tour_runs(compile_bpf) -> None:
    """The README's object tour, command by command, on the object compile_bpf builds
    from the same source with the same flags."""
    tour = _readme_tour()
    clang = shlex.split(tour[0])
    assert clang[0] == "clang-19" and clang[-1] == "flow.o"
    source = clang[clang.index("-c") + 1]
    assert source == "tests/progs/cli_flow.c"
    flags = clang[1 : clang.index("-c")]
    assert flags == ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]
    obj = str(compile_bpf(source.removeprefix("tests/progs/")))
    commands = [shlex.split(ln) for ln in tour[1:]]
    assert [c[:3] for c in commands] == [
        ["netbpf", "obj", "show"],
        ["netbpf", "prog", "dump"],
        ["netbpf", "prog", "run"],
        ["netbpf", "map", "dump"],
        ["netbpf", "verify", "flow.o"],
    ]
    docs = []
    for argv in commands:
        args = [obj if a == "flow.o" else a for a in argv[1:]]
        args = [str(EXAMPLES.parent / a) if a.startswith("examples/") else a for a in args]
        assert invoke(*args).exit_code == 0, argv
        docs.append(run_json(*args))
    run, dump, verify = docs[2], docs[3], docs[4]
    assert verify["accepted"] is True
    assert [p["name"] for p in verify["programs"]] == ["flow_xdp", "flow_tc"]
    assert (run["retval"], run["action"]) == (1, "XDP_DROP")  # --set verdict=1
    assert entries(run, "limits")[0] == 1500
    assert entries(dump, ".rodata") == {0: {"verdict": 2, "min_len": 64}}


def test_only_the_chosen_program_is_loaded(compile_bpf, backend: str) -> None:
    """cli_verify.o holds a program the kernel's verifier refuses; running the other
    one still works (the others are not loaded, as with libbpf's autoload off), and
    running the bad one is one error line naming it."""
    obj = str(compile_bpf("cli_verify.c"))
    run = ["prog", "run", obj, "--data-hex", PACKET_HEX, "--backend", backend]
    doc = run_json(*run, "--prog", "good", "--dump-maps")
    assert (doc["retval"], doc["action"]) == (2, "XDP_PASS")
    assert entries(doc, "hits") == {}  # a hash: the lookup found nothing
    needle = (
        "program 'no_null_check' (section 'xdp'): R0 invalid mem access 'map_value_or_null'"
        if backend == "kernel"
        else "prog 'no_null_check': insn "  # refused by the verifier, or faulting without one
    )
    assert_fails([*run, "--prog", "no_null_check"], 1, needle)
