"""BTF parsing, querying, formatting and encoding on objects compiled from our own C
(tests/progs/btf_*.c), checked against bpftool's raw dump of the same objects."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from netbpf.errors import BtfError
from netbpf.obj.btf import (
    VOID,
    Array,
    Btf,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarLinkage,
    VarSecinfo,
    Volatile,
    format_raw,
)

PROGS = ["btf_kinds.c", "btf_core_local.c", "btf_core_target.c"]


def elf_section(path: Path, name: str) -> bytes:
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        assert sec is not None, f"{path} has no {name}"
        return sec.data()


@pytest.fixture(scope="module")
def kinds_obj(compile_bpf) -> Path:
    return compile_bpf("btf_kinds.c")


@pytest.fixture(scope="module")
def kinds(kinds_obj: Path) -> Btf:
    return Btf.parse(elf_section(kinds_obj, ".BTF"), file=str(kinds_obj))


def _t(btf: Btf, name: str, kind: Kind | str | None = None):
    t = btf.find(name, kind)
    assert t is not None, f"{name} not found"
    return t


# -- bpftool differential -----------------------------------------------------------------


@pytest.mark.parametrize("target", ["bpf", "bpfeb"])
@pytest.mark.parametrize("prog", PROGS)
def test_format_raw_matches_bpftool(compile_bpf, prog: str, target: str) -> None:
    """Our raw dump is bpftool's, line for line (little- and big-endian objects)."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool not installed")
    flags = ("-target", "bpfeb") if target == "bpfeb" else ()
    obj = compile_bpf(prog, extra_flags=flags)
    ours = format_raw(Btf.parse(elf_section(obj, ".BTF"), file=str(obj)))
    theirs = subprocess.run(
        [bpftool, "btf", "dump", "file", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    assert ours.splitlines() == theirs.splitlines()
    assert ours == theirs


def test_every_kind_is_covered(kinds: Btf) -> None:
    assert {t.kind for t in kinds.types} == set(Kind)


def test_big_endian_parses_to_the_same_types(compile_bpf, kinds: Btf) -> None:
    obj = compile_bpf("btf_kinds.c", extra_flags=("-target", "bpfeb"))
    raw = elf_section(obj, ".BTF")
    eb = Btf.parse(raw)
    assert eb.byteorder == "big"
    assert list(eb.types) == list(kinds.types)
    assert eb.to_bytes() == raw


# -- round trip --------------------------------------------------------------------------


@pytest.mark.parametrize("prog", PROGS)
def test_round_trip_is_byte_identical(compile_bpf, prog: str) -> None:
    raw = elf_section(compile_bpf(prog), ".BTF")
    btf = Btf.parse(raw)
    out = btf.to_bytes()
    assert out == raw
    again = Btf.parse(out)
    assert again == btf
    assert hash(again) == hash(btf)


def test_lazy_parse_equals_eager(kinds_obj: Path, kinds: Btf) -> None:
    lazy = Btf.parse(elf_section(kinds_obj, ".BTF"), lazy=True)
    assert lazy.find("holder", "struct") == kinds.find("holder", "struct")
    assert lazy == kinds
    assert lazy.to_bytes() == kinds.to_bytes()


def test_from_types_builds_and_encodes() -> None:
    types = [
        Int(1, "int", 4, IntEncoding.SIGNED, 0, 32),
        Ptr(2, "", 3),
        Struct(3, "node", 16, (Member("val", 1, 0), Member("next", 2, 64))),
        Struct(4, "flags", 4, (Member("a", 1, 0, 1), Member("b", 1, 1, 31)), kind_flag=True),
        Enum(5, "e", 4, (EnumValue("NEG", -3), EnumValue("POS", 3)), signed=True),
        Enum64(6, "e64", 8, (EnumValue("BIG", 1 << 40),)),
        Fwd(7, "later", is_union=True),
        Typedef(8, "node_t", 3),
        Volatile(9, "", 8),
        Const(10, "", 9),
        Restrict(11, "", 2),
        FuncProto(12, "", 1, (Param("n", 2), Param("", 0))),
        Func(13, "walk", 12, FuncLinkage.GLOBAL),
        Var(14, "head", 3, VarLinkage.GLOBAL_ALLOCATED),
        Datasec(15, ".bss", 16, (VarSecinfo(14, 0, 16),)),
        Float(16, "double", 8),
        DeclTag(17, "tag", 3, 1),
        TypeTag(18, "user", 1),
        Array(19, "", 1, 1, 4),
        Union(20, "u", 8, (Member("x", 1, 0), Member("y", 16, 0))),
    ]
    btf = Btf.from_types(types)
    parsed = Btf.parse(btf.to_bytes())
    assert list(parsed.types) == [VOID, *types]
    assert parsed.format_type(13) == "int walk(struct node *n, ...)"
    assert parsed.format_type(10) == "const volatile node_t"


def test_from_types_rejects_gaps_and_dangling_refs() -> None:
    with pytest.raises(BtfError, match="consecutive"):
        Btf.from_types([Int(2, "int", 4, IntEncoding.SIGNED, 0, 32)])
    with pytest.raises(BtfError, match="does not exist") as ei:
        Btf.from_types([Ptr(1, "", 5)])
    assert ei.value.type_id == 1


def test_with_types_replaces_and_appends_keeping_strings(kinds: Btf) -> None:
    holder = _t(kinds, "holder", "struct")
    new_int = Int(len(kinds), "brand_new_name", 2, IntEncoding.NONE, 0, 16)
    changed = kinds.with_types([Typedef(holder.id, "holder_alias", 1), new_int])
    assert changed.type(holder.id) == Typedef(holder.id, "holder_alias", 1)
    assert changed.type(len(kinds)) == new_int
    raw = changed.to_bytes()
    # the original string section is a prefix of the new one: old offsets stay valid
    hdr = struct.unpack_from("<HBBIIIII", raw)
    strings = raw[hdr[3] + hdr[6] : hdr[3] + hdr[6] + hdr[7]]
    assert strings.startswith(kinds.strings)
    assert Btf.parse(raw) == changed
    assert kinds.type(holder.id) is holder  # the original is untouched


# -- decoded records -----------------------------------------------------------------------


def test_struct_bitfields_use_kind_flag(kinds: Btf) -> None:
    bits = _t(kinds, "bits", Kind.STRUCT)
    assert isinstance(bits, Struct)
    assert bits.kind_flag
    assert bits.size == 32
    by_name = {m.name: m for m in bits.members}
    assert (by_name["a"].bit_offset, by_name["a"].bitfield_size) == (0, 3)
    assert (by_name["b"].bit_offset, by_name["b"].bitfield_size) == (3, 5)
    assert (by_name["c"].bit_offset, by_name["c"].bitfield_size) == (8, 40)
    assert by_name["flag"].bitfield_size == 1
    assert by_name["d"].bitfield_size == 0
    assert by_name["d"].byte_offset == 7
    assert kinds.format_type(by_name["d"].type_id) == "char[16]"
    assert bits.member("tail").byte_offset == 24
    with pytest.raises(KeyError):
        bits.member("nope")


def test_enums_signed_unsigned_and_64bit(kinds: Btf) -> None:
    small = _t(kinds, "small")
    assert isinstance(small, Enum) and small.signed
    assert small.values == (EnumValue("S_NEG", -1), EnumValue("S_POS", 2))
    uns = _t(kinds, "uns")
    assert isinstance(uns, Enum) and not uns.signed
    assert uns.values[1] == EnumValue("U_MAX", 0xFFFFFFFF)
    tiny = _t(kinds, "tiny")
    assert isinstance(tiny, Enum) and tiny.size == 1
    big = _t(kinds, "big")
    assert isinstance(big, Enum64) and big.signed
    assert [v.value for v in big.values] == [1 << 32, -5]
    bigu = _t(kinds, "bigu")
    assert isinstance(bigu, Enum64) and not bigu.signed
    assert bigu.values[0].value == (1 << 64) - 1


def test_fwd_func_var_and_datasec_records(kinds: Btf) -> None:
    assert _t(kinds, "fwd_s") == Fwd(_t(kinds, "fwd_s").id, "fwd_s", False)
    assert _t(kinds, "fwd_u").is_union  # type: ignore[attr-defined]
    helper = _t(kinds, "helper", Func)
    assert helper.linkage == FuncLinkage.STATIC
    assert _t(kinds, "global_fn", Func).linkage == FuncLinkage.GLOBAL
    proto = kinds.type(helper.type_id)
    assert isinstance(proto, FuncProto)
    assert [p.name for p in proto.params] == ["x", "b"]
    assert not proto.variadic
    assert _t(kinds, "s_data", Var).linkage == VarLinkage.STATIC
    assert _t(kinds, "g_data", Var).linkage == VarLinkage.GLOBAL_ALLOCATED
    assert sorted(kinds.datasecs()) == [
        ".bss",
        ".data",
        ".data.custom",
        ".maps",
        ".rodata",
        "license",
    ]
    rodata = kinds.variables(".rodata")
    assert [(v.name, size) for v, _, size in rodata] == [("g_rodata", 4)]
    assert kinds.format_type(rodata[0][0].id) == "const volatile int g_rodata"


def test_decl_and_type_tags(kinds: Btf) -> None:
    tags = {
        (t.name, kinds.name_of(t.type_id), t.component_idx)
        for t in kinds.types
        if isinstance(t, DeclTag)
    }
    assert tags == {
        ("struct_tag", "bits", -1),
        ("member_tag", "holder", 14),
        ("var_tag", "g_tagged", -1),
        ("param_tag", "helper", 0),
        ("func_tag", "helper", -1),
    }
    holder = _t(kinds, "holder", Struct)
    tagged = holder.member("tagged")
    assert kinds.format_type(tagged.type_id) == 'int __attribute__((btf_type_tag("user"))) *'


def test_variadic_and_function_pointers(kinds: Btf) -> None:
    holder = _t(kinds, "holder", Struct)
    fmt = {m.name: kinds.format_type(m.type_id, m.name) for m in holder.members}
    assert fmt["variadic"] == "void (*variadic)(int, ...)"
    assert fmt["cb"] == "callback_t cb"
    assert fmt["fnret"] == "char (*(*fnret)(int))[8]"
    assert fmt["rp"] == "int *restrict rp"
    assert fmt["cv"] == "cv_u32 cv"
    assert fmt["matrix"] == "int matrix[2][3]"
    assert fmt["fs"] == "struct fwd_s *fs"
    assert fmt["fu"] == "union fwd_u *fu"
    assert fmt["n"] == "union num n"
    assert fmt["t"] == "enum tiny t"
    assert fmt["flex"] == "int flex[0]"
    assert fmt[""] == "struct {...}"
    cb = kinds.resolve(holder.member("cb").type_id)
    assert kinds.format_type(cb.id) == "int (*)(void *, unsigned long)"
    variadic = kinds.type(kinds.type(holder.member("variadic").type_id).type_id)  # type: ignore[attr-defined]
    assert isinstance(variadic, FuncProto) and variadic.variadic
    assert (
        kinds.format_type(_t(kinds, "kinds_prog", Func).id) == "int kinds_prog(struct xdp_md *ctx)"
    )
    assert kinds.format_type(_t(kinds, ".bss", Datasec).id) == 'SEC(".bss")'


# -- queries ------------------------------------------------------------------------------------


def test_find_and_kind_filters(kinds: Btf) -> None:
    assert kinds.find("no_such_type") is None
    assert kinds.find("holder", Kind.STRUCT) is kinds.find("holder", "struct")
    assert kinds.find("holder", Struct) is kinds.find("holder")
    assert kinds.find("holder", Kind.UNION) is None
    assert [t.kind for t in kinds.find_all("int")] == [Kind.INT]
    with pytest.raises(ValueError):
        kinds.find("x", "nokind")
    assert kinds.types[0] is VOID
    assert kinds.types[-1] is kinds.type(len(kinds) - 1)
    assert kinds.types[1:3] == [kinds.type(1), kinds.type(2)]
    with pytest.raises(BtfError) as ei:
        kinds.type(len(kinds))
    assert ei.value.type_id == len(kinds)
    assert kinds.name_of(0) == "void"


def test_resolve_size_and_align(kinds: Btf) -> None:
    cv = _t(kinds, "cv_u32", Typedef)
    base = kinds.resolve(cv.id)
    assert isinstance(base, Int) and base.name == "unsigned int" and not base.signed
    assert kinds.size_of(cv.id) == 4
    holder = _t(kinds, "holder", Struct)
    assert kinds.size_of(holder.id) == holder.size == 144
    assert kinds.size_of(holder.member("matrix").type_id) == 24
    assert kinds.size_of(holder.member("fnret").type_id) == 8
    assert kinds.size_of(_t(kinds, "g_holder", Var).id) == 144
    # libbpf's btf__align_of caps scalar alignment at the pointer size (so 8, not the
    # 16 clang gives unsigned __int128)
    assert kinds.align_of(holder.id) == 8
    assert kinds.align_of(holder.member("n").type_id) == 8
    with pytest.raises(BtfError, match="FUNC has no size"):
        kinds.size_of(_t(kinds, "helper", Func).id)
    with pytest.raises(BtfError, match="FWD has no size"):
        kinds.size_of(_t(kinds, "fwd_s").id)


def test_field_paths_walk_anonymous_members_and_arrays(kinds: Btf) -> None:
    holder = _t(kinds, "holder", Struct)
    anon = next(m for m in holder.members if not m.name)
    x = kinds.field(holder.id, "x")
    y = kinds.field(holder.id, "y")
    assert x.byte_offset == anon.byte_offset
    assert y.byte_offset == anon.byte_offset + 4 and y.size == 4
    m = kinds.field(holder.id, "matrix[1][2]")
    assert m.byte_offset == holder.member("matrix").byte_offset + (3 + 2) * 4
    assert m.size == 4
    raw3 = kinds.field(holder.id, "n.raw[3]")
    assert raw3.byte_offset == holder.member("n").byte_offset + 3 and raw3.size == 1
    b = kinds.field(_t(kinds, "bits").id, "b")
    assert (b.bit_offset, b.bitfield_size) == (3, 5)
    for bad in ("nope", "matrix[2]", "x[0]", "a..b", "", "matrix[1"):
        with pytest.raises(BtfError):
            kinds.field(holder.id, bad)
    assert [mm.name for mm in kinds.members(_t(kinds, "num").id)] == ["i", "f", "d", "raw"]


# -- malformed input ---------------------------------------------------------------------------


def _btf_bytes(types: list, strings: bytes = b"\0int\0") -> bytes:
    return Btf.from_types(types, strings=strings).to_bytes()


INT = Int(1, "int", 4, IntEncoding.SIGNED, 0, 32)


def _patch(raw: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


@pytest.mark.parametrize(
    ("mutate", "message", "offset", "type_id"),
    [
        (lambda r: r[:7], "too short", 0, None),
        (lambda r: _patch(r, 0, "<H", 0x1234), "bad magic", 0, None),
        (lambda r: _patch(r, 2, "<B", 2), "version", 2, None),
        (lambda r: _patch(r, 3, "<B", 1), "flags", 3, None),
        (lambda r: _patch(r, 4, "<I", 8), "hdr_len", 4, None),
        (lambda r: _patch(r, 4, "<I", 10_000), "hdr_len", 4, None),
        (lambda r: _patch(r, 8, "<I", 2), "aligned", 8, None),
        (lambda r: _patch(r, 12, "<I", 1 << 20), "type section", 12, None),
        (lambda r: _patch(r, 20, "<I", 1 << 20), "string section", 20, None),
        (lambda r: _patch(r, 16, "<I", 4), "overlaps", 16, None),
        (lambda r: r[:-1] + b"x", "NUL", None, None),
        (lambda r: _patch(r, 24 + 4, "<I", 25 << 24), "unknown BTF kind 25", 24, 1),
        (lambda r: _patch(r, 24, "<I", 999), "name offset 999", 24, 1),
        (lambda r: _patch(r, 24 + 12, "<I", 0x05000020), "INT encoding", 36, 1),
        (lambda r: _patch(r, 24 + 8, "<I", 3), "INT size 3", 32, 1),
        (lambda r: _patch(r, 24 + 4, "<I", 0x81000000), "kind_flag set on a INT", 28, 1),
        (lambda r: _patch(r, 24 + 4, "<I", 0x01000001), "vlen 1 on a INT", 28, 1),
        (lambda r: _patch(r, 24 + 4, "<I", 0x01010000), "unused bits", 28, 1),
        (lambda r: _patch(r, 24 + 16 + 8, "<I", 7), "type id 7 is out of range", 48, 2),
    ],
)
def test_malformed_btf_names_section_offset_and_type(mutate, message, offset, type_id) -> None:
    raw = _btf_bytes([INT, Ptr(2, "", 1)])
    with pytest.raises(BtfError, match=message) as ei:
        Btf.parse(mutate(raw), file="bad.o")
    e = ei.value
    assert e.section == ".BTF" and e.file == "bad.o"
    if offset is not None:
        assert e.offset == offset
    assert e.type_id == type_id
    assert "bad.o" in str(e) and ".BTF" in str(e)


def test_truncated_record_names_type_and_offset() -> None:
    raw = _btf_bytes([INT, Struct(2, "", 8, (Member("", 1, 0), Member("", 1, 32)))])
    hdr_len, type_len = 24, struct.unpack_from("<I", raw, 12)[0]
    # claim 3 members: the record now runs past the end of the type section
    bad = _patch(raw, 24 + 16 + 4, "<I", (Kind.STRUCT << 24) | 3)
    with pytest.raises(BtfError, match="runs past the end") as ei:
        Btf.parse(bad)
    assert ei.value.type_id == 2 and ei.value.offset == hdr_len + 16
    # a type section ending mid-header
    short = _patch(raw, 12, "<I", type_len - 28)
    with pytest.raises(BtfError, match="truncated type record") as ei:
        Btf.parse(short)
    assert ei.value.type_id == 2


def test_lazy_parse_reports_bad_records_on_access() -> None:
    raw = _btf_bytes([INT, Ptr(2, "", 1)])
    bad = _patch(raw, 24 + 16 + 8, "<I", 9)
    btf = Btf.parse(bad, lazy=True)  # record boundaries are fine
    assert btf.type(1) == INT
    with pytest.raises(BtfError, match="out of range") as ei:
        btf.type(2)
    assert ei.value.type_id == 2


def test_extended_header_must_be_zero() -> None:
    raw = _btf_bytes([INT])
    hdr = bytearray(raw[:24])
    struct.pack_into("<I", hdr, 4, 32)
    ext = bytes(hdr) + b"\0" * 8 + raw[24:]
    assert Btf.parse(ext).type(1) == INT
    bad = bytes(hdr) + b"\0\0\0\0\1\0\0\0" + raw[24:]
    with pytest.raises(BtfError, match="extended BTF header") as ei:
        Btf.parse(bad)
    assert ei.value.offset == 28


def test_public_names_are_pinned() -> None:
    import netbpf.obj.btf as mod

    assert sorted(mod.__all__) == sorted(
        [
            "POISON_IMM", "VMLINUX_BTF_PATH", "VOID", "Array", "Btf", "BtfExt", "BtfFeatures",
            "BtfType", "Const", "CoreCandidateCache", "CoreRelo", "CoreReloKind",
            "CoreReloResult", "Datasec", "DeclTag", "Enum", "Enum64", "EnumValue", "Field",
            "Float", "Func", "FuncInfo", "FuncLinkage", "FuncProto", "Fwd", "Int",
            "IntEncoding", "Kind", "LineInfo", "Member", "Param", "Ptr", "Restrict", "Struct",
            "TypeTag", "Typedef", "Union", "Var", "VarLinkage", "VarSecinfo", "Void",
            "Volatile", "apply_core_relocation", "compute_core_relocation",
            "encode_func_info", "encode_line_info", "essential_name", "fixup_datasecs",
            "format_raw", "format_type", "load_vmlinux_btf", "sanitize",
        ]
    )  # fmt: skip
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_copy_and_pickle(kinds_obj: Path, kinds: Btf) -> None:
    import copy
    import pickle

    assert copy.copy(kinds) is kinds and copy.deepcopy(kinds) is kinds  # immutable
    lazy = Btf.parse(elf_section(kinds_obj, ".BTF"), lazy=True)
    for b in (kinds, lazy):
        again = pickle.loads(pickle.dumps(b))
        assert again == kinds
        assert again.to_bytes() == kinds.to_bytes()
