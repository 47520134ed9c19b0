"""load_collection_spec: programs, subprogram linking, maps, global data, bad input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netbpf.errors import ElfError, NetbpfError, ObjectError
from netbpf.isa import validate_program
from netbpf.obj.collection import load_collection_spec, map_contents, map_data
from netbpf.uapi import BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, MapType, ProgramType

PROGS = Path(__file__).parent / "progs"


@pytest.fixture(scope="module")
def features_obj(compile_bpf) -> Path:
    return compile_bpf(PROGS / "loader_features.c")


@pytest.fixture(scope="module")
def spec(features_obj):
    return load_collection_spec(features_obj)


def test_programs_and_types(spec) -> None:
    assert set(spec.programs) == {"xdp_a", "xdp_b", "tc_a"}
    assert spec.programs["xdp_a"].prog_type == ProgramType.XDP
    assert spec.programs["tc_a"].prog_type == ProgramType.SCHED_CLS
    assert spec.programs["xdp_a"].section == "xdp"
    assert spec.license == "GPL"
    for p in spec.programs.values():
        validate_program(list(p.insns), name=p.name)  # linked programs are well formed


def test_subprograms_are_appended_and_calls_fixed(spec) -> None:
    prog = spec.programs["xdp_a"]
    names = [f.name for f in prog.func_info]
    # main first, then every reached subprogram exactly once
    assert names[0] == "xdp_a"
    assert sorted(names[1:]) == ["cb", "gfunc", "helper"]
    starts = {f.slot for f in prog.func_info}
    for i, ins in enumerate(prog.insns):
        if ins.opcode == 0x85 and ins.src == BPF_PSEUDO_CALL:
            assert i + ins.imm + 1 in starts
        if ins.opcode == 0x18 and ins.src == BPF_PSEUDO_FUNC:
            assert i + ins.imm + 1 in starts
    # tc_a reaches only `helper`
    assert [f.name for f in spec.programs["tc_a"].func_info] == ["tc_a", "helper"]


def test_maps(spec) -> None:
    m = spec.maps
    assert m["counts"].type == MapType.HASH and (m["counts"].key_size, m["counts"].value_size) == (
        4,
        8,
    )
    assert m["counts"].max_entries == 16
    assert m["outer"].type == MapType.ARRAY_OF_MAPS
    assert m["outer"].inner_map is not None and m["outer"].inner_map.type == MapType.ARRAY
    assert map_contents(m["outer"]) == ((1, ("map", "inner1")),)
    assert map_contents(m["jmp"]) == ((0, ("prog", "xdp_b")),)


def test_global_data_and_variables(spec) -> None:
    assert {".data", ".rodata", ".bss"} <= set(spec.maps)
    assert spec.variables["cfg"].get_int() == 7
    assert spec.variables["cfg"].readonly
    assert spec.variables["total"].get_int() == 3
    assert spec.variables["fmt"].get() == b"hi %d\0"
    assert map_data(spec.maps[".bss"]) == b"\0" * 4


def test_map_relocations(spec) -> None:
    relocs = {(r.map, r.offset) for r in spec.programs["xdp_a"].map_relocs}
    assert ("counts", None) in relocs and ("jmp", None) in relocs
    assert (".rodata", 0) in relocs  # cfg
    assert (".data", 0) in relocs  # total
    assert (".bss", 0) in relocs  # zero
    for r in spec.programs["xdp_a"].map_relocs:
        assert spec.programs["xdp_a"].insns[r.slot].opcode == 0x18


def test_parse_is_pure_and_deterministic(features_obj, spec) -> None:
    again = load_collection_spec(features_obj.read_bytes())
    assert again.programs == spec.programs
    assert again.maps == spec.maps


def test_variable_set_is_local_to_a_copy(spec) -> None:
    copy = spec.copy()
    copy.variables["cfg"].set(42)
    assert copy.variables["cfg"].get_int() == 42
    assert spec.variables["cfg"].get_int() == 7
    with pytest.raises(ObjectError, match="does not fit"):
        copy.variables["cfg"].set(1 << 40)


def test_line_info_names_source(spec) -> None:
    prog = spec.programs["xdp_a"]
    li = prog.source_line(len(prog.insns) - 1)
    assert li is not None and li.file.endswith("loader_features.c")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b[:10], "not an ELF"),
        (lambda b: b"\x7fELF" + b"\0" * 60, "ELF"),
        (lambda b: b[:0x12] + b"\x3e\x00" + b[0x14:], "EM_BPF"),
        (lambda b: b[: len(b) // 2], None),
    ],
    ids=["truncated-header", "empty-elf", "wrong-machine", "half-file"],
)
def test_bad_objects_raise_our_errors(features_obj, mutate, match) -> None:
    data = mutate(features_obj.read_bytes())
    with pytest.raises(NetbpfError, match=match):
        load_collection_spec(data, name="bad.o")


def test_missing_file() -> None:
    with pytest.raises(ObjectError, match="cannot read object"):
        load_collection_spec("/nonexistent/x.o")


def test_unknown_program_section(compile_bpf) -> None:
    obj = compile_bpf(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        'SEC("bogus_section") int f(void *ctx) { return 0; }\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
    )
    with pytest.raises(ElfError, match="bogus_section"):
        load_collection_spec(obj)


def test_map_key_size_conflict(compile_bpf) -> None:
    obj = compile_bpf(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        "struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);"
        ' __uint(key_size, 8); __type(key, __u32); __type(value, __u32); } m SEC(".maps");\n'
        'SEC("xdp") int f(void *ctx) { __u32 k = 0; return bpf_map_lookup_elem(&m, &k) != 0; }\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
    )
    with pytest.raises(ElfError, match="key_size 8 conflicts"):
        load_collection_spec(obj)


def _interesting_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges worth corrupting: headers, symbols, relocations, code, maps, BTF
    (not the DWARF sections the loader never reads)."""
    from netbpf.obj.elf import ElfObject

    obj = ElfObject(path.read_bytes())
    ranges = [(0, 64)]
    data = path.read_bytes()
    shoff = int.from_bytes(data[0x28:0x30], "little")
    ranges.append((shoff, len(data)))
    for s in obj.sections:
        if s.size and not s.name.startswith((".debug", ".rel.debug")) and s.type != 8:
            ranges.append((s.offset, s.offset + s.size))
    return ranges


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 16))
def test_fuzz_mutated_objects_only_raise_our_errors(features_obj, seed, flips) -> None:
    """Random byte flips anywhere in a real object: parsing either succeeds or raises
    one of our errors; nothing else may escape."""
    data = bytearray(features_obj.read_bytes())
    rng = random.Random(seed)
    targets = _interesting_ranges(features_obj)
    for _ in range(flips):
        lo, hi = rng.choice(targets)
        data[rng.randrange(lo, hi)] = rng.randrange(256)
    if rng.random() < 0.3:
        del data[rng.randrange(len(data)) :]
    try:
        load_collection_spec(bytes(data), name="fuzz.o")
    except NetbpfError:
        pass


def test_huge_bss_is_refused_not_allocated(features_obj) -> None:
    """A corrupted NOBITS size must give our error, not a MemoryError."""
    from netbpf.obj.elf import ElfObject

    data = bytearray(features_obj.read_bytes())
    obj = ElfObject(bytes(data))
    bss = obj.section_named(".bss")
    shoff = int.from_bytes(data[0x28:0x30], "little")
    entsize = int.from_bytes(data[0x3A:0x3C], "little")
    size_at = shoff + bss.index * entsize + 0x20  # sh_size
    data[size_at : size_at + 8] = (1 << 40).to_bytes(8, "little")
    with pytest.raises(ElfError, match=r"section '\.bss'.*larger than"):
        load_collection_spec(bytes(data), name="huge.o")


def test_variable_set_typed_through_btf(spec) -> None:
    copy = spec.copy()
    copy.variables["fmt"].set("yo %d")  # char[6] takes text
    assert copy.variables["fmt"].get() == b"yo %d\0"
    with pytest.raises(ObjectError, match="variable 'fmt'"):
        copy.variables["fmt"].set([1, 2, 3, 4, 5, 6, 7, 8])
    with pytest.raises(ObjectError, match="variable 'total'"):
        copy.variables["total"].set({"x": 1})
